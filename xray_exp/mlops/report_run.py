"""The MLflow run of a report command (evaluate, compare, ensemble): one run in the command's experiment, named
`<kind>-<split>-<report folder>`, with every run's reproducibility tags (git, Hydra overrides, versions), the
settings as params, the metrics, and the report's files as artifacts under `report/`.

    tracker = start_report_run(cfg, cfg.evaluation_experiment, "eval", out_dir, {"split": cfg.split})
    tracker.log_params(flatten({**evaluation_params(cfg, ("split", "conf")), "weights": ...}))
    tracker.log_metrics(metrics)
    log_report_files(tracker, out_dir, REPORT_FILES)
    end_report_run(tracker, cfg.evaluation_experiment, cfg.tracking.tracking_uri)   # prints where the run is
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from xray_exp.mlops.run_tags import run_tags
from xray_exp.mlops.tracker import Tracker

# what the evaluator's report folder holds (xray_exp.evaluation.report and .exports); commands add their own
REPORT_FILES = ("report.md", "metrics.json", "predictions.csv", "images.csv", "submission.csv", "plots", "galleries")


def hydra_overrides() -> list[str]:
    """The command line's overrides of the running Hydra app; none outside one (tests, notebooks)."""
    from hydra.core.hydra_config import HydraConfig

    try:
        return list(HydraConfig.get().overrides.task)
    except ValueError:
        return []


def start_report_run(cfg: Any, experiment: str, kind: str, out_dir: Path, tags: dict[str, str]) -> Tracker:
    """A journaled Tracker (cfg.tracking) with its run started in `experiment`, tagged with `tags` besides the
    reproducibility tags."""
    tracker = Tracker(out_dir, cfg.tracking.tracking_uri, timeout_s=cfg.tracking.timeout_s)
    run_name = f"{kind}-{cfg.split}-{out_dir.name}"
    tracker.start(experiment, run_name, run_tags(cfg.paths.root, hydra_overrides(), tags))
    return tracker


def evaluation_params(cfg: Any, keys: Iterable[str]) -> dict[str, Any]:
    """The evaluator's settings `keys` of an evaluate/compare config, its dataset and (when used) its gate."""
    from omegaconf import OmegaConf

    return {
        **{k: cfg[k] for k in keys},
        "dataset": OmegaConf.to_container(cfg.dataset, resolve=True),
        **({"gate": OmegaConf.to_container(cfg.gate)} if cfg.gate.model else {}),
    }


def log_report_files(tracker: Tracker, out_dir: Path, names: Iterable[str]) -> None:
    """Each file under `report/`, each folder as `report/<folder>`."""
    for name in names:
        tracker.log_artifact(out_dir / name, "report" if (out_dir / name).is_file() else f"report/{name}")


def end_report_run(tracker: Tracker, experiment: str, tracking_uri: str) -> dict | None:
    """Close the run; print the registry's decision (when a model was registered) and where the run is.
    Returns the decision."""
    tracker.end()
    decision = tracker.state.get("registration")
    if decision:
        from xray_exp.mlops.registry import describe_decision  # lazy: only on this path

        print(f"registry: {describe_decision(decision)}", flush=True)
    if tracker.run_id:
        print(f"MLflow run {tracker.run_id} ({experiment}) at {tracking_uri}", flush=True)
    return decision
