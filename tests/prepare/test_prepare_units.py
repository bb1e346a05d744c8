"""Unit tests (milliseconds) for data preparation: boxes, fusion, splits, CSV importers.

.venv/bin/pytest tests/prepare/test_prepare_units.py -q
"""

from __future__ import annotations

import functools
import random
from collections import Counter
from pathlib import Path

import pytest

from xray_exp.prepare.boxes import clip_box, from_yolo_line, resized_shape, scale_box, to_yolo_line
from xray_exp.prepare.config import CONF_DIR, SourceDatasetConfig, compose_prepare_config
from xray_exp.prepare.fusion import fuse_boxes
from xray_exp.prepare.records import IssueLog, PrepareError
from xray_exp.prepare.sources.nih import load_nih, parse_bbox_csv
from xray_exp.prepare.sources.vindr import load_vindr, parse_vindr_csv
from xray_exp.prepare.split import SplitItem, assign_splits


@functools.cache
def dataset_config(name: str) -> SourceDatasetConfig:
    return compose_prepare_config([f"dataset={name}", "source=/src", "out_dir=/out"]).dataset


# ---------------------------------------------------------------- boxes


def test_clip_box_inside_partial_and_outside():
    assert clip_box((10, 20, 30, 40), 100, 50) == ((10, 20, 30, 40), False)
    assert clip_box((-5, 10, 120, 60), 100, 50) == ((0, 10, 100, 50), True)
    assert clip_box((110, 10, 130, 20), 100, 50) == (None, True)
    assert clip_box((10, -30, 20, 0), 100, 50) == (None, True)  # touches the edge only: no area left


def test_resized_shape_downscales_longest_side_only():
    assert resized_shape(3000, 2400, 1024) == (1024, 819)
    assert resized_shape(2400, 3000, 1024) == (819, 1024)
    assert resized_shape(800, 600, 1024) == (800, 600)  # never upscales
    assert resized_shape(3000, 2400, None) == (3000, 2400)


def test_scaled_box_keeps_its_yolo_label():
    box, (w, h) = (300.0, 600.0, 900.0, 1500.0), (3000, 2400)
    out_w, out_h = resized_shape(w, h, 1024)
    scaled = scale_box(box, out_w / w, out_h / h)
    assert scaled[0] == pytest.approx(102.4) and scaled[3] == pytest.approx(1500 * 819 / 2400)
    assert to_yolo_line(3, box, w, h).split()[1:3] == to_yolo_line(3, scaled, out_w, out_h).split()[1:3]
    c, back = from_yolo_line(to_yolo_line(3, scaled, out_w, out_h), out_w, out_h)
    assert c == 3 and back == pytest.approx(scaled, abs=1e-3)


# ---------------------------------------------------------------- fusion

THREE = ("R1", "R2", "R3")


def test_wbf_fuses_agreeing_readers_into_their_mean_box():
    boxes = [
        (3, (100, 100, 200, 200), "R1"),
        (3, (110, 100, 210, 200), "R2"),
        (3, (105, 110, 205, 210), "R3"),
    ]
    fused = fuse_boxes(boxes, THREE, 1000, 1000, "wbf", iou_thr=0.4)
    assert len(fused) == 1
    c, box, score = fused[0]
    assert c == 3 and box == pytest.approx((105, 103.33, 205, 203.33), abs=0.02) and score == pytest.approx(1)


def test_wbf_keeps_classes_and_distant_boxes_apart_and_scores_reader_share():
    boxes = [
        (3, (100, 100, 200, 200), "R1"),
        (3, (105, 100, 205, 200), "R2"),
        (5, (100, 100, 200, 200), "R3"),
        (3, (600, 600, 700, 700), "R3"),
    ]
    fused = fuse_boxes(boxes, THREE, 1000, 1000, "wbf", iou_thr=0.4)
    assert [(c, round(s, 2)) for c, _, s in fused] == [(3, 0.67), (3, 0.33), (5, 0.33)]
    majority = fuse_boxes(boxes, THREE, 1000, 1000, "wbf", iou_thr=0.4, skip_box_thr=0.5)
    assert [(c, round(s, 2)) for c, _, s in majority] == [(3, 0.67)]


