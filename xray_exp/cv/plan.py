"""The k-fold plan of a YOLO dataset: patient-grouped, multi-label stratified, seeded.

    plan = make_fold_plan("data.yaml", folds=5, seed=0)   # pool = train + val; test held out
    print(fold_table(plan))                              # images, patients, boxes, per-class images per fold
    write_fold_plan(plan, "outputs/folds/nih")           # folds.csv (image,patient,fold) + plan/fold<f>.yaml

Stratification: iterative stratification (Sechidis et al. 2011, `iterative-stratification`'s
MultilabelStratifiedKFold) over *patients*: a patient's row is the set of classes on any of its images (plus a
"no finding" column for patients with a normal image), so every fold gets its share of each class and of normal
images, and all images of a patient land in one fold. scikit-learn's StratifiedGroupKFold groups patients too,
but stratifies one label per sample: a multi-label image would have to be reduced to one class (or to its
label combination, which makes most strata singletons on 14-class data).
Patients come from the dataset's manifest.csv (written by `xray_exp.prepare`); without one listing every pool
image, each image is its own patient (the plan says so).
"""

from __future__ import annotations

import csv
import json
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from xray_exp.errors import ConfigError, DatasetError

POOL_SPLITS = ("train", "val")
FOLDS_CSV = "folds.csv"
PLAN_DIR = "plan"


@dataclass
class PoolImage:
    image_id: str
    path: Path
    patient: str
    classes: list[int]  # class id of every box (len = boxes)


@dataclass
class FoldPlan:
    data_yaml: Path
    folds: int
    seed: int
    names: list[str]
    images: list[PoolImage]
    fold_of: dict[str, int]  # image id -> fold
    patients_known: bool
    test: object = None  # the dataset's test entry (absolute paths), None without a test split
    test_ids: list[str] = field(default_factory=list)

    def fold_images(self, fold: int) -> list[PoolImage]:
        return [im for im in self.images if self.fold_of[im.image_id] == fold]


def _class_ids(label: Path) -> list[int]:
    if not label.is_file():
        return []
    return [int(float(line.split()[0])) for line in label.read_text().splitlines() if line.split()]


def _absolute_entry(entry, root: Path):
    """A data.yaml split entry (folder, .txt list or a list of those) with absolute paths."""
    if isinstance(entry, list):
        return [_absolute_entry(e, root) for e in entry]
    path = Path(str(entry))
    return str(path if path.is_absolute() else (root / path).resolve())


def load_pool(data_yaml: str | Path) -> tuple[list[PoolImage], list[str], bool, object, list[str]]:
    """Pool images (train + val) with patients and box classes; class names; patients known?; test entry and ids."""
    from xray_exp.data.validate import load_data_yaml  # lazy: heavy (yaml)
    from xray_exp.evaluation.dataset import load_split, patient_groups  # lazy: heavy (yaml)

    data, root = load_data_yaml(data_yaml)
    present = [s for s in POOL_SPLITS if data.get(s) not in (None, "")]
    if not present:
        raise DatasetError(
            f"{data_yaml}: no train or val split to cross-validate. Fix: a data.yaml with "
            "`train:` (and `val:`) image folders or .txt lists; the test split stays held out."
        )
    pool, names = [], []  # `present` is not empty: names are the last split's
    for split in present:
        loaded = load_split(data_yaml, split)
        names = loaded.names
        pool += loaded.images
    seen: dict[str, Path] = {}
    for image in pool:
        if image.image_id in seen:
            raise DatasetError(
                f"{data_yaml}: image id {image.image_id!r} is in the pool twice ({seen[image.image_id]}"
                f" and {image.path}). Image ids are file stems; rename one."
            )
        seen[image.image_id] = image.path
    test_entry, test_ids = None, []
    if data.get("test") not in (None, ""):
        test_ids = [im.image_id for im in load_split(data_yaml, "test").images]
        overlap = sorted(set(test_ids) & set(seen))
        if overlap:
            raise DatasetError(
                f"{data_yaml}: {len(overlap)} test image(s) also in train/val (e.g. {overlap[0]!r}): "
                "the test split must be held out. Fix the splits (python -m xray_exp.prepare)."
            )
        test_entry = _absolute_entry(data["test"], root)
    ids = [im.image_id for im in pool]
    patients = patient_groups(data_yaml, ids)
    known = patients is not None
    patient_of = patients if patients is not None else ids  # unknown patients: each image is its own
    images = [PoolImage(im.image_id, im.path, patient_of[i], _class_ids(im.label_path)) for i, im in enumerate(pool)]
    return images, list(names), known, test_entry, test_ids


