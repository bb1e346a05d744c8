"""report.md of a cross-validation: per-fold table with mean and std, OOF metrics with intervals, OOF curves
(the evaluator's PR / FROC / ROC plots), the fold plan.

    write_cv_report(cv_dir, record, cv_metrics, result)    # result: the OOF EvaluationResult (None: no curves)
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from xray_exp.metrics.image_level import undefined_note

SHOWN = ("map40", "mAP50", "mAP50-95", "froc_mean", "auroc", "sensitivity", "specificity")
SHOWN_CLASSIFY = ("auroc", "sensitivity", "specificity", "brier")  # a CV of classifiers (task=classify)


def shown_metrics(out: dict) -> tuple[str, ...]:
    return SHOWN_CLASSIFY if out.get("task") == "classify" else SHOWN


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
    shown = shown_metrics(out)
    keys = [f"{split}/{m}" for m in shown]
    rows = [[row["fold"], row["status"], *[row.get(k) for k in keys]] for row in out["per_fold"]]
    rows.append(["mean", "", *[out["mean"].get(k) for k in keys]])
    rows.append(["std", "", *[out["std"].get(k) for k in keys]])
    title = (
        "validation = the fold itself (never trained on)"
        if split == "val"
        else "test = the dataset's held-out test split"
    )
    return [f"### {split}: {title}", "", *_report_table(["fold", "status", *shown], rows)]


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


def oof_undefined(oof: dict, metric: str) -> str | None:
    """ "n/a (no normal images in this split)" where a classifier CV's pool cannot define the metric."""
    if "normal_images" not in oof or "images" not in oof:
        return None
    normal = int(oof["normal_images"])
    return undefined_note(metric, normal, int(oof["images"]) - normal)


def _classifier_oof_plots(cv_dir: Path, result) -> list[str]:
    """OOF ROC and reliability curve of a classifier CV (the classifier evaluator's plots) and the bins."""
    from xray_exp.evaluation.classifier import plot_reliability  # lazy: heavy (yaml)
    from xray_exp.evaluation.plots import plot_roc  # lazy: heavy (yaml)

    plot_roc(result, cv_dir / "plots" / "oof_roc.png")
    plot_reliability(result, cv_dir / "plots" / "oof_reliability.png")
    bins = [
        [f"{b['low']:.1f}-{b['high']:.1f}", b["count"], f"{b['mean_prob']:.3f}", f"{b['abnormal_rate']:.3f}"]
        for b in result.reliability
    ]
    return [
        "![OOF ROC](plots/oof_roc.png)",
        "",
        "### Calibration (OOF)",
        "",
        *_report_table(["P(abnormal) bin", "images", "mean P", "share abnormal"], bins),
        "![OOF reliability](plots/oof_reliability.png)",
        "",
    ]


def write_cv_report(cv_dir: str | Path, record: dict, out: dict, result=None) -> Path:
    """report.md (+ plots/ when the OOF predictions were scored)."""
    cv_dir = Path(cv_dir)
    kind = " (normal/abnormal classifiers, task=classify)" if out.get("task") == "classify" else ""
    lines = [
        f"# Cross-validation {record['name']}",
        "",
        f"Model {record['model']}{kind}, dataset {record.get('dataset', '')} ({record['data_yaml']}), "
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
                oof_undefined(oof, m) or oof.get(m),
                f"[{_report_cell(oof.get(f'{m}_ci_low'))}, {_report_cell(oof.get(f'{m}_ci_high'))}]"
                if oof.get(f"{m}_ci_low") is not None and not oof_undefined(oof, m)
                else "",
            ]
            for m in shown_metrics(out)
        ]
        what = (
            "P(abnormal) of every pool image by the fold classifier that never saw it (`oof_predictions.csv`: "
            f"image, patient, fold, label, p_abnormal; operating point P >= {out['settings'].get('threshold')})"
            if out.get("task") == "classify"
            else "Predictions: `oof_predictions.csv`"
        )
        lines += [
            f"Every pool image ({out['oof_images']}) predicted by the fold model that never saw it (folds "
            f"{out['oof_folds']}), pooled and scored once; 95% bootstrap intervals resample "
            f"{out['bootstrap_unit']} ({out['settings']['n_boot']} resamples). {what}.",
            "",
            *_report_table(["metric", "value", "95% CI"], ci_rows),
        ]
    else:
        lines += [out.get("oof_note", "not computed"), ""]
    if result is not None and out.get("task") == "classify":
        lines += _classifier_oof_plots(cv_dir, result)
    elif result is not None:
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
        "- `cv_metrics.json`: the tables above; `oof_predictions.csv`: the OOF "
        + ("probabilities" if out.get("task") == "classify" else "boxes"),
        "",
    ]
    path = cv_dir / "report.md"
    path.write_text("\n".join(lines))
    return path
