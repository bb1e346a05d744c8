"""MLflow Model Registry: register with aliases, gate on the objective, fetch models back.

    from xray_exp.mlops.registry import get_latest_model
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
from xray_exp.mlops.client import default_tracking_uri, tracking_client

log = logging.getLogger(__name__)

# models:/<name>, models:/<name>@<alias>, models:/<name>/<version> (a trailing slash is tolerated)
MODELS_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/@]+)|/(?P<version>\d+))?/?$")
BASE_ALIAS = "development"
FINETUNED_ALIAS = "staging"
FINETUNED_SUFFIX = "-finetuned"


def registration_target(model_name: str, finetune: bool = False) -> tuple[str, str]:
    """The registered name and alias of a run's model: base training `<model>@development`, fine-tuning
    `<model>-finetuned@staging` (a fine-tune never replaces the base model it started from)."""
    if finetune:
        return model_name + FINETUNED_SUFFIX, FINETUNED_ALIAS
    return model_name, BASE_ALIAS


def at_least_as_good(value: float, current: float, direction: str) -> bool:
    return value >= current if direction == "maximize" else value <= current


def current_holder(client, name: str, alias: str):
    """The version holding `alias`, or None (also when the model does not exist yet)."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def promotion_blocker(event: dict[str, Any], holder) -> str | None:
    """Why the new version must not take the alias (None: it may). `always` moves it unconditionally;
    `if_better` only when the version is at least as good as the holder on the same objective."""
    if event["policy"] == "always" or holder is None:
        return None
    if event.get("better_if") == "significant":
        return significance_blocker(event, holder)
    name, alias, objective, value = event["name"], event["alias"], event["objective"], event["value"]
    held_value, held_objective = holder.tags.get("objective_value"), holder.tags.get("objective")
    if value is None:
        return f"objective {objective} was not computed"
    if held_value in (None, "None"):
        return None  # the holder never recorded an objective: nothing to beat
    if held_objective and held_objective != objective:
        return (
            f"{name}@{alias} v{holder.version} was measured on {held_objective}, this version on {objective}; "
            f"promote by hand if wanted (python -m xray_exp.models promote {name} <version> --alias {alias})"
        )
    if not at_least_as_good(float(value), float(held_value), event["direction"]):
        return (
            f"{objective}={float(value):.5f} is worse than {name}@{alias} v{holder.version} "
            f"({float(held_value):.5f}, {event['direction']})"
        )
    return None


def significance_blocker(event: dict[str, Any], holder) -> str | None:
    """`better_if=significant`: the paired comparison with the holder (xray_exp.evaluation.significance) must
    show this version better on the objective at p < 0.05; anything else keeps the alias where it is."""
    found = event.get("significance")
    if not found:
        return f"better_if=significant: no paired comparison with v{holder.version} was made"
    if found.get("error"):
        return f"better_if=significant: no paired comparison with v{holder.version} ({found['error']})"
    if str(found.get("holder_version")) != str(holder.version):
        return (
            f"better_if=significant: compared with v{found.get('holder_version')}, but v{holder.version} holds "
            f"{event['alias']} now"
        )
    if not found["significant"]:
        return f"not significantly better than v{holder.version} on {found['split']}: {found['verdict']}"
    return None


def register_model(client, model_uri: str, run_id: str, event: dict[str, Any]) -> dict[str, Any]:
    """Register a new version (unless policy `never`) and move the alias to it when promotion_blocker()
    allows; otherwise the version keeps a `promotion.skipped` tag saying why. The decision is tagged on the run."""
    import mlflow

    name, alias, policy, value = event["name"], event["alias"], event["policy"], event["value"]
    holder = current_holder(client, name, alias)
    holder_value = holder.tags.get("objective_value") if holder is not None else None
    decision: dict[str, Any] = {
        "name": name,
        "alias": alias,
        "policy": policy,
        "objective": event["objective"],
        "value": value,
        "current_version": getattr(holder, "version", None),
        "current_value": holder_value,
        "registered": False,
        "promoted": False,
    }
    if event.get("significance"):
        decision["significance"] = event["significance"]
    if policy == "never":
        decision["reason"] = "registration disabled (tracking.register=never)"
        client.set_tag(run_id, "registry.decision", decision["reason"])
        return decision
    mlflow.set_tracking_uri(client.tracking_uri)
    tags = {**event["tags"], "source_run_id": run_id, "objective": event["objective"], "objective_value": str(value)}
    mv = mlflow.register_model(model_uri, name, tags=tags)
    decision.update(registered=True, version=mv.version)
    blocker = promotion_blocker(event, holder)
    if blocker is None:
        client.set_registered_model_alias(name, alias, mv.version)
        decision.update(
            promoted=True,
            reason="always"
            if policy == "always"
            else "first version"
            if holder is None
            else f"significantly better than v{holder.version}: {event['significance']['verdict']}"
            if event.get("better_if") == "significant"
            else "at least as good as the alias holder",
        )
        client.set_tag(run_id, "registry.decision", f"registered {name} v{mv.version} @{alias}")
    else:
        client.set_model_version_tag(name, mv.version, "promotion.skipped", blocker)
        decision["reason"] = blocker
        client.set_tag(
            run_id,
            "registry.decision",
            f"registered {name} v{mv.version}; {alias} stays on v{holder.version}: {blocker}",
        )
    client.set_tag(
        run_id,
        "registry.compared_to",
        f"{name}@{alias} v{decision['current_version']} = {holder_value}" if holder else "(none)",
    )
    log.info("registry: %s", client.get_run(run_id).data.tags["registry.decision"])
    return decision


