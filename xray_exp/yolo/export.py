"""ONNX export of a YOLO checkpoint and its parity check against the PyTorch weights.

    from xray_exp.yolo.export import export_onnx, onnx_parity
    onnx_path = export_onnx("run/weights/best.pt", imgsz=320)             # run/weights/best.onnx
    report = onnx_parity("run/weights/best.pt", onnx_path, images, imgsz=320, conf=0.25, iou_thr=0.5,
                         out_file="run/onnx_parity.json")                  # report["passed"]
    python -m xray_exp.train post.onnx=true post.parity_conf=0.25 post.parity_iou=0.5

Ultralytics is imported inside functions only (call xray_exp.yolo.runtime.configure_offline first).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from xray_exp.metrics.boxes import box_iou
from xray_exp.yolo.predict import load_yolo, predict_file, pytorch_net

# ONNX vs PyTorch on the same letterboxed input. The export fuses Conv+BatchNorm, so float32 outputs
# differ by rounding only: boxes (pixels of the network input) and class scores within these bounds.
PARITY_ATOL_BOX_PX = 0.05
PARITY_ATOL_SCORE = 1e-3
# Detections above the confidence threshold: same class and IoU >= parity_iou for at least this share.
PARITY_MIN_AGREEMENT = 0.95


def export_onnx(weights: str | Path, imgsz: int, batch: int = 1) -> Path:
    """Export a .pt -> .onnx next to it (static shape imgsz x imgsz and `batch`, simplified, on CPU, class
    names and imgsz in the metadata); returns the .onnx path."""
    model = load_yolo(weights)
    return Path(model.export(format="onnx", imgsz=imgsz, batch=batch, simplify=True, dynamic=False, device="cpu"))


def _letterbox(image_path: Path, imgsz: int) -> np.ndarray:
    """An image file as the network input Ultralytics builds: letterboxed square, RGB, NCHW float32 in [0, 1]."""
    import cv2
    from ultralytics.data.augment import LetterBox

    bgr = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
    boxed = LetterBox(new_shape=(imgsz, imgsz), auto=False)(image=bgr)
    if not isinstance(boxed, np.ndarray):  # an image without labels comes back as the letterboxed image
        raise TypeError(f"Ultralytics' LetterBox returned {type(boxed).__name__} for an image alone, not an array")
    chw = boxed[..., ::-1].transpose(2, 0, 1)
    return np.ascontiguousarray(chw, dtype=np.float32)[None] / 255.0


def match_detections(ref: dict, other: dict, iou_thr: float, conf: float, margin: float = 0.01) -> tuple[int, int]:
    """Count reference detections (conf >= conf + margin) that `other` reproduces: same class, IoU >= iou_thr.

    Detections within `margin` of the threshold are left out: rounding may put them on either side.
    Returns (matched, considered).
    """
    keep = ref["conf"] >= conf + margin
    boxes, classes = ref["xyxy"][keep], ref["cls"][keep]
    if len(boxes) == 0:
        return 0, 0
    if len(other["xyxy"]) == 0:
        return 0, len(boxes)
    ious = box_iou(boxes, other["xyxy"])
    same = classes[:, None] == other["cls"][None, :]
    matched = int(((ious >= iou_thr) & same).any(axis=1).sum())
    return matched, len(boxes)


def onnx_parity(
    pt_path: str | Path,
    onnx_path: str | Path,
    images: list[Path],
    imgsz: int,
    conf: float,
    iou_thr: float,
    out_file: str | Path | None = None,
) -> dict:
    """Compare the ONNX file in ONNX Runtime with the PyTorch weights on the same images.

    Two figures: the largest raw-output difference (boxes in input pixels, class scores) on identical
    letterboxed inputs, and the share of detections above `conf` that both agree on (class, IoU).
    """
    import onnxruntime as ort
    import torch

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    net = pytorch_net(pt_path)
    models = (load_yolo(pt_path), load_yolo(onnx_path))
    max_box, max_score, matched, considered = 0.0, 0.0, 0, 0
    for image in images:
        x = _letterbox(Path(image), imgsz)
        with torch.no_grad():
            y_pt = net(torch.from_numpy(x))
        y_pt = (y_pt[0] if isinstance(y_pt, (list, tuple)) else y_pt).numpy()
        y_ox = session.run(None, {input_name: x})[0]
        max_box = max(max_box, float(np.abs(y_pt[:, :4] - y_ox[:, :4]).max()))
        max_score = max(max_score, float(np.abs(y_pt[:, 4:] - y_ox[:, 4:]).max()))
        dets = [predict_file(model, image, imgsz, conf, device="cpu") for model in models]
        for ref, other in ((dets[0], dets[1]), (dets[1], dets[0])):
            m, c = match_detections(ref, other, iou_thr, conf)
            matched, considered = matched + m, considered + c
    agreement = matched / considered if considered else 1.0
    report = {
        "images": len(images),
        "max_abs_diff_box_px": max_box,
        "max_abs_diff_score": max_score,
        "tolerance_box_px": PARITY_ATOL_BOX_PX,
        "tolerance_score": PARITY_ATOL_SCORE,
        "detections_compared": considered,
        "detection_agreement": agreement,
        "min_agreement": PARITY_MIN_AGREEMENT,
        "conf": conf,
        "iou": iou_thr,
        "passed": bool(
            max_box <= PARITY_ATOL_BOX_PX and max_score <= PARITY_ATOL_SCORE and agreement >= PARITY_MIN_AGREEMENT
        ),
    }
    if out_file:
        Path(out_file).write_text(json.dumps(report, indent=2))
    return report
