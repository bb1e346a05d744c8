"""Bounded parsing of DICOM bytes: Deflated bodies inflated with a bound, pydicom's reads counted.

    from xray_exp.imaging.dicom_parse import read_dataset
    dataset = read_dataset(data, DecodeLimits(), stop_before_pixels=True)   # pydicom Dataset, or
    # ImageTooLarge (a limit), DecodeTimeout (the deadline), ImageDecodeError (not readable)

pydicom's dcmread inflates a Deflated file without a bound (even with stop_before_pixels) and parses any
number of data elements; both are bounded here before and while pydicom reads (the Deflated body within
what its header announces: xray_exp.imaging.dicom_inflate). xray_exp.imaging.dicom_decode decodes the pixels.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from xray_exp.imaging.dicom_inflate import DecodeTimeout, inflate_announced
from xray_exp.imaging.limits import DEFAULT_LIMITS, DecodeLimits, ImageDecodeError, ImageHeader, ImageTooLarge
from xray_exp.imaging.pydicom_compat import at_pixel_data, read_file_meta

if TYPE_CHECKING:
    from pydicom.dataset import Dataset, FileDataset, FileMetaDataset

__all__ = ["DecodeTimeout", "GuardedBuffer", "dicom_header", "read_dataset"]

DEFLATED = "1.2.840.10008.1.2.1.99"
# pydicom reads 2-3 times per data element; a real radiograph header needs a few thousand reads. A flood of
# tiny elements (16 MiB of zeros are 2 million of them: what a 16 KB Deflated upload inflates to) is refused.
MAX_HEADER_READS = 10_000
MAX_OUT_OF_ORDER = 64  # top-level elements not in ascending tag order (the standard requires the order)


class GuardedBuffer(io.BytesIO):
    """BytesIO that refuses to serve more than MAX_HEADER_READS reads, or reads past the deadline."""

    def __init__(self, data: bytes, deadline: float | None):
        super().__init__(data)
        self.reads, self.deadline = 0, deadline
        self.refusal: ImageDecodeError | None = None
        self.last_tag, self.out_of_order = -1, 0

    def stop_when(self, stop_before_pixels: bool) -> Callable[[int, str | None, int], bool]:
        """pydicom's per-element callback: refuse a run of elements out of tag order (a flood of empty
        (0000,0000) elements is one), stop at the pixel data when asked."""
        at_pixels = at_pixel_data()

        def check(tag: int, vr: str | None, length: int) -> bool:
            if tag <= self.last_tag:
                self.out_of_order += 1
                if self.out_of_order > MAX_OUT_OF_ORDER:
                    self.refusal = ImageTooLarge(
                        f"DICOM data set has more than {MAX_OUT_OF_ORDER} data elements out of tag order "
                        "(a flood of data elements?)"
                    )
                    raise self.refusal
            self.last_tag = max(self.last_tag, int(tag))
            return stop_before_pixels and at_pixels(tag, vr, length)

        return check

    def read(self, size: int | None = -1) -> bytes:
        self.reads += 1
        if self.reads > MAX_HEADER_READS:
            self.refusal = ImageTooLarge(
                f"DICOM data set needs more than {MAX_HEADER_READS} reads to parse (a flood of data elements)"
            )
        elif self.deadline is not None and not self.reads % 1024 and time.monotonic() > self.deadline:
            self.refusal = DecodeTimeout("parsing the DICOM data set took longer than the time limit")
        if self.refusal is not None:
            raise self.refusal
        return super().read(size)


def read_deflated(
    data: bytes, body_at: int, meta: FileMetaDataset, limits: DecodeLimits, stop_before_pixels: bool
) -> FileDataset:
    """The Deflated body inflated within what its header announces (xray_exp.imaging.dicom_inflate), parsed by pydicom
    up to the pixel data; the pixel data is attached as a view on the inflated bytes (no copy)."""
    import pydicom
    from pydicom.dataset import FileDataset
    from pydicom.filereader import read_dataset

    body, walk = inflate_announced(memoryview(data)[body_at:], limits, stop_at_pixels=stop_before_pixels)
    end = walk.pixel_element if walk.pixel_element is not None else len(body)
    guard = GuardedBuffer(bytes(body[:end]), limits.deadline)
    try:
        plain = read_dataset(guard, False, True, stop_when=guard.stop_when(stop_before_pixels))
    except Exception as exc:
        if guard.refusal is not None:
            raise guard.refusal from exc
        raise
    if walk.pixel_value is not None and not stop_before_pixels:
        start, length = walk.pixel_value
        if start + length > len(body):
            raise ImageDecodeError(
                f"Deflated DICOM is truncated: pixel data of {length} bytes, {max(0, len(body) - start)} present"
            )
        plain.PixelData = memoryview(body)[start : start + length]
    meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    dataset = FileDataset(None, plain, preamble=data[:128], file_meta=meta)  # type: ignore[arg-type]  # no file: bytes in memory
    dataset.set_original_encoding(False, True)
    dataset.original_transfer_syntax = DEFLATED
    return dataset


def read_dataset(data: bytes, limits: DecodeLimits = DEFAULT_LIMITS, stop_before_pixels: bool = False) -> FileDataset:
    """pydicom Dataset from Part 10 (or raw, preamble-less) bytes; a Deflated body is inflated with a bound
    and the dataset is then read as explicit VR little endian (its meta keeps the original syntax). Parsing
    goes through a GuardedBuffer."""
    from pydicom.filereader import read_partial, read_preamble

    guard = GuardedBuffer(data, limits.deadline)
    try:
        if data[128:132] == b"DICM":
            read_preamble(guard, False)
            meta = read_file_meta(guard)
            if str(meta.get("TransferSyntaxUID", "")) == DEFLATED:
                return read_deflated(data, guard.tell(), meta, limits, stop_before_pixels)
            guard.seek(0)
        return read_partial(guard, stop_when=guard.stop_when(stop_before_pixels), force=True)
    except ImageDecodeError:
        raise
    except Exception as exc:  # pydicom raises many types for broken headers
        if guard.refusal is not None:
            raise guard.refusal from exc
        raise ImageDecodeError(f"not a readable DICOM file: {exc}") from exc


def dicom_header(dataset: Dataset) -> ImageHeader:
    """Rows, Columns, Samples per Pixel, Bits Allocated and Number of Frames as an ImageHeader."""
    try:
        rows, columns = dataset.get("Rows"), dataset.get("Columns")
        frames = int(dataset.get("NumberOfFrames", 1) or 1)
        samples = int(dataset.get("SamplesPerPixel", 1) or 1)
        bits = int(dataset.get("BitsAllocated", 16) or 16)
    except Exception as exc:
        raise ImageDecodeError(f"DICOM image header is malformed: {exc}") from exc
    if rows is None or columns is None:
        raise ImageDecodeError("DICOM has no Rows/Columns: not an image")
    return ImageHeader("dicom", int(columns), int(rows), frames, samples, bits)
