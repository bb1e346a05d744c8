"""`tracking.better_if=significant` end to end: two trainings into one sqlite store; the second is compared with
the alias holder on the same images by the paired test, and keeps the alias where it is unless it wins."""

from __future__ import annotations

import json

import pytest
from conftest import run_cli, run_dir_of

GATE = [
    "xray_exp.train",
    "debug=smoke",
    "post.samples=0",
    "post.eval_splits=[test]",
    "post.n_boot=200",
    "tracking=local",
    "tracking.register=if_better",
    "tracking.better_if=significant",
    "objective.metric=test/map40",
]


@pytest.mark.integration
def test_objective_without_a_paired_test_fails_before_training(tmp_path):
    proc = run_cli([*GATE, "objective.metric=ultralytics/val/mAP50-95"], tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert (
        "tracking.better_if=significant: objective.metric='ultralytics/val/mAP50-95' has no paired test" in proc.stderr
    )
    assert not (tmp_path / "outputs" / "runs").exists() or not any((tmp_path / "outputs" / "runs").iterdir())


@pytest.mark.slow
@pytest.mark.integration
def test_a_version_that_is_not_significantly_better_keeps_the_alias_where_it_is(tmp_path):
    env = {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'outputs' / 'mlflow.db'}"}
    first = json.loads((run_dir_of(run_cli(GATE, tmp_path, env=env, check=True)) / "summary.json").read_text())
    assert first["registration"]["promoted"] and first["registration"]["reason"] == "first version"

    # The same seeded training again: the same model, so the paired difference is 0 and cannot be significant.
    proc = run_cli(GATE, tmp_path, env=env, check=True)
    second = json.loads((run_dir_of(proc) / "summary.json").read_text())["registration"]
    assert second["registered"] and str(second["version"]) == "2" and not second["promoted"]
    found = second["significance"]
    assert found["holder_version"] == "1" and found["metric"] == "map40" and found["split"] == "test"
    assert not found["significant"] and found["verdict"].startswith("no significant difference on map40")
    assert second["reason"] == f"not significantly better than v1 on test: {found['verdict']}"

    from mlflow.tracking import MlflowClient

    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    assert str(client.get_model_version_by_alias("yolo12n", "development").version) == "1"
    assert client.get_model_version("yolo12n", "2").tags["promotion.skipped"] == second["reason"]
