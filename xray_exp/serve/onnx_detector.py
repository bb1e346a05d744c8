"""The service's detector: xray_exp.detector (shared with the registered MLflow model, no fastapi there).

from xray_exp.serve.onnx_detector import OnnxDetector   # same objects as xray_exp.detector
"""

from xray_exp.detector import (  # noqa: F401  (re-exported for the service's modules)
    MAX_NMS,
    MAX_WH,
    PAD_VALUE,
    Detection,
    Letterbox,
    OnnxDetector,
    findings,
    letterbox,
    nms,
    parse_metadata,
    select_providers,
)
