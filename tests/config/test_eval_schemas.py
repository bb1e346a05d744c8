"""evaluate.yaml and compare.yaml compose onto structured schemas: a typo fails at compose time, like in train.

PYTHONPATH=$PWD .venv/bin/python -m pytest tests/config/test_eval_schemas.py -q
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import REPO
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from xray_exp import CONF_DIR
from xray_exp.config.eval_schema import CompareConfig, EvaluateConfig
from xray_exp.config.store import register_configs

register_configs()


def compose_app(name: str, overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONF_DIR)):
        return compose(config_name=name, overrides=overrides)


@pytest.mark.parametrize("app,schema", [("evaluate", EvaluateConfig), ("compare", CompareConfig)])
def test_the_app_config_is_its_schema(app, schema):
    cfg = compose_app(app, ["dataset=yolo", "dataset.data_yaml=/d/data.yaml", "device=0", "imgsz=640"])
    assert OmegaConf.get_type(cfg) is schema
    assert cfg.device == "0" and cfg.imgsz == 640 and cfg.dataset.data_yaml == "/d/data.yaml"
    assert set(cfg) == set(OmegaConf.structured(schema))  # every key of the YAML file is a schema key


@pytest.mark.parametrize(
    "app,typo,key",
    [
        ("evaluate", "n_bot=0", "n_bot"),  # a misspelt key
        ("compare", "mach_iou=0.3", "mach_iou"),
        ("compare", "ci_level=high", "ci_level"),  # a wrong type
    ],
)
def test_a_typo_fails_at_compose_time_naming_the_key(app, typo, key):
    with pytest.raises(ConfigCompositionException) as failure:
        compose_app(app, [typo])
    assert key in f"{failure.value} {failure.value.__cause__}"


def test_a_typo_in_a_users_yaml_fails_too(tmp_path, monkeypatch):
    tree = tmp_path / "conf"
    tree.mkdir()
    text = (CONF_DIR / "evaluate.yaml").read_text()
    assert "\nn_boot: 1000" in text
    (tree / "evaluate.yaml").write_text(text.replace("\nn_boot: 1000", "\nn_boots: 1000"))
    monkeypatch.setenv("XRAY_EXP_CONF", str(tree))  # the user's evaluate.yaml replaces the packaged one
    with pytest.raises(ConfigCompositionException) as failure:
        compose_app("evaluate", [])
    assert "n_boots" in f"{failure.value} {failure.value.__cause__}"


@pytest.mark.parametrize(
    "argv,hint",
    [
        (["xray_exp.evaluate", "model=best.pt", "+tta_wbf=0.5"], "did you mean tta_wbf_iou?"),  # `+` adds no key
        (["xray_exp.compare", "a.pt", "b.pt", "mach_iou=0.3"], "did you mean match_iou?"),
    ],
)
def test_the_command_line_names_the_closest_key_before_anything_runs(argv, hint):
    proc = subprocess.run(
        [sys.executable, "-m", *argv],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 2 and hint in proc.stderr and "Traceback" not in proc.stderr, proc.stderr[-2000:]
