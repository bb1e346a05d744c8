"""Legal-but-huge uploads: small files that decode to many pixel bytes, and what they cost the server.

    python -m xray_exp.bench hostile_load --url http://127.0.0.1:8000 --pid <server pid>

The builders make deterministic files that stay inside (or sit just at) the decoding limits: a 16-bit PNG
whose rows are constant (a grey ramp, ~1000:1 under deflate), the same image as a Deflated DICOM, and a
Deflated DICOM that hides a 1 GiB private element before a small image. `xray_exp.bench.hostile_load`
sends them once each (peak RSS, CPU) and from six clients at once while ordinary PNGs are timed.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

from xray_exp.bench.hostile import _meta_end, _png_chunk
from xray_exp.data.synthetic_dicom import chest_xray_bytes

ROW_BLOCK = 256  # rows compressed per call (bounded memory while building)


def _ramp_rows(width: int, height: int, start: int = 0):
    """Row blocks of a 16-bit grey ramp (row r holds the value r * 65535 // height), little endian."""
    for top in range(start, height, ROW_BLOCK):
        values = np.arange(top, min(height, top + ROW_BLOCK), dtype=np.uint64) * 65535 // max(1, height - 1)
        yield np.repeat(values.astype(np.uint16)[:, None], width, axis=1)


def png16_ramp(width: int, height: int) -> bytes:
    """A valid 16-bit greyscale PNG (colour type 0) of a vertical ramp; every row constant."""
    packer = zlib.compressobj(9)
    parts = []
    for block in _ramp_rows(width, height):
        rows = np.zeros((block.shape[0], 1 + 2 * width), np.uint8)  # filter byte 0, then big-endian samples
        rows[:, 1:] = block.astype(">u2").view(np.uint8).reshape(block.shape[0], -1)
        parts.append(packer.compress(rows.tobytes()))
    idat = b"".join(parts) + packer.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 16, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def _deflated_parts() -> tuple[bytes, bytes]:
    """(file meta of a Deflated 64x64 16-bit DX, its inflated data set)."""
    head = chest_xray_bytes(syntax="1.2.840.10008.1.2.1.99")
    meta_end = _meta_end(head)
    return head[:meta_end], zlib.decompress(head[meta_end:], -zlib.MAX_WBITS)


def _set_us(plain: bytes, element: int, value: int) -> bytes:
    """Patch the value of a (0028,eeee) US element in an explicit VR little endian data set."""
    key = struct.pack("<HH", 0x0028, element) + b"US\x02\x00"
    at = plain.index(key) + len(key)
    return plain[:at] + struct.pack("<H", value) + plain[at + 2 :]


def deflated_dicom_ramp(width: int, height: int) -> bytes:
    """A Deflated DICOM (explicit VR little endian inside) of a 16-bit ramp: valid and decodable."""
    meta, plain = _deflated_parts()
    plain = _set_us(_set_us(plain, 0x0010, height), 0x0011, width)
    pixel_tag = plain.rindex(b"\xe0\x7f\x10\x00")
    packer = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    parts = [packer.compress(plain[:pixel_tag] + b"\xe0\x7f\x10\x00OW\x00\x00" + struct.pack("<I", width * height * 2))]
    parts += [packer.compress(block.astype("<u2").tobytes()) for block in _ramp_rows(width, height)]
    return meta + b"".join(parts) + packer.flush()


def deflated_private_bomb(size: int = 1 << 30) -> bytes:
    """A Deflated DICOM whose data set holds, right after group 0008, a private element (0009,1010) of
    `size` zero bytes; then the usual elements and a 64x64 image. ~1 MB for 1 GiB."""
    meta, plain = _deflated_parts()
    split = plain.index(struct.pack("<HH", 0x0010, 0x0020) + b"LO")  # Patient ID: the first of group 0010
    creator = struct.pack("<HH", 0x0009, 0x0010) + b"LO" + struct.pack("<H", 8) + b"HOSTILE "
    private = struct.pack("<HH", 0x0009, 0x1010) + b"OB\x00\x00" + struct.pack("<I", size)
    packer = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    parts = [packer.compress(plain[:split] + creator + private)]
    chunk = b"\x00" * (1 << 20)
    parts += [packer.compress(chunk) for _ in range(size >> 20)]
    parts.append(packer.compress(plain[split:]))
    return meta + b"".join(parts) + packer.flush()


def largest_legal_side(max_pixel_bytes: int, bytes_per_pixel: int = 2) -> int:
    """The side of the largest square image of that depth within the pixel-bytes limit."""
    return int((max_pixel_bytes // bytes_per_pixel) ** 0.5)


def legal_huge_inputs(side: int = 8000) -> dict[str, bytes]:
    """name -> bytes: the issue's three inputs at `side` (8000: the figures of the report)."""
    return {
        f"png16-{side}x{side}": png16_ramp(side, side),
        f"deflated-dicom-{side}x{side}": deflated_dicom_ramp(side, side),
        "deflated-private-1g": deflated_private_bomb(),
    }
