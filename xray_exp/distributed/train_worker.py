"""What every Ray Train worker runs: one rank of Ultralytics' DDP training in Ray's process group.

    TorchTrainer(train_loop, train_loop_config=worker_config(...), scaling_config=ScalingConfig(num_workers=2))

Per rank: offline set-up before Ultralytics is imported (Ray Train has set RANK/LOCAL_RANK/WORLD_SIZE by
then), the device Ray assigned (a GPU, or CPU with the gloo backend), and xray_exp.yolo.fit with
`ray_ranks=True` (RayDetectionTrainer). Every epoch all ranks call `ray.train.report` (a barrier); rank 0
attaches a checkpoint (see checkpoints.py), and its trainer logs the epoch's metrics into the run's MLflow
run (journaled in <run_dir>/rank0, xray_exp.yolo.epochs). A restarted group (a worker died; FailureConfig) gets
the latest checkpoint from `ray.train.get_checkpoint()` and resumes Ultralytics from it. After training
all ranks report once more; rank 0's final report carries best.pt's validation metrics and the weights.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

from xray_exp.distributed import checkpoints
from xray_exp.yolo.runtime import apply_ultralytics_settings, check_rank_environment, configure_offline

log = logging.getLogger("xray_exp.ray")


def train_loop(config: dict[str, Any]) -> None:
    """The per-worker training function (Ray Train V2)."""
    configure_offline(config["settings_dir"], offline=config["offline"])
    check_rank_environment()
    import ray.train
    import ray.train.torch
    import torch

    ctx = ray.train.get_context()
    rank = ctx.get_world_rank()
    torch.set_num_threads(max(1, int(config["threads"])))
    device = ray.train.torch.get_device()
    apply_ultralytics_settings(Path(config["settings_dir"]) / "runs")

    from xray_exp.yolo.fit import fit  # lazy: heavy (omegaconf, yaml)

    run_dir = Path(config["run_dir"])
    local = Path(tempfile.mkdtemp(prefix=f"xray-ray-rank{rank}-"))
    start_state: dict[str, Any] = {}
    restored = ray.train.get_checkpoint()  # the latest reported one (a restarted group, a resumed run)
    if restored is None and config.get("start_checkpoint"):  # mode=retrain / model.weights: where to begin
        from xray_exp.distributed.storage import open_checkpoint  # lazy: only on this path

        restored = open_checkpoint(config["start_checkpoint"])
    if restored is not None:
        restored.to_directory(str(local / "restored"))
        start_state = checkpoints.read_state(local / "restored")
        log.warning(
            "rank %d: starting from checkpoint %s (%s, %d/%d epochs done)",
            rank,
            restored.path,
            start_state["kind"],
            start_state["epoch"],
            start_state["epochs"],
        )

    def report_epoch(trainer, numbers: dict[str, float]) -> None:
        """Every rank reports (a barrier); rank 0 with the epoch's metrics and a checkpoint."""
        epoch = int(trainer.epoch) + 1
        metrics: dict[str, Any] = {"epoch": epoch}
        checkpoint = None
        folder = local / f"epoch{epoch}"
        if rank == 0:
            metrics.update(numbers)
            checkpoints.pack(
                folder,
                trainer.wdir,
                "epoch",
                epoch,
                trainer.epochs,
                {k: v for k, v in numbers.items() if k.startswith("ultralytics/val/")},
                trainer.csv,
            )
            checkpoint = ray.train.Checkpoint.from_directory(str(folder))
        ray.train.report(metrics, checkpoint=checkpoint)
        shutil.rmtree(folder, ignore_errors=True)

    kind = start_state.get("kind")
    resumed_from = start_state.get("epoch", 0) if kind in ("epoch", "continue") else 0
    if kind == "final" or (kind in ("epoch", "continue") and start_state["epoch"] >= start_state["epochs"]):
        _report_final(
            rank,
            local / "restored" / "weights",
            start_state["epoch"],
            start_state["epochs"],
            start_state.get("val_metrics", {}),
            local / "restored" / "results.csv",
            resumed_from,
            local,
        )
        return
    resume_from = None
    if kind in ("epoch", "continue"):
        resume_from = local / "restored" / "weights" / "last.pt"
        if rank == 0 and (local / "restored" / "results.csv").is_file():  # drop rows of epochs after it
            run_dir.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(local / "restored" / "results.csv", run_dir / "results.csv")
    result = fit(
        config["arch"],
        config["train_args"],
        weights=local / "restored" / "weights" / "start.pt" if kind == "weights" else None,
        resume_from=resume_from,
        device=str(device.index or 0) if device.type == "cuda" else "cpu",
        gray_loader=config.get("gray_loader", True),
        on_epoch=report_epoch,
        ray_ranks=True,
        epoch_log=config.get("rank0_epoch_log") if rank == 0 else None,
    )
    trainer = result.trainer
    _report_final(
        rank,
        trainer.wdir,
        result.epochs_run,
        result.epochs,
        result.val_metrics if rank == 0 else {},
        trainer.csv,
        resumed_from,
        local,
    )


def _report_final(
    rank: int,
    weights_dir: Path,
    epoch: int,
    epochs: int,
    val: dict[str, float],
    results_csv: Path,
    resumed_from: int,
    local: Path,
) -> None:
    import ray.train

    metrics: dict[str, Any] = {"epoch": epoch, "final": 1, "resumed_from_epoch": resumed_from}
    checkpoint = None
    if rank == 0:
        metrics.update(val)
        folder = checkpoints.pack(local / "final", weights_dir, "final", epoch, epochs, val, results_csv)
        checkpoint = ray.train.Checkpoint.from_directory(str(folder))
    ray.train.report(metrics, checkpoint=checkpoint)
    shutil.rmtree(local, ignore_errors=True)
