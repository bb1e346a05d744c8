"""Dataset validation on broken fixtures: every problem listed with its file and the fix."""

from __future__ import annotations

import shutil

import pytest

from xray_exp.data.validate import check_label_text, label_path, validate_dataset
from xray_exp.errors import DatasetError


@pytest.fixture
def dataset(tmp_path, synthetic_tiny):
    """A private copy of the tiny synthetic dataset that a test may break."""
    root = tmp_path / "ds"
    shutil.copytree(synthetic_tiny.parent, root)
    text = (root / "data.yaml").read_text().replace(f"path: {synthetic_tiny.parent}", f"path: {root}")
    (root / "data.yaml").write_text(text)
    return root


def first(root, split="train", kind="images"):
    return sorted((root / kind / split).iterdir())[0]


def test_good_dataset_passes_with_fingerprint(dataset):
    info = validate_dataset(dataset / "data.yaml")
    assert [len(info.splits[s]) for s in ("train", "val", "test")] == [8, 4, 4]
    assert len(info.fingerprint) == 64 and info.has_test


def test_fingerprint_changes_with_a_label(dataset):
    before = validate_dataset(dataset / "data.yaml").fingerprint
    lbl = label_path(first(dataset))
    lbl.write_text(lbl.read_text() + "0 0.5 0.5 0.1 0.1\n")
    assert validate_dataset(dataset / "data.yaml").fingerprint != before


def test_every_problem_is_listed_with_its_file(dataset):
    img = first(dataset)
    img.write_bytes(b"\x89PNG\r\n\x1a\nbroken")  # truncated PNG
    bad_cls = label_path(sorted((dataset / "images" / "train").iterdir())[1])
    bad_cls.write_text("7 0.5 0.5 0.1 0.1\n")
    outside = label_path(sorted((dataset / "images" / "val").iterdir())[0])
    outside.write_text("0 1.4 0.5 0.1 0.1\n")
    shutil.rmtree(dataset / "images" / "test")
    with pytest.raises(DatasetError) as err:
        validate_dataset(dataset / "data.yaml")
    msg = str(err.value)
    assert f"{img}: unreadable image" in msg
    assert f"{bad_cls}: line 1: class id 7 outside 0..3" in msg
    assert f"{outside}: line 1: coordinates" in msg and "outside [0, 1]" in msg
    assert "test:" in msg and "folder not found" in msg
    assert "4 problem(s)" in msg and "Fix" in msg


def test_missing_data_yaml_and_empty_split(tmp_path, dataset):
    with pytest.raises(DatasetError, match="data.yaml not found"):
        validate_dataset(tmp_path / "nope.yaml")
    for p in (dataset / "images" / "val").iterdir():
        p.unlink()
    with pytest.raises(DatasetError, match="val: no images found"):
        validate_dataset(dataset / "data.yaml")


def test_missing_names_and_required_split(dataset):
    (dataset / "data.yaml").write_text(f"path: {dataset}\ntrain: images/train\n")
    with pytest.raises(DatasetError, match="'names' is missing"):
        validate_dataset(dataset / "data.yaml")
    (dataset / "data.yaml").write_text(f"path: {dataset}\ntrain: images/train\nnames: [a, b]\n")
    with pytest.raises(DatasetError, match="field 'val' is missing"):
        validate_dataset(dataset / "data.yaml")


@pytest.mark.parametrize(
    "text,needle",
    [
        ("0 0.5 0.5 0.1\n", "expected 5 values"),
        ("x 0.5 0.5 0.1 0.1\n", "non-numeric"),
        ("1.5 0.5 0.5 0.1 0.1\n", "class id 1.5"),
        ("-1 0.5 0.5 0.1 0.1\n", "class id -1"),
        ("0 0.5 0.5 0 0.1\n", "zero-size box"),
    ],
)
def test_label_line_checks(text, needle):
    count, problems = check_label_text(text, nc=2)
    assert len(problems) == 1 and needle in problems[0] and problems[0].startswith("line 1:")


def test_label_line_ok():
    assert check_label_text("0 0.5 0.5 0.1 0.1\n\n1 0 0 1 1\n", nc=2) == (2, [])
