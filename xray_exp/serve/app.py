"""The FastAPI application: prediction, model/registry info, training triggers and the web page.

    from xray_exp.serve.app import create_app
    app = create_app(ServeSettings.from_env())        # uvicorn.run(app) -- or `python -m xray_exp.serve`

Endpoints are listed in xray_exp/serve/__init__.py; the schema is at /openapi.json, docs at /docs.
"""

from __future__ import annotations

import base64
import hmac
import logging
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated

from fastapi import Depends, FastAPI, File, HTTPException, Query, UploadFile
from fastapi.responses import FileResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles

from xray_exp.inference.onnx_detector import Detection
from xray_exp.mlops.model_versions import TrackingUnavailable, list_model_versions
from xray_exp.serve.annotate import annotate, encode_png
from xray_exp.serve.dicomweb_routes import dicomweb_router
from xray_exp.serve.job_routes import job_router, make_job_manager
from xray_exp.serve.jobs import Job
from xray_exp.serve.model_holder import ModelHolder
from xray_exp.serve.model_source import ModelInfo, ServedDetector, is_registry_uri
from xray_exp.serve.observe import install_observability, observed
from xray_exp.serve.overrides import MODEL_NAME_PATTERN
from xray_exp.serve.render import dicom_pixel_spacing
from xray_exp.serve.schemas import (
    Health,
    ModelsResponse,
    PredictResponse,
    errors,
)
from xray_exp.serve.security_headers import PAGE_HEADERS, SecurityHeaders
from xray_exp.serve.settings import ServeSettings, hide_server_paths, redact_uri
from xray_exp.serve.sr_routes import sr_router
from xray_exp.serve.upload_routes import read_checked_upload, run_in_pool
from xray_exp.serve.uploads import UploadError, decode_upload, store_upload, to_original
from xray_exp.serve.viewer_routes import viewer_router
from xray_exp.serve.worker_pool import Handoff, WorkerPool, default_large_workers

log = logging.getLogger(__name__)
STATIC_DIR = Path(__file__).parent / "static"

# Parameter types (module level: FastAPI resolves the string annotations in this module's globals)
BEARER = HTTPBearer(auto_error=False, description="XRAY_SERVE_TOKEN")
Conf = Annotated[float | None, Query(ge=0, le=1, allow_inf_nan=False, description="default XRAY_SERVE_CONF")]
Iou = Annotated[float | None, Query(ge=0, le=1, allow_inf_nan=False, description="default XRAY_SERVE_IOU")]
Upload = Annotated[UploadFile, File(description="PNG, JPEG or DICOM radiograph")]
ModelQuery = Annotated[str | None, Query(pattern=MODEL_NAME_PATTERN, max_length=64)]


def summarize_detections(detections: list[Detection]) -> str:
    if not detections:
        return "No findings"
    parts = [f"{d.label} {d.confidence:.2f}" for d in detections[:5]]
    more = f" (+{len(detections) - 5} more)" if len(detections) > 5 else ""
    noun = "finding" if len(detections) == 1 else "findings"
    return f"{len(detections)} {noun}: {', '.join(parts)}{more}"


