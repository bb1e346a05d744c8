"""Choose the gate's thresholds on validation (or out-of-fold) predictions: never on test.

best, table = tune_gate(val_preds, val_probs, score=lambda gated: map40_of(gated), mode="multiply")
best.low, best.high   # the pair with the highest score (ties: the gentlest gate: lowest low, then highest high)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from xray_exp.gating.gate import GateSettings, gate_records

LOWS = (0.0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5)
HIGHS = (0.3, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0)


def tune_gate(
    preds: Sequence[Mapping],
    probs: Mapping[str, float],
    score: Callable[[list[dict]], float],
    mode: str = "multiply",
    no_finding_class: int | None = None,
    lows: Sequence[float] = LOWS,
    highs: Sequence[float] = HIGHS,
) -> tuple[GateSettings, list[dict]]:
    """Every (low, high) pair with low <= high scored by `score(gated records)` (higher is better); returns
    the best settings and the table of all pairs. A pair whose score is NaN never wins."""
    table, best, best_key = [], None, None
    for low in lows:
        for high in highs if mode == "multiply" else (max(highs),):
            if low > high:
                continue
            gate = GateSettings(low=float(low), high=float(high), mode=mode, no_finding_class=no_finding_class)
            value = float(score(gate_records(preds, probs, gate)))
            table.append({"low": gate.low, "high": gate.high, "score": value})
            key = (value, -low, high)
            if value == value and (best_key is None or key > best_key):
                best, best_key = gate, key
    if best is None:
        raise ValueError("gate tuning: every threshold pair scored NaN (does the split have findings?)")
    return best, table
