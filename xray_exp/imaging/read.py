"""Reading a radiograph: the face of the imaging package, shared by data
preparation, evaluation and the service, with hard limits.

Every path into the model goes through here, so training and serving see the same pixels:
8-bit grayscale, DICOM windowed with its VOI LUT and MONOCHROME1 inverted (DICOM: xray_exp.imaging.dicom_decode).

    from xray_exp.imaging import DecodeLimits, read_xray
    gray = read_xray("image.dcm")                                   # np.uint8, shape (H, W)
    gray = read_xray("image.png", DecodeLimits(max_pixel_bytes=64 * 2**20))

Limits (DecodeLimits) are checked from the header before any pixel is decoded: the bytes the pixels take
once decoded (width x height x samples x bytes per sample, per frame and over all frames) and the bytes a
Deflated DICOM inflates to. Over a limit -> ImageTooLarge (a subclass of ImageDecodeError).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from xray_exp.imaging.bitmap import decode_bitmap
from xray_exp.imaging.dicom_decode import decode_dicom_bytes, probe_dicom
from xray_exp.imaging.headers import is_dicom_bytes, probe_jpeg, probe_png, sniff_format
from xray_exp.imaging.limits import DEFAULT_LIMITS, DecodeLimits, ImageDecodeError, ImageHeader


def decode_dicom(data: bytes | str | Path, limits: DecodeLimits = DEFAULT_LIMITS) -> tuple[np.ndarray, dict[str, Any]]:
    """Read DICOM from bytes or a path -> (uint8 grey, header info); see xray_exp.imaging.dicom_decode."""
    return decode_dicom_bytes(data if isinstance(data, bytes) else Path(data).read_bytes(), limits)


def read_xray(path: str | Path, limits: DecodeLimits = DEFAULT_LIMITS) -> np.ndarray:
    """Read a radiograph file (DICOM, PNG, JPEG, ...) as uint8 grayscale (H, W)."""
    return decode_xray_bytes(Path(path).read_bytes(), limits)


def decode_xray_bytes(data: bytes, limits: DecodeLimits = DEFAULT_LIMITS) -> np.ndarray:
    """Bytes of a DICOM or bitmap file -> uint8 grayscale (H, W)."""
    if is_dicom_bytes(data):
        return decode_dicom(data, limits)[0]
    return decode_bitmap(data, limits)


def probe_xray_bytes(data: bytes, limits: DecodeLimits = DEFAULT_LIMITS) -> ImageHeader:
    """Format and dimensions of PNG, JPEG or DICOM bytes from the header alone (no pixel decoding).

    Lets a caller refuse a decompression bomb before `decode_xray_bytes` allocates it. Raises
    ImageDecodeError for an unknown format or a header that is missing, truncated or says 0 pixels.
    `limits` bounds the inflation of a Deflated DICOM (the only header that needs decompressing).
    """
    kind = sniff_format(data)
    if kind == "png":
        header = probe_png(data)
    elif kind == "jpeg":
        header = probe_jpeg(data)
    elif kind == "dicom":
        header = probe_dicom(data, limits)
    else:
        raise ImageDecodeError("not a PNG, JPEG or DICOM (Part 10) file")
    if header.width < 1 or header.height < 1 or header.frames < 1:
        raise ImageDecodeError(f"{kind} header gives an empty image ({header.width}x{header.height})")
    return header
