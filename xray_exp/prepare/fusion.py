"""Fuse several readers' boxes of one image into one label set, per class.

    fuse_boxes([(3, (10, 10, 50, 50), "R1"), (3, (12, 10, 52, 50), "R2")], ("R1", "R2", "R3"),
               width=100, height=100, method="wbf", iou_thr=0.4)
    # -> [(3, (11.0, 10.0, 51.0, 50.0), 0.667)]   score: share of the readers that drew it

wbf: ensemble_boxes' weighted boxes fusion (readers are its "models", every box scores 1);
nms: OpenCV's class-aware NMS; none: every box as drawn. One reader: nothing to fuse.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from xray_exp.prepare.boxes import Box

ReaderBox = tuple[int, Box, str]  # class id, box in pixels, reader
FusedBox = tuple[int, Box, float]  # class id, box in pixels, score


def fuse_boxes(
    boxes: Sequence[ReaderBox],
    readers: Sequence[str],
    width: int,
    height: int,
    method: str = "wbf",
    iou_thr: float = 0.4,
    skip_box_thr: float = 0.0,
) -> list[FusedBox]:
    """Boxes (already inside the image) -> fused boxes, sorted by class then position."""
    readers = sorted(set(readers) | {reader for _, _, reader in boxes})
    if method == "none" or len(readers) < 2 or not boxes:
        fused = [(c, box, 1.0) for c, box, _ in boxes]
    elif method == "wbf":
        fused = _wbf(boxes, readers, width, height, iou_thr, skip_box_thr)
    elif method == "nms":
        fused = _nms(boxes, iou_thr)
    else:
        raise ValueError(f"fusion.method must be wbf, nms or none, not {method!r}")
    return sorted(fused, key=lambda item: (item[0], item[1]))


def _wbf(boxes, readers, width, height, iou_thr, skip_box_thr) -> list[FusedBox]:
    from ensemble_boxes import weighted_boxes_fusion

    scale = np.array([width, height, width, height], dtype=np.float64)
    boxes_list, scores_list, labels_list = [], [], []
    for reader in readers:
        mine = [(c, box) for c, box, r in boxes if r == reader]
        boxes_list.append([list(np.asarray(box) / scale) for _, box in mine])
        scores_list.append([1.0] * len(mine))
        labels_list.append([c for c, _ in mine])
    out_boxes, scores, labels = weighted_boxes_fusion(
        boxes_list, scores_list, labels_list, iou_thr=iou_thr, skip_box_thr=0.0
    )
    fused = []
    for box, score, label in zip(out_boxes, scores, labels, strict=True):
        if score + 1e-9 >= skip_box_thr:
            x1, y1, x2, y2 = (round(float(v), 2) for v in np.asarray(box, dtype=np.float64) * scale)
            fused.append((int(label), (x1, y1, x2, y2), round(float(score), 4)))
    return fused


def _nms(boxes, iou_thr) -> list[FusedBox]:
    import cv2

    rects = [(x1, y1, x2 - x1, y2 - y1) for _, (x1, y1, x2, y2), _ in boxes]
    keep = cv2.dnn.NMSBoxesBatched(rects, [1.0] * len(boxes), [c for c, _, _ in boxes], 0.0, float(iou_thr))
    return [(boxes[i][0], boxes[i][1], 1.0) for i in sorted(int(i) for i in np.asarray(keep).ravel())]
