"""One split of a YOLO-format dataset as images + ground-truth records (xyxy pixels).

    split = load_split("data.yaml", "test")        # names, images (id, image path, label path)
    gt = read_ground_truth(split.images[0], width=320, height=320)

data.yaml: `path` (relative to the data.yaml's folder), `train`/`val`/`test` as folders, .txt lists
or lists of those, `names`. Labels sit in `labels/` next to `images/`: `cls xc yc w h` normalised
(polygon lines `cls x1 y1 x2 y2 ...` become their bounding box); no label file = a normal image.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from xray_exp.data.validate import label_path, list_split_images, load_data_yaml, parse_names
from xray_exp.errors import DatasetError


@dataclass(frozen=True)
class SplitImage:
    image_id: str  # file stem: the VinBigData submission's image_id
    path: Path
    label_path: Path


@dataclass
class YoloSplit:
    data_yaml: Path
    split: str
    names: list[str]
    images: list[SplitImage]


def load_split(data_yaml: str | Path, split: str) -> YoloSplit:
    data, root = load_data_yaml(data_yaml)
    data_yaml = Path(data_yaml).expanduser().resolve()
    names = parse_names(data, data_yaml)
    if data.get(split) in (None, ""):
        raise DatasetError(
            f"{data_yaml}: no '{split}' split. Fix: add `{split}: images/{split}` or pick another split (split=val)."
        )
    paths, problems = list_split_images(data[split], root)
    if problems:
        raise DatasetError(f"{data_yaml}: split '{split}': " + "; ".join(problems))
    if not paths:
        raise DatasetError(f"{data_yaml}: split '{split}' has no images under {data[split]!r} (root {root})")
    images = [SplitImage(p.stem, p, label_path(p)) for p in paths]
    seen: dict[str, Path] = {}
    for image in images:
        if image.image_id in seen:
            raise DatasetError(
                f"two images share the id {image.image_id!r}: {seen[image.image_id]} and "
                f"{image.path}. Image ids are file stems; rename one."
            )
        seen[image.image_id] = image.path
    return YoloSplit(data_yaml, split, [names[i] for i in range(len(names))], images)


def parse_label_text(text: str, width: int, height: int, source: str = "labels") -> tuple[np.ndarray, np.ndarray]:
    """YOLO label text -> (boxes (N, 4) xyxy pixels, labels (N,))."""
    boxes, labels = [], []
    for n, line in enumerate(text.splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        try:
            cls, values = int(float(parts[0])), np.array(parts[1:], dtype=np.float64)
        except ValueError as exc:
            raise DatasetError(f"{source} line {n}: not numeric: {line.strip()!r}") from exc
        if len(values) == 4:
            xc, yc, w, h = values
            box = [xc - w / 2, yc - h / 2, xc + w / 2, yc + h / 2]
        elif len(values) >= 6 and len(values) % 2 == 0:
            xs, ys = values[0::2], values[1::2]
            box = [xs.min(), ys.min(), xs.max(), ys.max()]
        else:
            raise DatasetError(f"{source} line {n}: expected 'class xc yc w h', got {len(parts)} values")
        boxes.append(np.clip(box, 0.0, 1.0) * [width, height, width, height])
        labels.append(cls)
    return np.array(boxes, dtype=np.float64).reshape(-1, 4), np.array(labels, dtype=np.int64)


def read_ground_truth(image: SplitImage, width: int, height: int) -> dict:
    """The ground-truth record of one image (plus its path and size, used by the report)."""
    text = image.label_path.read_text() if image.label_path.is_file() else ""
    boxes, labels = parse_label_text(text, width, height, source=str(image.label_path))
    return {
        "image_id": image.image_id,
        "boxes": boxes,
        "labels": labels,
        "path": str(image.path),
        "width": int(width),
        "height": int(height),
    }


MANIFEST = "manifest.csv"  # written by xray_exp.prepare next to data.yaml: image_id, patient_id, split, ...


def patient_groups(data_yaml: str | Path, image_ids: list[str]) -> list[str] | None:
    """Patient id of each image (same order) from the dataset's manifest.csv, for bootstrap resampling by
    patient; None when there is no manifest or it does not list every image (resampling by image then)."""
    import csv

    data_yaml = Path(data_yaml).expanduser().resolve()
    _, root = load_data_yaml(data_yaml)
    for folder in dict.fromkeys([data_yaml.parent, Path(root)]):
        manifest = folder / MANIFEST
        if manifest.is_file():
            break
    else:
        return None
    with manifest.open(newline="", encoding="utf-8") as f:
        patients = {
            row["image_id"]: row["patient_id"]
            for row in csv.DictReader(f)
            if row.get("image_id") and row.get("patient_id")
        }
    if not all(i in patients for i in image_ids):
        return None
    return [patients[i] for i in image_ids]
