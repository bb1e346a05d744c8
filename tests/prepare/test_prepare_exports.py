"""COCO / CSV / Pascal VOC importers on tiny made-up exports: PNG, JPEG and DICOM images, patients, and every
kind of bad input named with its file and row (missing image, unknown category, duplicate, non-numeric
coordinate, XML that does not parse or declares entities, box outside the image).

    .venv/bin/pytest tests/prepare/test_prepare_exports.py -q
"""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

try:
    from export_formats import Labelled, voc_xml, write_coco, write_csv, write_patients, write_voc
except ImportError:  # tests/ imported as a package
    from tests.prepare.export_formats import Labelled, voc_xml, write_coco, write_csv, write_patients, write_voc

from xray_exp.data.synthetic_dicom import chest_xray_bytes
from xray_exp.prepare.boxes import from_yolo_line
from xray_exp.prepare.config import compose_prepare_config
from xray_exp.prepare.pipeline import run_prepare
from xray_exp.prepare.records import IssueLog, PrepareError
from xray_exp.prepare.sources import load_source
from xray_exp.prepare.sources.export import image_id_for

pytestmark = pytest.mark.integration

W, H = 64, 80  # every made-up image


def config(fmt: str, source: Path, out_dir: Path | str = "/unused", *overrides: str):
    base = [f"dataset={fmt}", f"source={source}", f"out_dir={out_dir}", "progress=false", "workers=1"]
    return compose_prepare_config([*base, "longest_side=null", "split.train=0.5", "split.val=0.25", *overrides])


def load(fmt: str, source: Path, *overrides: str, strict: bool = False):
    cfg = config(fmt, source, "/unused", *overrides)
    log = IssueLog(strict=strict)
    return load_source(source, cfg.dataset, log, seed=0), log, cfg.dataset


def picture(boxes) -> np.ndarray:
    image = np.full((H, W), 40, np.uint8)
    for _, x1, y1, x2, y2 in boxes:
        image[int(y1) : int(y2), int(x1) : int(x2)] = 220
    return image


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> dict[str, Labelled]:
    """A PNG, a JPEG, a DICOM (PatientID PDCM in its header) and a normal PNG; patients P1, P1, -, P2."""
    folder = tmp_path_factory.mktemp("files")
    spec = {
        "a.png": ([("Nodule", 10, 10, 30, 40)], "P1"),
        "b.jpg": ([("Mass", 5, 5, 40, 50), ("Nodule", 40, 50, 60, 78)], "P1"),
        "c.dcm": ([("Nodule", 20, 30, 50, 70)], None),
        "d.png": ([], "P2"),
    }
    items = {}
    for name, (boxes, patient) in spec.items():
        path = folder / name
        if name.endswith(".dcm"):
            path.write_bytes(chest_xray_bytes(picture(boxes).astype(np.uint16) * 16, bits_stored=12, patient_id="PDCM"))
        else:
            assert cv2.imwrite(str(path), picture(boxes))
        items[Path(name).stem] = Labelled(path, boxes, patient)
    return items


def written(out: Path, names: list[str]) -> dict[str, tuple[str, list]]:
    rows = {r["image_id"]: r for r in csv.DictReader((out / "manifest.csv").open())}
    labels = {}
    for image_id, row in rows.items():
        lines = (out / "labels" / row["split"] / f"{image_id}.txt").read_text().splitlines()
        boxes = sorted((names[c], *box) for c, box in (from_yolo_line(line, W, H) for line in lines))
        labels[image_id] = (row["patient_id"], boxes)
    return labels


@pytest.mark.parametrize("fmt", ["coco", "csv", "voc"])
def test_png_jpeg_and_dicom_images_prepare_with_their_boxes_and_patients(fmt, images, tmp_path):
    source, out = tmp_path / "export", tmp_path / "out"
    {"coco": lambda: write_coco(source, images, ["Nodule", "Mass"]), "csv": lambda: write_csv(source, images)}.get(
        fmt, lambda: write_voc(source, images, folder="JPEGImages")
    )()
    extra = ["dataset.patients=patients.csv"] if fmt == "voc" else []
    report = run_prepare(config(fmt, source, out, f"summary.enabled={fmt == 'coco'}", *extra))
    assert report["issues"]["counts"] == {} and report["images"]["written"] == 4
    names = yaml.safe_load((out / "data.yaml").read_text())["names"]
    # classes from the source: COCO's category order, else alphabetical
    assert list(names.values()) == (["Nodule", "Mass"] if fmt == "coco" else ["Mass", "Nodule"])
    got = written(out, list(names.values()))
    for image_id, item in images.items():
        patient, boxes = got[image_id]
        assert patient == (item.patient or "PDCM")  # no patient in the annotations: the DICOM header's
        assert len(boxes) == len(item.boxes)
        for mine, truth in zip(boxes, sorted(item.boxes), strict=True):
            assert mine[0] == truth[0] and mine[1:] == pytest.approx(truth[1:], abs=0.01)
    assert report["dicom"]["bits_stored"] == {"12": 1}
    assert sum(split["background_images"] for split in report["splits"].values()) == 1
    split_of = {row["image_id"]: row["split"] for row in csv.DictReader((out / "manifest.csv").open())}
    assert split_of["a"] == split_of["b"]  # one patient, one split
    if fmt == "coco":
        assert all((out / name).is_file() for name in ("summary.json", "summary.png", "examples.png"))


