"""task=classify through the run lifecycle on a tiny synthetic set, its registered pyfunc, and the gate on
evaluate / compare: one module fixture trains the classifier (registered) and a detector once."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli, run_dir_of

DATA = [
    "debug=smoke",
    "train.imgsz=64",
    "dataset.synthetic.num_val=6",
    "dataset.synthetic.num_test=6",
    "dataset.synthetic.normal_fraction=0.5",
    "post.progress=false",
]

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("classify")
    cls = run_cli(
        ["xray_exp.train", "task=classify", *DATA, "tracking.register=always", "post.n_boot=100"], root, check=True
    )
    det = run_cli(
        [
            "xray_exp.train",
            *DATA,
            "tracking=disabled",
            "post.samples=0",
            "post.eval_splits=[val]",
            "post.n_boot=0",
            "objective.metric=val/map40",
        ],
        root,
        check=True,
    )
    return {"root": root, "cls": run_dir_of(cls), "det": run_dir_of(det), "stdout": cls.stdout}


def test_classifier_run_is_scored_exported_and_registered(trained):
    from mlflow.tracking import MlflowClient

    summary = json.loads((trained["cls"] / "summary.json").read_text())
    assert summary["objective"]["metric"] == "val/auroc"
    m = summary["metrics"]
    for split in ("val", "test"):
        assert 0 <= m[f"{split}/auroc"] <= 1 and m[f"{split}/normal_images"] > 0
        assert m[f"{split}/auroc_ci_low"] <= m[f"{split}/auroc"] <= m[f"{split}/auroc_ci_high"]
        assert 0 <= m[f"{split}/brier"] <= 1
    assert summary["onnx_parity"]["passed"], summary["onnx_parity"]
    report = (trained["cls"] / "report-test" / "report.md").read_text()
    assert "Brier score" in report and "## Calibration" in report
    assert (trained["cls"] / "report-test" / "plots" / "reliability.png").is_file()
    client = MlflowClient(summary["tracking_uri"])
    version = client.get_model_version_by_alias("yolo12n-cls", "development")
    run = client.get_run(version.run_id)
    assert run.data.params["task.name"] == "classify"
    assert (run.data.tags["model"], run.data.tags["task"]) == ("yolo12n-cls", "classify")  # what a sweep registers
    assert "val/auroc" in run.data.metrics and "train/loss" in run.data.metrics
    assert run.inputs.dataset_inputs[0].dataset.digest == summary["dataset"]["fingerprint"][:32]


def test_classify_data_derived_by_links_same_splits(trained):
    from xray_exp.data.classify import is_abnormal
    from xray_exp.data.validate import validate_dataset

    info = validate_dataset(json.loads((trained["cls"] / "dataset.json").read_text())["data_yaml"])
    root = trained["root"] / "outputs" / ".cache" / "classify" / info.fingerprint[:16]
    for split, images in info.splits.items():
        derived = {p.name: p for p in (root / split).glob("*/*")}
        assert sorted(derived) == sorted(p.name for p in images)  # the same images in the same split
        for image in images:
            link = derived[image.name]
            assert link.parent.name == ("abnormal" if is_abnormal(image) else "normal")
            assert os.path.samefile(link, image)  # a link, not a copy
            assert link.is_symlink() or link.stat().st_nlink > 1


def test_classifier_pyfunc_answers_abnormal_probability(trained):
    import mlflow

    from xray_exp.imaging import read_xray
    from xray_exp.inference.onnx_classifier import OnnxClassifier

    summary = json.loads((trained["cls"] / "summary.json").read_text())
    mlflow.set_tracking_uri(summary["tracking_uri"])
    model = mlflow.pyfunc.load_model("models:/yolo12n-cls@development")
    images = sorted((Path(summary["dataset"]["data_yaml"]).parent / "images" / "test").glob("*.png"))[:2]
    out = model.predict([str(p) for p in images])
    assert list(out.columns) == ["abnormal", "width", "height"]
    direct = OnnxClassifier(summary["onnx"]).predict_batch([read_xray(p) for p in images])
    np.testing.assert_allclose(out["abnormal"].to_numpy(), direct, atol=1e-6)


def evaluate(trained, *args):
    return run_cli(
        [
            "xray_exp.evaluate",
            f"model={trained['det'] / 'weights' / 'best.pt'}",
            *DATA[2:5],
            "tracking=disabled",
            "n_boot=0",
            "progress=false",
            *args,
        ],
        trained["root"],
    )


@pytest.fixture(scope="module")
def gated_eval(trained):
    """One gated evaluation on test that also registers the pair (tracking=local)."""
    proc = evaluate(
        trained,
        f"gate={trained['cls'] / 'weights' / 'best.pt'}",
        "gate.low=0.3",
        "gate.high=0.7",
        "split=test",
        "tracking=local",
        "gate.register=true",
        "gate.name=det-gated",
        "gate.register_policy=always",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_evaluate_with_gate_says_so_and_gates(gated_eval):
    proc = gated_eval
    assert "gate applied: classifier best.pt (imgsz 64): low 0.3, high 0.7, mode multiply" in proc.stdout
    out_dir = Path(next(line for line in proc.stdout.splitlines() if line.startswith("REPORT=")).split("=", 1)[1])
    metrics = json.loads((out_dir.parent / "metrics.json").read_text())
    gate = json.loads((out_dir.parent / "gate.json").read_text())
    assert (gate["low"], gate["high"]) == (0.3, 0.7)
    assert sum(metrics[f"test/gate_{a}"] for a in ("dropped", "multiplied", "kept")) == metrics["test/images"]
    assert "applied: classifier best.pt" in (out_dir.parent / "report.md").read_text()


def test_gated_pair_registered_and_answers_like_a_detector(trained, gated_eval):
    import mlflow

    from xray_exp.gating import GateSettings, gate_record
    from xray_exp.imaging import read_xray
    from xray_exp.inference.onnx_classifier import OnnxClassifier
    from xray_exp.inference.onnx_detector import OnnxDetector

    det, cls = trained["det"] / "weights", trained["cls"] / "weights"
    assert "registry: registered det-gated v1 @development" in gated_eval.stdout
    mlflow.set_tracking_uri(f"sqlite:///{trained['root'] / 'outputs' / 'mlflow.db'}")
    model = mlflow.pyfunc.load_model("models:/det-gated@development")
    image = sorted((trained["root"] / "outputs" / ".cache").rglob("images/test/*.png"))[0]
    row = model.predict([str(image)], params={"conf": 0.001}).iloc[0]
    gray = read_xray(image)
    p = OnnxClassifier(cls / "best.onnx").abnormal_probability(gray)
    dets, _ = OnnxDetector(det / "best.onnx").predict(gray, conf=0.001)
    gated = gate_record(
        {
            "image_id": "x",
            "boxes": [d.box for d in dets],
            "scores": [d.confidence for d in dets],
            "labels": [d.class_id for d in dets],
        },
        p,
        GateSettings(low=0.3, high=0.7),
    )
    expected = sorted(round(float(v), 6) for v in gated["scores"] if v >= 0.001)
    assert row["abnormal"] == pytest.approx(p, abs=1e-6)
    assert sorted(f["confidence"] for f in row["findings"]) == pytest.approx(expected, abs=1e-6)


def test_service_serves_the_gated_pair_like_its_pyfunc(trained, gated_eval):
    import mlflow
    from fastapi.testclient import TestClient

    from xray_exp.serve.app import create_app
    from xray_exp.serve.settings import ServeSettings

    store = f"sqlite:///{trained['root'] / 'outputs' / 'mlflow.db'}"
    image = sorted((trained["root"] / "outputs" / ".cache").rglob("images/test/*.png"))[0]
    mlflow.set_tracking_uri(store)
    expected = (
        mlflow.pyfunc.load_model("models:/det-gated@development").predict([str(image)], params={"conf": 0.001}).iloc[0]
    )
    settings = ServeSettings(
        token="gate-test-token-7d2e",
        device="cpu",
        model="models:/det-gated@development",
        tracking_uri=store,
        job_dir=str(trained["root"] / "jobs"),
    )
    with TestClient(create_app(settings)) as client:
        assert client.get("/health").json()["model"] == {"name": "det-gated", "version": "1"}
        body = client.post("/predict", files={"file": ("x.png", image.read_bytes())}, params={"conf": 0.001}).json()
    assert "gate" in body["timings_ms"]
    assert sorted(f["confidence"] for f in body["findings"]) == pytest.approx(
        sorted(f["confidence"] for f in expected["findings"]), abs=1e-4
    )


def test_predict_loads_the_registered_gated_pair(trained, gated_eval, tmp_path):
    """`xray_exp.predict model=models:/det-gated@development` gates like the pair's pyfunc."""
    import mlflow

    from xray_exp.imaging import read_xray
    from xray_exp.inference.predictor import load_predictor

    store = f"sqlite:///{trained['root'] / 'outputs' / 'mlflow.db'}"
    image = sorted((trained["root"] / "outputs" / ".cache").rglob("images/test/*.png"))[0]
    mlflow.set_tracking_uri(store)
    expected = (
        mlflow.pyfunc.load_model("models:/det-gated@development").predict([str(image)], params={"conf": 0.001}).iloc[0]
    )
    predictor = load_predictor(
        "models:/det-gated@development",
        conf=0.001,
        device="cpu",
        tracking_uri=store,
        cache_dir=tmp_path / "cache",
        output_dir=tmp_path,
    )
    got = predictor.predict(read_xray(image))
    assert type(predictor.detector).__name__ == "GatedOnnxDetector" and predictor.identity.version == "1"
    assert sorted(d.confidence for d in got) == pytest.approx(
        sorted(f["confidence"] for f in expected["findings"]), abs=1e-4
    )


