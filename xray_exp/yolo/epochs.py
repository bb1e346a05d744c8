"""What every training epoch reports, and the per-epoch MLflow log that the trainer class installs itself.

    from xray_exp.yolo.epochs import epoch_metrics     # train/*_loss, lr/pg*, ultralytics/val/*
    with epoch_log(EpochLog(run_dir, tracking_uri)):    # every training path logs each epoch there
        YOLO(...).train(trainer=XrayDetectionTrainer, ...)

Adding a per-epoch metric is a change to `epoch_metrics` only: single runs, sweep jobs, Ray Tune trials and
Ray Train rank 0 all log (and Ray reports) what it returns.

Why the trainer installs the log, not `model.add_callback`: with a multi-GPU device Ultralytics re-launches
training in a `torch.distributed.run` child that rebuilds the trainer class from a pickled state. The
trainer's own `__init__` runs there again and reads where to log from the environment variable
XRAY_EXP_EPOCH_LOG (inherited by the child), so the epochs reach the run's MLflow journal whichever
process trains. Only rank 0 (or a process without ranks) logs.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from xray_exp.offline import environment_variable

EPOCH_LOG_ENV = "XRAY_EXP_EPOCH_LOG"
ULTRALYTICS_PREFIX = "ultralytics/"  # Ultralytics' validator figures; ours are val/* and test/*
ULTRALYTICS_BOX_KEYS = {
    "metrics/precision(B)": "precision",
    "metrics/recall(B)": "recall",
    "metrics/mAP50(B)": "mAP50",
    "metrics/mAP50-95(B)": "mAP50-95",
    "metrics/accuracy_top1": "accuracy_top1",  # task=classify
}


def ultralytics_box_metrics(results: dict[str, Any], prefix: str) -> dict[str, float]:
    """Ultralytics' 'metrics/mAP50(B)' style keys -> 'ultralytics/<prefix>/mAP50'."""
    return {
        f"{ULTRALYTICS_PREFIX}{prefix}/{name}": float(results[key])
        for key, name in ULTRALYTICS_BOX_KEYS.items()
        if key in results
    }


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


@dataclass(frozen=True)
class EpochLog:
    """Where the training process journals each epoch: the MLflow journal folder of a run (`<dir>/tracking`).

    `run_id`: an MLflow run opened elsewhere (Ray Train's rank 0 logs into the driver's run from its own
    journal folder); None when `dir` is the run's own journal (it knows its run)."""

    dir: str
    tracking_uri: str | None
    enabled: bool = True
    timeout_s: float = 10.0
    run_id: str | None = None


def epoch_log(spec: EpochLog | None):
    """Point the trainer (and any process Ultralytics re-launches for DDP) at `spec` for the duration."""
    return environment_variable(EPOCH_LOG_ENV, None if spec is None else json.dumps(asdict(spec)))


def configured_epoch_log() -> EpochLog | None:
    raw = os.environ.get(EPOCH_LOG_ENV)
    return EpochLog(**json.loads(raw)) if raw else None


def log_epoch(trainer) -> None:
    """`on_fit_epoch_end`, installed by XrayDetectionTrainer: the epoch's metrics into the run's journal
    (and MLflow). Skips the extra call Ultralytics makes from final_eval (best.pt at step epochs+1; the final
    numbers are logged after post-training) and every rank but 0."""
    from ultralytics.utils import RANK

    spec = configured_epoch_log()
    if spec is None or getattr(trainer, "in_final_eval", False) or RANK not in (-1, 0):
        return
    tracker = getattr(trainer, "_epoch_tracker", None)
    if tracker is None:
        from xray_exp.mlops.tracker import Tracker  # lazy: only on this path

        tracker = Tracker.for_epochs(
            Path(spec.dir), spec.tracking_uri, enabled=spec.enabled, timeout_s=spec.timeout_s, run_id=spec.run_id
        )
        trainer._epoch_tracker = tracker
    tracker.log_metrics(epoch_metrics(trainer), step=int(trainer.epoch) + 1)
