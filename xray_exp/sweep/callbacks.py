"""The Hydra callback behind every `--multirun` (xray_exp/conf/hydra/callbacks/xray_sweep.yaml):

    python -m xray_exp.train --multirun model=yolo12n,yolo12s
    python -m xray_exp.train --multirun sweep=yolo12_hparams hydra/launcher=ray

on_multirun_start: for hydra/launcher=ray connect through xray_exp.distributed.cluster (the launcher reuses the
connection); resume a persistent Optuna study (n_trials = the study's total); create the MLflow experiment
and the sweep's parent run (reused when the same study is resumed) up front, so parallel jobs never race
on creating them; write `<sweep dir>/sweep.json` {parent_run_id, tracking_uri, experiment} for the jobs
(which tag their runs `mlflow.parentRunId`).
on_multirun_end: leaderboard (printed, `<sweep dir>/leaderboard.csv`, artifact on the parent run), the
best job's model registered, the parent run ended. Exits 1 when no job of the sweep succeeded.

Hydra turns exceptions in callbacks into warnings: a tracking outage never stops the sweep itself.
The callback is pickled into Ray workers: it holds no state (but whether this invocation's start succeeded).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from xray_exp.distributed.cluster import connect
from xray_exp.errors import ConfigError
from xray_exp.mlops.client import tracking_client
from xray_exp.mlops.parent_runs import open_parent_run
from xray_exp.mlops.registry import describe_decision
from xray_exp.mlops.run_tags import git_info, package_versions
from xray_exp.sweep import leaderboard as lb
from xray_exp.sweep.cv_sweep import cv_enabled, finish_cv_sweep, start_cv
from xray_exp.sweep.job import SWEEP_FILE
from xray_exp.sweep.study import prepare_resume, study_key

log = logging.getLogger("xray_exp.sweep")


class SweepCallback(Callback):
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # before the Ray launcher starts Ray

        if cv_enabled(config):  # sweep=cv: the fold plan checked and written before anything else
            start_cv(config)
        connect_ray(config)
        sweep_dir = Path(str(config.hydra.sweep.dir)).resolve()
        sweep_dir.mkdir(parents=True, exist_ok=True)

        study = prepare_resume(config)
        info: dict[str, Any] = {
            "sweep_id": sweep_dir.name,
            "sweep_dir": str(sweep_dir),
            "parent_run_id": None,
            "tracking_uri": None,
            "experiment": None,
            "experiment_id": None,
            "sweeper": _choice(config, "hydra/sweeper"),
            "launcher": _choice(config, "hydra/launcher"),
            "objective": config.objective.metric,
            "direction": str(config.objective.direction),
            "key": study_key(study["storage"], study["study"]) if study else str(sweep_dir),
            "study": study,
        }
        tracking = config.tracking
        if tracking.enabled and tracking.tracking_uri:
            info.update(
                tracking_uri=str(tracking.tracking_uri),
                experiment=str(tracking.finetune_experiment if str(config.mode) == "finetune" else tracking.experiment),
            )
            (sweep_dir / SWEEP_FILE).write_text(json.dumps(info, indent=2))  # jobs run even if MLflow is down
            info.update(start_parent_run(config, info))
        (sweep_dir / SWEEP_FILE).write_text(json.dumps(info, indent=2))
        if info["parent_run_id"]:
            log.info(
                "MLflow parent run %s (experiment %s) at %s",
                info["parent_run_id"],
                info["experiment"],
                info["tracking_uri"],
            )
        self.started = True  # Hydra calls on_multirun_end even when this raised (a CV's sweep.json may exist)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir)).resolve()
        path = sweep_dir / SWEEP_FILE
        if not path.is_file() or not getattr(self, "started", False):
            return
        aborted = sys.exc_info()[1]  # called from Hydra's `finally`: set when the sweep itself raised
        info = json.loads(path.read_text())

        cv = cv_enabled(config)
        info.update(finish_cv_sweep(config, info, aborted) if cv else finish_sweep(config, info, aborted))
        path.write_text(json.dumps(info, indent=2, default=str))
        if aborted is None and not info.get("jobs_succeeded"):
            log.error("no job of the sweep succeeded (%d failed): see the leaderboard above", info.get("jobs", 0))
            raise SystemExit(1)
        if aborted is None and cv and not info.get("complete") and not config.cv.allow_missing:
            raise SystemExit(1)  # a fold failed: the CV is incomplete (its folds are kept; the same command resumes)


def connect_ray(config: DictConfig) -> None:
    """hydra/launcher=ray: connect through xray_exp.distributed.cluster (the one way to reach Ray: RAY_ADDRESS,
    token auth, a new local Ray when no address) before the launcher would call ray.init itself; the launcher
    then reuses this connection. Exits with the reason when the cluster cannot be reached (before any job)."""
    if not str(OmegaConf.select(config, "hydra.launcher._target_", default="")).endswith("ray_launcher.RayLauncher"):
        return

    init = OmegaConf.to_container(config.hydra.launcher.ray.init, resolve=True)
    if not isinstance(init, dict):
        raise ConfigError(f"hydra.launcher.ray.init: expected a mapping of ray.init arguments, got {init!r}")
    known = ("address", "num_cpus", "num_gpus", "include_dashboard", "runtime_env")
    if set(init) - set(known):
        log.warning(
            "hydra.launcher.ray.init: %s not used (xray_exp.distributed.cluster.connect takes %s)",
            sorted(set(init) - set(known)),
            ", ".join(known),
        )
    try:
        connect(
            init.get("address"),
            num_cpus=init.get("num_cpus"),
            num_gpus=init.get("num_gpus"),
            include_dashboard=init.get("include_dashboard"),
            runtime_env=init.get("runtime_env"),
        )
    except ConfigError as exc:
        print(f"ERROR: {exc}", file=sys.stderr, flush=True)
        raise SystemExit(2) from exc


def _choice(config: DictConfig, group: str) -> str:
    return str(OmegaConf.select(config, f"hydra.runtime.choices.{group}", default=None) or "basic")


def search_space(config: DictConfig) -> dict[str, str]:
    """The swept keys: `hydra.sweeper.params` and the command line's sweep overrides (a,b / interval(...))."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    space = {str(k): str(v) for k, v in (OmegaConf.select(config, "hydra.sweeper.params") or {}).items()}
    for override in OverridesParser.create().parse_overrides(list(config.hydra.overrides.task)):
        if override.is_sweep_override():  # as typed: model=yolo12n,yolo12s -> "yolo12n,yolo12s"
            space[override.get_key_element()] = str(override.input_line).split("=", 1)[1]
    return space


