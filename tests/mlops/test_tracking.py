"""MLflow tracking and registry against a real `mlflow server` on loopback (and sqlite stores)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, MlflowServer, free_port, run_cli, run_dir_of
from mlflow.tracking import MlflowClient

from xray_exp.mlops.run_tags import flatten
from xray_exp.mlops.tracker import RETRY_FIRST_S, RETRY_MAX_S, Tracker

SMOKE = ["xray_exp.train", "debug=smoke", "tracking=server", "tracking.register=if_better"]  # smoke alone: never


def test_flatten_makes_string_params():
    assert flatten({"a": {"b": 1, "c": [1, 2]}, "d": None}) == {"a.b": "1", "a.c": "[1, 2]", "d": "None"}


def test_journal_then_upload_when_tracking_was_unreachable(tmp_path):
    dead = f"http://127.0.0.1:{free_port()}"
    tracker = Tracker(tmp_path / "run", dead, enabled=True, timeout_s=2)
    tracker.start("exp", "run-a", {"t": "1"})
    tracker.log_params({"p": "1"})
    tracker.log_metrics({"m": 0.5}, step=1)
    tracker.log_metrics({"m": 0.7}, step=2)
    tracker.end()
    assert tracker.problem and tracker.run_id is None and len(tracker.events()) == 5
    uri = f"sqlite:///{tmp_path / 'store.db'}"
    proc = subprocess.run(  # the former command name (xray_exp.tracking upload) still works
        [sys.executable, "-m", "xray_exp.tracking", "upload", str(tmp_path / "run"), "--tracking-uri", uri],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr
    state = json.loads((tmp_path / "run" / "tracking" / "state.json").read_text())
    run = MlflowClient(uri).get_run(state["run_id"])
    assert run.data.params == {"p": "1"} and run.data.tags["t"] == "1" and run.info.status == "FINISHED"
    history = MlflowClient(uri).get_metric_history(state["run_id"], "m")
    assert [(m.step, m.value) for m in history] == [(1, 0.5), (2, 0.7)]


@pytest.mark.integration
def test_training_run_logged_once_and_registered(tmp_path, mlflow_server):
    proc = run_cli([*SMOKE, "train.epochs=2", f"tracking.tracking_uri={mlflow_server.uri}"], tmp_path, check=True)
    run_dir = run_dir_of(proc)
    summary = json.loads((run_dir / "summary.json").read_text())
    client = MlflowClient(mlflow_server.uri)
    exp = client.get_experiment_by_name("YOLO12-Training")
    runs = client.search_runs([exp.experiment_id], filter_string=f"attributes.run_name = '{run_dir.name}'")
    assert len(runs) == 1, "exactly one MLflow run per training"
    run = runs[0]
    assert run.info.run_id == summary["mlflow_run_id"] and run.info.status == "FINISHED"
    params = run.data.params
    assert params["model.name"] == "yolo12n" and params["train.epochs"] == "2" and params["train.imgsz"] == "128"
    assert params["augmentation.name"] == "xray" and params["hardware.batch"] == "4"
    tags = run.data.tags
    assert len(tags["git.commit"]) in (7, 40) or tags["git.commit"] == "unknown"
    assert "train.epochs=2" in tags["hydra.overrides"] and tags["version.ultralytics"] == "8.4.190"
    assert tags["host"] and len(tags["dataset.fingerprint"]) == 64
    for name in ("train/box_loss", "ultralytics/val/mAP75", "lr/pg0"):  # per epoch
        assert [m.step for m in client.get_metric_history(run.info.run_id, name)] == [1, 2], name
    for name in ("ultralytics/val/mAP50", "ultralytics/val/mAP50-95"):  # per epoch + best.pt at step 3
        assert [m.step for m in client.get_metric_history(run.info.run_id, name)] == [1, 2, 3], name
    for name in ("val/mAP50", "val/mAP50-95"):  # xray_exp's evaluator on best.pt, after training
        assert [m.step for m in client.get_metric_history(run.info.run_id, name)] == [3], name
    for name in ("test/mAP50", "test/mAP50-95", "onnx/max_abs_diff_box_px"):
        assert name in run.data.metrics
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"weights", "config", "dataset", "samples", "ultralytics"} <= artifacts
    weights = {a.path for a in client.list_artifacts(run.info.run_id, "weights")}
    assert {"weights/best.pt", "weights/best.onnx"} <= weights
    configs = {a.path for a in client.list_artifacts(run.info.run_id, "config/hydra")}
    assert "config/hydra/config.yaml" in configs and "config/hydra/overrides.yaml" in configs
    dataset = {a.path for a in client.list_artifacts(run.info.run_id, "dataset")}
    assert {"dataset/data.yaml", "dataset/dataset.json"} <= dataset

    version = client.get_model_version_by_alias("yolo12n", "development")
    assert version.run_id == run.info.run_id and version.tags["source_run_id"] == run.info.run_id
    assert summary["registration"]["registered"] and summary["registration"]["version"] == version.version

    from xray_exp.mlops.registry import get_latest_model

    folder, got = get_latest_model("yolo12n", alias="development", tracking_uri=mlflow_server.uri, dst=tmp_path / "dl")
    assert got == version.version and (folder / "model.onnx").is_file() and (folder / "best.pt").is_file()
    latest, latest_version = get_latest_model("yolo12n", tracking_uri=mlflow_server.uri, dst=tmp_path / "dl2")
    assert int(latest_version) >= int(version.version)

    import mlflow

    mlflow.set_tracking_uri(mlflow_server.uri)
    pyfunc = mlflow.pyfunc.load_model("models:/yolo12n@development")
    meta = pyfunc.metadata.metadata
    assert meta["names"] == {"0": "nodule", "1": "effusion", "2": "cardiomegaly", "3": "pneumothorax"}
    image = json.loads((run_dir / "dataset.json").read_text())["data_yaml"]
    val_image = sorted((Path(image).parent / "images" / "val").iterdir())[0]
    out = pyfunc.predict([str(val_image)], params={"conf": 0.001})
    assert list(out.columns) == ["findings", "width", "height"] and out["width"][0] == 128
    assert all({"label", "confidence", "box"} <= set(f) for f in out["findings"][0])

    # The training data as an MLflow dataset input: name, fingerprint, split sizes.
    inputs = client.get_run(run.info.run_id).inputs.dataset_inputs
    assert len(inputs) == 1 and inputs[0].dataset.name == "synthetic"
    assert inputs[0].dataset.digest == tags["dataset.fingerprint"][:32]
    assert json.loads(inputs[0].dataset.profile)["splits"] == {"train": 8, "val": 4, "test": 4}

    # Fine-tune from the registry: its own experiment, `-finetuned@staging`, lineage to the parent.
    proc = run_cli([*SMOKE, "mode=finetune", f"tracking.tracking_uri={mlflow_server.uri}"], tmp_path, check=True)
    ft = json.loads((run_dir_of(proc) / "summary.json").read_text())
    ft_version = client.get_model_version_by_alias("yolo12n-finetuned", "staging")
    assert ft_version.run_id == ft["mlflow_run_id"]
    assert ft_version.tags["parent_model"] == "yolo12n" and ft_version.tags["parent_version"] == version.version
    ft_run = client.get_run(ft["mlflow_run_id"])
    assert client.get_experiment(ft_run.info.experiment_id).name == "YOLO12-Finetuning"
    assert ft_run.data.tags["parent_model"] == "yolo12n"

    # Promotion gate: a holder this run cannot reach keeps the alias; the new version is registered and says why.
    client.set_model_version_tag("yolo12n", version.version, "objective_value", "2.0")  # mAP <= 1: unbeatable
    proc = run_cli(
        [*SMOKE, "tracking.register=if_better", f"tracking.tracking_uri={mlflow_server.uri}"], tmp_path, check=True
    )
    gated = json.loads((run_dir_of(proc) / "summary.json").read_text())
    assert gated["registration"]["registered"] and not gated["registration"]["promoted"]
    assert client.get_model_version_by_alias("yolo12n", "development").version == version.version
    skipped = client.get_model_version("yolo12n", gated["registration"]["version"]).tags["promotion.skipped"]
    assert f"is worse than yolo12n@development v{version.version} (2.00000, maximize)" in skipped
    assert client.get_run(gated["mlflow_run_id"]).data.tags["registry.compared_to"].startswith("yolo12n@development")

    # debug=smoke alone never registers.
    before = len(client.search_model_versions("name='yolo12n'"))
    proc = run_cli(
        ["xray_exp.train", "debug=smoke", "tracking=server", f"tracking.tracking_uri={mlflow_server.uri}"],
        tmp_path,
        check=True,
    )
    plain = json.loads((run_dir_of(proc) / "summary.json").read_text())
    assert not plain["registration"]["registered"] and len(client.search_model_versions("name='yolo12n'")) == before


@pytest.mark.integration
def test_server_killed_mid_run_then_upload(tmp_path):
    server = MlflowServer(tmp_path / "server").start()
    try:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                *SMOKE,
                "train.epochs=3",
                "post.onnx=true",
                f"tracking.tracking_uri={server.uri}",
                "tracking.timeout_s=3",
            ],
            cwd=REPO,
            env={**__import__("os").environ, "XRAY_EXP_ROOT": str(tmp_path)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        client = MlflowClient(server.uri)
        deadline = time.time() + 180
        run_id = None
        while time.time() < deadline and proc.poll() is None:
            try:
                exps = [e for e in client.search_experiments() if e.name == "YOLO12-Training"]
                runs = client.search_runs([exps[0].experiment_id]) if exps else []
                if runs and client.get_metric_history(runs[0].info.run_id, "ultralytics/val/mAP50"):
                    run_id = runs[0].info.run_id
                    break
            except Exception:  # the server may be busy with the run's first writes
                pass
            time.sleep(0.3)
        assert run_id, "training never logged its first epoch"
        server.kill()  # the tracking server goes away mid-run
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-3000:]
        logs = out + err  # Hydra's job logging writes to stdout
        assert "MLflow logging paused" in logs and "python -m xray_exp.upload" in logs
        run_dir = run_dir_of(subprocess.CompletedProcess([], 0, out, err))
        assert (run_dir / "weights" / "best.onnx").is_file() and (run_dir / "summary.json").is_file()
        summary = json.loads((run_dir / "summary.json").read_text())
        assert summary["registration"] is None and summary["mlflow_unsent_events"] > 0
    finally:
        server.kill()
    server = MlflowServer(tmp_path / "server", port=server.port).start()  # back, same store
    try:
        up = subprocess.run(
            [sys.executable, "-m", "xray_exp.upload", str(run_dir)],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert up.returncode == 0, up.stdout + up.stderr
        client = MlflowClient(server.uri)
        run = client.get_run(run_id)
        assert run.info.status == "FINISHED"
        assert [m.step for m in client.get_metric_history(run_id, "ultralytics/val/mAP50")] == [1, 2, 3, 4]
        assert "test/mAP50-95" in run.data.metrics
        assert {"weights/best.pt", "weights/best.onnx"} <= {a.path for a in client.list_artifacts(run_id, "weights")}
        version = client.get_model_version_by_alias("yolo12n", "development")
        assert version.run_id == run_id
        summary = json.loads((run_dir / "summary.json").read_text())  # the upload brought it up to date
        assert summary["mlflow_run_id"] == run_id and summary["mlflow_unsent_events"] == 0
        assert summary["registration"]["registered"] and summary["registration"]["version"] == version.version
    finally:
        server.kill()


def test_local_store_keeps_artifacts_next_to_the_database(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    (tmp_path / "store").mkdir()
    tracker = Tracker(tmp_path / "run", uri, enabled=True)
    tracker.start("exp", "run-a", {})
    (tmp_path / "a.txt").write_text("x")
    tracker.log_artifact(tmp_path / "a.txt", "files")
    tracker.end()
    assert not (tmp_path / "mlruns").exists()
    assert list((tmp_path / "store" / "mlartifacts").rglob("a.txt"))


class FakeClock:
    """The tracker's monotonic clock, moved by the test: the backoff without waiting for it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def test_paused_tracker_retries_with_backoff(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="xray_exp.mlops.tracker")
    clock = FakeClock()
    tracker = Tracker(tmp_path / "run", f"http://127.0.0.1:{free_port()}", enabled=True, timeout_s=2, clock=clock)
    tracker.start("exp", "run-a", {})
    assert not tracker.live and "paused" in caplog.text and f"retries in {RETRY_FIRST_S:.0f} s" in caplog.text
    tries = lambda: caplog.text.count("still unreachable")  # noqa: E731
    clock.advance(RETRY_FIRST_S - 0.01)
    tracker.log_metrics({"m": 0.1}, step=1)  # no try is due yet: journaled only
    assert tries() == 0
    clock.advance(0.01)
    tracker.log_metrics({"m": 0.2}, step=2)  # due: one try, then the wait doubles
    assert tries() == 1 and f"next try in {2 * RETRY_FIRST_S:.0f} s" in caplog.text
    waits, wait = [], 2 * RETRY_FIRST_S
    for step in range(3, 9):  # each wait doubles, up to RETRY_MAX_S
        clock.advance(wait - 0.01)
        tracker.log_metrics({"m": 0.1 * step}, step=step)
        assert tries() == len(waits) + 1  # not due yet
        clock.advance(0.01)
        tracker.log_metrics({"m": 0.1 * step}, step=step)
        assert tries() == len(waits) + 2
        last = [r.getMessage() for r in caplog.records if "next try in" in r.getMessage()][-1]
        wait = float(last.rsplit("next try in ", 1)[1].removesuffix(" s"))
        waits.append(wait)
    assert waits == [8, 16, 32, 60, 60, 60] and RETRY_MAX_S == 60
    tracker.end()  # the end of the run always tries once more, whatever the backoff says
    assert tries() == 8 and "upload it with" in caplog.text
    assert tracker.pending == 16 and tracker.outcome()["mlflow_unsent_events"] == 16


