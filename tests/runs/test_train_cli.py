"""The train entry point end to end on tiny synthetic data (CPU, seconds per run)."""

from __future__ import annotations

import json
import re

import pytest
from conftest import run_cli, run_dir_of

HEAVY = ("torch", "ultralytics", "ray", "mlflow")
SMOKE = ["xray_exp.train", "debug=smoke"]


@pytest.mark.parametrize("args", [["--help"], ["--cfg", "job"], ["model=yolo12x", "hardware=gpu", "--cfg", "job"]])
def test_startup_imports_nothing_heavy(tmp_path, args):
    proc = run_cli(["xray_exp.train", *args], tmp_path, env={"PYTHONPROFILEIMPORTTIME": "1"}, check=True)
    imported = {m.group(1).split(".")[0] for m in re.finditer(r"\|\s+(\S+)$", proc.stderr, re.M)}
    assert not imported & set(HEAVY), f"heavy imports at start-up: {imported & set(HEAVY)}"
    if args[0] == "--cfg":
        assert "model:" in proc.stdout and "arch: yolo12" in proc.stdout


def test_unknown_key_fails_at_compose(tmp_path):
    proc = run_cli(["xray_exp.train", "train.epoch=3"], tmp_path)
    assert proc.returncode != 0 and "train.epoch" in proc.stderr
    assert not (tmp_path / "outputs" / "runs").exists()


@pytest.mark.integration
def test_broken_dataset_clear_error_and_nothing_left(tmp_path, synthetic_tiny):
    import shutil

    root = tmp_path / "ds"
    shutil.copytree(synthetic_tiny.parent, root)
    (root / "data.yaml").write_text((root / "data.yaml").read_text().replace(str(synthetic_tiny.parent), str(root)))
    bad = sorted((root / "labels" / "train").iterdir())[0]
    bad.write_text("9 0.5 0.5 0.2 0.2\n")
    proc = run_cli(
        ["xray_exp.train", "dataset=yolo", f"dataset.data_yaml={root / 'data.yaml'}", "tracking=disabled"], tmp_path
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert f"{bad}: line 1: class id 9 outside 0..3" in proc.stderr
    assert "Traceback" not in proc.stderr
    runs = tmp_path / "outputs" / "runs"
    assert not runs.exists() or not any(runs.iterdir()), "half-written run folder left behind"


@pytest.mark.integration
def test_missing_weights_file_is_a_clear_error(tmp_path):
    proc = run_cli([*SMOKE, "tracking=disabled", "model.weights=/nonexistent/w.pt"], tmp_path)
    assert proc.returncode == 2 and "model.weights: file /nonexistent/w.pt not found" in proc.stderr


@pytest.mark.integration
def test_smoke_run_end_to_end(tmp_path):
    proc = run_cli([*SMOKE, "tracking=disabled"], tmp_path, check=True)
    run_dir = run_dir_of(proc)
    assert run_dir.parent == tmp_path / "outputs" / "runs" and re.fullmatch(r"yolo12n-\d{8}-\d{6}", run_dir.name)
    summary = json.loads((run_dir / "summary.json").read_text())
    for key in ("test/mAP50", "test/mAP50-95", "test/map40", "val/mAP50-95"):
        assert 0.0 <= summary["metrics"][key] <= 1.0
    assert summary["objective"]["metric"] == "test/mAP50-95"
    parity = summary["onnx_parity"]
    assert parity["passed"] and parity["max_abs_diff_box_px"] <= parity["tolerance_box_px"]
    assert (run_dir / "weights" / "best.onnx").is_file() and (run_dir / "weights" / "best.pt").is_file()
    assert len(list((run_dir / "samples").glob("*.png"))) == 2
    assert (run_dir / ".hydra" / "config.yaml").is_file() and (run_dir / "results.csv").is_file()
    assert "ONNX parity" in proc.stdout and "test  mAP50" in proc.stdout
