"""DICOM decoding with hard limits: bounded inflation, header checks before pixels, first frame only.

    from xray_exp.imaging.dicom_decode import decode_dicom_bytes
    gray, info = decode_dicom_bytes(open("chest.dcm", "rb").read())     # uint8 (H, W), header fields

Transfer syntaxes: implicit/explicit VR little endian, explicit big endian, Deflated (inflated by
xray_exp.imaging.dicom_parse with a bounded zlib.decompressobj BEFORE pydicom sees the data), RLE, JPEG
Baseline/Extended (12-bit)/Lossless (process 14), JPEG-LS, JPEG 2000 (pydicom with the pylibjpeg plugins,
then GDCM: xray_exp.imaging.gdcm_plugin; 12-bit JPEG Extended that libjpeg refuses is decoded by GDCM).
The size a compressed frame's own codestream declares must match Rows/Columns, so a small header cannot
hide a huge frame.

Display rules (what training and the service see):
    Modality LUT, then VOI LUT (LUT sequence or window; VOI LUT Function LINEAR, LINEAR_EXACT, SIGMOID),
    min-max to 8 bits. MONOCHROME1 or Presentation LUT Shape INVERSE -> inverted once (the DX module asks
    for INVERSE exactly when the data are MONOCHROME1: the two name the same inversion). Pixel Padding
    Value (and Range Limit) pixels are left out of the scaling and shown black. Multi-frame: the first
    frame is used; `info["frames"]` says how many there were. Memory: the stored frame plus the uint8
    result (xray_exp.imaging.pixel_scaling), about 1.5x the frame's pixel bytes for 16-bit data.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from xray_exp.imaging.dicom_parse import DecodeTimeout, dicom_header, read_dataset
from xray_exp.imaging.headers import probe_jpeg
from xray_exp.imaging.limits import DEFAULT_LIMITS, DecodeLimits, ImageDecodeError, ImageHeader, check_limits
from xray_exp.imaging.pixel_scaling import scale_to_uint8

if TYPE_CHECKING:
    from pydicom import Dataset

__all__ = [
    "DecodeTimeout",
    "decode_dicom_bytes",
    "dicom_header",
    "dicom_to_uint8",
    "first_frame",
    "probe_dicom",
    "read_dataset",
]

RLE_SYNTAX = "1.2.840.10008.1.2.5"
VOI_FUNCTIONS = ("LINEAR", "LINEAR_EXACT", "SIGMOID")
PRESENTATION_SHAPES = ("IDENTITY", "INVERSE")


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


def check_first_frame(dataset: Dataset, header: ImageHeader, limits: DecodeLimits) -> None:
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


def first_frame(dataset: Dataset, limits: DecodeLimits = DEFAULT_LIMITS) -> np.ndarray:
    """The stored values of frame 1 (as pydicom's plugins decode it), after the limit checks."""
    from pydicom.pixels import pixel_array

    from xray_exp.imaging.gdcm_plugin import register_gdcm_fallback  # lazy: heavy (pydicom)

    header = check_limits(dicom_header(dataset), limits)
    if "PixelData" not in dataset:
        raise ImageDecodeError("DICOM has no pixel data (7FE0,0010)")
    syntax = dataset.file_meta.get("TransferSyntaxUID") if hasattr(dataset, "file_meta") else None
    if syntax is not None and syntax.is_encapsulated:
        check_first_frame(dataset, header, limits)
    register_gdcm_fallback()  # decoders: pylibjpeg first, then GDCM (12-bit JPEG Extended libjpeg refuses)
    try:  # native syntaxes: a read-only view on the pixel data, not a copy
        return pixel_array(dataset, index=0, view_only=True)
    except Exception as exc:  # pydicom raises many types for broken pixel data
        raise ImageDecodeError(f"DICOM has no readable pixel data: {exc}") from exc


def padding_range(dataset: Dataset) -> tuple[int, int] | None:
    """Stored values [low, high] that are Pixel Padding (Pixel Padding Value, up to the Range Limit)."""
    value = dataset.get("PixelPaddingValue")
    if value is None:
        return None
    limit = dataset.get("PixelPaddingRangeLimit", value)
    low, high = sorted((int(value), int(limit)))
    return low, high


def dicom_to_uint8(dataset: Dataset, limits: DecodeLimits = DEFAULT_LIMITS) -> tuple[np.ndarray, dict[str, Any]]:
    """Window a pydicom dataset (see the module docstring for the rules) -> (uint8 image, header info).

    Bounded memory: the stored frame, the uint8 result and strips (xray_exp.imaging.pixel_scaling); the LUTs are
    applied to each distinct stored value once, never to a float copy of the frame."""
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    voi_function = str(dataset.get("VOILUTFunction", "LINEAR") or "LINEAR").upper()
    if voi_function not in VOI_FUNCTIONS:
        raise ImageDecodeError(f"VOI LUT Function {voi_function!r} is not supported (LINEAR, LINEAR_EXACT, SIGMOID)")
    shape = str(dataset.get("PresentationLUTShape", "IDENTITY") or "IDENTITY").upper()
    if shape not in PRESENTATION_SHAPES:
        raise ImageDecodeError(f"Presentation LUT Shape {shape!r} is not supported (IDENTITY, INVERSE)")
    raw = first_frame(dataset, limits)
    if not (raw.ndim == 2 or (raw.ndim == 3 and raw.shape[-1] in (3, 4))):
        raise ImageDecodeError(f"DICOM pixel data has shape {raw.shape}; expected a single 2-D frame")
    photometric = str(getattr(dataset, "PhotometricInterpretation", "MONOCHROME2"))
    inverted = photometric == "MONOCHROME1" or shape == "INVERSE"
    monotonic = not (dataset.get("ModalityLUTSequence") or dataset.get("VOILUTSequence"))

    def window(values: np.ndarray) -> np.ndarray:
        return apply_voi_lut(apply_modality_lut(values, dataset), dataset, index=0)

    try:
        image, padding = scale_to_uint8(raw, window, padding_range(dataset), inverted, monotonic)
    except Exception as exc:
        raise ImageDecodeError(f"DICOM LUTs cannot be applied: {type(exc).__name__}: {exc}") from exc
    del raw
    syntax = getattr(dataset, "original_transfer_syntax", None) or dataset.file_meta.get("TransferSyntaxUID", "")
    info = {
        "patient_id": str(getattr(dataset, "PatientID", "") or ""),
        "photometric": photometric,
        "bits_stored": int(getattr(dataset, "BitsStored", 8) or 8),
        "transfer_syntax": str(syntax),
        "frames": int(dataset.get("NumberOfFrames", 1) or 1),
        "inverted": inverted,
        "voi_lut_function": voi_function,
        "padding_pixels": padding,
    }
    return image, info


def decode_dicom_bytes(data: bytes, limits: DecodeLimits = DEFAULT_LIMITS) -> tuple[np.ndarray, dict[str, Any]]:
    """DICOM bytes -> (uint8 grey of the first frame, header info) within `limits`."""
    return dicom_to_uint8(read_dataset(data, limits), limits)
