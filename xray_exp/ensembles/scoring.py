"""The ensemble on one split through the one evaluator, against its best single member by the paired test.

    outcome = evaluate_ensemble(cfg, detector, members, images, data_yaml, settings, out_dir, gate=None)
    outcome["metrics"]["test/map40"], outcome["verdicts"][0]   # "ensemble better on map40: +0.030 [...], p=0.004"
    outcome["gate_verdicts"][0]      # with gate=: "gated ensemble better on map40: ..." (same images, paired)

Every member predicts every view once (predict_raw); the fused records are scored by
xray_exp.evaluation.pipeline.score_predictions (metrics, bootstrap CIs, report.md, metrics.json,
submission.csv under out_dir) and each member alone (original view: what it serves on its own) on the same
images. The best single member on `compare_metric` (chosen on this split, which favours the single model)
is compared with the ensemble by xray_exp.metrics.paired (the test of `python -m xray_exp.compare`); the
side-by-side report goes to out_dir/comparison. With a gate (xray_exp.ensembles.gate) the gated ensemble is
what is scored, reported and registered; the plain ensemble is compared with its best member as before, and
the gated ensemble with the plain one on the same images by the same paired test (out_dir/comparison-gate).
"""

from __future__ import annotations

import math
from dataclasses import asdict
from pathlib import Path

from xray_exp.ensembles.predict import fused_predictions, member_predictions, predict_raw
from xray_exp.evaluation.comparison import Comparison, write_comparison
from xray_exp.evaluation.definitions import definitions
from xray_exp.evaluation.pipeline import confidence_intervals, score_predictions, split_groups
from xray_exp.evaluation.predict import SplitPredictions
from xray_exp.evaluation.report import metrics_table, write_evaluation_report
from xray_exp.metrics.paired import paired_comparison, verdict_line
from xray_exp.metrics.summary import EvaluationResult, flat_metrics

Scored = tuple[str, dict, EvaluationResult]  # (name in the verdicts, model info for the report, its result)


def paired_verdicts(cfg, settings, a: Scored, b: Scored, unit: str, out: Path):
    """B against A on the same images (xray_exp.metrics.paired, the test of xray_exp.compare): the
    differences, the verdicts (`compare_metric` first) and the side-by-side report under `out`."""
    differences = paired_comparison(
        a[2],
        b[2],
        n_boot=settings.n_boot or 1000,
        seed=settings.ci_seed,
        level=settings.ci_level,
        progress=settings.progress,
    )
    differences.sort(key=lambda d: d.metric != cfg.compare_metric)  # the chosen metric's verdict first
    verdicts = [verdict_line(d, a[0], b[0]) for d in differences]
    comparison = Comparison([a[1], b[1]], cfg.split, settings, [a[2], b[2]], differences, verdicts, unit)
    write_comparison(comparison, out)
    return verdicts, comparison