def sweep_parent_client(info: dict[str, Any], timeout_s: float):
    """A client of the sweep's tracking store, every request bounded by `timeout_s`."""
    return tracking_client(info["tracking_uri"], timeout_s=timeout_s)


def start_parent_run(config: DictConfig, info: dict[str, Any]) -> dict[str, Any]:
    """Create (or, for a resumed study, reopen) the parent run; returns {parent_run_id, experiment_id}."""
    sweeper = config.hydra.sweeper
    tags = {
        "sweep.id": info["sweep_id"],
        "sweep.dir": info["sweep_dir"],
        "sweep.sweeper": info["sweeper"],
        "sweep.launcher": info["launcher"],
        "sweep.search_space": json.dumps(search_space(config)),
        "hydra.overrides": " ".join(config.hydra.overrides.task) or "(none)",
        **git_info(config.paths.root),
        **package_versions(),
    }
    params = {
        "sweeper": info["sweeper"],
        "launcher": info["launcher"],
        "objective.metric": info["objective"],
        "objective.direction": info["direction"],
        **{f"search.{k}": v for k, v in search_space(config).items()},
    }
    if info["study"]:
        study = info["study"]
        tags.update(
            {
                "sweep.n_trials": str(study["n_trials"]),
                "sweep.n_jobs": str(sweeper.n_jobs),
                "optuna.trials_done_before": str(study["done"]),
                "optuna.requeued": str(study["requeued"]),
            }
        )
        params.update(
            {
                "optuna.study_name": study["study"],
                "optuna.storage": study["storage"],
                "optuna.sampler": str(sweeper.sampler.get("_target_", "")),
            }
        )
    name = f"sweep-{info['study']['study']}" if info["study"] else f"sweep-{info['sweep_id']}"
    if OmegaConf.select(config, "cv.enabled", default=False):  # sweep=cv: one parent run per CV folder
        name = f"cv-{info['sweep_id']}"
        tags.update({"cv.name": str(config.cv.name), "cv.dir": info["sweep_dir"]})
        params.update(
            {
                "cv.folds": int(config.cv.folds),
                "cv.seed": int(config.cv.seed),
                "model": config.model.name,
                "dataset": config.dataset.name,
            }
        )
    identity = {"sweep.key": info["key"], "sweep.role": "parent"}
    client = sweep_parent_client(info, config.tracking.timeout_s)
    opened = open_parent_run(client, info["experiment"], name, identity, tags, params, count_tag="sweep.invocations")
    if opened["resumed"]:
        log.info("resuming the sweep's MLflow parent run %s", opened["parent_run_id"])
    return {"parent_run_id": opened["parent_run_id"], "experiment_id": opened["experiment_id"]}


