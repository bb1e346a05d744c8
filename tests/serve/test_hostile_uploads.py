"""Hostile uploads are refused within the limits, in well under a second, and do not slow normal traffic.

    PYTHONPATH=$PWD .venv/bin/python -m pytest tests/serve/test_hostile_uploads.py -q

Inputs: xray_exp.bench.hostile (Deflated DICOM bombs, a flood of data elements, a 10000x10000 16-bit RGBA
PNG, headers claiming huge images or frames, a JPEG 2000 frame larger than its header says). The latency
test runs a real `python -m xray_exp.serve` on loopback.
"""

from __future__ import annotations

import gc
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

try:
    from serve_fixtures import helpers as h
except ImportError:  # tests/ imported as a package
    from tests.serve_fixtures import helpers as h

from xray_exp import imaging
from xray_exp.bench.hostile import DESCRIPTIONS, hostile_inputs
from xray_exp.prepare.convert import ConvertTask, convert_image
from xray_exp.serve import uploads
from xray_exp.serve.app import create_app
from xray_exp.serve.model_source import load_detector
from xray_exp.serve.settings import ServeSettings

CPU_BUDGET_S = 0.5  # per refused input, CPU seconds of the refusing thread


def test_every_input_is_described():
    assert sorted(hostile_inputs()) == sorted(DESCRIPTIONS)


@pytest.mark.serial  # a CPU-time budget, measured: alone on the machine
@pytest.mark.parametrize("name", sorted(DESCRIPTIONS))
def test_service_decoder_refuses_before_decoding(name, monkeypatch):
    """The pixel decoders (pydicom's plugins, OpenCV) are never called for a hostile input."""
    import cv2
    import pydicom.pixels

    def must_not_decode(*args, **kwargs):
        raise AssertionError(f"{name} reached a pixel decoder")

    monkeypatch.setattr(pydicom.pixels, "pixel_array", must_not_decode)
    monkeypatch.setattr(cv2, "imdecode", must_not_decode)
    data = hostile_inputs()[name]  # built (once, cached) before the clock starts
    started = time.thread_time()
    with pytest.raises(uploads.UploadError) as err:
        uploads.decode_upload(data, 100_000_000)
    assert time.thread_time() - started < CPU_BUDGET_S
    assert err.value.status_code == 413, err.value.message
    assert any(word in err.value.message for word in ("limit", "reads", "tag order")), err.value.message


def test_bitmap_decoder_checks_pixel_bytes_before_opencv(monkeypatch):
    import cv2

    monkeypatch.setattr(cv2, "imdecode", lambda *a: pytest.fail("cv2.imdecode called on an over-limit PNG"))
    with pytest.raises(imaging.ImageTooLarge, match="800000000 bytes decoded"):
        imaging.decode_bitmap(hostile_inputs()["png-10000x10000-rgba16"])


@pytest.mark.serial  # a CPU-time budget, measured: alone on the machine
@pytest.mark.parametrize("name", sorted(DESCRIPTIONS))
def test_prepare_reports_image_too_large_by_name(name, tmp_path):
    suffix = ".png" if name.startswith("png") else ".jpg" if name.startswith("jpeg") else ".dicom"
    source = tmp_path / f"{name}{suffix}"
    source.write_bytes(hostile_inputs()[name])
    task = ConvertTask(name, str(source), str(tmp_path / "o.png"), str(tmp_path / "o.txt"), (), ())
    gc.collect()  # the refusal's own CPU: a collection of the whole test process's garbage is not its cost
    gc.disable()
    try:
        started = time.thread_time()
        result = convert_image(task)
        spent = time.thread_time() - started
    finally:
        gc.enable()
    assert spent < CPU_BUDGET_S
    assert not result.ok and [i.kind for i in result.issues] == ["image_too_large"], result.issues
    assert result.issues[0].image_id == name and str(source) in result.issues[0].message


class SlowDetector:
    """A detector that takes `seconds` per image (to fill the pool)."""

    def __init__(self, detector, seconds: float):
        self.detector, self.seconds = detector, seconds

    def predict(self, *args, **kwargs):
        time.sleep(self.seconds)
        return self.detector.predict(*args, **kwargs)


def _slow_client(tmp_path, seconds: float, **limits) -> TestClient:
    detector, info = load_detector(str(h.demo_model()[1]), device="cpu")
    settings = ServeSettings(job_dir=str(tmp_path / "jobs"), **limits)
    return TestClient(create_app(settings, SlowDetector(detector, seconds), info))


def _post_png(client, results: list, image: np.ndarray) -> None:
    results.append(client.post("/predict", files={"file": ("x.png", h.png_bytes(image))}))


