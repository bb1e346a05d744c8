"""Ray Train and Ray Tune end to end on CPU: a 2-CPU Ray head started by scripts/ray_start_head.sh
(token auth), runs through `python -m xray_exp.ray_main` with RAY_ADDRESS, tiny synthetic data."""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from conftest import REPO, free_port, run_cli, run_dir_of

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.serial]

SMOKE = ["debug=smoke", "post.samples=1", "post.eval_splits=[test]", "post.n_boot=0", "tracking.register=if_better"]


@pytest.fixture(scope="module")
def ray_head():
    """A 2-CPU Ray head on free ports in its own temp dir; stopped by ending the `--block` process we started."""
    import psutil

    temp_dir = tempfile.mkdtemp(prefix="xr-ray-", dir="/tmp")  # short: Ray's socket paths have a length limit
    port = free_port()
    # no 30 s node drain on SIGTERM at teardown
    env = {**os.environ, "RAY_AUTH_TOKEN": secrets.token_hex(16), "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0"}
    ports = {
        flag: free_port()
        for flag in (
            "--dashboard-port",
            "--dashboard-agent-listen-port",
            "--dashboard-agent-grpc-port",
            "--metrics-export-port",
            "--runtime-env-agent-port",
            "--ray-client-server-port",
        )
    }
    log = open(Path(temp_dir) / "head.log", "w")
    proc = subprocess.Popen(
        [
            "bash",
            "scripts/ray_start_head.sh",
            "--block",
            f"--port={port}",
            "--num-cpus=2",
            "--num-gpus=0",
            f"--temp-dir={temp_dir}",
            *[f"{k}={v}" for k, v in ports.items()],
        ],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.time() + 120
    while "Ray runtime started" not in (Path(temp_dir) / "head.log").read_text():
        if proc.poll() is not None or time.time() > deadline:
            raise RuntimeError(f"Ray head did not start:\n{(Path(temp_dir) / 'head.log').read_text()[-3000:]}")
        time.sleep(0.5)
    yield {
        "address": f"127.0.0.1:{port}",
        "env": {"RAY_AUTH_TOKEN": env["RAY_AUTH_TOKEN"], "RAY_ADDRESS": f"127.0.0.1:{port}"},
        "proc": proc,
        "log": Path(temp_dir) / "head.log",
    }
    children = psutil.Process(proc.pid).children(recursive=True)
    proc.send_signal(signal.SIGTERM)  # `ray start --block` stops the processes it started
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
    for child in children:  # anything it left behind, by pid
        if child.is_running():
            child.kill()
    shutil.rmtree(temp_dir, ignore_errors=True)


def train_workers(head) -> list:
    import psutil

    return [
        p
        for p in psutil.Process(head["proc"].pid).children(recursive=True)
        if p.is_running() and "RayTrainWorker" in " ".join(p.cmdline()[:1])
    ]


def committed_checkpoint(snapshot: Path) -> bool:
    try:
        return bool(json.loads(snapshot.read_text()).get("latest_checkpoint_result"))
    except (OSError, ValueError):
        return False


def mlflow_client(root: Path):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=f"sqlite:///{root}/outputs/mlflow.db")