def test_nms_keeps_one_box_per_overlapping_cluster_and_class():
    boxes = [
        (3, (100, 100, 200, 200), "R1"),
        (3, (102, 100, 202, 200), "R2"),
        (5, (100, 100, 200, 200), "R2"),
        (3, (500, 500, 600, 600), "R3"),
    ]
    fused = fuse_boxes(boxes, THREE, 1000, 1000, "nms", iou_thr=0.5)
    assert sorted(c for c, _, _ in fused) == [3, 3, 5]
    assert sum(1 for c, box, _ in fused if c == 3 and box[0] < 300) == 1


def test_none_and_single_reader_keep_every_box():
    boxes = [(3, (100, 100, 200, 200), "R1"), (3, (101, 100, 201, 200), "R2")]
    assert len(fuse_boxes(boxes, THREE, 1000, 1000, "none")) == 2
    one_reader = [(3, (100, 100, 200, 200), ""), (3, (101, 100, 201, 200), "")]
    assert len(fuse_boxes(one_reader, ("",), 1000, 1000, "wbf")) == 2


# ---------------------------------------------------------------- splits


def _items(n_images=1200, n_patients=500, seed=1):
    rng = random.Random(seed)
    return [
        SplitItem(
            f"img{i}",
            f"pat{rng.randrange(n_patients)}",
            frozenset(rng.sample(range(14), rng.choice([0, 0, 1, 1, 2, 3]))),
        )
        for i in range(n_images)
    ]


RATIOS = {"train": 0.7, "val": 0.15, "test": 0.15}


def test_split_is_patient_level_and_covers_every_image():
    items = _items()
    assignment = assign_splits(items, RATIOS, seed=0)
    assert set(assignment) == {it.image_id for it in items}
    splits_of_patient: dict[str, set] = {}
    for it in items:
        splits_of_patient.setdefault(it.group, set()).add(assignment[it.image_id])
    assert all(len(s) == 1 for s in splits_of_patient.values())
    assert any(sum(1 for it in items if it.group == g) > 1 for g in splits_of_patient)  # leakage was possible


def test_split_follows_ratios_overall_and_per_class():
    items = _items()
    assignment = assign_splits(items, RATIOS, seed=0)
    counts = Counter(assignment.values())
    for split, ratio in RATIOS.items():
        assert counts[split] / len(items) == pytest.approx(ratio, abs=0.03)
    for label in range(14):
        per = Counter(assignment[it.image_id] for it in items if label in it.labels)
        assert per["train"] / sum(per.values()) == pytest.approx(0.7, abs=0.08), (label, per)
        assert per["val"] > 0 and per["test"] > 0, (label, per)


def test_split_is_deterministic_per_seed():
    items = _items()
    assert assign_splits(items, RATIOS, seed=3) == assign_splits(list(items), RATIOS, seed=3)
    assert assign_splits(items, RATIOS, seed=3) != assign_splits(items, RATIOS, seed=4)


def test_split_tiny_dataset_fills_every_split_and_zero_ratio_drops_one():
    items = _items(n_images=6, n_patients=6)
    assert set(assign_splits(items, RATIOS, seed=0).values()) == {"train", "val", "test"}
    assert set(assign_splits(_items(), {"train": 0.8, "val": 0.2, "test": 0}, seed=0).values()) == {
        "train",
        "val",
    }


# ---------------------------------------------------------------- VinDr CSV

VINDR_CSV = """image_id,class_name,class_id,rad_id,x_min,y_min,x_max,y_max
a,Cardiomegaly,3,R1,10,20,110,120
a,cardiomegaly,3,R2,12,20,112,120
a,No finding,14,R3,,,,
b,No finding,14,R1,,,,
b,No finding,14,R2,,,,
c,Alien lesion,99,R1,10,10,20,20
d,Nodule/Mass,8,R1,10,10,10,50
e,Nodule/Mass,8,R1,10,10,abc,50
f,Pleural effusion,10,R1,50,10,40,50
g,Pleural effusion,10,R1,1,2,30,40
"""


def _vindr_source(tmp_path: Path, csv_text: str = VINDR_CSV, files=("a", "b", "c", "g")) -> Path:
    (tmp_path / "train").mkdir()
    (tmp_path / "train.csv").write_text(csv_text)
    for image_id in files:
        (tmp_path / "train" / f"{image_id}.dicom").write_bytes(b"")
    return tmp_path


