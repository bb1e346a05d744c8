"""The one seam: composed config -> Ultralytics train kwargs, every key checked against Ultralytics."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from xray_exp.config.schema import TrainConfig
from xray_exp.errors import ConfigError
from xray_exp.yolo.args import to_train_args, ultralytics_train_keys


def make_cfg(**overrides):
    cfg = OmegaConf.structured(TrainConfig)
    base = {
        "model": {"name": "yolo12n", "arch": "yolo12n.yaml"},
        "dataset": {"name": "synthetic"},
        "augmentation": {"name": "xray"},
        "hardware": {"name": "cpu", "device": "cpu"},
        "tracking": {"name": "disabled"},
        "run_name": "r",
    }
    return OmegaConf.merge(cfg, base, overrides)


def test_every_emitted_key_is_an_ultralytics_train_argument(tmp_path):
    args = to_train_args(make_cfg(), tmp_path / "data.yaml", tmp_path / "runs" / "r1")
    unknown = set(args) - ultralytics_train_keys()
    assert not unknown, f"keys Ultralytics does not know: {unknown}"
    assert args["project"] == str(tmp_path / "runs") and args["name"] == "r1" and args["exist_ok"] is True
    assert Path(args["data"]).is_absolute()


def test_values_are_plain_python_and_mapped(tmp_path):
    cfg = make_cfg(hardware={"batch": 16.0, "cache": "none", "amp": False}, augmentation={"auto_augment": None})
    args = to_train_args(cfg, tmp_path / "d.yaml", tmp_path / "r")
    assert args["batch"] == 16 and isinstance(args["batch"], int)
    assert args["cache"] is False and args["amp"] is False and args["auto_augment"] is None
    assert all(isinstance(v, (str, int, float, bool, type(None), list, dict)) for v in args.values())
    cfg = make_cfg(hardware={"batch": 0.7, "cache": "ram"})
    args = to_train_args(cfg, tmp_path / "d.yaml", tmp_path / "r")
    assert args["batch"] == 0.7 and args["cache"] == "ram"


def test_extra_passes_valid_ultralytics_arguments(tmp_path):
    args = to_train_args(make_cfg(train={"extra": {"close_mosaic": 3, "cls": 1.0}}), tmp_path / "d", tmp_path / "r")
    assert args["cls"] == 1.0 and args["close_mosaic"] == 3


@pytest.mark.parametrize(
    "key,needle", [("lr_zero", "train.extra.lr_zero"), ("data", "train.extra.data"), ("project", "train.extra.project")]
)
def test_extra_rejects_unknown_and_managed_keys(tmp_path, key, needle):
    with pytest.raises(ConfigError, match=needle.replace(".", r"\.")):
        to_train_args(make_cfg(train={"extra": {key: 1}}), tmp_path / "d", tmp_path / "r")
