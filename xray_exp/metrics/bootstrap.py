"""Percentile bootstrap confidence intervals of the headline metrics, from the cached matches.

Each resample draws the images (or, when the evaluation knows them, the groups = patients, with all
their images) with replacement, as many as there are; the metrics of the resample are computed from
the per-image matches cached at evaluation (xray_exp.metrics.resample), so nothing is predicted or
matched again. The interval is the (1 - level) / 2 and 1 - (1 - level) / 2 percentiles of the
resampled values (Efron & Tibshirani 1993, ch. 13); resamples where a metric is undefined (e.g. no
normal image drawn for AUROC) are left out of its percentiles.

    ci = bootstrap_ci(result, n_boot=1000, seed=0, level=0.95)
    ci["map40"]          # (low, high)
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from numpy.typing import NDArray

from xray_exp.metrics.resample import HEADLINE_METRICS, MatchCache, headline_for_weights
from xray_exp.metrics.summary import EvaluationResult

CHUNK = 100  # resamples computed together (memory: CHUNK x detections floats per array)


def draw_weights(cache: MatchCache, n: int, rng: np.random.Generator) -> NDArray[np.float64]:
    """(n, N) how often each image is drawn in each of n resamples (by group when groups are known)."""
    if cache.groups is None:
        size = cache.n_images
        return rng.multinomial(size, np.full(size, 1.0 / size), size=n).astype(np.float64)
    n_groups = int(cache.groups.max()) + 1
    counts = rng.multinomial(n_groups, np.full(n_groups, 1.0 / n_groups), size=n)
    return counts[:, cache.groups].astype(np.float64)


def check_cache(result: EvaluationResult) -> MatchCache:
    cache = result.cache
    if cache is None:
        raise ValueError("this EvaluationResult has no cached matches; build it with evaluate_records")
    if cache.n_images == 0:
        raise ValueError("cannot bootstrap an evaluation without images")
    return cache


def resampled_weights(
    cache: MatchCache, n_boot: int, seed: int, progress: bool = False, desc: str = "bootstrap"
) -> Iterator[NDArray[np.float64]]:
    """Yield (chunk of weights (b, N)) for n_boot resamples, seeded, with a tqdm bar when `progress`."""
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    rng = np.random.default_rng(seed)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n_boot, desc=desc, unit="resample")
    try:
        for start in range(0, n_boot, CHUNK):
            n = min(CHUNK, n_boot - start)
            yield draw_weights(cache, n, rng)
            if bar is not None:
                bar.update(n)
    finally:
        if bar is not None:
            bar.close()


def bootstrap_values(
    result: EvaluationResult, n_boot: int = 1000, seed: int = 0, progress: bool = False
) -> dict[str, NDArray[np.float64]]:
    """(n_boot,) resampled value of every headline metric."""
    cache = check_cache(result)
    parts = [headline_for_weights(cache, w) for w in resampled_weights(cache, n_boot, seed, progress)]
    return {name: np.concatenate([p[name] for p in parts]) for name in HEADLINE_METRICS}


def percentile_interval(values: NDArray[np.float64], level: float) -> tuple[float, float]:
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1, got {level}")
    finite = values[np.isfinite(values)]
    if not finite.size:
        return float("nan"), float("nan")
    low, high = np.quantile(finite, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(low), float(high)


def bootstrap_ci(
    result: EvaluationResult, n_boot: int = 1000, seed: int = 0, level: float = 0.95, progress: bool = False
) -> dict[str, tuple[float, float]]:
    """{headline metric: (low, high)} percentile interval at `level`."""
    percentile_interval(np.zeros(1), level)  # checks `level` before the work
    values = bootstrap_values(result, n_boot, seed, progress)
    return {name: percentile_interval(v, level) for name, v in values.items()}
