"""Parent and child runs: a sweep or a Ray Tune search is a parent run, each job or trial a child run.

    from xray_exp.mlops.client import tracking_client
    from xray_exp.mlops import parent_runs
    client = tracking_client(uri, timeout_s=10)
    opened = parent_runs.open_parent_run(client, "YOLO12-Training", "sweep-x", {"sweep.key": key}, tags, params)
    tags = parent_runs.child_run_tags(opened["parent_run_id"], {"sweep.job_num": "3"})   # for the child's run
    parent_runs.list_children(client, opened["parent_run_id"])       # every child, all pages
    parent_runs.end_child_runs(client, {run_id: ("KILLED", {"tune.stopped_early": "true"})})
    parent_runs.tag_child_run(client, run_id, {"tune.best": "true"})

A child carries the tag `mlflow.parentRunId` (MLflow's UI nests it under the parent). A parent is found
again by its identity tags, so an interrupted sweep run once more continues the same parent run.
"""

from __future__ import annotations

from typing import Any

from xray_exp.mlops.client import ensure_experiment
from xray_exp.mlops.query import search_all_runs

PARENT_TAG = "mlflow.parentRunId"
MAX_PARAM, MAX_TAG = 6000, 5000  # MLflow's value limits


def child_run_tags(parent_run_id: str | None, tags: dict[str, str] | None = None) -> dict[str, str]:
    """`tags` plus the tag that makes a run a child of `parent_run_id` (none without a parent)."""
    return {**(tags or {}), **({PARENT_TAG: parent_run_id} if parent_run_id else {})}


def open_parent_run(
    client,
    experiment: str,
    run_name: str,
    identity: dict[str, str],
    tags: dict[str, str],
    params: dict[str, Any],
    count_tag: str | None = None,
) -> dict[str, Any]:
    """Create the parent run, or reopen the newest one whose tags match `identity` (a resumed sweep): it is
    RUNNING again, its children left RUNNING by the interrupted invocation are KILLED, params it has are not
    sent again. `count_tag` counts the invocations. Returns {parent_run_id, experiment_id, resumed}."""
    identity = {k: str(v).replace("'", "") for k, v in identity.items()}  # quotes would end the filter's strings
    experiment_id = ensure_experiment(client, experiment)
    previous = client.search_runs(
        [experiment_id],
        max_results=1,
        order_by=["start_time DESC"],
        filter_string=" and ".join(f"tags.`{k}` = '{v}'" for k, v in identity.items()),
    )
    tags = {**identity, **tags}
    if previous:
        run_id = previous[0].info.run_id
        client.update_run(run_id, status="RUNNING")
        if count_tag:
            tags[count_tag] = str(int(previous[0].data.tags.get(count_tag, "1")) + 1)
        kill_stale_children(client, experiment_id, run_id)
        known = client.get_run(run_id).data.params
        params = {k: v for k, v in params.items() if k not in known}
    else:
        run_id = client.create_run(experiment_id, run_name=run_name, tags={}).info.run_id
        if count_tag:
            tags[count_tag] = "1"
    log_params_and_tags(client, run_id, params, tags)
    return {"parent_run_id": run_id, "experiment_id": experiment_id, "resumed": bool(previous)}


def log_params_and_tags(client, run_id: str, params: dict[str, Any], tags: dict[str, Any]) -> None:
    from mlflow.entities import Param, RunTag

    client.log_batch(
        run_id,
        params=[Param(k, str(v)[:MAX_PARAM]) for k, v in params.items()],
        tags=[RunTag(k, str(v)[:MAX_TAG]) for k, v in tags.items()],
    )


def kill_stale_children(client, experiment_id: str, parent_run_id: str) -> int:
    """Children left RUNNING (an interrupted invocation; its jobs are run again) are KILLED. Returns how many."""
    stale = list_children(client, parent_run_id, [experiment_id], running_only=True)
    for run in stale:
        client.set_terminated(run.info.run_id, status="KILLED")
    return len(stale)


def list_children(
    client, parent_run_id: str, experiment_ids: list[str] | None = None, running_only: bool = False
) -> list:
    """Every active child run of `parent_run_id` (all pages) in these experiments (None: every experiment)."""
    if experiment_ids is None:
        experiment_ids = [e.experiment_id for e in client.search_experiments()]
    query = f"tags.`{PARENT_TAG}` = '{parent_run_id}'" + (" and attributes.status = 'RUNNING'" if running_only else "")
    return search_all_runs(client, experiment_ids, query) if experiment_ids else []


def end_child_runs(client, outcomes: dict[str, tuple[str, dict[str, str]]]) -> None:
    """{run_id: (status, tags)}: tag each child; one still RUNNING (a trial stopped early never closed its run)
    ends with `status`."""
    for run_id, (status, tags) in outcomes.items():
        for key, value in tags.items():
            client.set_tag(run_id, key, value)
        if client.get_run(run_id).info.status == "RUNNING":
            client.set_terminated(run_id, status=status)


def tag_child_run(client, run_id: str, tags: dict[str, str]) -> None:
    """Tag one child run (e.g. `tune.best` on the best trial's run)."""
    for key, value in tags.items():
        client.set_tag(run_id, key, value)
