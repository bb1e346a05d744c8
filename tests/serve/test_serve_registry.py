"""The service and the MLflow Model Registry: serving models:/<name>@<alias>, /models, and the
scratch-vs-fine-tune decision of /trigger-training.

    .venv/bin/pytest tests/serve/test_serve_registry.py

Uses a throw-away sqlite MLflow store; the demo model is logged and registered with xray_exp's own
pyfunc_model.log_onnx_model and registry.register_model, then fetched back by registry.get_latest_model.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

try:
    from serve_fixtures import helpers as h
except ImportError:  # tests/ imported as a package
    from tests.serve_fixtures import helpers as h

from xray_exp.mlops import registry
from xray_exp.serve.app import create_app
from xray_exp.serve.settings import ServeSettings

AUTH = {"Authorization": f"Bearer {h.TOKEN}"}


@pytest.fixture(scope="module")
def store(tmp_path_factory, monkeypatch_module):
    """A sqlite tracking store holding yolo12n v1 @development (the demo model) and yolo12s without alias."""
    import mlflow
    from mlflow import MlflowClient

    from xray_exp.mlops.pyfunc_model import log_onnx_model

    root = tmp_path_factory.mktemp("registry")
    monkeypatch_module.setenv("XRAY_EXP_MODEL_CACHE", str(root / "model-cache"))
    monkeypatch_module.setenv("XRAY_EXP_ROOT", str(root / "root"))  # where the jobs' run folders go
    uri = f"sqlite:///{root / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    experiment = client.create_experiment("serve-tests", artifact_location=(root / "artifacts").as_uri())
    pt, onnx = h.demo_model()
    from xray_exp.serve.demo_model import NIH_CLASSES

    run = client.create_run(experiment)
    model_uri = log_onnx_model(
        uri, run.info.run_id, {"imgsz": h.IMGSZ, "names": list(NIH_CLASSES), "onnx": str(onnx), "pt": str(pt)}
    )
    event = {
        "name": "yolo12n",
        "alias": registry.BASE_ALIAS,
        "policy": "always",
        "value": 0.5,
        "objective": "test/mAP50-95",
        "direction": "maximize",
        "tags": {},
    }
    registry.register_model(client, model_uri, run.info.run_id, event)
    client.set_terminated(run.info.run_id)
    client.create_registered_model("yolo12s")
    client.create_model_version("yolo12s", source=model_uri, run_id=run.info.run_id)
    return uri


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


def make_client(tmp_path, **overrides) -> TestClient:
    settings = ServeSettings(
        token=h.TOKEN,
        job_command=h.fake_job_command().split(" "),
        job_dir=str(tmp_path / "jobs"),
        device="cpu",
        **overrides,
    )
    return TestClient(create_app(settings))


def wait_job(client, job_id, timeout=30.0):
    deadline = time.monotonic() + timeout
    while (job := client.get(f"/jobs/{job_id}").json())["status"] in (
        "queued",
        "running",
    ) and time.monotonic() < deadline:
        time.sleep(0.1)
    return job


def test_serves_the_registered_model(store, tmp_path):
    with make_client(tmp_path, model=f"models:/yolo12n@{registry.BASE_ALIAS}", tracking_uri=store) as client:
        health = client.get("/health").json()
        assert health["model_loaded"] and health["model"] == {"name": "yolo12n", "version": "1"}
        config = client.get("/config").json()
        assert config["model"]["source"] == "registry" and config["model"]["alias"] == registry.BASE_ALIAS
        gray = h.sample_images(3)[0][1]
        body = client.post("/predict", files={"file": ("x.png", h.png_bytes(gray))}, params={"conf": 0.05}).json()
        assert body["model"] == {
            "name": "yolo12n",
            "version": "1",
            "source": "registry",
            "alias": registry.BASE_ALIAS,
        }


def test_missing_registered_model_starts_without_model(store, tmp_path):
    with make_client(tmp_path, model="models:/nosuchmodel@production", tracking_uri=store) as client:
        health = client.get("/health").json()
        assert health["status"] == "no_model" and "nosuchmodel" in health["detail"]
        response = client.post("/predict", files={"file": ("x.png", h.png_bytes(h.sample_images(3)[0][1]))})
        assert response.status_code == 503 and "no model loaded" in response.json()["detail"]


def test_models_lists_registered_versions(store, tmp_path):
    with make_client(tmp_path, tracking_uri=store) as client:
        rows = client.get("/models").json()["models"]
        assert [(r["name"], r["version"]) for r in rows] == [("yolo12n", "1"), ("yolo12s", "1")]
        assert rows[0]["aliases"] == [registry.BASE_ALIAS] and rows[1]["aliases"] == []
        assert [r["name"] for r in client.get("/models", params={"name": "yolo12s"}).json()["models"]] == ["yolo12s"]
        assert client.get("/models", params={"name": "x' OR '1'='1"}).status_code == 422


@pytest.mark.parametrize(
    "model, mode, reason",
    [
        ("yolo12n", "finetune", "exists"),  # registered with the base alias
        ("yolo12s", "train", "none holds"),  # versions, but no base alias to fine-tune from
        ("yolo12m", "train", "no registered model"),
    ],
)
def test_trigger_training_decides_scratch_or_finetune(store, tmp_path, model, mode, reason):
    with make_client(tmp_path, tracking_uri=store) as client:
        response = client.post(
            "/trigger-training", json={"model": model, "overrides": ["train.fake_sleep=0"]}, headers=AUTH
        )
        assert response.status_code == 202, response.text
        job = wait_job(client, response.json()["id"])
        assert job["mode"] == mode and reason in job["reason"] and job["status"] == "succeeded", job
        argv = json.loads((Path(job["run_dir"]) / "summary.json").read_text())["argv"]
        # the job is pointed at the registry the service reads
        assert argv == [
            f"mode={mode}",
            f"model={model}",
            "train.fake_sleep=0",
            "tracking.tracking_uri=${oc.env:MLFLOW_TRACKING_URI}",
            f"run_name={model}-job-{job['id']}",
        ]


def test_unreachable_tracking_server_is_503_not_500(tmp_path):
    uri = f"http://user:secret@127.0.0.1:{h.free_port()}/?token=abc"
    with make_client(tmp_path, tracking_uri=uri) as client:
        config = client.get("/config")
        assert "secret" not in config.text and "abc" not in config.text
        assert config.json()["tracking_uri"].startswith("http://127.0.0.1:")
        assert client.get("/models").status_code == 503
        assert client.post("/trigger-training", json={}, headers=AUTH).status_code == 503


def test_triggers_off_without_a_token(tmp_path):
    settings = ServeSettings(job_dir=str(tmp_path / "jobs"))
    with TestClient(create_app(settings)) as client:
        for path in ("/trigger-training", "/trigger-finetune"):
            response = client.post(path, json={}, headers=AUTH)
            assert response.status_code == 403 and "disabled" in response.json()["detail"]
        assert client.get("/config").json()["triggers_enabled"] is False


def test_model_reloads_after_a_successful_job(store, tmp_path, monkeypatch):
    """Serving models:/...: a finished job may have registered a new version; the service reloads it."""
    calls = []
    real = registry.get_latest_model

    def counting(name, alias=None, tracking_uri=None):
        calls.append((name, alias, tracking_uri))
        return real(name, alias=alias, tracking_uri=tracking_uri)

    monkeypatch.setattr(registry, "get_latest_model", counting)
    with make_client(tmp_path, model="models:/yolo12n", model_alias=registry.BASE_ALIAS, tracking_uri=store) as client:
        assert calls == [("yolo12n", registry.BASE_ALIAS, store)]
        job_id = client.post("/trigger-finetune", json={"overrides": ["train.fake_sleep=0"]}, headers=AUTH).json()["id"]
        assert wait_job(client, job_id)["status"] == "succeeded"
        deadline = time.monotonic() + 30
        while len(calls) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(calls) == 2 and client.get("/health").json()["model_loaded"]
