"""Out-of-fold (OOF) predictions: each pool image predicted by the fold model that never saw it.

    preds = fold_oof_predictions(record, run)         # one extra pass over fold f's validation images
    out = pooled_oof(record, folds=[0, 1, 2])          # SplitPredictions over the whole pool (one model at a time)
    write_oof_csv(out, fold_of, names, "oof_predictions.csv")
    metrics, result = score_oof(out, patients, settings)   # the one evaluator, bootstrap over patients

A fold's OOF predictions are cached in <cv>/oof/fold<f>.json, keyed by its weights file (size and mtime):
finishing the CV again predicts only the folds whose model changed.
"""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from xray_exp.evaluation.pipeline import confidence_intervals, score_predictions
from xray_exp.evaluation.predict import SplitPredictions, predict_split
from xray_exp.metrics.summary import flat_metrics

log = logging.getLogger("xray_exp.cv")

OOF_CSV = "oof_predictions.csv"
OOF_COLUMNS = ["image", "fold", "label", "class_id", "confidence", "x1", "y1", "x2", "y2"]


def _oof_cache_key(weights: str) -> dict[str, Any]:
    stat = Path(weights).stat()
    return {"weights": str(weights), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _records_to_json(records: list[dict]) -> list[dict]:
    return [{k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in r.items()} for r in records]


def _records_from_json(records: list[dict], arrays: dict[str, tuple]) -> list[dict]:
    out = []
    for r in records:
        item = dict(r)
        for key, (dtype, shape) in arrays.items():
            if key in item:
                item[key] = np.asarray(item[key], dtype=dtype).reshape(shape)
        out.append(item)
    return out


PRED_ARRAYS = {"boxes": (np.float64, (-1, 4)), "scores": (np.float64, (-1,)), "labels": (np.int64, (-1,))}
GT_ARRAYS = {"boxes": (np.float64, (-1, 4)), "labels": (np.int64, (-1,))}


def fold_oof_predictions(record: dict, run: dict) -> SplitPredictions:
    """Predictions of fold `run['fold']`'s model on its own validation images (cached per weights file)."""
    cache = Path(record["cv_dir"]) / "oof" / f"fold{run['fold']}.json"
    key = _oof_cache_key(run["weights"])
    if cache.is_file():
        kept = json.loads(cache.read_text())
        if kept.get("key") == key:
            return SplitPredictions(
                kept["names"],
                _records_from_json(kept["preds"], PRED_ARRAYS),
                _records_from_json(kept["gts"], GT_ARRAYS),
            )
    p = record.get("predict", {})
    out = predict_split(
        run["weights"],
        run["data_yaml"],
        "val",
        imgsz=int(record["imgsz"]),
        conf=p.get("conf", 0.001),
        iou=p.get("iou", 0.7),
        device=p.get("device"),
        batch=p.get("batch", 16),
        max_det=p.get("max_det", 300),
        settings_dir=record.get("ultralytics_dir"),
        progress=False,
    )
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp")
    tmp.write_text(
        json.dumps(
            {"key": key, "names": out.names, "preds": _records_to_json(out.preds), "gts": _records_to_json(out.gts)}
        )
    )
    tmp.replace(cache)
    return out


def pooled_oof(record: dict, folds: list[int]) -> tuple[SplitPredictions, dict[str, int]]:
    """OOF predictions of the given (finished) folds, pooled; and image id -> fold. One fold model in memory at
    a time (each is loaded, run over its validation images and released)."""
    preds, gts, fold_of, names = [], [], {}, list(record["names"])
    runs = {run["fold"]: run for run in record["fold_runs"]}
    for fold in folds:
        out = fold_oof_predictions(record, runs[fold])
        preds += out.preds
        gts += out.gts
        fold_of.update({str(g["image_id"]): fold for g in out.gts})
    return SplitPredictions(names, preds, gts), fold_of


def write_oof_csv(out: SplitPredictions, fold_of: dict[str, int], path: str | Path) -> Path:
    """One row per predicted box (pixels of the dataset image); an image without one: a row with empty label."""
    path = Path(path)
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(OOF_COLUMNS)
        for p in out.preds:
            image = str(p["image_id"])
            boxes = np.asarray(p["boxes"]).reshape(-1, 4)
            if not len(boxes):
                writer.writerow([image, fold_of[image], "", "", "", "", "", "", ""])
            order = np.argsort(-np.asarray(p["scores"]), kind="mergesort")
            for i in order:
                label = int(p["labels"][i])
                writer.writerow(
                    [
                        image,
                        fold_of[image],
                        out.names[label],
                        label,
                        f"{p['scores'][i]:.6f}",
                        *(f"{v:.2f}" for v in boxes[i]),
                    ]
                )
    tmp.replace(path)
    return path


def score_oof(out: SplitPredictions, patients: dict[str, str], settings) -> tuple[dict[str, float], Any]:
    """Every metric of the pooled OOF predictions by the one evaluator (`score_predictions`), with bootstrap
    intervals resampling patients (`patients`: image id -> patient; an image without one is its own).
    Returns ({metric: value} without a prefix, the EvaluationResult)."""
    groups = [patients.get(str(g["image_id"]), str(g["image_id"])) for g in out.gts]
    result = score_predictions(out, settings, groups)
    flat = flat_metrics(result, prefix="oof", ci=confidence_intervals(result, settings))
    return {k.split("/", 1)[1]: v for k, v in flat.items()}, result
