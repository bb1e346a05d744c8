"""Evaluation of a detector on a YOLO-format split: predictions (+ flip TTA), metrics with CIs, report.

    from xray_exp.evaluation import MetricSettings, evaluate_split
    metrics = evaluate_split("best.pt", "data.yaml", "test", imgsz=320, conf=0.001, iou=0.7, tta=False,
                             out_dir="outputs/eval/test", device="cpu", metrics=MetricSettings(n_boot=1000))

Command line: python -m xray_exp.evaluate model=<best.pt | models:/name@alias> split=test
"""

from xray_exp.evaluation.pipeline import MetricSettings, evaluate_split, score_predictions

__all__ = ["MetricSettings", "evaluate_split", "score_predictions"]
