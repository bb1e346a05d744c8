"""A sweep's leaderboard and the registration of its best job.

    python -m xray_exp.train --multirun model=yolo12n,yolo12s
    # ... at the end:  <sweep dir>/leaderboard.csv (also an artifact of the MLflow parent run)
    # rank job status    test/mAP50-95 ... overrides            run_id
    # 1    1   FINISHED  0.0123        ... model=yolo12s        3f2a...

Rows come from MLflow (the parent run's children: every job of every invocation of a resumed study), or
from the job folders' summary.json when tracking is disabled. Ranking is direction-aware; failed jobs and
jobs without the objective are listed last, unranked.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xray_exp.mlops.parent_runs import list_children
from xray_exp.mlops.registry import current_holder, logged_model_uri, register_model, registration_target

# Columns beside the objective, where the jobs computed them (val/* test/*: xray_exp.metrics on best.pt;
# ultralytics/val/*: Ultralytics' validator at the end of training).
KEY_METRICS = (
    "val/map40",
    "val/mAP50-95",
    "test/mAP50",
    "test/mAP50-95",
    "test/map40",
    "test/froc_mean",
    "test/auroc",
    "ultralytics/val/mAP50-95",
)


@dataclass
class Row:
    job: str
    status: str
    objective: float | None
    overrides: str
    run_id: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    error: str = ""
    rank: int | None = None

    @property
    def ranked(self) -> bool:
        return self.status == "FINISHED" and self.objective is not None and not math.isnan(self.objective)


def rank(rows: list[Row], direction: str) -> list[Row]:
    """Best first (direction-aware); unranked rows (failed, no objective) last, by job."""
    sign = -1.0 if str(direction) == "maximize" else 1.0
    ranked = sorted((r for r in rows if r.ranked), key=lambda r: (sign * float(r.objective or 0.0), _job_key(r.job)))
    for i, row in enumerate(ranked, 1):
        row.rank = i
    return ranked + sorted((r for r in rows if not r.ranked), key=lambda r: _job_key(r.job))


def _job_key(job: str) -> tuple:
    return tuple(int(p) if p.isdigit() else p for p in job.split("/"))


def rows_from_mlflow(client, experiment_id: str, parent_run_id: str, metric: str) -> list[Row]:
    """The parent run's children (xray_exp.mlops.parent_runs), one row each."""
    runs = list_children(client, parent_run_id, [experiment_id])
    sweep_dirs = {r.data.tags.get("sweep.dir") for r in runs}
    rows = []
    for run in runs:
        tags = run.data.tags
        job = tags.get("sweep.job_num", "?")
        if len(sweep_dirs) > 1:  # a resumed study: jobs of several invocations
            job = f"{Path(tags.get('sweep.dir', '?')).name}/{job}"
        rows.append(
            Row(
                job=job,
                status=run.info.status,
                objective=run.data.metrics.get(metric),
                overrides=tags.get("hydra.overrides", ""),
                run_id=run.info.run_id,
                metrics=dict(run.data.metrics),
                tags=dict(tags),
                error=tags.get("error.message", ""),
            )
        )
    return rows


def rows_from_folders(sweep_dir: Path, metric: str) -> list[Row]:
    """Without MLflow: the job folders `<sweep dir>/<num>/summary.json`."""
    rows = []
    for job_dir in sorted(p for p in sweep_dir.iterdir() if p.is_dir() and p.name.isdigit()):
        overrides_file = job_dir / ".hydra" / "overrides.yaml"
        overrides = ""
        if overrides_file.is_file():
            from omegaconf import OmegaConf

            overrides = " ".join(OmegaConf.load(overrides_file))
        summary_file = job_dir / "summary.json"
        if not summary_file.is_file():
            rows.append(
                Row(
                    job=job_dir.name,
                    status="FAILED" if (job_dir / "error.txt").is_file() else "RUNNING",
                    objective=None,
                    overrides=overrides,
                )
            )
            continue
        summary = json.loads(summary_file.read_text())
        overrides = overrides or " ".join(summary.get("overrides", []))
        rows.append(
            Row(
                job=job_dir.name,
                status=summary.get("status", "FINISHED"),
                objective=summary.get("metrics", {}).get(metric),
                overrides=overrides,
                run_id=summary.get("mlflow_run_id"),
                metrics=summary.get("metrics", {}),
                error=(summary.get("error") or {}).get("message", ""),
            )
        )
    return rows


