"""Data-parallel training over Ray Train workers: the body of `python -m xray_exp.ray_main mode=train`.

    python -m xray_exp.ray_main mode=train ray.train.num_workers=4 hardware=gpu hardware.batch=64
    python -m xray_exp.ray_main mode=train debug=smoke ray.train.num_workers=2        # CPU, gloo
    python -m xray_exp.ray_main mode=retrain model_path=outputs/runs/<run>/weights/last.pt
    python -m xray_exp.ray_main resume=outputs/runs/<run>                             # the driver died

Same run folder, MLflow run and registration as `python -m xray_exp.train`: the driver opens the run and
logs params; rank 0 logs every epoch into it; after training the driver evaluates the test split, exports
ONNX (+ parity), computes the clinical metrics, logs artifacts and registers `<model>@development`.
Checkpoints go to `ray.storage_path/<run name>` every epoch; a worker that dies restarts the group from the
latest one (ray.train.max_failures). `mode=retrain` continues a resumable last.pt (optimizer and schedule
included) or starts a new training from a weights file; either way data-parallel.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from pathlib import Path

from omegaconf import DictConfig

from xray_exp.distributed import checkpoints
from xray_exp.distributed.storage import to_storage
from xray_exp.distributed.train_worker import train_loop
from xray_exp.errors import ConfigError
from xray_exp.mlops.registry import registration_target
from xray_exp.mlops.tracker import Tracker
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
from xray_exp.yolo.args import to_train_args
from xray_exp.yolo.epochs import EpochLog
from xray_exp.yolo.fit import FitResult

log = logging.getLogger("xray_exp.ray")


def scaling(cfg: DictConfig) -> dict:
    """Workers, GPUs, backend and the per-rank batch check (Ultralytics splits `batch` over the ranks)."""
    settings = cfg.ray.train
    workers = int(settings.num_workers)
    if workers < 1:
        raise ConfigError(f"ray.train.num_workers: {workers} must be at least 1")
    use_gpu = bool(settings.use_gpu) if settings.use_gpu is not None else float(cfg.hardware.num_gpus) > 0
    batch = cfg.hardware.batch
    if not (isinstance(batch, int) or float(batch).is_integer()) or int(batch) < workers:
        raise ConfigError(
            f"hardware.batch: {batch} is not a global batch for {workers} workers. Fix: an integer "
            f">= ray.train.num_workers (each rank gets batch // {workers}); automatic sizing (-1) "
            "and memory fractions are single-GPU features."
        )
    resources = {"CPU": float(settings.cpus_per_worker)}
    if use_gpu:
        resources["GPU"] = float(settings.gpus_per_worker)
    backend = settings.backend or ("nccl" if use_gpu else "gloo")
    return {"num_workers": workers, "use_gpu": use_gpu, "resources": resources, "backend": backend}


def run_train(cfg: DictConfig, run_dir: Path, overrides: list[str], cluster) -> float:
    """Train over Ray Train workers, then post-train, log and register as the train entry point does."""
    t0 = time.time()
    resume = bool(cfg.resume)
    if resume and (run_dir / "summary.json").is_file():  # finished before: nothing to train or register again
        from xray_exp.runs.summary import print_summary  # lazy: only on this path

        summary = json.loads((run_dir / "summary.json").read_text())
        log.info("Ray Train: %s finished already; its summary:", run_dir)
        print_summary(summary)
        return float(summary["objective"]["value"])
    info = set_up(cfg, run_dir, resume)
    plan = scaling(cfg)
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    storage = str(cfg.ray.storage_path)
    start_point, lineage = None, {}
    if str(cfg.mode) == "retrain" and not resume:
        if not cfg.model_path:
            raise ConfigError("model_path: mode=retrain needs model_path=<run folder | checkpoint folder | .pt>")
        start_point = checkpoints.plan_start(cfg.model_path)
        lineage = {"parent_weights": str(start_point.weights), "retrain": start_point.kind}
        log.info(
            "retrain: %s %s",
            "continuing the training in" if start_point.kind == "continue" else "a new training from the weights in",
            start_point.weights,
        )
    elif not resume:
        weights, lineage = resolve_start_weights(cfg)
        if weights:
            start_point = checkpoints.StartPoint("weights", Path(weights), 0, 0)
    start_checkpoint = None  # Ray Train V2 dropped resume_from_checkpoint: the workers open it themselves
    if start_point is not None:
        with tempfile.TemporaryDirectory() as tmp:
            checkpoints.make_start_checkpoint(start_point, Path(tmp) / "start")
            start_checkpoint = to_storage(Path(tmp) / "start", storage, f"{run_dir.name}-start")
    elif resume and (Path(storage) / f"{run_dir.name}-start").is_dir():  # a retrain whose driver died early
        start_checkpoint = str(Path(storage) / f"{run_dir.name}-start")

    tracker = start(
        cfg,
        run_dir,
        overrides,
        fingerprint=info.fingerprint,
        mode=f"ray-{cfg.mode}",
        experiment=cfg.tracking.experiment,
        run_name=run_dir.name,
        tags={
            "ray.address": cluster.address,
            "ray.num_workers": str(plan["num_workers"]),
            "ray.backend": plan["backend"],
            **lineage,
        },
    )
    write_run_files(run_dir, info, cfg)
    # rank 0 journals its epochs in <run_dir>/rank0 (its own folder: it may share this run folder's disk)
    rank0_log = (
        EpochLog(
            str(run_dir / "rank0"),
            cfg.tracking.tracking_uri,
            enabled=True,
            timeout_s=float(cfg.tracking.timeout_s),
            run_id=tracker.run_id,
        )
        if tracker.live
        else None
    )
    loop_config = {
        "settings_dir": str(ultralytics_dir(cfg)),
        "offline": bool(cfg.offline),
        "run_dir": str(run_dir),
        "arch": cfg.model.arch,
        "train_args": to_train_args(cfg, info.data_yaml, run_dir),
        "threads": max(1, int(cfg.ray.train.cpus_per_worker)),
        "start_checkpoint": start_checkpoint,
        "gray_loader": bool(cfg.hardware.gray_loader),
        "rank0_epoch_log": rank0_log,
    }
    trainer = TorchTrainer(
        train_loop,
        train_loop_config=loop_config,
        scaling_config=ScalingConfig(
            num_workers=plan["num_workers"], use_gpu=plan["use_gpu"], resources_per_worker=plan["resources"]
        ),
        torch_config=TorchConfig(backend=plan["backend"], timeout_s=int(cfg.ray.train.timeout_s)),
        run_config=RunConfig(
            name=run_dir.name,
            storage_path=storage,
            failure_config=FailureConfig(max_failures=int(cfg.ray.train.max_failures)),
            checkpoint_config=CheckpointConfig(num_to_keep=int(cfg.ray.train.checkpoints_to_keep)),
        ),
    )
    log.info(
        "Ray Train: %d workers (%s, %s), checkpoints in %s/%s",
        plan["num_workers"],
        "GPU" if plan["use_gpu"] else "CPU",
        plan["backend"],
        storage,
        run_dir.name,
    )
    name, alias = registration_target(cfg.model.name)
    with ended(tracker):
        result = trainer.fit()
        final = dict(result.metrics or {})
        best, last = restore_outputs(result.checkpoint, run_dir)
        flush_rank0_journal(run_dir, cfg)
        fit = FitResult(
            run_dir=run_dir,
            best=best,
            last=last,
            epochs_run=int(final.get("epoch", 0)),
            val_metrics={k: float(v) for k, v in final.items() if k.startswith("ultralytics/val/")},
        )
        tracker.set_tags({"ray.resumed_from_epoch": str(final.get("resumed_from_epoch", 0))})
        run = Run(
            cfg,
            run_dir,
            info,
            tracker,
            t0,
            Registration(name, alias, {"mode": f"ray-{cfg.mode}", **lineage}),
            post_cfg=post_training_config(cfg),
        )
        summary = finish_run(run, fit)
        summary["ray"] = {
            "address": cluster.address,
            "num_workers": plan["num_workers"],
            "backend": plan["backend"],
            "use_gpu": plan["use_gpu"],
            "checkpoint": str(result.checkpoint.path) if result.checkpoint else None,
            "resumed_from_epoch": int(final.get("resumed_from_epoch", 0)),
        }
    return close_run(summary, tracker, run_dir)


def restore_outputs(checkpoint, run_dir: Path) -> tuple[Path, Path]:
    """best.pt/last.pt/results.csv in the run folder; copied from the final checkpoint when rank 0 ran elsewhere."""
    wdir = run_dir / "weights"
    if checkpoint is not None and not (wdir / "best.pt").is_file():
        with checkpoint.as_directory() as folder:
            wdir.mkdir(parents=True, exist_ok=True)
            for name in ("best.pt", "last.pt"):
                if (Path(folder) / "weights" / name).is_file():
                    shutil.copyfile(Path(folder) / "weights" / name, wdir / name)
            if (Path(folder) / "results.csv").is_file() and not (run_dir / "results.csv").is_file():
                shutil.copyfile(Path(folder) / "results.csv", run_dir / "results.csv")
    best = wdir / "best.pt" if (wdir / "best.pt").is_file() else wdir / "last.pt"
    if not best.is_file():
        raise ConfigError(f"Ray Train finished without weights in {wdir} or its final checkpoint")
    return best, wdir / "last.pt"


def flush_rank0_journal(run_dir: Path, cfg: DictConfig) -> None:
    """Send rank 0's per-epoch MLflow events that did not get through (when its journal is on this machine)."""
    if not cfg.tracking.enabled or not (run_dir / "rank0" / "tracking").is_dir():
        return

    tracker = Tracker(run_dir / "rank0", cfg.tracking.tracking_uri, timeout_s=cfg.tracking.timeout_s)
    if not tracker.flush():
        log.warning(
            "rank 0's per-epoch MLflow events are journaled in %s (upload later with python -m xray_exp.upload %s)",
            run_dir / "rank0",
            run_dir / "rank0",
        )
