"""DICOM decoding with hard limits: bounded inflation, header checks before pixels, first frame only.

    from xray_exp.dicom_reader import decode_dicom
    gray, info = decode_dicom(open("chest.dcm", "rb").read())     # uint8 (H, W), header fields

Transfer syntaxes: implicit/explicit VR little endian, explicit big endian, Deflated (inflated here with a
bounded zlib.decompressobj BEFORE pydicom sees the data: pydicom inflates without a bound), RLE, JPEG
Baseline/Extended (12-bit)/Lossless (process 14), JPEG-LS, JPEG 2000 (pydicom with the pylibjpeg plugins).
The size a compressed frame's own codestream declares must match Rows/Columns, so a small header cannot
hide a huge frame.

Display rules (what training and the service see):
    Modality LUT, then VOI LUT (LUT sequence or window; VOI LUT Function LINEAR, LINEAR_EXACT, SIGMOID),
    min-max to 8 bits. MONOCHROME1 or Presentation LUT Shape INVERSE -> inverted once (the DX module asks
    for INVERSE exactly when the data are MONOCHROME1: the two name the same inversion). Pixel Padding
    Value (and Range Limit) pixels are left out of the scaling and shown black. Multi-frame: the first
    frame is used; `info["frames"]` says how many there were.
"""

from __future__ import annotations

import io
import time
import zlib

import numpy as np

from xray_exp.imaging import (
    DEFAULT_LIMITS,
    DecodeLimits,
    ImageDecodeError,
    ImageHeader,
    ImageTooLarge,
    check_limits,
    probe_jpeg,
    to_uint8,
)

DEFLATED = "1.2.840.10008.1.2.1.99"
RLE_SYNTAX = "1.2.840.10008.1.2.5"
INFLATE_CHUNK = 1024 * 1024
# pydicom reads 2-3 times per data element; a real radiograph header needs a few thousand reads. A flood of
# tiny elements (16 MiB of zeros are 2 million of them: what a 16 KB Deflated upload inflates to) is refused.
MAX_HEADER_READS = 10_000
MAX_OUT_OF_ORDER = 64  # top-level elements not in ascending tag order (the standard requires the order)
HEADER_PREFIX = 1024 * 1024  # inflated first: the header in it bounds how much more the body may inflate to
TRAILER_SLACK = 1024 * 1024  # allowed after the pixel data (padding, trailing elements)
VOI_FUNCTIONS = ("LINEAR", "LINEAR_EXACT", "SIGMOID")
PRESENTATION_SHAPES = ("IDENTITY", "INVERSE")


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


def probe_dicom(data: bytes, limits: DecodeLimits = DEFAULT_LIMITS) -> ImageHeader:
    return dicom_header(read_dataset(data, limits, stop_before_pixels=True))


def codestream_header(frame: bytes, syntax: str) -> ImageHeader | None:
    """Size a JPEG / JPEG-LS / JPEG 2000 codestream declares (None for RLE or anything else)."""
    if syntax.startswith(RLE_SYNTAX):
        return None
    if frame[:2] == b"\xff\xd8":
        return probe_jpeg(frame, "dicom")
    j2k = frame[:4] == b"\xff\x4f\xff\x51" or frame[4:8] == b"jP  "  # a codestream, or a JP2 file around one
    at = frame.find(b"\xff\x4f\xff\x51", 0, 65536) if j2k else -1
    if at < 0 or at + 42 > len(frame):
        return None
    siz = frame[at + 4 :]
    x, y, x0, y0 = (int.from_bytes(siz[o : o + 4], "big") for o in (4, 8, 12, 16))
    components = int.from_bytes(siz[36:38], "big")
    precision = (siz[38] & 0x7F) + 1
    return ImageHeader("dicom", x - x0, y - y0, 1, max(1, components), 16 if precision > 8 else 8)


def check_first_frame(dataset, header: ImageHeader, limits: DecodeLimits) -> None:
    """A compressed first frame must declare the size the DICOM header does (and fit the limits)."""
    from pydicom.encaps import get_frame

    try:
        frame = get_frame(dataset.PixelData, 0, number_of_frames=header.frames)
    except Exception as exc:
        raise ImageDecodeError(f"DICOM encapsulated pixel data is malformed: {exc}") from exc
    declared = codestream_header(frame, str(dataset.file_meta.TransferSyntaxUID))
    if declared is None:
        return
    check_limits(declared, limits)
    if (declared.width, declared.height) != (header.width, header.height):
        raise ImageDecodeError(
            f"the compressed frame is {declared.width}x{declared.height} but Rows/Columns say "
            f"{header.width}x{header.height}"
        )


