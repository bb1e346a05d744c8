"""Inflating a Deflated DICOM data set within what its own header announces.

    from xray_exp.imaging.dicom_inflate import inflate_announced
    body, walk = inflate_announced(payload, DecodeLimits())            # bytearray, DataElementWalk
    walk.pixel_value  # (offset, length) of the top-level Pixel Data value in body, or None

The inflated stream is followed data element by data element while it is inflated (explicit VR little
endian, the Deflated syntax's encoding; nested sequences and undefined-length UN included), and each element
is judged by the length it declares, before its value is inflated:
  - everything but the top-level Pixel Data (element headers, values, sequences, private elements, wherever
    they sit) may take MAX_ELEMENT_BYTES in all;
  - the Pixel Data may be as long as Rows x Columns x frames x samples x bytes per sample announce (and
    within DecodeLimits), so it needs Rows/Columns before it;
  - at most MAX_ELEMENTS elements, and at most MAX_OUT_OF_ORDER top-level elements out of tag order.
The stream is inflated in INFLATE_CHUNK pieces and never past MAX_ELEMENT_BYTES + the announced pixel bytes:
a 1 MB upload that hides a 1 GiB private element is refused after its first piece. With `stop_at_pixels`
inflating stops where the pixel data begins (header probes).
"""

from __future__ import annotations

import struct
import time
import zlib

from xray_exp.imaging.limits import DecodeLimits, ImageDecodeError, ImageHeader, ImageTooLarge, MiB, check_limits

