"""Where a training job runs: a local subprocess (the embedded default) or a Ray Job on a cluster.

    runner = LocalRunner()                                   # python -m xray_exp.train ... on this machine
    runner = RayJobRunner("http://head:8265", cwd="/shared/xray")   # XRAY_SERVE_RAY_ADDRESS: Ray's Job API

Both run `job.command` to completion in `run(job, on_line)` (each output line goes to on_line, the
process's log to job.log_path) and return the exit code (None: stopped); `stop(job)` ends it.
`RayJobRunner.run` also re-attaches to a job a previous service process submitted (job.ray_job_id set).
The Ray runner needs the cluster's token (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token) and
the working folder, venv and outputs at the same path on the cluster's nodes (a shared filesystem).
"""

from __future__ import annotations

import logging
import os
import shlex
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ray.job_submission import JobSubmissionClient

log = logging.getLogger(__name__)
SECRET_ENV = ("XRAY_SERVE_TOKEN",)
PASSED_TO_RAY_JOBS = ("XRAY_EXP_ROOT", "XRAY_EXP_MODEL_CACHE", "PYTHONPATH", "MLFLOW_TRACKING_URI")


class LocalRunner:
    name = "local"
    reattaches = False

    def __init__(self, timeout_s: float = 24 * 3600):
        self.timeout_s = timeout_s
        self._procs: dict[str, subprocess.Popen] = {}

    def run(self, job, on_line: Callable[[str], None]) -> int | None:
        env = {k: v for k, v in os.environ.items() if k not in SECRET_ENV}
        env.update(job.env, PYTHONUNBUFFERED="1")
        with Path(job.log_path).open("w", encoding="utf-8", buffering=1) as logf:  # line by line: readable live
            proc = subprocess.Popen(
                job.command,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                text=True,
                errors="replace",
                bufsize=1,
                env=env,
                start_new_session=True,
            )
            self._procs[job.id] = proc

            def on_timeout() -> None:
                job.note_timeout(self.timeout_s)
                stop_process(proc)

            timer = threading.Timer(self.timeout_s, on_timeout)
            timer.daemon = True
            timer.start()
            assert proc.stdout is not None  # stdout=PIPE
            try:
                for line in proc.stdout:
                    logf.write(line)
                    on_line(line)
                return proc.wait()
            finally:
                timer.cancel()
                self._procs.pop(job.id, None)

    def stop(self, job) -> None:
        proc = self._procs.get(job.id)
        if proc is not None:
            stop_process(proc)


class RayJobRunner:
    """Ray's Job Submission API; entrypoint `cd <cwd> && python -m xray_exp.train ...`, CPUs/GPUs reserved
    for it from the job's hardware preset (job.resources)."""

    name = "ray"
    reattaches = True
    poll_s = 1.0

    def __init__(self, address: str, cwd: str | Path | None = None, timeout_s: float = 24 * 3600):
        if "://" not in address:
            address = f"http://{address}"
        self.address, self.cwd, self.timeout_s = address, str(cwd or os.getcwd()), timeout_s
        self._client: JobSubmissionClient | None = None

    def client(self) -> JobSubmissionClient:
        if self._client is None:
            from ray.job_submission import JobSubmissionClient

            from xray_exp.distributed.cluster import auth_headers  # lazy: only on this path

            self._client = JobSubmissionClient(self.address, headers=auth_headers())
        return self._client

    def submit(self, job) -> str:
        env = {k: os.environ[k] for k in PASSED_TO_RAY_JOBS if os.environ.get(k)}
        env.update(job.env, PYTHONUNBUFFERED="1", RAY_USAGE_STATS_ENABLED="0")
        entrypoint = f"cd {shlex.quote(self.cwd)} && {shlex.join(job.command)}"
        return self.client().submit_job(
            entrypoint=entrypoint,
            submission_id=f"xray-{job.id}",
            runtime_env={"env_vars": env},
            entrypoint_num_cpus=job.resources.get("num_cpus", 1),
            entrypoint_num_gpus=job.resources.get("num_gpus", 0),
            metadata={"xray_exp_job": job.id, "mode": job.mode, "model": job.model},
        )

    def run(self, job, on_line: Callable[[str], None]) -> int | None:
        from ray.job_submission import JobStatus

        client = self.client()
        if not job.ray_job_id:
            job.ray_job_id = self.submit(job)
            job.save()
        seen, deadline = 0, time.monotonic() + self.timeout_s
        while True:
            status = client.get_job_status(job.ray_job_id)
            logs = client.get_job_logs(job.ray_job_id)
            for line in logs[seen:].splitlines(keepends=True):
                on_line(line)
            seen = len(logs)
            Path(job.log_path).write_text(logs, encoding="utf-8")
            if status.is_terminal():
                break
            if time.monotonic() > deadline:
                job.note_timeout(self.timeout_s)
                client.stop_job(job.ray_job_id)
                deadline = float("inf")
            time.sleep(self.poll_s)
        if status == JobStatus.SUCCEEDED:
            return 0
        if status == JobStatus.STOPPED:
            return None
        info = client.get_job_info(job.ray_job_id)
        log.warning("Ray job %s ended %s: %s", job.ray_job_id, status, info.message)
        return 1

    def stop(self, job) -> None:
        if job.ray_job_id:
            self.client().stop_job(job.ray_job_id)


def stop_process(proc: subprocess.Popen, grace_s: float = 10.0) -> None:
    """SIGTERM the job's process group, SIGKILL it after grace_s."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def preset_resources(overrides: list[str], conf_dir: Path | None = None) -> dict[str, float]:
    """CPUs/GPUs a job needs: its hardware preset (`hardware=<name>`, default cpu) with any
    `hardware.num_cpus=` / `hardware.num_gpus=` override applied."""
    import yaml

    conf_dir = conf_dir or Path(__file__).resolve().parents[1] / "conf"  # xray_exp/conf
    values = dict(o.split("=", 1) for o in overrides)
    path = conf_dir / "hardware" / f"{values.get('hardware', 'cpu')}.yaml"
    preset = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}) if path.is_file() else {}
    resources = {"num_cpus": float(preset.get("num_cpus", 1)), "num_gpus": float(preset.get("num_gpus", 0))}
    for key in resources:
        if f"hardware.{key}" in values:
            resources[key] = float(values[f"hardware.{key}"])
    return resources
