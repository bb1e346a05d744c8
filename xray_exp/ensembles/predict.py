"""An ensemble's model folder, and its predictions on dataset images: every member x view once, fused at will.

    folder = write_model_folder(members, FusionSettings(), tta_views(True), "outputs/ensemble/<time>/model")
    detector = EnsembleDetector(folder)                     # what the service and the pyfunc load
    raw = predict_raw(detector, images, conf=0.001)         # per image: member x view detection sets
    fused = fused_predictions(raw, detector, conf=0.001)    # SplitPredictions for the one evaluator
    single = member_predictions(raw, detector, member=2)    # member 2 alone, original view: the single model

The raw sets are kept so that fusion settings can be scored again without predicting again (tuning).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from xray_exp.ensembles.detector import ENSEMBLE_FILE, EnsembleDetector
from xray_exp.ensembles.fusion import Detections, FusionSettings, View
from xray_exp.evaluation.dataset import SplitImage, read_ground_truth
from xray_exp.evaluation.predict import SplitPredictions
from xray_exp.imaging import read_xray


def write_model_folder(
    members: list, fusion: FusionSettings, views: list[View], out: str | Path, extra: dict | None = None
) -> Path:
    """ensemble.json (members with weights and lineage, fusion, views) + members/NN-<name>.onnx copies."""
    out = Path(out)
    (out / "members").mkdir(parents=True, exist_ok=True)
    entries = []
    for i, m in enumerate(members):
        target = Path("members") / f"{i:02d}-{m.name}.onnx"
        shutil.copyfile(m.onnx, out / target)
        entries.append({**m.lineage(), "onnx": str(target), "names": m.names})
    spec = {
        "format": "xray_exp-ensemble/1",
        "members": entries,
        "fusion": fusion.as_dict(),
        "views": [asdict(v) for v in views],
        "names": members[0].names,
        **(extra or {}),
    }
    (out / ENSEMBLE_FILE).write_text(json.dumps(spec, indent=2))
    return out


def update_model_folder(
    folder: str | Path, fusion: FusionSettings, member_weights: list[float], extra: dict | None = None
) -> None:
    path = Path(folder) / ENSEMBLE_FILE
    spec = json.loads(path.read_text())
    spec["fusion"] = fusion.as_dict()
    for entry, weight in zip(spec["members"], member_weights, strict=True):
        entry["weight"] = float(weight)
    spec.update(extra or {})
    path.write_text(json.dumps(spec, indent=2))


@dataclass
class RawPredictions:
    names: list[str]
    gts: list[dict]  # ground truth records (path, width, height)
    sets: list[list[Detections]]  # per image: per (member, view) in the detector's member-major order
    members: list[list[int]]  # per image: the member indices that predicted it


def predict_raw(
    detector: EnsembleDetector,
    images: list[SplitImage],
    conf: float,
    iou: float = 0.7,
    max_det: int = 300,
    members_of: list[list[int]] | None = None,
    progress: bool = False,
    desc: str = "predict",
) -> RawPredictions:
    """Every member (or, per image, `members_of[i]`) on every view of every image."""
    from tqdm import tqdm

    everyone = list(range(len(detector.members)))
    gts, sets, used = [], [], []
    for i, image in enumerate(tqdm(images, desc=desc, unit="img", disable=not progress, leave=False)):
        gray = read_xray(image.path)
        gts.append(read_ground_truth(image, gray.shape[1], gray.shape[0]))
        chosen = members_of[i] if members_of is not None else everyone
        sets.append(detector.raw(gray, conf=conf, iou=iou, max_det=max_det, members=chosen))
        used.append(list(chosen))
    return RawPredictions([detector.names[k] for k in sorted(detector.names)], gts, sets, used)


def fused_predictions(
    raw: RawPredictions,
    detector: EnsembleDetector,
    conf: float,
    max_det: int = 300,
    fusion: FusionSettings | None = None,
    member_weights: list[float] | None = None,
) -> SplitPredictions:
    """Fuse each image's sets (optionally with other settings / member weights) into the evaluator's records."""
    weights = member_weights or detector.member_weights
    n_views = len(detector.views)
    preds = []
    for gt, sets, used in zip(raw.gts, raw.sets, raw.members, strict=True):
        set_weights = [weights[m] for m in used for _ in range(n_views)]
        boxes, scores, labels = detector.fuse(
            sets, gt["width"], gt["height"], conf, max_det, fusion=fusion, weights=set_weights
        )
        preds.append({"image_id": gt["image_id"], "boxes": boxes, "scores": scores, "labels": labels})
    return SplitPredictions(raw.names, preds, raw.gts)


def member_predictions(
    raw: RawPredictions, detector: EnsembleDetector, member: int, conf: float, max_det: int = 300
) -> SplitPredictions:
    """One member alone on the original view: exactly what that model serves on its own."""
    n_views, view = len(detector.views), detector.views.index(View(1.0, False))
    preds = []
    for gt, sets, used in zip(raw.gts, raw.sets, raw.members, strict=True):
        boxes, scores, labels = sets[used.index(member) * n_views + view]
        keep = (scores >= conf).nonzero()[0][:max_det]
        preds.append({"image_id": gt["image_id"], "boxes": boxes[keep], "scores": scores[keep], "labels": labels[keep]})
    return SplitPredictions(raw.names, preds, raw.gts)
