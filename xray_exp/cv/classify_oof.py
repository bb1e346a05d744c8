"""Out-of-fold abnormality probabilities of a cross-validation of classifiers (`sweep=cv task=classify`): each
pool image's P(abnormal) by the fold classifier that never saw it, scored by the one classifier evaluator.

    python -m xray_exp.train --multirun sweep=cv cv.folds=5 task=classify     # finish_cv calls these
    oof = pooled_probabilities(record, folds=[0, 1, 2])      # OofProbabilities: images, P, truth, fold per image
    write_probabilities_csv(oof, patients, "oof_predictions.csv")        # image,patient,fold,label,p_abnormal
    metrics, result = score_probabilities(oof, patients, settings, threshold=0.5)   # AUROC (CI over patients),
                                                                                    # sensitivity, specificity, Brier
A fold's probabilities are cached in <cv>/oof/fold<f>.json, keyed by its weights file, as the detectors' OOF
boxes are (xray_exp.cv.oof): finishing the CV again predicts only the folds whose model changed.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from xray_exp.cv.oof import oof_cache_key
from xray_exp.evaluation.classifier import split_probabilities
from xray_exp.metrics.classification import classifier_flat, classifier_metrics

OOF_PROB_COLUMNS = ["image", "patient", "fold", "label", "p_abnormal"]


@dataclass
class OofProbabilities:
    images: list[str] = field(default_factory=list)
    probs: list[float] = field(default_factory=list)  # P(abnormal)
    abnormal: list[bool] = field(default_factory=list)  # ground truth: the image has a box
    fold_of: dict[str, int] = field(default_factory=dict)


def fold_probabilities(record: dict, run: dict) -> dict[str, Any]:
    """{"images", "probs", "abnormal"} of fold `run['fold']`'s classifier on its own validation images (cached per
    weights file). The same prediction as the classifier's evaluation (xray_exp.evaluation.classifier)."""
    cache = Path(record["cv_dir"]) / "oof" / f"fold{run['fold']}.json"
    key = oof_cache_key(run["weights"])
    if cache.is_file():
        kept = json.loads(cache.read_text())
        if kept.get("key") == key and "probs" in kept:
            return kept
    ids, _, probs, abnormal = split_probabilities(
        run["weights"], run["data_yaml"], "val", int(record["imgsz"]), (record.get("predict") or {}).get("device")
    )
    out = {
        "key": key,
        "images": [str(i) for i in ids],
        "probs": [float(p) for p in probs],
        "abnormal": [bool(a) for a in abnormal],
    }
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp")
    tmp.write_text(json.dumps(out))
    tmp.replace(cache)
    return out


def pooled_probabilities(record: dict, folds: list[int]) -> OofProbabilities:
    """The OOF probabilities of the given (finished) folds, pooled; one fold classifier in memory at a time."""
    out = OofProbabilities()
    runs = {run["fold"]: run for run in record["fold_runs"]}
    for fold in folds:
        kept = fold_probabilities(record, runs[fold])
        out.images += kept["images"]
        out.probs += kept["probs"]
        out.abnormal += kept["abnormal"]
        out.fold_of.update(dict.fromkeys(kept["images"], fold))
    return out


def write_probabilities_csv(oof: OofProbabilities, patients: dict[str, str], path: str | Path) -> Path:
    """One row per pool image: image, patient, fold, label (the truth: abnormal | normal), p_abnormal."""
    path = Path(path)
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(OOF_PROB_COLUMNS)
        for image, prob, abnormal in zip(oof.images, oof.probs, oof.abnormal, strict=True):
            label = "abnormal" if abnormal else "normal"
            writer.writerow(
                [image, patients.get(image, image), oof.fold_of[image], label, f"{prob:.9g}"]
            )  # float32's digits, all
    tmp.replace(path)
    return path


def score_probabilities(
    oof: OofProbabilities, patients: dict[str, str], settings, threshold: float
) -> tuple[dict[str, float], Any]:
    """Image-level metrics of the pooled OOF probabilities (xray_exp.metrics.classification, the evaluator's),
    bootstrap intervals resampling patients (an image without one is its own). Returns ({metric: value}
    without a prefix: auroc, sensitivity, specificity, brier, their _ci_low/_ci_high, images, normal_images;
    the ClassifierResult)."""
    result = classifier_metrics(
        oof.images,
        np.asarray(oof.probs, dtype=np.float64),
        np.asarray(oof.abnormal, dtype=bool),
        threshold=threshold,
        n_boot=int(settings.n_boot),
        seed=int(settings.ci_seed),
        level=float(settings.ci_level),
        groups=[patients.get(image, image) for image in oof.images],
    )
    return {k.split("/", 1)[1]: v for k, v in classifier_flat(result, "oof").items()}, result
