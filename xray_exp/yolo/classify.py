"""The Ultralytics side of `task=classify`: the YOLO12-cls model, its trainer, its probabilities, its ONNX export
and the parity of that export (run through xray_exp.inference.onnx_classifier, the torch-free path) with PyTorch.

    from xray_exp.yolo.classify import classify_arch, probabilities, export_classifier, classifier_parity
    classify_arch("yolo12n.yaml")                                    # "yolo12n-cls.yaml"
    p = probabilities("best.pt", images, imgsz=224)                  # (N,) P(abnormal), Ultralytics' predict
    onnx = export_classifier("best.pt", imgsz=224)
    classifier_parity("best.pt", onnx, images, imgsz=224, out_file="run/onnx_parity.json")
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from xray_exp.errors import ModelError
from xray_exp.imaging import read_xray
from xray_exp.yolo.epochs import log_epoch

# P(abnormal) of the ONNX file vs PyTorch on the same input tensor (rounding only) ...
PARITY_ATOL_EXPORT = 1e-4
# ... and of the torch-free path (OpenCV resize) vs Ultralytics' predict (PIL resize) on the same files.
PARITY_ATOL_PIPELINE = 0.05


def classify_arch(arch: str) -> str:
    """The classification yaml of a YOLO12 detection scale: yolo12n.yaml -> yolo12n-cls.yaml."""
    from xray_exp.yolo.args import known_architectures  # lazy: heavy (omegaconf)

    if arch.endswith("-cls.yaml"):
        return arch
    if arch not in known_architectures():
        raise ModelError(
            f"model.arch: unknown architecture {arch!r}; task=classify needs a YOLO12 scale "
            "(model=yolo12n|yolo12s|yolo12m|yolo12l|yolo12x)"
        )
    return arch.replace(".yaml", "-cls.yaml")


def load_classifier(weights: str | Path):
    """A YOLO classifier from a .pt; a detector (or any other task) is refused, naming the file."""
    from ultralytics import YOLO

    path = Path(weights)
    if not path.is_file():
        raise ModelError(f"classifier weights {path} not found")
    model = YOLO(str(path), task="classify")
    if model.task != "classify":
        raise ModelError(
            f"{path}: a {model.task} model, not a classifier. Fix: pass a model trained with "
            "task=classify (registered as <model>-cls)"
        )
    return model


def model_task(weights: str | Path) -> str:
    """The task an Ultralytics .pt/.onnx was trained for (detect, classify, ...)."""
    from ultralytics import YOLO

    return str(YOLO(str(weights)).task)


def abnormal_index(names: dict[int, str], source: str | Path) -> int:
    for i, name in names.items():
        if name == "abnormal":
            return int(i)
    raise ModelError(f"{source}: classes {sorted(names.values())} have no 'abnormal'; train with task=classify")


def probabilities(weights, images: list[Path], imgsz: int, device: str | None = None, batch: int = 16) -> np.ndarray:
    """(N,) probability of "abnormal" per image file, by Ultralytics' predict (PyTorch)."""
    model = load_classifier(weights) if isinstance(weights, str | Path) else weights
    index = abnormal_index(model.names, getattr(model, "ckpt_path", "model"))
    out = []
    for start in range(0, len(images), batch):
        chunk = [str(p) for p in images[start : start + batch]]
        for r in model.predict(chunk, imgsz=imgsz, device=device, verbose=False, batch=batch):
            out.append(float(r.probs.data[index]))
    return np.asarray(out, dtype=np.float64)


def export_classifier(weights: str | Path, imgsz: int) -> Path:
    """best.pt -> best.onnx next to it (static imgsz x imgsz, batch 1, simplified, on CPU)."""
    model = load_classifier(weights)
    return Path(model.export(format="onnx", imgsz=imgsz, batch=1, simplify=True, dynamic=False, device="cpu"))


def classifier_parity(
    pt_path: str | Path, onnx_path: str | Path, images: list[Path], imgsz: int, out_file: str | Path | None = None
) -> dict:
    """Two figures: the largest P(abnormal) difference of ONNX Runtime vs PyTorch on identical inputs (the
    export), and of the torch-free path (inference.onnx_classifier: OpenCV decode + resize) vs Ultralytics' predict
    (the whole pipeline the service and the gate use)."""
    import torch

    from xray_exp.inference.onnx_classifier import OnnxClassifier, classify_input  # lazy: heavy (onnxruntime)

    model = load_classifier(pt_path)
    net = model.model.float().eval()
    onnx = OnnxClassifier(onnx_path, device="cpu")
    index = abnormal_index(model.names, pt_path)
    export_diff = 0.0
    grays = [read_xray(p) for p in images]
    for gray in grays:
        x = classify_input(gray, imgsz)[None]
        with torch.no_grad():
            y = net(torch.from_numpy(x))
        y = (y[0] if isinstance(y, list | tuple) else y).numpy()[0, index]
        y_ox = onnx.session.run(None, {onnx.input_name: x})[0][0, onnx.abnormal_index]
        export_diff = max(export_diff, abs(float(y) - float(y_ox)))
    reference = probabilities(model, list(images), imgsz, device="cpu")
    pipeline_diff = float(np.abs(reference - onnx.predict_batch(grays)).max()) if grays else 0.0
    report = {
        "images": len(images),
        "max_abs_diff_prob_export": export_diff,
        "max_abs_diff_prob_pipeline": pipeline_diff,
        "tolerance_export": PARITY_ATOL_EXPORT,
        "tolerance_pipeline": PARITY_ATOL_PIPELINE,
        "passed": bool(export_diff <= PARITY_ATOL_EXPORT and pipeline_diff <= PARITY_ATOL_PIPELINE),
    }
    if out_file:
        Path(out_file).write_text(json.dumps(report, indent=2))
    return report


def _classification_trainer_base():
    from ultralytics.models.yolo.classify import ClassificationTrainer

    return ClassificationTrainer


class XrayClassificationTrainer(_classification_trainer_base()):  # type: ignore[misc]  # Ultralytics, imported late
    """Ultralytics' ClassificationTrainer with the per-epoch MLflow log of every training
    (xray_exp.yolo.epochs), installed by the class itself as XrayDetectionTrainer does."""

    def __init__(self, cfg=None, overrides=None, _callbacks=None):
        from ultralytics.utils import DEFAULT_CFG

        super().__init__(DEFAULT_CFG if cfg is None else cfg, overrides, _callbacks)
        self.in_final_eval = False
        if log_epoch not in self.callbacks["on_fit_epoch_end"]:
            self.add_callback("on_fit_epoch_end", log_epoch)

    def final_eval(self):
        self.in_final_eval = True
        try:
            return super().final_eval()
        finally:
            self.in_final_eval = False
