"""The project's own config tree (conf/ or $XRAY_EXP_CONF) on every entry point's search path, ahead of the
package's defaults, through the Hydra plugin in hydra_plugins/xray_exp_searchpath.

    PYTHONPATH=$PWD .venv/bin/python -m pytest tests/config/test_user_conf.py -q
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import REPO
from hydra import compose, initialize_config_dir
from hydra._internal.utils import create_config_search_path
from omegaconf import OmegaConf

from xray_exp import CONF_DIR
from xray_exp.config.overrides import unknown_key_errors, user_trees
from xray_exp.config.schema import TrainConfig
from xray_exp.config.store import register_configs

register_configs()


@pytest.fixture
def in_checkout(monkeypatch):
    """Run from the checkout with neither $XRAY_EXP_ROOT nor $XRAY_EXP_CONF: conf/ of the checkout is the tree."""
    monkeypatch.chdir(REPO)
    monkeypatch.delenv("XRAY_EXP_ROOT", raising=False)
    monkeypatch.delenv("XRAY_EXP_CONF", raising=False)


@pytest.fixture
def user_tree(tmp_path, monkeypatch):
    """A user tree ($XRAY_EXP_CONF) that replaces the packaged `cpu` preset and adds a dataset and a group."""
    tree = tmp_path / "conf"
    (tree / "hardware").mkdir(parents=True)
    cpu = (CONF_DIR / "hardware" / "cpu.yaml").read_text()
    assert "\nworkers: 2\n" in cpu
    (tree / "hardware" / "cpu.yaml").write_text(cpu.replace("\nworkers: 2\n", "\nworkers: 3\n"))
    (tree / "dataset").mkdir()
    (tree / "dataset" / "my_hospital.yaml").write_text("name: my_hospital\ndata_yaml: /data/my_hospital.yaml\n")
    (tree / "site").mkdir()
    monkeypatch.setenv("XRAY_EXP_CONF", str(tree))
    return tree


def compose_train(overrides: list[str]) -> dict:
    with initialize_config_dir(config_dir=str(CONF_DIR)):
        cfg = compose(config_name="train", overrides=overrides)
    return OmegaConf.to_container(cfg, enum_to_str=True)


def providers(primary: str) -> list[tuple[str, str]]:
    return [(e.provider, e.path) for e in create_config_search_path(primary).get_path()]


def test_the_checkout_experiment_composes(in_checkout):
    cfg = compose_train(["experiment=nih_yolo12s"])
    assert (cfg["model"]["name"], cfg["dataset"]["name"], cfg["hardware"]["name"]) == ("yolo12s", "nih_cxr14", "gpu")
    assert cfg["train"]["imgsz"] == 640 and cfg["objective"]["metric"] == "val/map40"
    assert (REPO / "conf" / "README.md").is_file()


def test_a_user_tree_shadows_a_package_default_and_adds_options(user_tree):
    cfg = compose_train(["dataset=my_hospital"])
    assert cfg["hardware"]["name"] == "cpu" and cfg["hardware"]["workers"] == 3  # the default, replaced
    assert cfg["dataset"] == {**cfg["dataset"], "name": "my_hospital", "data_yaml": "/data/my_hospital.yaml"}
    assert unknown_key_errors(["site=x"], TrainConfig, CONF_DIR, user_trees(["site=x"])) == []  # its groups
    assert unknown_key_errors(["site=x"], TrainConfig, CONF_DIR) != []


def test_the_tree_goes_ahead_of_ours_only(user_tree):
    user = ("xray-exp-user", f"file://{user_tree}")
    assert providers(str(CONF_DIR))[1:3] == [user, ("main", str(CONF_DIR))]
    assert providers("pkg://xray_exp.conf")[1:3] == [user, ("main", "pkg://xray_exp.conf")]
    (user_tree / "prepare").mkdir()  # prepare's primary folder is conf/prepare: the tree's prepare/ mirrors it
    assert providers(str(CONF_DIR / "prepare"))[1][1] == f"file://{user_tree / 'prepare'}"
    assert "xray-exp-user" not in dict(providers("pkg://some_other_app.conf"))  # another Hydra app: untouched


def test_the_entry_points_show_it_and_refuse_a_missing_tree(user_tree):
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "XRAY_EXP_CONF": str(user_tree)}
    shown = subprocess.run(
        [sys.executable, "-m", "xray_exp.evaluate", "--info", "searchpath"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert f"| xray-exp-user | file://{user_tree}" in shown.stdout, shown.stdout
    missing = subprocess.run(
        [sys.executable, "-m", "xray_exp.train", "--cfg", "job"],
        cwd=REPO,
        env={**env, "XRAY_EXP_CONF": str(user_tree / "nope")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert missing.returncode == 2 and f"XRAY_EXP_CONF={user_tree / 'nope'}: no such folder" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_user_trees_without_arguments_and_with_config_dir(tmp_path, monkeypatch):
    """A bare `python -m xray_exp.train` (no arguments: the demo) and Hydra's --config-dir in both spellings."""
    monkeypatch.setenv("XRAY_EXP_CONF", str(tmp_path))
    assert user_trees([]) == [tmp_path]
    extra = tmp_path / "extra"
    assert user_trees(["-cd", str(extra), "x=1"]) == [tmp_path, extra]
    assert user_trees([f"--config-dir={extra}"]) == [tmp_path, extra]
    assert user_trees(["--config-dir"]) == [tmp_path]  # the flag without its value (Hydra reports it)
