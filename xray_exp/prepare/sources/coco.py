"""COCO importer: annotations.json (images, annotations, categories) + image files -> image records.

    python -m xray_exp.prepare dataset=coco source=/data/export      # annotations.json + images/

    {"images": [{"id": 1, "file_name": "a.png", "patient_id": "P001"}],
     "annotations": [{"id": 7, "image_id": 1, "category_id": 2, "bbox": [120, 340, 140, 130]}],
     "categories": [{"id": 2, "name": "Nodule"}]}

Boxes are `[x, y, w, h]` in pixels of the original image; categories are matched by name (classes: [] takes
them in id order). An image without annotations is a background image. An annotation on an image id the
`images` list lacks is a `missing_image` issue naming the annotation; a listed image without a file too.
"""

from __future__ import annotations

import json
from pathlib import Path

from xray_exp.prepare.config import SourceDatasetConfig
from xray_exp.prepare.records import (
    BAD_BOX,
    DUPLICATE_ANNOTATION,
    MALFORMED_ANNOTATION,
    MISSING_IMAGE,
    UNKNOWN_CLASS,
    ImageRecord,
    Issue,
    IssueLog,
    PrepareError,
)
from xray_exp.prepare.sources.common import read_required
from xray_exp.prepare.sources.export import ExportImage, Mark, export_records, image_id_for, resolve_classes


def read_coco_json(path: Path) -> dict:
    """The parsed file; a file that is not a COCO object is a PrepareError naming the file and place."""
    try:
        data = json.loads(path.read_bytes())
    except json.JSONDecodeError as exc:
        raise PrepareError(f"{path}: not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except UnicodeDecodeError as exc:
        raise PrepareError(f"{path}: not UTF-8 text ({exc})") from None
    if not isinstance(data, dict):
        raise PrepareError(f"{path}: expected a COCO object with images, annotations, categories")
    for key in ("images", "categories"):
        if not isinstance(data.get(key), list):
            raise PrepareError(f"{path}: no {key!r} list (a COCO file has images, annotations and categories)")
    if not isinstance(data.get("annotations", []), list):
        raise PrepareError(f"{path}: 'annotations' is not a list")
    return data


def _id(value) -> int | str | None:
    """A COCO id: an integer or a non-empty string (bool is not an id)."""
    if isinstance(value, bool) or not isinstance(value, int | str) or value == "":
        return None
    return value


def read_categories(data: dict, name: str, log: IssueLog) -> dict[int | str, str]:
    categories: dict[int | str, str] = {}
    for i, entry in enumerate(data["categories"]):
        where = f"{name} categories[{i}]"
        entry = entry if isinstance(entry, dict) else {}
        cat_id, label = _id(entry.get("id")), entry.get("name")
        if cat_id is None or not isinstance(label, str) or not label.strip():
            log.add(Issue(MALFORMED_ANNOTATION, f"{where}: needs an id and a name, got {entry!r}"))
        elif cat_id in categories:
            log.add(Issue(MALFORMED_ANNOTATION, f"{where}: category id {cat_id!r} is listed twice"))
        else:
            categories[cat_id] = label.strip()
    return categories


def read_images(
    data: dict, name: str, ds: SourceDatasetConfig, log: IssueLog
) -> tuple[dict[str, ExportImage], dict[int | str, str]]:
    """-> ({image id: image}, {COCO image id: image id})."""
    images: dict[str, ExportImage] = {}
    by_coco_id: dict[int | str, str] = {}
    for i, entry in enumerate(data["images"]):
        entry = entry if isinstance(entry, dict) else {}
        coco_id, file_name = _id(entry.get("id")), entry.get("file_name")
        where = f"{name} images[{i}] (id {coco_id!r})"
        if coco_id is None or not isinstance(file_name, str) or not file_name.strip():
            log.add(Issue(MALFORMED_ANNOTATION, f"{where}: needs an id and a file_name, got {entry!r}"))
            continue
        image_id = image_id_for(file_name, ds)
        if image_id is None:
            message = f"{where}: file_name {file_name!r} is not a path inside the image folders"
            log.add(Issue(MALFORMED_ANNOTATION, message))
            continue
        if coco_id in by_coco_id:
            log.add(Issue(MALFORMED_ANNOTATION, f"{where}: image id {coco_id!r} is listed twice", image_id))
            continue
        if image_id in images:
            message = f"{where}: {file_name!r} is listed again (first {images[image_id].where}); boxes merged"
            log.add(Issue(DUPLICATE_ANNOTATION, message, image_id))
        else:
            patient = entry.get("patient_id")
            patient = str(patient).strip() if patient not in (None, "") else None
            images[image_id] = ExportImage(image_id, where, file_name, patient_id=patient or None)
        by_coco_id[coco_id] = image_id
    return images, by_coco_id


def read_annotations(data: dict, name: str, by_coco_id: dict, categories: dict, log: IssueLog) -> list[Mark]:
    marks = []
    for i, entry in enumerate(data.get("annotations", [])):
        entry = entry if isinstance(entry, dict) else {}
        where = f"{name} annotations[{i}] (id {entry.get('id')!r})"
        image_id = by_coco_id.get(_id(entry.get("image_id")))
        if image_id is None:
            message = f"{where}: a box on image_id {entry.get('image_id')!r}, which is not in images"
            log.add(Issue(MISSING_IMAGE, message, str(entry.get("image_id", ""))))
            continue
        label = categories.get(_id(entry.get("category_id")))
        if label is None:
            message = f"{where}: category_id {entry.get('category_id')!r} is not in categories"
            log.add(Issue(UNKNOWN_CLASS, message, image_id))
            continue
        bbox = entry.get("bbox")
        if not isinstance(bbox, list) or len(bbox) != 4:
            log.add(Issue(BAD_BOX, f"{where}: bbox {bbox!r} is not [x, y, w, h]", image_id))
            continue
        marks.append(Mark(image_id, label, dict(zip(("x", "y", "w", "h"), bbox, strict=True)), where, xywh=True))
    return marks


def load_coco(source: Path, ds: SourceDatasetConfig, log: IssueLog, seed: int) -> list[ImageRecord]:
    path = read_required(source, ds.annotations, "dataset.annotations")
    data = read_coco_json(path)
    categories = read_categories(data, path.name, log)
    numeric = all(isinstance(key, int) for key in categories)
    ordered = sorted(categories) if numeric else list(categories)
    resolve_classes(ds, [categories[key] for key in ordered], path.name)
    images, by_coco_id = read_images(data, path.name, ds, log)
    marks = read_annotations(data, path.name, by_coco_id, categories, log)
    return export_records(source, images, marks, ds, log, seed)
