"""A detector gated by a normal/abnormal classifier, in ONNX Runtime without torch: the same interface as
inference.onnx_detector.OnnxDetector (predict, names, imgsz, providers, metadata), so the service and the registered
`<detector>-gated` pyfunc run it like any detector.

    from xray_exp.inference.gated_onnx_detector import GatedOnnxDetector, is_gated_folder
    detector = GatedOnnxDetector("model/artifacts")      # detector.onnx, classifier.onnx, gate.json
    # an ensemble behind the gate (<model>-ensemble-gated): detector/ (ensemble.json + members/) for detector.onnx
    detections, timings = detector.predict(gray_uint8, conf=0.25)   # timings["gate"]: the classifier's pass
    detector.last_probability                                       # P(abnormal) of that image
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from xray_exp.gating import GateSettings, gate_record
from xray_exp.inference.onnx_classifier import OnnxClassifier
from xray_exp.inference.onnx_detector import Detection, OnnxDetector

if TYPE_CHECKING:
    from xray_exp.ensembles.detector import EnsembleDetector

FILES = ("classifier.onnx", "gate.json")
ENSEMBLE_DETECTOR = "detector/ensemble.json"  # an ensemble's model folder in place of detector.onnx


def is_gated_folder(path: str | Path) -> bool:
    folder = Path(path)
    return (
        folder.is_dir()
        and all((folder / name).is_file() for name in FILES)
        and ((folder / "detector.onnx").is_file() or (folder / ENSEMBLE_DETECTOR).is_file())
    )


class GatedOnnxDetector:
    """detector.onnx's (or the ensemble detector/'s) boxes after the gate of classifier.onnx's P(abnormal)
    (thresholds in gate.json)."""

    def __init__(self, folder: str | Path, device: str = "auto", threads: int = 0):
        folder = Path(folder)
        self.detector: OnnxDetector | EnsembleDetector
        if (folder / ENSEMBLE_DETECTOR).is_file():
            # ensemble-boxes is needed only behind an ensemble
            from xray_exp.ensembles.detector import EnsembleDetector  # lazy: only on this path

            self.detector = EnsembleDetector(folder / "detector", device=device, threads=threads)
        else:
            self.detector = OnnxDetector(folder / "detector.onnx", device=device, threads=threads)
        self.classifier = OnnxClassifier(folder / "classifier.onnx", device=device, threads=threads)
        gate = json.loads((folder / "gate.json").read_text())
        self.gate = GateSettings(
            low=gate["low"], high=gate["high"], mode=gate["mode"], no_finding_class=gate.get("no_finding_class")
        )
        self.path, self.names, self.imgsz = folder, self.detector.names, self.detector.imgsz
        self.providers = self.detector.providers
        description = str(self.detector.metadata.get("description", "")).strip()
        self.metadata = {**self.detector.metadata, "description": f"{description} gated ({self.gate.describe()})"}
        self.last_probability: float | None = None

    def predict(
        self, gray: np.ndarray, conf: float = 0.25, iou: float = 0.7, max_det: int = 300
    ) -> tuple[list[Detection], dict[str, float]]:
        detections, timings = self.detector.predict(gray, conf=conf, iou=iou, max_det=max_det)
        t0 = time.perf_counter()
        p = self.classifier.abnormal_probability(gray)
        gated = gate_record(
            {
                "image_id": "",
                "boxes": [d.box for d in detections],
                "scores": [d.confidence for d in detections],
                "labels": [d.class_id for d in detections],
            },
            p,
            self.gate,
        )
        timings["gate"] = (time.perf_counter() - t0) * 1000
        self.last_probability = p
        labels = {d.class_id: d.label for d in detections}
        kept = [
            Detection(
                (float(box[0]), float(box[1]), float(box[2]), float(box[3])),
                float(score),
                int(label),
                labels[int(label)],
            )
            for box, score, label in zip(gated["boxes"], gated["scores"], gated["labels"], strict=True)
            if score >= conf
        ]
        return kept, timings
