"""Every option of every group composes onto the schema; typos and wrong types fail naming the key."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf, open_dict

from xray_exp import CONF_DIR
from xray_exp.config.store import register_configs

CONF = CONF_DIR
GROUPS = ("model", "dataset", "augmentation", "hardware", "tracking", "experiment", "debug")

register_configs()


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def compose_train(overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONF)):
        return compose(config_name="train", overrides=overrides, return_hydra_config=True)


def resolve(cfg) -> dict:
    from hydra.core.hydra_config import HydraConfig

    HydraConfig.instance().set_config(cfg)
    job = cfg.copy()
    with open_dict(job):
        del job["hydra"]
    return OmegaConf.to_container(job, resolve=True, enum_to_str=True)


@pytest.mark.parametrize("group,option", [(g, o) for g in GROUPS for o in options(g)])
def test_every_group_option_composes(group, option):
    extra = ["dataset.data_yaml=/tmp/data.yaml"] if (group, option) == ("dataset", "yolo") else []
    cfg = resolve(compose_train([f"{group}={option}", *extra]))
    if group in ("model", "dataset", "augmentation", "hardware", "tracking"):
        assert cfg[group]["name"] == option


@pytest.mark.parametrize("model", options("model"))
def test_models_build_from_yolo12_yaml(model):
    cfg = resolve(compose_train([f"model={model}", "hardware=gpu"]))
    assert cfg["model"]["arch"] == f"{model}.yaml" and cfg["model"]["weights"] is None
    assert cfg["hardware"]["batch"] == -1 and cfg["hardware"]["amp"] is True


def test_defaults_and_paths_are_absolute(tmp_path, monkeypatch):
    monkeypatch.setenv("XRAY_EXP_ROOT", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # when set, tracking=local logs there
    cfg = resolve(compose_train([]))
    assert cfg["model"]["name"] == "yolo12n" and cfg["dataset"]["name"] == "synthetic"
    assert cfg["augmentation"]["name"] == "xray" and cfg["tracking"]["name"] == "local"
    assert cfg["paths"]["output_dir"] == f"{tmp_path}/outputs"
    assert cfg["tracking"]["tracking_uri"] == f"sqlite:///{tmp_path}/outputs/mlflow.db"


def test_experiment_overrides_groups():
    cfg = resolve(compose_train(["experiment=yolo12s_xray_long"]))
    assert cfg["model"]["name"] == "yolo12s" and cfg["train"]["epochs"] == 100 and cfg["tags"] == ["long", "yolo12s"]


def test_xray_augmentation_has_no_colour_jitter():
    aug = resolve(compose_train(["augmentation=xray"]))["augmentation"]
    assert aug["hsv_h"] == 0 and aug["hsv_s"] == 0 and aug["flipud"] == 0


@pytest.mark.parametrize(
    "override,needle",
    [
        ("train.epoch=3", "train.epoch"),
        ("hardware.gpus=2", "hardware.gpus"),
        ("train.epochs=abc", "train.epochs"),
        ("tracking.register=sometimes", "tracking.register"),
        ("hardware.cache=gpu", "hardware.cache"),
        ("objective.direction=up", "objective.direction"),
    ],
)
def test_typo_or_wrong_type_fails_at_compose_naming_the_key(override, needle):
    with pytest.raises(ConfigCompositionException) as err:
        compose_train([override])
    assert needle in str(err.value) + str(err.value.__cause__)


def test_unknown_model_option_lists_the_choices():
    with pytest.raises(Exception) as err:
        compose_train(["model=yolo13q"])
    assert "yolo12n" in str(err.value)


def test_resume_reuses_the_run_folder_and_keeps_its_hydra_dir(tmp_path):
    cfg = compose_train([f"resume={tmp_path}/runs/old"])
    from hydra.core.hydra_config import HydraConfig

    HydraConfig.instance().set_config(cfg)
    assert cfg.hydra.run.dir == f"{tmp_path}/runs/old"
    assert cfg.hydra.output_subdir == ".hydra-resume"
