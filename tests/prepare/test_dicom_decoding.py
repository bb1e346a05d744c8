"""Every transfer syntax a chest X-ray archive sends decodes like pydicom's reference, in prepare and /predict.

    PYTHONPATH=$PWD .venv/bin/python -m pytest tests/prepare/test_dicom_decoding.py -q

Files: pydicom's real test DICOMs (tests/dicom_corpus.py) and an NIH radiograph re-encoded in each syntax.
Display rules: Presentation LUT Shape INVERSE, VOI LUT Function SIGMOID (checked against the formula of
PS3.3 C.11.2.1.3.1), Pixel Padding Value, multi-frame (first frame).
"""

from __future__ import annotations

import csv
import io
import struct

import cv2
import numpy as np
import pydicom
import pytest
from fastapi.testclient import TestClient

try:
    import dicom_corpus as corpus
    from serve_fixtures import helpers as h
except ImportError:  # tests/ imported as a package
    from tests import dicom_corpus as corpus
    from tests.serve_fixtures import helpers as h

from xray_exp.data.synthetic_dicom import chest_xray_bytes
from xray_exp.imaging import ImageDecodeError, decode_dicom, decode_xray_bytes
from xray_exp.imaging.dicom_decode import first_frame, read_dataset

GRAY_FILES = [n for n in sorted(corpus.PYDICOM_FILES) if not n.startswith(("SC_", "examples_"))]


def reference_frame(path):
    ds = pydicom.dcmread(path)
    pixels = ds.pixel_array
    return ds, pixels[0] if int(ds.get("NumberOfFrames", 1) or 1) > 1 else pixels


@pytest.mark.parametrize("name", sorted(corpus.PYDICOM_FILES))
def test_pydicom_files_decode_like_pydicoms_reference(name):
    path = corpus.pydicom_file(name)
    ds, expected = reference_frame(path)
    assert ds.file_meta.TransferSyntaxUID == corpus.PYDICOM_FILES[name]
    assert np.array_equal(first_frame(read_dataset(path.read_bytes())), expected)
    gray, info = decode_dicom(path.read_bytes())
    assert gray.dtype == np.uint8 and gray.shape == expected.shape[:2] and gray.std() > 0
    assert info["transfer_syntax"] == corpus.PYDICOM_FILES[name]
    assert info["frames"] == int(ds.get("NumberOfFrames", 1) or 1)


def test_lossless_syntaxes_of_one_slice_agree_pixel_for_pixel():
    decoded = {n: first_frame(read_dataset(corpus.pydicom_file(n).read_bytes())) for n in corpus.MR_SMALL_FAMILY}
    base = decoded["MR_small.dcm"]
    assert base.shape == (64, 64) and base.max() > base.min()
    for name, pixels in decoded.items():
        assert np.array_equal(pixels.astype(np.int32), base.astype(np.int32)), name


@pytest.mark.parametrize("kind", corpus.LOSSLESS_NIH + corpus.LOSSY_NIH)
def test_nih_radiograph_in_every_syntax_decodes_to_the_png(kind):
    png = corpus.nih_pixels(0, size=None)[1]
    data = corpus.nih_dicom(kind)
    stored = first_frame(read_dataset(data))
    reference = pydicom.dcmread(io.BytesIO(data)).pixel_array
    assert np.array_equal(stored, reference)
    if kind in corpus.LOSSLESS_NIH:
        assert np.array_equal(stored, png)
        assert np.array_equal(decode_dicom(data)[0], decode_xray_bytes(h.png_bytes(stretch(png))))
    else:
        assert cv2.PSNR(stored.astype(np.uint8), png) > 40
    if kind == "jpeg-baseline":  # an independent decoder of the same codestream (OpenCV's libjpeg-turbo)
        _, jpeg = cv2.imencode(".jpg", png, [cv2.IMWRITE_JPEG_QUALITY, 95])
        independent = cv2.imdecode(jpeg, cv2.IMREAD_GRAYSCALE)
        assert np.abs(stored.astype(int) - independent).max() <= 2


