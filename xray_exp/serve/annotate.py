"""Draw detections on the radiograph with OpenCV's built-in Hershey font (no font files needed).

from xray_exp.serve.annotate import annotate, encode_png
png_bytes = encode_png(annotate(gray, detections))
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from xray_exp.inference.onnx_detector import Detection

# BGR, distinguishable on a grey background
PALETTE = (
    (56, 56, 255),
    (31, 200, 255),
    (52, 220, 52),
    (255, 160, 0),
    (255, 56, 203),
    (0, 140, 255),
    (200, 100, 255),
    (255, 230, 80),
)
FONT = cv2.FONT_HERSHEY_SIMPLEX


def annotate(gray: np.ndarray, detections: Sequence[Detection], max_side: int = 2048) -> np.ndarray:
    """A BGR copy of the image (downscaled to max_side) with a labelled box per detection,
    or "No findings" written in the corner when there are none."""
    h, w = gray.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    image = gray if gray.ndim == 3 else cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)
    if scale < 1.0:
        image = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    else:
        image = image.copy()
    side = max(image.shape[:2])
    thickness = max(1, round(side / 400))
    font_scale = max(0.4, side / 1100)
    for det in detections:
        color = PALETTE[det.class_id % len(PALETTE)]
        x1, y1, x2, y2 = (round(v * scale) for v in det.box)
        cv2.rectangle(image, (x1, y1), (x2, y2), color, thickness, cv2.LINE_AA)
        _label(image, f"{det.label} {det.confidence:.2f}", (x1, y1), color, font_scale, thickness)
    if not detections:
        _label(image, "No findings", (0, 0), (52, 220, 52), font_scale * 1.3, thickness, inside=True)
    return image


def _label(image, text, corner, color, font_scale, thickness, inside=False) -> None:
    """Text on a filled box above the corner (or below it when there is no room above)."""
    (tw, th), baseline = cv2.getTextSize(text, FONT, font_scale, thickness)
    x, y = corner
    pad = max(2, thickness * 2)
    box_h = th + baseline + 2 * pad
    top = y if inside or y - box_h < 0 else y - box_h
    x = min(max(0, x), max(0, image.shape[1] - tw - 2 * pad))
    cv2.rectangle(image, (x, top), (x + tw + 2 * pad, top + box_h), color, -1)
    ink = (0, 0, 0) if sum(color) > 380 else (255, 255, 255)
    cv2.putText(image, text, (x + pad, top + pad + th), FONT, font_scale, ink, thickness, cv2.LINE_AA)


def encode_png(image: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 1])  # fast; level 3+ saves ~15 %
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()
