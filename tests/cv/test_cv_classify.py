"""`--multirun sweep=cv task=classify`: 2 smoke folds of normal/abnormal classifiers on the fold plan, their
out-of-fold P(abnormal) (one row per pool image), OOF image-level metrics checked against scikit-learn, per-fold
mean/std, the fold classifiers' ONNX files as gates (ONNX Runtime against the OOF probabilities)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli

NAME = "yolo12n-cls-synthetic-k2-s0"  # the task's suffix keeps it apart from a detection CV of the same model
CV = [
    "--multirun",
    "sweep=cv",
    "cv.folds=2",
    "task=classify",
    "debug=smoke",
    "train.imgsz=64",
    "dataset.synthetic.normal_fraction=0.5",
    "post.samples=0",
    "post.n_boot=20",
    "post.progress=false",
    "post.eval_splits=[val]",
    "tracking=disabled",
]

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cls_cv(tmp_path_factory):
    root = tmp_path_factory.mktemp("cls-cv")
    proc = run_cli(["xray_exp.train", *CV], root, check=True)
    cv_dir = root / "outputs" / "cv" / NAME
    with open(cv_dir / "oof_predictions.csv") as f:
        oof = list(csv.DictReader(f))
    with open(cv_dir / "folds.csv") as f:
        plan = {row["image"]: row for row in csv.DictReader(f)}
    return {
        "root": root,
        "cv_dir": cv_dir,
        "stdout": proc.stdout,
        "record": json.loads((cv_dir / "cv.json").read_text()),
        "metrics": json.loads((cv_dir / "cv_metrics.json").read_text()),
        "oof": oof,
        "plan": plan,
    }


def fold_val_rows(run: dict) -> dict[str, dict]:
    """The fold's own post-training scoring of its validation split (xray_exp.evaluation.classifier)."""
    with open(Path(run["run_dir"]) / "report-val" / "probabilities.csv") as f:
        return {row["image_id"]: row for row in csv.DictReader(f)}


def test_each_fold_trains_a_classifier_on_its_plan(cls_cv):
    import yaml

    record = cls_cv["record"]
    assert (record["task"], record["model"], record["name"], record["folds"]) == ("classify", "yolo12n-cls", NAME, 2)
    assert [r["status"] for r in record["fold_runs"]] == ["FINISHED", "FINISHED"]
    for run in record["fold_runs"]:
        assert run["onnx"] == str(Path(run["run_dir"]) / "weights" / "best.onnx") and Path(run["onnx"]).is_file()
        kept = yaml.safe_load((Path(run["run_dir"]) / "config.resolved.yaml").read_text())
        assert kept["task"]["name"] == "classify" and kept["dataset"]["data_yaml"] == run["data_yaml"]
        summary = json.loads((Path(run["run_dir"]) / "summary.json").read_text())
        assert summary["objective"]["metric"] == "val/auroc" and summary["onnx_parity"]["passed"]
        # fold f validates on exactly its own images of the plan
        assert {i for i, r in cls_cv["plan"].items() if int(r["fold"]) == run["fold"]} == set(fold_val_rows(run))


def test_oof_has_one_row_per_pool_image_from_its_own_fold(cls_cv):
    rows, plan = cls_cv["oof"], cls_cv["plan"]
    assert list(rows[0]) == ["image", "patient", "fold", "label", "p_abnormal"]
    assert sorted(r["image"] for r in rows) == sorted(plan)  # every pool image once, no test image
    runs = {r["fold"]: r for r in cls_cv["record"]["fold_runs"]}
    for row in rows:
        assert (row["fold"], row["patient"]) == (plan[row["image"]]["fold"], plan[row["image"]]["patient"])
        own = fold_val_rows(runs[int(row["fold"])])[row["image"]]  # the fold model's own scoring of that image
        assert row["label"] == ("abnormal" if own["abnormal"] == "1" else "normal")
        assert float(row["p_abnormal"]) == pytest.approx(float(own["p_abnormal"]), abs=2e-6)
    labels = {r["label"] for r in rows}
    assert labels == {"abnormal", "normal"}


