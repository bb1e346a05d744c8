"""Sweep machinery without training: leaderboard ranking, search spaces, Optuna resume accounting."""

from __future__ import annotations

import math

import optuna
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

from xray_exp import CONF_DIR
from xray_exp.config.store import register_configs
from xray_exp.sweep.leaderboard import Row, format_table, rank, rows_from_folders, write_csv
from xray_exp.sweep.study import INTERRUPTED, RETRY_OF, prepare_resume, resume_study

CONF = CONF_DIR
SWEEPS = sorted(p.stem for p in (CONF / "sweep").glob("*.yaml") if p.stem != "cv")  # cv: basic sweeper (tests/cv)
register_configs()
optuna.logging.set_verbosity(optuna.logging.WARNING)


def compose_train(overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONF)):
        cfg = compose(config_name="train", overrides=overrides, return_hydra_config=True)
    HydraConfig.instance().set_config(cfg)
    return cfg


def rows() -> list[Row]:
    return [
        Row("0", "FINISHED", 0.2, "a=1"),
        Row("1", "FAILED", None, "a=2", error="boom"),
        Row("2", "FINISHED", 0.5, "a=3"),
        Row("3", "FINISHED", float("nan"), "a=4"),
        Row("4", "FINISHED", 0.1, "a=5"),
        Row("5", "KILLED", 0.9, "a=6"),
    ]


@pytest.mark.parametrize("direction,order", [("maximize", ["2", "0", "4"]), ("minimize", ["4", "0", "2"])])
def test_rank_is_direction_aware_and_lists_failures_last(direction, order):
    ranked = rank(rows(), direction)
    assert [r.job for r in ranked[:3]] == order and [r.rank for r in ranked[:3]] == [1, 2, 3]
    assert [r.job for r in ranked[3:]] == ["1", "3", "5"] and all(r.rank is None for r in ranked[3:])


def test_leaderboard_csv_and_table(tmp_path):
    ranked = rank(rows(), "maximize")
    ranked[0].metrics = {"val/mAP50-95": 0.25, "test/mAP50-95": 0.5}
    path = write_csv(ranked, "test/mAP50-95", tmp_path / "leaderboard.csv")
    lines = path.read_text().splitlines()
    assert lines[0] == "rank,job,status,test/mAP50-95,val/mAP50-95,overrides,run_id,error"
    assert lines[1].startswith("1,2,FINISHED,0.5,0.25,a=3") and lines[4].startswith(",1,FAILED,,,a=2,,boom")
    table = format_table(ranked, "test/mAP50-95", "maximize")
    assert "3/6 jobs ranked" in table and "[boom]" in table


def test_rows_from_folders_without_tracking(tmp_path):
    import json

    for num, summary in (("0", {"metrics": {"test/mAP50-95": 0.3}}), ("1", {"status": "FAILED", "metrics": {}})):
        (tmp_path / num / ".hydra").mkdir(parents=True)
        (tmp_path / num / ".hydra" / "overrides.yaml").write_text(f"- train.lr0=0.0{num}\n")
        (tmp_path / num / "summary.json").write_text(json.dumps(summary))
    (tmp_path / "2").mkdir()
    (tmp_path / "2" / "error.txt").write_text("Traceback")
    got = rank(rows_from_folders(tmp_path, "test/mAP50-95"), "maximize")
    assert [(r.job, r.status, r.rank) for r in got] == [
        ("0", "FINISHED", 1),
        ("1", "FAILED", None),
        ("2", "FAILED", None),
    ]
    assert got[0].overrides == "train.lr0=0.00" and math.isclose(got[0].objective, 0.3)


