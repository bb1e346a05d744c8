"""Service training jobs as Ray Jobs on a real local Ray head (scripts/ray_start_head.sh, token auth):
queue and 429, a service restart that re-attaches to the running Ray job, cancel through DELETE /jobs/{id}.
Jobs run tests/serve_fixtures/fake_train.py through Ray's Job Submission API.

    .venv/bin/pytest tests/serve/test_serve_ray_jobs.py
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest

try:
    from serve_fixtures import helpers as h
except ImportError:  # tests/ imported as a package
    from tests.serve_fixtures import helpers as h

pytestmark = [pytest.mark.slow, pytest.mark.serial]
AUTH = {"Authorization": f"Bearer {h.TOKEN}"}


@pytest.fixture(scope="module")
def ray_head():
    """A 2-CPU Ray head with its job API on free loopback ports; stopped by ending our `--block` process."""
    import psutil

    temp_dir = tempfile.mkdtemp(prefix="xr-rayjobs-", dir="/tmp")
    token = secrets.token_hex(16)
    env = {
        **os.environ,
        "RAY_AUTH_TOKEN": token,
        "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0",
        "RAY": str(Path(sys.executable).with_name("ray")),
    }
    ports = {
        flag: h.free_port()
        for flag in (
            "--port",
            "--dashboard-port",
            "--dashboard-agent-listen-port",
            "--dashboard-agent-grpc-port",
            "--metrics-export-port",
            "--runtime-env-agent-port",
            "--ray-client-server-port",
        )
    }
    log = Path(temp_dir) / "head.log"
    proc = subprocess.Popen(
        [
            "bash",
            "scripts/ray_start_head.sh",
            "--block",
            "--num-cpus=2",
            "--num-gpus=0",
            "--object-store-memory=100000000",
            f"--temp-dir={temp_dir}",
            *[f"{k}={v}" for k, v in ports.items()],
        ],
        cwd=h.REPO,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    address = f"http://127.0.0.1:{ports['--dashboard-port']}"
    deadline = time.time() + 120
    while True:
        assert proc.poll() is None and time.time() < deadline, log.read_text()[-3000:]
        try:
            if httpx.get(f"{address}/api/version", headers={"Authorization": f"Bearer {token}"}).status_code == 200:
                break
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    yield {"address": address, "token": token}
    children = psutil.Process(proc.pid).children(recursive=True)
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
    for child in children:
        if child.is_running():
            child.kill()
    shutil.rmtree(temp_dir, ignore_errors=True)


def wait_job(client, job_id: str, until, timeout: float = 120.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/jobs/{job_id}").json()
        if until(job):
            return job
        time.sleep(0.25)
    raise AssertionError(f"job {job_id} not there after {timeout} s: {job}")


def ray_status(ray_head, ray_job_id: str) -> str:
    from ray.job_submission import JobSubmissionClient

    client = JobSubmissionClient(ray_head["address"], headers={"Authorization": f"Bearer {ray_head['token']}"})
    return str(client.get_job_status(ray_job_id).value)


def test_queue_restart_reattach_and_cancel_on_ray(ray_head, tmp_path):
    env = {
        "XRAY_SERVE_MODEL": str(h.demo_model()[1]),
        "XRAY_SERVE_DEVICE": "cpu",
        "XRAY_SERVE_TOKEN": h.TOKEN,
        "XRAY_SERVE_JOB_COMMAND": h.fake_job_command(),
        "XRAY_EXP_ROOT": str(tmp_path / "root"),
        "XRAY_SERVE_RAY_ADDRESS": ray_head["address"],
        "RAY_AUTH_TOKEN": ray_head["token"],
        "XRAY_SERVE_JOB_QUEUE_DEPTH": "1",
    }
    first = h.ServiceProcess(env, tmp_path).start()
    try:
        with httpx.Client(base_url=first.url, timeout=60) as client:
            long = client.post(
                "/trigger-training", headers=AUTH, json={"overrides": ["train.fake_sleep=1", "train.epochs=120"]}
            ).json()
            assert long["runner"] == "ray" and long["resources"] == {"num_cpus": 2.0, "num_gpus": 0.0}
            running = wait_job(client, long["id"], lambda j: (j["progress"] or {}).get("epoch", 0) >= 1)
            assert running["status"] == "running" and running["ray_job_id"] == f"xray-{long['id']}"
            assert ray_status(ray_head, running["ray_job_id"]) == "RUNNING"
            queued = client.post("/trigger-training", headers=AUTH, json={"overrides": ["train.epochs=2"]}).json()
            assert queued["status"] == "queued"
            full = client.post("/trigger-training", headers=AUTH, json={})
            assert full.status_code == 429 and full.json()["detail"]["queue_length"] == 1, full.text
    finally:
        first.stop()  # the Ray job goes on without the service

    second = h.ServiceProcess(env, tmp_path).start()
    try:
        with httpx.Client(base_url=second.url, timeout=60) as client:
            jobs = {j["id"]: j for j in client.get("/jobs").json()}
            assert [jobs[long["id"]]["status"], jobs[queued["id"]]["status"]] == ["running", "queued"]
            before = jobs[long["id"]]["progress"]["epoch"]
            later = wait_job(client, long["id"], lambda j: j["progress"]["epoch"] > before)  # re-attached
            assert later["status"] == "running" and later["progress"]["epochs"] == 120

            assert client.delete(f"/jobs/{long['id']}").status_code == 401
            assert client.delete(f"/jobs/{long['id']}", headers=AUTH).status_code == 200
            stopped = wait_job(client, long["id"], lambda j: j["status"] not in ("queued", "running"))
            assert stopped["status"] == "cancelled" and stopped["progress"]["epoch"] < 120, stopped
            assert ray_status(ray_head, stopped["ray_job_id"]) == "STOPPED"

            done = wait_job(client, queued["id"], lambda j: j["status"] not in ("queued", "running"))
            assert done["status"] == "succeeded", (done, Path(second.workdir / "jobs" / f"{done['id']}.log"))
            assert done["registered_version"] == "7" and done["progress"] == {
                "epoch": 2,
                "epochs": 2,
                "metrics": {"train/box_loss": 1.0, "metrics/mAP50(B)": 0.2},
            }
            assert ray_status(ray_head, done["ray_job_id"]) == "SUCCEEDED"
            assert "fake epoch 2/2" in (tmp_path / "jobs" / f"{done['id']}.log").read_text()
    finally:
        second.stop()
    assert "Traceback" not in first.log() + second.log(), (first.log() + second.log())[-5000:]
