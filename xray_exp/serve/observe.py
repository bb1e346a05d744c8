"""Per-request observation: the metrics and the audit line of the requests that touch images or models.

    install_observability(app, settings, holder, jobs, pool)            # create_app: /metrics, audit log, middleware
    await pool.run(observed(run_prediction), file, conf, iou, image)    # the prediction reports to its request

ObservationMiddleware (pure ASGI) opens a RequestRecord for the audited routes (xray_exp/serve/audit.py) and
keeps it in a context variable; `observed` wraps the prediction that runs in a worker thread so that it fills
the record (model, image size, findings, decode failure kind) and counts the prediction. Once the response is
sent the middleware counts worker-pool rejections and writes the audit line. Nothing here raises into a
request: a failed audit write is counted (xray_audit_write_errors_total) and logged as a warning.
"""

from __future__ import annotations

import logging
import os
import re
import time
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import partial

from fastapi import HTTPException

from xray_exp.serve.audit import AuditLog, caller_of, dicom_uids, open_audit_log, salted_hash, utc_now
from xray_exp.serve.metrics import ServiceMetrics, decode_failure_kind, instrument_http
from xray_exp.serve.worker_pool import Handoff

log = logging.getLogger(__name__)
PREDICT_ROUTES = ("/predict", "/predict/annotated")
AUDITED = {
    ("POST", r) for r in (*PREDICT_ROUTES, "/predict/sr", "/render", "/trigger-training", "/trigger-finetune")
} | {("GET", "/models")}
JOB_PATH = re.compile(r"^/jobs/[^/]+$")
ANALYZE_PATH = re.compile(r"^/studies/[^/]+/analyze$")


def audited_route(method: str, path: str) -> str | None:
    """The route template of an audited request, or None."""
    if (method, path) in AUDITED:
        return path
    if method == "DELETE" and JOB_PATH.match(path):
        return "/jobs/{job_id}"
    if method == "POST" and ANALYZE_PATH.match(path):  # the study UID itself is never logged
        return "/studies/{uid}/analyze"
    return None


@dataclass
class RequestRecord:
    route: str
    method: str
    time: str = field(default_factory=utc_now)
    started: bool = False  # the prediction began in a worker thread
    finished: bool = False
    model: dict | None = None
    image: dict | None = None
    findings: int | None = None
    detail: str | None = None  # decode failure kind or rejection reason
    study_uid: str | None = None
    sop_instance_uid: str | None = None


CURRENT: ContextVar[tuple[Observability, RequestRecord] | None] = ContextVar("xray_request_record", default=None)


def outcome_of(status: int, record: RequestRecord) -> str:
    if status < 400:
        return "ok"
    if record.detail:  # a decode failure kind: the upload was refused (413, 415, 422, or 504 while decoding)
        return "refused"
    if record.route in PREDICT_ROUTES and status in (503, 504) and not record.finished:
        if status == 504 or not record.started:
            return "rejected"
    if status in (401, 403):
        return "denied"
    if status < 500:
        return "refused"
    return "unavailable" if status == 503 else "error"


