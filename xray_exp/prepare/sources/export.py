"""Shared steps of the labelling-tool importers (coco, csv, voc): images + marks -> image records.

    images = {"a": ExportImage("a", "annotations.csv line 2", "a.png", patient_id="P1")}
    box = {"x_min": "10", "y_min": "20", "x_max": "90", "y_max": "80"}
    marks = [Mark("a", "Nodule", box, "annotations.csv line 2")]
    resolve_classes(ds, ["Nodule"], "annotations.csv")
    records = export_records(source, images, marks, ds, log, seed=0)

Each importer reads its format into images (which file, which patient) and marks (one label, with or
without a box, and where it was read); here classes are resolved, boxes checked, duplicates dropped (a
`duplicate_annotation` issue naming both places), files found and patients attached.
"""

from __future__ import annotations

import csv
import logging
import random
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from xray_exp.prepare.config import SourceDatasetConfig
from xray_exp.prepare.records import (
    DUPLICATE_ANNOTATION,
    MISSING_IMAGE,
    UNKNOWN_CLASS,
    ImageRecord,
    Issue,
    IssueLog,
    PrepareError,
    RawBox,
)
from xray_exp.prepare.sources.common import Listing, parse_box, read_required, resolve

logger = logging.getLogger("xray_exp.prepare")


@dataclass
class ExportImage:
    """An image the annotations declare: where (for messages), its file as named there, its patient."""

    image_id: str
    where: str  # e.g. "annotations.json images[3] (id 17)"
    file_name: str  # relative to an image_dirs folder; the extension may be left out
    patient_id: str | None = None
    normal_if_unmarked: bool = True  # coco/voc: an image without annotations has no findings
    held_back: int = 0  # findings left out on purpose (voc_difficult=drop): the image is not normal
    alternatives: tuple[str, ...] = ()  # other names to look for when file_name is not found


@dataclass(frozen=True)
class Mark:
    """One label on an image: with a box (coords as read), or without (coords None: an image-level row)."""

    image_id: str
    label: str
    coords: Mapping[str, object] | None
    where: str
    xywh: bool = False  # coords are x, y, w, h (COCO) instead of x_min, y_min, x_max, y_max


def image_id_for(file_name: str, ds: SourceDatasetConfig) -> str | None:
    """`sub/a.png` -> `sub__a`, `a.dcm` -> `a`; None for a name that leaves the image folders (`..`, absolute)."""
    name = str(file_name).strip().replace("\\", "/")
    path = PurePosixPath(name)
    parts = [p for p in path.parts if p != "."]
    if not parts or path.is_absolute() or ".." in parts or ":" in parts[0]:
        return None
    last = parts[-1]
    suffix = PurePosixPath(last).suffix.lower()
    if suffix and suffix in {e.lower() for e in ds.image_extensions}:
        parts[-1] = last[: -len(suffix)]
    return "__".join(parts) or None


def _folders(source: Path, ds: SourceDatasetConfig) -> list[Path]:
    """The image_dirs folders in order, glob patterns expanded (sorted)."""
    out: list[Path] = []
    for pattern in ds.image_dirs:
        out += sorted(source.glob(pattern)) if any(c in pattern for c in "*?[") else [resolve(source, pattern)]
    return out


def find_image(source: Path, ds: SourceDatasetConfig, names: tuple[str, ...]) -> tuple[Path | None, str]:
    """The first existing file for any of `names` under the image folders (as named, then with each image
    extension) -> (path or None, what was looked for)."""
    extensions = [e.lower() for e in ds.image_extensions]
    for name in names:
        relative = str(name).strip().replace("\\", "/")
        for folder in _folders(source, ds):
            base = folder / relative
            candidates = [base]
            if base.suffix.lower() not in extensions:
                candidates += [base.with_name(base.name + ext) for ext in ds.image_extensions]
            for candidate in candidates:
                if candidate.is_file():
                    return candidate, ""
    folders = ", ".join(f"{folder}/" for folder in ds.image_dirs)
    return None, f"no file {' or '.join(repr(n) for n in names)} in {folders} of {source}"


def load_patients(source: Path, ds: SourceDatasetConfig) -> dict[str, str]:
    """dataset.patients: a CSV with columns `image` and `patient` (or `patient_id`) -> {image id: patient}."""
    if not ds.patients:
        return {}
    path = read_required(source, ds.patients, "dataset.patients")
    out: dict[str, str] = {}
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        header = [(name or "").strip() for name in reader.fieldnames or ()]
        patient_column = next((c for c in ("patient", "patient_id") if c in header), None)
        if "image" not in header or patient_column is None:
            raise PrepareError(f"dataset.patients: {path} needs the columns image,patient; the header is {header}")
        reader.fieldnames = header
        for line, row in enumerate(reader, start=2):
            image_id = image_id_for(row.get("image") or "", ds)
            patient = (row.get(patient_column) or "").strip()
            if image_id is None or not patient:
                raise PrepareError(f"dataset.patients: {path.name} line {line}: empty or unusable image/patient")
            out[image_id] = patient
    return out


