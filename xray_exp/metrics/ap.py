"""Average precision from matched detections, two interpolations:

- "coco101" (default): mean interpolated precision at the 101 recall points 0, 0.01, ..., 1, as
  pycocotools (and so torchmetrics) compute it;
- "all_point": area under the interpolated precision-recall curve at every recall step (PASCAL VOC
  2010+, the metric the VinBigData challenge describes).

    ap = average_precision(tp, n_gt)                 # tp: bool per detection, by descending score
    recall, precision = precision_recall_curve(tp, n_gt)
"""

from __future__ import annotations

import numpy as np

AP_METHODS = ("coco101", "all_point")
COCO_RECALL_POINTS = np.linspace(0.0, 1.0, 101)


def precision_recall_curve(tp: np.ndarray, n_gt: int) -> tuple[np.ndarray, np.ndarray]:
    """Recall and precision after each detection (sorted by descending score)."""
    tp = np.asarray(tp, dtype=bool)
    tp_cum = np.cumsum(tp, dtype=np.float64)
    fp_cum = np.cumsum(~tp, dtype=np.float64)
    recall = tp_cum / n_gt if n_gt else np.zeros_like(tp_cum)
    precision = tp_cum / np.maximum(tp_cum + fp_cum, 1.0)
    return recall, precision


def precision_envelope(precision: np.ndarray) -> np.ndarray:
    """Interpolated precision: at each point, the best precision at this recall or beyond."""
    return np.maximum.accumulate(precision[::-1])[::-1] if len(precision) else precision


def average_precision(tp: np.ndarray, n_gt: int, method: str = "coco101") -> float:
    """AP of one class; NaN when the class has no ground truth (excluded from means, as in COCO)."""
    if method not in AP_METHODS:
        raise ValueError(f"unknown AP method {method!r}; choose one of {AP_METHODS}")
    if n_gt == 0:
        return float("nan")
    if len(tp) == 0:
        return 0.0
    recall, precision = precision_recall_curve(tp, n_gt)
    envelope = precision_envelope(precision)
    if method == "coco101":
        # first detection reaching each recall point; recall points never reached count as 0
        idx = np.searchsorted(recall, COCO_RECALL_POINTS, side="left")
        reached = idx < len(recall)
        return float(np.where(reached, envelope[np.minimum(idx, len(recall) - 1)], 0.0).mean())
    steps = np.diff(recall, prepend=0.0)  # recall grows only at true positives
    return float(np.sum(steps * envelope))


def weighted_average_precision(tp: np.ndarray, det_image: np.ndarray, gt_per_image: np.ndarray,
                               weights: np.ndarray, method: str = "coco101") -> np.ndarray:
    """AP of one class with images weighted by `weights` (B, N), a bootstrap resample's draw counts:
    the same value as `average_precision` on the dataset with each image repeated that often.

    tp (D,) bool and det_image (D,) per detection, sorted by descending score; gt_per_image (N,).
    Returns (B,) AP, NaN where the weighted class has no ground truth."""
    weights = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    n_gt = weights @ np.asarray(gt_per_image, dtype=np.float64)
    out = np.full(len(weights), np.nan)
    has_gt = n_gt > 0
    out[has_gt & (len(tp) == 0)] = 0.0
    if len(tp) == 0 or not has_gt.any():
        return out
    w = weights[has_gt][:, det_image]
    tp_cum = np.cumsum(np.where(tp, w, 0.0), axis=1)
    fp_cum = np.cumsum(np.where(tp, 0.0, w), axis=1)
    recall = tp_cum / n_gt[has_gt, None]
    precision = tp_cum / np.maximum(tp_cum + fp_cum, 1.0)
    envelope = np.maximum.accumulate(precision[:, ::-1], axis=1)[:, ::-1]
    if method == "coco101":
        last = recall.shape[1] - 1
        ap = np.empty(len(recall))
        for b, (rec, env) in enumerate(zip(recall, envelope, strict=True)):
            idx = np.searchsorted(rec, COCO_RECALL_POINTS, side="left")
            ap[b] = np.where(idx <= last, env[np.minimum(idx, last)], 0.0).mean()
    elif method == "all_point":
        ap = np.sum(np.diff(recall, axis=1, prepend=0.0) * envelope, axis=1)
    else:
        raise ValueError(f"unknown AP method {method!r}; choose one of {AP_METHODS}")
    out[has_gt] = ap
    return out
