"""Reader rules on a synthetic VinDr source (3 readers per image): readers left out, fusion.min_readers, and
how many readers drew every kept box (manifest.csv `box_readers`), with the report's counts."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from xray_exp.prepare.config import compose_prepare_config
from xray_exp.prepare.fake_sources import VINDR_CLASSES, make_vindr_source
from xray_exp.prepare.pipeline import run_prepare

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """8 images; one finding image gets an extra box that only one of its readers drew."""
    info = make_vindr_source(tmp_path_factory.mktemp("vindr"), images=8, size=(256, 320), seed=3)
    with open(info.root / "train.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    lone = next(i for i in info.image_ids if info.findings[i])
    lone_reader = next(r["rad_id"] for r in rows if r["image_id"] == lone)
    extra = next(c for c in range(14) if c not in {f[0] for f in info.findings[lone]})
    with open(info.root / "train.csv", "a", newline="") as f:
        csv.writer(f).writerow([lone, VINDR_CLASSES[extra], extra, lone_reader, 5, 5, 60, 60])
    info.rows, info.lone = rows + [{"image_id": lone, "rad_id": lone_reader, "class_name": "x"}], lone
    return info


def prepare(source, out: Path, *overrides: str) -> tuple[dict, dict[str, list[int]]]:
    run_prepare(
        compose_prepare_config(
            [
                "dataset=vindr_cxr",
                f"source={source.root}",
                f"out_dir={out}",
                "longest_side=160",
                "progress=false",
                "workers=1",
                *overrides,
            ]
        )
    )
    with open(out / "manifest.csv", newline="") as f:
        readers = {r["image_id"]: [int(n) for n in r["box_readers"].split()] for r in csv.DictReader(f)}
    return json.loads((out / "prepare_report.json").read_text()), readers


def test_every_box_knows_its_readers_and_min_readers_drops_the_lone_one(source, tmp_path):
    _, readers = prepare(source, tmp_path / "all")
    findings = {i: len(b) for i, b in source.findings.items()}
    for image_id, counts in readers.items():
        expected = [3] * findings[image_id] + ([1] if image_id == source.lone else [])
        assert sorted(counts, reverse=True) == expected, image_id
    from xray_exp.analysis.dataset import reader_agreement

    table = reader_agreement(tmp_path / "all" / "data.yaml")  # the dataset notebook's table
    assert table.to_numpy().sum() == sum(len(c) for c in readers.values()) and table["1 reader"].sum() == 1
    report, kept = prepare(source, tmp_path / "two", "fusion.min_readers=2")
    assert kept[source.lone] == [3] * findings[source.lone]
    assert report["notes"]["boxes_below_min_readers"] == 1


def test_excluded_readers_boxes_are_gone_and_counted(source, tmp_path):
    image = next(i for i in source.image_ids if source.findings[i] and i != source.lone)
    reader = next(r["rad_id"] for r in source.rows if r["image_id"] == image)
    drawn = sum(1 for r in source.rows if r["rad_id"] == reader and r["class_name"] != "No finding")
    report, readers = prepare(source, tmp_path / "excluded", f"readers.exclude=[{reader}]")
    assert report["notes"]["excluded_reader_boxes"] == drawn
    assert set(readers[image]) == {2}  # the two other readers still drew every finding
