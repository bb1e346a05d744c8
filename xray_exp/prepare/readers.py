"""Reader rules of multi-reader sources (VinDr-CXR: three radiologists per training image): readers left out,
a minimum number of readers per fused box, and how many readers drew every kept box (manifest.csv
`box_readers`, in label-file order).

    python -m xray_exp.prepare dataset=vindr_cxr source=/data/vinbigdata readers.exclude=[R8,R9,R10] \
        fusion.min_readers=2

A box's readers: the distinct readers with a box of the same class at IoU >= fusion.iou_thr with it (the fused
box for wbf/nms, each drawn box for none). `fusion.min_readers` drops boxes fewer readers drew; an image read by
fewer readers than that keeps its boxes (nothing to agree on). prepare_report.json counts what each rule
dropped: `excluded_reader_boxes`, `images_only_excluded_readers`, `boxes_below_min_readers`,
`images_below_min_readers` (every finding dropped: left out, not made normal).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from xray_exp.prepare.records import ImageRecord, IssueLog


def exclude_readers(records: list[ImageRecord], exclude: Sequence[str], log: IssueLog) -> list[ImageRecord]:
    """The records without the excluded readers' boxes and reads; an image only they read is left out."""
    excluded = {str(r).strip() for r in exclude}
    if not excluded:
        return records
    out = []
    for record in records:
        boxes = tuple(b for b in record.boxes if b.reader not in excluded)
        readers = tuple(r for r in record.readers if r not in excluded)
        log.notes["excluded_reader_boxes"] += len(record.boxes) - len(boxes)
        if record.readers and not readers:
            log.notes["images_only_excluded_readers"] += 1
            continue
        out.append(replace(record, boxes=boxes, readers=readers))
    return out


def _iou(box: Sequence[float], others: np.ndarray) -> np.ndarray:
    x1, y1 = np.maximum(box[0], others[:, 0]), np.maximum(box[1], others[:, 1])
    x2, y2 = np.minimum(box[2], others[:, 2]), np.minimum(box[3], others[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1]) + (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    return inter / np.maximum(area - inter, 1e-9)


def reader_counts(fused: Sequence, drawn: Sequence, iou_thr: float) -> list[int]:
    """Per fused box (class, box, score): distinct readers with a same-class drawn box (class, box, reader)
    at IoU >= iou_thr."""
    counts = []
    for cls, box, _ in fused:
        mine = [(b, r) for c, b, r in drawn if c == cls]
        if not mine:
            counts.append(0)
            continue
        ious = _iou(box, np.asarray([b for b, _ in mine], dtype=np.float64))
        counts.append(len({r for (_, r), iou in zip(mine, ious, strict=True) if iou + 1e-9 >= iou_thr}))
    return counts


def keep_min_readers(fused: list, counts: list[int], n_readers: int, min_readers: int) -> tuple[list, list[int], int]:
    """The fused boxes (and counts) at least `min_readers` readers drew; (kept, their counts, dropped)."""
    if min_readers <= 1 or n_readers < min_readers:
        return fused, counts, 0
    keep = [i for i, n in enumerate(counts) if n >= min_readers]
    return [fused[i] for i in keep], [counts[i] for i in keep], len(fused) - len(keep)
