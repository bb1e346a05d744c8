"""`python -m xray_exp.ensemble cv=... gate=models:/<cls>@development`: the gate on the fused boxes, its
thresholds tuned on out-of-fold val images and saved on the classifier's version, the paired verdict of
gated vs plain ensemble, the one registered `<model>-ensemble-gated` answering through the pyfunc, the
service's loader and `xray_exp.predict`; the saved thresholds read back; bad input refused first.

    .venv/bin/pytest tests/ensembles/test_gated_ensemble.py -q

The fold models and CV folder: tests/ensemble_cv.py; the classifier is a hand-made ONNX model (P(abnormal)
rises with the image's mean grey level), registered the way xray_exp logs models (artifacts/model.onnx).
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli
from ensemble_cv import tiny_classifier, tiny_cv

from xray_exp import CONF_DIR
from xray_exp.errors import ConfigError
from xray_exp.evaluation.dataset import load_split
from xray_exp.imaging import read_xray

pytestmark = pytest.mark.integration
CONF = 0.01  # random-init fold models: a low threshold gives the images findings to gate
CLS = "models:/tiny-cls@development"


def register_classifier(root: Path, onnx: Path, uri: str) -> None:
    """tiny-cls v1 @development, laid out as xray_exp logs a classifier (artifacts/model.onnx, best.pt)."""
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    run = client.create_run(client.create_experiment("cls", (root / "artifacts").as_uri()))
    folder = root / "cls-model" / "artifacts"
    folder.mkdir(parents=True)
    shutil.copy(onnx, folder / "model.onnx")
    shutil.copy(onnx, folder / "best.pt")  # never read by the gate (ONNX Runtime runs model.onnx)
    client.log_artifacts(run.info.run_id, str(folder.parent), "model")
    client.create_registered_model("tiny-cls")
    client.create_model_version("tiny-cls", f"runs:/{run.info.run_id}/model", run.info.run_id)
    client.set_registered_model_alias("tiny-cls", "development", "1")
    client.set_terminated(run.info.run_id)


@pytest.fixture(scope="module")
def gated(tmp_path_factory, synthetic_tiny):
    """One gated ensemble run, in this process (the command line's own path is run by the refusal test)."""
    from xray_exp.ensembles.run import run_ensemble

    root = tmp_path_factory.mktemp("gated-ensemble")
    tiny = tiny_cv(root, synthetic_tiny)
    images = [i.path for s in ("val", "test") for i in load_split(tiny["data_yaml"], s).images]
    uri = f"sqlite:///{root / 'outputs' / 'mlflow.db'}"
    (root / "outputs").mkdir(exist_ok=True)
    register_classifier(root, tiny_classifier(root / "cls.onnx", images), uri)
    project = {**tiny, "root": root, "uri": uri, "out": root / "outputs" / "ensemble" / "gated"}
    cfg = compose_ensemble(project, f"gate={CLS}", "gate.tune=true", "n_boot=50", f"out_dir={project['out']}")
    cfg.tracking.enabled, cfg.register = True, "if_better"  # logged and registered (the first version)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        run_ensemble(cfg)
    return {**project, "stdout": printed.getvalue()}


def test_gate_tuned_on_out_of_fold_val_images_and_saved_on_the_classifier(gated):
    from mlflow import MlflowClient

    from xray_exp.ensembles.gate import ensemble_digest

    out, stdout = gated["out"], gated["stdout"]
    gate = json.loads((out / "model" / "gate.json").read_text())
    assert gate["tuned_on"] == "4 out-of-fold val images (oof/map40)" and len(gate["tuning"]) > 10
    assert gate["classifier_uri"] == "models:/tiny-cls/1" and gate["tuned_for"] == "yolo12n-ensemble"
    shown = f"low {gate['low']:g}, high {gate['high']:g}, mode multiply"
    assert f"gate applied: classifier model.onnx (imgsz 64): {shown}, tuned on {gate['tuned_on']}" in stdout
    assert "tuned thresholds saved on tiny-cls v1" in stdout
    tags = MlflowClient(gated["uri"]).get_model_version("tiny-cls", "1").tags
    assert (float(tags["gate.low"]), float(tags["gate.high"]), tags["gate.mode"]) == (
        gate["low"],
        gate["high"],
        "multiply",
    )
    assert tags["gate.tuned_for"] == "yolo12n-ensemble" and tags["gate.objective"].startswith("oof/map40 on 4")
    assert tags["gate.tuned_for_digest"] == ensemble_digest(out / "model" / "detector")
    report = (out / "report.md").read_text()
    assert f"| gate | applied: classifier model.onnx (imgsz 64): {shown}" in report
    assert "## The gate:" in report and (out / "comparison-gate" / "report.md").is_file()


def test_paired_verdict_gated_against_plain_on_the_same_images(gated):
    out, stdout = gated["out"], gated["stdout"]
    summary = json.loads((out / "ensemble_summary.json").read_text())
    metrics = json.loads((out / "metrics.json").read_text())
    first = summary["gate_verdicts"][0]
    assert re.fullmatch(r"(gated ensemble|ensemble) better on map40: .+|no significant difference on map40: .+", first)
    assert f"gated ensemble vs ensemble (same images):\n{first}" in stdout
    compared = summary["gate_comparison"]
    assert (compared["a"]["name"], compared["b"]["name"]) == ("ensemble", "gated ensemble")
    for metric in ("map40", "froc_mean"):
        diff = next(d for d in compared["differences"] if d["metric"] == metric)
        assert diff["b"] == pytest.approx(metrics[f"test/{metric}"], abs=1e-9)  # B: the gated model as scored
        assert diff["a"] == pytest.approx(summary["ensemble_metrics"][f"test/{metric}"], abs=1e-9)
    counts = [metrics[f"test/gate_{a}"] for a in ("dropped", "multiplied", "kept")]
    assert sum(counts) == metrics["test/images"] == 4
    assert summary["name"] == "yolo12n-ensemble-gated" and summary["gate"]["low"] <= summary["gate"]["high"]


def by_hand(folder: Path):
    """The gated ensemble by hand: the plain ensemble's boxes, P(abnormal), the low/high rule of gate.json.
    Returns f(gray, conf) -> (the gated (class, score) pairs, the plain scores, P)."""
    from xray_exp.ensembles.detector import EnsembleDetector
    from xray_exp.inference.gated_onnx_detector import GatedOnnxDetector
    from xray_exp.inference.onnx_classifier import OnnxClassifier

    gate = json.loads((folder / "gate.json").read_text())
    ensemble = EnsembleDetector(folder / "detector", device="cpu")
    classifier = OnnxClassifier(folder / "classifier.onnx", device="cpu")
    threaded = GatedOnnxDetector(folder, device="cpu", threads=1)  # XRAY_SERVE_THREADS reaches both sessions
    assert threaded.classifier.session.get_session_options().intra_op_num_threads == 1

    def expected(gray, conf: float) -> tuple[list[tuple[int, float]], list[float], float]:
        detections, _ = ensemble.predict(gray, conf=conf)
        p = classifier.abnormal_probability(gray)
        if p < gate["low"]:
            kept = []
        elif p < gate["high"]:
            kept = [(d.class_id, d.confidence * p) for d in detections if d.confidence * p >= conf]
        else:
            kept = [(d.class_id, d.confidence) for d in detections]
        return sorted(kept), sorted(d.confidence for d in detections), p

    return expected


def test_registered_once_and_answers_through_pyfunc_service_and_predict(gated, tmp_path, monkeypatch):
    import mlflow
    from mlflow import MlflowClient

    from xray_exp.inference.predictor import load_predictor
    from xray_exp.serve.model_source import load_detector

    uri, spec = gated["uri"], "models:/yolo12n-ensemble-gated@development"
    assert "registry: registered yolo12n-ensemble-gated v1 @development" in gated["stdout"]
    version = MlflowClient(uri).get_model_version_by_alias("yolo12n-ensemble-gated", "development")
    assert version.tags["gate.classifier"] == "models:/tiny-cls/1" and version.tags["ensemble.members"] == "3"
    assert (
        version.tags["ensemble.gate_verdict"]
        == json.loads((gated["out"] / "ensemble_summary.json").read_text())["gate_verdicts"][0]
    )
    monkeypatch.setenv("XRAY_EXP_MODEL_CACHE", str(tmp_path / "cache"))
    mlflow.set_tracking_uri(uri)
    model = mlflow.pyfunc.load_model(spec)
    served, info = load_detector(spec, tracking_uri=uri, device="cpu")
    predictor = load_predictor(spec, conf=CONF, device="cpu", tracking_uri=uri, cache_dir=tmp_path / "c2")
    assert type(served).__name__ == type(predictor.detector).__name__ == "GatedOnnxDetector"
    assert (info.name, info.version) == ("yolo12n-ensemble-gated", "1")
    ungated, changed, expected_of = 0, 0, by_hand(gated["out"] / "model")
    for image in load_split(gated["data_yaml"], "test").images:
        gray = read_xray(image.path)
        expected, plain, p = expected_of(gray, CONF)
        row = model.predict([str(image.path)], params={"conf": CONF}).iloc[0]
        assert row["abnormal"] == pytest.approx(p, abs=1e-6)
        got = sorted((f["class_id"], f["confidence"]) for f in row["findings"])
        assert [c for c, _ in got] == [c for c, _ in expected]
        np.testing.assert_allclose([s for _, s in got], [s for _, s in expected], atol=1e-5)
        for answer in (served.predict(gray, conf=CONF)[0], predictor.predict(gray)):
            assert sorted(d.confidence for d in answer) == pytest.approx(sorted(s for _, s in expected), abs=1e-5)
        ungated += len(plain)
        changed += sorted(s for _, s in expected) != pytest.approx(plain, abs=1e-6)
    assert ungated > 0 and changed > 0  # the plain ensemble finds boxes and the gate acts on them


def compose_ensemble(gated, *overrides: str):
    from hydra import compose, initialize_config_dir

    from xray_exp.config.argv_aliases import alias_tune_override
    from xray_exp.config.store import register_configs

    register_configs()  # the ensemble's schema, as `python -m xray_exp.ensemble` registers it

    with initialize_config_dir(config_dir=str(CONF_DIR)):
        return compose(
            "ensemble",
            overrides=alias_tune_override(
                [
                    *([] if any(o.startswith("models=") for o in overrides) else [f"cv={gated['cv']}"]),
                    f"paths.root={gated['root']}",
                    f"out_dir={gated['root'] / 'again'}",  # the fixture's run gives its own
                    f"tracking.tracking_uri={gated['uri']}",
                    "tracking.enabled=false",
                    "register=never",
                    "n_boot=20",
                    "progress=false",
                    *overrides,
                ]
            ),
        )


def test_saved_thresholds_reused_for_the_same_ensemble_only(gated, capsys, monkeypatch):
    from xray_exp.ensembles.detector import EnsembleDetector
    from xray_exp.ensembles.gate import check_gate, prepare_ensemble_gate
    from xray_exp.evaluation.evaluate_command import evaluation_metric_settings
    from xray_exp.evaluation.gated import GateOrigin, registered_thresholds

    monkeypatch.setenv("XRAY_EXP_MODEL_CACHE", str(gated["root"] / "model-cache"))
    gate = json.loads((gated["out"] / "model" / "gate.json").read_text())
    cfg = compose_ensemble(gated, f"gate={CLS}")  # no low/high: the tags, for the same ensemble
    detector = EnsembleDetector(gated["out"] / "model" / "detector", device="cpu")
    images = load_split(gated["data_yaml"], "test").images
    args = (detector, "yolo12n-ensemble", images, gated["data_yaml"], evaluation_metric_settings(cfg), [], [])
    again, _ = prepare_ensemble_gate(cfg, check_gate(cfg), *args)
    assert "gate thresholds from tiny-cls v1's tags (tuned for yolo12n-ensemble on oof/map40" in capsys.readouterr().out
    assert (again.settings.low, again.settings.high) == (gate["low"], gate["high"]) != (0.1, 0.9)  # not the defaults
    assert again.tuned_on.endswith("saved on tiny-cls v1") and set(again.probs) == {i.image_id for i in images}
    other = GateOrigin(CLS, gated["uri"], "yolo12s-ensemble", "0123456789abcdef")
    settings, note, _ = registered_thresholds(cfg.gate, other, None)
    assert settings is None and "tuned for yolo12n-ensemble, not for yolo12s-ensemble: defaults" in note
    same = GateOrigin(CLS, gated["uri"], "yolo12n-ensemble", summary_digest(gated))
    cfg.gate.low = 0.2  # an explicit threshold: the tags are not read
    assert registered_thresholds(cfg.gate, same, None)[0] is None
    cfg.gate.low, cfg.gate.mode = None, "suppress"  # tuned for multiply
    assert registered_thresholds(cfg.gate, same, None)[0] is None


def summary_digest(gated) -> str:
    from xray_exp.ensembles.gate import ensemble_digest

    return ensemble_digest(gated["out"] / "model" / "detector")


def test_bad_gate_refused_before_any_work(gated):
    from xray_exp.config.overrides import unknown_key_errors
    from xray_exp.config.schema import EnsembleConfig
    from xray_exp.ensembles.run import check_inputs

    with pytest.raises(ConfigError, match=r"gate.low=0.9 > gate.high=0.2"):
        check_inputs(compose_ensemble(gated, "gate=/nowhere/cls.onnx", "gate.low=0.9", "gate.high=0.2"))
    assert any("did you mean" in e for e in unknown_key_errors(["gate.lw=0.2"], EnsembleConfig, CONF_DIR))
    root = gated["root"] / "refusals"
    proc = run_cli(["xray_exp.ensemble", f"cv={gated['cv']}", f"gate={gated['members'][0]}", "tracking=disabled"], root)
    assert proc.returncode == 2 and "not a normal/abnormal classifier (task 'detect'" in proc.stderr, proc.stderr
    assert not (root / "outputs" / "ensemble").exists() or not any((root / "outputs" / "ensemble").iterdir())


def test_without_cv_members_the_gate_tunes_on_the_val_split(gated):
    from xray_exp.ensembles.detector import EnsembleDetector
    from xray_exp.ensembles.gate import tuning_predictions

    cfg = compose_ensemble(gated, f"models=[{gated['members'][0]}]", f"gate={CLS}", "gate.tune=true")
    detector = EnsembleDetector(gated["out"] / "model" / "detector", device="cpu")
    fused, where, objective = tuning_predictions(cfg, detector, gated["data_yaml"], [], [], None, False)
    val = [i.image_id for i in load_split(gated["data_yaml"], "val").images]
    assert (where, objective) == ("4 val images", "val/map40") and [g["image_id"] for g in fused.gts] == val
