"""Model construction and the Ultralytics training call (plain arguments, no config objects).

    from xray_exp.yolo.fit import build_model, fit
    model = build_model("yolo12n.yaml", weights=None)
    result = fit(model, train_args, callbacks={"on_fit_epoch_end": [print]})
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xray_exp.errors import ModelError

log = logging.getLogger(__name__)

YOLO12_SCALES = ("n", "s", "m", "l", "x")


@dataclass
class FitResult:
    run_dir: Path
    best: Path
    last: Path
    epochs_run: int
    val_metrics: dict[str, float]


def known_architectures() -> list[str]:
    return [f"yolo12{s}.yaml" for s in YOLO12_SCALES]


def locate_weights(weights: str | Path, offline: bool = True) -> Path:
    """The .pt to start from: a local file, or an Ultralytics asset named bare (`yolo12n.pt`, COCO-pretrained)
    found in Ultralytics' weights folder or, with offline=false, fetched there by Ultralytics."""
    path = Path(weights).expanduser()
    if path.is_file():
        return path.resolve()
    from ultralytics.utils import SETTINGS
    from ultralytics.utils.downloads import GITHUB_ASSETS_NAMES, attempt_download_asset

    bare = str(weights) == path.name
    if not (bare and path.name in GITHUB_ASSETS_NAMES):
        raise ModelError(f"model.weights: file {path} not found. Fix: point model.weights at an existing .pt "
                         "(or a models:/<name>@<alias> registry URI, or an Ultralytics asset name such as "
                         "yolo12n.pt), or set model.weights=null.")
    stored = Path(SETTINGS["weights_dir"]) / path.name
    if stored.is_file():
        return stored.resolve()
    if offline:
        raise ModelError(f"model.weights={weights}: pretrained weights not found and offline=true forbids the "
                         f"download. Fix: put the file at {stored} (from https://github.com/ultralytics/assets/"
                         f"releases) or pass its path, or set offline=false to let Ultralytics fetch it.")
    fetched = Path(attempt_download_asset(stored))
    if not fetched.is_file():
        raise ModelError(f"model.weights={weights}: Ultralytics could not fetch it into {stored}. Fix: check the "
                         "network, or download the file there yourself.")
    return fetched.resolve()


def build_model(arch: str, weights: str | Path | None = None, offline: bool = True):
    """A YOLO12 model from its yaml (random init), or from a .pt: a local file or an Ultralytics asset name
    (`yolo12n.pt`: COCO-pretrained, fetched when offline=false; see locate_weights)."""
    from ultralytics import YOLO

    if weights:
        if Path(str(weights)).suffix != ".pt":
            raise ModelError(f"model.weights: {weights} is not a PyTorch .pt checkpoint")
        return YOLO(str(locate_weights(weights, offline)), task="detect")
    if arch not in known_architectures():
        raise ModelError(f"model.arch: unknown architecture {arch!r}. Known: {', '.join(known_architectures())} "
                         "(choose with model=yolo12n|yolo12s|yolo12m|yolo12l|yolo12x).")
    return YOLO(arch, task="detect")


def epoch_metrics(trainer) -> dict[str, float]:
    """Per-epoch numbers: train/*_loss, lr/pg*, and what Ultralytics' validator computed under its own
    prefix, ultralytics/val/*_loss|precision|recall|mAP50|mAP50-95|mAP75 (never the names of
    xray_exp.metrics' val/* and test/* figures, which post-training computes on best.pt)."""
    out: dict[str, float] = {}
    out.update(trainer.label_loss_items(trainer.tloss, prefix="train"))
    out.update({ULTRALYTICS_PREFIX + k: v for k, v in (trainer.metrics or {}).items() if k.startswith("val/")})
    out.update(ultralytics_box_metrics(trainer.metrics or {}, prefix="val"))
    box = getattr(getattr(trainer, "validator", None), "metrics", None)
    if box is not None and hasattr(box, "box"):
        out[f"{ULTRALYTICS_PREFIX}val/mAP75"] = float(box.box.map75)
    out.update({k: float(v) for k, v in (trainer.lr or {}).items()})
    return {k: float(v) for k, v in out.items()}


def each_training_epoch(fn: Callable[[Any], None]) -> Callable[[Any], None]:
    """Wrap an `on_fit_epoch_end` callback so it sees training epochs only.

    Ultralytics fires the event once more from `final_eval` (best.pt, at step epochs+1), after an epoch
    that set `trainer.stop`; that extra call is skipped (the final metrics are logged separately).
    """
    state = {"stopped": False}

    def wrapper(trainer) -> None:
        if state["stopped"]:
            return
        state["stopped"] = bool(trainer.stop)
        fn(trainer)

    return wrapper


ULTRALYTICS_PREFIX = "ultralytics/"  # Ultralytics' validator figures; ours are val/* and test/*
ULTRALYTICS_BOX_KEYS = {
    "metrics/precision(B)": "precision",
    "metrics/recall(B)": "recall",
    "metrics/mAP50(B)": "mAP50",
    "metrics/mAP50-95(B)": "mAP50-95",
}


def ultralytics_box_metrics(results: dict[str, Any], prefix: str) -> dict[str, float]:
    """Ultralytics' 'metrics/mAP50(B)' style keys -> 'ultralytics/<prefix>/mAP50'."""
    return {f"{ULTRALYTICS_PREFIX}{prefix}/{name}": float(results[key])
            for key, name in ULTRALYTICS_BOX_KEYS.items() if key in results}


def trim_results_to_checkpoint(run_dir: Path) -> int:
    """Before a resume: drop results.csv rows past the epoch weights/last.pt holds, so an epoch whose row was
    written just before a kill, and whose checkpoint was not, is not in the file twice. Returns that epoch."""
    import torch

    checkpoint = torch.load(run_dir / "weights" / "last.pt", map_location="cpu", weights_only=False)
    done = int(checkpoint.get("epoch", -1)) + 1  # Ultralytics stores the 0-based index of the finished epoch
    results = run_dir / "results.csv"
    if results.is_file():
        header, *rows = results.read_text().splitlines()
        kept = [row for row in rows if row.strip() and int(float(row.split(",")[0])) <= done]
        if len(kept) != len(rows):
            log.info("resume: results.csv rows after epoch %d (not in last.pt) dropped", done)
            results.write_text("\n".join([header, *kept]) + "\n")
    return done


def fit(model, train_args: dict[str, Any], callbacks: dict[str, list[Callable]] | None = None,
        resume: bool = False, gray_loader: bool = True) -> FitResult:
    """Train (or resume) and return where the weights are and Ultralytics' final validation metrics
    (`ultralytics/val/*`).

    `gray_loader`: augment single-channel image sets on one channel (xray_exp.yolo.trainer; same batches).
    """
    from xray_exp.yolo.trainer import XrayDetectionTrainer, gray_loader_env

    for event, fns in (callbacks or {}).items():
        for fn in fns:
            model.add_callback(event, fn)
    with gray_loader_env(gray_loader):
        if resume:
            model.train(trainer=XrayDetectionTrainer, resume=True)
        else:
            model.train(trainer=XrayDetectionTrainer, **train_args)
    trainer = model.trainer
    save_dir = Path(trainer.save_dir)
    best = Path(trainer.best) if Path(trainer.best).exists() else Path(trainer.last)
    val = ultralytics_box_metrics(trainer.metrics or {}, prefix="val")
    return FitResult(run_dir=save_dir, best=best, last=Path(trainer.last), epochs_run=int(trainer.epoch) + 1,
                     val_metrics=val)
