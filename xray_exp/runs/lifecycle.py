"""One training run end to end, from a composed config: the body of `python -m xray_exp.train`.

validate config and data -> build model -> train (MLflow per epoch, Ultralytics' validator as
ultralytics/val/*) -> best.pt scored by xray_exp.metrics on post.eval_splits (val/*, test/*, with CIs) ->
samples -> ONNX export + parity -> register -> summary.json -> return the objective.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from xray_exp.errors import ConfigError, DatasetError, ModelError
from xray_exp.yolo.runtime import apply_ultralytics_settings, configure_offline

log = logging.getLogger("xray_exp.train")

OBJECTIVE_PREFIXES = ("val/", "test/", "ultralytics/val/")


def resolve_data_yaml(dataset: DictConfig, cache_dir: str) -> Path:
    """The dataset's data.yaml: the configured file, or the synthetic one (generated on first use)."""
    if dataset.data_yaml:
        return Path(dataset.data_yaml).expanduser().resolve()
    if dataset.name != "synthetic":
        raise ConfigError(f"dataset.data_yaml: dataset {dataset.name!r} needs a data.yaml path")
    from xray_exp.data.synthetic import ensure_synthetic_dataset

    return ensure_synthetic_dataset(Path(cache_dir) / "datasets",
                                    **OmegaConf.to_container(dataset.synthetic, resolve=True))


def load_started_config(run_dir: Path) -> DictConfig:
    """The config a run was started with (for `resume=<run folder>`).

    Hydra saves it unresolved; the paths and run name are pinned to what the run resolved at its start, so a
    resume from another folder (or another day) still writes to the same store and run.
    """
    saved = run_dir / ".hydra" / "config.yaml"
    if not saved.is_file():
        raise ConfigError(f"resume: {saved} not found. Fix: pass a run folder made by xray_exp.train "
                          "(outputs/runs/<name>).")
    cfg = OmegaConf.load(saved)
    resolved = run_dir / "config.resolved.yaml"
    if resolved.is_file():
        started = OmegaConf.load(resolved)
        cfg.paths, cfg.run_name = started.paths, started.run_name
    return cfg


def is_fresh_run_dir(run_dir: Path) -> bool:
    """True when the folder holds only what Hydra wrote at start (safe to delete on early failure)."""
    return run_dir.is_dir() and all(p.name in (".hydra", "train.log") for p in run_dir.iterdir())


def resolve_start_weights(cfg: DictConfig) -> tuple[str | None, dict[str, str]]:
    """Weights to start from and lineage tags. `models:/` URIs and finetune mode go to the registry."""
    weights, lineage = cfg.model.weights, {}
    if cfg.mode == "finetune" and not weights:
        weights = f"models:/{cfg.model.name}@development"
    if weights and str(weights).startswith("models:/"):
        from xray_exp.mlops.registry import resolve_weights

        path, name, version = resolve_weights(str(weights), cfg.tracking.tracking_uri,
                                              Path(cfg.paths.cache_dir) / "registry")
        lineage = {"parent_model": name, "parent_version": version, "parent_uri": str(weights)}
        weights = str(path)
    if cfg.mode == "finetune" and not weights:
        raise ModelError("mode=finetune needs a registered model or model.weights")
    return weights, lineage


def check_objective(cfg: DictConfig) -> None:
    """objective.metric names a metric a run reports (and, with better_if=significant, one with a paired test)."""
    if not str(cfg.objective.metric).startswith(OBJECTIVE_PREFIXES):
        raise ConfigError(f"objective.metric: {cfg.objective.metric!r} must start with val/, test/ or "
                          "ultralytics/val/ (e.g. test/mAP50-95, val/map40, ultralytics/val/mAP50-95)")
    if str(cfg.tracking.better_if) == "significant":
        from xray_exp.evaluation.significance import significance_objective

        significance_objective(cfg)


