"""Service settings from XRAY_SERVE_* environment variables (documented in xray_exp/serve/__init__.py).

settings = ServeSettings.from_env()            # os.environ
settings = ServeSettings.from_env({"XRAY_SERVE_MODEL": "best.onnx"})
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

PREFIX = "XRAY_SERVE_"
JOB_API_SCHEMES = ("http://", "https://")
MB = 1024 * 1024


def default_job_command() -> list[str]:
    return [sys.executable, "-m", "xray_exp.train"]


@dataclass
class ServeSettings:
    model: str | None = None  # a .onnx file, a folder holding model.onnx, or models:/<name>[@<alias>]
    model_name: str = "yolo12n"  # the registered model (and `model=` config) that training targets
    model_alias: str | None = None  # registry alias when `model` is models:/<name> without one
    tracking_uri: str | None = None  # MLflow; falls back to MLFLOW_TRACKING_URI
    device: str = "auto"  # auto | cpu | cuda (ONNX Runtime provider)
    threads: int = 0  # ONNX Runtime intra-op threads; 0 = its default
    conf: float = 0.25
    iou: float = 0.7
    max_det: int = 300
    max_upload_bytes: int = 50 * MB
    max_pixels: int = 100_000_000
    max_pixel_bytes: int = 48 * MB  # one decoded frame (w x h x samples x bytes); 4300x4300 16-bit DR = 35 MiB
    max_decompressed_bytes: int = 128 * MB  # inflated Deflated DICOM; all frames' pixel bytes together
    workers: int = 4  # threads that decode and run inference; requests beyond them wait in the queue
    queue_size: int = 8  # waiting requests; more get 503 at once
    large_decode_bytes: int = 16 * MB  # uploads announcing more decoded bytes per frame go to the large lane
    large_workers: int = 0  # large decodes at once; 0 = half the cores
    large_queue_size: int = 4  # large decodes waiting; more get 503 at once
    request_timeout_s: float = 30.0  # decode + inference of one request; beyond it 504
    annotate_max_side: int = 2048  # annotated PNGs are downscaled to this longest side
    upload_dir: str | None = None  # store uploads here (random names) only when set
    token: str | None = field(default=None, repr=False)  # bearer token for trigger-*; unset = triggers off
    job_command: list[str] = field(default_factory=default_job_command)
    job_dir: str = "outputs/serve-jobs"  # job logs
    job_timeout_s: float = 24 * 3600
    job_queue_depth: int = 4  # triggers while a job runs wait in a queue this long; then 429
    ray_address: str | None = None  # Ray dashboard/jobs address (http://head:8265): jobs run as Ray Jobs
    cors_origins: list[str] = field(default_factory=list)
    host: str = "127.0.0.1"
    port: int = 8000
    metrics: bool = True  # GET /metrics (Prometheus text format)
    audit_log: str | None = None  # JSON lines, one per request that touches images or models (off when unset)
    audit_salt: str | None = field(default=None, repr=False)  # hashes of tokens and DICOM UIDs; else a salt file
    audit_required: bool = False  # refuse to start when the audit log cannot be written
    audit_max_bytes: int = 100 * MB  # rotate the audit log at this size
    audit_backups: int = 10  # rotated files kept (audit.log.1 ... .N)
    sr_codes: str | None = None  # class -> finding code YAML of the SRs (default: xray_exp/sr/finding_codes.yaml)
    dicomweb_url: str | None = None  # PACS DICOMweb root (http://pacs:8042/dicom-web): POST /studies/{uid}/analyze
    dicomweb_credentials_file: str | None = None  # `user:password` or a bearer token; never logged
    dicomweb_timeout_s: float = 30.0
    dicomweb_retries: int = 3  # attempts per request on connection errors and 5xx answers

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ServeSettings:
        env = os.environ if env is None else env
        values: dict = {}
        for f in fields(cls):
            raw = env.get(PREFIX + f.name.upper())
            if raw is None or raw == "":
                continue
            values[f.name] = _parse(f.name, raw)
        if "tracking_uri" not in values and env.get("MLFLOW_TRACKING_URI"):
            values["tracking_uri"] = env["MLFLOW_TRACKING_URI"]
        if "ray_address" not in values and env.get("RAY_ADDRESS", "").startswith(JOB_API_SCHEMES):
            values["ray_address"] = env["RAY_ADDRESS"]  # a GCS address (head:6379) is for drivers: not used here
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        if not 0.0 <= self.conf <= 1.0 or not 0.0 <= self.iou <= 1.0:
            raise ValueError("XRAY_SERVE_CONF and XRAY_SERVE_IOU must be within [0, 1]")
        positive = (
            "max_upload_bytes",
            "max_pixels",
            "max_pixel_bytes",
            "max_decompressed_bytes",
            "max_det",
            "workers",
            "request_timeout_s",
        )
        for name in positive:
            if not getattr(self, name) > 0:
                raise ValueError(f"{PREFIX}{name.upper()} must be positive (got {getattr(self, name)!r})")
        for name in ("queue_size", "large_workers", "large_queue_size", "large_decode_bytes"):
            if getattr(self, name) < 0:
                raise ValueError(f"{PREFIX}{name.upper()} must be 0 or more (got {getattr(self, name)!r})")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"XRAY_SERVE_DEVICE must be auto, cpu or cuda (got {self.device!r})")
        if self.ray_address and not self.ray_address.startswith(JOB_API_SCHEMES):
            raise ValueError(
                f"XRAY_SERVE_RAY_ADDRESS must be the Ray cluster's job API, http://HEAD_IP:8265 "
                f"(got {self.ray_address!r}; the GCS address head:6379 is for drivers)"
            )
        if self.job_queue_depth < 0:
            raise ValueError("XRAY_SERVE_JOB_QUEUE_DEPTH must be >= 0")
        if not self.job_command:
            raise ValueError("XRAY_SERVE_JOB_COMMAND is empty")
        if self.audit_max_bytes < 1024 or self.audit_backups < 1:
            raise ValueError("XRAY_SERVE_AUDIT_MAX_BYTES must be >= 1024 and XRAY_SERVE_AUDIT_BACKUPS >= 1")

    @property
    def triggers_enabled(self) -> bool:
        return bool(self.token)

    def public(self) -> dict:
        """What GET /config shows: no token, and credentials stripped from URIs."""
        return {
            "model_source": self.model,
            "model_name": self.model_name,
            "model_alias": self.model_alias,
            "tracking_uri": redact_uri(self.tracking_uri),
            "device": self.device,
            "thresholds": {"conf": self.conf, "iou": self.iou, "max_det": self.max_det},
            "limits": {
                "max_upload_bytes": self.max_upload_bytes,
                "max_pixels": self.max_pixels,
                "max_pixel_bytes": self.max_pixel_bytes,
                "max_decompressed_bytes": self.max_decompressed_bytes,
                "workers": self.workers,
                "queue_size": self.queue_size,
                "large_decode_bytes": self.large_decode_bytes,
                "large_workers": self.large_workers,
                "large_queue_size": self.large_queue_size,
                "request_timeout_s": self.request_timeout_s,
            },
            "store_uploads": bool(self.upload_dir),
            "triggers_enabled": self.triggers_enabled,
            "job_runner": "ray" if self.ray_address else "local",
            "job_queue_depth": self.job_queue_depth,
            "cors_origins": list(self.cors_origins),
            "metrics": self.metrics,
            "audit": {"configured": bool(self.audit_log), "required": self.audit_required},
        }


def _parse(name: str, raw: str):
    integers = (
        "threads",
        "max_det",
        "max_upload_bytes",
        "max_pixels",
        "max_pixel_bytes",
        "max_decompressed_bytes",
        "workers",
        "queue_size",
        "annotate_max_side",
        "port",
        "job_queue_depth",
        "audit_max_bytes",
        "audit_backups",
        "large_decode_bytes",
        "large_workers",
        "large_queue_size",
    )
    try:
        if name in integers:
            return int(float(raw))
        if name in ("conf", "iou", "job_timeout_s", "request_timeout_s"):
            return float(raw)
    except ValueError as exc:
        raise ValueError(f"{PREFIX}{name.upper()}={raw!r} is not a number") from exc
    if name in ("metrics", "audit_required"):
        return _parse_bool(name, raw)
    if name in DICOMWEB_NUMBERS:
        return _dicomweb_number(name, raw, DICOMWEB_NUMBERS[name])
    if name == "job_command":
        return shlex.split(raw)
    if name == "cors_origins":
        return [o.strip() for o in raw.split(",") if o.strip()]
    if name in ("job_dir", "upload_dir", "audit_log"):
        return str(Path(raw).expanduser())
    return raw


def _parse_bool(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{PREFIX}{name.upper()}={raw!r} is not true or false")


PATH_KEYS = ("model_source", "tracking_uri", "uri", "path")
ABSOLUTE_PATH = re.compile(r"(?<![:/\w])/(?:[^\s/'\"]+/)+([^\s/'\"]+)")  # /a/b/c (not after "scheme:/")


def hide_path(value: str | None) -> str | None:
    """A local path or file URI -> its last part ('…/best.onnx', 'sqlite:///…/mlflow.db'); http(s) and
    models:/ URIs unchanged."""
    if not value or value.startswith(("http://", "https://", "models:/")) or "/" not in value:
        return value
    if "://" in value:
        scheme = value.split("://", 1)[0]
        return f"{scheme}:///…/{value.rstrip('/').rsplit('/', 1)[-1]}"
    return "…/" + value.rstrip("/").rsplit("/", 1)[-1]


def hide_server_paths(config: dict) -> dict:
    """GET /config for a caller without the token: server paths reduced to their last part (PATH_KEYS at any
    depth; absolute paths inside free text such as model_detail)."""
    out = {}
    for key, value in config.items():
        if isinstance(value, dict):
            value = hide_server_paths(value)
        elif isinstance(value, str) and key in PATH_KEYS:
            value = hide_path(value)
        elif isinstance(value, str):
            value = ABSOLUTE_PATH.sub(r"…/\1", value)
        out[key] = value
    return out


def redact_uri(uri: str | None) -> str | None:
    """Drop user:password@ and the query string (tokens) from a URI; sqlite:////abs paths stay intact."""
    if not uri or "://" not in uri:
        return uri
    scheme, rest = uri.split("://", 1)
    authority, slash, path = rest.partition("/")
    authority = authority.rsplit("@", 1)[-1]
    path = path.split("?", 1)[0].split("#", 1)[0]
    return f"{scheme}://{authority}{slash}{path}"


DICOMWEB_NUMBERS = {"dicomweb_timeout_s": float, "dicomweb_retries": int}


def _dicomweb_number(name: str, raw: str, kind: type):
    try:
        return kind(float(raw)) if kind is int else kind(raw)
    except ValueError as exc:
        raise ValueError(f"{PREFIX}{name.upper()}={raw!r} is not a number") from exc
