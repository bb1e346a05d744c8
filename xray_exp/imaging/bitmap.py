"""Bitmap decoding (PNG, JPEG, BMP, TIFF) to the 8-bit grayscale the model sees, header limits first.

from xray_exp.imaging.bitmap import decode_bitmap
gray = decode_bitmap(open("chest.png", "rb").read())     # np.uint8, shape (H, W)
"""

from __future__ import annotations

import numpy as np

from xray_exp.imaging.headers import probe_jpeg, probe_png, sniff_format
from xray_exp.imaging.limits import DEFAULT_LIMITS, DecodeLimits, ImageDecodeError, check_limits
from xray_exp.imaging.pixel_scaling import scale_to_uint8


def to_uint8(pixels: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Min-max scale any-depth grayscale pixels to uint8 (a constant image becomes all zeros).

    With `mask` (True = ignore, e.g. DICOM padding) the range comes from the other pixels and masked
    pixels become 0.
    """
    pixels = np.asarray(pixels, dtype=np.float32)
    valid = pixels if mask is None or not mask.any() else pixels[~mask]
    if valid.size == 0:
        return np.zeros(pixels.shape, dtype=np.uint8)
    lo, hi = float(valid.min()), float(valid.max())
    if hi <= lo:
        out = np.zeros(pixels.shape, dtype=np.uint8)
    else:
        out = np.clip((pixels - lo) * (255.0 / (hi - lo)) + 0.5, 0, 255).astype(np.uint8)
    if mask is not None:
        out[mask] = 0
    return out


def decode_bitmap(data: bytes, limits: DecodeLimits = DEFAULT_LIMITS) -> np.ndarray:
    """PNG/JPEG/BMP/TIFF bytes -> uint8 grayscale; 16-bit images are scaled, colour is converted.

    PNG and JPEG headers are checked against `limits` before decoding.
    """
    import cv2  # lazy: OpenCV is only needed for bitmaps (DICOM-only callers never load it)

    if not data:
        raise ImageDecodeError("empty file")
    kind = sniff_format(data)
    if kind in ("png", "jpeg"):
        check_limits(probe_png(data) if kind == "png" else probe_jpeg(data), limits)
    buf = np.frombuffer(data, dtype=np.uint8)
    image = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ImageDecodeError("not a decodable PNG/JPEG/BMP/TIFF image (corrupt or truncated?)")
    if image.ndim == 3:
        if image.shape[2] == 4:
            image = cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY)
        else:
            image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    if image.dtype != np.uint8:
        image = scale_to_uint8(image)[0]  # = to_uint8(image), without a float copy of the frame
    return image
