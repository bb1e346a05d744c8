"""Ultralytics' DetectionTrainer inside a process group that Ray Train already made (one per worker).

    # in a Ray Train worker, after RANK/LOCAL_RANK/WORLD_SIZE are in the environment:
    from xray_exp.yolo.ray_trainer import RayDetectionTrainer
    YOLO("yolo12n.yaml").train(trainer=RayDetectionTrainer, data=..., device="cpu", batch=8, ...)

Ultralytics 8.4.190's own DDP assumes it launched the ranks itself (engine/trainer.py):
- `__init__` sets `world_size` from the device string (0 on CPU, 1 for one GPU) and would re-launch itself
  through `torch.distributed.run` for several GPUs; here the ranks exist already, so `world_size` comes
  from the process group and `ddp` (re-launch) stays False.
- `_setup_ddp` calls `dist.init_process_group`; here it adopts Ray's group (gloo on CPU, nccl on GPUs) and
  only pins the device (`setup_process_group`: xray_exp.yolo.ultralytics_compat names the private steps).
- `_setup_train` (`setup_training`) wraps the model with `DistributedDataParallel(device_ids=[device.index])`:
  on CPU the index is None and torch rejects `device_ids=[None]`, so on CPU the wrap gets `device_ids=None` (the CPU
  form). Everything else is Ultralytics' DDP path unchanged: per-rank batch = batch // world_size, a
  distributed sampler per rank, gradients all-reduced by DDP, EMA buffers broadcast before validation,
  validation statistics gathered on rank 0, checkpoints written by rank 0 only, `stop` broadcast.
- `final_eval` validates best.pt with a standalone validator whose device Ultralytics picks as
  `cuda:<current>` on every DDP rank (fails on CPU) and which reads best.pt from each rank's disk (missing
  on other nodes). Here rank 0 broadcasts best.pt's weights and all ranks validate them together through
  the trainer's distributed validation, then `on_fit_epoch_end` fires once more on rank 0 as upstream.
  `trainer.in_final_eval` is True during that call so per-epoch reporters can skip it.

RANK/LOCAL_RANK/WORLD_SIZE are read by `ultralytics.utils` at import: a mismatch with the process group
raises here instead of training with the wrong rank.
"""

from __future__ import annotations

import torch.distributed as dist
from ultralytics.nn.tasks import load_checkpoint
from ultralytics.utils import DEFAULT_CFG, LOGGER, RANK, WORLD_SIZE
from ultralytics.utils.torch_utils import get_torch_device_backend, strip_optimizer

from xray_exp.yolo.trainer import XrayDetectionTrainer
from xray_exp.yolo.ultralytics_compat import cpu_ddp_wrap


def adopted_world_size() -> int:
    """World size of the process group this process belongs to (1 when there is none)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


class RayDetectionTrainer(XrayDetectionTrainer):
    """A DetectionTrainer (with xray_exp's one-channel loader) that joins the existing process group."""

    def __init__(self, cfg=DEFAULT_CFG, overrides=None, _callbacks=None):
        super().__init__(cfg, overrides, _callbacks)
        self.adopted = adopted_world_size() > 1
        if not self.adopted:
            return
        if RANK != dist.get_rank() or WORLD_SIZE != dist.get_world_size():
            raise RuntimeError(
                f"ultralytics was imported with RANK={RANK}, WORLD_SIZE={WORLD_SIZE} but this process is rank "
                f"{dist.get_rank()} of {dist.get_world_size()}: set RANK/LOCAL_RANK/WORLD_SIZE before importing "
                "ultralytics (xray_exp.distributed.train_worker does)"
            )
        self.world_size = dist.get_world_size()
        self.ddp = False  # never re-launch through torch.distributed.run: Ray started the ranks

    def setup_process_group(self):
        """Adopt Ray's process group; pin this rank's device (chosen by Ray, passed as `device`)."""
        if not self.adopted:
            return super().setup_process_group()
        if self.device.type == "cuda":
            self.accelerator = get_torch_device_backend(self.device)
            self.accelerator.set_device(self.device.index or 0)
        LOGGER.info(
            f"Ray Train: rank {dist.get_rank()}/{self.world_size} on {self.device} ({dist.get_backend()} process group)"
        )

    def setup_training(self):
        if not (self.adopted and self.device.type == "cpu"):
            return super().setup_training()
        with cpu_ddp_wrap():
            return super().setup_training()

    def final_eval(self):
        if not self.adopted:
            return super().final_eval()
        self.in_final_eval = True
        try:
            return self._distributed_final_eval()
        finally:
            self.in_final_eval = False

    def _distributed_final_eval(self):
        if RANK == 0:
            ckpt = strip_optimizer(self.last) if self.last.exists() else {}
            if self.best.exists():
                strip_optimizer(self.best, updates={"train_results": ckpt.get("train_results")})
        payload = [None]
        if RANK == 0 and self.best.exists():
            model, _ = load_checkpoint(self.best)
            payload = [{k: v.detach().cpu() for k, v in model.state_dict().items()}]
        dist.broadcast_object_list(payload, src=0)
        if payload[0] is None:
            return
        LOGGER.info(f"\nValidating {self.best} on {self.world_size} ranks...")
        self.ema.ema.load_state_dict(payload[0])
        self.validator.args.plots = self.args.plots
        metrics, _ = self.validate()
        if RANK == 0:
            metrics.pop("fitness", None)
            self.metrics = metrics
            self.epoch += 1  # log best metrics at step epochs+1, as upstream
            self.run_callbacks("on_fit_epoch_end")
            self.epoch -= 1
