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

import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from xray_exp import CONF_DIR
from xray_exp.config.argv_aliases import alias_gate_override, positional_to_overrides
from xray_exp.config.eval_schema import CompareConfig
from xray_exp.config.overrides import normalize_argv
from xray_exp.config.store import register_configs
from xray_exp.errors import exit_on_user_error

register_configs()


@hydra.main(config_path="conf", config_name="compare")
def main(cfg: DictConfig) -> None:
    from xray_exp.evaluation.compare_command import run_comparison  # lazy: heavy (numpy)

    with exit_on_user_error(reraise=HydraConfig.get().mode == RunMode.MULTIRUN):
        run_comparison(cfg)


if __name__ == "__main__":
    argv = [sys.argv[0], *[alias_gate_override(a) for a in positional_to_overrides(sys.argv[1:])]]
    sys.argv = normalize_argv(CompareConfig, CONF_DIR, argv, shortcuts=False)
    main()
