"""Past one machine: Ray Tune, Ray Train (a host lost) and a Ray-launched sweep on a multi-host cluster made of
network namespaces (tests/cluster_sim.py: a head without task CPUs and two 1-CPU workers, each its own IP,
token auth, outputs on the shared filesystem). Drivers run on the head host.

    bash scripts/test.sh -m cluster          # as root; skipped where namespaces cannot be created
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from cluster_sim import SimCluster

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.serial]

SMOKE = [
    "debug=smoke",
    "post.samples=0",
    "post.eval_splits=[test]",
    "post.n_boot=0",
    "tracking.register=if_better",
]  # debug=smoke alone never registers
TIMINGS: dict[str, float] = {}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with SimCluster.create(tmp_path_factory.mktemp("cluster")) as made:
        yield made
    if TIMINGS:
        print("\ncluster timings:", json.dumps(TIMINGS))


def mlflow_client(root: Path):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=f"sqlite:///{root}/outputs/mlflow.db")


def finish(proc, log: Path, timeout: float) -> str:
    try:
        code = proc.wait(timeout=timeout)
    except Exception:
        proc.kill()
        raise
    text = log.read_text(errors="replace")
    assert code == 0, text[-6000:]
    return text


def test_tune_trials_land_on_both_worker_hosts(cluster, tmp_path):
    """4 trials, 2 at a time: Ray's node IPs in the trial results cover both workers; every trial is an MLflow
    child of the tune's run; the best is registered once."""
    log = tmp_path / "tune.log"
    t0 = time.monotonic()
    proc = cluster.driver(
        [
            "xray_exp.ray_main",
            "mode=tune",
            *SMOKE,
            "tune.num_samples=4",
            "tune.max_concurrent=2",
            "tune.cpus_per_trial=1",
            "tune.metric=ultralytics/val/box_loss",
            "tune.direction=minimize",
            "tune.name=spread",
        ],
        tmp_path,
        log,
    )
    finish(proc, log, timeout=600)
    TIMINGS["tune_4_trials_s"] = round(time.monotonic() - t0, 1)
    summary = json.loads((tmp_path / "outputs" / "tune" / "spread" / "summary.json").read_text())
    assert summary["trials"] == 4 and summary["errors"] == 0

    results = {}
    for trial in sorted((tmp_path / "outputs" / "ray_results" / "spread").glob("trial_*")):
        rows = [json.loads(line) for line in (trial / "result.json").read_text().splitlines() if line.strip()]
        results[trial.name] = rows[-1]
    assert len(results) == 4
    node_ips = {r["node_ip"] for r in results.values()}
    assert node_ips == {cluster.ip("w1"), cluster.ip("w2")}, results  # both workers, never the 0-CPU head

    client = mlflow_client(tmp_path)
    runs = client.search_runs([client.get_experiment_by_name("YOLO12-Tuning").experiment_id])
    children = {r.info.run_id for r in runs if r.data.tags.get("mlflow.parentRunId") == summary["mlflow_run_id"]}
    assert children == {r["mlflow_run_id"] for r in results.values()}  # every trial, from whichever host
    versions = client.search_model_versions("name='yolo12n'")
    assert [v.run_id for v in versions] == [summary["mlflow_run_id"]]  # registered once, by the tune's run


def train_hosts(cluster) -> dict[str, int]:
    return {node: sum("RayTrainWorker" in c for c in cluster.processes(node)) for node in cluster.workers}


