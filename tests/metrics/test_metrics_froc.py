"""FROC by the LUNA16 / CAMELYON16 convention: a hand-computed case, and a cross-check against a
clean-room port of the LUNA16 evaluation's candidate logic (written here, not in the package).

    .venv/bin/pytest tests/metrics/test_metrics_froc.py -q
"""

from __future__ import annotations

import numpy as np
import pytest
from test_metrics import random_dataset, rec

from xray_exp.metrics import evaluate_records, froc

# 3 images, 3 lesions (class 0), 7 detections.
#   A: lesions L1 [0,0,10,10], L2 [20,20,30,30];  B: lesion L3 [0,0,10,10];  C: normal.
#   by score: .9 A on L1 -> hit; .8 A on L1 again -> ignored (lesion already found);
#   .7 B far away -> FP; .6 C -> FP; .5 B on L3 but class 1 -> FP (wrong class);
#   .4 A [21,21,31,31] on L2: IoU 81/119 = .68 -> hit; .3 B [5,0,15,10] on L3: IoU 50/150 = .33 -> FP at .4,
#   its centre (10, 5) lies on L3's edge -> hit by the centre criterion.
FROC_GTS = [rec("A", [[0, 0, 10, 10], [20, 20, 30, 30]], [0, 0]), rec("B", [[0, 0, 10, 10]], [0]), rec("C")]
FROC_PREDS = [
    rec("A", [[0, 0, 10, 10], [0, 0, 10, 10], [21, 21, 31, 31]], [0, 0, 0], [0.9, 0.8, 0.4]),
    rec("B", [[50, 50, 60, 60], [0, 0, 10, 10], [5, 0, 15, 10]], [0, 1, 0], [0.7, 0.5, 0.3]),
    rec("C", [[0, 0, 10, 10]], [0], [0.6]),
]


def test_froc_by_hand_ignores_duplicates_on_found_lesions():
    r = froc(FROC_PREDS, FROC_GTS, iou_threshold=0.4)
    # (hits, FPs) after each score: .9 (1,0) [.8 ignored] .7 (1,1) .6 (1,2) .5 (1,3) .4 (2,3) .3 (2,4)
    np.testing.assert_allclose(r.fppi, np.array([0, 0, 1, 2, 3, 3, 4]) / 3)
    np.testing.assert_allclose(r.curve_sensitivity, np.array([0, 1, 1, 1, 1, 2, 2]) / 3)
    np.testing.assert_allclose(r.thresholds, [np.inf, 0.9, 0.7, 0.6, 0.5, 0.4, 0.3])
    # the second hit costs 3 FPs = 1 FP/image (with the duplicate counted as FP it would cost 4/3)
    np.testing.assert_allclose(r.sensitivity, [1 / 3] * 3 + [2 / 3] * 4)
    assert r.mean == pytest.approx((1 + 4 * 2 / 3) / 7)
    # at IoU 0.3, and by the centre criterion, the .3 detection finds L3: 3/3 from 1 FP/image on
    for loose in (froc(FROC_PREDS, FROC_GTS, iou_threshold=0.3), froc(FROC_PREDS, FROC_GTS, hit="center")):
        np.testing.assert_allclose(loose.sensitivity, [1 / 3] * 3 + [1.0] * 4)
    with pytest.raises(ValueError, match="hit criterion"):
        froc(FROC_PREDS, FROC_GTS, hit="centre")


def test_froc_tied_scores_enter_together():
    # a hit and a false positive with the same score: no threshold keeps only the hit
    preds = [rec("A", [[0, 0, 10, 10], [50, 50, 60, 60]], [0, 0], [0.5, 0.5])]
    r = froc(preds, [rec("A", [[0, 0, 10, 10]], [0])], fp_rates=[0.5, 1.0])
    np.testing.assert_allclose(r.sensitivity, [0.0, 1.0])


def luna16_froc(preds, gts, iou_threshold, hit, fp_rates):
    """Clean-room port of the LUNA16 script's candidate logic (noduleCADEvaluationLUNA16.py): per
    lesion, every candidate that hits it is removed from the candidate pool and the best one's
    probability is the lesion's; left-over candidates are false positives; then a plain threshold
    sweep over all distinct probabilities, read off as the best sensitivity with FP/image <= rate."""
    by_id = {p["image_id"]: p for p in preds}
    lesion_probs, fp_probs = [], []
    for g in gts:
        p = by_id.get(g["image_id"], rec("", scores=[]))
        candidates = {
            k: (np.asarray(p["boxes"][k], float), int(p["labels"][k]), float(p["scores"][k]))
            for k in range(len(p["labels"]))
        }
        pool = dict(candidates)
        for box, label in zip(np.asarray(g["boxes"], float), np.asarray(g["labels"]), strict=True):
            matched = []
            for k, (cbox, clabel, prob) in candidates.items():
                if clabel != label:
                    continue
                if hit == "iou":
                    iw = max(0.0, min(box[2], cbox[2]) - max(box[0], cbox[0]))
                    ih = max(0.0, min(box[3], cbox[3]) - max(box[1], cbox[1]))
                    union = (box[2] - box[0]) * (box[3] - box[1]) + (cbox[2] - cbox[0]) * (cbox[3] - cbox[1])
                    ok = union > 0 and iw * ih / (union - iw * ih) >= iou_threshold
                else:
                    cx, cy = (cbox[0] + cbox[2]) / 2, (cbox[1] + cbox[3]) / 2
                    ok = box[0] <= cx <= box[2] and box[1] <= cy <= box[3]
                if ok:
                    matched.append(prob)
                    pool.pop(k, None)
            lesion_probs.append(max(matched) if matched else None)
        fp_probs += [prob for _, _, prob in pool.values()]
    n_images, n_lesions = len(gts), len(lesion_probs)
    found = [q for q in lesion_probs if q is not None]
    points = [(0.0, 0.0)]
    for t in sorted(set(found) | set(fp_probs), reverse=True):
        points.append((sum(q >= t for q in fp_probs) / n_images, sum(q >= t for q in found) / n_lesions))
    return [max(s for f, s in points if f <= rate) for rate in fp_rates], points


@pytest.mark.parametrize("hit", ["iou", "center"])
@pytest.mark.parametrize("seed", range(6))
def test_froc_agrees_with_a_clean_room_luna16_port(seed, hit):
    preds, gts = random_dataset(seed, n_images=25)
    gts += [rec(f"normal{k}") for k in range(3)]
    preds.append(rec("normal0", [[0, 0, 50, 50], [10, 10, 30, 30]], [0, 2], [0.95, 0.3]))
    ours = froc(preds, gts, iou_threshold=0.4, hit=hit)
    ref_sens, ref_points = luna16_froc(preds, gts, 0.4, hit, ours.fp_rates)
    np.testing.assert_allclose(ours.sensitivity, ref_sens, atol=1e-12)
    np.testing.assert_allclose(np.c_[ours.fppi, ours.curve_sensitivity], ref_points, atol=1e-12)
    assert 0 < ours.mean < 1
    # the evaluation uses the same convention at its match IoU
    result = evaluate_records(preds, gts, ["a", "b", "c", "d"], match_iou=0.4, froc_hit=hit)
    np.testing.assert_allclose(result.froc.sensitivity, ref_sens, atol=1e-12)
