"""MLflow Model Registry: register with aliases, gate on the objective, fetch models back.

    from xray_exp.registry import get_latest_model
    path, version = get_latest_model("yolo12n", alias="development")   # path/model.onnx, path/best.pt

Base models are registered as `<model>` with alias `development`, fine-tunes as `<model>-finetuned`
with alias `staging`; lineage lives in the version tags (source run, parent model/version).
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

from xray_exp.errors import ModelError

log = logging.getLogger(__name__)

MODELS_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))?$")
BASE_ALIAS = "development"
FINETUNED_ALIAS = "staging"


def is_better(value: float, current: float, direction: str) -> bool:
    return value > current if direction == "maximize" else value < current


def current_holder(client, name: str, alias: str):
    """The version holding `alias`, or None (also when the model does not exist yet)."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def register_model(client, model_uri: str, run_id: str, event: dict[str, Any]) -> dict[str, Any]:
    """Apply the registration policy (always | never | if_better) and log the decision on the run."""
    import mlflow

    name, alias, policy, value = event["name"], event["alias"], event["policy"], event["value"]
    holder = current_holder(client, name, alias)
    holder_value = holder.tags.get("objective_value") if holder is not None else None
    decision: dict[str, Any] = {"name": name, "alias": alias, "policy": policy, "objective": event["objective"],
                                "value": value, "current_version": getattr(holder, "version", None),
                                "current_value": holder_value, "registered": False}
    if policy == "never":
        decision["reason"] = "registration disabled (tracking.register=never)"
    elif policy == "if_better" and value is None:
        decision["reason"] = f"objective {event['objective']} was not computed"
    elif policy == "if_better" and holder_value not in (None, "None") and not is_better(
            float(value), float(holder_value), event["direction"]):
        decision["reason"] = (f"{event['objective']}={value:.5f} is not better than {name}@{alias} "
                              f"v{holder.version} ({float(holder_value):.5f}, {event['direction']})")
    else:
        mlflow.set_tracking_uri(client.tracking_uri)
        tags = {**event["tags"], "source_run_id": run_id, "objective": event["objective"],
                "objective_value": str(value)}
        mv = mlflow.register_model(model_uri, name, tags=tags)
        client.set_registered_model_alias(name, alias, mv.version)
        decision.update(registered=True, version=mv.version,
                        reason="always" if policy == "always" else "first or better than the alias holder")
    client.set_tag(run_id, "registry.decision", decision["reason"] if not decision["registered"]
                   else f"registered {name} v{decision['version']} @{alias}")
    client.set_tag(run_id, "registry.compared_to",
                   f"{name}@{alias} v{decision['current_version']} = {holder_value}" if holder else "(none)")
    log.info("registry: %s", client.get_run(run_id).data.tags["registry.decision"])
    return decision


def _client(tracking_uri: str | None):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri or os.environ.get("MLFLOW_TRACKING_URI"))


def find_version(model_name: str, alias: str | None = None, tracking_uri: str | None = None):
    """The version holding `alias`, or the highest version number when no alias is given."""
    client = _client(tracking_uri)
    if alias:
        holder = current_holder(client, model_name, alias)
        if holder is None:
            raise ModelError(f"registry: no model version {model_name}@{alias} at {client.tracking_uri}. "
                             "Fix: train and register one first (python -m xray_exp.train model=...).")
        return holder
    versions = client.search_model_versions(f"name='{model_name}'")
    if not versions:
        raise ModelError(f"registry: model {model_name!r} has no versions at {client.tracking_uri}")
    return max(versions, key=lambda v: int(v.version))


def download_version(model_name: str, version: str, tracking_uri: str | None = None,
                     dst: str | Path | None = None) -> Path:
    """Download one registered version; return its folder holding model.onnx and best.pt."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri or os.environ.get("MLFLOW_TRACKING_URI"))
    dst = Path(dst) if dst else Path(os.environ.get("XRAY_EXP_MODEL_CACHE", Path.home() / ".cache" / "xray_exp"))
    target = dst / "models" / model_name / str(version)
    target.mkdir(parents=True, exist_ok=True)
    try:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{model_name}/{version}",
                                                         dst_path=str(target)))
    except Exception as exc:
        raise ModelError(f"registry: cannot download {model_name} v{version}: {exc}") from exc
    folder = local / "artifacts"
    for needed in ("model.onnx", "best.pt"):
        if not (folder / needed).exists():
            raise ModelError(f"registry: {model_name} v{version} has no {needed} (not logged by xray_exp?)")
    return folder


def get_latest_model(model_name: str, alias: str | None = None, tracking_uri: str | None = None,
                     dst: str | Path | None = None) -> tuple[Path, str]:
    """(folder with model.onnx and best.pt, version) of `model_name@alias`, or of its latest version."""
    mv = find_version(model_name, alias, tracking_uri)
    return download_version(model_name, str(mv.version), tracking_uri, dst), str(mv.version)


def parse_models_uri(uri: str) -> tuple[str, str | None, str | None]:
    """'models:/name@alias' | 'models:/name/3' | 'models:/name' -> (name, alias, version)."""
    match = MODELS_URI.match(uri)
    if not match:
        raise ModelError(f"{uri!r} is not a registry URI; expected models:/<name>@<alias> or models:/<name>/<n>")
    return match["name"], match["alias"], match["version"]


def resolve_weights(uri: str, tracking_uri: str | None = None, dst: str | Path | None = None
                    ) -> tuple[Path, str, str]:
    """A `models:/...` URI -> (local best.pt, model name, version) for fine-tuning and evaluation."""
    name, alias, version = parse_models_uri(uri)
    if version:
        return download_version(name, version, tracking_uri, dst) / "best.pt", name, version
    folder, version = get_latest_model(name, alias, tracking_uri, dst)
    return folder / "best.pt", name, version