def test_vindr_csv_rows_become_boxes_readers_and_issues(tmp_path):
    log = IssueLog()
    listings = parse_vindr_csv(_vindr_source(tmp_path) / "train.csv", dataset_config("vindr_cxr"), log)
    assert [(b.class_id, b.reader) for b in listings["a"].boxes] == [(3, "R1"), (3, "R2")]
    assert listings["a"].readers == {"R1", "R2", "R3"}
    assert listings["b"].boxes == [] and listings["b"].normal_rows == 2
    assert log.counts() == {"unknown_class": 1, "bad_box": 2, "zero_area": 1}
    messages = " ".join(str(i) for i in log.issues)
    assert "train.csv line 7" in messages and "'Alien lesion'" in messages and "x_max='abc'" in messages


def test_vindr_records_background_missing_and_unusable(tmp_path):
    log = IssueLog()
    records = load_vindr(_vindr_source(tmp_path), dataset_config("vindr_cxr"), log, seed=0)
    by_id = {r.image_id: r for r in records}
    assert sorted(by_id) == ["a", "b", "g"]
    assert by_id["b"].boxes == () and by_id["a"].readers == ("R1", "R2", "R3")
    assert by_id["g"].readers == ("R1",)
    assert log.notes["images_without_usable_boxes"] == 4  # c, d, e, f: findings, but no valid box
    assert "missing_image" not in log.counts()  # d, e, f have no file, but are not used anyway


def test_vindr_missing_file_is_an_issue_and_dcm_is_accepted(tmp_path):
    source = _vindr_source(tmp_path, files=("b",))
    (source / "train" / "a.dcm").write_bytes(b"")
    log = IssueLog()
    records = load_vindr(source, dataset_config("vindr_cxr"), log, seed=0)
    assert {r.image_id: Path(r.path).suffix for r in records} == {"a": ".dcm", "b": ".dicom"}
    assert [i.image_id for i in log.issues if i.kind == "missing_image"] == ["g"]


def test_vindr_strict_fails_naming_file_line_and_field(tmp_path):
    with pytest.raises(PrepareError, match=r"strict: unknown_class: train\.csv line 7: class_name 'Alien lesion'"):
        parse_vindr_csv(_vindr_source(tmp_path) / "train.csv", dataset_config("vindr_cxr"), IssueLog(strict=True))


def test_vindr_missing_column_is_a_clear_error(tmp_path):
    source = _vindr_source(tmp_path, csv_text="image_id,class_name,x_min,y_min,x_max\na,Nodule/Mass,1,2,3\n")
    with pytest.raises(PrepareError, match=r"missing column\(s\) \['y_max'\]"):
        load_vindr(source, dataset_config("vindr_cxr"), IssueLog(), seed=0)


# ---------------------------------------------------------------- NIH CSVs

NIH_BBOX = """Image Index,Finding Label,Bbox [x,y,w,h],,,
00000001_000.png,Cardiomegaly,100.5,200,300,150
00000001_000.png,Effusion,600,500,200,100,,,
00000002_000.png,Infiltrate,10,20,30,40
00000003_000.png,Hernia,10,20,30,40
00000004_000.png,Mass,10,20,0,40
00000005_000.png,Nodule,10,20
"""
NIH_ENTRY = """Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,\
OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y],
00000001_000.png,Cardiomegaly|Effusion|Emphysema,0,1,58,M,PA,2682,2749,0.143,0.143
00000002_000.png,Infiltration,0,2,58,M,PA,2682,2749,0.143,0.143
00000003_000.png,Hernia,0,3,58,M,PA,2682,2749,0.143,0.143
00000006_000.png,No Finding,0,6,58,M,PA,2682,2749,0.143,0.143
00000006_001.png,No Finding,1,6,58,M,PA,2682,2749,0.143,0.143
00000007_000.png,Atelectasis,0,7,58,M,PA,2682,2749,0.143,0.143
00000009_000.png,No Finding,0,9,58,M,PA,2682,2749,0.143,0.143
"""


def _nih_source(tmp_path: Path) -> Path:
    (tmp_path / "images_001" / "images").mkdir(parents=True)
    (tmp_path / "BBox_List_2017.csv").write_text(NIH_BBOX)
    (tmp_path / "Data_Entry_2017.csv").write_text(NIH_ENTRY)
    for name in (
        "00000001_000",
        "00000003_000",
        "00000006_000",
        "00000006_001",
        "00000007_000",
        "00000008_000",
    ):
        (tmp_path / "images_001" / "images" / f"{name}.png").write_bytes(b"")
    return tmp_path


