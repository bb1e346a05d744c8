"""Every metric of one evaluation, and the flat `{prefix}/name` dict that tracking and sweeps use.

    result = evaluate_records(preds, gts, names=["nodule", "effusion"], match_iou=0.4, decision_conf=0.25)
    flat_metrics(result, prefix="test")
    # {'test/map40': ..., 'test/mAP50': ..., 'test/mAP50-95': ..., 'test/froc_mean': ...,
    #  'test/froc_fp0.125': ..., ..., 'test/froc_fp8': ..., 'test/auroc': ..., 'test/sensitivity': ...,
    #  'test/specificity': ..., 'test/ap40/nodule': ..., ...}
    flat_metrics(result, prefix="test", ci=bootstrap_ci(result))   # + 'test/map40_ci_low', ..._ci_high

`map40` and `ap40/<class>` follow `map40_method` ("voc2010": the VinBigData competition's PASCAL VOC
2010 AP at IoU > 0.4; "coco101"); mAP50 and mAP50-95 are COCO 101-point AP with COCO matching. FROC
follows the LUNA16 convention (`froc_hit`: "iou" or "center"). See docs/metrics.md.

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
from numpy.typing import NDArray

from xray_exp.metrics.confusion import confusion_from_pairs
from xray_exp.metrics.detection import (
    MAP40_METHODS,
    DetectionMetrics,
    ap_thresholds,
    check_map40_method,
    detection_metrics_from_matches,
    map40_matches,
)
from xray_exp.metrics.failures import Failure, false_negatives_from_matches, false_positives_from_matches
from xray_exp.metrics.froc import FROC_FP_RATES, FrocResult, froc_events, froc_from_events
from xray_exp.metrics.image_level import ImageLevelResult, image_level_from_pairs
from xray_exp.metrics.matching import exceeds_max_dets, match_dataset, threshold_index
from xray_exp.metrics.nofinding import NO_FINDING_NAME, no_finding_ap, no_finding_scores, score_overrides
from xray_exp.metrics.records import ImageBoxes, Record, pair_records
from xray_exp.metrics.resample import HEADLINE_METRICS, MatchCache, gt_counts

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
    confusion: NDArray[np.int64]  # (C + 1, C + 1) [true, predicted], last = background
    false_positives: list[Failure] = field(default_factory=list)
    false_negatives: list[Failure] = field(default_factory=list)
    cache: MatchCache | None = None  # per-image matches for the bootstrap and paired comparison


def group_index(
    groups: Mapping[str, object] | Sequence[object] | None, pairs: list[tuple[ImageBoxes, ImageBoxes]]
) -> NDArray[np.int64] | None:
    """Groups (a mapping image_id -> group, or a sequence aligned with the ground-truth records) as
    (N,) integer codes."""
    if groups is None:
        return None
    ids = [gt.image_id for _, gt in pairs]
    if isinstance(groups, Mapping):
        missing = [i for i in ids if i not in groups and str(i) not in groups]
        if missing:
            raise ValueError(f"groups: no group for images {missing[:5]}; give every image its group (patient) id")
        values = [groups[i] if i in groups else groups[str(i)] for i in ids]
    else:
        values = list(groups)
        if len(values) != len(ids):
            raise ValueError(
                f"groups: {len(values)} group ids for {len(ids)} ground-truth records; "
                "give one per record, in the same order (or a mapping image_id -> group)"
            )
    return np.unique(np.asarray([str(v) for v in values]), return_inverse=True)[1].astype(np.int64)


def evaluate_records(
    preds: Sequence[Record],
    gts: Sequence[Record],
    names: Sequence[str],
    match_iou: float = 0.4,
    decision_conf: float = 0.25,
    map40_method: str = "voc2010",
    max_dets: int | None = 100,
    gallery_size: int = 12,
    froc_hit: str = "iou",
    no_finding_class: int | None = None,
    groups: Mapping[str, object] | Sequence[object] | None = None,
    method: str | None = None,
) -> EvaluationResult:
    """mAP50 / mAP50-95 (COCO matching and 101-point AP; `max_dets` per image and class), map40 by
    `map40_method`, and at `match_iou`: FROC (hit by `froc_hit`), precision/recall, confusion matrix
    and failure galleries; image-level metrics and the operating point at `decision_conf`.

    `no_finding_class`: score the VinBigData "No finding" class (see xray_exp.metrics.nofinding) into
    map40 under that class id (a name beyond `names` is "No finding"). `groups`: per-image group ids
    (patients) for the bootstrap. `method` is the former name of `map40_method`."""
    map40_method = check_map40_method(method if method is not None else map40_method)
    names = [str(n) for n in names]
    nc = len(names)
    pairs = pair_records(preds, gts)
    thresholds = ap_thresholds(match_iou)
    full = match_dataset(pairs, nc, thresholds)
    truncated = match_dataset(pairs, nc, thresholds, max_dets=max_dets) if exceeds_max_dets(pairs, max_dets) else full
    operating = [m.row(threshold_index(thresholds, match_iou)) for m in full]
    map40 = map40_matches(pairs, nc, truncated, thresholds, map40_method)
    detection = detection_metrics_from_matches(
        pairs, truncated, operating, thresholds, match_iou, decision_conf, map40, map40_method
    )
    no_finding = None
    if no_finding_class is not None:
        if no_finding_class < 0 or no_finding_class > nc:
            raise ValueError(
                f"no_finding_class={no_finding_class}: give a class id in 0..{nc} "
                f"({nc} = one past the {nc} class names; VinBigData: 14)"
            )
        if no_finding_class < nc and detection.instances[no_finding_class]:
            raise ValueError(
                f"no_finding_class={no_finding_class} ({names[no_finding_class]!r}) has ground-truth "
                "boxes; the 'No finding' class must not be a lesion class"
            )
        no_finding = no_finding_scores(pairs, score_overrides(preds))
        detection.no_finding_ap = no_finding_ap(*no_finding, MAP40_METHODS[map40_method][1])
        detection.no_finding_name = names[no_finding_class] if no_finding_class < nc else NO_FINDING_NAME
        if no_finding_class < nc:  # the class's own (undefined) lesion AP is replaced by the image-level one
            detection.ap40[no_finding_class] = np.nan
    events = froc_events(pairs, match_iou, froc_hit)
    image_level = image_level_from_pairs(pairs, decision_conf)
    cache = MatchCache(
        image_ids=[gt.image_id for _, gt in pairs],
        groups=group_index(groups, pairs),
        gt_per_image=gt_counts(pairs, nc),
        coco=truncated,
        thresholds=thresholds,
        map40=map40,
        map40_method=map40_method,
        froc=events,
        fp_rates=np.asarray(FROC_FP_RATES),
        image_score=image_level.scores,
        abnormal=image_level.abnormal,
        decision_conf=float(decision_conf),
        no_finding=no_finding,
    )
    return EvaluationResult(
        names=names,
        detection=detection,
        froc=froc_from_events(events, FROC_FP_RATES, froc_hit),
        image_level=image_level,
        confusion=confusion_from_pairs(pairs, nc, decision_conf, match_iou),
        false_positives=false_positives_from_matches(pairs, operating, gallery_size),
        false_negatives=false_negatives_from_matches(pairs, operating, decision_conf, match_iou, gallery_size),
        cache=cache,
    )


def flat_metrics(
    result: EvaluationResult, prefix: str, ci: Mapping[str, tuple[float, float]] | None = None
) -> dict[str, float]:
    """`{prefix}/name` -> value; with `ci` (from bootstrap_ci) also `{prefix}/{name}_ci_low` and
    `{prefix}/{name}_ci_high` for each headline metric."""
    det, fr, img = result.detection, result.froc, result.image_level
    values = {
        "map40": det.map40,
        "mAP50": det.map_at(0.5),
        "mAP50-95": det.map50_95,
        "lesion_precision": det.micro_precision,
        "lesion_recall": det.micro_recall,
        "froc_mean": fr.mean,
        **{fp_rate_label(r): s for r, s in zip(fr.fp_rates, fr.sensitivity, strict=True)},
        "auroc": img.auroc,
        "sensitivity": img.sensitivity,
        "specificity": img.specificity,
        "images": len(img.image_ids),
        "normal_images": img.n_normal,
        "instances": int(det.instances.sum()),
    }
    if ci:
        for name in HEADLINE_METRICS:
            low, high = ci[name]
            values[f"{name}_ci_low"], values[f"{name}_ci_high"] = low, high
    out = {metric_key(prefix, name): float(v) for name, v in values.items()}
    for name, ap in zip(result.names, det.ap40, strict=True):
        if np.isfinite(ap):
            out[metric_key(prefix, "ap40", name)] = float(ap)
    if det.no_finding_name is not None:
        out[metric_key(prefix, "ap40", det.no_finding_name)] = float(det.no_finding_ap)
    return out
