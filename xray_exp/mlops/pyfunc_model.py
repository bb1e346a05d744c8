"""Log the trained detector as an MLflow model that answers: images in, findings out.

The model folder holds `artifacts/model.onnx` (serving) and `artifacts/best.pt` (fine-tuning), the
pyfunc (xray_exp/mlops/onnx_pyfunc.py) with the service's decoding and detection code (code/xray_exp: imaging/,
inference/onnx_detector.py), a signature (images as binary: paths, bytes or base64; params
conf, iou, max_det), an input example (a radiograph of the training data) and metadata with the class names.

    uri = log_onnx_model(tracking_uri, run_id, {"onnx": ..., "pt": ..., "names": {...}, "imgsz": 320,
                                                "example": "val/image.png"})
"""

from __future__ import annotations

import shutil
import tempfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

PACKAGE = Path(__file__).resolve().parent.parent  # xray_exp/
PYFUNC_CODE = Path(__file__).resolve().parent / "onnx_pyfunc.py"
CLS_PYFUNC_CODE = Path(__file__).resolve().parent / "onnx_cls_pyfunc.py"  # task=classify: {"abnormal": p}
SHARED_CODE = (
    "__init__.py",
    *sorted(f"imaging/{f.name}" for f in (PACKAGE / "imaging").glob("*.py")),  # the whole decoding package
    "inference/__init__.py",
    "inference/onnx_detector.py",
    "inference/onnx_classifier.py",
    "mlops/__init__.py",
    "mlops/pyfunc_inputs.py",
)  # the pyfuncs import
REQUIREMENTS = ("mlflow", "onnxruntime", "numpy", "pandas", "opencv-python-headless", "opencv-python", "pydicom")


def model_signature():
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, DataType, ParamSchema, ParamSpec, Schema
    from mlflow.types.schema import Array, Object, Property

    finding = Object(
        [
            Property("label", DataType.string),
            Property("class_id", DataType.long),
            Property("confidence", DataType.double),
            Property("box", Array(DataType.double)),
        ]
    )
    return ModelSignature(
        inputs=Schema([ColSpec(DataType.binary)]),
        outputs=Schema(
            [ColSpec(Array(finding), "findings"), ColSpec(DataType.long, "width"), ColSpec(DataType.long, "height")]
        ),
        params=ParamSchema(
            [
                ParamSpec("conf", DataType.double, 0.25),
                ParamSpec("iou", DataType.double, 0.7),
                ParamSpec("max_det", DataType.long, 300),
            ]
        ),
    )


def classifier_signature():
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, DataType, Schema

    return ModelSignature(
        inputs=Schema([ColSpec(DataType.binary)]),
        outputs=Schema(
            [ColSpec(DataType.double, "abnormal"), ColSpec(DataType.long, "width"), ColSpec(DataType.long, "height")]
        ),
    )


def example_png(image: str | Path | None, max_side: int = 256) -> bytes:
    """A small PNG for the input example: the given radiograph scaled down, else a plain grey square."""
    import cv2

    gray: np.ndarray = np.full((64, 64), 128, np.uint8)
    if image and Path(image).is_file():
        from xray_exp.imaging import read_xray  # lazy: only on this path

        gray = read_xray(image)
        scale = max_side / max(gray.shape)
        if scale < 1:
            gray = cv2.resize(
                gray, (round(gray.shape[1] * scale), round(gray.shape[0] * scale)), interpolation=cv2.INTER_AREA
            )
    ok, buf = cv2.imencode(".png", gray)
    return buf.tobytes()


def pip_requirements() -> list[str]:
    out, have_cv = [], False
    for name in REQUIREMENTS:
        if name.startswith("opencv") and have_cv:
            continue
        try:
            out.append(f"{name}=={version(name)}")
            have_cv = have_cv or name.startswith("opencv")
        except PackageNotFoundError:
            continue
    return out


def log_onnx_model(tracking_uri: str, run_id: str, event: dict[str, Any]) -> str:
    """Log the pyfunc model into run `run_id`; return its model URI (for registration)."""
    import mlflow
    import pandas as pd

    imgsz, names = int(event["imgsz"]), event["names"]
    mlflow.set_tracking_uri(tracking_uri)
    with tempfile.TemporaryDirectory() as tmp:
        onnx, pt = Path(tmp) / "model.onnx", Path(tmp) / "best.pt"
        shutil.copyfile(event["onnx"], onnx)
        shutil.copyfile(event["pt"], pt)
        code = Path(tmp) / "code" / "xray_exp"
        code.mkdir(parents=True)
        for name in SHARED_CODE:
            (code / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(PACKAGE / name, code / name)
        classify = event.get("task") == "classify"
        output = (
            "abnormal: probability that the image shows any finding"
            if classify
            else "findings: label, class_id, confidence, box [x1, y1, x2, y2] in original pixels"
        )
        with mlflow.start_run(run_id=run_id):
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=str(CLS_PYFUNC_CODE if classify else PYFUNC_CODE),
                artifacts={"onnx": str(onnx), "pt": str(pt)},
                code_paths=[str(code)],
                signature=classifier_signature() if classify else model_signature(),
                input_example=pd.DataFrame({"image": [example_png(event.get("example"))]}),
                metadata={
                    "names": names,
                    "imgsz": imgsz,
                    "task": "classify" if classify else "detect",
                    "framework": "ultralytics-yolo12",
                    "output": output,
                },
                pip_requirements=pip_requirements(),
            )
    return info.model_uri
