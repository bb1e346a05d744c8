"""`python -m xray_exp.predict` over a mixed folder: PNG, JPEG, DICOM (clean, messy, extension-less, CT), a broken
file; the CSV against the detector run directly, resume after a kill, SRs, the exit status, a typo, .pt models.

The model is the service tests' demo YOLO12n (random weights, BatchNorm calibrated on NIH images; built once
and cached): its findings mean nothing, but they are deterministic, and at conf 0.9 some images have findings
and some have none.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import cv2
import pytest
from conftest import run_cli
from dicom_corpus import nih_pixels
from pydicom.data import get_testdata_file
from serve_fixtures.helpers import demo_model

from xray_exp.data.synthetic_dicom import chest_xray_dicom
from xray_exp.errors import DatasetError, ModelError
from xray_exp.imaging import read_xray
from xray_exp.inference.predictor import load_predictor
from xray_exp.inference.sources import find_inputs
from xray_exp.sr import read_sr_findings

CONF, MAX_DET = 0.9, 5
ARGS = [f"conf={CONF}", f"max_det={MAX_DET}", "progress=false"]


@pytest.fixture(scope="module")
def model() -> tuple[Path, Path]:
    return demo_model()


@pytest.fixture(scope="module")
def mixed(tmp_path_factory) -> Path:
    """7 readable inputs (3 PNG, 1 JPEG, 3 DICOM: one holding nih-1.png's pixels) and one broken file."""
    root = tmp_path_factory.mktemp("mixed")
    (root / "dicom").mkdir()
    for i in (0, 1, 6):
        cv2.imwrite(str(root / f"nih-{i}.png"), nih_pixels(i, size=256)[1])
    cv2.imwrite(str(root / "nih-2.jpg"), nih_pixels(2, size=256)[1])
    chest_xray_dicom(nih_pixels(1, size=256)[1], header="messy").save_as(
        str(root / "dicom" / "messy.dcm"), enforce_file_format=True
    )
    chest_xray_dicom(nih_pixels(7, size=256)[1], header="complete").save_as(
        str(root / "dicom" / "IM0001"), enforce_file_format=True
    )
    shutil.copy(get_testdata_file("CT_small.dcm"), root / "dicom" / "ct.dcm")
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (root / "notes.txt").write_text("not an image")
    return root


def flat(boxes) -> list[float]:
    return [v for box in boxes for v in box]


def read_csv(path: Path) -> list[dict]:
    with path.open() as f:
        return list(csv.DictReader(f))


def test_mixed_folder_then_resume(mixed, model, tmp_path):
    out = tmp_path / "out"
    args = [
        "xray_exp.predict",
        f"model={model[1]}",
        f"source={mixed}",
        f"out_dir={out}",
        "sr=true",
        "save_images=true",
        *ARGS,
    ]
    proc = run_cli(args, tmp_path, timeout=300, check=True)
    assert "7 of 8 images predicted" in proc.stdout and "unreadable: " in proc.stdout and "broken.png" in proc.stdout
    rows = read_csv(out / "predictions.csv")
    body = json.loads((out / "predictions.json").read_text())
    names = sorted({r["image"] for r in rows})
    assert names == sorted(
        ["nih-0.png", "nih-1.png", "nih-6.png", "nih-2.jpg", "dicom/messy.dcm", "dicom/IM0001", "dicom/ct.dcm"]
    )
    assert [u["image"] for u in body["unreadable"]] == ["broken.png"]
    # the CSV is the detector's output on the same pixels, in original pixels (cross-check in this process)
    predictor = load_predictor(str(model[1]), conf=CONF, max_det=MAX_DET)
    empty = 0
    for name in names:
        expected = predictor.predict(read_xray(mixed / name))
        got = [r for r in rows if r["image"] == name]
        if not expected:
            empty += 1
            assert got == [{"image": name, "label": "", "confidence": "", "x1": "", "y1": "", "x2": "", "y2": ""}]
            continue
        assert [r["label"] for r in got] == [d.label for d in expected]
        for row, det in zip(got, expected, strict=True):
            assert [float(row[k]) for k in ("x1", "y1", "x2", "y2")] == pytest.approx(det.box, abs=0.006)
            assert float(row["confidence"]) == pytest.approx(det.confidence, abs=1e-6)
    assert 0 < empty < len(names), "the fixture must mix images with and without findings"
    # the same pixels as PNG and as DICOM give the same findings
    same = [[(r["label"], r["x1"], r["y2"]) for r in rows if r["image"] == n] for n in ("nih-1.png", "dicom/messy.dcm")]
    assert same[0] == same[1] and same[0][0][0]
    assert body["summary"]["without_findings"] == empty and body["model"]["version"].startswith("sha256:")
    assert sorted(p.name for p in (out / "images").iterdir()) == sorted(
        n.replace("/", "__").rsplit(".", 1)[0] + ".png" for n in names
    )
    # one SR per DICOM input, holding that image's boxes
    assert sorted(p.name for p in (out / "sr").iterdir()) == ["dicom__IM0001.dcm", "dicom__ct.dcm", "dicom__messy.dcm"]
    with_findings = 0
    for name in ("dicom/messy.dcm", "dicom/IM0001", "dicom/ct.dcm"):
        stem = name.replace("/", "__").rsplit(".", 1)[0] if name.endswith(".dcm") else name.replace("/", "__")
        back = read_sr_findings(out / "sr" / f"{stem}.dcm")
        csv_boxes = [[float(r[k]) for k in ("x1", "y1", "x2", "y2")] for r in rows if r["image"] == name and r["label"]]
        assert flat(f["box"] for f in back["findings"]) == pytest.approx(flat(csv_boxes), abs=0.006)
        with_findings += bool(csv_boxes)
        assert back["summary"].endswith("with findings" if csv_boxes else "without findings")
    assert with_findings >= 1, "at least one DICOM input must have findings"

    # resume: a second run predicts nothing again (only the unreadable file is retried)
    journal = out / "predictions.jsonl"
    lines = journal.read_text().splitlines()
    proc = run_cli(args, tmp_path, timeout=300, check=True)
    assert "resuming: 7 of 8 images already predicted" in proc.stdout
    assert len(journal.read_text().splitlines()) == len(lines) + 1
    # a run killed after four inputs (broken.png, then three DICOMs), one annotated PNG lost: the two complete
    # images are skipped, the third gets its PNG from the journal's findings, the rest is predicted
    assert [json.loads(line)["image"] for line in lines[:4]] == [
        "broken.png",
        "dicom/IM0001",
        "dicom/ct.dcm",
        "dicom/messy.dcm",
    ]
    journal.write_text("\n".join(lines[:4]) + "\n")
    (out / "images" / "dicom__ct.png").unlink()
    proc = run_cli(args, tmp_path, timeout=300, check=True)
    assert "resuming: 2 of 8 images already predicted" in proc.stdout
    assert (out / "images" / "dicom__ct.png").is_file()
    assert read_csv(out / "predictions.csv") == rows


def test_nothing_readable_is_an_error(tmp_path, model):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.png").write_bytes(b"garbage")
    (tmp_path / "in" / "b.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00")
    proc = run_cli(
        [
            "xray_exp.predict",
            f"model={model[1]}",
            f"source={tmp_path / 'in'}",
            f"out_dir={tmp_path / 'out'}",
            "progress=false",
        ],
        tmp_path,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert "none of the 2 inputs could be read" in proc.stderr
    assert len(json.loads((tmp_path / "out" / "predictions.json").read_text())["unreadable"]) == 2


def test_cfg_job_imports_nothing_heavy(tmp_path):
    import re

    args = ["xray_exp.predict", "model=best.onnx", "source=/data", "sr=true", "--cfg", "job"]
    proc = run_cli(args, tmp_path, env={"PYTHONPROFILEIMPORTTIME": "1"}, check=True)
    imported = {m.group(1).split(".")[0] for m in re.finditer(r"\|\s+(\S+)$", proc.stderr, re.M)}
    assert not imported & {"torch", "ultralytics", "ray", "mlflow", "onnxruntime", "highdicom"}
    assert "sr: true" in proc.stdout and "credentials_file: null" in proc.stdout


def test_a_typo_names_the_key(tmp_path):
    proc = run_cli(["xray_exp.predict", "model=x.onnx", "source=.", "confs=0.3"], tmp_path, timeout=60)
    assert proc.returncode == 2 and "did you mean conf" in proc.stderr


def test_bad_models_say_what_to_pass(tmp_path):
    with pytest.raises(ModelError, match="does not exist. Fix: pass a .onnx/.pt file, a run folder"):
        load_predictor(str(tmp_path / "nope.onnx"))
    (tmp_path / "empty-run").mkdir()
    with pytest.raises(ModelError, match="holds none of model.onnx, best.onnx, weights/best.onnx"):
        load_predictor(str(tmp_path / "empty-run"))
    (tmp_path / "notes.onnx").write_text("not a model")
    with pytest.raises(ModelError, match="not a loadable YOLO detection ONNX model"):
        load_predictor(str(tmp_path / "notes.onnx"))


def test_pt_is_exported_once_and_agrees_with_its_onnx(model, tmp_path):
    """A .pt goes through the Ultralytics export (cached by digest); its detections equal the exported ONNX's."""
    pt, onnx = model
    with pytest.raises(ModelError, match="imgsz="):  # the demo checkpoint does not record its training size
        load_predictor(str(pt), cache_dir=tmp_path / "cache", output_dir=tmp_path)
    from_pt = load_predictor(
        str(pt), conf=CONF, max_det=MAX_DET, cache_dir=tmp_path / "cache", output_dir=tmp_path, imgsz=160
    )
    exported = list((tmp_path / "cache" / "predict-onnx").glob("*/best.onnx"))
    assert len(exported) == 1 and from_pt.path == exported[0]
    again = load_predictor(str(pt), cache_dir=tmp_path / "cache", output_dir=tmp_path, imgsz=160)
    assert again.path == exported[0] and again.identity == from_pt.identity
    from_onnx = load_predictor(str(onnx), conf=CONF, max_det=MAX_DET)
    for i in (1, 2):
        gray = nih_pixels(i, size=256)[1]
        a, b = from_pt.predict(gray), from_onnx.predict(gray)
        assert [d.label for d in a] == [d.label for d in b]
        for x, y in zip(a, b, strict=True):
            assert x.box == pytest.approx(y.box, abs=0.05)


def test_run_folder_and_sources(model, tmp_path, mixed):
    run = tmp_path / "yolo12n-20250101-000000"
    (run / "weights").mkdir(parents=True)
    shutil.copy(model[1], run / "weights" / "best.onnx")
    predictor = load_predictor(str(run))
    assert predictor.identity.name == run.name and predictor.path == run / "weights" / "best.onnx"
    assert [i.name for i in find_inputs(str(mixed / "dicom" / "*.dcm"))] == ["ct.dcm", "messy.dcm"]
    assert [i.name for i in find_inputs(str(mixed / "**" / "*.png"))] == [
        "broken.png",
        "nih-0.png",
        "nih-1.png",
        "nih-6.png",
    ]
    listing = tmp_path / "batch.txt"
    listing.write_text(f"# two images\n{mixed / 'nih-0.png'}\n\n{mixed / 'dicom' / 'IM0001'}  # no extension\n")
    assert [i.path for i in find_inputs(str(listing))] == [mixed / "nih-0.png", mixed / "dicom" / "IM0001"]
    with pytest.raises(DatasetError, match="no such file"):
        find_inputs(str(tmp_path / "missing"))
    with pytest.raises(DatasetError, match="no PNG, JPEG or DICOM"):
        find_inputs(str(tmp_path / "*.jpeg"))


def test_registry_model(model, tmp_path):
    """models:/<name>@<alias> and models:/<name>/<version>: the registered model.onnx, named by name and version."""
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    run = client.create_run(client.create_experiment("predict-tests", (tmp_path / "artifacts").as_uri()))
    folder = tmp_path / "model" / "artifacts"  # the layout xray_exp logs (mlops/pyfunc_model.py): artifacts/*
    folder.mkdir(parents=True)
    shutil.copy(model[1], folder / "model.onnx")
    shutil.copy(model[0], folder / "best.pt")
    client.log_artifacts(run.info.run_id, str(tmp_path / "model"), "model")
    client.create_registered_model("yolo12n")
    client.create_model_version("yolo12n", f"runs:/{run.info.run_id}/model", run.info.run_id)
    client.set_registered_model_alias("yolo12n", "development", "1")
    client.set_terminated(run.info.run_id)
    by_alias = load_predictor(
        "models:/yolo12n@development", conf=CONF, max_det=MAX_DET, tracking_uri=uri, cache_dir=tmp_path / "cache"
    )
    by_version = load_predictor("models:/yolo12n/1", tracking_uri=uri, cache_dir=tmp_path / "cache")
    assert (by_alias.identity.name, by_alias.identity.version, by_alias.source) == ("yolo12n", "1", "registry")
    assert by_version.identity == by_alias.identity and by_alias.path.name == "model.onnx"
    gray = nih_pixels(1, size=256)[1]
    direct = load_predictor(str(model[1]), conf=CONF, max_det=MAX_DET).predict(gray)
    assert [d.box for d in by_alias.predict(gray)] == [d.box for d in direct]
    with pytest.raises(ModelError, match="no model version yolo12n@champion"):
        load_predictor("models:/yolo12n@champion", tracking_uri=uri, cache_dir=tmp_path / "cache")
