"""FROC: lesion-level sensitivity against the mean number of false positives per image, by the
convention of the LUNA16 and CAMELYON16 evaluations.

A detection *hits* a lesion (ground-truth box of its class) when IoU >= `iou_threshold` (`hit="iou"`)
or when the detection's centre lies inside the box (`hit="center"`). A lesion is found at a
confidence threshold when any detection that hits it scores at or above the threshold (its best
hit's score). A detection that hits no lesion is a false positive; further detections on an
already-found lesion are neither hits nor false positives. Every image counts in the FP-per-image
denominator, normal images included. Sweeping the threshold over all scores gives the curve; tied
scores enter together. The sensitivity at a rate f is the best one reached with at most f false
positives per image (an operating point a threshold can realise; LUNA16's script interpolates
linearly between operating points instead).

    r = froc(preds, gts, iou_threshold=0.4, hit="iou")
    r.sensitivity       # at 0.125, 0.25, 0.5, 1, 2, 4, 8 FP/image
    r.mean              # their mean (the FROC score)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from xray_exp.metrics.boxes import box_iou
from xray_exp.metrics.records import ImageBoxes, Record, check_labels, pair_records

FROC_FP_RATES = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
FROC_HITS = ("iou", "center")


@dataclass
class FrocResult:
    fp_rates: NDArray[np.float64]  # (K,) false positives per image asked for
    sensitivity: NDArray[np.float64]  # (K,) NaN when there is no ground truth
    fppi: NDArray[np.float64]  # curve: false positives per image at each operating point, from (0, 0)
    curve_sensitivity: NDArray[np.float64]  # curve: sensitivity at each operating point
    thresholds: NDArray[np.float64]  # curve: the lowest score kept at each operating point (inf at the origin)
    n_lesions: int
    n_images: int
    hit: str = "iou"

    @property
    def mean(self) -> float:
        return float(np.mean(self.sensitivity))


@dataclass
class FrocEvents:
    """Per-lesion best hit score (-inf: never hit) and false-positive detections, with their images."""

    lesion_score: NDArray[np.float64]  # (L,)
    lesion_image: NDArray[np.int64]  # (L,)
    fp_score: NDArray[np.float64]  # (F,)
    fp_image: NDArray[np.int64]  # (F,)
    n_images: int


def num_classes_of(preds: Sequence[Record], gts: Sequence[Record]) -> int:
    """1 + the largest class id in the records (0 when there are no boxes)."""
    labels = [np.asarray(r.get("labels", []), dtype=np.int64).reshape(-1) for r in [*preds, *gts]]
    return max((int(x.max()) for x in labels if x.size), default=-1) + 1


def hit_matrix(pred: ImageBoxes, gt: ImageBoxes, iou_threshold: float, hit: str) -> NDArray[np.bool_]:
    """(D, G) True where detection d hits lesion g (same class and the hit criterion)."""
    if hit == "iou":
        ok: NDArray[np.bool_] = box_iou(pred.boxes, gt.boxes) >= iou_threshold
    elif hit == "center":
        cx = (pred.boxes[:, 0] + pred.boxes[:, 2]) / 2
        cy = (pred.boxes[:, 1] + pred.boxes[:, 3]) / 2
        g = gt.boxes
        ok = (
            (cx[:, None] >= g[None, :, 0])
            & (cx[:, None] <= g[None, :, 2])
            & (cy[:, None] >= g[None, :, 1])
            & (cy[:, None] <= g[None, :, 3])
        )
    else:
        raise ValueError(f"unknown FROC hit criterion {hit!r}; choose one of {FROC_HITS}")
    same_class: NDArray[np.bool_] = pred.labels[:, None] == gt.labels[None, :]
    return ok & same_class


def froc_events(pairs: list[tuple[ImageBoxes, ImageBoxes]], iou_threshold: float, hit: str = "iou") -> FrocEvents:
    lesion_score: list[NDArray[np.float64]] = []
    lesion_image: list[NDArray[np.int64]] = []
    fp_score: list[NDArray[np.float64]] = []
    fp_image: list[NDArray[np.int64]] = []
    for i, (pred, gt) in enumerate(pairs):
        ok = hit_matrix(pred, gt, iou_threshold, hit)
        lesion_score.append(np.where(ok, pred.scores[:, None], -np.inf).max(axis=0, initial=-np.inf))
        lesion_image.append(np.full(len(gt), i, dtype=np.int64))
        fp = ~ok.any(axis=1)
        fp_score.append(pred.scores[fp])
        fp_image.append(np.full(int(fp.sum()), i, dtype=np.int64))
    return FrocEvents(
        np.concatenate([np.zeros(0), *lesion_score]),
        np.concatenate([np.zeros(0, np.int64), *lesion_image]),
        np.concatenate([np.zeros(0), *fp_score]),
        np.concatenate([np.zeros(0, np.int64), *fp_image]),
        len(pairs),
    )


def froc(
    preds: Sequence[Record],
    gts: Sequence[Record],
    iou_threshold: float = 0.4,
    fp_rates: ArrayLike = FROC_FP_RATES,
    num_classes: int | None = None,
    hit: str = "iou",
) -> FrocResult:
    pairs = pair_records(preds, gts)
    if num_classes is not None:
        check_labels(pairs, num_classes)
    return froc_from_events(froc_events(pairs, iou_threshold, hit), fp_rates, hit)


def event_order(
    events: FrocEvents,
) -> tuple[NDArray[np.float64], NDArray[np.bool_], NDArray[np.int64], NDArray[np.bool_]]:
    """Found lesions and false positives by descending score: (scores, is_lesion, image, last_of_tie)."""
    found = np.isfinite(events.lesion_score)
    scores = np.r_[events.lesion_score[found], events.fp_score]
    is_lesion = np.r_[np.ones(int(found.sum()), dtype=bool), np.zeros(len(events.fp_score), dtype=bool)]
    image = np.r_[events.lesion_image[found], events.fp_image].astype(np.int64)
    order = np.argsort(-scores, kind="mergesort")
    scores, is_lesion, image = scores[order], is_lesion[order], image[order]
    last_of_tie = np.r_[scores[1:] != scores[:-1], True] if len(scores) else np.zeros(0, dtype=bool)
    return scores, is_lesion, image, last_of_tie


def weighted_froc(
    events: FrocEvents, weights: ArrayLike, fp_rates: ArrayLike = FROC_FP_RATES
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Images weighted by `weights` (B, N) (a bootstrap resample: how often each image is drawn).

    Returns (B, K) sensitivity at each rate, and the (B, P) curve: fppi and sensitivity."""
    draws = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    _, is_lesion, image, last_of_tie = event_order(events)
    w = draws[:, image]
    tp = np.c_[np.zeros(len(w)), np.cumsum(np.where(is_lesion, w, 0.0), axis=1)[:, last_of_tie]]
    fp = np.c_[np.zeros(len(w)), np.cumsum(np.where(is_lesion, 0.0, w), axis=1)[:, last_of_tie]]
    n_lesions = draws[:, events.lesion_image].sum(axis=1)
    fppi = fp / np.maximum(draws.sum(axis=1), 1.0)[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        sens = np.where(n_lesions[:, None] > 0, tp / n_lesions[:, None], np.nan)
    # sensitivity never falls along the curve: the last point with fppi <= f is the best one
    last = np.stack([(fppi <= f).sum(axis=1) - 1 for f in np.asarray(fp_rates, dtype=np.float64)], axis=1)
    return np.take_along_axis(sens, last, axis=1), fppi, sens


def froc_from_events(events: FrocEvents, fp_rates: ArrayLike = FROC_FP_RATES, hit: str = "iou") -> FrocResult:
    scores, _, _, last_of_tie = event_order(events)
    at_rate, fppi, sens = weighted_froc(events, np.ones((1, events.n_images)), fp_rates)
    return FrocResult(
        fp_rates=np.asarray(fp_rates, dtype=np.float64),
        sensitivity=at_rate[0],
        fppi=fppi[0],
        curve_sensitivity=sens[0],
        thresholds=np.r_[np.inf, scores[last_of_tie]],
        n_lesions=len(events.lesion_score),
        n_images=events.n_images,
        hit=hit,
    )
