"""Prometheus metrics of the service, served at GET /metrics (text format; XRAY_SERVE_METRICS=false: off).

    curl -s http://127.0.0.1:8000/metrics | grep ^xray_

HTTP (prometheus-fastapi-instrumentator; `handler` is the route template, /jobs/{job_id}, never the raw path;
`status` the class, 2xx/4xx/5xx; GET /metrics itself is not counted):
    http_requests_total{handler, method, status}                  counter
    http_request_duration_seconds{handler, method, status}        histogram
Service:
    xray_inference_seconds{model, version}          histogram: ONNX Runtime inference of one image
    xray_predictions_total{model, version}          counter: images answered with findings (or none)
    xray_decode_failures_total{kind}                counter: too_large, unsupported_syntax, corrupt, timeout
    xray_worker_rejections_total{reason}            counter: busy (503: workers and queue taken), timeout (504)
    xray_worker_queue_depth / xray_worker_busy      gauges: requests waiting for / held by a worker thread
    xray_worker_capacity{slot}                      gauge: workers, queue (XRAY_SERVE_WORKERS, _QUEUE_SIZE)
    xray_training_jobs{state}                       gauge: jobs the service knows by state (queued, running, ...)
    xray_model_info{name, version, source, alias}   info: the loaded model (none while no model is loaded)
    xray_model_loaded                               gauge: 1 when a model answers /predict
    xray_audit_log_enabled / xray_audit_write_errors_total

The service runs one process (`python -m xray_exp.serve` hands uvicorn one app object): its worker pool, job
queue and model live in that process, so the registry is per process and needs no multiprocess mode. Scale out
with more service instances, each a Prometheus target.
"""

from __future__ import annotations

import logging
import os
import re
from typing import TypedDict

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily

log = logging.getLogger(__name__)
DECODE_FAILURE_KINDS = ("too_large", "unsupported_syntax", "corrupt", "timeout")
JOB_STATES = ("queued", "running", "succeeded", "failed", "cancelled", "interrupted")
REJECTION_REASONS = ("busy", "timeout")
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
INFERENCE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
UNSUPPORTED = re.compile(
    r"not supported|unsupported|no (?:pixel data )?(?:handler|decoder|plugin)s?|unable to decode|"
    r"not a png, jpeg or dicom",
    re.IGNORECASE,
)


class HttpLabels(TypedDict):
    """The labels of the instrumentator's HTTP metrics (keyword arguments of its requests() and latency())."""

    should_include_handler: bool
    should_include_method: bool
    should_include_status: bool


def decode_failure_kind(status: int, message: str) -> str | None:
    """The kind of a refused upload from its status and message (None: not a decoding failure)."""
    if status == 413:
        return "too_large"
    if status == 415:
        return "unsupported_syntax"
    if status == 504:
        return "timeout"
    if status == 422:
        return "unsupported_syntax" if UNSUPPORTED.search(message) else "corrupt"
    return None


class ServiceMetrics:
    """The service's own metrics in one registry per app (several apps in one process do not collide)."""

    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.inference = Histogram(
            "xray_inference_seconds",
            "ONNX Runtime inference time of one image",
            ["model", "version"],
            buckets=INFERENCE_BUCKETS,
            registry=r,
        )
        self.predictions = Counter(
            "xray_predictions", "Images answered (findings or none)", ["model", "version"], registry=r
        )
        self.decode_failures = Counter(
            "xray_decode_failures", "Uploads refused while checking or decoding", ["kind"], registry=r
        )
        self.rejections = Counter(
            "xray_worker_rejections", "Requests the worker pool turned away", ["reason"], registry=r
        )
        self.audit_errors = Counter("xray_audit_write_errors", "Audit lines that could not be written", registry=r)
        for kind in DECODE_FAILURE_KINDS:  # every series exists from the start: rate() and the dashboard see 0
            self.decode_failures.labels(kind)
        for reason in REJECTION_REASONS:
            self.rejections.labels(reason)

    def prediction(self, model: str, version: str, inference_s: float) -> None:
        self.predictions.labels(model, version).inc()
        self.inference.labels(model, version).observe(inference_s)

    def watch(self, holder, pool, jobs, audit_enabled: bool) -> None:
        self.registry.register(StateCollector(holder, pool, jobs, audit_enabled))


class StateCollector:
    """Gauges read at scrape time (no cost per request): model, worker pool, training jobs."""

    def __init__(self, holder, pool, jobs, audit_enabled: bool):
        self.holder, self.pool, self.jobs, self.audit_enabled = holder, pool, jobs, audit_enabled

    def describe(self):
        return []  # collected only at scrape time

    def collect(self):
        current = self.holder.current
        info = InfoMetricFamily(
            "xray_model", "The model that answers /predict", labels=["name", "version", "source", "alias"]
        )
        if current is not None:
            model = current[1]
            info.add_metric([model.name, str(model.version), str(model.source), str(model.alias or "")], {})
        yield info
        yield GaugeMetricFamily("xray_model_loaded", "1 when a model is loaded", value=int(current is not None))

        admitted, workers = self.pool.admitted, self.pool.workers
        yield GaugeMetricFamily(
            "xray_worker_queue_depth", "Requests waiting for a worker thread", value=max(0, admitted - workers)
        )
        yield GaugeMetricFamily(
            "xray_worker_busy", "Worker threads decoding or inferring", value=min(admitted, workers)
        )
        capacity = GaugeMetricFamily("xray_worker_capacity", "Worker threads and queue places", labels=["slot"])
        capacity.add_metric(["workers"], workers)
        capacity.add_metric(["queue"], self.pool.queue_size)
        yield capacity

        counts = dict.fromkeys(JOB_STATES, 0)
        for job in self.jobs.jobs():
            counts[job.status] = counts.get(job.status, 0) + 1
        states = GaugeMetricFamily(
            "xray_training_jobs", "Training jobs known to the service, by state", labels=["state"]
        )
        for state, count in counts.items():
            states.add_metric([state], count)
        yield states
        yield GaugeMetricFamily(
            "xray_audit_log_enabled", "1 when the audit log is written", value=int(self.audit_enabled)
        )


def instrument_http(app, metrics: ServiceMetrics) -> None:
    """HTTP request metrics by route template, and GET /metrics serving this app's registry."""
    from fastapi.responses import Response
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
    from prometheus_fastapi_instrumentator import Instrumentator
    from prometheus_fastapi_instrumentator import metrics as http

    instrumentator = Instrumentator(excluded_handlers=["^/metrics$"], registry=metrics.registry)
    labels = HttpLabels(should_include_handler=True, should_include_method=True, should_include_status=True)
    instrumentator.add(http.requests(registry=metrics.registry, **labels))
    instrumentator.add(http.latency(buckets=HTTP_BUCKETS, registry=metrics.registry, **labels))
    instrumentator.instrument(app)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        log.warning("PROMETHEUS_MULTIPROC_DIR is ignored: the service runs one process with its own registry")

    @app.get("/metrics", include_in_schema=False)
    def prometheus_metrics() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
