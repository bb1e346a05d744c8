"""The MLflow seam (xray_exp/mlops): one models:/ parser, one registration rule, bounded HTTP, and parent/child
runs against a real sqlite store (that nothing else imports mlflow: tests/package/test_boundaries.py).

    PYTHONPATH=$PWD .venv/bin/pytest tests/mlops/test_mlops_seam.py -q
"""

from __future__ import annotations

import os

import pytest
from conftest import REPO

from xray_exp.errors import ModelError
from xray_exp.mlops import parent_runs
from xray_exp.mlops.client import HTTP_RETRIES_ENV, HTTP_TIMEOUT_ENV, default_http_limits, tracking_client
from xray_exp.mlops.registry import parse_models_uri, registration_target
from xray_exp.serve.model_source import served_registry_model

PACKAGE = REPO / "xray_exp"
SEAM = PACKAGE / "mlops"


@pytest.mark.parametrize(
    ("uri", "parsed"),
    [
        ("models:/yolo12n@development", ("yolo12n", "development", None)),
        ("models:/yolo12n-finetuned@staging", ("yolo12n-finetuned", "staging", None)),
        ("models:/yolo12n/3", ("yolo12n", None, "3")),
        ("models:/yolo12n", ("yolo12n", None, None)),
        ("models:/yolo12n/", ("yolo12n", None, None)),
    ],
)
def test_one_models_uri_parser(uri, parsed):
    assert parse_models_uri(uri) == parsed


@pytest.mark.parametrize(
    "uri", ["models:/", "models:/a/b", "models:/a@", "models:/a@x/3", "runs:/abc/model", "models:/a/3x"]
)
def test_models_uri_parser_refuses_other_forms(uri):
    with pytest.raises(ModelError, match="expected models:/<name>@<alias> or models:/<name>/<n>"):
        parse_models_uri(uri)


def test_the_service_reads_registry_uris_with_the_same_parser_and_refuses_a_pinned_version():
    assert served_registry_model("models:/yolo12n@champion") == ("yolo12n", "champion")
    assert served_registry_model("models:/yolo12n/") == ("yolo12n", None)
    for bad in ("models:/yolo12n/3", "models:/a/b"):  # a configuration error: the service does not start
        with pytest.raises(ValueError, match=r"must look like models:/<name>@<alias> or models:/<name> \("):
            served_registry_model(bad)


def test_registration_target_base_and_finetune():
    assert registration_target("yolo12n", finetune=False) == ("yolo12n", "development")
    assert registration_target("yolo12s", finetune=True) == ("yolo12s-finetuned", "staging")


def test_http_limits_bound_every_client(monkeypatch, tmp_path):
    monkeypatch.delenv(HTTP_TIMEOUT_ENV, raising=False)
    monkeypatch.delenv(HTTP_RETRIES_ENV, raising=False)
    default_http_limits(7)  # the service: only where the environment says nothing
    assert (os.environ[HTTP_TIMEOUT_ENV], os.environ[HTTP_RETRIES_ENV]) == ("7", "0")
    monkeypatch.setenv(HTTP_TIMEOUT_ENV, "30")
    default_http_limits(7)
    assert os.environ[HTTP_TIMEOUT_ENV] == "30"
    client = tracking_client(f"sqlite:///{tmp_path / 'm.db'}", timeout_s=3.9)  # training, sweeps: always
    assert (os.environ[HTTP_TIMEOUT_ENV], os.environ[HTTP_RETRIES_ENV]) == ("3", "0")
    assert client.tracking_uri == f"sqlite:///{tmp_path / 'm.db'}"


@pytest.fixture()
def client(tmp_path):
    return tracking_client(f"sqlite:///{tmp_path / 'mlflow.db'}")


def test_parent_run_reopens_kills_stale_children_and_lists_all_of_them(client):
    identity = {"sweep.key": "sqlite:///o.db 'study-a'", "sweep.role": "parent"}  # quotes are dropped
    first = parent_runs.open_parent_run(
        client, "exp", "sweep-a", identity, {"sweep.id": "1"}, {"search.lr": "a,b"}, count_tag="sweep.invocations"
    )
    parent_id, experiment_id = first["parent_run_id"], first["experiment_id"]
    assert first["resumed"] is False
    other = parent_runs.open_parent_run(client, "exp", "sweep-b", {**identity, "sweep.key": "study-b"}, {}, {})
    assert other["parent_run_id"] != parent_id

    def child(status, parent=parent_id):
        tags = parent_runs.child_run_tags(parent, {"sweep.job_num": status})
        run_id = client.create_run(experiment_id, tags=tags).info.run_id
        if status != "RUNNING":
            client.set_terminated(run_id, status=status)
        return run_id

    running, finished = child("RUNNING"), child("FINISHED")
    child("RUNNING", parent=other["parent_run_id"])  # another sweep's child stays as it is
    assert parent_runs.child_run_tags(None, {"a": "1"}) == {"a": "1"}
    client.set_terminated(parent_id, status="KILLED")

    again = parent_runs.open_parent_run(
        client,
        "exp",
        "ignored",
        identity,
        {"sweep.id": "2"},
        {"search.lr": "changed", "search.bs": "8"},
        count_tag="sweep.invocations",
    )
    assert (again["parent_run_id"], again["resumed"]) == (parent_id, True)
    parent = client.get_run(parent_id)
    assert parent.info.status == "RUNNING" and parent.info.run_name == "sweep-a"
    assert parent.data.tags["sweep.invocations"] == "2" and parent.data.tags["sweep.id"] == "2"
    assert parent.data.tags["sweep.key"] == "sqlite:///o.db study-a" and parent.data.tags["sweep.role"] == "parent"
    assert parent.data.params == {"search.lr": "a,b", "search.bs": "8"}  # a logged param is never sent again
    assert client.get_run(running).info.status == "KILLED"
    assert client.get_run(finished).info.status == "FINISHED"
    children = parent_runs.list_children(client, parent_id)
    assert sorted(r.info.run_id for r in children) == sorted([running, finished])
    assert parent_runs.list_children(client, parent_id, [experiment_id], running_only=True) == []
    assert len(parent_runs.list_children(client, other["parent_run_id"], running_only=True)) == 1


def test_end_child_runs_tags_all_and_ends_only_the_running(client):
    experiment_id = client.create_experiment("tune")
    running = client.create_run(experiment_id).info.run_id
    done = client.create_run(experiment_id).info.run_id
    client.set_terminated(done, status="FINISHED")
    parent_runs.end_child_runs(
        client, {running: ("KILLED", {"tune.stopped_early": "true"}), done: ("FAILED", {"tune.stopped_early": "false"})}
    )
    parent_runs.tag_child_run(client, done, {"tune.best": "true"})
    assert client.get_run(running).info.status == "KILLED"
    assert client.get_run(running).data.tags["tune.stopped_early"] == "true"
    assert client.get_run(done).info.status == "FINISHED"
    assert client.get_run(done).data.tags["tune.stopped_early"] == "false"
    assert client.get_run(done).data.tags["tune.best"] == "true"
