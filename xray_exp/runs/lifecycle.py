"""One run lifecycle for every engine: set up -> fit -> post-training -> finish.

    info = set_up(cfg, run_dir, resume=False)                  # offline set-up, objective, dataset validated
    tracker = start(cfg, run_dir, overrides, fingerprint=info.fingerprint, mode="train", ...)
    with ended(tracker):                                       # FINISHED / FAILED / KILLED, always closed
        result = fit(...)                                      # xray_exp.yolo.fit (or Ray Train / Ray Tune)
        summary = finish_run(Run(cfg, run_dir, info, tracker, t0, registration), result)
    objective = close_run(summary, tracker, run_dir)

Engines: a single run and a sweep job (xray_exp.runs.single_run), a Ray Train run
(xray_exp.distributed.train_driver: rank 0 logs the epochs, the driver finishes) and a Ray Tune search
(xray_exp.distributed.tune_driver: its best trial finishes as a run of the parent). Ray Tune trials open
their own child runs with `start` and end them with `ended`. Nothing here knows about multirun: a sweep job
is told its parent run by the entry point (`Parent`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from xray_exp.data.synthetic import resolve_data_yaml
from xray_exp.errors import ConfigError, DatasetError, ModelError
from xray_exp.mlops.run_tags import flatten, run_tags
from xray_exp.mlops.tracker import Tracker
from xray_exp.runs.classify_run import task_of, task_registered_name
from xray_exp.runs.post_training import post_training
from xray_exp.runs.summary import log_artifacts, print_summary, run_summary
from xray_exp.yolo.epochs import EpochLog
from xray_exp.yolo.runtime import configure_offline

log = logging.getLogger("xray_exp.train")

OBJECTIVE_PREFIXES = ("val/", "test/", "ultralytics/val/")


@dataclass(frozen=True)
class Parent:
    """An MLflow parent run this run is a child of (a job of a --multirun sweep): where it logs, what it is
    tagged with, and why it does not register itself (the parent registers its best child)."""

    experiment: str | None
    run_name: str
    tags: dict[str, str]
    registration_note: str


@dataclass(frozen=True)
class Registration:
    """Under which name/alias a finished run's model is registered, with which tags; `deferred_to`: a note
    instead of registering (a sweep job)."""

    name: str
    alias: str
    tags: dict[str, str] = field(default_factory=dict)
    deferred_to: str | None = None


@dataclass
class Run:
    """A run between `start` and `close_run`."""

    cfg: DictConfig
    run_dir: Path
    info: Any  # xray_exp.data.validate.DatasetInfo
    tracker: Any  # xray_exp.mlops.tracker.Tracker
    t0: float
    registration: Registration
    post_cfg: DictConfig | None = None  # post-training's config when it differs (a driver without the GPU)


def ultralytics_dir(cfg: DictConfig) -> Path:
    """Ultralytics' settings and font folder of this project (`<output_dir>/.ultralytics`)."""
    return Path(cfg.paths.output_dir) / ".ultralytics"


def load_started_config(run_dir: Path) -> DictConfig:
    """The config a run was started with (for `resume=<run folder>`).

    Hydra saves it unresolved; the paths and run name are pinned to what the run resolved at its start, so a
    resume from another folder (or another day) still writes to the same store and run.
    """
    saved = run_dir / ".hydra" / "config.yaml"
    if not saved.is_file():
        raise ConfigError(
            f"resume: {saved} not found. Fix: pass a run folder made by xray_exp.train (outputs/runs/<name>)."
        )
    cfg = OmegaConf.load(saved)
    if not isinstance(cfg, DictConfig):
        raise ConfigError(
            f"resume: {saved} is not a run's config (a mapping). Fix: pass a run folder of xray_exp.train."
        )
    resolved = run_dir / "config.resolved.yaml"
    if resolved.is_file():
        started = OmegaConf.load(resolved)
        cfg.paths, cfg.run_name = started.paths, started.run_name
    return cfg


def is_fresh_run_dir(run_dir: Path) -> bool:
    """True when the folder holds only what Hydra wrote at start (safe to delete on early failure)."""
    return run_dir.is_dir() and all(p.name in (".hydra", "train.log") for p in run_dir.iterdir())


def check_objective(cfg: DictConfig) -> None:
    """objective.metric names a metric a run reports (and, with better_if=significant, one with a paired test)."""
    if not str(cfg.objective.metric).startswith(OBJECTIVE_PREFIXES):
        raise ConfigError(
            f"objective.metric: {cfg.objective.metric!r} must start with val/, test/ or "
            "ultralytics/val/ (e.g. test/mAP50-95, val/map40, ultralytics/val/mAP50-95)"
        )
    if str(cfg.tracking.better_if) == "significant":
        from xray_exp.evaluation.significance import significance_objective  # lazy: only on this path

        significance_objective(cfg)


