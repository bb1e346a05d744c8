"""Every metric of one evaluation, and the flat `{prefix}/name` dict that tracking and sweeps use.

    result = evaluate_records(preds, gts, names=["nodule", "effusion"], match_iou=0.4, decision_conf=0.25)
    flat_metrics(result, prefix="test")
    # {'test/map40': ..., 'test/mAP50': ..., 'test/mAP50-95': ..., 'test/froc_mean': ...,
    #  'test/froc_fp0.125': ..., ..., 'test/froc_fp8': ..., 'test/auroc': ..., 'test/sensitivity': ...,
    #  'test/specificity': ..., 'test/no_findings_rate': ..., 'test/ap40/nodule': ..., ...}

Names use only characters MLflow accepts on every platform (letters, digits, _ - . space /); class
names are sanitised with `metric_key`. `ap40/<class>` is left out for classes without ground truth
(their AP is undefined); the other keys are always present, NaN when undefined (e.g. AUROC on a split
without normal images).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from xray_exp.metrics.confusion import confusion_from_pairs
from xray_exp.metrics.detection import DetectionMetrics, ap_thresholds, detection_metrics_from_matches
from xray_exp.metrics.failures import false_negatives_from_matches, false_positives_from_matches
from xray_exp.metrics.froc import FrocResult, froc_from_matches
from xray_exp.metrics.image_level import ImageLevelResult, image_level_from_pairs
from xray_exp.metrics.matching import exceeds_max_dets, match_dataset, threshold_index
from xray_exp.metrics.records import pair_records

_UNSAFE = re.compile(r"[^A-Za-z0-9_.\- ]")
COUNT_METRICS = ("images", "normal_images", "instances")  # the flat dict's counts; every other value is a rate


def metric_key(*parts: str) -> str:
    """Join parts with '/' after replacing characters MLflow rejects (and '/') with '_'."""
    clean = []
    for part in parts:
        text = _UNSAFE.sub("_", str(part)).strip()
        clean.append("_" if not text or set(text) == {"."} else text)
    return "/".join(clean)


def fp_rate_label(rate: float) -> str:
    """0.125 -> 'froc_fp0.125', 8.0 -> 'froc_fp8'."""
    return f"froc_fp{rate:g}"


@dataclass
class EvaluationResult:
    names: list[str]
    detection: DetectionMetrics
    froc: FrocResult
    image_level: ImageLevelResult
    confusion: np.ndarray  # (C + 1, C + 1) [true, predicted], last = background
    false_positives: list[dict] = field(default_factory=list)
    false_negatives: list[dict] = field(default_factory=list)


def evaluate_records(preds: Sequence[Mapping], gts: Sequence[Mapping], names: Sequence[str],
                     match_iou: float = 0.4, decision_conf: float = 0.25, method: str = "coco101",
                     max_dets: int | None = 100, gallery_size: int = 12) -> EvaluationResult:
    """AP/mAP (COCO matching; `max_dets` per image and class), and at `match_iou`: FROC, precision/recall,
    confusion matrix and failure galleries; image-level metrics and the operating point at `decision_conf`."""
    names = [str(n) for n in names]
    nc = len(names)
    pairs = pair_records(preds, gts)
    thresholds = ap_thresholds(match_iou)
    full = match_dataset(pairs, nc, thresholds)
    truncated = match_dataset(pairs, nc, thresholds, max_dets=max_dets) if exceeds_max_dets(pairs, max_dets) else full
    operating = [m.row(threshold_index(thresholds, match_iou)) for m in full]
    return EvaluationResult(
        names=names,
        detection=detection_metrics_from_matches(pairs, truncated, operating, thresholds, match_iou,
                                                 decision_conf, method),
        froc=froc_from_matches(operating, len(pairs)),
        image_level=image_level_from_pairs(pairs, decision_conf),
        confusion=confusion_from_pairs(pairs, nc, decision_conf, match_iou),
        false_positives=false_positives_from_matches(pairs, operating, gallery_size),
        false_negatives=false_negatives_from_matches(pairs, operating, decision_conf, match_iou, gallery_size),
    )


def flat_metrics(result: EvaluationResult, prefix: str) -> dict[str, float]:
    det, fr, img = result.detection, result.froc, result.image_level
    values = {
        "map40": det.map_at(0.4),
        "mAP50": det.map_at(0.5),
        "mAP50-95": det.map50_95,
        "lesion_precision": det.micro_precision,
        "lesion_recall": det.micro_recall,
        "froc_mean": fr.mean,
        **{fp_rate_label(r): s for r, s in zip(fr.fp_rates, fr.sensitivity, strict=True)},
        "auroc": img.auroc,
        "sensitivity": img.sensitivity,
        "specificity": img.specificity,
        "no_findings_rate": img.no_findings_rate,
        "images": len(img.image_ids),
        "normal_images": img.n_normal,
        "instances": int(det.instances.sum()),
    }
    out = {metric_key(prefix, name): float(v) for name, v in values.items()}
    for name, ap in zip(result.names, det.ap_at(0.4), strict=True):
        if np.isfinite(ap):
            out[metric_key(prefix, "ap40", name)] = float(ap)
    return out
