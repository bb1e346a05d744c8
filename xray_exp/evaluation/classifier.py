"""Evaluate a normal/abnormal classifier on one split: P(abnormal) per image, image-level metrics with
bootstrap intervals, calibration, and a report. Post-training of `task=classify` and
`python -m xray_exp.evaluate model=<classifier>` both score through here.

    from xray_exp.evaluation.classifier import evaluate_classifier
    flat = evaluate_classifier("best.pt", "data.yaml", "test", imgsz=224, threshold=0.5, out_dir="report-test")
    flat["test/auroc"], flat["test/auroc_ci_low"], flat["test/brier"]

out_dir/report.md (summary with 95% intervals, reliability table), metrics.json, probabilities.csv,
plots/roc.png, plots/reliability.png. A split without normal images says "n/a (no normal images in this
split)" where AUROC and specificity would be.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np

from xray_exp.data.classify import is_abnormal
from xray_exp.evaluation.dataset import load_split, patient_groups
from xray_exp.evaluation.plots import _figure, _save, plot_roc
from xray_exp.metrics.classification import ClassifierResult, classifier_flat, classifier_metrics
from xray_exp.metrics.image_level import undefined_note


def split_probabilities(weights, data_yaml: str | Path, split: str, imgsz: int, device: str | None = None):
    """(image ids, image paths, P(abnormal), abnormal flags) of every image of the split."""
    from xray_exp.yolo.classify import probabilities  # lazy: heavy (PIL, cv2, torch, tqdm)

    data = load_split(data_yaml, split)
    paths = [image.path for image in data.images]
    probs = probabilities(weights, paths, imgsz, device=device)
    return [image.image_id for image in data.images], paths, probs, np.array([is_abnormal(p) for p in paths])


def shown(result: ClassifierResult, name: str, value: float) -> str:
    note = undefined_note(name, result.n_normal, result.n_abnormal)
    if note:
        return note
    return "n/a" if not math.isfinite(value) else f"{value:.4f}"


def interval(result: ClassifierResult, name: str) -> str:
    low, high = result.ci.get(name, (float("nan"), float("nan")))
    if undefined_note(name, result.n_normal, result.n_abnormal) or not math.isfinite(low):
        return ""
    return f"[{low:.4f}, {high:.4f}]"


def plot_reliability(result: ClassifierResult, path: str | Path) -> Path:
    """Mean predicted probability vs observed share of abnormal images per bin (diagonal: calibrated)."""
    fig, ax = _figure(4.8, 4.5)
    bins = result.reliability
    ax.plot([0, 1], [0, 1], ":", color="grey", label="calibrated")
    if bins:
        ax.plot(
            [b["mean_prob"] for b in bins], [b["abnormal_rate"] for b in bins], "o-", label=f"Brier {result.brier:.3f}"
        )
    ax.set(
        xlim=(0, 1), ylim=(0, 1.02), xlabel="mean predicted P(abnormal)", ylabel="share abnormal", title="Reliability"
    )
    ax.legend(loc="upper left")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def write_classifier_report(
    result: ClassifierResult, flat: dict[str, float], paths: list, out_dir: str | Path, settings: dict | None = None
) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(flat, indent=2) + "\n")
    with (out / "probabilities.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image_id", "path", "p_abnormal", "abnormal", "reported"])
        for i, p, prob, ab in zip(result.image_ids, paths, result.probs, result.abnormal, strict=True):
            w.writerow([i, p, f"{prob:.6f}", int(ab), "abnormal" if prob >= result.threshold else "No findings"])
    plot_roc(result, out / "plots" / "roc.png")
    plot_reliability(result, out / "plots" / "reliability.png")
    t = result.threshold
    rows = [
        ("image-level AUROC (normal / abnormal)", "auroc"),
        (f"sensitivity (P >= {t:g})", "sensitivity"),
        (f"specificity (P < {t:g})", "specificity"),
        ("Brier score (lower is better)", "brier"),
    ]
    lines = [f"# Classifier report: {(settings or {}).get('split', '')} split", ""]
    if settings:
        lines += ["| setting | value |", "|---|---|", *[f"| {k} | {v} |" for k, v in settings.items()], ""]
    lines += ["## Summary", "", "| metric | value | 95% CI |", "|---|---|---|"]
    lines += [f"| {label} | {shown(result, n, getattr(result, n))} | {interval(result, n)} |" for label, n in rows]
    lines += [
        f"| images (normal / abnormal) | {len(result.image_ids)} ({result.n_normal} / {result.n_abnormal}) | |",
        "",
        "![ROC](plots/roc.png)",
        "",
        "## Calibration",
        "",
        "| P(abnormal) bin | images | mean P | share abnormal |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {b['low']:.1f}-{b['high']:.1f} | {b['count']} | {b['mean_prob']:.3f} | {b['abnormal_rate']:.3f} |"
        for b in result.reliability
    ]
    lines += [
        "",
        "![reliability](plots/reliability.png)",
        "",
        "Files: `metrics.json` (tracking names), `probabilities.csv` (one row per image).",
        "",
    ]
    report = out / "report.md"
    report.write_text("\n".join(lines))
    return report


def evaluate_classifier(
    weights,
    data_yaml: str | Path,
    split: str = "test",
    imgsz: int = 224,
    threshold: float = 0.5,
    out_dir: str | Path | None = None,
    device: str | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    prefix: str | None = None,
    report_settings: dict | None = None,
) -> dict[str, float]:
    """Flat `{prefix}/auroc` (+ CI), sensitivity, specificity, brier, images, normal_images; report in out_dir."""
    ids, paths, probs, abnormal = split_probabilities(weights, data_yaml, split, imgsz, device)
    groups = patient_groups(data_yaml, ids)
    result = classifier_metrics(ids, probs, abnormal, threshold=threshold, n_boot=n_boot, seed=seed, groups=groups)
    flat = classifier_flat(result, prefix or split)
    if out_dir is not None:
        settings = {
            "weights": weights if isinstance(weights, str | Path) else type(weights).__name__,
            "data": data_yaml,
            "split": split,
            "imgsz": imgsz,
            "threshold": threshold,
            "n boot": n_boot,
            "bootstrap unit": "patient" if groups else "image",
            **(report_settings or {}),
        }
        write_classifier_report(result, flat, paths, out_dir, settings)
    return flat