def test_coco_problems_are_named_with_their_file_and_entry(images, tmp_path):
    source = tmp_path / "export"
    write_coco(source, images, ["Nodule", "Mass"])
    data = json.loads((source / "annotations.json").read_text())
    first = dict(data["annotations"][0])
    data["annotations"] += [
        {**first, "id": 100},  # the same box again
        {**first, "id": 101, "image_id": 99},  # a box on an image that is not listed
        {**first, "id": 102, "category_id": 42},  # unknown category
        {**first, "id": 103, "bbox": [1, "abc", 3, 4]},  # non-numeric
        {**first, "id": 104, "bbox": [500, 500, 10, 10]},  # outside the 64x80 image
    ]
    data["images"] += [
        {"id": 50, "file_name": "gone.png"},  # listed, no file: a background image that cannot be found
        {"id": 51, "file_name": "../outside.png"},
    ]
    (source / "annotations.json").write_text(json.dumps(data))
    out = tmp_path / "out"
    report = run_prepare(config("coco", source, out, "summary.enabled=false"))
    assert report["issues"]["counts"] == {
        "unknown_class": 1,
        "bad_box": 1,
        "malformed_annotation": 1,
        "duplicate_annotation": 1,
        "missing_image": 2,
        "box_outside": 1,
    }
    saved = json.loads((out / "prepare_report.json").read_text())["issues"]["list"]
    messages = {item["message"] for item in saved}
    n = sum(len(item.boxes) for item in images.values())
    assert (
        f"annotations.json annotations[{n}] (id 100): the same Nodule box as annotations.json annotations[0] "
        "(id 1); dropped" in messages
    )
    assert any(m.startswith(f"annotations.json annotations[{n + 1}] (id 101): a box on image_id 99") for m in messages)
    assert f"annotations.json annotations[{n + 2}] (id 102): category_id 42 is not in categories" in messages
    assert f"annotations.json annotations[{n + 3}] (id 103): y='abc' is not a number" in messages
    assert any("images[4] (id 50): no file 'gone.png' in images/, ./" in m for m in messages)
    assert any("'../outside.png' is not a path inside the image folders" in m for m in messages)
    assert any("box (500, 500, 510, 510) is outside the 64x80 image" in m for m in messages)
    assert report["images"]["written"] == 4  # the good images all made it


def test_coco_that_is_not_json_fails_naming_the_file_line_and_column(tmp_path):
    (tmp_path / "annotations.json").write_text('{"images": [\n  {"id": 1,, "file_name": "a.png"}\n]}')
    with pytest.raises(PrepareError, match=r"annotations\.json: not valid JSON: Expecting .* at line 2 column 12"):
        load("coco", tmp_path)
    (tmp_path / "annotations.json").write_text('{"images": []}')
    with pytest.raises(PrepareError, match=r"annotations\.json: no 'categories' list"):
        load("coco", tmp_path)


KEYS = ("image", "label", "x_min", "y_min", "x_max", "y_max")


def test_csv_rows_name_their_line_and_empty_boxes_are_images_without_findings(images, tmp_path):
    header = ("file", "label", "x1", "y1", "x2", "y2")  # renamed columns, another order
    rows = [
        ("a.png", "Nodule", "10", "10", "30", "40"),
        ("b.jpg", "Mass", "abc", "5", "40", "50"),  # line 3: non-numeric
        ("b.jpg", "Nodule", "40", "50", "60", "78"),
        ("a.png", "Nodule", "10", "10", "30", "40"),  # line 5: a repeat of line 2
        ("d.png", "", "", "", "", ""),  # no box, no label: no findings
        ("c.dcm", "Mass", "", "", "", ""),  # a label without a box: not a normal image
        ("e.png", "Nodule", "1", "2", "3", "4", "extra"),  # line 8: one field too many
        ("f", "Nodule", "1", "2", "3", "4"),  # no extension: looked up with each; no such file
    ]
    source = tmp_path / "export"
    (source / "images").mkdir(parents=True)
    for item in images.values():
        (source / "images" / item.file.name).symlink_to(item.file)
    with open(source / "boxes.csv", "w", newline="") as handle:
        csv.writer(handle).writerows([header, *rows])
    renamed = [f"dataset.columns.{k}={v}" for k, v in zip(KEYS, header, strict=True)]
    records, log, ds = load("csv", source, "dataset.annotations=boxes.csv", *renamed)
    assert ds.classes == ["Mass", "Nodule"] and {r.image_id for r in records} == {"a", "b", "d"}
    assert [r.boxes for r in records if r.image_id == "d"] == [()]
    assert log.counts() == {"malformed_row": 1, "bad_box": 1, "duplicate_annotation": 1, "missing_image": 1}
    messages = [str(issue) for issue in log.issues]
    assert "bad_box: boxes.csv line 3: x1='abc' is not a number" in messages
    assert "duplicate_annotation: boxes.csv line 5: the same Nodule box as boxes.csv line 2; dropped" in messages
    assert "malformed_row: boxes.csv line 8: more fields than the header's 6" in messages
    assert any(m.startswith("missing_image: boxes.csv line 9: no file 'f' in images/, ./") for m in messages)
    assert log.notes["unboxed_findings"] == 1 and log.notes["images_without_usable_boxes"] == 1
    with pytest.raises(PrepareError, match=r"strict: malformed_row: boxes\.csv line 8"):
        load("csv", source, "dataset.annotations=boxes.csv", *renamed, strict=True)
    with pytest.raises(PrepareError, match=r"missing column\(s\) 'image' \(dataset\.columns\.image\), 'x_min'"):
        load("csv", source, "dataset.annotations=boxes.csv")


