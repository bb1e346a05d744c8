"""mAP@0.4 as the VinBigData competition scored it (PASCAL VOC 2010 AP, IoU > 0.4), cross-checked
against the `map-boxes` package (the local validation many entrants used) on random datasets with
dense overlapping lesions, images without boxes and classes without ground truth; VOC matching and
the "No finding" class by hand.

    .venv/bin/pytest tests/metrics/test_metrics_voc.py -q
"""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
from test_metrics import rec

from xray_exp.metrics import detection_metrics, evaluate_records, flat_metrics, match_dataset, pair_records
from xray_exp.metrics.matching import voc_match

NUM_CLASSES = 5  # class 4 is only ever predicted, never in the ground truth


def f32(x):
    """Values map-boxes reads without change (it casts to float32)."""
    return np.asarray(x, dtype=np.float32).astype(np.float64)


def voc_dataset(seed: int, n_images: int = 20, dense: bool = False):
    """Lesions in classes 0..3 (dense: clusters of overlapping same-class boxes), jittered true
    detections and duplicates, random false positives in every class, normal images; scores distinct."""
    rng = np.random.default_rng(seed)
    preds, gts = [], []
    for i in range(n_images):
        if i % 4 == 3:
            n = 0  # a normal image
        elif dense:
            n = int(rng.integers(3, 9))
        else:
            n = int(rng.integers(1, 5))
        if dense:  # boxes around one centre: many pairwise IoUs above 0.4
            centre = rng.uniform(100, 300, 2)
            xy = centre + rng.normal(0, 12, (n, 2))
            gt_boxes = np.c_[xy, xy + rng.uniform(40, 70, (n, 2))]
            gt_labels = np.full(n, int(rng.integers(0, 2)))
        else:
            xy = rng.uniform(0, 400, (n, 2))
            gt_boxes = np.c_[xy, xy + rng.uniform(15, 110, (n, 2))]
            gt_labels = rng.integers(0, 4, n)
        gt_boxes = f32(gt_boxes)
        gts.append(rec(f"img{i}", gt_boxes, gt_labels))
        picks = rng.integers(0, max(n, 1), int(rng.integers(0, 2 * n + 1))) if n else np.zeros(0, int)
        size = np.tile(gt_boxes[picks, 2:] - gt_boxes[picks, :2], 2) if n else np.zeros((0, 4))
        tp_boxes = gt_boxes[picks] + rng.normal(0, 0.15, (len(picks), 4)) * size if n else np.zeros((0, 4))
        tp_labels = gt_labels[picks] if n else np.zeros(0, int)
        m = int(rng.integers(0, 6))
        xy = rng.uniform(0, 400, (m, 2))
        boxes = np.r_[tp_boxes, np.c_[xy, xy + rng.uniform(10, 120, (m, 2))]]
        boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2] + 1)
        labels = np.r_[tp_labels, rng.integers(0, NUM_CLASSES, m)].astype(int)
        if i % 7 != 6:  # some images have no prediction record
            preds.append(rec(f"img{i}", f32(boxes), labels, np.zeros(len(labels))))
    scores = f32(rng.permutation(sum(len(p["labels"]) for p in preds)) / 1000 + 0.0005)  # distinct in float32
    start = 0
    for p in preds:
        p["scores"] = scores[start : start + len(p["labels"])]
        start += len(p["labels"])
    return preds, gts


