"""YOLO12-cls normal/abnormal classification in ONNX Runtime, without torch or ultralytics: the inference path
of the registered classifier (xray_exp/mlops/onnx_cls_pyfunc.py) and of a detector's gate (xray_exp.gating).

Reads an Ultralytics-exported classifier (`YOLO("best.pt").export(format="onnx")`, task classify): class names
and input size from its metadata. Pre-processing reproduces Ultralytics' classify predict (shortest side resized
to imgsz, centre crop, RGB, /255); the network ends in a softmax. The parity against Ultralytics' PyTorch
predict is measured after every training (onnx_parity.json, xray_exp.yolo.classify).

    from xray_exp.inference.onnx_classifier import OnnxClassifier
    clf = OnnxClassifier("best.onnx")
    clf.abnormal_probability(gray_uint8)          # 0.87
    clf.predict_batch([gray1, gray2])             # (2,) probabilities of "abnormal"
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

from xray_exp.inference.onnx_detector import parse_metadata, select_providers

ABNORMAL, NORMAL = "abnormal", "normal"


def classify_input(gray: np.ndarray, size: int) -> np.ndarray:
    """A uint8 grayscale (H, W) image as Ultralytics' classify_transforms builds it: the shortest side resized
    to `size` (torchvision's rounding: the long side truncated), a centred size x size crop, RGB, CHW float32
    in [0, 1]. Down-scaling uses area interpolation (what PIL's antialiased bilinear approximates)."""
    if gray.ndim == 3:
        gray = cv2.cvtColor(gray, cv2.COLOR_BGR2GRAY)
    h, w = gray.shape
    if h <= w:
        new_h, new_w = size, int(size * w / h)
    else:
        new_h, new_w = int(size * h / w), size
    interp = cv2.INTER_AREA if new_h < h else cv2.INTER_LINEAR
    resized = cv2.resize(gray, (new_w, new_h), interpolation=interp) if (new_h, new_w) != (h, w) else gray
    top, left = int(round((new_h - size) / 2.0)), int(round((new_w - size) / 2.0))
    crop = resized[top : top + size, left : left + size].astype(np.float32) / 255.0
    return np.repeat(crop[None], 3, axis=0)


class OnnxClassifier:
    """An exported normal/abnormal classifier: its probability of "abnormal" per image."""

    def __init__(self, path: str | Path, device: str = "auto", threads: int = 0):
        """`threads`: ONNX Runtime's intra-op threads (0: its own choice), as the detector's (XRAY_SERVE_THREADS)."""
        self.path = Path(path)
        options = ort.SessionOptions()
        if threads > 0:
            options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(self.path), options, providers=select_providers(device))
        meta = parse_metadata(self.session.get_modelmeta().custom_metadata_map)
        self.names: dict[int, str] = meta.get("names", {})
        if meta.get("task") not in (None, "classify") or ABNORMAL not in self.names.values():
            raise ValueError(
                f"{self.path}: not a normal/abnormal classifier (task {meta.get('task')!r}, "
                f"classes {sorted(self.names.values())}); train one with task=classify"
            )
        self.abnormal_index = next(i for i, n in self.names.items() if n == ABNORMAL)
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.imgsz = int(meta.get("imgsz", (inp.shape[2], inp.shape[3]))[0])
        self.batch = inp.shape[0] if isinstance(inp.shape[0], int) else None

    def predict_batch(self, images: list[np.ndarray]) -> np.ndarray:
        """(N,) probability of "abnormal" for N uint8 grayscale images."""
        if not images:
            return np.zeros(0, dtype=np.float64)
        x = np.stack([classify_input(im, self.imgsz) for im in images])
        step = self.batch or len(x)
        probs = [self.session.run(None, {self.input_name: x[i : i + step]})[0] for i in range(0, len(x), step)]
        return np.concatenate(probs)[:, self.abnormal_index].astype(np.float64)

    def abnormal_probability(self, gray: np.ndarray) -> float:
        return float(self.predict_batch([gray])[0])
