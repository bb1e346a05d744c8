"""Bad and unusual uploads get a clear 4xx (never a 500); good ones decode through xray_exp.imaging.

    .venv/bin/pytest tests/serve/test_serve_uploads.py

Runs the app in-process (FastAPI TestClient) with small limits: 2 MiB per upload, 4 MP per image.
"""

from __future__ import annotations

import struct
import zlib

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient

try:
    from serve_fixtures import helpers as h
except ImportError:  # tests/ imported as a package
    from tests.serve_fixtures import helpers as h

from xray_exp.data.synthetic_dicom import chest_xray_bytes
from xray_exp.imaging import ImageDecodeError, decode_xray_bytes, probe_xray_bytes, to_uint8
from xray_exp.serve import uploads
from xray_exp.serve.app import create_app
from xray_exp.serve.model_source import load_detector
from xray_exp.serve.settings import ServeSettings

MAX_BYTES = 2 * 1024 * 1024
MAX_PIXELS = 4_000_000


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_claiming(width: int, height: int) -> bytes:
    """A well-formed PNG header announcing width x height, with almost no pixel data behind it."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        h.png_bytes(np.zeros((1, 1), np.uint8))[:8]
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + png_chunk(b"IEND", b"")
    )


def jpeg_claiming(width: int, height: int) -> bytes:
    """A JPEG whose SOF0 frame header announces width x height, behind an APP1 segment."""
    real = h.jpeg_bytes(np.zeros((8, 8), np.uint8))
    app1 = b"\xff\xe1" + struct.pack(">H", 18) + b"Exif\x00\x00" + b"\x00" * 10
    sof = real.index(b"\xff\xc0")
    patched = real[: sof + 5] + struct.pack(">HH", height, width) + real[sof + 9 :]
    return patched[:2] + app1 + patched[2:]


@pytest.fixture(scope="module")
def gray():
    return h.sample_images(3)[1][1]


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    detector, info = load_detector(str(h.demo_model()[1]), device="cpu")
    settings = ServeSettings(
        max_upload_bytes=MAX_BYTES, max_pixels=MAX_PIXELS, job_dir=str(tmp_path_factory.mktemp("jobs"))
    )
    with TestClient(create_app(settings, detector, info)) as c:
        c.detector = detector
        yield c


def post(client, data: bytes, filename="x.png", content_type="application/octet-stream", **params):
    return client.post("/predict", files={"file": (filename, data, content_type)}, params=params)


# --- header probing (xray_exp.imaging additions) ---


def test_probe_matches_pil_on_real_files(gray):
    import io

    from PIL import Image

    samples = [
        h.png_bytes(gray),
        h.jpeg_bytes(gray),
        h.png_bytes(gray[:300, :517]),
        h.jpeg_bytes(gray[:97, :1001]),
    ]
    ok, progressive = cv2.imencode(".jpg", gray[:211, :333], [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])
    samples += [progressive.tobytes(), jpeg_claiming(640, 480)]
    for data in samples:
        header = probe_xray_bytes(data)
        assert (header.width, header.height) == Image.open(io.BytesIO(data)).size
    dicom = probe_xray_bytes(chest_xray_bytes(np.zeros((30, 40), np.uint16)))
    assert (dicom.format, dicom.width, dicom.height, dicom.frames) == ("dicom", 40, 30, 1)


@pytest.mark.parametrize(
    "data",
    [b"", b"GIF89a....", b"\x89PNG\r\n\x1a\n\x00\x00", b"\xff\xd8\xff\xe0\x00\x10JFIF", b"\xff\xd8\xff\xd9"],
)
def test_probe_rejects_unknown_or_headerless(data):
    with pytest.raises(ImageDecodeError):
        probe_xray_bytes(data)


def test_pixel_limit_is_checked_before_decoding(monkeypatch):
    def must_not_decode(data):
        raise AssertionError("decoded an image over the pixel limit")

    monkeypatch.setattr(uploads, "decode_xray_bytes", must_not_decode)
    for data in (
        png_claiming(20000, 20000),
        jpeg_claiming(30000, 30000),
        _dicom_claiming(20000, 20000),
    ):
        with pytest.raises(uploads.UploadError) as err:
            uploads.decode_upload(data, MAX_PIXELS)
        assert err.value.status_code == 413 and "limit" in err.value.message


def _dicom_claiming(rows: int, columns: int) -> bytes:
    """A DICOM header announcing rows x columns with only a few bytes of pixel data."""
    return chest_xray_bytes(np.zeros((2, 2), np.uint16), Rows=rows, Columns=columns)


# --- through the API ---


def _malformed_dicom() -> bytes:
    return b"\x00" * 128 + b"DICM" + bytes(range(256)) * 4


def _dicom_without_pixels() -> bytes:
    return chest_xray_bytes(np.zeros((16, 16), np.uint16), without=("PixelData",))


def _truncated_dicom() -> bytes:
    data = chest_xray_bytes(np.full((64, 64), 1000, np.uint16))
    return data[: len(data) - 3000]


BAD_UPLOADS = {
    "empty": (lambda g: b"", 422, "empty"),
    "text": (lambda g: b"hello, not an image\n" * 10, 415, "PNG, JPEG or DICOM"),
    "pdf": (lambda g: b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n", 415, "unsupported"),
    "bmp": (lambda g: cv2.imencode(".bmp", g[:64, :64])[1].tobytes(), 415, "unsupported"),
    "png-header-only": (lambda g: h.png_bytes(g)[:33], 422, "cannot decode"),
    "png-truncated": (lambda g: h.png_bytes(g)[:5000], 422, "cannot decode"),
    "jpeg-truncated": (lambda g: h.jpeg_bytes(g)[:4000], 422, "cannot decode"),
    "jpeg-no-frame": (lambda g: b"\xff\xd8\xff\xe0\x00\x04ab\xff\xd9", 422, "frame header"),
    "png-huge": (lambda g: png_claiming(20000, 20000), 413, "limit"),
    "png-zero-size": (lambda g: png_claiming(0, 10), 422, "empty image"),
    "jpeg-huge": (lambda g: jpeg_claiming(30000, 30000), 413, "limit"),
    "dicom-huge": (lambda g: _dicom_claiming(20000, 20000), 413, "limit"),
    "dicom-malformed": (lambda g: _malformed_dicom(), 422, "DICOM"),
    "dicom-no-pixels": (lambda g: _dicom_without_pixels(), 422, "pixel"),
    "dicom-truncated-pixels": (lambda g: _truncated_dicom(), 422, "cannot decode"),
    "too-many-bytes": (lambda g: h.png_bytes(g)[:16] + b"\x00" * (MAX_BYTES + 10), 413, "larger than"),
}


@pytest.mark.parametrize("case", sorted(BAD_UPLOADS))
def test_bad_upload_gets_clear_4xx(client, gray, case):
    make, status, message = BAD_UPLOADS[case]
    response = post(client, make(gray))
    assert response.status_code == status, response.text
    assert message.lower() in response.json()["detail"].lower()


def test_body_over_the_limit_is_refused_before_reading(client):
    response = post(client, b"\x89PNG" + b"\x00" * (MAX_BYTES + 2 * 1024 * 1024))
    assert response.status_code == 413


@pytest.mark.parametrize(
    "params",
    [
        {"conf": 2},
        {"conf": -0.1},
        {"conf": "nan"},
        {"conf": "abc"},
        {"iou": "inf"},
        {"include_image": "maybe"},
    ],
)
def test_bad_parameters_422(client, gray, params):
    assert post(client, h.png_bytes(gray), **params).status_code == 422


def test_missing_file_field_422(client):
    assert client.post("/predict", data={"other": "x"}).status_code == 422
    assert client.post("/predict").status_code == 422


def _findings(client, data, **params):
    response = post(client, data, **params)
    assert response.status_code == 200, response.text
    return response.json()


def test_formats_decode_like_training(client, gray):
    """PNG, RGBA PNG, JPEG, 16-bit PNG and DICOM: the served detections are those of the detector on
    xray_exp.imaging's decoding of the same bytes."""
    gray = np.ascontiguousarray(gray[:600, 100:800])  # uncompressed 16-bit DICOM stays under the byte limit
    rgba = cv2.cvtColor(gray, cv2.COLOR_GRAY2BGRA)
    deep = (gray.astype(np.uint16) * 257 + 100).astype(np.uint16)
    uploads_by_format = {
        "png": h.png_bytes(gray),
        "png-rgba": h.png_bytes(rgba),
        "jpeg": h.jpeg_bytes(gray),
        "png-16bit": h.png_bytes(deep),
        "dicom-mono1": chest_xray_bytes(65535 - deep, photometric="MONOCHROME1"),
        "dicom-8bit": chest_xray_bytes(gray),
    }
    for name, data in uploads_by_format.items():
        body = _findings(client, data, conf=0.01)
        expected, _ = client.detector.predict(decode_xray_bytes(data), conf=0.01)
        assert [f["label"] for f in body["findings"]] == [d.label for d in expected], name
        assert np.allclose([f["box"] for f in body["findings"]], [d.box for d in expected], atol=0.01), name
        assert (body["image"]["width"], body["image"]["height"]) == (gray.shape[1], gray.shape[0]), name


