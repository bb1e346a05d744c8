"""MLflow "model from code": the registered normal/abnormal classifier (`<model>-cls`). Images in, P(abnormal) out.

    model = mlflow.pyfunc.load_model("models:/yolo12n-cls@development")
    model.predict(["chest.png", "study.dcm"])       # -> DataFrame, one row per image: abnormal (0.87), width, height

Decoding (xray_exp/imaging.py) and the torch-free classifier (xray_exp/classifier.py) ship inside the model.
"""

import base64
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd


def classifier_inputs(model_input) -> list[bytes]:
    """The image bytes of any accepted input (as the detector's pyfunc): a DataFrame (column `image`, else the
    first), a Series, array or list, or one item; each item a file path, the file's bytes or base64 text."""
    if isinstance(model_input, pd.DataFrame):
        items = list(model_input["image"] if "image" in model_input.columns else model_input.iloc[:, 0])
    elif isinstance(model_input, str | bytes | bytearray | Path):
        items = [model_input]
    else:
        items = list(np.asarray(model_input, dtype=object).ravel())
    out = []
    for item in items:
        if isinstance(item, bytes | bytearray | memoryview):
            out.append(bytes(item))
            continue
        text = str(item)
        try:
            if len(text) < 4096 and Path(text).expanduser().is_file():
                out.append(Path(text).expanduser().read_bytes())
                continue
        except OSError:
            pass
        out.append(base64.b64decode(text, validate=True))
    return out


class XrayClassifier(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        from xray_exp.classifier import OnnxClassifier

        self.classifier = OnnxClassifier(context.artifacts["onnx"])

    def predict(self, context, model_input, params=None):
        from xray_exp.imaging import decode_xray_bytes

        rows = []
        for data in classifier_inputs(model_input):
            gray = decode_xray_bytes(data)
            rows.append(
                {
                    "abnormal": self.classifier.abnormal_probability(gray),
                    "width": int(gray.shape[1]),
                    "height": int(gray.shape[0]),
                }
            )
        return pd.DataFrame(rows, columns=["abnormal", "width", "height"])


mlflow.models.set_model(XrayClassifier())
