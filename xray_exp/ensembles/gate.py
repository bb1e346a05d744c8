"""The normal/abnormal gate on an ensemble's fused boxes: `python -m xray_exp.ensemble ... gate=<classifier>`.

    python -m xray_exp.ensemble cv=outputs/cv/<name> gate=models:/yolo12n-cls@development gate.tune=true

    chosen = check_gate(cfg)                   # before any work: low <= high, the classifier is one (its ONNX)
    gate = prepare_ensemble_gate(cfg, chosen, detector, name, images, data_yaml, settings, cvs, members, oof)
    gate.apply(fused.preds)                    # the evaluator's records gated (xray_exp.evaluation.gated)
    write_gated_folder(out_dir / "model", chosen, gate, extra)   # classifier.onnx + gate.json beside detector/

The classifier runs through ONNX Runtime (xray_exp.inference.onnx_classifier.OnnxClassifier), as in the served model.
`gate.tune=true` chooses low/high on the out-of-fold predictions the fusion is tuned on, restricted to the
dataset's val images (neither a fold model nor a task=classify classifier trained on them), or, without CV
members, on the ensemble's predictions of the val split; never on `split`. With a registered classifier the
thresholds are saved as tags on its version; without low/high they are read back when tuned for this same
ensemble (its members' ONNX files, weights, fusion and views).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from xray_exp.ensembles.members import file_member, registry_member, run_folder_member
from xray_exp.errors import ConfigError
from xray_exp.evaluation.dataset import load_split
from xray_exp.evaluation.gated import (
    GateOrigin,
    PreparedGate,
    gate_settings,
    registered_thresholds,
    save_tuned_thresholds,
    tune_on,
    weights_digest,
    write_gate_json,
)
from xray_exp.gating import GateSettings
from xray_exp.imaging import read_xray

if TYPE_CHECKING:
    from xray_exp.inference.onnx_classifier import OnnxClassifier


@dataclass
class ChosenGate:
    spec: str  # gate= as given
    settings: GateSettings  # as given (defaults for null keys)
    onnx: Path
    uri: str | None  # models:/<name>/<version> of a registered classifier
    classifier: OnnxClassifier


def check_gate(cfg) -> ChosenGate | None:
    """The gate's keys and its classifier, checked before any model runs (None: no gate=)."""
    node = cfg.gate
    if not node.model:
        if node.tune or node.low is not None or node.high is not None or node.mode is not None:
            raise ConfigError("gate.* set without a classifier. Fix: gate=models:/<model>-cls@<alias> (or its .onnx)")
        return None
    settings = gate_settings(node, cfg.no_finding_class)
    if node.tune and cfg.split == "val":
        raise ConfigError("gate.tune=true picks the thresholds on val: score another split (split=test)")

    spec = str(node.model)
    path = Path(spec).expanduser().resolve()
    if spec.startswith("models:/"):
        member = registry_member(spec, 0, 1.0, cfg.tracking.tracking_uri, Path(cfg.paths.cache_dir))
    elif path.is_dir():
        member = run_folder_member(path, 0, 1.0)
    elif path.is_file():
        member = file_member(path, 0, 1.0)
    else:
        raise ConfigError(
            f"gate={spec}: {path} does not exist. Fix: models:/<model>-cls@<alias>, a run folder or an .onnx file"
        )
    if member.onnx is None or not member.onnx.is_file():
        raise ConfigError(f"gate={spec}: no ONNX export of the classifier beside {member.pt}. Fix: pass its best.onnx")
    from xray_exp.inference.onnx_classifier import OnnxClassifier  # lazy: heavy (cv2, onnxruntime)

    try:
        classifier = OnnxClassifier(member.onnx, device=cfg.device)
    except ValueError as exc:  # a detector, or any model that is not a normal/abnormal classifier
        raise ConfigError(f"gate={spec}: {exc}") from exc
    return ChosenGate(spec, settings, member.onnx, member.uri, classifier)


