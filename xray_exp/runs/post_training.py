"""After training, on best.pt: metrics on `post.eval_splits` (xray_exp.evaluation), annotated samples, ONNX
export + parity. Every engine's run goes through `post_training` (xray_exp.runs.lifecycle.finish_run).

    metrics = post_training(cfg, info, best, run_dir)        # val/*, test/* (with CIs), onnx/*
    metrics = split_metrics(best, info, "test", cfg, run_dir / "report-test")   # test/map40, test/mAP50, ...
    python -m xray_exp.train post.eval_splits=[val,test] post.map40_method=voc2010 post.n_boot=1000
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from xray_exp.errors import ConfigError

log = logging.getLogger("xray_exp.runs.post_training")

# ONNX vs PyTorch on the same letterboxed input. The export fuses Conv+BatchNorm, so float32 outputs
# differ by rounding only: boxes (pixels of the network input) and class scores within these bounds.
PARITY_ATOL_BOX_PX = 0.05
PARITY_ATOL_SCORE = 1e-3
# Detections above the confidence threshold: same class and IoU >= parity_iou for at least this share.
PARITY_MIN_AGREEMENT = 0.95


# Prediction settings of post-training; `python -m xray_exp.evaluate` defaults to the same, so both give
# the same numbers on the same weights and split.
PREDICT_CONF, PREDICT_NMS_IOU, PREDICT_MAX_DET, PREDICT_BATCH = 0.001, 0.7, 300, 16


def metric_settings(cfg: DictConfig):
    """The scoring settings of post-training (`post.*`; decision threshold `post.conf`)."""
    from dataclasses import replace

    from xray_exp.evaluation import MetricSettings

    try:
        return replace(MetricSettings.from_config(cfg.post), decision_conf=float(cfg.post.conf))
    except ValueError as exc:
        raise ConfigError(f"post.{exc}") from exc


def split_metrics(best: Path, info, split: str, cfg: DictConfig, out_dir: Path) -> dict[str, float]:
    """Every metric of one split from xray_exp.evaluation (one prediction pass) + its report.

    A dataset without a test split reports val as test (with a warning)."""
    from xray_exp.evaluation import evaluate_split

    if split == "test" and not info.has_test:
        log.warning("dataset has no test split: reporting val as test")
        split_name, prefix = "val", "test"
    else:
        split_name, prefix = split, split
    if split_name not in info.splits:
        raise ConfigError(f"post.eval_splits: the dataset has no {split_name!r} split")
    return evaluate_split(best, info.data_yaml, split_name, imgsz=cfg.train.imgsz, conf=PREDICT_CONF,
                          iou=PREDICT_NMS_IOU, tta=False, out_dir=out_dir, device=cfg.hardware.device,
                          batch=PREDICT_BATCH, max_det=PREDICT_MAX_DET, metrics=metric_settings(cfg), prefix=prefix)


def evaluation_settings(cfg: DictConfig) -> dict:
    """What summary.json says about how its val/* and test/* metrics were computed."""
    from dataclasses import asdict

    from xray_exp.evaluation.definitions import definitions

    settings = metric_settings(cfg)
    return {"splits": list(cfg.post.eval_splits), "imgsz": int(cfg.train.imgsz), "conf": PREDICT_CONF,
            "nms_iou": PREDICT_NMS_IOU, "max_det": PREDICT_MAX_DET, "settings": asdict(settings),
            "definitions": definitions(settings)}


def save_samples(weights: str | Path, images: list[Path], out_dir: str | Path, imgsz: int, conf: float,
                 device: str | None = None) -> list[Path]:
    """Predict on a few images and save them with boxes and labels drawn (cv2; no font download)."""
    import cv2
    from ultralytics import YOLO

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = YOLO(str(weights), task="detect")
    saved = []
    for image in images:
        result = model.predict(str(image), imgsz=imgsz, conf=conf, device=device, verbose=False)[0]
        path = out_dir / f"{Path(image).stem}.png"
        cv2.imwrite(str(path), result.plot(pil=False))
        saved.append(path)
    return saved


def export_onnx(weights: str | Path, imgsz: int) -> Path:
    """Export best.pt -> best.onnx next to it (static shape, simplified, class names in metadata)."""
    from ultralytics import YOLO

    model = YOLO(str(weights), task="detect")
    return Path(model.export(format="onnx", imgsz=imgsz, simplify=True, dynamic=False, device="cpu"))


def _letterbox(image_path: Path, imgsz: int) -> np.ndarray:
    import cv2
    from ultralytics.data.augment import LetterBox

    bgr = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
    boxed = LetterBox(new_shape=(imgsz, imgsz), auto=False)(image=bgr)
    chw = boxed[..., ::-1].transpose(2, 0, 1)
    return np.ascontiguousarray(chw, dtype=np.float32)[None] / 255.0


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of xyxy boxes (N,4) x (M,4)."""
    tl = np.maximum(a[:, None, :2], b[None, :, :2])
    br = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(br - tl, 0, None), axis=2)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)
    return inter / np.maximum(area_a[:, None] + area_b[None] - inter, 1e-9)


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
    ious = _iou(boxes, other["xyxy"])
    same = classes[:, None] == other["cls"][None, :]
    matched = int(((ious >= iou_thr) & same).any(axis=1).sum())
    return matched, len(boxes)


def onnx_parity(pt_path: str | Path, onnx_path: str | Path, images: list[Path], imgsz: int, conf: float,
                iou_thr: float, out_file: str | Path | None = None) -> dict:
    """Compare the ONNX file in ONNX Runtime with the PyTorch weights on the same images.

    Two figures: the largest raw-output difference (boxes in input pixels, class scores) on identical
    letterboxed inputs, and the share of detections above `conf` that both agree on (class, IoU).
    """
    import onnxruntime as ort
    import torch
    from ultralytics import YOLO

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    pt = YOLO(str(pt_path), task="detect")
    net = pt.model.float().eval()
    onnx_yolo = YOLO(str(onnx_path), task="detect")
    max_box, max_score, matched, considered = 0.0, 0.0, 0, 0
    for image in images:
        x = _letterbox(Path(image), imgsz)
        with torch.no_grad():
            y_pt = net(torch.from_numpy(x))
        y_pt = (y_pt[0] if isinstance(y_pt, (list, tuple)) else y_pt).numpy()
        y_ox = session.run(None, {input_name: x})[0]
        max_box = max(max_box, float(np.abs(y_pt[:, :4] - y_ox[:, :4]).max()))
        max_score = max(max_score, float(np.abs(y_pt[:, 4:] - y_ox[:, 4:]).max()))
        dets = []
        for model in (pt, onnx_yolo):
            r = model.predict(str(image), imgsz=imgsz, conf=conf, device="cpu", verbose=False)[0].boxes
            dets.append({"xyxy": r.xyxy.cpu().numpy(), "cls": r.cls.cpu().numpy(), "conf": r.conf.cpu().numpy()})
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
        "passed": bool(max_box <= PARITY_ATOL_BOX_PX and max_score <= PARITY_ATOL_SCORE
                       and agreement >= PARITY_MIN_AGREEMENT),
    }
    if out_file:
        Path(out_file).write_text(json.dumps(report, indent=2))
    return report


def post_training(cfg: DictConfig, info, best: Path, run_dir: Path) -> dict[str, float]:
    """Metrics on `post.eval_splits`, annotated samples, ONNX export + parity (each switchable in `post`)."""
    metrics: dict[str, float] = {}
    post, hw = cfg.post, cfg.hardware
    for split in post.eval_splits:
        metrics.update(split_metrics(best, info, split, cfg, run_dir / f"report-{split}"))
    sample_images = info.splits["val"][: post.samples]
    if post.samples:
        save_samples(best, sample_images, run_dir / "samples", cfg.train.imgsz, post.conf, hw.device)
    if post.onnx:
        onnx_path = export_onnx(best, cfg.train.imgsz)
        parity = onnx_parity(best, onnx_path, sample_images or info.splits["val"][:2], cfg.train.imgsz,
                             post.parity_conf, post.parity_iou, run_dir / "onnx_parity.json")
        metrics["onnx/max_abs_diff_box_px"] = parity["max_abs_diff_box_px"]
        metrics["onnx/max_abs_diff_score"] = parity["max_abs_diff_score"]
        metrics["onnx/detection_agreement"] = parity["detection_agreement"]
        if not parity["passed"]:
            log.warning("ONNX parity outside tolerance: %s", parity)
    return metrics
