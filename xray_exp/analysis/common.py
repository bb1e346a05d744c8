"""Shared bits of the analysis modules: headless matplotlib figures and box colours.

fig, axes = new_figure(2, 3, width=12, height=7)    # axes: (2, 3) array; blank_figure() for a gridspec
"""

from __future__ import annotations

import numpy as np

# Box colours shared by the figures: ground truth green, predictions / errors red, missed lesions orange.
GT_COLOR, PRED_COLOR, MISS_COLOR = "#2ca02c", "#d62728", "#ff7f0e"


def blank_figure(width: float = 6.0, height: float = 4.5):
    """An empty Figure on an Agg canvas (no pyplot)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def new_figure(rows: int = 1, cols: int = 1, width: float = 6.0, height: float = 4.5, **subplot_kw):
    """A Figure on an Agg canvas (no pyplot) and its axes as a 2-D array (rows, cols)."""
    fig = blank_figure(width, height)
    axes = fig.subplots(rows, cols, squeeze=False, subplot_kw=subplot_kw or None)
    return fig, axes


def message_figure(text: str, width: float = 6.0, height: float = 1.5):
    """A figure that only says why there is nothing to plot (keeps a notebook's layout stable)."""
    fig, axes = new_figure(1, 1, width, height)
    axes[0, 0].text(0.5, 0.5, text, ha="center", va="center", wrap=True)
    axes[0, 0].set_axis_off()
    return fig


def hide_unused(axes: np.ndarray, used: int) -> None:
    """Switch off the panels of a grid beyond the first `used`."""
    for ax in axes.flat[used:]:
        ax.set_axis_off()


def draw_boxes(
    ax, boxes, color: str, labels: list[str] | None = None, linewidth: float = 1.5, linestyle: str = "-"
) -> None:
    """xyxy pixel boxes on an image axis (after imshow), with an optional text tag above each box."""
    from matplotlib.patches import Rectangle

    top = min(ax.get_ylim())  # image axes: y grows downwards, the top edge is the smaller limit
    room = 0.06 * abs(ax.get_ylim()[1] - ax.get_ylim()[0])
    for k, (x1, y1, x2, y2) in enumerate(np.asarray(boxes, dtype=float).reshape(-1, 4)):
        ax.add_patch(
            Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=color, linewidth=linewidth, linestyle=linestyle)
        )
        if labels:
            inside = y1 - top < room  # no room above the box: write the tag inside it
            ax.text(
                x1 + (1 if inside else 0),
                y1 + 1 if inside else y1 - 1,
                labels[k],
                color="white",
                fontsize=7,
                va="top" if inside else "bottom",
                ha="left",
                bbox={"facecolor": color, "alpha": 0.8, "pad": 1, "edgecolor": "none"},
                clip_on=True,
            )


def show_gray(ax, image: np.ndarray, title: str | None = None) -> None:
    ax.imshow(image, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)