def test_oof_metrics_match_scikit_learn_and_fold_spread(cls_cv):
    from sklearn.metrics import brier_score_loss, roc_auc_score

    metrics, rows = cls_cv["metrics"], cls_cv["oof"]
    y = np.array([r["label"] == "abnormal" for r in rows])
    p = np.array([float(r["p_abnormal"]) for r in rows])
    oof = metrics["oof"]
    assert oof["auroc"] == pytest.approx(roc_auc_score(y, p), abs=1e-9)
    assert oof["brier"] == pytest.approx(brier_score_loss(y, p), abs=1e-7)
    assert oof["sensitivity"] == pytest.approx(np.mean(p[y] >= 0.5))
    assert oof["specificity"] == pytest.approx(np.mean(p[~y] < 0.5))
    assert (oof["images"], oof["normal_images"]) == (len(rows), int((~y).sum()))
    for m in ("auroc", "brier"):
        assert oof[f"{m}_ci_low"] <= oof[m] + 1e-12 and oof[m] <= oof[f"{m}_ci_high"] + 1e-12
    assert metrics["metrics"][:4] == ["val/auroc", "val/sensitivity", "val/specificity", "val/brier"]
    for name in ("val/auroc", "val/brier"):
        values = [row[name] for row in metrics["per_fold"]]
        kept = [
            json.loads((Path(r["run_dir"]) / "summary.json").read_text())["metrics"][name]
            for r in cls_cv["record"]["fold_runs"]
        ]
        assert values == pytest.approx(kept)
        assert metrics["mean"][name] == pytest.approx(np.mean(values))
        assert metrics["std"][name] == pytest.approx(np.std(values, ddof=1), abs=1e-12)
    report = (cls_cv["cv_dir"] / "report.md").read_text()
    assert "task=classify" in report and "| brier |" in report and "### Calibration (OOF)" in report
    assert (cls_cv["cv_dir"] / "plots" / "oof_roc.png").is_file()
    assert (cls_cv["cv_dir"] / "plots" / "oof_reliability.png").is_file()
    assert "OOF auroc" in cls_cv["stdout"] and "OOF brier" in cls_cv["stdout"]
    from xray_exp.analysis import cv  # the notebooks' table of CVs lists it as a classifier CV

    found = cv.find_cvs(cls_cv["root"])
    assert list(found["task"]) == ["classify"] and found["oof_auroc"].iloc[0] == pytest.approx(oof["auroc"])


def test_fold_classifiers_serve_as_gates(cls_cv):
    """Each fold's ONNX file from cv.json, run as the gate runs it (inference.onnx_classifier, torch-free), gives the
    OOF probability of its validation images within the export parity tolerance."""
    from xray_exp.imaging import read_xray
    from xray_exp.inference.onnx_classifier import OnnxClassifier
    from xray_exp.yolo.classify import PARITY_ATOL_PIPELINE

    oof = {r["image"]: float(r["p_abnormal"]) for r in cls_cv["oof"]}
    for run in cls_cv["record"]["fold_runs"]:
        rows = fold_val_rows(run)
        gate = OnnxClassifier(run["onnx"], device="cpu")
        probs = gate.predict_batch([read_xray(rows[i]["path"]) for i in rows])
        assert gate.imgsz == cls_cv["record"]["imgsz"] == 64
        assert np.abs(probs - np.array([oof[i] for i in rows])).max() <= PARITY_ATOL_PIPELINE


def test_a_classifier_cv_is_no_ensemble_and_its_settings_are_kept(cls_cv, monkeypatch):
    """xray_exp.ensemble refuses it naming the gate; the same folder trained as detectors is refused too."""
    from hydra import compose, initialize_config_dir

    from xray_exp import CONF_DIR
    from xray_exp.config.store import register_configs
    from xray_exp.ensembles.members import read_cv
    from xray_exp.errors import ConfigError
    from xray_exp.sweep.cv_sweep import _changed_settings, not_registered_note

    with pytest.raises(ConfigError, match="fold classifiers are gates"):
        read_cv(cls_cv["cv_dir"], 0, 1.0, allow_missing=False)
    register_configs()
    monkeypatch.setenv("XRAY_EXP_ROOT", str(cls_cv["root"]))
    overrides = [o for o in CV[1:] if o != "task=classify"]
    with initialize_config_dir(config_dir=str(CONF_DIR)):
        as_detector = compose(config_name="train", overrides=[*overrides, "cv.fold=0"])
        as_classifier = compose(config_name="train", overrides=[*overrides, "cv.fold=0", "task=classify"])
    assert "task.name: classify -> detect" in _changed_settings(cls_cv["cv_dir"], as_detector)
    assert _changed_settings(cls_cv["cv_dir"], as_classifier) == []
    saved = cls_cv["cv_dir"] / "fold0" / "config.resolved.yaml"
    before = saved.read_text()
    try:  # a fold trained before `task.suffix` existed: the suffix names the folder, it is no training setting
        saved.write_text(before.replace("  suffix: -cls\n", ""))
        assert saved.read_text() != before and _changed_settings(cls_cv["cv_dir"], as_classifier) == []
    finally:
        saved.write_text(before)
    assert "a fold classifier is a gate as it is" in not_registered_note(as_classifier)  # the runs' MLflow tag
    assert "the ensemble of the folds registers" in not_registered_note(as_detector)


def test_a_pool_without_normal_images_says_so():
    """OOF metrics of a pool without normal images: "n/a (no normal images ...)" for AUROC and specificity."""
    from types import SimpleNamespace

    from xray_exp.cv.classify_oof import OofProbabilities, score_probabilities
    from xray_exp.cv.finish import cv_summary_text

    oof = OofProbabilities(["a", "b", "c"], [0.2, 0.7, 0.9], [True, True, True], {"a": 0, "b": 1, "c": 1})
    metrics, _ = score_probabilities(oof, {}, SimpleNamespace(n_boot=10, ci_seed=0, ci_level=0.95), threshold=0.5)
    assert metrics["sensitivity"] == pytest.approx(2 / 3) and np.isnan(metrics["auroc"])
    text = cv_summary_text(
        {
            "name": "x",
            "task": "classify",
            "folds": 2,
            "finished_folds": [0, 1],
            "per_fold": [],
            "mean": {},
            "std": {},
            "oof": metrics,
            "oof_images": 3,
        }
    )
    assert "OOF auroc       n/a (no normal images" in text and "OOF specificity n/a (no normal images" in text
    assert "OOF sensitivity 0.6667" in text


