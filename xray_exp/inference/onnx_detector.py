"""YOLO12 detection in ONNX Runtime, without torch, ultralytics or fastapi: the one inference path of the
service and of the registered MLflow model (xray_exp/mlops/onnx_pyfunc.py).

Reads an Ultralytics-exported ONNX file (`model.export(format="onnx")`): class names, input size
and stride come from the metadata Ultralytics writes; pre- and post-processing reproduce
Ultralytics' predict (LetterBox with grey 114 padding, BGR->RGB, /255; best-class NMS per class;
boxes scaled back to the original pixels). tests/serve/test_serve_onnx.py checks the detections against
`YOLO(onnx).predict` and `YOLO(pt).predict` on the same images.

    from xray_exp.inference.onnx_detector import OnnxDetector, findings
    detector = OnnxDetector("best.onnx")                  # CUDA provider when available, else CPU
    detections, timings = detector.predict(gray_uint8, conf=0.25, iou=0.7)
    findings(detections)   # [{"label": "nodule", "confidence": 0.83, "box": [x1, y1, x2, y2]}, ...]
"""

from __future__ import annotations

import ast
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

PAD_VALUE = 114  # Ultralytics' letterbox grey
MAX_WH = 7680  # Ultralytics' per-class box offset for class-aware NMS
MAX_NMS = 30000  # Ultralytics' cap on boxes entering NMS


@dataclass(frozen=True)
class Detection:
    """One box in original-image pixels (x1, y1, x2, y2)."""

    box: tuple[float, float, float, float]
    confidence: float
    class_id: int
    label: str


@dataclass(frozen=True)
class Letterbox:
    """How an image was fitted into the network input: per-axis gain and the top/left padding."""

    input_hw: tuple[int, int]
    orig_hw: tuple[int, int]
    gain_xy: tuple[float, float]
    pad_xy: tuple[int, int]


def parse_metadata(meta: dict[str, str]) -> dict:
    """names/imgsz/stride/channels/end2end from Ultralytics' ONNX metadata_props (Python-literal strings)."""
    out: dict = {}
    if "names" in meta:
        names = ast.literal_eval(meta["names"])
        if isinstance(names, list):
            names = dict(enumerate(names))
        out["names"] = {int(k): str(v) for k, v in names.items()}
    if "imgsz" in meta:
        imgsz = ast.literal_eval(meta["imgsz"])
        out["imgsz"] = (int(imgsz), int(imgsz)) if isinstance(imgsz, int) else (int(imgsz[0]), int(imgsz[1]))
    for key in ("stride", "channels", "batch"):
        if key in meta:
            out[key] = int(ast.literal_eval(meta[key]))
    try:
        export_args = ast.literal_eval(meta.get("args", "{}")) or {}
    except (ValueError, SyntaxError):
        export_args = {}
    # end-to-end output (1, N, 6) = x1, y1, x2, y2, conf, class: NMS-free heads, or NMS baked in (nms=True)
    out["end2end"] = str(meta.get("end2end", "False")).strip().lower() == "true" or bool(export_args.get("nms"))
    for key in ("task", "version", "description", "date"):
        if key in meta:
            out[key] = meta[key]
    return out


