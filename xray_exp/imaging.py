"""Radiograph decoding shared by data preparation, evaluation and the service, with hard limits.

Every path into the model goes through here, so training and serving see the same pixels:
8-bit grayscale, DICOM windowed with its VOI LUT and MONOCHROME1 inverted (DICOM: xray_exp.dicom_reader).

    from xray_exp.imaging import DecodeLimits, read_xray
    gray = read_xray("image.dcm")                                   # np.uint8, shape (H, W)
    gray = read_xray("image.png", DecodeLimits(max_pixel_bytes=64 * 2**20))

Limits (DecodeLimits) are checked from the header before any pixel is decoded: the bytes the pixels take
once decoded (width x height x samples x bytes per sample, per frame and over all frames) and the bytes a
Deflated DICOM inflates to. Over a limit -> ImageTooLarge (a subclass of ImageDecodeError).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

MiB = 1024 * 1024


class ImageDecodeError(ValueError):
    """The bytes are not an image we can read; the message says why."""


class ImageTooLarge(ImageDecodeError):
    """The header announces more pixel bytes (or the file inflates to more bytes) than the limits allow."""


@dataclass(frozen=True)
class DecodeLimits:
    """Hard limits of one decode. Defaults suit chest X-rays (a 4300x4300 16-bit DR image is 35 MiB;
    48 MiB is a 4900x4900 16-bit frame)."""

    max_pixel_bytes: int = 48 * MiB  # one decoded frame (w * h * samples * bytes): the largest DR plates + 35%
    max_decompressed_bytes: int = 128 * MiB  # an inflated Deflated DICOM; all frames' pixel bytes together
    deadline: float | None = None  # time.monotonic() after which inflating stops (the service's time limit)


DEFAULT_LIMITS = DecodeLimits()


def is_dicom_bytes(data: bytes) -> bool:
    """DICOM Part 10 files carry 'DICM' after a 128-byte preamble."""
    return len(data) >= 132 and data[128:132] == b"DICM"


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


def decode_dicom(data: bytes | str | Path, limits: DecodeLimits = DEFAULT_LIMITS) -> tuple[np.ndarray, dict]:
    """Read DICOM from bytes or a path -> (uint8 grey, header info); see xray_exp.dicom_reader."""
    from xray_exp.dicom_reader import decode_dicom_bytes as decode

    return decode(data if isinstance(data, bytes) else Path(data).read_bytes(), limits)


def decode_bitmap(data: bytes, limits: DecodeLimits = DEFAULT_LIMITS) -> np.ndarray:
    """PNG/JPEG/BMP/TIFF bytes -> uint8 grayscale; 16-bit images are scaled, colour is converted.

    PNG and JPEG headers are checked against `limits` before decoding.
    """
    import cv2

    if not data:
        raise ImageDecodeError("empty file")
    if sniff_format(data) in ("png", "jpeg"):
        check_limits(probe_xray_bytes(data), limits)
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
        from xray_exp.pixel_scaling import scale_to_uint8

        image = scale_to_uint8(image)[0]  # = to_uint8(image), without a float copy of the frame
    return image


def read_xray(path: str | Path, limits: DecodeLimits = DEFAULT_LIMITS) -> np.ndarray:
    """Read a radiograph file (DICOM, PNG, JPEG, ...) as uint8 grayscale (H, W)."""
    return decode_xray_bytes(Path(path).read_bytes(), limits)


def decode_xray_bytes(data: bytes, limits: DecodeLimits = DEFAULT_LIMITS) -> np.ndarray:
    """Bytes of a DICOM or bitmap file -> uint8 grayscale (H, W)."""
    if is_dicom_bytes(data):
        return decode_dicom(data, limits)[0]
    return decode_bitmap(data, limits)


# --- Header probing: format and size without decoding pixels (limits are checked first) ---

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers carry the size; C4 (DHT), C8 (JPG) and CC (DAC) are not frames; F7 is JPEG-LS.
JPEG_SOF_MARKERS = (frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}) | {0xF7}
# PNG colour type -> samples per pixel (0 grey, 2 RGB, 3 palette: decoded as RGB, 4 grey+alpha, 6 RGBA)
PNG_SAMPLES = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}


@dataclass(frozen=True)
class ImageHeader:
    """What the header says: `format` is "png", "jpeg" or "dicom"; sizes in pixels; `bits` per sample
    as decoded (8 or 16 for PNG/JPEG, BitsAllocated for DICOM)."""

    format: str
    width: int
    height: int
    frames: int = 1
    samples: int = 1
    bits: int = 8

    @property
    def pixels(self) -> int:
        return self.width * self.height * self.frames

    @property
    def frame_bytes(self) -> int:
        """Bytes of one decoded frame."""
        return self.width * self.height * self.samples * max(1, (self.bits + 7) // 8)


def check_limits(header: ImageHeader, limits: DecodeLimits) -> ImageHeader:
    """ImageTooLarge when one frame or all frames together would decode to more bytes than allowed."""
    size = f"{header.width}x{header.height}, {header.samples} sample(s) of {header.bits} bits"
    if header.frame_bytes > limits.max_pixel_bytes:
        raise ImageTooLarge(
            f"{header.format} image is {size} = {header.frame_bytes} bytes decoded; "
            f"the pixel-bytes limit is {limits.max_pixel_bytes}"
        )
    if header.frame_bytes * header.frames > limits.max_decompressed_bytes:
        raise ImageTooLarge(
            f"{header.format} image has {header.frames} frames of {size} = "
            f"{header.frame_bytes * header.frames} bytes; the decompressed-bytes limit is "
            f"{limits.max_decompressed_bytes}"
        )
    return header


def sniff_format(data: bytes) -> str | None:
    """The format from the magic bytes: "png", "jpeg", "dicom", or None for anything else."""
    if is_dicom_bytes(data):
        return "dicom"
    if data.startswith(PNG_SIGNATURE):
        return "png"
    if data[:3] == b"\xff\xd8\xff":
        return "jpeg"
    return None


def probe_xray_bytes(data: bytes, limits: DecodeLimits = DEFAULT_LIMITS) -> ImageHeader:
    """Format and dimensions of PNG, JPEG or DICOM bytes from the header alone (no pixel decoding).

    Lets a caller refuse a decompression bomb before `decode_xray_bytes` allocates it. Raises
    ImageDecodeError for an unknown format or a header that is missing, truncated or says 0 pixels.
    `limits` bounds the inflation of a Deflated DICOM (the only header that needs decompressing).
    """
    kind = sniff_format(data)
    if kind == "png":
        header = _probe_png(data)
    elif kind == "jpeg":
        header = probe_jpeg(data)
    elif kind == "dicom":
        from xray_exp.dicom_reader import probe_dicom

        header = probe_dicom(data, limits)
    else:
        raise ImageDecodeError("not a PNG, JPEG or DICOM (Part 10) file")
    if header.width < 1 or header.height < 1 or header.frames < 1:
        raise ImageDecodeError(f"{kind} header gives an empty image ({header.width}x{header.height})")
    return header


def _probe_png(data: bytes) -> ImageHeader:
    # signature (8) + chunk length (4) + b"IHDR" (4) + width (4) + height (4) + bit depth + colour type
    if len(data) < 33 or data[12:16] != b"IHDR":
        raise ImageDecodeError("PNG is truncated or has no IHDR header")
    width = int.from_bytes(data[16:20], "big")
    height = int.from_bytes(data[20:24], "big")
    depth, colour = data[24], data[25]
    if colour not in PNG_SAMPLES or depth not in (1, 2, 4, 8, 16):
        raise ImageDecodeError(f"PNG header has an invalid bit depth {depth} / colour type {colour}")
    return ImageHeader("png", width, height, samples=PNG_SAMPLES[colour], bits=16 if depth == 16 else 8)


def probe_jpeg(data: bytes, kind: str = "jpeg") -> ImageHeader:
    """Size, components and precision from the first JPEG (or JPEG-LS) frame header."""
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
        if marker in JPEG_SOF_MARKERS:
            if i + 10 > len(data):
                break
            precision = data[i + 4]
            height = int.from_bytes(data[i + 5 : i + 7], "big")
            width = int.from_bytes(data[i + 7 : i + 9], "big")
            samples = max(1, data[i + 9])
            return ImageHeader(kind, width, height, samples=samples, bits=16 if precision > 8 else 8)
        i += 2 + length
    raise ImageDecodeError("JPEG has no frame header (truncated?)")