def test_compare_gated_against_plain_on_the_same_images(trained):
    det = trained["det"] / "weights" / "best.pt"
    proc = run_cli(
        [
            "xray_exp.compare",
            str(det),
            f"gate={trained['cls'] / 'weights' / 'best.pt'}",
            "gate.low=0.5",
            "gate.high=0.5",
            *DATA[2:5],
            "tracking=disabled",
            "n_boot=200",
            "progress=false",
        ],
        trained["root"],
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "gate applied to B: classifier best.pt (imgsz 64): low 0.5, high 0.5, mode multiply" in proc.stdout
    report = Path(next(line for line in proc.stdout.splitlines() if line.startswith("REPORT=")).split("=", 1)[1])
    comparison = json.loads((report.parent / "comparison.json").read_text())
    assert comparison["b"]["name"].endswith("gated") and not comparison["a"]["name"].endswith("gated")
    assert comparison["a"]["weights"] == comparison["b"]["weights"] == str(det)
    assert len(comparison["verdicts"]) == len(comparison["differences"]) > 0


def test_evaluate_scores_a_classifier_with_its_own_metrics(trained):
    proc = run_cli(
        [
            "xray_exp.evaluate",
            f"model={trained['cls'] / 'weights' / 'best.pt'}",
            *DATA[2:5],
            "split=val",
            "tracking=disabled",
            "n_boot=100",
            "progress=false",
        ],
        trained["root"],
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| image-level AUROC (normal / abnormal) |" in proc.stdout and "Brier score" in proc.stdout
    summary = json.loads((trained["cls"] / "summary.json").read_text())
    shown = next(line for line in proc.stdout.splitlines() if line.startswith("val/auroc "))
    assert float(shown.split()[1]) == pytest.approx(summary["metrics"]["val/auroc"], abs=1e-4)  # = post-training


def test_detector_as_gate_fails_before_any_work(trained):
    proc = evaluate(trained, f"gate={trained['det'] / 'weights' / 'best.pt'}")
    assert proc.returncode == 2
    assert "a detect model, not a classifier" in proc.stderr


def test_gate_low_above_high_fails_first(trained):
    proc = evaluate(trained, "gate=/nonexistent/cls.pt", "gate.low=0.9", "gate.high=0.2")
    assert proc.returncode == 2 and "gate.low=0.9 > gate.high=0.2" in proc.stderr


def test_multilabel_is_refused_with_the_reason(tmp_path):
    proc = run_cli(
        ["xray_exp.train", "task=classify", "task.labels=multilabel", "debug=smoke", "tracking=disabled"], tmp_path
    )
    assert proc.returncode == 2 and "single-label softmax" in proc.stderr
