"""A registered model's predictions against the ground truth (notebooks/02_predictions.ipynb).

    from xray_exp.analysis import predictions as P
    from xray_exp.metrics import evaluate_records
    model = P.load_registered_model("yolo12n", "development", tracking_uri)   # files, classes, imgsz, dataset
    split = P.predict(model, model.data_yaml, "test")     # predictions + ground truth of every image (conf 0.001)
    result = evaluate_records(split.preds, split.gts, split.names, match_iou=0.4, decision_conf=0.25)
    P.plot_predictions(split, conf=0.25)                  # ground truth | predictions, side by side
    P.plot_errors(result, split, "FP")                    # most confident false positives ("FN": missed lesions)
    P.per_class_table(result); P.plot_per_class(P.per_class_table(result))

`model.data_yaml` is the dataset the model's training run used (its logged dataset.json), when that file
exists on this machine; otherwise pass a data.yaml. Predictions run the registered ONNX file (what the
service runs) by default, `weights="pt"` runs best.pt.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from xray_exp.analysis.common import (
    GT_COLOR,
    MISS_COLOR,
    PRED_COLOR,
    draw_boxes,
    hide_unused,
    message_figure,
    new_figure,
    show_gray,
)
from xray_exp.evaluation.predict import SplitPredictions, predict_split
from xray_exp.imaging import read_xray
from xray_exp.metrics import flat_metrics
from xray_exp.metrics.image_level import undefined_note
from xray_exp.metrics.summary import EvaluationResult
from xray_exp.mlops.client import default_tracking_uri
from xray_exp.mlops.query import open_store, run_artifact_text
from xray_exp.project import project_root


@dataclass
class RegisteredModel:
    """One downloaded registry version: its files and what the training run recorded about it."""

    name: str
    alias: str | None
    version: str
    folder: Path  # holds model.onnx (serving) and best.pt (fine-tuning)
    names: list[str]
    imgsz: int
    run_id: str | None  # the training run that logged it
    data_yaml: Path | None  # that run's data.yaml, when it exists on this machine
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def onnx(self) -> Path:
        return self.folder / "model.onnx"

    @property
    def pt(self) -> Path:
        return self.folder / "best.pt"

    def describe(self) -> pd.Series:
        return pd.Series(
            {
                "model": f"{self.name}@{self.alias}" if self.alias else self.name,
                "version": self.version,
                "classes": ", ".join(self.names),
                "imgsz": self.imgsz,
                "training run": self.run_id,
                "objective": f"{self.tags.get('objective')} = {self.tags.get('objective_value')}",
                "data.yaml": str(self.data_yaml) if self.data_yaml else "(not on this machine)",
                "files": str(self.folder),
            }
        )


def _training_data_yaml(tracking_uri: str | None, run_id: str | None) -> Path | None:
    """The data.yaml recorded in the run's dataset/dataset.json artifact, if that file exists here."""
    if not run_id:
        return None
    text = run_artifact_text(tracking_uri, run_id, "dataset/dataset.json")
    try:
        recorded = json.loads(text).get("data_yaml") if text else None
    except (ValueError, AttributeError):  # unreadable: the caller passes a data.yaml
        return None
    return Path(recorded) if recorded and Path(recorded).is_file() else None


def load_registered_model(
    name: str, alias: str | None = "development", tracking_uri: str | None = None, dst: str | Path | None = None
) -> RegisteredModel:
    """Download `name@alias` (alias None: the latest version) and read its class names, input size and lineage.
    tracking_uri None: xray_exp.mlops.client.default_tracking_uri(); dst: the download folder (default: the
    registry's cache)."""
    import yaml

    from xray_exp.mlops.registry import get_latest_model  # lazy: looked up at call time (tests replace it)

    tracking_uri = tracking_uri or default_tracking_uri()
    client = open_store(tracking_uri)
    folder, version = get_latest_model(name, alias, tracking_uri, dst)
    meta = (yaml.safe_load((folder.parent / "MLmodel").read_text()) or {}).get("metadata") or {}
    names_meta = meta.get("names") or {}
    names = [str(names_meta[k]) for k in sorted(names_meta, key=int)]
    mv = client.get_model_version(name, version)
    run_id = mv.run_id or mv.tags.get("source_run_id")
    return RegisteredModel(
        name=name,
        alias=alias,
        version=str(version),
        folder=folder,
        names=names,
        imgsz=int(meta.get("imgsz", 640)),
        run_id=run_id,
        data_yaml=_training_data_yaml(tracking_uri, run_id),
        tags=dict(mv.tags),
    )


