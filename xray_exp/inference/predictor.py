"""`model=` -> a predictor: `.predict(gray_uint8) -> [Detection]`, `.identity` (name, version), `.classes`.

    predictor = load_predictor("best.onnx")                     # ONNX Runtime (xray_exp.inference.onnx_detector)
    predictor = load_predictor("models:/yolo12s@development")   # the registered version's model.onnx
    predictor = load_predictor("outputs/runs/yolo12n-20250101")  # a run folder: weights/best.onnx (or best.pt)
    predictor = load_predictor("best.pt")    # exported once to ONNX through xray_exp.yolo.export (cached)
    detections = predictor.predict(gray)

Every model runs through the one torch-free inference path (OnnxDetector): a `.pt` is exported to ONNX at the
size it was trained at, into `<cache_dir>/predict-onnx/<sha256 of the .pt>/` (Ultralytics is imported only
then). Ensembles and gated models plug in here: any object with `.predict`, `.identity` and `.classes`.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from xray_exp.errors import ModelError
from xray_exp.sr.writer import ModelIdentity
from xray_exp.yolo.export import export_onnx
from xray_exp.yolo.predict import trained_imgsz
from xray_exp.yolo.runtime import configure_offline

if TYPE_CHECKING:
    import numpy as np

    from xray_exp.inference.onnx_detector import Detection

log = logging.getLogger(__name__)

ONNX_NAMES = ("model.onnx", "best.onnx")
RUN_WEIGHTS = ("weights/best.onnx", "weights/best.pt")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class ImageDetector(Protocol):
    """What OnnxPredictor needs of its detector: onnx_detector.OnnxDetector or an EnsembleDetector."""

    names: dict[int, str]

    def predict(
        self, gray: np.ndarray, conf: float = ..., iou: float = ..., max_det: int = ...
    ) -> tuple[list[Detection], dict[str, float]]: ...


@dataclass
class OnnxPredictor:
    """An OnnxDetector with its thresholds and the identity a report names."""

    detector: ImageDetector
    identity: ModelIdentity
    path: Path
    conf: float = 0.25
    iou: float = 0.7
    max_det: int = 300
    source: str = "file"
    classes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        names = self.detector.names
        self.classes = [names[i] for i in sorted(names)]

    def predict(self, gray: np.ndarray) -> list[Detection]:
        """Detections (box in original pixels, confidence, class_id, label) for one uint8 image, best first."""
        return self.detector.predict(gray, conf=self.conf, iou=self.iou, max_det=self.max_det)[0]

    def describe(self) -> dict:
        return {
            "name": self.identity.name,
            "version": self.identity.version,
            "source": self.source,
            "path": str(self.path),
            "classes": self.classes,
        }


def _registry_onnx(spec: str, tracking_uri: str | None, cache_dir: Path) -> tuple[Path, ModelIdentity]:
    from xray_exp.mlops.registry import (  # lazy: looked up at call time (tests replace it)
        download_version,
        get_latest_model,
        parse_models_uri,
    )

    name, alias, version = parse_models_uri(spec)
    dst = cache_dir / "registry"
    if version:
        folder = download_version(name, version, tracking_uri, dst)
    else:
        folder, version = get_latest_model(name, alias, tracking_uri, dst)
    from xray_exp.ensembles.detector import (
        is_ensemble_folder,  # onnxruntime: imported once a model loads; lazy: heavy (cv2, onnxruntime)
    )  # lazy: heavy (cv2, onnxruntime)
    from xray_exp.inference.gated_onnx_detector import is_gated_folder  # lazy: heavy (cv2, onnxruntime)

    folder = Path(folder)
    if is_ensemble_folder(folder) or is_gated_folder(folder):  # <model>-ensemble, <detector>-gated
        return folder, ModelIdentity(name, str(version))
    return folder / "model.onnx", ModelIdentity(name, str(version))


def export_pt(weights: Path, cache_dir: Path, output_dir: Path, imgsz: int | None = None) -> Path:
    """A .pt exported to ONNX (at `imgsz`, else its training size) once, cached by the checkpoint's digest and size."""
    target = cache_dir / "predict-onnx" / f"{file_sha256(weights)[:16]}-{imgsz or 'trained'}"
    if (target / "best.onnx").is_file():
        return target / "best.onnx"

    configure_offline(output_dir / ".ultralytics")

    imgsz = imgsz or trained_imgsz(weights)
    if imgsz is None:
        raise ModelError(f"{weights}: the checkpoint does not record its training image size. Fix: pass imgsz=<size>")
    staging = target.with_name(target.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    shutil.copy2(weights, staging / "best.pt")
    log.info("exporting %s to ONNX at imgsz %d (once; cached in %s)", weights, imgsz, target)
    onnx = export_onnx(staging / "best.pt", imgsz=imgsz)
    if onnx.name != "best.onnx":
        onnx.rename(staging / "best.onnx")
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return target / "best.onnx"


def resolve_local(spec: str, cache_dir: Path, output_dir: Path, imgsz: int | None = None) -> tuple[Path, ModelIdentity]:
    """A file, a folder with model.onnx/best.onnx, an ensemble folder or a run folder -> (ONNX path or ensemble
    folder, identity)."""
    path = Path(spec).expanduser()
    if not path.exists():
        raise ModelError(
            f"model={spec}: {path} does not exist. Fix: pass a .onnx/.pt file, a run folder "
            "(outputs/runs/<run>) or a models:/<name>@<alias> registry URI."
        )
    name = path.name
    from xray_exp.ensembles.detector import (  # onnxruntime: a model loads next; lazy: heavy (cv2, onnxruntime)
        ENSEMBLE_FILE,
        is_ensemble_folder,
    )  # lazy: heavy (cv2, onnxruntime)
    from xray_exp.inference.gated_onnx_detector import is_gated_folder  # lazy: heavy (cv2, onnxruntime)

    if path.is_dir() and is_ensemble_folder(path):  # outputs/ensemble/<time>/model (ensemble.json + members/)
        return path.resolve(), ModelIdentity(name, f"sha256:{file_sha256(path / ENSEMBLE_FILE)[:12]}")
    if path.is_dir() and is_gated_folder(path):  # a detector + gate folder (detector/classifier ONNX, gate.json)
        return path.resolve(), ModelIdentity(name, f"sha256:{file_sha256(path / 'gate.json')[:12]}")
    if path.is_dir():
        candidates = [path / n for n in ONNX_NAMES] + [path / n for n in RUN_WEIGHTS]
        found = next((c for c in candidates if c.is_file()), None)
        if found is None:
            raise ModelError(f"model={spec}: the folder holds none of {', '.join(ONNX_NAMES + RUN_WEIGHTS)}")
        path = found
    if path.suffix.lower() == ".pt":
        digest = file_sha256(path)[:12]
        return export_pt(path.resolve(), cache_dir, output_dir, imgsz), ModelIdentity(name, f"sha256:{digest}")
    if path.suffix.lower() != ".onnx":
        raise ModelError(f"model={spec}: expected a .onnx or .pt file (got {path.name})")
    return path.resolve(), ModelIdentity(name, f"sha256:{file_sha256(path)[:12]}")


def load_predictor(
    spec: str,
    conf: float = 0.25,
    iou: float = 0.7,
    max_det: int = 300,
    device: str = "auto",
    tracking_uri: str | None = None,
    cache_dir: str | Path = "outputs/.cache",
    output_dir: str | Path = "outputs",
    imgsz: int | None = None,
) -> OnnxPredictor:
    """The predictor `model=` names (ModelError with the fix when it cannot be loaded)."""
    cache_dir, output_dir = Path(cache_dir), Path(output_dir)
    if str(spec).startswith("models:/"):
        onnx, identity = _registry_onnx(str(spec), tracking_uri, cache_dir)
        source = "registry"
    else:
        onnx, identity = resolve_local(str(spec), cache_dir, output_dir, imgsz)
        source = "file"
    from xray_exp.ensembles.detector import EnsembleDetector, is_ensemble_folder  # lazy: heavy (cv2, onnxruntime)
    from xray_exp.inference.gated_onnx_detector import GatedOnnxDetector  # lazy: heavy (cv2, onnxruntime)
    from xray_exp.inference.onnx_detector import OnnxDetector  # lazy: heavy (cv2, onnxruntime)

    detector: ImageDetector
    try:
        if onnx.is_dir():
            detector = (EnsembleDetector if is_ensemble_folder(onnx) else GatedOnnxDetector)(onnx, device=device)
        else:
            detector = OnnxDetector(onnx, device=device)
    except Exception as exc:  # onnxruntime raises its own types for a corrupt or foreign file
        raise ModelError(f"model={spec}: {onnx} is not a loadable YOLO detection ONNX model ({exc})") from exc
    log.info("model %s version %s from %s", identity.name, identity.version, onnx)
    return OnnxPredictor(detector, identity, onnx, conf, iou, max_det, source)
