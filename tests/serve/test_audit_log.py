"""The audit log (XRAY_SERVE_AUDIT_LOG): PHI-free lines from a real service, rotation, crashes, unwritable paths.

    .venv/bin/pytest tests/serve/test_audit_log.py

A real `python -m xray_exp.serve` (log level debug, its output captured to a file) gets chest X-ray DICOMs
(xray_exp.data.synthetic_dicom) carrying a patient name, id, birth date and accession number; neither the audit
log nor the service log may contain them, and the UIDs appear only as salted hashes (recomputed here with hmac).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import signal
import subprocess
import sys

import httpx
import numpy as np
import pydicom
import pytest
from prometheus_client.parser import text_string_to_metric_families

try:
    from serve_fixtures import helpers as h
except ImportError:  # tests/ imported as a package
    from tests.serve_fixtures import helpers as h

from fastapi.testclient import TestClient

from xray_exp.data.synthetic_dicom import chest_xray_dicom, dicom_file_bytes
from xray_exp.serve.app import create_app
from xray_exp.serve.audit import AuditLog, open_audit_log
from xray_exp.serve.model_source import load_detector
from xray_exp.serve.settings import ServeSettings

SALT = "audit-test-salt-5e0c"
PHI = {
    "PatientName": "Quillfeather^Ottoline",
    "PatientID": "PHI-ID-7730419",
    "PatientBirthDate": "19230417",
    "AccessionNumber": "ACC-55821-Z",
}
# every PHI value, its parts and the other spellings a log could use
PHI_STRINGS = [*PHI.values(), "Quillfeather", "Ottoline", "7730419", "1923-04-17", "55821"]


def expected_hash(value: str) -> str:
    return hmac.new(SALT.encode(), value.encode(), hashlib.sha256).hexdigest()[:32]


def phi_dicom(truncated: bool = False) -> tuple[bytes, pydicom.Dataset]:
    """A 128x128 16-bit DX with the PHI; truncated: the last 20000 bytes (of its 32 KiB of pixels) cut off."""
    ds = chest_xray_dicom(np.tile(np.arange(0, 4096, 32, dtype=np.uint16), (128, 1)), header="complete", **PHI)
    data = dicom_file_bytes(ds)
    return (data[: len(data) - 20000] if truncated else data), ds


def lines_of(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    folder = tmp_path_factory.mktemp("audit")
    env = {
        "XRAY_SERVE_MODEL": str(h.demo_model()[1]),
        "XRAY_SERVE_DEVICE": "cpu",
        "XRAY_SERVE_TOKEN": h.TOKEN,
        "XRAY_SERVE_JOB_COMMAND": h.fake_job_command(),
        "XRAY_SERVE_AUDIT_LOG": str(folder / "logs" / "audit.log"),
        "XRAY_SERVE_AUDIT_SALT": SALT,
    }
    server = h.ServiceProcess(env, folder, log_level="debug").start()
    server.audit_path = folder / "logs" / "audit.log"
    yield server
    server.stop()
    assert "Traceback" not in server.log(), server.log()[-5000:]


def post(client, data: bytes, path: str = "/predict", **kwargs):
    return client.post(path, files={"file": ("scan.dcm", data, "application/dicom")}, **kwargs)


def test_dicom_with_phi_leaves_only_hashes(service):
    data, ds = phi_dicom()
    auth = {"Authorization": f"Bearer {h.TOKEN}"}
    with httpx.Client(base_url=service.url, timeout=60) as client:
        version = client.get("/health").json()["model"]["version"]
        found = post(client, data).json()
        annotated = post(client, data, "/predict/annotated", headers=auth)
        broken = post(client, phi_dicom(truncated=True)[0])
        assert client.get("/models").status_code == 200
        assert client.delete("/jobs/0123456789ab", headers=auth).status_code == 404
        assert client.get("/health").status_code == 200  # not audited
    assert annotated.status_code == 200 and broken.status_code == 422
    assert not any(s in broken.text for s in PHI_STRINGS)

    start, *requests = lines_of(service.audit_path)
    assert start["event"] == "start" and start["model"]["version"] == version
    assert [(r["route"], r["status"], r["outcome"]) for r in requests] == [
        ("/predict", 200, "ok"),
        ("/predict/annotated", 200, "ok"),
        ("/predict", 422, "refused"),
        ("/models", 200, "ok"),
        ("/jobs/{job_id}", 404, "refused"),
    ]
    first, second, third = requests[:3]
    assert first["image"] == {"format": "dicom", "width": 128, "height": 128, "frames": 1, "bytes": len(data)}
    assert first["findings"] == len(found["findings"]) and first["model"]["version"] == version
    assert first["study_uid"] == expected_hash(ds.StudyInstanceUID) == second["study_uid"]
    assert first["sop_instance_uid"] == expected_hash(ds.SOPInstanceUID)
    assert first["caller"] == "anonymous" and first["client"] == "127.0.0.1" and first["duration_ms"] > 0
    assert second["caller"] == "token:" + expected_hash("token:" + h.TOKEN) == requests[4]["caller"]
    assert third["detail"] == "corrupt" and third["image"] is None and third["study_uid"] is None

    audit_text, service_log = service.audit_path.read_text(), service.log()
    assert "POST /predict HTTP/1.1" in service_log  # the service log was captured (debug level)
    for secret in [*PHI_STRINGS, ds.StudyInstanceUID, ds.SOPInstanceUID, h.TOKEN]:
        assert secret not in audit_text, secret
        assert secret not in service_log, secret
    assert max(len(line) for line in audit_text.splitlines()) < 1000  # no pixel data


def test_lines_survive_a_crash(service):
    """Every answered request is on disk as a whole JSON line, even when the process is killed right after."""
    data, _ = phi_dicom()
    with httpx.Client(base_url=service.url, timeout=60) as client:
        for _ in range(3):
            assert post(client, data).status_code == 200
    service.proc.send_signal(signal.SIGKILL)
    service.proc.wait(timeout=15)
    lines = lines_of(service.audit_path)  # json.loads of every line
    assert [r["route"] for r in lines[-3:]] == ["/predict"] * 3 and all(r["status"] == 200 for r in lines[-3:])


def settings_for(tmp_path, **values) -> ServeSettings:
    return ServeSettings(job_dir=str(tmp_path / "jobs"), audit_salt=SALT, **values)


def test_rotation_by_size_keeps_whole_lines(tmp_path):
    audit = AuditLog(tmp_path / "audit.log", SALT.encode(), max_bytes=2048, backups=2)
    for i in range(60):
        audit.write({"event": "request", "route": "/predict", "n": i, "pad": "x" * 60})
    audit.close()
    files = sorted(tmp_path.glob("audit.log*"))
    assert [f.name for f in files] == ["audit.log", "audit.log.1", "audit.log.2"]
    assert all(f.stat().st_size <= 2048 for f in files)
    numbers = [r["n"] for f in reversed(files) for r in lines_of(f)]
    assert numbers == list(range(numbers[0], 60)) and numbers[0] > 0  # the oldest rotated away, none torn


def test_a_torn_line_is_closed_before_the_next(tmp_path):
    path = tmp_path / "audit.log"
    path.write_text('{"event":"request","route":"/predict"}\n{"event":"request","rou')  # power loss mid-line
    audit = open_audit_log(settings_for(tmp_path, audit_log=str(path)), {"pid": 1})
    audit.write({"event": "request", "route": "/models"})
    audit.close()
    lines = path.read_text().splitlines()
    assert lines[1] == '{"event":"request","rou'
    assert [json.loads(line)["event"] for line in lines[2:]] == ["start", "request"]


def test_required_audit_log_that_cannot_be_written_refuses_to_start(tmp_path):
    (tmp_path / "a-file").write_text("")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("XRAY_SERVE_")},
        "XRAY_SERVE_MODEL": str(h.demo_model()[1]),
        "XRAY_SERVE_JOB_DIR": str(tmp_path / "jobs"),
        "XRAY_SERVE_AUDIT_LOG": str(tmp_path / "a-file" / "audit.log"),  # its folder is a file
        "XRAY_SERVE_AUDIT_REQUIRED": "true",
    }
    run = subprocess.run(
        [sys.executable, "-m", "xray_exp.serve", "--port", str(h.free_port())],
        env=env,
        cwd=h.REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2, run.stderr
    assert "XRAY_SERVE_AUDIT_LOG=" in run.stderr and "not starting" in run.stderr
    assert "Traceback" not in run.stderr


def metric(client, name: str) -> float:
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            if sample.name == name:
                return sample.value
    raise AssertionError(f"{name} not in /metrics")


@pytest.fixture(scope="module")
def detector():
    return load_detector(str(h.demo_model()[1]), device="cpu")


@pytest.mark.parametrize("where", ["full disk", "unwritable path"])
def test_audit_log_that_cannot_be_written_at_start_is_a_warning(where, tmp_path, detector, caplog):
    (tmp_path / "a-file").write_text("")
    path = "/dev/full" if where == "full disk" else str(tmp_path / "a-file" / "audit.log")  # ENOSPC / ENOTDIR
    with caplog.at_level(logging.WARNING, logger="xray_exp.serve.audit"):
        app = create_app(settings_for(tmp_path, audit_log=path), *detector)
    assert "WITHOUT an audit log" in caplog.text and f"XRAY_SERVE_AUDIT_LOG={path}" in caplog.text
    with TestClient(app) as client:
        assert post(client, phi_dicom()[0]).status_code == 200
        assert metric(client, "xray_audit_log_enabled") == 0


def test_write_failures_while_running_never_fail_a_request(tmp_path, detector, caplog):
    path = tmp_path / "audit.log"
    app = create_app(settings_for(tmp_path, audit_log=str(path)), *detector)
    handler = app.state.observability.audit._handler
    data = phi_dicom()[0]
    with TestClient(app) as client, caplog.at_level(logging.WARNING, logger="xray_exp.serve.audit"):
        handler.stream = open("/dev/full", "a")  # the disk fills up  # noqa: SIM115 (closed by the handler)
        assert post(client, data).status_code == 200
        assert metric(client, "xray_audit_write_errors_total") == 1
        assert "cannot write the audit log" in caplog.text
        assert post(client, data).status_code == 200  # space again: the handler reopens the file
    routes = [r.get("route") for r in lines_of(path)]
    assert routes == [None, "/predict"]  # the start line, then the request written after the failure


def test_settings_of_metrics_and_audit(tmp_path, detector):
    env = {"XRAY_SERVE_AUDIT_REQUIRED": "yes", "XRAY_SERVE_METRICS": "false", "XRAY_SERVE_AUDIT_MAX_BYTES": "1e6"}
    settings = ServeSettings.from_env(env)
    assert settings.audit_required is True and settings.metrics is False and settings.audit_max_bytes == 1_000_000
    assert SALT not in repr(settings_for(tmp_path)) and "audit_salt" not in json.dumps(settings_for(tmp_path).public())
    with pytest.raises(ValueError, match="XRAY_SERVE_AUDIT_REQUIRED='maybe' is not true or false"):
        ServeSettings.from_env({"XRAY_SERVE_AUDIT_REQUIRED": "maybe"})
    settings.job_dir, settings.audit_required = str(tmp_path / "jobs"), False
    with TestClient(create_app(settings, *detector)) as client:
        assert client.get("/metrics").status_code == 404  # XRAY_SERVE_METRICS=false
        assert client.get("/config").json()["audit"] == {"configured": False, "required": False}
