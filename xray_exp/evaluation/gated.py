"""A detector's predictions gated by a normal/abnormal classifier, inside the one evaluator (`evaluate gate=`,
`compare gate=`): the classifier checked before any work, its P(abnormal) per image, the thresholds given or
tuned on val (never on the split being scored), and the gate arithmetic of xray_exp.gating.

    gate = prepare_gate(gate_cfg, classifier_path, detector_path, data_yaml, split="test", det_imgsz=320,
                        no_finding_class=None, out_dir=out_dir)
    evaluate_split(detector, data_yaml, "test", ..., transform=gate.apply)     # gate.describe() for the output
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from xray_exp.errors import ConfigError
from xray_exp.evaluation.classifier import split_probabilities
from xray_exp.evaluation.predict import predict_split
from xray_exp.gating import GateSettings, gate_records, tune_gate
from xray_exp.metrics.summary import evaluate_records
from xray_exp.yolo.predict import trained_imgsz


@dataclass
class PreparedGate:
    settings: GateSettings
    classifier: Path
    imgsz: int
    probs: dict[str, float]
    tuned_on: str | None = None
    last: list[dict] | None = None  # the records of the last `apply` (for gate_counts)

    def apply(self, preds: list[dict]) -> list[dict]:
        self.last = gate_records(preds, self.probs, self.settings)
        return self.last

    def describe(self) -> str:
        tuned = f", tuned on {self.tuned_on}" if self.tuned_on else ""
        return f"classifier {self.classifier.name} (imgsz {self.imgsz}): {self.settings.describe()}{tuned}"


def gate_settings(node, no_finding_class: int | None) -> GateSettings:
    """The `gate.*` keys (low, high, mode) checked before any work."""
    return GateSettings(
        low=float(node.low),
        high=float(node.high),
        mode=str(node.mode),
        no_finding_class=None if no_finding_class is None else int(no_finding_class),
    )


def classifier_probs(classifier: Path, data_yaml, split: str, imgsz: int, device) -> dict[str, float]:
    ids, _, probs, _ = split_probabilities(classifier, data_yaml, split, imgsz, device)
    return {i: float(p) for i, p in zip(ids, probs, strict=True)}


def tuned_settings(
    settings: GateSettings, classifier: Path, imgsz: int, detector: Path, det_imgsz: int, data_yaml, metrics, device
) -> tuple[GateSettings, list[dict]]:
    """low/high maximising mAP@0.4 of the gated detector on the val split."""
    out = predict_split(detector, data_yaml, "val", imgsz=det_imgsz, conf=0.001, iou=0.7, device=device)
    probs = classifier_probs(classifier, data_yaml, "val", imgsz, device)

    def map40(gated: list[dict]) -> float:
        return evaluate_records(
            gated,
            out.gts,
            out.names,
            match_iou=metrics.match_iou,
            decision_conf=metrics.decision_conf,
            map40_method=metrics.map40_method,
            no_finding_class=settings.no_finding_class,
        ).detection.map40

    return tune_gate(out.preds, probs, map40, mode=settings.mode, no_finding_class=settings.no_finding_class)


def prepare_gate(
    node,
    classifier: Path,
    detector: Path,
    data_yaml,
    split: str,
    det_imgsz: int,
    metrics,
    device=None,
    out_dir: Path | None = None,
) -> PreparedGate:
    """Check the gate (settings, then that `classifier` is one), tune when `node.tune`, predict P(abnormal)."""
    from xray_exp.yolo.classify import load_classifier  # lazy: heavy (PIL, cv2, torch, tqdm)

    settings = gate_settings(node, metrics.no_finding_class)
    load_classifier(classifier)  # a detector (or any non-classifier) fails here, before any prediction
    imgsz = int(node.imgsz or trained_imgsz(classifier) or 0)
    if not imgsz:
        raise ConfigError(f"{classifier}: the file does not record its image size. Fix: gate.imgsz=<size>")
    tuned_on: str | None = None
    table: list[dict] = []
    if node.tune:
        if split == "val":
            raise ConfigError("gate.tune=true picks the thresholds on val: score another split (split=test)")
        settings, table = tuned_settings(settings, classifier, imgsz, detector, det_imgsz, data_yaml, metrics, device)
        tuned_on = "val (mAP@0.4)"
        print(f"gate tuned on val: low {settings.low:g}, high {settings.high:g}", flush=True)
    gate = PreparedGate(
        settings, classifier, imgsz, classifier_probs(classifier, data_yaml, split, imgsz, device), tuned_on
    )
    if out_dir is not None:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        (Path(out_dir) / "gate.json").write_text(
            json.dumps(
                {
                    "classifier": str(classifier),
                    "imgsz": imgsz,
                    "low": settings.low,
                    "high": settings.high,
                    "mode": settings.mode,
                    "no_finding_class": settings.no_finding_class,
                    "tuned_on": tuned_on,
                    "tuning": [
                        {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in t.items()}
                        for t in table
                    ],
                },
                indent=2,
            )
        )
    return gate


def gate_counts(gated: list[dict], prefix: str) -> dict[str, float]:
    """How many images the gate emptied, scaled and left alone."""
    return {
        f"{prefix}/gate_{action}": float(sum(g.get("gate") == action for g in gated))
        for action in ("dropped", "multiplied", "kept")
    }
