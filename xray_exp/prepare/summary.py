"""Dataset summary next to the data: class counts per split, box sizes, example images with boxes.

write_dataset_summary(store, entries, names, examples=16, tile=320)
# -> summary.json, summary.png (counts + box-size histogram), examples.png (grid with boxes)
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np

from xray_exp.prepare.convert import atomic_write
from xray_exp.prepare.store import SPLITS, DatasetStore

# COCO's size buckets, in pixels of the written image (boxes are usually judged at training size).
SMALL, LARGE = 32**2, 96**2


def summarise(entries: list[dict], names: list[str]) -> dict:
    """Counts per split and class, and the distribution of box sizes (absolute and relative)."""
    splits = {}
    sides, rel_sides, areas = [], [], []
    for split in SPLITS:
        mine = [e for e in entries if e["split"] == split]
        boxes: Counter[int] = Counter()  # class id -> boxes
        images: Counter[int] = Counter()  # class id -> images holding it
        for e in mine:
            classes = [b[0] for b in e["boxes"]]
            boxes.update(classes)
            images.update(set(classes))
            width, height = e["size"]
            for _, (x1, y1, x2, y2) in e["boxes"]:
                w, h = x2 - x1, y2 - y1
                areas.append(w * h)
                sides.append(float(np.sqrt(w * h)))
                rel_sides.append(float(np.sqrt(w * h / (width * height))))
        splits[split] = {
            "images": len(mine),
            "patients": len({e["patient_id"] for e in mine}),
            "background_images": sum(1 for e in mine if not e["boxes"]),
            "boxes": sum(boxes.values()),
            "boxes_per_class": {names[c]: boxes[c] for c in range(len(names))},
            "images_per_class": {names[c]: images[c] for c in range(len(names))},
        }
    return {
        "images": len(entries),
        "classes": names,
        "splits": splits,
        "box_size": _distribution(sides, rel_sides, areas),
        "image_sizes": dict(Counter(f"{e['size'][0]}x{e['size'][1]}" for e in entries).most_common(5)),
    }


def _distribution(sides: list[float], rel_sides: list[float], areas: list[float]) -> dict:
    if not sides:
        return {"count": 0}
    q = (5, 25, 50, 75, 95)
    areas_np = np.asarray(areas)
    return {
        "count": len(sides),
        "sqrt_area_px_percentiles": dict(zip(map(str, q), np.round(np.percentile(sides, q), 1).tolist(), strict=True)),
        "sqrt_area_rel_percentiles": dict(
            zip(map(str, q), np.round(np.percentile(rel_sides, q), 4).tolist(), strict=True)
        ),
        "coco_buckets": {
            "small(<32px)": int((areas_np < SMALL).sum()),
            "medium": int(((areas_np >= SMALL) & (areas_np < LARGE)).sum()),
            "large(>=96px)": int((areas_np >= LARGE).sum()),
        },
    }


def plot_summary(summary: dict, entries: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = summary["classes"]
    fig, (ax_counts, ax_sizes) = plt.subplots(1, 2, figsize=(13, max(4, 0.35 * len(names) + 1.5)))
    y = np.arange(len(names))
    height = 0.8 / len(SPLITS)
    for i, split in enumerate(SPLITS):
        counts = [summary["splits"][split]["boxes_per_class"][n] for n in names]
        ax_counts.barh(y + i * height, counts, height=height, label=f"{split} ({summary['splits'][split]['images']})")
    ax_counts.set_yticks(y + height, names)
    ax_counts.invert_yaxis()
    ax_counts.set_xlabel("boxes")
    ax_counts.set_title("boxes per class and split (images in legend)")
    ax_counts.legend()
    rel = [
        np.sqrt((b[1][2] - b[1][0]) * (b[1][3] - b[1][1]) / (e["size"][0] * e["size"][1]))
        for e in entries
        for b in e["boxes"]
    ]
    ax_sizes.hist(rel, bins=30, color="tab:gray")
    ax_sizes.set_xlabel("sqrt(box area / image area)")
    ax_sizes.set_ylabel("boxes")
    ax_sizes.set_title(f"box sizes ({len(rel)} boxes)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def pick_examples(entries: list[dict], count: int) -> list[dict]:
    """Boxed images covering as many classes as possible, then a background image; deterministic."""
    boxed = sorted((e for e in entries if e["boxes"]), key=lambda e: e["image_id"])
    chosen: list[dict] = []
    seen: set[int] = set()
    for e in boxed:
        classes = {b[0] for b in e["boxes"]}
        if classes - seen:
            chosen.append(e)
            seen |= classes
    background = [e for e in sorted(entries, key=lambda e: e["image_id"]) if not e["boxes"]][:1]
    rest = [e for e in boxed if e not in chosen]
    return (chosen[: max(count - len(background), 0)] + background + rest)[:count]


def _text(image: np.ndarray, text: str, origin: tuple[int, int], colour: tuple[int, int, int]) -> None:
    """cv2's built-in Hershey font (no font files), outlined in black so it reads on any background."""
    import cv2

    for thickness, ink in ((3, (0, 0, 0)), (1, colour)):
        cv2.putText(image, text, origin, cv2.FONT_HERSHEY_SIMPLEX, 0.4, ink, thickness, cv2.LINE_AA)


def draw_examples(store: DatasetStore, entries: list[dict], names: list[str], tile: int, path: Path) -> None:
    import cv2

    if not entries:
        return
    cols = min(4, len(entries))
    rows = -(-len(entries) // cols)
    grid = np.zeros((rows * tile, cols * tile, 3), dtype=np.uint8)
    shades = np.linspace(40, 230, len(names)).astype(np.uint8).reshape(-1, 1)  # TURBO minus its dark ends
    colours = [tuple(int(v) for v in c[0]) for c in cv2.applyColorMap(shades, cv2.COLORMAP_TURBO)]
    for i, e in enumerate(entries):
        image = cv2.imread(str(store.image_path(e["split"], e["image_id"])), cv2.IMREAD_GRAYSCALE)
        if image is None:
            continue
        scale = tile / max(image.shape)
        image = cv2.cvtColor(
            cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA), cv2.COLOR_GRAY2BGR
        )
        for c, (x1, y1, x2, y2) in e["boxes"]:
            p1, p2 = (int(x1 * scale), int(y1 * scale)), (int(x2 * scale), int(y2 * scale))
            cv2.rectangle(image, p1, p2, colours[c], 2)
            _text(image, names[c][:18], (p1[0] + 2, max(p1[1] - 3, 10)), colours[c])
        caption = f"{e['split']} {e['image_id'][:14]}" + ("" if e["boxes"] else " (background)")
        _text(image, caption, (4, image.shape[0] - 6), (255, 255, 255))
        r, c = divmod(i, cols)
        grid[r * tile : r * tile + image.shape[0], c * tile : c * tile + image.shape[1]] = image
    ok, png = cv2.imencode(".png", grid)
    if ok:
        atomic_write(path, png.tobytes())


def write_dataset_summary(store: DatasetStore, entries: list[dict], names: list[str], examples: int, tile: int) -> dict:
    """Write summary.json, summary.png and examples.png into the dataset folder; return the summary."""
    summary = summarise(entries, names)
    atomic_write(store.root / "summary.json", json.dumps(summary, indent=2).encode())
    plot_summary(summary, entries, store.root / "summary.png")
    draw_examples(store, pick_examples(entries, examples), names, tile, store.root / "examples.png")
    return summary
