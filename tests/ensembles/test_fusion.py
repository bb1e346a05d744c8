"""Fusion and TTA views without models: xray_exp.ensembles.fusion against ensemble-boxes called directly, and
views that move boxes (flip, zoom) mapped back exactly.

    .venv/bin/pytest tests/ensembles/test_fusion.py -q          # < 2 s
"""

from __future__ import annotations

import ensemble_boxes
import numpy as np
import pytest

from xray_exp.ensembles.fusion import FusionSettings, View, fuse, top, tta_views, unview_boxes, view_image

W, H = 400, 300


def random_sets(n_sets: int = 3, seed: int = 0):
    """Model outputs in pixels: a few lesions seen by every model with jitter, plus stray boxes."""
    rng = np.random.default_rng(seed)
    lesions = np.array([[40, 30, 120, 110], [200, 150, 260, 230], [300, 20, 390, 90]], dtype=np.float64)
    sets = []
    for _ in range(n_sets):
        boxes = lesions + rng.normal(0, 4, lesions.shape)
        stray = rng.uniform(0, 1, (2, 2)) * [W, H]
        boxes = np.vstack([boxes, np.hstack([stray, stray + 30])])
        sets.append(
            (np.clip(boxes, 0, [W, H, W, H]), rng.uniform(0.05, 0.95, len(boxes)), rng.integers(0, 2, len(boxes)))
        )
    return sets


def direct(sets, method: str, weights, **kwargs):
    scale = np.array([W, H, W, H], dtype=np.float64)
    boxes = [np.clip(s[0] / scale, 0, 1) for s in sets]
    scores, labels = [s[1] for s in sets], [s[2] for s in sets]
    b, s, c = getattr(ensemble_boxes, method)(boxes, scores, labels, weights=weights, **kwargs)
    order = np.argsort(-np.asarray(s), kind="stable")
    return np.asarray(b)[order] * scale, np.asarray(s)[order], np.asarray(c)[order].astype(int)


@pytest.mark.parametrize("conf_type", ["avg", "max", "box_and_model_avg", "absent_model_aware_avg"])
def test_wbf_equals_ensemble_boxes_called_directly(conf_type):
    sets, weights = random_sets(), [2.0, 1.0, 1.0]
    settings = FusionSettings("wbf", iou_thr=0.5, skip_box_thr=0.1, conf_type=conf_type)
    ours = fuse(sets, weights, W, H, settings)
    ref = direct(sets, "weighted_boxes_fusion", weights, iou_thr=0.5, skip_box_thr=0.1, conf_type=conf_type)
    assert len(ours[1]) == len(ref[1]) > 0
    np.testing.assert_allclose(ours[0], ref[0], atol=1e-9)
    np.testing.assert_allclose(ours[1], ref[1], atol=1e-12)
    np.testing.assert_array_equal(ours[2], ref[2])
    assert len(ours[1]) < sum(len(s[1]) for s in sets)  # it did fuse


@pytest.mark.parametrize(
    ("method", "call", "kwargs"),
    [
        # ensemble-boxes' NMS is numba-compiled on first use (~12 s on a 2-core machine): slow
        pytest.param("nms", "nms", {"iou_thr": 0.5}, marks=pytest.mark.slow),
        ("soft_nms", "soft_nms", {"iou_thr": 0.5, "sigma": 0.5, "thresh": 0.1}),
        ("nmw", "non_maximum_weighted", {"iou_thr": 0.5, "skip_box_thr": 0.1}),
    ],
)
def test_other_methods_equal_ensemble_boxes(method, call, kwargs):
    sets, weights = random_sets(seed=1), [1.0, 3.0, 1.0]
    if method != "nmw":  # NMS and soft-NMS have no skip threshold in ensemble-boxes: we drop low boxes first
        sets_in = [(b[s >= 0.1], s[s >= 0.1], c[s >= 0.1]) for b, s, c in sets]
    else:
        sets_in = sets
    ours = fuse(sets, weights, W, H, FusionSettings(method, iou_thr=0.5, skip_box_thr=0.1))
    ref = direct(sets_in, call, weights, **kwargs)
    np.testing.assert_allclose(np.sort(ours[1]), np.sort(ref[1]), atol=1e-12)
    np.testing.assert_allclose(ours[0][np.argsort(ours[1])], ref[0][np.argsort(ref[1])], atol=1e-9)


