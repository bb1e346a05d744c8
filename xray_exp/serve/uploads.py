"""Upload checks and decoding: size limits first, then the header, then xray_exp.imaging.

Status codes (the message always says which limit or what is wrong):
    413  more bytes than XRAY_SERVE_MAX_UPLOAD_BYTES; more pixels than XRAY_SERVE_MAX_PIXELS or more decoded
         bytes than XRAY_SERVE_MAX_PIXEL_BYTES (from the PNG/JPEG/DICOM header, before any pixel is
         decoded); a Deflated DICOM inflating past XRAY_SERVE_MAX_DECOMPRESSED_BYTES (stopped right there)
    415  not PNG, JPEG or DICOM Part 10 (by content; the filename and Content-Type are ignored)
    422  empty, truncated or corrupt file, malformed DICOM, unsupported VOI LUT Function / Presentation LUT
    504  decoding ran past the request's time limit
16-bit PNGs (and any-depth DICOM) are accepted and scaled to 8 bits exactly as for training. Multi-frame
DICOM: the first frame is used (the header's frame count comes back for the response to say so). The
service then works on the image downscaled to XRAY_SERVE_ANNOTATE_MAX_SIDE (or the model's input size, if
larger) on its longest side: the detector letterboxes to its input size anyway, and the annotated PNG is
drawn at that size; boxes are mapped back to original pixels (`to_original`).
"""

from __future__ import annotations

import uuid
from dataclasses import replace
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
from xray_exp.imaging.dicom_decode import DecodeTimeout

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


def decode_status(exc: ImageDecodeError) -> int:
    """The HTTP status of a decoding failure: 413 over a limit, 504 past the deadline, else 422."""
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
        status = decode_status(exc)
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
    data: bytes,
    max_pixels: int,
    limits: DecodeLimits = DEFAULT_LIMITS,
    max_side: int | None = None,
    header: ImageHeader | None = None,
) -> tuple[np.ndarray, ImageHeader]:
    """Bytes -> (uint8 grey (H, W), header) through xray_exp.imaging, or UploadError. With max_side, an image
    whose longest side is larger comes back downscaled to it (INTER_AREA) and the full-size one is freed at
    once; header.width/height keep the original size (`to_original` maps boxes back)."""
    header = header or check_header(data, max_pixels, limits)
    try:
        gray = decode_xray_bytes(data, limits)
    except ImageDecodeError as exc:
        raise UploadError(decode_status(exc), f"cannot decode the {header.format} image: {exc}") from exc
    except Exception as exc:  # pydicom/numpy raise many types for malformed pixel data
        raise UploadError(422, f"cannot decode the {header.format} image: {type(exc).__name__}: {exc}") from exc
    if gray.ndim != 2 or gray.size == 0:
        raise UploadError(422, f"decoded {header.format} image has shape {gray.shape}; expected one 2-D image")
    if gray.size > max_pixels:
        raise UploadError(413, f"decoded image has {gray.size} pixels; the limit is {max_pixels}")
    if (gray.shape[1], gray.shape[0]) != (header.width, header.height):
        header = replace(header, width=int(gray.shape[1]), height=int(gray.shape[0]))
    if max_side and max(gray.shape) > max_side:
        import cv2

        scale = max_side / max(gray.shape)
        size = (max(1, round(gray.shape[1] * scale)), max(1, round(gray.shape[0] * scale)))
        gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
    return gray, header


def to_original(detections: list, gray: np.ndarray, header: ImageHeader) -> list:
    """Detections on a downscaled `gray` -> boxes in the original image's pixels."""
    sx, sy = header.width / gray.shape[1], header.height / gray.shape[0]
    if (sx, sy) == (1.0, 1.0):
        return detections
    return [replace(d, box=(d.box[0] * sx, d.box[1] * sy, d.box[2] * sx, d.box[3] * sy)) for d in detections]


def store_upload(data: bytes, header: ImageHeader, upload_dir: str | Path) -> Path:
    """Keep an upload under a random name (never the client's filename)."""
    folder = Path(upload_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{uuid.uuid4().hex}{EXTENSIONS[header.format]}"
    path.write_bytes(data)
    return path
