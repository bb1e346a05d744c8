"""Matching of detections to ground truth, per class and image, two rules:

- "coco" (pycocotools): detections in descending score order; each takes the *unmatched*
  ground-truth box of its class with the highest IoU, if that IoU >= the threshold.
- "voc" (PASCAL VOC devkit, the VinBigData metric): each detection, in descending score order, looks at
  the ground-truth box of its class with the highest IoU, taken or not; it is a hit when that IoU is
  strictly greater than the threshold and the box is still free, else a false positive.

Under both rules a ground-truth box is matched at most once, so a second detection on the same lesion
is a false positive.

    matches = match_dataset(pairs, num_classes=4, iou_thresholds=[0.4, 0.5])
    matches[c].tp[t]    # bool per detection of class c, all images, sorted by descending score
    voc = match_dataset(pairs, num_classes=4, iou_thresholds=[0.4], rule="voc")
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from xray_exp.metrics.boxes import box_iou
from xray_exp.metrics.records import ImageBoxes, check_labels

# pycocotools caps the threshold just below 1 so that IoU == 1.0 always matches at threshold 1.0.
_MAX_THRESHOLD = 1 - 1e-10


@dataclass
class ClassMatches:
    """All detections of one class over the dataset, sorted by descending score."""

    scores: NDArray[np.float64]  # (D,)
    gt_index: NDArray[np.int64]  # (T, D) index of the matched box in its image's ground truth, -1 = false positive
    image_index: NDArray[np.int64]  # (D,) position of the image in the pairs list
    det_index: NDArray[np.int64]  # (D,) index of the detection in its image's prediction record
    n_gt: int  # ground-truth boxes of this class

    @property
    def tp(self) -> NDArray[np.bool_]:
        """(T, D) True where the detection matched a ground-truth box."""
        return self.gt_index >= 0

    def row(self, t: int) -> ClassMatches:
        """The same detections matched at one threshold only (T = 1)."""
        return ClassMatches(self.scores, self.gt_index[t : t + 1], self.image_index, self.det_index, self.n_gt)


def threshold_index(thresholds: Sequence[float] | NDArray[np.float64], iou: float) -> int:
    hits = np.flatnonzero(np.isclose(np.asarray(thresholds, dtype=np.float64), iou))
    if not hits.size:
        raise KeyError(f"no matching at IoU {iou}; thresholds: {list(thresholds)}")
    return int(hits[0])


def exceeds_max_dets(pairs: list[tuple[ImageBoxes, ImageBoxes]], max_dets: int | None) -> bool:
    """True if some image has more than `max_dets` detections of one class (truncation would bite)."""
    if max_dets is None:
        return False
    return any(len(p) > max_dets and np.bincount(p.labels).max() > max_dets for p, _ in pairs)


def greedy_match(ious: NDArray[np.float64], thresholds: ArrayLike) -> NDArray[np.int64]:
    """Greedy matching for detections already sorted by descending score.

    ious (D, G), thresholds (T,) -> (T, D) index of the matched ground-truth box or -1.
    """
    capped = np.minimum(np.asarray(thresholds, dtype=np.float64), _MAX_THRESHOLD)
    n_det, n_gt = ious.shape
    out = np.full((len(capped), n_det), -1, dtype=np.int64)
    if n_det == 0 or n_gt == 0:
        return out
    taken = np.zeros((len(capped), n_gt), dtype=bool)
    rows = np.arange(len(capped))
    lowest = capped.min()
    for d in range(n_det):
        if ious[d].max() < lowest:
            continue
        candidates = np.where(taken, -1.0, ious[d][None, :])
        best = candidates.argmax(axis=1)
        ok = candidates[rows, best] >= capped
        out[ok, d] = best[ok]
        taken[rows[ok], best[ok]] = True
    return out


def voc_match(ious: NDArray[np.float64], threshold: float) -> NDArray[np.int64]:
    """VOC devkit matching for detections already sorted by descending score.

    ious (D, G) -> (1, D) index of the matched ground-truth box or -1: each detection's best-IoU box
    (taken or not) is a hit when IoU > threshold and the box is still free.
    """
    n_det, n_gt = ious.shape
    out = np.full((1, n_det), -1, dtype=np.int64)
    if n_det == 0 or n_gt == 0:
        return out
    best = ious.argmax(axis=1)
    taken = np.zeros(n_gt, dtype=bool)
    for d in np.flatnonzero(ious[np.arange(n_det), best] > threshold):
        if not taken[best[d]]:
            taken[best[d]] = True
            out[0, d] = best[d]
    return out


MATCH_RULES = ("coco", "voc")


def match_dataset(
    pairs: list[tuple[ImageBoxes, ImageBoxes]],
    num_classes: int,
    iou_thresholds: ArrayLike,
    max_dets: int | None = None,
    rule: str = "coco",
) -> list[ClassMatches]:
    """Match every image and class; `max_dets` keeps the top-scoring detections per image and class
    (COCO evaluates AP with 100). `rule="voc"` takes one threshold."""
    check_labels(pairs, num_classes)
    thresholds = np.atleast_1d(np.asarray(iou_thresholds, dtype=np.float64))
    if rule not in MATCH_RULES:
        raise ValueError(f"unknown matching rule {rule!r}; choose one of {MATCH_RULES}")
    if rule == "voc" and len(thresholds) != 1:
        raise ValueError("VOC matching takes exactly one IoU threshold")
    # per class: (scores, gt_index, image_index, det_index) of each image's detections
    parts: list[list[tuple[NDArray[np.float64], NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]]] = [
        [] for _ in range(num_classes)
    ]
    n_gt = np.zeros(num_classes, dtype=np.int64)
    for i, (pred, gt) in enumerate(pairs):
        ious = box_iou(pred.boxes, gt.boxes)
        for c in np.union1d(pred.labels, gt.labels):
            g = np.flatnonzero(gt.labels == c)
            n_gt[c] += len(g)
            d = np.flatnonzero(pred.labels == c)
            d = d[np.argsort(-pred.scores[d], kind="mergesort")][:max_dets]
            if len(d) == 0:
                continue
            sub = ious[np.ix_(d, g)]
            local = voc_match(sub, thresholds[0]) if rule == "voc" else greedy_match(sub, thresholds)
            gt_index = np.where(local >= 0, g[np.maximum(local, 0)] if len(g) else -1, -1)
            parts[c].append((pred.scores[d], gt_index, np.full(len(d), i), d))
    matches = []
    for c in range(num_classes):
        if not parts[c]:
            empty = np.zeros(0, dtype=np.int64)
            matches.append(
                ClassMatches(np.zeros(0), np.zeros((len(thresholds), 0), np.int64), empty, empty, int(n_gt[c]))
            )
            continue
        scores, gt_index, image_index, det_index = (np.concatenate(x, axis=-1) for x in zip(*parts[c], strict=True))
        order = np.argsort(-scores, kind="mergesort")
        matches.append(
            ClassMatches(scores[order], gt_index[:, order], image_index[order], det_index[order], int(n_gt[c]))
        )
    return matches
