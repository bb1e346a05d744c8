"""Hyper-parameter search with Ray Tune: the body of `python -m xray_exp.ray_main mode=tune`.

    python -m xray_exp.ray_main mode=tune tune.num_samples=20 tune.max_concurrent=4
    python -m xray_exp.ray_main mode=tune tune=optimizer hardware=gpu tune.gpus_per_trial=0.25
    python -m xray_exp.ray_main resume=outputs/tune/<name>          # after Ctrl-C or a lost driver

`tune.num_samples` trials drawn by `tune.searcher` (Optuna TPE by default) over `tune.space`, at most
`tune.max_concurrent` at a time, each with `tune.cpus_per_trial` / `tune.gpus_per_trial`; ASHA stops weak
trials on `tune.metric`, reported every epoch. MLflow: one parent run (experiment `tune.experiment`) and
one child run per trial (`mlflow.parentRunId`). At the end the best trial (by `tune.metric` at its last
epoch) is evaluated like a training run (test split, ONNX export + parity, clinical metrics), logged on the
parent run and registered as `<model>@development`; its parameters are written as an experiment config:

    python -m xray_exp.train --config-dir outputs/tune/<name>/conf experiment=tuned_<name>

The experiment lives in `ray.storage_path/<tune.name>`; running again with the same name (which
`resume=outputs/tune/<name>` does) restores it with `Tuner.restore` and finishes the unfinished trials.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any, cast

from omegaconf import DictConfig, OmegaConf, open_dict
from ray import tune

from xray_exp.distributed.tune_results import (
    experiment_yaml,
    flatten_best,
    print_tune_summary,
    trial_rows,
    write_trials_csv,
)
from xray_exp.distributed.tune_space import (
    apply_params,
    flatten_space,
    make_scheduler,
    make_searcher,
    to_tune_space,
    validate_space,
)
from xray_exp.distributed.tune_trial import run_trial, trial_dirname
from xray_exp.errors import ConfigError, XrayExpError
from xray_exp.mlops.client import tracking_client
from xray_exp.mlops.parent_runs import end_child_runs
from xray_exp.mlops.registry import registration_target
from xray_exp.runs.lifecycle import (
    Registration,
    Run,
    close_run,
    ended,
    finish_run,
    post_training_config,
    resolve_start_weights,
    set_up,
    start,
    ultralytics_dir,
    write_run_files,
)
from xray_exp.yolo.checkpoint import strip_optimizer_state
from xray_exp.yolo.fit import FitResult

log = logging.getLogger("xray_exp.ray")
EPOCH_METRIC_PREFIXES = ("ultralytics/val/", "train/", "lr/")
COMPLETED = "trials_completed.txt"


class TuneInterrupted(XrayExpError):
    """The search stopped before every trial finished; its state is saved for `resume=`."""

    exit_code = 130


class CompletionLog(tune.Callback):
    """Appends each trial that completed (or was stopped by the scheduler) or errored to a file. Tune's
    cleanup after Ctrl-C marks running trials TERMINATED without these events, so this file, not the trial
    status, tells an interrupted search from a finished one; it survives `Tuner.restore`."""

    def __init__(self, path: str):
        self.path = path

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._write(trial.trial_id)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._write(trial.trial_id)

    def _write(self, trial_id: str) -> None:
        with open(self.path, "a") as fh:
            fh.write(trial_id + "\n")


def check_resources(cfg: DictConfig) -> tuple[float, float]:
    t = cfg.tune
    cpus, gpus = float(t.cpus_per_trial), float(t.gpus_per_trial)
    if cpus <= 0:
        raise ConfigError(f"tune.cpus_per_trial: {cpus} must be positive")
    if not 0 <= gpus <= 1:
        raise ConfigError(
            f"tune.gpus_per_trial: {gpus} must be between 0 and 1 (fractions share a GPU); "
            "for several GPUs per model use mode=train (data parallel)"
        )
    batch = cfg.hardware.batch
    if 0 < gpus < 1 and not (float(batch).is_integer() and batch > 0):
        raise ConfigError(
            f"hardware.batch: {batch} sizes itself from the whole GPU's memory, but trials share a GPU "
            f"(tune.gpus_per_trial={gpus}). Fix: a fixed batch, e.g. hardware.batch=16"
        )
    if gpus == 0 and str(cfg.hardware.device) not in ("cpu", "None"):
        raise ConfigError(
            f"hardware.device={cfg.hardware.device} with tune.gpus_per_trial=0: trials get no GPU. "
            "Fix: tune.gpus_per_trial=1 (or a fraction), or hardware=cpu"
        )
    return cpus, gpus


def run_tune(cfg: DictConfig, run_dir: Path, overrides: list[str], cluster) -> float:
    t0 = time.time()
    resume = bool(cfg.resume)
    settings = cfg.tune
    if resume and (run_dir / "summary.json").is_file():  # finished before: nothing to search or register again
        summary = json.loads((run_dir / "summary.json").read_text())
        log.info("Ray Tune: %s finished already; its summary:", run_dir)
        print_tune_summary(summary)
        value = summary["objective"]["value"]
        return float(value if value is not None else summary["best"]["value"])
    if (run_dir / "summary.json").is_file():
        raise ConfigError(
            f"tune.name: {run_dir.name} finished already ({run_dir / 'summary.json'}). "
            "Fix: choose another tune.name for a new search"
        )
    info = set_up(cfg, run_dir, resume)
    flat = flatten_space(settings.space)
    validate_space(cfg, flat)
    metric = str(settings.metric)
    if not metric.startswith(EPOCH_METRIC_PREFIXES):
        raise ConfigError(
            f"tune.metric: {metric!r} is not reported every epoch; use an ultralytics/val/, train/ "
            "or lr/ metric (e.g. ultralytics/val/mAP50-95, ultralytics/val/box_loss with "
            "tune.direction=minimize)"
        )
    mode = "max" if str(settings.direction) == "maximize" else "min"
    epochs = int(cfg.train.epochs)
    cpus, gpus = check_resources(cfg)
    searcher = make_searcher(
        str(settings.searcher), settings.seed, int(settings.max_concurrent), int(settings.num_samples)
    )
    scheduler = make_scheduler(
        str(settings.scheduler), epochs, int(settings.grace_period), int(settings.reduction_factor)
    )

    # tiny epochs snapshot the experiment often; Tune's warning about that is noise here
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")

    weights, lineage = resolve_start_weights(cfg)
    base = cast("dict[str, Any]", OmegaConf.to_container(cfg, resolve=True, enum_to_str=True))  # DictConfig: a dict
    base["model"]["weights"] = str(weights) if weights else None
    tracker = start(
        cfg,
        run_dir,
        overrides,
        fingerprint=info.fingerprint,
        mode="tune",
        experiment=str(settings.experiment),
        run_name=run_dir.name,
        tags={
            "ray.address": cluster.address,
            "tune.searcher": str(settings.searcher),
            "tune.scheduler": str(settings.scheduler),
            "tune.metric": metric,
            **lineage,
        },
    )
    write_run_files(run_dir, info, cfg)
    (run_dir / "config.resolved.yaml").write_text(OmegaConf.to_yaml(base))  # with the weights trials start from

    setup = {
        "cfg": base,
        "data_yaml": str(info.data_yaml),
        "fingerprint": info.fingerprint,
        "settings_dir": str(ultralytics_dir(cfg)),
        "offline": bool(cfg.offline),
        "tune_dir": str(run_dir),
        "tune_name": run_dir.name,
        "experiment": str(settings.experiment),
        "overrides": list(overrides),
        "cpus_per_trial": cpus,
        "gpus_per_trial": gpus,
        "parent_run_id": tracker.run_id if tracker.live else None,
    }  # trials track with cfg.tracking, as children of the parent run
    trainable = tune.with_resources(tune.with_parameters(run_trial, setup=setup), {"cpu": cpus, "gpu": gpus})
    storage = str(cfg.ray.storage_path)
    experiment_path = f"{storage.rstrip('/')}/{run_dir.name}"
    if tune.Tuner.can_restore(experiment_path):
        log.info("Ray Tune: resuming the experiment at %s (unfinished and errored trials continue)", experiment_path)
        tuner = tune.Tuner.restore(experiment_path, trainable=trainable, resume_unfinished=True, resume_errored=True)
    else:
        tuner = tune.Tuner(
            trainable,
            param_space=to_tune_space(flat),
            tune_config=tune.TuneConfig(
                metric=metric,
                mode=mode,
                search_alg=searcher,
                scheduler=scheduler,
                num_samples=int(settings.num_samples),
                trial_dirname_creator=trial_dirname,
            ),
            run_config=tune.RunConfig(
                name=run_dir.name,
                storage_path=storage,
                verbose=1,
                callbacks=[CompletionLog(str(run_dir / COMPLETED))],
                checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
                failure_config=tune.FailureConfig(max_failures=int(settings.max_failures)),
            ),
        )
    log.info(
        "Ray Tune: %d trials (%s, %s), %g CPU / %g GPU each, at most %d at once; experiment %s",
        settings.num_samples,
        settings.searcher,
        settings.scheduler,
        cpus,
        gpus,
        settings.max_concurrent,
        experiment_path,
    )
    grid = tuner.fit()
    rows = trial_rows(grid, metric, epochs)
    write_trials_csv(rows, run_dir / "trials.csv")
    completed = set((run_dir / COMPLETED).read_text().split()) if (run_dir / COMPLETED).exists() else set()
    done = sum(1 for row in rows if row["trial_id"] in completed)
    if done < int(settings.num_samples):
        tracker.end("KILLED")
        raise TuneInterrupted(
            f"the search stopped with {done} of {settings.num_samples} trials finished; its state "
            f"is saved. Resume with: python -m xray_exp.ray_main resume={run_dir}"
        )
    close_child_runs(cfg, rows)
    best = grid.get_best_result(metric=metric, mode=mode, scope="last", filter_nan_and_inf=True)
    if best is None or best.checkpoint is None or metric not in (best.metrics or {}):
        tracker.end("FAILED")
        raise ConfigError(
            f"tune: no trial reported {metric} with a checkpoint ({grid.num_errors} errors); see {experiment_path}"
        )

    with ended(tracker):
        summary = finish(cfg, run_dir, info, tracker, best, rows, flat, metric, lineage, t0)
    return close_run(summary, tracker, run_dir, show=print_tune_summary)


def close_child_runs(cfg: DictConfig, rows: list[dict[str, Any]]) -> None:
    """Trials stopped by ASHA end without closing their MLflow run: mark them KILLED, tagged early-stopped."""
    if not cfg.tracking.enabled:
        return

    try:
        end_child_runs(
            tracking_client(cfg.tracking.tracking_uri),
            {
                row["mlflow_run_id"]: (
                    "KILLED" if row["stopped_early"] else "FAILED",
                    {"tune.stopped_early": str(row["stopped_early"]).lower()},
                )
                for row in rows
                if row["mlflow_run_id"]
            },
        )
    except Exception as exc:  # bookkeeping only: the trials' own journals hold their data
        log.warning("could not update the trials' MLflow runs: %s", exc)


def finish(
    cfg: DictConfig, run_dir: Path, info, tracker, best, rows, flat, metric: str, lineage: dict, t0: float
) -> dict[str, Any]:
    """The best trial finishes as a run of the parent (xray_exp.runs.lifecycle.finish_run: test split, ONNX
    export + parity, artifacts, registry), plus its experiment config and the search's figures."""
    params = {k: best.config[k] for k in flat}
    trial_id = best.metrics.get("trial_id", "")
    value = float(best.metrics[metric])
    best_dir = run_dir / "best"
    if best_dir.exists():
        shutil.rmtree(best_dir)
    with best.checkpoint.as_directory() as folder:
        shutil.copytree(folder, best_dir)
    weights = best_dir / "weights" / ("best.pt" if (best_dir / "weights" / "best.pt").is_file() else "last.pt")
    strip_optimizer_state(weights)
    best_cfg = apply_params(cfg, params)
    with open_dict(best_cfg):
        best_cfg.model.weights = None

    name = f"tuned_{run_dir.name}"
    conf_dir = run_dir / "conf"
    command = f"python -m xray_exp.train --config-dir {conf_dir} experiment={name}"
    exp_file = conf_dir / "experiment" / f"{name}.yaml"
    exp_file.parent.mkdir(parents=True, exist_ok=True)
    exp_file.write_text(experiment_yaml(cfg, run_dir.name, params, metric, value, trial_id, command))
    tracker.log_params(flatten_best(params))
    tracker.log_metrics({f"best/{metric}": value})
    tracker.set_tags(
        {
            "tune.best_trial": trial_id,
            "tune.best_run_id": best.metrics.get("mlflow_run_id", ""),
            "tune.experiment_config": str(exp_file),
        }
    )

    result = FitResult(
        run_dir=best_dir,
        best=weights,
        last=best_dir / "weights" / "last.pt",
        epochs_run=int(best.metrics.get("epoch", 0)),
        val_metrics={
            k: float(v)
            for k, v in best.metrics.items()
            if k.startswith("ultralytics/val/") and isinstance(v, int | float)
        },
    )
    target, alias = registration_target(cfg.model.name)
    registration = Registration(
        target, alias, {"mode": "tune", "tune.experiment": run_dir.name, "tune.trial_id": trial_id, **lineage}
    )
    run = Run(best_cfg, run_dir, info, tracker, t0, registration, post_cfg=post_training_config(best_cfg))
    summary = finish_run(run, result, artifacts={"config": exp_file, "tune": run_dir / "trials.csv"})
    if best.metrics.get("mlflow_run_id") and cfg.tracking.enabled:
        from xray_exp.mlops.client import tracking_client  # lazy: only on this path
        from xray_exp.mlops.parent_runs import tag_child_run  # lazy: only on this path

        try:
            client = tracking_client(cfg.tracking.tracking_uri)
            tag_child_run(client, best.metrics["mlflow_run_id"], {"tune.best": "true"})
        except Exception as exc:
            log.warning("could not tag the best trial's MLflow run: %s", exc)
    summary.update(
        {
            "tune_dir": str(run_dir),
            "experiment_path": f"{str(cfg.ray.storage_path).rstrip('/')}/{run_dir.name}",
            "trials": len(rows),
            "stopped_early": sum(1 for r in rows if r["stopped_early"]),
            "errors": sum(1 for r in rows if r["error"]),
            "searcher": str(cfg.tune.searcher),
            "scheduler": str(cfg.tune.scheduler),
            "best": {
                "trial_id": trial_id,
                "metric": metric,
                "value": value,
                "epochs": int(best.metrics.get("epoch", 0)),
                "params": params,
                "mlflow_run_id": best.metrics.get("mlflow_run_id", ""),
            },
            "weights": str(weights),
            "experiment_config": str(exp_file),
            "train_command": command,
        }
    )
    return summary
