"""The one module that touches Ultralytics' private names and relies on its internal behaviour.

    from xray_exp.yolo.ultralytics_compat import HookedDetectionTrainer, keep_save_dir_on_ddp_launch
    class MyTrainer(HookedDetectionTrainer):
        def setup_process_group(self): ...          # instead of overriding _setup_ddp
        def setup_training(self): ...               # instead of overriding _setup_train
        def close_dataloader_mosaic(self): ...      # instead of overriding _close_dataloader_mosaic

Checked against ultralytics 8.4.190 (pinned in pyproject.toml). tests/package/test_compat_ultralytics.py fails,
naming what changed, when an upgrade renames these methods, changes their signatures or the behaviour relied
on here; tests/package/test_compat_scan.py fails when a module outside the compat modules uses a private
name of Ultralytics (PRIVATE_NAMES).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from ultralytics.models.yolo.detect import DetectionTrainer

CHECKED_VERSION = "8.4.190"
# Ultralytics' private names used here, and only here (tests/package/test_compat_scan.py).
PRIVATE_NAMES = frozenset({"_setup_ddp", "_setup_train", "_close_dataloader_mosaic"})
# The modules those names live in: pytest fails on a DeprecationWarning raised there (pyproject.toml).
INTERNAL_MODULES = ("ultralytics.engine.trainer", "ultralytics.utils.dist")

_TorchDDP = torch.nn.parallel.DistributedDataParallel


class HookedDetectionTrainer(DetectionTrainer):
    """Ultralytics' DetectionTrainer with its private steps under public names that our trainers override.

    Checked against ultralytics 8.4.190. Relies on `BaseTrainer._do_train` calling `self._setup_ddp()` (when
    `world_size > 1`), `self._setup_train()` (always) and `self._close_dataloader_mosaic()` (at the epoch
    `close_mosaic` counts back from the end), each without arguments, through `self` (so overriding works).
    """

    def _setup_ddp(self) -> None:
        self.setup_process_group()

    def _setup_train(self) -> None:
        self.setup_training()

    def _close_dataloader_mosaic(self) -> None:
        self.close_dataloader_mosaic()

    def setup_process_group(self) -> None:
        """Ultralytics' `_setup_ddp` (8.4.190): pins the device of LOCAL_RANK and calls
        `dist.init_process_group`."""
        super()._setup_ddp()

    def setup_training(self) -> None:
        """Ultralytics' `_setup_train` (8.4.190): model, DDP wrap when world_size > 1
        (`nn.parallel.DistributedDataParallel(model, device_ids=[device.index], ...)`), loaders, optimizer."""
        super()._setup_train()

    def close_dataloader_mosaic(self) -> None:
        """Ultralytics' `_close_dataloader_mosaic` (8.4.190): turns mosaic off and rebuilds the training
        dataset's transforms (`dataset.close_mosaic(hyp)`)."""
        super()._close_dataloader_mosaic()


@contextmanager
def keep_save_dir_on_ddp_launch(trainer: Any) -> Iterator[None]:
    """While a DDP launch of a new training runs, keep `trainer.save_dir` (Ultralytics deletes it).

    Checked against ultralytics 8.4.190: `utils.dist.generate_ddp_command` runs `shutil.rmtree(trainer.save_dir)`
    when `not trainer.resume`, and `trainer.resume` is read nowhere else on that path (the DDP child trains from
    the pickled arguments, `args.resume` untouched). So `trainer.resume` is True for the duration, then restored.
    Does nothing unless `trainer.ddp` (a re-launch) and not already resuming.
    """
    if not trainer.ddp or trainer.resume:
        yield
        return
    trainer.resume = True
    try:
        yield
    finally:
        trainer.resume = False


class CpuDistributedDataParallel(_TorchDDP):
    """DistributedDataParallel for a CPU module: Ultralytics 8.4.190 wraps with `device_ids=[device.index]`,
    which is `[None]` on CPU, and torch rejects that; `[None]` becomes `None` (torch's CPU form)."""

    def __init__(self, module: torch.nn.Module, device_ids: Any = None, output_device: Any = None, **kwargs: Any):
        if device_ids is not None and all(d is None for d in device_ids):
            device_ids = None
        super().__init__(module, device_ids=device_ids, output_device=output_device, **kwargs)


@contextmanager
def cpu_ddp_wrap() -> Iterator[None]:
    """While it lasts, `torch.nn.parallel.DistributedDataParallel` is CpuDistributedDataParallel, process-wide.

    Checked against ultralytics 8.4.190: `BaseTrainer._setup_train` looks the class up as
    `nn.parallel.DistributedDataParallel` at call time (ultralytics.engine.trainer imports `torch.nn as nn`), so
    the swap reaches that one call. Process-wide: use it around `setup_training` only, with nothing else
    wrapping a model in another thread meanwhile.
    """
    torch.nn.parallel.DistributedDataParallel = CpuDistributedDataParallel  # type: ignore[misc,assignment]
    try:
        yield
    finally:
        torch.nn.parallel.DistributedDataParallel = _TorchDDP  # type: ignore[misc]
