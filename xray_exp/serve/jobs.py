"""Training jobs in a background subprocess, one at a time (a second submit raises JobBusy -> HTTP 409).

The job runs `<command prefix> mode=<train|finetune> model=<name> <overrides...>`, by default
`python -m xray_exp.train ...`. Its stdout must contain a line `RUN_DIR=<path>`, and that folder a
`summary.json` with `mlflow_run_id` and `metrics`; output goes to `<job_dir>/<job id>.log`.

    manager = JobManager([sys.executable, "-m", "xray_exp.train"], "outputs/serve-jobs")
    job = manager.submit("train", "yolo12n", ["debug=smoke"], reason="no registered model")
    manager.get(job.id).status     # "running", then "succeeded" or "failed"
"""

from __future__ import annotations

import collections
import json
import logging
import os
import re
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

log = logging.getLogger(__name__)

# key=value, Hydra dotted keys; values without spaces, quotes, $ or braces (no ${oc.env:...} interpolation)
OVERRIDE_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.\-]*=[A-Za-z0-9_.,:/@+\-]*$"
MODEL_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"
RESERVED_KEYS = ("mode", "model")  # set by the service
RESERVED_PREFIXES = ("hydra",)  # Hydra's own settings (run dir, launcher, ...) stay as configured
MAX_OVERRIDES = 32
RUN_DIR_LINE = re.compile(r"^RUN_DIR=(.+?)\s*$")
SECRET_ENV = ("XRAY_SERVE_TOKEN",)


class JobBusy(RuntimeError):
    def __init__(self, job: Job):
        super().__init__(f"job {job.id} is still {job.status}; one training job runs at a time")
        self.job = job


def validate_overrides(overrides: Sequence[str]) -> list[str]:
    """Return the overrides if each is a safe `key=value`; ValueError naming the first bad one."""
    if len(overrides) > MAX_OVERRIDES:
        raise ValueError(f"at most {MAX_OVERRIDES} overrides")
    for item in overrides:
        if not isinstance(item, str) or not re.match(OVERRIDE_PATTERN, item) or len(item) > 200:
            raise ValueError(f"override {item!r} is not key=value with characters [A-Za-z0-9_.,:/@+-]")
        key = item.split("=", 1)[0]
        if key in RESERVED_KEYS or key.split(".", 1)[0] in RESERVED_PREFIXES:
            raise ValueError(f"override {item!r} sets {key!r}, which the service controls")
    return list(overrides)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class Job:
    id: str
    mode: str
    model: str
    overrides: list[str]
    reason: str
    command: list[str] = field(repr=False)
    log_path: Path = field(repr=False)
    env: dict[str, str] = field(default_factory=dict, repr=False)
    status: str = "running"  # running | succeeded | failed
    created_at: str = field(default_factory=_now)
    finished_at: str | None = None
    returncode: int | None = None
    run_dir: str | None = None
    mlflow_run_id: str | None = None
    metrics: dict = field(default_factory=dict)
    error: str | None = None

    @property
    def done(self) -> bool:
        return self.status != "running"

    def public(self) -> dict:
        return {
            "id": self.id,
            "mode": self.mode,
            "model": self.model,
            "overrides": list(self.overrides),
            "reason": self.reason,
            "status": self.status,
            "created_at": self.created_at,
            "finished_at": self.finished_at,
            "returncode": self.returncode,
            "run_dir": self.run_dir,
            "mlflow_run_id": self.mlflow_run_id,
            "metrics": dict(self.metrics),
            "error": self.error,
        }


