"""CSV box-table importer: one row per box (annotations.csv) + image files -> image records.

    python -m xray_exp.prepare dataset=csv source=/data/export       # annotations.csv + images/

    image,x_min,y_min,x_max,y_max,label,patient_id
    a.png,120,340,260,470,Nodule,P001
    b.png,,,,,,P002

Pixels of the original image. A row without a box (all four coordinates empty) and without a label (or with
the `no_finding` label) is an image without findings. `patient_id` is optional; every column name can be
changed (dataset.columns.image=filename ...). classes: [] takes the labels in alphabetical order.
"""

from __future__ import annotations

import csv
from pathlib import Path

from xray_exp.prepare.config import SourceDatasetConfig
from xray_exp.prepare.records import MALFORMED_ROW, ImageRecord, Issue, IssueLog, PrepareError
from xray_exp.prepare.sources.common import read_required
from xray_exp.prepare.sources.export import ExportImage, Mark, export_records, image_id_for, resolve_classes

BOX_KEYS = ("x_min", "y_min", "x_max", "y_max")


def _column_check(path: Path, header: list[str], ds: SourceDatasetConfig) -> None:
    wanted = {key: getattr(ds.columns, key) for key in ("image", *BOX_KEYS, "label")}
    missing = [f"{name!r} (dataset.columns.{key})" for key, name in wanted.items() if name not in header]
    if missing:
        raise PrepareError(
            f"{path}: missing column(s) {', '.join(missing)}; the header is {header}. "
            "Name your columns with dataset.columns.<key>=<column>"
        )


def read_box_rows(path: Path, ds: SourceDatasetConfig, log: IssueLog) -> tuple[dict[str, ExportImage], list[Mark]]:
    columns = ds.columns
    images: dict[str, ExportImage] = {}
    marks: list[Mark] = []
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        header = [(name or "").strip() for name in reader.fieldnames or ()]
        _column_check(path, header, ds)
        reader.fieldnames = header
        with_patients = columns.patient_id in header
        for line, row in enumerate(reader, start=2):
            where = f"{path.name} line {line}"
            if None in row:
                log.add(Issue(MALFORMED_ROW, f"{where}: more fields than the header's {len(header)}"))
                continue
            name = (row.get(columns.image) or "").strip()
            image_id = image_id_for(name, ds) if name else None
            if image_id is None:
                message = f"{where}: {columns.image}={name!r} is not a file name inside the image folders"
                log.add(Issue(MALFORMED_ROW, message))
                continue
            image = images.setdefault(image_id, ExportImage(image_id, where, name, normal_if_unmarked=False))
            patient = (row.get(columns.patient_id) or "").strip() if with_patients else ""
            if patient and image.patient_id is None:
                image.patient_id = patient
            elif patient and patient != image.patient_id:
                log.notes["patient_id_conflicts"] += 1  # the first row's patient is kept
            coords = {getattr(columns, key): row.get(getattr(columns, key)) for key in BOX_KEYS}
            boxed = any((value or "").strip() for value in coords.values())
            marks.append(Mark(image_id, (row.get(columns.label) or "").strip(), coords if boxed else None, where))
    return images, marks


def load_csv_boxes(source: Path, ds: SourceDatasetConfig, log: IssueLog, seed: int) -> list[ImageRecord]:
    path = read_required(source, ds.annotations, "dataset.annotations")
    try:
        images, marks = read_box_rows(path, ds, log)
    except UnicodeDecodeError as exc:
        raise PrepareError(f"{path}: not UTF-8 text ({exc})") from None
    except csv.Error as exc:
        raise PrepareError(f"{path}: not a readable CSV ({exc})") from None
    labels = sorted({mark.label for mark in marks if mark.coords is not None}, key=str.casefold)
    resolve_classes(ds, labels, path.name)
    return export_records(source, images, marks, ds, log, seed)
