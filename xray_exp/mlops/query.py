"""Read-only queries of a tracking store for analysis: runs, metric histories, run artifacts.

    from xray_exp.mlops import query
    client = query.open_store("sqlite:///outputs/mlflow.db")     # FileNotFoundError when there is no store yet
    ids = query.experiment_ids(client, "YOLO12-Training")         # {experiment_id: name}
    runs = query.search_all_runs(client, list(ids))              # every active run, all pages
    query.metric_steps(client, run_id, "train/box_loss")         # [(step, value), ...] in logged order

xray_exp.analysis turns these into pandas tables and figures (notebooks/01_runs.ipynb, 02_predictions.ipynb).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from xray_exp.mlops.client import tracking_client

PAGE = 1000


def open_store(tracking_uri: str):
    """An MlflowClient; a sqlite URI must point at an existing file (sqlite would create an empty one).
    Also switches MLflow's telemetry and artifact progress bars off unless the environment says otherwise."""
    if tracking_uri.startswith("sqlite:///"):
        path = Path(tracking_uri[len("sqlite:///") :])
        if not path.is_file():
            raise FileNotFoundError(
                f"{path}: no MLflow store there yet. Fix: train once (python -m xray_exp.train "
                "debug=smoke) or point MLFLOW_TRACKING_URI at your store."
            )
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # one bar per file clutters notebooks
    return tracking_client(tracking_uri)


def experiment_ids(client, experiment: str | Sequence[str] | None) -> dict[str, str]:
    """{experiment_id: name} for the named experiments (None: all active ones); ValueError naming the unknown."""
    known = {e.name: e.experiment_id for e in client.search_experiments()}
    if experiment is None:
        return {v: k for k, v in known.items()}
    wanted = [experiment] if isinstance(experiment, str) else list(experiment)
    missing = [name for name in wanted if name not in known]
    if missing:
        raise ValueError(
            f"no experiment {', '.join(map(repr, missing))} in {client.tracking_uri}; "
            f"known: {', '.join(sorted(known)) or '(none)'}"
        )
    return {known[name]: name for name in wanted}


def search_all_runs(client, experiment_ids: list[str], filter_string: str = "") -> list:
    """Every active run (all pages) of these experiments matching the filter."""
    from mlflow.entities import ViewType

    found, token = [], None
    while True:
        page = client.search_runs(
            experiment_ids,
            filter_string=filter_string,
            run_view_type=ViewType.ACTIVE_ONLY,
            max_results=PAGE,
            page_token=token,
        )
        found += list(page)
        token = page.token
        if not token:
            return found


def metric_steps(client, run_id: str, metric: str) -> list[tuple[int, float]]:
    """(step, value) of every value of `metric` the run logged, in the store's order."""
    return [(int(m.step), float(m.value)) for m in client.get_metric_history(run_id, metric)]


def run_artifact_text(tracking_uri: str | None, run_id: str, artifact_path: str) -> str | None:
    """The text of one small run artifact (e.g. dataset/dataset.json), or None when the run has none."""
    import mlflow

    with tempfile.TemporaryDirectory() as tmp:
        try:
            local = mlflow.artifacts.download_artifacts(
                run_id=run_id, artifact_path=artifact_path, dst_path=tmp, tracking_uri=tracking_uri
            )
            return Path(local).read_text()
        except Exception:  # no such artifact (older run) or unreadable
            return None
