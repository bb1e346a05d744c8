"""Ultralytics checkpoint files (.pt): what a finished training keeps of them.

from xray_exp.yolo.checkpoint import strip_optimizer_state
strip_optimizer_state(run_dir / "best" / "weights" / "best.pt")   # in place; weights only, half precision
"""

from __future__ import annotations

from pathlib import Path


def strip_optimizer_state(weights: str | Path) -> None:
    """Rewrite a training checkpoint in place the way Ultralytics finishes best.pt/last.pt: the EMA weights
    (when present) kept as the model, in half precision; the optimizer and the other resume state dropped."""
    from ultralytics.utils.torch_utils import strip_optimizer

    strip_optimizer(str(weights))
