"""What a Ray Tune search leaves behind: trials.csv, the best trial's experiment config, the one-screen summary.

rows = trial_rows(grid, "ultralytics/val/mAP50-95", epochs=30); write_trials_csv(rows, tune_dir / "trials.csv")
text = experiment_yaml(cfg, name, params, metric, value, trial_id, command)   # conf/experiment/tuned_<name>.yaml
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf


def trial_rows(grid, metric: str, epochs: int) -> list[dict[str, Any]]:
    rows = []
    for result in grid:
        m = result.metrics or {}
        epoch = int(m.get("epoch", 0) or 0)
        rows.append(
            {
                "trial_id": m.get("trial_id") or (result.path.rsplit("trial_", 1)[-1] if result.path else ""),
                "epochs": epoch,
                "stopped_early": result.error is None and epoch < epochs,
                "error": type(result.error).__name__ if result.error else "",
                metric: m.get(metric),
                "mlflow_run_id": m.get("mlflow_run_id", ""),
                **{f"config/{k}": v for k, v in (result.config or {}).items()},
            }
        )
    return rows


def write_trials_csv(rows: list[dict[str, Any]], path: Path) -> None:
    if not rows:
        return
    fields = list(dict.fromkeys(k for row in rows for k in row))
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def experiment_yaml(
    cfg: DictConfig, name: str, params: dict[str, Any], metric: str, value: float, trial_id: str, command: str
) -> str:
    """A `# @package _global_` experiment: the search's groups and the best trial's values."""
    tree: dict[str, Any] = {}
    for key, val in params.items():
        node = tree
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = val
    if cfg.dataset.data_yaml:
        tree.setdefault("dataset", {})["data_yaml"] = str(cfg.dataset.data_yaml)
    body = {
        "defaults": [
            {"override /model": cfg.model.name},
            {"override /dataset": cfg.dataset.name},
            {"override /augmentation": cfg.augmentation.name},
        ],
        **tree,
        "tags": ["tuned", name],
    }
    header = (
        f"# @package _global_\n# Best trial {trial_id} of Ray Tune experiment {name}: {metric} = {value:.6g}\n"
        f"# (searcher {cfg.tune.searcher}, {cfg.tune.num_samples} trials, {cfg.train.epochs} epochs each).\n"
        f"# {command}\n"
    )
    return header + OmegaConf.to_yaml(OmegaConf.create(body))


def flatten_best(params: dict[str, Any]) -> dict[str, str]:
    return {f"best.{k}": str(v) for k, v in params.items()}


def print_tune_summary(summary: dict[str, Any]) -> None:
    b, m = summary["best"], summary["metrics"]
    lines = [
        "",
        "=" * 72,
        f" Ray Tune {Path(summary['tune_dir']).name}: {summary['trials']} trials ({summary['stopped_early']} "
        f"stopped early, {summary['errors']} errors), {summary['searcher']} + {summary['scheduler']}, "
        f"{summary['wall_time_s']} s",
        "-" * 72,
        f" best trial {b['trial_id']} ({b['epochs']} epochs): {b['metric']} = {b['value']:.5g}",
    ]
    lines += [f"   {k} = {v}" for k, v in b["params"].items()]
    lines.append(
        f" test  mAP50 {m.get('test/mAP50', float('nan')):.4f}   mAP50-95 "
        f"{m.get('test/mAP50-95', float('nan')):.4f}   objective {summary['objective']['metric']} = "
        f"{summary['objective']['value']}"
    )
    reg = summary.get("registration") or {}
    if reg:
        from xray_exp.mlops.registry import describe_decision  # lazy: only on this path

        lines.append(f" registry: {describe_decision(reg)}")
    if summary.get("mlflow_run_id"):
        lines.append(f" MLflow parent run {summary['mlflow_run_id']} at {summary['tracking_uri']}")
    lines += [
        f" experiment config  {summary['experiment_config']}",
        f" train it:  {summary['train_command']}",
        f" Ray Tune experiment  {summary['experiment_path']}",
        "=" * 72,
    ]
    print("\n".join(lines), flush=True)
    print(f"TUNE_DIR={summary['tune_dir']}", flush=True)
    print(f"BEST_EXPERIMENT={Path(summary['experiment_config']).stem}", flush=True)