def predict(
    model: RegisteredModel,
    data_yaml: str | Path | None,
    split: str = "test",
    weights: str = "onnx",
    conf: float = 0.001,
    iou: float = 0.7,
    device: str = "cpu",
    settings_dir: str | Path | None = None,
) -> SplitPredictions:
    """Predictions and ground truth for every image of `split` at the model's input size. Keep `conf` low:
    AP needs the low-score detections; figures filter by their own threshold."""
    if data_yaml is None:
        raise ValueError(
            f"{model.name} v{model.version}: its training data.yaml is not on this machine; "
            "pass data_yaml= (a YOLO data.yaml with the same classes)"
        )
    if weights not in ("onnx", "pt"):
        raise ValueError(f"weights must be 'onnx' or 'pt', got {weights!r}")
    settings = settings_dir or project_root() / "outputs" / ".ultralytics"
    return predict_split(
        model.onnx if weights == "onnx" else model.pt,
        data_yaml,
        split,
        imgsz=model.imgsz,
        conf=conf,
        iou=iou,
        device=device,
        settings_dir=settings,
    )


def pick_images(split: SplitPredictions, n: int = 4) -> list[str]:
    """Up to n image ids worth showing: the images with the most findings, plus one normal image."""
    counts = sorted(((len(g["labels"]), k) for k, g in enumerate(split.gts)), key=lambda t: (-t[0], t[1]))
    abnormal = [split.gts[k]["image_id"] for c, k in counts if c > 0]
    normal = [split.gts[k]["image_id"] for c, k in counts if c == 0]
    chosen = abnormal[: n - 1] + normal[:1] if normal and n > 1 else abnormal[:n]
    rest = [i for i in abnormal + normal if i not in chosen]
    return (chosen + rest)[:n]


def _labels(names: list[str], labels, scores=None) -> list[str]:
    if scores is None:
        return [names[int(c)] for c in labels]
    return [f"{names[int(c)]} {score_text(s)}" for c, s in zip(labels, scores, strict=True)]


def score_text(score: float) -> str:
    """0.912 -> '0.91'; 0.0031 -> '0.0031' (an untrained model's scores are not all '0.00')."""
    return f"{score:.2f}" if score >= 0.095 else f"{score:.2g}"


def plot_predictions(
    split: SplitPredictions, image_ids: list[str] | None = None, n: int = 4, conf: float = 0.25, max_boxes: int = 10
):
    """Per image two panels: the ground truth (green) and the predictions with score >= conf (red; at most
    `max_boxes`, the highest scores)."""
    gts = {g["image_id"]: g for g in split.gts}
    preds = {p["image_id"]: p for p in split.preds}
    image_ids = list(image_ids or pick_images(split, n))
    unknown = [i for i in image_ids if i not in gts]
    if unknown:
        raise KeyError(f"not images of this split: {unknown[:5]}")
    if not image_ids:
        return message_figure("No images in this split.")
    fig, axes = new_figure(len(image_ids), 2, width=8.0, height=4.0 * len(image_ids))
    for row, image_id in zip(axes, image_ids, strict=True):
        gt, pred = gts[image_id], preds.get(image_id, {"boxes": [], "scores": [], "labels": []})
        image = read_xray(gt["path"])
        show_gray(row[0], image, f"{image_id}: ground truth ({len(gt['labels'])} boxes)")
        draw_boxes(row[0], gt["boxes"], GT_COLOR, _labels(split.names, gt["labels"]))
        scores = np.asarray(pred["scores"], dtype=float)
        keep = np.flatnonzero(scores >= conf)
        keep = keep[np.argsort(-scores[keep], kind="mergesort")][:max_boxes]
        top = f", top score {scores.max():.3f}" if scores.size else ""
        show_gray(row[1], image, f"predictions >= {conf:g}: {len(keep)}{top}")
        draw_boxes(
            row[1],
            np.asarray(pred["boxes"]).reshape(-1, 4)[keep],
            PRED_COLOR,
            _labels(split.names, np.asarray(pred["labels"])[keep], scores[keep]),
        )
    fig.tight_layout()
    return fig