def first_frame(dataset, limits: DecodeLimits = DEFAULT_LIMITS) -> np.ndarray:
    """The stored values of frame 1 (as pydicom's plugins decode it), after the limit checks."""
    from pydicom.pixels import pixel_array

    header = check_limits(dicom_header(dataset), limits)
    if "PixelData" not in dataset:
        raise ImageDecodeError("DICOM has no pixel data (7FE0,0010)")
    syntax = dataset.file_meta.get("TransferSyntaxUID") if hasattr(dataset, "file_meta") else None
    if syntax is not None and syntax.is_encapsulated:
        check_first_frame(dataset, header, limits)
    try:
        return pixel_array(dataset, index=0)
    except Exception as exc:  # pydicom raises many types for broken pixel data
        raise ImageDecodeError(f"DICOM has no readable pixel data: {exc}") from exc


def padding_mask(raw: np.ndarray, dataset) -> np.ndarray | None:
    """True where the stored value is the Pixel Padding Value (or within it and the Range Limit)."""
    value = dataset.get("PixelPaddingValue")
    if value is None or raw.ndim != 2:
        return None
    limit = dataset.get("PixelPaddingRangeLimit", value)
    lo, hi = sorted((int(value), int(limit)))
    mask = (raw >= lo) & (raw <= hi)
    return mask if mask.any() else None


def dicom_to_uint8(dataset, limits: DecodeLimits = DEFAULT_LIMITS) -> tuple[np.ndarray, dict]:
    """Window a pydicom dataset (see the module docstring for the rules) -> (uint8 image, header info)."""
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    voi_function = str(dataset.get("VOILUTFunction", "LINEAR") or "LINEAR").upper()
    if voi_function not in VOI_FUNCTIONS:
        raise ImageDecodeError(f"VOI LUT Function {voi_function!r} is not supported (LINEAR, LINEAR_EXACT, SIGMOID)")
    shape = str(dataset.get("PresentationLUTShape", "IDENTITY") or "IDENTITY").upper()
    if shape not in PRESENTATION_SHAPES:
        raise ImageDecodeError(f"Presentation LUT Shape {shape!r} is not supported (IDENTITY, INVERSE)")
    raw = first_frame(dataset, limits)
    if raw.ndim == 3 and raw.shape[-1] in (3, 4):
        raw = raw[..., :3].mean(axis=-1)
    elif raw.ndim != 2:
        raise ImageDecodeError(f"DICOM pixel data has shape {raw.shape}; expected a single 2-D frame")
    mask = padding_mask(raw, dataset)
    try:
        pixels = apply_modality_lut(raw, dataset)
        pixels = apply_voi_lut(pixels, dataset, index=0)
    except Exception as exc:
        raise ImageDecodeError(f"DICOM LUTs cannot be applied: {type(exc).__name__}: {exc}") from exc
    image = to_uint8(pixels, mask)
    photometric = str(getattr(dataset, "PhotometricInterpretation", "MONOCHROME2"))
    inverted = photometric == "MONOCHROME1" or shape == "INVERSE"
    if inverted:
        image = 255 - image
        if mask is not None:
            image[mask] = 0
    syntax = getattr(dataset, "original_transfer_syntax", None) or dataset.file_meta.get("TransferSyntaxUID", "")
    info = {
        "patient_id": str(getattr(dataset, "PatientID", "") or ""),
        "photometric": photometric,
        "bits_stored": int(getattr(dataset, "BitsStored", 8) or 8),
        "transfer_syntax": str(syntax),
        "frames": int(dataset.get("NumberOfFrames", 1) or 1),
        "inverted": inverted,
        "voi_lut_function": voi_function,
        "padding_pixels": int(mask.sum()) if mask is not None else 0,
    }
    return image, info


def decode_dicom(data: bytes, limits: DecodeLimits = DEFAULT_LIMITS) -> tuple[np.ndarray, dict]:
    """DICOM bytes -> (uint8 grey of the first frame, header info) within `limits`."""
    return dicom_to_uint8(read_dataset(data, limits), limits)
