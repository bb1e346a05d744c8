"""The evaluation report: report.md with linked PNG figures, metrics.json and the CSV files.

    write_evaluation_report(result, preds, gts, flat, out_dir, settings={"weights": "best.pt", "split": "test"})
    print(metrics_table(flat))

out_dir/
    report.md            metric table, per-class table, FROC and image-level tables, figures, galleries
    metrics.json         the flat metrics dict (what evaluate_split returns)
    predictions.csv      one row per detection; images.csv one row per image
    submission.csv       VinBigData format (image_id,PredictionString)
    plots/               pr_curves.png froc.png roc.png confusion_matrix.png
    galleries/           false_positives.png false_negatives.png
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from xray_exp.evaluation.exports import write_images_csv, write_predictions_csv, write_submission_csv
from xray_exp.evaluation.gallery import render_gallery
from xray_exp.evaluation.plots import plot_confusion, plot_froc, plot_pr_curves, plot_roc
from xray_exp.metrics.image_level import undefined_note
from xray_exp.metrics.summary import COUNT_METRICS, EvaluationResult


def _metric_cell(value) -> str:
    if isinstance(value, float | np.floating):
        return "n/a" if not math.isfinite(value) else f"{value:.4f}"
    return str(value)


def _table(header: Sequence[str], rows: Sequence[Sequence]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_metric_cell(v) for v in row) + " |" for row in rows]
    return lines + [""]


def metrics_table(flat: Mapping[str, float]) -> str:
    """The flat metrics as an aligned two-column text table (for the console)."""
    width = max((len(k) for k in flat), default=6)
    lines = [f"{'metric':<{width}}  value", f"{'-' * width}  ------"]
    for key, value in flat.items():
        shown = f"{value:.0f}" if key.rpartition("/")[2] in COUNT_METRICS else _metric_cell(float(value))
        lines.append(f"{key:<{width}}  {shown}")
    return "\n".join(lines)


def _summary_rows(result: EvaluationResult, flat: Mapping[str, float]) -> list[list]:
    """metric | value | 95% CI (headline metrics with a bootstrap interval in `flat`)."""
    det, fr, img = result.detection, result.froc, result.image_level
    iou = f"{det.match_iou:g}"

    def ci(name: str) -> str:
        low = next((v for k, v in flat.items() if k.endswith(f"/{name}_ci_low")), None)
        high = next((v for k, v in flat.items() if k.endswith(f"/{name}_ci_high")), None)
        return "" if low is None or high is None else f"[{_metric_cell(float(low))}, {_metric_cell(float(high))}]"

    rows = [
        (f"mAP@0.4 ({det.method})", det.map40, "map40"),
        ("mAP50", det.map_at(0.5), "mAP50"),
        ("mAP50-95", det.map50_95, "mAP50-95"),
        ("FROC mean sensitivity (1/8..8 FP/image)", fr.mean, "froc_mean"),
        (f"lesion precision (conf >= {det.conf:g}, IoU {iou})", det.micro_precision, ""),
        (f"lesion recall (conf >= {det.conf:g}, IoU {iou})", det.micro_recall, ""),
        ("image-level AUROC (any abnormality)", img.auroc, "auroc"),
        (f"image-level sensitivity (score >= {img.threshold:g})", img.sensitivity, "sensitivity"),
        (f"image-level specificity (score < {img.threshold:g})", img.specificity, "specificity"),
        ("images (normal / abnormal)", f"{len(img.image_ids)} ({img.n_normal} / {img.n_abnormal})", ""),
        ("ground-truth boxes", int(det.instances.sum()), ""),
    ]
    out = []
    for label, value, name in rows:  # AUROC / specificity of a split without normal images: said, not NaN
        note = undefined_note(name, img.n_normal, img.n_abnormal) if name else None
        out.append([label, note, ""] if note else [label, value, ci(name) if name else ""])
    return out


def _class_rows(result: EvaluationResult) -> list[list]:
    det = result.detection
    rows = []
    for c, name in enumerate(result.names):
        rows.append(
            [
                name,
                int(det.images_with_class[c]),
                int(det.instances[c]),
                det.ap40[c],
                det.ap_at(0.5)[c],
                det.ap50_95[c],
                det.precision[c],
                det.recall[c],
            ]
        )
    return rows


def _failure_rows(items: Sequence[Mapping], names: Sequence[str]) -> list[list]:
    return [
        [item["image_id"], names[item["label"]], item["score"], " ".join(f"{v:.0f}" for v in item["box"])]
        for item in items
    ]


def write_evaluation_report(
    result: EvaluationResult,
    preds: Sequence[Mapping],
    gts: Sequence[Mapping],
    flat: Mapping[str, float],
    out_dir: str | Path,
    settings: Mapping | None = None,
    definitions: Mapping[str, str] | None = None,
) -> Path:
    """Write everything under out_dir; returns the path of report.md. `gts` must carry image paths
    (for the galleries) as predict_split's do."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    names = result.names
    det, fr, img = result.detection, result.froc, result.image_level
    (out / "metrics.json").write_text(json.dumps(dict(flat), indent=2) + "\n")
    write_predictions_csv(preds, names, out / "predictions.csv")
    write_images_csv(gts, preds, img, out / "images.csv")
    write_submission_csv(preds, img.image_ids, out / "submission.csv")
    plot_pr_curves(det, names, out / "plots" / "pr_curves.png")
    plot_froc(fr, out / "plots" / "froc.png")
    plot_roc(img, out / "plots" / "roc.png")
    plot_confusion(result.confusion, names, out / "plots" / "confusion_matrix.png")
    fp_png = render_gallery(result.false_positives, gts, names, out / "galleries" / "false_positives.png", "FP")
    fn_png = render_gallery(result.false_negatives, gts, names, out / "galleries" / "false_negatives.png", "FN")

    iou = f"{det.match_iou:g}"
    lines = [f"# Evaluation report: {settings.get('split', '') if settings else ''} split", ""]
    if settings:
        lines += _table(["setting", "value"], [[k, v] for k, v in settings.items()])
    lines += [
        f"mAP@0.4: {det.method}; mAP50, mAP50-95: COCO matching, 101 recall points. Operating point: "
        f"confidence >= {det.conf:g}, "
        f"IoU >= {iou} with a box of the same class.",
        "",
        "## Summary",
        "",
    ]
    lines += _table(["metric", "value", "95% CI"], _summary_rows(result, flat))
    lines += ["## Per class", ""]
    lines += _table(
        ["class", "images", "instances", "AP@0.4", "AP50", "AP50-95", "precision", "recall"], _class_rows(result)
    )
    lines += [f"## FROC (IoU {iou}, each lesion counted once)", ""]
    lines += _table(
        ["FP per image", *(f"{r:g}" for r in fr.fp_rates), "mean"], [["sensitivity", *fr.sensitivity, fr.mean]]
    )
    lines += [
        "![FROC curve](plots/froc.png)",
        "",
        '## Image level: "any abnormality"',
        "",
        "Image score = highest detection confidence (0 without detections); an image without ground-truth "
        f'boxes is normal; below {img.threshold:g} the image is reported "No findings".',
        "",
        "![ROC curve](plots/roc.png)",
        "",
        "## Precision-recall curves",
        "",
        "![PR curves](plots/pr_curves.png)",
        "",
        "## Confusion matrix",
        "",
        f"Detections with confidence >= {det.conf:g} paired with ground truth of any class at IoU >= {iou}; "
        "rows: true class, columns: predicted class.",
        "",
        "![Confusion matrix](plots/confusion_matrix.png)",
        "",
        "## Most confident false positives",
        "",
    ]
    if fp_png:
        lines += ["![false positives](galleries/false_positives.png)", ""]
        lines += _table(["image", "class", "score", "box x1 y1 x2 y2"], _failure_rows(result.false_positives, names))
    else:
        lines += ["None.", ""]
    lines += [f"## Most missed lesions (no detection >= {det.conf:g}; score = best same-class detection on it)", ""]
    if fn_png:
        lines += ["![false negatives](galleries/false_negatives.png)", ""]
        lines += _table(["image", "class", "score", "box x1 y1 x2 y2"], _failure_rows(result.false_negatives, names))
    else:
        lines += ["None.", ""]
    if definitions:
        lines += ["## Definitions", "", *[f"- **{k}**: {v}" for k, v in definitions.items()], ""]
    lines += [
        "## Files",
        "",
        "- `metrics.json`: the metrics above under their tracking names",
        "- `predictions.csv`: every detection; `images.csv`: every image with its score and report",
        "- `submission.csv`: VinBigData format (`image_id,PredictionString`; `14 1 0 0 1 1` = no finding)",
        "",
    ]
    report = out / "report.md"
    report.write_text("\n".join(lines))
    return report
