"""Write a labelled image set as a labelling tool's export (COCO JSON, CSV box table, Pascal VOC XML) for the
importer tests. Written independently of the importers, with the standard library only.

    items = {"a": Labelled(Path("a.png"), [("Nodule", 10, 20, 90, 80)], patient="P1")}
    write_coco(root, items, ["Nodule"])   # root/annotations.json + root/images/a.png (a link)
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape


@dataclass
class Labelled:
    file: Path  # the image file (linked into the export, keeping its name)
    boxes: list[tuple[str, float, float, float, float]] = field(default_factory=list)  # label, x1, y1, x2, y2
    patient: str | None = None


def link_images(root: Path, items: dict[str, Labelled], folder: str = "images") -> None:
    (root / folder).mkdir(parents=True, exist_ok=True)
    for item in items.values():
        target = root / folder / item.file.name
        if not target.exists():
            os.symlink(item.file.resolve(), target)


def write_coco(root: Path, items: dict[str, Labelled], categories: list[str], patients: bool = True) -> Path:
    """annotations.json with 1-based ids, categories numbered from 1 in the given order."""
    root.mkdir(parents=True, exist_ok=True)
    link_images(root, items)
    category_ids = {name: i for i, name in enumerate(categories, start=1)}
    images, annotations = [], []
    for image_number, item in enumerate(items.values(), start=1):
        image = {"id": image_number, "file_name": item.file.name, "width": 0, "height": 0}
        if patients and item.patient is not None:
            image["patient_id"] = item.patient
        images.append(image)
        for label, x1, y1, x2, y2 in item.boxes:
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_number,
                    "category_id": category_ids[label],
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "area": (x2 - x1) * (y2 - y1),
                    "iscrowd": 0,
                }
            )
    data = {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": i, "name": name} for name, i in category_ids.items()],
    }
    path = root / "annotations.json"
    path.write_text(json.dumps(data, indent=1))
    return path


def write_csv(root: Path, items: dict[str, Labelled], header: tuple[str, ...] | None = None) -> Path:
    """annotations.csv: one row per box; an image without boxes gets one row with empty coordinates."""
    root.mkdir(parents=True, exist_ok=True)
    link_images(root, items)
    header = header or ("image", "x_min", "y_min", "x_max", "y_max", "label", "patient_id")
    path = root / "annotations.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for item in items.values():
            patient = item.patient or ""
            if not item.boxes:
                writer.writerow([item.file.name, "", "", "", "", "", patient])
            for label, x1, y1, x2, y2 in item.boxes:
                writer.writerow([item.file.name, repr(x1), repr(y1), repr(x2), repr(y2), label, patient])
    return path


def voc_xml(file_name: str, boxes, difficult: set[int] = frozenset()) -> str:
    objects = "".join(
        f"<object><name>{escape(label)}</name><difficult>{int(i in difficult)}</difficult>"
        f"<bndbox><xmin>{x1!r}</xmin><ymin>{y1!r}</ymin><xmax>{x2!r}</xmax><ymax>{y2!r}</ymax></bndbox></object>"
        for i, (label, x1, y1, x2, y2) in enumerate(boxes)
    )
    return f"<annotation><folder>images</folder><filename>{escape(file_name)}</filename>{objects}</annotation>\n"


def write_voc(root: Path, items: dict[str, Labelled], folder: str = "images") -> Path:
    """Annotations/<image>.xml per image, images in `folder`, and patients.csv (VOC has no patient field)."""
    (root / "Annotations").mkdir(parents=True, exist_ok=True)
    link_images(root, items, folder)
    for item in items.values():
        (root / "Annotations" / f"{item.file.stem}.xml").write_text(voc_xml(item.file.name, item.boxes))
    write_patients(root / "patients.csv", items)
    return root / "Annotations"


def write_patients(path: Path, items: dict[str, Labelled]) -> Path:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "patient"])
        writer.writerows([item.file.name, item.patient] for item in items.values() if item.patient)
    return path
