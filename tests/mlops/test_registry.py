"""Promotion that never surprises, the registry CLI and the one default store (real sqlite MLflow stores)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import REPO
from mlflow.tracking import MlflowClient

from xray_exp.mlops.client import default_tracking_uri, ensure_experiment
from xray_exp.mlops.registry import describe_decision, register_model

NAME, ALIAS = "yolo12n", "development"


@pytest.fixture()
def store(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    return uri, MlflowClient(uri)


def logged_run(client, tmp_path) -> tuple[str, str]:
    """A run with a model folder as an artifact: (run id, the folder's artifact URI to register)."""
    run = client.create_run(ensure_experiment(client, "YOLO12-Training"))
    folder = tmp_path / "model"
    folder.mkdir(exist_ok=True)
    (folder / "MLmodel").write_text("flavors: {}\n")
    client.log_artifacts(run.info.run_id, str(folder), "model")
    return run.info.run_id, f"{run.info.artifact_uri}/model"


def train_and_register(client, tmp_path, value, policy="if_better", direction="maximize", objective="val/map40"):
    run_id, model_uri = logged_run(client, tmp_path)
    event = {
        "name": NAME,
        "alias": ALIAS,
        "policy": policy,
        "objective": objective,
        "value": value,
        "direction": direction,
        "tags": {"mode": "train"},
    }
    return run_id, register_model(client, model_uri, run_id, event)


def holder_version(client) -> str:
    return str(client.get_model_version_by_alias(NAME, ALIAS).version)


def test_every_run_registers_and_the_alias_moves_only_when_at_least_as_good(store, tmp_path):
    uri, client = store
    _, first = train_and_register(client, tmp_path, 0.5)
    assert first["registered"] and first["promoted"] and first["reason"] == "first version"
    assert holder_version(client) == "1"

    run_id, worse = train_and_register(client, tmp_path, 0.4)
    assert worse["registered"] and not worse["promoted"] and str(worse["version"]) == "2"
    assert holder_version(client) == "1"
    skipped = client.get_model_version(NAME, "2").tags["promotion.skipped"]
    assert skipped == "val/map40=0.40000 is worse than yolo12n@development v1 (0.50000, maximize)"
    decision = client.get_run(run_id).data.tags["registry.decision"]
    assert decision == f"registered {NAME} v2; {ALIAS} stays on v1: {skipped}"
    assert describe_decision(worse).endswith(f"@{ALIAS} unchanged ({skipped})")

    _, equal = train_and_register(client, tmp_path, 0.5)
    assert equal["promoted"] and holder_version(client) == "3"
    assert "promotion.skipped" not in client.get_model_version(NAME, "3").tags

    _, other = train_and_register(client, tmp_path, 0.9, objective="test/mAP50")
    assert other["registered"] and not other["promoted"] and "was measured on val/map40" in other["reason"]

    _, never = train_and_register(client, tmp_path, 0.99, policy="never")
    assert not never["registered"] and len(client.search_model_versions(f"name='{NAME}'")) == 4

    _, forced = train_and_register(client, tmp_path, 0.01, policy="always")
    assert forced["promoted"] and holder_version(client) == str(forced["version"]) == "5"


def test_minimize_objective_promotes_lower_values(store, tmp_path):
    _, client = store
    train_and_register(client, tmp_path, 0.2, direction="minimize", objective="val/loss")
    _, higher = train_and_register(client, tmp_path, 0.3, direction="minimize", objective="val/loss")
    assert not higher["promoted"] and holder_version(client) == "1"
    _, lower = train_and_register(client, tmp_path, 0.1, direction="minimize", objective="val/loss")
    assert lower["promoted"] and holder_version(client) == "3"


def registry_cli(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "xray_exp.models", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, **(env or {})},
        timeout=120,
    )


