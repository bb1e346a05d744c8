"""Evaluation: flip TTA merge, YOLO split reading, CSV exports and config (unit), then evaluate_split and
the `python -m xray_exp.evaluate` command on a tiny dataset with a random-init YOLO12n (integration).

    .venv/bin/pytest tests/evaluation/test_evaluation.py -q                  # all (~30 s on 2 CPU cores)
    .venv/bin/pytest tests/evaluation/test_evaluation.py -q -m "not integration"

Ultralytics runs offline in a throw-away settings folder: tests/conftest.py calls
xray_exp.yolo.runtime.configure_offline before any test imports it.
"""

from __future__ import annotations

import csv
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from xray_exp import CONF_DIR
from xray_exp.config.argv_aliases import alias_model_override
from xray_exp.errors import DatasetError
from xray_exp.evaluation.dataset import load_split, parse_label_text, read_ground_truth
from xray_exp.evaluation.exports import prediction_string, write_submission_csv
from xray_exp.evaluation.tta import hflip_boxes, merge_flip

REPO = Path(__file__).resolve().parents[2]
NAMES = ["nodule", "effusion", "cardiomegaly"]
# image name -> boxes (class, x1, y1, x2, y2) in pixels of a 128 x 128 image; two normal images
TINY_SPLIT = {
    "p0": [(0, 20, 30, 40, 50)],
    "p1": [(1, 10, 80, 60, 120), (0, 80, 20, 100, 40)],
    "p2": [(2, 40, 40, 90, 100)],
    "p3": [(1, 70, 70, 120, 120)],
    "n0": [],
    "n1": [],
}


def test_hflip_boxes_mirrors_about_the_centre():
    np.testing.assert_allclose(hflip_boxes([[10, 20, 30, 40]], 100), [[70, 20, 90, 40]])
    np.testing.assert_allclose(hflip_boxes(hflip_boxes([[3, 4, 50, 60]], 64), 64), [[3, 4, 50, 60]])


def test_merge_flip_unflips_and_fuses_by_hand():
    width, height = 100, 80
    original = (np.array([[10, 20, 30, 40], [50, 50, 60, 60]]), np.array([0.9, 0.6]), np.array([0, 1]))
    # in the mirrored image the first lesion sits at x 68..88: un-flipped, x 12..32
    flipped = (np.array([[68, 20, 88, 40]]), np.array([0.7]), np.array([0]))
    boxes, scores, labels = merge_flip(original, flipped, width, height, iou_thr=0.55)
    order = np.argsort(labels)
    boxes, scores, labels = boxes[order], scores[order], labels[order]
    # fused lesion: score-weighted x1 = (.9 * 10 + .7 * 12) / 1.6 = 10.875, x2 = (.9 * 30 + .7 * 32) / 1.6
    np.testing.assert_allclose(boxes[0], [10.875, 20, 30.875, 40], atol=1e-4)
    # score: mean over the two views; the class-1 box was seen in one view only: .6 / 2
    np.testing.assert_allclose(scores, [0.8, 0.3], atol=1e-6)
    np.testing.assert_array_equal(labels, [0, 1])
    np.testing.assert_allclose(boxes[1], [50, 50, 60, 60], atol=1e-4)
    empty = (np.zeros((0, 4)), np.zeros(0), np.zeros(0))
    assert merge_flip(empty, empty, width, height)[0].shape == (0, 4)


def test_merge_flip_keeps_mirrored_boxes_apart_from_different_lesions():
    # the flipped view finds a lesion on the other side only: both stay, each at half score
    original = (np.array([[10, 10, 20, 20]]), np.array([0.8]), np.array([0]))
    flipped = (np.array([[10, 10, 20, 20]]), np.array([0.4]), np.array([0]))  # un-flipped: x 80..90
    boxes, scores, _ = merge_flip(original, flipped, 100, 100)
    order = np.argsort(boxes[:, 0])
    np.testing.assert_allclose(boxes[order], [[10, 10, 20, 20], [80, 10, 90, 20]], atol=1e-4)
    np.testing.assert_allclose(scores[order], [0.4, 0.2], atol=1e-6)


