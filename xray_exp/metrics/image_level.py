"""Image-level "any abnormality": does the image hold any finding?

The image score is the highest confidence among its detections (0 without detections); an image is
abnormal when it has at least one ground-truth box. At `threshold`, an image whose score is below it
is reported "No findings".

    r = image_level_metrics(preds, gts, threshold=0.25)
    r.auroc, r.sensitivity, r.specificity   # specificity = normal images reported "No findings"
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from xray_exp.metrics.records import ImageBoxes, Record, pair_records


@dataclass
class ImageLevelResult:
    image_ids: list[str]
    scores: NDArray[np.float64]  # (N,) max detection confidence per image
    abnormal: NDArray[np.bool_]  # (N,) bool: the image has ground-truth boxes
    threshold: float
    auroc: float  # NaN unless both normal and abnormal images are present
    sensitivity: float  # abnormal images with score >= threshold / abnormal images
    specificity: float  # normal images with score < threshold (reported "No findings") / normal images

    @property
    def n_normal(self) -> int:
        return int((~self.abnormal).sum())

    @property
    def n_abnormal(self) -> int:
        return int(self.abnormal.sum())

    @property
    def reported_no_findings(self) -> NDArray[np.bool_]:
        """(N,) bool: no detection at or above the threshold."""
        return self.scores < self.threshold


def image_scores(
    preds: Sequence[Record], gts: Sequence[Record]
) -> tuple[list[str], NDArray[np.float64], NDArray[np.bool_]]:
    """Image ids, max detection score (0 if none) and abnormal flag, in ground-truth order."""
    return image_scores_from_pairs(pair_records(preds, gts))


def image_scores_from_pairs(
    pairs: list[tuple[ImageBoxes, ImageBoxes]],
) -> tuple[list[str], NDArray[np.float64], NDArray[np.bool_]]:
    ids = [gt.image_id for _, gt in pairs]
    scores = np.array([p.scores.max() if len(p) else 0.0 for p, _ in pairs], dtype=np.float64)
    abnormal = np.array([len(gt) > 0 for _, gt in pairs], dtype=bool)
    return ids, scores, abnormal


def image_level_metrics(preds: Sequence[Record], gts: Sequence[Record], threshold: float = 0.25) -> ImageLevelResult:
    return image_level_from_pairs(pair_records(preds, gts), threshold)


def image_level_from_pairs(pairs: list[tuple[ImageBoxes, ImageBoxes]], threshold: float) -> ImageLevelResult:
    from sklearn.metrics import roc_auc_score

    ids, scores, abnormal = image_scores_from_pairs(pairs)
    positive = scores >= threshold
    both = abnormal.any() and (~abnormal).any()
    auroc = float(roc_auc_score(abnormal, scores)) if both else float("nan")
    sensitivity = float(positive[abnormal].mean()) if abnormal.any() else float("nan")
    specificity = float((~positive)[~abnormal].mean()) if (~abnormal).any() else float("nan")
    return ImageLevelResult(
        image_ids=ids,
        scores=scores,
        abnormal=abnormal,
        threshold=float(threshold),
        auroc=auroc,
        sensitivity=sensitivity,
        specificity=specificity,
    )


NO_NORMAL_NOTE = "n/a (no normal images in this split)"
NO_ABNORMAL_NOTE = "n/a (no abnormal images in this split)"


def undefined_note(metric: str, n_normal: int, n_abnormal: int) -> str | None:
    """What to show instead of NaN for an image-level metric the split cannot define: AUROC needs both kinds
    of image, specificity normal ones, sensitivity abnormal ones. None when the metric is defined."""
    needs_normal = metric in ("auroc", "specificity")
    needs_abnormal = metric in ("auroc", "sensitivity")
    if needs_normal and n_normal == 0:
        return NO_NORMAL_NOTE
    if needs_abnormal and n_abnormal == 0:
        return NO_ABNORMAL_NOTE
    return None
