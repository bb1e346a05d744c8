"""One training run end to end, from a composed config: the body of `python -m xray_exp.train` (and of each
job of `python -m xray_exp.train --multirun`, which passes the sweep's parent run in).

validate config and data -> build model -> train (MLflow per epoch, Ultralytics' validator as
ultralytics/val/*) -> best.pt scored by xray_exp.metrics on post.eval_splits (val/*, test/*, with CIs) ->
samples -> ONNX export + parity -> register -> summary.json -> return the objective.
"""

from __future__ import annotations

import time
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from xray_exp.errors import ConfigError
from xray_exp.mlops.registry import registration_target
from xray_exp.runs.classify_run import check_task, model_arch, task_of, task_registered_name, training_data
from xray_exp.runs.lifecycle import (
    Parent,
    Registration,
    Run,
    close_run,
    ended,
    epoch_log_of,
    finish_run,
    load_started_config,
    resolve_start_weights,
    set_up,
    start,
    ultralytics_dir,
    write_run_files,
)
from xray_exp.yolo.args import to_train_args
from xray_exp.yolo.fit import fit, trim_results_to_checkpoint
from xray_exp.yolo.runtime import apply_ultralytics_settings


def train_run(
    cfg: DictConfig,
    run_dir: str | Path,
    overrides: list[str],
    parent: Parent | None = None,
    keep_failed_dir: bool = False,
) -> float:
    """Train, evaluate, export and log one run; return the objective metric. `parent`: the sweep's run;
    `keep_failed_dir`: a job of a sweep keeps its folder when the set-up fails (its error goes there)."""
    t0 = time.time()
    run_dir = Path(run_dir).resolve()
    resume = bool(cfg.resume)
    if resume:
        cfg = load_started_config(run_dir)
        OmegaConf.set_struct(cfg, True)
        if not (run_dir / "weights" / "last.pt").is_file():
            raise ConfigError(
                f"resume: {run_dir / 'weights' / 'last.pt'} not found: the run never finished an epoch; start it again."
            )
    check_task(cfg)
    info = set_up(cfg, run_dir, resume, keep_failed_dir)

    weights, lineage = resolve_start_weights(cfg)
    finetune = cfg.mode == "finetune"
    name, alias = registration_target(task_registered_name(cfg, cfg.model.name), finetune)
    tracker = start(
        cfg,
        run_dir,
        overrides,
        fingerprint=info.fingerprint,
        mode=str(cfg.mode),
        experiment=(parent and parent.experiment)
        or (cfg.tracking.finetune_experiment if finetune else cfg.tracking.experiment),
        run_name=parent.run_name if parent else run_dir.name,
        tags={**lineage, **(parent.tags if parent else {})},
    )
    write_run_files(run_dir, info, cfg)
    last = run_dir / "weights" / "last.pt"
    if resume:
        trim_results_to_checkpoint(run_dir)
    train_args = to_train_args(cfg, training_data(cfg, info), run_dir)
    apply_ultralytics_settings(ultralytics_dir(cfg) / "runs")
    registration = Registration(
        name, alias, {"mode": str(cfg.mode), **lineage}, deferred_to=parent.registration_note if parent else None
    )
    with ended(tracker):
        result = fit(
            model_arch(cfg),
            train_args,
            weights=weights,
            resume_from=last if resume else None,
            offline=cfg.offline,
            gray_loader=bool(cfg.hardware.gray_loader),
            epoch_log=epoch_log_of(tracker),
            task=task_of(cfg),
        )
        summary = finish_run(Run(cfg, run_dir, info, tracker, t0, registration), result)
    return close_run(summary, tracker, run_dir)
