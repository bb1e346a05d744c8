"""Ray Tune / Ray Train pieces without a cluster: config, connection plan, search space, checkpoints, CPU DDP."""

from __future__ import annotations

import re

import pytest
from conftest import run_cli
from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf, open_dict

from xray_exp import CONF_DIR
from xray_exp.config.schema import TrainConfig
from xray_exp.distributed.cluster import plan_connection, token_available
from xray_exp.errors import ConfigError, ModelError

CONF = CONF_DIR
HEAVY = ("torch", "ultralytics", "ray", "mlflow")


@pytest.fixture
def compose_ray(tmp_path, monkeypatch):
    """Compose xray_exp/conf/ray_main.yaml as the app does; give `train_schema` back to TrainConfig afterwards."""
    from xray_exp.ray_main import register_ray_configs

    monkeypatch.setenv("XRAY_EXP_ROOT", str(tmp_path))
    register_ray_configs()

    def _compose(overrides: list[str]):
        with initialize_config_dir(config_dir=str(CONF)):
            cfg = compose(config_name="ray_main", overrides=overrides, return_hydra_config=True)
        from hydra.core.hydra_config import HydraConfig

        HydraConfig.instance().set_config(cfg)
        with open_dict(cfg):
            del cfg["hydra"]
        return cfg

    yield _compose
    ConfigStore.instance().store(name="train_schema", node=TrainConfig, replace=True)


# ---- connection ----------------------------------------------------------------------------------------


def test_connection_plan_never_attaches_silently():
    assert plan_connection("10.0.0.1:6379", {"RAY_ADDRESS": "10.0.0.2:6379"}).address == "10.0.0.1:6379"
    env_plan = plan_connection(None, {"RAY_ADDRESS": "10.0.0.2:6379"})
    assert (env_plan.address, env_plan.source) == ("10.0.0.2:6379", "RAY_ADDRESS")
    assert plan_connection(None, {}).address is None  # a new local Ray, not ray.init()'s auto-attach
    assert plan_connection("local", {"RAY_ADDRESS": "10.0.0.2:6379"}).address is None
    assert plan_connection("auto", {}).address == "auto"  # attaching to this machine's cluster: explicit only


def test_token_sources(tmp_path):
    assert token_available({"RAY_AUTH_TOKEN": "abc"})
    token = tmp_path / "token"
    assert not token_available({"RAY_AUTH_TOKEN_PATH": str(token)})
    token.write_text("abc")
    assert token_available({"RAY_AUTH_TOKEN_PATH": str(token)})


@pytest.mark.integration
@pytest.mark.serial  # starts a local Ray
def test_no_address_starts_a_local_ray_and_says_so(caplog, monkeypatch):
    import logging

    import ray

    from xray_exp.distributed.cluster import connect

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    with caplog.at_level(logging.INFO, logger="xray_exp.ray"):
        cluster = connect(None, num_cpus=1, include_dashboard=False)
    try:
        assert cluster.started_local and cluster.resources["CPU"] == 1
        lines = [r.getMessage() for r in caplog.records if r.name == "xray_exp.ray"]
        assert len(lines) == 1 and lines[0].startswith(
            "Ray: no cluster address (ray.address or RAY_ADDRESS): started a local Ray on this machine"
        )
        assert "1 node, 1 CPU, 0 GPUs" in lines[0]
    finally:
        cluster.shutdown()
    assert not ray.is_initialized()


# ---- config --------------------------------------------------------------------------------------------


def test_ray_main_composes_train_config_plus_ray_and_tune(compose_ray, tmp_path):
    cfg = compose_ray(["mode=train", "debug=smoke", "ray.train.num_workers=3", "tune.num_samples=7"])
    assert OmegaConf.get_type(cfg).__name__ == "RayMainConfig"
    assert str(cfg.mode) == "train" and cfg.train.epochs == 1 and cfg.hardware.batch == 4
    assert cfg.ray.train.num_workers == 3 and cfg.tune.num_samples == 7 and cfg.tune.searcher == "optuna"
    assert cfg.ray.storage_path == f"{tmp_path}/outputs/ray_results"
    assert cfg.tune.cpus_per_trial == cfg.hardware.num_cpus  # per-trial resources follow the hardware preset
    assert OmegaConf.select(cfg, "tune.space.train.lr0.type") == "loguniform"


