"""POST /render on a real service: the viewer's pixels in their own bit depth (checked value for value
against pydicom and OpenCV), the display information, the DICOM tag allow-list (a file carrying a patient's
name, id, birth date and accession number gives none of them back) and the upload limits.

    .venv/bin/pytest tests/serve/test_serve_render.py
"""

from __future__ import annotations

import io
import json

import cv2
import httpx
import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from xray_exp.data.synthetic_dicom import chest_xray_bytes

try:
    from serve_fixtures import helpers as h
except ImportError:  # tests/ imported as a package
    from tests.serve_fixtures import helpers as h

PHI = {
    "PatientName": "Quixote^Zebulon",
    "PatientID": "PID-71830492",
    "PatientBirthDate": "19230405",
    "AccessionNumber": "ACC-55501234",
    "InstitutionName": "Saint Elsewhere Clinic",
}
MAX_PIXEL_BYTES = 4 * 1024 * 1024
ORIGIN = "https://viewer.example"
WIRE = {"uint8": "<u1", "uint16": "<u2", "int16": "<i2"}


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    service = h.demo_service(
        tmp_path_factory.mktemp("serve-render"),
        XRAY_SERVE_MAX_PIXEL_BYTES=str(MAX_PIXEL_BYTES),
        XRAY_SERVE_CORS_ORIGINS=ORIGIN,
    )
    server = next(service)
    with httpx.Client(base_url=server.url, timeout=60) as c:
        yield c
    next(service, None)  # stops the service and checks its log for tracebacks


def render(client, data: bytes):
    response = client.post("/render", files={"file": ("image", data, "application/octet-stream")})
    if response.status_code != 200:
        return response, None, None
    info = json.loads(response.headers["x-render-info"])
    pixels = np.frombuffer(response.content, WIRE[info["dtype"]]).reshape(info["height"], info["width"])
    return response, pixels, info


def phi_dicom() -> bytes:
    """pydicom's CT_small.dcm (a real CT slice, signed 16-bit, rescale -1024) with distinctive PHI values."""
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    for keyword, value in PHI.items():
        setattr(ds, keyword, value)
    ds.WindowCenter, ds.WindowWidth = [40, 400], [400, 1500]  # two windows: the first is the file's VOI
    buf = io.BytesIO()
    ds.save_as(buf)
    return buf.getvalue()


def test_dicom_pixels_are_the_stored_values_with_the_file_window_and_no_phi(client):
    data = phi_dicom()
    response, pixels, info = render(client, data)
    assert response.status_code == 200, response.text
    expected = pydicom.dcmread(io.BytesIO(data)).pixel_array
    assert info["dtype"] == "int16" and pixels.shape == (128, 128) and np.array_equal(pixels, expected)
    assert info["rescale"] == [1.0, -1024.0] and info["voi_function"] == "LINEAR"
    assert info["window"] == {"center": 40.0, "width": 400.0, "source": "file window"}
    assert info["pixel_spacing_mm"] == [0.661468, 0.661468] and info["spacing_source"] == "PixelSpacing"
    assert info["presets"]["lung"] == {"center": -600.0, "width": 1500.0, "basis": "HU"}  # a CT: HU windows
    assert info["invert"] is False and info["padding"] == [-2000, -2000]
    assert info["dicom"] == {
        "Modality": "CT",
        "Rows": "128",
        "Columns": "128",
        "PixelSpacing": "0.661468\\0.661468",
        "PhotometricInterpretation": "MONOCHROME2",
        "BitsStored": "16",
        "TransferSyntax": "Explicit VR Little Endian",
    }
    everything = (str(response.headers) + response.content.decode("latin-1")).lower()
    for value in PHI.values():
        assert value.lower() not in everything and value.split("^")[0].lower() not in everything
    assert response.headers["cache-control"] == "no-store"


def test_monochrome1_radiograph_is_inverted_and_presets_follow_its_brightness(client):
    gray = dict(h.sample_images(2))[h.sample_images(2)[0][0]]
    stored = (4095 - gray.astype(np.uint16) * 16).astype(np.uint16)  # MONOCHROME1: high values are dark
    data = chest_xray_bytes(stored, photometric="MONOCHROME1")
    response, pixels, info = render(client, data)
    assert response.status_code == 200, response.text
    assert info["dtype"] == "uint16" and np.array_equal(pixels, stored) and info["invert"] is True
    assert info["window"]["source"] == "range"  # no window in the file: its value range
    assert (info["window"]["center"], info["window"]["width"]) == (
        (float(stored.min()) + float(stored.max())) / 2,
        float(stored.max()) - float(stored.min()),
    )
    lung, bone = info["presets"]["lung"], info["presets"]["bone"]
    assert lung["basis"] == "percentiles" and lung["center"] > bone["center"]  # dark lungs = high stored values


def test_png_keeps_its_bit_depth(client):
    gray = h.sample_images(2)[1][1]
    wide = gray.astype(np.uint16) * 257 + 3
    response, pixels, info = render(client, h.png_bytes(wide))
    assert response.status_code == 200, response.text
    assert info["dtype"] == "uint16" and np.array_equal(
        pixels, cv2.imdecode(np.frombuffer(h.png_bytes(wide), np.uint8), cv2.IMREAD_UNCHANGED)
    )
    assert info["dicom"] is None and info["pixel_spacing_mm"] is None and info["invert"] is False
    response, pixels, info = render(client, h.png_bytes(gray))
    assert info["dtype"] == "uint8" and np.array_equal(pixels, gray)
    assert info["window"] == {"center": 127.5, "width": 255.0, "source": "range"}  # 8 bits as stored


def test_bad_uploads_get_the_same_answers_as_predict(client):
    too_big = h.png_bytes(np.zeros((1100, 1100), np.uint16))  # 2.4 MB of pixels: fine
    assert render(client, too_big)[0].status_code == 200
    over = h.png_bytes(np.zeros((1500, 1500), np.uint16))  # 4.5 MB > MAX_PIXEL_BYTES, from the header
    response = render(client, over)[0]
    assert response.status_code == 413 and "pixel-bytes limit" in response.json()["detail"]
    assert render(client, b"not an image at all")[0].status_code == 415
    truncated = phi_dicom()[:2000]
    response = render(client, truncated)[0]
    assert response.status_code == 422, response.text
    assert render(client, b"")[0].status_code == 422


def test_predict_gives_the_pixel_spacing_of_a_dicom(client):
    def image_info(data: bytes) -> dict:
        response = client.post("/predict", files={"file": ("image", data, "application/octet-stream")})
        assert response.status_code == 200, response.text
        return response.json()["image"]

    assert image_info(phi_dicom())["pixel_spacing_mm"] == [0.661468, 0.661468]
    ds = pydicom.dcmread(io.BytesIO(phi_dicom()))
    del ds.PixelSpacing
    ds.ImagerPixelSpacing = [0.139, 0.143]  # at the detector: used when PixelSpacing is absent
    buf = io.BytesIO()
    ds.save_as(buf)
    assert image_info(buf.getvalue())["pixel_spacing_mm"] == [0.139, 0.143]
    assert image_info(h.png_bytes(h.sample_images(2)[0][1]))["pixel_spacing_mm"] is None


def test_a_viewer_on_another_allowed_origin_can_read_the_pixel_layout(client):
    data = h.png_bytes(h.sample_images(2)[0][1])
    response = client.post("/render", files={"file": ("image", data)}, headers={"Origin": ORIGIN})
    assert response.headers["access-control-allow-origin"] == ORIGIN
    assert "x-render-info" in response.headers["access-control-expose-headers"].lower()