def stratified_patient_folds(
    patient_classes: dict[str, set[int]], n_classes: int, folds: int, seed: int
) -> dict[str, int]:
    """Patient -> fold by multi-label iterative stratification (class presence + a "no finding" column)."""
    from iterstrat.ml_stratifiers import MultilabelStratifiedKFold

    patients = sorted(patient_classes)
    y = np.zeros((len(patients), n_classes + 1), dtype=np.int64)
    for row, patient in enumerate(patients):
        classes = patient_classes[patient]
        for c in classes:
            if c >= 0:
                y[row, c] = 1
        if -1 in classes or not classes:
            y[row, n_classes] = 1  # a normal image
    splitter = MultilabelStratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    fold_of = {}
    for fold, (_, held) in enumerate(splitter.split(np.zeros(len(patients)), y)):
        for row in held:
            fold_of[patients[row]] = fold
    return fold_of


def make_fold_plan(data_yaml: str | Path, folds: int, seed: int, key: str = "cv.folds") -> FoldPlan:
    """The plan (checks first: folds >= 2, no more folds than patients, a train/val pool); `key`: the config key
    the errors name."""
    if int(folds) < 2:
        raise ConfigError(f"{key}={folds}: a cross-validation needs at least 2 folds (e.g. {key}=5)")
    data_yaml = Path(data_yaml).expanduser().resolve()
    images, names, known, test_entry, test_ids = load_pool(data_yaml)
    patient_classes: dict[str, set[int]] = {}
    for im in images:
        patient_classes.setdefault(im.patient, set()).update(im.classes or {-1})
    if folds > len(patient_classes):
        unit = "patients" if known else "images (no patients known: each image is its own patient)"
        raise ConfigError(
            f"{key}={folds}: the pool of {data_yaml} (train + val) has only {len(patient_classes)} "
            f"{unit}; every fold needs one. Fix: {key}<={len(patient_classes)}."
        )
    by_patient = stratified_patient_folds(patient_classes, len(names), int(folds), int(seed))
    fold_of = {im.image_id: by_patient[im.patient] for im in images}
    return FoldPlan(data_yaml, int(folds), int(seed), names, images, fold_of, known, test_entry, test_ids)


def fold_rows(plan: FoldPlan) -> list[dict]:
    """One dict per fold: fold, images, patients, boxes, normal images, then images per class name."""
    rows = []
    for fold in range(plan.folds):
        members = plan.fold_images(fold)
        per_class = Counter(c for im in members for c in set(im.classes))
        rows.append(
            {
                "fold": fold,
                "images": len(members),
                "patients": len({im.patient for im in members}),
                "boxes": sum(len(im.classes) for im in members),
                "normal": sum(not im.classes for im in members),
                **{name: per_class.get(c, 0) for c, name in enumerate(plan.names)},
            }
        )
    return rows