def select_providers(device: str = "auto") -> list[str]:
    """ONNX Runtime providers: "auto" takes CUDA when this onnxruntime build has it, else CPU."""
    available = ort.get_available_providers()
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if device == "cuda":
        if "CUDAExecutionProvider" not in available:
            raise RuntimeError(f"CUDA requested but onnxruntime offers only {available}")
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if device != "auto":
        raise ValueError(f"device must be auto, cpu or cuda (got {device!r})")
    if "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def letterbox(image: np.ndarray, new_hw: tuple[int, int], stride: int = 32, auto: bool = False):
    """Ultralytics' LetterBox (center=True, scaleup=True): resize keeping aspect, pad with 114.

    Returns the padded image and a Letterbox record; `auto` pads only to a multiple of `stride`.
    """
    h, w = image.shape[:2]
    r = min(new_hw[0] / h, new_hw[1] / w)
    new_w, new_h = max(round(w * r), 1), max(round(h * r), 1)
    dw, dh = new_hw[1] - new_w, new_hw[0] - new_h
    if auto:
        dw, dh = dw % stride, dh % stride
    dw, dh = dw / 2, dh / 2
    top, bottom = round(dh - 0.1), round(dh + 0.1)
    left, right = round(dw - 0.1), round(dw + 0.1)
    if (w, h) != (new_w, new_h):
        image = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    if image.ndim == 2:
        image = cv2.copyMakeBorder(image, top, bottom, left, right, cv2.BORDER_CONSTANT, value=PAD_VALUE)
    else:
        image = cv2.copyMakeBorder(
            image, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(PAD_VALUE,) * image.shape[2]
        )
    input_hw = image.shape[:2]
    # ultralytics.utils.ops.scale_boxes: gains from the rounded resized size, padding as LetterBox did
    gain = min(input_hw[0] / h, input_hw[1] / w)
    rh, rw = max(round(h * gain), 1), max(round(w * gain), 1)
    pad = (round((input_hw[1] - rw) / 2 - 0.1), round((input_hw[0] - rh) / 2 - 0.1))
    return image, Letterbox(input_hw, (h, w), (rw / w, rh / h), pad)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float, max_keep: int | None = None) -> np.ndarray:
    """Greedy NMS like torchvision.ops.nms: indices kept, by descending score (ties: lower index first);
    drops IoU > threshold. Stops after `max_keep` boxes (the same first boxes, found sooner)."""
    order = np.argsort(-scores, kind="stable")
    x1, y1, x2, y2 = (np.ascontiguousarray(boxes[order, k], dtype=np.float32) for k in range(4))
    areas = (x2 - x1) * (y2 - y1)
    alive = np.ones(len(order), dtype=bool)
    keep: list[int] = []
    for i in range(len(order)):
        if not alive[i]:
            continue
        keep.append(i)
        if max_keep is not None and len(keep) >= max_keep:
            break
        iw = np.minimum(x2[i], x2[i + 1 :]) - np.maximum(x1[i], x1[i + 1 :])
        ih = np.minimum(y2[i], y2[i + 1 :]) - np.maximum(y1[i], y1[i + 1 :])
        inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
        with np.errstate(invalid="ignore", divide="ignore"):
            iou = inter / (areas[i] + areas[i + 1 :] - inter)
        alive[i + 1 :] &= ~(iou > iou_threshold)  # NaN IoU (degenerate boxes) keeps the box, as torchvision
    return order[np.asarray(keep, dtype=np.int64)]


