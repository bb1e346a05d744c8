"""The gate arithmetic on hand-made predictions: low / high / multiply / suppress / the 'No finding' row,
bad settings refused, threshold tuning, and the classifier's metrics against scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest

from xray_exp.errors import ConfigError
from xray_exp.gating import GateSettings, gate_record, gate_records, tune_gate
from xray_exp.metrics.classification import classifier_flat, classifier_metrics
from xray_exp.metrics.image_level import NO_NORMAL_NOTE, undefined_note


def rec(image_id, scores, labels=None):
    n = len(scores)
    return {
        "image_id": image_id,
        "boxes": [[10.0 * i, 0.0, 10.0 * i + 5, 5.0] for i in range(n)],
        "scores": scores,
        "labels": labels or [0] * n,
    }


GATE = GateSettings(low=0.2, high=0.8)


def test_below_low_drops_every_box():
    out = gate_record(rec("a", [0.9, 0.4]), 0.1, GATE)
    assert out["gate"] == "dropped" and len(out["scores"]) == 0 and out["boxes"].shape == (0, 4)


def test_between_multiplies_scores_by_p():
    out = gate_record(rec("a", [0.9, 0.4], [1, 2]), 0.5, GATE)
    assert out["gate"] == "multiplied"
    np.testing.assert_allclose(out["scores"], [0.45, 0.2])
    assert list(out["labels"]) == [1, 2] and out["boxes"].shape == (2, 4)


def test_at_or_above_high_keeps_boxes():
    for p in (0.8, 0.95):
        out = gate_record(rec("a", [0.9, 0.4]), p, GATE)
        assert out["gate"] == "kept"
        np.testing.assert_allclose(out["scores"], [0.9, 0.4])


def test_low_boundary_is_kept_in_band():
    assert gate_record(rec("a", [0.5]), 0.2, GATE)["gate"] == "multiplied"


def test_suppress_mode_keeps_scores_between_thresholds():
    gate = GateSettings(low=0.2, high=0.8, mode="suppress")
    np.testing.assert_allclose(gate_record(rec("a", [0.9]), 0.5, gate)["scores"], [0.9])
    assert gate_record(rec("a", [0.9]), 0.1, gate)["gate"] == "dropped"


def test_no_finding_row_is_one_minus_p():
    gate = GateSettings(low=0.2, high=0.8, no_finding_class=14)
    assert gate_record(rec("a", [0.9]), 0.3, gate)["no_finding_score"] == pytest.approx(0.7)
    assert "no_finding_score" not in gate_record(rec("a", [0.9]), 0.3, GATE)


def test_input_record_is_not_changed():
    r = rec("a", [0.9])
    gate_record(r, 0.5, GATE)
    assert r["scores"] == [0.9]


def test_records_need_a_probability_each():
    with pytest.raises(ValueError, match="no classifier probability for images \\['b'\\]"):
        gate_records([rec("a", [0.9]), rec("b", [0.5])], {"a": 0.5}, GATE)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"low": 0.9, "high": 0.2}, "gate.low=0.9 > gate.high=0.2"),
        ({"low": -0.1}, "gate.low=-0.1"),
        ({"high": 1.5}, "gate.high=1.5"),
        ({"mode": "scale"}, "gate.mode='scale'"),
    ],
)
def test_bad_settings_fail(kwargs, message):
    with pytest.raises(ConfigError, match=message.replace(".", "\\.").replace("(", "\\(")):
        GateSettings(**kwargs)


def test_tune_picks_the_pair_that_scores_best():
    preds = [rec("n1", [0.6]), rec("n2", [0.5]), rec("a1", [0.7])]
    probs = {"n1": 0.05, "n2": 0.12, "a1": 0.9}

    def false_positive_free(gated):  # hand-made objective: +1 per kept true finding, -1 per kept false one
        kept = {g["image_id"]: len(g["scores"]) for g in gated}
        return kept["a1"] - kept["n1"] - kept["n2"]

    best, table = tune_gate(preds, probs, false_positive_free, lows=(0.0, 0.1, 0.2), highs=(0.5, 1.0))
    assert (best.low, best.high) == (0.2, 1.0)  # drops n1 and n2, keeps a1 (ties: the highest high)
    assert len(table) == 6 and all(t["low"] <= t["high"] for t in table)


def test_classifier_metrics_match_sklearn():
    from sklearn.metrics import brier_score_loss, roc_auc_score

    rng = np.random.default_rng(0)
    abnormal = rng.random(60) < 0.5
    probs = np.clip(abnormal * 0.3 + rng.random(60) * 0.7, 0, 1)
    r = classifier_metrics([str(i) for i in range(60)], probs, abnormal, threshold=0.5, n_boot=200)
    assert r.auroc == pytest.approx(roc_auc_score(abnormal, probs))
    assert r.brier == pytest.approx(brier_score_loss(abnormal, probs))
    assert r.sensitivity == pytest.approx((probs[abnormal] >= 0.5).mean())
    assert r.specificity == pytest.approx((probs[~abnormal] < 0.5).mean())
    low, high = r.ci["auroc"]
    assert low < r.auroc < high
    assert sum(b["count"] for b in r.reliability) == 60
    flat = classifier_flat(r, "val")
    assert flat["val/auroc_ci_low"] == low and flat["val/normal_images"] == (~abnormal).sum()


def test_split_without_normal_images_says_so():
    r = classifier_metrics(["a", "b"], [0.9, 0.2], [True, True], n_boot=50)
    assert np.isnan(r.auroc) and np.isnan(r.specificity)
    assert undefined_note("auroc", r.n_normal, r.n_abnormal) == NO_NORMAL_NOTE
    assert undefined_note("sensitivity", r.n_normal, r.n_abnormal) is None


def test_no_normal_images_read_na_in_printout_report_and_notebook():
    from xray_exp.analysis.predictions import metrics_frame
    from xray_exp.evaluation.report import _summary_rows
    from xray_exp.metrics import evaluate_records, flat_metrics
    from xray_exp.runs.summary import metric_lines

    gts = [{"image_id": i, "boxes": [[0, 0, 10, 10]], "labels": [0]} for i in ("a", "b")]
    preds = [
        {"image_id": "a", "boxes": [[0, 0, 10, 10]], "scores": [0.9], "labels": [0]},
        {"image_id": "b", "boxes": [], "scores": [], "labels": []},
    ]
    result = evaluate_records(preds, gts, ["nodule"])
    flat = flat_metrics(result, "test")
    assert np.isnan(flat["test/auroc"])
    frame = metrics_frame(result, "test")["value"]
    assert frame["test/auroc"] == NO_NORMAL_NOTE and frame["test/specificity"] == NO_NORMAL_NOTE
    assert frame["test/sensitivity"] == 0.5
    rows = {row[0]: row[1] for row in _summary_rows(result, flat)}
    assert rows["image-level AUROC (any abnormality)"] == NO_NORMAL_NOTE
    line = metric_lines(flat, "test")[1]
    assert f"AUROC {NO_NORMAL_NOTE}" in line and f"spec {NO_NORMAL_NOTE}" in line and "nan" not in line