class JobManager:
    """Runs at most one job; keeps the last `max_history` jobs in memory."""

    def __init__(
        self,
        command_prefix: Sequence[str],
        log_dir: str | Path,
        timeout_s: float = 24 * 3600,
        on_success: Callable[[Job], None] | None = None,
        max_history: int = 100,
    ):
        self.command_prefix = list(command_prefix)
        self.log_dir = Path(log_dir)
        self.timeout_s = timeout_s
        self.on_success = on_success
        self._jobs: collections.OrderedDict[str, Job] = collections.OrderedDict()
        self._max_history = max_history
        self._lock = threading.Lock()
        self._current: tuple[Job, subprocess.Popen | None] | None = None

    def submit(
        self,
        mode: str,
        model: str,
        overrides: Sequence[str],
        reason: str = "",
        service_overrides: Sequence[str] = (),
        env: dict[str, str] | None = None,
    ) -> Job:
        """Start a job now (JobBusy if one runs). `overrides` come from the client and are validated;
        `service_overrides` and `env` come from the service's own settings (e.g. the tracking URI)."""
        if mode not in ("train", "finetune"):
            raise ValueError(f"mode must be train or finetune (got {mode!r})")
        if not re.match(MODEL_NAME_PATTERN, model):
            raise ValueError(f"model name {model!r} has characters outside [A-Za-z0-9_.-]")
        overrides = validate_overrides(overrides)
        with self._lock:
            if self._current is not None:
                raise JobBusy(self._current[0])
            job_id = uuid.uuid4().hex[:12]
            self.log_dir.mkdir(parents=True, exist_ok=True)
            job = Job(
                id=job_id,
                mode=mode,
                model=model,
                overrides=overrides,
                reason=reason,
                command=[
                    *self.command_prefix,
                    f"mode={mode}",
                    f"model={model}",
                    *overrides,
                    *service_overrides,
                ],
                log_path=self.log_dir / f"{job_id}.log",
                env=dict(env or {}),
            )
            self._jobs[job_id] = job
            while len(self._jobs) > self._max_history:
                self._jobs.popitem(last=False)
            self._current = (job, None)
            threading.Thread(target=self._run, args=(job,), name=f"job-{job_id}", daemon=True).start()
        return job

    def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def jobs(self) -> list[Job]:
        return list(reversed(self._jobs.values()))

    def running(self) -> Job | None:
        current = self._current
        return current[0] if current else None

    def wait(self, job_id: str, timeout: float) -> Job:
        """Block until the job is done (tests and scripts)."""
        deadline = time.monotonic() + timeout
        job = self._jobs[job_id]
        while not job.done and time.monotonic() < deadline:
            time.sleep(0.05)
        return job

    def shutdown(self, grace_s: float = 10.0) -> None:
        """Stop a running job (service shutdown)."""
        current = self._current
        if current and current[1] is not None:
            current[0].error = "stopped: the service shut down"
            _stop(current[1], grace_s)

    def _run(self, job: Job) -> None:
        env = {k: v for k, v in os.environ.items() if k not in SECRET_ENV}
        env.update(job.env, PYTHONUNBUFFERED="1")
        tail: collections.deque[str] = collections.deque(maxlen=20)
        timed_out = threading.Event()
        status, error = "failed", None
        try:
            with job.log_path.open("w", encoding="utf-8") as logf:
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
                self._current = (job, proc)
                timer = threading.Timer(self.timeout_s, lambda: (timed_out.set(), _stop(proc, 10.0)))
                timer.daemon = True
                timer.start()
                try:
                    for line in proc.stdout:
                        logf.write(line)
                        tail.append(line.rstrip())
                        match = RUN_DIR_LINE.match(line)
                        if match:
                            job.run_dir = match.group(1)
                    job.returncode = proc.wait()
                finally:
                    timer.cancel()
            status, error = self._outcome(job, tail, timed_out.is_set())
        except Exception as exc:  # a failed start (missing executable, unwritable log dir) is a failed job
            log.exception("job %s could not run", job.id)
            error = f"could not run the job: {exc}"
        finally:
            with self._lock:  # done and no longer current in one step: the next submit is accepted
                job.finished_at = _now()
                job.status, job.error = status, error
                self._current = None
        if job.status == "succeeded" and self.on_success is not None:
            try:
                self.on_success(job)
            except Exception:
                log.exception("on_success hook failed for job %s", job.id)

    def _outcome(self, job: Job, tail: Sequence[str], timed_out: bool) -> tuple[str, str | None]:
        """(status, error) of a finished process; on success also the MLflow run id and metrics."""
        last = " | ".join(list(tail)[-3:])[-500:]
        if timed_out:
            return "failed", f"timed out after {self.timeout_s:.0f} s"
        if job.error:  # set by shutdown()
            return "failed", job.error
        if job.returncode != 0:
            return "failed", f"exit code {job.returncode}: {last}"
        if not job.run_dir:
            return "failed", "the job printed no RUN_DIR=<path> line"
        summary_path = Path(job.run_dir) / "summary.json"
        try:
            summary = json.loads(summary_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            return "failed", f"cannot read {summary_path}: {exc}"
        job.mlflow_run_id = summary.get("mlflow_run_id")
        metrics = summary.get("metrics") or {}
        job.metrics = {str(k): v for k, v in metrics.items() if isinstance(v, int | float | str | None)}
        return "succeeded", None


def _stop(proc: subprocess.Popen, grace_s: float) -> None:
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
