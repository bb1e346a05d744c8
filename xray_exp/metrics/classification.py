"""Image-level metrics of a normal/abnormal classifier's probabilities: AUROC with its bootstrap interval,
sensitivity/specificity at the operating point, calibration (Brier score, reliability curve).

    r = classifier_metrics(ids, probs, abnormal, threshold=0.5, n_boot=1000, groups=patients)
    r.auroc, r.ci["auroc"], r.sensitivity, r.specificity, r.brier, r.reliability
    classifier_flat(r, "val")   # {'val/auroc': ..., 'val/auroc_ci_low': ..., 'val/brier': ..., ...}

The bootstrap draws images (or patients, with all their images) with replacement, as the detection metrics'
does (xray_exp.metrics.bootstrap); AUROC is Mann-Whitney with ties counted half (= scikit-learn's). A split
without normal (or abnormal) images has no AUROC and no specificity (sensitivity): NaN in the numbers,
"n/a (no normal images in this split)" wherever they are shown (xray_exp.metrics.image_level.undefined_note).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike

from xray_exp.metrics.bootstrap import percentile_interval
from xray_exp.metrics.resample import weighted_auroc

CI_METRICS = ("auroc", "sensitivity", "specificity", "brier")


@dataclass
class ClassifierResult:
    image_ids: list[str]
    probs: np.ndarray  # (N,) P(abnormal)
    abnormal: np.ndarray  # (N,) bool: the image has ground-truth boxes
    threshold: float
    auroc: float
    sensitivity: float
    specificity: float
    brier: float
    reliability: list[dict[str, float]] = field(
        default_factory=list
    )  # per bin: low, high, count, mean_prob, abnormal_rate
    ci: dict[str, tuple[float, float]] = field(default_factory=dict)

    @property
    def scores(self) -> np.ndarray:  # the name the ROC plot reads (xray_exp.evaluation.plots.plot_roc)
        return self.probs

    @property
    def n_normal(self) -> int:
        return int((~self.abnormal).sum())

    @property
    def n_abnormal(self) -> int:
        return int(self.abnormal.sum())


def weighted_values(
    probs: np.ndarray, abnormal: np.ndarray, threshold: float, weights: np.ndarray
) -> dict[str, np.ndarray]:
    """(B,) each metric of B weighted resamples (weights (B, N): how often each image is drawn)."""
    positive = probs >= threshold

    def rate(hit: np.ndarray, of: np.ndarray) -> np.ndarray:
        den = weights[:, of].sum(axis=1)
        out: np.ndarray = np.divide(
            weights[:, of & hit].sum(axis=1), den, out=np.full(len(weights), np.nan), where=den > 0
        )
        return out

    sq = (probs - abnormal.astype(np.float64)) ** 2
    total = weights.sum(axis=1)
    return {
        "auroc": weighted_auroc(probs, abnormal, weights),
        "sensitivity": rate(positive, abnormal),
        "specificity": rate(~positive, ~abnormal),
        "brier": np.divide(weights @ sq, total, out=np.full(len(weights), np.nan), where=total > 0),
    }


def reliability_bins(probs: np.ndarray, abnormal: np.ndarray, n_bins: int = 10) -> list[dict[str, float]]:
    """Equal-width bins of the predicted probability: how many images, their mean probability and the share
    that is abnormal (a calibrated classifier has both equal). Empty bins are left out."""
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    index = np.clip(np.digitize(probs, edges[1:-1], right=False), 0, n_bins - 1)
    out = []
    for b in range(n_bins):
        sel = index == b
        if sel.any():
            out.append(
                {
                    "low": float(edges[b]),
                    "high": float(edges[b + 1]),
                    "count": int(sel.sum()),
                    "mean_prob": float(probs[sel].mean()),
                    "abnormal_rate": float(abnormal[sel].mean()),
                }
            )
    return out


def draw(n_images: int, groups: np.ndarray | None, n: int, rng: np.random.Generator) -> np.ndarray:
    if groups is None:
        return rng.multinomial(n_images, np.full(n_images, 1.0 / n_images), size=n).astype(np.float64)
    n_groups = int(groups.max()) + 1
    return rng.multinomial(n_groups, np.full(n_groups, 1.0 / n_groups), size=n)[:, groups].astype(np.float64)


def classifier_metrics(
    image_ids: Sequence[str],
    probs: ArrayLike,
    abnormal: ArrayLike,
    threshold: float = 0.5,
    n_boot: int = 1000,
    seed: int = 0,
    groups: Sequence[str] | None = None,
    level: float = 0.95,
    n_bins: int = 10,
) -> ClassifierResult:
    """Every image-level metric of P(abnormal) per image; `groups`: patient per image (bootstrap unit)."""
    probs = np.asarray(probs, dtype=np.float64)
    abnormal = np.asarray(abnormal, dtype=bool)
    if probs.shape != abnormal.shape or len(image_ids) != len(probs):
        raise ValueError(
            f"{len(image_ids)} image ids, {probs.shape} probabilities, {abnormal.shape} labels: "
            "give one of each per image"
        )
    if probs.size and (not np.all(np.isfinite(probs)) or probs.min() < 0 or probs.max() > 1):
        raise ValueError("probabilities must be finite and within [0, 1]")
    point = {k: float(v[0]) for k, v in weighted_values(probs, abnormal, threshold, np.ones((1, len(probs)))).items()}
    ci = {}
    if n_boot and len(probs):
        codes = None if groups is None else np.unique([str(g) for g in groups], return_inverse=True)[1]
        rng = np.random.default_rng(seed)
        parts = [
            weighted_values(probs, abnormal, threshold, draw(len(probs), codes, min(100, n_boot - s), rng))
            for s in range(0, n_boot, 100)
        ]
        ci = {k: percentile_interval(np.concatenate([p[k] for p in parts]), level) for k in CI_METRICS}
    return ClassifierResult(
        image_ids=[str(i) for i in image_ids],
        probs=probs,
        abnormal=abnormal,
        threshold=float(threshold),
        reliability=reliability_bins(probs, abnormal, n_bins),
        ci=ci,
        **point,
    )


def classifier_flat(result: ClassifierResult, prefix: str) -> dict[str, float]:
    """`{prefix}/auroc`, `_ci_low`/`_ci_high`, sensitivity, specificity, brier, images, normal_images."""
    out = {f"{prefix}/{k}": getattr(result, k) for k in CI_METRICS}
    for name, (low, high) in result.ci.items():
        out[f"{prefix}/{name}_ci_low"], out[f"{prefix}/{name}_ci_high"] = low, high
    out[f"{prefix}/images"] = float(len(result.image_ids))
    out[f"{prefix}/normal_images"] = float(result.n_normal)
    return {k: float(v) for k, v in out.items()}
