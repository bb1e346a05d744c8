"""The k-fold plan: patients never split, classes stratified (better than a plain KFold), seeded and
deterministic, the test split held out, bad input refused before anything is written."""

from __future__ import annotations

import csv
import random
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import run_cli

from xray_exp.cv.plan import fold_rows, make_fold_plan, read_folds_csv, write_fold_plan
from xray_exp.errors import ConfigError, DatasetError

NAMES = ["nodule", "effusion", "mass", "atelectasis", "pneumothorax"]
CLASS_P = [0.04, 0.12, 0.25, 0.35, 0.5]  # rare to common


def make_dataset(root: Path, n_patients: int = 90, seed: int = 0, manifest: bool = True) -> Path:
    """A YOLO dataset of empty image files (the plan never decodes them): 1-4 images per patient, multi-label
    boxes, ~20% normal images, a patient-level train/val/test split and a manifest.csv."""
    rng = random.Random(seed)
    rows = []
    for p in range(n_patients):
        split = "test" if p % 6 == 0 else ("val" if p % 6 == 1 else "train")
        for i in range(rng.randint(1, 4)):
            image_id = f"p{p:03d}_{i}"
            (root / "images" / split).mkdir(parents=True, exist_ok=True)
            (root / "labels" / split).mkdir(parents=True, exist_ok=True)
            (root / "images" / split / f"{image_id}.png").write_bytes(b"")
            lines = []
            if rng.random() > 0.2:
                for c, prob in enumerate(CLASS_P):
                    lines += [f"{c} 0.5 0.5 0.1 0.1"] * (rng.random() < prob) * rng.randint(1, 2)
            (root / "labels" / split / f"{image_id}.txt").write_text("\n".join(lines))
            rows.append((image_id, f"patient{p}", split))
    if manifest:
        with open(root / "manifest.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["image_id", "patient_id", "split"])
            writer.writerows(rows)
    data = root / "data.yaml"
    data.write_text(
        yaml.safe_dump(
            {
                "path": ".",
                "train": "images/train",
                "val": "images/val",
                "test": "images/test",
                "names": dict(enumerate(NAMES)),
            }
        )
    )
    return data


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("cvdata"))


def class_imbalance(fold_of: dict[str, int], images, folds: int) -> float:
    """Mean over classes (and normal images) of the relative spread of per-fold image counts."""
    counts = np.zeros((folds, len(NAMES) + 1))
    for im in images:
        for c in set(im.classes) or {len(NAMES)}:
            counts[fold_of[im.image_id], c] += 1
    return float(np.mean(counts.std(axis=0) / counts.mean(axis=0)))


def test_patients_stay_in_one_fold_and_the_test_split_never_enters(dataset):
    plan = make_fold_plan(dataset, folds=5, seed=0)
    assert plan.patients_known
    folds_of_patient: dict[str, set[int]] = {}
    for im in plan.images:
        folds_of_patient.setdefault(im.patient, set()).add(plan.fold_of[im.image_id])
    assert len(folds_of_patient) > 50 and all(len(f) == 1 for f in folds_of_patient.values())
    pool = {p.stem for split in ("train", "val") for p in (dataset.parent / "images" / split).iterdir()}
    test = {p.stem for p in (dataset.parent / "images" / "test").iterdir()}
    assert set(plan.fold_of) == pool and not set(plan.fold_of) & test and plan.test_ids
    assert sorted(set(plan.fold_of.values())) == [0, 1, 2, 3, 4]


def test_stratified_better_than_a_plain_kfold(dataset):
    from sklearn.model_selection import GroupKFold

    plan = make_fold_plan(dataset, folds=5, seed=0)
    ours = class_imbalance(plan.fold_of, plan.images, 5)
    ids, groups = [im.image_id for im in plan.images], [im.patient for im in plan.images]
    plain = []
    for seed in range(5):  # a plain patient-grouped KFold (random groups), five shuffles
        split = GroupKFold(n_splits=5, shuffle=True, random_state=seed).split(ids, groups=groups)
        fold_of = {ids[i]: f for f, (_, held) in enumerate(split) for i in held}
        plain.append(class_imbalance(fold_of, plan.images, 5))
    print(f"class imbalance: iterative stratification {ours:.3f}, plain GroupKFold {np.mean(plain):.3f}")
    assert ours < 0.7 * float(np.mean(plain)), (ours, plain)
    rows = fold_rows(plan)
    assert sum(r["images"] for r in rows) == len(plan.images)
    assert sum(r["boxes"] for r in rows) == sum(len(im.classes) for im in plan.images)


