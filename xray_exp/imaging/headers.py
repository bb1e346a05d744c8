"""Header probes of bitmap files: the format from the magic bytes, PNG and JPEG sizes without decoding pixels.

    from xray_exp.imaging.headers import probe_jpeg, sniff_format
    sniff_format(data)          # "png", "jpeg", "dicom" or None
    probe_jpeg(data)            # ImageHeader("jpeg", width, height, samples=1, bits=8)

(DICOM headers: xray_exp.imaging.dicom_decode.probe_dicom; any format: xray_exp.imaging.probe_xray_bytes.)
"""

from __future__ import annotations

from xray_exp.imaging.limits import ImageDecodeError, ImageHeader

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers carry the size; C4 (DHT), C8 (JPG) and CC (DAC) are not frames; F7 is JPEG-LS.
JPEG_SOF_MARKERS = (frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}) | {0xF7}
# PNG colour type -> samples per pixel (0 grey, 2 RGB, 3 palette: decoded as RGB, 4 grey+alpha, 6 RGBA)
PNG_SAMPLES = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}


def is_dicom_bytes(data: bytes) -> bool:
    """DICOM Part 10 files carry 'DICM' after a 128-byte preamble."""
    return len(data) >= 132 and data[128:132] == b"DICM"


def sniff_format(data: bytes) -> str | None:
    """The format from the magic bytes: "png", "jpeg", "dicom", or None for anything else."""
    if is_dicom_bytes(data):
        return "dicom"
    if data.startswith(PNG_SIGNATURE):
        return "png"
    if data[:3] == b"\xff\xd8\xff":
        return "jpeg"
    return None


def probe_png(data: bytes) -> ImageHeader:
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
