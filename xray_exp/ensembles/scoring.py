"""The ensemble on one split through the one evaluator, against its best single member by the paired test.

    outcome = evaluate_ensemble(cfg, detector, members, images, data_yaml, settings, out_dir)
    outcome["metrics"]["test/map40"], outcome["verdicts"][0]   # "ensemble better on map40: +0.030 [...], p=0.004"

Every member predicts every view once (predict_raw); the fused records are scored by
xray_exp.evaluation.pipeline.score_predictions (metrics, bootstrap CIs, report.md, metrics.json,
submission.csv under out_dir) and each member alone (original view: what it serves on its own) on the same
images. The best single member on `compare_metric` (chosen on this split, which favours the single model)
is compared with the ensemble by xray_exp.metrics.paired (the test of `python -m xray_exp.compare`); the
side-by-side report goes to out_dir/comparison.
"""

from __future__ import annotations

import math
from dataclasses import asdict
from pathlib import Path

from xray_exp.ensembles.predict import fused_predictions, member_predictions, predict_raw
from xray_exp.evaluation.comparison import Comparison, write_comparison
from xray_exp.evaluation.definitions import definitions
from xray_exp.evaluation.pipeline import confidence_intervals, score_predictions, split_groups
from xray_exp.evaluation.report import metrics_table, write_evaluation_report
from xray_exp.metrics.paired import paired_comparison, verdict_line
from xray_exp.metrics.summary import flat_metrics


def evaluate_ensemble(cfg, detector, members: list, images: list, data_yaml: Path, settings, out_dir: Path) -> dict:
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
    result = score_predictions(fused, settings, groups)
    flat = flat_metrics(result, prefix=split, ci=confidence_intervals(result, settings))
    shown = {
        "members": ", ".join(f"{m.name} (w {m.weight:g}, imgsz {m.imgsz})" for m in members),
        "views": ", ".join(v.name for v in detector.views),
        **detector.fusion.as_dict(),
        "data": data_yaml,
        "split": split,
        "conf": conf,
        "nms iou": cfg.iou,
        "max det": max_det,
        **{k.replace("_", " "): v for k, v in asdict(settings).items()},
        "bootstrap unit": "patient" if groups else "image",
    }
    write_evaluation_report(
        result, fused.preds, fused.gts, flat, out_dir, settings=shown, definitions=definitions(settings)
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
    differences = paired_comparison(
        singles[best],
        result,
        n_boot=settings.n_boot or 1000,
        seed=settings.ci_seed,
        level=settings.ci_level,
        progress=settings.progress,
    )
    differences.sort(key=lambda d: d.metric != cfg.compare_metric)  # the chosen metric's verdict first
    verdicts = [verdict_line(d, single_name, "ensemble") for d in differences]
    comparison = Comparison(
        [
            {
                "name": single_name,
                "weights": members[best].onnx,
                "imgsz": members[best].imgsz,
                "spec": members[best].spec,
            },
            {"name": "ensemble", "weights": detector.path, "imgsz": members[0].imgsz, "spec": "ensemble"},
        ],
        split,
        settings,
        [singles[best], result],
        differences,
        verdicts,
        "patient" if groups else "image",
    )
    write_comparison(comparison, out_dir / "comparison")
    with (out_dir / "report.md").open("a") as report:
        report.write(
            "\n".join(
                [
                    "",
                    f"## Members alone (same images, original view): {key}",
                    "",
                    "| member | weight | imgsz | " + key + " |",
                    "|---|---|---|---|",
                    *[
                        f"| {m.name} | {m.weight:g} | {m.imgsz} | {v:.4f} |"
                        for m, v in zip(members, values, strict=True)
                    ],
                    f"| **ensemble** | | | {flat[key]:.4f} |",
                    "",
                    f"Against the best member ([comparison/report.md](comparison/report.md)): {verdicts[0]}",
                    "",
                ]
            )
        )
    print("\n".join(verdicts), flush=True)
    return {
        "metrics": flat,
        "verdicts": verdicts,
        "comparison": comparison.as_dict(),
        "single_metrics": {m.name: v for m, v in zip(members, values, strict=True)},
        "best_single": members[best].name,
        "compare_metric": cfg.compare_metric,
    }
