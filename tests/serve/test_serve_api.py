"""The service end to end: a real `python -m xray_exp.serve` on a free loopback port, real radiographs.

    .venv/bin/pytest tests/serve/test_serve_api.py

Training jobs (lifecycle, queue, cancel, restart, override allow-list) are in tests/serve/test_serve_jobs.py.
"""

from __future__ import annotations

import base64
import subprocess
import sys

import cv2
import httpx
import numpy as np
import pytest

try:
    from serve_fixtures import helpers as h
except ImportError:  # tests/ imported as a package
    from tests.serve_fixtures import helpers as h

from xray_exp.data.synthetic_dicom import chest_xray_bytes
from xray_exp.inference.onnx_detector import OnnxDetector

AUTH = {"Authorization": f"Bearer {h.TOKEN}"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    yield from h.demo_service(tmp_path_factory.mktemp("serve-api"))


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server.url, timeout=60) as c:
        yield c


@pytest.fixture(scope="module")
def detector():
    return OnnxDetector(h.demo_model()[1], device="cpu")


def upload(client, data: bytes, path="/predict", name="image.png", **params):
    return client.post(path, files={"file": (name, data, "application/octet-stream")}, params=params)


def test_health_and_config(client):
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["model_loaded"] and health["model"]["version"].startswith("sha256:")
    response = client.get("/config")
    config = response.json()
    assert h.TOKEN not in response.text
    assert config["triggers_enabled"] is True and config["thresholds"] == {
        "conf": 0.25,
        "iou": 0.7,
        "max_det": 300,
    }
    assert config["model"]["classes"][0] == "Atelectasis" and config["model"]["imgsz"] == [h.IMGSZ, h.IMGSZ]
    assert config["store_uploads"] is False and config["cors_origins"] == []


def expected_summary(findings: list[dict]) -> str:
    """The summary line written out independently of the service: count, then up to five 'label conf'."""
    if not findings:
        return "No findings"
    shown = ", ".join(f"{f['label']} {f['confidence']:.2f}" for f in findings[:5])
    extra = f" (+{len(findings) - 5} more)" if len(findings) > 5 else ""
    return f"{len(findings)} finding{'s' if len(findings) > 1 else ''}: {shown}{extra}"


def test_predict_real_radiographs(client, detector):
    """Each sample image: the served findings are the detector's on the same pixels, in original pixels."""
    boxes_seen = 0
    for name, gray in h.sample_images(6):
        response = upload(client, h.png_bytes(gray), conf=0.05)
        assert response.status_code == 200, response.text
        body = response.json()
        expected, _ = detector.predict(gray, conf=0.05)
        assert [f["label"] for f in body["findings"]] == [d.label for d in expected], name
        assert np.allclose([f["box"] for f in body["findings"]], [d.box for d in expected], atol=0.01), name
        H, W = gray.shape
        for f in body["findings"]:
            x1, y1, x2, y2 = f["box"]
            assert 0 <= x1 <= x2 <= W and 0 <= y1 <= y2 <= H and 0.05 < f["confidence"] <= 1
        boxes_seen += len(body["findings"])
        assert body["summary"] == expected_summary(body["findings"]), name
        assert set(body["timings_ms"]) >= {"decode", "preprocess", "inference", "postprocess", "total"}
        assert body["model"]["version"].startswith("sha256:") and body["model"]["source"] == "file"
    assert boxes_seen > 0


def test_no_findings(client):
    gray = h.sample_images(3)[0][1]
    body = upload(client, h.png_bytes(gray), conf=1.0).json()
    assert body["findings"] == [] and body["summary"] == "No findings"
    response = upload(client, h.png_bytes(gray), path="/predict/annotated", conf=1.0)
    assert response.headers["x-summary"] == "No findings" and response.headers["x-findings-count"] == "0"


