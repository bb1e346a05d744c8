"""Bounded parsing of DICOM bytes: Deflated bodies inflated with a bound, pydicom's reads counted.

    from xray_exp.dicom_parse import read_dataset
    dataset = read_dataset(data, DecodeLimits(), stop_before_pixels=True)   # pydicom Dataset, or
    # ImageTooLarge (a limit), DecodeTimeout (the deadline), ImageDecodeError (not readable)

pydicom's dcmread inflates a Deflated file without a bound (even with stop_before_pixels) and parses any
number of data elements; both are bounded here before and while pydicom reads. xray_exp.dicom_reader
decodes the pixels.
"""

from __future__ import annotations

import io
import time
import zlib

from xray_exp.imaging import DEFAULT_LIMITS, DecodeLimits, ImageDecodeError, ImageHeader, ImageTooLarge, check_limits

DEFLATED = "1.2.840.10008.1.2.1.99"
INFLATE_CHUNK = 1024 * 1024
# pydicom reads 2-3 times per data element; a real radiograph header needs a few thousand reads. A flood of
# tiny elements (16 MiB of zeros are 2 million of them: what a 16 KB Deflated upload inflates to) is refused.
MAX_HEADER_READS = 10_000
MAX_OUT_OF_ORDER = 64  # top-level elements not in ascending tag order (the standard requires the order)
HEADER_PREFIX = 1024 * 1024  # inflated first: the header in it bounds how much more the body may inflate to
TRAILER_SLACK = 1024 * 1024  # allowed after the pixel data (padding, trailing elements)


class DecodeTimeout(ImageDecodeError):
    """Decoding ran past its deadline (DecodeLimits.deadline)."""


def inflate_bounded(
    payload: bytes, max_bytes: int, deadline: float | None = None, inflater=None, out: bytearray | None = None
) -> bytes:
    """Raw-deflate `payload` (DICOM's Deflated syntax), refusing output beyond max_bytes as soon as it gets
    there. To go on with a stream: pass its inflater, what it gave so far (`out`) and its unconsumed_tail."""
    inflater = inflater or zlib.decompressobj(-zlib.MAX_WBITS)
    out = bytearray() if out is None else out
    pending = payload
    while True:
        room = max_bytes + 1 - len(out)
        try:
            piece = inflater.decompress(pending, min(INFLATE_CHUNK, room))
        except zlib.error as exc:
            raise ImageDecodeError(f"Deflated DICOM does not inflate: {exc}") from exc
        out += piece
        if len(out) > max_bytes:
            raise ImageTooLarge(
                f"Deflated DICOM inflates to more than the decompressed-bytes limit of {max_bytes} bytes"
            )
        if deadline is not None and time.monotonic() > deadline:
            raise DecodeTimeout("inflating the Deflated DICOM took longer than the time limit")
        pending = inflater.unconsumed_tail
        if inflater.eof or (not pending and len(piece) < min(INFLATE_CHUNK, room)):
            return bytes(out)


def inflate_dataset(payload: bytes, limits: DecodeLimits) -> bytes:
    """Inflate a Deflated data set: first HEADER_PREFIX bytes; when the header in them is complete (pixel
    data reached), the rest may only be as large as its pixel data (+ TRAILER_SLACK), else up to
    limits.max_decompressed_bytes."""
    from pydicom.filereader import read_dataset

    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    out = bytearray()
    try:
        inflate_bounded(payload, HEADER_PREFIX - 1, limits.deadline, inflater, out)
        return bytes(out)  # the whole data set fits in the prefix
    except ImageTooLarge:
        pass
    bound = limits.max_decompressed_bytes
    guard = GuardedBuffer(bytes(out), limits.deadline)
    try:
        header = read_dataset(guard, False, True, stop_when=guard.stop_when(True))
        at_pixels = guard.tell() < len(out) and "Rows" in header and "Columns" in header
    except Exception as exc:  # a truncated element at the prefix's end: no tighter bound
        if guard.refusal is not None:
            raise guard.refusal from exc
        at_pixels = False
    if not at_pixels:
        return inflate_bounded(inflater.unconsumed_tail, bound, limits.deadline, inflater, out)
    image = check_limits(dicom_header(header), limits)
    expected = guard.tell() + image.frame_bytes * image.frames + TRAILER_SLACK
    try:
        return inflate_bounded(inflater.unconsumed_tail, min(bound, expected), limits.deadline, inflater, out)
    except ImageTooLarge as exc:
        if expected >= bound:
            raise
        raise ImageTooLarge(
            f"Deflated DICOM inflates to more than its header's pixel data allows: stopped at the limit of "
            f"{expected} bytes"
        ) from exc


class GuardedBuffer(io.BytesIO):
    """BytesIO that refuses to serve more than MAX_HEADER_READS reads, or reads past the deadline."""

    def __init__(self, data: bytes, deadline: float | None):
        super().__init__(data)
        self.reads, self.deadline, self.refusal = 0, deadline, None
        self.last_tag, self.out_of_order = -1, 0

    def stop_when(self, stop_before_pixels: bool):
        """pydicom's per-element callback: refuse a run of elements out of tag order (a flood of empty
        (0000,0000) elements is one), stop at the pixel data when asked."""
        from pydicom.filereader import _at_pixel_data

        def check(tag, vr, length) -> bool:
            if tag <= self.last_tag:
                self.out_of_order += 1
                if self.out_of_order > MAX_OUT_OF_ORDER:
                    self.refusal = ImageTooLarge(
                        f"DICOM data set has more than {MAX_OUT_OF_ORDER} data elements out of tag order "
                        "(a flood of data elements?)"
                    )
                    raise self.refusal
            self.last_tag = max(self.last_tag, int(tag))
            return stop_before_pixels and _at_pixel_data(tag, vr, length)

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


def read_dataset(data: bytes, limits: DecodeLimits = DEFAULT_LIMITS, stop_before_pixels: bool = False):
    """pydicom Dataset from Part 10 (or raw, preamble-less) bytes; a Deflated body is inflated with a bound
    and the dataset is then read as explicit VR little endian (its meta keeps the original syntax). Parsing
    goes through a GuardedBuffer."""
    import pydicom
    from pydicom.dataset import FileDataset
    from pydicom.filereader import _read_file_meta_info, read_dataset, read_partial, read_preamble

    guard = GuardedBuffer(data, limits.deadline)
    try:
        if data[128:132] == b"DICM":
            read_preamble(guard, False)
            meta = _read_file_meta_info(guard)
            if str(meta.get("TransferSyntaxUID", "")) == DEFLATED:
                body = inflate_dataset(data[guard.tell() :], limits)
                guard = GuardedBuffer(body, limits.deadline)
                plain = read_dataset(guard, False, True, stop_when=guard.stop_when(stop_before_pixels))
                meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
                dataset = FileDataset(None, plain, preamble=data[:128], file_meta=meta)
                dataset.set_original_encoding(False, True)
                dataset.original_transfer_syntax = DEFLATED
                return dataset
            guard.seek(0)
        return read_partial(guard, stop_when=guard.stop_when(stop_before_pixels), force=True)
    except ImageDecodeError:
        raise
    except Exception as exc:  # pydicom raises many types for broken headers
        if guard.refusal is not None:
            raise guard.refusal from exc
        raise ImageDecodeError(f"not a readable DICOM file: {exc}") from exc


def dicom_header(dataset) -> ImageHeader:
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
