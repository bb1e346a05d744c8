"""Two detectors on the same images: paired differences (xray_exp.metrics.paired), verdicts, report.

    comparison = compare_models([{"name": "A", "weights": a_pt, "imgsz": 320}, {"name": "B", ...}],
                                "data.yaml", "test", MetricSettings(n_boot=1000))
    comparison.verdicts        # ["B better on map40: +0.031 [0.012, 0.050], p=0.002", ...]
    write_comparison(comparison, "outputs/compare/<time>")   # report.md, comparison.json/.csv, plots/

Command line: python -m xray_exp.compare A B [split=test]
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

from xray_exp.errors import ModelError
from xray_exp.evaluation.definitions import definitions
from xray_exp.evaluation.pipeline import MetricSettings, score_predictions, split_groups
from xray_exp.evaluation.plots import plot_froc, plot_pr_curves, plot_roc
from xray_exp.evaluation.predict import SplitPredictions, predict_split
from xray_exp.metrics.paired import paired_comparison, verdict_line
from xray_exp.metrics.summary import EvaluationResult, metric_key


@dataclass
class Comparison:
    models: list[dict]  # name, weights, imgsz, spec
    split: str
    settings: MetricSettings
    results: list[EvaluationResult]
    differences: list  # xray_exp.metrics.paired.PairedDifference
    verdicts: list[str]
    bootstrap_unit: str

    def flat(self) -> dict[str, float]:
        """MLflow metrics: a/<m>, b/<m>, diff/<m>, diff/<m>_ci_low, diff/<m>_ci_high, p_value/<m>."""
        out: dict[str, float] = {}
        for d in self.differences:
            out[metric_key("a", d.metric)] = float(d.a)
            out[metric_key("b", d.metric)] = float(d.b)
            out[metric_key("diff", d.metric)] = float(d.diff)
            out[metric_key("diff", f"{d.metric}_ci_low")] = float(d.ci_low)
            out[metric_key("diff", f"{d.metric}_ci_high")] = float(d.ci_high)
            out[metric_key("p_value", d.metric)] = float(d.p_value)
        return out

    def as_dict(self) -> dict:
        return {
            "a": _model_info(self.models[0]),
            "b": _model_info(self.models[1]),
            "split": self.split,
            "settings": asdict(self.settings),
            "bootstrap_unit": self.bootstrap_unit,
            "definitions": definitions(self.settings),
            "differences": [_json_safe(asdict(d)) for d in self.differences],
            "verdicts": self.verdicts,
        }


def _model_info(model: dict) -> dict:
    return {
        "name": model["name"],
        "spec": model.get("spec", ""),
        "weights": str(model["weights"]),
        "imgsz": model["imgsz"],
    }


def _json_safe(row: dict) -> dict:
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()}


def compare_models(
    models: list[dict],
    data_yaml: str | Path,
    split: str,
    settings: MetricSettings,
    *,
    conf: float = 0.001,
    iou: float = 0.7,
    device: str | None = None,
    batch: int = 16,
    max_det: int = 300,
) -> Comparison:
    """Both models predict every image of `split`; each is scored, then the pair is compared. A model's
    `transform` (a gate) changes its prediction records before scoring."""
    outs, done = [], {}
    for m in models:  # the same weights at the same size predict once (a detector against itself gated)
        key = (str(m["weights"]), m["imgsz"])
        if key not in done:
            done[key] = predict_split(
                m["weights"],
                data_yaml,
                split,
                imgsz=m["imgsz"],
                conf=conf,
                iou=iou,
                device=device,
                batch=batch,
                max_det=max_det,
                progress=settings.progress,
            )
        out = done[key]
        if m.get("transform") is not None:  # a classifier's gate (xray_exp.evaluation.gated)
            out = SplitPredictions(out.names, m["transform"](out.preds), out.gts)
        outs.append(out)
    ids = [[str(g["image_id"]) for g in out.gts] for out in outs]
    if ids[0] != ids[1]:
        raise ModelError("the two models were not scored on the same images")  # same split: cannot happen
    if outs[0].names != outs[1].names:
        raise ModelError(f"A predicts {outs[0].names}, B {outs[1].names}: compare models of one dataset")
    groups = split_groups(data_yaml, outs[0])
    results = [score_predictions(out, settings, groups) for out in outs]
    differences = paired_comparison(
        results[0],
        results[1],
        n_boot=settings.n_boot or 1000,
        seed=settings.ci_seed,
        level=settings.ci_level,
        progress=settings.progress,
    )
    verdicts = [verdict_line(d, models[0]["name"], models[1]["name"]) for d in differences]
    return Comparison(models, split, settings, results, differences, verdicts, "patient" if groups else "image")


def _four_decimals(value: float) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.4f}"


def _side_by_side(title: str, left: str, right: str) -> list[str]:
    return [f"### {title}", "", "| A | B |", "|---|---|", f"| ![A]({left}) | ![B]({right}) |", ""]


def write_comparison(comparison: Comparison, out_dir: str | Path) -> Path:
    """report.md (verdicts, table, side-by-side curves), comparison.json, comparison.csv, plots/."""
    out = Path(out_dir)
    plots = out / "plots"
    for tag, result in zip(("a", "b"), comparison.results, strict=True):
        plot_pr_curves(result.detection, result.names, plots / f"{tag}_pr_curves.png")
        plot_froc(result.froc, plots / f"{tag}_froc.png")
        plot_roc(result.image_level, plots / f"{tag}_roc.png")
    (out / "comparison.json").write_text(json.dumps(comparison.as_dict(), indent=2, default=str))
    with (out / "comparison.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["metric", "a", "b", "diff_b_minus_a", "ci_low", "ci_high", "p_value", "test"])
        for d in comparison.differences:
            writer.writerow([d.metric, d.a, d.b, d.diff, d.ci_low, d.ci_high, d.p_value, d.test])
    a, b = comparison.models
    s = comparison.settings
    lines = [
        f"# Model comparison: {comparison.split} split",
        "",
        f"- A: **{a['name']}** (`{a['weights']}`, imgsz {a['imgsz']})",
        f"- B: **{b['name']}** (`{b['weights']}`, imgsz {b['imgsz']})",
        f"- both scored on the same {len(comparison.results[0].image_level.image_ids)} images; paired "
        f"bootstrap over {comparison.bootstrap_unit}s, {s.n_boot or 1000} resamples, seed {s.ci_seed}, "
        f"{s.ci_level:.0%} intervals; AUROC difference tested with DeLong's test",
        "",
        "## Verdicts",
        "",
        *[f"- {v}" for v in comparison.verdicts],
        "",
        "## Differences (B - A)",
        "",
        "| metric | A | B | B - A | CI low | CI high | p | test |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lines += [
        "| "
        + " | ".join(
            [d.metric, *(_four_decimals(v) for v in (d.a, d.b, d.diff, d.ci_low, d.ci_high, d.p_value)), d.test]
        )
        + " |"
        for d in comparison.differences
    ]
    lines += ["", "## Curves", ""]
    for title, name in (("Precision-recall", "pr_curves"), ("FROC", "froc"), ("ROC (image level)", "roc")):
        lines += _side_by_side(title, f"plots/a_{name}.png", f"plots/b_{name}.png")
    lines += ["## Definitions", "", *[f"- **{k}**: {v}" for k, v in definitions(s).items()], ""]
    report = out / "report.md"
    report.write_text("\n".join(lines))
    return report
