"""Training jobs of the service: a queue, one job running at a time, records kept in sqlite.

The job runs `<command prefix> mode=<train|finetune> model=<name> <overrides...> run_name=<model>-job-<id>`,
by default `python -m xray_exp.train ...`, locally (LocalRunner) or as a Ray Job (RayJobRunner, when
XRAY_SERVE_RAY_ADDRESS or RAY_ADDRESS is set). Its run folder (`<root>/outputs/runs/<run_name>`, or the
`RUN_DIR=<path>` line it prints) gives progress while it runs (results.csv: epoch k of n, latest metrics)
and at the end `summary.json` (MLflow run id, metrics, registered version).

    manager = JobManager([sys.executable, "-m", "xray_exp.train"], "outputs/serve-jobs", max_queue=4)
    job = manager.submit("train", "yolo12n", ["debug=smoke"], reason="no registered model")
    manager.get(job.id).public()   # status queued | running | succeeded | failed | cancelled | interrupted
    manager.cancel(job.id)

Records live in `<job dir>/jobs.sqlite`: after a restart the list is back, a job that was running is
re-attached (Ray) or marked `interrupted` (local: its process ended with the old service).
"""

from __future__ import annotations

import collections
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from xray_exp.serve.job_progress import read_outcome, read_progress
from xray_exp.serve.job_runners import LocalRunner
from xray_exp.serve.job_store import JobStore
from xray_exp.serve.overrides import MODEL_NAME_PATTERN, validate_overrides

log = logging.getLogger(__name__)
RUN_DIR_LINE = re.compile(r"^RUN_DIR=(.+?)\s*$")
ACTIVE = ("queued", "running")


class QueueFull(RuntimeError):
    def __init__(self, queued: int, running: str | None):
        super().__init__(f"the job queue is full ({queued} queued, limit reached); try again later")
        self.queued, self.running = queued, running


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass
class Job:
    id: str
    mode: str
    model: str
    overrides: list[str]
    reason: str
    command: list[str]
    log_path: str
    run_dir_hint: str  # where the run folder will be (run_name is set by the service)
    runner: str = "local"
    env: dict[str, str] = field(default_factory=dict)  # never shown: may hold service URIs
    resources: dict[str, float] = field(default_factory=dict)
    status: str = "queued"
    created_at: str = field(default_factory=_now)
    started_at: str | None = None
    finished_at: str | None = None
    returncode: int | None = None
    run_dir: str | None = None
    mlflow_run_id: str | None = None
    metrics: dict = field(default_factory=dict)
    registered_version: str | None = None
    ray_job_id: str | None = None
    error: str | None = None
    save: Callable[[], None] = field(default=lambda: None, repr=False, compare=False)

    @property
    def done(self) -> bool:
        return self.status not in ACTIVE

    def note_timeout(self, timeout_s: float) -> None:
        self.error = f"timed out after {timeout_s:.0f} s"

    def record(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "save"}

    def public(self) -> dict:
        body = {k: v for k, v in self.record().items() if k not in ("env", "command", "log_path", "run_dir_hint")}
        body["progress"] = read_progress(self.run_dir or self.run_dir_hint) if self.status != "queued" else None
        return body


