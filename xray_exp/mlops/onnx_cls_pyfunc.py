"""MLflow "model from code": the registered normal/abnormal classifier (`<model>-cls`). Images in, P(abnormal) out.

    model = mlflow.pyfunc.load_model("models:/yolo12n-cls@development")
    model.predict(["chest.png", "study.dcm"])       # -> DataFrame, one row per image: abnormal (0.87), width, height

Decoding (xray_exp/imaging/) and the torch-free classifier (inference/onnx_classifier.py) ship inside the model.
"""

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel


class XrayClassifier(PythonModel):
    def load_context(self, context):
        from xray_exp.inference.onnx_classifier import OnnxClassifier  # lazy: MLflow loads this model file itself

        self.classifier = OnnxClassifier(context.artifacts["onnx"])

    def predict(self, context, model_input, params=None):
        from xray_exp.imaging import decode_xray_bytes  # lazy: MLflow loads this model file itself
        from xray_exp.mlops.pyfunc_inputs import classifier_inputs  # lazy: MLflow loads this model file itself

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
