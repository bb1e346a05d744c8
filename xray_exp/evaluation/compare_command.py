"""The body of `python -m xray_exp.compare` (the entry point composes the config and calls run_comparison):

comparison = run_comparison(cfg)   # paired differences, verdicts; report.md, comparison.json/.csv in out_dir
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from xray_exp.errors import ConfigError, ModelError
from xray_exp.evaluation.comparison import compare_models, write_comparison
from xray_exp.evaluation.evaluate_command import (
    evaluation_imgsz,
    evaluation_metric_settings,
    offline_data_yaml,
    resolve_model,
)
from xray_exp.mlops.report_run import end_report_run, evaluation_params, log_report_files, start_report_run
from xray_exp.mlops.run_tags import flatten

log = logging.getLogger("xray_exp.compare")


def resolve_candidate(spec: str, tracking_uri: str | None, cache_dir: str | Path) -> tuple[Path, str]:
    """A run folder, weight file or models:/ URI -> (weights path, display name)."""
    if str(spec).startswith("models:/"):
        return resolve_model(spec, tracking_uri, cache_dir), str(spec)
    path = Path(str(spec)).expanduser().resolve()
    if path.is_dir():
        for candidate in (path / "weights" / "best.pt", path / "best.pt", path / "weights" / "best.onnx"):
            if candidate.is_file():
                return candidate, path.name
        raise ModelError(
            f"{spec}: a folder without weights/best.pt. Fix: pass a run folder made by "
            "xray_exp.train, a .pt/.onnx file or a models:/<name>@<alias> URI."
        )
    weights = resolve_model(str(path), tracking_uri, cache_dir)
    return weights, (weights.parent.parent.name if weights.parent.name == "weights" else weights.name)


def run_comparison(cfg: DictConfig) -> dict:
    """Predict with both models, compare, print the verdicts, write and log the report."""
    gated = bool(cfg.gate.model)
    if gated:  # the gate's settings are checked before any work; without B, B is A gated
        from xray_exp.evaluation.gated import gate_settings  # lazy: only on this path

        gate_settings(cfg.gate, cfg.no_finding_class)
        if OmegaConf.is_missing(cfg, "b") and not OmegaConf.is_missing(cfg, "a"):
            cfg.b = cfg.a
    for key in ("a", "b"):
        if OmegaConf.is_missing(cfg, key):
            raise ConfigError(
                "two models needed. Fix: python -m xray_exp.compare <A> <B> (run folders, weight "
                "files or models:/ URIs)"
            )

    data_yaml = offline_data_yaml(cfg)

    models: list[dict[str, Any]] = []
    for key in ("a", "b"):
        weights, name = resolve_candidate(str(cfg[key]), cfg.tracking.tracking_uri, cfg.paths.cache_dir)
        imgsz, source = evaluation_imgsz(cfg.imgsz, weights)
        print(f"{key.upper()}: {name}  ({weights}, imgsz {imgsz}: {source})", flush=True)
        models.append({"name": name, "weights": weights, "imgsz": imgsz, "spec": str(cfg[key])})
    if gated:
        from xray_exp.evaluation.gated import gate_origin, prepare_gate  # lazy: only on this path

        classifier = resolve_model(cfg.gate.model, cfg.tracking.tracking_uri, cfg.paths.cache_dir)
        b = models[1]
        gate = prepare_gate(
            cfg.gate,
            classifier,
            b["weights"],
            data_yaml,
            cfg.split,
            b["imgsz"],
            evaluation_metric_settings(cfg),
            device=cfg.device,
            out_dir=Path(cfg.out_dir),
            origin=gate_origin(cfg.gate.model, cfg.tracking, b["spec"], b["weights"]),
        )
        b["transform"], b["name"] = gate.apply, f"{b['name']} gated"
        print(f"gate applied to B: {gate.describe()}", flush=True)
    if models[0]["name"] == models[1]["name"]:
        models[0]["name"], models[1]["name"] = f"A ({models[0]['name']})", f"B ({models[1]['name']})"
    comparison = compare_models(
        models,
        data_yaml,
        cfg.split,
        evaluation_metric_settings(cfg),
        conf=cfg.conf,
        iou=cfg.iou,
        device=cfg.device,
        batch=cfg.batch,
        max_det=cfg.max_det,
    )
    out_dir = Path(cfg.out_dir)
    write_comparison(comparison, out_dir)
    print("\n".join(comparison.verdicts), flush=True)
    if cfg.tracking.enabled:
        log_comparison(cfg, comparison, out_dir)
    print(f"REPORT={out_dir / 'report.md'}", flush=True)
    return comparison.as_dict()


def log_comparison(cfg: DictConfig, comparison, out_dir: Path) -> None:
    """One MLflow run in the comparison experiment: both models, every difference, the report."""
    a, b = comparison.models
    tags = {"a": a["spec"], "b": b["spec"], "split": cfg.split, "dataset": cfg.dataset.name}
    tracker = start_report_run(cfg, cfg.comparison_experiment, "compare", out_dir, tags)
    keys = (
        "split conf iou match_iou decision_conf map40_method froc_hit no_finding_class n_boot ci_seed ci_level max_det"
    )
    models = {"a": a["spec"], "b": b["spec"], "a.imgsz": a["imgsz"], "b.imgsz": b["imgsz"]}
    tracker.log_params(flatten({**models, **evaluation_params(cfg, keys.split())}))
    tracker.log_metrics(comparison.flat())
    log_report_files(tracker, out_dir, ("report.md", "comparison.json", "comparison.csv", "plots"))
    end_report_run(tracker, cfg.comparison_experiment, cfg.tracking.tracking_uri)
