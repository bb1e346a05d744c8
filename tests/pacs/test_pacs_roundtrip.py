"""The PACS round trip against a real Orthanc started here: POST /studies/{uid}/analyze
(WADO-RS in, SRs back by STOW-RS), `python -m xray_exp.predict source=dicomweb:...`, and the failures: a study
without images, an unknown study, an image that cannot be decoded (nothing stored), a server that is down or
answers 500 (bounded retries, credentials never in the message).

Orthanc is checked through its own REST API (not our DICOMweb client). The DICOMs are made here from NIH
radiographs with made-up patients; the model is the service tests' demo model.
"""

from __future__ import annotations

import io
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from conftest import run_cli
from dicom_corpus import nih_pixels
from orthanc import OrthancServer
from pydicom import dcmread
from pydicom.uid import generate_uid
from serve_fixtures import helpers as h

from xray_exp.data.synthetic_dicom import chest_xray_dicom, dicom_file_bytes
from xray_exp.pacs.dicomweb import DicomWeb, DicomWebError
from xray_exp.sr import FindingCodes, ModelIdentity, build_sr, read_sr_findings

AUTH = {"Authorization": f"Bearer {h.TOKEN}"}


@pytest.fixture(scope="module")
def pacs(tmp_path_factory):
    with OrthancServer(tmp_path_factory.mktemp("orthanc")) as server:
        yield server


@pytest.fixture(scope="module")
def service(pacs, tmp_path_factory):
    yield from h.demo_service(
        tmp_path_factory.mktemp("serve-pacs"),
        XRAY_SERVE_CONF="0.9",
        XRAY_SERVE_MAX_DET="5",
        XRAY_SERVE_DICOMWEB_URL=pacs.dicomweb_url,
        XRAY_SERVE_DICOMWEB_CREDENTIALS_FILE=str(pacs.credentials_file),
        XRAY_SERVE_DICOMWEB_RETRIES="2",
    )


@pytest.fixture(scope="module")
def client(service):
    with httpx.Client(base_url=service.url, timeout=60) as c:
        yield c


def flat(boxes) -> list[float]:
    return [v for box in boxes for v in box]


def upload_study(pacs, *datasets) -> list[str]:
    """Store DICOMs in Orthanc through its REST API (POST /instances); their SOP Instance UIDs."""
    for ds in datasets:
        response = httpx.post(f"{pacs.url}/instances", content=dicom_file_bytes(ds), auth=pacs_auth(), timeout=30)
        assert response.status_code == 200, response.text
    return [str(ds.SOPInstanceUID) for ds in datasets]


def pacs_auth():
    from orthanc import PASSWORD, USER

    return (USER, PASSWORD)


def study_instances(pacs, study_uid: str) -> list:
    """Every instance of the study as Orthanc holds it (downloaded and parsed)."""
    found = httpx.post(f"{pacs.url}/tools/lookup", content=study_uid, auth=pacs_auth(), timeout=30).json()
    studies = [f["ID"] for f in found if f["Type"] == "Study"]
    if not studies:
        return []
    out = []
    for inst in pacs.get(f"/studies/{studies[0]}/instances"):
        data = httpx.get(f"{pacs.url}/instances/{inst['ID']}/file", auth=pacs_auth(), timeout=30).content
        out.append(dcmread(io.BytesIO(data)))
    return out


def srs_of(pacs, study_uid: str) -> list:
    return [ds for ds in study_instances(pacs, study_uid) if ds.Modality == "SR"]


