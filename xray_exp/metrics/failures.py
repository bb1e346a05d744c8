"""The errors worth looking at: the most confident false positives and the most missed lesions.

    fps = worst_false_positives(preds, gts, num_classes=4, iou_threshold=0.4, k=12)
    fns = worst_false_negatives(preds, gts, num_classes=4, conf=0.25, iou_threshold=0.4, k=12)
    fps[0] == {"image_id": ..., "box": array([x1, y1, x2, y2]), "label": 2, "score": 0.93}

A false positive is a detection that takes no ground-truth box in the greedy matching (ranked by
score). A false negative is a ground-truth box left unmatched by the detections with score >= conf;
ranked by `score`, the best confidence of any same-class detection with IoU >= iou_threshold on it
(0 when none), lowest first, then larger boxes first.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NotRequired, TypedDict

import numpy as np
from numpy.typing import NDArray

from xray_exp.metrics.boxes import box_area, box_iou
from xray_exp.metrics.matching import ClassMatches, match_dataset
from xray_exp.metrics.records import ImageBoxes, Record, pair_records


class Failure(TypedDict):
    """One gallery entry: a false positive (a detection) or a false negative (a ground-truth box)."""

    image_id: str
    box: NDArray[np.float64]  # xyxy pixels
    label: int
    score: float  # FP: the detection's confidence; FN: the best same-class overlapping confidence (0 if none)
    area: NotRequired[float]  # false negatives: the box's area (the tie-break)


def worst_false_positives(
    preds: Sequence[Record], gts: Sequence[Record], num_classes: int, iou_threshold: float = 0.4, k: int = 12
) -> list[Failure]:
    pairs = pair_records(preds, gts)
    return false_positives_from_matches(pairs, match_dataset(pairs, num_classes, [iou_threshold]), k)


def worst_false_negatives(
    preds: Sequence[Record],
    gts: Sequence[Record],
    num_classes: int,
    conf: float = 0.25,
    iou_threshold: float = 0.4,
    k: int = 12,
) -> list[Failure]:
    pairs = pair_records(preds, gts)
    matches = match_dataset(pairs, num_classes, [iou_threshold])
    return false_negatives_from_matches(pairs, matches, conf, iou_threshold, k)


def false_positives_from_matches(
    pairs: list[tuple[ImageBoxes, ImageBoxes]], matches: list[ClassMatches], k: int = 12
) -> list[Failure]:
    """The k highest-scoring unmatched detections (`matches` at one IoU threshold)."""
    found: list[Failure] = []
    for c, m in enumerate(matches):
        for j in np.flatnonzero(~m.tp[0]):
            pred = pairs[m.image_index[j]][0]
            found.append(
                {"image_id": pred.image_id, "box": pred.boxes[m.det_index[j]], "label": c, "score": float(m.scores[j])}
            )
    found.sort(key=lambda f: -f["score"])
    return found[:k]


def false_negatives_from_matches(
    pairs: list[tuple[ImageBoxes, ImageBoxes]],
    matches: list[ClassMatches],
    conf: float,
    iou_threshold: float,
    k: int = 12,
) -> list[Failure]:
    """The k most-missed ground-truth boxes among those no detection with score >= conf matched."""
    matched = [np.zeros(len(gt), dtype=bool) for _, gt in pairs]
    for m in matches:
        kept = m.scores >= conf
        for i, g in zip(m.image_index[kept], m.gt_index[0][kept], strict=True):
            if g >= 0:
                matched[i][g] = True
    found: list[Failure] = []
    for (pred, gt), hit in zip(pairs, matched, strict=True):
        if hit.all():
            continue
        ious = box_iou(gt.boxes, pred.boxes)
        same = gt.labels[:, None] == pred.labels[None, :]
        overlap = np.where(same & (ious >= iou_threshold), pred.scores[None, :], 0.0)
        best = overlap.max(axis=1) if len(pred) else np.zeros(len(gt))
        for g in np.flatnonzero(~hit):
            found.append(
                {
                    "image_id": gt.image_id,
                    "box": gt.boxes[g],
                    "label": int(gt.labels[g]),
                    "score": float(best[g]),
                    "area": float(box_area(gt.boxes[g])[0]),
                }
            )
    found.sort(key=lambda f: (f["score"], -f["area"]))
    return found[:k]
