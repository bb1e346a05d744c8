"""`sweep=cv hydra/launcher=ray`: the folds as Ray tasks on a local Ray (2 tiny folds in parallel), one CV record."""

from __future__ import annotations

import csv
import json
import secrets

import pytest
from conftest import run_cli


@pytest.mark.integration
@pytest.mark.serial  # a local Ray sized to the machine
def test_folds_fan_out_on_ray(tmp_path):
    env = {"RAY_AUTH_TOKEN": secrets.token_hex(16), "RAY_USAGE_STATS_ENABLED": "0"}
    proc = run_cli(
        [
            "xray_exp.train",
            "--multirun",
            "sweep=cv",
            "cv.folds=2",
            "cv.name=ray",
            "debug=smoke",
            "hydra/launcher=ray",
            "+hydra.launcher.ray.init.num_cpus=2",
            "hardware.num_cpus=1",
            "post.samples=0",
            "post.n_boot=20",
            "post.progress=false",
            "post.eval_splits=[val]",
            "objective.metric=val/map40",
        ],
        tmp_path,
        env=env,
        check=True,
    )
    out = proc.stdout + proc.stderr
    assert "Ray Launcher is launching 2 jobs" in out and "(_run_job pid=" in out
    cv_dir = tmp_path / "outputs" / "cv" / "ray"
    record = json.loads((cv_dir / "cv.json").read_text())
    assert [r["status"] for r in record["fold_runs"]] == ["FINISHED", "FINISHED"]
    assert all(r["onnx"] and r["onnx"].endswith(f"fold{r['fold']}/weights/best.onnx") for r in record["fold_runs"])
    with open(cv_dir / "folds.csv") as f:
        plan = {row["image"]: row["fold"] for row in csv.DictReader(f)}
    with open(cv_dir / "oof_predictions.csv") as f:
        assert {row["image"]: row["fold"] for row in csv.DictReader(f)} == plan
    assert json.loads((cv_dir / "cv_metrics.json").read_text())["complete"]