class OnnxDetector:
    """An Ultralytics YOLO detection ONNX model in an ONNX Runtime session (thread-safe `predict`)."""

    def __init__(self, path: str | Path, device: str = "auto", threads: int = 0):
        self.path = Path(path)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads > 0:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(self.path), options, providers=select_providers(device))
        self.providers = self.session.get_providers()
        meta = parse_metadata(self.session.get_modelmeta().custom_metadata_map)
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.input_dtype = np.float16 if inp.type == "tensor(float16)" else np.float32
        shape = inp.shape  # [batch, channels, h, w]; symbolic dims are str/None when exported dynamic
        self.dynamic = not (isinstance(shape[2], int) and isinstance(shape[3], int))
        if "imgsz" in meta:
            self.imgsz = meta["imgsz"]
        elif not self.dynamic:
            self.imgsz = (shape[2], shape[3])
        else:
            raise ValueError(f"{self.path}: dynamic input and no imgsz metadata; not an Ultralytics export?")
        self.channels = shape[1] if isinstance(shape[1], int) else meta.get("channels", 3)
        self.stride = meta.get("stride", 32)
        self.end2end = meta["end2end"]
        self.task = meta.get("task", "detect")
        if self.task != "detect":
            raise ValueError(f"{self.path}: task is {self.task!r}; this service serves detection models")
        out_shape = self.session.get_outputs()[0].shape
        self.names: dict[int, str] = meta.get("names") or {}
        if not self.names:
            nc = out_shape[1] - 4 if isinstance(out_shape[1], int) and not self.end2end else 0
            self.names = {i: str(i) for i in range(nc)}
        self.metadata = meta

    @property
    def nc(self) -> int:
        return len(self.names)

    def preprocess(self, gray: np.ndarray) -> tuple[np.ndarray, Letterbox]:
        """uint8 (H, W) grey (or (H, W, 3) BGR) -> (1, C, h, w) float tensor in [0, 1] and the letterbox."""
        if gray.ndim == 3 and self.channels == 1:
            gray = cv2.cvtColor(gray, cv2.COLOR_BGR2GRAY)
        # For a grey image, letterboxing one channel then repeating it equals letterboxing grey->BGR.
        image, box = letterbox(gray, self.imgsz, self.stride, auto=self.dynamic)
        if image.ndim == 2:
            image = image[None] if self.channels == 1 else np.broadcast_to(image, (3, *image.shape))
        else:
            image = image[..., ::-1].transpose(2, 0, 1)  # BGR HWC -> RGB CHW
        tensor = np.ascontiguousarray(image[None], dtype=self.input_dtype)
        tensor /= self.input_dtype(255.0)
        return tensor, box

    def infer(self, tensor: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: tensor})[0]

    def postprocess(
        self, output: np.ndarray, box: Letterbox, conf: float = 0.25, iou: float = 0.7, max_det: int = 300
    ) -> list[Detection]:
        """Raw (1, 4+nc, N) output (end-to-end: (1, N, 6)) -> detections in original pixels, best first."""
        pred = output[0].astype(np.float32, copy=False)
        if self.end2end:
            rows = pred[pred[:, 4] > conf][:max_det]
            xyxy, scores, classes = rows[:, :4].copy(), rows[:, 4], rows[:, 5].astype(np.int64)
        else:
            pred = pred[: 4 + self.nc].T  # (N, 4 + nc); extra channels (masks, ...) are ignored
            cls_scores = pred[:, 4:]
            scores = cls_scores.max(axis=1)
            keep = scores > conf
            pred, scores = pred[keep], scores[keep]
            classes = cls_scores[keep].argmax(axis=1)
            if len(scores) > MAX_NMS:
                top = np.argsort(-scores, kind="stable")[:MAX_NMS]
                pred, scores, classes = pred[top], scores[top], classes[top]
            xyxy = np.empty((len(pred), 4), dtype=np.float32)
            half_w, half_h = pred[:, 2] / 2, pred[:, 3] / 2
            xyxy[:, 0], xyxy[:, 1] = pred[:, 0] - half_w, pred[:, 1] - half_h
            xyxy[:, 2], xyxy[:, 3] = pred[:, 0] + half_w, pred[:, 1] + half_h
            # class-aware: offset each class's boxes apart so boxes of different classes never overlap
            kept = nms(xyxy + classes[:, None].astype(np.float32) * MAX_WH, scores, iou, max_keep=max_det)
            xyxy, scores, classes = xyxy[kept], scores[kept], classes[kept]
        xyxy = self.scale_boxes(xyxy, box)
        return [
            Detection(tuple(float(v) for v in b), float(s), int(c), self.names.get(int(c), str(int(c))))
            for b, s, c in zip(xyxy, scores, classes, strict=True)
        ]

    @staticmethod
    def scale_boxes(xyxy: np.ndarray, box: Letterbox) -> np.ndarray:
        """Network-input xyxy -> original-image xyxy, clipped (as ultralytics.utils.ops.scale_boxes)."""
        out = xyxy.astype(np.float32, copy=True)
        out[:, [0, 2]] = (out[:, [0, 2]] - box.pad_xy[0]) / box.gain_xy[0]
        out[:, [1, 3]] = (out[:, [1, 3]] - box.pad_xy[1]) / box.gain_xy[1]
        h, w = box.orig_hw
        out[:, [0, 2]] = out[:, [0, 2]].clip(0, w)
        out[:, [1, 3]] = out[:, [1, 3]].clip(0, h)
        return out

    def predict(
        self, gray: np.ndarray, conf: float = 0.25, iou: float = 0.7, max_det: int = 300
    ) -> tuple[list[Detection], dict[str, float]]:
        """Detections for one uint8 image and the time each stage took (ms)."""
        t0 = time.perf_counter()
        tensor, box = self.preprocess(gray)
        t1 = time.perf_counter()
        output = self.infer(tensor)
        t2 = time.perf_counter()
        detections = self.postprocess(output, box, conf=conf, iou=iou, max_det=max_det)
        t3 = time.perf_counter()
        timings = {
            "preprocess": (t1 - t0) * 1000,
            "inference": (t2 - t1) * 1000,
            "postprocess": (t3 - t2) * 1000,
        }
        return detections, timings


def findings(detections: list[Detection]) -> list[dict]:
    """Detections as plain findings: label, confidence and box (x1, y1, x2, y2 in original pixels)."""
    return [
        {
            "label": d.label,
            "class_id": d.class_id,
            "confidence": round(d.confidence, 6),
            "box": [round(v, 2) for v in d.box],
        }
        for d in detections
    ]