def test_deterministic_for_a_seed_and_another_seed_gives_another_plan(dataset, tmp_path):
    a, b = make_fold_plan(dataset, 5, seed=0), make_fold_plan(dataset, 5, seed=0)
    assert a.fold_of == b.fold_of
    assert make_fold_plan(dataset, 5, seed=1).fold_of != a.fold_of
    write_fold_plan(a, tmp_path / "a")
    write_fold_plan(b, tmp_path / "b")
    assert (tmp_path / "a" / "folds.csv").read_bytes() == (tmp_path / "b" / "folds.csv").read_bytes()


def test_fold_data_yaml_trains_on_the_other_folds_and_validates_on_its_own(dataset, tmp_path):
    from xray_exp.evaluation.dataset import load_split, patient_groups

    plan = make_fold_plan(dataset, 3, seed=0)
    write_fold_plan(plan, tmp_path)
    rows = read_folds_csv(tmp_path / "folds.csv")
    assert {r["image"]: r["fold"] for r in rows} == plan.fold_of
    fold_yaml = tmp_path / "plan" / "fold1.yaml"
    train = {im.image_id for im in load_split(fold_yaml, "train").images}
    val = [im.image_id for im in load_split(fold_yaml, "val").images]
    assert set(val) == {i for i, f in plan.fold_of.items() if f == 1}
    assert train == {i for i, f in plan.fold_of.items() if f != 1}
    assert {im.image_id for im in load_split(fold_yaml, "test").images} == set(plan.test_ids)
    patient_of = {r["image"]: r["patient"] for r in rows}
    assert patient_groups(fold_yaml, val) == [patient_of[i] for i in val]  # manifest.csv beside the fold yaml


def test_without_patients_each_image_is_its_own(tmp_path):
    data = make_dataset(tmp_path, n_patients=12, manifest=False)
    plan = make_fold_plan(data, 3, seed=0)
    assert not plan.patients_known and all(im.patient == im.image_id for im in plan.images)


def test_bad_input_is_refused_naming_the_problem(dataset, tmp_path):
    with pytest.raises(ConfigError, match=r"cv.folds=1: a cross-validation needs at least 2 folds"):
        make_fold_plan(dataset, 1, seed=0)
    small = make_dataset(tmp_path / "small", n_patients=7)  # 5 patients in the pool (train + val)
    with pytest.raises(ConfigError, match=r"cv.folds=6: the pool .* has only 5 patients.*cv.folds<=5"):
        make_fold_plan(small, 6, seed=0)
    no_pool = tmp_path / "no_pool.yaml"
    no_pool.write_text(yaml.safe_dump({"path": str(dataset.parent), "test": "images/test", "names": NAMES}))
    with pytest.raises(DatasetError, match="no train or val split to cross-validate"):
        make_fold_plan(no_pool, 3, seed=0)


def test_folds_cli_prints_the_table_and_leaves_nothing_on_error(dataset, tmp_path):
    out = tmp_path / "plan"
    proc = run_cli(["xray_exp.folds", f"data={dataset}", "folds=4", "seed=3", f"out_dir={out}"], tmp_path, check=True)
    assert "4 folds, seed 3" in proc.stdout and "patients from manifest.csv" in proc.stdout
    header = next(line for line in proc.stdout.splitlines() if line.split()[:2] == ["fold", "images"])
    assert header.split() == ["fold", "images", "patients", "boxes", "normal", *NAMES]
    assert len(read_folds_csv(out / "folds.csv")) == len(make_fold_plan(dataset, 4, 3).images)
    bad = run_cli(["xray_exp.folds", f"data={dataset}", "folds=500", f"out_dir={tmp_path / 'bad'}"], tmp_path)
    assert bad.returncode == 2 and "folds=500: the pool" in bad.stderr and "folds<=" in bad.stderr
    assert not (tmp_path / "bad").exists()
