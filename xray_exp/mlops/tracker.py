"""The journaled MLflow run of a training: one run per training, journaled on disk first.

Every event (params, per-epoch metrics, tags, artifacts, the model, its registration) is appended to
`<run_dir>/tracking/events.jsonl` and then sent to MLflow. If the tracking server is unreachable at
start or goes away mid-run, training carries on and a warning names the problem; later events retry
with a bounded backoff (2 s doubling to 60 s, each try bounded by `tracking.timeout_s`) and replay the
journal once the server answers again, and the end of the run always tries once more. For a server
that never comes back:

    python -m xray_exp.upload outputs/runs/yolo12n-20261126-120000 [--tracking-uri URI]

replays whatever was not sent yet (into the same run when it had been created) and brings the run's
summary.json up to date (MLflow run id, registration).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from xray_exp.mlops.client import ensure_experiment, set_http_limits, tracking_client

log = logging.getLogger(__name__)

JOURNAL = "events.jsonl"
STATE = "state.json"
RETRY_FIRST_S = 2.0  # the first retry after a failure; each further failure doubles the wait
RETRY_MAX_S = 60.0


class Tracker:
    """Journal-first MLflow logging for one training run. `enabled=False` keeps only the journal."""

    def __init__(
        self,
        run_dir: str | Path,
        tracking_uri: str | None,
        enabled: bool = True,
        timeout_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        """`clock`: seconds, monotonic; the backoff and the flush budget read it (tests pass a fake one)."""
        self.dir = Path(run_dir) / "tracking"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.tracking_uri = tracking_uri
        self.enabled = enabled and bool(tracking_uri)
        self.problem: str | None = None
        self.timeout_s = timeout_s
        self._retry_delay = RETRY_FIRST_S
        self._clock = clock
        self._retry_at = 0.0  # clock() from which the next try may run
        state_file = self.dir / STATE
        self.state: dict[str, Any] = json.loads(state_file.read_text()) if state_file.exists() else {"applied": 0}
        self.state["tracking_uri"] = tracking_uri
        self._client = None
        if self.enabled:
            set_http_limits(timeout_s)

    @classmethod
    def for_epochs(
        cls,
        run_dir: str | Path,
        tracking_uri: str | None,
        enabled: bool = True,
        timeout_s: float = 10.0,
        run_id: str | None = None,
    ) -> Tracker:
        """The tracker a training process logs its epochs with (xray_exp.yolo.epochs): the run's own journal,
        or, with `run_id`, a journal of its own that sends into that run (opened by another process)."""
        state = Path(run_dir) / "tracking" / STATE
        if run_id and not state.exists():
            state.parent.mkdir(parents=True, exist_ok=True)
            state.write_text(json.dumps({"applied": 0, "started": True, "run_id": run_id}))
        return cls(run_dir, tracking_uri, enabled=enabled, timeout_s=timeout_s)

    def reload(self) -> None:
        """Take up what another tracker of this journal (the training process) sent meanwhile."""
        state_file = self.dir / STATE
        if state_file.exists():
            self.state = {**json.loads(state_file.read_text()), "tracking_uri": self.tracking_uri}

    # ---- public API -------------------------------------------------------------------------------
    @property
    def run_id(self) -> str | None:
        return self.state.get("run_id")

    @property
    def live(self) -> bool:
        return self.enabled and self.problem is None

    def start(self, experiment: str, run_name: str, tags: dict[str, str]) -> None:
        """Open the run, or reopen it when this run folder already has one (a resumed training)."""
        if self.state.get("started"):
            self._emit({"op": "reopen"})
        else:
            self._emit({"op": "start", "experiment": experiment, "run_name": run_name, "tags": tags})
            self.state["started"] = True
            self._save_state()

    def log_params(self, params: dict[str, str]) -> None:
        self._emit({"op": "params", "params": params})

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        clean = {k: float(v) for k, v in metrics.items() if v is not None and v == v}  # drop NaN
        self._emit({"op": "metrics", "metrics": clean, "step": step, "timestamp": int(time.time() * 1000)})

    def set_tags(self, tags: dict[str, str]) -> None:
        self._emit({"op": "tags", "tags": {k: str(v) for k, v in tags.items()}})

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        path = Path(path)
        if path.exists():
            self._emit({"op": "artifact", "path": str(path.resolve()), "artifact_path": artifact_path})

    def log_model(
        self,
        onnx_path: str | Path,
        pt_path: str | Path,
        names: dict[int, str],
        imgsz: int,
        example: str | Path | None = None,
        task: str = "detect",
    ) -> None:
        """The pyfunc that answers findings (xray_exp.mlops.pyfunc_model; `task=classify`: {"abnormal": p});
        `example`: an image for the input example."""
        self._emit(
            {
                "op": "model",
                "onnx": str(onnx_path),
                "pt": str(pt_path),
                "names": {str(k): v for k, v in names.items()},
                "imgsz": imgsz,
                "example": str(example) if example else None,
                "task": task,
            }
        )

    def log_gated_model(
        self,
        detector_onnx: str | Path,
        classifier_onnx: str | Path,
        gate: dict,
        names: dict[int, str],
        imgsz: int,
        example: str | Path | None = None,
    ) -> None:
        """A detector and its gate as one pyfunc (xray_exp.mlops.gated_model), registered like any model."""
        self._emit(
            {
                "op": "model",
                "task": "gated",
                "detector": str(detector_onnx),
                "classifier": str(classifier_onnx),
                "gate": gate,
                "names": {str(k): v for k, v in names.items()},
                "imgsz": imgsz,
                "example": str(example) if example else None,
            }
        )

    def log_ensemble_model(self, folder: str | Path, names: dict[int, str], example: str | Path | None = None) -> None:
        """An ensemble's model folder (ensemble.json + members/) as one pyfunc (xray_exp.mlops.ensemble_model)."""
        self._emit(
            {
                "op": "ensemble_model",
                "folder": str(Path(folder).resolve()),
                "names": {str(k): v for k, v in names.items()},
                "example": str(example) if example else None,
            }
        )

    def log_dataset(self, name: str, fingerprint: str, source: str, split_sizes: dict[str, int]) -> None:
        """The training data as an MLflow dataset input (name, fingerprint as digest, split sizes as profile)."""
        self._emit(
            {"op": "dataset", "name": name, "fingerprint": fingerprint, "source": source, "splits": dict(split_sizes)}
        )

    def register(
        self,
        name: str,
        alias: str,
        policy: str,
        objective: str,
        value: float | None,
        direction: str,
        tags: dict[str, str],
        better_if: str = "at_least_as_good",
        significance: dict | None = None,
    ) -> None:
        """Register (journaled; xray_exp.mlops.registry.register_model decides the alias). `significance`: the paired
        comparison with the alias holder when better_if=significant."""
        self._emit(
            {
                "op": "register",
                "name": name,
                "alias": alias,
                "policy": policy,
                "objective": objective,
                "value": value,
                "direction": direction,
                "tags": tags,
                "better_if": better_if,
                "significance": significance,
            }
        )

    @property
    def pending(self) -> int:
        """Journaled events not (yet) sent to MLflow."""
        return len(self.events()) - self.state["applied"] if self.enabled else 0

    def end(self, status: str = "FINISHED") -> None:
        """Close the run; a run that met an outage tries once more now, whatever the backoff says."""
        self._emit({"op": "end", "status": status}, final=True)
        if self.enabled and self.problem:
            log.warning(
                "MLflow (%s) was unreachable: %s. Everything is on disk; upload it with:\n"
                "  python -m xray_exp.upload %s",
                self.tracking_uri,
                self.problem,
                self.dir.parent,
            )

    # ---- journal + replay -------------------------------------------------------------------------
    def _emit(self, event: dict[str, Any], final: bool = False) -> None:
        with open(self.dir / JOURNAL, "a") as fh:
            fh.write(json.dumps(event) + "\n")
        if not self.enabled:
            return
        if final:
            self.flush()
        elif self.problem is None or self._clock() >= self._retry_at:  # paused: only when a try is due
            self.flush(budget_s=self.timeout_s)

    def events(self) -> list[dict[str, Any]]:
        path = self.dir / JOURNAL
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []

    def flush(self, budget_s: float | None = None) -> bool:
        """Send the journaled events not yet sent, in order; True when none is left.

        The first failure stops it, names the problem and schedules the next try (backoff). `budget_s`:
        after this many seconds a backlog waits for the next event (at least one event is always sent).
        """
        if not self.enabled:
            return False
        events, started, was_paused = self.events(), self._clock(), self.problem is not None
        first = self.state["applied"]
        while self.state["applied"] < len(events):
            if budget_s is not None and self.state["applied"] > first and self._clock() - started > budget_s:
                return False
            try:
                self._apply(events[self.state["applied"]])
            except Exception as exc:  # any transport/server error: degrade, keep training, retry later
                self._pause(exc)
                return False
            self.state["applied"] += 1
            self._save_state()
            if self.problem is not None:
                log.warning("MLflow (%s) answers again: replaying the journal in %s", self.tracking_uri, self.dir)
                self.problem, self._retry_delay = None, RETRY_FIRST_S
        if was_paused:
            log.warning("MLflow replay complete: %d journaled events sent", self.state["applied"] - first)
        return True

    def _pause(self, exc: Exception) -> None:
        problem = f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"
        if self.problem is None:
            log.warning(
                "MLflow logging paused (%s); the run continues, is journaled in %s and retries in %.0f s",
                problem,
                self.dir,
                self._retry_delay,
            )
        else:
            log.info("MLflow still unreachable (%s); next try in %.0f s", problem, self._retry_delay)
        self.problem = problem
        self._retry_at = self._clock() + self._retry_delay
        self._retry_delay = min(2 * self._retry_delay, RETRY_MAX_S)

    def outcome(self) -> dict[str, Any]:
        """What summary.json records about tracking: the MLflow run, the registration, what is unsent."""
        return {
            "mlflow_run_id": self.run_id,
            "registration": self.state.get("registration"),
            "mlflow_unsent_events": self.pending,
        }

    def _save_state(self) -> None:
        tmp = self.dir / f".{STATE}.tmp"
        tmp.write_text(json.dumps(self.state, indent=2))
        os.replace(tmp, self.dir / STATE)

    @property
    def client(self):
        if self._client is None:
            self._client = tracking_client(self.tracking_uri)
        return self._client

    def _open_run(self) -> tuple[str, str]:
        """(tracking URI, run id) of the run the replay sends into: known once the journal's `start` is applied."""
        if not self.tracking_uri or not self.run_id:
            raise RuntimeError(f"{self.dir / JOURNAL}: a model event before the run was opened (no 'start' applied)")
        return self.tracking_uri, self.run_id

    def _apply(self, event: dict[str, Any]) -> None:
        op = event["op"]
        if op == "start":
            if not self.state.get("run_id"):
                experiment_id = ensure_experiment(self.client, event["experiment"])
                run = self.client.create_run(experiment_id, run_name=event["run_name"], tags=event["tags"])
                self.state.update(run_id=run.info.run_id, experiment_id=experiment_id)
        elif op == "reopen":
            self.client.update_run(self.run_id, status="RUNNING")
        elif op == "params":
            self._log_batch(params=event["params"])
        elif op == "metrics":
            self._log_batch(metrics=event["metrics"], step=event["step"], timestamp=event["timestamp"])
        elif op == "tags":
            self._log_batch(tags=event["tags"])
        elif op == "artifact":
            path = Path(event["path"])
            if path.is_dir():
                self.client.log_artifacts(self.run_id, str(path), event["artifact_path"])
            elif path.exists():
                self.client.log_artifact(self.run_id, str(path), event["artifact_path"])
        elif op == "model" and event.get("task") == "gated":  # a detector + its gate (xray_exp.mlops.gated_model)
            from xray_exp.mlops.gated_model import log_gated_model  # lazy: only on this path

            self.state["model_uri"] = log_gated_model(*self._open_run(), event)
        elif op == "model":
            from xray_exp.mlops.pyfunc_model import log_onnx_model  # lazy: only on this path

            self.state["model_uri"] = log_onnx_model(*self._open_run(), event)
        elif op == "ensemble_model":
            from xray_exp.mlops.ensemble_model import log_ensemble_model  # lazy: only on this path

            self.state["model_uri"] = log_ensemble_model(*self._open_run(), event)
        elif op == "dataset":
            from mlflow.entities import Dataset, DatasetInput, InputTag

            profile = json.dumps({"splits": event["splits"], "fingerprint": event["fingerprint"]})
            dataset = Dataset(
                name=event["name"],
                digest=event["fingerprint"][:32],
                source_type="local",
                source=json.dumps({"uri": event["source"]}),
                profile=profile,
            )
            self.client.log_inputs(self.run_id, [DatasetInput(dataset, [InputTag("mlflow.data.context", "training")])])
        elif op == "register":
            from xray_exp.mlops.registry import register_model  # lazy: only on this path

            decision = register_model(self.client, self.state["model_uri"], self._open_run()[1], event)
            self.state["registration"] = decision
        elif op == "end":
            self.client.set_terminated(self.run_id, status=event["status"])
        else:
            raise ValueError(f"unknown journal event {op!r}")

    def _log_batch(self, params=None, metrics=None, tags=None, step=None, timestamp=None) -> None:
        from mlflow.entities import Metric, Param, RunTag

        if params:  # params are write-once: a resumed run sends them again, skip the known ones
            known = self.client.get_run(self.run_id).data.params
            items = [Param(k, v) for k, v in params.items() if k not in known]
            for i in range(0, len(items), 100):
                self.client.log_batch(self.run_id, params=items[i : i + 100])
        if metrics or tags:
            self.client.log_batch(
                self.run_id,
                metrics=[Metric(k, v, timestamp, step or 0) for k, v in (metrics or {}).items()],
                tags=[RunTag(k, v) for k, v in (tags or {}).items()],
            )
