"""The bottom of the imaging package: its errors, the hard limits of one decode, and what a header says.

    from xray_exp.imaging.limits import DecodeLimits, ImageTooLarge, check_limits
    check_limits(ImageHeader("png", 4300, 4300, bits=16), DecodeLimits())   # raises ImageTooLarge when over

Limits (DecodeLimits) are checked from the header before any pixel is decoded: the bytes the pixels take
once decoded (width x height x samples x bytes per sample, per frame and over all frames) and the bytes a
Deflated DICOM inflates to. Over a limit -> ImageTooLarge (a subclass of ImageDecodeError).
"""

from __future__ import annotations

from dataclasses import dataclass

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