@pytest.mark.integration
def test_tracker_replays_the_journal_when_the_server_returns(tmp_path):
    server = MlflowServer(tmp_path / "server").start()
    try:
        clock = FakeClock()  # a killed server refuses at once; the timeout only bounds a slow answer on a busy machine
        tracker = Tracker(tmp_path / "run", server.uri, enabled=True, timeout_s=15, clock=clock)
        tracker.start("exp", "run-a", {"t": "1"})
        tracker.log_metrics({"m": 1.0}, step=1)
        run_id = tracker.run_id
        assert tracker.live and run_id
        server.kill()
        tracker.log_metrics({"m": 2.0}, step=2)
        assert not tracker.live and tracker.pending == 1
        server = MlflowServer(tmp_path / "server", port=server.port).start()  # back, same store
        tracker.log_metrics({"m": 3.0}, step=3)  # no try is due yet, server or not: journaled only
        assert not tracker.live and tracker.pending == 2
        clock.advance(RETRY_FIRST_S)
        tracker.log_metrics({"m": 4.0}, step=4)  # due: the journal is replayed, this event with it
        assert tracker.live and tracker.pending == 0, tracker.problem
        client = MlflowClient(server.uri)
        history = client.get_metric_history(run_id, "m")  # all there before the run ends
        assert sorted(m.step for m in history) == [1, 2, 3, 4]
        assert client.get_run(run_id).info.status == "RUNNING"
        tracker.end()
        assert client.get_run(run_id).info.status == "FINISHED"
    finally:
        server.kill()


