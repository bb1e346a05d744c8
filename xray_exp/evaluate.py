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

import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from xray_exp import CONF_DIR
from xray_exp.config.argv_aliases import alias_model_override
from xray_exp.config.eval_schema import EvaluateConfig
from xray_exp.config.overrides import normalize_argv
from xray_exp.config.store import register_configs
from xray_exp.errors import ConfigError, exit_on_user_error

register_configs()


@hydra.main(config_path="conf", config_name="evaluate")
def main(cfg: DictConfig) -> float:
    """Evaluate once; returns the objective metric (for sweepers)."""
    from xray_exp.evaluation.evaluate_command import run_evaluation  # lazy: heavy (numpy)

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