def map_boxes_reference(preds, gts, iou=0.4):
    """mean_average_precision_for_boxes from the map-boxes package (per-image detections passed in
    descending score order: it matches them in the order given)."""
    from map_boxes import mean_average_precision_for_boxes

    ann, det = [], []
    for g in gts:
        if len(g["labels"]) == 0:  # keeps the image in the package's image list
            ann.append([g["image_id"], "nan", 0, 0, 0, 0])  # the package skips the label "nan"
        for (x1, y1, x2, y2), c in zip(g["boxes"], g["labels"], strict=True):
            ann.append([g["image_id"], str(c), x1, x2, y1, y2])
    for p in preds:
        for k in np.argsort(-p["scores"], kind="mergesort"):
            x1, y1, x2, y2 = p["boxes"][k]
            det.append([p["image_id"], str(p["labels"][k]), p["scores"][k], x1, x2, y1, y2])
    with contextlib.redirect_stdout(io.StringIO()):
        mean_ap, per_class = mean_average_precision_for_boxes(
            np.array(ann, dtype=object), np.array(det, dtype=object), iou_threshold=iou, verbose=False
        )
    return mean_ap, {int(k): v[0] for k, v in per_class.items()}


CASES = [(seed, False) for seed in range(8)] + [(seed, True) for seed in range(100, 106)]


@pytest.mark.parametrize(("seed", "dense"), CASES)
def test_voc2010_map40_agrees_with_map_boxes(seed, dense):
    preds, gts = voc_dataset(seed, dense=dense)
    ours = detection_metrics(preds, gts, NUM_CLASSES)
    assert ours.method == "voc2010"
    ref_map, ref_per_class = map_boxes_reference(preds, gts)
    assert abs(ours.map40 - ref_map) <= 1e-6
    for c in range(NUM_CLASSES):
        if ours.instances[c]:
            assert abs(ours.ap40[c] - ref_per_class[c]) <= 1e-6, (c, ours.ap40[c], ref_per_class[c])
        else:  # a class without ground truth: undefined here, absent from the package's mean
            assert np.isnan(ours.ap40[c]) and c not in ref_per_class
    assert 0.05 < ref_map < 0.95
    assert ours.instances[4] == 0 and any(4 in p["labels"] for p in preds)
    assert any(len(g["labels"]) == 0 for g in gts)


def test_dense_lesions_tell_voc_from_coco_matching():
    differs = 0
    for seed, _ in CASES[8:]:
        preds, gts = voc_dataset(seed, dense=True)
        voc = detection_metrics(preds, gts, NUM_CLASSES).map40
        coco_all_point = detection_metrics(preds, gts, NUM_CLASSES, map40_method="coco101")
        differs += abs(voc - coco_all_point.map40) > 1e-6
    assert differs >= 3


def test_voc_matching_by_hand():
    # detection 0 (best score) -> lesion 1 (IoU .8); detection 1: best lesion 1 (.9) is taken -> FP under VOC,
    # although lesion 0 (IoU .5) is free (COCO would take it); detection 2: IoU exactly 0.4 -> FP (needs > 0.4).
    ious = np.array([[0.5, 0.8, 0.0], [0.5, 0.9, 0.0], [0.0, 0.0, 0.4]])
    np.testing.assert_array_equal(voc_match(ious, 0.4), [[1, -1, -1]])
    gts = [rec("A", [[0, 0, 10, 10]], [0])]
    preds = [rec("A", [[0, 0, 4, 10]], [0], [0.9])]  # IoU 40 / 100 = 0.4
    assert detection_metrics(preds, gts, 1).map40 == 0.0
    assert detection_metrics(preds, gts, 1, map40_method="coco101").map40 == 1.0  # COCO: IoU >= 0.4
    pairs = pair_records(preds, gts)
    with pytest.raises(ValueError, match="one IoU threshold"):
        match_dataset(pairs, 1, [0.4, 0.5], rule="voc")
    with pytest.raises(ValueError, match="map40 method"):
        detection_metrics(preds, gts, 1, map40_method="voc2007")