@pytest.mark.parametrize(
    "override,key",
    [
        ("tune.num_sample=3", "tune.num_sample"),
        ("mode=search", "mode"),
        ("ray.train.num_workers=two", "ray.train.num_workers"),
    ],
)
def test_ray_main_typos_fail_at_compose(compose_ray, override, key):
    with pytest.raises(ConfigCompositionException, match=re.escape(key)):
        compose_ray([override])


def test_plain_train_config_is_untouched(compose_ray):
    compose_ray(["mode=tune"])
    ConfigStore.instance().store(name="train_schema", node=TrainConfig, replace=True)
    with initialize_config_dir(config_dir=str(CONF)):
        cfg = compose(config_name="train", overrides=["mode=finetune"])
    assert "ray" not in cfg and str(cfg.mode) == "finetune"


def test_cli_start_up_is_light_and_run_dirs(tmp_path):
    proc = run_cli(
        ["xray_exp.ray_main", "mode=tune", "tune.name=abc", "--cfg", "hydra"],
        tmp_path,
        env={"PYTHONPROFILEIMPORTTIME": "1"},
        check=True,
    )
    imported = {m.group(1).split(".")[0] for m in re.finditer(r"\|\s+(\S+)$", proc.stderr, re.M)}
    assert not imported & set(HEAVY), f"heavy imports at start-up: {imported & set(HEAVY)}"
    from xray_exp.ray_main import ray_run_dir

    assert ray_run_dir("tune", None, "/o", "r", "abc") == "/o/tune/abc"
    assert ray_run_dir("train", None, "/o", "r", "abc") == "/o/runs/r"
    assert ray_run_dir("tune", "/o/tune/x", "/o", "r", "abc") == "/o/tune/x"


# ---- search space, searcher, scheduler -----------------------------------------------------------------


def test_space_flattens_and_converts(compose_ray):
    from ray import tune

    from xray_exp.distributed.tune_space import flatten_space, to_tune_space, validate_space

    cfg = compose_ray(["tune=optimizer", "+tune.space.train.patience={type:int,low:3,high:5}"])
    flat = flatten_space(cfg.tune.space)
    assert set(flat) == {"train.optimizer", "train.lr0", "train.momentum", "train.cos_lr", "train.patience"}
    validate_space(cfg, flat)
    space = to_tune_space(flat)
    assert isinstance(space["train.lr0"], tune.search.sample.Float)
    assert space["train.patience"].lower == 3 and space["train.patience"].upper == 6  # inclusive high
    assert space["train.optimizer"].categories == ["SGD", "AdamW"]


@pytest.mark.parametrize(
    "entry,message",
    [
        ("train.lr00={type:uniform,low:0,high:1}", "tune.space.train.lr00: no such key"),
        ("train.epochs={type:int,low:1,high:5}", "tune.space.train.epochs: cannot be searched"),
        ("tracking.register={type:choice,values:[never]}", "cannot be searched"),
        ("train.patience={type:uniform,low:1,high:5}", "tune.space.train.patience: value 1.0 does not fit"),
        ("train.lrf={type:loguniform,low:0,high:1}", "loguniform needs low > 0"),
        ("train.lrf={type:normal,low:0,high:1}", "'normal' is not one of"),
        ("train.lrf={type:uniform,low:0.1}", "uniform needs low, high (missing high)"),
    ],
)
def test_space_mistakes_fail_before_any_trial(compose_ray, entry, message):
    from xray_exp.distributed.tune_space import flatten_space, validate_space

    cfg = compose_ray(["tune=optimizer", f"+tune.space.{entry}"])
    with pytest.raises(ConfigError, match=re.escape(message)):
        validate_space(cfg, flatten_space(cfg.tune.space))


