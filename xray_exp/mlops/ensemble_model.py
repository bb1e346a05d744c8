"""Log an ensemble (xray_exp.ensembles) as ONE MLflow model that answers like a single detector.

    uri = log_ensemble_model(tracking_uri, run_id, {"folder": "outputs/ensemble/<time>/model", "names": {...},
                                                     "example": "val/image.png"})

The model folder holds `artifacts/ensemble.json` (members, weights, fusion settings, views, lineage) and
`artifacts/members/*.onnx`; the pyfunc is the single model's (xray_exp/mlops/onnx_pyfunc.py: it loads an
EnsembleDetector when the artifacts hold ensemble.json), with the same signature, parameters and output
(findings per image). The fusion code (xray_exp/ensembles/fusion.py, detector.py) ships inside the model.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from xray_exp.mlops.pyfunc_model import (
    PACKAGE,
    PYFUNC_CODE,
    SHARED_CODE,
    example_png,
    model_signature,
    pip_requirements,
)

ENSEMBLE_CODE = ("ensembles/__init__.py", "ensembles/fusion.py", "ensembles/detector.py")
ENSEMBLE_REQUIREMENTS = ("ensemble-boxes",)


def ensemble_requirements() -> list[str]:
    out = pip_requirements()
    for name in ENSEMBLE_REQUIREMENTS:
        try:
            out.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            out.append(name)
    return out


def log_ensemble_model(tracking_uri: str, run_id: str, event: dict[str, Any]) -> str:
    """Log the ensemble pyfunc into run `run_id`; return its model URI (for registration)."""
    import mlflow
    import pandas as pd

    folder = Path(event["folder"])
    spec = json.loads((folder / "ensemble.json").read_text())
    mlflow.set_tracking_uri(tracking_uri)
    with tempfile.TemporaryDirectory() as tmp:
        code = Path(tmp) / "code" / "xray_exp"
        for name in (*SHARED_CODE, *ENSEMBLE_CODE):
            (code / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(PACKAGE / name, code / name)
        with mlflow.start_run(run_id=run_id):
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=str(PYFUNC_CODE),
                artifacts={"ensemble.json": str(folder / "ensemble.json"), "members": str(folder / "members")},
                code_paths=[str(code)],
                signature=model_signature(),
                input_example=pd.DataFrame({"image": [example_png(event.get("example"))]}),
                metadata={
                    "names": event["names"],
                    "task": "detect",
                    "framework": "ultralytics-yolo12-ensemble",
                    "members": len(spec["members"]),
                    "fusion": spec["fusion"],
                    "views": [f"{v['scale']:g}{'-hflip' if v['flip'] else ''}" for v in spec["views"]],
                    "output": "findings: label, class_id, confidence, box [x1, y1, x2, y2] in original pixels",
                },
                pip_requirements=ensemble_requirements(),
            )
    return info.model_uri
