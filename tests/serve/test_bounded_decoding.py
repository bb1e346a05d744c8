"""Legal-but-huge uploads: decoding in bounded memory, the Deflated bound from the header, the default pixel
limit, the large-decode lane, and the service's smaller defects (paths in /config, the dataset path in the
model line, the `epochs=2` shortcut, GDCM for 12-bit JPEG Extended).

    PYTHONPATH=$PWD .venv/bin/python -m pytest tests/serve/test_bounded_decoding.py -q
"""

from __future__ import annotations

import asyncio
import io
import threading
import time
import tracemalloc

import cv2
import numpy as np
import pydicom
import pytest
from fastapi.testclient import TestClient
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.pixels import apply_modality_lut, apply_voi_lut, pixel_array
from pydicom.sequence import Sequence

try:
    from serve_fixtures import helpers as h
except ImportError:  # tests/ imported as a package
    from tests.serve_fixtures import helpers as h

from xray_exp import imaging
from xray_exp.bench.legal_huge import deflated_dicom_ramp, deflated_private_bomb, png16_ramp
from xray_exp.data.synthetic_dicom import chest_xray_bytes
from xray_exp.imaging import dicom_decode
from xray_exp.serve import uploads
from xray_exp.serve.app import create_app
from xray_exp.serve.model_source import load_detector, public_description
from xray_exp.serve.overrides import validate_overrides
from xray_exp.serve.settings import ServeSettings
from xray_exp.serve.worker_pool import Handoff, PoolBusy, WorkerPool

SIDE = 3000  # 16-bit: 17 MiB of pixels, decoded in ~0.1 s
PIXEL_BYTES = SIDE * SIDE * 2


