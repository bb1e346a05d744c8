"""MLflow "model from code": a detector gated by a normal/abnormal classifier (`<detector>-gated`). It answers
like the detector (findings per image) with the classifier's P(abnormal) beside them.

    model = mlflow.pyfunc.load_model("models:/yolo12s-gated@development")
    model.predict(["chest.png"], params={"conf": 0.25})   # -> findings, width, height, abnormal

The gate (xray_exp/gating: below `low` no findings, between `low` and `high` scores x P with mode=multiply,
above `high` kept; the "No finding" row 1 - P when no_finding_class is set) is applied to the detections,
then the confidence threshold: the same boxes as the evaluator's gated records at that threshold.
"""

import json

import mlflow
import pandas as pd

DEFAULTS = {"conf": 0.25, "iou": 0.7, "max_det": 300}


class XrayGatedDetector(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        from xray_exp.classifier import OnnxClassifier
        from xray_exp.detector import OnnxDetector
        from xray_exp.gating import GateSettings

        self.detector = OnnxDetector(context.artifacts["detector"])
        self.classifier = OnnxClassifier(context.artifacts["classifier"])
        with open(context.artifacts["gate"]) as f:
            gate = json.load(f)
        self.gate = GateSettings(
            low=gate["low"], high=gate["high"], mode=gate["mode"], no_finding_class=gate.get("no_finding_class")
        )

    def predict(self, context, model_input, params=None):
        from xray_exp.detector import Detection, findings
        from xray_exp.gating import gate_record
        from xray_exp.imaging import decode_xray_bytes
        from xray_exp.mlops.pyfunc_inputs import classifier_inputs

        p = {**DEFAULTS, **{k: v for k, v in (params or {}).items() if v is not None}}
        rows = []
        for data in classifier_inputs(model_input):
            gray = decode_xray_bytes(data)
            dets, _ = self.detector.predict(gray, conf=float(p["conf"]), iou=float(p["iou"]), max_det=int(p["max_det"]))
            prob = self.classifier.abnormal_probability(gray)
            gated = gate_record(
                {
                    "image_id": "",
                    "boxes": [d.box for d in dets],
                    "scores": [d.confidence for d in dets],
                    "labels": [d.class_id for d in dets],
                },
                prob,
                self.gate,
            )
            names = {d.class_id: d.label for d in dets}
            kept = [
                Detection(tuple(float(v) for v in box), float(score), int(label), names[int(label)])
                for box, score, label in zip(gated["boxes"], gated["scores"], gated["labels"], strict=True)
                if score >= float(p["conf"])
            ]
            out = findings(kept)
            if self.gate.no_finding_class is not None:
                out.append(
                    {
                        "label": "No finding",
                        "class_id": int(self.gate.no_finding_class),
                        "confidence": round(1.0 - prob, 6),
                        "box": [0.0, 0.0, 1.0, 1.0],
                    }
                )
            rows.append({"findings": out, "width": int(gray.shape[1]), "height": int(gray.shape[0]), "abnormal": prob})
        return pd.DataFrame(rows, columns=["findings", "width", "height", "abnormal"])


mlflow.models.set_model(XrayGatedDetector())