def test_registry_cli_promotes_lists_and_shows(store, tmp_path):
    uri, client = store
    train_and_register(client, tmp_path, 0.5)
    train_and_register(client, tmp_path, 0.4)
    proc = registry_cli("--tracking-uri", uri, "promote", NAME, "2", "--alias", ALIAS)
    assert proc.returncode == 0, proc.stderr
    assert holder_version(client) == "2" and f"{NAME} v2 now holds @{ALIAS}" in proc.stdout
    assert "(was v1)" in client.get_model_version(NAME, "2").tags["promotion.manual"]

    listing = registry_cli("--tracking-uri", uri, "list", NAME)
    rows = [line.split() for line in listing.stdout.splitlines()[1:]]
    assert [(r[0], r[1], r[2]) for r in rows] == [(NAME, "1", "-"), (NAME, "2", ALIAS)]

    shown = json.loads(registry_cli("--tracking-uri", uri, "show", NAME, ALIAS).stdout)
    assert shown["version"] == 2 and shown["aliases"] == [ALIAS] and shown["tags"]["objective_value"] == "0.4"

    missing = registry_cli("--tracking-uri", uri, "promote", NAME, "9", "--alias", ALIAS)
    assert missing.returncode == 2 and f"ERROR: registry: {NAME} v9 not found" in missing.stderr


def test_one_default_store_for_everything(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    project = f"sqlite:///{tmp_path.resolve() / 'outputs' / 'mlflow.db'}"
    assert default_tracking_uri(tmp_path) == project
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking.invalid:5000")
    assert default_tracking_uri(tmp_path) == "http://tracking.invalid:5000"

    env_off = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    for module in ("xray_exp.train", "xray_exp.evaluate"):
        for env, expected in (
            (env_off, project),
            ({**env_off, "MLFLOW_TRACKING_URI": "http://t.invalid"}, "http://t.invalid"),
        ):
            proc = subprocess.run(
                [sys.executable, "-m", module, "--cfg", "job", "-p", "tracking.tracking_uri"],
                capture_output=True,
                text=True,
                cwd=REPO,
                timeout=120,
                env={**env, "XRAY_EXP_ROOT": str(tmp_path)},
            )
            assert proc.stdout.strip() == expected, (module, proc.stdout, proc.stderr)
    listing = subprocess.run(  # the former command name still works
        [sys.executable, "-m", "xray_exp.registry", "list"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        env={**env_off, "XRAY_EXP_ROOT": str(tmp_path)},
    )
    assert f"(no registered versions at {project})" in listing.stdout


def test_smoke_runs_never_register(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "xray_exp.train", "debug=smoke", "--cfg", "job", "-p", "tracking.register"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert proc.stdout.strip() == "never"


def test_significant_gate_moves_the_alias_only_on_a_significant_paired_difference(store, tmp_path):
    _, client = store
    train_and_register(client, tmp_path, 0.5)

    def significant(found):
        run_id, model_uri = logged_run(client, tmp_path)
        event = {
            "name": NAME,
            "alias": ALIAS,
            "policy": "if_better",
            "objective": "test/map40",
            "value": 0.9,
            "direction": "maximize",
            "tags": {},
            "better_if": "significant",
            "significance": found,
        }
        return register_model(client, model_uri, run_id, event)

    verdict = "no significant difference on map40: +0.020 [-0.010, 0.050], p=0.210"
    base = {"split": "test", "metric": "map40", "holder_version": "1", "verdict": verdict}
    not_significant = significant({**base, "significant": False})
    assert not not_significant["promoted"] and holder_version(client) == "1"  # a higher point value is not enough
    assert not_significant["reason"] == f"not significantly better than v1 on test: {verdict}"
    assert not_significant["significance"]["verdict"] == verdict
    assert "with v1 (OSError: down)" in significant({"error": "OSError: down"})["reason"]
    assert "compared with v7" in significant({**base, "holder_version": "7", "significant": True})["reason"]
    assert "no paired comparison" in significant(None)["reason"] and holder_version(client) == "1"

    better = "this run better on map40: +0.300 [0.200, 0.400], p<0.001"
    promoted = significant({**base, "significant": True, "verdict": better})
    assert promoted["promoted"] and holder_version(client) == str(promoted["version"]) == "6"
    assert promoted["reason"] == f"significantly better than v1: {better}"
