"""Compare two detectors on the same images: paired differences with bootstrap CIs, p-values, verdicts.

    python -m xray_exp.compare outputs/runs/yolo12n-A outputs/runs/yolo12n-B                 # test split
    python -m xray_exp.compare models:/yolo12n@development outputs/runs/<run>/weights/best.pt split=val
    python -m xray_exp.compare A B dataset=yolo dataset.data_yaml=/data/data.yaml n_boot=2000 progress=false
    python -m xray_exp.compare models:/yolo12s@development gate=models:/yolo12n-cls@development  # gated vs plain
    python -m xray_exp.compare --help

A and B are run folders, weight files (.pt/.onnx) or models:/ URIs. Prints one verdict line per metric
("B better on map40: +0.031 [0.012, 0.050], p=0.002") and writes report.md (side-by-side PR, FROC, ROC
curves), comparison.json and comparison.csv under out_dir (outputs/compare/<time>), logged to MLflow
(experiment YOLO12-Comparison). torch/ultralytics load only once it runs.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from xray_exp import CONF_DIR
from xray_exp.config.eval_schema import CompareConfig
from xray_exp.config.overrides import normalize_argv
from xray_exp.config.store import register_configs
from xray_exp.errors import ConfigError, ModelError, exit_on_user_error
from xray_exp.evaluate import resolve_model
from xray_exp.evaluation.comparison import compare_models, write_comparison
from xray_exp.mlops.report_run import end_report_run, evaluation_params, log_report_files, start_report_run
from xray_exp.mlops.run_tags import flatten

register_configs()
log = logging.getLogger("xray_exp.compare")


HYDRA_FLAGS_WITH_VALUE = (
    "--cfg",
    "-c",
    "--package",
    "-p",
    "--config-path",
    "-cp",
    "--config-name",
    "-cn",
    "--config-dir",
    "-cd",
    "--info",
    "-i",
    "--experimental-rerun",
)


def positional_to_overrides(args: list[str]) -> list[str]:
    """`A B key=value ...` -> `a=A b=B key=value ...` (Hydra takes key=value only; its flags pass through)."""
    out, slots = [], [s for s in ("a", "b") if not any(arg.startswith(f"{s}=") for arg in args)]
    for i, arg in enumerate(args):
        flag_value = i > 0 and args[i - 1] in HYDRA_FLAGS_WITH_VALUE
        if "=" not in arg and not arg.startswith("-") and not flag_value and slots:
            out.append(f"{slots.pop(0)}={arg}")
        else:
            out.append(arg)
    return out


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
    from xray_exp.evaluate import (  # lazy: a second module's name of the same spelling
        evaluation_imgsz,
        evaluation_metric_settings,
        offline_data_yaml,
        resolve_model,
    )

    data_yaml = offline_data_yaml(cfg)

    models: list[dict[str, Any]] = []
    for key in ("a", "b"):
        weights, name = resolve_candidate(str(cfg[key]), cfg.tracking.tracking_uri, cfg.paths.cache_dir)
        imgsz, source = evaluation_imgsz(cfg.imgsz, weights)
        print(f"{key.upper()}: {name}  ({weights}, imgsz {imgsz}: {source})", flush=True)
        models.append({"name": name, "weights": weights, "imgsz": imgsz, "spec": str(cfg[key])})
    if gated:
        from xray_exp.evaluation.gated import prepare_gate  # lazy: only on this path

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


@hydra.main(config_path="conf", config_name="compare")
def main(cfg: DictConfig) -> None:
    with exit_on_user_error(reraise=HydraConfig.get().mode == RunMode.MULTIRUN):
        run_comparison(cfg)


if __name__ == "__main__":
    from xray_exp.evaluate import alias_gate_override

    argv = [sys.argv[0], *[alias_gate_override(a) for a in positional_to_overrides(sys.argv[1:])]]
    sys.argv = normalize_argv(CompareConfig, CONF_DIR, argv, shortcuts=False)
    main()
