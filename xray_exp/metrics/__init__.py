"""Clinical detection metrics on per-image records (numpy; scikit-learn for AUROC, scipy for DeLong).

    from xray_exp.metrics import bootstrap_ci, evaluate_records, flat_metrics, paired_comparison
    result = evaluate_records(preds, gts, names, match_iou=0.4, decision_conf=0.25)
    flat_metrics(result, prefix="test", ci=bootstrap_ci(result))   # {'test/map40': ..., ...}
    paired_comparison(result, other_result)                          # [PairedDifference(...), ...]

Definitions and references: docs/metrics.md.

Records: {"image_id", "boxes" (N, 4) xyxy pixels, "labels" (N,), "scores" (N,) for predictions}.
"""

from xray_exp.metrics.ap import AP_METHODS, average_precision, precision_recall_curve
from xray_exp.metrics.bootstrap import bootstrap_ci
from xray_exp.metrics.boxes import box_iou
from xray_exp.metrics.confusion import confusion_matrix
from xray_exp.metrics.detection import COCO_IOU_THRESHOLDS, MAP40_METHODS, DetectionMetrics, detection_metrics
from xray_exp.metrics.failures import worst_false_negatives, worst_false_positives
from xray_exp.metrics.froc import FROC_FP_RATES, FROC_HITS, FrocResult, froc
from xray_exp.metrics.image_level import ImageLevelResult, image_level_metrics, image_scores
from xray_exp.metrics.matching import ClassMatches, greedy_match, match_dataset
from xray_exp.metrics.paired import PairedDifference, paired_comparison, verdict_line
from xray_exp.metrics.records import ImageBoxes, pair_records
from xray_exp.metrics.resample import HEADLINE_METRICS
from xray_exp.metrics.summary import EvaluationResult, evaluate_records, flat_metrics, metric_key

__all__ = [
    "AP_METHODS",
    "COCO_IOU_THRESHOLDS",
    "FROC_FP_RATES",
    "FROC_HITS",
    "HEADLINE_METRICS",
    "MAP40_METHODS",
    "ClassMatches",
    "DetectionMetrics",
    "EvaluationResult",
    "FrocResult",
    "ImageBoxes",
    "ImageLevelResult",
    "PairedDifference",
    "average_precision",
    "bootstrap_ci",
    "box_iou",
    "confusion_matrix",
    "detection_metrics",
    "evaluate_records",
    "flat_metrics",
    "froc",
    "greedy_match",
    "image_level_metrics",
    "image_scores",
    "match_dataset",
    "metric_key",
    "pair_records",
    "paired_comparison",
    "precision_recall_curve",
    "verdict_line",
    "worst_false_negatives",
    "worst_false_positives",
]
