"""A YOLO-format dataset (data.yaml) as tables and figures (notebooks/03_dataset.ipynb).

    from xray_exp.analysis import dataset as D
    data = D.load_dataset("path/to/data.yaml")   # or D.default_data_yaml(): the training default (synthetic)
    D.split_summary(data)                        # per split: images, normal / abnormal images, boxes, image sizes
    D.class_balance(data)                        # boxes per class and split; count="images": images per class
    D.box_stats(data)                            # per class: box sizes (relative and pixels), aspect, COCO buckets
    D.plot_class_balance(data); D.plot_box_sizes(data); D.plot_box_positions(data); D.plot_examples(data)
    D.reader_agreement(data)                     # multi-reader sources: boxes by how many readers drew them

Every function takes a data.yaml path or the DatasetTables that load_dataset returns (read the labels
once for a large dataset). Boxes: `cls xc yc w h` normalised (polygon lines become their bounding box);
an image without a label file or lines is normal ("no findings"). Image sizes come from the file headers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from xray_exp.analysis.common import GT_COLOR, draw_boxes, hide_unused, message_figure, new_figure
from xray_exp.data.validate import load_data_yaml
from xray_exp.evaluation.dataset import load_split, parse_label_text
from xray_exp.imaging import read_xray
from xray_exp.project import project_root

SPLITS = ("train", "val", "test")
NORMAL = "(no findings)"
SMALL, LARGE = 32**2, 96**2  # COCO size buckets in pixels of the stored image
IMAGE_COLUMNS = ["split", "image_id", "path", "width", "height", "boxes"]
BOX_COLUMNS = [
    "split",
    "image_id",
    "class_id",
    "class",
    "x1",
    "y1",
    "x2",
    "y2",
    "xc",
    "yc",
    "w",
    "h",
    "w_px",
    "h_px",
    "sqrt_area_px",
    "sqrt_area_rel",
    "aspect",
]


@dataclass
class DatasetTables:
    data_yaml: Path
    names: list[str]
    splits: list[str]
    images: pd.DataFrame  # one row per image: split, image_id, path, width, height, boxes
    boxes: pd.DataFrame  # one row per box: split, image_id, class_id, class, x1..y2 (px), xc yc w h (relative), ...


def default_data_yaml(root: str | Path | None = None) -> Path:
    """The training default: the embedded synthetic dataset with the schema's defaults (SyntheticConfig) under
    <root>/outputs/.cache/datasets, generated on first use (seconds)."""
    from xray_exp.data.synthetic import ensure_synthetic_dataset  # lazy: looked up at call time (tests replace it)

    return ensure_synthetic_dataset(Path(root or project_root()) / "outputs" / ".cache" / "datasets")


def _image_size(path: Path) -> tuple[int, int]:
    from PIL import Image

    with Image.open(path) as im:
        return im.size


def load_dataset(data_yaml: str | Path, splits: tuple[str, ...] | None = None) -> DatasetTables:
    """Read every label (and image header) of the splits the data.yaml defines (or `splits`)."""
    data, _ = load_data_yaml(data_yaml)
    splits = tuple(splits or [s for s in SPLITS if data.get(s) not in (None, "")])
    images, boxes, names = [], [], None
    for split in splits:
        part = load_split(data_yaml, split)
        names = part.names
        for image in part.images:
            width, height = _image_size(image.path)
            text = image.label_path.read_text() if image.label_path.is_file() else ""
            rel, labels = parse_label_text(text, 1, 1, source=str(image.label_path))
            images.append(
                {
                    "split": split,
                    "image_id": image.image_id,
                    "path": str(image.path),
                    "width": width,
                    "height": height,
                    "boxes": len(labels),
                }
            )
            for (x1, y1, x2, y2), c in zip(rel, labels, strict=True):
                w, h = x2 - x1, y2 - y1
                boxes.append(
                    {
                        "split": split,
                        "image_id": image.image_id,
                        "class_id": int(c),
                        "class": names[c] if 0 <= c < len(names) else f"class {c}",
                        "x1": x1 * width,
                        "y1": y1 * height,
                        "x2": x2 * width,
                        "y2": y2 * height,
                        "xc": (x1 + x2) / 2,
                        "yc": (y1 + y2) / 2,
                        "w": w,
                        "h": h,
                        "w_px": w * width,
                        "h_px": h * height,
                        "sqrt_area_px": float(np.sqrt(w * width * h * height)),
                        "sqrt_area_rel": float(np.sqrt(w * h)),
                        "aspect": w * width / max(h * height, 1e-9),
                    }
                )
    if names is None:
        raise ValueError(f"{data_yaml}: no train/val/test split to read")
    return DatasetTables(
        Path(data_yaml).expanduser().resolve(),
        names,
        list(splits),
        pd.DataFrame(images, columns=IMAGE_COLUMNS),
        pd.DataFrame(boxes, columns=BOX_COLUMNS),
    )


def _tables(data: str | Path | DatasetTables) -> DatasetTables:
    return data if isinstance(data, DatasetTables) else load_dataset(data)


def split_summary(data: str | Path | DatasetTables) -> pd.DataFrame:
    """Per split (and `all`): images, normal / abnormal images, boxes, boxes per abnormal image, the most
    common image sizes."""
    t = _tables(data)
    rows = []
    for split in [*t.splits, "all"]:
        imgs = t.images if split == "all" else t.images[t.images["split"] == split]
        sizes = (imgs["width"].astype(str) + "x" + imgs["height"].astype(str)).value_counts()
        abnormal = int((imgs["boxes"] > 0).sum())
        rows.append(
            {
                "split": split,
                "images": len(imgs),
                "normal_images": len(imgs) - abnormal,
                "abnormal_images": abnormal,
                "boxes": int(imgs["boxes"].sum()),
                "boxes_per_abnormal_image": round(imgs["boxes"].sum() / abnormal, 2) if abnormal else 0.0,
                "image_sizes": ", ".join(f"{s} ({n})" for s, n in sizes.head(3).items()),
            }
        )
    return pd.DataFrame(rows).set_index("split")


def class_balance(data: str | Path | DatasetTables, count: str = "boxes") -> pd.DataFrame:
    """Rows: classes; columns: splits, `all` and `share` (of all). count="boxes": boxes per class;
    count="images": images holding the class, plus a row for normal images."""
    t = _tables(data)
    if count not in ("boxes", "images"):
        raise ValueError(f"count must be 'boxes' or 'images', got {count!r}")
    b = t.boxes if count == "boxes" else t.boxes.drop_duplicates(["split", "image_id", "class_id"])
    table = pd.crosstab(
        pd.Categorical(b["class"], categories=t.names), pd.Categorical(b["split"], t.splits), dropna=False
    )
    if count == "images":
        normal = t.images[t.images["boxes"] == 0]["split"].value_counts()
        table.loc[NORMAL] = [int(normal.get(s, 0)) for s in t.splits]
    table.index.name, table.columns.name = "class", None
    table.columns = [str(c) for c in table.columns]
    table["all"] = table.sum(axis=1)
    denominator = table["all"].sum() if count == "boxes" else len(t.images)
    table["share"] = (table["all"] / max(denominator, 1)).round(3)
    return table


def box_stats(data: str | Path | DatasetTables) -> pd.DataFrame:
    """Per class (and `all`): boxes, median relative width / height, sqrt(area) in pixels (p5, median, p95)
    and relative to the image, median aspect (w/h), and COCO size buckets (< 32 px, 32-96, >= 96 px)."""
    t = _tables(data)
    rows = []
    for name in [*t.names, "all"]:
        b = t.boxes if name == "all" else t.boxes[t.boxes["class"] == name]
        area = (b["w_px"] * b["h_px"]).to_numpy()
        q = b["sqrt_area_px"].quantile([0.05, 0.5, 0.95]).to_numpy() if len(b) else np.full(3, np.nan)
        rows.append(
            {
                "class": name,
                "boxes": len(b),
                "median_w_rel": b["w"].median(),
                "median_h_rel": b["h"].median(),
                "sqrt_area_px_p5": q[0],
                "sqrt_area_px_median": q[1],
                "sqrt_area_px_p95": q[2],
                "sqrt_area_rel_median": b["sqrt_area_rel"].median(),
                "aspect_median": b["aspect"].median(),
                "small": int((area < SMALL).sum()),
                "medium": int(((area >= SMALL) & (area < LARGE)).sum()),
                "large": int((area >= LARGE).sum()),
            }
        )
    return pd.DataFrame(rows).set_index("class").round(3)


def plot_class_balance(data: str | Path | DatasetTables):
    """Two panels: boxes per class and images per class (with normal images), one bar per split."""
    t = _tables(data)
    fig, axes = new_figure(1, 2, width=12.0, height=0.45 * (len(t.names) + 1) * len(t.splits) + 2.0)
    for ax, count in zip(axes[0], ("boxes", "images"), strict=True):
        table = class_balance(t, count)
        y = np.arange(len(table))
        height = 0.8 / len(t.splits)
        for k, split in enumerate(t.splits):
            bars = ax.barh(y + (k - (len(t.splits) - 1) / 2) * height, table[split], height, label=split)
            ax.bar_label(bars, fontsize=7, padding=2)
        ax.set_yticks(y, table.index)
        ax.invert_yaxis()
        ax.set(xlabel=count, title=f"{count.capitalize()} per class")
        ax.margins(x=0.12)
        ax.grid(axis="x", alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def plot_box_sizes(data: str | Path | DatasetTables):
    """Box width vs height (relative to the image) per class, and the distribution of sqrt(area) in pixels."""
    t = _tables(data)
    if t.boxes.empty:
        return message_figure("No boxes in this dataset.")
    fig, axes = new_figure(1, 2, width=12.0, height=4.8)
    scatter, hist = axes[0]
    bins = np.histogram_bin_edges(t.boxes["sqrt_area_px"], bins=min(30, max(10, len(t.boxes) // 20)))
    present = [(k, name) for k, name in enumerate(t.names) if (t.boxes["class"] == name).any()]
    for k, name in present:
        b = t.boxes[t.boxes["class"] == name]
        scatter.scatter(b["w"], b["h"], s=12, alpha=0.6, color=f"C{k}", label=f"{name} ({len(b)})")
    hist.hist(
        [t.boxes[t.boxes["class"] == name]["sqrt_area_px"] for _, name in present],
        bins=bins,
        color=[f"C{k}" for k, _ in present],
        label=[name for _, name in present],
    )
    hist.yaxis.get_major_locator().set_params(integer=True)
    scatter.plot([0, 1], [0, 1], ":", color="grey", linewidth=0.8)
    top = max(t.boxes["w"].max(), t.boxes["h"].max()) * 1.08
    scatter.set(
        xlim=(0, top),
        ylim=(0, top),
        xlabel="box width / image width",
        ylabel="box height / image height",
        title="Box shapes (relative)",
    )
    for edge in (32, 96):
        hist.axvline(edge, color="grey", linestyle="--", linewidth=0.8)
    hist.set(
        xlabel="sqrt(box area) in pixels (dashed: COCO 32 / 96 px)",
        ylabel="boxes",
        title="Box sizes (pixels of the stored image)",
    )
    for ax in (scatter, hist):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_box_positions(data: str | Path | DatasetTables, cols: int = 4):
    """Box centres per class on the unit image (x right, y down), box outlines faint behind them."""
    from matplotlib.patches import Rectangle

    t = _tables(data)
    present = [n for n in t.names if (t.boxes["class"] == n).any()]
    if not present:
        return message_figure("No boxes in this dataset.")
    cols = min(cols, len(present))
    rows = -(-len(present) // cols)
    fig, axes = new_figure(rows, cols, width=3.4 * cols, height=3.6 * rows)
    for ax, name in zip(axes.flat, present, strict=False):
        k = t.names.index(name)
        b = t.boxes[t.boxes["class"] == name]
        for _, r in b.head(400).iterrows():
            ax.add_patch(
                Rectangle(
                    (r["xc"] - r["w"] / 2, r["yc"] - r["h"] / 2),
                    r["w"],
                    r["h"],
                    fill=False,
                    edgecolor=f"C{k}",
                    alpha=0.15,
                    linewidth=0.8,
                )
            )
        ax.scatter(b["xc"], b["yc"], s=10, color=f"C{k}", alpha=0.8)
        ax.set(xlim=(0, 1), ylim=(1, 0), aspect="equal", title=f"{name} ({len(b)} boxes)")
        ax.set_xticks([0, 0.5, 1])
        ax.set_yticks([0, 0.5, 1])
        ax.grid(alpha=0.3)
    hide_unused(axes, len(present))
    fig.suptitle(
        "Box centres relative to the image (x right, y down; frontal film: patient's right on the left)", fontsize=10
    )
    fig.tight_layout()
    return fig


def example_images(t: DatasetTables, split: str, n: int) -> list[str]:
    """Up to n image ids of `split`: one per class first, then a normal one, then the rest."""
    imgs = t.images[t.images["split"] == split]
    boxes = t.boxes[t.boxes["split"] == split]
    chosen: list[str] = []
    for name in t.names:
        ids = boxes[boxes["class"] == name]["image_id"]
        pick = next((i for i in ids if i not in chosen), None)
        if pick is not None:
            chosen.append(pick)
    normal = imgs[imgs["boxes"] == 0]["image_id"]
    chosen += [i for i in normal.head(1) if i not in chosen]
    chosen += [i for i in imgs["image_id"] if i not in chosen]
    return chosen[:n]


def plot_examples(data: str | Path | DatasetTables, split: str | None = None, n: int = 8, cols: int = 4):
    """Example images of `split` (default: the first split) with their boxes and class names."""
    t = _tables(data)
    split = split or t.splits[0]
    if split not in t.splits:
        raise ValueError(f"split {split!r} not in {t.splits}")
    ids = example_images(t, split, n)
    if not ids:
        return message_figure(f"No images in {split}.")
    cols = min(cols, len(ids))
    rows = -(-len(ids) // cols)
    fig, axes = new_figure(rows, cols, width=3.3 * cols, height=3.8 * rows + 0.4)
    in_split = t.images[t.images["split"] == split]
    paths = dict(zip(in_split["image_id"], in_split["path"], strict=True))
    for ax, image_id in zip(axes.flat, ids, strict=False):
        b = t.boxes[(t.boxes["split"] == split) & (t.boxes["image_id"] == image_id)]
        ax.imshow(read_xray(paths[image_id]), cmap="gray", vmin=0, vmax=255)
        ax.set_xticks([])
        ax.set_yticks([])
        counts = b["class"].value_counts(sort=False)
        found = ", ".join(f"{c} x{n}" if n > 1 else c for c, n in counts.items()) or "no findings"
        ax.set_title(f"{image_id}\n{found}", fontsize=8)
        draw_boxes(ax, b[["x1", "y1", "x2", "y2"]].to_numpy(), GT_COLOR, list(b["class"]))
    hide_unused(axes, len(ids))
    fig.suptitle(f"Examples from {split}", fontsize=11)
    fig.tight_layout()
    return fig


def reader_agreement(data) -> pd.DataFrame:
    """Boxes per split by how many readers drew them (manifest.csv `box_readers`, written by
    `python -m xray_exp.prepare` for multi-reader sources such as VinDr-CXR); empty without that column."""
    tables = data if isinstance(data, DatasetTables) else load_dataset(data)
    manifest = Path(tables.data_yaml).parent / "manifest.csv"
    if not manifest.is_file():
        return pd.DataFrame()
    frame = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    if "box_readers" not in frame.columns:
        return pd.DataFrame()
    rows = [{"split": r.split, "readers": int(n)} for r in frame.itertuples() for n in r.box_readers.split()]
    if not rows:
        return pd.DataFrame()
    table = pd.DataFrame(rows).value_counts(["split", "readers"]).unstack("readers", fill_value=0)
    return table.rename(columns=lambda n: f"{n} reader{'s' if n != 1 else ''}")