@pytest.mark.parametrize("kind", corpus.LOSSY_NIH)
def test_the_fallback_film_keeps_the_lossy_bar(kind):
    """Without ../shared the test above runs on corpus.synthetic_film(): it must clear the same PSNR bar."""
    film = corpus.synthetic_film()
    stored = first_frame(read_dataset(corpus.encode_as(film, kind)))
    assert cv2.PSNR(stored.astype(np.uint8), film) > 40


def stretch(pixels: np.ndarray) -> np.ndarray:
    """Min-max to 0..255, written out here (what windowing an 8-bit DICOM without a window gives)."""
    lo, hi = float(pixels.min()), float(pixels.max())
    return np.floor((pixels.astype(np.float64) - lo) * 255.0 / (hi - lo) + 0.5).astype(np.uint8)


RAMP = np.tile(np.linspace(0, 4095, 256).astype(np.uint16), (32, 1))


def test_presentation_lut_inverse_inverts_once():
    plain = decode_xray_bytes(chest_xray_bytes(RAMP))
    inverse = decode_xray_bytes(chest_xray_bytes(RAMP, PresentationLUTShape="INVERSE"))
    mono1 = decode_xray_bytes(chest_xray_bytes(RAMP, PhotometricInterpretation="MONOCHROME1"))
    mono1_inverse = decode_xray_bytes(
        chest_xray_bytes(RAMP, PhotometricInterpretation="MONOCHROME1", PresentationLUTShape="INVERSE")
    )
    assert plain[0, 0] < plain[0, -1]
    assert np.array_equal(inverse, 255 - plain) and np.array_equal(mono1_inverse, mono1)


def test_voi_lut_function_sigmoid_follows_the_standard():
    center, width = 1500.0, 800.0
    gray = decode_xray_bytes(chest_xray_bytes(RAMP, WindowCenter=center, WindowWidth=width, VOILUTFunction="SIGMOID"))
    sigmoid = 1.0 / (1.0 + np.exp(-4.0 * (RAMP[0].astype(np.float64) - center) / width))  # PS3.3 C.11.2.1.3.1
    expected = (sigmoid - sigmoid.min()) / (sigmoid.max() - sigmoid.min()) * 255.0
    assert np.abs(gray[0].astype(float) - expected).max() <= 1.0
    linear = decode_xray_bytes(chest_xray_bytes(RAMP, WindowCenter=center, WindowWidth=width))
    assert np.abs(linear[0].astype(int) - gray[0]).max() > 10


@pytest.mark.parametrize(
    "attrs, message",
    [
        ({"VOILUTFunction": "CUBIC"}, "VOI LUT Function .CUBIC. is not supported"),
        ({"PresentationLUTShape": "LOG"}, "Presentation LUT Shape .LOG. is not supported"),
    ],
)
def test_unsupported_display_functions_are_refused_by_name(attrs, message):
    with pytest.raises(ImageDecodeError, match=message):
        decode_xray_bytes(chest_xray_bytes(RAMP, WindowCenter=2048, WindowWidth=4096, **attrs))


def test_pixel_padding_is_left_out_of_the_scaling_and_shown_black():
    pixels = np.full((40, 60), 4095, np.uint16)  # padding: a white frame around the film
    pixels[5:35, 5:55] = np.linspace(100, 3000, 50).astype(np.uint16)
    for photometric in ("MONOCHROME2", "MONOCHROME1"):
        data = chest_xray_bytes(pixels, PixelPaddingValue=4095, PhotometricInterpretation=photometric)
        gray, info = decode_dicom(data)
        assert info["padding_pixels"] == 40 * 60 - 30 * 50
        assert (gray[:5] == 0).all() and (gray[:, :5] == 0).all()
        inner = stretch(pixels[5:35, 5:55])
        assert np.array_equal(gray[5:35, 5:55], inner if photometric == "MONOCHROME2" else 255 - inner)


def _patched(name: str, marker: bytes, offset: int, fmt: str, values) -> bytes:
    data = bytearray(corpus.pydicom_file(name).read_bytes())
    at = data.index(marker) + offset
    data[at : at + struct.calcsize(fmt)] = struct.pack(fmt, *values)
    return bytes(data)


