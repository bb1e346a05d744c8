"""The gate arithmetic: a classifier's probability p that an image is abnormal decides what happens to the
detector's boxes on it.

    p <  low          every box dropped: the image is reported "No findings"
    low <= p < high   mode=multiply: every box score multiplied by p; mode=suppress: boxes kept as they are
    p >= high         boxes kept as they are
    no_finding_class  (VinDr-CXR: 14) the leaderboard's "No finding" row with score 1 - p on every image
                      (`no_finding_score` of the record, scored by xray_exp.metrics.nofinding)

    gate = GateSettings(low=0.2, high=0.8)
    gate_record({"image_id": "a", "boxes": [[0, 0, 9, 9]], "scores": [0.6], "labels": [2]}, 0.5, gate)
    # -> scores [0.3], gate "multiplied"
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from xray_exp.errors import ConfigError

GATE_MODES = ("multiply", "suppress")


@dataclass(frozen=True)
class GateSettings:
    """`low` <= `high` in [0, 1]; `mode` multiply | suppress; `no_finding_class`: None or a class id (14)."""

    low: float = 0.1
    high: float = 0.9
    mode: str = "multiply"
    no_finding_class: int | None = None

    def __post_init__(self) -> None:
        for name in ("low", "high"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and 0.0 <= float(value) <= 1.0):
                raise ConfigError(f"gate.{name}={value!r}: give a probability between 0 and 1")
        if self.low > self.high:
            raise ConfigError(
                f"gate.low={self.low:g} > gate.high={self.high:g}: below low boxes are dropped, "
                "above high kept; give low <= high"
            )
        if self.mode not in GATE_MODES:
            raise ConfigError(f"gate.mode={self.mode!r}: one of {', '.join(GATE_MODES)}")
        if self.no_finding_class is not None and int(self.no_finding_class) < 0:
            raise ConfigError(f"gate.no_finding_class={self.no_finding_class}: a class id >= 0 (VinDr-CXR: 14)")

    def describe(self) -> str:
        nf = f", 'No finding' row as class {self.no_finding_class}" if self.no_finding_class is not None else ""
        return f"low {self.low:g}, high {self.high:g}, mode {self.mode}{nf}"


def gate_record(record: Mapping, p: float, gate: GateSettings) -> dict:
    """One image's prediction record after the gate (a new dict; the input is left as it is). Adds
    `gate_p` and `gate` (dropped | multiplied | kept) and, with `no_finding_class`, `no_finding_score`."""
    p = float(p)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"image {record.get('image_id')}: gate probability {p} outside [0, 1]")
    boxes = np.asarray(record.get("boxes", []), dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(record.get("scores", []), dtype=np.float64).reshape(-1)
    labels = np.asarray(record.get("labels", []), dtype=np.int64).reshape(-1)
    if p < gate.low:
        keep = np.zeros(len(scores), dtype=bool)
        boxes, scores, labels, action = boxes[keep], scores[keep], labels[keep], "dropped"
    elif p < gate.high and gate.mode == "multiply":
        scores, action = scores * p, "multiplied"
    else:
        action = "kept"
    out = {**record, "boxes": boxes, "scores": scores, "labels": labels, "gate_p": p, "gate": action}
    if gate.no_finding_class is not None:
        out["no_finding_score"] = 1.0 - p
    return out


def gate_records(preds: Sequence[Mapping], probs: Mapping[str, float], gate: GateSettings) -> list[dict]:
    """Every record gated by its image's probability (`probs`: image id -> P(abnormal))."""
    missing = [str(r["image_id"]) for r in preds if str(r["image_id"]) not in probs]
    if missing:
        raise ValueError(f"gate: no classifier probability for images {missing[:5]} ({len(missing)} in all)")
    return [gate_record(r, probs[str(r["image_id"])], gate) for r in preds]