def _coloured(png: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    return np.abs(image.astype(int) - image.mean(axis=2, keepdims=True)).max(axis=2) > 30


def test_annotated_png(client, detector):
    name, gray = next((n, g) for n, g in h.sample_images(6) if 0 < len(detector.predict(g, conf=0.05)[0]) < 50)
    response = upload(client, h.png_bytes(gray), path="/predict/annotated", conf=0.05)
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    assert int(response.headers["x-findings-count"]) > 0
    coloured = _coloured(response.content)
    assert coloured.shape == gray.shape and coloured.any()  # boxes drawn in colour on the grey film
    body = upload(client, h.png_bytes(gray), include_image="true", conf=0.05).json()
    png = base64.b64decode(body["annotated_image"].split(",", 1)[1])
    assert np.array_equal(_coloured(png), coloured)
    # no findings: only the "No findings" banner in the top-left corner is coloured
    banner = _coloured(upload(client, h.png_bytes(gray), path="/predict/annotated", conf=1.0).content)
    ys, xs = np.nonzero(banner)
    assert len(ys) and ys.max() < gray.shape[0] // 8 and xs.max() < gray.shape[1] // 2


def test_dicom_upload(client, detector):
    gray = h.sample_images(3)[2][1]
    deep = gray.astype(np.uint16) * 16  # 12-bit
    body = upload(client, chest_xray_bytes(65535 - deep, photometric="MONOCHROME1"), name="x.dcm", conf=0.05).json()
    assert body["image"]["format"] == "dicom" and body["image"]["width"] == gray.shape[1]


def test_bad_uploads_through_the_server(client):
    assert upload(client, b"").status_code == 422
    assert upload(client, b"just text").status_code == 415
    assert upload(client, h.png_bytes(h.sample_images(3)[0][1])[:3000]).status_code == 422


def test_web_page_served(client):
    page = client.get("/")
    assert page.status_code == 200 and "Chest X-ray viewer" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert client.get("/static/app.js").status_code == 200
    assert "access-control-allow-origin" not in client.get("/health", headers={"Origin": "http://evil"}).headers


def test_models_without_tracking(client):
    body = client.get("/models").json()
    assert body["models"] == [] and "not configured" in body["note"]


def test_trigger_needs_the_token(client):
    assert client.post("/trigger-training", json={}).status_code == 401
    assert client.post("/trigger-training", json={}, headers={"Authorization": "Bearer wrong"}).status_code == 403
    assert client.post("/trigger-finetune", json={}, headers={"Authorization": "Basic eDp5"}).status_code == 401


@pytest.mark.parametrize(
    "body",
    [
        {"overrides": ["a b=c"]},
        {"overrides": ["x=$(rm -rf /)"]},
        {"overrides": ["token=${oc.env:XRAY_SERVE_TOKEN}"]},
        {"overrides": ["x='quoted'"]},
        {"overrides": ["mode=finetune"]},
        {"overrides": ["model=yolo12x"]},
        {"overrides": ["hydra.run.dir=/tmp/x"]},
        {"overrides": ["+extra=1"]},
        {"overrides": ["~train"]},
        {"overrides": ["noequals"]},
        {"overrides": ["k=v"] * 33},
        {"overrides": "debug=smoke"},
        {"model": "../yolo"},
        {"model": "yolo12n; rm"},
        {"unknown": 1},
    ],
)
def test_unsafe_trigger_bodies_are_rejected(client, body):
    response = client.post("/trigger-training", json=body, headers=AUTH)
    assert response.status_code == 422, response.text


def test_unknown_job_404(client):
    assert client.get("/jobs/doesnotexist").status_code == 404


def test_service_import_path_is_light():
    """The service starts without torch or ultralytics (nor mlflow until the registry is used)."""
    code = (
        "import sys, xray_exp.serve.__main__, xray_exp.serve.app;"
        "print(sorted(m for m in ('torch', 'ultralytics', 'mlflow', 'torchvision') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_missing_model_file_fails_at_start(tmp_path):
    env = {**h.ServiceProcess({}, tmp_path).env, "XRAY_SERVE_MODEL": str(tmp_path / "nope.onnx")}
    result = subprocess.run(
        [sys.executable, "-m", "xray_exp.serve", "--port", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "does not exist" in result.stderr


def test_settings_from_environment():
    from xray_exp.serve.settings import ServeSettings, redact_uri

    env = {
        "XRAY_SERVE_MODEL": "models:/yolo12s@staging",
        "XRAY_SERVE_CONF": "0.4",
        "XRAY_SERVE_MAX_UPLOAD_BYTES": "1e6",
        "XRAY_SERVE_JOB_COMMAND": "python -m xray_exp.train",
        "XRAY_SERVE_CORS_ORIGINS": "https://a.example, https://b.example",
        "XRAY_SERVE_TOKEN": "s3cret",
        "MLFLOW_TRACKING_URI": "https://u:p@mlflow.example/path?token=t",
    }
    settings = ServeSettings.from_env(env)
    assert settings.conf == 0.4 and settings.max_upload_bytes == 1_000_000
    assert settings.job_command == ["python", "-m", "xray_exp.train"]
    assert settings.cors_origins == ["https://a.example", "https://b.example"]
    public = settings.public()
    assert "s3cret" not in repr(public) and "s3cret" not in repr(settings)
    assert public["tracking_uri"] == "https://mlflow.example/path"
    assert redact_uri("sqlite:////tmp/x.db") == "sqlite:////tmp/x.db" and redact_uri(None) is None
    for bad in ({"XRAY_SERVE_CONF": "1.5"}, {"XRAY_SERVE_DEVICE": "tpu"}, {"XRAY_SERVE_PORT": "http"}):
        with pytest.raises(ValueError):
            ServeSettings.from_env(bad)
