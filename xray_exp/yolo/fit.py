"""Model construction and THE Ultralytics training call of every engine (plain arguments, no config objects).

from xray_exp.yolo.fit import fit
result = fit("yolo12n.yaml", train_args, epoch_log=EpochLog(run_dir, tracking_uri))     # new training
result = fit("yolo12n.yaml", train_args, resume_from=run_dir / "weights/last.pt")       # continue it
result = fit(arch, train_args, device="cpu", on_epoch=report, ray_ranks=True)            # a Ray Train rank
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xray_exp.errors import ModelError
from xray_exp.yolo.args import known_architectures
from xray_exp.yolo.epochs import EpochLog, epoch_metrics, ultralytics_box_metrics
from xray_exp.yolo.epochs import epoch_log as epoch_log_env

log = logging.getLogger(__name__)


@dataclass
class FitResult:
    """Where a training left its weights, and Ultralytics' validation of best.pt (`ultralytics/val/*`)."""

    run_dir: Path
    best: Path
    last: Path
    epochs_run: int
    val_metrics: dict[str, float]
    epochs: int = 0  # the planned schedule
    trainer: Any = field(default=None, repr=False)  # the Ultralytics trainer, when it ran in this process


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
        raise ModelError(
            f"model.weights: file {path} not found. Fix: point model.weights at an existing .pt "
            "(or a models:/<name>@<alias> registry URI, or an Ultralytics asset name such as "
            "yolo12n.pt), or set model.weights=null."
        )
    stored = Path(SETTINGS["weights_dir"]) / path.name
    if stored.is_file():
        return stored.resolve()
    if offline:
        raise ModelError(
            f"model.weights={weights}: pretrained weights not found and offline=true forbids the "
            f"download. Fix: put the file at {stored} (from https://github.com/ultralytics/assets/"
            f"releases) or pass its path, or set offline=false to let Ultralytics fetch it."
        )
    fetched = Path(attempt_download_asset(stored))
    if not fetched.is_file():
        raise ModelError(
            f"model.weights={weights}: Ultralytics could not fetch it into {stored}. Fix: check the "
            "network, or download the file there yourself."
        )
    return fetched.resolve()


def build_model(arch: str, weights: str | Path | None = None, offline: bool = True, task: str = "detect"):
    """A YOLO12 model from its yaml (random init), or from a .pt: a local file or an Ultralytics asset name
    (`yolo12n.pt`: COCO-pretrained, fetched when offline=false; see locate_weights). `task`: detect | classify
    (arch: yolo12<scale>-cls.yaml, xray_exp.yolo.classify)."""
    from ultralytics import YOLO

    if weights:
        if Path(str(weights)).suffix != ".pt":
            raise ModelError(f"model.weights: {weights} is not a PyTorch .pt checkpoint")
        return YOLO(str(locate_weights(weights, offline)), task=task)
    if task == "classify" and arch in [a.replace(".yaml", "-cls.yaml") for a in known_architectures()]:
        return YOLO(arch, task="classify")
    if arch not in known_architectures():
        raise ModelError(
            f"model.arch: unknown architecture {arch!r}. Known: {', '.join(known_architectures())} "
            "(choose with model=yolo12n|yolo12s|yolo12m|yolo12l|yolo12x)."
        )
    return YOLO(arch, task="detect")


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


def resume_args(last: str | Path, train_args: dict[str, Any]) -> dict[str, Any]:
    """Ultralytics' arguments to continue the training in `last` (optimizer, schedule and epoch counter
    included): the checkpoint's own arguments, with the data, device, workers and run folder of now."""
    return {
        "resume": str(last),
        "data": train_args["data"],
        "device": train_args["device"],
        "workers": train_args["workers"],
        "save_dir": str(Path(train_args["project"]) / train_args["name"]),
    }


def fit(
    arch: str,
    train_args: dict[str, Any],
    *,
    weights: str | Path | None = None,
    resume_from: str | Path | None = None,
    device: str | None = None,
    offline: bool = True,
    gray_loader: bool = True,
    epoch_log: EpochLog | None = None,
    on_epoch: Callable[[Any, dict[str, float]], None] | None = None,
    ray_ranks: bool = False,
    task: str = "detect",
) -> FitResult:
    """The one Ultralytics training call of every engine: a new training from `arch`/`weights`, or the
    continuation of `resume_from` (a resumable last.pt).

    `device`: the device this process trains on when the engine decides it (a Ray Tune trial, a Ray Train
    rank), else `train_args["device"]`. `epoch_log`: the run journal every epoch is logged to (by the trainer
    class itself, see xray_exp.yolo.epochs). `on_epoch(trainer, metrics)`: an engine's own per-epoch report
    (Ray Tune / Ray Train), training epochs only. `ray_ranks`: join the process group Ray Train made
    (xray_exp.yolo.ray_trainer) instead of Ultralytics' own DDP. `gray_loader`: augment single-channel image
    sets on one channel (xray_exp.yolo.trainer; same batches). `task=classify`: a YOLO12-cls classifier
    (xray_exp.yolo.classify.XrayClassificationTrainer; `train_args["data"]` is its classify folder).
    """
    args = dict(train_args, device=device if device is not None else train_args["device"])
    trainer_class: type  # one of Ultralytics' trainers, subclassed
    if task == "classify":
        from xray_exp.yolo.classify import XrayClassificationTrainer as trainer_class  # lazy: only on this path
    elif ray_ranks:
        from xray_exp.yolo.ray_trainer import RayDetectionTrainer as trainer_class  # lazy: only on this path
    else:
        from xray_exp.yolo.trainer import XrayDetectionTrainer as trainer_class  # lazy: only on this path
    from xray_exp.yolo.trainer import gray_loader_env  # lazy: heavy (PIL, cv2, torch, tqdm)

    model = build_model(arch, resume_from or weights, offline, task)
    if on_epoch is not None:

        def report(trainer) -> None:
            if not trainer.in_final_eval:
                on_epoch(trainer, epoch_metrics(trainer))

        model.add_callback("on_fit_epoch_end", report)
    with gray_loader_env(gray_loader), epoch_log_env(epoch_log):
        model.train(trainer=trainer_class, **(resume_args(resume_from, args) if resume_from else args))
    trainer = model.trainer
    best = Path(trainer.best) if Path(trainer.best).exists() else Path(trainer.last)
    return FitResult(
        run_dir=Path(trainer.save_dir),
        best=best,
        last=Path(trainer.last),
        epochs_run=int(trainer.epoch) + 1,
        epochs=int(trainer.epochs),
        val_metrics=ultralytics_box_metrics(trainer.metrics or {}, prefix="val"),
        trainer=trainer,
    )
