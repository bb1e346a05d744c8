"""Evaluation of a detector on a YOLO-format split: predictions (+ flip TTA), clinical metrics, report.

    from xray_exp.evaluation import evaluate_split
    metrics = evaluate_split("best.pt", "data.yaml", "test", imgsz=320, conf=0.001, iou=0.7, tta=False,
                             out_dir="outputs/eval/test", device="cpu")

Command line: python -m xray_exp.evaluate model=<best.pt | models:/name@alias> split=test
"""

from xray_exp.evaluation.pipeline import evaluate_split

__all__ = ["evaluate_split"]
