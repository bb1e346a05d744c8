"""NIH ChestX-ray14 importer: BBox_List_2017.csv + Data_Entry_2017.csv + PNGs -> image records.

    Image Index,Finding Label,Bbox [x,y,w,h],,,
    00013118_008.png,Atelectasis,225.08,547.01,86.77,79.18

The box header's `Bbox [x,y,w,h]` splits into four columns and trailing empty ones follow, so rows are
read by position; an exact repeat of a row is skipped and counted (`duplicate_rows`). Boxed images and
(dataset.negatives) "No Finding" ones on disk become records; a boxed image not on disk is a `missing_image`
issue. Images with findings but no box are neither and are counted as `unboxed_findings`.
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
    image_id_of,
    index_images,
    is_repeated_row,
    parse_box,
    read_required,
)

LABEL_COLUMNS = ("Image Index", "Finding Labels", "Patient ID")


def _trim(row: list[str]) -> list[str]:
    """Drop trailing empty cells (the official CSVs end their header, sometimes rows, with commas)."""
    end = len(row)
    while end and not row[end - 1].strip():
        end -= 1
    return row[:end]


def parse_bbox_csv(path: Path, ds: SourceDatasetConfig, log: IssueLog) -> dict[str, Listing]:
    """`Image Index, Finding Label, x, y, w, h` rows -> per-image listings with boxes."""
    class_ids = {name.casefold(): i for i, name in enumerate(ds.classes)}
    ignored = {name.casefold() for name in ds.ignore_classes}
    listings: dict[str, Listing] = {}
    seen: set[tuple[str, ...]] = set()
    with open(path, newline="", encoding="utf-8-sig") as handle:
        for line, raw in enumerate(csv.reader(handle), start=1):
            row = _trim(raw)
            if not row or (line == 1 and row[0].strip() == "Image Index") or is_repeated_row(row, seen, log):
                continue
            where = f"{path.name} line {line}"
            if len(row) != 6 or not row[0].strip():
                log.add(Issue(MALFORMED_ROW, f"{where}: expected 6 fields (image, label, x, y, w, h), got {row}"))
                continue
            image_id = image_id_of(row[0], ds)
            listing = listings.setdefault(image_id, Listing())
            listing.finding_rows += 1
            name = row[1].strip()
            if name.casefold() in ignored:
                log.notes["ignored_class_rows"] += 1
                continue
            class_id = class_ids.get(name.casefold())
            if class_id is None:
                log.add(Issue(UNKNOWN_CLASS, f"{where}: Finding Label {name!r} is not in dataset.classes", image_id))
                continue
            box = parse_box(dict(zip(("x", "y", "w", "h"), row[2:6], strict=True)), where, image_id, log, xywh=True)
            if box is not None:
                listing.boxes.append(RawBox(class_id, *box))
    return listings


def read_image_labels(path: Path, wanted: set[str], ds: SourceDatasetConfig) -> dict[str, tuple[list[str], str]]:
    """Data_Entry_2017.csv -> {image id: (finding labels, patient id)} for the `wanted` images only."""
    out: dict[str, tuple[list[str], str]] = {}
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = [cell.strip() for cell in next(reader, [])]
        missing = [c for c in LABEL_COLUMNS if c not in header]
        if missing:
            raise PrepareError(f"{path}: missing column(s) {missing}; the header is {header}")
        i_image, i_labels, i_patient = (header.index(c) for c in LABEL_COLUMNS)
        for row in reader:
            if len(row) <= max(i_image, i_labels, i_patient):
                continue
            image_id = image_id_of(row[i_image], ds)
            if image_id in wanted:
                labels = [label.strip() for label in row[i_labels].split("|") if label.strip()]
                out[image_id] = (labels, row[i_patient].strip())
    return out


def load_nih(source: Path, ds: SourceDatasetConfig, log: IssueLog, seed: int) -> list[ImageRecord]:
    listings = parse_bbox_csv(read_required(source, ds.annotations, "dataset.annotations"), ds, log)
    files = index_images(source, ds, log)
    labels: dict[str, tuple[list[str], str]] = {}
    if ds.image_level_labels:
        labels_csv = read_required(source, ds.image_level_labels, "dataset.image_level_labels")
        labels = read_image_labels(labels_csv, set(files) | set(listings), ds)
    boxed_names = {name.casefold() for name in ds.classes}
    aliases = {k.casefold(): v.casefold() for k, v in ds.label_aliases.items()}
    normal = ds.no_finding.casefold()
    for image_id, listing in listings.items():
        findings, patient = labels.get(image_id, ([], ""))
        listing.patient_id = patient or None
        boxed = {ds.classes[b.class_id].casefold() for b in listing.boxes}
        named = {aliases.get(f.casefold(), f.casefold()) for f in findings} - {normal}
        if listing.boxes and image_id in files and named - boxed:
            log.notes["boxed_with_unboxed_findings"] += 1
            if named & boxed_names - boxed:
                log.notes["boxed_missing_boxable_findings"] += 1
    for image_id in sorted(set(files) - set(listings)):
        if image_id not in labels:
            log.notes["unlisted_image_files"] += 1
            continue
        findings, patient = labels[image_id]
        if [f.casefold() for f in findings] == [normal]:
            listings[image_id] = Listing(normal_rows=1, patient_id=patient or None)
        else:
            log.notes["unboxed_findings"] += 1
    return build_records(source, listings, files, ds, log, seed)
