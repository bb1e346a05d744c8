"""Tune the fusion (iou_thr, skip_box_thr, conf_type, member weights) with Optuna on out-of-fold predictions.

    raw = oof_predictions(detector, cvs, members, conf=0.001)   # each pool image: the fold model(s) not trained on it
    best = tune_fusion(raw, detector, cvs, members, settings, objective="map40", n_trials=50, seed=0)
    best.fusion, best.member_weights, best.value, best.default_value

The pool is the CV's folds.csv (train + val of its dataset); the test split never enters. With several CVs
as members each pool image gets one model per CV (the one whose fold holds it) and the CVs' weights are
tuned; the views of a model (TTA) are fused with it. Optuna's TPE sampler (seeded) starts from the given
settings, so the best trial is never worse on OOF than the defaults.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

from xray_exp.ensembles.fusion import CONF_TYPES, FusionSettings
from xray_exp.ensembles.predict import RawPredictions, fused_predictions, predict_raw
from xray_exp.errors import ConfigError
from xray_exp.evaluation.dataset import load_split
from xray_exp.evaluation.pipeline import score_predictions
from xray_exp.metrics.summary import flat_metrics


@dataclass
class Tuned:
    fusion: FusionSettings
    member_weights: list[float]
    value: float
    default_value: float
    n_trials: int
    images: int
    objective: str

    def as_dict(self) -> dict:
        return {
            "objective": f"oof/{self.objective}",
            "best_value": self.value,
            "default_value": self.default_value,
            "n_trials": self.n_trials,
            "images": self.images,
            "fusion": self.fusion.as_dict(),
            "member_weights": self.member_weights,
        }


def check_one_dataset(cvs: list) -> None:
    """Out-of-fold tuning over several CVs needs one pool: the CVs must share their dataset."""
    first = cvs[0]
    others = [cv for cv in cvs[1:] if Path(cv.data_yaml).resolve() != Path(first.data_yaml).resolve()]
    if others:
        raise ConfigError(
            f"CVs of different datasets: {first.name} ({first.data_yaml}), {others[0].name} "
            f"({others[0].data_yaml}). Fix: tune CVs of one dataset together"
        )


def pool_images(cvs: list) -> tuple[list, list[str]]:
    """The pool images every CV holds (folds.csv), in folds.csv order; refuses a pool touching test."""
    check_one_dataset(cvs)
    first = cvs[0]
    by_id = {}
    for split in ("train", "val"):
        try:
            by_id.update({i.image_id: i for i in load_split(first.data_yaml, split).images})
        except Exception as exc:  # noqa: BLE001  (a dataset without val: the train split alone is the pool)
            if split == "train":
                raise ConfigError(f"cv={first.path}: cannot read its dataset {first.data_yaml}: {exc}") from exc
    try:
        test_ids = {i.image_id for i in load_split(first.data_yaml, "test").images}
    except Exception:  # noqa: BLE001  (no test split: nothing to keep out)
        test_ids = set()
    ids = [i for i in first.folds if all(i in cv.folds for cv in cvs)]
    if set(ids) & test_ids:
        raise ConfigError(
            f"cv={first.path}: folds.csv lists test images ({sorted(set(ids) & test_ids)[:3]}...): "
            "tuning on them would tune on test. Fix: rebuild the fold plan from train + val only"
        )
    missing = [i for i in ids if i not in by_id]
    if missing:
        raise ConfigError(
            f"cv={first.path}: folds.csv images not in the train/val splits of {first.data_yaml}: "
            f"{missing[:3]}. Fix: the CV and the dataset must match"
        )
    return [by_id[i] for i in ids], ids


def oof_predictions(
    detector, cvs: list, members: list, conf: float, iou: float = 0.7, max_det: int = 300, progress: bool = False
) -> RawPredictions:
    """Each pool image predicted (every view) by the fold model of each CV that did not train on it."""
    if not cvs or any(m.fold is None for m in members):
        raise ConfigError(
            "tune=true needs out-of-fold predictions: every member must be a CV folder "
            "(models=[outputs/cv/a,outputs/cv/b] or cv=outputs/cv/a); runs, files and models:/ URIs "
            "have none. Fix: tune=false, or ensemble CV folders only"
        )
    images, ids = pool_images(cvs)
    index = {(m.group, m.fold): k for k, m in enumerate(members)}
    members_of: list[list[int]] = []
    kept = []
    for image, image_id in zip(images, ids, strict=True):
        chosen = [index.get((cv.group, cv.folds[image_id])) for cv in cvs]
        found = [k for k in chosen if k is not None]
        if len(found) < len(chosen):  # its fold model is missing (allow_missing=true): no OOF prediction for it
            continue
        members_of.append(found)
        kept.append(image)
    if not kept:
        raise ConfigError("no pool image has a fold model (every fold missing?)")
    return predict_raw(
        detector,
        kept,
        conf=conf,
        iou=iou,
        max_det=max_det,
        members_of=members_of,
        progress=progress,
        desc="predict OOF",
    )


def tune_fusion(
    raw: RawPredictions,
    detector,
    cvs: list,
    members: list,
    settings,
    objective: str = "map40",
    n_trials: int = 30,
    seed: int = 0,
    conf: float = 0.001,
    max_det: int = 300,
) -> Tuned:
    """Optuna TPE over the fusion settings and the CVs' weights, maximising `objective` on `raw` (OOF)."""
    import optuna

    base = detector.fusion
    low = max(conf, 1e-4)

    def score(fusion: FusionSettings, cv_weights: list[float]) -> tuple[float, list[float]]:
        weights = [cv_weights[[cv.group for cv in cvs].index(m.group)] for m in members]
        preds = fused_predictions(raw, detector, conf, max_det, fusion=fusion, member_weights=weights)
        value = flat_metrics(score_predictions(preds, replace(settings, n_boot=0)), prefix="oof")[f"oof/{objective}"]
        return (float(value) if math.isfinite(value) else 0.0), weights

    default_weights = [cv.weight for cv in cvs]
    default_value, _ = score(base, default_weights)

    def trial_settings(trial) -> tuple[FusionSettings, list[float]]:
        fusion = replace(
            base,
            iou_thr=trial.suggest_float("iou_thr", 0.3, 0.8),
            skip_box_thr=trial.suggest_float("skip_box_thr", low, 0.2, log=True),
        )
        if base.method == "wbf":
            fusion = replace(fusion, conf_type=trial.suggest_categorical("conf_type", list(CONF_TYPES)))
        weights = default_weights
        if len(cvs) > 1:
            weights = [trial.suggest_float(f"weight_{k}", 0.25, 4.0, log=True) for k in range(len(cvs))]
        return fusion, weights

    def run(trial) -> float:
        return score(*trial_settings(trial))[0]

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    start = {"iou_thr": base.iou_thr, "skip_box_thr": min(max(base.skip_box_thr, low), 0.2)}
    if base.method == "wbf":
        start["conf_type"] = base.conf_type
    start.update({f"weight_{k}": min(max(w, 0.25), 4.0) for k, w in enumerate(default_weights)} if len(cvs) > 1 else {})
    study.enqueue_trial(start)
    study.optimize(run, n_trials=max(int(n_trials), 1))
    fusion, cv_weights = trial_settings(optuna.trial.FixedTrial(study.best_params))
    value, weights = score(fusion, cv_weights)
    return Tuned(fusion, weights, value, default_value, len(study.trials), len(raw.gts), objective)
