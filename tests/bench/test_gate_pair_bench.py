"""`python -m xray_exp.bench inference --gate-only`: the detector alone vs detector + gate, p50/p99 and ratios
(the arithmetic on a fake clock; a real run with a CV's fold classifier as the gate: tests/cv/test_cv_classify.py)."""

from __future__ import annotations

import statistics

import numpy as np
import pytest

from xray_exp.bench import gate_pair, inference


def test_pair_summary_p50_p99_and_ratios_on_a_fake_clock():
    clock = {"t": 0.0}
    costs = {gate_pair.ALONE: [0.010, 0.012], gate_pair.GATED: [0.013, 0.018], gate_pair.CLASSIFIER: [0.003, 0.003]}
    calls = dict.fromkeys(costs, 0)

    def make(name):
        def fn():
            clock["t"] += costs[name][calls[name] % 2]
            calls[name] += 1

        return fn

    timed = inference.time_candidates(
        {name: make(name) for name in costs}, rounds=2, iters=4, warmup=0, clock=lambda: clock["t"]
    )
    out = gate_pair.pair_summary(timed)
    alone, gated = out["candidates"][gate_pair.ALONE], out["candidates"][gate_pair.GATED]
    assert alone["n"] == gated["n"] == 8
    assert alone["p50_ms"] == pytest.approx(11.0) and gated["p50_ms"] == pytest.approx(15.5)
    assert alone["p99_ms"] == pytest.approx(12.0) and gated["p99_ms"] == pytest.approx(18.0)  # 8 calls: the max
    assert out["ratios"]["gated_over_alone_p50"] == pytest.approx(15.5 / 11.0)
    assert out["ratios"]["gated_over_alone_p99"] == pytest.approx(18.0 / 12.0)
    assert out["ratios"]["gated_over_alone_per_round_median"] == pytest.approx(15.5 / 11.0)
    assert out["ratios"]["classifier_over_alone_p50"] == pytest.approx(3.0 / 11.0)
    assert statistics.median(np.array(gated["times_s"]) * 1000) == pytest.approx(gated["p50_ms"])
