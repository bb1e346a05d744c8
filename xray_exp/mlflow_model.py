"""Log the trained detector as a real MLflow model: a pyfunc around the ONNX file, with best.pt.

The model folder holds `artifacts/model.onnx` (serving) and `artifacts/best.pt` (fine-tuning), a
signature, and metadata with the class names and input size.
"""

from __future__ import annotations

import shutil
import tempfile
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np

PYFUNC_CODE = Path(__file__).with_name("onnx_pyfunc.py")


def log_onnx_model(tracking_uri: str, run_id: str, event: dict[str, Any]) -> str:
    """Log the pyfunc model into run `run_id`; return its model URI (for registration)."""
    import mlflow
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    imgsz, names = int(event["imgsz"]), event["names"]
    signature = ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, 3, imgsz, imgsz), "images")]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, 4 + len(names), -1), "predictions")]),
    )
    mlflow.set_tracking_uri(tracking_uri)
    with tempfile.TemporaryDirectory() as tmp:
        onnx, pt = Path(tmp) / "model.onnx", Path(tmp) / "best.pt"
        shutil.copyfile(event["onnx"], onnx)
        shutil.copyfile(event["pt"], pt)
        with mlflow.start_run(run_id=run_id):
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=str(PYFUNC_CODE),
                artifacts={"onnx": str(onnx), "pt": str(pt)},
                signature=signature,
                metadata={"names": names, "imgsz": imgsz, "task": "detect", "framework": "ultralytics-yolo12"},
                pip_requirements=[f"onnxruntime=={version('onnxruntime')}", f"numpy=={version('numpy')}",
                                  f"mlflow=={version('mlflow')}"],
            )
    return info.model_uri
