"""Integration tests (seconds) for `xray_exp.prepare` on synthetic VinDr-style DICOMs: 12- and 16-bit,
MONOCHROME1/2, 3 readers per image, a corrupt and a missing file, boxes partly and fully outside.

    .venv/bin/pytest tests/prepare/test_prepare_pipeline.py -q
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from xray_exp.prepare import pipeline
from xray_exp.prepare.boxes import from_yolo_line
from xray_exp.prepare.config import compose_prepare_config
from xray_exp.prepare.fake_sources import VINDR_CLASSES, make_vindr_source
from xray_exp.prepare.pipeline import run_prepare
from xray_exp.prepare.records import PrepareError

pytestmark = pytest.mark.integration

SIZE = (256, 320)  # width, height of the synthetic DICOMs
LONGEST = 160  # resized to 128 x 160


def config(source: Path, out_dir: Path, *overrides: str):
    return compose_prepare_config(
        [
            "dataset=vindr_cxr",
            f"source={source}",
            f"out_dir={out_dir}",
            f"longest_side={LONGEST}",
            "progress=false",
            "split.train=0.6",
            "split.val=0.2",
            "split.test=0.2",
            *overrides,
        ]
    )


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """14 images: 1 corrupt, 1 missing; image 0 gets a box partly and one fully outside the image."""
    info = make_vindr_source(tmp_path_factory.mktemp("vindr"), images=14, size=SIZE, corrupt=1, missing=1)
    first = next(i for i in info.image_ids if info.findings[i])
    extra = next(c for c in range(14) if c not in {f[0] for f in info.findings[first]})
    with open(info.root / "train.csv", "a", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([first, VINDR_CLASSES[extra], extra, "R1", -40, 10, 60, 90])  # clipped to x 0..60
        writer.writerow([first, VINDR_CLASSES[extra], extra, "R1", 300, 400, 350, 450])  # fully outside
    info.extra = (first, extra)
    return info


@pytest.fixture(scope="module")
def prepared(source, tmp_path_factory):
    out = tmp_path_factory.mktemp("prepared")
    return out, run_prepare(config(source.root, out, "workers=2"))


def _labels(out: Path) -> dict[str, tuple[str, str]]:
    return {p.stem: (p.parent.name, p.read_text()) for p in sorted(out.glob("labels/*/*.txt"))}


def test_report_counts_every_problem_and_writes_the_rest(source, prepared):
    out, report = prepared
    written = len(source.image_ids) - 2
    assert report["images"]["written"] == report["images"]["converted_now"] == written
    assert report["issues"]["counts"] == {"missing_image": 1, "corrupt_image": 1, "box_outside": 1}
    messages = {i["kind"]: i["message"] for i in report["issues"]["list"]}
    assert source.missing_ids[0] in messages["missing_image"] and "train.csv" in messages["missing_image"]
    assert f"{source.corrupt_ids[0]}.dicom" in messages["corrupt_image"]
    assert report["boxes"]["clipped"] == 1
    assert report["dicom"]["photometric"].keys() == {"MONOCHROME1", "MONOCHROME2"}
    assert report["dicom"]["bits_stored"].keys() == {"12", "16"}
    assert json.loads((out / "prepare_report.json").read_text())["issues"]["total"] == 3
    assert sum(s["images"] for s in report["splits"].values()) == written


def test_data_yaml_is_what_yolo_expects(prepared):
    out, _ = prepared
    data = yaml.safe_load((out / "data.yaml").read_text())
    assert data == {
        "path": str(out.resolve()),
        "train": "images/train",
        "val": "images/val",
        "test": "images/test",
        "names": dict(enumerate(VINDR_CLASSES)),
    }
    for split in ("train", "val", "test"):
        images = sorted(p.stem for p in (out / "images" / split).glob("*.png"))
        assert images and images == sorted(p.stem for p in (out / "labels" / split).glob("*.txt"))


def test_images_are_resized_8bit_gray_and_findings_are_bright_in_every_format(source, prepared):
    out, _ = prepared
    checked = set()
    for image_id, (split, _) in _labels(out).items():
        image = cv2.imread(str(out / "images" / split / f"{image_id}.png"), cv2.IMREAD_UNCHANGED)
        assert image.dtype == np.uint8 and image.shape == (LONGEST, LONGEST * SIZE[0] // SIZE[1])
        scale = LONGEST / SIZE[1]
        for _, (x1, y1, x2, y2) in source.findings[image_id]:
            cx, cy = int((x1 + x2) / 2 * scale), int((y1 + y2) / 2 * scale)
            assert image[cy - 2 : cy + 3, cx - 2 : cx + 3].mean() > image.mean() + 60, image_id
            checked.add(source.formats[image_id])
    assert checked == {(12, "MONOCHROME1"), (12, "MONOCHROME2"), (16, "MONOCHROME1"), (16, "MONOCHROME2")}


def _iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def test_three_readers_fuse_into_one_box_per_finding_and_normals_are_background(source, prepared):
    out, _ = prepared
    labels = _labels(out)
    first, extra = source.extra
    for image_id, (_, text) in labels.items():
        boxes = [from_yolo_line(line, *SIZE) for line in text.splitlines()]  # back in source pixels
        expected = list(source.findings[image_id])
        if image_id == first:
            expected.append((extra, (0, 10, 60, 90)))
        assert len(boxes) == len(expected), image_id
        for class_id, box in expected:
            assert any(c == class_id and _iou(b, box) > 0.85 for c, b in boxes), (image_id, class_id, boxes)
    assert {i for i, (_, text) in labels.items() if not text} == set(source.normal_ids) & set(labels)


def test_manifest_is_patient_level_with_dicom_patient_ids(source, prepared):
    out, _ = prepared
    rows = list(csv.DictReader((out / "manifest.csv").open()))
    assert len(rows) == len(source.image_ids) - 2
    split_of: dict[str, set] = {}
    for row in rows:
        assert row["patient_id"] == source.patients[row["image_id"]]
        split_of.setdefault(row["patient_id"], set()).add(row["split"])
    assert all(len(s) == 1 for s in split_of.values())
    assert any(sum(r["patient_id"] == p for r in rows) > 1 for p in split_of)  # two-image patients exist


def test_summary_files_describe_the_dataset(prepared):
    out, report = prepared
    summary = json.loads((out / "summary.json").read_text())
    assert summary["images"] == report["images"]["written"]
    boxes = sum(sum(s["boxes_per_class"].values()) for s in summary["splits"].values())
    assert boxes == report["boxes"]["written"] == summary["box_size"]["count"]
    for name in ("summary.png", "examples.png"):
        image = cv2.imread(str(out / name))
        assert image is not None and image.shape[0] > 200


def test_interrupted_run_resumes_and_skips_finished_images(source, prepared, tmp_path, monkeypatch):
    full_out, full = prepared
    real, calls = pipeline.convert_image, []

    def interrupted(task):
        calls.append(task.image_id)
        if len(calls) == 5:
            raise KeyboardInterrupt  # Ctrl-C during the fifth image
        return real(task)

    monkeypatch.setattr(pipeline, "convert_image", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_prepare(config(source.root, tmp_path, "workers=1"))
    monkeypatch.setattr(pipeline, "convert_image", real)
    assert not (tmp_path / "data.yaml").exists()
    finished = [p for p in tmp_path.glob("labels/*/*.txt")]
    assert len(finished) == 4
    # a write cut short and a stray image from before the interruption
    (tmp_path / "images" / "train" / ".x.png.123.tmp").write_bytes(b"partial")
    (tmp_path / "images" / "val" / "stray.png").write_bytes(b"stray")

    report = run_prepare(config(source.root, tmp_path, "workers=2"))
    assert report["images"]["already_done"] == 4
    assert report["images"]["converted_now"] == full["images"]["written"] - 4
    assert not list(tmp_path.glob("images/*/.x.png*")) and not list(tmp_path.glob("images/*/stray.png"))
    assert _labels(tmp_path) == _labels(full_out)
    assert report["issues"]["counts"] == full["issues"]["counts"]


def test_rerun_is_idempotent_split_change_moves_and_resize_change_rebuilds(source, tmp_path):
    quick = ("workers=1", "summary.enabled=false")
    first = run_prepare(config(source.root, tmp_path, *quick))
    stamps = {p: p.stat().st_mtime_ns for p in tmp_path.glob("images/*/*.png")}
    again = run_prepare(config(source.root, tmp_path, *quick))
    assert again["images"]["converted_now"] == 0 and again["images"]["already_done"] == first["images"]["written"]
    assert {p: p.stat().st_mtime_ns for p in tmp_path.glob("images/*/*.png")} == stamps

    before = _labels(tmp_path)
    reseeded = run_prepare(config(source.root, tmp_path, *quick, "split.seed=7"))
    after = _labels(tmp_path)
    assert reseeded["images"]["converted_now"] == 0
    assert {k: v[1] for k, v in after.items()} == {k: v[1] for k, v in before.items()}
    assert any(after[k][0] != before[k][0] for k in after)  # some images changed split, none redone

    resized = run_prepare(config(source.root, tmp_path, *quick, "longest_side=128"))
    assert resized["images"]["converted_now"] == first["images"]["written"]


def test_strict_fails_on_the_first_problem_naming_the_file(source, tmp_path):
    with pytest.raises(PrepareError, match=rf"strict: missing_image: .*{source.missing_ids[0]}"):
        run_prepare(config(source.root, tmp_path / "a", "strict=true"))
    corrupt_only = make_vindr_source(tmp_path / "src", images=4, size=(64, 80), corrupt=1, normal_fraction=0)
    with pytest.raises(PrepareError, match=rf"strict: corrupt_image: .*{corrupt_only.corrupt_ids[0]}\.dicom"):
        run_prepare(config(corrupt_only.root, tmp_path / "b", "strict=true", "workers=2"))
    assert not (tmp_path / "b" / "data.yaml").exists()


def test_nms_and_none_fusion_keep_more_boxes_than_readers_agree_on(source, tmp_path, prepared):
    _, wbf = prepared
    none = run_prepare(
        config(source.root, tmp_path / "none", "fusion.method=none", "workers=1", "summary.enabled=false")
    )
    nms = run_prepare(
        config(
            source.root,
            tmp_path / "nms",
            "fusion.method=nms",
            "fusion.iou_thr=0.5",
            "workers=1",
            "summary.enabled=false",
        )
    )
    assert none["boxes"]["written"] == none["boxes"]["source_boxes"] - 1  # all but the one outside
    assert nms["boxes"]["written"] == wbf["boxes"]["written"] < none["boxes"]["written"]
