"""A killed run resumes from its last checkpoint with the config it was started with."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import REPO, run_cli, run_dir_of
from mlflow.tracking import MlflowClient
from polling import wait_until


def complete_checkpoint(path: Path) -> bool:
    """A checkpoint file written to its end: torch's zip format, central directory and CRCs intact (a file
    caught mid-write fails to open)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.testzip() is None
    except (OSError, zipfile.BadZipFile):
        return False


@pytest.mark.integration
def test_killed_run_resumes_to_completion(tmp_path):
    env = {**os.environ, "XRAY_EXP_ROOT": str(tmp_path)}
    cmd = [
        sys.executable,
        "-m",
        "xray_exp.train",
        "debug=smoke",
        "train.epochs=4",
        "run_name=killme",
        "post.onnx=false",
        "post.samples=0",
    ]
    proc = subprocess.Popen(
        cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    run_dir = tmp_path / "outputs" / "runs" / "killme"
    weights = run_dir / "weights"
    # Epoch 1 writes last.pt, then best.pt: kill once both are whole (the next epoch takes seconds).
    wait_until(
        lambda: all(complete_checkpoint(weights / name) for name in ("last.pt", "best.pt")),
        240,
        "the first epoch's checkpoints",
        alive=proc,
    )
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    epochs_before = len((run_dir / "results.csv").read_text().strip().splitlines()) - 1
    assert 1 <= epochs_before < 4 and not (run_dir / "summary.json").exists()

    # Overrides given now are ignored: the run continues with the config it was started with.
    resumed = run_cli(["xray_exp.train", f"resume={run_dir}", "train.epochs=99"], tmp_path, check=True)
    assert run_dir_of(resumed) == run_dir
    rows = (run_dir / "results.csv").read_text().strip().splitlines()[1:]
    assert [int(float(r.split(",")[0])) for r in rows] == [1, 2, 3, 4]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["epochs_run"] == 4 and (run_dir / ".hydra" / "config.yaml").is_file()
    assert (run_dir / ".hydra-resume" / "overrides.yaml").is_file()

    client = MlflowClient(f"sqlite:///{tmp_path / 'outputs' / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("YOLO12-Training").experiment_id])
    assert len(runs) == 1 and runs[0].info.run_id == summary["mlflow_run_id"]
    assert runs[0].info.status == "FINISHED"
    assert [m.step for m in client.get_metric_history(summary["mlflow_run_id"], "train/box_loss")] == [1, 2, 3, 4]


def test_resume_drops_results_rows_the_checkpoint_does_not_hold(tmp_path):
    """A kill between writing epoch 3's results row and its checkpoint: last.pt holds epoch 2 (index 1), so the
    resumed run trains epoch 3 again and the file must not keep the first, orphaned row."""
    import torch

    from xray_exp.yolo.fit import trim_results_to_checkpoint

    (tmp_path / "weights").mkdir()
    torch.save({"epoch": 1}, tmp_path / "weights" / "last.pt")
    header = "epoch,time,train/box_loss"
    (tmp_path / "results.csv").write_text(f"{header}\n1,2.0,3.1\n2,4.0,2.9\n3,6.0,2.7\n")
    assert trim_results_to_checkpoint(tmp_path) == 2
    assert (tmp_path / "results.csv").read_text() == f"{header}\n1,2.0,3.1\n2,4.0,2.9\n"
    assert trim_results_to_checkpoint(tmp_path) == 2  # nothing past the checkpoint: unchanged
    assert (tmp_path / "results.csv").read_text() == f"{header}\n1,2.0,3.1\n2,4.0,2.9\n"


def test_complete_checkpoint_tells_a_file_caught_mid_write(tmp_path):
    import torch

    whole = tmp_path / "last.pt"
    torch.save({"epoch": 1, "weights": torch.zeros(1000)}, whole)
    cut = tmp_path / "cut.pt"
    cut.write_bytes(whole.read_bytes()[:-100])  # what a reader sees while Ultralytics is still writing
    assert complete_checkpoint(whole) and not complete_checkpoint(cut) and not complete_checkpoint(tmp_path / "no.pt")