def test_searchers_and_schedulers():
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search import ConcurrencyLimiter
    from ray.tune.search.basic_variant import BasicVariantGenerator
    from ray.tune.search.optuna import OptunaSearch

    from xray_exp.distributed.tune_space import installed_searchers, make_scheduler, make_searcher

    optuna = make_searcher("optuna", 0, 4, 20)
    assert isinstance(optuna, ConcurrencyLimiter) and isinstance(optuna.searcher, OptunaSearch)
    assert optuna.max_concurrent == 4
    assert isinstance(make_searcher("random", 0, 2, 20), BasicVariantGenerator)
    assert "optuna" in installed_searchers()
    if "hyperopt" not in installed_searchers():
        with pytest.raises(
            ConfigError,
            match=r"tune.searcher=hyperopt needs the Python package 'hyperopt'.*"
            r"pip install hyperopt.*Installed here: random, optuna",
        ):
            make_searcher("hyperopt", 0, 4, 20)
    with pytest.raises(ConfigError, match="'grid' is not one of"):
        make_searcher("grid", 0, 4, 20)
    asha = make_scheduler("asha", 3, 1, 2)
    assert isinstance(asha, ASHAScheduler) and asha._time_attr == "epoch" and asha._max_t == 3
    with pytest.raises(ConfigError, match="tune.grace_period"):
        make_scheduler("asha", 3, 5, 2)


def test_trial_resources_and_train_batch_checks(compose_ray):
    from xray_exp.distributed.train_driver import scaling
    from xray_exp.distributed.tune_driver import check_resources

    assert check_resources(compose_ray(["tune.cpus_per_trial=1"])) == (1.0, 0.0)
    with pytest.raises(ConfigError, match="hardware.batch: -1 sizes itself"):
        check_resources(compose_ray(["hardware=gpu", "tune.gpus_per_trial=0.25"]))
    assert check_resources(compose_ray(["hardware=gpu", "tune.gpus_per_trial=0.25", "hardware.batch=16"])) == (8, 0.25)
    with pytest.raises(ConfigError, match="tune.gpus_per_trial: 2.0 must be between 0 and 1"):
        check_resources(compose_ray(["hardware=gpu", "tune.gpus_per_trial=2", "hardware.batch=16"]))
    plan = scaling(compose_ray(["mode=train", "hardware=gpu", "hardware.batch=64", "ray.train.num_workers=4"]))
    assert plan == {"num_workers": 4, "use_gpu": True, "resources": {"CPU": 1.0, "GPU": 1.0}, "backend": "nccl"}
    assert scaling(compose_ray(["mode=train", "debug=smoke"]))["backend"] == "gloo"
    with pytest.raises(ConfigError, match="hardware.batch: -1 is not a global batch for 2 workers"):
        scaling(compose_ray(["mode=train", "hardware=gpu"]))


# ---- checkpoints ---------------------------------------------------------------------------------------


