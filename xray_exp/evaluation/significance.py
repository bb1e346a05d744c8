"""`tracking.better_if=significant`: promote a new version only when it is significantly better than the
alias holder, by a paired comparison of both models on the objective's split.

    python -m xray_exp.train tracking.register=if_better tracking.better_if=significant objective.metric=val/map40

Both models predict the same images; the objective's metric gets its paired bootstrap CI and p-value
(DeLong's test for AUROC), as `python -m xray_exp.compare` computes them. The result travels with the
registration event, and the registry's promotion rule reads it (xray_exp.mlops.registry.promotion_blocker).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from xray_exp.errors import ConfigError
from xray_exp.metrics.resample import HEADLINE_METRICS

log = logging.getLogger(__name__)

ALPHA = 0.05  # two-sided p-value below which the new version counts as better (the 95% interval excludes 0)


def significance_objective(cfg: DictConfig) -> tuple[str, str]:
    """(split, metric) of `objective.metric` when it can be tested; ConfigError naming the keys otherwise.
    Called at the start of a run, so a wrong setting fails before training."""
    split, _, metric = str(cfg.objective.metric).partition("/")
    if metric not in HEADLINE_METRICS or split not in ("val", "test"):
        raise ConfigError(
            f"tracking.better_if=significant: objective.metric={cfg.objective.metric!r} has no paired "
            f"test. Fix: objective.metric=<val|test>/<{'|'.join(HEADLINE_METRICS)}>"
        )
    if str(cfg.objective.direction) != "maximize":
        raise ConfigError(
            "tracking.better_if=significant: every testable metric is higher-is-better; "
            "set objective.direction=maximize"
        )
    return split, metric


def compare_with_holder(cfg: DictConfig, best: Path, info, name: str, alias: str) -> dict[str, Any] | None:
    """The paired comparison of `best` (B) with the version holding `name@alias` (A) on the objective.

    None when no version holds the alias (the first version is promoted anyway). A holder that cannot be
    fetched or scored gives {"error": ...}, which keeps the alias where it is."""
    split, metric = significance_objective(cfg)
    if split == "test" and not info.has_test:
        split = "val"
    try:
        from xray_exp.mlops.registry import resolve_weights, version_holding  # lazy: only on this path

        holder = version_holding(name, alias, cfg.tracking.tracking_uri)
        if holder is None:
            return None
        weights, _, version = resolve_weights(
            f"models:/{name}/{holder}", cfg.tracking.tracking_uri, Path(cfg.paths.cache_dir) / "registry"
        )
        from xray_exp.evaluation.comparison import compare_models  # lazy: only on this path
        from xray_exp.evaluation.pipeline import (
            PREDICT_BATCH,
            PREDICT_CONF,
            PREDICT_MAX_DET,
            PREDICT_NMS_IOU,
            MetricSettings,
        )  # lazy: only on this path

        models = [
            {"name": f"{name} v{version}", "weights": weights, "imgsz": int(cfg.train.imgsz)},
            {"name": "this run", "weights": best, "imgsz": int(cfg.train.imgsz)},
        ]
        comparison = compare_models(
            models,
            info.data_yaml,
            split,
            MetricSettings.from_config(cfg.post),
            conf=PREDICT_CONF,
            iou=PREDICT_NMS_IOU,
            device=cfg.hardware.device,
            batch=PREDICT_BATCH,
            max_det=PREDICT_MAX_DET,
        )
    except Exception as exc:  # noqa: BLE001 - any failure keeps the alias; the reason is recorded
        log.warning("better_if=significant: could not compare with %s@%s: %s", name, alias, exc)
        return {"error": f"{type(exc).__name__}: {exc}"}
    diff = next(d for d in comparison.differences if d.metric == metric)
    verdict = next(v for d, v in zip(comparison.differences, comparison.verdicts, strict=True) if d.metric == metric)
    significant = bool(math.isfinite(diff.p_value) and diff.p_value < ALPHA and diff.diff > 0)
    found = {
        "split": split,
        "metric": metric,
        "holder_version": str(version),
        "diff": float(diff.diff),
        "ci_low": float(diff.ci_low),
        "ci_high": float(diff.ci_high),
        "p_value": float(diff.p_value),
        "test": diff.test,
        "significant": significant,
        "verdict": verdict,
    }
    log.info("better_if=significant: %s", verdict)
    return found