def plot_errors(result: EvaluationResult, split: SplitPredictions, kind: str = "FP", k: int = 8, cols: int = 4):
    """A gallery of the worst errors of `result` (computed on `split`): kind "FP", the most confident false
    positives (red), or "FN", the most missed lesions (orange; score = best same-class detection on it).
    Ground-truth boxes in green."""
    if kind not in ("FP", "FN"):
        raise ValueError(f"kind must be 'FP' or 'FN', got {kind!r}")
    items = (result.false_positives if kind == "FP" else result.false_negatives)[:k]
    what = "false positives" if kind == "FP" else "missed lesions"
    if not items:
        return message_figure(f"No {what}: nothing to show.")
    gts = {g["image_id"]: g for g in split.gts}
    cols = min(cols, len(items))
    rows = -(-len(items) // cols)
    fig, axes = new_figure(rows, cols, width=3.2 * cols, height=3.5 * rows + 0.4)
    for ax, item in zip(axes.flat, items, strict=False):
        gt = gts[item["image_id"]]
        show_gray(
            ax, read_xray(gt["path"]), f"{kind} {split.names[item['label']]} {item['score']:.3f}\n{item['image_id']}"
        )
        draw_boxes(ax, gt["boxes"], GT_COLOR, linewidth=1.0)
        draw_boxes(ax, [item["box"]], PRED_COLOR if kind == "FP" else MISS_COLOR, linewidth=2.5)
    hide_unused(axes, len(items))
    fig.suptitle(f"Worst {len(items)} {what} (green: ground truth)", fontsize=11)
    fig.tight_layout()
    return fig


def per_class_table(result: EvaluationResult) -> pd.DataFrame:
    """Per class: images, instances, TP / FP / FN at the operating point, AP@0.4 / AP50 / AP50-95,
    precision and recall (AP and recall NaN for a class without ground truth)."""
    det = result.detection
    table = pd.DataFrame(
        {
            "class": result.names,
            "images": det.images_with_class.astype(int),
            "instances": det.instances.astype(int),
            "TP": det.tp.astype(int),
            "FP": det.fp.astype(int),
            "FN": (det.instances - det.tp).astype(int),
            "AP@0.4": det.ap_at(0.4),
            "AP50": det.ap_at(0.5),
            "AP50-95": det.ap50_95,
            "precision": det.precision,
            "recall": det.recall,
        }
    )
    return table.set_index("class")


def plot_per_class(table: pd.DataFrame, columns: tuple[str, ...] = ("AP@0.4", "AP50", "precision", "recall")):
    """Grouped bars per class (a per_class_table); the instance count under each class name."""
    fig, axes = new_figure(1, 1, width=max(6.0, 1.6 * len(table) + 2), height=4.2)
    ax = axes[0, 0]
    x = np.arange(len(table))
    width = 0.8 / len(columns)
    for k, col in enumerate(columns):
        values = table[col].to_numpy(dtype=float)
        bars = ax.bar(x + (k - (len(columns) - 1) / 2) * width, np.nan_to_num(values), width, label=col)
        for bar, v in zip(bars, values, strict=True):
            ax.text(
                bar.get_x() + bar.get_width() / 2,
                bar.get_height() + 0.01,
                "n/a" if np.isnan(v) else f"{v:.2f}",
                ha="center",
                va="bottom",
                fontsize=7,
            )
    ax.set_xticks(x, [f"{c}\n({n} boxes)" for c, n in zip(table.index, table["instances"], strict=True)], fontsize=9)
    ax.set(ylim=(0, 1.25), ylabel="value", title="Per-class metrics")
    ax.legend(fontsize=8, ncol=len(columns), loc="upper right")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def metrics_frame(result, split: str) -> pd.DataFrame:
    """flat_metrics of an evaluation as a one-column table; an image-level metric the split cannot define
    (AUROC, specificity without normal images) reads "n/a (no normal images in this split)", not NaN."""
    img = result.image_level
    values: dict[str, object] = {}
    for key, value in flat_metrics(result, split).items():
        name = key.rpartition("/")[2].removesuffix("_ci_low").removesuffix("_ci_high")
        note = (
            undefined_note(name, img.n_normal, img.n_abnormal)
            if name in ("auroc", "sensitivity", "specificity")
            else None
        )
        values[key] = note or value
    return pd.Series(values, dtype=object).to_frame("value")