def columns(rows: list[Row], metric: str) -> list[str]:
    present = {k for r in rows for k in r.metrics}
    return [m for m in KEY_METRICS if m in present and m != metric]


def write_csv(rows: list[Row], metric: str, path: Path) -> Path:
    extra = columns(rows, metric)
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["rank", "job", "status", metric, *extra, "overrides", "run_id", "error"])
        for r in rows:
            writer.writerow(
                [
                    r.rank or "",
                    r.job,
                    r.status,
                    "" if r.objective is None else r.objective,
                    *[r.metrics.get(m, "") for m in extra],
                    r.overrides,
                    r.run_id or "",
                    r.error,
                ]
            )
    return path


def format_table(rows: list[Row], metric: str, direction: str) -> str:
    """The printed leaderboard: overrides shared by every job are shown once, in the title."""
    extra = columns(rows, metric)
    common = set.intersection(*(set(r.overrides.split()) for r in rows)) if len(rows) > 1 else set()
    header = ["rank", "job", "status", metric, *extra, "run_id", "overrides"]
    body = [
        [
            str(r.rank or "-"),
            r.job,
            r.status,
            _num(r.objective),
            *[_num(r.metrics.get(m)) for m in extra],
            (r.run_id or "-")[:12],
            " ".join(o for o in r.overrides.split() if o not in common) + (f"  [{r.error[:80]}]" if r.error else ""),
        ]
        for r in rows
    ]
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(header)]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    title = f" sweep leaderboard ({metric}, {direction}; {sum(r.ranked for r in rows)}/{len(rows)} jobs ranked)"
    shared = [f" every job: {' '.join(sorted(common))}"] if common else []
    return "\n".join(["=" * 72, title, *shared, "-" * 72, line(header), *map(line, body), "=" * 72])


def _num(value: float | None) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.5f}"


SWEEP_NOT_TESTED = (
    "a sweep's best job is not compared with the alias holder; compare them with python -m "
    "xray_exp.compare and promote by hand (python -m xray_exp.models promote)"
)


def register_best(
    client,
    best: Row,
    experiment_id: str,
    policy: str,
    metric: str,
    direction: str,
    sweep_tags: dict[str, str],
    better_if: str = "at_least_as_good",
) -> dict[str, Any]:
    """Register the best job's model under `tracking.register` rules; returns the decision. With
    better_if=significant the version is registered and the alias stays (no paired test runs here)."""
    name, alias = registration_target(best.tags.get("model", "model"), best.tags.get("mode") == "finetune")
    if policy == "never":
        return {"registered": False, "name": name, "alias": alias, "reason": "tracking.register=never"}
    holder = current_holder(client, name, alias)
    if holder is not None and holder.tags.get("source_run_id") == best.run_id:  # a resumed sweep, same best
        return {
            "registered": True,
            "name": name,
            "alias": alias,
            "version": holder.version,
            "reason": f"run {best.run_id} already holds {name}@{alias}",
        }
    if best.run_id is None:
        return {"registered": False, "name": name, "alias": alias, "reason": f"job {best.job} has no MLflow run"}
    model_uri = logged_model_uri(client, experiment_id, best.run_id)
    if model_uri is None:
        return {
            "registered": False,
            "name": name,
            "alias": alias,
            "reason": f"run {best.run_id} logged no model (post.onnx=false?)",
        }
    lineage: dict[str, str] = {
        k: best.tags[k] for k in ("parent_model", "parent_version", "parent_uri") if k in best.tags
    }
    event = {
        "name": name,
        "alias": alias,
        "policy": policy,
        "objective": metric,
        "value": best.objective,
        "direction": direction,
        "tags": {
            "dataset_fingerprint": best.tags.get("dataset.fingerprint", ""),
            "mode": best.tags.get("mode", ""),
            **lineage,
            **sweep_tags,
        },
        "better_if": better_if,
        "significance": {"error": SWEEP_NOT_TESTED} if better_if == "significant" else None,
    }
    return register_model(client, model_uri, best.run_id, event)
