"""Shared pieces of the service tests: images, a demo model built once per session, a uvicorn server.

The model is xray_exp.serve.demo_model's random-init YOLO12n (BatchNorm calibrated on NIH sample images
when ../shared is there), exported to ONNX at IMGSZ; it is built once per test session (cached here).
"""

from __future__ import annotations

import atexit
import hashlib
import os
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from functools import cache
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[2]
NIH_IMAGES = REPO.parent / "shared" / "data" / "nih-cxr14-bbox" / "images"
ARTIFACTS = REPO / "outputs" / "test-artifacts"
FAKE_TRAIN = Path(__file__).resolve().parent / "fake_train.py"
IMGSZ = 160
TOKEN = "test-token-4f1c2a"


def nih_paths() -> list[Path]:
    return sorted(NIH_IMAGES.glob("*.png")) if NIH_IMAGES.is_dir() else []


@cache
def sample_images(count: int = 12) -> tuple[tuple[str, np.ndarray], ...]:
    """(name, uint8 grey) pairs: NIH sample radiographs when present, else synthetic films."""
    from xray_exp.imaging import read_xray

    paths = nih_paths()
    if paths:
        step = max(1, len(paths) // count)
        return tuple((p.name, read_xray(p)) for p in paths[::step][:count])
    from xray_exp.serve.demo_model import synthetic_images

    return tuple((f"synthetic-{i}", img) for i, img in enumerate(synthetic_images(count, size=512, seed=3)))


def _tempdir(prefix: str) -> Path:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def prepare_ultralytics() -> None:
    """Offline Ultralytics (no downloads, fonts in place, settings in a temp folder) before its import;
    tests/conftest.py normally did it already."""
    if "ultralytics" not in sys.modules and not os.environ.get("YOLO_CONFIG_DIR"):
        from xray_exp.yolo.runtime import configure_offline

        configure_offline(_tempdir("serve-yolo-settings-"))


@cache
def demo_model() -> tuple[Path, Path]:
    """(best.pt, best.onnx) of the demo model, built once and kept under outputs/.cache/serve-test-model/
    (keyed by the builders' sources, the ultralytics/torch versions and the calibration images)."""
    from importlib.metadata import version

    import xray_exp.serve.demo_model as builder
    import xray_exp.yolo.demo as weights_builder
    import xray_exp.yolo.export as exporter

    paths = nih_paths()[::13]
    sources = [Path(m.__file__).read_text() for m in (builder, weights_builder, exporter)]
    key = hashlib.sha256(
        "|".join([*sources, version("ultralytics"), version("torch"), str(IMGSZ)] + [p.name for p in paths]).encode()
    ).hexdigest()[:16]
    folder = REPO / "outputs" / ".cache" / "serve-test-model" / key
    if not (folder / "best.onnx").is_file():
        from xray_exp.imaging import read_xray

        prepare_ultralytics()
        staging = _tempdir("serve-model-")
        calibration = [read_xray(p) for p in paths] if paths else None
        builder.build_demo_model(staging, imgsz=IMGSZ, calibration=calibration)
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=folder.parent))
        for name in ("best.pt", "best.onnx"):
            shutil.copy(staging / name, tmp / name)
        try:
            os.replace(tmp, folder)  # atomic: a concurrent session sees all of it or none
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)  # another session got there first
    return folder / "best.pt", folder / "best.onnx"


def png_bytes(image: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", image)
    assert ok
    return buf.tobytes()


def jpeg_bytes(image: np.ndarray, quality: int = 92) -> bytes:
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return buf.tobytes()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServiceProcess:
    """`python -m xray_exp.serve` on a free loopback port, with a clean XRAY_SERVE_* environment."""

    def __init__(self, env: dict[str, str], workdir: Path, log_level: str = "warning"):
        self.port = free_port()
        self.log_level = log_level
        self.url = f"http://127.0.0.1:{self.port}"
        self.workdir = workdir
        self.log_path = workdir / f"server-{self.port}.log"
        base = {k: v for k, v in os.environ.items() if not k.startswith("XRAY_SERVE_") and k != "MLFLOW_TRACKING_URI"}
        self.env = {
            **base,
            "XRAY_SERVE_JOB_DIR": str(workdir / "jobs"),
            "FAKE_TRAIN_OUT": str(workdir / "runs"),
            **env,
        }
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60.0) -> ServiceProcess:
        import httpx

        log = self.log_path.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "xray_exp.serve", "--port", str(self.port), "--log-level", self.log_level],
            env=self.env,
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"server did not answer within {timeout} s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def fake_job_command() -> str:
    """XRAY_SERVE_JOB_COMMAND for the stand-in trainer."""
    return shlex.join([sys.executable, str(FAKE_TRAIN)])


def demo_service(workdir: Path, **extra_env: str):
    """Yield a running service on the demo model (token set, fake training jobs); stop it and check its log."""
    env = {
        "XRAY_SERVE_MODEL": str(demo_model()[1]),
        "XRAY_SERVE_DEVICE": "cpu",
        "XRAY_SERVE_TOKEN": TOKEN,
        "XRAY_SERVE_JOB_COMMAND": fake_job_command(),
        **extra_env,
    }
    service = ServiceProcess(env, workdir).start()
    yield service
    service.stop()
    assert "Traceback" not in service.log(), service.log()[-5000:]
