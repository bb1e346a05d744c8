"""`python -m xray_exp.ensemble`: members -> model folder -> (OOF tuning) -> evaluation -> paired verdict.

    result = run_ensemble(cfg)     # cfg: xray_exp/conf/ensemble.yaml on EnsembleConfig (xray_exp/config/schema.py)
    result["metrics"]["test/map40"], result["verdicts"], result["model_dir"]

Every problem a user can fix (unknown member, a failed fold, different class lists, bad fusion settings,
tune=true without CV folders, a missing split) is raised before anything is written or predicted. The
model folder (`<out_dir>/model`: ensemble.json + members/*.onnx) is what is evaluated, logged to MLflow
as one pyfunc and served (xray_exp.ensembles.detector.EnsembleDetector).
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

from omegaconf import DictConfig, OmegaConf

from xray_exp.data.validate import load_data_yaml, parse_names
from xray_exp.ensembles.fusion import FusionSettings, tta_views
from xray_exp.ensembles.members import export_missing, parse_specs, read_onnx_facts
from xray_exp.errors import ConfigError, DatasetError
from xray_exp.evaluation.dataset import load_split

log = logging.getLogger("xray_exp.ensemble")


def member_specs(cfg: DictConfig) -> list[str]:
    specs = ([str(cfg.cv)] if cfg.cv else []) + [str(m) for m in (cfg.models or [])]
    if not specs:
        raise ConfigError(
            "no members. Fix: python -m xray_exp.ensemble cv=outputs/cv/<name> or "
            "models=[outputs/runs/a,b.onnx,models:/yolo12s@development]"
        )
    return specs


def fusion_settings(cfg: DictConfig) -> FusionSettings:
    try:
        # a DictConfig (FusionParams) becomes a dict with str keys; to_container's type covers lists and scalars too
        return FusionSettings(**cast("dict[str, Any]", OmegaConf.to_container(cfg.fusion, resolve=True)))
    except ValueError as exc:
        raise ConfigError(f"{exc}. Fix: see python -m xray_exp.ensemble --cfg job") from exc


def data_yaml_of(cfg: DictConfig, cvs: list) -> tuple[Path, str]:
    """`data_yaml=` when given, else the first CV's dataset, else the dataset group (as evaluate)."""
    if cfg.data_yaml:
        return Path(cfg.data_yaml).expanduser().resolve(), "data_yaml="
    if cvs:
        return cvs[0].data_yaml, f"the dataset of cv {cvs[0].name}"
    from xray_exp.evaluate import offline_data_yaml  # lazy: heavy (hydra)

    return offline_data_yaml(cfg), f"dataset={cfg.dataset.name}"


def ensemble_registered_name(cfg: DictConfig, members: list) -> str:
    base = cfg.model_name or next((m.model for m in members if m.model), None) or "yolo12"
    return f"{base}-ensemble"


def check_inputs(cfg: DictConfig):
    """Everything that can be refused without running a model: members, fusion, views, data, split."""
    from xray_exp.evaluate import evaluation_metric_settings  # lazy: heavy (hydra)

    specs = member_specs(cfg)
    fusion = fusion_settings(cfg)
    try:
        views = tta_views(cfg.tta, list(cfg.tta_scales or []))
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    settings = evaluation_metric_settings(cfg)
    weights = [float(w) for w in cfg.weights] if cfg.weights else None
    members, cvs, notes = parse_specs(specs, weights, cfg.allow_missing, cfg.tracking.tracking_uri, cfg.paths.cache_dir)
    if cfg.tuning and (not cvs or any(m.fold is None for m in members)):
        raise ConfigError(
            "tune=true tunes on out-of-fold predictions: every member must be a CV folder (runs, "
            "files and models:/ URIs have none). Fix: tune=false, or cv=/models= CV folders only"
        )
    if cfg.tuning:
        from xray_exp.ensembles.tune import check_one_dataset  # lazy: only on this path

        check_one_dataset(cvs)
    data_yaml, data_source = data_yaml_of(cfg, cvs)
    if not data_yaml.is_file():
        raise DatasetError(f"{data_yaml}: no such data.yaml ({data_source}). Fix: data_yaml=/abs/path/data.yaml")
    images = load_split(data_yaml, cfg.split).images
    return members, cvs, notes, fusion, views, settings, data_yaml, data_source, images


