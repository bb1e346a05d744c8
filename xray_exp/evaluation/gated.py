"""A detector's predictions gated by a normal/abnormal classifier, inside the one evaluator (`evaluate gate=`,
`compare gate=`): the classifier checked before any work, its P(abnormal) per image, the thresholds given or
tuned on val (never on the split being scored), and the gate arithmetic of xray_exp.gating.

    gate = prepare_gate(gate_cfg, classifier_path, detector_path, data_yaml, split="test", det_imgsz=320,
                        no_finding_class=None, out_dir=out_dir, origin=GateOrigin(...))
    evaluate_split(detector, data_yaml, "test", ..., transform=gate.apply)     # gate.describe() for the output

With a registered classifier (`gate=models:/...`) the tuned thresholds are also saved as tags on its version
(xray_exp.mlops.gate_tags), and a later gate on the same detector without low/high/mode reads them back.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

from xray_exp.errors import ConfigError
from xray_exp.evaluation.classifier import split_probabilities
from xray_exp.evaluation.predict import predict_split
from xray_exp.gating import GateSettings, gate_records, tune_gate
from xray_exp.metrics.summary import evaluate_records
from xray_exp.mlops.gate_tags import read_gate_tags, save_gate_tags
from xray_exp.yolo.predict import trained_imgsz

DEFAULT_GATE = GateSettings()  # low 0.1, high 0.9, multiply: when neither given nor saved for this detector


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
    """The `gate.*` keys (low, high, mode; null: the defaults) checked before any work."""
    return GateSettings(
        low=DEFAULT_GATE.low if node.low is None else float(node.low),
        high=DEFAULT_GATE.high if node.high is None else float(node.high),
        mode=DEFAULT_GATE.mode if node.mode is None else str(node.mode),
        no_finding_class=None if no_finding_class is None else int(no_finding_class),
    )


@dataclass
class GateOrigin:
    """Where the classifier came from and which detector it gates (for the tags on a registered classifier)."""

    classifier_uri: str | None  # models:/... as given; None: a file (no tags)
    tracking_uri: str | None
    detector: str  # as shown: models:/yolo12s@development, best.pt, yolo12n-ensemble
    digest: str  # the detector's weights (weights_digest), an ensemble's members and fusion
    save: bool = True  # tracking enabled: tuned thresholds are written to the classifier's version


def gate_origin(gate_model, tracking, detector: str, weights: Path) -> GateOrigin:
    """The origin of `gate=<gate_model>` gating `detector` (its weights file `weights`) under `tracking`."""
    uri = str(gate_model) if str(gate_model).startswith("models:/") else None
    return GateOrigin(uri, tracking.tracking_uri, detector, weights_digest(weights), bool(tracking.enabled))


def weights_digest(path: str | Path) -> str:
    """sha256 prefix of a weights file: the detector identity a tuned gate is saved for."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def registered_thresholds(node, origin: GateOrigin | None, no_finding_class: int | None):
    """(GateSettings, note, tuned_on) from the classifier version's gate.* tags when low and high are null,
    the gate is not being tuned and the tags were tuned for this detector; else (None, note or "", None)."""
    if origin is None or not origin.classifier_uri or node.tune or node.low is not None or node.high is not None:
        return None, "", None

    version, tags = read_gate_tags(origin.classifier_uri, origin.tracking_uri)
    if "gate.low" not in tags or "gate.high" not in tags:
        return None, "", None
    if tags.get("gate.tuned_for_digest") != origin.digest:
        return (
            None,
            (
                f"{version} holds thresholds tuned for {tags.get('gate.tuned_for', 'another detector')}, not for "
                f"{origin.detector}: defaults (gate.tune=true tunes them for it)"
            ),
            None,
        )
    mode = tags.get("gate.mode", DEFAULT_GATE.mode)
    if node.mode is not None and str(node.mode) != mode:
        return None, f"{version} holds thresholds tuned for mode {mode}, gate.mode={node.mode}: defaults", None
    settings = GateSettings(float(tags["gate.low"]), float(tags["gate.high"]), mode, no_finding_class)
    objective = tags.get("gate.objective", "?")
    return (
        settings,
        f"gate thresholds from {version}'s tags (tuned for {tags.get('gate.tuned_for')} on {objective}): "
        f"{settings.describe()}",
        f"{objective}, saved on {version}",
    )


