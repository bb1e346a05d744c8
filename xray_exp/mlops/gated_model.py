"""Log a detector + its gate (a normal/abnormal classifier and the thresholds) as one MLflow model, answering
like any detector (xray_exp/mlops/onnx_gated_pyfunc.py), registered as `<detector>-gated` or, when the
detector is an ensemble's model folder, `<model>-ensemble-gated`.

    uri = log_gated_model(tracking_uri, run_id, {"detector": "best.onnx", "classifier": "cls.onnx",
                                                 "gate": {"low": 0.1, "high": 0.9, "mode": "multiply", ...},
                                                 "names": {...}, "imgsz": 320, "example": "image.png"})
    python -m xray_exp.evaluate model=models:/yolo12s@development gate=models:/yolo12n-cls@development \
        gate.register=true                      # scored on the split, then registered as yolo12s-gated
    python -m xray_exp.ensemble cv=outputs/cv/<name> gate=models:/yolo12n-cls@development   # yolo12n-ensemble-gated

The model's artifacts: detector.onnx (or detector/: ensemble.json + members/), classifier.onnx, gate.json.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from xray_exp.mlops.ensemble_model import ENSEMBLE_CODE, ensemble_metadata, ensemble_requirements
from xray_exp.mlops.pyfunc_model import SHARED_CODE, log_pyfunc, model_signature, pip_requirements

GATED_PYFUNC_CODE = Path(__file__).resolve().parent / "onnx_gated_pyfunc.py"
# the ensemble's files too: gated_onnx_detector loads an ensemble behind the gate (ensemble-boxes required only then)
GATED_CODE = (
    "errors.py",
    "inference/gated_onnx_detector.py",
    "gating/__init__.py",
    "gating/gate.py",
    "gating/tune.py",
    *ENSEMBLE_CODE,
)


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
    detector = Path(event["detector"])
    ensemble = detector.is_dir()  # an ensemble's model folder (ensemble.json + members/)
    return log_pyfunc(
        tracking_uri,
        run_id,
        GATED_PYFUNC_CODE,
        {
            "detector": ("detector" if ensemble else "detector.onnx", detector),
            "classifier": ("classifier.onnx", Path(event["classifier"])),
            "gate": ("gate.json", dict(event["gate"])),
        },
        (*SHARED_CODE, *GATED_CODE),
        gated_signature(),
        event.get("example"),
        {
            "names": event["names"],
            "imgsz": int(event["imgsz"]),
            "task": "detect",
            "gate": event["gate"],
            "framework": "ultralytics-yolo12",
            **(ensemble_metadata(detector) if ensemble else {}),
            "output": "findings (after the gate), abnormal: the classifier's probability",
        },
        ensemble_requirements() if ensemble else pip_requirements(),
    )
