"""Horizontal-flip test-time augmentation: un-flip the flipped image's boxes, fuse both sets with
weighted boxes fusion (ensemble-boxes).

    boxes, scores, labels = merge_flip((b, s, l), (fb, fs, fl), width=w, height=h)

WBF averages the coordinates of overlapping same-class boxes weighted by score, and averages the
scores over both views: a box seen in one view only keeps half its score.
"""

from __future__ import annotations

import warnings

import numpy as np

Detections = tuple[np.ndarray, np.ndarray, np.ndarray]  # boxes (N, 4) xyxy pixels, scores (N,), labels (N,)


def hflip_boxes(boxes: np.ndarray, width: float) -> np.ndarray:
    """Mirror xyxy boxes about the vertical centre line of an image `width` pixels wide."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return np.stack([width - boxes[:, 2], boxes[:, 1], width - boxes[:, 0], boxes[:, 3]], axis=1)


def merge_flip(
    original: Detections, flipped: Detections, width: int, height: int, iou_thr: float = 0.55, skip_box_thr: float = 0.0
) -> Detections:
    """Fuse detections on the image with those on its mirror image (given in mirrored coordinates)."""
    from ensemble_boxes import weighted_boxes_fusion

    scale = np.array([width, height, width, height], dtype=np.float64)
    views = [np.asarray(original[0], dtype=np.float64).reshape(-1, 4), hflip_boxes(flipped[0], width)]
    with warnings.catch_warnings():  # zero-area boxes are dropped with a warning each
        warnings.simplefilter("ignore")
        boxes, scores, labels = weighted_boxes_fusion(
            [np.clip(b / scale, 0.0, 1.0).tolist() for b in views],
            [np.asarray(original[1], dtype=np.float64).tolist(), np.asarray(flipped[1], dtype=np.float64).tolist()],
            [np.asarray(original[2]).astype(int).tolist(), np.asarray(flipped[2]).astype(int).tolist()],
            iou_thr=iou_thr,
            skip_box_thr=skip_box_thr,
            conf_type="avg",
        )
    return (
        np.asarray(boxes, dtype=np.float64).reshape(-1, 4) * scale,
        np.asarray(scores, dtype=np.float64),
        np.asarray(labels).astype(np.int64),
    )
