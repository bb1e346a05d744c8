"""Evaluate a detector on one split: predict, compute the clinical metrics, write the report.

    from xray_exp.evaluation import evaluate_split
    metrics = evaluate_split("best.pt", "data.yaml", "test", imgsz=320, conf=0.001, iou=0.7, tta=False,
                             out_dir="outputs/eval/test", device="cpu")
    metrics["test/map40"], metrics["test/froc_mean"], metrics["test/ap40/nodule"]

Metric names: see xray_exp.metrics.summary (`{split}/map40`, `{split}/mAP50`, `{split}/mAP50-95`,
`{split}/froc_mean`, `{split}/froc_fp0.125` ... `{split}/froc_fp8`, `{split}/auroc`, `{split}/sensitivity`,
`{split}/specificity`, `{split}/ap40/<class>`, ...; definitions: docs/metrics.md).
"""

from __future__ import annotations

from pathlib import Path

from xray_exp.evaluation.predict import predict_split
from xray_exp.evaluation.report import write_report
from xray_exp.metrics.summary import evaluate_records, flat_metrics


def evaluate_split(weights, data_yaml: str | Path, split: str = "test", imgsz: int = 640, conf: float = 0.001,
                   iou: float = 0.7, tta: bool = False, out_dir: str | Path | None = None,
                   device: str | None = None, *, batch: int = 16, max_det: int = 300, match_iou: float = 0.4,
                   decision_conf: float = 0.25, ap_method: str = "coco101", wbf_iou: float = 0.55,
                   gallery_size: int = 12, prefix: str | None = None,
                   settings_dir: str | Path | None = None) -> dict[str, float]:
    """Flat metrics `{prefix}/<name>` (prefix defaults to the split name); the report goes to out_dir
    (None: no files).

    weights: .pt/.onnx path or a loaded Ultralytics model; conf/iou: the prediction confidence (keep
    it low for AP) and NMS IoU; tta: add horizontal-flip predictions fused by WBF (`wbf_iou`);
    match_iou: IoU of a hit for FROC, precision/recall, confusion and galleries; decision_conf: the
    reporting threshold (image level, precision/recall, confusion, missed lesions).
    """
    out = predict_split(weights, data_yaml, split, imgsz=imgsz, conf=conf, iou=iou, tta=tta, device=device,
                        batch=batch, max_det=max_det, wbf_iou=wbf_iou, settings_dir=settings_dir)
    result = evaluate_records(out.preds, out.gts, out.names, match_iou=match_iou, decision_conf=decision_conf,
                              method=ap_method, gallery_size=gallery_size)
    flat = flat_metrics(result, prefix=prefix or split)
    if out_dir is not None:
        settings = {"weights": weights if isinstance(weights, str | Path) else type(weights).__name__,
                    "data": data_yaml, "split": split, "imgsz": imgsz, "conf": conf, "nms iou": iou, "tta": tta,
                    "match iou": match_iou, "decision conf": decision_conf, "device": device}
        write_report(result, out.preds, out.gts, flat, out_dir, settings=settings)
    return flat
