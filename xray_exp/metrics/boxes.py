"""Box geometry: pairwise IoU of xyxy boxes.

ious = box_iou(a, b)   # (N, 4), (M, 4) -> (N, M)
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray


def box_area(boxes: ArrayLike) -> NDArray[np.float64]:
    xyxy = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return (xyxy[:, 2] - xyxy[:, 0]) * (xyxy[:, 3] - xyxy[:, 1])


def box_iou(a: ArrayLike, b: ArrayLike) -> NDArray[np.float64]:
    """Intersection over union of every box in `a` with every box in `b` (continuous, no +1)."""
    box_a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    box_b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    top_left = np.maximum(box_a[:, None, :2], box_b[None, :, :2])
    bottom_right = np.minimum(box_a[:, None, 2:], box_b[None, :, 2:])
    inter: NDArray[np.float64] = np.prod(np.clip(bottom_right - top_left, 0, None), axis=2)
    union = box_area(box_a)[:, None] + box_area(box_b)[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
