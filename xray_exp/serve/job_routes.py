"""The training-job routes of the service: triggers (a queue, 429 when full), job list, progress, cancel.

    app.include_router(job_router(settings, make_job_manager(settings, on_success), require_token))

POST /trigger-training and /trigger-finetune queue a job (xray_exp/serve/jobs.py) that runs locally or as a
Ray Job (XRAY_SERVE_RAY_ADDRESS); GET /jobs, /jobs/{id} show status and progress; DELETE /jobs/{id} cancels.
Triggers and DELETE need the bearer token (`require_token`, from the app).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse

from xray_exp.mlops.model_versions import TrackingUnavailable, list_model_versions
from xray_exp.serve.job_runners import LocalRunner, RayJobRunner, preset_resources
from xray_exp.serve.jobs import JobManager, QueueFull
from xray_exp.serve.schemas import JobInfo, TriggerRequest, errors
from xray_exp.serve.settings import ServeSettings

JobId = Annotated[str, PathParam(max_length=64)]


def base_alias() -> str:
    """The alias training gives base models (xray_exp.mlops.registry.BASE_ALIAS; imported lazily: mlflow)."""
    try:
        from xray_exp.mlops.registry import BASE_ALIAS  # lazy: optional
    except ImportError:
        return "development"
    return BASE_ALIAS


def make_job_manager(settings: ServeSettings, on_success) -> JobManager:
    """Jobs run as Ray Jobs when settings.ray_address is set, else as local subprocesses."""
    runner = (
        RayJobRunner(settings.ray_address, timeout_s=settings.job_timeout_s)
        if settings.ray_address
        else LocalRunner(settings.job_timeout_s)
    )
    root = Path(os.environ.get("XRAY_EXP_ROOT") or Path.cwd())
    return JobManager(
        settings.job_command,
        settings.job_dir,
        on_success=on_success,
        max_queue=settings.job_queue_depth,
        runner=runner,
        output_root=root,
        resources=preset_resources,
    )


def job_router(settings: ServeSettings, jobs: JobManager, require_token) -> APIRouter:
    router = APIRouter()

    def decide_mode(model: str) -> tuple[str, str]:
        """Fine-tune when `model` has a registered version holding the base alias, else train from scratch."""
        if not settings.tracking_uri:
            return "train", "no tracking URI configured, so no registered model: training from scratch"
        try:
            versions = list_model_versions(settings.tracking_uri, model)
        except TrackingUnavailable as exc:
            raise HTTPException(503, f"cannot decide between training and fine-tuning: {exc}") from exc
        alias = base_alias()
        holder = next((v for v in versions if alias in v["aliases"]), None)
        if holder:
            return (
                "finetune",
                f"registered model {model}@{alias} exists (version {holder['version']}): fine-tuning",
            )
        if versions:
            return "train", f"{model} has versions but none holds @{alias}: training from scratch"
        return "train", f"no registered model {model}: training from scratch"

    def submit(body: TriggerRequest, force_finetune: bool) -> JSONResponse:
        model = body.model or settings.model_name
        mode, reason = ("finetune", "fine-tuning requested") if force_finetune else decide_mode(model)
        service_overrides, env = [], {}
        if settings.tracking_uri:  # the job uses the registry this service reads (the URI travels in the env)
            env["MLFLOW_TRACKING_URI"] = settings.tracking_uri
            service_overrides.append("tracking.tracking_uri=${oc.env:MLFLOW_TRACKING_URI}")
        try:
            job = jobs.submit(mode, model, body.overrides, reason, service_overrides, env)
        except QueueFull as exc:
            detail = {"message": str(exc), "queue_length": exc.queued, "running_job_id": exc.running}
            raise HTTPException(429, detail) from exc
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from exc
        return JSONResponse(job.public(), status_code=202, headers={"Location": f"/jobs/{job.id}"})

    trigger_responses = {202: {"model": JobInfo, "description": "job started"}, **errors(401, 403, 422, 429, 503)}

    @router.post(
        "/trigger-training",
        status_code=202,
        response_model=JobInfo,
        responses=trigger_responses,
        dependencies=[Depends(require_token)],
    )
    def trigger_training(body: TriggerRequest | None = None):
        """Train in the background: fine-tune when the model is registered, else from scratch. One job runs
        at a time; later ones wait in a queue (429 when it is full)."""
        return submit(body or TriggerRequest(), force_finetune=False)

    @router.post(
        "/trigger-finetune",
        status_code=202,
        response_model=JobInfo,
        responses=trigger_responses,
        dependencies=[Depends(require_token)],
    )
    def trigger_finetune(body: TriggerRequest | None = None):
        """Fine-tune the registered model in the background (queued while another job runs)."""
        return submit(body or TriggerRequest(), force_finetune=True)

    @router.get("/jobs", response_model=list[JobInfo])
    def list_jobs():
        """Recent jobs, newest first."""
        return [job.public() for job in jobs.jobs()]

    @router.get("/jobs/{job_id}", response_model=JobInfo, responses={404: {"description": "unknown job"}})
    def get_job(job_id: JobId):
        job = jobs.get(job_id)
        if job is None:
            raise HTTPException(404, f"no job {job_id!r}")
        return job.public()

    @router.delete(
        "/jobs/{job_id}",
        response_model=JobInfo,
        responses={404: {"description": "unknown job"}, **errors(401, 403)},
        dependencies=[Depends(require_token)],
    )
    def cancel_job(job_id: JobId):
        """Cancel a queued job, or stop a running one (status `cancelled` once it has ended)."""
        job = jobs.cancel(job_id)
        if job is None:
            raise HTTPException(404, f"no job {job_id!r}")
        return job.public()

    return router
