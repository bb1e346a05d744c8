"""`--multirun sweep=cv` end to end on the tiny synthetic set: a 3-fold smoke CV in which fold 1 fails (recorded
FAILED, the others finish), then the same command again (finished folds not retrained, fold 1 trained), then the
OOF predictions, cv_metrics.json, report.md and the MLflow parent/child runs; nothing registered."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, run_cli

from xray_exp.metrics.resample import HEADLINE_METRICS

HERE = Path(__file__).resolve().parent
NAME = "yolo12n-synthetic-k3-s0"
# Smoke folds: 1 epoch on 8 images at 128 px; no ONNX (no model logged), few bootstrap resamples.
CV = [
    "--multirun",
    "sweep=cv",
    "cv.folds=3",
    "debug=smoke",
    "post.onnx=false",
    "post.samples=0",
    "post.n_boot=50",
    "post.progress=false",
    "tracking.register=if_better",
]  # asked to register: a CV still registers nothing


@pytest.fixture(scope="module")
def cv_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("cv")
    env = {**os.environ, "XRAY_EXP_ROOT": str(root), "PYTHONUNBUFFERED": "1", "XRAY_FAIL_FOLD": "1"}
    first = subprocess.run(
        [sys.executable, str(HERE / "failing_fold_train.py"), *CV],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    cv_dir = root / "outputs" / "cv" / NAME
    assert (cv_dir / "cv.json").is_file(), first.stdout[-3000:] + first.stderr[-3000:]
    after_first = {
        "record": json.loads((cv_dir / "cv.json").read_text()),
        "metrics": json.loads((cv_dir / "cv_metrics.json").read_text()),
        "mtimes": {f: (cv_dir / f"fold{f}" / "summary.json").stat().st_mtime_ns for f in (0, 2)},
    }
    from xray_exp.cv.finish import finish_cv

    after_first["partial"] = finish_cv(cv_dir, allow_missing=True)  # the finished folds' OOF (then cached)
    second = run_cli(["xray_exp.train", *CV], root, timeout=600)
    return root, cv_dir, first, after_first, second


def test_a_failed_fold_is_recorded_and_the_others_finish(cv_runs):
    _, cv_dir, first, after, _ = cv_runs
    assert first.returncode == 1, first.stderr[-3000:]  # the CV is incomplete
    assert "injected failure for fold1.yaml" in first.stderr
    assert [r["status"] for r in after["record"]["fold_runs"]] == ["FINISHED", "FAILED", "FINISHED"]
    assert "injected failure" in after["record"]["fold_runs"][1]["error"]["message"]
    assert after["metrics"]["oof"] is None and "folds [1] not finished" in after["metrics"]["oof_note"]
    assert "run the same command again" in first.stdout


def test_allow_missing_scores_the_finished_folds_only(cv_runs):
    _, cv_dir, _, after, _ = cv_runs
    partial = after["partial"]
    assert not partial["complete"] and partial["unfinished_folds"] == [1] and partial["oof_folds"] == [0, 2]
    with open(cv_dir / "folds.csv") as f:
        plan = {row["image"]: int(row["fold"]) for row in csv.DictReader(f)}
    assert partial["oof_images"] == partial["oof"]["images"] == sum(f != 1 for f in plan.values())


def test_rerun_resumes_without_retraining_finished_folds(cv_runs):
    _, cv_dir, _, after, second = cv_runs
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    for f in (0, 2):
        assert f"fold {f}: finished before" in second.stdout
        assert (cv_dir / f"fold{f}" / "summary.json").stat().st_mtime_ns == after["mtimes"][f]
    assert "fold 1: finished before" not in second.stdout
    assert (cv_dir / "attempts" / "fold1-1" / "error.txt").is_file()  # the failed attempt kept aside
    record = json.loads((cv_dir / "cv.json").read_text())
    assert [r["status"] for r in record["fold_runs"]] == ["FINISHED"] * 3
    for run in record["fold_runs"]:
        assert Path(run["weights"]).is_file() and Path(run["data_yaml"]).is_file() and run["onnx"] is None
        assert Path(run["run_dir"]) == cv_dir / f"fold{run['fold']}" and run["mlflow_run_id"]
    assert record["names"] == ["nodule", "effusion", "cardiomegaly", "pneumothorax"] and record["imgsz"] == 128
    assert record["model"] == "yolo12n" and record["folds"] == 3 and Path(record["data_yaml"]).is_file()


def test_oof_covers_every_pool_image_once_with_its_own_fold(cv_runs):
    _, cv_dir, _, _, _ = cv_runs
    with open(cv_dir / "folds.csv") as f:
        plan = {row["image"]: int(row["fold"]) for row in csv.DictReader(f)}
    with open(cv_dir / "oof_predictions.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["image", "fold", "label", "class_id", "confidence", "x1", "y1", "x2", "y2"]
    seen = {}
    for row in rows:
        assert seen.setdefault(row["image"], row["fold"]) == row["fold"]
    assert {image: int(fold) for image, fold in seen.items()} == plan  # each pool image, by its own fold's model
    assert len(plan) == 12 and not any(i.startswith("synth_test") for i in plan)
    empty = [r for r in rows if r["label"] == ""]
    assert all(r["confidence"] == "" for r in empty)
    assert len({r["image"] for r in empty}) == len(empty)  # an image without boxes: one row


def test_cv_metrics_per_fold_mean_std_and_oof_with_intervals(cv_runs):
    import numpy as np

    _, cv_dir, _, _, second = cv_runs
    metrics = json.loads((cv_dir / "cv_metrics.json").read_text())
    names = [f"{split}/{m}" for split in ("val", "test") for m in HEADLINE_METRICS]
    assert metrics["complete"] and metrics["metrics"] == names and len(metrics["per_fold"]) == 3
    for name in ("val/mAP50", "test/map40"):
        values = [row[name] for row in metrics["per_fold"]]
        assert metrics["mean"][name] == pytest.approx(np.mean(values))
        assert metrics["std"][name] == pytest.approx(np.std(values, ddof=1), abs=1e-12)
    oof = metrics["oof"]
    for m in HEADLINE_METRICS:
        assert m in oof and f"{m}_ci_low" in oof and f"{m}_ci_high" in oof
    assert oof["images"] == 12 and metrics["oof_images"] == 12
    report = (cv_dir / "report.md").read_text()
    assert "## Per fold" in report and "## Out-of-fold (OOF)" in report and "## Fold plan" in report
    assert (cv_dir / "plots" / "oof_froc.png").is_file() and (cv_dir / "plots" / "oof_pr_curves.png").is_file()
    assert "OOF map40" in second.stdout


def test_mlflow_parent_with_one_child_per_fold_and_nothing_registered(cv_runs):
    from mlflow.tracking import MlflowClient

    root, cv_dir, _, _, _ = cv_runs
    client = MlflowClient(f"sqlite:///{root}/outputs/mlflow.db")
    experiment_id = client.get_experiment_by_name("YOLO12-Training").experiment_id
    (parent,) = client.search_runs([experiment_id], filter_string="tags.`sweep.role` = 'parent'")
    assert parent.info.status == "FINISHED" and parent.data.tags["cv.name"] == NAME
    assert parent.data.params["cv.folds"] == "3" and parent.data.tags["sweep.invocations"] == "2"
    assert parent.info.run_id == json.loads((cv_dir / "cv.json").read_text())["parent_run_id"]
    children = client.search_runs([experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    by_fold = sorted((c.data.params["cv.fold"], c.info.status) for c in children)
    assert by_fold == [("0", "FINISHED"), ("1", "FAILED"), ("1", "FINISHED"), ("2", "FINISHED")]
    assert all(
        c.data.params["dataset.data_yaml"].endswith(f"plan/fold{c.data.params['cv.fold']}.yaml") for c in children
    )
    assert parent.data.metrics["cv/oof/map40"] >= 0 and "cv/mean/val/map40" in parent.data.metrics
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id, "cv")}
    assert {"cv/folds.csv", "cv/cv.json", "cv/oof_predictions.csv", "cv/cv_metrics.json", "cv/report.md"} <= artifacts
    assert client.search_registered_models() == []
    assert parent.data.tags["registry.decision"].startswith("cross-validation")


def test_bad_fold_count_fails_before_any_work(tmp_path):
    proc = run_cli(["xray_exp.train", "--multirun", "sweep=cv", "cv.folds=13", "debug=smoke"], tmp_path)
    assert proc.returncode == 2 and "cv.folds=13: the pool" in proc.stderr and "cv.folds<=12" in proc.stderr
    assert not (tmp_path / "outputs" / "cv").exists() and not (tmp_path / "outputs" / "mlflow.db").exists()


def test_analysis_helpers_and_notebook_show_the_cv(cv_runs, tmp_path, monkeypatch):
    """xray_exp.analysis.cv on this CV, and notebooks/01_runs.ipynb executed against its project (its CV section
    with the per-fold spread and the OOF curves; the CV's parent run is the store's sweep)."""
    import nbformat
    from nbclient import NotebookClient

    from xray_exp.analysis import cv

    root, cv_dir, _, _, _ = cv_runs
    found = cv.find_cvs(root)
    assert list(found["name"]) == [NAME] and found["finished"].iloc[0] == 3 and found["task"].iloc[0] == "detect"
    frame = cv.cv_fold_frame(cv_dir)
    assert list(frame.index) == ["0", "1", "2", "mean", "std", "OOF (pooled)"]
    assert [p.name for p in cv.oof_curve_files(cv_dir)] == ["oof_pr_curves.png", "oof_froc.png", "oof_roc.png"]
    assert len(cv.plot_cv_spread(cv_dir).axes) == 1

    spec = tmp_path / "jupyter" / "kernels" / "xray-exp-cv"
    spec.mkdir(parents=True)
    spec.joinpath("kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "language": "python",
                "display_name": "xray_exp tests",
            }
        )
    )
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    nb = nbformat.read(REPO / "notebooks" / "01_runs.ipynb", as_version=4)
    env = {**os.environ, "XRAY_EXP_ROOT": str(root), "MLFLOW_TRACKING_URI": f"sqlite:///{root}/outputs/mlflow.db"}
    NotebookClient(
        nb,
        kernel_name="xray-exp-cv",
        timeout=300,
        startup_timeout=120,
        resources={"metadata": {"path": str(REPO / "notebooks")}},
    ).execute(env=env)
    cells = {c.id: c for c in nb.cells}
    text = "".join(o.get("text", "") + o.get("data", {}).get("text/plain", "") for o in cells["01-12"].outputs)
    assert f"cross-validation {cv_dir}" in text and "OOF (pooled)" in text
    assert sum("image/png" in o.get("data", {}) for o in cells["01-12"].outputs) == 1  # the spread
    assert sum("image/png" in o.get("data", {}) for o in cells["01-13"].outputs) == 3  # PR, FROC, ROC


def test_finishing_again_reuses_the_fold_predictions(cv_runs):
    """finish_cv (also `python -m xray_exp.folds cv_dir=...`) again: from the cached OOF predictions, no model run."""
    from xray_exp.cv.finish import finish_cv

    _, cv_dir, _, _, _ = cv_runs
    before = json.loads((cv_dir / "cv_metrics.json").read_text())
    caches = {p: p.stat().st_mtime_ns for p in (cv_dir / "oof").glob("fold*.json")}
    assert len(caches) == 3
    again = finish_cv(cv_dir)
    assert {p: p.stat().st_mtime_ns for p in caches} == caches
    assert again["oof"] == before["oof"] == json.loads((cv_dir / "cv_metrics.json").read_text())["oof"]


def test_a_changed_setting_is_refused_before_any_work(cv_runs):
    """The same CV folder with another training setting: refused naming it; nothing touched (the parent run too)."""
    from mlflow.tracking import MlflowClient

    root, cv_dir, _, _, _ = cv_runs
    before = (cv_dir / "cv.json").read_bytes()
    proc = run_cli(["xray_exp.train", *CV, "train.epochs=2"], root)
    assert proc.returncode == 2 and "trained with other settings (train.epochs: 1 -> 2)" in proc.stderr
    assert "cv.name=<a new name>" in proc.stderr and "finished before" not in proc.stdout
    assert (cv_dir / "cv.json").read_bytes() == before
    client = MlflowClient(f"sqlite:///{root}/outputs/mlflow.db")
    (parent,) = client.search_runs(
        [client.get_experiment_by_name("YOLO12-Training").experiment_id],
        filter_string="tags.`sweep.role` = 'parent'",
    )
    assert parent.info.status == "FINISHED" and parent.data.tags["sweep.invocations"] == "2"
