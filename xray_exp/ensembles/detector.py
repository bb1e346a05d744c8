"""An ensemble of ONNX detectors that answers like one (torch-free): the service and the registered pyfunc.

    from xray_exp.ensembles.detector import EnsembleDetector, is_ensemble_folder
    detector = EnsembleDetector("outputs/ensemble/<time>/model")    # ensemble.json + members/*.onnx
    detections, timings = detector.predict(gray_uint8, conf=0.25)   # like xray_exp.inference.onnx_detector.OnnxDetector

Each member (inference.onnx_detector.OnnxDetector, the single model's own pre- and post-processing) predicts every
view of the image (tta_views: original, mirror, zooms); the views of one image go through a member's ONNX
session as one batch when its input's batch dimension is dynamic or equals the number of views, else one
call per view (Ultralytics' exports are static batch 1). All model x view sets are fused in one step
(xray_exp.ensembles.fusion). Members predict at `member_conf(conf)` (fusion.skip_box_thr, or conf / sets
when higher); the fused boxes are filtered at the request's `conf` and `max_det`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from xray_exp.ensembles.fusion import Detections, FusionSettings, View, fuse, top, unview_boxes, view_image
from xray_exp.inference.onnx_detector import Detection, OnnxDetector

ENSEMBLE_FILE = "ensemble.json"


def is_ensemble_folder(path: str | Path) -> bool:
    return Path(path).is_dir() and (Path(path) / ENSEMBLE_FILE).is_file()


def batch_size(detector: OnnxDetector) -> int | None:
    """The ONNX input's batch dimension: an int when static, None when dynamic."""
    dim = detector.session.get_inputs()[0].shape[0]
    return dim if isinstance(dim, int) else None


def as_arrays(detections: list[Detection]) -> Detections:
    if not detections:
        return np.zeros((0, 4), np.float64), np.zeros(0, np.float64), np.zeros(0, np.int64)
    return (
        np.array([d.box for d in detections], np.float64),
        np.array([d.confidence for d in detections], np.float64),
        np.array([d.class_id for d in detections], np.int64),
    )


class EnsembleDetector:
    """Members x views fused into one detection set; the same `predict` as OnnxDetector."""

    def __init__(self, folder: str | Path, device: str = "auto", threads: int = 0):
        self.path = Path(folder)
        self.spec = json.loads((self.path / ENSEMBLE_FILE).read_text())
        self.members = [
            OnnxDetector(self.path / m["onnx"], device=device, threads=threads) for m in self.spec["members"]
        ]
        self.member_weights = [float(m.get("weight", 1.0)) for m in self.spec["members"]]
        self.fusion = FusionSettings(**self.spec["fusion"])
        self.views = [View(float(v["scale"]), bool(v["flip"])) for v in self.spec["views"]]
        first = self.members[0]
        for member, entry in zip(self.members[1:], self.spec["members"][1:], strict=True):
            if member.names != first.names:
                raise ValueError(
                    f"{self.path}: member {entry['name']} predicts {member.names}, the first member {first.names}"
                )
        self.names, self.imgsz, self.providers = first.names, first.imgsz, first.providers
        self.metadata = {
            "description": f"ensemble of {len(self.members)} models x {len(self.views)} views ({self.fusion.method})",
            "ensemble": True,
        }
        self.batched = [batch_size(m) in (None, len(self.views)) for m in self.members]

    @property
    def nc(self) -> int:
        return len(self.names)

    @property
    def set_weights(self) -> list[float]:
        """The weight of each fused set (member-major: member 0's views, member 1's views, ...)."""
        return [w for w in self.member_weights for _ in self.views]

    def raw(
        self,
        gray: np.ndarray,
        conf: float,
        iou: float = 0.7,
        max_det: int = 300,
        timings: dict[str, float] | None = None,
        members: list[int] | None = None,
    ) -> list[Detections]:
        """Every member's (or the `members` indices') detections on every view, mapped back to the image
        (member-major order)."""
        height, width = gray.shape[:2]
        timings = {} if timings is None else timings
        t0 = time.perf_counter()
        images = [view_image(gray, v) for v in self.views]
        indices = range(len(self.members)) if members is None else members
        chosen, batched = [self.members[i] for i in indices], [self.batched[i] for i in indices]
        prepared = [[m.preprocess(image) for image in images] for m in chosen]
        t1 = time.perf_counter()
        outputs = []
        for member, as_batch, inputs in zip(chosen, batched, prepared, strict=True):
            if as_batch and len(inputs) > 1:
                stacked = member.infer(np.concatenate([tensor for tensor, _ in inputs]))
                outputs.append([stacked[i : i + 1] for i in range(len(inputs))])
            else:
                outputs.append([member.infer(tensor) for tensor, _ in inputs])
        t2 = time.perf_counter()
        sets = []
        for member, inputs, outs in zip(chosen, prepared, outputs, strict=True):
            for view, (_, box), out in zip(self.views, inputs, outs, strict=True):
                boxes, scores, labels = as_arrays(member.postprocess(out, box, conf=conf, iou=iou, max_det=max_det))
                sets.append((unview_boxes(boxes, view, width, height), scores, labels))
        t3 = time.perf_counter()
        timings.update(preprocess=(t1 - t0) * 1000, inference=(t2 - t1) * 1000, postprocess=(t3 - t2) * 1000)
        return sets

    def fuse(
        self,
        sets: list[Detections],
        width: int,
        height: int,
        conf: float,
        max_det: int,
        fusion: FusionSettings | None = None,
        weights: list[float] | None = None,
    ) -> Detections:
        fused = fuse(sets, weights or self.set_weights, width, height, fusion or self.fusion)
        return top(fused, conf, max_det)

    def member_conf(self, conf: float) -> float:
        """What the members predict at for a request at `conf`: `fusion.skip_box_thr`, raised to conf / (models x
        views) -- a box below it adds less than conf / n to a fused (WBF avg) score -- so that serving at
        conf 0.25 fuses a few dozen boxes instead of every low-score candidate. At evaluation confidences
        (0.001) it is skip_box_thr: the evaluation fuses exactly what the members predict."""
        return max(self.fusion.skip_box_thr, conf / len(self.set_weights))

    def predict(
        self, gray: np.ndarray, conf: float = 0.25, iou: float = 0.7, max_det: int = 300
    ) -> tuple[list[Detection], dict[str, float]]:
        """Fused detections for one uint8 image and the time each stage took (ms)."""
        timings: dict[str, float] = {}
        sets = self.raw(gray, conf=self.member_conf(conf), iou=iou, max_det=max_det, timings=timings)
        t0 = time.perf_counter()
        boxes, scores, labels = self.fuse(sets, gray.shape[1], gray.shape[0], conf, max_det)
        timings["fusion"] = (time.perf_counter() - t0) * 1000
        detections = [
            Detection(
                (float(x1), float(y1), float(x2), float(y2)), float(s), int(c), self.names.get(int(c), str(int(c)))
            )
            for (x1, y1, x2, y2), s, c in zip(boxes, scores, labels, strict=True)
        ]
        return detections, timings
