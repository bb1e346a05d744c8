"""VinDr-CXR / VinBigData importer: train.csv (one row per reader and box) + DICOMs -> image records.

    image_id,class_name,class_id,rad_id,x_min,y_min,x_max,y_max
    50a418190bc3fb1ef1633bf9678929b3,No finding,14,R11,,,,
    9a5094b2563a1ef3ff50dc5c7ff71345,Cardiomegaly,3,R10,691,1375,1653,1831

The class comes from `class_name` (matched case-insensitively to dataset.classes); `class_id` is not
trusted. `rad_id` is optional (PhysioNet's annotations_train.csv has it, others may not). An exact repeat
of a row is skipped and counted (`duplicate_rows`): it would otherwise become a second label box.
"""

from __future__ import annotations

import csv
from pathlib import Path

from xray_exp.prepare.config import SourceDatasetConfig
from xray_exp.prepare.records import (
    MALFORMED_ROW,
    UNKNOWN_CLASS,
    ImageRecord,
    Issue,
    IssueLog,
    PrepareError,
    RawBox,
)
from xray_exp.prepare.sources.common import (
    Listing,
    build_records,
    index_images,
    is_repeated_row,
    parse_box,
    read_required,
)

REQUIRED_COLUMNS = ("image_id", "class_name", "x_min", "y_min", "x_max", "y_max")


def parse_vindr_csv(path: Path, ds: SourceDatasetConfig, log: IssueLog) -> dict[str, Listing]:
    """Read the box CSV into per-image listings; bad rows become issues in `log`."""
    class_ids = {name.casefold(): i for i, name in enumerate(ds.classes)}
    ignored = {name.casefold() for name in ds.ignore_classes}
    normal = ds.no_finding.casefold()
    listings: dict[str, Listing] = {}
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        columns = {(name or "").strip() for name in reader.fieldnames or ()}
        missing = [c for c in REQUIRED_COLUMNS if c not in columns]
        if missing:
            raise PrepareError(f"{path}: missing column(s) {missing}; the header is {sorted(columns)}")
        reader.fieldnames = [(name or "").strip() for name in reader.fieldnames or ()]
        seen: set[tuple[str, ...]] = set()
        for line, row in enumerate(reader, start=2):
            if is_repeated_row((str(value) for value in row.values()), seen, log):
                continue
            where = f"{path.name} line {line}"
            image_id = (row.get("image_id") or "").strip()
            if not image_id:
                log.add(Issue(MALFORMED_ROW, f"{where}: empty image_id"))
                continue
            listing = listings.setdefault(image_id, Listing())
            listing.readers.add((row.get("rad_id") or "").strip())
            name = (row.get("class_name") or "").strip()
            if name.casefold() == normal:
                listing.normal_rows += 1
                continue
            listing.finding_rows += 1
            if name.casefold() in ignored:
                log.notes["ignored_class_rows"] += 1
                continue
            class_id = class_ids.get(name.casefold())
            if class_id is None:
                log.add(Issue(UNKNOWN_CLASS, f"{where}: class_name {name!r} is not in dataset.classes", image_id))
                continue
            coords = {key: row.get(key) for key in ("x_min", "y_min", "x_max", "y_max")}
            box = parse_box(coords, where, image_id, log)
            if box is not None:
                listing.boxes.append(RawBox(class_id, *box, reader=(row.get("rad_id") or "").strip()))
    return listings


def load_vindr(source: Path, ds: SourceDatasetConfig, log: IssueLog, seed: int) -> list[ImageRecord]:
    """Records for every image train.csv lists; the patient comes from the DICOM header later."""
    listings = parse_vindr_csv(read_required(source, ds.annotations, "dataset.annotations"), ds, log)
    files = index_images(source, ds, log)
    unlisted = len(set(files) - set(listings))
    if unlisted:
        log.notes["unlisted_image_files"] += unlisted
    return build_records(source, listings, files, ds, log, seed)