def test_two_cpu_workers_match_the_single_process_run(tmp_path, ray_head):
    """Ray Train, 2 CPU workers (gloo), 1 epoch: same run folder shape, metrics keys and registry entry as
    `python -m xray_exp.train`, and weights that load and predict."""
    single = run_dir_of(run_cli(["xray_exp.train", *SMOKE], tmp_path, check=True))
    proc = run_cli(
        ["xray_exp.ray_main", "mode=train", *SMOKE, "ray.train.num_workers=2"],
        tmp_path,
        env=ray_head["env"],
        check=True,
    )
    run_dir = run_dir_of(proc)
    output = proc.stdout + proc.stderr
    assert f"Ray: connected to the cluster at {ray_head['address']} (from RAY_ADDRESS)" in output
    assert "rank 0/2 on cpu (gloo process group)" in output  # Ultralytics' DDP in Ray's process group

    one, two = (json.loads((d / "summary.json").read_text()) for d in (single, run_dir))
    assert set(two["metrics"]) == set(one["metrics"]) and two["epochs_run"] == 1
    assert two["ray"]["num_workers"] == 2 and two["ray"]["backend"] == "gloo" and not two["ray"]["use_gpu"]
    assert two["onnx_parity"]["passed"] and two["registration"]["registered"]
    for name in ("weights/best.pt", "weights/best.onnx", "results.csv", "config.resolved.yaml", "dataset.json"):
        assert (run_dir / name).is_file(), name

    client = mlflow_client(tmp_path)
    runs = {
        r.info.run_id: r for r in client.search_runs([client.get_experiment_by_name("YOLO12-Training").experiment_id])
    }
    assert len(runs) == 2  # one MLflow run per training, Ray or not
    ray_run, single_run = runs[two["mlflow_run_id"]], runs[one["mlflow_run_id"]]
    assert ray_run.info.status == "FINISHED" and ray_run.data.tags["mode"] == "ray-train"
    assert set(ray_run.data.metrics) == set(single_run.data.metrics)
    per_epoch = client.get_metric_history(ray_run.info.run_id, "train/box_loss")
    assert [m.step for m in per_epoch] == [1]  # logged once per epoch, by rank 0 only
    assert client.get_model_version_by_alias("yolo12n", "development").run_id == ray_run.info.run_id

    from ultralytics import YOLO

    image = sorted(
        (Path(json.loads((run_dir / "dataset.json").read_text())["data_yaml"]).parent / "images" / "val").iterdir()
    )[0]
    result = YOLO(str(run_dir / "weights" / "best.pt")).predict(str(image), imgsz=128, conf=0.0, verbose=False)[0]
    assert result.boxes is not None and result.orig_shape == (128, 128)


def test_killed_worker_resumes_from_checkpoint(tmp_path, ray_head):
    """`mode=retrain` from a weights file; SIGKILL a training worker once epoch 1's checkpoint is committed:
    Ray restarts the group (FailureConfig(max_failures=1)) and Ultralytics resumes from that checkpoint."""
    from ultralytics import YOLO

    weights = tmp_path / "start.pt"
    YOLO("yolo12n.yaml").save(str(weights))  # untrained weights, as a user's .pt would be
    args = [
        sys.executable,
        "-m",
        "xray_exp.ray_main",
        "mode=retrain",
        f"model_path={weights}",
        "debug=smoke",
        "train.epochs=3",
        "tracking=disabled",
        "post.onnx=false",
        "post.samples=0",
        "post.eval_splits=[]",
        "objective.metric=ultralytics/val/mAP50-95",
        "ray.train.max_failures=1",
        "run_name=killed",
    ]
    out = open(tmp_path / "driver.log", "w")
    driver = subprocess.Popen(
        args,
        cwd=REPO,
        stdout=out,
        stderr=subprocess.STDOUT,
        env={**os.environ, "XRAY_EXP_ROOT": str(tmp_path), **ray_head["env"]},
    )
    snapshot = tmp_path / "outputs" / "ray_results" / "killed" / "checkpoint_manager_snapshot.json"
    deadline, victim = time.time() + 400, None
    while victim is None:
        assert driver.poll() is None and time.time() < deadline, (tmp_path / "driver.log").read_text()[-4000:]
        if committed_checkpoint(snapshot):  # Ray has registered epoch 1's checkpoint: kill during epoch 2
            workers = train_workers(ray_head)
            if workers:
                victim = workers[-1]
                victim.kill()
        time.sleep(0.2)
    assert driver.wait(timeout=400) == 0, (tmp_path / "driver.log").read_text()[-6000:]
    log = (tmp_path / "driver.log").read_text()
    summary = json.loads((tmp_path / "outputs" / "runs" / "killed" / "summary.json").read_text())
    assert summary["epochs_run"] == 3
    assert summary["ray"]["resumed_from_epoch"] >= 1, log[-4000:]
    assert f"retrain: a new training from the weights in {weights}" in log
    assert re.search(r"rank 0: starting from checkpoint \S+/killed-start \(weights", log)  # first attempt
    assert re.search(r"rank 0: starting from checkpoint \S+/killed/checkpoint_\S+ \(epoch, [12]/3", log)  # retry
    assert "Resuming training" in log
    rows = (tmp_path / "outputs" / "runs" / "killed" / "results.csv").read_text().splitlines()[1:]
    assert [int(row.split(",")[0]) for row in rows] == [1, 2, 3]  # the lost attempt's rows are gone


