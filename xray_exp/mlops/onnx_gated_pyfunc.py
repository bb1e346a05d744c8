"""MLflow "model from code": a detector gated by a normal/abnormal classifier (`<detector>-gated`). It answers
like the detector (findings per image) with the classifier's P(abnormal) beside them.

    model = mlflow.pyfunc.load_model("models:/yolo12s-gated@development")
    model.predict(["chest.png"], params={"conf": 0.25})   # -> findings, width, height, abnormal

The gate (xray_exp/gating: below `low` no findings, between `low` and `high` scores x P with mode=multiply,
above `high` kept; the "No finding" row 1 - P when no_finding_class is set) is applied to the detections,
then the confidence threshold: the same boxes as the evaluator's gated records at that threshold.
"""

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel

DEFAULTS = {"conf": 0.25, "iou": 0.7, "max_det": 300}


class XrayGatedDetector(PythonModel):
    def load_context(self, context):
        from pathlib import Path

        from xray_exp.inference.gated_onnx_detector import (
            GatedOnnxDetector,  # lazy: MLflow loads this model file itself
        )

        self.detector = GatedOnnxDetector(Path(context.artifacts["gate"]).parent)

    def predict(self, context, model_input, params=None):
        from xray_exp.imaging import decode_xray_bytes  # lazy: MLflow loads this model file itself
        from xray_exp.inference.onnx_detector import findings  # lazy: MLflow loads this model file itself
        from xray_exp.mlops.pyfunc_inputs import classifier_inputs  # lazy: MLflow loads this model file itself

        p = {**DEFAULTS, **{k: v for k, v in (params or {}).items() if v is not None}}
        gate, rows = self.detector.gate, []
        for data in classifier_inputs(model_input):
            gray = decode_xray_bytes(data)
            kept, _ = self.detector.predict(gray, conf=float(p["conf"]), iou=float(p["iou"]), max_det=int(p["max_det"]))
            prob = self.detector.last_probability
            out = findings(kept)
            if gate.no_finding_class is not None:
                out.append(
                    {
                        "label": "No finding",
                        "class_id": int(gate.no_finding_class),
                        "confidence": round(1.0 - prob, 6),
                        "box": [0.0, 0.0, 1.0, 1.0],
                    }
                )
            rows.append({"findings": out, "width": int(gray.shape[1]), "height": int(gray.shape[0]), "abnormal": prob})
        return pd.DataFrame(rows, columns=["findings", "width", "height", "abnormal"])


mlflow.models.set_model(XrayGatedDetector())
