"""Headline metrics of an image-weighted dataset, from the per-image matches cached at evaluation.

A bootstrap resample draws each image k times; matching is per image, so the resampled dataset's
detections are the cached ones, each counted k times. Every headline metric is then a weighted
version of the same computation (sorts done once, numpy over all resamples at once):

    values = headline_for_weights(result.cache, weights)   # weights (B, N) draw counts per image
    values["map40"]                                         # (B,), = evaluate_records on the resample

Weights of ones give the point estimates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from xray_exp.metrics.ap import weighted_average_precision
from xray_exp.metrics.detection import COCO_IOU_THRESHOLDS, MAP40_METHODS
from xray_exp.metrics.froc import FROC_FP_RATES, FrocEvents, weighted_froc
from xray_exp.metrics.matching import ClassMatches, threshold_index
from xray_exp.metrics.nofinding import weighted_no_finding_ap
from xray_exp.metrics.records import ImageBoxes

HEADLINE_METRICS = ("map40", "mAP50", "mAP50-95", "froc_mean", "auroc", "sensitivity", "specificity")


@dataclass
class MatchCache:
    """What the headline metrics need, per image: nothing is matched again."""

    image_ids: list[str]
    groups: NDArray[np.int64] | None  # (N,) group (patient) index per image; None = images are independent
    gt_per_image: NDArray[np.int64]  # (C, N) ground-truth boxes per class and image
    coco: list[ClassMatches]  # COCO matches at `thresholds` (max_dets applied), for mAP50 / mAP50-95
    thresholds: NDArray[np.float64]
    map40: list[ClassMatches]  # single-threshold matches at IoU 0.4 by `map40_method`
    map40_method: str
    froc: FrocEvents
    fp_rates: NDArray[np.float64]
    image_score: NDArray[np.float64]  # (N,) highest detection confidence
    abnormal: NDArray[np.bool_]  # (N,)
    decision_conf: float
    # ("No finding" scores, normal) when scored
    no_finding: tuple[NDArray[np.float64], NDArray[np.bool_]] | None = None

    @property
    def n_images(self) -> int:
        return len(self.image_ids)


def gt_counts(pairs: list[tuple[ImageBoxes, ImageBoxes]], num_classes: int) -> NDArray[np.int64]:
    out = np.zeros((num_classes, len(pairs)), dtype=np.int64)
    for i, (_, gt) in enumerate(pairs):
        out[:, i] = np.bincount(gt.labels, minlength=num_classes)[:num_classes]
    return out


def nanmean_rows(values: NDArray[np.float64]) -> NDArray[np.float64]:
    """(B, C) -> (B,) mean of the finite entries per row, NaN when none."""
    finite = np.isfinite(values)
    count: NDArray[np.int64] = finite.sum(axis=1)
    total: NDArray[np.float64] = np.where(finite, values, 0.0).sum(axis=1)
    mean: NDArray[np.float64] = np.divide(total, count, out=np.full(len(values), np.nan), where=count > 0)
    return mean


def weighted_auroc(
    scores: NDArray[np.float64], positive: NDArray[np.bool_], weights: NDArray[np.float64]
) -> NDArray[np.float64]:
    """(B,) Mann-Whitney AUROC (ties count half) of the weighted images; NaN without both classes."""
    unique, inverse = np.unique(scores, return_inverse=True)  # ascending scores
    pos = np.zeros((len(weights), len(unique)))
    neg = np.zeros_like(pos)
    np.add.at(pos.T, inverse[positive], weights[:, positive].T)
    np.add.at(neg.T, inverse[~positive], weights[:, ~positive].T)
    neg_below = np.cumsum(neg, axis=1) - neg
    n_pos: NDArray[np.float64] = pos.sum(axis=1)
    n_neg: NDArray[np.float64] = neg.sum(axis=1)
    wins: NDArray[np.float64] = np.sum(pos * (neg_below + 0.5 * neg), axis=1)
    ok = (n_pos > 0) & (n_neg > 0)
    auroc: NDArray[np.float64] = np.divide(wins, n_pos * n_neg, out=np.full(len(weights), np.nan), where=ok)
    return auroc


def weighted_rate(
    hit: NDArray[np.bool_], among: NDArray[np.bool_], weights: NDArray[np.float64]
) -> NDArray[np.float64]:
    """(B,) weighted share of `among` images that are `hit`; NaN when no `among` image is drawn."""
    denominator = weights @ among.astype(np.float64)
    rate: NDArray[np.float64] = np.divide(
        weights @ (hit & among).astype(np.float64),
        denominator,
        out=np.full(len(weights), np.nan),
        where=denominator > 0,
    )
    return rate


def class_ap(
    matches: ClassMatches,
    rows: int | list[int],
    gt_per_image: NDArray[np.int64],
    weights: NDArray[np.float64],
    interpolation: str,
) -> NDArray[np.float64]:
    """(B,) AP at matching row `rows` (an int), or (B, T) at several rows (a list)."""
    return weighted_average_precision(matches.tp[rows], matches.image_index, gt_per_image, weights, interpolation)


def headline_for_weights(cache: MatchCache, weights: ArrayLike) -> dict[str, NDArray[np.float64]]:
    """(B,) value of every headline metric for each row of image weights (B, N)."""
    weights = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    if weights.shape[1] != cache.n_images:
        raise ValueError(f"weights have {weights.shape[1]} columns for {cache.n_images} images")
    interpolation = MAP40_METHODS[cache.map40_method][1]
    ap40 = [class_ap(m, 0, cache.gt_per_image[c], weights, interpolation) for c, m in enumerate(cache.map40)]
    if cache.no_finding is not None:
        ap40.append(weighted_no_finding_ap(*cache.no_finding, weights, interpolation))
    columns = [threshold_index(cache.thresholds, t) for t in COCO_IOU_THRESHOLDS]
    coco = (
        np.stack(
            [class_ap(m, columns, cache.gt_per_image[c], weights, "coco101") for c, m in enumerate(cache.coco)], axis=1
        )
        if cache.coco
        else np.zeros((len(weights), 0, len(columns)))
    )
    froc_at_rates = weighted_froc(cache.froc, weights, cache.fp_rates)[0]
    positive = cache.image_score >= cache.decision_conf
    return {
        "map40": nanmean_rows(np.stack(ap40, axis=1)) if ap40 else np.full(len(weights), np.nan),
        "mAP50": nanmean_rows(coco[:, :, 0]),
        "mAP50-95": nanmean_rows(coco.mean(axis=2)),
        "froc_mean": froc_at_rates.mean(axis=1),
        "auroc": weighted_auroc(cache.image_score, cache.abnormal, weights),
        "sensitivity": weighted_rate(positive, cache.abnormal, weights),
        "specificity": weighted_rate(~positive, ~cache.abnormal, weights),
    }


__all__ = ["FROC_FP_RATES", "HEADLINE_METRICS", "MatchCache", "headline_for_weights", "weighted_auroc"]
