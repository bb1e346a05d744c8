"""What every Ray Train worker runs: one rank of Ultralytics' DDP training in Ray's process group.

    TorchTrainer(train_loop, train_loop_config=worker_config(...), scaling_config=ScalingConfig(num_workers=2))

Per rank: offline set-up before Ultralytics is imported (Ray Train has set RANK/LOCAL_RANK/WORLD_SIZE by
then), the device Ray assigned (a GPU, or CPU with the gloo backend), and `RayDetectionTrainer`. Every
epoch all ranks call `ray.train.report` (a barrier); rank 0 attaches a checkpoint (see checkpoints.py) and
logs the epoch's metrics into the run's MLflow run. A restarted group (a worker died; FailureConfig) gets
the latest checkpoint from `ray.train.get_checkpoint()` and resumes Ultralytics from it. After training
all ranks report once more; rank 0's final report carries best.pt's validation metrics and the weights.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

log = logging.getLogger("xray_exp.ray")


def train_loop(config: dict[str, Any]) -> None:
    """The per-worker training function (Ray Train V2)."""
    from xray_exp.yolo.runtime import apply_ultralytics_settings, check_rank_environment, configure_offline

    configure_offline(config["settings_dir"], offline=config["offline"])
    # xray_exp.yolo.trainer.ENV, spelled out: importing that module would import Ultralytics before RANK is set
    os.environ["XRAY_EXP_GRAY_LOADER"] = "1" if config.get("gray_loader", True) else "0"
    check_rank_environment()
    import ray.train
    import ray.train.torch
    import torch

    ctx = ray.train.get_context()
    rank = ctx.get_world_rank()
    torch.set_num_threads(max(1, int(config["threads"])))
    device = ray.train.torch.get_device()
    apply_ultralytics_settings(Path(config["settings_dir"]) / "runs")

    from xray_exp.distributed import checkpoints
    from xray_exp.yolo.fit import build_model, epoch_metrics, ultralytics_box_metrics
    from xray_exp.yolo.ray_trainer import RayDetectionTrainer

    run_dir = Path(config["run_dir"])
    args = dict(config["train_args"], device=str(device.index or 0) if device.type == "cuda" else "cpu")
    local = Path(tempfile.mkdtemp(prefix=f"xray-ray-rank{rank}-"))
    start_state: dict[str, Any] = {}
    restored = ray.train.get_checkpoint()  # the latest reported one (a restarted group, a resumed run)
    if restored is None and config.get("start_checkpoint"):  # mode=retrain / model.weights: where to begin
        from xray_exp.distributed.storage import open_checkpoint

        restored = open_checkpoint(config["start_checkpoint"])
    if restored is not None:
        restored.to_directory(str(local / "restored"))
        start_state = checkpoints.read_state(local / "restored")
        log.warning("rank %d: starting from checkpoint %s (%s, %d/%d epochs done)", rank, restored.path,
                    start_state["kind"], start_state["epoch"], start_state["epochs"])
    tracker = _rank0_tracker(config) if rank == 0 else None

    def report_epoch(trainer) -> None:
        if trainer.in_final_eval:
            return  # best.pt's numbers go into the final report
        epoch = int(trainer.epoch) + 1
        metrics: dict[str, Any] = {"epoch": epoch}
        checkpoint = None
        folder = local / f"epoch{epoch}"
        if rank == 0:
            numbers = epoch_metrics(trainer)
            metrics.update(numbers)
            if tracker is not None:
                tracker.log_metrics(numbers, step=epoch)
            checkpoints.pack(folder, trainer.wdir, "epoch", epoch, trainer.epochs,
                             {k: v for k, v in numbers.items() if k.startswith("ultralytics/val/")}, trainer.csv)
            checkpoint = ray.train.Checkpoint.from_directory(str(folder))
        ray.train.report(metrics, checkpoint=checkpoint)
        shutil.rmtree(folder, ignore_errors=True)

    kind = start_state.get("kind")
    resumed_from = start_state.get("epoch", 0) if kind in ("epoch", "continue") else 0
    if kind == "final" or (kind in ("epoch", "continue") and start_state["epoch"] >= start_state["epochs"]):
        _report_final(rank, local / "restored" / "weights", start_state["epoch"], start_state["epochs"],
                      start_state.get("val_metrics", {}), local / "restored" / "results.csv", resumed_from, local)
        return
    if kind in ("epoch", "continue"):
        last = local / "restored" / "weights" / "last.pt"
        if rank == 0 and (local / "restored" / "results.csv").is_file():  # drop rows of epochs after it
            run_dir.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(local / "restored" / "results.csv", run_dir / "results.csv")
        model = build_model(config["arch"], last)
        model.add_callback("on_fit_epoch_end", report_epoch)
        model.train(trainer=RayDetectionTrainer, resume=str(last), data=args["data"], device=args["device"],
                    workers=args["workers"], save_dir=str(run_dir))
    else:
        weights = local / "restored" / "weights" / "start.pt" if kind == "weights" else None
        model = build_model(config["arch"], weights)
        model.add_callback("on_fit_epoch_end", report_epoch)
        model.train(trainer=RayDetectionTrainer, **args)
    trainer = model.trainer
    val = ultralytics_box_metrics(trainer.metrics or {}, prefix="val") if rank == 0 else {}
    _report_final(rank, trainer.wdir, int(trainer.epoch) + 1, int(trainer.epochs), val, trainer.csv, resumed_from,
                  local)


def _report_final(rank: int, weights_dir: Path, epoch: int, epochs: int, val: dict[str, float],
                  results_csv: Path, resumed_from: int, local: Path) -> None:
    import ray.train

    from xray_exp.distributed import checkpoints

    metrics: dict[str, Any] = {"epoch": epoch, "final": 1, "resumed_from_epoch": resumed_from}
    checkpoint = None
    if rank == 0:
        metrics.update(val)
        folder = checkpoints.pack(local / "final", weights_dir, "final", epoch, epochs, val, results_csv)
        checkpoint = ray.train.Checkpoint.from_directory(str(folder))
    ray.train.report(metrics, checkpoint=checkpoint)
    shutil.rmtree(local, ignore_errors=True)


def _rank0_tracker(config: dict[str, Any]):
    """Rank 0 logs per-epoch metrics into the driver's MLflow run, journaled in <run_dir>/rank0/tracking."""
    tracking = config["tracking"]
    if not tracking.get("run_id"):
        return None
    from xray_exp.mlops.tracker import STATE, Tracker

    journal = Path(config["run_dir"]) / "rank0"
    state = journal / "tracking" / STATE
    if not state.exists():
        state.parent.mkdir(parents=True, exist_ok=True)
        state.write_text(f'{{"applied": 0, "started": true, "run_id": "{tracking["run_id"]}"}}')
    return Tracker(journal, tracking["uri"], enabled=True, timeout_s=tracking["timeout_s"])