def run(cfg: DictConfig, run_dir: str | Path, overrides: list[str]) -> float | None:
    """Train, evaluate, export and log one run; return the objective metric."""
    t0 = time.time()
    run_dir = Path(run_dir).resolve()
    resume = bool(cfg.resume)
    if resume:
        cfg = load_started_config(run_dir)
        OmegaConf.set_struct(cfg, True)
        last = run_dir / "weights" / "last.pt"
        if not last.is_file():
            raise ConfigError(f"resume: {last} not found: the run never finished an epoch; start it again.")
    configure_offline(Path(cfg.paths.output_dir) / ".ultralytics", offline=cfg.offline)
    try:
        check_objective(cfg)
        data_yaml = resolve_data_yaml(cfg.dataset, cfg.paths.cache_dir)
        from xray_exp.data.validate import validate_dataset

        info = validate_dataset(data_yaml)
    except (DatasetError, ConfigError, ValueError):
        from xray_exp.sweep.job import in_multirun

        if not resume and is_fresh_run_dir(run_dir) and not in_multirun():  # a sweep keeps the failed job's folder
            shutil.rmtree(run_dir, ignore_errors=True)  # nothing half-written
        raise
    from xray_exp.mlops.tracker import Tracker, flatten, run_tags

    weights, lineage = resolve_start_weights(cfg)
    finetune = cfg.mode == "finetune"
    tracker = Tracker(run_dir, cfg.tracking.tracking_uri, enabled=cfg.tracking.enabled,
                      timeout_s=cfg.tracking.timeout_s)
    experiment = cfg.tracking.finetune_experiment if finetune else cfg.tracking.experiment
    from xray_exp.sweep.job import child_run_name, child_tags, sweep_context

    sweep = sweep_context()  # a job of a --multirun: a child of the sweep's MLflow parent run
    tracker.start((sweep or {}).get("experiment") or experiment,
                  child_run_name(sweep, cfg.model.name) if sweep else run_dir.name,
                  run_tags(cfg.paths.root, overrides, {
                      "mode": str(cfg.mode), "model": cfg.model.name, "dataset": cfg.dataset.name,
                      "dataset.fingerprint": info.fingerprint, **lineage, **(child_tags(sweep) if sweep else {})}))
    resolved = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    tracker.log_params(flatten({k: v for k, v in resolved.items() if k not in ("paths",)}))
    write_run_files(run_dir, info, resolved)

    from xray_exp.yolo.args import to_train_args
    from xray_exp.yolo.fit import build_model, each_training_epoch, epoch_metrics, fit, trim_results_to_checkpoint

    if resume:
        trim_results_to_checkpoint(run_dir)

    train_args = to_train_args(cfg, info.data_yaml, run_dir)
    apply_ultralytics_settings(Path(cfg.paths.output_dir) / ".ultralytics" / "runs")
    model = build_model(cfg.model.arch, weights if not resume else run_dir / "weights" / "last.pt", cfg.offline)

    @each_training_epoch
    def on_epoch(trainer) -> None:
        tracker.log_metrics(epoch_metrics(trainer), step=int(trainer.epoch) + 1)

    status, summary = "FAILED", {}
    try:
        result = fit(model, train_args, callbacks={"on_fit_epoch_end": [on_epoch]}, resume=resume,
                     gray_loader=bool(cfg.hardware.gray_loader))
        deferred = f"deferred to sweep {sweep['sweep_id']} (best job registered)" if sweep else None
        summary = finish_run(cfg, run_dir, result, info, tracker, t0, cfg,
                             registered_name=cfg.model.name + ("-finetuned" if finetune else ""),
                             alias="staging" if finetune else "development",
                             registry_tags={"mode": str(cfg.mode), **lineage}, defer_registration=deferred)
        status = "FINISHED"
    finally:
        tracker.end(status)
    return close_run(summary, tracker, run_dir)


def write_run_files(run_dir: Path, info, resolved: dict[str, Any]) -> None:
    """dataset.json (data.yaml, fingerprint, counts) and config.resolved.yaml in the run folder."""
    (run_dir / "dataset.json").write_text(json.dumps({
        "data_yaml": str(info.data_yaml), "fingerprint": info.fingerprint, "names": info.names,
        "images": {s: len(v) for s, v in info.splits.items()}, "instances": info.instances}, indent=2))
    (run_dir / "config.resolved.yaml").write_text(OmegaConf.to_yaml(resolved))