def ensemble_digest(folder: Path) -> str:
    """The identity a tuned gate is saved for: the members' ONNX files and weights, the fusion, the views."""
    spec = json.loads((Path(folder) / "ensemble.json").read_text())
    payload = {
        "members": [[weights_digest(Path(folder) / m["onnx"]), m.get("weight", 1.0)] for m in spec["members"]],
        "fusion": spec["fusion"],
        "views": spec["views"],
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def abnormal_probabilities(classifier, paths: dict[str, str]) -> dict[str, float]:
    """P(abnormal) per image id (`paths`: image id -> file)."""
    return {i: float(classifier.predict_batch([read_xray(p)])[0]) for i, p in paths.items()}


def tuning_predictions(cfg, detector, data_yaml: Path, cvs: list, members: list, oof, progress: bool):
    """(fused records, where, objective) of the images the thresholds are tuned on: out-of-fold val images
    (CV members), else the val split; never `split`."""
    from xray_exp.ensembles.predict import (  # lazy: heavy (cv2, onnxruntime)
        RawPredictions,
        fused_predictions,
        predict_raw,
    )

    conf, max_det = min(float(cfg.conf), 1e-3), int(cfg.max_det)
    try:
        val = load_split(data_yaml, "val").images
    except Exception as exc:  # noqa: BLE001  (a dataset without val)
        if not cvs:
            raise ConfigError(
                f"gate.tune=true tunes on val: {data_yaml} has none ({exc}). Fix: gate.low/gate.high"
            ) from exc
        val = []
    if cvs and all(m.fold is not None for m in members):
        if oof is None:
            from xray_exp.ensembles.tune import oof_predictions  # lazy: only on this path

            oof = oof_predictions(detector, cvs, members, conf=conf, iou=cfg.iou, max_det=max_det, progress=progress)
        ids = {i.image_id for i in val}
        keep = [k for k, gt in enumerate(oof.gts) if gt["image_id"] in ids]
        where = f"{len(keep)} out-of-fold val images"
        if keep:
            oof = RawPredictions(
                oof.names, [oof.gts[k] for k in keep], [oof.sets[k] for k in keep], [oof.members[k] for k in keep]
            )
        else:
            where = f"{len(oof.gts)} out-of-fold images (no val image in the pool)"
        return fused_predictions(oof, detector, conf, max_det), where, "oof/map40"
    raw = predict_raw(
        detector, val, conf=min(conf, detector.fusion.skip_box_thr), iou=cfg.iou, max_det=max_det, desc="predict val"
    )
    return fused_predictions(raw, detector, conf, max_det), f"{len(val)} val images", "val/map40"


def prepare_ensemble_gate(
    cfg, chosen: ChosenGate, detector, name: str, images: list, data_yaml: Path, settings, cvs, members, oof=None
) -> tuple[PreparedGate, list[dict]]:
    """The thresholds (given, tuned, or saved on the classifier for this ensemble) and P(abnormal) of every
    image of `split`; returns the gate and the tuning table."""
    origin = GateOrigin(
        chosen.uri, cfg.tracking.tracking_uri, name, ensemble_digest(detector.path), bool(cfg.tracking.enabled)
    )
    gate, tuned_on, table = chosen.settings, None, []
    if cfg.gate.tune:
        fused, where, objective = tuning_predictions(cfg, detector, data_yaml, cvs, members, oof, settings.progress)
        probs = abnormal_probabilities(chosen.classifier, {g["image_id"]: g["path"] for g in fused.gts})
        gate, table = tune_on(fused.preds, fused.gts, fused.names, probs, gate, settings)
        tuned_on = f"{where} ({objective})"
        print(f"gate tuned on {tuned_on}: low {gate.low:g}, high {gate.high:g}", flush=True)
        note = save_tuned_thresholds(origin, gate, f"{objective} on {where}")
    else:
        stored, note, saved_on = registered_thresholds(cfg.gate, origin, cfg.no_finding_class)
        if stored is not None:
            gate, tuned_on = stored, saved_on
    if note:
        print(note, flush=True)
    probs = abnormal_probabilities(chosen.classifier, {i.image_id: str(i.path) for i in images})
    return PreparedGate(gate, chosen.onnx, int(chosen.classifier.imgsz), probs, tuned_on), table


def write_gated_folder(folder: Path, chosen: ChosenGate, gate: PreparedGate, table: list[dict], **extra) -> Path:
    """classifier.onnx and gate.json beside the ensemble's detector/: what the service and the pyfunc load
    (xray_exp.inference.gated_onnx_detector.GatedOnnxDetector)."""
    shutil.copyfile(chosen.onnx, Path(folder) / "classifier.onnx")
    return write_gate_json(
        Path(folder), chosen.onnx, gate.imgsz, gate.settings, gate.tuned_on, table, classifier_uri=chosen.uri, **extra
    )