def fold_table(plan: FoldPlan) -> str:
    """The printed plan: a header (pool, patients, test) and one line per fold."""
    rows = fold_rows(plan)
    header = list(rows[0])
    widths = [max(len(str(h)), *(len(str(r[h])) for r in rows)) for h in header]
    patients = (
        f"{len({im.patient for im in plan.images})} patients from manifest.csv"
        if plan.patients_known
        else "no patients known (no manifest.csv listing every image): each image is its own patient"
    )
    lines = [
        f" fold plan: {plan.folds} folds, seed {plan.seed}, {plan.data_yaml}",
        f" pool (train + val): {len(plan.images)} images, {patients}",
        f" test (held out, never in a fold): {len(plan.test_ids)} images",
        "  ".join(str(h).rjust(w) for h, w in zip(header, widths, strict=True)),
    ]
    lines += ["  ".join(str(r[h]).rjust(w) for h, w in zip(header, widths, strict=True)) for r in rows]
    return "\n".join(lines)


def write_folds_csv(plan: FoldPlan, path: str | Path) -> Path:
    path = Path(path)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["image", "patient", "fold"])
        for im in sorted(plan.images, key=lambda im: (plan.fold_of[im.image_id], im.image_id)):
            writer.writerow([im.image_id, im.patient, plan.fold_of[im.image_id]])
    return path


def read_folds_csv(path: str | Path) -> list[dict]:
    """Rows of folds.csv: {image, patient, fold (int)}."""
    with Path(path).open(newline="") as f:
        return [{**row, "fold": int(row["fold"])} for row in csv.DictReader(f)]


def fold_data_yaml(out_dir: str | Path, fold: int) -> Path:
    return Path(out_dir).resolve() / PLAN_DIR / f"fold{fold}.yaml"


def write_fold_data_yamls(plan: FoldPlan, out_dir: str | Path) -> list[Path]:
    """plan/fold<f>.yaml: train = the other folds, val = fold f (.txt lists of absolute paths), test = the
    dataset's test split, names as the dataset's. The dataset's manifest.csv is copied beside them (patients
    for the bootstrap)."""
    import yaml

    from xray_exp.data.validate import load_data_yaml  # lazy: heavy (yaml)
    from xray_exp.evaluation.dataset import MANIFEST  # lazy: heavy (yaml)

    folder = Path(out_dir).resolve() / PLAN_DIR
    folder.mkdir(parents=True, exist_ok=True)
    data, root = load_data_yaml(plan.data_yaml)
    for candidate in (plan.data_yaml.parent / MANIFEST, root / MANIFEST):
        if candidate.is_file():
            shutil.copyfile(candidate, folder / MANIFEST)
            break
    paths = []
    for fold in range(plan.folds):
        lists = {}
        for part, members in (
            ("train", [im for im in plan.images if plan.fold_of[im.image_id] != fold]),
            ("val", plan.fold_images(fold)),
        ):
            lists[part] = folder / f"fold{fold}_{part}.txt"
            lists[part].write_text("".join(f"{im.path}\n" for im in members))
        fold_yaml = {k: v for k, v in data.items() if k not in ("path", "train", "val", "test")}
        fold_yaml.update(
            path=str(root), train=str(lists["train"]), val=str(lists["val"]), names=dict(enumerate(plan.names))
        )
        if plan.test is not None:
            fold_yaml["test"] = plan.test
        path = fold_data_yaml(out_dir, fold)
        path.write_text(yaml.safe_dump(fold_yaml, sort_keys=False))
        paths.append(path)
    return paths


def write_fold_plan(plan: FoldPlan, out_dir: str | Path) -> dict[str, Path]:
    """folds.csv, plan/fold<f>.yaml (+ txt lists) and plan/plan.json (the table) under out_dir."""
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    csv_path = write_folds_csv(plan, out / FOLDS_CSV)
    yamls = write_fold_data_yamls(plan, out)
    (out / PLAN_DIR / "plan.json").write_text(
        json.dumps(
            {
                "data_yaml": str(plan.data_yaml),
                "folds": plan.folds,
                "seed": plan.seed,
                "names": plan.names,
                "patients_known": plan.patients_known,
                "pool_images": len(plan.images),
                "test_images": len(plan.test_ids),
                "per_fold": fold_rows(plan),
            },
            indent=2,
        )
    )
    return {"folds_csv": csv_path, **{f"fold{f}": p for f, p in enumerate(yamls)}}