def create_app(
    settings: ServeSettings | None = None,
    detector: ServedDetector | None = None,
    model_info: ModelInfo | None = None,
) -> FastAPI:
    """Build the app. Without an injected detector the model named by settings.model is loaded now."""
    settings = settings or ServeSettings.from_env()
    holder = ModelHolder(settings, detector, model_info)
    if holder.current is None:
        holder.load()

    def after_job(job: Job) -> None:
        if is_registry_uri(settings.model):  # a finished training may have registered a new version
            holder.load()

    jobs = make_job_manager(settings, after_job)
    pool = WorkerPool(
        settings.workers,
        settings.queue_size,
        settings.request_timeout_s,
        settings.large_workers or default_large_workers(),
        settings.large_queue_size,
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        yield
        jobs.shutdown()
        pool.shutdown()

    app = FastAPI(
        title="xray_exp service",
        summary="Chest X-ray abnormality detection (YOLO12 in ONNX Runtime) and training triggers",
        version="1",
        lifespan=lifespan,
        docs_url=None,  # Swagger UI / ReDoc pull their JS from a CDN: off in an offline-first service;
        redoc_url=None,  # the schema stays at /openapi.json
        # uploads plus multipart overhead; larger bodies get 413 before they are read
        max_body_size=settings.max_upload_bytes + 1024 * 1024,
    )
    app.state.settings, app.state.models, app.state.jobs, app.state.pool = settings, holder, jobs, pool
    app.add_middleware(SecurityHeaders)
    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
            expose_headers=["X-Render-Info"],  # POST /render's pixel layout, for a viewer on another origin
        )
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    def require_token(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)]) -> None:
        if not settings.token:
            raise HTTPException(403, "training triggers are disabled on this server (no XRAY_SERVE_TOKEN set)")
        if credentials is None:
            raise HTTPException(401, "send Authorization: Bearer <token>", headers={"WWW-Authenticate": "Bearer"})
        if not hmac.compare_digest(credentials.credentials.encode(), settings.token.encode()):
            raise HTTPException(403, "invalid token")

    def run_prediction(file: UploadFile, conf: float | None, iou: float | None, with_image: bool):
        """Runs in the worker pool: read and check the header; the rest here, or in the large lane when the
        header announces more than XRAY_SERVE_LARGE_DECODE_BYTES of pixels."""
        t0 = time.perf_counter()
        current = holder.current
        if current is None:
            raise HTTPException(503, f"no model loaded: {holder.detail}")
        data, header, limits = read_checked_upload(file, settings)
        args = (current, [data], header, limits, conf, iou, with_image, t0)
        if header.frame_bytes * header.frames > settings.large_decode_bytes:
            return Handoff(finish_prediction, args)
        return finish_prediction(*args)

    def finish_prediction(current, upload: list, header, limits, conf, iou, with_image, t0):
        """Decode (bounded, downscaled to the working size), free the upload, infer, annotate."""
        detector, info = current
        data = upload.pop()
        work_side = max(settings.annotate_max_side, *getattr(detector, "imgsz", (0,)))
        try:
            gray, header = decode_upload(data, settings.max_pixels, limits, work_side, header)
        except UploadError as exc:
            raise HTTPException(exc.status_code, exc.message) from exc
        if settings.upload_dir:
            store_upload(data, header, settings.upload_dir)
        spacing = dicom_pixel_spacing(data, limits) if header.format == "dicom" else None
        del data  # the upload and the full-size decode are freed before inference
        t1 = time.perf_counter()
        conf = settings.conf if conf is None else conf
        iou = settings.iou if iou is None else iou
        detections, stage_ms = detector.predict(gray, conf=conf, iou=iou, max_det=settings.max_det)
        timings = {"decode": (t1 - t0) * 1000, **stage_ms}
        png = None
        if with_image:
            t2 = time.perf_counter()
            png = encode_png(annotate(gray, detections, settings.annotate_max_side))
            timings["annotate"] = (time.perf_counter() - t2) * 1000
        detections = to_original(detections, gray, header)
        timings["total"] = (time.perf_counter() - t0) * 1000
        body = {
            "findings": [
                {
                    "label": d.label,
                    "class_id": d.class_id,
                    "confidence": round(d.confidence, 5),
                    "box": [round(v, 2) for v in d.box],
                }
                for d in detections
            ],
            "summary": summarize_detections(detections),
            "image": {
                "format": header.format,
                "width": header.width,
                "height": header.height,
                "frames": header.frames,
                "note": f"multi-frame DICOM ({header.frames} frames): frame 1 was analysed"
                if header.frames > 1
                else None,
                "pixel_spacing_mm": spacing,
            },
            "model": {"name": info.name, "version": info.version, "source": info.source, "alias": info.alias},
            "thresholds": {"conf": conf, "iou": iou, "max_det": settings.max_det},
            "timings_ms": {k: round(v, 2) for k, v in timings.items()},
        }
        return body, png

    @app.get("/", include_in_schema=False)
    def page():
        return FileResponse(STATIC_DIR / "index.html", headers=PAGE_HEADERS)

    async def predict_in_pool(file: UploadFile, conf: float | None, iou: float | None, with_image: bool):
        """run_prediction off the event loop; 503 when the pool is full, 504 past the time limit."""
        return await run_in_pool(pool, observed(run_prediction), file, conf, iou, with_image)

    @app.post("/predict", response_model=PredictResponse, responses=errors(413, 415, 422, 503, 504))
    async def predict(file: Upload, conf: Conf = None, iou: Iou = None, include_image: bool = False):
        """Findings for one radiograph (boxes in original pixels), or `"summary": "No findings"`."""
        body, png = await predict_in_pool(file, conf, iou, include_image)
        if png is not None:
            body["annotated_image"] = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
        return body

    @app.post(
        "/predict/annotated",
        response_class=Response,
        responses={
            200: {"content": {"image/png": {}}, "description": "the annotated radiograph"},
            **errors(413, 415, 422, 503, 504),
        },
    )
    async def predict_annotated(file: Upload, conf: Conf = None, iou: Iou = None):
        """The radiograph as PNG with boxes and labels drawn ("No findings" written when there are none)."""
        body, png = await predict_in_pool(file, conf, iou, True)
        headers = {
            "X-Findings-Count": str(len(body["findings"])),
            "X-Summary": body["summary"].encode("ascii", "replace").decode("ascii"),
            "X-Model-Version": body["model"]["version"].encode("ascii", "replace").decode("ascii"),
        }
        return Response(png, media_type="image/png", headers=headers)

    @app.get("/health", response_model=Health)
    def health():
        current = holder.current
        return {
            "status": "ok" if current else "no_model",
            "model_loaded": current is not None,
            "model": {"name": current[1].name, "version": current[1].version} if current else None,
            "detail": holder.detail,
            "job_running": jobs.running() is not None,
            "jobs_queued": jobs.queued(),
        }

    @app.get("/config")
    def config(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)]) -> dict:
        """Effective settings (no token; credentials stripped from URIs); server paths in full only with the
        bearer token, else reduced to their last part."""
        current = holder.current
        model = current[1].public() if current else None
        if model:
            model["uri"] = redact_uri(model["uri"])
        out = {**settings.public(), "model": model, "model_detail": holder.detail}
        trusted = bool(
            settings.token
            and credentials is not None
            and hmac.compare_digest(credentials.credentials.encode(), settings.token.encode())
        )
        return out if trusted else hide_server_paths(out)

    @app.get("/models", response_model=ModelsResponse, responses=errors(503))
    def models(name: ModelQuery = None):
        """Registered model versions (MLflow), newest first; empty with a note when tracking is off."""
        uri = settings.tracking_uri
        if not uri:
            note = "tracking is not configured (set XRAY_SERVE_TRACKING_URI or MLFLOW_TRACKING_URI)"
            return {"tracking_uri": None, "models": [], "note": note}
        try:
            rows = list_model_versions(uri, name)
        except TrackingUnavailable as exc:
            raise HTTPException(503, str(exc)) from exc
        return {
            "tracking_uri": redact_uri(uri),
            "models": rows,
            "note": None if rows else "no registered versions",
        }

    app.include_router(job_router(settings, jobs, require_token))
    app.include_router(viewer_router(settings, pool))
    app.include_router(sr_router(settings, holder, pool))
    app.include_router(dicomweb_router(settings, holder, require_token))
    install_observability(app, settings, holder, jobs, pool)  # GET /metrics, audit log (xray_exp/serve/observe.py)

    return app
