"""MLflow "model from code": a pyfunc that runs the exported YOLO12 ONNX file in ONNX Runtime.

Logged by xray_exp.mlflow_model; MLflow copies this file into the model, so the model loads
without xray_exp installed:

    model = mlflow.pyfunc.load_model("models:/yolo12n@development")
    raw = model.predict(images)   # float32 (B, 3, imgsz, imgsz) in [0, 1] -> (B, 4 + nc, anchors)

Class names and the input size are in the model's metadata (MLmodel `metadata`).
"""

import mlflow
import numpy as np


class OnnxYolo(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        import onnxruntime as ort

        providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider")
                     if p in ort.get_available_providers()]
        self.session = ort.InferenceSession(context.artifacts["onnx"], providers=providers)
        self.input_name = self.session.get_inputs()[0].name

    def predict(self, context, model_input, params=None):
        if isinstance(model_input, dict):  # named tensor signature: {"images": array}
            model_input = model_input["images"]
        x = np.asarray(model_input, dtype=np.float32)
        return np.concatenate([self.session.run(None, {self.input_name: x[i:i + 1]})[0] for i in range(len(x))])


mlflow.models.set_model(OnnxYolo())