def save_tuned_thresholds(origin: GateOrigin | None, settings: GateSettings, objective: str) -> str:
    """Tag the registered classifier's version with the tuned thresholds (a note for the output; "" if none)."""
    if origin is None or not origin.classifier_uri:
        return ""
    if not origin.save:
        return f"tuned thresholds not saved on {origin.classifier_uri} (tracking disabled)"

    version = save_gate_tags(
        origin.classifier_uri,
        origin.tracking_uri,
        {
            "gate.low": f"{settings.low:g}",
            "gate.high": f"{settings.high:g}",
            "gate.mode": settings.mode,
            "gate.tuned_for": origin.detector,
            "gate.tuned_for_digest": origin.digest,
            "gate.objective": objective,
        },
    )
    return f"tuned thresholds saved on {version} (tags gate.low, gate.high, gate.mode, gate.tuned_for)"


def classifier_probs(classifier: Path, data_yaml, split: str, imgsz: int, device) -> dict[str, float]:
    ids, _, probs, _ = split_probabilities(classifier, data_yaml, split, imgsz, device)
    return {i: float(p) for i, p in zip(ids, probs, strict=True)}


def tune_on(preds: list[dict], gts: list[dict], names, probs: dict[str, float], settings: GateSettings, metrics):
    """low/high maximising mAP@0.4 of `preds` gated by `probs` against `gts` (validation or out-of-fold images)."""

    def map40(gated: list[dict]) -> float:
        return evaluate_records(
            gated,
            gts,
            names,
            match_iou=metrics.match_iou,
            decision_conf=metrics.decision_conf,
            map40_method=metrics.map40_method,
            no_finding_class=settings.no_finding_class,
        ).detection.map40

    try:
        return tune_gate(preds, probs, map40, mode=settings.mode, no_finding_class=settings.no_finding_class)
    except ValueError as exc:  # every pair NaN: no finding on the tuning images
        raise ConfigError(f"gate.tune=true: {exc}. Fix: give gate.low and gate.high") from exc


def tuned_settings(
    settings: GateSettings, classifier: Path, imgsz: int, detector: Path, det_imgsz: int, data_yaml, metrics, device
) -> tuple[GateSettings, list[dict]]:
    """low/high maximising mAP@0.4 of the gated detector on the val split."""

    out = predict_split(detector, data_yaml, "val", imgsz=det_imgsz, conf=0.001, iou=0.7, device=device)
    probs = classifier_probs(classifier, data_yaml, "val", imgsz, device)
    return tune_on(out.preds, out.gts, out.names, probs, settings, metrics)


def write_gate_json(out_dir: Path, classifier, imgsz: int, settings: GateSettings, tuned_on, table, **extra) -> Path:
    """gate.json: the classifier, the thresholds, where they were tuned and the search table."""
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    path = Path(out_dir) / "gate.json"
    path.write_text(
        json.dumps(
            {
                "classifier": str(classifier),
                "imgsz": imgsz,
                "low": settings.low,
                "high": settings.high,
                "mode": settings.mode,
                "no_finding_class": settings.no_finding_class,
                "tuned_on": tuned_on,
                **extra,
                "tuning": [
                    {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in t.items()}
                    for t in table
                ],
            },
            indent=2,
        )
    )
    return path


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
    origin: GateOrigin | None = None,
) -> PreparedGate:
    """Check the gate (settings, then that `classifier` is one), tune when `node.tune` (or take the thresholds
    saved on the registered classifier for this detector), predict P(abnormal)."""
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
        note = save_tuned_thresholds(origin, settings, "val/map40")
    else:
        stored, note, saved_on = registered_thresholds(node, origin, metrics.no_finding_class)
        if stored is not None:
            settings, tuned_on = stored, saved_on
    if note:
        print(note, flush=True)
    gate = PreparedGate(
        settings, classifier, imgsz, classifier_probs(classifier, data_yaml, split, imgsz, device), tuned_on
    )
    if out_dir is not None:
        write_gate_json(Path(out_dir), classifier, imgsz, settings, tuned_on, table)
    return gate


def gate_counts(gated: list[dict], prefix: str) -> dict[str, float]:
    """How many images the gate emptied, scaled and left alone."""
    return {
        f"{prefix}/gate_{action}": float(sum(g.get("gate") == action for g in gated))
        for action in ("dropped", "multiplied", "kept")
    }
