"""Request and response bodies of the service (they make up its OpenAPI schema at /openapi.json)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from xray_exp.serve.overrides import MAX_OVERRIDES, MODEL_NAME_PATTERN, OVERRIDE_PATTERN, validate_overrides

Override = Annotated[str, StringConstraints(pattern=OVERRIDE_PATTERN, max_length=200)]
ModelName = Annotated[str, StringConstraints(pattern=MODEL_NAME_PATTERN, max_length=64)]


class Finding(BaseModel):
    label: str
    class_id: int
    confidence: float
    box: list[float] = Field(description="[x1, y1, x2, y2] in the original image's pixels")


class ImageInfo(BaseModel):
    format: str
    width: int
    height: int
    frames: int = Field(1, description="frames in the file; of a multi-frame DICOM the first is analysed")
    note: str | None = Field(None, description="e.g. which frame of a multi-frame DICOM was analysed")
    pixel_spacing_mm: list[float] | None = Field(
        None, description="DICOM [row, column] mm per pixel (PixelSpacing, else ImagerPixelSpacing); null otherwise"
    )


class PredictResponse(BaseModel):
    findings: list[Finding]
    summary: str = Field(description='"No findings" when the list is empty')
    image: ImageInfo
    model: dict
    thresholds: dict
    timings_ms: dict[str, float]
    annotated_image: str | None = Field(None, description="data:image/png;base64,... when include_image=true")


class TriggerRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: ModelName | None = Field(
        default=None, description="model config / registered model name (default: the served one)"
    )
    overrides: list[Override] = Field(
        default_factory=list,
        max_length=MAX_OVERRIDES,
        description="Hydra overrides key=value for xray_exp.train, e.g. debug=smoke train.epochs=5: "
        "config group choices (dataset, augmentation, hardware, experiment, debug, tracking) and "
        "hyperparameters (train.*, augmentation.*, hardware.*, dataset.synthetic.*, post.*, objective.*); "
        "paths.*, tracking.*, model.*, hydra.*, mode and the rest are refused with 422 naming the key",
    )

    @field_validator("overrides")
    @classmethod
    def _safe(cls, value: list[str]) -> list[str]:
        return validate_overrides(value)


class JobProgress(BaseModel):
    epoch: int = Field(description="epochs finished (rows in the run's results.csv)")
    epochs: int | None = Field(description="epochs planned (train.epochs)")
    metrics: dict = Field(description="the latest epoch's row of results.csv")


class JobInfo(BaseModel):
    id: str
    mode: str
    model: str
    overrides: list[str]
    reason: str
    status: str = Field(description="queued | running | succeeded | failed | cancelled | interrupted")
    runner: str = Field(description="local (subprocess) or ray (Ray Job)")
    resources: dict
    created_at: str
    started_at: str | None
    finished_at: str | None
    returncode: int | None
    run_dir: str | None
    mlflow_run_id: str | None
    metrics: dict
    registered_version: str | None
    ray_job_id: str | None
    progress: JobProgress | None
    error: str | None


class ModelVersion(BaseModel):
    name: str
    version: str
    aliases: list[str]
    status: str | None
    run_id: str | None
    created_at_ms: int | None


class ModelsResponse(BaseModel):
    tracking_uri: str | None
    models: list[ModelVersion]
    note: str | None = None


class Health(BaseModel):
    status: str = Field(description='"ok", or "no_model" while /predict cannot answer')
    model_loaded: bool
    model: dict | None
    detail: str | None = None
    job_running: bool
    jobs_queued: int = 0


class ErrorBody(BaseModel):
    detail: str | dict


ERRORS = {
    401: {"model": ErrorBody, "description": "missing bearer token"},
    403: {"model": ErrorBody, "description": "wrong token, or triggers are disabled (no XRAY_SERVE_TOKEN)"},
    409: {"model": ErrorBody, "description": "a training job is already running"},
    413: {"model": ErrorBody, "description": "upload over the byte, pixel, pixel-bytes or decompressed-bytes limit"},
    429: {"model": ErrorBody, "description": "the job queue is full (detail.queue_length)"},
    415: {"model": ErrorBody, "description": "not PNG, JPEG or DICOM"},
    422: {"model": ErrorBody, "description": "empty, truncated or malformed image, or invalid parameters"},
    503: {"model": ErrorBody, "description": "no model loaded / model registry unreachable / server busy"},
    504: {"model": ErrorBody, "description": "decoding and inference ran past XRAY_SERVE_REQUEST_TIMEOUT_S"},
}


def errors(*codes: int) -> dict:
    return {code: ERRORS[code] for code in codes}