class Observability:
    """What the middleware and the prediction wrapper report to: the metrics and the audit log (or None)."""

    def __init__(self, metrics: ServiceMetrics, audit: AuditLog | None, holder):
        self.metrics, self.audit, self.holder = metrics, audit, holder

    def run_prediction(self, record: RequestRecord, fn, file, *args):
        """fn(file, *args) -> (body, png) in a worker thread, noting its outcome in the record and the metrics.
        When fn hands a large decode off to the pool's large lane (Handoff), the rest is observed there."""
        record.started = True
        result = self._call(record, fn, file, *args)
        if isinstance(result, Handoff):
            return Handoff(partial(self._finish_handoff, record, file, result.fn), result.args)
        return self._note(record, file, result)

    def _finish_handoff(self, record: RequestRecord, file, fn, *args):
        return self._note(record, file, self._call(record, fn, *args))

    def _call(self, record: RequestRecord, fn, *args):
        try:
            result = fn(*args)
        except HTTPException as exc:
            record.finished = True
            current = self.holder.current
            record.model = {"name": current[1].name, "version": current[1].version} if current else None
            kind = decode_failure_kind(exc.status_code, str(exc.detail))
            if kind:
                record.detail = kind
                self.metrics.decode_failures.labels(kind).inc()
            raise
        except BaseException:
            record.finished = True
            raise
        if not isinstance(result, Handoff):
            record.finished = True
        return result

    def _note(self, record: RequestRecord, file, result):
        body, png = result
        model, image = body["model"], body["image"]
        inference_ms = body["timings_ms"].get("inference", body["timings_ms"].get("total", 0.0))
        self.metrics.prediction(model["name"], str(model["version"]), inference_ms / 1000)
        record.model = {"name": model["name"], "version": model["version"]}
        record.image = {k: image.get(k) for k in ("format", "width", "height", "frames")}
        record.image["bytes"] = getattr(file, "size", None)
        record.findings = len(body["findings"])
        if self.audit is not None and image.get("format") == "dicom":
            file.file.seek(0)
            study, sop = dicom_uids(file.file)
            record.study_uid = salted_hash(self.audit.salt, study) if study else None
            record.sop_instance_uid = salted_hash(self.audit.salt, sop) if sop else None
        return body, png

    def finish(self, record: RequestRecord, status: int, scope: dict, duration_s: float) -> None:
        if record.route in PREDICT_ROUTES and not record.started and status == 413:
            record.detail = "too_large"  # the body limit, before any worker saw the upload
            self.metrics.decode_failures.labels("too_large").inc()
        outcome = outcome_of(status, record)
        if outcome == "rejected":
            record.detail = "timeout" if status == 504 else "busy"
            self.metrics.rejections.labels(record.detail).inc()
        if self.audit is None:
            return
        headers = dict(scope.get("headers") or [])
        authorization = headers.get(b"authorization", b"").decode("latin-1")
        client = scope.get("client")
        self.audit.write(
            {
                "time": record.time,
                "event": "request",
                "route": record.route,
                "method": record.method,
                "status": status,
                "outcome": outcome,
                "detail": record.detail,
                "caller": caller_of(authorization, self.audit.salt),
                "client": client[0] if client else None,
                "model": record.model,
                "image": record.image,
                "findings": record.findings,
                "duration_ms": round(duration_s * 1000, 2),
                "study_uid": record.study_uid,
                "sop_instance_uid": record.sop_instance_uid,
            }
        )


def observed(fn):
    """fn reporting to the current request's record (fn itself outside an observed prediction request)."""
    current = CURRENT.get()
    if current is None or current[1].route not in PREDICT_ROUTES:
        return fn
    obs, record = current
    return partial(obs.run_prediction, record, fn)


class ObservationMiddleware:
    """Pure ASGI middleware: a RequestRecord for each audited request, written before the response's last
    byte leaves (a client that has its answer finds the request in the audit log, even if the service is
    killed right after)."""

    def __init__(self, app, obs: Observability):
        self.app, self.obs = app, obs

    async def __call__(self, scope, receive, send):
        route = audited_route(scope.get("method", ""), scope.get("path", "")) if scope["type"] == "http" else None
        if route is None:
            return await self.app(scope, receive, send)
        record = RequestRecord(route, scope["method"])
        token = CURRENT.set((self.obs, record))
        status = 500  # unless a response starts: an exception is answered 500 outside this middleware
        t0 = time.perf_counter()
        written = False

        def write_record() -> None:
            nonlocal written
            if written:
                return
            written = True
            try:
                self.obs.finish(record, status, scope, time.perf_counter() - t0)
            except Exception:  # observing must never turn an answered request into an error
                log.exception("cannot record the request to %s", route)

        async def send_status(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                write_record()  # before the last byte: the client cannot have its answer without the line
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            CURRENT.reset(token)
            write_record()  # no response body sent (an exception): recorded here


def install_observability(app, settings, holder, jobs, pool) -> Observability:
    """Metrics (GET /metrics unless XRAY_SERVE_METRICS=false), the audit log (XRAY_SERVE_AUDIT_LOG) and the
    middleware; AuditLogUnavailable when the audit log cannot be written and XRAY_SERVE_AUDIT_REQUIRED=true."""
    metrics = ServiceMetrics()
    current = holder.current
    start = {"pid": os.getpid(), "model": {"name": current[1].name, "version": current[1].version} if current else None}
    audit = open_audit_log(settings, start, on_error=metrics.audit_errors.inc)
    metrics.watch(holder, pool, jobs, audit is not None)
    obs = Observability(metrics, audit, holder)
    if settings.metrics:
        instrument_http(app, metrics)
    app.add_middleware(ObservationMiddleware, obs=obs)
    app.state.observability = obs
    return obs