def test_train_survives_a_lost_host(cluster, tmp_path):
    """Ray Train, 2 workers (one per host). After epoch 1's checkpoint every process of the host running
    rank 1 is killed; the host comes back; the group restarts from the checkpoint and finishes: no epoch
    before the checkpoint repeated, one MLflow run, the model registered."""
    log = tmp_path / "train.log"
    epochs = 4
    proc = cluster.driver(
        [
            "xray_exp.ray_main",
            "mode=train",
            *SMOKE,
            "dataset.synthetic.num_train=24",
            f"train.epochs={epochs}",
            "ray.train.num_workers=2",
            "ray.train.max_failures=1",
            "run_name=lost",
        ],
        tmp_path,
        log,
    )
    snapshot = tmp_path / "outputs" / "ray_results" / "lost" / "checkpoint_manager_snapshot.json"
    deadline = time.monotonic() + 400
    while True:
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text(errors="replace")[-4000:]
        try:
            latest = json.loads(snapshot.read_text()).get("latest_checkpoint_result") or {}
        except (OSError, ValueError):
            latest = {}
        if latest.get("metrics", {}).get("epoch") == 1:
            break
        time.sleep(0.1)
    t_checkpoint = time.monotonic()
    hosts = train_hosts(cluster)
    assert hosts == {"w1": 1, "w2": 1}, hosts  # one training worker per host
    rank1 = re.search(rf"ip=({re.escape(cluster.subnet)}\.\d+), pid=\d+\) world_rank=1", log.read_text())
    victim = next(n for n in cluster.workers if cluster.ip(n) == rank1.group(1))
    cluster.kill(victim)
    t_kill = time.monotonic()
    assert not cluster.processes(victim)
    cluster.start(victim)  # the host reboots and joins again
    resumed = re.compile(r"rank 0: starting from checkpoint \S+/lost/checkpoint_\S+ \(epoch")
    while not resumed.search(log.read_text(errors="replace")):
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text(errors="replace")[-6000:]
        time.sleep(0.2)
    t_resumed = time.monotonic()
    text = finish(proc, log, timeout=400)
    TIMINGS.update(
        train_kill_to_resumed_s=round(t_resumed - t_kill, 1),
        train_checkpoint_to_resumed_s=round(t_resumed - t_checkpoint, 1),
    )

    run_dir = tmp_path / "outputs" / "runs" / "lost"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["epochs_run"] == epochs and summary["ray"]["resumed_from_epoch"] >= 1, text[-4000:]
    assert "Resuming training" in text
    rows = (run_dir / "results.csv").read_text().splitlines()[1:]
    assert [int(float(row.split(",")[0])) for row in rows] == list(range(1, epochs + 1))  # none twice

    client = mlflow_client(tmp_path)
    runs = client.search_runs([client.get_experiment_by_name("YOLO12-Training").experiment_id])
    assert [r.info.run_id for r in runs] == [summary["mlflow_run_id"]] and runs[0].info.status == "FINISHED"
    steps = [m.step for m in client.get_metric_history(summary["mlflow_run_id"], "train/box_loss")]
    assert sorted(set(steps)) == list(range(1, epochs + 1))
    assert client.get_model_version_by_alias("yolo12n", "development").run_id == summary["mlflow_run_id"]


def test_ray_launcher_sweep_runs_jobs_on_both_workers(cluster, tmp_path):
    """`--multirun hydra/launcher=ray` against the cluster: each job's Ray task is seen running inside each
    worker host's namespace; one MLflow parent with a child per job."""
    log = tmp_path / "sweep.log"
    proc = cluster.driver(
        [
            "xray_exp.train",
            "--multirun",
            "hydra/launcher=ray",
            *SMOKE,
            "hardware.num_cpus=1",
            "post.onnx=false",
            "train.lr0=0.01,0.02",
        ],
        tmp_path,
        log,
    )
    seen: set[str] = set()
    while proc.poll() is None:  # both jobs run at once, one per worker host
        seen |= {node for node in cluster.workers if any("_run_job" in c for c in cluster.processes(node))}
        time.sleep(0.1)
    finish(proc, log, timeout=10)
    assert seen == set(cluster.workers), (seen, log.read_text(errors="replace")[-3000:])

    client = mlflow_client(tmp_path)
    experiment_id = client.get_experiment_by_name("YOLO12-Training").experiment_id
    (parent,) = client.search_runs([experiment_id], filter_string="tags.`sweep.role` = 'parent'")
    assert parent.data.tags["sweep.launcher"] == "ray" and parent.info.status == "FINISHED"
    kids = client.search_runs([experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    assert sorted(k.data.params["train.lr0"] for k in kids) == ["0.01", "0.02"], [k.data.params for k in kids]
    assert all(k.info.status == "FINISHED" for k in kids)
