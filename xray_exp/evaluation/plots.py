"""Report figures (matplotlib, no pyplot: Agg canvases, safe in threads and headless jobs).

plot_pr_curves(result.detection, names, "pr_curves.png")
plot_froc(result.froc, "froc.png")
plot_roc(result.image_level, "roc.png")
plot_confusion(result.confusion, names, "confusion_matrix.png")
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from xray_exp.metrics.ap import precision_envelope
from xray_exp.metrics.classification import ClassifierResult
from xray_exp.metrics.detection import DetectionMetrics
from xray_exp.metrics.froc import FrocResult
from xray_exp.metrics.image_level import ImageLevelResult


def _figure(width: float = 6.0, height: float = 4.5):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot(1, 1, 1)


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path)
    return path


def plot_pr_curves(detection: DetectionMetrics, names: list[str], path: str | Path) -> Path:
    """Precision-recall per class at the matching IoU, with AP in the legend."""
    fig, ax = _figure()
    ap = detection.ap_at(detection.match_iou)
    for c, (recall, precision, _) in enumerate(detection.pr_curves):
        if detection.instances[c] == 0:
            continue
        ax.plot(
            np.r_[0.0, recall],
            np.r_[1.0, precision_envelope(precision)] if len(precision) else [1.0],
            label=f"{names[c]} AP {ap[c]:.3f}",
        )
    ax.set(
        xlim=(0, 1),
        ylim=(0, 1.02),
        xlabel="recall",
        ylabel="precision (interpolated)",
        title=f"PR curves, IoU {detection.match_iou:g} (mAP {detection.map_at(detection.match_iou):.3f})",
    )
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="lower left")
    return _save(fig, path)


def plot_froc(froc: FrocResult, path: str | Path) -> Path:
    fig, ax = _figure()
    upper = froc.fp_rates.max() * 1.5
    keep = froc.fppi <= upper
    ax.step(np.maximum(froc.fppi[keep], 1e-3), froc.curve_sensitivity[keep], where="post", label="FROC")
    ax.plot(froc.fp_rates, froc.sensitivity, "o", label=f"mean {froc.mean:.3f}")
    ax.set_xscale("log")
    ax.set(
        xlim=(froc.fp_rates.min() / 2, upper),
        ylim=(0, 1.02),
        xlabel="false positives per image",
        ylabel="lesion sensitivity",
        title=f"FROC ({froc.n_lesions} lesions, {froc.n_images} images)",
    )
    ax.set_xticks(froc.fp_rates, [f"{r:g}" for r in froc.fp_rates])
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="lower right")
    return _save(fig, path)


def plot_roc(image_level: ImageLevelResult | ClassifierResult, path: str | Path) -> Path:
    """Image-level ROC of 'any abnormality' (a note instead when one class of image is missing)."""
    fig, ax = _figure(4.8, 4.5)
    if np.isfinite(image_level.auroc):
        from sklearn.metrics import roc_curve

        fpr, tpr, _ = roc_curve(image_level.abnormal, image_level.scores)
        ax.plot(fpr, tpr, label=f"AUROC {image_level.auroc:.3f}")
        ax.plot([0, 1], [0, 1], ":", color="grey")
        spec, sens = image_level.specificity, image_level.sensitivity
        ax.plot([1 - spec], [sens], "o", label=f"threshold {image_level.threshold:g}")
        ax.legend(loc="lower right")
    else:
        ax.text(0.5, 0.5, "AUROC undefined:\nneeds normal and abnormal images", ha="center", va="center")
    ax.set(
        xlim=(0, 1),
        ylim=(0, 1.02),
        xlabel="1 - specificity",
        ylabel="sensitivity",
        title="Any abnormality (image level)",
    )
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_confusion(cm: np.ndarray, names: list[str], path: str | Path) -> Path:
    labels = [*names, "background"]
    size = max(4.5, 0.6 * len(labels) + 2)
    fig, ax = _figure(size + 1, size)
    ax.imshow(cm, cmap="Blues")
    ticks = np.arange(len(labels))
    ax.set_xticks(ticks, labels, rotation=45, ha="right")
    ax.set_yticks(ticks, labels)
    ax.set(xlabel="predicted", ylabel="true", title="Confusion matrix (counts)")
    high = cm.max() / 2 if cm.size else 0
    for (i, j), v in np.ndenumerate(cm):
        ax.text(j, i, str(v), ha="center", va="center", fontsize=8, color="white" if v > high else "black")
    return _save(fig, path)
