"""Cross-validations for the notebooks (notebooks/01_runs.ipynb): the per-fold spread and the OOF curves.

    from xray_exp.analysis import cv
    cvs = cv.find_cvs(root)                        # every outputs/cv/<name>: task, folds finished, OOF map40 / AUROC
    cv.cv_fold_frame(cv_dir)                       # per fold: status and headline metrics, + mean / std / OOF rows
    cv.plot_cv_spread(cv_dir)                      # each fold's value, mean +- std and the OOF value with its CI
    cv.oof_curve_files(cv_dir)                     # the OOF PR / FROC / ROC figures of the CV's report.md

Reads the files `python -m xray_exp.train --multirun sweep=cv` writes (cv.json, cv_metrics.json, plots/).
"""

from __future__ import annotations

import json
from pathlib import Path

from xray_exp.analysis.common import message_figure, new_figure

SPREAD_METRICS = ("map40", "mAP50", "froc_mean", "auroc")


def find_cvs(root: str | Path):
    """DataFrame of the cross-validations under <root>/outputs/cv (newest first)."""
    import pandas as pd

    rows = []
    for record_path in sorted(Path(root).glob("outputs/cv/*/cv.json")):
        record = json.loads(record_path.read_text())
        metrics_path = record_path.parent / "cv_metrics.json"
        metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}
        states = [r["status"] for r in record["fold_runs"]]
        rows.append(
            {
                "name": record["name"],
                "task": record.get("task", "detect"),  # sweep=cv task=classify: a CV of normal/abnormal classifiers
                "model": record["model"],
                "dataset": record.get("dataset"),
                "folds": record["folds"],
                "finished": states.count("FINISHED"),
                "failed": states.count("FAILED"),
                "oof_map40": (metrics.get("oof") or {}).get("map40"),
                "oof_auroc": (metrics.get("oof") or {}).get("auroc"),
                "cv_dir": str(record_path.parent),
                "modified": pd.Timestamp(record_path.stat().st_mtime, unit="s"),
            }
        )
    table = pd.DataFrame(
        rows,
        columns=[
            "name",
            "task",
            "model",
            "dataset",
            "folds",
            "finished",
            "failed",
            "oof_map40",
            "oof_auroc",
            "cv_dir",
            "modified",
        ],
    )
    return table.sort_values("modified", ascending=False, ignore_index=True)


def _cv_metrics_of(cv_dir: str | Path) -> dict:
    path = Path(cv_dir) / "cv_metrics.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: the CV has not finished (python -m xray_exp.folds cv_dir=...)")
    return json.loads(path.read_text())


def cv_fold_frame(cv_dir: str | Path, split: str = "val"):
    """One row per fold (status, `<split>/<metric>` of SPREAD_METRICS), then mean, std and the OOF values."""
    import pandas as pd

    metrics = _cv_metrics_of(cv_dir)
    columns = [f"{split}/{m}" for m in SPREAD_METRICS]
    rows = [
        {"fold": str(r["fold"]), "status": r["status"], **{c: r.get(c) for c in columns}} for r in metrics["per_fold"]
    ]
    rows.append({"fold": "mean", "status": "", **{c: metrics["mean"].get(c) for c in columns}})
    rows.append({"fold": "std", "status": "", **{c: metrics["std"].get(c) for c in columns}})
    oof = metrics.get("oof") or {}
    rows.append({"fold": "OOF (pooled)", "status": "", **{f"{split}/{m}": oof.get(m) for m in SPREAD_METRICS}})
    return pd.DataFrame(rows).set_index("fold")


def plot_cv_spread(cv_dir: str | Path, split: str = "val", metrics: tuple[str, ...] = SPREAD_METRICS):
    """Per metric: every finished fold's `<split>/<metric>` (dots), their mean +- std (bar) and the pooled OOF
    value with its 95% interval (diamond), side by side."""
    import numpy as np

    data = _cv_metrics_of(cv_dir)
    done = [r for r in data["per_fold"] if r["status"] == "FINISHED"]
    if not done:
        return message_figure("no finished fold yet")
    fig, axes = new_figure(1, 1, width=1.6 * len(metrics) + 2, height=4)
    ax = axes[0, 0]
    oof = data.get("oof") or {}
    for i, metric in enumerate(metrics):
        key = f"{split}/{metric}"
        values = np.array([r.get(key) if r.get(key) is not None else np.nan for r in done], dtype=float)
        ax.plot(
            np.full(len(values), i - 0.12), values, "o", color="#1f77b4", alpha=0.7, label="folds" if i == 0 else None
        )
        mean, std = data["mean"].get(key), data["std"].get(key)
        if mean is not None:
            ax.errorbar(
                [i - 0.12],
                [mean],
                yerr=[[std or 0.0], [std or 0.0]],
                fmt="_",
                color="black",
                capsize=6,
                markersize=18,
                label="mean +- std" if i == 0 else None,
            )
        if oof.get(metric) is not None:
            low, high = oof.get(f"{metric}_ci_low"), oof.get(f"{metric}_ci_high")
            err = [[oof[metric] - low], [high - oof[metric]]] if low is not None and high is not None else None
            ax.errorbar(
                [i + 0.12],
                [oof[metric]],
                yerr=err,
                fmt="D",
                color="#d62728",
                capsize=4,
                label="OOF (95% CI)" if i == 0 else None,
            )
    ax.set_xticks(range(len(metrics)), [f"{split}/{m}" for m in metrics])
    ax.set(ylim=(-0.02, 1.02), ylabel="value", title=f"{data['name']}: {len(done)}/{data['folds']} folds")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    return fig


def oof_curve_files(cv_dir: str | Path) -> list[Path]:
    """The OOF PR, FROC and ROC figures the CV's report.md shows (those that exist)."""
    plots = Path(cv_dir) / "plots"
    return [p for p in (plots / "oof_pr_curves.png", plots / "oof_froc.png", plots / "oof_roc.png") if p.is_file()]
