"""Paired comparison of two models evaluated on the same images: per headline metric, the difference
B - A with its confidence interval and a two-sided p-value.

- AUROC: DeLong's test for two correlated ROC curves (DeLong et al. 1988), in the O(n log n) form of
  Sun & Xu (2014); the interval is the matching normal interval of the difference.
- every other headline metric: paired bootstrap. Each resample draws images (or groups, when the
  evaluation knows them) once and scores both models on the same draw; the interval is the
  percentile interval of the resampled differences, and p = 2 min(P*(d <= 0), P*(d >= 0)) with the
  (count + 1) / (B + 1) correction, the p-value that inverts the percentile interval.

    diffs = paired_comparison(result_a, result_b, n_boot=1000, seed=0)
    for d in diffs:
        print(verdict_line(d, name_a="baseline", name_b="candidate"))
    # candidate better on map40: +0.031 [0.012, 0.050], p=0.002
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from xray_exp.metrics.bootstrap import check_cache, percentile_interval, resampled_weights
from xray_exp.metrics.resample import HEADLINE_METRICS, MatchCache, headline_for_weights
from xray_exp.metrics.summary import EvaluationResult


@dataclass
class PairedDifference:
    metric: str
    a: float
    b: float
    diff: float  # b - a
    ci_low: float
    ci_high: float
    p_value: float
    test: str  # "paired bootstrap" | "DeLong"


def delong_covariance(
    scores: ArrayLike, positive: NDArray[np.bool_]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """AUROCs (k,) of k score vectors (k, n) against one label vector, and their (k, k) covariance
    (fast DeLong, Sun & Xu 2014: midranks instead of all pairs)."""
    from scipy.stats import rankdata

    rows = np.atleast_2d(np.asarray(scores, dtype=np.float64))
    pos, neg = rows[:, positive], rows[:, ~positive]
    m, n = pos.shape[1], neg.shape[1]
    if m < 2 or n < 2:
        raise ValueError(f"DeLong's test needs at least 2 abnormal and 2 normal images, got {m} and {n}")
    tx = rankdata(pos, axis=1)
    ty = rankdata(neg, axis=1)
    tz = rankdata(np.concatenate([pos, neg], axis=1), axis=1)
    aucs = tz[:, :m].sum(axis=1) / (m * n) - (m + 1) / (2 * n)
    v10 = (tz[:, :m] - tx) / n  # placement of each abnormal image among the normal ones
    v01 = 1 - (tz[:, m:] - ty) / m  # of each normal image among the abnormal ones
    cov = np.atleast_2d(np.cov(v10)) / m + np.atleast_2d(np.cov(v01)) / n
    return aucs, cov


def delong_test(
    scores_a: NDArray[np.float64], scores_b: NDArray[np.float64], positive: ArrayLike, level: float = 0.95
) -> tuple[float, float, float, float]:
    """(auroc_a, auroc_b, p-value, half-width of the `level` interval of auroc_b - auroc_a)."""
    from scipy.stats import norm

    aucs, cov = delong_covariance(np.stack([scores_a, scores_b]), np.asarray(positive, dtype=bool))
    var = float(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    diff = aucs[1] - aucs[0]
    if var <= 1e-300:
        p = 1.0 if abs(diff) < 1e-12 else 0.0
        return float(aucs[0]), float(aucs[1]), p, 0.0
    z = diff / np.sqrt(var)
    return float(aucs[0]), float(aucs[1]), float(2 * norm.sf(abs(z))), float(norm.ppf(0.5 + level / 2) * np.sqrt(var))


def bootstrap_p_value(diffs: NDArray[np.float64]) -> float:
    finite = diffs[np.isfinite(diffs)]
    if not finite.size:
        return float("nan")
    below, above = int((finite <= 0).sum()), int((finite >= 0).sum())
    return float(min(1.0, 2 * (min(below, above) + 1) / (finite.size + 1)))


def aligned(cache_a: MatchCache, cache_b: MatchCache) -> NDArray[np.int64]:
    """Index into B's images of each of A's images; both must hold the same image ids."""
    ids_a, ids_b = cache_a.image_ids, cache_b.image_ids
    position = {image_id: j for j, image_id in enumerate(ids_b)}
    if len(ids_a) != len(ids_b) or set(position) != set(ids_a):
        only_a, only_b = sorted(set(ids_a) - set(position))[:5], sorted(set(position) - set(ids_a))[:5]
        raise ValueError(
            f"paired comparison needs the same images in both evaluations: {len(ids_a)} vs "
            f"{len(ids_b)} images, only in A: {only_a}, only in B: {only_b}; evaluate both models "
            "on the same split"
        )
    order = np.array([position[i] for i in ids_a], dtype=np.int64)
    if not np.array_equal(cache_a.abnormal, cache_b.abnormal[order]):
        raise ValueError("paired comparison: the two evaluations use different ground truth for the same images")
    return order


def paired_comparison(
    result_a: EvaluationResult,
    result_b: EvaluationResult,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    progress: bool = False,
) -> list[PairedDifference]:
    """One PairedDifference per headline metric (HEADLINE_METRICS order); diff = B - A. Resampling
    follows A's groups when A knows them. AUROC falls back to the paired bootstrap with fewer than
    2 normal or 2 abnormal images (DeLong's variance needs both)."""
    cache_a, cache_b = check_cache(result_a), check_cache(result_b)
    order = aligned(cache_a, cache_b)
    to_b = np.empty_like(order)
    to_b[order] = np.arange(len(order))  # B's image j is A's image to_b[j]
    point_a = headline_for_weights(cache_a, np.ones((1, cache_a.n_images)))
    point_b = headline_for_weights(cache_b, np.ones((1, cache_b.n_images)))
    diffs: dict[str, list[NDArray[np.float64]]] = {name: [] for name in HEADLINE_METRICS}
    for w in resampled_weights(cache_a, n_boot, seed, progress, desc="paired bootstrap"):
        values_a, values_b = headline_for_weights(cache_a, w), headline_for_weights(cache_b, w[:, to_b])
        for name in HEADLINE_METRICS:
            diffs[name].append(values_b[name] - values_a[name])
    out = []
    for name in HEADLINE_METRICS:
        a, b = float(point_a[name][0]), float(point_b[name][0])
        n_abnormal = int(cache_a.abnormal.sum())
        if name == "auroc" and min(n_abnormal, cache_a.n_images - n_abnormal) >= 2:
            _, _, p, half = delong_test(cache_a.image_score, cache_b.image_score[order], cache_a.abnormal, level)
            out.append(PairedDifference(name, a, b, b - a, b - a - half, b - a + half, p, "DeLong"))
            continue
        d = np.concatenate(diffs[name])
        low, high = percentile_interval(d, level)
        out.append(PairedDifference(name, a, b, b - a, low, high, bootstrap_p_value(d), "paired bootstrap"))
    return out


def format_p(p: float) -> str:
    if not np.isfinite(p):
        return "p=n/a"
    return "p<0.001" if p < 0.001 else f"p={p:.3f}"


def verdict_line(diff: PairedDifference, name_a: str = "A", name_b: str = "B", alpha: float = 0.05) -> str:
    """ "B better on map40: +0.031 [0.012, 0.050], p=0.002", or "no significant difference on ..."
    when p >= alpha (all headline metrics: higher is better)."""
    if not np.isfinite(diff.diff):
        return f"no comparison on {diff.metric}: undefined on these images"
    figures = f"{diff.diff:+.3f} [{diff.ci_low:.3f}, {diff.ci_high:.3f}], {format_p(diff.p_value)}"
    if np.isfinite(diff.p_value) and diff.p_value < alpha and diff.diff != 0:
        winner = name_b if diff.diff > 0 else name_a
        return f"{winner} better on {diff.metric}: {figures}"
    return f"no significant difference on {diff.metric}: {figures}"
