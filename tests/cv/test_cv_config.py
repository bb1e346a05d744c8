"""`sweep=cv` composes to the basic sweeper over cv.fold, into outputs/cv/<name>/fold<f>; a fold alone is refused."""

from __future__ import annotations

from conftest import run_cli
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

from xray_exp import CONF_DIR
from xray_exp.config.store import register_configs

register_configs()


def test_sweep_cv_is_a_basic_sweep_over_the_folds(tmp_path, monkeypatch):
    monkeypatch.setenv("XRAY_EXP_ROOT", str(tmp_path))
    with initialize_config_dir(config_dir=str(CONF_DIR)):
        cfg = compose(
            config_name="train",
            overrides=["sweep=cv", "cv.folds=4", "model=yolo12s", "dataset=nih_cxr14"],
            return_hydra_config=True,
        )
    HydraConfig.instance().set_config(cfg)
    assert cfg.hydra.sweeper._target_.endswith("BasicSweeper")
    assert OmegaConf.to_container(cfg.hydra.sweeper.params, resolve=True) == {"cv.fold": "range(0,4)"}
    assert cfg.cv.enabled and cfg.cv.fold is None and cfg.cv.name == "yolo12s-nih_cxr14-k4-s0"
    assert cfg.hydra.sweep.dir == f"{tmp_path}/outputs/cv/yolo12s-nih_cxr14-k4-s0"
    assert OmegaConf.to_container(cfg.hydra.sweep)["subdir"] == "fold${cv.fold}"  # each job: its cv.fold
    assert cfg.hydra.callbacks.xray_sweep._target_ == "xray_exp.sweep.callbacks.SweepCallback"


def test_a_fold_alone_is_refused_and_leaves_nothing(tmp_path):
    proc = run_cli(["xray_exp.train", "cv.fold=1", "debug=smoke", "run_name=lonely"], tmp_path)
    assert proc.returncode == 2 and "cv.fold=1: a fold trains inside its cross-validation" in proc.stderr
    assert not (tmp_path / "outputs" / "runs" / "lonely").exists()