@pytest.mark.parametrize(
    "data",
    [
        _patched("MR_small_jp2klossless.dcm", b"\xff\x4f\xff\x51", 8, ">II", (100, 100)),  # J2K SIZ
        _patched("MR_small_jpeg_ls_lossless.dcm", b"\xff\xf7", 5, ">HH", (100, 100)),  # JPEG-LS SOF55
    ],
    ids=["j2k", "jpeg-ls"],
)
def test_a_compressed_frame_must_have_the_headers_size(data):
    with pytest.raises(ImageDecodeError, match="compressed frame is 100x100 but Rows/Columns say 64x64"):
        decode_dicom(data)


# --- the same files through prepare and /predict ---

PREPARE_FILES = {f"pd-{n[:-4]}": corpus.pydicom_file(n).read_bytes() for n in corpus.PYDICOM_FILES}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    from xray_exp.prepare.config import compose_prepare_config
    from xray_exp.prepare.pipeline import run_prepare

    root, out = tmp_path_factory.mktemp("src"), tmp_path_factory.mktemp("out")
    (root / "train").mkdir()
    files = dict(PREPARE_FILES, **{f"nih-{k}": corpus.nih_dicom(k) for k in corpus.LOSSLESS_NIH + corpus.LOSSY_NIH})
    for image_id, data in files.items():
        (root / "train" / f"{image_id}.dicom").write_bytes(data)
    with open(root / "train.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(("image_id", "class_name", "class_id", "rad_id", "x_min", "y_min", "x_max", "y_max"))
        writer.writerows((i, "No finding", 14, "R1", "", "", "", "") for i in files)
    cfg = compose_prepare_config(
        ["dataset=vindr_cxr", f"source={root}", f"out_dir={out}", "longest_side=null", "progress=false", "workers=2"]
    )
    return files, out, run_prepare(cfg)


def test_prepare_writes_every_syntax_as_the_service_decodes_it(prepared):
    files, out, report = prepared
    assert report["issues"]["counts"] == {} and report["images"]["written"] == len(files)
    for image_id, data in files.items():
        written = list(out.glob(f"images/*/{image_id}.png"))
        assert len(written) == 1, image_id
        assert np.array_equal(cv2.imread(str(written[0]), cv2.IMREAD_UNCHANGED), decode_dicom(data)[0]), image_id


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    from xray_exp.serve.app import create_app
    from xray_exp.serve.model_source import load_detector
    from xray_exp.serve.settings import ServeSettings

    detector, info = load_detector(str(h.demo_model()[1]), device="cpu")
    settings = ServeSettings(job_dir=str(tmp_path_factory.mktemp("jobs")))
    with TestClient(create_app(settings, detector, info)) as c:
        c.detector = detector
        yield c


@pytest.mark.parametrize("name", sorted(corpus.PYDICOM_FILES) + [f"nih-{k}" for k in corpus.LOSSLESS_NIH])
def test_predict_serves_every_syntax_like_the_decoder(client, name):
    data = corpus.nih_dicom(name[4:]) if name.startswith("nih-") else corpus.pydicom_file(name).read_bytes()
    response = client.post("/predict", files={"file": ("x.dcm", data)}, params={"conf": 0.01})
    assert response.status_code == 200, response.text
    body = response.json()
    expected, _ = client.detector.predict(decode_xray_bytes(data), conf=0.01)
    assert [f["label"] for f in body["findings"]] == [d.label for d in expected]
    assert np.allclose([f["box"] for f in body["findings"]], [d.box for d in expected], atol=0.01)
    frames = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True).get("NumberOfFrames", 1)
    assert body["image"]["frames"] == int(frames or 1)
    assert (body["image"]["note"] is not None) == (int(frames or 1) > 1)
    if int(frames or 1) > 1:
        assert "frame 1 was analysed" in body["image"]["note"]


def test_predict_refuses_an_unsupported_voi_function_with_422(client):
    data = chest_xray_bytes(RAMP, WindowCenter=2048, WindowWidth=4096, VOILUTFunction="CUBIC")
    response = client.post("/predict", files={"file": ("x.dcm", data)})
    assert response.status_code == 422 and "VOI LUT Function 'CUBIC'" in response.json()["detail"]