def run_ensemble(cfg: DictConfig) -> dict:
    members, cvs, notes, fusion, views, settings, data_yaml, data_source, images = check_inputs(cfg)

    notes += export_missing(members, Path(cfg.paths.output_dir) / ".ultralytics")
    notes += read_onnx_facts(members)
    if len(members[0].names) != len(load_names(data_yaml)):
        raise ConfigError(
            f"the members predict {len(members[0].names)} classes, {data_yaml} has "
            f"{len(load_names(data_yaml))}: these models were not trained on this dataset"
        )
    from xray_exp.ensembles.detector import EnsembleDetector  # lazy: heavy (onnxruntime)
    from xray_exp.ensembles.predict import update_model_folder, write_model_folder  # lazy: heavy (onnxruntime)

    out_dir = Path(cfg.out_dir)
    name = ensemble_registered_name(cfg, members)
    lineage = {
        "model": name,
        "cv": [{"name": cv.name, "path": str(cv.path), "parent_run_id": cv.parent_run_id} for cv in cvs],
        "data_yaml": str(data_yaml),
    }
    folder = write_model_folder(members, fusion, views, out_dir / "model", extra=lineage)
    detector = EnsembleDetector(folder, device=cfg.device, threads=cfg.threads)
    print(
        f"{len(members)} members x {len(views)} views ({', '.join(v.name for v in views)}); data {data_yaml} "
        f"({data_source}), split {cfg.split}: {len(images)} images",
        flush=True,
    )
    for m, batched in zip(members, detector.batched, strict=True):
        print(f"  {m.name}: {m.onnx} (imgsz {m.imgsz}, weight {m.weight:g}, {batching(batched, len(views))})")
    for note in notes:
        print(f"  note: {note}", flush=True)
    tuned = None
    if cfg.tuning:
        tuned = tune(cfg, detector, cvs, members, settings)
        update_model_folder(folder, tuned.fusion, tuned.member_weights, {"tuning": tuned.as_dict()})
        detector = EnsembleDetector(folder, device=cfg.device, threads=cfg.threads)
    from xray_exp.ensembles.scoring import evaluate_ensemble  # lazy: heavy (onnxruntime)

    outcome = evaluate_ensemble(cfg, detector, members, images, data_yaml, settings, out_dir)
    summary = {
        "name": name,
        "model_dir": str(folder),
        "out_dir": str(out_dir),
        "split": cfg.split,
        "data_yaml": str(data_yaml),
        "members": [m.lineage() for m in members],
        "fusion": detector.fusion.as_dict(),
        "views": [v.name for v in detector.views],
        "tuning": tuned.as_dict() if tuned else None,
        "notes": notes,
        **outcome,
    }
    if cfg.tracking.enabled:
        from xray_exp.ensembles.tracking import log_ensemble  # lazy: only on this path

        summary["mlflow"] = log_ensemble(cfg, summary, folder, out_dir, images[0].path if images else None)
    (out_dir / "ensemble_summary.json").write_text(json.dumps(summary, indent=2, default=_json_default))
    print(f"ENSEMBLE_DIR={out_dir}\nREPORT={out_dir / 'report.md'}", flush=True)
    return summary


def batching(batched: bool, n_views: int) -> str:
    if n_views == 1:
        return "one ONNX call per image"
    return f"the {n_views} views in one batch" if batched else "static batch 1: one call per view"


def _json_default(value):
    return None if isinstance(value, float) and not math.isfinite(value) else str(value)


def load_names(data_yaml: Path) -> list[str]:
    data, _ = load_data_yaml(data_yaml)
    return list(parse_names(data, data_yaml).values())


def tune(cfg: DictConfig, detector, cvs: list, members: list, settings):
    from xray_exp.ensembles.tune import oof_predictions, tune_fusion  # lazy: heavy (onnxruntime)

    conf = min(cfg.conf, 1e-3)
    raw = oof_predictions(
        detector, cvs, members, conf=conf, iou=cfg.iou, max_det=cfg.max_det, progress=settings.progress
    )
    tuned = tune_fusion(
        raw,
        detector,
        cvs,
        members,
        replace(settings, progress=False),
        objective=cfg.tune_metric,
        n_trials=cfg.n_trials,
        seed=cfg.tune_seed,
        conf=conf,
        max_det=cfg.max_det,
    )
    print(
        f"tuned on {tuned.images} out-of-fold images, {tuned.n_trials} trials: oof/{tuned.objective} "
        f"{tuned.default_value:.4f} (given settings) -> {tuned.value:.4f} with {tuned.fusion.as_dict()}, "
        f"member weights {[round(w, 3) for w in tuned.member_weights]}",
        flush=True,
    )
    return tuned