@pytest.mark.serial  # a 0.5 s request timeout, measured
def test_full_pool_answers_503_and_a_slow_request_504(tmp_path):
    image = h.sample_images(2)[0][1]
    with _slow_client(tmp_path, 1.5, workers=1, queue_size=1, request_timeout_s=10) as client:
        results: list = []
        threads = [threading.Thread(target=_post_png, args=(client, results, image)) for _ in range(4)]
        for thread in threads:
            thread.start()
            time.sleep(0.2)
        for thread in threads:
            thread.join()
        codes = sorted(r.status_code for r in results)
        assert codes == [200, 200, 503, 503], [r.text for r in results]
        busy = next(r for r in results if r.status_code == 503)
        assert "server busy" in busy.json()["detail"] and busy.headers["retry-after"] == "1"
    with _slow_client(tmp_path, 2.0, workers=1, queue_size=1, request_timeout_s=0.5) as client:
        started = time.monotonic()
        results = []
        _post_png(client, results, image)
        assert results[0].status_code == 504 and "XRAY_SERVE_REQUEST_TIMEOUT_S" in results[0].json()["detail"]
        assert time.monotonic() - started < 1.5


def _latencies(url: str, image: bytes, count: int) -> list[float]:
    out = []
    with httpx.Client(timeout=30) as client:
        for _ in range(count):
            started = time.perf_counter()
            response = client.post(url + "/predict", files={"file": ("x.png", image)})
            out.append(time.perf_counter() - started)
            assert response.status_code == 200, response.text
    return out


def p99(values: list[float]) -> float:
    return float(np.percentile(values, 99))


PAUSE_S = 0.05  # between one attacker's hostile requests (two attackers: up to ~30 hostile requests/s)
ROUNDS = 4  # baseline and attacked phases alternate, so load from elsewhere hits both alike
ATTACKER = """
import sys, time, httpx
from pathlib import Path
PAUSE_S = float(sys.argv[2])
inputs, codes = {p.name: p.read_bytes() for p in sorted(Path(sys.argv[3]).iterdir())}, []
print("ready", flush=True)
with httpx.Client(timeout=30) as client:
    while sys.stdin.readline().strip() == "go":  # one round of every input per line
        for name, data in inputs.items():
            codes.append(client.post(sys.argv[1] + "/predict", files={"file": ("x", data)}).status_code)
            time.sleep(PAUSE_S)
        print(",".join(map(str, codes)), flush=True)
        codes.clear()
"""


def _measure_under_attack(service_url: str, image: bytes, folder: Path) -> tuple[list, list, list[str]]:
    """ROUNDS alternating phases: normal requests alone, then while two attacker processes send every
    hostile input in a loop. Returns (baseline latencies, attacked latencies, the hostile status codes)."""
    attackers = [
        subprocess.Popen(
            [sys.executable, "-c", ATTACKER, service_url, str(PAUSE_S), str(folder)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=os.environ,
        )
        for _ in range(2)
    ]
    codes: list[str] = []
    baseline, loaded = [], []
    try:
        for proc in attackers:
            assert proc.stdout.readline().strip() == "ready"
        _latencies(service_url, image, 5)  # warm-up
        for _ in range(ROUNDS):
            baseline += _latencies(service_url, image, 12)
            stop = threading.Event()

            def keep_attacking(proc, stop=stop):
                while not stop.is_set():
                    proc.stdin.write("go\n")
                    proc.stdin.flush()
                    codes.extend(proc.stdout.readline().strip().split(","))

            feeders = [threading.Thread(target=keep_attacking, args=(p,)) for p in attackers]
            for thread in feeders:
                thread.start()
            loaded += _latencies(service_url, image, 12)
            stop.set()
            for thread in feeders:
                thread.join(timeout=60)
    finally:
        for proc in attackers:
            proc.kill()
            proc.wait()
    return baseline, loaded, codes


ATTEMPTS = 3  # p99 of 48 requests is close to their maximum: one stray stall of the host can cross 2x.


@pytest.mark.slow
@pytest.mark.serial  # latency against a baseline: alone on the machine
def test_hostile_traffic_keeps_normal_latency(tmp_path):
    """Normal requests keep their latency while two attacker processes send every hostile input in a loop:
    p99 under twice the baseline's, and every hostile request gets 413. Before bounded decoding one hostile
    upload cost seconds of CPU, so every attempt failed by a wide margin; an attempt is repeated (at most
    ATTEMPTS) only so that a single stall of a shared host does not decide the result."""
    image = h.png_bytes(h.sample_images(2)[0][1])
    folder = tmp_path / "hostile"
    folder.mkdir()
    for name, data in hostile_inputs().items():
        (folder / name).write_bytes(data)
    service_gen = h.demo_service(tmp_path)
    service = next(service_gen)
    ratios = []
    try:
        for _ in range(ATTEMPTS):
            baseline, loaded, codes = _measure_under_attack(service.url, image, folder)
            assert len(codes) >= len(hostile_inputs()) and set(codes) == {"413"}, codes
            ratios.append(p99(loaded) / p99(baseline))
            print(
                f"p99 baseline {p99(baseline) * 1000:.0f} ms, under attack {p99(loaded) * 1000:.0f} ms "
                f"(medians {statistics.median(baseline) * 1000:.0f} / {statistics.median(loaded) * 1000:.0f} "
                f"ms, {len(codes)} hostile requests)"
            )
            if ratios[-1] < 2:
                break
    finally:
        next(service_gen, None)
    assert min(ratios) < 2, f"p99 under attack / baseline per attempt: {ratios}"