def test_nih_bbox_csv_trailing_columns_xywh_and_issues(tmp_path):
    log = IssueLog()
    listings = parse_bbox_csv(_nih_source(tmp_path) / "BBox_List_2017.csv", dataset_config("nih_cxr14"), log)
    a = listings["00000001_000"].boxes
    assert [(b.class_id, b.x1, b.y1, b.x2, b.y2) for b in a] == [
        (1, 100.5, 200, 400.5, 350),
        (2, 600, 500, 800, 600),
    ]
    assert listings["00000002_000"].boxes[0].class_id == 3
    assert log.counts() == {"unknown_class": 1, "zero_area": 1, "malformed_row": 1}
    assert "BBox_List_2017.csv line 7: expected 6 fields" in " ".join(map(str, log.issues))


def test_nih_records_negatives_patients_and_notes(tmp_path):
    log = IssueLog()
    records = load_nih(_nih_source(tmp_path), dataset_config("nih_cxr14"), log, seed=0)
    assert {r.image_id: (r.patient_id, len(r.boxes)) for r in records} == {
        "00000001_000": ("1", 2),
        "00000006_000": ("6", 0),
        "00000006_001": ("6", 0),
    }
    # 00000002_000: boxed, not downloaded -> an issue naming it; 00000004_000 (zero-area box only) is not used
    assert [(i.kind, i.image_id) for i in log.issues if i.kind == "missing_image"] == [
        ("missing_image", "00000002_000")
    ]
    assert log.notes["unboxed_findings"] == 1  # 00000007_000: Atelectasis without a box: not a negative
    assert log.notes["unlisted_image_files"] == 1  # 00000008_000: in no CSV
    assert log.notes["boxed_with_unboxed_findings"] == 1  # 00000001_000 also has Emphysema
    assert log.notes["images_without_usable_boxes"] == 2  # 00000003_000: Hernia only; 00000004_000: zero area
    assert "duplicate_rows" not in log.notes
    (tmp_path / "BBox_List_2017.csv").write_text("".join(NIH_BBOX.splitlines(keepends=True)[:4]))  # no bad rows
    with pytest.raises(PrepareError, match=r"strict: missing_image: BBox_List_2017\.csv lists 00000002_000"):
        load_nih(tmp_path, dataset_config("nih_cxr14"), IssueLog(strict=True), seed=0)


def test_exact_duplicate_rows_are_dropped_and_counted(tmp_path):
    lines = NIH_BBOX.splitlines(keepends=True)
    (tmp_path / "nih").mkdir()
    nih = _nih_source(tmp_path / "nih")
    (nih / "BBox_List_2017.csv").write_text("".join([*lines, lines[1], lines[1], lines[3]]))
    log = IssueLog()
    listings = parse_bbox_csv(nih / "BBox_List_2017.csv", dataset_config("nih_cxr14"), log)
    assert [b.class_id for b in listings["00000001_000"].boxes] == [1, 2]  # Cardiomegaly once, not three times
    assert len(listings["00000002_000"].boxes) == 1 and log.notes["duplicate_rows"] == 3
    near = lines[1].replace("100.5", "100.6")  # not an exact repeat: kept
    (nih / "BBox_List_2017.csv").write_text("".join([*lines, near]))
    log = IssueLog()
    assert len(parse_bbox_csv(nih / "BBox_List_2017.csv", dataset_config("nih_cxr14"), log)["00000001_000"].boxes) == 3
    assert "duplicate_rows" not in log.notes

    rows = VINDR_CSV.splitlines(keepends=True)
    (tmp_path / "vindr").mkdir()
    source = _vindr_source(tmp_path / "vindr", csv_text="".join([*rows, rows[1], rows[4]]))
    log = IssueLog()
    listings = parse_vindr_csv(source / "train.csv", dataset_config("vindr_cxr"), log)
    assert [(b.class_id, b.reader) for b in listings["a"].boxes] == [(3, "R1"), (3, "R2")]
    assert listings["b"].normal_rows == 2 and log.notes["duplicate_rows"] == 2


def test_prepare_schema_rejects_typos_and_bad_types():
    with pytest.raises(Exception, match="fusion.iou"):
        compose_prepare_config(["dataset=nih_cxr14", "source=/s", "out_dir=/o", "fusion.iou=0.3"])
    with pytest.raises(Exception, match="workers"):
        compose_prepare_config(["dataset=nih_cxr14", "source=/s", "out_dir=/o", "workers=many"])
    with pytest.raises(Exception, match="fusion.method=avg"):
        compose_prepare_config(["dataset=vindr_cxr", "source=/s", "out_dir=/o", "fusion.method=avg"])
    assert (CONF_DIR / "dataset" / "vindr_cxr.yaml").is_file()
