"""Clinical detection metrics: COCO AP cross-checked against torchmetrics (pycocotools backend);
image-level, confusion and failure lists on small hand-computed cases. VOC 2010 mAP@0.4:
test_metrics_voc.py; FROC: test_metrics_froc.py; bootstrap and paired comparison:
test_metrics_bootstrap.py.

    .venv/bin/pytest tests/metrics/test_metrics.py -q
"""

from __future__ import annotations

import posixpath
import re

import numpy as np
import pytest

from xray_exp.metrics import (
    average_precision,
    box_iou,
    confusion_matrix,
    detection_metrics,
    evaluate_records,
    flat_metrics,
    greedy_match,
    image_level_metrics,
    metric_key,
    pair_records,
    worst_false_negatives,
    worst_false_positives,
)
from xray_exp.metrics.ap import COCO_RECALL_POINTS


def rec(image_id, boxes=(), labels=(), scores=None):
    r = {"image_id": image_id, "boxes": np.asarray(boxes, dtype=float).reshape(-1, 4), "labels": np.asarray(labels)}
    if scores is not None:
        r["scores"] = np.asarray(scores, dtype=float)
    return r


def random_dataset(seed: int, n_images: int = 12, num_classes: int = 4, crowded: bool = False):
    """Ground truth in classes 0..2 (class 3 only ever predicted), jittered true detections with
    some wrong labels, random false positives, some normal images and images without predictions."""
    rng = np.random.default_rng(seed)
    preds, gts = [], []
    for i in range(n_images):
        n = int(rng.integers(0, 6))
        xy = rng.uniform(0, 400, (n, 2))
        gt_boxes = np.c_[xy, xy + rng.uniform(15, 110, (n, 2))]
        gt_labels = rng.integers(0, 3, n)
        gts.append(rec(f"img{i}", gt_boxes, gt_labels))
        found = rng.random(n) < 0.75
        jitter = rng.normal(0, 0.12, (found.sum(), 4)) * np.tile(gt_boxes[found, 2:] - gt_boxes[found, :2], 2)
        tp_boxes = gt_boxes[found] + jitter
        tp_labels = np.where(
            rng.random(found.sum()) < 0.85, gt_labels[found], rng.integers(0, num_classes, found.sum())
        )
        m = int(rng.integers(0, 150 if crowded else 7))
        xy = rng.uniform(0, 400, (m, 2))
        fp_boxes = np.c_[xy, xy + rng.uniform(10, 120, (m, 2))]
        boxes = np.r_[tp_boxes, fp_boxes]
        boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2] + 1)
        labels = np.r_[tp_labels, rng.integers(0, 1 if crowded else num_classes, m)]
        if i % 5 != 4:  # every fifth image has no prediction record
            preds.append(rec(f"img{i}", boxes, labels, rng.random(len(labels))))
    return preds, gts


TOL = 1e-5  # torchmetrics returns float32 values


def torchmetrics_map(preds, gts, iou_thresholds):
    import torch
    from torchmetrics.detection import MeanAveragePrecision

    # pycocotools' own recall points: torchmetrics' default is a float32 linspace, whose rounding moves
    # points that fall exactly on a recall value (k / n) to the next detection (differences ~1e-3).
    metric = MeanAveragePrecision(
        iou_thresholds=iou_thresholds,
        rec_thresholds=COCO_RECALL_POINTS.tolist(),
        class_metrics=True,
        backend="pycocotools",
    )
    metric.warn_on_many_detections = False
    by_id = {p["image_id"]: p for p in preds}
    empty = rec("", scores=[])
    tm_preds, tm_gts = [], []
    for g in gts:
        p = by_id.get(g["image_id"], empty)
        tm_preds.append(
            {
                "boxes": torch.tensor(p["boxes"]),
                "scores": torch.tensor(p["scores"]),
                "labels": torch.tensor(p["labels"], dtype=torch.int64),
            }
        )
        tm_gts.append({"boxes": torch.tensor(g["boxes"]), "labels": torch.tensor(g["labels"], dtype=torch.int64)})
    metric.update(tm_preds, tm_gts)
    out = metric.compute()
    per_class = dict(zip(out["classes"].reshape(-1).tolist(), out["map_per_class"].reshape(-1).tolist(), strict=True))
    return float(out["map"]), per_class


