"""Log an ensemble (xray_exp.ensembles) as ONE MLflow model that answers like a single detector.

    uri = log_ensemble_model(tracking_uri, run_id, {"folder": "outputs/ensemble/<time>/model", "names": {...},
                                                     "example": "val/image.png"})

The model folder holds `artifacts/ensemble.json` (members, weights, fusion settings, views, lineage) and
`artifacts/members/*.onnx`; the pyfunc is the single model's (xray_exp/mlops/onnx_pyfunc.py: it loads an
EnsembleDetector when the artifacts hold ensemble.json), with the same signature, parameters and output
(findings per image). The fusion code (xray_exp/ensembles/fusion.py, detector.py) ships inside the model.
An ensemble behind a gate is logged by xray_exp.mlops.gated_model (its `detector/` folder is this one).
"""

from __future__ import annotations

import json
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from xray_exp.mlops.pyfunc_model import PYFUNC_CODE, SHARED_CODE, log_pyfunc, model_signature, pip_requirements

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


def ensemble_metadata(folder: Path) -> dict[str, Any]:
    """What an ensemble folder's ensemble.json says about it, for the model's metadata."""
    spec = json.loads((folder / "ensemble.json").read_text())
    return {
        "framework": "ultralytics-yolo12-ensemble",
        "members": len(spec["members"]),
        "fusion": spec["fusion"],
        "views": [f"{v['scale']:g}{'-hflip' if v['flip'] else ''}" for v in spec["views"]],
    }


def log_ensemble_model(tracking_uri: str, run_id: str, event: dict[str, Any]) -> str:
    """Log the ensemble pyfunc into run `run_id`; return its model URI (for registration)."""
    folder = Path(event["folder"])
    return log_pyfunc(
        tracking_uri,
        run_id,
        PYFUNC_CODE,
        {"ensemble.json": ("ensemble.json", folder / "ensemble.json"), "members": ("members", folder / "members")},
        (*SHARED_CODE, *ENSEMBLE_CODE),
        model_signature(),
        event.get("example"),
        {
            "names": event["names"],
            "task": "detect",
            **ensemble_metadata(folder),
            "output": "findings: label, class_id, confidence, box [x1, y1, x2, y2] in original pixels",
        },
        ensemble_requirements(),
    )