def finish_run(cfg: DictConfig, run_dir: Path, result, info, tracker, t0: float, post_cfg: DictConfig, *,
               registered_name: str, alias: str, registry_tags: dict[str, str],
               defer_registration: str | None = None) -> dict[str, Any]:
    """After training (any engine): post-training, final metrics, summary, artifacts, model + registration.

    `post_cfg` is the config post-training runs with (the Ray driver may swap the device for CPU).
    """
    metrics = dict(result.val_metrics)
    metrics.update(post_training(post_cfg, info, result.best, run_dir, tracker))
    objective = metrics.get(cfg.objective.metric)
    if objective is None:
        raise ConfigError(f"objective.metric: {cfg.objective.metric!r} was not computed; available: "
                          f"{', '.join(sorted(metrics))}")
    # Final numbers (best.pt) one step after the last epoch, as Ultralytics' own logging does.
    tracker.log_metrics(metrics, step=result.epochs_run + 1)
    summary = write_summary(cfg, run_dir, result, metrics, info, tracker, time.time() - t0)
    log_artifacts(tracker, run_dir, info)
    tracker.log_dataset(cfg.dataset.name, info.fingerprint, str(info.data_yaml),
                        {split: len(images) for split, images in info.splits.items()})
    if (run_dir / "onnx_parity.json").exists() and cfg.tracking.enabled:
        example = (info.splits.get("val") or [None])[0]
        tracker.log_model(result.best.with_suffix(".onnx"), result.best, info.names, cfg.train.imgsz, example)
        if defer_registration:
            tracker.set_tags({"registry.decision": defer_registration})
        else:
            better_if, significance = str(cfg.tracking.better_if), None
            if better_if == "significant" and str(cfg.tracking.register) == "if_better":
                from xray_exp.evaluation.significance import compare_with_holder

                significance = compare_with_holder(post_cfg, result.best, info, registered_name, alias)
            tracker.register(registered_name, alias, str(cfg.tracking.register), cfg.objective.metric, objective,
                             str(cfg.objective.direction), {"dataset_fingerprint": info.fingerprint, **registry_tags},
                             better_if=better_if, significance=significance)
    return summary


def close_run(summary: dict[str, Any], tracker, run_dir: Path) -> float:
    """Add the MLflow outcome to summary.json, print the one-screen summary, return the objective.

    `tracker.end()` has replayed what an outage held back; what is still unsent is counted
    (`mlflow_unsent_events`) and `python -m xray_exp.tracking upload` updates this file once it is sent.
    """
    summary.update(tracker.outcome())
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    print_summary(summary)
    return float(summary["objective"]["value"])


def post_training(cfg: DictConfig, info, best: Path, run_dir: Path, tracker) -> dict[str, float]:
    """Metrics on `post.eval_splits`, annotated samples, ONNX export + parity (each switchable in `post`)."""
    from xray_exp.runs.post_training import split_metrics
    from xray_exp.yolo.export import export_onnx, onnx_parity
    from xray_exp.yolo.predict import save_samples

    metrics: dict[str, float] = {}
    post, hw = cfg.post, cfg.hardware
    for split in post.eval_splits:
        metrics.update(split_metrics(best, info, split, cfg, run_dir / f"report-{split}"))
    sample_images = info.splits["val"][: post.samples]
    if post.samples:
        save_samples(best, sample_images, run_dir / "samples", cfg.train.imgsz, post.conf, hw.device)
    if post.onnx:
        onnx_path = export_onnx(best, cfg.train.imgsz)
        parity = onnx_parity(best, onnx_path, sample_images or info.splits["val"][:2], cfg.train.imgsz,
                             post.parity_conf, post.parity_iou, run_dir / "onnx_parity.json")
        metrics["onnx/max_abs_diff_box_px"] = parity["max_abs_diff_box_px"]
        metrics["onnx/max_abs_diff_score"] = parity["max_abs_diff_score"]
        metrics["onnx/detection_agreement"] = parity["detection_agreement"]
        if not parity["passed"]:
            log.warning("ONNX parity outside tolerance: %s", parity)
    return metrics


def write_summary(cfg, run_dir: Path, result, metrics: dict[str, float], info, tracker, seconds: float) -> dict:
    from xray_exp.runs.post_training import evaluation_settings

    return {
        "run_dir": str(run_dir),
        "model": cfg.model.name,
        "mode": str(cfg.mode),
        "epochs_run": result.epochs_run,
        "best_weights": str(result.best),
        "onnx": str(result.best.with_suffix(".onnx")) if result.best.with_suffix(".onnx").exists() else None,
        "objective": {"metric": cfg.objective.metric, "value": metrics.get(cfg.objective.metric)},
        "metrics": metrics,
        "evaluation": evaluation_settings(cfg),
        "onnx_parity": json.loads((run_dir / "onnx_parity.json").read_text())
        if (run_dir / "onnx_parity.json").exists() else None,
        "dataset": {"data_yaml": str(info.data_yaml), "fingerprint": info.fingerprint},
        "tracking_uri": cfg.tracking.tracking_uri if cfg.tracking.enabled else None,
        "wall_time_s": round(seconds, 1),
    }