@pytest.mark.parametrize("sweep", SWEEPS)
def test_sweep_configs_compose_to_optuna_search_spaces(sweep):
    from hydra_plugins.hydra_optuna_sweeper._impl import create_params_from_overrides

    cfg = compose_train([f"sweep={sweep}", "objective.direction=minimize"])
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.endswith("OptunaSweeper") and sweeper.sampler._target_ == "optuna.samplers.TPESampler"
    assert sweeper.direction == "minimize" and sweeper.study_name == sweep
    assert sweeper.storage == f"sqlite:///{cfg.paths.output_dir}/optuna.db"
    space, fixed, _ = create_params_from_overrides([f"{k}={v}" for k, v in sweeper.params.items()])
    assert set(space) == set(sweeper.params) and not fixed
    for key in space:  # every searched key exists in the schema
        assert OmegaConf.select(cfg, key, throw_on_missing=True) is not None, key


def test_ray_launcher_resources_come_from_hardware():
    cfg = compose_train(["hydra/launcher=ray", "hardware=gpu"])
    launcher = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    assert launcher["ray"]["remote"] == {"num_cpus": 8, "num_gpus": 1, "max_retries": 0, "max_calls": 1}
    assert launcher["ray"]["init"]["address"] is None
    assert launcher["ray"]["init"]["runtime_env"]["env_vars"]["XRAY_EXP_ROOT"] == cfg.paths.root


def _study(storage: str) -> optuna.Study:
    study = optuna.create_study(study_name="s", storage=storage, direction="maximize")
    dist = {"x": optuna.distributions.FloatDistribution(0.0, 1.0)}
    for value in (0.1, 0.2):
        study.tell(study.ask(dist), value)
    study.tell(study.ask(dist), state=optuna.trial.TrialState.FAIL)
    return study


def test_resume_study_counts_finished_trials_and_requeues_the_interrupted(tmp_path):
    storage = f"sqlite:///{tmp_path}/optuna.db"
    study = _study(storage)
    running = study.ask({"x": optuna.distributions.FloatDistribution(0.0, 1.0)})  # a killed sweep's trial
    info = resume_study(storage, "s", n_trials=5)
    assert (info["done"], info["requeued"], info["remaining"]) == (3, 1, 2)
    trials = optuna.load_study(study_name="s", storage=storage).trials
    assert trials[running.number].state == optuna.trial.TrialState.FAIL
    assert trials[running.number].user_attrs[INTERRUPTED] is True
    waiting = [t for t in trials if t.state == optuna.trial.TrialState.WAITING]
    assert len(waiting) == 1 and waiting[0].user_attrs[RETRY_OF] == running.number
    assert waiting[0].system_attrs["fixed_params"] == running.params
    again = resume_study(storage, "s", n_trials=5)  # idempotent: nothing queued twice
    assert (again["done"], again["requeued"], again["remaining"]) == (3, 0, 2)
    assert resume_study(storage, "s", n_trials=2)["remaining"] == 0
    assert resume_study(storage, "new", n_trials=4) == {
        "study": "new",
        "storage": storage,
        "existing": 0,
        "done": 0,
        "requeued": 0,
        "remaining": 4,
    }


def test_prepare_resume_tells_the_sweeper_what_is_left(tmp_path, monkeypatch):
    monkeypatch.setenv("XRAY_EXP_ROOT", str(tmp_path))
    cfg = compose_train(["sweep=smoke", "hydra.sweeper.n_trials=5", "hydra.sweeper.study_name=s"])
    assert prepare_resume(cfg)["remaining"] == 5  # a new study: untouched
    given = ["hydra.sweeper.n_trials=5", "hydra.sweeper.study_name=s"]
    assert cfg.hydra.sweeper.n_trials == 5 and list(cfg.hydra.overrides.hydra) == given
    _study(f"sqlite:///{tmp_path}/outputs/optuna.db")
    info = prepare_resume(cfg)
    assert (info["done"], info["remaining"], info["n_trials"]) == (3, 2, 5)
    assert cfg.hydra.sweeper.n_trials == 2 and cfg.hydra.sweeper.sampler.seed == 3  # seed 0 + 3 trials
    # Jobs are recomposed from hydra.overrides.hydra: the values must travel there too.
    assert list(cfg.hydra.overrides.hydra) == [
        "hydra.sweeper.study_name=s",
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.sampler.seed=3",
    ]
