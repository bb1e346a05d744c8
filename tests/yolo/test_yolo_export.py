"""ONNX parity's detection matching (xray_exp.yolo.export.match_detections), by hand."""

from __future__ import annotations

import numpy as np

from xray_exp.yolo.export import match_detections


def dets(boxes, classes, scores) -> dict:
    return {
        "xyxy": np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
        "cls": np.asarray(classes, dtype=np.float32),
        "conf": np.asarray(scores, dtype=np.float32),
    }


def test_counts_same_class_overlaps_above_the_iou_threshold():
    ref = dets(
        [[0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50], [60, 60, 70, 70]], [0, 1, 2, 3], [0.9, 0.8, 0.7, 0.255]
    )
    # box 0: IoU 0.6 (shift 2.5 px of 10 -> 75/125), same class; box 1: IoU 1, other class; box 2: IoU 1/3
    other = dets([[2.5, 0, 12.5, 10], [20, 20, 30, 30], [45, 40, 55, 50]], [0, 0, 2], [0.9, 0.8, 0.7])
    # the 4th reference box (0.255) lies within the 0.01 margin above conf 0.25: left out
    assert match_detections(ref, other, iou_thr=0.6, conf=0.25) == (1, 3)
    assert match_detections(ref, other, iou_thr=0.61, conf=0.25) == (0, 3)
    assert match_detections(ref, other, iou_thr=1 / 3 - 1e-6, conf=0.25) == (2, 3)
    assert match_detections(ref, other, iou_thr=0.6, conf=0.25, margin=0.0) == (1, 4)


def test_nothing_to_compare_and_nothing_reproduced():
    ref = dets([[0, 0, 10, 10]], [0], [0.9])
    assert match_detections(dets([], [], []), ref, iou_thr=0.5, conf=0.25) == (0, 0)
    assert match_detections(ref, dets([], [], []), iou_thr=0.5, conf=0.25) == (0, 1)
