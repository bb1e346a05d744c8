"""Process set-up before Ultralytics is imported: offline by default, project-local settings, DDP rank.

Hospital networks: no downloads, no update checks, no auto-install, no telemetry. Ultralytics reads
its environment at import time, so `configure_offline()` must run first (the switches themselves are in
xray_exp/offline.py; the service, which needs no Ultralytics, calls `disable_telemetry()` from there):

    from xray_exp.yolo.runtime import configure_offline
    configure_offline("outputs/.ultralytics")
    from ultralytics import YOLO   # now offline, settings in outputs/.ultralytics
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
from pathlib import Path

from xray_exp.offline import OFFLINE_ENV

log = logging.getLogger(__name__)

# Ultralytics' own integrations: off. We own the one MLflow run per training (xray_exp.mlops.tracker).
ULTRALYTICS_SETTINGS = {
    "sync": False,
    "mlflow": False,
    "clearml": False,
    "comet": False,
    "dvc": False,
    "raytune": False,
    "tensorboard": False,
    "wandb": False,
    "vscode_msg": False,
    "openvino_msg": False,
}

FONT_NAMES = ("Arial.ttf", "Arial.Unicode.ttf")


def configure_offline(settings_dir: str | Path, offline: bool = True) -> Path:
    """Point Ultralytics at a project-local settings folder and (by default) switch it offline.

    Also places a font where Ultralytics looks for Arial (it would download one for its plots).
    Returns the folder Ultralytics will use (`<settings_dir>/Ultralytics`).
    """
    settings_dir = Path(settings_dir).expanduser().resolve()
    settings_dir.mkdir(parents=True, exist_ok=True)
    if "ultralytics" in sys.modules and os.environ.get("YOLO_CONFIG_DIR") != str(settings_dir):
        log.warning(
            "ultralytics was imported before configure_offline(); its settings folder stays %s",
            os.environ.get("YOLO_CONFIG_DIR", "~/.config/Ultralytics"),
        )
    os.environ["YOLO_CONFIG_DIR"] = str(settings_dir)
    if offline:
        os.environ.update(OFFLINE_ENV)
    user_dir = settings_dir / "Ultralytics"
    user_dir.mkdir(parents=True, exist_ok=True)
    _install_fonts(user_dir)
    return user_dir


def _install_fonts(user_dir: Path) -> None:
    """Copy matplotlib's bundled DejaVuSans (a free font) under the names Ultralytics asks for."""
    missing = [name for name in FONT_NAMES if not (user_dir / name).exists()]
    if not missing:
        return
    import matplotlib

    source = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    for name in missing:
        tmp = user_dir / f".{name}.tmp"
        shutil.copyfile(source, tmp)
        os.replace(tmp, user_dir / name)


def apply_ultralytics_settings(runs_dir: str | Path) -> None:
    """Turn off Ultralytics' integrations and telemetry; call after configure_offline()."""
    from ultralytics.utils import SETTINGS

    wanted = dict(ULTRALYTICS_SETTINGS, runs_dir=str(runs_dir), weights_dir=str(Path(runs_dir) / "weights"))
    if any(SETTINGS.get(k) != v for k, v in wanted.items()):
        SETTINGS.update(wanted)


def check_rank_environment() -> None:
    """Ultralytics reads RANK/WORLD_SIZE once at import: it must not have been imported before a launcher
    (Ray Train, torchrun) set them. Raises RuntimeError when it was, with the rank it read."""
    if "ultralytics.utils" not in sys.modules:
        return
    from ultralytics.utils import RANK

    world = int(os.environ.get("WORLD_SIZE", "1"))
    expected = int(os.environ.get("RANK", "-1")) if world > 1 else -1
    if RANK != expected:
        raise RuntimeError(
            f"ultralytics was imported in this worker before its launcher set RANK={expected} "
            f"(it reads RANK={RANK}); import it only inside the training function"
        )
