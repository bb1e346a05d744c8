"""What xray_exp/yolo/ultralytics_compat.py relies on in Ultralytics is still there: a changed internal fails
here, by name, instead of in a multi-GPU or Ray training.

    PYTHONPATH=$PWD .venv/bin/python -m pytest tests/package/test_compat_ultralytics.py -q
"""

from __future__ import annotations

import inspect
from types import SimpleNamespace

import pytest

try:
    from compat_modules import private
except ImportError:  # tests/ imported as a package
    from tests.package.compat_modules import private

COMPAT = "yolo/ultralytics_compat.py"


@pytest.fixture(scope="module")
def base_trainer():
    from ultralytics.engine.trainer import BaseTrainer

    return BaseTrainer


@pytest.mark.parametrize("name", ["_setup_ddp", "_setup_train", "_close_dataloader_mosaic"])
def test_private_trainer_steps_exist_and_are_called_through_self(base_trainer, name):
    private(base_trainer, name, "(self)", COMPAT)
    # the training loop calls each through `self`, without arguments: our overrides of them are reached
    assert f"self.{name}()" in inspect.getsource(base_trainer._do_train), (
        f"BaseTrainer._do_train no longer calls self.{name}(): HookedDetectionTrainer's hook is never reached"
    )


def test_public_hook_names_are_free_in_ultralytics():
    """Our public names for the private steps must not shadow something of Ultralytics' own."""
    from ultralytics.models.yolo.detect import DetectionTrainer

    from xray_exp.yolo.ultralytics_compat import HookedDetectionTrainer

    hooks = {"setup_process_group", "setup_training", "close_dataloader_mosaic"}
    assert hooks <= set(vars(HookedDetectionTrainer))
    assert not [h for h in hooks if hasattr(DetectionTrainer, h)], "Ultralytics now defines one of our hook names"


def test_hooks_reach_the_private_steps(monkeypatch):
    """Ultralytics calls `_setup_train` -> our `setup_training` -> back to Ultralytics' `_setup_train`."""
    from ultralytics.engine.trainer import BaseTrainer

    from xray_exp.yolo.ultralytics_compat import HookedDetectionTrainer

    calls = []
    monkeypatch.setattr(BaseTrainer, "_setup_train", lambda self: calls.append("ultralytics"))

    class Recording(HookedDetectionTrainer):
        def setup_training(self):
            calls.append("ours")
            super().setup_training()

    Recording._setup_train(object.__new__(Recording))
    assert calls == ["ours", "ultralytics"]


def test_ddp_launch_deletes_save_dir_unless_resume(tmp_path):
    """keep_save_dir_on_ddp_launch: Ultralytics' DDP command deletes save_dir of a new training (and only
    `resume` stops it); under the context manager it is kept, and `resume` is back to False after."""
    from ultralytics.utils import dist

    from xray_exp.yolo.ultralytics_compat import keep_save_dir_on_ddp_launch

    generate_ddp_command = private(dist, "generate_ddp_command", "(trainer)", COMPAT)

    def launched(keep: bool) -> bool:
        save_dir = tmp_path / f"run-{keep}"
        (save_dir / ".hydra").mkdir(parents=True)
        trainer = SimpleNamespace(args=SimpleNamespace(), model=None, callbacks={}, save_dir=save_dir)
        trainer.resume, trainer.ddp, trainer.world_size = False, True, 2
        if keep:
            with keep_save_dir_on_ddp_launch(trainer):
                assert trainer.resume is True
                _, file = generate_ddp_command(trainer)
            assert trainer.resume is False
        else:
            _, file = generate_ddp_command(trainer)
        dist.ddp_cleanup(trainer, file)
        return (save_dir / ".hydra").is_dir()

    assert launched(keep=False) is False, "Ultralytics no longer deletes save_dir: the trick is not needed"
    assert launched(keep=True) is True, "Ultralytics deletes save_dir although trainer.resume is True"


def test_ddp_wrap_is_looked_up_at_call_time():
    """cpu_ddp_wrap swaps torch.nn.parallel.DistributedDataParallel: Ultralytics' _setup_train must look the
    class up there when it wraps (and pass device_ids=[device.index], [None] on CPU)."""
    import torch
    from ultralytics.engine import trainer as engine

    from xray_exp.yolo.ultralytics_compat import CpuDistributedDataParallel, cpu_ddp_wrap

    source = inspect.getsource(engine.BaseTrainer._setup_train)
    assert engine.nn is torch.nn and "nn.parallel.DistributedDataParallel(" in source, (
        "Ultralytics' _setup_train no longer wraps through nn.parallel.DistributedDataParallel: cpu_ddp_wrap misses it"
    )
    assert "device_ids=[self.device.index]" in source, (
        "Ultralytics changed the device_ids of its DDP wrap: is CpuDistributedDataParallel still needed?"
    )
    original = torch.nn.parallel.DistributedDataParallel
    with cpu_ddp_wrap():
        assert engine.nn.parallel.DistributedDataParallel is CpuDistributedDataParallel
    assert torch.nn.parallel.DistributedDataParallel is original
