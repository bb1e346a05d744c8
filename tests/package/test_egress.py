"""Zero egress: a smoke training and a service request attempt no connection but loopback and local sockets.

    PYTHONPATH=$PWD .venv/bin/python -m pytest tests/package/test_egress.py -q

The commands run under `strace -f -e trace=connect,sendto,sendmsg` (scripts/test.sh installs strace when
missing); every address they try is checked: AF_UNIX / AF_NETLINK and loopback are fine, anything else (and
any DNS query, port 53, even to a loopback resolver) fails the test. The children get this environment minus
the telemetry switches, so what keeps them quiet is the product's own set-up (xray_exp.yolo.runtime), not ours.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

try:
    from polling import wait_until
    from serve_fixtures import helpers as h
except ImportError:  # tests/ imported as a package
    from tests.polling import wait_until
    from tests.serve_fixtures import helpers as h

from xray_exp.offline import TELEMETRY_ENV

REPO = Path(__file__).resolve().parents[2]
STRACE = ["strace", "-f", "-qq", "--seccomp-bpf", "-e", "trace=connect,sendto,sendmsg"]
FAMILY = re.compile(r"sa_family=(AF_\w+)")
PORT = re.compile(r"sin6?_port=htons\((\d+)\)")
ORT_FIRST_LOOKUP_S = 12  # ONNX Runtime's first telemetry lookup comes ~9 s after an InferenceSession opens
WATCH_INTERVAL_S = 0.5
ADDRESS = re.compile(r'inet_addr\("([^"]+)"\)|inet_pton\(AF_INET6, "([^"]+)"')


def _strace_works() -> bool:
    if not shutil.which("strace"):
        return False
    return subprocess.run([*STRACE, "-o", os.devnull, "true"], capture_output=True).returncode == 0


pytestmark = pytest.mark.skipif(not _strace_works(), reason="strace missing or ptrace not permitted")


def egress_attempts(log: Path) -> list[str]:
    """strace lines that try to reach anything but a local socket or loopback (and every DNS query)."""
    bad = []
    for line in log.read_text(errors="replace").splitlines():
        family = FAMILY.search(line)
        if not family or family.group(1) in ("AF_UNIX", "AF_NETLINK", "AF_UNSPEC"):
            continue
        port, address = PORT.search(line), ADDRESS.search(line)
        host = (address.group(1) or address.group(2)) if address else ""
        loopback = bool(host) and ipaddress.ip_address(host.removeprefix("::ffff:")).is_loopback
        if family.group(1) not in ("AF_INET", "AF_INET6") or not loopback or (port and port.group(1) == "53"):
            bad.append(line)
    return bad


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def watch_for_egress(log: Path, seconds: float) -> list[str]:
    """An absence can only be watched for: read the trace every WATCH_INTERVAL_S for `seconds`, returning
    the first egress attempts as soon as they appear (an empty list: none in the whole window)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if attempts := egress_attempts(log):
            return attempts
        time.sleep(WATCH_INTERVAL_S)
    return egress_attempts(log)


def quiet_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in TELEMETRY_ENV and not k.startswith("XRAY_SERVE_")}
    return {**env, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1", **extra}


def test_guard_sees_outbound_attempts(tmp_path):
    """The guard itself: a connect to a non-loopback address and a DNS query are reported, a loopback connect is
    not. strace injects the errors, so the syscalls never run and nothing leaves the machine. (ONNX Runtime's
    own lookup, ~9 s after a session opens and only some of the time, is too irregular to test the guard on.)"""
    log = tmp_path / "strace.log"
    code = (
        "import socket\n"
        "for address in (('127.0.0.1', 9), ('192.0.2.1', 443)):\n"
        "    try: socket.create_connection(address, timeout=1)\n"
        "    except OSError: pass\n"
        "socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('192.0.2.53', 53))\n"
    )
    inject = ["-e", "inject=connect:error=ENETUNREACH", "-e", "inject=sendto:error=ENETUNREACH"]
    proc = subprocess.run(
        [*STRACE, *inject, "-o", str(log), sys.executable, "-c", code],
        env=quiet_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    attempts = egress_attempts(log)
    text = log.read_text()
    assert "127.0.0.1" in text and not any("127.0.0.1" in line for line in attempts), text[-2000:]
    assert any("192.0.2.1" in line and "htons(443)" in line for line in attempts), (text[-2000:], proc.stderr)
    assert any("192.0.2.53" in line and "htons(53)" in line for line in attempts), (text[-2000:], proc.stderr)


def test_smoke_training_makes_no_outbound_connection(tmp_path):
    log = tmp_path / "strace.log"
    proc = subprocess.run(
        [*STRACE, "-o", str(log), sys.executable, "-m", "xray_exp.train", "debug=smoke", "tracking=local"],
        cwd=REPO,
        env=quiet_env(XRAY_EXP_ROOT=str(tmp_path)),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "ONNX parity" in proc.stdout  # an InferenceSession was opened (ORT's telemetry would start here)
    assert egress_attempts(log) == []


def test_service_request_makes_no_outbound_connection(tmp_path):
    log = tmp_path / "strace.log"
    port = h.free_port()
    env = quiet_env(
        XRAY_SERVE_MODEL=str(h.demo_model()[1]), XRAY_SERVE_DEVICE="cpu", XRAY_SERVE_JOB_DIR=str(tmp_path / "jobs")
    )
    server = subprocess.Popen(
        [
            *STRACE,
            "-o",
            str(log),
            sys.executable,
            "-m",
            "xray_exp.serve",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: answers(url + "/health"), 120, "the service's /health", interval=0.3, alive=server)
        # The service opens its InferenceSession before it answers: ORT's lookup would come within
        # ORT_FIRST_LOOKUP_S from now (counted from this event, not from the launch, which a busy machine slows).
        ready = time.monotonic()
        image = h.png_bytes(h.sample_images(2)[0][1])
        assert httpx.post(url + "/predict", files={"file": ("x.png", image)}, timeout=60).status_code == 200
        assert watch_for_egress(log, ready + ORT_FIRST_LOOKUP_S - time.monotonic()) == []
    finally:
        for child in psutil.Process(server.pid).children():  # the server under strace: strace ends with it
            child.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    assert "sendto(" in log.read_text() and '"HTTP/1.1 200' in log.read_text()  # the guard saw the answer go out
    assert egress_attempts(log) == []