def test_tune_asha_best_config_registry_and_resume(tmp_path, ray_head):
    """4 Optuna trials with ASHA on tiny data: Ctrl-C after the first checkpoint, resume, finish with
    early-stopped trials, MLflow parent/child runs, a registered best model and a usable experiment config."""
    common = [
        "mode=tune",
        *SMOKE,
        "train.epochs=3",
        "tune.num_samples=4",
        "tune.max_concurrent=1",
        "tune.cpus_per_trial=1",
        "tune.metric=ultralytics/val/box_loss",
        "tune.direction=minimize",
        "tune.grace_period=1",
        "tune.name=t1",
    ]
    out = open(tmp_path / "first.log", "w")
    first = subprocess.Popen(
        [sys.executable, "-m", "xray_exp.ray_main", *common],
        cwd=REPO,
        stdout=out,
        stderr=subprocess.STDOUT,
        env={**os.environ, "XRAY_EXP_ROOT": str(tmp_path), **ray_head["env"]},
    )
    experiment = tmp_path / "outputs" / "ray_results" / "t1"
    deadline = time.time() + 300
    while not any(p.stat().st_size for p in experiment.glob("trial_*/result.json")):  # an epoch's result and
        # checkpoint have reached the Tune driver (a checkpoint still being written would not be restored)
        assert first.poll() is None and time.time() < deadline, (tmp_path / "first.log").read_text()[-4000:]
        time.sleep(0.2)
    first.send_signal(signal.SIGINT)
    assert first.wait(timeout=120) == 130, (tmp_path / "first.log").read_text()[-4000:]
    tune_dir = tmp_path / "outputs" / "tune" / "t1"
    assert f"Resume with: python -m xray_exp.ray_main resume={tune_dir}" in (tmp_path / "first.log").read_text()

    proc = run_cli(["xray_exp.ray_main", f"resume={tune_dir}"], tmp_path, env=ray_head["env"], check=True)
    output = proc.stdout + proc.stderr
    assert "Ray Tune: resuming the experiment at" in output
    assert "Resuming training" in output  # the interrupted trial continued from its checkpoint
    summary = json.loads((tune_dir / "summary.json").read_text())
    assert summary["trials"] == 4 and summary["errors"] == 0
    assert summary["stopped_early"] >= 1, (tune_dir / "trials.csv").read_text()
    best = summary["best"]
    assert set(best["params"]) == {
        "train.lr0",
        "train.lrf",
        "train.momentum",
        "train.weight_decay",
        "train.warmup_epochs",
        "augmentation.degrees",
        "augmentation.translate",
        "augmentation.scale",
        "augmentation.mosaic",
    }
    assert best["epochs"] == 3 and summary["onnx"] and summary["registration"]["registered"]

    client = mlflow_client(tmp_path)
    runs = client.search_runs([client.get_experiment_by_name("YOLO12-Tuning").experiment_id])
    parent = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == summary["mlflow_run_id"]]
    assert [r.info.run_id for r in parent] == [summary["mlflow_run_id"]] and len(children) == 4
    assert sum(r.data.tags.get("tune.stopped_early") == "true" for r in children) == summary["stopped_early"]
    assert all(r.info.status in ("FINISHED", "KILLED") for r in children)
    assert client.get_model_version_by_alias("yolo12n", "development").run_id == summary["mlflow_run_id"]

    command = summary["train_command"].split()
    assert command[:3] == ["python", "-m", "xray_exp.train"]
    assert command[-1] == f"experiment={Path(summary['experiment_config']).stem}"
    composed = run_cli([*command[2:], "--cfg", "job"], tmp_path, check=True).stdout
    from omegaconf import OmegaConf

    job = OmegaConf.create(composed)
    for key, value in best["params"].items():
        assert OmegaConf.select(job, key) == pytest.approx(value), key
