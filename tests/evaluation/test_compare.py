"""Trained smoke models through the one evaluator: a run's summary.json, its MLflow run and
`python -m xray_exp.evaluate` agree on every metric; `python -m xray_exp.compare` on two models.

    .venv/bin/pytest tests/evaluation/test_compare.py -q          # slow: two smoke trainings (~1-2 min on 2 CPU cores)
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
from conftest import run_cli, run_dir_of

from xray_exp.config.argv_aliases import positional_to_overrides
from xray_exp.evaluation.compare_command import resolve_candidate

pytestmark = pytest.mark.slow
DATA = ["debug=smoke", "dataset.synthetic.num_train=32", "dataset.synthetic.num_test=12"]
HEADLINE = ("map40", "mAP50", "mAP50-95", "froc_mean", "auroc", "sensitivity", "specificity")


@pytest.fixture(scope="module")
def project(session_dir):
    """Two smoke-sized runs on one tiny synthetic dataset: A trained long enough to find lesions, with every
    post-training default (tracking, registry yolo12n@development, val/test metrics with CIs); B one epoch,
    another seed, nothing after training but Ultralytics' own validation."""
    root = session_dir / "compare-project"
    root.mkdir(parents=True, exist_ok=True)
    a = run_dir_of(
        run_cli(
            [
                "xray_exp.train",
                *DATA,
                "train.epochs=30",
                "train.patience=0",
                "post.samples=0",
                "tracking.register=if_better",
            ],
            root,
            check=True,
        )
    )  # debug=smoke alone never registers
    b = run_dir_of(
        run_cli(
            [
                "xray_exp.train",
                *DATA,
                "train.seed=1",
                "tracking=disabled",
                "post.onnx=false",
                "post.samples=0",
                "post.eval_splits=[]",
                "objective.metric=ultralytics/val/mAP50-95",
            ],
            root,
            check=True,
        )
    )
    data_yaml = json.loads((a / "dataset.json").read_text())["data_yaml"]
    assert json.loads((b / "dataset.json").read_text())["data_yaml"] == data_yaml
    return {
        "root": root,
        "a": a,
        "b": b,
        "uri": f"sqlite:///{root / 'outputs' / 'mlflow.db'}",
        "data": ["dataset=yolo", f"dataset.data_yaml={data_yaml}"],
    }


def same(x: float, y: float, tol: float = 1e-9) -> bool:
    return (math.isnan(x) and math.isnan(y)) or abs(x - y) <= tol


def test_summary_mlflow_and_evaluate_agree_on_every_metric(project):
    from mlflow.tracking import MlflowClient

    summary = json.loads((project["a"] / "summary.json").read_text())
    ours = {k: v for k, v in summary["metrics"].items() if k.startswith(("val/", "test/"))}
    # one evaluator: our names only under val/ and test/, Ultralytics' validator under its own prefix
    expected = {f"{s}/{m}{ci}" for s in ("val", "test") for m in HEADLINE for ci in ("", "_ci_low", "_ci_high")}
    assert expected <= set(ours)
    assert {"ultralytics/val/mAP50", "ultralytics/val/mAP50-95"} <= set(summary["metrics"])
    assert not any(k.startswith("test/mAP75") or k.startswith("ultralytics/test") for k in summary["metrics"])
    assert summary["evaluation"]["settings"]["map40_method"] == "voc2010"
    assert "VOC 2010" in summary["evaluation"]["definitions"]["map40"]

    logged = MlflowClient(project["uri"]).get_run(summary["mlflow_run_id"]).data.metrics
    # MLflow holds every finite value (undefined ones, e.g. AUROC on a split without normal images, are not logged)
    assert {k for k in logged if k.startswith(("val/", "test/"))} == {k for k, v in ours.items() if math.isfinite(v)}
    assert all(same(logged[k], ours[k]) for k in logged if k in ours), {
        k: (logged[k], ours[k]) for k in logged if k in ours and not same(logged[k], ours[k])
    }
    history = MlflowClient(project["uri"]).get_metric_history(summary["mlflow_run_id"], "ultralytics/val/mAP50")
    assert len(history) >= 2  # per epoch + the final best.pt validation

    out = project["root"] / "eval-a"
    proc = run_cli(
        [
            "xray_exp.evaluate",
            f"model={summary['best_weights']}",
            *project["data"],
            "split=test",
            f"out_dir={out}",
            "tracking=disabled",
        ],
        project["root"],
        check=True,
    )
    assert "imgsz 128 (the checkpoint's training size, from best.pt)" in proc.stdout
    evaluated = json.loads((out / "metrics.json").read_text())
    tested = {k: v for k, v in ours.items() if k.startswith("test/")}
    assert tested["test/images"] == 12 and tested["test/map40"] > 0 and tested["test/froc_mean"] > 0  # it learned
    assert set(evaluated) == set(tested)
    assert all(same(evaluated[k], v) for k, v in tested.items()), {
        k: (evaluated[k], v) for k, v in tested.items() if not same(evaluated[k], v)
    }


