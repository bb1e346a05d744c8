"""Dataset-level detection metrics: mAP@0.4 (VinBigData), per-class AP at several IoU thresholds
(COCO), mAP50, mAP50-95, and precision/recall at a confidence threshold.

- `map40` / `ap40`: by `map40_method`, "voc2010" (default; the VinBigData competition's PASCAL VOC 2010
  AP: VOC matching with IoU > 0.4, all-point interpolation, every detection) or "coco101" (COCO matching
  with IoU >= 0.4, 101 recall points, top `max_dets` per image and class).
- `map_at(iou)`, mAP50, mAP50-95: always COCO (pycocotools) matching and 101-point interpolation.

    m = detection_metrics(preds, gts, num_classes=4, match_iou=0.4, conf=0.25)
    m.map40, m.ap40, m.map_at(0.5), m.map50_95, m.precision, m.recall, m.instances
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike, NDArray

from xray_exp.metrics.ap import average_precision, precision_recall_curve
from xray_exp.metrics.matching import ClassMatches, exceeds_max_dets, match_dataset, threshold_index
from xray_exp.metrics.records import ImageBoxes, Record, pair_records

COCO_IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)  # the same floats pycocotools uses
VINBIGDATA_IOU = 0.4
# map40 method -> (matching rule, interpolation); "all_point" is the former name of the VOC variant
MAP40_METHODS = {"voc2010": ("voc", "all_point"), "coco101": ("coco", "coco101")}
MAP40_ALIASES = {"all_point": "voc2010"}


def check_map40_method(method: str) -> str:
    method = MAP40_ALIASES.get(method, method)
    if method not in MAP40_METHODS:
        raise ValueError(f"unknown map40 method {method!r}; choose one of {sorted(MAP40_METHODS)}")
    return method


def nanmean(values: ArrayLike) -> float:
    """Mean of the finite entries; NaN if there are none (no warning)."""
    array = np.asarray(values, dtype=np.float64)
    finite = array[np.isfinite(array)]
    return float(finite.mean()) if finite.size else float("nan")


@dataclass
class DetectionMetrics:
    """Per-class results. AP is NaN for classes without ground truth and left out of every mean."""

    iou_thresholds: NDArray[np.float64]  # (T,)
    ap: NDArray[np.float64]  # (C, T)
    instances: NDArray[np.int64]  # (C,) ground-truth boxes
    images_with_class: NDArray[np.int64]  # (C,) images holding at least one box of the class
    match_iou: float  # IoU of the operating point (precision/recall, curves)
    conf: float  # confidence of the operating point
    tp: NDArray[np.int64]  # (C,) true positives with score >= conf at match_iou
    fp: NDArray[np.int64]  # (C,) false positives with score >= conf at match_iou
    ap40: NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))  # (C,) AP at IoU 0.4 by `method`
    method: str = "voc2010"  # the map40 method
    # (recall, precision, scores) per class at the operating point
    pr_curves: list[tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]] = field(default_factory=list)
    no_finding_ap: float = float("nan")  # the "No finding" class's AP (when scored)
    no_finding_name: str | None = None  # its name; None = not scored

    @property
    def map40(self) -> float:
        """Mean AP at IoU 0.4 by `method` over classes with ground truth (+ "No finding" when scored)."""
        extra = [self.no_finding_ap] if self.no_finding_name is not None else []
        return nanmean([*self.ap40, *extra])

    def _column(self, iou: float) -> int:
        return threshold_index(self.iou_thresholds, iou)

    def ap_at(self, iou: float) -> NDArray[np.float64]:
        return self.ap[:, self._column(iou)]

    def map_at(self, iou: float) -> float:
        return nanmean(self.ap_at(iou))

    @property
    def ap50_95(self) -> NDArray[np.float64]:
        """(C,) AP averaged over IoU 0.50:0.05:0.95."""
        ap: NDArray[np.float64] = self.ap[:, [self._column(t) for t in COCO_IOU_THRESHOLDS]].mean(axis=1)
        return ap

    @property
    def map50_95(self) -> float:
        return nanmean(self.ap50_95)

    @property
    def precision(self) -> NDArray[np.float64]:
        """(C,) TP / detections at the operating point; 0 for a class with no detections."""
        share: NDArray[np.float64] = self.tp / np.maximum(self.tp + self.fp, 1)
        return share

    @property
    def recall(self) -> NDArray[np.float64]:
        """(C,) TP / ground-truth boxes; NaN for a class without ground truth."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.instances > 0, self.tp / self.instances, np.nan)

    @property
    def micro_precision(self) -> float:
        return float(self.tp.sum() / max(self.tp.sum() + self.fp.sum(), 1))

    @property
    def micro_recall(self) -> float:
        total = self.instances.sum()
        return float(self.tp.sum() / total) if total else float("nan")


