"""Box geometry for preparation: clip to the image, scale with a resize, write YOLO label lines.

clip_box((-5, 10, 50, 60), width=40, height=100)   # -> ((0, 10, 40, 60), True)
to_yolo_line(3, (0, 10, 40, 60), width=40, height=100)  # -> "3 0.500000 0.350000 1.000000 0.500000"
"""

from __future__ import annotations

Box = tuple[float, float, float, float]  # x1, y1, x2, y2 in pixels


def clip_box(box: Box, width: int, height: int) -> tuple[Box | None, bool]:
    """Clip to [0, width] x [0, height]. Returns (box, clipped); box is None when nothing is left inside."""
    x1, y1, x2, y2 = box
    cx1, cy1 = min(max(x1, 0.0), width), min(max(y1, 0.0), height)
    cx2, cy2 = min(max(x2, 0.0), width), min(max(y2, 0.0), height)
    if cx2 <= cx1 or cy2 <= cy1:
        return None, True
    clipped = (cx1, cy1, cx2, cy2) != (x1, y1, x2, y2)
    return (cx1, cy1, cx2, cy2), clipped


def resized_shape(width: int, height: int, longest_side: int | None) -> tuple[int, int]:
    """(width, height) after downscaling so the longest side is at most `longest_side` (never upscales)."""
    if not longest_side or max(width, height) <= longest_side:
        return width, height
    scale = longest_side / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def scale_box(box: Box, sx: float, sy: float) -> Box:
    x1, y1, x2, y2 = box
    return x1 * sx, y1 * sy, x2 * sx, y2 * sy


def round_box(box: Box, digits: int = 2) -> Box:
    x1, y1, x2, y2 = box
    return round(x1, digits), round(y1, digits), round(x2, digits), round(y2, digits)


def to_yolo_line(class_id: int, box: Box, width: int, height: int) -> str:
    """`class cx cy w h`, normalised to the image size (YOLO label format)."""
    x1, y1, x2, y2 = box
    cx, cy = (x1 + x2) / 2 / width, (y1 + y2) / 2 / height
    w, h = (x2 - x1) / width, (y2 - y1) / height
    return f"{class_id} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}"


def from_yolo_line(line: str, width: int, height: int) -> tuple[int, Box]:
    """Inverse of to_yolo_line (for summaries and tests)."""
    c, cx, cy, w, h = line.split()
    x, y, bw, bh = float(cx) * width, float(cy) * height, float(w) * width, float(h) * height
    return int(c), (x - bw / 2, y - bh / 2, x + bw / 2, y + bh / 2)
