"""Read-only MLflow Model Registry queries for the service (mlflow is imported on first use).

list_model_versions("sqlite:///outputs/mlflow.db", "yolo12n")  # [{"name", "version", "aliases", ...}]
"""

from __future__ import annotations

from pathlib import Path

from xray_exp.mlops.client import default_http_limits, tracking_client


class TrackingUnavailable(RuntimeError):
    """The tracking server/store could not be queried; the message says why."""


def sqlite_path(tracking_uri: str) -> Path | None:
    if tracking_uri.startswith("sqlite:///"):
        return Path(tracking_uri[len("sqlite:///") :])
    return None


def list_model_versions(tracking_uri: str, name: str | None = None, max_results: int = 200) -> list[dict]:
    """Registered versions (newest first), optionally of one model. A missing sqlite store gives []
    rather than creating one; any other failure raises TrackingUnavailable."""
    db = sqlite_path(tracking_uri)
    if db is not None and not db.exists():
        return []
    default_http_limits()  # an unreachable server should answer quickly rather than retry for minutes
    try:
        client = tracking_client(tracking_uri, registry_uri=tracking_uri)
        query = f"name='{name}'" if name else ""
        versions = client.search_model_versions(filter_string=query, max_results=max_results)
        # search results may leave aliases out; the registered model has them all (alias -> version)
        aliases: dict[tuple[str, str], list[str]] = {}
        for model_name in {v.name for v in versions}:
            for alias, version in (client.get_registered_model(model_name).aliases or {}).items():
                aliases.setdefault((model_name, str(version)), []).append(alias)
    except Exception as exc:  # mlflow raises MlflowException, requests errors, sqlalchemy errors, ...
        raise TrackingUnavailable(f"cannot query the model registry: {type(exc).__name__}: {exc}") from exc
    rows = [
        {
            "name": v.name,
            "version": str(v.version),
            "aliases": sorted(set(getattr(v, "aliases", None) or []) | set(aliases.get((v.name, str(v.version)), []))),
            "status": str(v.status) if v.status is not None else None,
            "run_id": v.run_id,
            "created_at_ms": v.creation_timestamp,
        }
        for v in versions
    ]
    rows.sort(key=lambda r: (r["name"], -int(r["version"]) if r["version"].isdigit() else 0))
    return rows
