"""The VinBigData "No finding" class (class 14), scored as the competition's public leaderboard did.

In the competition every normal image's ground truth was one "No finding" box (class 14, the box
[0, 0, 1, 1]); the task description asks for `14 1 0 0 1 1` on images without findings, and most
entrants appended `14 p 0 0 1 1` to every image, with p the normal probability of an image
classifier (the "2 class filter") or 1 - the highest lesion confidence. Each image then holds
exactly one "No finding" detection and at most one "No finding" box, with IoU 1: a detection is a
hit exactly when its image is normal. Its AP is an image-level ranking AP (normal images first),
averaged into mAP@0.4 as the 15th class.

Here the "No finding" score of an image is the prediction record's `no_finding_score` when given,
else 1 - its highest detection confidence (1 without detections).

    scores, normal = no_finding_scores(pairs, overrides={"img7": 0.93})
    ap = no_finding_ap(scores, normal, interpolation="all_point")
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from xray_exp.metrics.ap import average_precision, weighted_average_precision
from xray_exp.metrics.records import ImageBoxes, Record

NO_FINDING_NAME = "No finding"
NO_FINDING_BOX = (0.0, 0.0, 1.0, 1.0)


def score_overrides(preds: Sequence[Record]) -> dict[str, float]:
    """`no_finding_score` of the prediction records that carry one, by image id."""
    out: dict[str, float] = {}
    for record in preds:
        if "no_finding_score" in record:
            value = float(record["no_finding_score"])
            if not np.isfinite(value):
                raise ValueError(f"image {record['image_id']}: no_finding_score must be finite, got {value}")
            out[str(record["image_id"])] = value
    return out


def no_finding_scores(
    pairs: list[tuple[ImageBoxes, ImageBoxes]], overrides: Mapping[str, float] | None = None
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """(N,) "No finding" confidence per image and (N,) bool: the image is normal (no ground-truth box)."""
    overrides = overrides or {}
    scores = np.array(
        [overrides.get(gt.image_id, 1.0 - (p.scores.max() if len(p) else 0.0)) for p, gt in pairs], dtype=np.float64
    )
    normal = np.array([len(gt) == 0 for _, gt in pairs], dtype=bool)
    return scores, normal


def ranking(scores: NDArray[np.float64]) -> NDArray[np.intp]:
    return np.argsort(-scores, kind="mergesort")


def no_finding_ap(scores: NDArray[np.float64], normal: NDArray[np.bool_], interpolation: str) -> float:
    order = ranking(scores)
    return average_precision(normal[order], int(normal.sum()), interpolation)


def weighted_no_finding_ap(
    scores: NDArray[np.float64], normal: NDArray[np.bool_], weights: ArrayLike, interpolation: str
) -> NDArray[np.float64]:
    order = ranking(scores)
    return weighted_average_precision(normal[order], order, normal, weights, interpolation)