def test_bench_times_a_fold_classifier_as_the_gate(cls_cv, tmp_path, capsys):
    """`python -m xray_exp.bench inference --gate-only` on a detector and a fold classifier: the pair side by side
    through the service's ONNX classes, the classifier at its own (smaller) size."""
    try:
        from serve_fixtures import helpers as h
    except ImportError:  # pragma: no cover
        from tests.serve_fixtures import helpers as h
    from xray_exp.bench import inference

    detector, classifier = h.demo_model()[1], cls_cv["record"]["fold_runs"][0]["onnx"]
    args = ["--gate-only", "--detector-onnx", str(detector), "--classifier-onnx", classifier]
    assert (
        inference.main([*args, "--rounds", "1", "--gate-iters", "2", "--images", "2", "--out-dir", str(tmp_path)]) == 0
    )
    (path,) = tmp_path.glob("inference-*.json")
    gate = json.loads(path.read_text())["results"]["gate"]
    assert (gate["detector_imgsz"], gate["classifier_imgsz"]) == (h.IMGSZ, 64)
    c = gate["candidates"]
    alone, pair = "detector alone", "detector + gate"
    assert set(c) == {alone, pair, "classifier alone", f"{alone}, no spinning", f"{pair}, no spinning"}
    assert all(v["n"] == 2 for v in c.values())
    low, high = gate["probabilities_seen"]  # the classifier ran inside the pair, on every call
    assert 0 <= low <= high <= 1 and gate["gate_ms_inside_gated_p50"] > 0
    assert gate["ratios"]["gated_over_alone_p50"] == pytest.approx(c[pair]["p50_ms"] / c[alone]["p50_ms"])
    assert gate["ratios"]["no_spinning_gated_over_alone_p99"] == pytest.approx(
        c[f"{pair}, no spinning"]["p99_ms"] / c[f"{alone}, no spinning"]["p99_ms"]
    )
    out = capsys.readouterr().out
    assert "detector + gate / detector alone: p50 x" in out and "| detector + gate" in out


def test_pooling_keeps_each_image_with_its_probability(tmp_path):
    """Varied probabilities (the smoke folds' are nearly constant): two folds' cached passes pooled, written and
    scored, each image keeping its own P and fold; the metrics against scikit-learn, patients as the unit."""
    from types import SimpleNamespace

    from sklearn.metrics import roc_auc_score

    from xray_exp.cv.classify_oof import pooled_probabilities, score_probabilities, write_probabilities_csv
    from xray_exp.cv.oof import oof_cache_key

    truth = {"a": (0.91, True), "b": (0.15, False), "c": (0.62, False), "d": (0.40, True), "e": (0.05, False)}
    folds = {0: ["c", "a"], 1: ["e", "b", "d"]}
    runs = []
    for fold, images in folds.items():
        weights = tmp_path / f"w{fold}.pt"
        weights.write_bytes(b"x" * (fold + 1))
        (tmp_path / "oof").mkdir(exist_ok=True)
        cache = {"key": oof_cache_key(str(weights)), "images": images}
        cache |= {"probs": [truth[i][0] for i in images], "abnormal": [truth[i][1] for i in images]}
        (tmp_path / "oof" / f"fold{fold}.json").write_text(json.dumps(cache))
        runs.append({"fold": fold, "weights": str(weights)})
    oof = pooled_probabilities({"cv_dir": str(tmp_path), "fold_runs": runs}, [1, 0])
    patients = {"a": "p1", "b": "p1", "c": "p2", "d": "p3", "e": "p4"}
    with open(write_probabilities_csv(oof, patients, tmp_path / "oof.csv")) as f:
        rows = {r["image"]: r for r in csv.DictReader(f)}
    for image, (p, abnormal) in truth.items():
        row = rows[image]
        assert float(row["p_abnormal"]) == pytest.approx(p) and row["patient"] == patients[image]
        assert int(row["fold"]) == next(f for f, images in folds.items() if image in images)
        assert row["label"] == ("abnormal" if abnormal else "normal")
    settings = SimpleNamespace(n_boot=200, ci_seed=0, ci_level=0.95)
    metrics, result = score_probabilities(oof, patients, settings, threshold=0.5)
    y = [truth[i][1] for i in oof.images]
    assert metrics["auroc"] == pytest.approx(roc_auc_score(y, [truth[i][0] for i in oof.images]))
    assert metrics["sensitivity"] == pytest.approx(0.5) and metrics["specificity"] == pytest.approx(2 / 3)
    assert metrics["auroc_ci_low"] <= metrics["auroc"] <= metrics["auroc_ci_high"]
    assert result.image_ids == oof.images == ["e", "b", "d", "c", "a"]