def test_box_iou_by_hand():
    # [0,0,10,10] vs [5,0,15,10]: intersection 5x10 = 50, union 100 + 100 - 50 = 150
    ious = box_iou([[0, 0, 10, 10]], [[5, 0, 15, 10], [20, 20, 30, 30], [0, 0, 10, 10]])
    np.testing.assert_allclose(ious, [[50 / 150, 0.0, 1.0]])


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4, 5])
def test_coco101_map40_and_per_class_ap_agree_with_torchmetrics(seed):
    preds, gts = random_dataset(seed)
    ours = detection_metrics(preds, gts, num_classes=4, match_iou=0.4, map40_method="coco101")
    ref_map, ref_per_class = torchmetrics_map(preds, gts, [0.4])
    assert abs(ours.map_at(0.4) - ref_map) < TOL
    assert abs(ours.map40 - ref_map) < TOL
    np.testing.assert_array_equal(ours.ap40, ours.ap_at(0.4))
    ap40 = ours.ap_at(0.4)
    for c in range(4):
        if ours.instances[c] == 0:  # no ground truth: undefined here, -1 in pycocotools
            assert np.isnan(ap40[c]) and ref_per_class.get(c, -1.0) == -1.0
        else:
            assert abs(ap40[c] - ref_per_class[c]) < TOL, (c, ap40[c], ref_per_class[c])
    assert 0 < ref_map < 1  # the random case is neither trivial nor hopeless


@pytest.mark.parametrize("seed", [10, 11])
def test_map50_and_map50_95_agree_with_torchmetrics(seed):
    preds, gts = random_dataset(seed)
    ours = detection_metrics(preds, gts, num_classes=4)
    ref_5095, _ = torchmetrics_map(preds, gts, None)
    ref_50, _ = torchmetrics_map(preds, gts, [0.5])
    assert abs(ours.map50_95 - ref_5095) < TOL
    assert abs(ours.map_at(0.5) - ref_50) < TOL


def test_map_keeps_the_top_100_detections_per_image_and_class_like_coco():
    preds, gts = random_dataset(7, n_images=4, crowded=True)
    assert max(np.bincount(p["labels"]).max() for p in preds) > 100
    ref_map, _ = torchmetrics_map(preds, gts, [0.4])
    assert abs(detection_metrics(preds, gts, 4).map_at(0.4) - ref_map) < TOL
    assert abs(detection_metrics(preds, gts, 4, max_dets=None).map_at(0.4) - ref_map) > TOL


def test_average_precision_interpolations_by_hand():
    # 2 lesions; detections by score: hit, miss, hit -> recall .5 .5 1, precision 1 .5 2/3,
    # interpolated precision 1, 2/3, 2/3.
    tp = np.array([True, False, True])
    # all-point: recall steps 0.5 (at precision 1) and 0.5 (at 2/3) -> 0.5 + 1/3
    assert average_precision(tp, 2, "all_point") == pytest.approx(0.5 + 1 / 3)
    # 101-point: recall points 0..0.50 (51 of them) read 1, 0.51..1.00 (50) read 2/3
    assert average_precision(tp, 2, "coco101") == pytest.approx((51 + 50 * 2 / 3) / 101)
    assert average_precision(np.array([], dtype=bool), 2) == 0.0
    assert np.isnan(average_precision(tp, 0))


def test_greedy_match_prefers_highest_iou_and_counts_each_lesion_once():
    # detection 0 overlaps lesion 0 (IoU .5) and lesion 1 (IoU .8) -> takes lesion 1;
    # detection 1 overlaps lesion 1 only (taken) -> false positive at 0.4, and at 0.6 too.
    ious = np.array([[0.5, 0.8], [0.0, 0.9]])
    np.testing.assert_array_equal(greedy_match(ious, [0.4, 0.85]), [[1, -1], [-1, 1]])


def test_image_level_by_hand():
    # abnormal: a1 (max of .9/.1 = .9), a2 (.2); normal: n1 (.3), n2 (.1), n3 (no detections = 0)
    gts = [rec("a1", [[0, 0, 5, 5]], [0]), rec("a2", [[0, 0, 5, 5]], [1]), rec("n1"), rec("n2"), rec("n3")]
    preds = [
        rec("a1", [[0, 0, 5, 5], [1, 1, 4, 4]], [0, 1], [0.1, 0.9]),
        rec("a2", [[9, 9, 12, 12]], [0], [0.2]),
        rec("n1", [[0, 0, 5, 5]], [0], [0.3]),
        rec("n2", [[0, 0, 5, 5]], [0], [0.1]),
    ]
    r = image_level_metrics(preds, gts, threshold=0.25)
    np.testing.assert_allclose(r.scores, [0.9, 0.2, 0.3, 0.1, 0.0])
    # AUROC = share of (abnormal, normal) pairs ranked right: .9 beats all 3, .2 beats .1 and 0 -> 5/6
    assert r.auroc == pytest.approx(5 / 6)
    assert r.sensitivity == pytest.approx(1 / 2)  # .9 >= .25, .2 < .25
    assert r.specificity == pytest.approx(2 / 3)  # .1 and 0 stay below .25, .3 does not
    np.testing.assert_array_equal(r.reported_no_findings, [False, True, False, True, True])
    assert (r.n_normal, r.n_abnormal) == (3, 2)
    assert np.isnan(image_level_metrics(preds[:2], gts[:2]).auroc)  # no normal image: undefined


