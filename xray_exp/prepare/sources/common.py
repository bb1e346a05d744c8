"""Shared importer steps: find image files, parse box coordinates, turn per-image listings into records."""

from __future__ import annotations

import math
import os
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import SupportsFloat, SupportsIndex

from xray_exp.prepare.config import SourceDatasetConfig
from xray_exp.prepare.records import (
    BAD_BOX,
    MISSING_IMAGE,
    ZERO_AREA,
    ImageRecord,
    Issue,
    IssueLog,
    PrepareError,
    RawBox,
)


def resolve(source: Path, relative: str) -> Path:
    """A dataset path relative to `source` (absolute paths are kept)."""
    path = Path(relative).expanduser()
    return path if path.is_absolute() else source / path


def read_required(source: Path, relative: str, key: str) -> Path:
    path = resolve(source, relative)
    if not path.is_file():
        raise PrepareError(f"{key}: {path} does not exist (source={source})")
    return path


def index_images(source: Path, ds: SourceDatasetConfig, log: IssueLog) -> dict[str, Path]:
    """Map image id (file name without extension) -> file, over `ds.image_dirs` (globs allowed).

    When one id has several files (x.dicom and x.dcm, or two folders), the first extension listed wins.
    """
    rank = {ext.lower(): i for i, ext in enumerate(ds.image_extensions)}
    found: dict[str, Path] = {}
    for pattern in ds.image_dirs:
        for folder in sorted(source.glob(pattern)) if any(c in pattern for c in "*?[") else [source / pattern]:
            if not folder.is_dir():
                continue
            with_ext = (entry for entry in _scan(folder) if entry.suffix.lower() in rank)
            for path in sorted(with_ext):
                known = found.get(path.stem)
                if known is None:
                    found[path.stem] = path
                elif rank[path.suffix.lower()] < rank[known.suffix.lower()]:
                    found[path.stem] = path
                    log.notes["duplicate_image_files"] += 1
                else:
                    log.notes["duplicate_image_files"] += 1
    return found


def _scan(folder: Path):
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.is_file():
                yield Path(entry.path)


def image_id_of(name: str, ds: SourceDatasetConfig) -> str:
    """`00013118_008.png` -> `00013118_008`; ids without a listed extension are kept whole."""
    name = name.strip()
    suffix = Path(name).suffix.lower()
    return name[: -len(suffix)] if suffix and suffix in {e.lower() for e in ds.image_extensions} else name


def parse_box(
    coords: Mapping[str, object], where: str, image_id: str, log: IssueLog, xywh: bool = False
) -> tuple[float, float, float, float] | None:
    """Four coordinates as read (strings, JSON numbers, or None where missing; x_min, y_min, x_max, y_max; or
    x, y, w, h) -> floats, or None with an issue.

    `where` names the file and line for the message, e.g. "train.csv line 17".
    """
    values = []
    for name, text in coords.items():
        try:
            if not isinstance(text, str | SupportsFloat | SupportsIndex):
                raise TypeError(f"{type(text).__name__} is not a number")  # None, a list, ...: what float() refuses
            value = float(text)
        except (TypeError, ValueError):
            log.add(Issue(BAD_BOX, f"{where}: {name}={text!r} is not a number", image_id))
            return None
        if not math.isfinite(value):
            log.add(Issue(BAD_BOX, f"{where}: {name}={text!r} is not finite", image_id))
            return None
        values.append(value)
    x1, y1, a, b = values
    x2, y2 = (x1 + a, y1 + b) if xywh else (a, b)
    if x2 == x1 or y2 == y1:
        log.add(Issue(ZERO_AREA, f"{where}: zero-area box {dict(coords)}", image_id))
        return None
    if x2 < x1 or y2 < y1:
        log.add(Issue(BAD_BOX, f"{where}: inverted box (max < min or negative size) {dict(coords)}", image_id))
        return None
    return x1, y1, x2, y2


def is_repeated_row(row: Iterable[str], seen: set[tuple[str, ...]], log: IssueLog) -> bool:
    """True for an exact repeat of an earlier row of the same CSV: it is skipped (a duplicated row would
    become a duplicated label box) and counted as `notes.duplicate_rows` in the report."""
    key = tuple(row)
    if key in seen:
        log.notes["duplicate_rows"] += 1
        return True
    seen.add(key)
    return False


@dataclass
class Listing:
    """Everything the CSVs say about one image."""

    boxes: list[RawBox] = field(default_factory=list)
    readers: set[str] = field(default_factory=set)
    normal_rows: int = 0  # rows saying "no finding"
    finding_rows: int = 0  # rows naming a finding (valid, unknown or ignored)
    patient_id: str | None = None


def build_records(
    source: Path,
    listings: dict[str, Listing],
    files: dict[str, Path],
    ds: SourceDatasetConfig,
    log: IssueLog,
    seed: int,
) -> list[ImageRecord]:
    """Listings + files -> records: boxed images, normal images as background, the rest left out (noted)."""
    positives: list[ImageRecord] = []
    negatives: list[ImageRecord] = []
    for image_id in sorted(listings):
        listing = listings[image_id]
        path = files.get(image_id)
        if listing.boxes:
            target = positives
        elif listing.finding_rows == 0 and listing.normal_rows > 0:
            if not ds.negatives:
                log.notes["negatives_not_used"] += 1
                continue
            target = negatives
        else:  # findings, but none of them usable: not a normal image either
            log.notes["images_without_usable_boxes"] += 1
            continue
        if path is None:  # listed and usable, but not on disk (a partial download): an issue with its id
            names = f"{image_id}{{{','.join(ds.image_extensions)}}}"
            looked = ", ".join(str(source / folder / names) for folder in ds.image_dirs)
            log.add(Issue(MISSING_IMAGE, f"{ds.annotations} lists {image_id}; no file {looked}", image_id))
            continue
        readers = tuple(sorted(listing.readers))
        target.append(ImageRecord(image_id, str(path), listing.patient_id, tuple(listing.boxes), readers))
    if ds.max_negatives is not None and len(negatives) > ds.max_negatives:
        log.notes["negatives_sampled_out"] += len(negatives) - ds.max_negatives
        negatives = sorted(random.Random(seed).sample(negatives, ds.max_negatives), key=lambda r: r.image_id)
    return sorted(positives + negatives, key=lambda r: r.image_id)
