"""Inside one job of a `--multirun`: which sweep it belongs to, and how a failed job is recorded.

    python -m xray_exp.train --multirun dataset.data_yaml=null,/missing/data.yaml
    # job 1 fails: a FAILED child run (tags error.type / error.message, artifact error/error.txt),
    # <sweep dir>/1/error.txt, and the sweeper gets NaN (Optuna: a FAIL trial) instead of a crash.

The sweep callback writes `<sweep dir>/sweep.json` before any job starts; a job reads it to tag its MLflow
run as a child of the sweep's parent run. Light: standard library and hydra only.
"""

from __future__ import annotations

import json
import logging
import sys
import traceback
from pathlib import Path
from typing import Any

from xray_exp.mlops.parent_runs import child_run_tags

log = logging.getLogger("xray_exp.sweep")

SWEEP_FILE = "sweep.json"


def in_multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def sweep_context() -> dict[str, Any] | None:
    """The sweep this job runs in ({parent_run_id, tracking_uri, experiment, sweep_id, job_num, ...});
    None outside a multirun, and without the sweep callback (hydra/callbacks=null: jobs act as single runs)."""
    from hydra.core.hydra_config import HydraConfig

    if not in_multirun():
        return None
    hydra_cfg = HydraConfig.get()
    sweep_dir = Path(str(hydra_cfg.sweep.dir)).resolve()
    path = sweep_dir / SWEEP_FILE
    if not path.is_file():
        return None
    info = json.loads(path.read_text())
    info.update(sweep_dir=str(sweep_dir), job_num=int(hydra_cfg.job.num))
    return info


def child_tags(ctx: dict[str, Any]) -> dict[str, str]:
    """Tags that make a job's MLflow run a child of the sweep's parent run."""
    return child_run_tags(
        ctx.get("parent_run_id"),
        {"sweep.id": str(ctx["sweep_id"]), "sweep.dir": ctx["sweep_dir"], "sweep.job_num": str(ctx["job_num"])},
    )


def child_run_name(ctx: dict[str, Any], model_name: str) -> str:
    return f"{ctx['sweep_id']}-{ctx['job_num']}-{model_name}"


def sweep_parent(model_name: str):
    """This job's parent run (xray_exp.runs.lifecycle.Parent), None outside a sweep with the callback."""
    from xray_exp.runs.lifecycle import Parent  # lazy: heavy (omegaconf, yaml)

    ctx = sweep_context()
    if ctx is None:
        return None
    return Parent(
        experiment=ctx.get("experiment"),
        run_name=child_run_name(ctx, model_name),
        tags=child_tags(ctx),
        registration_note=f"deferred to sweep {ctx['sweep_id']} (best job registered)",
    )


def record_failure(cfg, run_dir: str | Path, overrides: list[str], exc: BaseException) -> float:
    """Record a failed job (error file, FAILED MLflow child run) and return NaN for the sweeper.

    Call from an `except` block. The run is the job's own when training had started, else a new child
    run. Optuna turns NaN into a FAIL trial; the basic sweeper goes on to the next job.
    """
    run_dir = Path(run_dir).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    text = traceback.format_exc()
    (run_dir / "error.txt").write_text(text)
    message = str(exc).splitlines()[0][:500] if str(exc) else type(exc).__name__
    log.error("job failed: %s: %s (traceback in %s)", type(exc).__name__, message, run_dir / "error.txt")
    print(f"ERROR: job {run_dir.name} failed: {type(exc).__name__}: {message}", file=sys.stderr, flush=True)
    ctx = sweep_context()
    run_id = None
    if cfg.tracking.enabled and cfg.tracking.tracking_uri:
        from xray_exp.mlops.run_tags import run_tags  # lazy: only on this path
        from xray_exp.mlops.tracker import Tracker  # lazy: only on this path

        tracker = Tracker(run_dir, cfg.tracking.tracking_uri, timeout_s=cfg.tracking.timeout_s)
        if not tracker.state.get("started"):  # failed before training began: the child run starts here
            experiment = (ctx or {}).get("experiment") or (
                cfg.tracking.finetune_experiment if str(cfg.mode) == "finetune" else cfg.tracking.experiment
            )
            name = child_run_name(ctx, cfg.model.name) if ctx else run_dir.name
            tracker.start(
                experiment,
                name,
                run_tags(
                    cfg.paths.root,
                    overrides,
                    {
                        "mode": str(cfg.mode),
                        "model": cfg.model.name,
                        "dataset": cfg.dataset.name,
                        **(child_tags(ctx) if ctx else {}),
                    },
                ),
            )
        tracker.set_tags({"error.type": type(exc).__name__, "error.message": str(exc)[:5000]})
        tracker.log_artifact(run_dir / "error.txt", "error")
        tracker.end("FAILED")
        run_id = tracker.run_id
    (run_dir / "summary.json").write_text(
        json.dumps(
            {
                "run_dir": str(run_dir),
                "status": "FAILED",
                "model": cfg.model.name,
                "overrides": overrides,
                "error": {"type": type(exc).__name__, "message": str(exc)[:5000]},
                "objective": {"metric": cfg.objective.metric, "value": None},
                "metrics": {},
                "mlflow_run_id": run_id,
            },
            indent=2,
        )
    )
    return float("nan")
