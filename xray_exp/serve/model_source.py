"""Where the served model comes from: a local ONNX file/folder or the MLflow Model Registry.

    XRAY_SERVE_MODEL=outputs/runs/x/weights/best.onnx     # a file
    XRAY_SERVE_MODEL=outputs/runs/x/export                 # a folder holding model.onnx (or best.onnx)
    XRAY_SERVE_MODEL=models:/yolo12n@champion              # registry: xray_exp.mlops.registry.get_latest_model
    XRAY_SERVE_MODEL=models:/yolo12n                       # registry: latest (or XRAY_SERVE_MODEL_ALIAS)
    XRAY_SERVE_MODEL=models:/yolo12s-ensemble@development  # an ensemble (xray_exp.ensembles): answers the same
    XRAY_SERVE_MODEL=outputs/ensemble/<time>/model         # a local ensemble folder (ensemble.json + members/)

mlflow itself is imported only when a models:/ URI is loaded (xray_exp.mlops.registry imports it on first use).
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any, Protocol

from xray_exp.ensembles.detector import ENSEMBLE_FILE, EnsembleDetector, is_ensemble_folder
from xray_exp.errors import ModelError
from xray_exp.inference.gated_onnx_detector import GatedOnnxDetector, is_gated_folder
from xray_exp.inference.onnx_detector import OnnxDetector
from xray_exp.mlops.registry import parse_models_uri

if TYPE_CHECKING:
    import numpy as np

    from xray_exp.inference.onnx_detector import Detection

log = logging.getLogger(__name__)

ONNX_NAMES = ("model.onnx", "best.onnx")


class ServedDetector(Protocol):
    """What the service uses of its model: an OnnxDetector, a GatedOnnxDetector or an EnsembleDetector."""

    @property
    def names(self) -> dict[int, str]: ...

    @property
    def imgsz(self) -> Sequence[int]: ...

    @property
    def providers(self) -> Sequence[str]: ...

    @property
    def metadata(self) -> Mapping[str, Any]: ...

    def predict(
        self, gray: np.ndarray, conf: float = ..., iou: float = ..., max_det: int = ...
    ) -> tuple[list[Detection], dict[str, float]]: ...


class ModelUnavailable(RuntimeError):
    """No model could be loaded; the message says why (the service still starts, /predict answers 503)."""


@dataclass(frozen=True)
class ModelInfo:
    name: str
    version: str
    source: str  # "file" | "registry"
    uri: str
    alias: str | None
    path: str
    imgsz: tuple[int, int]
    classes: list[str]
    providers: list[str]
    architecture: str | None = None

    def public(self) -> dict:
        return asdict(self)


def served_registry_model(uri: str) -> tuple[str, str | None]:
    """models:/<name>[@<alias>] -> (name, alias) (parsed by xray_exp.mlops.registry.parse_models_uri); the
    service follows an alias or the latest version, so a pinned models:/<name>/<version> is refused too:
    ValueError (a configuration error: the service does not start)."""
    try:
        name, alias, version = parse_models_uri(uri)
        if version is None:
            return name, alias
    except ModelError:
        pass
    raise ValueError(f"registry model URI must look like models:/<name>@<alias> or models:/<name> ({uri!r})")


def find_onnx(path: Path) -> Path:
    """A .onnx file as given, or model.onnx / best.onnx inside a folder."""
    if path.is_dir():
        for name in ONNX_NAMES:
            if (path / name).is_file():
                return path / name
        raise FileNotFoundError(f"{path} holds none of {', '.join(ONNX_NAMES)}")
    if not path.is_file():
        raise FileNotFoundError(f"model file {path} does not exist")
    return path


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:12]


def public_description(description: str) -> str | None:
    """Ultralytics' "YOLO12n model trained on /abs/path/nih/data.yaml" -> "... trained on nih": the training
    dataset by name, never a path of the machine that trained it."""

    def name(match: re.Match) -> str:
        path = PurePath(match.group(1))
        return "trained on " + (
            path.parent.name if path.name in ("data.yaml", "data.yml") and path.parent.name else path.name
        )

    return re.sub(r"trained on (\S+)", name, description.strip()) or None


def is_registry_uri(spec: str | None) -> bool:
    return spec is not None and spec.startswith("models:/")


def load_detector(
    spec: str,
    tracking_uri: str | None = None,
    default_alias: str | None = None,
    device: str = "auto",
    threads: int = 0,
) -> tuple[ServedDetector, ModelInfo]:
    """Load the model `spec` names. A missing local file raises FileNotFoundError (a configuration
    error: fail at start); a registry that cannot deliver raises ModelUnavailable."""
    if is_registry_uri(spec):
        name, alias = served_registry_model(spec)
        alias = alias or default_alias
        try:
            from xray_exp.mlops.registry import get_latest_model  # lazy: optional
        except ImportError as exc:
            raise ModelUnavailable(f"xray_exp.mlops.registry is not available: {exc}") from exc
        try:
            local_path, version = get_latest_model(name, alias=alias, tracking_uri=tracking_uri)
            folder = Path(local_path)
            onnx_path = folder if is_ensemble_folder(folder) or is_gated_folder(folder) else find_onnx(folder)
        except Exception as exc:  # registry errors come in many types (mlflow, network, missing files)
            raise ModelUnavailable(f"registry model {spec} (alias {alias}) unavailable: {exc}") from exc
        source, version = "registry", str(version)
    else:
        local = Path(spec).expanduser()
        onnx_path = local if is_ensemble_folder(local) or is_gated_folder(local) else find_onnx(local)
        name, alias, source = onnx_path.name, None, "file"
        described_by = onnx_path / ENSEMBLE_FILE if is_ensemble_folder(onnx_path) else onnx_path / "gate.json"
        version = f"sha256:{file_digest(described_by if onnx_path.is_dir() else onnx_path)}"
    detector: ServedDetector
    if onnx_path.is_dir() and is_ensemble_folder(onnx_path):  # members x views fused, the same predict()
        detector = EnsembleDetector(onnx_path, device=device, threads=threads)
    elif onnx_path.is_dir():  # a detector + gate (<detector>-gated): the same interface
        detector = GatedOnnxDetector(onnx_path, device=device, threads=threads)
    else:
        detector = OnnxDetector(onnx_path, device=device, threads=threads)
    info = ModelInfo(
        name=name,
        version=version,
        source=source,
        uri=spec,
        alias=alias,
        path=str(onnx_path),
        imgsz=tuple(detector.imgsz),
        classes=[detector.names[i] for i in sorted(detector.names)],
        providers=list(detector.providers),
        architecture=public_description(str(detector.metadata.get("description", ""))),
    )
    log.info("serving %s version %s from %s (%s)", name, version, onnx_path, ", ".join(detector.providers))
    return detector, info