def set_up(cfg: DictConfig, run_dir: Path, resume: bool, keep_failed_dir: bool = False):
    """Set up: offline Ultralytics, the objective checked, the dataset resolved and validated.

    A fresh run folder is removed when this fails (nothing half-written), unless `keep_failed_dir` (a sweep
    keeps its failed job's folder) or the run is resumed."""
    configure_offline(ultralytics_dir(cfg), offline=cfg.offline)
    try:
        check_objective(cfg)
        data_yaml = resolve_data_yaml(cfg.dataset, cfg.paths.cache_dir)
        from xray_exp.data.validate import validate_dataset  # lazy: only on this path

        return validate_dataset(data_yaml)
    except (DatasetError, ConfigError, ValueError):
        if not resume and not keep_failed_dir and is_fresh_run_dir(run_dir):
            shutil.rmtree(run_dir, ignore_errors=True)
        raise


def resolve_start_weights(cfg: DictConfig) -> tuple[str | None, dict[str, str]]:
    """Weights to start from and lineage tags. `models:/` URIs and finetune mode go to the registry."""
    weights, lineage = cfg.model.weights, {}
    if cfg.mode == "finetune" and not weights:
        weights = f"models:/{cfg.model.name}@development"
    if weights and str(weights).startswith("models:/"):
        from xray_exp.mlops.registry import resolve_weights  # lazy: only on this path

        path, name, version = resolve_weights(
            str(weights), cfg.tracking.tracking_uri, Path(cfg.paths.cache_dir) / "registry"
        )
        lineage = {"parent_model": name, "parent_version": version, "parent_uri": str(weights)}
        weights = str(path)
    if cfg.mode == "finetune" and not weights:
        raise ModelError("mode=finetune needs a registered model or model.weights")
    return weights, lineage


def config_dict(node: DictConfig) -> dict[str, Any]:
    """A config node as plain dict (resolved, enums as names)."""
    value = OmegaConf.to_container(node, resolve=True, enum_to_str=True)
    if not isinstance(value, dict):
        raise TypeError(f"expected a mapping, got {type(value).__name__}")
    return {str(k): v for k, v in value.items()}


def config_params(cfg: DictConfig, leave_out: tuple[str, ...] = ("paths",)) -> dict[str, Any]:
    """The resolved config for MLflow params, without machine-specific `paths` (and what else is named); the
    `cv` settings only in a cross-validation's fold (sweep=cv: `cv.fold` and the rest)."""
    resolved = config_dict(cfg)
    if not (resolved.get("cv") or {}).get("enabled"):
        leave_out = (*leave_out, "cv")
    return {k: v for k, v in resolved.items() if k not in leave_out}


def write_run_files(run_dir: Path, info, cfg: DictConfig) -> None:
    """dataset.json (data.yaml, fingerprint, counts) and config.resolved.yaml in the run folder."""
    (run_dir / "dataset.json").write_text(
        json.dumps(
            {
                "data_yaml": str(info.data_yaml),
                "fingerprint": info.fingerprint,
                "names": info.names,
                "images": {s: len(v) for s, v in info.splits.items()},
                "instances": info.instances,
            },
            indent=2,
        )
    )
    (run_dir / "config.resolved.yaml").write_text(
        OmegaConf.to_yaml(OmegaConf.to_container(cfg, resolve=True, enum_to_str=True))
    )


def start(
    cfg: DictConfig,
    run_dir: Path,
    overrides: list[str],
    *,
    fingerprint: str,
    mode: str,
    experiment: str,
    run_name: str,
    tags: dict[str, str] | None = None,
    leave_out: tuple[str, ...] = ("paths",),
):
    """Open the run's MLflow run (journaled in <run_dir>/tracking): reproducibility tags, the dataset's
    fingerprint, the config as params (without `leave_out`)."""
    tracker = Tracker(
        run_dir, cfg.tracking.tracking_uri, enabled=cfg.tracking.enabled, timeout_s=cfg.tracking.timeout_s
    )
    # the `model` tag names what a sweep registers its best job as: yolo12n-cls for a classifier
    tracker.start(
        experiment,
        run_name,
        run_tags(
            cfg.paths.root,
            overrides,
            {
                "mode": mode,
                "model": task_registered_name(cfg, cfg.model.name),
                "task": task_of(cfg),
                "dataset": cfg.dataset.name,
                "dataset.fingerprint": fingerprint,
                **(tags or {}),
            },
        ),
    )
    tracker.log_params(flatten(config_params(cfg, leave_out)))
    return tracker


