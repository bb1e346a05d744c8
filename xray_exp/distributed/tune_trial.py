"""One Ray Tune trial: the run's config with the trial's parameters, one Ultralytics training, per-epoch reports.

    tune.with_parameters(run_trial, setup={...})   # built by xray_exp.distributed.tune_driver

Every epoch: the trainer logs the epoch's metrics to the trial's MLflow child run (tag `mlflow.parentRunId` =
the tune's run; xray_exp.yolo.epochs) and the trial sends them to `ray.tune.report` with a checkpoint
(last.pt, best.pt, results.csv); ASHA decides on them. The child run opens and ends through
xray_exp.runs.lifecycle (`start`, `ended`), as every run does. A restored trial (interrupted tune, or its
process died) resumes Ultralytics from that checkpoint. All paths are absolute: Ray Tune runs each trial
in its own directory.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any, cast

from xray_exp.distributed import checkpoints
from xray_exp.mlops.parent_runs import child_run_tags
from xray_exp.yolo.runtime import apply_ultralytics_settings, configure_offline


def trial_run_dir(tune_dir: str | Path, trial_id: str) -> Path:
    return Path(tune_dir) / "trials" / trial_id


def trial_dirname(trial) -> str:
    """Ray Tune's folder name for a trial (short and stable: the trial id)."""
    return f"trial_{trial.trial_id}"


def run_trial(params: dict[str, Any], setup: dict[str, Any]) -> None:
    configure_offline(setup["settings_dir"], offline=setup["offline"])
    import torch
    from omegaconf import DictConfig, OmegaConf
    from ray import tune

    from xray_exp.config.schema import RayMainConfig  # lazy: heavy (omegaconf, yaml)
    from xray_exp.distributed.tune_space import apply_params  # lazy: heavy (omegaconf, yaml)
    from xray_exp.runs.lifecycle import ended, epoch_log_of, start  # lazy: heavy (omegaconf, yaml)
    from xray_exp.yolo.args import to_train_args  # lazy: heavy (omegaconf, yaml)
    from xray_exp.yolo.fit import fit  # lazy: heavy (omegaconf, yaml)

    ctx = tune.get_context()
    trial_id = ctx.get_trial_id()
    torch.set_num_threads(max(1, int(setup["cpus_per_trial"])))
    # merge() returns the type of its first config: the structured schema's DictConfig
    merged = cast(DictConfig, OmegaConf.merge(OmegaConf.structured(RayMainConfig), setup["cfg"]))
    cfg = apply_params(merged, params)
    run_dir = trial_run_dir(setup["tune_dir"], trial_id)
    run_dir.mkdir(parents=True, exist_ok=True)
    apply_ultralytics_settings(Path(setup["settings_dir"]) / "runs")
    args = to_train_args(cfg, setup["data_yaml"], run_dir)
    parent_run_id = setup["parent_run_id"]
    tracker = start(
        cfg,
        run_dir,
        setup["overrides"],
        fingerprint=setup["fingerprint"],
        mode="tune-trial",
        experiment=setup["experiment"],
        run_name=f"{setup['tune_name']}/{trial_id}",
        tags=child_run_tags(
            parent_run_id,
            {
                "tune.experiment": setup["tune_name"],
                "tune.trial_id": trial_id,
                **{f"tune.param.{k}": str(v) for k, v in params.items()},
            },
        ),
        leave_out=("paths", "ray", "tune"),
    )

    local = Path(tempfile.mkdtemp(prefix=f"xray-trial-{trial_id}-"))
    restored = tune.get_checkpoint()
    state: dict[str, Any] = {}
    if restored is not None:
        restored.to_directory(str(local / "restored"))
        state = checkpoints.read_state(local / "restored")
        if state["kind"] == "final" or state["epoch"] >= state["epochs"]:
            shutil.rmtree(local, ignore_errors=True)
            return  # trained to the end before the interruption: its last report stands

    def report(trainer, numbers: dict[str, float]) -> None:
        epoch = int(trainer.epoch) + 1
        folder = checkpoints.pack(
            local / f"epoch{epoch}",
            trainer.wdir,
            "epoch",
            epoch,
            trainer.epochs,
            {k: v for k, v in numbers.items() if k.startswith("ultralytics/val/")},
            trainer.csv,
        )
        tune.report(
            {**numbers, "epoch": epoch, "mlflow_run_id": tracker.run_id or ""},
            checkpoint=tune.Checkpoint.from_directory(str(folder)),
        )
        shutil.rmtree(folder, ignore_errors=True)

    resume_from = None
    if state:
        resume_from = local / "restored" / "weights" / "last.pt"
        if (local / "restored" / "results.csv").is_file():  # drop rows of epochs after the checkpoint
            shutil.copyfile(local / "restored" / "results.csv", run_dir / "results.csv")
    try:
        with ended(tracker):
            fit(
                cfg.model.arch,
                args,
                weights=cfg.model.weights,
                resume_from=resume_from,
                device="0" if setup["gpus_per_trial"] > 0 else "cpu",
                offline=cfg.offline,
                gray_loader=bool(cfg.hardware.gray_loader),
                epoch_log=epoch_log_of(tracker),
                on_epoch=report,
            )
    finally:
        shutil.rmtree(local, ignore_errors=True)
