"""What a finished run leaves behind: summary.json's content, the artifacts it logs, the one-screen summary.

summary = run_summary(run, result, metrics, seconds)     # -> <run>/summary.json (runs.lifecycle.close_run)
log_artifacts(tracker, run_dir, result.run_dir, info)     # weights, configs, dataset, samples, reports
print_summary(summary)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from xray_exp.metrics.image_level import undefined_note


def run_summary(cfg, run_dir: Path, result, metrics: dict[str, float], info, seconds: float) -> dict[str, Any]:
    """summary.json of a run (before the MLflow outcome is added): metrics, objective, weights, settings."""
    from xray_exp.runs.post_training import evaluation_settings  # lazy: heavy (omegaconf, yaml)

    parity = result.run_dir / "onnx_parity.json"
    return {
        "run_dir": str(run_dir),
        "model": cfg.model.name,
        "mode": str(cfg.mode),
        "epochs_run": result.epochs_run,
        "best_weights": str(result.best),
        "onnx": str(result.best.with_suffix(".onnx")) if result.best.with_suffix(".onnx").exists() else None,
        "objective": {"metric": cfg.objective.metric, "value": metrics.get(cfg.objective.metric)},
        "metrics": metrics,
        "evaluation": evaluation_settings(cfg),
        "onnx_parity": json.loads(parity.read_text()) if parity.exists() else None,
        "dataset": {"data_yaml": str(info.data_yaml), "fingerprint": info.fingerprint},
        "tracking_uri": cfg.tracking.tracking_uri if cfg.tracking.enabled else None,
        "wall_time_s": round(seconds, 1),
    }


def log_artifacts(tracker, run_dir: Path, train_dir: Path, info) -> None:
    """Configs and dataset of the run (`run_dir`); weights, samples, Ultralytics plots, results.csv and
    reports of the training that produced the model (`train_dir`: the run folder, or a Tune trial's)."""
    for sub in (".hydra", ".hydra-resume"):
        tracker.log_artifact(run_dir / sub, f"config/{sub.lstrip('.')}")
    tracker.log_artifact(run_dir / "config.resolved.yaml", "config")
    tracker.log_artifact(info.data_yaml, "dataset")
    tracker.log_artifact(run_dir / "dataset.json", "dataset")
    tracker.log_artifact(train_dir / "weights" / "best.pt", "weights")
    tracker.log_artifact(train_dir / "weights" / "best.onnx", "weights")
    tracker.log_artifact(train_dir / "samples", "samples")
    tracker.log_artifact(train_dir / "results.csv", "ultralytics")
    tracker.log_artifact(train_dir / "onnx_parity.json", "onnx")
    for plot in sorted(train_dir.glob("*.png")) + sorted(train_dir.glob("*.jpg")):
        tracker.log_artifact(plot, "ultralytics/plots")
    for report in sorted(train_dir.glob("report-*")):
        tracker.log_artifact(report, f"reports/{report.name}")


def metric_lines(m: dict[str, float], split: str) -> list[str]:
    """' test  mAP50 0.6410 [0.580, 0.700]  ...' and the image-level line (95% CIs where computed)."""

    def shown(name: str, label: str) -> str:
        value = m.get(f"{split}/{name}", float("nan"))
        low, high = m.get(f"{split}/{name}_ci_low"), m.get(f"{split}/{name}_ci_high")
        ci = f" [{low:.3f}, {high:.3f}]" if low is not None and high is not None else ""
        return f"{label} {value:.4f}{ci}"

    def image_shown(name: str, label: str) -> str:  # AUROC/spec without normal images: said, not NaN

        images, normal = m.get(f"{split}/images"), m.get(f"{split}/normal_images")
        note = None if images is None or normal is None else undefined_note(name, int(normal), int(images - normal))
        return f"{label} {note}" if note else shown(name, label)

    detection = (("mAP50", "mAP50"), ("mAP50-95", "mAP50-95"), ("map40", "mAP@0.4"), ("froc_mean", "FROC"))
    image = (("auroc", "AUROC"), ("sensitivity", "sens"), ("specificity", "spec"))
    head = [f" {split:<5} " + "  ".join(shown(n, label) for n, label in detection)] if f"{split}/mAP50" in m else []
    calibration = f"  {shown('brier', 'Brier')}" if f"{split}/brier" in m else ""
    return [
        *head,
        f" {split if not head else '':<5} " + "  ".join(image_shown(n, label) for n, label in image) + calibration,
    ]


def print_summary(summary: dict[str, Any]) -> None:
    """One screen: the metrics that matter and where everything is."""
    m = summary["metrics"]
    parity = summary.get("onnx_parity") or {}
    lines = [
        "",
        "=" * 72,
        f" xray_exp run: {Path(summary['run_dir']).name}   ({summary['wall_time_s']} s, "
        f"{summary['epochs_run']} epochs)",
        "-" * 72,
        *[
            line
            for split in ("test", "val")
            if f"{split}/mAP50" in m or f"{split}/auroc" in m
            for line in metric_lines(m, split)
        ],
        f" Ultralytics' validator (val, best.pt): top-1 accuracy {m['ultralytics/val/accuracy_top1']:.4f}"
        if "ultralytics/val/accuracy_top1" in m
        else f" Ultralytics' validator (val, best.pt): mAP50 {m.get('ultralytics/val/mAP50', float('nan')):.4f}   "
        f"mAP50-95 {m.get('ultralytics/val/mAP50-95', float('nan')):.4f}",
        f" objective {summary['objective']['metric']} = {summary['objective']['value']}",
    ]
    if parity and "max_abs_diff_prob_export" in parity:  # a classifier (task=classify)
        lines.append(
            f" ONNX parity: max |P(abnormal)| diff {parity['max_abs_diff_prob_export']:.2e} (export), "
            f"{parity['max_abs_diff_prob_pipeline']:.2e} (torch-free pipeline) "
            f"-> {'PASS' if parity['passed'] else 'FAIL'}"
        )
    elif parity:
        lines.append(
            f" ONNX parity: max |box| diff {parity['max_abs_diff_box_px']:.2e} px, max |score| diff "
            f"{parity['max_abs_diff_score']:.2e}, detections agree {parity['detection_agreement']:.1%} "
            f"(of {parity['detections_compared']}) "
            f"-> {'PASS' if parity['passed'] else 'FAIL'}"
        )
    if summary.get("mlflow_run_id"):
        lines.append(f" MLflow run {summary['mlflow_run_id']} at {summary['tracking_uri']}")
    reg = summary.get("registration") or {}
    if reg:
        from xray_exp.mlops.registry import describe_decision  # lazy: only on this path

        lines.append(f" registry: {describe_decision(reg)}")
    lines += [
        f" run folder  {summary['run_dir']}",
        f" weights     {summary['best_weights']}",
        f" onnx        {summary['onnx']}",
        "=" * 72,
    ]
    print("\n".join(lines), flush=True)
    print(f"RUN_DIR={summary['run_dir']}", flush=True)
