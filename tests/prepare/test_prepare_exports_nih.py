"""The NIH ChestX-ray14 sample written as COCO, CSV and Pascal VOC gives the NIH importer's dataset: the same
images, boxes, patients and splits. Skipped when the sample (<repo>/../shared/data/nih-cxr14-bbox) is absent.

    .venv/bin/pytest tests/prepare/test_prepare_exports_nih.py -q
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

try:
    from export_formats import Labelled, write_coco, write_csv, write_voc
except ImportError:  # tests/ imported as a package
    from tests.prepare.export_formats import Labelled, write_coco, write_csv, write_voc

from xray_exp.prepare.boxes import from_yolo_line
from xray_exp.prepare.config import compose_prepare_config
from xray_exp.prepare.pipeline import run_prepare

REPO = Path(__file__).resolve().parents[2]
NIH = REPO.parent / "shared" / "data" / "nih-cxr14-bbox"
SUBSET = 40
COMMON = ("progress=false", "workers=2", "longest_side=256", "summary.enabled=false")

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not (NIH / "BBox_List_2017.csv").is_file(), reason=f"NIH sample not found at {NIH}"),
]


def nih_classes() -> list[str]:
    return list(compose_prepare_config(["dataset=nih_cxr14", "source=/s", "out_dir=/o"]).dataset.classes)


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    """The NIH importer on a seeded sample of 40 images (boxed and "No Finding" ones)."""
    out = tmp_path_factory.mktemp("nih")
    overrides = ["dataset=nih_cxr14", f"source={NIH}", f"out_dir={out}", f"limit={SUBSET}", *COMMON]
    report = run_prepare(compose_prepare_config(overrides))
    assert report["images"]["written"] == SUBSET
    return out, report


@pytest.fixture(scope="module")
def items(baseline) -> dict[str, Labelled]:
    """The sample's images with their boxes and patients, read from the official CSVs (not from the output)."""
    out, _ = baseline
    chosen = [row["image_id"] for row in csv.DictReader((out / "manifest.csv").open())]
    boxes: dict[str, list] = {}
    with open(NIH / "BBox_List_2017.csv", newline="") as handle:
        for row in list(csv.reader(handle))[1:]:
            x, y, w, h = map(float, row[2:6])
            boxes.setdefault(row[0][:-4], []).append((row[1], x, y, x + w, y + h))
    patients = {}
    with open(NIH / "Data_Entry_2017.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            patients[row["Image Index"][:-4]] = row["Patient ID"]
    assert any(not boxes.get(i) for i in chosen) and any(boxes.get(i) for i in chosen)  # both kinds sampled
    return {i: Labelled(NIH / "images" / f"{i}.png", boxes.get(i, []), patients[i]) for i in sorted(chosen)}


def prepared_labels(out: Path) -> dict[str, tuple[str, list]]:
    """image id -> (split, [(class id, box in 1024 px source pixels)]) from the written labels."""
    rows = list(csv.DictReader((out / "manifest.csv").open()))
    labels = {}
    for row in rows:
        lines = (out / "labels" / row["split"] / f"{row['image_id']}.txt").read_text().splitlines()
        labels[row["image_id"]] = (row["split"], sorted(from_yolo_line(line, 1024, 1024) for line in lines))
    return labels


def manifest(out: Path) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "source"} for row in csv.DictReader((out / "manifest.csv").open())]


WRITERS = {
    "coco": lambda root, items: write_coco(root, items, nih_classes()[::-1]),  # category ids in another order
    "csv": lambda root, items: write_csv(root, items),
    "voc": lambda root, items: write_voc(root, items),
}


@pytest.mark.parametrize("fmt", ["coco", "csv", "voc"])
def test_nih_written_as_an_export_prepares_to_the_nih_importers_dataset(fmt, baseline, items, tmp_path):
    nih_out, nih_report = baseline
    source = tmp_path / "export"
    WRITERS[fmt](source, items)
    out = tmp_path / "out"
    classes = "[" + ",".join(nih_classes()) + "]"
    overrides = [f"dataset={fmt}", f"source={source}", f"out_dir={out}", f"dataset.classes={classes}", *COMMON]
    if fmt == "voc":
        overrides.append("dataset.patients=patients.csv")
    report = run_prepare(compose_prepare_config(overrides))

    assert report["issues"]["counts"] == {} and report["images"]["written"] == SUBSET
    assert manifest(out) == manifest(nih_out)  # same ids, patients, splits, classes, box counts
    assert report["splits"] == nih_report["splits"]
    ours, theirs = prepared_labels(out), prepared_labels(nih_out)
    assert ours.keys() == theirs.keys()
    for image_id, (split, boxes) in theirs.items():
        assert ours[image_id][0] == split
        assert [c for c, _ in ours[image_id][1]] == [c for c, _ in boxes]
        for (_, mine), (_, nih) in zip(ours[image_id][1], boxes, strict=True):
            assert mine == pytest.approx(nih, abs=1e-3)
    # and against the CSV itself (the NIH importer could be wrong too): a box to within the label's rounding
    names = nih_classes()
    for image_id, item in items.items():
        got = [(names[c], *box) for c, box in ours[image_id][1]]
        assert len(got) == len(item.boxes)
        for mine, truth in zip(sorted(got), sorted(item.boxes), strict=True):
            assert mine[0] == truth[0] and mine[1:] == pytest.approx(truth[1:], abs=0.1)

    if fmt == "coco":  # re-running resumes: nothing converted again
        again = run_prepare(compose_prepare_config(overrides))
        assert again["images"]["already_done"] == SUBSET and again["images"]["converted_now"] == 0
