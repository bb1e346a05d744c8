"""Upload checks and decoding: size limits first, then the header, then xray_exp.imaging.

Status codes (the message always says which limit or what is wrong):
    413  more bytes than XRAY_SERVE_MAX_UPLOAD_BYTES; more pixels than XRAY_SERVE_MAX_PIXELS or more decoded
         bytes than XRAY_SERVE_MAX_PIXEL_BYTES (from the PNG/JPEG/DICOM header, before any pixel is
         decoded); a Deflated DICOM inflating past XRAY_SERVE_MAX_DECOMPRESSED_BYTES (stopped right there)
    415  not PNG, JPEG or DICOM Part 10 (by content; the filename and Content-Type are ignored)
    422  empty, truncated or corrupt file, malformed DICOM, unsupported VOI LUT Function / Presentation LUT
    504  decoding ran past the request's time limit
16-bit PNGs (and any-depth DICOM) are accepted and scaled to 8 bits exactly as for training. Multi-frame
DICOM: the first frame is used (the header's frame count comes back for the response to say so).
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import BinaryIO

import numpy as np

from xray_exp.imaging import (
    DEFAULT_LIMITS,
    DecodeLimits,
    ImageDecodeError,
    ImageHeader,
    ImageTooLarge,
    check_limits,
    decode_xray_bytes,
    probe_xray_bytes,
    sniff_format,
)

EXTENSIONS = {"png": ".png", "jpeg": ".jpg", "dicom": ".dcm"}


class UploadError(Exception):
    def __init__(self, status_code: int, message: str):
        super().__init__(message)
        self.status_code = status_code
        self.message = message


def read_limited(stream: BinaryIO, max_bytes: int) -> bytes:
    """Read at most max_bytes; 413 if there is more."""
    data = stream.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise UploadError(413, f"upload is larger than the limit of {max_bytes} bytes")
    return data


def _status_of(exc: ImageDecodeError) -> int:
    from xray_exp.dicom_reader import DecodeTimeout

    if isinstance(exc, ImageTooLarge):
        return 413
    return 504 if isinstance(exc, DecodeTimeout) else 422


def check_header(data: bytes, max_pixels: int, limits: DecodeLimits = DEFAULT_LIMITS) -> ImageHeader:
    if not data:
        raise UploadError(422, "the upload is empty")
    kind = sniff_format(data)
    if kind is None:
        raise UploadError(415, "unsupported file type: send a PNG, JPEG or DICOM (Part 10) radiograph")
    try:
        header = probe_xray_bytes(data, limits)
    except ImageDecodeError as exc:
        status = _status_of(exc)
        prefix = f"unreadable {kind} header: " if status == 422 else ""
        raise UploadError(status, f"{prefix}{exc}") from exc
    if header.pixels > max_pixels:
        raise UploadError(
            413, f"image is {header.width}x{header.height}x{header.frames} pixels; the limit is {max_pixels}"
        )
    try:
        check_limits(header, limits)
    except ImageTooLarge as exc:
        raise UploadError(413, str(exc)) from exc
    return header


def decode_upload(
    data: bytes, max_pixels: int, limits: DecodeLimits = DEFAULT_LIMITS
) -> tuple[np.ndarray, ImageHeader]:
    """Bytes -> (uint8 grey (H, W), header) through xray_exp.imaging, or UploadError."""
    header = check_header(data, max_pixels, limits)
    try:
        gray = decode_xray_bytes(data, limits)
    except ImageDecodeError as exc:
        raise UploadError(_status_of(exc), f"cannot decode the {header.format} image: {exc}") from exc
    except Exception as exc:  # pydicom/numpy raise many types for malformed pixel data
        raise UploadError(
            422, f"cannot decode the {header.format} image: {type(exc).__name__}: {exc}"
        ) from exc
    if gray.ndim != 2 or gray.size == 0:
        raise UploadError(
            422, f"decoded {header.format} image has shape {gray.shape}; expected one 2-D image"
        )
    if gray.size > max_pixels:
        raise UploadError(413, f"decoded image has {gray.size} pixels; the limit is {max_pixels}")
    return gray, header


def store_upload(data: bytes, header: ImageHeader, upload_dir: str | Path) -> Path:
    """Keep an upload under a random name (never the client's filename)."""
    folder = Path(upload_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{uuid.uuid4().hex}{EXTENSIONS[header.format]}"
    path.write_bytes(data)
    return path
