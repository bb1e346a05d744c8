"""Run a YOLO detector (.pt or .onnx) over one split of a YOLO-format dataset.

    from xray_exp.evaluation.predict import predict_split
    out = predict_split("best.pt", "data.yaml", "test", imgsz=320, conf=0.001, iou=0.7, tta=True)
    out.names, out.preds, out.gts     # per-image records: image_id, boxes (xyxy pixels), scores, labels

Images are decoded with xray_exp.imaging (the service's decoder); with `tta` each image is also
predicted mirrored and the two sets are fused (xray_exp.evaluation.tta). The model itself is loaded
and run through xray_exp.yolo.predict (the Ultralytics seam); call xray_exp.yolo.runtime.configure_offline
first (or pass settings_dir).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from xray_exp.errors import ModelError
from xray_exp.evaluation.dataset import load_split, read_ground_truth
from xray_exp.evaluation.tta import Detections, merge_flip
from xray_exp.imaging import read_xray
from xray_exp.yolo.predict import class_names, is_pytorch, load_yolo, predict_images

log = logging.getLogger(__name__)


@dataclass
class SplitPredictions:
    names: list[str]
    preds: list[dict]
    gts: list[dict]  # also carry path, width, height


def top_k(dets: Detections, k: int) -> Detections:
    """The k highest-scoring detections (fusion may return more than the model's max_det)."""
    keep = np.argsort(-dets[1], kind="mergesort")[:k]
    return dets[0][keep], dets[1][keep], dets[2][keep]


def predict_split(
    weights,
    data_yaml: str | Path,
    split: str,
    imgsz: int = 640,
    conf: float = 0.001,
    iou: float = 0.7,
    tta: bool = False,
    device: str | None = None,
    batch: int = 16,
    max_det: int = 300,
    wbf_iou: float = 0.55,
    settings_dir: str | Path | None = None,
    progress: bool = False,
) -> SplitPredictions:
    """Predictions and ground truth for every image of `split`; `weights` may be a loaded model.
    `progress`: a tqdm bar over the images (stderr)."""
    from tqdm import tqdm

    data = load_split(data_yaml, split)
    model = load_yolo(weights, settings_dir)
    names = class_names(model)
    if len(names) != len(data.names):
        raise ModelError(
            f"the model predicts {len(names)} classes, the dataset {data.data_yaml} has "
            f"{len(data.names)}: these weights were not trained on this dataset"
        )
    if names != data.names:
        log.warning("model class names %s differ from the dataset's %s; using the dataset's", names, data.names)
    step = max(int(batch), 1) if is_pytorch(model) else 1
    preds, gts = [], []
    bar = tqdm(total=len(data.images), desc=f"predict {split}", unit="img", disable=not progress, leave=False)
    for start in range(0, len(data.images), step):
        chunk = data.images[start : start + step]
        grays = [read_xray(image.path) for image in chunk]
        gts += [read_ground_truth(image, g.shape[1], g.shape[0]) for image, g in zip(chunk, grays, strict=True)]
        dets = predict_images(model, grays, imgsz, conf, iou, device, max_det)
        if tta:
            mirrored = [np.ascontiguousarray(g[:, ::-1]) for g in grays]
            flipped = predict_images(model, mirrored, imgsz, conf, iou, device, max_det)
            dets = [
                top_k(merge_flip(d, f, g.shape[1], g.shape[0], iou_thr=wbf_iou, skip_box_thr=conf), max_det)
                for d, f, g in zip(dets, flipped, grays, strict=True)
            ]
        for image, (boxes, scores, labels) in zip(chunk, dets, strict=True):
            preds.append({"image_id": image.image_id, "boxes": boxes, "scores": scores, "labels": labels})
        bar.update(len(chunk))
    bar.close()
    return SplitPredictions(data.names, preds, gts)
