"""Fuse fold models or any detectors into one ensemble, evaluate it against its best member, register it.

    python -m xray_exp.ensemble cv=outputs/cv/<name> split=test
    python -m xray_exp.ensemble cv=outputs/cv/<name> tune=true n_trials=50 tta=true
    python -m xray_exp.ensemble models=[outputs/runs/a,models:/yolo12s@development,b.onnx] weights=[2,1,1] tta=true
    python -m xray_exp.ensemble cv=outputs/cv/<name> fusion.method=soft_nms fusion.iou_thr=0.5 register=never
    python -m xray_exp.ensemble cv=outputs/cv/<name> gate=models:/yolo12n-cls@development gate.tune=true
    python -m xray_exp.ensemble --help

Writes report.md, metrics.json, submission.csv, comparison/ and model/ (ensemble.json + members/*.onnx)
under out_dir (outputs/ensemble/<time>), prints the paired verdict ("ensemble better on map40: +0.030
[0.010, 0.050], p=0.004"), logs an MLflow run (YOLO12-Ensemble) and registers `<model>-ensemble`. With
gate=<classifier> the fused boxes are gated (gate.low, gate.high, gate.mode, gate.tune as in evaluate), the
gated ensemble is compared with the plain one on the same images and registered as `<model>-ensemble-gated`.
torch/ultralytics are not imported (only to export a .pt member that has no ONNX beside it).
"""

from __future__ import annotations

import logging
import shutil
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from xray_exp import CONF_DIR
from xray_exp.config.argv_aliases import alias_tune_override
from xray_exp.config.overrides import unknown_key_errors
from xray_exp.config.schema import EnsembleConfig
from xray_exp.config.store import register_configs
from xray_exp.errors import exit_on_user_error, exit_with_errors

log = logging.getLogger("xray_exp.ensemble")
register_configs()


def remove_if_untouched(out_dir: Path) -> None:
    """A run refused before any work leaves nothing behind: drop the folder Hydra made (its .hydra/, a log)."""
    if out_dir.is_dir() and all(p.name in (".hydra", "ensemble.log") for p in out_dir.iterdir()):
        shutil.rmtree(out_dir, ignore_errors=True)


@hydra.main(config_path="conf", config_name="ensemble")
def main(cfg: DictConfig) -> None:
    from xray_exp.ensembles.run import run_ensemble  # lazy: heavy (cv2)

    multirun = HydraConfig.get().mode == RunMode.MULTIRUN
    with exit_on_user_error(reraise=multirun, clean_up=lambda: remove_if_untouched(Path(cfg.out_dir))):
        run_ensemble(cfg)


if __name__ == "__main__":
    sys.argv[1:] = alias_tune_override(sys.argv[1:])
    errors = unknown_key_errors(sys.argv[1:], EnsembleConfig, CONF_DIR)
    if errors:
        exit_with_errors(errors)
    main()
