"""The one place that makes an MlflowClient, and the HTTP limits every MLflow call runs under.

    from xray_exp.mlops.client import tracking_client
    client = tracking_client("http://127.0.0.1:5000", timeout_s=10)  # one try per request, at most 10 s each
    client = tracking_client()                                         # $MLFLOW_TRACKING_URI, limits as they are

MLflow's own defaults retry an unreachable server for minutes; training, sweeps and the service want a
bounded wait instead. mlflow is imported on the first client, not with this module.
"""

from __future__ import annotations

import os

HTTP_TIMEOUT_ENV = "MLFLOW_HTTP_REQUEST_TIMEOUT"
HTTP_RETRIES_ENV = "MLFLOW_HTTP_REQUEST_MAX_RETRIES"


def set_http_limits(timeout_s: float) -> None:
    """Bounded waits: one try per request, `timeout_s` each (MLflow's defaults retry for minutes)."""
    os.environ[HTTP_TIMEOUT_ENV] = str(max(1, int(timeout_s)))
    os.environ[HTTP_RETRIES_ENV] = "0"
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


def default_http_limits(timeout_s: float = 10) -> None:
    """The same bounded waits, unless the environment already sets them (the service's operator may)."""
    os.environ.setdefault(HTTP_RETRIES_ENV, "0")
    os.environ.setdefault(HTTP_TIMEOUT_ENV, str(max(1, int(timeout_s))))


def tracking_client(tracking_uri: str | None = None, timeout_s: float | None = None,
                    registry_uri: str | None = None):
    """The MlflowClient for `tracking_uri` (None: $MLFLOW_TRACKING_URI); `timeout_s` sets the HTTP limits first."""
    if timeout_s is not None:
        set_http_limits(timeout_s)
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri or os.environ.get("MLFLOW_TRACKING_URI"), registry_uri=registry_uri)