@pytest.fixture(scope="module")
def huge_inputs() -> dict[str, bytes]:
    ramp = np.repeat((np.arange(SIDE, dtype=np.uint32) * 65535 // (SIDE - 1)).astype(np.uint16)[:, None], SIDE, 1)
    return {
        "png16": png16_ramp(SIDE, SIDE),
        "deflated": deflated_dicom_ramp(SIDE, SIDE),
        "explicit": chest_xray_bytes(ramp),
        "ramp": ramp,
    }


@pytest.mark.parametrize("kind", ["png16", "deflated", "explicit"])
def test_decoding_stays_within_2_5x_the_pixel_bytes(kind, huge_inputs):
    """Before: float32/float64 copies of the frame, 7x the pixel bytes for a 16-bit PNG."""
    data = huge_inputs[kind]
    imaging.decode_xray_bytes(chest_xray_bytes())  # imports and plugin set-up outside the measurement
    tracemalloc.start()
    try:
        gray = imaging.decode_xray_bytes(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak <= 2.5 * PIXEL_BYTES, f"{kind}: peak {peak / 2**20:.1f} MiB for {PIXEL_BYTES / 2**20:.1f} MiB"
    expected = imaging.to_uint8(huge_inputs["ramp"])  # the whole-frame float32 arithmetic
    assert gray.dtype == np.uint8 and np.array_equal(gray, expected)


def reference_window(ds) -> np.ndarray:
    """The whole-frame path: modality LUT, VOI LUT, padding mask, min-max in float32, inversion."""
    raw = pixel_array(ds)
    mask = None
    if "PixelPaddingValue" in ds:
        lo, hi = sorted((int(ds.PixelPaddingValue), int(ds.get("PixelPaddingRangeLimit", ds.PixelPaddingValue))))
        mask = (raw >= lo) & (raw <= hi)
        mask = mask if mask.any() else None
    image = imaging.to_uint8(apply_voi_lut(apply_modality_lut(raw, ds), ds), mask)
    if ds.PhotometricInterpretation == "MONOCHROME1" or ds.get("PresentationLUTShape") == "INVERSE":
        image = 255 - image
        if mask is not None:
            image[mask] = 0
    return image


def test_windowing_through_a_lookup_table_equals_the_frame_arithmetic():
    rng = np.random.default_rng(7)
    for trial in range(40):
        bits = int(rng.choice([8, 12, 16]))
        arr = rng.integers(0, 2**bits, size=(37, 53)).astype(np.uint16 if bits > 8 else np.uint8)
        ds = pydicom.dcmread(io.BytesIO(chest_xray_bytes(arr)))
        ds.BitsStored, ds.HighBit = bits, bits - 1
        if bits > 8 and trial % 4 == 0:
            ds.PixelRepresentation = 1
        if trial % 2:
            ds.RescaleSlope, ds.RescaleIntercept = float(rng.choice([0.5, -2, 3.3])), float(rng.integers(-1024, 1024))
        if trial % 5 == 1:
            item = Dataset()
            item.LUTDescriptor = [200, 10, 16]
            item.LUTData = [int(v) for v in rng.integers(0, 65535, 200)]
            ds.VOILUTSequence = Sequence([item])  # not monotonic: the range comes from the values present
        elif trial % 3 == 0:
            ds.WindowCenter, ds.WindowWidth = float(rng.integers(0, 2**bits)), float(rng.integers(1, 2**bits))
            ds.VOILUTFunction = str(rng.choice(["LINEAR", "LINEAR_EXACT", "SIGMOID"]))
        if trial % 4 == 1:
            ds.PixelPaddingValue = int(arr.flat[0])
            ds.PixelPaddingRangeLimit = int(arr.flat[0]) + 30
        if trial % 3 == 2:
            ds.PhotometricInterpretation = "MONOCHROME1"
        image, info = dicom_decode.dicom_to_uint8(ds)
        assert np.array_equal(image, reference_window(ds)), trial


@pytest.mark.serial  # a CPU-time budget
def test_hidden_private_element_is_refused_before_inflating_it():
    """A Deflated upload hiding a 64 MiB private element (1 GiB in the benchmark: the same path) before a small
    image: refused at its declared length, with one piece inflated (before: the whole 128 MiB budget)."""
    data = deflated_private_bomb(64 << 20)
    tracemalloc.start()
    started = time.thread_time()
    try:
        with pytest.raises(uploads.UploadError) as err:
            uploads.decode_upload(data, 100_000_000)
        cpu = time.thread_time() - started
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert err.value.status_code == 413 and "(0009,1010)" in err.value.message, err.value.message
    assert cpu < 0.1 and peak < 4 * 2**20, (cpu, peak)


def test_deflated_sequences_and_private_elements_decode_like_explicit(huge_inputs):
    """The element walk follows nested undefined-length sequences (pydicom writes them so) and private data."""
    arr = huge_inputs["ramp"][::40, ::40].copy()
    item = Dataset()
    item.LUTDescriptor = [4096, 0, 16]
    item.add_new(0x00283006, "US", list(range(0, 65536, 16)))  # LUT Data
    inner = Dataset()
    inner.CodeValue, inner.CodingSchemeDesignator = "123", "99TEST"
    item.ConceptNameCodeSequence = Sequence([inner])
    plain = chest_xray_bytes(arr, VOILUTSequence=Sequence([item]))
    ds = pydicom.dcmread(io.BytesIO(plain))
    ds.private_block(0x0029, "TESTVENDOR", create=True).add_new(0x10, "OB", b"\x01" * 300_000)
    ds.file_meta.TransferSyntaxUID = pydicom.uid.DeflatedExplicitVRLittleEndian
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    deflated, _ = dicom_decode.decode_dicom_bytes(buf.getvalue())
    explicit, _ = dicom_decode.decode_dicom_bytes(plain)
    assert np.array_equal(deflated, explicit)


def _png_header(width: int, height: int, depth: int = 16) -> bytes:
    from xray_exp.bench.hostile import _png_chunk

    ihdr = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([depth, 0, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr)


def test_default_pixel_bytes_limit_fits_the_largest_chest_plates():
    assert imaging.DEFAULT_LIMITS.max_pixel_bytes == ServeSettings().max_pixel_bytes == 48 * 2**20
    assert uploads.check_header(_png_header(4300, 4300), 100_000_000).frame_bytes == 4300 * 4300 * 2
    with pytest.raises(uploads.UploadError) as err:
        uploads.check_header(_png_header(5100, 5100), 100_000_000)
    assert err.value.status_code == 413 and "pixel-bytes limit is 50331648" in err.value.message


def test_large_decodes_have_their_own_lane():
    """One large decode runs, one waits, the next is refused (503) while small work keeps flowing."""
    release = threading.Event()
    started = threading.Event()

    def large():
        started.set()
        release.wait(10)
        return "large"

    def work(kind):
        return Handoff(large) if kind == "large" else "small"

    async def scenario():
        pool = WorkerPool(2, 0, 10, large_workers=1, large_queue_size=1)
        running = [asyncio.ensure_future(pool.run(work, "large")) for _ in range(2)]
        await asyncio.get_running_loop().run_in_executor(None, started.wait, 10)
        while pool.large.admitted < 2:
            await asyncio.sleep(0.01)
        with pytest.raises(PoolBusy, match="large-decode"):
            await pool.run(work, "large")
        small = [await pool.run(work, "small") for _ in range(5)]  # both ordinary workers are free
        assert not any(task.done() for task in running)
        release.set()
        results = await asyncio.gather(*running)
        pool.shutdown()
        return small, results

    small, results = asyncio.run(scenario())
    assert small == ["small"] * 5 and results == ["large", "large"]


class RecordingDetector:
    """Records the thread and image size each prediction ran with."""

    def __init__(self, detector):
        self.detector, self.imgsz, self.calls = detector, detector.imgsz, []

    def predict(self, gray, **kwargs):
        self.calls.append((threading.current_thread().name, gray.shape))
        return self.detector.predict(gray, **kwargs)


@pytest.fixture(scope="module")
def demo():
    return load_detector(str(h.demo_model()[1]), device="cpu")


def test_service_lane_downscale_and_boxes_in_original_pixels(demo, tmp_path):
    detector, info = demo
    recorder = RecordingDetector(detector)
    settings = ServeSettings(job_dir=str(tmp_path / "jobs"), large_decode_bytes=1_000_000, annotate_max_side=512)
    base = cv2.resize(h.sample_images(2)[0][1], (512, 512), interpolation=cv2.INTER_AREA)
    big = cv2.resize(base, (2048, 2048), interpolation=cv2.INTER_NEAREST)  # 4 MiB: the large lane
    with TestClient(create_app(settings, recorder, info)) as client:
        small = client.post("/predict", files={"file": ("x.png", h.png_bytes(base))}, params={"conf": 0.01})
        large = client.post("/predict", files={"file": ("x.png", h.png_bytes(big))}, params={"conf": 0.01})
    assert small.status_code == large.status_code == 200, large.text
    (lane_small, shape_small), (lane_large, shape_large) = recorder.calls
    assert lane_small.startswith("predict") and lane_large.startswith("large-decode")
    assert shape_small == shape_large == (512, 512)  # downscaled to the working size before inference
    assert large.json()["image"]["width"] == 2048
    expected, _ = detector.predict(cv2.resize(big, (512, 512), interpolation=cv2.INTER_AREA), conf=0.01)
    got = large.json()["findings"]
    assert len(got) == len(expected) > 0
    for finding, det in zip(got, expected, strict=True):
        assert np.allclose(finding["box"], np.asarray(det.box) * 4, atol=0.02)


def test_large_lane_predictions_are_observed_and_render_takes_the_lane(demo, tmp_path):
    """A prediction finished in the large lane is counted and audited like any other, and a large /render decodes
    there too (so large viewer uploads cannot take the ordinary workers)."""
    import json

    detector, info = demo
    recorder = RecordingDetector(detector)
    audit = tmp_path / "audit.log"
    settings = ServeSettings(job_dir=str(tmp_path / "jobs"), large_decode_bytes=1_000_000, audit_log=str(audit))
    big = cv2.resize(h.sample_images(1)[0][1], (2048, 2048), interpolation=cv2.INTER_NEAREST)  # 4 MiB of pixels
    lanes = []
    with TestClient(create_app(settings, recorder, info)) as client:
        large_submit = client.app.state.pool.large.submit

        def submit(fn, *args):  # the work handed to the large lane, by name
            lanes.append(getattr(fn, "__name__", None) or fn.func.__name__)
            return large_submit(fn, *args)

        client.app.state.pool.large.submit = submit
        predicted = client.post("/predict", files={"file": ("x.png", h.png_bytes(big))}, params={"conf": 0.01})
        rendered = client.post("/render", files={"file": ("x.png", h.png_bytes(big))})
        metrics = client.get("/metrics").text
    assert predicted.status_code == rendered.status_code == 200, (predicted.text, rendered.text)
    assert recorder.calls[0][0].startswith("large-decode")
    assert sorted(lanes) == ["_finish_handoff", "finish_render"], lanes
    assert f'xray_predictions_total{{model="{info.name}",version="{info.version}"}} 1.0' in metrics
    lines = [json.loads(line) for line in audit.read_text().splitlines()]
    audited = {line["route"]: line for line in lines if line.get("event") == "request"}
    assert audited["/predict"]["outcome"] == "ok" and audited["/predict"]["image"]["width"] == 2048
    assert audited["/predict"]["findings"] == len(predicted.json()["findings"])
    assert audited["/render"]["outcome"] == "ok"


def test_config_shows_server_paths_only_with_the_token(demo, tmp_path):
    detector, info = demo
    settings = ServeSettings(
        model=str(h.demo_model()[1]),
        job_dir=str(tmp_path / "jobs"),
        token=h.TOKEN,
        tracking_uri=f"sqlite:///{tmp_path}/mlflow.db",
    )
    with TestClient(create_app(settings, detector, info)) as client:
        anonymous = client.get("/config")
        trusted = client.get("/config", headers={"Authorization": f"Bearer {h.TOKEN}"})
        wrong = client.get("/config", headers={"Authorization": "Bearer nope"})
    folder = str(h.demo_model()[1].parent)
    for response in (anonymous, wrong):
        assert folder not in response.text and str(tmp_path) not in response.text, response.text
        assert response.json()["model_source"] == "…/best.onnx"
    assert trusted.json()["model_source"] == str(h.demo_model()[1]) and str(tmp_path) in trusted.text


def test_model_line_names_the_dataset_not_its_path():
    text = "Ultralytics YOLO12n model trained on /srv/hospital/prepared/nih_cxr14/data.yaml"
    assert public_description(text) == "Ultralytics YOLO12n model trained on nih_cxr14"
    assert public_description("Ultralytics YOLO12n model trained on coco8.yaml") == (
        "Ultralytics YOLO12n model trained on coco8.yaml"
    )


def test_jobs_accept_the_cli_epochs_shortcut(tmp_path):
    assert validate_overrides(["epochs=2", "imgsz=64", "debug=smoke"]) == [
        "train.epochs=2",
        "train.imgsz=64",
        "debug=smoke",
    ]
    with pytest.raises(ValueError, match="dataset.data_yaml"):
        validate_overrides(["data=/etc/data.yaml"])  # the shortcut's key stays refused
    settings = ServeSettings(job_dir=str(tmp_path / "jobs"), token=h.TOKEN, job_command=h.fake_job_command().split())
    with TestClient(create_app(settings, None, None)) as client:
        response = client.post(
            "/trigger-training",
            json={"overrides": ["epochs=2", "debug=smoke"]},
            headers={"Authorization": f"Bearer {h.TOKEN}"},
        )
    assert response.status_code == 202, response.text
    assert response.json()["overrides"] == ["train.epochs=2", "debug=smoke"]


def test_gdcm_decodes_12_bit_jpeg_extended_that_libjpeg_refuses(demo, tmp_path):
    import gdcm

    path = get_testdata_file("JPEG-lossy.dcm")
    gray, info = dicom_decode.decode_dicom_bytes(open(path, "rb").read())
    assert gray.shape == (1024, 256) and info["transfer_syntax"] == "1.2.840.10008.1.2.4.51"
    reader = gdcm.ImageReader()  # GDCM's own file reader: an independent path to the same pixels
    reader.SetFileName(path)
    assert reader.Read()
    raw = np.frombuffer(reader.GetImage().GetBuffer().encode("utf-8", "surrogateescape"), "<u2").reshape(1024, 256)
    assert np.array_equal(gray, imaging.to_uint8(raw))
    # pylibjpeg stays first where it decodes: GDCM and libjpeg differ by 1 on lossy 12-bit JPEG
    other = get_testdata_file("JPGExtended.dcm")
    assert np.array_equal(
        dicom_decode.first_frame(pydicom.dcmread(other)), pixel_array(other, decoding_plugin="pylibjpeg")
    )
    detector, info = demo
    with TestClient(create_app(ServeSettings(job_dir=str(tmp_path / "jobs")), detector, info)) as client:
        response = client.post("/predict", files={"file": ("x.dcm", open(path, "rb").read())})
    assert response.status_code == 200, response.text
    assert response.json()["image"] == {
        "format": "dicom",
        "width": 256,
        "height": 1024,
        "frames": 1,
        "note": None,
        "pixel_spacing_mm": [2.26, 2.26],
    }
