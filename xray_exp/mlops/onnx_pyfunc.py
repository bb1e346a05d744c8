"""MLflow "model from code": the registered chest X-ray detector. Images in, findings out.

    model = mlflow.pyfunc.load_model("models:/yolo12n@development")
    model.predict(["chest.png", "study.dcm"])                       # file paths (PNG, JPEG, DICOM)
    model.predict([png_bytes])                                      # or the files' bytes
    model.predict(pd.DataFrame({"image": [...]}), params={"conf": 0.3, "iou": 0.7, "max_det": 300})
    # -> DataFrame, one row per image: findings [{label, class_id, confidence, box: [x1, y1, x2, y2]}]
    #    (box in the original image's pixels; [] = no findings), width, height

Over REST (`mlflow models serve -m models:/yolo12n@development --env-manager local`), send base64:

    curl -H 'Content-Type: application/json' http://127.0.0.1:5000/invocations \
         -d "{\"dataframe_split\": {\"data\": [[\"$(base64 -w0 chest.png)\"]]}}"

Decoding (xray_exp/imaging/), letterbox and NMS (xray_exp/inference/onnx_detector.py) are the service's own code,
shipped inside the model (code_paths): the model loads where xray_exp is not installed, too.
"""

import base64
import binascii
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel

DEFAULTS = {"conf": 0.25, "iou": 0.7, "max_det": 300}


def image_items(model_input) -> list:
    """The images of any accepted input: a DataFrame (column `image`, else the first), a Series, an array,
    a list, or a single path / bytes."""
    if isinstance(model_input, pd.DataFrame):
        column = model_input["image"] if "image" in model_input.columns else model_input.iloc[:, 0]
        return list(column)
    if isinstance(model_input, dict):
        return list(model_input.get("image", next(iter(model_input.values()), [])))
    if isinstance(model_input, str | bytes | bytearray | Path):
        return [model_input]
    if isinstance(model_input, pd.Series | np.ndarray):
        return list(np.asarray(model_input, dtype=object).ravel())
    return list(model_input)


def image_bytes(item) -> bytes:
    """A file path or the file's bytes (raw, or base64 text as REST clients send them) -> bytes."""
    if isinstance(item, bytes | bytearray | memoryview):
        return bytes(item)
    text = str(item)
    try:
        if Path(text).expanduser().is_file():
            return Path(text).expanduser().read_bytes()
    except OSError:  # a long base64 string is no valid file name
        pass
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"image {text[:80]!r}: neither a readable file nor base64-encoded image bytes") from None


class XrayDetector(PythonModel):
    def load_context(self, context):
        if "ensemble.json" in context.artifacts:  # an ensemble (xray_exp.mlops.ensemble_model): answers the same
            from xray_exp.ensembles.detector import EnsembleDetector  # lazy: MLflow loads this model file itself

            self.detector = EnsembleDetector(Path(context.artifacts["ensemble.json"]).parent)
            return
        from xray_exp.inference.onnx_detector import OnnxDetector  # lazy: MLflow loads this model file itself

        self.detector = OnnxDetector(context.artifacts["onnx"])

    def predict(self, context, model_input, params=None):
        from xray_exp.imaging import decode_xray_bytes  # lazy: MLflow loads this model file itself
        from xray_exp.inference.onnx_detector import findings  # lazy: MLflow loads this model file itself

        p = {**DEFAULTS, **{k: v for k, v in (params or {}).items() if v is not None}}
        rows = []
        for item in image_items(model_input):
            gray = decode_xray_bytes(image_bytes(item))
            detections, _ = self.detector.predict(
                gray, conf=float(p["conf"]), iou=float(p["iou"]), max_det=int(p["max_det"])
            )
            rows.append({"findings": findings(detections), "width": int(gray.shape[1]), "height": int(gray.shape[0])})
        return pd.DataFrame(rows, columns=["findings", "width", "height"])


mlflow.models.set_model(XrayDetector())