def log_artifacts(tracker, run_dir: Path, info) -> None:
    """Weights, configs, data.yaml + fingerprint, samples, Ultralytics plots and results.csv."""
    tracker.log_artifact(run_dir / "weights" / "best.pt", "weights")
    tracker.log_artifact(run_dir / "weights" / "best.onnx", "weights")
    for sub in (".hydra", ".hydra-resume"):
        tracker.log_artifact(run_dir / sub, f"config/{sub.lstrip('.')}")
    tracker.log_artifact(run_dir / "config.resolved.yaml", "config")
    tracker.log_artifact(info.data_yaml, "dataset")
    tracker.log_artifact(run_dir / "dataset.json", "dataset")
    tracker.log_artifact(run_dir / "samples", "samples")
    tracker.log_artifact(run_dir / "results.csv", "ultralytics")
    tracker.log_artifact(run_dir / "onnx_parity.json", "onnx")
    for plot in sorted(run_dir.glob("*.png")) + sorted(run_dir.glob("*.jpg")):
        tracker.log_artifact(plot, "ultralytics/plots")
    for report in sorted(run_dir.glob("report-*")):
        tracker.log_artifact(report, f"reports/{report.name}")


def metric_lines(m: dict[str, float], split: str) -> list[str]:
    """' test  mAP50 0.6410 [0.580, 0.700]  ...' and the image-level line (95% CIs where computed)."""
    def shown(name: str, label: str) -> str:
        value = m.get(f"{split}/{name}", float("nan"))
        low, high = m.get(f"{split}/{name}_ci_low"), m.get(f"{split}/{name}_ci_high")
        ci = f" [{low:.3f}, {high:.3f}]" if low is not None and high is not None else ""
        return f"{label} {value:.4f}{ci}"

    detection = (("mAP50", "mAP50"), ("mAP50-95", "mAP50-95"), ("map40", "mAP@0.4"), ("froc_mean", "FROC"))
    image = (("auroc", "AUROC"), ("sensitivity", "sens"), ("specificity", "spec"))
    return [f" {split:<5} " + "  ".join(shown(n, label) for n, label in detection),
            f" {'':<5} " + "  ".join(shown(n, label) for n, label in image)]


def print_summary(summary: dict[str, Any]) -> None:
    """One screen: the metrics that matter and where everything is."""
    m = summary["metrics"]
    parity = summary.get("onnx_parity") or {}
    lines = [
        "", "=" * 72, f" xray_exp run: {Path(summary['run_dir']).name}   ({summary['wall_time_s']} s, "
        f"{summary['epochs_run']} epochs)", "-" * 72,
        *[line for split in ("test", "val") if f"{split}/mAP50" in m for line in metric_lines(m, split)],
        f" Ultralytics' validator (val, best.pt): mAP50 {m.get('ultralytics/val/mAP50', float('nan')):.4f}   "
        f"mAP50-95 {m.get('ultralytics/val/mAP50-95', float('nan')):.4f}",
        f" objective {summary['objective']['metric']} = {summary['objective']['value']}",
    ]
    if parity:
        lines.append(f" ONNX parity: max |box| diff {parity['max_abs_diff_box_px']:.2e} px, max |score| diff "
                     f"{parity['max_abs_diff_score']:.2e}, detections agree {parity['detection_agreement']:.1%} "
                     f"(of {parity['detections_compared']}) "
                     f"-> {'PASS' if parity['passed'] else 'FAIL'}")
    if summary.get("mlflow_run_id"):
        lines.append(f" MLflow run {summary['mlflow_run_id']} at {summary['tracking_uri']}")
    reg = summary.get("registration") or {}
    if reg:
        from xray_exp.mlops.registry import describe_decision

        lines.append(f" registry: {describe_decision(reg)}")
    lines += [f" run folder  {summary['run_dir']}", f" weights     {summary['best_weights']}",
              f" onnx        {summary['onnx']}", "=" * 72]
    print("\n".join(lines), flush=True)
    print(f"RUN_DIR={summary['run_dir']}", flush=True)
