"""Service training jobs with the local runner: lifecycle, progress, queue (429), cancel, the override
allow-list, and job records that survive a restart. A real `python -m xray_exp.serve`; jobs run
tests/serve_fixtures/fake_train.py (same contract as xray_exp.train, knobs train.fake_*).

    .venv/bin/pytest tests/serve/test_serve_jobs.py
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

try:
    from polling import wait_until
    from serve_fixtures import helpers as h
except ImportError:  # tests/ imported as a package
    from tests.polling import wait_until
    from tests.serve_fixtures import helpers as h

AUTH = {"Authorization": f"Bearer {h.TOKEN}"}
ACTIVE = ("queued", "running")


def wait_job(client, job_id: str, timeout: float = 30.0, until=lambda job: job["status"] not in ACTIVE) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/jobs/{job_id}").json()
        if until(job):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} not there after {timeout} s: {job}")


def trigger(client, *overrides: str, path="/trigger-training", **body):
    return client.post(path, json={"overrides": list(overrides), **body}, headers=AUTH)


@pytest.fixture
def service(tmp_path):
    started: list[h.ServiceProcess] = []

    def start(**env):
        base = {
            "XRAY_SERVE_MODEL": str(h.demo_model()[1]),
            "XRAY_SERVE_DEVICE": "cpu",
            "XRAY_SERVE_TOKEN": h.TOKEN,
            "XRAY_SERVE_JOB_COMMAND": h.fake_job_command(),
            "XRAY_EXP_ROOT": str(tmp_path / "root"),
        }
        started.append(h.ServiceProcess({**base, **env}, tmp_path).start())
        return started[-1]

    yield start
    for s in started:
        s.stop()
    for s in started:
        assert "Traceback" not in s.log(), s.log()[-5000:]


@pytest.fixture
def client(service):
    with httpx.Client(base_url=service().url, timeout=60) as c:
        yield c


def test_job_lifecycle_progress_and_outcome(client, tmp_path):
    response = trigger(client, "train.fake_sleep=0.6", "train.epochs=3", "debug=smoke")
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["mode"] == "train" and "no tracking" in job["reason"] and job["runner"] == "local"
    assert response.headers["location"] == f"/jobs/{job['id']}"
    assert job["resources"] == {"num_cpus": 2.0, "num_gpus": 0.0}  # conf/hardware/cpu.yaml
    middle = wait_job(client, job["id"], until=lambda j: (j["progress"] or {}).get("epoch") == 1)
    assert middle["status"] == "running" and middle["progress"]["epochs"] == 3
    assert middle["progress"]["metrics"] == {"train/box_loss": 2.0, "metrics/mAP50(B)": 0.1}
    done = wait_job(client, job["id"])
    assert done["status"] == "succeeded", done
    assert done["progress"]["epoch"] == 3 and done["progress"]["metrics"]["metrics/mAP50(B)"] == 0.3
    assert done["mlflow_run_id"].startswith("fake-train-") and done["metrics"]["test/mAP50"] == 0.25
    assert done["registered_version"] == "7"
    assert Path(done["run_dir"]) == tmp_path / "root" / "outputs" / "runs" / f"yolo12n-job-{job['id']}"
    summary = json.loads((Path(done["run_dir"]) / "summary.json").read_text())
    assert summary["argv"] == [
        "mode=train",
        "model=yolo12n",
        "train.fake_sleep=0.6",
        "train.epochs=3",
        "debug=smoke",
        f"run_name=yolo12n-job-{job['id']}",
    ]
    assert summary["token_seen"] is False  # the token is not passed on to the job
    assert [j["id"] for j in client.get("/jobs").json()] == [job["id"]]


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["train.fake_fail=true"], "exit code 3"),
        (["train.fake_no_run_dir=true"], "RUN_DIR"),
    ],
)
def test_failed_jobs_report_why(client, overrides, message):
    response = trigger(client, *overrides)
    assert response.status_code == 202, response.text
    done = wait_job(client, response.json()["id"])
    assert done["status"] == "failed" and message in done["error"] and done["mlflow_run_id"] is None


def test_queue_429_and_cancel(service):
    server = service(XRAY_SERVE_JOB_QUEUE_DEPTH="2")
    with httpx.Client(base_url=server.url, timeout=60) as client:
        first = trigger(client, "train.fake_sleep=1", "train.epochs=30").json()
        wait_job(client, first["id"], until=lambda j: j["status"] == "running")
        second = trigger(client, "train.fake_sleep=0", path="/trigger-finetune", model="yolo12s").json()
        third = trigger(client, "train.fake_sleep=0").json()
        assert second["status"] == "queued" and third["status"] == "queued"
        assert client.get("/health").json()["jobs_queued"] == 2
        full = trigger(client, "train.fake_sleep=0")
        assert full.status_code == 429, full.text
        assert full.json()["detail"]["queue_length"] == 2 and full.json()["detail"]["running_job_id"] == first["id"]

        assert client.delete(f"/jobs/{third['id']}").status_code == 401  # the token is needed
        cancelled = client.delete(f"/jobs/{third['id']}", headers=AUTH).json()
        assert cancelled["status"] == "cancelled" and "before it started" in cancelled["error"]
        assert client.delete("/jobs/nope", headers=AUTH).status_code == 404
        stopping = client.delete(f"/jobs/{first['id']}", headers=AUTH)
        assert stopping.status_code == 200
        stopped = wait_job(client, first["id"])
        # stopped before its 30 epochs (on a busy host, possibly before it wrote its first one)
        assert stopped["status"] == "cancelled" and (stopped["progress"] or {}).get("epoch", 0) < 30, stopped
        done = wait_job(client, second["id"])  # the queue moves on after the cancel
        assert done["status"] == "succeeded" and done["mode"] == "finetune", done
        assert client.get(f"/jobs/{third['id']}").json()["status"] == "cancelled"


def test_restart_keeps_the_job_list(service):
    first = service()
    with httpx.Client(base_url=first.url, timeout=60) as client:
        finished = trigger(client, "train.fake_sleep=0").json()
        assert wait_job(client, finished["id"])["status"] == "succeeded"
        running = trigger(client, "train.fake_sleep=1", "train.epochs=60").json()
        wait_job(client, running["id"], until=lambda j: j["status"] == "running")
        queued = trigger(client, "train.fake_sleep=0").json()
        assert queued["status"] == "queued"
    first.stop()
    second = service()
    with httpx.Client(base_url=second.url, timeout=60) as client:
        jobs = {j["id"]: j for j in client.get("/jobs").json()}
        assert list(jobs) == [queued["id"], running["id"], finished["id"]]  # newest first
        assert jobs[finished["id"]]["status"] == "succeeded" and jobs[finished["id"]]["metrics"]
        assert jobs[running["id"]]["status"] == "interrupted"
        assert "restarted" in jobs[running["id"]]["error"] or "shut down" in jobs[running["id"]]["error"]
        assert wait_job(client, queued["id"])["status"] == "succeeded"  # the queue survives too


@pytest.mark.parametrize(
    "override, key",
    [
        ("paths.output_dir=/etc", "paths.output_dir"),
        ("paths.root=/tmp", "paths.root"),
        ("tracking.tracking_uri=http://evil.example:5000", "tracking.tracking_uri"),
        ("tracking.register=never", "tracking.register"),
        ("tracking=server", "tracking"),
        ("model.weights=/etc/passwd", "model.weights"),
        ("model.arch=x.yaml", "model.arch"),
        ("hydra.run.dir=/tmp/x", "hydra.run.dir"),
        ("hydra.launcher=ray", "hydra.launcher"),
        ("dataset.data_yaml=/etc/data.yaml", "dataset.data_yaml"),
        ("train.extra.project=/etc", "train.extra.project"),
        ("run_name=../../etc", "run_name"),
        ("resume=/etc", "resume"),
        ("mode=finetune", "mode"),
        ("model=yolo12x", "model"),
        ("sweep=yolo12_hparams", "sweep"),
        ("experiment=../../secret", "experiment"),
    ],
)
def test_refused_override_names_the_key(client, override, key):
    response = trigger(client, override)
    assert response.status_code == 422, response.text
    assert f"sets {key!r}" in response.text or f"{key} takes a config name" in response.text, response.text


def test_allowed_overrides_reach_the_job():
    from xray_exp.serve.overrides import validate_overrides

    allowed = [
        "dataset=nih_cxr14",
        "augmentation=none",
        "hardware=gpu",
        "experiment=yolo12s_xray_long",
        "debug=smoke",
        "tracking=disabled",
        "train.lr0=0.02",
        "augmentation.mosaic=0.5",
        "hardware.batch=4",
        "dataset.synthetic.num_train=8",
        "post.onnx=false",
        "objective.metric=val/map40",
    ]
    assert validate_overrides(allowed) == allowed


def test_job_timeout_and_shutdown_stop_the_process(tmp_path):
    import shlex

    from xray_exp.serve.jobs import JobManager, QueueFull

    command = shlex.split(h.fake_job_command())
    manager = JobManager(command, tmp_path / "a", timeout_s=1.0, max_queue=0, output_root=tmp_path)
    assert not (tmp_path / "a").exists()  # nothing written before the first job
    job = manager.submit("train", "yolo12n", ["train.fake_sleep=30"])
    with pytest.raises(QueueFull):
        manager.submit("train", "yolo12n", [])
    done = manager.wait(job.id, timeout=20)
    assert done.status == "failed" and "timed out" in done.error and manager.running() is None
    assert (tmp_path / "a" / "jobs.sqlite").is_file()

    manager = JobManager(command, tmp_path / "b", timeout_s=100, output_root=tmp_path)
    job = manager.submit("finetune", "yolo12n", ["train.fake_sleep=30"])
    log = Path(job.log_path)
    wait_until(lambda: log.is_file() and "fake training:" in log.read_text(), 30, "the job's first line")  # started
    manager.shutdown()
    done = manager.wait(job.id, timeout=20)
    assert done.status == "interrupted" and "shut down" in done.error
    assert "fake training: mode=finetune model=yolo12n train.fake_sleep=30" in Path(done.log_path).read_text()


def test_ray_address_settings():
    from xray_exp.serve.settings import ServeSettings

    assert ServeSettings.from_env({}).ray_address is None
    assert ServeSettings.from_env({"RAY_ADDRESS": "http://10.0.0.1:8265"}).ray_address == "http://10.0.0.1:8265"
    assert ServeSettings.from_env({"RAY_ADDRESS": "10.0.0.1:6379"}).ray_address is None  # a driver's GCS address
    explicit = {"XRAY_SERVE_RAY_ADDRESS": "https://ray.example:8265", "RAY_ADDRESS": "http://other:8265"}
    assert ServeSettings.from_env(explicit).ray_address == "https://ray.example:8265"
    assert ServeSettings.from_env(explicit).public()["job_runner"] == "ray"
    with pytest.raises(ValueError, match="XRAY_SERVE_RAY_ADDRESS must be the Ray cluster's job API"):
        ServeSettings.from_env({"XRAY_SERVE_RAY_ADDRESS": "10.0.0.1:6379"})
    with pytest.raises(ValueError, match="XRAY_SERVE_JOB_QUEUE_DEPTH"):
        ServeSettings.from_env({"XRAY_SERVE_JOB_QUEUE_DEPTH": "-1"})