def logged_model_uri(client, experiment_id: str, run_id: str) -> str | None:
    """The MLflow model the run logged (xray_exp logs one pyfunc model per run), or None."""
    models = client.search_logged_models([experiment_id], filter_string=f"source_run_id = '{run_id}'")
    return models[0].model_uri if len(models) else None


def version_holding(model_name: str, alias: str, tracking_uri: str | None = None) -> str | None:
    """The version number holding `alias`, or None when no version does (or the model does not exist)."""
    holder = current_holder(tracking_client(tracking_uri), model_name, alias)
    return None if holder is None else str(holder.version)


def find_version(model_name: str, alias: str | None = None, tracking_uri: str | None = None):
    """The version holding `alias`, or the highest version number when no alias is given."""
    client = tracking_client(tracking_uri)
    if alias:
        holder = current_holder(client, model_name, alias)
        if holder is None:
            raise ModelError(
                f"registry: no model version {model_name}@{alias} at {client.tracking_uri}. "
                "Fix: train and register one first (python -m xray_exp.train model=...)."
            )
        return holder
    versions = client.search_model_versions(f"name='{model_name}'")
    if not versions:
        raise ModelError(f"registry: model {model_name!r} has no versions at {client.tracking_uri}")
    return max(versions, key=lambda v: int(v.version))


def download_version(
    model_name: str, version: str, tracking_uri: str | None = None, dst: str | Path | None = None
) -> Path:
    """Download one registered version; return its folder holding model.onnx and best.pt (a gated pair:
    detector.onnx or an ensemble's detector/, classifier.onnx and gate.json)."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri or default_tracking_uri())
    dst = Path(dst) if dst else Path(os.environ.get("XRAY_EXP_MODEL_CACHE", Path.home() / ".cache" / "xray_exp"))
    target = dst / "models" / model_name / str(version)
    target.mkdir(parents=True, exist_ok=True)
    try:
        local = Path(
            mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{model_name}/{version}", dst_path=str(target))
        )
    except Exception as exc:
        raise ModelError(f"registry: cannot download {model_name} v{version}: {exc}") from exc
    folder = local / "artifacts"
    if (folder / "ensemble.json").is_file():  # an ensemble (xray_exp.mlops.ensemble_model): members/*.onnx
        return folder
    gated = (folder / "gate.json").exists()  # a detector + gate (<detector>-gated, xray_exp.mlops.gated_model)
    detector = "detector/ensemble.json" if (folder / "detector").is_dir() else "detector.onnx"  # -ensemble-gated
    for needed in (detector, "classifier.onnx") if gated else ("model.onnx", "best.pt"):
        if not (folder / needed).exists():
            raise ModelError(f"registry: {model_name} v{version} has no {needed} (not logged by xray_exp?)")
    return folder


def get_latest_model(
    model_name: str, alias: str | None = None, tracking_uri: str | None = None, dst: str | Path | None = None
) -> tuple[Path, str]:
    """(folder with model.onnx and best.pt, version) of `model_name@alias`, or of its latest version."""
    mv = find_version(model_name, alias, tracking_uri)
    return download_version(model_name, str(mv.version), tracking_uri, dst), str(mv.version)


def parse_models_uri(uri: str) -> tuple[str, str | None, str | None]:
    """'models:/name@alias' | 'models:/name/3' | 'models:/name' -> (name, alias, version); the one parser of
    registry URIs (training, evaluation and the service). ModelError for any other form."""
    match = MODELS_URI.match(uri)
    if not match:
        raise ModelError(f"{uri!r} is not a registry URI; expected models:/<name>@<alias> or models:/<name>/<n>")
    return match["name"], match["alias"], match["version"]


def resolve_weights(uri: str, tracking_uri: str | None = None, dst: str | Path | None = None) -> tuple[Path, str, str]:
    """A `models:/...` URI -> (local best.pt, model name, version) for fine-tuning and evaluation."""
    name, alias, version = parse_models_uri(uri)
    if version:
        return download_version(name, version, tracking_uri, dst) / "best.pt", name, version
    folder, version = get_latest_model(name, alias, tracking_uri, dst)
    return folder / "best.pt", name, version


def describe_decision(reg: dict[str, Any] | None) -> str:
    """One line for a registration decision: promoted, registered without the alias, or not registered."""
    if not reg:
        return "not registered"
    if not reg.get("registered"):
        return f"not registered ({reg.get('reason')})"
    if reg.get("promoted", True):  # decisions recorded before promotion gating always moved the alias
        return f"registered {reg.get('name')} v{reg.get('version')} @{reg.get('alias')}"
    return f"{reg.get('name')} v{reg.get('version')} registered; @{reg.get('alias')} unchanged ({reg.get('reason')})"


# ---- promotion by hand (python -m xray_exp.models promote) -----------------------------------------------


def promote(name: str, version: str, alias: str, tracking_uri: str | None = None):
    """Move `alias` to `name` v`version` by hand; the version records it (`promotion.manual`)."""
    import time

    from mlflow.exceptions import MlflowException

    client = tracking_client(tracking_uri)
    try:
        mv = client.get_model_version(name, str(version))
    except MlflowException as exc:
        raise ModelError(
            f"registry: {name} v{version} not found at {client.tracking_uri}. Fix: "
            f"python -m xray_exp.models list {name}"
        ) from exc
    before = current_holder(client, name, alias)
    client.set_registered_model_alias(name, alias, mv.version)
    client.set_model_version_tag(
        name,
        mv.version,
        "promotion.manual",
        f"@{alias} at {time.strftime('%Y-%m-%dT%H:%M:%S%z')} (was v{getattr(before, 'version', None)})",
    )
    return client.get_model_version(name, mv.version)