def test_checkpoint_pack_and_start_points(tmp_path):
    import torch

    from xray_exp.distributed import checkpoints

    wdir = tmp_path / "run" / "weights"
    wdir.mkdir(parents=True)
    torch.save({"ema": {"w": 1}, "optimizer": {"state": {}}, "epoch": 1, "train_args": {"epochs": 5}}, wdir / "last.pt")
    torch.save({"model": {"w": 1}, "optimizer": None, "epoch": -1, "train_args": {"epochs": 5}}, wdir / "best.pt")
    folder = checkpoints.pack(tmp_path / "ckpt", wdir, "epoch", 2, 5, {"val/mAP50": 0.1})
    assert checkpoints.read_state(folder) == {
        "kind": "epoch",
        "epoch": 2,
        "epochs": 5,
        "val_metrics": {"val/mAP50": 0.1},
    }
    assert (folder / "weights" / "last.pt").is_file() and (folder / "weights" / "best.pt").is_file()

    start = checkpoints.plan_start(tmp_path / "run")  # a run folder: its resumable last.pt
    assert (start.kind, start.epoch, start.epochs) == ("continue", 2, 5)
    assert checkpoints.plan_start(wdir / "best.pt").kind == "weights"  # stripped: a new training
    made = checkpoints.make_start_checkpoint(start, tmp_path / "start")
    assert (made / "weights" / "last.pt").is_file() and checkpoints.read_state(made)["kind"] == "continue"
    with pytest.raises(ModelError, match="model_path: .* not found"):
        checkpoints.find_weights(tmp_path / "nope.pt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="holds no weights/last.pt"):
        checkpoints.find_weights(tmp_path / "empty")
    with pytest.raises(ModelError, match="not an xray_exp checkpoint folder"):
        checkpoints.read_state(tmp_path / "empty")


def test_cpu_ddp_wrap_takes_ultralytics_device_ids(tmp_path):
    """Ultralytics wraps with device_ids=[device.index] = [None] on CPU; torch's DDP rejects that."""
    import torch
    import torch.distributed as dist

    from xray_exp.yolo.ultralytics_compat import CpuDistributedDataParallel

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        module = torch.nn.Linear(2, 1)
        with pytest.raises(ValueError, match="device_ids"):
            torch.nn.parallel.DistributedDataParallel(module, device_ids=[None])
        wrapped = CpuDistributedDataParallel(module, device_ids=[None], find_unused_parameters=True)
        assert isinstance(wrapped, torch.nn.parallel.DistributedDataParallel)
        wrapped(torch.ones(1, 2)).sum().backward()
        assert module.weight.grad is not None
    finally:
        dist.destroy_process_group()


def test_experiment_yaml_composes(compose_ray, tmp_path):
    from xray_exp.distributed.tune_results import experiment_yaml

    cfg = compose_ray(["mode=tune", "model=yolo12s"])
    text = experiment_yaml(
        cfg,
        "t1",
        {"train.lr0": 0.0123, "augmentation.mosaic": 0.5},
        "val/mAP50-95",
        0.42,
        "abc",
        "python -m xray_exp.train --config-dir X experiment=tuned_t1",
    )
    exp = tmp_path / "conf" / "experiment"
    exp.mkdir(parents=True)
    (exp / "tuned_t1.yaml").write_text(text)
    ConfigStore.instance().store(name="train_schema", node=TrainConfig, replace=True)
    with initialize_config_dir(config_dir=str(CONF)):  # what --config-dir <tune dir>/conf does on the CLI
        out = compose(
            config_name="train", overrides=["experiment=tuned_t1", f"hydra.searchpath=[file://{tmp_path}/conf]"]
        )
    assert out.train.lr0 == 0.0123 and out.augmentation.mosaic == 0.5 and out.model.name == "yolo12s"
    assert out.augmentation.name == "xray" and "tuned" in out.tags


# ---- task=classify -------------------------------------------------------------------------------------


def test_classify_is_refused_before_ray_starts(tmp_path):
    """ray_main mode=train task=classify: exit 2 naming the commands that train classifiers; no Ray started, no
    run folder left behind."""
    proc = run_cli(["xray_exp.ray_main", "mode=train", "task=classify", "debug=smoke", "run_name=cls"], tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "task=classify is not supported by ray_main mode=train" in proc.stderr
    assert "python -m xray_exp.train --multirun sweep=cv task=classify hydra/launcher=ray" in proc.stderr
    assert "started a local Ray" not in proc.stdout + proc.stderr and "Ray: " not in proc.stdout + proc.stderr
    assert not (tmp_path / "outputs" / "runs" / "cls").exists()


@pytest.mark.parametrize("mode", ["tune", "retrain"])
def test_classify_refused_in_every_mode(compose_ray, tmp_path, mode):
    from xray_exp.ray_main import refuse_classify

    with pytest.raises(ConfigError, match=f"task=classify is not supported by ray_main mode={mode}"):
        refuse_classify(compose_ray([f"mode={mode}", "task=classify"]), tmp_path / "run")
    refuse_classify(compose_ray([f"mode={mode}"]), tmp_path / "run")  # a detector goes on
