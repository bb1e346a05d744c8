"""Clinical detection metrics on per-image records (numpy only; scikit-learn for AUROC).

    from xray_exp.metrics import evaluate_records, flat_metrics
    result = evaluate_records(preds, gts, names, match_iou=0.4, decision_conf=0.25)
    flat_metrics(result, prefix="test")   # {'test/map40': ..., 'test/froc_mean': ..., ...}

Records: {"image_id", "boxes" (N, 4) xyxy pixels, "labels" (N,), "scores" (N,) for predictions}.
"""

from xray_exp.metrics.ap import AP_METHODS, average_precision, precision_recall_curve
from xray_exp.metrics.boxes import box_iou
from xray_exp.metrics.confusion import confusion_matrix
from xray_exp.metrics.detection import COCO_IOU_THRESHOLDS, DetectionMetrics, detection_metrics
from xray_exp.metrics.failures import worst_false_negatives, worst_false_positives
from xray_exp.metrics.froc import FROC_FP_RATES, FrocResult, froc
from xray_exp.metrics.image_level import ImageLevelResult, image_level_metrics, image_scores
from xray_exp.metrics.matching import ClassMatches, greedy_match, match_dataset
from xray_exp.metrics.records import ImageBoxes, pair_records
from xray_exp.metrics.summary import EvaluationResult, evaluate_records, flat_metrics, metric_key

__all__ = [
    "AP_METHODS", "COCO_IOU_THRESHOLDS", "FROC_FP_RATES", "ClassMatches", "DetectionMetrics", "EvaluationResult",
    "FrocResult", "ImageBoxes", "ImageLevelResult", "average_precision", "box_iou", "confusion_matrix",
    "detection_metrics", "evaluate_records", "flat_metrics", "froc", "greedy_match", "image_level_metrics",
    "image_scores", "match_dataset", "metric_key", "pair_records", "precision_recall_curve",
    "worst_false_negatives", "worst_false_positives",
]