INFLATE_CHUNK = 256 * 1024
MAX_ELEMENT_BYTES = 8 * MiB  # a real header, overlays and private data fit; a hidden payload does not
MAX_ELEMENTS = 10_000
MAX_OUT_OF_ORDER = 64
UNDEFINED = 0xFFFFFFFF
PIXEL_DATA = 0x7FE00010
LONG_VRS = frozenset({b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"})
IMAGE_TAGS = {
    0x00280002: "samples",
    0x00280008: "frames",
    0x00280010: "rows",
    0x00280011: "columns",
    0x00280100: "bits",
}


class DecodeTimeout(ImageDecodeError):
    """Decoding ran past its deadline (DecodeLimits.deadline)."""


class DataElementWalk:
    """Where the data elements of a growing explicit VR little endian data set begin and end."""

    def __init__(self, limits: DecodeLimits):
        self.limits = limits
        self.pos = 0  # offset of the next element header
        self.stack: list[bool] = []  # open undefined-length containers: True where implicit VR (inside a UN)
        self.other_bytes = self.elements = self.out_of_order = 0
        self.last_tag = -1
        self.image: dict[str, int] = {}
        self.pixel_element: int | None = None  # offset of the top-level Pixel Data element header
        self.pixel_value: tuple[int, int] | None = None  # (offset, length) of its value

    def bound(self) -> int:
        """The most bytes the data set may inflate to, from what has been seen so far."""
        return MAX_ELEMENT_BYTES + (self.pixel_value[1] if self.pixel_value else 0)

    def announced(self) -> ImageHeader:
        if "rows" not in self.image or "columns" not in self.image:
            raise ImageDecodeError("Deflated DICOM has pixel data before Rows/Columns")
        image, get = self.image, self.image.get
        return ImageHeader(
            "dicom",
            image["columns"],
            image["rows"],
            get("frames", 1) or 1,
            get("samples", 1) or 1,
            get("bits", 16) or 16,
        )

    def advance(self, buf: bytearray) -> None:
        """Read every element header that `buf` holds completely; raise at the first one over a limit."""
        while self.pos + 8 <= len(buf):
            pos = self.pos
            group, elem = struct.unpack_from("<HH", buf, pos)
            tag = group << 16 | elem
            if group == 0xFFFE:  # items and delimiters: tag + 4-byte length, no VR
                (length,) = struct.unpack_from("<I", buf, pos + 4)
                header, vr = 8, None
                if elem in (0xE00D, 0xE0DD):
                    if self.stack:
                        self.stack.pop()
                    self.pos += 8
                    continue
            elif self.stack and self.stack[-1]:  # inside an undefined-length UN: implicit VR
                (length,) = struct.unpack_from("<I", buf, pos + 4)
                header, vr = 8, None
            else:
                vr = bytes(buf[pos + 4 : pos + 6])
                if vr in LONG_VRS:
                    if pos + 12 > len(buf):
                        return
                    (length,) = struct.unpack_from("<I", buf, pos + 8)
                    header = 12
                else:
                    (length,) = struct.unpack_from("<H", buf, pos + 6)
                    header = 8
            top = not self.stack
            self._count(tag, top)
            if length == UNDEFINED:
                if top and tag == PIXEL_DATA:
                    raise ImageDecodeError("Deflated DICOM holds encapsulated pixel data (not a Deflated image)")
                self._spend(tag, header)
                inherited = bool(self.stack) and self.stack[-1]
                self.stack.append(inherited if group == 0xFFFE else vr in (b"UN", None) or inherited)
                self.pos += header
                continue
            if top and tag == PIXEL_DATA:
                self._pixels(pos, header, length)
            else:
                self._spend(tag, header + length)
                if top and tag in IMAGE_TAGS:
                    if pos + header + length > len(buf):
                        return  # wait for the value
                    self._image_value(tag, vr, bytes(buf[pos + header : pos + header + length]))
            self.pos += header + length

    def _count(self, tag: int, top: bool) -> None:
        self.elements += 1
        if self.elements > MAX_ELEMENTS:
            raise ImageTooLarge(f"DICOM data set has more than {MAX_ELEMENTS} data elements (the limit)")
        if top:
            if tag <= self.last_tag:
                self.out_of_order += 1
                if self.out_of_order > MAX_OUT_OF_ORDER:
                    raise ImageTooLarge(
                        f"DICOM data set has more than {MAX_OUT_OF_ORDER} data elements out of "
                        "tag order (a flood of data elements?)"
                    )
            self.last_tag = max(self.last_tag, tag)

    def _spend(self, tag: int, size: int) -> None:
        self.other_bytes += size
        if self.other_bytes > MAX_ELEMENT_BYTES:
            raise ImageTooLarge(
                f"Deflated DICOM: data element ({tag >> 16:04X},{tag & 0xFFFF:04X}) takes the elements other than "
                f"the pixel data past their limit of {MAX_ELEMENT_BYTES} bytes ({size} bytes declared)"
            )

    def _pixels(self, pos: int, header: int, length: int) -> None:
        image = check_limits(self.announced(), self.limits)
        expected = image.frame_bytes * image.frames
        if length > expected + expected % 2:
            raise ImageTooLarge(
                f"Deflated DICOM: the pixel data declares {length} bytes but Rows x Columns x frames x samples "
                f"x bytes announce {expected}: refused before inflating it (the header's size is the limit)"
            )
        self._spend(PIXEL_DATA, header)
        self.pixel_element, self.pixel_value = pos, (pos + header, length)

    def _image_value(self, tag: int, vr: bytes | None, value: bytes) -> None:
        try:
            if vr in (b"US", None) and len(value) >= 2:
                number = struct.unpack_from("<H", value)[0]
            else:  # Number of Frames is IS (text)
                number = int(value.decode("ascii").strip("\x00 ") or 1)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ImageDecodeError(f"DICOM image header is malformed: {exc}") from exc
        self.image[IMAGE_TAGS[tag]] = number


def inflate_announced(
    payload: bytes | memoryview, limits: DecodeLimits, stop_at_pixels: bool = False
) -> tuple[bytearray, DataElementWalk]:
    """Raw-inflate a Deflated data set, judging each element as it appears (see the module docstring).
    ImageTooLarge past a bound, DecodeTimeout past limits.deadline, ImageDecodeError when it is corrupt."""
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    walk = DataElementWalk(limits)
    out = bytearray()
    pending = payload
    while True:
        bound = min(walk.bound(), limits.max_decompressed_bytes)
        chunk = INFLATE_CHUNK if walk.pixel_value is None else 4 * INFLATE_CHUNK  # the pixel data: fewer, larger
        room = min(chunk, bound + 1 - len(out))
        try:
            piece = inflater.decompress(pending, room)
        except zlib.error as exc:
            raise ImageDecodeError(f"Deflated DICOM does not inflate: {exc}") from exc
        out += piece
        walk.advance(out)
        if len(out) > min(walk.bound(), limits.max_decompressed_bytes):
            limit = limits.max_decompressed_bytes
            raise ImageTooLarge(
                f"Deflated DICOM inflates to more than its header allows (the limit is "
                f"{min(walk.bound(), limit)} bytes; decompressed-bytes limit {limit})"
            )
        if limits.deadline is not None and time.monotonic() > limits.deadline:
            raise DecodeTimeout("inflating the Deflated DICOM took longer than the time limit")
        if stop_at_pixels and walk.pixel_element is not None and len(out) >= walk.pixel_element:
            return out, walk
        pending = inflater.unconsumed_tail
        if inflater.eof or (not pending and len(piece) < room):
            return out, walk
