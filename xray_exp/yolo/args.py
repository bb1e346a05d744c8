"""The one seam between our config and Ultralytics: composed config -> `YOLO.train(**kwargs)`.

    from xray_exp.yolo.args import to_train_args
    kwargs = to_train_args(cfg, data_yaml="/abs/data.yaml", run_dir="/abs/outputs/runs/yolo12n-...")
    YOLO("yolo12n.yaml").train(**kwargs)

Ultralytics writes straight into `run_dir` (project = its parent, name = its basename).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from xray_exp.errors import ConfigError

YOLO12_SCALES = ("n", "s", "m", "l", "x")


def known_architectures() -> list[str]:
    """The YOLO12 detection yamls Ultralytics ships (`-cls` beside each for task=classify)."""
    return [f"yolo12{s}.yaml" for s in YOLO12_SCALES]


# Keys we set from the structured groups; `train.extra` may not override them.
MANAGED_KEYS = ("data", "project", "name", "exist_ok", "resume", "model", "mode", "task")
AUGMENTATION_KEYS = (
    "hsv_h",
    "hsv_s",
    "hsv_v",
    "degrees",
    "translate",
    "scale",
    "shear",
    "perspective",
    "flipud",
    "fliplr",
    "mosaic",
    "mixup",
    "cutmix",
    "copy_paste",
    "erasing",
    "auto_augment",
    "close_mosaic",
)
TRAIN_KEYS = (
    "epochs",
    "patience",
    "imgsz",
    "optimizer",
    "lr0",
    "lrf",
    "momentum",
    "weight_decay",
    "warmup_epochs",
    "cos_lr",
    "seed",
    "deterministic",
    "fraction",
    "plots",
)


def _plain(node: Any) -> Any:
    if isinstance(node, DictConfig):
        return OmegaConf.to_container(node, resolve=True, enum_to_str=True)
    return node


def _batch(value: float | int) -> float | int:
    """Ultralytics: an int batch size, -1 for automatic sizing, or a 0-1 float GPU memory fraction."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def to_train_args(cfg: DictConfig, data_yaml: str | Path, run_dir: str | Path) -> dict[str, Any]:
    """Map the composed config onto Ultralytics train arguments (plain Python values only)."""
    train = _plain(cfg.train)
    aug = _plain(cfg.augmentation)
    hw = _plain(cfg.hardware)
    run_dir = Path(run_dir).resolve()
    args: dict[str, Any] = {
        "data": str(Path(data_yaml).resolve()),
        "project": str(run_dir.parent),
        "name": run_dir.name,
        "exist_ok": True,
        **{k: train[k] for k in TRAIN_KEYS},
        **{k: aug[k] for k in AUGMENTATION_KEYS},
        "device": hw["device"],
        "batch": _batch(hw["batch"]),
        "workers": hw["workers"],
        "amp": hw["amp"],
        "cache": False if hw["cache"] in (None, "none") else hw["cache"],
        "compile": hw["compile"],
    }
    extra = train.get("extra") or {}
    clash = sorted(set(extra) & set(MANAGED_KEYS))
    if clash:
        raise ConfigError(f"train.extra.{clash[0]}: set by xray_exp itself and cannot be overridden here")
    unknown = sorted(set(extra) - ultralytics_train_keys())
    if unknown:
        raise ConfigError(
            f"train.extra.{unknown[0]}: not an Ultralytics train argument. "
            "See ultralytics/cfg/default.yaml for the valid names."
        )
    args.update(extra)
    return args


def ultralytics_train_keys() -> set[str]:
    """Every argument name Ultralytics' default config knows."""
    from ultralytics.cfg import DEFAULT_CFG_DICT

    return set(DEFAULT_CFG_DICT)
