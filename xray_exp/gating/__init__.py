"""The normal/abnormal gate on a detector's boxes (numpy only: no torch, no Ultralytics, no MLflow), for the
evaluator, and for any caller that has a detector's boxes and a classifier's P(abnormal) per image.

    from xray_exp.gating import GateSettings, gate_record, gate_records, tune_gate
    gate = GateSettings(low=0.2, high=0.8, mode="multiply", no_finding_class=14)
    gated = gate_records(preds, {"img1": 0.87, "img2": 0.05}, gate)     # per-image prediction records
    python -m xray_exp.evaluate model=models:/yolo12s@development gate=models:/yolo12n-cls@development
"""

from xray_exp.gating.gate import GATE_MODES, GateSettings, gate_record, gate_records
from xray_exp.gating.tune import tune_gate

__all__ = ["GATE_MODES", "GateSettings", "gate_record", "gate_records", "tune_gate"]
