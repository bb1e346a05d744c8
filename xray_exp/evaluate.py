"""Evaluate a detector on one split: every detection metric with bootstrap CIs, and a report.

    python -m xray_exp.evaluate model=outputs/runs/<run>/weights/best.pt          # synthetic test split
    python -m xray_exp.evaluate model=models:/yolo12n@champion dataset=yolo dataset.data_yaml=/data/data.yaml
    python -m xray_exp.evaluate model=best.onnx split=val tta=true imgsz=640 device=0
    python -m xray_exp.evaluate model=best.pt map40_method=coco101 froc_hit=center n_boot=0 progress=false
    python -m xray_exp.evaluate --help                                            # groups and keys

Scores at the image size the checkpoint was trained at unless `imgsz=` is given (and says which).
Prints the metrics table and writes report.md, metrics.json, predictions.csv, images.csv,
submission.csv (VinBigData), plots/ and galleries/ under out_dir (outputs/eval/<split>-<time>).
Returns `objective` (default <split>/map40) for sweepers. torch/ultralytics load only once it runs.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from xray_exp import CONF_DIR
from xray_exp.config.eval_schema import EvaluateConfig
from xray_exp.config.overrides import normalize_argv
from xray_exp.config.store import register_configs
from xray_exp.errors import ConfigError, ModelError, exit_on_user_error
from xray_exp.evaluation import MetricSettings, evaluate_split
from xray_exp.evaluation.classifier import evaluate_classifier
from xray_exp.evaluation.dataset import load_split
from xray_exp.evaluation.report import metrics_table
from xray_exp.mlops.report_run import (
    REPORT_FILES,
    end_report_run,
    evaluation_params,
    log_report_files,
    start_report_run,
)
from xray_exp.mlops.run_tags import flatten
from xray_exp.runs.lifecycle import resolve_data_yaml
from xray_exp.yolo.predict import class_names, load_yolo, trained_imgsz
from xray_exp.yolo.runtime import configure_offline

register_configs()
log = logging.getLogger("xray_exp.evaluate")


def alias_model_override(args: list[str]) -> list[str]:
    """`model=X` -> `weights=X` (xray_exp/conf/model/ is a config group: Hydra would read `model=` as its choice);
    `gate=X` -> `gate.model=X` (the classifier of the gate; gate.low, gate.high ... are its settings)."""
    return [f"weights={a[len('model=') :]}" if a.startswith("model=") else alias_gate_override(a) for a in args]


def alias_gate_override(arg: str) -> str:
    return f"gate.model={arg[len('gate=') :]}" if arg.startswith("gate=") else arg


def resolve_model(weights: str, tracking_uri: str | None, cache_dir: str | Path) -> Path:
    """A weights path, or the best.pt of a `models:/<name>@<alias>` (or `/<version>`) registry URI."""
    if str(weights).startswith("models:/"):
        from xray_exp.mlops.registry import resolve_weights  # lazy: only on this path

        return Path(resolve_weights(str(weights), tracking_uri, Path(cache_dir) / "registry")[0])
    path = Path(str(weights)).expanduser().resolve()
    if not path.is_file():
        raise ModelError(
            f"model={weights}: file {path} not found. Fix: pass a .pt/.onnx file or a "
            "models:/<name>@<alias> registry URI."
        )
    return path


def evaluation_imgsz(requested: int | None, weights: Path) -> tuple[int, str]:
    """`imgsz=` when given, else the size the checkpoint was trained (.pt) or exported (ONNX) at."""
    if requested:
        return int(requested), "imgsz= given"

    size = trained_imgsz(weights)
    if size is None:
        raise ConfigError(f"{weights}: the file does not record its training image size. Fix: pass imgsz=<size>.")
    return size, f"the checkpoint's training size, from {weights.name}"


def evaluation_metric_settings(cfg: DictConfig):
    """The scoring keys of this config (the same as post-training's `post.*`)."""
    try:
        return MetricSettings.from_config(cfg)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc


def offline_data_yaml(cfg: DictConfig) -> Path:
    """The dataset's data.yaml (ConfigError when a non-synthetic one is missing), after the offline set-up that
    must come before Ultralytics is imported (evaluate and compare)."""
    if OmegaConf.is_missing(cfg.dataset, "data_yaml"):
        raise ConfigError(f"dataset={cfg.dataset.name} needs dataset.data_yaml=/path/to/data.yaml")

    configure_offline(Path(cfg.paths.output_dir) / ".ultralytics", offline=cfg.offline)

    return resolve_data_yaml(cfg.dataset, cfg.paths.cache_dir)


def run_evaluation(cfg: DictConfig) -> dict[str, float]:
    """Resolve data and weights, evaluate, write the report; return the flat metrics."""
    if OmegaConf.is_missing(cfg, "weights"):
        raise ConfigError(
            "no model given. Fix: python -m xray_exp.evaluate model=<best.pt | best.onnx | models:/<name>@<alias>>"
        )
    if cfg.gate.model:  # the gate's settings are checked before any work
        from xray_exp.evaluation.gated import gate_settings  # lazy: only on this path

        gate_settings(cfg.gate, cfg.no_finding_class)
    data_yaml = offline_data_yaml(cfg)
    weights = resolve_model(cfg.weights, cfg.tracking.tracking_uri, cfg.paths.cache_dir)

    imgsz, imgsz_source = evaluation_imgsz(cfg.imgsz, weights)
    print(f"imgsz {imgsz} ({imgsz_source})", flush=True)
    out_dir = Path(cfg.out_dir)
    if classifier_task(weights):
        return evaluate_classifier_model(cfg, weights, data_yaml, imgsz, out_dir)
    gate, report_settings = None, {"imgsz from": imgsz_source}
    if cfg.gate.model:
        from xray_exp.evaluation.gated import prepare_gate  # lazy: only on this path

        classifier = resolve_model(cfg.gate.model, cfg.tracking.tracking_uri, cfg.paths.cache_dir)
        pair = gated_pair(cfg, weights, classifier) if cfg.gate.register else None
        gate = prepare_gate(
            cfg.gate,
            classifier,
            weights,
            data_yaml,
            cfg.split,
            imgsz,
            evaluation_metric_settings(cfg),
            device=cfg.device,
            out_dir=out_dir,
        )
        report_settings["gate"] = f"applied: {gate.describe()}"
        print(f"gate applied: {gate.describe()}", flush=True)
    metrics = evaluate_split(
        weights,
        data_yaml,
        cfg.split,
        imgsz=imgsz,
        conf=cfg.conf,
        iou=cfg.iou,
        tta=cfg.tta,
        out_dir=out_dir,
        device=cfg.device,
        batch=cfg.batch,
        max_det=cfg.max_det,
        wbf_iou=cfg.tta_wbf_iou,
        metrics=evaluation_metric_settings(cfg),
        report_settings=report_settings,
        transform=gate.apply if gate else None,
    )
    if gate:
        from xray_exp.evaluation.gated import gate_counts  # lazy: only on this path

        metrics.update(gate_counts(gate.last or [], cfg.split))
        (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    print(metrics_table(metrics))
    if cfg.tracking.enabled:
        log_evaluation(
            cfg,
            weights,
            imgsz,
            metrics,
            out_dir,
            (pair, gate, data_yaml) if gate is not None and pair is not None else None,
        )
    print(f"REPORT={out_dir / 'report.md'}", flush=True)
    return metrics


def onnx_beside(weights: Path) -> Path:
    """The ONNX export of a .pt: best.onnx next to it (a run) or model.onnx (a registered model's folder)."""
    for candidate in (weights.with_suffix(".onnx"), weights.parent / "model.onnx"):
        if candidate.is_file():
            return candidate
    raise ModelError(
        f"{weights}: no ONNX export beside it (best.onnx / model.onnx). Fix: train with post.onnx=true "
        "or pass registered models (models:/...)"
    )


def gated_pair(cfg: DictConfig, weights: Path, classifier: Path) -> tuple[str, Path, Path]:
    """gate.register=true, checked before any prediction: the name `<detector>-gated` and both ONNX files."""
    if not cfg.tracking.enabled:
        raise ConfigError("gate.register=true needs tracking (tracking=local or server)")
    name = cfg.gate.name
    if not name:
        if not str(cfg.weights).startswith("models:/"):
            raise ConfigError(
                "gate.register=true: give gate.name=<name> (or model=models:/<detector>@<alias>, "
                "registered as <detector>-gated)"
            )
        from xray_exp.mlops.registry import parse_models_uri  # lazy: only on this path

        name = parse_models_uri(str(cfg.weights))[0] + "-gated"
    return str(name), onnx_beside(weights), onnx_beside(classifier)


def register_gated(cfg: DictConfig, tracker, pair, gate, data_yaml: Path, metrics: dict[str, float]) -> None:
    """Log the detector + gate as one model and register it (the promotion rule on `<split>/map40`)."""
    name, detector_onnx, classifier_onnx = pair
    s = gate.settings
    tracker.log_gated_model(
        detector_onnx,
        classifier_onnx,
        {
            "low": s.low,
            "high": s.high,
            "mode": s.mode,
            "no_finding_class": s.no_finding_class,
            "tuned_on": gate.tuned_on,
        },
        dict(enumerate(class_names(load_yolo(detector_onnx)))),
        gate.imgsz,
        next(iter(load_split(data_yaml, cfg.split).images)).path,
    )
    objective = f"{cfg.split}/map40"
    tracker.register(
        name,
        "development",
        str(cfg.gate.register_policy),
        objective,
        metrics.get(objective),
        "maximize",
        {"detector": str(cfg.weights), "classifier": str(cfg.gate.model)},
    )


def classifier_task(weights: Path) -> bool:
    """Whether `weights` is a normal/abnormal classifier (task=classify) rather than a detector."""
    from xray_exp.yolo.classify import model_task  # lazy: heavy (PIL, cv2, torch, tqdm)

    return model_task(weights) == "classify"


def evaluate_classifier_model(cfg: DictConfig, weights: Path, data_yaml: Path, imgsz: int, out_dir: Path):
    """`model=<classifier>`: image-level metrics with intervals, calibration, report (no gate, no boxes)."""
    if cfg.gate.model:
        raise ConfigError("gate= gates a detector's boxes; model= is a classifier. Fix: model=<detector>")
    metrics = evaluate_classifier(
        weights,
        data_yaml,
        cfg.split,
        imgsz=imgsz,
        threshold=cfg.classifier_threshold,
        out_dir=out_dir,
        device=cfg.device,
        n_boot=cfg.n_boot,
        seed=cfg.ci_seed,
    )
    print(metrics_table(metrics))
    print((out_dir / "report.md").read_text().split("## Summary")[1].split("![ROC]")[0].strip())
    if cfg.tracking.enabled:
        log_evaluation(cfg, weights, imgsz, metrics, out_dir)
    print(f"REPORT={out_dir / 'report.md'}", flush=True)
    return metrics


def log_evaluation(
    cfg: DictConfig, weights: Path, imgsz: int, metrics: dict[str, float], out_dir: Path, gated=None
) -> None:
    """One MLflow run in the evaluation experiment: settings, every metric, the report with its plots;
    `gated` (pair, gate, data.yaml): also the detector + gate as one registered model."""
    tags = {"weights": str(cfg.weights), "weights.path": str(weights), "split": cfg.split, "dataset": cfg.dataset.name}
    tracker = start_report_run(cfg, cfg.evaluation_experiment, "eval", out_dir, tags)
    keys = "split conf iou tta match_iou decision_conf map40_method froc_hit no_finding_class n_boot ci_seed max_det"
    tracker.log_params(flatten({"weights": str(cfg.weights), "imgsz": imgsz, **evaluation_params(cfg, keys.split())}))
    tracker.log_metrics(metrics)
    log_report_files(tracker, out_dir, (*REPORT_FILES, "probabilities.csv", "gate.json"))
    if gated:
        pair, gate_used, gated_data = gated
        register_gated(cfg, tracker, pair, gate_used, gated_data, metrics)
    end_report_run(tracker, cfg.evaluation_experiment, cfg.tracking.tracking_uri)


@hydra.main(config_path="conf", config_name="evaluate")
def main(cfg: DictConfig) -> float:
    """Evaluate once; returns the objective metric (for sweepers)."""
    with exit_on_user_error(reraise=HydraConfig.get().mode == RunMode.MULTIRUN):
        metrics = run_evaluation(cfg)
        if cfg.objective not in metrics and f"{cfg.split}/brier" in metrics:  # a classifier: AUROC
            return metrics[f"{cfg.split}/auroc"]
        if cfg.objective not in metrics:
            raise ConfigError(f"objective: {cfg.objective!r} was not computed; available: {', '.join(metrics)}")
        return metrics[cfg.objective]


if __name__ == "__main__":
    argv = [sys.argv[0], *alias_model_override(sys.argv[1:])]
    sys.argv = normalize_argv(EvaluateConfig, CONF_DIR, argv, shortcuts=False)
    main()
