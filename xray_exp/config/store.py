"""Config schema registration and resolvers (light: no torch/ultralytics imports).

from xray_exp.config.store import register_configs
register_configs()
"""

from __future__ import annotations

import os

from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

from xray_exp.config.eval_schema import CompareConfig, EvaluateConfig
from xray_exp.config.schema import EnsembleConfig, FoldsConfig, PredictConfig, TrainConfig

_REGISTERED = False


def _run_dir(resume: str | None, output_dir: str, run_name: str) -> str:
    """The run folder: the resumed run's own folder, else `<output_dir>/runs/<run_name>`."""
    if resume:
        return os.path.abspath(os.path.expanduser(resume))
    return os.path.join(output_dir, "runs", run_name)


def _hydra_subdir(resume: str | None) -> str:
    """Keep a resumed run's original `.hydra/` intact: the resume writes its own next to it."""
    return ".hydra-resume" if resume else ".hydra"


def register_configs() -> None:
    """Register the structured schemas and our resolvers once per process."""
    global _REGISTERED
    if _REGISTERED:
        return
    ConfigStore.instance().store(name="train_schema", node=TrainConfig)
    ConfigStore.instance().store(name="evaluate_schema", node=EvaluateConfig)
    ConfigStore.instance().store(name="compare_schema", node=CompareConfig)
    ConfigStore.instance().store(name="ensemble_schema", node=EnsembleConfig)
    ConfigStore.instance().store(name="folds_schema", node=FoldsConfig)
    ConfigStore.instance().store(name="predict_schema", node=PredictConfig)
    OmegaConf.register_resolver("xray_run_dir", _run_dir, replace=True)
    OmegaConf.register_resolver("xray_hydra_subdir", _hydra_subdir, replace=True)
    _REGISTERED = True
