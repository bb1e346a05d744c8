"""Ultralytics habits: top-level shortcuts, "did you mean" for unknown keys, bare asset weights, `xray-exp`."""

from __future__ import annotations

import re
import shutil

import pytest
from conftest import run_cli, run_dir_of

from xray_exp import CONF_DIR
from xray_exp.config.overrides import SHORTCUTS, expand_shortcuts, suggest, unknown_key_errors
from xray_exp.config.schema import RayMainConfig, TrainConfig

HEAVY = ("torch", "ultralytics", "ray", "mlflow")


def test_every_shortcut_maps_to_its_namespaced_key():
    args = expand_shortcuts([f"{k}=1" for k in SHORTCUTS])
    assert args == [
        "train.epochs=1",
        "train.imgsz=1",
        "hardware.batch=1",
        "hardware.device=1",
        "hardware.workers=1",
        "dataset=yolo",
        "dataset.data_yaml=1",
        "train.lr0=1",
        "train.patience=1",
    ]
    # an explicit dataset group wins; other arguments keep their place; sweeps and prefixes survive
    assert expand_shortcuts(["dataset=vindr_cxr", "data=/d.yaml", "--cfg", "job", "+epochs=1,2"]) == [
        "dataset=vindr_cxr",
        "dataset.data_yaml=/d.yaml",
        "--cfg",
        "job",
        "+train.epochs=1,2",
    ]


def test_unknown_keys_get_the_closest_schema_key():
    assert suggest("epoch", {"train.epochs", "train.warmup_epochs", "hardware.batch"})[0] == "train.epochs"
    errors = unknown_key_errors(["epoch=2", "train.imgsize=3", "hardware.bach=4"], TrainConfig, CONF_DIR)
    assert [re.search(r"did you mean (\S+?)[ ?]", e).group(1) for e in errors] == [
        "train.epochs",
        "train.imgsz",
        "hardware.batch",
    ]


@pytest.mark.parametrize("schema", [TrainConfig, RayMainConfig])
def test_valid_overrides_pass_the_key_check(schema):
    ok = [
        "train.epochs=3",
        "model=yolo12s",
        "sweep=smoke",
        "experiment=yolo12s_xray_long",
        "debug=smoke",
        "hydra/launcher=ray",
        "hydra.job.chdir=true",
        "+train.extra.mosaic=0",
        "~tags",
        "tags=[a]",
        "dataset.synthetic.num_train=4",
        "--cfg",
        "job",
        "--multirun",
    ]
    assert unknown_key_errors(ok, schema, CONF_DIR) == []


def test_ray_main_knows_its_own_keys():
    assert (
        unknown_key_errors(
            ["tune.num_samples=2", "ray.train.num_workers=2", "tune.space.train.lr0.low=0.1"], RayMainConfig, CONF_DIR
        )
        == []
    )
    assert unknown_key_errors(["tune.num_samples=2"], TrainConfig, CONF_DIR) != []


def test_typo_fails_naming_the_key_before_anything_heavy(tmp_path):
    proc = run_cli(["xray_exp.train", "epoch=2"], tmp_path, env={"PYTHONPROFILEIMPORTTIME": "1"})
    assert proc.returncode == 2
    assert "unknown key 'epoch' in 'epoch=2' (did you mean train.epochs?)" in proc.stderr
    imported = {m.group(1).split(".")[0] for m in re.finditer(r"\|\s+(\S+)$", proc.stderr, re.M)}
    assert not imported & set(HEAVY)
    assert not (tmp_path / "outputs").exists()


def test_cfg_job_shows_the_namespaced_result(tmp_path):
    proc = run_cli(
        [
            "xray_exp.cli",
            "train",
            "epochs=7",
            "imgsz=96",
            "batch=3",
            "workers=1",
            "lr0=0.02",
            "patience=4",
            "device=cpu",
            "data=/d/data.yaml",
            "--cfg",
            "job",
        ],
        tmp_path,
        check=True,
    )
    import yaml

    cfg = yaml.safe_load(proc.stdout)
    assert (cfg["train"]["epochs"], cfg["train"]["imgsz"], cfg["train"]["lr0"], cfg["train"]["patience"]) == (
        7,
        96,
        0.02,
        4,
    )
    assert (cfg["hardware"]["batch"], cfg["hardware"]["workers"], cfg["hardware"]["device"]) == (3, 1, "cpu")
    assert (cfg["dataset"]["name"], cfg["dataset"]["data_yaml"]) == ("yolo", "/d/data.yaml")


def test_console_script_usage_and_unknown_command(tmp_path):
    proc = run_cli(["xray_exp.cli"], tmp_path)
    assert proc.returncode == 2 and "train" in proc.stdout and "python -m xray_exp.ray_main" in proc.stdout
    proc = run_cli(["xray_exp.cli", "trian"], tmp_path)
    assert proc.returncode == 2 and "unknown command 'trian'" in proc.stderr


@pytest.mark.integration
def test_shortcut_smoke_run_and_bare_asset_weights(tmp_path):
    """`epochs=2 imgsz=128 debug=smoke` trains 2 epochs; `model.weights=yolo12n.pt` offline names where the
    file goes, and once it is there, training starts from it."""
    proc = run_cli(
        ["xray_exp.train", "epochs=2", "imgsz=128", "debug=smoke", "tracking=disabled"], tmp_path, check=True
    )
    run_dir = run_dir_of(proc)
    assert "epochs: 2" in (run_dir / "args.yaml").read_text() and "imgsz: 128" in (run_dir / "args.yaml").read_text()

    stored = tmp_path / "outputs" / ".ultralytics" / "runs" / "weights" / "yolo12n.pt"
    proc = run_cli(["xray_exp.train", "debug=smoke", "tracking=disabled", "model.weights=yolo12n.pt"], tmp_path)
    assert proc.returncode == 2 and f"Fix: put the file at {stored}" in proc.stderr and "offline=false" in proc.stderr

    stored.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(run_dir / "weights" / "best.pt", stored)
    proc = run_cli(
        ["xray_exp.train", "debug=smoke", "tracking=disabled", "model.weights=yolo12n.pt"], tmp_path, check=True
    )
    assert f"model: {stored}" in (run_dir_of(proc) / "args.yaml").read_text()
