"""cv.json: the record of one cross-validation, readable at any time (the contract `xray_exp.ensemble` reads).

    record = new_cv_record(cv_dir, name="yolo12s-nih_cxr14-k5-s0", data_yaml=..., folds=5, seed=0,
                           names=[...], imgsz=640, model="yolo12s")          # every fold MISSING
    record = refresh_cv_record(cv_dir)    # each fold's status from <cv_dir>/fold<f>/summary.json
    fold_state(cv_dir / "fold2")          # ("FINISHED" | "FAILED" | "MISSING", summary or None)

{"name", "data_yaml", "folds", "seed", "names", "imgsz", "model", "parent_run_id",
 "fold_runs": [{"fold", "status", "run_dir", "weights", "onnx", "data_yaml", "mlflow_run_id"}, ...], ...}
Paths are absolute. Writes are atomic and serialised by a lock file (folds finishing at once on Ray).
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

from xray_exp.cv.plan import fold_data_yaml
from xray_exp.errors import ConfigError

CV_FILE = "cv.json"
SWEEP_FILE = "sweep.json"  # the sweep callback's (xray_exp.sweep.job.SWEEP_FILE): parent run id, tracking URI
STATUSES = ("FINISHED", "FAILED", "MISSING")


def fold_run_dir(cv_dir: str | Path, fold: int) -> Path:
    return Path(cv_dir).resolve() / f"fold{fold}"


def fold_state(run_dir: str | Path) -> tuple[str, dict | None]:
    """A fold's status from its run folder's summary.json: FINISHED (with best.pt), FAILED, or MISSING."""
    path = Path(run_dir) / "summary.json"
    if not path.is_file():
        return "MISSING", None
    try:
        summary = json.loads(path.read_text())
    except json.JSONDecodeError:
        return "MISSING", None
    status = summary.get("status", "FINISHED")
    if status == "FINISHED" and not Path(str(summary.get("best_weights") or "")).is_file():
        return "FAILED", summary
    return ("FINISHED" if status == "FINISHED" else "FAILED"), summary


@contextlib.contextmanager
def _cv_lock(cv_dir: Path):
    import fcntl

    cv_dir.mkdir(parents=True, exist_ok=True)
    with open(cv_dir / ".cv.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _write_cv_json(cv_dir: Path, record: dict[str, Any]) -> None:
    tmp = cv_dir / f".{CV_FILE}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(record, indent=2))
    os.replace(tmp, cv_dir / CV_FILE)


def load_cv_record(cv_dir: str | Path) -> dict[str, Any]:
    path = Path(cv_dir).resolve() / CV_FILE
    if not path.is_file():
        raise ConfigError(
            f"{path} not found: {Path(cv_dir)} is not a cross-validation folder. Fix: pass the "
            "outputs/cv/<name> folder a `python -m xray_exp.train --multirun sweep=cv` run made."
        )
    return json.loads(path.read_text())


def new_cv_record(cv_dir: str | Path, **fields: Any) -> dict[str, Any]:
    """Write cv.json with every fold MISSING (kept folds' states are read back by refresh_cv_record)."""
    cv_dir = Path(cv_dir).resolve()
    record = {
        "name": fields.pop("name"),
        "data_yaml": str(fields.pop("data_yaml")),
        "folds": int(fields.pop("folds")),
        "seed": int(fields.pop("seed")),
        "names": list(fields.pop("names")),
        "imgsz": int(fields.pop("imgsz")),
        "model": str(fields.pop("model")),
        "parent_run_id": None,
        "cv_dir": str(cv_dir),
        **fields,
    }
    record["fold_runs"] = [
        {
            "fold": f,
            "status": "MISSING",
            "run_dir": str(fold_run_dir(cv_dir, f)),
            "weights": None,
            "onnx": None,
            "data_yaml": str(fold_data_yaml(cv_dir, f)),
            "mlflow_run_id": None,
        }
        for f in range(record["folds"])
    ]
    with _cv_lock(cv_dir):
        _write_cv_json(cv_dir, record)
    return refresh_cv_record(cv_dir)


def refresh_cv_record(cv_dir: str | Path, **fields: Any) -> dict[str, Any]:
    """Re-read every fold's state (and the sweep's parent run), update cv.json; `fields`: more keys to set."""
    cv_dir = Path(cv_dir).resolve()
    with _cv_lock(cv_dir):
        record = load_cv_record(cv_dir)
        record.update(fields)
        sweep = cv_dir / SWEEP_FILE
        if sweep.is_file():
            info = json.loads(sweep.read_text())
            record["parent_run_id"] = info.get("parent_run_id")
            record["tracking_uri"] = info.get("tracking_uri")
        for run in record["fold_runs"]:
            status, summary = fold_state(run["run_dir"])
            onnx = (summary or {}).get("onnx")
            run.update(
                status=status,
                weights=(summary or {}).get("best_weights") if status == "FINISHED" else None,
                onnx=onnx if status == "FINISHED" and onnx and Path(onnx).is_file() else None,
                mlflow_run_id=(summary or {}).get("mlflow_run_id"),
            )
            if summary and summary.get("error"):
                run["error"] = summary["error"]
            else:
                run.pop("error", None)
        _write_cv_json(cv_dir, record)
    return record
