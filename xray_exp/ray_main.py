"""Ray Tune search and Ray Train data-parallel training on the same Hydra config as `xray_exp.train`.

    python -m xray_exp.ray_main mode=tune tune.num_samples=20 tune.max_concurrent=4     # Optuna TPE + ASHA
    python -m xray_exp.ray_main mode=tune tune=optimizer tune.searcher=random           # xray_exp/conf/tune/*.yaml
    python -m xray_exp.ray_main resume=outputs/tune/<name>                              # an interrupted tune
    python -m xray_exp.ray_main mode=train ray.train.num_workers=4 hardware=gpu hardware.batch=64
    python -m xray_exp.ray_main mode=train debug=smoke ray.train.num_workers=2          # 2 CPU workers, gloo
    python -m xray_exp.ray_main mode=retrain model_path=outputs/runs/<run>/weights/last.pt
    python -m xray_exp.ray_main ray.address=10.0.0.1:6379 mode=tune ...                 # an existing cluster
    python -m xray_exp.ray_main mode=tune --cfg job                                     # print the config

xray_exp/conf/ray_main.yaml = xray_exp/conf/train.yaml (every group and key of the train entry point) + `ray` + `tune`,
typed by RayMainConfig. Without ray.address / RAY_ADDRESS a local Ray is started (and said so).
Start-up stays light: ray/torch/ultralytics/mlflow are imported only once a run starts.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
from pathlib import Path

import hydra
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, open_dict

from xray_exp import CONF_DIR
from xray_exp.config.overrides import normalize_argv
from xray_exp.config.schema import RayMainConfig
from xray_exp.config.store import register_configs
from xray_exp.errors import ConfigError, XrayExpError, exit_on_user_error

log = logging.getLogger("xray_exp.ray")


class RayRunInterrupted(XrayExpError):
    exit_code = 130


def ray_run_dir(mode, resume: str | None, output_dir: str, run_name: str, tune_name: str) -> str:
    """A resumed run's own folder; else outputs/tune/<tune.name> for tune, outputs/runs/<run_name> otherwise."""
    if resume:
        return os.path.abspath(os.path.expanduser(resume))
    if str(mode) == "tune":
        return os.path.join(output_dir, "tune", tune_name)
    return os.path.join(output_dir, "runs", run_name)


def register_ray_configs() -> None:
    """conf/train.yaml composes onto `train_schema`: in this app that is RayMainConfig (TrainConfig + ray/tune).

    Called by main() only, so a process that composes the plain train config keeps TrainConfig.
    """
    register_configs()
    ConfigStore.instance().store(name="train_schema", node=RayMainConfig, replace=True)
    OmegaConf.register_resolver("xray_ray_run_dir", ray_run_dir, replace=True)


def load_started(run_dir: Path) -> DictConfig:
    """The config a tune/train run was started with (`resume=<folder>`), its generated names pinned."""
    from xray_exp.runs.lifecycle import load_started_config  # lazy: heavy (numpy)

    cfg = load_started_config(run_dir)
    with open_dict(cfg):
        cfg.resume = str(run_dir)
        cfg.tune.name = run_dir.name if str(cfg.mode) == "tune" else cfg.tune.name
        cfg.run_name = run_dir.name
    OmegaConf.set_struct(cfg, True)
    return cfg


CLASSIFY_ON_RAY = (
    "task=classify is not supported by ray_main mode={mode}: Tune trials and Ray Train run the detection "
    "trainer, search space and per-epoch metric. Fix: python -m xray_exp.train task=classify (one classifier "
    "through the run lifecycle), python -m xray_exp.train --multirun sweep=cv task=classify "
    "hydra/launcher=ray (its folds as Ray tasks), or python -m xray_exp.train --multirun task=classify "
    "hydra/launcher=ray <key>=<a>,<b> (a grid of classifiers on Ray)"
)


def refuse_classify(cfg: DictConfig, run_dir: Path) -> None:
    """Before Ray starts: a classifier is refused (ConfigError naming the fix); Hydra's fresh folder removed."""
    from xray_exp.runs.classify_run import task_of  # lazy: heavy (numpy)

    if task_of(cfg) != "classify":
        return
    fresh = run_dir.is_dir() and all(p.name in (".hydra", "ray_main.log") for p in run_dir.iterdir())
    if not cfg.resume and fresh:
        shutil.rmtree(run_dir, ignore_errors=True)
    raise ConfigError(CLASSIFY_ON_RAY.format(mode=cfg.mode))


def run_on_ray(cfg: DictConfig, run_dir: str | Path, overrides: list[str]) -> float | None:
    """Connect to Ray, then tune or train; returns the objective (best trial's, for tune)."""
    from xray_exp.distributed.cluster import connect  # lazy: heavy (numpy)

    run_dir = Path(run_dir).resolve()
    if cfg.resume:
        cfg = load_started(run_dir)
    refuse_classify(cfg, run_dir)

    cluster = connect(
        cfg.ray.address,
        num_cpus=cfg.ray.num_cpus,
        num_gpus=cfg.ray.num_gpus,
        include_dashboard=cfg.ray.include_dashboard,
        namespace=cfg.ray.namespace,
    )
    try:
        if str(cfg.mode) == "tune":
            from xray_exp.distributed.tune_driver import run_tune  # lazy: only on this path

            return run_tune(cfg, run_dir, overrides, cluster)
        from xray_exp.distributed.train_driver import run_train  # lazy: only on this path

        try:
            return run_train(cfg, run_dir, overrides, cluster)
        except KeyboardInterrupt:
            raise RayRunInterrupted(
                f"interrupted; the last epoch's checkpoint is kept. Resume with: "
                f"python -m xray_exp.ray_main resume={run_dir}"
            ) from None
    finally:
        cluster.shutdown()


@hydra.main(config_path="conf", config_name="ray_main")
def _main(cfg: DictConfig) -> float | None:
    hydra_cfg = HydraConfig.get()
    with exit_on_user_error(reraise=hydra_cfg.mode == RunMode.MULTIRUN):
        return run_on_ray(cfg, hydra_cfg.runtime.output_dir, list(hydra_cfg.overrides.task))


def main() -> None:
    """Shortcuts expanded and unknown keys caught (xray_exp/config/overrides.py), then Hydra."""
    sys.argv = normalize_argv(RayMainConfig, CONF_DIR)
    register_ray_configs()
    _main()


if __name__ == "__main__":
    main()
