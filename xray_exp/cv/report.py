"""report.md of a cross-validation: per-fold table with mean and std, OOF metrics with intervals, OOF curves
(the evaluator's PR / FROC / ROC plots), the fold plan.

    write_cv_report(cv_dir, record, cv_metrics, result)    # result: the OOF EvaluationResult (None: no curves)
"""

from __future__ import annotations

import json
import math
from pathlib import Path

SHOWN = ("map40", "mAP50", "mAP50-95", "froc_mean", "auroc", "sensitivity", "specificity")


def _report_cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return "n/a" if not math.isfinite(value) else f"{value:.4f}"
    return str(value)


def _report_table(header: list[str], rows: list[list]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
        *["| " + " | ".join(_report_cell(v) for v in row) + " |" for row in rows],
        "",
    ]


def _fold_section(out: dict, split: str) -> list[str]:
    keys = [f"{split}/{m}" for m in SHOWN]
    rows = [[row["fold"], row["status"], *[row.get(k) for k in keys]] for row in out["per_fold"]]
    rows.append(["mean", "", *[out["mean"].get(k) for k in keys]])
    rows.append(["std", "", *[out["std"].get(k) for k in keys]])
    title = (
        "validation = the fold itself (never trained on)"
        if split == "val"
        else "test = the dataset's held-out test split"
    )
    return [f"### {split}: {title}", "", *_report_table(["fold", "status", *SHOWN], rows)]


def _plan_section(cv_dir: Path) -> list[str]:
    plan = cv_dir / "plan" / "plan.json"
    if not plan.is_file():
        return []
    info = json.loads(plan.read_text())
    rows = info["per_fold"]
    header = list(rows[0]) if rows else []
    patients = (
        "patients from the dataset's manifest.csv"
        if info["patients_known"]
        else "no patients known: each image is its own patient"
    )
    return [
        "## Fold plan",
        "",
        f"{info['folds']} folds, seed {info['seed']}, pool (train + val) of "
        f"{info['pool_images']} images, {patients}; {info['test_images']} test images held out. Patient-grouped, "
        "multi-label iterative stratification (classes and normal images); `folds.csv` lists every image.",
        "",
        *_report_table(header, [[r[h] for h in header] for r in rows]),
    ]


def write_cv_report(cv_dir: str | Path, record: dict, out: dict, result=None) -> Path:
    """report.md (+ plots/ when the OOF predictions were scored)."""
    cv_dir = Path(cv_dir)
    lines = [
        f"# Cross-validation {record['name']}",
        "",
        f"Model {record['model']}, dataset {record.get('dataset', '')} ({record['data_yaml']}), "
        f"{record['folds']} folds, seed {record['seed']}, imgsz {record['imgsz']}. "
        f"{len(out['finished_folds'])}/{record['folds']} folds finished.",
        "",
        "## Per fold",
        "",
        f"Every metric from the one evaluator on each fold model's best.pt ({out['std_note']}).",
        "",
    ]
    for split in ("val", "test"):
        lines += _fold_section(out, split)
    lines += ["## Out-of-fold (OOF)", ""]
    oof = out.get("oof")
    if oof:
        ci_rows = [
            [
                m,
                oof.get(m),
                f"[{_report_cell(oof.get(f'{m}_ci_low'))}, {_report_cell(oof.get(f'{m}_ci_high'))}]"
                if oof.get(f"{m}_ci_low") is not None
                else "",
            ]
            for m in SHOWN
        ]
        lines += [
            f"Every pool image ({out['oof_images']}) predicted by the fold model that never saw it (folds "
            f"{out['oof_folds']}), pooled and scored once; 95% bootstrap intervals resample "
            f"{out['bootstrap_unit']} ({out['settings']['n_boot']} resamples). Predictions: "
            "`oof_predictions.csv`.",
            "",
            *_report_table(["metric", "value", "95% CI"], ci_rows),
        ]
    else:
        lines += [out.get("oof_note", "not computed"), ""]
    if result is not None:
        from xray_exp.evaluation.plots import plot_froc, plot_pr_curves, plot_roc  # lazy: only on this path

        plots = cv_dir / "plots"
        plot_pr_curves(result.detection, result.names, plots / "oof_pr_curves.png")
        plot_froc(result.froc, plots / "oof_froc.png")
        plot_roc(result.image_level, plots / "oof_roc.png")
        lines += [
            "![OOF PR curves](plots/oof_pr_curves.png)",
            "",
            "![OOF FROC](plots/oof_froc.png)",
            "",
            "![OOF ROC](plots/oof_roc.png)",
            "",
        ]
    lines += _plan_section(cv_dir)
    lines += [
        "## Files",
        "",
        "- `folds.csv`: image, patient, fold; `plan/fold<f>.yaml`: each fold's data.yaml",
        "- `cv.json`: the folds' runs, weights and ONNX files (what `python -m xray_exp.ensemble cv=...` reads)",
        "- `cv_metrics.json`: the tables above; `oof_predictions.csv`: the OOF boxes",
        "",
    ]
    path = cv_dir / "report.md"
    path.write_text("\n".join(lines))
    return path
