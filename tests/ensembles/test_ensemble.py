"""`python -m xray_exp.ensemble` on a hand-made CV folder of three tiny ONNX models: OOF tuning, evaluation,
the paired verdict, the registered pyfunc and the service answering from it; bad input refused first.

    .venv/bin/pytest tests/ensembles/test_ensemble.py -q       # one ensemble run (~30 s on 2 cores)

The members and the CV folder: tests/ensemble_cv.py (the demo detector and two perturbed copies as fold
models, cv.json and folds.csv written by hand over the tiny synthetic set).
"""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli
from ensemble_cv import perturbed_copy, tiny_cv, write_cv

try:
    from serve_fixtures import helpers as h
except ImportError:  # pragma: no cover
    from tests.serve_fixtures import helpers as h

from xray_exp.ensembles.detector import EnsembleDetector
from xray_exp.errors import ConfigError
from xray_exp.evaluation.dataset import load_split
from xray_exp.imaging import read_xray

CONF = 0.01  # the demo models are random-init: a low threshold gives every image findings to compare


@pytest.fixture(scope="module")
def project(tmp_path_factory, synthetic_tiny):
    root = tmp_path_factory.mktemp("ensemble")
    tiny = tiny_cv(root, synthetic_tiny)
    data_yaml, members, cv = tiny["data_yaml"], tiny["members"], tiny["cv"]
    proc = run_cli(
        ["xray_exp.ensemble", f"cv={cv}", "tta=true", "tune=true", "n_trials=3", "n_boot=100", "progress=false"],
        root,
        check=True,
    )
    out = Path(re.search(r"^ENSEMBLE_DIR=(.+)$", proc.stdout, re.M)[1])
    return {
        "root": root,
        "data_yaml": data_yaml,
        "members": members,
        "cv": cv,
        "proc": proc,
        "out": out,
        "uri": f"sqlite:///{root / 'outputs' / 'mlflow.db'}",
        "names": tiny["names"],
    }


def test_outputs_and_fusion_tuned_on_out_of_fold_images_only(project):
    out, stdout = project["out"], project["proc"].stdout
    spec = json.loads((out / "model" / "ensemble.json").read_text())
    pool = {row["image"] for row in csv.DictReader((project["cv"] / "folds.csv").open())}
    test_ids = {i.image_id for i in load_split(project["data_yaml"], "test").images}
    assert not pool & test_ids and len(pool) == 12
    assert spec["tuning"]["images"] == 12 and spec["tuning"]["objective"] == "oof/map40"
    assert spec["tuning"]["best_value"] >= spec["tuning"]["default_value"]
    assert spec["fusion"] == spec["tuning"]["fusion"]  # the best settings are the ensemble's
    assert "tuned on 12 out-of-fold images, 3 trials" in stdout
    assert [m["fold"] for m in spec["members"]] == [0, 1, 2] and spec["cv"][0]["name"] == "demo3"
    assert [(v["scale"], v["flip"]) for v in spec["views"]] == [(1.0, False), (1.0, True)]
    assert "static batch 1: one call per view" in stdout  # Ultralytics' exports: batch dimension fixed at 1
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test/images"] == 4 and {"test/map40", "test/map40_ci_low", "test/froc_mean"} <= set(metrics)
    for name in ("report.md", "submission.csv", "predictions.csv", "comparison/report.md", "ensemble_summary.json"):
        assert (out / name).is_file(), name


def test_what_is_evaluated_is_what_is_served(project):
    """predictions.csv of the evaluation = the model folder's EnsembleDetector on the same image (conf 0.001)."""
    detector = EnsembleDetector(project["out"] / "model", device="cpu")
    rows = list(csv.DictReader((project["out"] / "predictions.csv").open()))
    image = load_split(project["data_yaml"], "test").images[0]
    detections, timings = detector.predict(read_xray(image.path), conf=0.001)
    evaluated = [r for r in rows if r["image_id"] == image.image_id]
    assert len(evaluated) == len(detections) > 0 and set(timings) >= {"inference", "fusion"}
    for row, det in zip(evaluated, detections, strict=True):
        assert int(row["class_id"]) == det.class_id and abs(float(row["score"]) - det.confidence) < 1e-5
        np.testing.assert_allclose([float(row[k]) for k in ("x1", "y1", "x2", "y2")], det.box, atol=0.01)


def test_paired_verdict_against_the_best_single_member(project):
    out, stdout = project["out"], project["proc"].stdout
    summary = json.loads((out / "ensemble_summary.json").read_text())
    first = summary["verdicts"][0]
    assert re.fullmatch(
        r"(ensemble|best single \(demo3-fold\d\)) better on map40: [+-]\d\.\d{3} \[-?\d\.\d{3}, "
        r"-?\d\.\d{3}\], p[=<]\d\.\d{3}|no significant difference on map40: .+",
        first,
    ), first
    assert first in stdout
    diff = next(d for d in summary["comparison"]["differences"] if d["metric"] == "map40")
    metrics = json.loads((out / "metrics.json").read_text())
    assert diff["b"] == pytest.approx(metrics["test/map40"], abs=1e-9)  # B: the ensemble as evaluated
    assert diff["a"] == pytest.approx(max(summary["single_metrics"].values()), abs=1e-9)  # A: the best member
    assert summary["best_single"] in first or first.startswith(("ensemble", "no significant"))
    assert diff["ci_low"] <= diff["diff"] <= diff["ci_high"]


