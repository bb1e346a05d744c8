"""The ensemble's MLflow run: settings, metrics, report, the one pyfunc model and its registration.

    decision = log_ensemble(cfg, summary, model_folder, out_dir, example_image)

Registered as `<model>-ensemble` with alias `development` under the promotion rules of every model
(xray_exp.mlops.registry.register_model: `register=if_better|always|never`; the first version registers and
takes the alias; if_better moves it only when the objective is at least as good). Lineage (members' run ids
and registry URIs, the CV name) goes into the version's tags. debug-sized runs: register=never.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig

from xray_exp.mlops.report_run import REPORT_FILES, end_report_run, log_report_files, start_report_run
from xray_exp.mlops.run_tags import flatten


def lineage_tags(summary: dict) -> dict[str, str]:
    members = summary["members"]
    tags = {
        "ensemble.members": str(len(members)),
        "ensemble.fusion": ", ".join(f"{k}={v}" for k, v in summary["fusion"].items()),
        "ensemble.views": ", ".join(summary["views"]),
        "ensemble.best_single": summary["best_single"],
        "ensemble.verdict": summary["verdicts"][0],
    }
    for k, m in enumerate(members):
        tags[f"ensemble.member.{k}"] = " ".join(
            f"{key}={m[key]}" for key in ("name", "run_id", "uri", "fold", "weight") if m.get(key) is not None
        )[:5000]
    cvs = sorted({str(Path(m["spec"]).name) for m in members if m.get("fold") is not None})
    if cvs:
        tags["ensemble.cv"] = ", ".join(cvs)
    return tags


def log_ensemble(cfg: DictConfig, summary: dict, folder: Path, out_dir: Path, example: Path | None) -> dict:
    """One run in `cfg.ensemble_experiment`; returns {run_id, registration}."""
    tags = lineage_tags(summary)
    labels = {"split": cfg.split, "data_yaml": summary["data_yaml"], **tags}
    tracker = start_report_run(cfg, cfg.ensemble_experiment, "ensemble", out_dir, labels)
    tracker.log_params(
        flatten(
            {
                "members": [m["name"] for m in summary["members"]],
                "fusion": summary["fusion"],
                "views": summary["views"],
                "split": cfg.split,
                "conf": cfg.conf,
                "iou": cfg.iou,
                "tune": cfg.tuning,
                "n_trials": cfg.n_trials if cfg.tuning else 0,
                "weights": [m["weight"] for m in summary["members"]],
                "n_boot": cfg.n_boot,
                "map40_method": cfg.map40_method,
            }
        )
    )
    comparison = {
        f"compare/{d['metric']}/{k}": d[k]
        for d in summary["comparison"]["differences"]
        for k in ("diff", "ci_low", "ci_high", "p_value")
        if d.get(k) is not None
    }
    tuning = summary.get("tuning") or {}
    tracker.log_metrics(
        {
            **summary["metrics"],
            **comparison,
            **({"oof/tuned": tuning["best_value"], "oof/default": tuning["default_value"]} if tuning else {}),
        }
    )
    log_report_files(tracker, out_dir, (*REPORT_FILES, "comparison"))
    tracker.log_artifact(folder / "ensemble.json", "report")
    names = dict(enumerate(summary_names(folder)))
    tracker.log_ensemble_model(folder, names, example)
    objective = cfg.objective or f"{cfg.split}/map40"
    value = summary["metrics"].get(objective)
    tracker.register(
        summary["name"],
        cfg.register_alias,
        str(cfg.register),
        objective,
        None if value is None or value != value else float(value),
        "maximize",
        tags,
    )
    decision = end_report_run(tracker, cfg.ensemble_experiment, cfg.tracking.tracking_uri)
    return {"run_id": tracker.run_id, "registration": decision, "problem": tracker.problem}


def summary_names(folder: Path) -> list[str]:
    import json

    return list(json.loads((folder / "ensemble.json").read_text())["names"])