def resolve_classes(ds: SourceDatasetConfig, discovered: list[str], annotations: str) -> None:
    """`classes: []` -> the source's class names (in the order given), without no_finding / ignored ones."""
    if ds.classes:
        return
    skip = {ds.no_finding.casefold(), ""} | {name.casefold() for name in ds.ignore_classes}
    aliases = {k.casefold(): v for k, v in ds.label_aliases.items()}
    names: dict[str, str] = {}
    for name in discovered:
        name = aliases.get(name.strip().casefold(), name.strip())
        if name.casefold() not in skip:
            names.setdefault(name.casefold(), name)
    if not names:
        raise PrepareError(f"{annotations}: no class names found; list them with dataset.classes=[...]")
    ds.classes = list(names.values())
    logger.info("classes from %s: %s", annotations, ", ".join(ds.classes))


def collect_boxes(
    images: dict[str, ExportImage], marks: list[Mark], ds: SourceDatasetConfig, log: IssueLog
) -> dict[str, Listing]:
    """Marks -> per-image listings: class names resolved, boxes parsed, exact duplicates dropped and named."""
    class_ids = {name.casefold(): i for i, name in enumerate(ds.classes)}
    ignored = {name.casefold() for name in ds.ignore_classes}
    aliases = {k.casefold(): v.casefold() for k, v in ds.label_aliases.items()}
    normal = ds.no_finding.casefold()
    listings = {image_id: Listing(patient_id=image.patient_id) for image_id, image in images.items()}
    seen: dict[tuple, str] = {}
    for mark in marks:
        listing = listings[mark.image_id]
        name = aliases.get(mark.label.strip().casefold(), mark.label.strip().casefold())
        if name == normal or (mark.coords is None and not name):
            listing.normal_rows += 1
            continue
        listing.finding_rows += 1
        if mark.coords is None:
            log.notes["unboxed_findings"] += 1
            continue
        if name in ignored:
            log.notes["ignored_class_rows"] += 1
            continue
        class_id = class_ids.get(name)
        if class_id is None:
            message = f"{mark.where}: label {mark.label!r} is not in dataset.classes"
            log.add(Issue(UNKNOWN_CLASS, message, mark.image_id))
            continue
        box = parse_box(mark.coords, mark.where, mark.image_id, log, xywh=mark.xywh)
        if box is None:
            continue
        key = (mark.image_id, class_id, box)
        if key in seen:
            message = f"{mark.where}: the same {ds.classes[class_id]} box as {seen[key]}; dropped"
            log.add(Issue(DUPLICATE_ANNOTATION, message, mark.image_id))
            continue
        seen[key] = mark.where
        listing.boxes.append(RawBox(class_id, *box))
    return listings


def export_records(
    source: Path,
    images: dict[str, ExportImage],
    marks: list[Mark],
    ds: SourceDatasetConfig,
    log: IssueLog,
    seed: int,
) -> list[ImageRecord]:
    """Boxed images and images without findings (background) whose file exists -> records; the rest noted."""
    listings = collect_boxes(images, marks, ds, log)
    patients = load_patients(source, ds)
    positives: list[ImageRecord] = []
    negatives: list[ImageRecord] = []
    for image_id in sorted(images):
        image, listing = images[image_id], listings[image_id]
        if listing.boxes:
            target = positives
        elif not listing.finding_rows and not image.held_back and (listing.normal_rows or image.normal_if_unmarked):
            if not ds.negatives:
                log.notes["negatives_not_used"] += 1
                continue
            target = negatives
        else:  # findings, but none of them usable: not a normal image either
            log.notes["images_without_usable_boxes"] += 1
            continue
        path, looked = find_image(source, ds, (image.file_name, *image.alternatives))
        if path is None:
            log.add(Issue(MISSING_IMAGE, f"{image.where}: {looked}", image_id))
            continue
        patient = patients.get(image_id) or listing.patient_id
        if image_id in patients:
            log.notes["patient_id_from_patients_file"] += 1
        target.append(ImageRecord(image_id, str(path), patient, tuple(listing.boxes)))
    if ds.max_negatives is not None and len(negatives) > ds.max_negatives:
        log.notes["negatives_sampled_out"] += len(negatives) - ds.max_negatives
        negatives = sorted(random.Random(seed).sample(negatives, ds.max_negatives), key=lambda r: r.image_id)
    return sorted(positives + negatives, key=lambda r: r.image_id)
