"""Log a detector + its gate (a normal/abnormal classifier and the thresholds) as one MLflow model, answering
like any detector (xray_exp/mlops/onnx_gated_pyfunc.py), registered as `<detector>-gated`.

    uri = log_gated_model(tracking_uri, run_id, {"detector": "best.onnx", "classifier": "cls.onnx",
                                                 "gate": {"low": 0.1, "high": 0.9, "mode": "multiply", ...},
                                                 "names": {...}, "imgsz": 320, "example": "image.png"})
    python -m xray_exp.evaluate model=models:/yolo12s@development gate=models:/yolo12n-cls@development \
        gate.register=true                      # scored on the split, then registered as yolo12s-gated
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from xray_exp.mlops.pyfunc_model import PACKAGE, SHARED_CODE, example_png, model_signature, pip_requirements

GATED_PYFUNC_CODE = Path(__file__).resolve().parent / "onnx_gated_pyfunc.py"
GATED_CODE = ("errors.py", "inference/gated_onnx_detector.py", "gating/__init__.py", "gating/gate.py", "gating/tune.py")


def gated_signature():
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, DataType, Schema

    detector = model_signature()
    return ModelSignature(
        inputs=detector.inputs,
        params=detector.params,
        outputs=Schema([*detector.outputs.inputs, ColSpec(DataType.double, "abnormal")]),
    )


def log_gated_model(tracking_uri: str, run_id: str, event: dict[str, Any]) -> str:
    """Log the gated pair into run `run_id`; return its model URI (for registration)."""
    import mlflow
    import pandas as pd

    mlflow.set_tracking_uri(tracking_uri)
    with tempfile.TemporaryDirectory() as tmp:
        files = {
            "detector": Path(tmp) / "detector.onnx",
            "classifier": Path(tmp) / "classifier.onnx",
            "gate": Path(tmp) / "gate.json",
        }
        shutil.copyfile(event["detector"], files["detector"])
        shutil.copyfile(event["classifier"], files["classifier"])
        files["gate"].write_text(json.dumps(event["gate"], indent=2))
        code = Path(tmp) / "code" / "xray_exp"
        for name in (*SHARED_CODE, *GATED_CODE):
            (code / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(PACKAGE / name, code / name)
        with mlflow.start_run(run_id=run_id):
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=str(GATED_PYFUNC_CODE),
                artifacts={k: str(v) for k, v in files.items()},
                code_paths=[str(code)],
                signature=gated_signature(),
                input_example=pd.DataFrame({"image": [example_png(event.get("example"))]}),
                metadata={
                    "names": event["names"],
                    "imgsz": int(event["imgsz"]),
                    "task": "detect",
                    "gate": event["gate"],
                    "framework": "ultralytics-yolo12",
                    "output": "findings (after the gate), abnormal: the classifier's probability",
                },
                pip_requirements=pip_requirements(),
            )
    return info.model_uri