def wait_for(client, study_uid: str, timeout: float = 90) -> dict:
    """Poll GET /studies/{uid}/analyze until the analysis is done or failed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = client.get(f"/studies/{study_uid}/analyze").json()
        if record["status"] in ("done", "failed"):
            return record
        time.sleep(0.2)  # poll interval; the condition is the record's status
    raise AssertionError(f"analysis of {study_uid} still {record['status']} after {timeout} s")


def test_analyze_round_trip_is_idempotent(client, pacs):
    study = generate_uid()
    images = [
        chest_xray_dicom(nih_pixels(1, size=256)[1], header="complete", study_uid=study),
        chest_xray_dicom(nih_pixels(0, size=256)[1], header="messy", study_uid=study, instance=2),
    ]
    image_uids = upload_study(pacs, *images)
    assert client.post(f"/studies/{study}/analyze").status_code == 401
    first = client.post(f"/studies/{study}/analyze", headers=AUTH)
    assert first.status_code == 202 and first.json()["status"] in ("queued", "running")
    record = wait_for(client, study)
    assert record["status"] == "done", record
    result = record["result"]
    assert result["stored"] == 2 and result["model"]["version"].startswith("sha256:")
    srs = srs_of(pacs, study)
    assert len(srs) == 2
    by_source = {}
    for sr in srs:
        assert sr.StudyInstanceUID == study and sr.SeriesInstanceUID not in {i.SeriesInstanceUID for i in images}
        evidence = sr.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0].ReferencedSOPSequence
        by_source[evidence[0].ReferencedSOPInstanceUID] = read_sr_findings(sr)
    assert sorted(by_source) == sorted(image_uids)
    for row in result["images"]:
        back = by_source[row["sop_instance_uid"]]
        assert flat(f["box"] for f in back["findings"]) == pytest.approx(
            flat(f["box"] for f in row["findings"]), abs=0.006
        )
        assert back["summary"].endswith("with findings" if row["findings"] else "without findings")
    again = client.post(f"/studies/{study}/analyze", headers=AUTH)
    assert again.status_code == 200 and again.json()["status"] == "done"
    assert len(srs_of(pacs, study)) == 2


def test_studies_that_cannot_be_analysed(client, pacs):
    # a study holding only an SR: nothing to analyse
    lonely = chest_xray_dicom(nih_pixels(2, size=64)[1], header="complete")
    upload_study(pacs, build_sr(lonely, [], ModelIdentity("other", "1"), FindingCodes.load()))
    client.post(f"/studies/{lonely.StudyInstanceUID}/analyze", headers=AUTH)
    record = wait_for(client, lonely.StudyInstanceUID)
    assert record["status"] == "failed" and "has no images to analyse" in record["error"]
    # an unknown study
    unknown = generate_uid()
    client.post(f"/studies/{unknown}/analyze", headers=AUTH)
    record = wait_for(client, unknown)
    assert record["status"] == "failed" and "not found" in record["error"]
    # a study whose second image cannot be decoded: no SR at all is stored, not even the first image's
    study = generate_uid()
    broken = chest_xray_dicom(nih_pixels(3, size=128)[1], header="complete", study_uid=study, instance=2)
    broken.PixelData = broken.PixelData[:100]
    upload_study(pacs, chest_xray_dicom(nih_pixels(1, size=256)[1], header="complete", study_uid=study), broken)
    client.post(f"/studies/{study}/analyze", headers=AUTH)
    record = wait_for(client, study)
    assert record["status"] == "failed" and "cannot be decoded" in record["error"]
    assert srs_of(pacs, study) == [] and len(study_instances(pacs, study)) == 2


def test_predict_cli_from_dicomweb(pacs, tmp_path):
    study = generate_uid()
    (uid,) = upload_study(pacs, chest_xray_dicom(nih_pixels(1, size=256)[1], header="complete", study_uid=study))
    proc = run_cli(
        [
            "xray_exp.predict",
            f"model={h.demo_model()[1]}",
            f"source=dicomweb:{pacs.dicomweb_url}/studies/{study}",
            f"out_dir={tmp_path / 'out'}",
            "sr=true",
            "conf=0.9",
            "max_det=5",
            "progress=false",
            f"dicomweb.credentials_file={pacs.credentials_file}",
        ],
        tmp_path,
        timeout=180,
        check=True,
    )
    assert f"stored 1 SR(s) in study {study}" in proc.stdout
    (sr,) = srs_of(pacs, study)
    assert read_sr_findings(sr)["findings"][0]["referenced_sop_instance_uid"] == uid
    assert (tmp_path / "out" / "predictions.csv").read_text().count(f"{uid}.dcm") >= 1


class Answer500(BaseHTTPRequestHandler):
    hits = 0

    def _fail(self):
        type(self).hits += 1
        self.send_response(500)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST = _fail

    def log_message(self, *args):
        pass


def test_down_or_failing_server_bounded_retries(tmp_path):
    secret = tmp_path / "cred"
    secret.write_text("xray:topsecret-81\n")
    server = ThreadingHTTPServer(("127.0.0.1", 0), Answer500)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://xray:topsecret-81@127.0.0.1:{server.server_port}/dicom-web"
        failing = DicomWeb(url, secret, timeout_s=5, retries=3, backoff_s=0.01)
        with pytest.raises(DicomWebError, match=r"failed 3 times \(last: HTTP 500\); nothing was stored") as caught:
            failing.store(
                [
                    build_sr(
                        chest_xray_dicom(nih_pixels(0, 64)[1], header="complete"),
                        [],
                        ModelIdentity("m", "1"),
                        FindingCodes.load(),
                    )
                ]
            )
        assert Answer500.hits == 3 and "topsecret" not in str(caught.value)
    finally:
        server.shutdown()
    down = DicomWeb(f"http://127.0.0.1:{h.free_port()}/dicom-web", retries=2, backoff_s=0.01)
    with pytest.raises(DicomWebError, match=r"failed 2 times \(last: ConnectionError\)"):
        down.study_images(generate_uid())