def test_confusion_matrix_by_hand():
    # lesion 0 (class 0) found as class 1 (IoU 1); lesion 1 (class 1) found right; lesion 2 (class 0)
    # missed; one detection on nothing; one class-0 detection below conf (ignored).
    gts = [rec("A", [[0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50]], [0, 1, 0])]
    preds = [
        rec(
            "A",
            [[0, 0, 10, 10], [21, 21, 30, 30], [70, 70, 80, 80], [40, 40, 50, 50]],
            [1, 1, 0, 0],
            [0.9, 0.8, 0.7, 0.1],
        )
    ]
    cm = confusion_matrix(preds, gts, num_classes=2, conf=0.25, iou_threshold=0.4)
    # rows: true 0, 1, background; columns: predicted 0, 1, background
    np.testing.assert_array_equal(cm, [[0, 1, 1], [0, 1, 0], [1, 0, 0]])


def test_failures_by_hand():
    preds = [
        rec("A", [[0, 0, 10, 10], [0, 0, 10, 10], [50, 50, 60, 60]], [0, 0, 0], [0.9, 0.8, 0.95]),
        rec("B", [[0, 0, 10, 10]], [0], [0.1]),
    ]
    gts = [rec("A", [[0, 0, 10, 10], [20, 20, 40, 40]], [0, 0]), rec("B", [[0, 0, 10, 10]], [0])]
    fps = worst_false_positives(preds, gts, num_classes=1, k=5)
    # .95 far from everything, then .8 duplicate on the lesion the .9 took
    assert [(f["image_id"], f["score"]) for f in fps] == [("A", 0.95), ("A", 0.8)]
    fns = worst_false_negatives(preds, gts, num_classes=1, conf=0.25, k=5)
    # A's [20,20,40,40] has no detection (score 0); B's lesion only a .1 one, below conf
    assert [(f["image_id"], f["score"]) for f in fns] == [("A", 0.0), ("B", 0.1)]
    np.testing.assert_array_equal(fns[0]["box"], [20, 20, 40, 40])


MLFLOW_NAME = re.compile(r"^[/\w.\- ]*$")  # mlflow.utils.validation, Windows-safe variant (no colon)


def test_flat_metrics_names_are_mlflow_safe_and_complete():
    preds, gts = random_dataset(3)
    names = ["nodule", "pleural effusion/(L)", "..", "unused"]
    gts.append(rec("normal"))
    flat = flat_metrics(evaluate_records(preds, gts, names), prefix="test")
    expected = {
        "map40",
        "mAP50",
        "mAP50-95",
        "lesion_precision",
        "lesion_recall",
        "froc_mean",
        "froc_fp0.125",
        "froc_fp0.25",
        "froc_fp0.5",
        "froc_fp1",
        "froc_fp2",
        "froc_fp4",
        "froc_fp8",
        "auroc",
        "sensitivity",
        "specificity",
        "images",
        "normal_images",
        "instances",
        "ap40/nodule",
        "ap40/pleural effusion__L_",
        "ap40/_",
    }
    assert set(flat) == {f"test/{k}" for k in expected}  # 'unused' has no ground truth: no AP key
    for key, value in flat.items():
        assert MLFLOW_NAME.match(key) and posixpath.normpath(key) == key, key
        assert np.isfinite(value), key
    assert metric_key("val", "ap40", "a/b:c") == "val/ap40/a_b_c"


def test_records_are_checked():
    gts = [rec("A", [[0, 0, 10, 10]], [0])]
    with pytest.raises(ValueError, match="not in the ground truth"):
        pair_records([rec("B", scores=[])], gts)
    with pytest.raises(ValueError, match="xyxy"):
        pair_records([rec("A", [[10, 0, 0, 10]], [0], [0.5])], gts)
    with pytest.raises(ValueError, match="scores"):
        pair_records([rec("A", [[0, 0, 10, 10]], [0])], gts)
    with pytest.raises(ValueError, match="number of classes"):
        detection_metrics([rec("A", [[0, 0, 10, 10]], [5], [0.5])], gts, num_classes=2)