def test_checkpoint_image_size_from_pt_and_onnx(project):
    from xray_exp.yolo.predict import trained_imgsz

    weights = project["a"] / "weights"
    assert trained_imgsz(weights / "best.pt") == 128 and trained_imgsz(weights / "best.onnx") == 128


def test_compare_two_models_prints_verdicts_and_writes_the_report(project):
    from mlflow.tracking import MlflowClient

    proc = run_cli(
        ["xray_exp.compare", str(project["b"]), "models:/yolo12n@development", *project["data"], "n_boot=300"],
        project["root"],
        check=True,
    )
    verdicts = [line for line in proc.stdout.splitlines() if " on " in line and "[" in line]
    pattern = (
        r"(no significant difference|.+ better) on (\S+): [+-]\d\.\d{3} \[-?\d\.\d{3}, -?\d\.\d{3}\], "
        r"p(=\d\.\d{3}|<0\.001|=n/a)"
    )
    assert [re.fullmatch(pattern, v).group(2) for v in verdicts] == list(HEADLINE), proc.stdout
    report = Path(next(line.split("=", 1)[1] for line in proc.stdout.splitlines() if line.startswith("REPORT=")))
    text = report.read_text()
    assert report.parent.parent.name == "compare" and "## Verdicts" in text and "DeLong" in text
    for name in ("pr_curves", "froc", "roc"):
        for side in ("a", "b"):
            assert f"(plots/{side}_{name}.png)" in text and (report.parent / "plots" / f"{side}_{name}.png").is_file()
    result = json.loads((report.parent / "comparison.json").read_text())
    assert result["a"]["name"] == project["b"].name and result["b"]["spec"] == "models:/yolo12n@development"
    assert Path(result["b"]["weights"]).name == "best.pt" and result["b"]["imgsz"] == 128
    for row in result["differences"]:
        if row["a"] is not None and row["b"] is not None:
            assert row["diff"] == pytest.approx(row["b"] - row["a"], abs=1e-12)
    # A's side equals evaluating A on its own (same predictions, same scorer)
    a_eval = project["root"] / "eval-b"
    run_cli(
        [
            "xray_exp.evaluate",
            f"model={project['b'] / 'weights' / 'best.pt'}",
            *project["data"],
            f"out_dir={a_eval}",
            "tracking=disabled",
            "n_boot=0",
        ],
        project["root"],
        check=True,
    )
    alone = json.loads((a_eval / "metrics.json").read_text())
    for row in result["differences"]:
        assert same(alone[f"test/{row['metric']}"], math.nan if row["a"] is None else row["a"])
    client = MlflowClient(project["uri"])
    (run,) = client.search_runs([client.get_experiment_by_name("YOLO12-Comparison").experiment_id])
    assert {f"diff/{m}" for m in HEADLINE} | {f"p_value/{m}" for m in HEADLINE} <= set(run.data.metrics)
    assert run.data.params["b"] == "models:/yolo12n@development"


def test_compare_arguments():
    assert positional_to_overrides(["runA", "models:/m@x", "split=val"]) == ["a=runA", "b=models:/m@x", "split=val"]
    assert positional_to_overrides(["--cfg", "job", "a=x", "B"]) == ["--cfg", "job", "a=x", "b=B"]


def test_compare_candidates_and_errors(project, tmp_path):
    weights, name = resolve_candidate(str(project["b"]), None, tmp_path)
    assert weights == project["b"] / "weights" / "best.pt" and name == project["b"].name
    assert resolve_candidate(str(weights), None, tmp_path)[1] == project["b"].name
    proc = run_cli(
        ["xray_exp.compare", str(tmp_path), str(weights), *project["data"], "tracking=disabled"], project["root"]
    )
    assert proc.returncode == 2 and "without weights/best.pt" in proc.stderr
    proc = run_cli(["xray_exp.compare", str(weights)], project["root"])
    assert proc.returncode == 2 and "two models needed" in proc.stderr
