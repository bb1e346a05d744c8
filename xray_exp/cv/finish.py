"""After the last fold: out-of-fold predictions and metrics, per-fold spread, the report, the MLflow parent run.

    from xray_exp.cv.finish import finish_cv
    finish_cv("outputs/cv/yolo12s-nih_cxr14-k5-s0")          # also: python -m xray_exp.folds cv_dir=outputs/cv/<name>

Writes into the CV folder (and logs on the CV's MLflow parent run, under cv/):
    oof_predictions.csv   image,fold,label,class_id,confidence,x1,y1,x2,y2 (each pool image by its fold's model)
    cv_metrics.json       per fold: every headline val/* and test/* metric; their mean and std; `oof`: the pooled
                          OOF metrics with bootstrap intervals (patients resampled)
    report.md             per-fold table, OOF metrics, PR / FROC / ROC curves (plots/), the fold plan
With a fold not FINISHED the OOF metrics need `allow_missing=True` (they then cover the finished folds only).
Callable again at any time: fold predictions are cached per weights file (xray_exp.cv.oof).
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np

from xray_exp.cv.oof import OOF_CSV, pooled_oof, score_oof, write_oof_csv
from xray_exp.cv.plan import FOLDS_CSV, read_folds_csv
from xray_exp.cv.record import refresh_cv_record
from xray_exp.cv.report import write_cv_report
from xray_exp.errors import ConfigError
from xray_exp.evaluation import MetricSettings
from xray_exp.metrics.resample import HEADLINE_METRICS

log = logging.getLogger("xray_exp.cv")

CV_METRICS = "cv_metrics.json"
REPORT = "report.md"
SPLITS = ("val", "test")


def _headline_metrics() -> tuple[str, ...]:
    return HEADLINE_METRICS


def fold_metric_table(record: dict) -> tuple[list[dict], dict[str, float], dict[str, float]]:
    """Per-fold headline metrics (from each fold's summary.json), their mean and sample std (ddof=1) over the
    finished folds (std NaN with one fold)."""
    names = [f"{split}/{m}" for split in SPLITS for m in _headline_metrics()]
    rows = []
    for run in record["fold_runs"]:
        row: dict[str, Any] = {"fold": run["fold"], "status": run["status"]}
        summary_path = Path(run["run_dir"]) / "summary.json"
        if run["status"] == "FINISHED" and summary_path.is_file():
            metrics = json.loads(summary_path.read_text()).get("metrics", {})
            row.update({k: float(metrics[k]) for k in names if k in metrics})
            row["val/images"] = metrics.get("val/images")
        rows.append(row)
    done = [r for r in rows if r["status"] == "FINISHED"]
    mean, std = {}, {}
    for name in names:
        values = np.array([r[name] for r in done if name in r], dtype=np.float64)
        if len(values):
            mean[name] = float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")
            std[name] = float(np.nanstd(values, ddof=1)) if np.isfinite(values).sum() > 1 else float("nan")
    return rows, mean, std


def metric_settings_of(record: dict, n_boot: int | None = None):
    kept = record.get("metrics") or {}
    settings = MetricSettings(**{f.name: kept[f.name] for f in fields(MetricSettings) if f.name in kept})
    if n_boot is not None:
        from dataclasses import replace

        settings = replace(settings, n_boot=int(n_boot))
    return settings


def _json_ready(value):
    """JSON without NaN (null instead): cv_metrics.json is read by other tools."""
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_ready(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def finish_cv(cv_dir: str | Path, allow_missing: bool | None = None, n_boot: int | None = None) -> dict[str, Any]:
    """OOF predictions + metrics, cv_metrics.json, report.md, MLflow parent; returns cv_metrics.json's content.
    `allow_missing` (default: the CV's cv.allow_missing) scores the OOF predictions of the finished folds when
    another fold is not finished; `n_boot` overrides the CV's bootstrap resamples."""
    cv_dir = Path(cv_dir).resolve()
    record = refresh_cv_record(cv_dir)
    allow_missing = record.get("allow_missing", False) if allow_missing is None else allow_missing
    finished = [run["fold"] for run in record["fold_runs"] if run["status"] == "FINISHED"]
    not_done = [run["fold"] for run in record["fold_runs"] if run["status"] != "FINISHED"]
    if not finished:
        raise ConfigError(f"{cv_dir}: no fold finished; nothing to score. Fix: run the CV command again.")
    rows, mean, std = fold_metric_table(record)
    plan_rows = read_folds_csv(cv_dir / FOLDS_CSV)
    patients = {row["image"]: row["patient"] for row in plan_rows}
    settings = metric_settings_of(record, n_boot)
    out: dict[str, Any] = {
        "name": record["name"],
        "folds": record["folds"],
        "complete": not not_done,
        "finished_folds": finished,
        "unfinished_folds": not_done,
        "metrics": list(mean),
        "per_fold": rows,
        "mean": mean,
        "std": std,
        "std_note": "sample standard deviation (ddof=1) over the finished folds",
        "oof": None,
        "oof_folds": [],
        "settings": {"metrics": record.get("metrics"), "predict": record.get("predict"), "n_boot": settings.n_boot},
    }
    result = None
    if not_done and not allow_missing:
        out["oof_note"] = (
            f"folds {not_done} not finished: no OOF metrics (re-run the CV command to train them, or "
            "allow_missing=true to score the finished folds' images only)"
        )
        log.warning("%s", out["oof_note"])
    else:
        from xray_exp.yolo.runtime import configure_offline  # lazy: only on this path

        if record.get("ultralytics_dir"):
            configure_offline(Path(record["ultralytics_dir"]))
        pooled, fold_of = pooled_oof(record, finished)
        write_oof_csv(pooled, fold_of, cv_dir / OOF_CSV)
        oof, result = score_oof(pooled, patients, settings)
        expected = {row["image"] for row in plan_rows if row["fold"] in finished}
        if set(fold_of) != expected:
            raise ConfigError(
                f"{cv_dir}: the folds' validation images differ from folds.csv "
                f"({len(set(fold_of) ^ expected)} images): the plan files were changed."
            )
        out.update(
            oof=oof,
            oof_folds=finished,
            oof_images=len(fold_of),
            bootstrap_unit="patients" if record.get("patients_known") else "images (no patients known)",
        )
    (cv_dir / CV_METRICS).write_text(json.dumps(_json_ready(out), indent=2))
    write_cv_report(cv_dir, record, out, result)
    log_cv_to_parent(record, out, cv_dir)
    print(cv_summary_text(out), flush=True)
    return out


def cv_summary_text(out: dict) -> str:
    """The console lines: per-fold val/test map40 and mAP50, mean +- std, OOF with intervals."""
    lines = ["=" * 72, f" cross-validation {out['name']}: {len(out['finished_folds'])}/{out['folds']} folds finished"]
    for row in out["per_fold"]:
        shown = "  ".join(f"{k} {row[k]:.4f}" for k in ("val/map40", "val/mAP50", "test/map40") if k in row)
        lines.append(f"  fold {row['fold']}  {row['status']:<8} {shown}")
    for k in ("val/map40", "val/mAP50", "test/map40"):
        if k in out["mean"]:
            lines.append(f"  {k:<12} mean {out['mean'][k]:.4f}  std {out['std'][k]:.4f}")
    oof = out.get("oof")
    if oof:
        for k in ("map40", "mAP50", "froc_mean", "auroc"):
            low, high = oof.get(f"{k}_ci_low"), oof.get(f"{k}_ci_high")
            ci = f" [{low:.3f}, {high:.3f}]" if low is not None and high is not None else ""
            lines.append(f"  OOF {k:<10} {oof[k]:.4f}{ci}   ({out.get('oof_images')} images)")
    else:
        lines.append(f"  OOF: {out.get('oof_note', 'not computed')}")
    return "\n".join([*lines, "=" * 72])


PARENT_FILES = (FOLDS_CSV, "cv.json", OOF_CSV, CV_METRICS, REPORT, "plots")


def log_cv_to_parent(record: dict, out: dict, cv_dir: Path) -> None:
    """cv/* metrics (oof/<m>, mean/<split>/<m>, std/...) and the CV files as artifacts of the parent run.
    A tracking outage is a warning: the files are in the CV folder."""
    run_id, uri = record.get("parent_run_id"), record.get("tracking_uri")
    if not run_id or not uri:
        return
    metrics = {f"cv/oof/{k}": v for k, v in (out.get("oof") or {}).items()}
    metrics.update({f"cv/mean/{k}": v for k, v in out["mean"].items()})
    metrics.update({f"cv/std/{k}": v for k, v in out["std"].items()})
    try:
        from xray_exp.mlops.client import tracking_client  # lazy: only on this path

        client = tracking_client(uri, timeout_s=10.0)
        for key, value in metrics.items():
            if value is not None and math.isfinite(value):
                client.log_metric(run_id, key, float(value))
        for name in PARENT_FILES:
            path = cv_dir / name
            if path.is_dir():
                client.log_artifacts(run_id, str(path), f"cv/{name}")
            elif path.is_file():
                client.log_artifact(run_id, str(path), "cv")
        client.set_tag(run_id, "cv.complete", str(out["complete"]).lower())
    except Exception as exc:  # noqa: BLE001 - the outage is reported, the local files stand
        log.warning("could not log the CV to MLflow run %s at %s: %s", run_id, uri, exc)
