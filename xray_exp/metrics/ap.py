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
from numpy.typing import ArrayLike, NDArray

AP_METHODS = ("coco101", "all_point")
COCO_RECALL_POINTS = np.linspace(0.0, 1.0, 101)


def precision_recall_curve(tp: ArrayLike, n_gt: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Recall and precision after each detection (sorted by descending score)."""
    hit = np.asarray(tp, dtype=bool)
    tp_cum = np.cumsum(hit, dtype=np.float64)
    fp_cum = np.cumsum(~hit, dtype=np.float64)
    recall = tp_cum / n_gt if n_gt else np.zeros_like(tp_cum)
    precision = tp_cum / np.maximum(tp_cum + fp_cum, 1.0)
    return recall, precision


def precision_envelope(precision: NDArray[np.float64]) -> NDArray[np.float64]:
    """Interpolated precision: at each point, the best precision at this recall or beyond."""
    return np.maximum.accumulate(precision[::-1])[::-1] if len(precision) else precision


def average_precision(tp: ArrayLike, n_gt: int, method: str = "coco101") -> float:
    """AP of one class; NaN when the class has no ground truth (excluded from means, as in COCO)."""
    if method not in AP_METHODS:
        raise ValueError(f"unknown AP method {method!r}; choose one of {AP_METHODS}")
    if n_gt == 0:
        return float("nan")
    if np.size(tp) == 0:
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


def interpolated_ap_rows(
    recall: NDArray[np.float64], precision: NDArray[np.float64], method: str
) -> NDArray[np.float64]:
    """(R,) AP of R precision-recall curves (R, D) (recall non-decreasing along each row), computed
    exactly as `average_precision` does for one."""
    envelope: NDArray[np.float64] = np.maximum.accumulate(precision[:, ::-1], axis=1)[:, ::-1]
    if method == "all_point":
        area: NDArray[np.float64] = np.sum(np.diff(recall, axis=1, prepend=0.0) * envelope, axis=1)
        return area
    if method != "coco101":
        raise ValueError(f"unknown AP method {method!r}; choose one of {AP_METHODS}")
    # covered[j]: recall points <= recall[j]; the first detection reaching point k is the first j with
    # covered[j] > k. Integer keys offset per row make that one sorted search over all rows.
    rows, n = recall.shape
    points = len(COCO_RECALL_POINTS)
    covered = np.searchsorted(COCO_RECALL_POINTS, recall, side="right")
    offset = np.arange(rows)[:, None] * (points + 1)
    first = np.searchsorted((covered + offset).ravel(), (np.arange(points)[None, :] + offset).ravel(), side="right")
    first = first.reshape(rows, points) - np.arange(rows)[:, None] * n
    reached = first < n
    values = np.take_along_axis(envelope, np.minimum(first, n - 1), axis=1)
    ap: NDArray[np.float64] = np.where(reached, values, 0.0).mean(axis=1)
    return ap


def weighted_average_precision(
    tp: ArrayLike, det_image: NDArray[np.intp], gt_per_image: ArrayLike, weights: ArrayLike, method: str = "coco101"
) -> NDArray[np.float64]:
    """AP of one class with images weighted by `weights` (B, N), a bootstrap resample's draw counts:
    the same value as `average_precision` on the dataset with each image repeated that often.

    tp (D,) bool, or (T, D) for T IoU thresholds, and det_image (D,) per detection, sorted by descending
    score; gt_per_image (N,). Returns (B,) AP, or (B, T); NaN where the weighted class has no ground
    truth."""
    draws = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    hit = np.asarray(tp, dtype=bool)
    tp2 = np.atleast_2d(hit)
    n_gt = draws @ np.asarray(gt_per_image, dtype=np.float64)
    out = np.full((len(draws), len(tp2)), np.nan)
    has_gt = n_gt > 0
    if tp2.shape[1] == 0 or not has_gt.any():
        out[has_gt] = 0.0
        return out if hit.ndim == 2 else out[:, 0]
    w = draws[has_gt][:, det_image]
    seen = np.maximum(np.cumsum(w, axis=1), 1.0)  # weighted detections so far (draw counts: exact integers)
    # Only true positives matter: recall rises only there, a false positive's precision is below the
    # preceding hit's (so never the envelope), and every recall point is first reached at a hit.
    for t, row in enumerate(tp2):
        hits = np.flatnonzero(row)
        if not len(hits):
            out[has_gt, t] = 0.0
            continue
        tp_cum = np.cumsum(w[:, hits], axis=1)
        out[has_gt, t] = interpolated_ap_rows(tp_cum / n_gt[has_gt, None], tp_cum / seen[:, hits], method)
    return out if hit.ndim == 2 else out[:, 0]