def test_registered_pyfunc_and_the_service_answer_like_the_folder(project, monkeypatch, tmp_path):
    import mlflow
    from fastapi.testclient import TestClient
    from mlflow import MlflowClient

    from xray_exp.serve.app import create_app
    from xray_exp.serve.settings import ServeSettings

    client = MlflowClient(project["uri"])
    version = client.get_model_version_by_alias("yolo12n-ensemble", "development")
    assert str(version.version) == "1" and version.tags["ensemble.cv"] == "demo3"  # the first version registers
    assert version.tags["ensemble.members"] == "3" and "wbf" in version.tags["ensemble.fusion"]
    assert "registry: registered yolo12n-ensemble v1 @development" in project["proc"].stdout

    ((name, gray),) = h.sample_images(1)
    png = h.png_bytes(gray)
    detector = EnsembleDetector(project["out"] / "model", device="cpu")
    expected = [
        {
            "label": d.label,
            "class_id": d.class_id,
            "confidence": round(d.confidence, 6),
            "box": [round(v, 2) for v in d.box],
        }
        for d in detector.predict(read_xray_bytes(png), conf=CONF)[0]
    ]
    assert expected

    monkeypatch.setenv("MLFLOW_TRACKING_URI", project["uri"])
    mlflow.set_tracking_uri(project["uri"])
    model = mlflow.pyfunc.load_model("models:/yolo12n-ensemble@development")
    answer = model.predict([png], params={"conf": CONF})
    assert list(answer.columns) == ["findings", "width", "height"] and answer["findings"][0] == expected

    settings = ServeSettings(
        model="models:/yolo12n-ensemble@development",
        tracking_uri=project["uri"],
        device="cpu",
        job_dir=str(tmp_path / "jobs"),
        conf=CONF,
    )
    with TestClient(create_app(settings)) as http:
        health = http.get("/health").json()
        assert health["model"] == {"name": "yolo12n-ensemble", "version": "1"}
        body = http.post("/predict", files={"file": (name, png, "image/png")}).json()
    served = [{**f, "confidence": round(f["confidence"], 5)} for f in body["findings"]]
    assert served == [{**f, "confidence": round(f["confidence"], 5)} for f in expected]
    assert "fusion" in body["timings_ms"]


def read_xray_bytes(data: bytes):
    from xray_exp.imaging import decode_xray_bytes

    return decode_xray_bytes(data)


# ---- bad input: refused before any work, naming the problem ------------------------------------------------


def parse(project, specs, **kwargs):
    from xray_exp.ensembles.members import parse_specs

    return parse_specs(
        [str(s) for s in specs],
        kwargs.pop("weights", None),
        kwargs.pop("allow_missing", False),
        None,
        project["root"] / "cache",
    )


def test_a_failed_fold_is_refused_unless_allow_missing(project, tmp_path):
    cv = write_cv(tmp_path / "cv-failed", project["data_yaml"], project["members"], ["FINISHED", "FAILED", "MISSING"])
    with pytest.raises(ConfigError, match=r"fold 1 FAILED, fold 2 MISSING.*allow_missing=true"):
        parse(project, [cv])
    members, cvs, notes = parse(project, [cv], allow_missing=True)
    assert [m.fold for m in members] == [0] and "left out fold 1 FAILED" in notes[0]


def test_members_with_different_classes_or_sizes(project, tmp_path):
    from xray_exp.ensembles.members import read_onnx_facts

    other = perturbed_copy(project["members"][0], tmp_path / "other.onnx", 0, names=["a", "b"])
    members, _, _ = parse(project, [project["members"][0], other])
    with pytest.raises(ConfigError, match=r"different classes: fold0 .*other \['a', 'b'\]"):
        read_onnx_facts(members)
    members, _, _ = parse(project, [project["members"][0], project["members"][1]], weights=[2, 1])
    assert read_onnx_facts(members) == [] and [m.weight for m in members] == [2.0, 1.0]
    with pytest.raises(ConfigError, match="2 values for 1 members"):
        parse(project, [project["cv"]], weights=[1, 2])


def test_cli_refuses_before_work_and_leaves_nothing(project):
    root = project["root"] / "refusals"
    proc = run_cli(["xray_exp.ensemble", f"models=[{project['members'][0]}]", "tune=true", "tracking=disabled"], root)
    assert proc.returncode == 2 and "every member must be a CV folder" in proc.stderr, proc.stderr[-2000:]
    assert not (root / "outputs" / "ensemble").exists() or not any((root / "outputs" / "ensemble").iterdir())
    with pytest.raises(ConfigError, match="does not exist"):
        parse(project, [project["root"] / "nowhere"])


