"""Confusion matrix over classes + background at a confidence and IoU threshold.

Detections with score >= conf are paired with ground-truth boxes of any class, highest IoU first,
one-to-one, if IoU >= iou_threshold. A pair counts under (true class, predicted class); an unpaired
detection under (background, predicted class); an unpaired ground-truth box under (true class,
background).

    cm = confusion_matrix(preds, gts, num_classes=4, conf=0.25, iou_threshold=0.4)
    cm[true, predicted]    # (C + 1, C + 1), index C = background
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from xray_exp.metrics.boxes import box_iou
from xray_exp.metrics.records import ImageBoxes, Record, check_labels, pair_records


def confusion_matrix(
    preds: Sequence[Record], gts: Sequence[Record], num_classes: int, conf: float = 0.25, iou_threshold: float = 0.4
) -> NDArray[np.int64]:
    return confusion_from_pairs(pair_records(preds, gts), num_classes, conf, iou_threshold)


def confusion_from_pairs(
    pairs: list[tuple[ImageBoxes, ImageBoxes]], num_classes: int, conf: float, iou_threshold: float
) -> NDArray[np.int64]:
    check_labels(pairs, num_classes)
    background = num_classes
    cm = np.zeros((num_classes + 1, num_classes + 1), dtype=np.int64)
    for pred, gt in pairs:
        keep = pred.scores >= conf
        det_labels = pred.labels[keep]
        ious = box_iou(pred.boxes[keep], gt.boxes)
        det_used = np.zeros(len(det_labels), dtype=bool)
        gt_used = np.zeros(len(gt), dtype=bool)
        d_idx, g_idx = np.nonzero(ious >= iou_threshold)
        for k in np.argsort(-ious[d_idx, g_idx], kind="mergesort"):
            d, g = d_idx[k], g_idx[k]
            if not det_used[d] and not gt_used[g]:
                det_used[d] = gt_used[g] = True
                cm[gt.labels[g], det_labels[d]] += 1
        np.add.at(cm, (background, det_labels[~det_used]), 1)  # type: ignore[arg-type]  # numpy's stub: no tuple index
        np.add.at(cm, (gt.labels[~gt_used], background), 1)  # type: ignore[arg-type]  # (valid, see ufunc.at)
    return cm
