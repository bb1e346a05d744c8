"""Galleries of failure cases drawn with OpenCV (cv2.putText's built-in Hershey font: no font files).

    render_gallery(result.false_positives, gts, names, "false_positives.png", kind="FP")

Each tile is one image, scaled to fit `tile` pixels: ground-truth boxes in green, the failure's box
thick (red for a false positive, orange for a missed lesion) with its class and score.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from xray_exp.imaging import read_xray

GREEN, RED, ORANGE, WHITE = (0, 200, 0), (0, 0, 255), (0, 165, 255), (255, 255, 255)


def _tile(gray: np.ndarray, gt: Mapping, item: Mapping, names: Sequence[str], kind: str, size: int) -> np.ndarray:
    import cv2

    h, w = gray.shape[:2]
    scale = size / max(h, w)
    small = cv2.resize(gray, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    tile = np.zeros((size, size, 3), dtype=np.uint8)
    tile[: small.shape[0], : small.shape[1]] = cv2.cvtColor(small, cv2.COLOR_GRAY2BGR)
    for box in np.asarray(gt["boxes"]).reshape(-1, 4):
        x1, y1, x2, y2 = (np.asarray(box) * scale).round().astype(int)
        cv2.rectangle(tile, (x1, y1), (x2, y2), GREEN, 1)
    x1, y1, x2, y2 = (np.asarray(item["box"]) * scale).round().astype(int)
    cv2.rectangle(tile, (x1, y1), (x2, y2), RED if kind == "FP" else ORANGE, 2)
    caption = f"{kind} {names[item['label']]} {item['score']:.2f}"
    for text, y in ((caption, 14), (str(item["image_id"])[:32], size - 6)):
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.4, 1)
        cv2.rectangle(tile, (2, y - th - 3), (6 + tw, y + base), (0, 0, 0), -1)
        cv2.putText(tile, text, (4, y), cv2.FONT_HERSHEY_SIMPLEX, 0.4, WHITE, 1, cv2.LINE_AA)
    return tile


def render_gallery(
    items: Sequence[Mapping],
    gts: Sequence[Mapping],
    names: Sequence[str],
    path: str | Path,
    kind: str,
    tile: int = 256,
    cols: int = 4,
) -> Path | None:
    """Write a grid of tiles for `items` (from xray_exp.metrics.failures) whose ground-truth record carries
    the image `path`; None when there are none."""
    import cv2

    by_id = {str(g["image_id"]): g for g in gts if g.get("path")}
    items = [item for item in items if item["image_id"] in by_id]
    if not items:
        return None
    tiles = [
        _tile(read_xray(by_id[item["image_id"]]["path"]), by_id[item["image_id"]], item, names, kind, tile)
        for item in items
    ]
    cols = min(cols, len(tiles))
    rows = -(-len(tiles) // cols)
    grid = np.full((rows * tile, cols * tile, 3), 32, dtype=np.uint8)
    for k, t in enumerate(tiles):
        r, c = divmod(k, cols)
        grid[r * tile : (r + 1) * tile, c * tile : (c + 1) * tile] = t
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), grid):
        raise OSError(f"could not write {path}")
    return path
