"""POST /predict/sr: a DICOM in, its findings as a DICOM SR out (in the image's study), the same boxes as the JSON
/predict; PNG -> 415, a DICOM without Study Instance UID -> 422, no PACS needed. In-process app on the demo model."""

from __future__ import annotations

import pytest
from dicom_corpus import dciodvfy_errors, nih_pixels
from fastapi.testclient import TestClient
from pydicom import dcmread
from serve_fixtures import helpers as h

from xray_exp.data.synthetic_dicom import chest_xray_dicom, dicom_file_bytes
from xray_exp.serve.app import create_app
from xray_exp.serve.settings import ServeSettings
from xray_exp.sr import read_sr_findings


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    settings = ServeSettings(
        model=str(h.demo_model()[1]), device="cpu", conf=0.9, max_det=5, job_dir=str(tmp_path_factory.mktemp("jobs"))
    )
    with TestClient(create_app(settings)) as c:
        yield c


def flat(boxes) -> list[float]:
    return [v for box in boxes for v in box]


def test_predict_sr_route(client, tmp_path):
    messy = chest_xray_dicom(nih_pixels(1, size=256)[1], header="messy")
    data = dicom_file_bytes(messy)
    files = {"file": ("chest.dcm", data, "application/dicom")}
    response = client.post("/predict/sr", files=files)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/dicom"
    path = tmp_path / "sr.dcm"
    path.write_bytes(response.content)
    sr = dcmread(path)
    assert sr.StudyInstanceUID == messy.StudyInstanceUID and sr.SeriesInstanceUID != messy.SeriesInstanceUID
    assert sr.PatientAge == "081Y" and response.headers["X-SR-SOP-Instance-UID"] == sr.SOPInstanceUID
    findings = client.post("/predict", files=files).json()["findings"]  # the JSON route, unchanged
    back = read_sr_findings(path)["findings"]
    assert len(findings) == int(response.headers["X-Findings-Count"]) > 0
    assert flat(f["box"] for f in back) == pytest.approx(flat(f["box"] for f in findings), abs=0.006)
    assert all(f["referenced_sop_instance_uid"] == messy.SOPInstanceUID for f in back)
    errors = dciodvfy_errors(path)
    assert errors in (None, []), errors
    png = client.post("/predict/sr", files={"file": ("chest.png", h.png_bytes(nih_pixels(1, 64)[1]), "image/png")})
    assert png.status_code == 415 and "POST /predict" in png.json()["detail"]
    del messy.StudyInstanceUID
    no_uid = client.post("/predict/sr", files={"file": ("x.dcm", dicom_file_bytes(messy), "application/dicom")})
    assert no_uid.status_code == 422 and "StudyInstanceUID" in no_uid.json()["detail"]
