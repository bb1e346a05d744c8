"""What a Ray checkpoint of an Ultralytics run holds, and how a run starts or continues from one.

A checkpoint folder (reported to Ray Train / Ray Tune every epoch, stored under `ray.storage_path`):

    weights/last.pt     Ultralytics' resumable checkpoint (model, EMA, optimizer, epoch)
    weights/best.pt     the best epoch so far (when written)
    weights/start.pt    kind=weights only: weights a new training starts from
    results.csv         Ultralytics' per-epoch table
    state.json          {"kind": "epoch" | "final" | "continue" | "weights", "epoch": <epochs done>,
                         "epochs": <planned>, "val_metrics": {...}}

`epoch` / `continue`: resume Ultralytics from last.pt (optimizer, schedule and epoch counter included);
`weights`: a new training from start.pt; `final`: training is over, nothing left to run.
Light module: no torch/ultralytics/ray imports at load time.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xray_exp.errors import ModelError

STATE = "state.json"
KINDS = ("epoch", "final", "continue", "weights")


def pack(
    dst: str | Path,
    weights_dir: str | Path,
    kind: str,
    epoch: int,
    epochs: int,
    val_metrics: dict[str, float] | None = None,
    results_csv: str | Path | None = None,
) -> Path:
    """Fill `dst` with last.pt/best.pt from `weights_dir`, results.csv and state.json; return `dst`."""
    if kind not in KINDS:
        raise ValueError(f"checkpoint kind {kind!r} not in {KINDS}")
    dst, weights_dir = Path(dst), Path(weights_dir)
    (dst / "weights").mkdir(parents=True, exist_ok=True)
    for name in ("last.pt", "best.pt"):
        if (weights_dir / name).is_file():
            shutil.copyfile(weights_dir / name, dst / "weights" / name)
    if results_csv and Path(results_csv).is_file():
        shutil.copyfile(results_csv, dst / "results.csv")
    write_state(dst, {"kind": kind, "epoch": int(epoch), "epochs": int(epochs), "val_metrics": val_metrics or {}})
    return dst


def write_state(folder: str | Path, state: dict[str, Any]) -> None:
    (Path(folder) / STATE).write_text(json.dumps(state, indent=2))


def read_state(folder: str | Path) -> dict[str, Any]:
    path = Path(folder) / STATE
    if not path.is_file():
        raise ModelError(f"{folder}: not an xray_exp checkpoint folder (no {STATE})")
    state = json.loads(path.read_text())
    if state.get("kind") not in KINDS:
        raise ModelError(f"{path}: unknown checkpoint kind {state.get('kind')!r}")
    return state


@dataclass(frozen=True)
class StartPoint:
    """Where `mode=retrain model_path=...` starts: `continue` a resumable last.pt, or new `weights`."""

    kind: str  # "continue" | "weights"
    weights: Path
    epoch: int  # epochs already done (continue), else 0
    epochs: int  # the schedule the checkpoint was trained for (continue), else 0


def find_weights(model_path: str | Path) -> Path:
    """A .pt file, or a run / checkpoint folder (weights/last.pt preferred, then weights/best.pt)."""
    path = Path(model_path).expanduser().resolve()
    if path.is_file():
        if path.suffix != ".pt":
            raise ModelError(f"model_path: {path} is not a PyTorch .pt checkpoint")
        return path
    if path.is_dir():
        for candidate in (
            path / "weights" / "last.pt",
            path / "weights" / "best.pt",
            path / "last.pt",
            path / "best.pt",
        ):
            if candidate.is_file():
                return candidate
        raise ModelError(
            f"model_path: {path} holds no weights/last.pt or weights/best.pt. Fix: pass a run folder "
            "(outputs/runs/<name>), a Ray checkpoint folder or a .pt file."
        )
    raise ModelError(
        f"model_path: {path} not found. Fix: pass a run folder, a Ray checkpoint folder or a .pt file "
        "(mode=retrain model_path=outputs/runs/<name>/weights/last.pt)."
    )


def plan_start(model_path: str | Path) -> StartPoint:
    """Continue a resumable checkpoint (optimizer state, epochs left), else start anew from its weights."""
    import torch

    weights = find_weights(model_path)
    try:
        ckpt = torch.load(weights, map_location="cpu", weights_only=False)
    except Exception as exc:  # a corrupt or foreign file: say which
        raise ModelError(f"model_path: cannot read {weights}: {exc}") from exc
    if not isinstance(ckpt, dict) or not (ckpt.get("ema") or ckpt.get("model")):
        raise ModelError(f"model_path: {weights} is not an Ultralytics checkpoint")
    epoch = ckpt.get("epoch", -1)
    epochs = int((ckpt.get("train_args") or {}).get("epochs", 0) or 0)
    if ckpt.get("optimizer") is not None and epoch is not None and 0 <= epoch and epoch + 1 < epochs:
        return StartPoint("continue", weights, epoch + 1, epochs)
    return StartPoint("weights", weights, 0, 0)


def make_start_checkpoint(start: StartPoint, dst: str | Path) -> Path:
    """A checkpoint folder workers can start from (on shared storage, so every node reads it)."""
    dst = Path(dst)
    (dst / "weights").mkdir(parents=True, exist_ok=True)
    name = "last.pt" if start.kind == "continue" else "start.pt"
    shutil.copyfile(start.weights, dst / "weights" / name)
    history = start.weights.parent.parent / "results.csv"  # <run or checkpoint>/weights/last.pt
    if start.kind == "continue" and history.is_file():
        shutil.copyfile(history, dst / "results.csv")
    write_state(
        dst,
        {
            "kind": start.kind,
            "epoch": start.epoch,
            "epochs": start.epochs,
            "val_metrics": {},
            "source": str(start.weights),
        },
    )
    return dst
