"""Real training through the service (slow: minutes): the trigger endpoints run `python -m xray_exp.train`.

    .venv/bin/pytest tests/serve/test_serve_train_job.py -m slow

1. `debug=smoke tracking=disabled`: the job finishes, RUN_DIR and summary.json are picked up.
2. The whole loop on a throw-away sqlite registry: the service starts with no registered model, the
   first trigger trains from scratch and registers yolo12n@<base alias>, the service loads it and
   predicts; the next trigger fine-tunes from it.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

import xray_exp.train  # noqa: F401  (the entry point the service starts: an import error fails here)

try:
    from serve_fixtures import helpers as h
except ImportError:  # tests/ imported as a package
    from tests.serve_fixtures import helpers as h

pytestmark = pytest.mark.slow
AUTH = {"Authorization": f"Bearer {h.TOKEN}"}


def wait_job(client, job_id: str, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while (job := client.get(f"/jobs/{job_id}").json())["status"] in ("queued", "running"):
        assert time.monotonic() < deadline, f"job {job_id} still running after {timeout} s"
        time.sleep(1)
    return job


def job_log(service: h.ServiceProcess, job_id: str) -> str:
    path = service.workdir / "jobs" / f"{job_id}.log"
    return path.read_text(errors="replace")[-4000:] if path.exists() else ""


@pytest.fixture
def service(tmp_path):
    def start(**env):
        base = {
            "XRAY_SERVE_TOKEN": h.TOKEN,
            "XRAY_SERVE_DEVICE": "cpu",
            "XRAY_EXP_ROOT": str(tmp_path / "root"),
            "XRAY_EXP_MODEL_CACHE": str(tmp_path / "model-cache"),
        }
        started.append(h.ServiceProcess({**base, **env}, tmp_path).start())
        return started[-1]

    started: list[h.ServiceProcess] = []
    yield start
    for s in started:
        s.stop()


# debug=smoke never registers and clients may not set tracking.*: the same tiny run, spelled out.
REGISTERING_SMOKE = [
    "dataset.synthetic.num_train=8",
    "dataset.synthetic.num_val=4",
    "dataset.synthetic.num_test=4",
    "dataset.synthetic.image_size=128",
    "train.epochs=1",
    "train.imgsz=128",
    "train.plots=false",
    "hardware.batch=4",
    "hardware.workers=0",
    "post.samples=2",
    "post.n_boot=0",
]


def test_smoke_training_job_without_tracking(service):
    server = service()
    with httpx.Client(base_url=server.url, timeout=30) as client:
        response = client.post(
            "/trigger-training", json={"overrides": ["debug=smoke", "tracking=disabled"]}, headers=AUTH
        )
        assert response.status_code == 202, response.text
        job = wait_job(client, response.json()["id"], timeout=600)
        assert job["status"] == "succeeded", (job, job_log(server, job["id"]))
        assert job["mode"] == "train" and job["mlflow_run_id"] is None
        assert (Path(job["run_dir"]) / "summary.json").is_file() and job["metrics"]


def test_train_register_serve_then_finetune(service, tmp_path):
    from xray_exp.mlops.registry import BASE_ALIAS

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    server = service(XRAY_SERVE_MODEL=f"models:/yolo12n@{BASE_ALIAS}", XRAY_SERVE_TRACKING_URI=uri)
    with httpx.Client(base_url=server.url, timeout=60) as client:
        assert client.get("/health").json()["status"] == "no_model"
        first = client.post("/trigger-training", json={"overrides": REGISTERING_SMOKE}, headers=AUTH).json()
        assert first["mode"] == "train", first
        job = wait_job(client, first["id"], timeout=900)
        assert job["status"] == "succeeded" and job["mlflow_run_id"], (job, job_log(server, job["id"]))
        deadline = time.monotonic() + 60  # the service reloads the registered model after the job
        while not client.get("/health").json()["model_loaded"] and time.monotonic() < deadline:
            time.sleep(0.5)
        assert client.get("/health").json()["model"] == {"name": "yolo12n", "version": "1"}
        gray = h.sample_images(3)[0][1]
        response = client.post("/predict", files={"file": ("x.png", h.png_bytes(gray))})
        assert response.status_code == 200 and response.json()["model"]["source"] == "registry"

        second = client.post("/trigger-training", json={"overrides": REGISTERING_SMOKE}, headers=AUTH).json()
        assert second["mode"] == "finetune", second
        job = wait_job(client, second["id"], timeout=900)
        assert job["status"] == "succeeded", (job, job_log(server, job["id"]))
        names = {m["name"] for m in client.get("/models").json()["models"]}
        assert "yolo12n" in names and len(names) >= 2, names  # the fine-tune is registered too
