"""The one place that makes an MlflowClient, the HTTP limits every MLflow call runs under, and where the
project's store and its experiments are.

    from xray_exp.mlops.client import default_tracking_uri, ensure_experiment, tracking_client
    uri = default_tracking_uri()      # $MLFLOW_TRACKING_URI, else sqlite:///<project>/outputs/mlflow.db
    client = tracking_client("http://127.0.0.1:5000", timeout_s=10)  # one try per request, at most 10 s each
    client = tracking_client()                                         # $MLFLOW_TRACKING_URI, limits as they are

MLflow's own defaults retry an unreachable server for minutes; training, sweeps and the service want a
bounded wait instead. mlflow is imported on the first client, not with this module.
"""

from __future__ import annotations

import os
from pathlib import Path

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


def tracking_client(tracking_uri: str | None = None, timeout_s: float | None = None, registry_uri: str | None = None):
    """The MlflowClient for `tracking_uri` (None: $MLFLOW_TRACKING_URI); `timeout_s` sets the HTTP limits first."""
    if timeout_s is not None:
        set_http_limits(timeout_s)
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri or os.environ.get("MLFLOW_TRACKING_URI"), registry_uri=registry_uri)


def default_tracking_uri(root: str | Path | None = None) -> str:
    """The one store everything logs to and looks in: $MLFLOW_TRACKING_URI when set, else the project's
    sqlite store sqlite:///<root>/outputs/mlflow.db (root: $XRAY_EXP_ROOT, else the project folder from cwd up).
    Training's tracking=local resolves to the same (xray_exp/conf/tracking/local.yaml)."""
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    if root is None:
        from xray_exp.project import project_root  # lazy: only on this path

        root = project_root()
    return f"sqlite:///{Path(root).expanduser().resolve() / 'outputs' / 'mlflow.db'}"


def default_artifact_location(tracking_uri: str | None) -> str | None:
    """Artifacts of a local sqlite store go next to the database (`<db dir>/mlartifacts`), not into
    `./mlruns` of whatever folder the process happens to run in; servers decide for themselves."""
    if not tracking_uri or not tracking_uri.startswith("sqlite:///"):
        return None
    db = Path(tracking_uri[len("sqlite:///") :]).expanduser().resolve()
    return (db.parent / "mlartifacts").as_uri()


def ensure_experiment(client, name: str) -> str:
    """The experiment's id, creating it if needed (tolerates a concurrent creator)."""
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    try:
        return client.create_experiment(name, artifact_location=default_artifact_location(client.tracking_uri))
    except Exception:
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise
        return experiment.experiment_id