def evaluate_ensemble(
    cfg, detector, members: list, images: list, data_yaml: Path, settings, out_dir: Path, gate=None
) -> dict:
    split, conf, max_det = cfg.split, float(cfg.conf), int(cfg.max_det)
    raw = predict_raw(
        detector,
        images,
        conf=min(conf, detector.fusion.skip_box_thr),
        iou=cfg.iou,
        max_det=max_det,
        progress=settings.progress,
        desc=f"predict {split}",
    )
    fused = fused_predictions(raw, detector, conf, max_det)
    groups = split_groups(data_yaml, fused)
    plain = score_predictions(fused, settings, groups)
    scored, result = fused, plain
    if gate is not None:  # the gated ensemble is the model: scored, reported, registered
        from xray_exp.evaluation.gated import gate_counts  # lazy: only on this path

        scored = SplitPredictions(fused.names, gate.apply(fused.preds), fused.gts)
        result = score_predictions(scored, settings, groups)
    flat = flat_metrics(result, prefix=split, ci=confidence_intervals(result, settings))
    if gate is not None:
        flat.update(gate_counts(gate.last or [], split))
    shown = {
        "members": ", ".join(f"{m.name} (w {m.weight:g}, imgsz {m.imgsz})" for m in members),
        "views": ", ".join(v.name for v in detector.views),
        **detector.fusion.as_dict(),
        **({"gate": f"applied: {gate.describe()}"} if gate is not None else {}),
        "data": data_yaml,
        "split": split,
        "conf": conf,
        "nms iou": cfg.iou,
        "max det": max_det,
        **{k.replace("_", " "): v for k, v in asdict(settings).items()},
        "bootstrap unit": "patient" if groups else "image",
    }
    write_evaluation_report(
        result, scored.preds, scored.gts, flat, out_dir, settings=shown, definitions=definitions(settings)
    )
    print(metrics_table(flat), flush=True)

    singles = [
        score_predictions(member_predictions(raw, detector, k, conf, max_det), settings, groups)
        for k in range(len(members))
    ]
    key = f"{split}/{cfg.compare_metric}"
    values = [flat_metrics(r, prefix=split)[key] for r in singles]
    best = max(range(len(values)), key=lambda k: values[k] if math.isfinite(values[k]) else -math.inf)
    single_name = f"best single ({members[best].name})"
    unit = "patient" if groups else "image"
    plain_info = {"name": "ensemble", "weights": detector.path, "imgsz": members[0].imgsz, "spec": "ensemble"}
    single_info = {"name": single_name, "weights": members[best].onnx, "imgsz": members[best].imgsz}
    verdicts, comparison = paired_verdicts(
        cfg,
        settings,
        (single_name, {**single_info, "spec": members[best].spec}, singles[best]),
        ("ensemble", plain_info, plain),
        unit,
        out_dir / "comparison",
    )
    plain_value = flat_metrics(plain, prefix=split)[key]
    lines = [
        "",
        f"## Members alone (same images, original view): {key}",
        "",
        "| member | weight | imgsz | " + key + " |",
        "|---|---|---|---|",
        *[f"| {m.name} | {m.weight:g} | {m.imgsz} | {v:.4f} |" for m, v in zip(members, values, strict=True)],
        f"| **ensemble** | | | {plain_value:.4f} |",
        *([f"| **gated ensemble** | | | {flat[key]:.4f} |"] if gate is not None else []),
        "",
        f"Against the best member ([comparison/report.md](comparison/report.md)): {verdicts[0]}",
        "",
    ]
    gate_verdicts, gate_comparison = [], None
    if gate is not None:
        gated_info = {**plain_info, "name": "gated ensemble", "spec": f"ensemble gated by {gate.classifier.name}"}
        gate_verdicts, gate_comparison = paired_verdicts(
            cfg,
            settings,
            ("ensemble", plain_info, plain),
            ("gated ensemble", gated_info, result),
            unit,
            out_dir / "comparison-gate",
        )
        lines += [
            f"## The gate: {gate.describe()}",
            "",
            f"Gated ensemble against the plain ensemble on the same images "
            f"([comparison-gate/report.md](comparison-gate/report.md)): {gate_verdicts[0]}",
            "",
        ]
    with (out_dir / "report.md").open("a") as report:
        report.write("\n".join(lines))
    print("\n".join(verdicts), flush=True)
    if gate_verdicts:
        print("gated ensemble vs ensemble (same images):\n" + "\n".join(gate_verdicts), flush=True)
    return {
        "metrics": flat,
        "verdicts": verdicts,
        "comparison": comparison.as_dict(),
        "gate_verdicts": gate_verdicts,
        "gate_comparison": gate_comparison.as_dict() if gate_comparison else None,
        "ensemble_metrics": flat_metrics(plain, prefix=split) if gate is not None else None,
        "single_metrics": {m.name: v for m, v in zip(members, values, strict=True)},
        "best_single": members[best].name,
        "compare_metric": cfg.compare_metric,
    }