def test_parse_label_text():
    text = "0 0.5 0.25 0.2 0.1\n\n1 0.1 0.1 0.3 0.1 0.3 0.4 0.1 0.4\n"
    boxes, labels = parse_label_text(text, width=200, height=100)
    # xc .5 yc .25 w .2 h .1 on 200 x 100 -> x 80..120, y 20..30; the polygon -> its bounding box
    np.testing.assert_allclose(boxes, [[80, 20, 120, 30], [20, 10, 60, 40]])
    np.testing.assert_array_equal(labels, [0, 1])
    with pytest.raises(DatasetError, match="line 1"):
        parse_label_text("0 0.5 0.5 0.1\n", 10, 10)


def write_tiny_dataset(root: Path, as_list: bool = False) -> Path:
    """128 x 128 grayscale PNGs with a bright blob per box; `test` as a folder or a .txt list."""
    (root / "images" / "test").mkdir(parents=True)
    (root / "labels" / "test").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for stem, boxes in TINY_SPLIT.items():
        image = rng.integers(20, 60, (128, 128), dtype=np.uint8)
        lines = []
        for cls, x1, y1, x2, y2 in boxes:
            cv2.ellipse(image, ((x1 + x2) // 2, (y1 + y2) // 2), ((x2 - x1) // 2, (y2 - y1) // 2), 0, 0, 360, 200, -1)
            lines.append(f"{cls} {(x1 + x2) / 256} {(y1 + y2) / 256} {(x2 - x1) / 128} {(y2 - y1) / 128}")
        cv2.imwrite(str(root / "images" / "test" / f"{stem}.png"), image)
        if lines:  # normal images have no label file
            (root / "labels" / "test" / f"{stem}.txt").write_text("\n".join(lines) + "\n")
    test_entry = "images/test"
    if as_list:
        (root / "test.txt").write_text("".join(f"./images/test/{s}.png\n" for s in TINY_SPLIT))
        test_entry = "test.txt"
    names = "".join(f"  {i}: {n}\n" for i, n in enumerate(NAMES))
    (root / "data.yaml").write_text(
        f"path: .\ntrain: images/test\nval: images/test\ntest: {test_entry}\nnames:\n{names}"
    )
    return root / "data.yaml"


@pytest.mark.parametrize("as_list", [False, True])
def test_load_split_reads_folders_and_txt_lists(tmp_path, as_list):
    split = load_split(write_tiny_dataset(tmp_path, as_list), "test")
    assert split.names == NAMES
    assert sorted(i.image_id for i in split.images) == sorted(TINY_SPLIT)
    gt = read_ground_truth(next(i for i in split.images if i.image_id == "p1"), 128, 128)
    np.testing.assert_allclose(gt["boxes"], [[10, 80, 60, 120], [80, 20, 100, 40]], atol=1e-6)
    np.testing.assert_array_equal(gt["labels"], [1, 0])
    assert len(read_ground_truth(next(i for i in split.images if i.image_id == "n0"), 128, 128)["labels"]) == 0
    with pytest.raises(DatasetError, match="'extra'"):
        load_split(tmp_path / "data.yaml", "extra")


def test_patient_groups_from_the_prepare_manifest(tmp_path):
    from xray_exp.evaluation.dataset import patient_groups

    data_yaml = write_tiny_dataset(tmp_path / "data")
    ids = sorted(TINY_SPLIT)
    assert patient_groups(data_yaml, ids) is None  # no manifest.csv: the bootstrap resamples images
    rows = [f"{i},patient-{i[1]},test,,0,nih" for i in ids]  # p0/n0 share patient-0, p1/n1 patient-1
    (data_yaml.parent / "manifest.csv").write_text(
        "image_id,patient_id,split,classes,boxes,source\n" + "\n".join(rows) + "\n"
    )
    assert patient_groups(data_yaml, ["p0", "n0", "p1", "n1"]) == ["patient-0", "patient-0", "patient-1", "patient-1"]
    assert patient_groups(data_yaml, ["p0", "unknown"]) is None  # not every image listed: by image


def test_prediction_string_and_submission(tmp_path):
    # sorted by score; scores to 4 decimals, pixels to 1, trailing zeros dropped
    s = prediction_string([[10, 20, 30.25, 40], [1.04, 2, 3, 4]], [0.5, 0.91234], [3, 0])
    assert s == "0 0.9123 1 2 3 4 3 0.5 10 20 30.2 40"
    preds = [{"image_id": "a", "boxes": np.zeros((0, 4)), "scores": [], "labels": []}]
    path = write_submission_csv(preds, ["a", "b"], tmp_path / "submission.csv")
    assert path.read_text().splitlines() == ["image_id,PredictionString", "a,14 1 0 0 1 1", "b,14 1 0 0 1 1"]


def test_evaluate_config_composes_and_model_aliases_to_weights():
    from hydra import compose, initialize_config_dir

    overrides = alias_model_override(
        ["model=models:/xray@champion", "split=val", "dataset=yolo", "dataset.data_yaml=/d/data.yaml"]
    )
    with initialize_config_dir(config_dir=str(CONF_DIR)):
        cfg = compose("evaluate", overrides=overrides)
        plain = compose("evaluate")
    assert cfg.weights == "models:/xray@champion"
    assert cfg.objective == "val/map40"
    assert cfg.dataset.data_yaml == "/d/data.yaml"
    assert plain.dataset.name == "synthetic" and plain.dataset.data_yaml is None
    assert set(plain.paths) == {"root", "output_dir", "cache_dir"}
    assert {
        "conf",
        "iou",
        "imgsz",
        "tta",
        "device",
        "out_dir",
        "match_iou",
        "decision_conf",
        "map40_method",
        "froc_hit",
        "no_finding_class",
        "n_boot",
        "progress",
    } <= set(plain)
    assert plain.imgsz is None and plain.map40_method == "voc2010" and plain.n_boot == 1000
    assert alias_model_override(["model.x=1", "weights=a"]) == ["model.x=1", "weights=a"]


def test_metrics_and_command_line_import_without_torch():
    code = (
        "import sys, xray_exp.metrics, xray_exp.evaluation, xray_exp.evaluate, xray_exp.compare; "
        "print(sorted({'torch', 'ultralytics', 'sklearn', 'matplotlib'} & set(sys.modules)))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


# ---------------------------------------------------------------- integration: a real (random) model


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(data.yaml, weights .pt) of a random-init YOLO12n built for our 3 classes."""
    from ultralytics import YOLO
    from ultralytics.nn.tasks import DetectionModel

    root = tmp_path_factory.mktemp("tiny-eval")
    data_yaml = write_tiny_dataset(root / "data")
    model = YOLO("yolo12n.yaml")  # the architecture only: no weights download
    model.model = DetectionModel("yolo12n.yaml", nc=len(NAMES), verbose=False)
    model.model.names = dict(enumerate(NAMES))
    weights = root / "random-yolo12n.pt"
    model.save(weights)
    return data_yaml, weights


RATES = [
    "map40",
    "mAP50",
    "mAP50-95",
    "lesion_precision",
    "lesion_recall",
    "froc_mean",
    "froc_fp0.125",
    "froc_fp0.25",
    "froc_fp0.5",
    "froc_fp1",
    "froc_fp2",
    "froc_fp4",
    "froc_fp8",
    "auroc",
    "sensitivity",
    "specificity",
    *(f"ap40/{n}" for n in NAMES),
]
HEADLINE = ("map40", "mAP50", "mAP50-95", "froc_mean", "auroc", "sensitivity", "specificity")


def check_metrics(metrics: dict, prefix: str, ci: bool = True) -> None:
    intervals = [f"{m}_ci_{side}" for m in HEADLINE for side in ("low", "high")] if ci else []
    assert set(metrics) == {f"{prefix}/{k}" for k in [*RATES, *intervals, "images", "normal_images", "instances"]}
    for key in RATES:
        value = metrics[f"{prefix}/{key}"]
        assert math.isfinite(value) and 0.0 <= value <= 1.0, (key, value)
    for m in HEADLINE if ci else ():
        low, high = metrics[f"{prefix}/{m}_ci_low"], metrics[f"{prefix}/{m}_ci_high"]
        assert 0.0 <= low <= high <= 1.0, (m, low, high)
    assert metrics[f"{prefix}/images"] == 6
    assert metrics[f"{prefix}/normal_images"] == 2
    assert metrics[f"{prefix}/instances"] == 5


def check_report(out: Path, metrics: dict) -> None:
    report = (out / "report.md").read_text()
    for section in ("## Summary", "## Per class", "## FROC", "## Image level", "## Confusion matrix"):
        assert section in report
    for png in ("plots/pr_curves.png", "plots/froc.png", "plots/roc.png", "plots/confusion_matrix.png"):
        assert f"]({png})" in report
        image = cv2.imread(str(out / png))
        assert image is not None and image.shape[0] > 100
    assert json.loads((out / "metrics.json").read_text()) == pytest.approx(metrics)
    with (out / "submission.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert sorted(r["image_id"] for r in rows) == sorted(TINY_SPLIT)
    number = r"-?\d+(\.\d+)?"
    one = rf"\d+ {number} {number} {number} {number} {number}"
    assert all(re.fullmatch(rf"{one}( {one})*", r["PredictionString"]) for r in rows)
    with (out / "images.csv").open() as f:
        assert len(list(csv.DictReader(f))) == 6
    with (out / "predictions.csv").open() as f:
        detections = list(csv.DictReader(f))
    assert sum(
        len(r["PredictionString"].split()) // 6 for r in rows if not r["PredictionString"].startswith("14 1 0 0 1 1")
    ) == len(detections)


@pytest.mark.integration
def test_evaluate_split_with_flip_tta_writes_metrics_and_report(tiny, tmp_path):
    from xray_exp.evaluation import MetricSettings, evaluate_split

    data_yaml, weights = tiny
    out = tmp_path / "report"
    settings = MetricSettings(decision_conf=0.002, n_boot=200, progress=False)
    metrics = evaluate_split(
        str(weights),
        data_yaml,
        "test",
        imgsz=128,
        conf=0.001,
        iou=0.7,
        tta=True,
        out_dir=out,
        device="cpu",
        metrics=settings,
    )
    check_metrics(metrics, "test")
    check_report(out, metrics)
    report = (out / "report.md").read_text()
    assert "PASCAL VOC 2010 all-point" in report and "bootstrap" in report  # the definitions used
    # a random model's detections are false positives: the gallery shows the most confident ones
    assert (out / "galleries" / "false_positives.png").is_file()
    assert (out / "galleries" / "false_negatives.png").is_file()


@pytest.mark.integration
def test_evaluate_command_line(tiny, tmp_path):
    from conftest import run_cli

    data_yaml, weights = tiny
    out = tmp_path / "cli-report"
    proc = run_cli(
        [
            "xray_exp.evaluate",
            f"model={weights}",
            "dataset=yolo",
            f"dataset.data_yaml={data_yaml}",
            "imgsz=128",
            "device=cpu",
            "split=val",
            f"out_dir={out}",
            "n_boot=0",
            "progress=false",
        ],
        root=tmp_path,
        check=True,
        timeout=300,
    )
    assert "val/map40" in proc.stdout and f"REPORT={out / 'report.md'}" in proc.stdout
    assert "imgsz 128 (imgsz= given)" in proc.stdout
    assert "predict val" not in proc.stderr  # progress=false: no bar
    check_metrics(json.loads((out / "metrics.json").read_text()), "val", ci=False)
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'outputs' / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("YOLO12-Evaluation").experiment_id])
    assert run.data.metrics["val/map40"] == pytest.approx(json.loads((out / "metrics.json").read_text())["val/map40"])
    assert run.data.params["split"] == "val" and run.data.tags["weights"] == str(weights)
    logged = {a.path for a in client.list_artifacts(run.info.run_id, "report")}
    assert {"report/report.md", "report/submission.csv", "report/plots", "report/galleries"} <= logged
    unsized = run_cli(
        [
            "xray_exp.evaluate",
            f"model={weights}",
            "dataset=yolo",
            f"dataset.data_yaml={data_yaml}",
            "tracking=disabled",
        ],
        root=tmp_path,
        timeout=300,
    )  # a .pt saved without train args
    assert unsized.returncode == 2 and "does not record its training image size" in unsized.stderr
    assert "imgsz=<size>" in unsized.stderr
    missing = run_cli(
        ["xray_exp.evaluate", f"model={tmp_path / 'nope.pt'}", "dataset=yolo", f"dataset.data_yaml={data_yaml}"],
        root=tmp_path,
        timeout=300,
    )
    assert missing.returncode == 2 and "nope.pt" in missing.stderr
