"""`--multirun` end to end on tiny synthetic data (CPU): Optuna study resumed, jobs on a local Ray, a failing
job recorded, MLflow parent/child runs, leaderboard, the best job's model registered."""

from __future__ import annotations

import csv
import json
import secrets
from pathlib import Path

import pytest
from conftest import run_cli

# One-epoch jobs on 8 tiny images; validation mAP as the objective (no test-split pass).
# debug=smoke (in sweep=smoke) never registers: these sweeps ask for it.
FAST = ["post.eval_splits=[]", "objective.metric=ultralytics/val/mAP50-95", "tracking.register=if_better"]
OPTUNA = ["xray_exp.train", "--multirun", "sweep=smoke", "hydra.sweeper.n_jobs=2", *FAST]


def sweep_dir_of(proc) -> Path:
    lines = [line for line in proc.stdout.splitlines() if line.startswith("SWEEP_DIR=")]
    assert lines, f"no SWEEP_DIR line:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return Path(lines[-1].split("=", 1)[1])


def leaderboard(sweep_dir: Path) -> list[dict[str, str]]:
    with open(sweep_dir / "leaderboard.csv") as fh:
        return list(csv.DictReader(fh))


def children(client, experiment_id: str, parent_id: str):
    runs = client.search_runs([experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent_id}'")
    return sorted(runs, key=lambda r: (r.data.tags["sweep.dir"], int(r.data.tags["sweep.job_num"])))


@pytest.mark.slow
@pytest.mark.integration
def test_optuna_sweep_resumes_its_study_and_registers_the_best(tmp_path):
    import optuna
    from mlflow.tracking import MlflowClient
    from optuna.distributions import FloatDistribution
    from optuna.trial import TrialState

    first = run_cli([*OPTUNA, "hydra.sweeper.n_trials=2"], tmp_path, check=True)  # one batch of 2 (n_jobs=2)
    storage = f"sqlite:///{tmp_path}/outputs/optuna.db"
    study = optuna.load_study(study_name="smoke", storage=storage)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2
    # A sweep killed mid-trial leaves a RUNNING trial behind: the resumed sweep runs its parameters again.
    killed = study.ask(
        {"train.lr0": FloatDistribution(0.001, 0.02), "augmentation.mosaic": FloatDistribution(0.0, 1.0)}
    )

    second = run_cli([*OPTUNA, "hydra.sweeper.n_trials=3"], tmp_path, check=True)  # the same command, 3 in all
    assert "2 of 3 trials done, 1 interrupted re-queued; running 1 more" in second.stdout + second.stderr
    trials = optuna.load_study(study_name="smoke", storage=storage).trials
    assert [t.state for t in trials].count(TrialState.COMPLETE) == 3 and trials[killed.number].state == TrialState.FAIL
    assert [t.params for t in trials if t.user_attrs.get("xray.retry_of") == killed.number] == [killed.params]

    client = MlflowClient(f"sqlite:///{tmp_path}/outputs/mlflow.db")
    experiment_id = client.get_experiment_by_name("YOLO12-Training").experiment_id
    parents = client.search_runs([experiment_id], filter_string="tags.`sweep.role` = 'parent'")
    assert len(parents) == 1, "a resumed study keeps its parent run"
    parent = parents[0]
    assert parent.info.status == "FINISHED" and parent.data.tags["sweep.invocations"] == "2"
    assert parent.data.params["search.train.lr0"] == "interval(0.001, 0.02)"
    assert parent.data.params["optuna.study_name"] == "smoke" and parent.data.tags["sweep.sweeper"] == "optuna"
    runs = children(client, experiment_id, parent.info.run_id)
    assert len(runs) == 3 and {r.info.status for r in runs} == {"FINISHED"}
    assert {r.data.tags["sweep.dir"] for r in runs} == {str(sweep_dir_of(first)), str(sweep_dir_of(second))}
    assert f"train.lr0={killed.params['train.lr0']}" in runs[2].data.tags["hydra.overrides"]

    values = {r.info.run_id: r.data.metrics["ultralytics/val/mAP50-95"] for r in runs}
    board = leaderboard(sweep_dir_of(second))
    assert [row["rank"] for row in board] == ["1", "2", "3"] and {row["run_id"] for row in board} == set(values)
    best = board[0]["run_id"]
    assert values[best] == max(values.values()) and parent.data.tags["sweep.best_run_id"] == best
    assert parent.data.metrics["best/ultralytics/val/mAP50-95"] == values[best]
    assert "leaderboard.csv" in [a.path for a in client.list_artifacts(parent.info.run_id)]
    holder = client.get_model_version_by_alias("yolo12n", "development")
    assert holder.tags["source_run_id"] == best and holder.tags["sweep.parent_run_id"] == parent.info.run_id
    decisions = {r.info.run_id: client.get_run(r.info.run_id).data.tags["registry.decision"] for r in runs}
    assert decisions.pop(best).startswith("registered yolo12n v")
    assert all(d.startswith("deferred to sweep") for d in decisions.values()), decisions
    summary = json.loads((sweep_dir_of(second) / "sweep.json").read_text())
    assert summary["registration"]["registered"] and summary["jobs_succeeded"] == 3


@pytest.mark.integration
@pytest.mark.serial  # a local Ray sized to the machine
def test_ray_launcher_sweep_records_a_failing_job_and_goes_on(tmp_path):
    from mlflow.tracking import MlflowClient

    missing = tmp_path / "missing" / "data.yaml"
    env = {"RAY_AUTH_TOKEN": secrets.token_hex(16), "RAY_USAGE_STATS_ENABLED": "0"}  # nothing written to ~/.ray
    proc = run_cli(
        [
            "xray_exp.train",
            "--multirun",
            "debug=smoke",
            "hydra/launcher=ray",
            "+hydra.launcher.ray.init.num_cpus=2",
            "hardware.num_cpus=1",
            "post.onnx=false",
            "post.samples=0",
            *FAST,
            f"dataset.data_yaml=null,{missing}",
        ],
        tmp_path,
        env=env,
        check=True,
    )
    out = proc.stdout + proc.stderr
    assert "Ray Launcher is launching 2 jobs" in out and "(_run_job pid=" in out
    # Connected once, by xray_exp.distributed.cluster (a new local Ray, 2 CPUs); the launcher reused the connection.
    assert "started a local Ray on this machine" in out and "2 CPUs" in out and "Ray is already running." in out
    sweep_dir = sweep_dir_of(proc)
    assert "Traceback" in (sweep_dir / "1" / "error.txt").read_text()
    assert str(missing) in (sweep_dir / "1" / ".hydra" / "overrides.yaml").read_text()  # the failed job's config kept

    client = MlflowClient(f"sqlite:///{tmp_path}/outputs/mlflow.db")
    experiment_id = client.get_experiment_by_name("YOLO12-Training").experiment_id
    (parent,) = client.search_runs([experiment_id], filter_string="tags.`sweep.role` = 'parent'")
    assert parent.data.tags["sweep.launcher"] == "ray" and parent.info.status == "FINISHED"
    assert parent.data.params["search.dataset.data_yaml"] == f"null,{missing}"
    ok, failed = children(client, experiment_id, parent.info.run_id)
    assert ok.info.status == "FINISHED" and "ultralytics/val/mAP50-95" in ok.data.metrics
    assert failed.info.status == "FAILED" and failed.data.tags["error.type"] == "DatasetError"
    assert str(missing) in failed.data.tags["error.message"]
    assert [a.path for a in client.list_artifacts(failed.info.run_id, "error")] == ["error/error.txt"]

    board = leaderboard(sweep_dir)
    assert [(r["rank"], r["job"], r["status"]) for r in board] == [("1", "0", "FINISHED"), ("", "1", "FAILED")]
    summary = json.loads((sweep_dir / "sweep.json").read_text())
    assert (summary["jobs_succeeded"], summary["jobs_failed"]) == (1, 1)
    assert not summary["registration"]["registered"] and "logged no model" in summary["registration"]["reason"]
