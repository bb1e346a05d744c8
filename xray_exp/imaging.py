"""Radiograph decoding shared by data preparation, evaluation and the service.

Every path into the model goes through here, so training and serving see the same pixels:
8-bit grayscale, DICOM windowed with its VOI LUT and MONOCHROME1 inverted.

    from xray_exp.imaging import read_xray
    gray = read_xray("image.dcm")          # np.uint8, shape (H, W)
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np


class ImageDecodeError(ValueError):
    """The bytes are not an image we can read; the message says why."""


def is_dicom_bytes(data: bytes) -> bool:
    """DICOM Part 10 files carry 'DICM' after a 128-byte preamble."""
    return len(data) >= 132 and data[128:132] == b"DICM"


def to_uint8(pixels: np.ndarray) -> np.ndarray:
    """Min-max scale any-depth grayscale pixels to uint8 (a constant image becomes all zeros)."""
    pixels = np.asarray(pixels, dtype=np.float32)
    lo, hi = float(pixels.min()), float(pixels.max())
    if hi <= lo:
        return np.zeros(pixels.shape, dtype=np.uint8)
    return np.clip((pixels - lo) * (255.0 / (hi - lo)) + 0.5, 0, 255).astype(np.uint8)


def dicom_to_uint8(dataset) -> tuple[np.ndarray, dict]:
    """Window a pydicom dataset (VOI LUT or window centre/width), invert MONOCHROME1, scale to uint8.

    Returns the image and a few header fields (PatientID, photometric interpretation, bit depth).
    """
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    try:
        raw = dataset.pixel_array
    except Exception as exc:  # pydicom raises many types for broken pixel data
        raise ImageDecodeError(f"DICOM has no readable pixel data: {exc}") from exc
    if raw.ndim == 3 and raw.shape[-1] in (3, 4):
        raw = raw[..., :3].mean(axis=-1)
    elif raw.ndim != 2:
        raise ImageDecodeError(f"DICOM pixel data has shape {raw.shape}; expected a single 2-D frame")
    pixels = apply_modality_lut(raw, dataset)
    pixels = apply_voi_lut(pixels, dataset, index=0)
    image = to_uint8(pixels)
    photometric = str(getattr(dataset, "PhotometricInterpretation", "MONOCHROME2"))
    if photometric == "MONOCHROME1":
        image = 255 - image
    info = {
        "patient_id": str(getattr(dataset, "PatientID", "") or ""),
        "photometric": photometric,
        "bits_stored": int(getattr(dataset, "BitsStored", 8) or 8),
    }
    return image, info


def decode_dicom(data: bytes | str | Path) -> tuple[np.ndarray, dict]:
    """Read DICOM from bytes or a path; see dicom_to_uint8."""
    import pydicom

    source = io.BytesIO(data) if isinstance(data, bytes) else str(data)
    try:
        dataset = pydicom.dcmread(source, force=True)
    except Exception as exc:
        raise ImageDecodeError(f"not a readable DICOM file: {exc}") from exc
    return dicom_to_uint8(dataset)


def decode_bitmap(data: bytes) -> np.ndarray:
    """PNG/JPEG/BMP/TIFF bytes -> uint8 grayscale; 16-bit images are scaled, colour is converted."""
    import cv2

    if not data:
        raise ImageDecodeError("empty file")
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
        image = to_uint8(image)
    return image


def read_xray(path: str | Path) -> np.ndarray:
    """Read a radiograph file (DICOM, PNG, JPEG, ...) as uint8 grayscale (H, W)."""
    path = Path(path)
    data = path.read_bytes()
    return decode_xray_bytes(data)


def decode_xray_bytes(data: bytes) -> np.ndarray:
    """Bytes of a DICOM or bitmap file -> uint8 grayscale (H, W)."""
    if is_dicom_bytes(data):
        return decode_dicom(data)[0]
    return decode_bitmap(data)


# --- Header probing: format and size without decoding pixels (the service checks limits first) ---

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers carry the size; C4 (DHT), C8 (JPG) and CC (DAC) are not frames.
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


@dataclass(frozen=True)
class ImageHeader:
    """What the header says: `format` is "png", "jpeg" or "dicom"; sizes in pixels."""

    format: str
    width: int
    height: int
    frames: int = 1

    @property
    def pixels(self) -> int:
        return self.width * self.height * self.frames


def sniff_format(data: bytes) -> str | None:
    """The format from the magic bytes: "png", "jpeg", "dicom", or None for anything else."""
    if is_dicom_bytes(data):
        return "dicom"
    if data.startswith(PNG_SIGNATURE):
        return "png"
    if data[:3] == b"\xff\xd8\xff":
        return "jpeg"
    return None


def probe_xray_bytes(data: bytes) -> ImageHeader:
    """Format and dimensions of PNG, JPEG or DICOM bytes from the header alone (no pixel decoding).

    Lets a caller refuse a decompression bomb before `decode_xray_bytes` allocates it. Raises
    ImageDecodeError for an unknown format or a header that is missing, truncated or says 0 pixels.
    """
    kind = sniff_format(data)
    if kind == "png":
        header = _probe_png(data)
    elif kind == "jpeg":
        header = _probe_jpeg(data)
    elif kind == "dicom":
        header = _probe_dicom(data)
    else:
        raise ImageDecodeError("not a PNG, JPEG or DICOM (Part 10) file")
    if header.width < 1 or header.height < 1 or header.frames < 1:
        raise ImageDecodeError(f"{kind} header gives an empty image ({header.width}x{header.height})")
    return header


def _probe_png(data: bytes) -> ImageHeader:
    # signature (8) + chunk length (4) + b"IHDR" (4) + width (4) + height (4) + ...
    if len(data) < 33 or data[12:16] != b"IHDR":
        raise ImageDecodeError("PNG is truncated or has no IHDR header")
    width = int.from_bytes(data[16:20], "big")
    height = int.from_bytes(data[20:24], "big")
    return ImageHeader("png", width, height)


def _probe_jpeg(data: bytes) -> ImageHeader:
    i = 2  # after SOI
    while i + 4 <= len(data):
        if data[i] != 0xFF:
            raise ImageDecodeError("JPEG header is corrupt (expected a marker)")
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
            i += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image / start of scan before any frame header
            break
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        if length < 2:
            raise ImageDecodeError("JPEG header is corrupt (bad segment length)")
        if marker in _JPEG_SOF:
            if i + 9 > len(data):
                break
            height = int.from_bytes(data[i + 5 : i + 7], "big")
            width = int.from_bytes(data[i + 7 : i + 9], "big")
            return ImageHeader("jpeg", width, height)
        i += 2 + length
    raise ImageDecodeError("JPEG has no frame header (truncated?)")


def _probe_dicom(data: bytes) -> ImageHeader:
    import pydicom

    try:
        dataset = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True, force=True)
        rows, columns = dataset.get("Rows"), dataset.get("Columns")
        frames = int(dataset.get("NumberOfFrames", 1) or 1)
    except Exception as exc:  # pydicom raises many types for broken headers
        raise ImageDecodeError(f"not a readable DICOM header: {exc}") from exc
    if rows is None or columns is None:
        raise ImageDecodeError("DICOM has no Rows/Columns: not an image")
    return ImageHeader("dicom", int(columns), int(rows), frames)
