"""Bootstrap intervals and paired comparison: the resampled metrics equal a full evaluation of the
materialised resample, DeLong's test equals a clean-room all-pairs implementation (and AUROC
scikit-learn's), groups are drawn whole, and the verdict line.

    .venv/bin/pytest tests/metrics/test_metrics_bootstrap.py -q
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from test_metrics import random_dataset, rec
from test_metrics_voc import voc_dataset

from xray_exp.metrics import (
    HEADLINE_METRICS,
    bootstrap_ci,
    evaluate_records,
    flat_metrics,
    paired_comparison,
    verdict_line,
)
from xray_exp.metrics.bootstrap import bootstrap_values, draw_weights, resampled_weights
from xray_exp.metrics.paired import PairedDifference, bootstrap_p_value, delong_test
from xray_exp.metrics.resample import headline_for_weights

NAMES = ["a", "b", "c", "d", "e"]  # "e" never has ground truth


def dataset(seed, n_images=24):
    preds, gts = random_dataset(seed, n_images=n_images)
    gts += [rec(f"normal{k}") for k in range(4)]
    preds.append(rec("normal0", [[0, 0, 50, 50]], [1], [0.4]))
    return preds, gts


def materialise(preds, gts, counts):
    """The resampled dataset itself: image i repeated counts[i] times under new ids."""
    by_id = {p["image_id"]: p for p in preds}
    new_preds, new_gts = [], []
    for g, k in zip(gts, counts, strict=True):
        for j in range(int(k)):
            new_id = f"{g['image_id']}#{j}"
            new_gts.append({**g, "image_id": new_id})
            if g["image_id"] in by_id:
                new_preds.append({**by_id[g["image_id"]], "image_id": new_id})
    return new_preds, new_gts


def assert_same(got: float, expected: float, what):
    if np.isnan(expected):
        assert np.isnan(got), what
    else:
        assert abs(got - expected) < 1e-12, (what, got, expected)


@pytest.mark.parametrize(
    ("map40_method", "no_finding_class", "froc_hit", "dense"),
    [
        ("voc2010", None, "iou", False),
        ("coco101", None, "iou", False),
        ("voc2010", 4, "center", False),
        ("voc2010", 5, "center", True),
    ],
)
def test_resampled_metrics_equal_the_evaluation_of_the_materialised_resample(
    map40_method, no_finding_class, froc_hit, dense
):
    preds, gts = voc_dataset(101, n_images=28, dense=True) if dense else dataset(1)
    kwargs = dict(map40_method=map40_method, no_finding_class=no_finding_class, froc_hit=froc_hit)
    result = evaluate_records(preds, gts, NAMES, **kwargs)
    flat = flat_metrics(result, "t")
    ones = headline_for_weights(result.cache, np.ones((1, len(gts))))
    for name in HEADLINE_METRICS:
        assert_same(ones[name][0], flat[f"t/{name}"], name)
    rng = np.random.default_rng(5)
    weights = rng.multinomial(len(gts), np.full(len(gts), 1 / len(gts)), size=4).astype(float)
    resampled = headline_for_weights(result.cache, weights)
    for b, counts in enumerate(weights):
        expected = flat_metrics(evaluate_records(*materialise(preds, gts, counts), NAMES, **kwargs), "t")
        for name in HEADLINE_METRICS:
            assert_same(resampled[name][b], expected[f"t/{name}"], (b, name))
    assert len({resampled["map40"][b] for b in range(4)}) == 4  # the resamples differ


def test_bootstrap_ci_is_the_percentile_interval_of_seeded_resamples():
    preds, gts = dataset(2)
    result = evaluate_records(preds, gts, NAMES)
    values = bootstrap_values(result, n_boot=150, seed=3)
    draws = np.concatenate(list(resampled_weights(result.cache, 150, 3)))
    for b in (0, 77, 149):  # spot-check resamples against full evaluations
        expected = flat_metrics(evaluate_records(*materialise(preds, gts, draws[b]), NAMES), "t")
        for name in HEADLINE_METRICS:
            assert_same(values[name][b], expected[f"t/{name}"], (b, name))
    ci = bootstrap_ci(result, n_boot=150, seed=3, level=0.9)
    for name in HEADLINE_METRICS:
        finite = values[name][np.isfinite(values[name])]
        assert ci[name] == pytest.approx(tuple(np.quantile(finite, [0.05, 0.95])))
        assert ci[name][0] < ci[name][1], name
    assert bootstrap_ci(result, n_boot=150, seed=3, level=0.9) == ci
    assert bootstrap_ci(result, n_boot=150, seed=4, level=0.9) != ci
    flat = flat_metrics(result, "val", ci=ci)
    for name in HEADLINE_METRICS:
        assert (flat[f"val/{name}_ci_low"], flat[f"val/{name}_ci_high"]) == ci[name]
    with pytest.raises(ValueError, match="level"):
        bootstrap_ci(result, level=95)


def test_groups_are_drawn_whole():
    preds, gts = dataset(3)
    patients = [f"p{i // 2}" for i in range(len(gts))]  # 2 images per patient
    result = evaluate_records(preds, gts, NAMES, groups=patients)
    w = draw_weights(result.cache, 200, np.random.default_rng(0))
    codes = result.cache.groups
    for g in np.unique(codes):
        assert (w[:, codes == g] == w[:, codes == g][:, :1]).all()  # one count per patient
    assert (w.sum(axis=1) == len(gts)).all()  # patients of equal size: as many images as before
    by_image = evaluate_records(preds, gts, NAMES)
    assert bootstrap_ci(result, n_boot=100) != bootstrap_ci(by_image, n_boot=100)
    mapping = dict(zip((g["image_id"] for g in gts), patients, strict=True))
    np.testing.assert_array_equal(evaluate_records(preds, gts, NAMES, groups=mapping).cache.groups, codes)
    with pytest.raises(ValueError, match="groups"):
        evaluate_records(preds, gts, NAMES, groups=patients[:-1])


def delong_all_pairs(scores_a, scores_b, positive):
    """DeLong et al. (1988) from the pairwise kernel psi (O(m n)), written independently."""
    from scipy.stats import norm

    def components(s):
        x, y = s[positive], s[~positive]
        psi = (x[:, None] > y[None, :]) + 0.5 * (x[:, None] == y[None, :])
        return psi.mean(), psi.mean(axis=1), psi.mean(axis=0)

    (auc_a, v10_a, v01_a), (auc_b, v10_b, v01_b) = components(scores_a), components(scores_b)
    m, n = positive.sum(), (~positive).sum()
    s10 = np.cov(np.stack([v10_a, v10_b]))
    s01 = np.cov(np.stack([v01_a, v01_b]))
    cov = s10 / m + s01 / n
    var = cov[0, 0] + cov[1, 1] - 2 * cov[0, 1]
    return auc_a, auc_b, 2 * norm.sf(abs(auc_b - auc_a) / np.sqrt(var))


@pytest.mark.parametrize("seed", range(4))
def test_delong_agrees_with_all_pairs_delong_and_sklearn(seed):
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(seed)
    positive = rng.random(60) < 0.4
    scores_a = np.round(rng.random(60) + 0.4 * positive, 1)  # rounded: many ties
    scores_b = np.round(rng.random(60) + 0.9 * positive, 2)
    auc_a, auc_b, p, half = delong_test(scores_a, scores_b, positive)
    ref_a, ref_b, ref_p = delong_all_pairs(scores_a, scores_b, positive)
    assert (auc_a, auc_b) == pytest.approx((roc_auc_score(positive, scores_a), roc_auc_score(positive, scores_b)))
    assert (auc_a, auc_b, p) == pytest.approx((ref_a, ref_b, ref_p), rel=1e-10)
    assert 0 < half < 1


def test_paired_comparison_of_a_model_with_itself_finds_nothing():
    preds, gts = dataset(4)
    a = evaluate_records(preds, gts, NAMES)
    b = evaluate_records(preds, gts[::-1], NAMES)  # the same images in another order
    diffs = paired_comparison(a, b, n_boot=100)
    assert [d.metric for d in diffs] == list(HEADLINE_METRICS)
    for d in diffs:
        assert d.diff == 0 and d.ci_low == d.ci_high == 0 and d.p_value == 1.0, d
        assert verdict_line(d).startswith(f"no significant difference on {d.metric}: +0.000 [0.000, 0.000], p=1")
    assert {d.test for d in diffs} == {"paired bootstrap", "DeLong"}


def test_paired_comparison_finds_the_better_model():
    preds, gts = dataset(5, n_images=60)
    perfect = [rec(g["image_id"], g["boxes"], g["labels"], np.full(len(g["labels"]), 0.9)) for g in gts]
    a, b = evaluate_records(preds, gts, NAMES), evaluate_records(perfect, gts, NAMES)
    diffs = {d.metric: d for d in paired_comparison(a, b, n_boot=300, seed=1)}
    flat_a, flat_b = flat_metrics(a, "t"), flat_metrics(b, "t")
    for name, d in diffs.items():
        assert (d.a, d.b, d.diff) == pytest.approx((flat_a[f"t/{name}"], flat_b[f"t/{name}"], d.b - d.a))
    d = diffs["map40"]
    assert d.b == 1.0 and d.diff > 0 and 0 < d.ci_low < d.ci_high and d.p_value < 0.01
    line = verdict_line(d, name_a="base", name_b="perfect")
    assert re.fullmatch(r"perfect better on map40: \+0\.\d{3} \[0\.\d{3}, 0\.\d{3}\], p=0\.0\d\d", line), line
    worse = PairedDifference("auroc", 0.9, 0.8, -0.1, -0.15, -0.05, 0.0004, "DeLong")
    assert verdict_line(worse) == "A better on auroc: -0.100 [-0.150, -0.050], p<0.001"


def test_bootstrap_p_value_by_hand():
    # two-sided, (count + 1) / (B + 1): 1 of 4 differences <= 0 -> 2 * 2 / 5
    assert bootstrap_p_value(np.array([-1.0, 1.0, 2.0, 3.0])) == pytest.approx(0.8)
    assert bootstrap_p_value(np.arange(1.0, 10.0)) == pytest.approx(0.2)  # none of 9 <= 0: 2 * 1 / 10
    assert bootstrap_p_value(-np.arange(1.0, 10.0)) == pytest.approx(0.2)
    assert bootstrap_p_value(np.array([np.nan, 0.0, 0.0])) == 1.0  # undefined resamples left out


def test_paired_comparison_needs_the_same_images():
    preds, gts = dataset(6)
    a = evaluate_records(preds, gts, NAMES)
    b = evaluate_records(preds, gts[:-1], NAMES)
    with pytest.raises(ValueError, match="same images.*only in A: \\['normal3'\\]"):
        paired_comparison(a, b, n_boot=10)


def test_bootstrap_benchmark_runs_and_writes_its_figures(tmp_path, capsys):
    import json

    from xray_exp.bench import bootstrap as bench

    preds, gts = bench.synthetic_split(n_images=50, n_detections=170, seed=2)
    assert sum(len(p["labels"]) for p in preds) == 170 and len(gts) == 50
    assert (
        bench.main(
            [
                "--images",
                "120",
                "--detections",
                "400",
                "--n-boot",
                "40",
                "--reps",
                "2",
                "--paired",
                "--out-dir",
                str(tmp_path),
            ]
        )
        == 0
    )
    assert "bootstrap_ci, 40 resamples (median of 2)" in capsys.readouterr().out
    (path,) = tmp_path.glob("bootstrap-*.json")
    results = json.loads(path.read_text())["results"]
    assert len(results["bootstrap_times_s"]) == 2 and results["paired_s"] > 0
    assert set(results["ci"]) == set(HEADLINE_METRICS)


def test_progress_bars_only_when_asked(capsys):
    preds, gts = dataset(7)
    result = evaluate_records(preds, gts, NAMES)
    bootstrap_ci(result, n_boot=120)
    paired_comparison(result, result, n_boot=120)
    assert capsys.readouterr().err == ""
    bootstrap_ci(result, n_boot=120, progress=True)
    paired_comparison(result, result, n_boot=120, progress=True)
    err = capsys.readouterr().err
    assert "bootstrap: 100%" in err and "120/120" in err and "paired bootstrap: 100%" in err


def test_undefined_metrics_give_undefined_intervals():
    # only normal images: no lesion, so every detection metric and AUROC are undefined, specificity is not
    gts = [rec(f"n{k}") for k in range(6)]
    preds = [rec("n0", [[0, 0, 5, 5]], [0], [0.9]), rec("n1", [[0, 0, 5, 5]], [0], [0.1])]
    result = evaluate_records(preds, gts, NAMES)
    ci = bootstrap_ci(result, n_boot=50)
    for name in ("map40", "mAP50", "mAP50-95", "froc_mean", "auroc", "sensitivity"):
        assert np.isnan(ci[name]).all(), name
    assert 0 <= ci["specificity"][0] < ci["specificity"][1] <= 1
    diffs = {d.metric: d for d in paired_comparison(result, result, n_boot=20)}
    assert diffs["auroc"].test == "paired bootstrap"
    assert verdict_line(diffs["auroc"]) == "no comparison on auroc: undefined on these images"
    # one normal image: AUROC is defined, DeLong's variance is not -> paired bootstrap
    preds, gts = dataset(8)
    one_normal = [g for g in gts if len(g["labels"]) or g["image_id"] == "normal0"]
    kept = {g["image_id"] for g in one_normal}
    result = evaluate_records([p for p in preds if p["image_id"] in kept], one_normal, NAMES)
    auroc = next(d for d in paired_comparison(result, result, n_boot=20) if d.metric == "auroc")
    assert np.isfinite(auroc.a) and auroc.test == "paired bootstrap"
    with pytest.raises(ValueError, match="without images"):
        bootstrap_ci(evaluate_records([], [], NAMES))