def ap_thresholds(match_iou: float, extra: ArrayLike = ()) -> NDArray[np.float64]:
    """0.4, `match_iou` and `extra` (when not among them), then IoU 0.50:0.05:0.95."""
    wanted = np.array(sorted({VINBIGDATA_IOU, float(match_iou), *map(float, np.ravel(extra))}), dtype=np.float64)
    wanted = wanted[~np.isclose(wanted[:, None], COCO_IOU_THRESHOLDS).any(axis=1)]
    return np.concatenate([wanted, COCO_IOU_THRESHOLDS])


def detection_metrics(
    preds: Sequence[Record],
    gts: Sequence[Record],
    num_classes: int,
    match_iou: float = VINBIGDATA_IOU,
    conf: float = 0.25,
    map40_method: str = "voc2010",
    max_dets: int | None = 100,
    iou_thresholds: ArrayLike = (),
) -> DetectionMetrics:
    """COCO AP per class at 0.4, `match_iou`, `iou_thresholds` and 0.50:0.95 (`max_dets` top detections
    per image and class, COCO: 100; None = all), AP40 by `map40_method`. Precision, recall and the PR
    curves use every detection, COCO-matched at `match_iou`."""
    pairs = pair_records(preds, gts)
    thresholds = ap_thresholds(match_iou, np.atleast_1d(iou_thresholds))
    full = match_dataset(pairs, num_classes, thresholds)
    truncated = (
        match_dataset(pairs, num_classes, thresholds, max_dets=max_dets) if exceeds_max_dets(pairs, max_dets) else full
    )
    operating = [m.row(threshold_index(thresholds, match_iou)) for m in full]
    map40_method = check_map40_method(map40_method)
    map40 = map40_matches(pairs, num_classes, truncated, thresholds, map40_method)
    return detection_metrics_from_matches(pairs, truncated, operating, thresholds, match_iou, conf, map40, map40_method)


def map40_matches(
    pairs: list[tuple[ImageBoxes, ImageBoxes]],
    num_classes: int,
    coco: list[ClassMatches],
    thresholds: NDArray[np.float64],
    map40_method: str,
) -> list[ClassMatches]:
    """Single-threshold matches at IoU 0.4 by the method's rule (COCO ones are reused from `coco`)."""
    if MAP40_METHODS[map40_method][0] == "voc":
        return match_dataset(pairs, num_classes, [VINBIGDATA_IOU], rule="voc")
    return [m.row(threshold_index(thresholds, VINBIGDATA_IOU)) for m in coco]


def detection_metrics_from_matches(
    pairs: list[tuple[ImageBoxes, ImageBoxes]],
    ap_matches: list[ClassMatches],
    operating: list[ClassMatches],
    thresholds: NDArray[np.float64],
    match_iou: float,
    conf: float,
    map40: list[ClassMatches],
    map40_method: str = "voc2010",
) -> DetectionMetrics:
    """`ap_matches` at every threshold (COCO AP), `operating` at `match_iou` only (the operating point),
    `map40` at IoU 0.4 by `map40_method`."""
    num_classes = len(ap_matches)
    ap = np.array(
        [[average_precision(m.tp[t], m.n_gt, "coco101") for t in range(len(thresholds))] for m in ap_matches]
    ).reshape(num_classes, len(thresholds))
    interpolation = MAP40_METHODS[map40_method][1]
    ap40 = np.array([average_precision(m.tp[0], m.n_gt, interpolation) for m in map40], dtype=np.float64)
    tp = np.array([int(m.tp[0][m.scores >= conf].sum()) for m in operating], dtype=np.int64)
    fp = np.array([int((~m.tp[0][m.scores >= conf]).sum()) for m in operating], dtype=np.int64)
    curves = [(*precision_recall_curve(m.tp[0], m.n_gt), m.scores) for m in operating]
    images_with_class = np.zeros(num_classes, dtype=np.int64)
    for _, gt in pairs:
        images_with_class[np.unique(gt.labels)] += 1
    return DetectionMetrics(
        iou_thresholds=thresholds,
        ap=ap,
        instances=np.array([m.n_gt for m in ap_matches], dtype=np.int64),
        images_with_class=images_with_class,
        match_iou=float(match_iou),
        conf=float(conf),
        tp=tp,
        fp=fp,
        ap40=ap40,
        method=map40_method,
        pr_curves=curves,
    )