class JobManager:
    """Runs one job at a time from a FIFO queue of at most `max_queue` waiting jobs."""

    def __init__(
        self,
        command_prefix: Sequence[str],
        job_dir: str | Path,
        timeout_s: float = 24 * 3600,
        on_success: Callable[[Job], None] | None = None,
        max_history: int = 100,
        max_queue: int = 4,
        runner=None,
        output_root: str | Path | None = None,
        resources: Callable[[list[str]], dict] | None = None,
    ):
        self.command_prefix = list(command_prefix)
        self.job_dir = Path(job_dir)
        self.on_success = on_success
        self.max_queue, self._max_history = max_queue, max_history
        self.runner = runner or LocalRunner(timeout_s)
        self.output_root = Path(output_root or Path.cwd())
        self.resources = resources or (lambda overrides: {})
        self.store_path = self.job_dir / "jobs.sqlite"  # made by the first job: a service without jobs writes nothing
        self.store = JobStore(self.store_path) if self.store_path.is_file() else None
        self._jobs: collections.OrderedDict[str, Job] = collections.OrderedDict()
        self._queue: collections.deque[str] = collections.deque()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._current: Job | None = None
        self._closed = False
        self._restore()
        threading.Thread(target=self._dispatch, name="job-dispatcher", daemon=True).start()

    def _persist(self, job: Job) -> None:
        try:
            self.store = self.store or JobStore(self.store_path)
            self.store.save(job.id, job.created_at, job.record())
        except Exception:  # a full disk must not kill the job thread; the job itself goes on
            log.exception("cannot save job %s to %s", job.id, self.store_path)

    def _attach(self, job: Job) -> Job:
        job.save = lambda: self._persist(job)
        self._jobs[job.id] = job
        while len(self._jobs) > self._max_history:
            oldest = next(iter(self._jobs))
            if not self._jobs[oldest].done:
                break
            self._jobs.pop(oldest)
        return job

    def _restore(self) -> None:
        """Jobs of an earlier service process: queued ones wait again, running ones re-attach or are
        marked interrupted."""
        resumed = None
        for record in self.store.load(self._max_history) if self.store else []:
            job = self._attach(Job(**record))
            if job.status == "queued":
                self._queue.append(job.id)
            elif job.status == "running":
                if self.runner.reattaches and job.runner == self.runner.name and job.ray_job_id and not resumed:
                    resumed = job
                else:
                    job.status, job.finished_at = "interrupted", _now()
                    job.error = f"the service restarted while the job ran ({job.runner} runner)"
                    job.save()
        if resumed is not None:
            log.info("re-attaching to job %s (%s)", resumed.id, resumed.ray_job_id)
            self._start(resumed)

    def submit(
        self,
        mode: str,
        model: str,
        overrides: Sequence[str],
        reason: str = "",
        service_overrides: Sequence[str] = (),
        env: dict[str, str] | None = None,
    ) -> Job:
        """Queue a job (QueueFull when `max_queue` jobs wait). `overrides` come from the client and are
        checked against the allow-list; `service_overrides` and `env` are the service's own settings."""
        if mode not in ("train", "finetune"):
            raise ValueError(f"mode must be train or finetune (got {mode!r})")
        if not re.match(MODEL_NAME_PATTERN, model):
            raise ValueError(f"model name {model!r} has characters outside [A-Za-z0-9_.-]")
        overrides = validate_overrides(overrides)
        with self._lock:
            if len(self._queue) >= self.max_queue and (self._current or self._queue):
                raise QueueFull(len(self._queue), self._current.id if self._current else None)
            job_id = uuid.uuid4().hex[:12]
            self.job_dir.mkdir(parents=True, exist_ok=True)
            run_name = f"{model}-job-{job_id}"
            job = self._attach(
                Job(
                    id=job_id,
                    mode=mode,
                    model=model,
                    overrides=list(overrides),
                    reason=reason,
                    command=[
                        *self.command_prefix,
                        f"mode={mode}",
                        f"model={model}",
                        *overrides,
                        *service_overrides,
                        f"run_name={run_name}",
                    ],
                    log_path=str(self.job_dir / f"{job_id}.log"),
                    run_dir_hint=str(self.output_root / "outputs" / "runs" / run_name),
                    runner=self.runner.name,
                    env=dict(env or {}),
                    resources=self.resources(list(overrides)),
                )
            )
            self._queue.append(job_id)
            job.save()
        self._wake.set()
        return job

    def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def jobs(self) -> list[Job]:
        return list(reversed(self._jobs.values()))

    def running(self) -> Job | None:
        return self._current

    def queued(self) -> int:
        return len(self._queue)

    def cancel(self, job_id: str) -> Job | None:
        """Cancel a queued job now, or stop a running one (its status becomes `cancelled` when it ends)."""
        job = self._jobs.get(job_id)
        if job is None or job.done:
            return job
        with self._lock:
            if job.status == "queued":
                self._queue.remove(job.id)
                job.status, job.finished_at, job.error = "cancelled", _now(), "cancelled before it started"
                job.save()
                return job
            job.error = "cancelled while running"
        self.runner.stop(job)
        return job

    def wait(self, job_id: str, timeout: float) -> Job:
        deadline = time.monotonic() + timeout
        job = self._jobs[job_id]
        while not job.done and time.monotonic() < deadline:
            time.sleep(0.05)
        return job

    def shutdown(self) -> None:
        """Service shutdown: a local job is stopped (interrupted); a Ray job keeps running on the cluster."""
        self._closed = True
        self._wake.set()
        job = self._current
        if job is not None and not self.runner.reattaches:
            job.error = "interrupted: the service shut down"
            self.runner.stop(job)

    def _dispatch(self) -> None:
        while not self._closed:
            self._wake.wait(timeout=1.0)
            self._wake.clear()
            with self._lock:
                if self._current is not None or not self._queue or self._closed:
                    continue
                job = self._jobs[self._queue.popleft()]
            self._start(job)

    def _start(self, job: Job) -> None:
        with self._lock:
            self._current = job
            job.status, job.started_at = "running", job.started_at or _now()
            job.save()
        threading.Thread(target=self._run, args=(job,), name=f"job-{job.id}", daemon=True).start()

    def _run(self, job: Job) -> None:
        tail: collections.deque[str] = collections.deque(maxlen=20)

        def on_line(line: str) -> None:
            tail.append(line.rstrip())
            match = RUN_DIR_LINE.match(line)
            if match:
                job.run_dir = match.group(1)

        status, error = "failed", None
        try:
            job.returncode = self.runner.run(job, on_line)
            status, error = self._outcome(job, tail)
        except Exception as exc:  # a failed start (missing executable, cluster unreachable) is a failed job
            log.exception("job %s could not run", job.id)
            error = f"could not run the job: {exc}"
        finally:
            with self._lock:  # done and no longer current in one step: the next job starts
                self._current = None  # first: a reader that sees the job done (no lock) never sees it current
                job.finished_at = _now()
                job.status, job.error = status, error
                job.save()
            self._wake.set()
        if job.status == "succeeded" and self.on_success is not None:
            try:
                self.on_success(job)
            except Exception:
                log.exception("on_success hook failed for job %s", job.id)

    def _outcome(self, job: Job, tail: Sequence[str]) -> tuple[str, str | None]:
        last = " | ".join(list(tail)[-3:])[-500:]
        if job.error and job.error.startswith("cancelled"):
            return "cancelled", job.error
        if job.error and job.error.startswith("interrupted"):
            return "interrupted", job.error
        if job.error:  # timed out
            return "failed", job.error
        if job.returncode is None:
            return "cancelled", "stopped on the cluster"
        if job.returncode != 0:
            return "failed", f"exit code {job.returncode}: {last}"
        if not job.run_dir:
            return "failed", "the job printed no RUN_DIR=<path> line"
        try:
            outcome = read_outcome(Path(job.run_dir))
        except (OSError, ValueError) as exc:
            return "failed", f"cannot read {job.run_dir}/summary.json: {exc}"
        job.mlflow_run_id, job.metrics, job.registered_version = outcome
        return "succeeded", None
