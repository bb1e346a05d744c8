"""Shared test set-up: offline Ultralytics in a throw-away settings folder, helpers to run the CLI."""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from xray_exp.yolo.runtime import configure_offline

REPO = Path(__file__).resolve().parents[1]
SHARED_NIH = REPO.parent / "shared" / "data" / "nih-cxr14-bbox"
_SESSION_DIR = Path(tempfile.mkdtemp(prefix="xray_exp-tests-"))
atexit.register(shutil.rmtree, _SESSION_DIR, ignore_errors=True)
# Before any test module imports ultralytics: offline, settings outside the user's home.
configure_offline(_SESSION_DIR / "ultralytics")
os.environ.setdefault("XRAY_EXP_MODEL_CACHE", str(_SESSION_DIR / "model-cache"))
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.pop("MLFLOW_TRACKING_URI", None)  # tests choose their stores; a user's server is never written to


@pytest.fixture(scope="session")
def session_dir() -> Path:
    return _SESSION_DIR


def _restore_tracking_env(before: str | None) -> None:
    if before is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = before


@pytest.fixture(autouse=True, scope="module")
def keep_tracking_env_per_module():
    """mlflow.set_tracking_uri() also sets MLFLOW_TRACKING_URI in os.environ, and `tracking=local` (run_cli passes
    os.environ on) logs wherever it points: each module, and each test (below), gives back the value it started
    with, so no test logs into an earlier test's store or a server that test has stopped."""
    before = os.environ.get("MLFLOW_TRACKING_URI")
    yield
    _restore_tracking_env(before)


@pytest.fixture(autouse=True)
def keep_tracking_env_per_test():
    before = os.environ.get("MLFLOW_TRACKING_URI")
    yield
    _restore_tracking_env(before)


@pytest.fixture(autouse=True)
def keep_sys_path():
    """mlflow.pyfunc.load_model puts the model's code folder (a partial copy of xray_exp) in front of sys.path
    for the rest of the process, and Ultralytics' DDP launcher copies sys.path into the child it starts: a later
    test's DDP child then imported xray_exp.mlops from that copy. Each test gives back the sys.path it found."""
    before = list(sys.path)
    yield
    sys.path[:] = before


def run_cli(
    args: list[str], root: Path, timeout: float = 600, env: dict | None = None, check: bool = False
) -> subprocess.CompletedProcess:
    """Run `python -m ...` with XRAY_EXP_ROOT=root (outputs land in root/outputs)."""
    full_env = {**os.environ, "XRAY_EXP_ROOT": str(root), "PYTHONUNBUFFERED": "1", **(env or {})}
    proc = subprocess.run(
        [sys.executable, "-m", *args], cwd=REPO, env=full_env, capture_output=True, text=True, timeout=timeout
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{args} exited {proc.returncode}\nSTDOUT:\n{proc.stdout[-4000:]}\nSTDERR:\n{proc.stderr[-6000:]}"
        )
    return proc


def run_dir_of(proc: subprocess.CompletedProcess) -> Path:
    for line in proc.stdout.splitlines():
        if line.startswith("RUN_DIR="):
            return Path(line.split("=", 1)[1])
    raise AssertionError(f"no RUN_DIR line in output:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")


@pytest.fixture(scope="session")
def synthetic_tiny(session_dir) -> Path:
    """The debug=smoke synthetic dataset (data.yaml; its sizes are smoke.yaml's), generated once per session."""
    from omegaconf import OmegaConf

    from xray_exp import CONF_DIR
    from xray_exp.data.synthetic import ensure_synthetic_dataset

    smoke = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "debug" / "smoke.yaml").dataset.synthetic)
    return ensure_synthetic_dataset(session_dir / "datasets", **smoke)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MlflowServer:
    """A real `mlflow server` process on loopback with an sqlite backend in a temp folder."""

    def __init__(self, root: Path, port: int | None = None):
        self.root, self.port = root, port or free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 90) -> MlflowServer:
        import time
        import urllib.request

        self.root.mkdir(parents=True, exist_ok=True)
        cmd = [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            f"sqlite:///{self.root / 'mlflow.db'}",
            "--artifacts-destination",
            str(self.root / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            "1",
        ]
        log = open(self.root / f"server-{self.port}.log", "a")
        self.proc = subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"},
        )
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                log_text = (self.root / f"server-{self.port}.log").read_text()
                raise RuntimeError(f"mlflow server exited: {log_text[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.5)
        raise RuntimeError("mlflow server did not become healthy")

    def kill(self) -> None:
        import signal

        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)


@pytest.fixture(scope="session")
def mlflow_server(session_dir):
    server = MlflowServer(session_dir / "mlflow-server").start()
    yield server
    server.kill()
