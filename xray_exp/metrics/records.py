"""Per-image detection records, the data model of every metric in this package.

    pred = {"image_id": "a", "boxes": [[x1, y1, x2, y2]], "scores": [0.9], "labels": [2]}
    gt = {"image_id": "a", "boxes": [[x1, y1, x2, y2]], "labels": [2]}   # no boxes: a normal image
    pairs = pair_records(preds, gts)   # [(pred ImageBoxes, gt ImageBoxes)] in ground-truth order

Boxes are xyxy pixels. Ground truth defines the image set: an image without a prediction record
has no detections; a prediction for an image that is not in the ground truth is an error.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np
from numpy.typing import NDArray

Record: TypeAlias = Mapping[str, Any]  # one image's prediction or ground-truth record (see above)


@dataclass(frozen=True)
class ImageBoxes:
    """One image's boxes (N, 4) xyxy, integer labels (N,) and scores (N,) (ones for ground truth)."""

    image_id: str
    boxes: NDArray[np.float64]
    labels: NDArray[np.int64]
    scores: NDArray[np.float64]

    def __len__(self) -> int:
        return len(self.labels)


def as_image_boxes(record: Record, scored: bool) -> ImageBoxes:
    """Validate one record and convert it to arrays; `scored` records must carry `scores`."""
    image_id = str(record["image_id"])
    boxes = np.asarray(record.get("boxes", []), dtype=np.float64).reshape(-1, 4)
    labels = np.asarray(record.get("labels", []))
    if labels.size and not np.all(np.mod(labels, 1) == 0):
        raise ValueError(f"image {image_id}: labels must be integer class ids, got {labels}")
    labels = labels.astype(np.int64).reshape(-1)
    if scored:
        if "scores" not in record:
            raise ValueError(f"image {image_id}: prediction record has no 'scores'")
        scores = np.asarray(record["scores"], dtype=np.float64).reshape(-1)
    else:
        scores = np.ones(len(labels), dtype=np.float64)
    if not len(boxes) == len(labels) == len(scores):
        raise ValueError(f"image {image_id}: {len(boxes)} boxes, {len(labels)} labels, {len(scores)} scores")
    if not (np.isfinite(boxes).all() and np.isfinite(scores).all()):
        raise ValueError(f"image {image_id}: boxes and scores must be finite")
    if np.any(boxes[:, 2:] < boxes[:, :2]):
        raise ValueError(f"image {image_id}: boxes must be xyxy with x2 >= x1 and y2 >= y1")
    if np.any(labels < 0):
        raise ValueError(f"image {image_id}: negative class id")
    return ImageBoxes(image_id, boxes, labels, scores)


def pair_records(preds: Sequence[Record], gts: Sequence[Record]) -> list[tuple[ImageBoxes, ImageBoxes]]:
    """Pair prediction and ground-truth records by image_id, in ground-truth order."""
    gt_boxes = [as_image_boxes(g, scored=False) for g in gts]
    ids = [g.image_id for g in gt_boxes]
    if len(set(ids)) != len(ids):
        raise ValueError("duplicate image_id in the ground truth")
    by_id: dict[str, ImageBoxes] = {}
    for record in preds:
        p = as_image_boxes(record, scored=True)
        if p.image_id in by_id:
            raise ValueError(f"duplicate image_id {p.image_id!r} in the predictions")
        by_id[p.image_id] = p
    unknown = set(by_id) - set(ids)
    if unknown:
        raise ValueError(f"predictions for images not in the ground truth: {sorted(unknown)[:5]}")
    empty = np.zeros((0, 4)), np.zeros(0, np.int64), np.zeros(0)
    return [(by_id[g.image_id] if g.image_id in by_id else ImageBoxes(g.image_id, *empty), g) for g in gt_boxes]


def check_labels(pairs: list[tuple[ImageBoxes, ImageBoxes]], num_classes: int) -> None:
    """Every class id must be below num_classes (a model trained on other classes fails here)."""
    for pred, gt in pairs:
        for kind, boxes in (("prediction", pred), ("ground truth", gt)):
            if len(boxes) and boxes.labels.max() >= num_classes:
                raise ValueError(
                    f"image {boxes.image_id}: {kind} class id {boxes.labels.max()} >= number of classes {num_classes}"
                )
