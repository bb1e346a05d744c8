"""Prediction with an Ultralytics YOLO model (.pt or .onnx): load it, read what it was trained at, predict.

    from xray_exp.yolo.predict import load_yolo, trained_imgsz, class_names, predict_images
    model = load_yolo("best.pt", settings_dir="outputs/.ultralytics")   # offline set-up first
    trained_imgsz("best.pt")          # the input size the checkpoint was trained/exported at (or None)
    dets = predict_images(model, [gray_uint8], imgsz=320, conf=0.001, iou=0.7)   # [(xyxy, scores, labels)]
    save_samples("best.pt", images, "run/samples", imgsz=320, conf=0.25)         # annotated PNGs

Ultralytics is imported inside functions only: call xray_exp.yolo.runtime.configure_offline first (or
pass settings_dir to load_yolo).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from xray_exp.errors import ModelError

MODEL_SUFFIXES = (".pt", ".onnx")


def load_yolo(weights, settings_dir: str | Path | None = None):
    """A YOLO model from a .pt/.onnx path (a model object is returned as is)."""
    if not isinstance(weights, str | Path):
        return weights
    path = Path(weights).expanduser()
    if not path.is_file():
        raise ModelError(
            f"weights file {path} not found. Fix: point model= at an existing .pt or .onnx file "
            "or a models:/<name>@<alias> registry URI."
        )
    if path.suffix.lower() not in MODEL_SUFFIXES:
        raise ModelError(f"{path}: expected a .pt or .onnx file")
    if settings_dir is not None:
        from xray_exp.yolo.runtime import configure_offline  # lazy: only on this path

        configure_offline(settings_dir)
    from ultralytics import YOLO

    return YOLO(str(path.resolve()), task="detect")


def pytorch_net(weights: str | Path, fuse: bool = False):
    """The torch module of a .pt checkpoint in float32 eval mode (`fuse`: Conv+BatchNorm folded, as for
    inference); called on an NCHW float tensor it returns the raw head output (boxes, class scores)."""
    net = load_yolo(weights).model.float()
    return (net.fuse(verbose=False) if fuse else net).eval()


def _square_size(value) -> int | None:
    """Ultralytics stores imgsz as an int or [h, w]; the evaluation size is the longer side."""
    if isinstance(value, str):
        import ast

        value = ast.literal_eval(value)
    if isinstance(value, int | float):
        return int(value)
    if isinstance(value, list | tuple) and value:
        return int(max(value))
    return None


def trained_imgsz(weights: str | Path) -> int | None:
    """The image size a checkpoint was trained at (.pt `train_args.imgsz`) or exported at (ONNX metadata
    `imgsz`); None when the file does not say."""
    path = Path(weights)
    if path.suffix.lower() == ".onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return _square_size(session.get_modelmeta().custom_metadata_map.get("imgsz"))
    from ultralytics.nn.tasks import torch_safe_load

    checkpoint, _ = torch_safe_load(str(path))
    args = checkpoint.get("train_args") or {}
    return _square_size(args.get("imgsz"))


def class_names(model) -> list[str]:
    """The model's class names in class-index order."""
    names = model.names
    return [str(names[i]) for i in range(len(names))] if isinstance(names, dict) else [str(n) for n in names]


def is_pytorch(model) -> bool:
    """Exported models (ONNX) hold their file path in `.model` and run one image per call."""
    return not isinstance(getattr(model, "model", None), str | Path)


def predict_images(
    model, images: list[np.ndarray], imgsz: int, conf: float, iou: float, device: str | None = None, max_det: int = 300
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Grayscale uint8 images -> per image (boxes (N, 4) xyxy pixels float64, scores float64, labels int64)."""
    import cv2

    bgr = [cv2.cvtColor(g, cv2.COLOR_GRAY2BGR) for g in images]
    results = model.predict(bgr, imgsz=imgsz, conf=conf, iou=iou, device=device, max_det=max_det, verbose=False)
    out = []
    for r in results:
        b = r.boxes
        out.append(
            (
                b.xyxy.cpu().numpy().astype(np.float64),
                b.conf.cpu().numpy().astype(np.float64),
                b.cls.cpu().numpy().astype(np.int64),
            )
        )
    return out


def predict_file(model, image: str | Path, imgsz: int, conf: float, device: str | None = "cpu") -> dict:
    """One image file through Ultralytics' own reading and pre-processing: {"xyxy", "cls", "conf"} arrays."""
    r = model.predict(str(image), imgsz=imgsz, conf=conf, device=device, verbose=False)[0].boxes
    return {"xyxy": r.xyxy.cpu().numpy(), "cls": r.cls.cpu().numpy(), "conf": r.conf.cpu().numpy()}


def save_samples(
    weights: str | Path, images: list[Path], out_dir: str | Path, imgsz: int, conf: float, device: str | None = None
) -> list[Path]:
    """Predict on a few images and save them with boxes and labels drawn (cv2; no font download)."""
    import cv2

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = load_yolo(weights)
    saved = []
    for image in images:
        result = model.predict(str(image), imgsz=imgsz, conf=conf, device=device, verbose=False)[0]
        path = out_dir / f"{Path(image).stem}.png"
        cv2.imwrite(str(path), result.plot(pil=False))
        saved.append(path)
    return saved