def write_xml(folder: Path, name: str, text: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text)


def test_voc_refuses_broken_and_entity_xml_and_keeps_or_drops_difficult_boxes(images, tmp_path):
    source = tmp_path / "export"
    write_voc(source, images)
    ann = source / "Annotations"
    write_xml(ann, "a.xml", voc_xml("a.png", images["a"].boxes + [("Mass", 1, 2, 9, 9)], difficult={1}))
    write_xml(ann, "broken.xml", "<annotation>\n<filename>x.png</filename>\n<object></annotation>")
    body = "<annotation><filename>&l2;</filename></annotation>"
    laughs = '<!DOCTYPE a [<!ENTITY l "lol"><!ENTITY l2 "&l;&l;&l;">]>' + body
    write_xml(ann, "laughs.xml", laughs)
    external = '<!DOCTYPE a [<!ENTITY e SYSTEM "file:///etc/passwd">]><annotation><filename>&e;</filename></annotation>'
    write_xml(ann, "external.xml", external)
    write_xml(ann, "zz_again.xml", voc_xml("b.jpg", []))  # a second XML for b.jpg
    records, log, _ = load("voc", source)
    assert {r.image_id: len(r.boxes) for r in records} == {"a": 2, "b": 2, "c": 1, "d": 0}
    messages = sorted(str(issue) for issue in log.issues)
    assert messages[0].startswith(
        "duplicate_annotation: Annotations/zz_again.xml: names the same image as Annotations/b"
    )
    assert messages[1].startswith("malformed_annotation: Annotations/broken.xml: not a usable XML file: mismatched tag")
    assert ": line 3, column" in messages[1]
    assert "external.xml: not a usable XML file: has a DOCTYPE" in messages[2]
    assert "laughs.xml: not a usable XML file: has a DOCTYPE" in messages[3] and len(messages) == 4

    dropped, log, _ = load("voc", source, "dataset.voc_difficult=drop")
    assert {r.image_id: len(r.boxes) for r in dropped}["a"] == 1 and log.notes["difficult_dropped"] == 1
    write_xml(ann, "c.xml", voc_xml("c.dcm", images["c"].boxes, difficult={0}))  # c's only box is difficult
    dropped, log, _ = load("voc", source, "dataset.voc_difficult=drop")
    assert "c" not in {r.image_id for r in dropped}  # left out, not a background image
    one_based, _, _ = load("voc", source, "dataset.voc_one_based=true")
    box = next(r for r in one_based if r.image_id == "a").boxes[0]
    assert (box.x1, box.y1, box.x2, box.y2) == (9, 9, 30, 40)


def test_without_patients_the_split_is_image_level_with_a_warning(images, tmp_path, caplog):
    pngs = {k: Labelled(v.file, v.boxes) for k, v in images.items() if v.file.suffix != ".dcm"}
    source, out = tmp_path / "export", tmp_path / "out"
    write_csv(source, pngs)
    with caplog.at_level(logging.WARNING, logger="xray_exp.prepare"):
        report = run_prepare(config("csv", source, out, "summary.enabled=false"))
    assert report["notes"]["patient_id_from_image_id"] == 3
    assert "3 of 3 images have no patient id" in caplog.text and "split image by image" in caplog.text
    write_patients(source / "patients.csv", {k: Labelled(v.file, patient="PX") for k, v in pngs.items()})
    records, log, _ = load("csv", source, "dataset.patients=patients.csv")
    assert {r.patient_id for r in records} == {"PX"} and log.notes["patient_id_from_patients_file"] == 3


@pytest.mark.parametrize(
    ("name", "image_id"),
    [
        ("a.png", "a"),
        ("scans/2024/a.DCM", "scans__2024__a"),
        ("./a.jpeg", "a"),
        ("IM0001", "IM0001"),  # no extension: kept whole
        ("a.b.png", "a.b"),
        ("../a.png", None),
        ("/etc/passwd", None),
        ("sub/../../a.png", None),
        ("C:\\data\\a.png", None),
        ("", None),
    ],
)
def test_image_ids_from_file_names_stay_inside_the_image_folders(name, image_id):
    ds = config("coco", Path("/s")).dataset
    assert image_id_for(name, ds) == image_id
