"""A killed run resumes from its last checkpoint with the config it was started with."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import REPO, run_cli, run_dir_of
from mlflow.tracking import MlflowClient


@pytest.mark.integration
def test_killed_run_resumes_to_completion(tmp_path):
    env = {**os.environ, "XRAY_EXP_ROOT": str(tmp_path)}
    cmd = [sys.executable, "-m", "xray_exp.train", "debug=smoke", "train.epochs=4", "run_name=killme",
           "post.onnx=false", "post.samples=0"]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    run_dir = tmp_path / "outputs" / "runs" / "killme"
    last = run_dir / "weights" / "last.pt"
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None and not last.exists():
        time.sleep(0.1)
    assert last.exists(), "no checkpoint written"
    time.sleep(0.3)  # let the checkpoint write finish; the next epoch takes longer than this
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
