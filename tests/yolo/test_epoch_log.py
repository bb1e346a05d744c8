"""Per-epoch metrics reach MLflow on every training path, including Ultralytics' multi-GPU re-launch.

With `device=0,1` Ultralytics does not train in the calling process: it pickles the trainer's class,
arguments and callbacks, writes a script and starts it under `torch.distributed.run`
(ultralytics/utils/dist.py). The test drives that very path on CPU: the trainer is marked for DDP as a
two-GPU device string would mark it, and the launch command is run as a plain process (the script's
rank-less run, what each DDP child executes). The epochs must arrive in the run's MLflow run, logged by
that other process, and the run folder (config, logs, journal) must survive the launch.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration


def train_args(data_yaml, run_dir) -> dict:
    return {
        "model": "yolo12n.yaml",
        "data": str(data_yaml),
        "epochs": 2,
        "imgsz": 64,
        "batch": 4,
        "workers": 0,
        "device": "cpu",
        "project": str(run_dir.parent),
        "name": run_dir.name,
        "exist_ok": True,
        "plots": False,
        "val": True,
        "seed": 0,
        "amp": False,
    }


def metric_steps(uri: str, run_id: str, key: str) -> list[int]:
    from mlflow.tracking import MlflowClient

    return sorted(m.step for m in MlflowClient(tracking_uri=uri).get_metric_history(run_id, key))


def test_epochs_logged_by_the_ddp_child_process(tmp_path, synthetic_tiny, monkeypatch):
    import ultralytics.engine.trainer as engine

    from xray_exp.mlops.tracker import Tracker
    from xray_exp.runs.lifecycle import ended, epoch_log_of
    from xray_exp.yolo.epochs import epoch_log
    from xray_exp.yolo.trainer import XrayDetectionTrainer

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run_dir = tmp_path / "runs" / "ddp-run"
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "config.yaml").write_text("model: yolo12n\n")
    tracker = Tracker(run_dir, uri, timeout_s=30)
    tracker.start("ddp", run_dir.name, {})

    launched, real_run = [], subprocess.run

    def run_as_ddp_child(cmd, check=False, **kwargs):  # [python, -m, torch.distributed.run, ..., script]
        launched.append(cmd)
        return real_run([sys.executable, cmd[-1]], check=check, **kwargs)

    monkeypatch.setattr(engine.subprocess, "run", run_as_ddp_child)
    trainer = XrayDetectionTrainer(overrides=train_args(synthetic_tiny, run_dir))
    trainer.model = trainer.get_model(cfg="yolo12n.yaml")  # what YOLO(...).train() does before train()
    trainer.ddp = True  # what device=0,1 sets: train() launches the script instead of training here
    sent_here, send = [], tracker._apply
    monkeypatch.setattr(tracker, "_apply", lambda event: (sent_here.append(event["op"]), send(event))[1])
    with ended(tracker), epoch_log(epoch_log_of(tracker)):  # as every engine runs a training
        trainer.train()

    assert launched and "torch.distributed.run" in launched[0]
    assert getattr(trainer, "epoch", None) is None  # nothing trained in this process
    assert (run_dir / ".hydra" / "config.yaml").is_file(), "the DDP launch deleted the run folder"
    assert (run_dir / "weights" / "last.pt").is_file() and (run_dir / "results.csv").is_file()
    assert sent_here == ["end"], sent_here  # the child sent the epochs; this process did not send them again
    assert tracker.pending == 0
    for key in ("train/box_loss", "ultralytics/val/mAP50", "lr/pg0"):
        assert metric_steps(uri, tracker.run_id, key) == [1, 2], key


def test_trainer_installs_the_epoch_log_once(tmp_path, synthetic_tiny):
    """The child rebuilds the trainer with the parent's callbacks: the log is installed once, not twice."""
    from xray_exp.yolo.epochs import log_epoch
    from xray_exp.yolo.trainer import XrayDetectionTrainer

    first = XrayDetectionTrainer(overrides=train_args(synthetic_tiny, tmp_path / "a"))
    again = XrayDetectionTrainer(overrides=train_args(synthetic_tiny, tmp_path / "b"), _callbacks=first.callbacks)
    assert first.callbacks["on_fit_epoch_end"].count(log_epoch) == 1
    assert again.callbacks["on_fit_epoch_end"].count(log_epoch) == 1