def test_no_finding_class_by_hand():
    # n1, n2 normal; a1, a2 abnormal (one lesion each, found exactly with score .8 / .3).
    gts = [rec("a1", [[0, 0, 10, 10]], [0]), rec("n1"), rec("a2", [[0, 0, 10, 10]], [0]), rec("n2")]
    preds = [
        rec("a1", [[0, 0, 10, 10]], [0], [0.8]),
        rec("n1", [[50, 50, 60, 60]], [0], [0.2]),
        rec("a2", [[0, 0, 10, 10]], [0], [0.3]),
    ]
    # "No finding" scores 1 - max: a1 .2, n1 .8, a2 .7, n2 1 -> ranking n2, n1, a2, a1: AP 1
    result = evaluate_records(preds, gts, ["nodule"], no_finding_class=1)
    assert result.detection.no_finding_ap == 1.0
    lesion_ap = result.detection.ap40[0]  # .8 hit, .3 hit, .2 FP after both -> 1
    assert lesion_ap == 1.0 and result.detection.map40 == 1.0
    # given scores: n1 .1 ranks below a2 .5 and a1 .4 -> normal images at ranks 1 and 4:
    # precision 1 at recall .5, 2/4 at recall 1 -> all-point AP .5 + .5 * .5 = .75
    preds = [{**p, "no_finding_score": s} for p, s in zip(preds, [0.4, 0.1, 0.5], strict=True)]
    result = evaluate_records(preds, gts, ["nodule"], no_finding_class=1)
    assert result.detection.no_finding_ap == pytest.approx(0.75)
    assert result.detection.map40 == pytest.approx((1.0 + 0.75) / 2)
    flat = flat_metrics(result, "test")
    assert flat["test/ap40/No finding"] == pytest.approx(0.75) and flat["test/map40"] == pytest.approx(0.875)
    assert "test/ap40/No finding" not in flat_metrics(evaluate_records(preds, gts, ["nodule"]), "test")
    with pytest.raises(ValueError, match="no_finding_class"):
        evaluate_records(preds, gts, ["nodule"], no_finding_class=0)  # a lesion class


@pytest.mark.parametrize("seed", [0, 1, 100])
def test_no_finding_class_agrees_with_map_boxes_on_class_14_boxes(seed):
    """The leaderboard's encoding: GT '14 1 0 0 1 1' on normal images, '14 p 0 0 1 1' on every image."""
    preds, gts = voc_dataset(seed, dense=seed >= 100)
    rng = np.random.default_rng(seed)
    by_id = {p["image_id"]: p for p in preds}
    nf_scores = {g["image_id"]: float(f32(rng.uniform(0.001, 0.999))) for g in gts}
    with_14, gts_14 = [], []
    for g in gts:
        p = by_id.get(g["image_id"], rec(g["image_id"], scores=[]))
        s = nf_scores[g["image_id"]]
        with_14.append(
            rec(
                g["image_id"],
                np.r_[p["boxes"], [[0, 0, 1, 1]]],
                np.r_[p["labels"], 14].astype(int),
                np.r_[p["scores"], s],
            )
        )
        normal = len(g["labels"]) == 0
        gts_14.append(rec(g["image_id"], [[0, 0, 1, 1]], [14]) if normal else g)
    ref_map, ref_per_class = map_boxes_reference(with_14, gts_14)
    scored = [
        {**by_id.get(g["image_id"], rec(g["image_id"], scores=[])), "no_finding_score": nf_scores[g["image_id"]]}
        for g in gts
    ]
    ours = evaluate_records(scored, gts, [f"c{c}" for c in range(NUM_CLASSES)], no_finding_class=14 - 9)
    assert abs(ours.detection.no_finding_ap - ref_per_class[14]) <= 1e-6
    assert abs(ours.detection.map40 - ref_map) <= 1e-6


def test_former_method_keyword_still_selects_the_map40_method():
    preds, gts = voc_dataset(3, dense=True)
    names = [f"c{c}" for c in range(NUM_CLASSES)]
    voc, coco = (evaluate_records(preds, gts, names, map40_method=m).detection for m in ("voc2010", "coco101"))
    assert abs(voc.map40 - coco.map40) > 1e-6
    assert evaluate_records(preds, gts, names, method="coco101").detection.map40 == coco.map40
    assert evaluate_records(preds, gts, names, method="all_point").detection.map40 == voc.map40
    assert voc.map_at(0.5) == coco.map_at(0.5)  # mAP50 is COCO whatever the map40 method
