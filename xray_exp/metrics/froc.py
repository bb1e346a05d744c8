"""FROC: lesion-level sensitivity against the mean number of false positives per image.

A detection is a hit when it takes a ground-truth box of its class with IoU >= `iou_threshold`
(greedy, by descending score; each lesion counts once, further detections on it are false positives).
Sweeping the confidence threshold over all detections of all classes gives the curve; the
sensitivity at a rate f is the best one reached with at most f false positives per image.

    r = froc(preds, gts, iou_threshold=0.4)
    r.sensitivity       # at 0.125, 0.25, 0.5, 1, 2, 4, 8 FP/image
    r.mean              # their mean (the FROC score)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from xray_exp.metrics.matching import ClassMatches, match_dataset
from xray_exp.metrics.records import pair_records

FROC_FP_RATES = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)


@dataclass
class FrocResult:
    fp_rates: np.ndarray  # (K,) false positives per image asked for
    sensitivity: np.ndarray  # (K,) NaN when there is no ground truth
    fppi: np.ndarray  # curve: false positives per image at each operating point, from (0, 0)
    curve_sensitivity: np.ndarray  # curve: sensitivity at each operating point
    thresholds: np.ndarray  # curve: the lowest score kept at each operating point (inf at the origin)
    n_lesions: int
    n_images: int

    @property
    def mean(self) -> float:
        return float(np.mean(self.sensitivity))


def num_classes_of(preds: Sequence[Mapping], gts: Sequence[Mapping]) -> int:
    """1 + the largest class id in the records (0 when there are no boxes)."""
    labels = [np.asarray(r.get("labels", []), dtype=np.int64).reshape(-1) for r in [*preds, *gts]]
    return max((int(x.max()) for x in labels if x.size), default=-1) + 1


def froc(preds: Sequence[Mapping], gts: Sequence[Mapping], iou_threshold: float = 0.4,
         fp_rates=FROC_FP_RATES, num_classes: int | None = None) -> FrocResult:
    pairs = pair_records(preds, gts)
    num_classes = num_classes_of(preds, gts) if num_classes is None else num_classes
    return froc_from_matches(match_dataset(pairs, num_classes, [iou_threshold]), len(pairs), fp_rates)


def froc_from_matches(matches: list[ClassMatches], n_images: int, fp_rates=FROC_FP_RATES) -> FrocResult:
    """FROC from single-threshold matches of every class."""
    scores = np.concatenate([np.zeros(0), *(m.scores for m in matches)])
    hits = np.concatenate([np.zeros(0, dtype=bool), *(m.tp[0] for m in matches)])
    n_lesions = sum(m.n_gt for m in matches)
    order = np.argsort(-scores, kind="mergesort")
    scores, hits = scores[order], hits[order]
    # one operating point per distinct score: tied detections enter together
    last_of_tie = np.r_[scores[1:] != scores[:-1], True] if len(scores) else np.zeros(0, dtype=bool)
    tp = np.r_[0, np.cumsum(hits)[last_of_tie]]
    fp = np.r_[0, np.cumsum(~hits)[last_of_tie]]
    fppi = fp / max(n_images, 1)
    rates = np.asarray(fp_rates, dtype=np.float64)
    if n_lesions:
        sens = tp / n_lesions
        at_rate = np.array([sens[fppi <= f].max() for f in rates])
    else:
        sens, at_rate = np.full(len(tp), np.nan), np.full(len(rates), np.nan)
    return FrocResult(fp_rates=rates, sensitivity=at_rate, fppi=fppi, curve_sensitivity=sens,
                      thresholds=np.r_[np.inf, scores[last_of_tie]], n_lesions=n_lesions, n_images=n_images)
