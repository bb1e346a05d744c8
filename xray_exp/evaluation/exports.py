"""CSV files of an evaluation: every detection, every image, and the VinBigData submission.

    write_submission_csv(preds, image_ids, "submission.csv")   # image_id,PredictionString
    write_predictions_csv(preds, names, "predictions.csv")     # one row per detection
    write_images_csv(gts, preds, image_level, "images.csv")    # one row per image

A VinBigData prediction string lists `class conf x1 y1 x2 y2` per detection, in pixels of the evaluated
image (rescale them if the images were downscaled from the original DICOMs); an image without
detections gets `14 1 0 0 1 1` ("No finding", class 14 in VinDr-CXR).
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from xray_exp.metrics.image_level import ImageLevelResult

NO_FINDING_CLASS = 14


def _compact_decimal(value: float, decimals: int) -> str:
    """Compact decimal: 12.0 -> '12', 0.50 -> '0.5'."""
    text = f"{value:.{decimals}f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def prediction_string(boxes, scores, labels, no_finding_class: int = NO_FINDING_CLASS) -> str:
    """Detections sorted by descending score -> 'cls conf x1 y1 x2 y2 ...'; none -> 'No finding'."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if len(boxes) == 0:
        return f"{no_finding_class} 1 0 0 1 1"
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="mergesort")
    return " ".join(
        f"{int(labels[i])} {_compact_decimal(scores[i], 4)} " + " ".join(_compact_decimal(v, 1) for v in boxes[i])
        for i in order
    )


def write_submission_csv(
    preds: Sequence[Mapping], image_ids: Sequence[str], path: str | Path, no_finding_class: int = NO_FINDING_CLASS
) -> Path:
    """One row per image of `image_ids` (images without a prediction record count as no detections)."""
    by_id = {str(p["image_id"]): p for p in preds}
    path = Path(path)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["image_id", "PredictionString"])
        for image_id in image_ids:
            p = by_id.get(image_id, {})
            writer.writerow(
                [
                    image_id,
                    prediction_string(p.get("boxes", []), p.get("scores", []), p.get("labels", []), no_finding_class),
                ]
            )
    return path


def write_predictions_csv(preds: Sequence[Mapping], names: Sequence[str], path: str | Path) -> Path:
    path = Path(path)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["image_id", "class_id", "class_name", "score", "x1", "y1", "x2", "y2"])
        for p in preds:
            for box, score, label in zip(np.asarray(p["boxes"]).reshape(-1, 4), p["scores"], p["labels"], strict=True):
                writer.writerow(
                    [p["image_id"], int(label), names[int(label)], f"{score:.6f}", *(f"{v:.2f}" for v in box)]
                )
    return path


def write_images_csv(
    gts: Sequence[Mapping], preds: Sequence[Mapping], image_level: ImageLevelResult, path: str | Path
) -> Path:
    """Per image: ground-truth and predicted box counts, image score, truth and the report at threshold."""
    n_pred = {str(p["image_id"]): len(p["scores"]) for p in preds}
    path = Path(path)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(
            [
                "image_id",
                "path",
                "width",
                "height",
                "gt_boxes",
                "predictions",
                "image_score",
                "abnormal",
                "reported_no_findings",
            ]
        )
        for i, g in enumerate(gts):
            if str(g["image_id"]) != image_level.image_ids[i]:
                raise ValueError("image_level was computed on other records (image order differs)")
            writer.writerow(
                [
                    g["image_id"],
                    g.get("path", ""),
                    g.get("width", ""),
                    g.get("height", ""),
                    len(g["labels"]),
                    n_pred.get(str(g["image_id"]), 0),
                    f"{image_level.scores[i]:.6f}",
                    int(image_level.abnormal[i]),
                    int(image_level.reported_no_findings[i]),
                ]
            )
    return path