def finish_sweep(config: DictConfig, info: dict[str, Any], aborted: BaseException | None = None) -> dict[str, Any]:
    """Leaderboard, best job registered (unless the sweep was `aborted`), parent run ended.
    Returns what to add to sweep.json."""
    metric, direction = info["objective"], info["direction"]
    sweep_dir = Path(info["sweep_dir"])
    client = sweep_parent_client(info, config.tracking.timeout_s) if info.get("parent_run_id") else None
    if client is not None:
        rows = lb.rows_from_mlflow(client, info["experiment_id"], info["parent_run_id"], metric)
    else:
        rows = lb.rows_from_folders(sweep_dir, metric)
    rows = lb.rank(rows, direction)
    csv_path = lb.write_csv(rows, metric, sweep_dir / "leaderboard.csv")
    print(lb.format_table(rows, metric, direction), flush=True)
    best = rows[0] if rows and rows[0].ranked else None
    out: dict[str, Any] = {
        "jobs": len(rows),
        "jobs_succeeded": sum(r.ranked for r in rows),
        "jobs_failed": sum(r.status == "FAILED" for r in rows),
        "leaderboard": str(csv_path),
        "best": None,
        "registration": None,
    }
    if best is not None:
        out["best"] = {"job": best.job, "run_id": best.run_id, "objective": best.objective, "overrides": best.overrides}
        print(
            f" best: job {best.job}  {metric} = {best.objective:.5f}  ({best.overrides or 'no overrides'})", flush=True
        )
    if client is None:
        print(f"SWEEP_DIR={sweep_dir}", flush=True)
        return out
    parent = info["parent_run_id"]
    client.log_artifact(parent, str(csv_path))
    if aborted is not None:
        client.set_tag(parent, "sweep.aborted", f"{type(aborted).__name__}: {aborted}"[:5000])
        print(
            f" sweep aborted ({type(aborted).__name__}): nothing registered; run the same command again to "
            "resume an Optuna study",
            flush=True,
        )
    elif best is not None:
        client.log_metric(parent, f"best/{metric}", best.objective)
        client.set_tag(parent, "sweep.best_run_id", best.run_id)
        client.set_tag(parent, "sweep.best_overrides", best.overrides[:5000])
        decision = lb.register_best(
            client,
            best,
            info["experiment_id"],
            str(config.tracking.register),
            metric,
            direction,
            {"sweep.id": info["sweep_id"], "sweep.parent_run_id": parent},
            better_if=str(config.tracking.better_if),
        )
        out["registration"] = {
            k: v for k, v in decision.items() if k in ("registered", "promoted", "name", "version", "alias", "reason")
        }
        reg = out["registration"]
        client.set_tag(parent, "registry.decision", describe_decision(reg))
        print(f" registry: {describe_decision(reg)} (run {best.run_id})", flush=True)
    status = "FINISHED" if best is not None else "FAILED"
    if isinstance(aborted, KeyboardInterrupt) or any(r.status == "RUNNING" for r in rows):
        status = "KILLED"
    elif aborted is not None:
        status = "FAILED"
    client.set_terminated(parent, status=status)
    print(f" MLflow parent run {parent} ({status}) at {info['tracking_uri']}\nSWEEP_DIR={sweep_dir}", flush=True)
    return out
