"""A multi-host Ray cluster on one machine for the `cluster` tests: scripts/cluster_sim.sh driven from Python.

    with SimCluster.create(tmp_path) as cluster:     # skip (pytest) where namespaces cannot be made
        proc = cluster.driver(["xray_exp.ray_main", "mode=tune", ...], root=tmp_path, log=tmp_path / "d.log")
        cluster.kill("w2"); cluster.start("w2")        # a host lost and back
        cluster.processes("w1")                        # command lines of every process in that host

Each host is a network namespace (`<prefix>-head`, `-w1`, `-w2`) on a private bridge (10.213.<n>.0/24);
the head has no CPUs for tasks, each worker 1 CPU, so work lands on the workers. `down` runs when the
block ends (also after a failure) and at interpreter exit.
"""

from __future__ import annotations

import atexit
import os
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "cluster_sim.sh"
RAY = str(Path(sys.executable).with_name("ray"))


def _probe_namespaces(prefix: str) -> str | None:
    """None when this process can create a network namespace, else the reason it cannot."""
    if os.geteuid() != 0:
        return "network namespaces need root (CI runs the cluster tests as root)"
    if shutil.which("ip") is None:
        return "iproute2 (`ip`) is not installed"
    probe = subprocess.run(["ip", "netns", "add", f"{prefix}-probe"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"cannot create a network namespace here: {probe.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", f"{prefix}-probe"], capture_output=True)
    return None


class SimCluster:
    def __init__(self, state_dir: Path, workers: int = 2):
        self.prefix = "xr" + secrets.token_hex(2)
        self.subnet = f"10.213.{100 + secrets.randbelow(100)}"
        self.dir = state_dir
        self.workers = [f"w{i}" for i in range(1, workers + 1)]
        self.token = secrets.token_hex(16)
        self.env = {
            **os.environ,
            "XRAY_SIM_PREFIX": self.prefix,
            "XRAY_SIM_SUBNET": self.subnet,
            "XRAY_SIM_DIR": str(state_dir),
            "XRAY_SIM_WORKERS": str(workers),
            "RAY": RAY,
            "RAY_AUTH_TOKEN": self.token,
            "PYTHONPATH": str(REPO),
        }
        self.address = f"{self.subnet}.10:6379"
        self.job_address = f"http://{self.subnet}.10:8265"

    @classmethod
    def create(cls, tmp_root: Path, workers: int = 2) -> SimCluster:
        state = Path(f"/tmp/xrsim-{secrets.token_hex(3)}")  # short: Ray's socket paths have a length limit
        cluster = cls(state, workers)
        reason = _probe_namespaces(cluster.prefix)
        if reason:
            pytest.skip(reason)
        return cluster

    def ip(self, node: str) -> str:
        return f"{self.subnet}.10" if node == "head" else f"{self.subnet}.{10 + int(node[1:])}"

    def sim(self, *args: str, timeout: float = 180) -> str:
        proc = subprocess.run(
            ["bash", str(SCRIPT), *args], cwd=REPO, env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if proc.returncode != 0:
            raise RuntimeError(f"cluster_sim.sh {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
        return proc.stdout

    def __enter__(self) -> SimCluster:
        atexit.register(self.down)
        try:
            self.sim("up")
            self.wait_nodes(1 + len(self.workers))
        except BaseException:
            self.down()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.down()

    def down(self) -> None:
        subprocess.run(["bash", str(SCRIPT), "down"], cwd=REPO, env=self.env, capture_output=True, timeout=120)
        shutil.rmtree(self.dir, ignore_errors=True)

    def processes(self, node: str) -> list[str]:
        pids = subprocess.run(
            ["ip", "netns", "pids", f"{self.prefix}-{node}"], capture_output=True, text=True
        ).stdout.split()
        lines = []
        for pid in pids:
            try:
                lines.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
            except OSError:
                pass
        return lines

    def kill(self, node: str) -> None:
        self.sim("kill", node)

    def start(self, node: str) -> None:
        self.sim("start", node)

    def driver_env(self, root: Path) -> dict[str, str]:
        return {**self.env, "RAY_ADDRESS": self.address, "XRAY_EXP_ROOT": str(root), "PYTHONUNBUFFERED": "1"}

    def driver(self, args: list[str], root: Path, log: Path) -> subprocess.Popen:
        """`python -m <args>` on the head host (the driver's node), output to `log`."""
        out = open(log, "w")
        return subprocess.Popen(
            ["bash", str(SCRIPT), "exec", "head", sys.executable, "-m", *args],
            cwd=REPO,
            env=self.driver_env(root),
            stdout=out,
            stderr=subprocess.STDOUT,
        )

    def wait_nodes(self, count: int, timeout: float = 90) -> None:
        """Until `count` nodes are alive (asked from the head host with the cluster's token)."""
        code = "import ray; ray.init(logging_level='ERROR'); print(sum(n['Alive'] for n in ray.nodes()))"
        deadline = time.monotonic() + timeout
        env = {**self.env, "RAY_ADDRESS": self.address, "RAY_AUTH_MODE": "token"}
        while True:
            proc = subprocess.run(
                ["bash", str(SCRIPT), "exec", "head", sys.executable, "-c", code],
                cwd=REPO,
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            alive = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
            if alive == str(count):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{alive or '?'} of {count} Ray nodes alive after {timeout} s: {proc.stderr[-2000:]}"
                )
            time.sleep(1)
