"""Train a YOLO12 chest X-ray detector: one entry point, Hydra-composed.

    python -m xray_exp.train                                  # yolo12n on the embedded synthetic data
    python -m xray_exp.train model=yolo12x hardware=gpu       # groups: model dataset augmentation
                                                              #   hardware tracking experiment debug
    python -m xray_exp.train model=yolo12x hardware=gpu --cfg job   # print the composed config
    python -m xray_exp.train resume=outputs/runs/<run>        # continue a killed run
    python -m xray_exp.train mode=finetune model=yolo12n      # start from the registered yolo12n
    python -m xray_exp.train --multirun model=yolo12n,yolo12s # a sweep
    python -m xray_exp.train --multirun sweep=yolo12_hparams hydra/launcher=ray  # Optuna on Ray (xray_exp.sweep)
    python -m xray_exp.train epochs=50 imgsz=640 batch=16 device=0 data=/data/data.yaml  # Ultralytics shortcuts
    xray-exp train ...                                        # the same, as a console script

Shortcuts (xray_exp/config/overrides.py): epochs imgsz lr0 patience -> train.*, batch device workers ->
hardware.*, data -> dataset=yolo dataset.data_yaml. An unknown key fails with "did you mean train.epochs?".

Start-up stays light: torch/ultralytics/mlflow are imported only once a run starts.
"""

from __future__ import annotations

import logging
import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from xray_exp import CONF_DIR
from xray_exp.config.overrides import normalize_argv
from xray_exp.config.schema import TrainConfig
from xray_exp.config.store import register_configs
from xray_exp.errors import exit_on_user_error

register_configs()
log = logging.getLogger("xray_exp.train")


# Trusted instantiate() targets (Hydra 1.4 warns on unlisted ones): the multirun callback.
@hydra.main(config_path="conf", config_name="train", execution_whitelist=["xray_exp.sweep.*"])
def main(cfg: DictConfig) -> float | None:
    """Run one training job; returns the objective (for sweepers)."""
    from xray_exp.runs.single_run import train_run  # lazy: heavy (numpy)

    hydra_cfg = HydraConfig.get()
    sweep_job = hydra_cfg.mode == RunMode.MULTIRUN
    with exit_on_user_error():
        try:
            parent = None
            if sweep_job:  # a child of the sweep's MLflow run
                from xray_exp.sweep.job import sweep_parent  # lazy: only on this path

                parent = sweep_parent(cfg.model.name)
                if cfg.cv.fold is not None:  # sweep=cv: one fold of a cross-validation
                    from xray_exp.sweep.cv_sweep import fold_job  # lazy: only on this path

                    return fold_job(cfg, hydra_cfg.runtime.output_dir, list(hydra_cfg.overrides.task), parent)
            if cfg.cv.fold is not None:  # a fold alone: refused (its folder removed), it needs the CV's plan
                from xray_exp.sweep.cv_sweep import refuse_single_fold  # lazy: only on this path

                refuse_single_fold(cfg, hydra_cfg.runtime.output_dir)
            return train_run(
                cfg, hydra_cfg.runtime.output_dir, list(hydra_cfg.overrides.task), parent, keep_failed_dir=sweep_job
            )
        except Exception as exc:
            if not sweep_job:
                raise
            # a sweep job: record it (FAILED child run), NaN to the sweeper, the sweep goes on
            from xray_exp.sweep.job import record_failure  # lazy: only on this path

            return record_failure(cfg, hydra_cfg.runtime.output_dir, list(hydra_cfg.overrides.task), exc)


def cli() -> None:
    """`python -m xray_exp.train` / `xray-exp train`: shortcuts expanded, unknown keys caught, then Hydra."""
    sys.argv = normalize_argv(TrainConfig, CONF_DIR)
    main()


if __name__ == "__main__":
    cli()
