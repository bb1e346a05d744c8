"""Interleaved timing of candidates side by side (ABBA rounds) and their paired speed ratio, for every benchmark:

timed = time_candidates({"pytorch": run_pt, "onnxruntime": run_ort}, rounds=6, iters=20)
compare(timed, "pytorch", "onnxruntime")    # {"median": 1.8, ..., "ratio_of_medians": 1.7}
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from xray_exp.bench.common import interleave, paired_ratios, ratio, summarize


def time_candidates(
    candidates: dict[str, Callable[[], Any]],
    rounds: int,
    iters: int,
    warmup: int = 2,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, dict[str, Any]]:
    """Interleaved timing: every candidate runs `iters` calls per round, rounds in ABBA order.

    Returns per candidate: all latencies (s), the per-round medians, and their summary.
    """
    for fn in candidates.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {k: [] for k in candidates}
    per_round: dict[str, list[float]] = {k: [0.0] * rounds for k in candidates}
    for name, rnd in interleave(list(candidates), rounds, order="abba"):
        fn, block = candidates[name], []
        for _ in range(iters):
            t0 = clock()
            fn()
            block.append(clock() - t0)
        times[name] += block
        per_round[name][rnd] = summarize(block)["median"]
    return {k: {"latency_s": summarize(v), "times_s": v, "round_medians_s": per_round[k]} for k, v in times.items()}


def compare(timed: dict[str, dict[str, Any]], slow: str, fast: str) -> dict[str, float]:
    """How many times faster `fast` is than `slow`: median of per-round ratios, and ratio of medians."""
    rounds = paired_ratios(timed[slow]["round_medians_s"], timed[fast]["round_medians_s"])
    return {
        **summarize(rounds),
        "ratio_of_medians": ratio(timed[slow]["latency_s"]["median"], timed[fast]["latency_s"]["median"]),
    }