def test_empty_views_and_top():
    empty = (np.zeros((0, 4)), np.zeros(0), np.zeros(0, int))
    assert len(fuse([empty, empty], [1, 1], W, H, FusionSettings())[1]) == 0
    one = fuse([random_sets(1)[0], empty], [1, 1], W, H, FusionSettings(skip_box_thr=0.0))
    assert len(one[1]) > 0 and np.all(np.diff(one[1]) <= 0)  # best first
    kept = top(one, conf=float(one[1][1]), max_det=10)
    assert len(kept[1]) == 2 and len(top(one, 0.0, 1)[1]) == 1


def test_bad_settings_name_the_key():
    with pytest.raises(ValueError, match="fusion.method"):
        FusionSettings(method="mean")
    with pytest.raises(ValueError, match="fusion.conf_type"):
        FusionSettings(conf_type="median")
    with pytest.raises(ValueError, match="fusion.iou_thr"):
        FusionSettings(iou_thr=1.5)


def blob_image(box) -> np.ndarray:
    image = np.full((H, W), 20, np.uint8)
    x1, y1, x2, y2 = box
    image[y1:y2, x1:x2] = 250
    return image


def bright_box(image: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(image > 200)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=np.float64)


@pytest.mark.parametrize(
    "view", [View(1.0, True), View(0.75, False), View(0.75, True), View(1.25, True)], ids=lambda v: v.name
)
def test_views_move_an_asymmetric_lesion_and_unview_maps_it_back(view):
    """A lesion in the left upper corner: seen where the view puts it (right side once flipped), and the box a
    perfect detector would report on the view maps back onto the lesion."""
    lesion = (120, 90, 180, 140)  # left of the centre line, inside every zoomed view
    seen = bright_box(view_image(blob_image(lesion), view))
    if view.flip:
        assert seen[0] > W / 2  # the flipped view shows the left lesion on the right
    back = unview_boxes(seen[None], view, W, H)[0]
    np.testing.assert_allclose(back, lesion, atol=1.5 / min(view.scale, 1.0))


def test_flip_unflip_is_exact_and_views_are_listed():
    boxes = np.array([[10.0, 20.0, 50.0, 80.0]])
    np.testing.assert_array_equal(unview_boxes(boxes, View(1.0, True), W, H), [[W - 50.0, 20.0, W - 10.0, 80.0]])
    assert [v.name for v in tta_views(False)] == ["original"]
    assert [v.name for v in tta_views(True, [0.83])] == ["original", "hflip", "x0.83", "x0.83-hflip"]
    with pytest.raises(ValueError, match="tta_scales"):
        tta_views(True, [0.0])


def test_flip_tta_fuses_a_box_seen_in_both_views():
    """Un-flipped before fusion: the mirror view's box lands on the original one and WBF averages them."""
    box = np.array([[30.0, 40.0, 110.0, 90.0]])
    original = (box, np.array([0.8]), np.array([1]))
    in_mirror = (np.array([[W - 112.0, 40.0, W - 28.0, 92.0]]), np.array([0.6]), np.array([1]))
    sets = [original, (unview_boxes(in_mirror[0], View(1.0, True), W, H), in_mirror[1], in_mirror[2])]
    boxes, scores, labels = fuse(sets, [1, 1], W, H, FusionSettings(iou_thr=0.5, skip_box_thr=0.0))
    assert len(scores) == 1 and labels[0] == 1
    np.testing.assert_allclose(boxes[0], (0.8 * box[0] + 0.6 * np.array([28.0, 40.0, 112.0, 92.0])) / 1.4)
    assert scores[0] == pytest.approx(0.7)