def test_16bit_png_is_scaled_not_clipped(gray):
    deep = (gray.astype(np.uint16) * 257).astype(np.uint16)
    assert np.array_equal(decode_xray_bytes(h.png_bytes(deep)), to_uint8(deep))


def test_monochrome1_dicom_is_inverted():
    ramp = np.tile(np.arange(0, 4096, 64, dtype=np.uint16), (8, 1))
    mono2 = decode_xray_bytes(chest_xray_bytes(ramp))
    mono1 = decode_xray_bytes(chest_xray_bytes(ramp, photometric="MONOCHROME1"))
    assert np.array_equal(mono1, 255 - mono2) and mono2[0, 0] < mono2[0, -1]


def test_filename_is_never_a_path(tmp_path, gray):
    detector, info = load_detector(str(h.demo_model()[1]), device="cpu")
    keep = tmp_path / "kept"
    settings = ServeSettings(upload_dir=str(keep), job_dir=str(tmp_path / "jobs"))
    with TestClient(create_app(settings, detector, info)) as c:
        for name in ("../../escape.png", "/etc/evil.png", "..\\..\\win.png", "a\x00b.png"):
            assert post(c, h.png_bytes(gray), filename=name).status_code == 200
    stored = sorted(p.name for p in keep.iterdir())
    assert len(stored) == 4 and all(len(n) == 36 and n.endswith(".png") for n in stored)
    assert not (tmp_path / "escape.png").exists() and not any(tmp_path.glob("**/escape.png"))


def test_uploads_not_stored_by_default(client):
    assert client.get("/config").json()["store_uploads"] is False
