"""Progress and outcome of a training job, read from its run folder (shared with the cluster's nodes).

    read_progress("outputs/runs/yolo12n-job-ab12")
    # {"epoch": 2, "epochs": 5, "metrics": {"metrics/mAP50(B)": 0.12, ...}}   (None before results.csv exists)
    read_outcome(Path(run_dir))   # (mlflow_run_id, metrics, registered_version) from summary.json

`results.csv` is Ultralytics' per-epoch log; the number of epochs comes from config.resolved.yaml
(`train.epochs`), written when training starts.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import yaml


def _number(value: str):
    try:
        return round(float(value), 6)
    except ValueError:
        return value.strip()


def read_progress(run_dir: str | Path | None) -> dict | None:
    if not run_dir:
        return None
    folder = Path(run_dir)
    try:
        with (folder / "results.csv").open(newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except (OSError, csv.Error):
        rows = []
    epochs = None
    try:
        config = yaml.safe_load((folder / "config.resolved.yaml").read_text(encoding="utf-8")) or {}
        epochs = int(config["train"]["epochs"])
    except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError):
        pass
    if not rows and epochs is None:
        return None
    last = {k.strip(): _number(v) for k, v in rows[-1].items() if k and v is not None} if rows else {}
    epoch = int(float(last.pop("epoch", len(rows)))) if rows else 0
    return {"epoch": epoch, "epochs": epochs, "metrics": last}


def read_outcome(run_dir: Path) -> tuple[str | None, dict, str | None]:
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    metrics = {str(k): v for k, v in (summary.get("metrics") or {}).items() if isinstance(v, int | float | str | None)}
    registration = summary.get("registration") or {}
    version = registration.get("version") if registration.get("registered") else None
    return summary.get("mlflow_run_id"), metrics, None if version is None else str(version)