def epoch_log_of(tracker):
    """Where a training in this process (or a DDP child of it) journals its epochs: this run's journal."""
    return EpochLog(str(tracker.dir.parent), tracker.tracking_uri, enabled=tracker.enabled, timeout_s=tracker.timeout_s)


@contextlib.contextmanager
def ended(tracker):
    """End the MLflow run whatever happens: FINISHED, KILLED (SystemExit: Ray Tune stopped a trial) or FAILED."""
    status = "FAILED"
    try:
        yield
        status = "FINISHED"
    except SystemExit:
        status = "KILLED"
        raise
    finally:
        tracker.reload()  # what the training process journaled meanwhile
        tracker.end(status)


def post_training_config(cfg: DictConfig) -> DictConfig:
    """The config for post-training in a driver: the configured GPU when this machine has one, else CPU.

    Post-training (test split, samples, ONNX export + parity) runs in the Ray driver, which on a cluster may be
    a head node without GPUs (`ray job submit --entrypoint-num-gpus 1` puts it on one).
    """
    device = cfg.hardware.device
    if device in (None, "", "cpu", "mps"):
        return cfg
    import torch

    if torch.cuda.is_available():
        return cfg
    log.warning("hardware.device=%s but this driver has no GPU: post-training (test split, ONNX) runs on CPU", device)
    out = cfg.copy()
    with open_dict(out):
        out.hardware.device = "cpu"
    return out


def finish_run(run: Run, result, artifacts: dict[str, Path] | None = None) -> dict[str, Any]:
    """After training (any engine): post-training, final metrics, summary, artifacts, model + registration.

    `result`: a FitResult (weights in `result.run_dir`, which is the run folder or a Tune trial's);
    `artifacts`: more files to log, {artifact folder: path}."""
    cfg, info, tracker = run.cfg, run.info, run.tracker
    post_cfg = run.post_cfg or cfg
    tracker.reload()  # the epochs the training process journaled
    metrics = dict(result.val_metrics)
    metrics.update(post_training(post_cfg, info, result.best, result.run_dir))
    objective = metrics.get(cfg.objective.metric)
    if objective is None:
        raise ConfigError(
            f"objective.metric: {cfg.objective.metric!r} was not computed; available: {', '.join(sorted(metrics))}"
        )
    # Final numbers (best.pt) one step after the last epoch, as Ultralytics' own logging does.
    tracker.log_metrics(metrics, step=result.epochs_run + 1)
    summary = run_summary(cfg, run.run_dir, result, metrics, info, time.time() - run.t0)
    log_artifacts(tracker, run.run_dir, result.run_dir, info)
    for folder, path in (artifacts or {}).items():
        tracker.log_artifact(path, folder)
    tracker.log_dataset(
        cfg.dataset.name,
        info.fingerprint,
        str(info.data_yaml),
        {split: len(images) for split, images in info.splits.items()},
    )
    if (result.run_dir / "onnx_parity.json").exists() and cfg.tracking.enabled:
        register(run, post_cfg, result.best, objective)
    return summary


def register(run: Run, post_cfg: DictConfig, best: Path, objective: float) -> None:
    """Log the model and register it under the run's name/alias (the rule: xray_exp.mlops.registry)."""
    cfg, info, tracker, target = run.cfg, run.info, run.tracker, run.registration

    example = (info.splits.get("val") or [None])[0]
    classify = task_of(cfg) == "classify"
    names = {0: "abnormal", 1: "normal"} if classify else info.names
    tracker.log_model(
        best.with_suffix(".onnx"), best, names, cfg.train.imgsz, example, task="classify" if classify else "detect"
    )
    if target.deferred_to:
        tracker.set_tags({"registry.decision": target.deferred_to})
        return
    better_if, significance = str(cfg.tracking.better_if), None
    if better_if == "significant" and str(cfg.tracking.register) == "if_better":
        from xray_exp.evaluation.significance import compare_with_holder  # lazy: only on this path

        significance = compare_with_holder(post_cfg, best, info, target.name, target.alias)
    tracker.register(
        target.name,
        target.alias,
        str(cfg.tracking.register),
        cfg.objective.metric,
        objective,
        str(cfg.objective.direction),
        {"dataset_fingerprint": info.fingerprint, **target.tags},
        better_if=better_if,
        significance=significance,
    )


def close_run(summary: dict[str, Any], tracker, run_dir: Path, show=None) -> float:
    """Add the MLflow outcome to summary.json, print the one-screen summary (`show`), return the objective.

    `ended()` has replayed what an outage held back; what is still unsent is counted
    (`mlflow_unsent_events`) and `python -m xray_exp.upload` updates this file once it is sent.
    """
    summary.update(tracker.outcome())
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    (show or print_summary)(summary)
    return float(summary["objective"]["value"])
