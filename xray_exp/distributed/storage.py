"""Driver-side pieces shared by `mode=train|retrain` (Ray Train) and `mode=tune` (Ray Tune).

    info = prepare_data(cfg, run_dir, resume=False)   # offline set-up, dataset resolved and validated
    path = to_storage(folder, cfg.ray.storage_path, "<run>-start")   # where every node can read it
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from xray_exp.errors import ConfigError, DatasetError

log = logging.getLogger("xray_exp.ray")


def prepare_data(cfg: DictConfig, run_dir: Path, resume: bool):
    """Offline set-up, then the dataset resolved and validated (a fresh run folder is removed on failure)."""
    from xray_exp.runs.lifecycle import OBJECTIVE_PREFIXES, is_fresh_run_dir, resolve_data_yaml
    from xray_exp.yolo.runtime import configure_offline

    if not str(cfg.objective.metric).startswith(OBJECTIVE_PREFIXES):
        raise ConfigError(f"objective.metric: {cfg.objective.metric!r} must start with val/, test/ or "
                          "ultralytics/val/")
    configure_offline(settings_dir(cfg), offline=cfg.offline)
    try:
        data_yaml = resolve_data_yaml(cfg.dataset, cfg.paths.cache_dir)
        from xray_exp.data.validate import validate_dataset

        return validate_dataset(data_yaml)
    except (DatasetError, ConfigError, ValueError):
        if not resume and is_fresh_run_dir(run_dir):
            shutil.rmtree(run_dir, ignore_errors=True)
        raise


def settings_dir(cfg: DictConfig) -> Path:
    return Path(cfg.paths.output_dir) / ".ultralytics"


def post_config(cfg: DictConfig) -> DictConfig:
    """The config for post-training in the driver: the configured GPU when this machine has one, else CPU.

    Post-training (test split, samples, ONNX export + parity, clinical metrics) runs in the driver, which
    on a cluster may be a head node without GPUs (`ray job submit --entrypoint-num-gpus 1` puts it on one).
    """
    device = cfg.hardware.device
    if device in (None, "", "cpu", "mps"):
        return cfg
    import torch

    if torch.cuda.is_available():
        return cfg
    log.warning("hardware.device=%s but this driver has no GPU: post-training (test split, ONNX) runs on CPU",
                device)
    out = cfg.copy()
    with open_dict(out):
        out.hardware.device = "cpu"
    return out


def resolved_params(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config without `paths` (absolute, machine-specific) for MLflow params."""
    resolved = OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
    return {k: v for k, v in resolved.items() if k != "paths"}


def is_uri(path: str) -> bool:
    return "://" in str(path)


def to_storage(local_dir: Path, storage_path: str, name: str) -> str:
    """Copy `local_dir` to `storage_path/name` (a shared folder or a URI) so every node can read it."""
    if is_uri(storage_path):
        import pyarrow.fs

        target = f"{storage_path.rstrip('/')}/{name}"
        pyarrow.fs.copy_files(str(local_dir), target)
        return target
    target = Path(storage_path) / name
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(local_dir, target)
    return str(target)


def open_checkpoint(path: str):
    """A ray.train.Checkpoint of a folder or URI written by `to_storage`."""
    from ray.train import Checkpoint

    return Checkpoint(path) if is_uri(path) else Checkpoint.from_directory(path)