def test_run_folder_and_registry_members(project, tmp_path, monkeypatch):
    """A run folder gives weights/best.onnx and its MLflow run id; a models:/ URI the registered model.onnx."""
    from mlflow import MlflowClient

    from xray_exp.ensembles.members import parse_specs, read_onnx_facts
    from xray_exp.mlops.client import ensure_experiment
    from xray_exp.mlops.pyfunc_model import log_onnx_model
    from xray_exp.mlops.registry import register_model

    monkeypatch.setenv("XRAY_EXP_MODEL_CACHE", str(tmp_path / "cache"))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    run = client.create_run(ensure_experiment(client, "YOLO12-Training"))
    pt, onnx = h.demo_model()
    model_uri = log_onnx_model(
        uri,
        run.info.run_id,
        {"onnx": str(onnx), "pt": str(pt), "imgsz": h.IMGSZ, "names": dict(enumerate(project["names"]))},
    )
    register_model(
        client,
        model_uri,
        run.info.run_id,
        {
            "name": "yolo12n",
            "alias": "development",
            "policy": "always",
            "objective": "val/map40",
            "value": 0.1,
            "direction": "maximize",
            "tags": {},
        },
    )
    run_dir = shutil.copytree(project["members"][1].parent.parent, tmp_path / "run-a")  # a run folder of train
    (run_dir / "summary.json").write_text(json.dumps({"mlflow_run_id": "abc123", "model": "yolo12n"}))
    members, cvs, _ = parse_specs([str(run_dir), "models:/yolo12n@development"], None, False, uri, tmp_path)
    read_onnx_facts(members)
    assert not cvs and [m.name for m in members] == ["run-a", "yolo12n-v1"]
    assert members[0].onnx == run_dir / "weights" / "best.onnx" and members[0].run_id == "abc123"
    assert members[1].uri == "models:/yolo12n/1" and members[1].onnx.name == "model.onnx"
    assert members[1].names == project["names"] and members[1].imgsz == h.IMGSZ


def test_two_cvs_each_pool_image_predicted_by_its_out_of_fold_model_per_cv(project, tmp_path):
    """models=[cv_a, cv_b]: every pool image gets the fold model of each CV that did not train on it; the CVs'
    weights are tuned."""
    from xray_exp.ensembles.fusion import FusionSettings, tta_views
    from xray_exp.ensembles.members import read_onnx_facts
    from xray_exp.ensembles.predict import write_model_folder
    from xray_exp.ensembles.tune import oof_predictions, tune_fusion
    from xray_exp.evaluation.pipeline import MetricSettings

    other = write_cv(tmp_path / "cv-b", project["data_yaml"], project["members"][::-1])  # another fold order
    members, cvs, _ = parse(project, [project["cv"], other], weights=[1, 2])
    read_onnx_facts(members)
    detector = EnsembleDetector(
        write_model_folder(members, FusionSettings(), tta_views(False), tmp_path / "m"), device="cpu"
    )
    raw = oof_predictions(detector, cvs, members, conf=0.001)
    folds = {row["image"]: int(row["fold"]) for row in csv.DictReader((project["cv"] / "folds.csv").open())}
    assert len(raw.gts) == 12
    for gt, used in zip(raw.gts, raw.members, strict=True):
        fold = folds[gt["image_id"]]
        assert [(members[k].group, members[k].fold) for k in used] == [(0, fold), (1, fold)]
    tuned = tune_fusion(raw, detector, cvs, members, MetricSettings(n_boot=0, progress=False), n_trials=3)
    assert tuned.n_trials == 3 and tuned.value >= tuned.default_value
    assert len(set(tuned.member_weights[:3])) == 1 and len(set(tuned.member_weights[3:])) == 1  # one per CV


def test_predict_takes_an_ensemble_folder(project, tmp_path):
    """`python -m xray_exp.predict model=<ensemble folder>` answers exactly as the folder's EnsembleDetector."""
    folder = project["out"] / "model"
    image = load_split(project["data_yaml"], "test").images[0]
    out = tmp_path / "predict"
    run_cli(
        [
            "xray_exp.predict",
            f"model={folder}",
            f"source={image.path}",
            f"out_dir={out}",
            "conf=0.05",
            "progress=false",
        ],
        project["root"],
        check=True,
    )
    rows = [r for r in csv.DictReader((out / "predictions.csv").open()) if r["label"]]
    detections, _ = EnsembleDetector(folder, device="cpu").predict(read_xray(image.path), conf=0.05)
    assert len(rows) == len(detections) > 0
    for row, det in zip(rows, detections, strict=True):
        assert row["label"] == det.label and abs(float(row["confidence"]) - det.confidence) < 1e-4