def wait_for(path, timeout: float, proc: subprocess.Popen) -> None:
    deadline = time.time() + timeout
    while not path.exists():
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"training exited {proc.returncode} before {path.name}:\n{out[-3000:]}\n{err[-3000:]}")
        assert time.time() < deadline, f"{path.name} not reached in {timeout} s"
        time.sleep(0.2)


@pytest.mark.slow
@pytest.mark.integration
def test_training_recovers_from_an_outage_without_upload(tmp_path):
    """Server down from epoch 1, back at epoch 3 of 6: the run completes on the server by itself."""
    gate = tmp_path / "gate"
    gate.mkdir()
    server = MlflowServer(tmp_path / "server").start()
    env = {
        **os.environ,
        "XRAY_EXP_ROOT": str(tmp_path),
        "PYTHONPATH": str(REPO),
        "PYTHONUNBUFFERED": "1",
        "XRAY_GATE_DIR": str(gate),
        "XRAY_GATE_EPOCHS": "1,3",
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            str(REPO / "tests" / "gated_train.py"),
            *SMOKE[1:],
            "train.epochs=6",
            "post.onnx=true",
            f"tracking.tracking_uri={server.uri}",
            "tracking.timeout_s=3",
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(gate / "epoch-1.ready", 300, proc)
        client = MlflowClient(server.uri)
        experiment = client.get_experiment_by_name("YOLO12-Training")
        (run,) = client.search_runs([experiment.experiment_id])  # created while the server was up
        server.kill()
        (gate / "epoch-1.go").touch()
        wait_for(gate / "epoch-3.ready", 300, proc)
        server = MlflowServer(tmp_path / "server", port=server.port).start()  # back, same store
        (gate / "epoch-3.go").touch()
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
        logs = out + err
        assert "MLflow logging paused" in logs and "answers again" in logs
        run_id = run.info.run_id
        assert [r.info.run_id for r in client.search_runs([experiment.experiment_id])] == [run_id]
        finished = client.get_run(run_id)
        assert finished.info.status == "FINISHED"
        for name in ("train/box_loss", "lr/pg0"):
            assert [m.step for m in client.get_metric_history(run_id, name)] == [1, 2, 3, 4, 5, 6], name
        assert [m.step for m in client.get_metric_history(run_id, "ultralytics/val/mAP50")] == [1, 2, 3, 4, 5, 6, 7]
        assert "test/mAP50-95" in finished.data.metrics
        assert {"weights/best.pt", "weights/best.onnx"} <= {a.path for a in client.list_artifacts(run_id, "weights")}
        version = client.get_model_version_by_alias("yolo12n", "development")
        assert version.run_id == run_id
        summary = json.loads((run_dir_of(subprocess.CompletedProcess([], 0, out, err)) / "summary.json").read_text())
        assert summary["mlflow_run_id"] == run_id and summary["mlflow_unsent_events"] == 0
        assert summary["registration"]["registered"] and summary["registration"]["version"] == version.version
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        server.kill()
