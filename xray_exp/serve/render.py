"""Decoded pixels for the viewer: the stored values of a radiograph in their own bit depth, with what a
display needs to window them (rescale, the file's VOI, presets, inversion, padding, pixel spacing) and a
few non-identifying DICOM tags.

    from xray_exp.serve.render import render_pixels
    pixels, info = render_pixels(data, DecodeLimits())   # np.ndarray uint8/uint16/int16 (H, W), dict
    # curl -F file=@chest.dcm http://127.0.0.1:8000/render -D - -o pixels.raw   (X-Render-Info: the dict)

Decoding is the service's own (xray_exp.imaging: header limits first, bounded inflation,
first frame only). DICOM values are the stored ones: display value = stored * slope + intercept, then the
window. Only the tags in DICOM_TAGS ever leave the server: never a patient's name, id, birth date or an
accession number.
"""

from __future__ import annotations

import numpy as np

from xray_exp.imaging import DecodeLimits, ImageDecodeError, ImageHeader, to_uint8
from xray_exp.imaging.dicom_decode import first_frame, read_dataset

# The tags the viewer may show: technical, non-identifying (an allow-list; plus the transfer syntax's name)
DICOM_TAGS = (
    "Modality",
    "ViewPosition",
    "Rows",
    "Columns",
    "PixelSpacing",
    "ImagerPixelSpacing",
    "PhotometricInterpretation",
    "BitsStored",
    "NumberOfFrames",
)
# Classic CT windows in Hounsfield units (centre, width)
HU_PRESETS = {"lung": (-600.0, 1500.0), "mediastinum": (50.0, 350.0), "bone": (400.0, 1800.0)}
# Projection radiographs have no HU: the same names as percentiles of the image's brightness (low, high)
PERCENTILE_PRESETS = {"lung": (1.0, 60.0), "mediastinum": (35.0, 99.0), "bone": (65.0, 99.8)}
WIRE_DTYPES = {"u1": "uint8", "u2": "uint16", "i2": "int16"}  # numpy kind + item size -> the page's array type
MAX_TAG_CHARS = 64


def render_pixels(data: bytes, header: ImageHeader, limits: DecodeLimits) -> tuple[np.ndarray, dict]:
    """Checked upload bytes (see uploads.check_header) -> (2-D little-endian pixels, display info)."""
    if header.format == "dicom":
        pixels, info = _dicom_pixels(data, limits)
    else:
        pixels, info = _bitmap_pixels(data), {"rescale": [1.0, 0.0], "voi_function": "LINEAR_EXACT"}
        info.update(invert=False, padding=None, pixel_spacing_mm=None, spacing_source=None, dicom=None)
    if pixels.ndim != 2 or pixels.size == 0:
        raise ImageDecodeError(f"decoded {header.format} image has shape {pixels.shape}; expected one 2-D image")
    pixels = np.ascontiguousarray(pixels, dtype=pixels.dtype.newbyteorder("<"))
    info.update(
        format=header.format,
        width=int(pixels.shape[1]),
        height=int(pixels.shape[0]),
        dtype=WIRE_DTYPES[wire_key(pixels)],
        frames=header.frames,
    )
    values = _display_values(pixels, info)
    if info.get("window") is None:
        lo, hi = (0.0, 255.0) if pixels.dtype == np.uint8 and header.format != "dicom" else _range(values)
        info["window"] = {"center": (lo + hi) / 2, "width": max(hi - lo, 1.0), "source": "range"}
    info["presets"] = presets(values, info)
    return pixels, info


def wire_key(pixels: np.ndarray) -> str:
    return f"{pixels.dtype.kind}{pixels.dtype.itemsize}"


def _display_values(pixels: np.ndarray, info: dict) -> np.ndarray:
    """A subsample of the modality values (stored * slope + intercept) without padding, for ranges."""
    step = max(1, int(np.sqrt(pixels.size / 250_000)))
    sample = pixels[::step, ::step].ravel()
    if info.get("padding"):
        lo, hi = info["padding"]
        sample = sample[(sample < lo) | (sample > hi)]
    slope, intercept = info["rescale"]
    return sample.astype(np.float32) * slope + intercept


def _range(values: np.ndarray) -> tuple[float, float]:
    return (float(values.min()), float(values.max())) if values.size else (0.0, 1.0)


def presets(values: np.ndarray, info: dict) -> dict:
    """{"lung"|"mediastinum"|"bone": {center, width, basis}}: HU windows when the values are Hounsfield
    units (CT, or RescaleType HU), else percentiles of the image's brightness (MONOCHROME1: reversed)."""
    dicom = info.get("dicom") or {}
    if dicom.get("Modality") == "CT" or info.get("rescale_type") == "HU":
        return {k: {"center": c, "width": w, "basis": "HU"} for k, (c, w) in HU_PRESETS.items()}
    if not values.size:
        return {}
    out = {}
    for name, (low, high) in PERCENTILE_PRESETS.items():
        if info.get("invert"):
            low, high = 100.0 - high, 100.0 - low
        lo, hi = (float(v) for v in np.percentile(values, [low, high]))
        out[name] = {"center": (lo + hi) / 2, "width": max(hi - lo, 1.0), "basis": "percentiles"}
    return out


def _bitmap_pixels(data: bytes) -> np.ndarray:
    """PNG/JPEG in its own depth (8 or 16 bits), colour converted to grey; limits were checked by the caller."""
    import cv2

    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ImageDecodeError("not a decodable PNG/JPEG image (corrupt or truncated?)")
    if image.ndim == 3:
        code = cv2.COLOR_BGRA2GRAY if image.shape[2] == 4 else cv2.COLOR_BGR2GRAY
        image = cv2.cvtColor(image, code)
    if image.dtype not in (np.uint8, np.uint16):
        image = to_uint8(image)
    return image


def _dicom_pixels(data: bytes, limits: DecodeLimits) -> tuple[np.ndarray, dict]:
    dataset = read_dataset(data, limits)
    raw = first_frame(dataset, limits)
    slope = float(dataset.get("RescaleSlope", 1) or 1)
    intercept = float(dataset.get("RescaleIntercept", 0) or 0)
    if raw.ndim == 3 and raw.shape[-1] in (3, 4):  # colour: its grey, in the same type
        raw = raw[..., :3].mean(axis=-1).round().astype(raw.dtype)
    if wire_key(raw) not in WIRE_DTYPES:  # 32-bit or float data: 16 bits, the rescale keeps the values
        lo, hi = float(raw.min()), float(raw.max())
        scale = (hi - lo) / 65535 if hi > lo else 1.0
        raw = ((raw.astype(np.float64) - lo) / scale).round().astype(np.uint16)
        slope, intercept = slope * scale, lo * slope + intercept
    photometric = str(dataset.get("PhotometricInterpretation", "MONOCHROME2") or "MONOCHROME2")
    shape = str(dataset.get("PresentationLUTShape", "IDENTITY") or "IDENTITY").upper()
    spacing, source = _spacing(dataset)
    info = {
        "rescale": [slope, intercept],
        "rescale_type": str(dataset.get("RescaleType", "") or "") or None,
        "voi_function": str(dataset.get("VOILUTFunction", "LINEAR") or "LINEAR").upper(),
        "window": _file_window(dataset),
        "invert": photometric == "MONOCHROME1" or shape == "INVERSE",
        "padding": _padding(dataset),
        "pixel_spacing_mm": spacing,
        "spacing_source": source,
        "dicom": dicom_tags(dataset),
    }
    return raw, info


def _file_window(dataset) -> dict | None:
    """The file's own VOI: its first Window Center/Width, or the input range of its first VOI LUT."""
    center, width = dataset.get("WindowCenter"), dataset.get("WindowWidth")
    try:
        if center is not None and width is not None:
            first = lambda v: float(v[0] if hasattr(v, "__len__") and not isinstance(v, str) else v)  # noqa: E731
            if first(width) >= 1:
                return {"center": first(center), "width": first(width), "source": "file window"}
        sequence = dataset.get("VOILUTSequence")
        if sequence:
            entries, first_value = (int(v) for v in sequence[0].LUTDescriptor[:2])
            entries = entries or 65536
            return {"center": first_value + entries / 2, "width": float(entries), "source": "file VOI LUT"}
    except (TypeError, ValueError, AttributeError, IndexError):
        return None
    return None


def _padding(dataset) -> list[int] | None:
    value = dataset.get("PixelPaddingValue")
    if value is None:
        return None
    limit = dataset.get("PixelPaddingRangeLimit", value)
    return sorted((int(value), int(limit)))


def _spacing(dataset) -> tuple[list[float] | None, str | None]:
    """[row, column] spacing in mm from PixelSpacing, else ImagerPixelSpacing (at the detector)."""
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        value = dataset.get(keyword)
        try:
            row, column = (float(v) for v in value[:2])
        except (TypeError, ValueError, IndexError):
            continue
        if row > 0 and column > 0:
            return [row, column], keyword
    return None, None


def dicom_pixel_spacing(data: bytes, limits: DecodeLimits) -> list[float] | None:
    """[row, column] mm per pixel from a DICOM's header (no pixel data read), or None (also when the header,
    already read once for the decode, cannot be read again within the request's time limit)."""
    try:
        return _spacing(read_dataset(data, limits, stop_before_pixels=True))[0]
    except ImageDecodeError:
        return None


def dicom_tags(dataset) -> dict:
    """The allow-listed tags present in the data set, as short strings (plus the transfer syntax's name)."""
    from pydicom.multival import MultiValue

    out = {}
    for keyword in DICOM_TAGS:
        value = dataset.get(keyword)
        if value is None or value == "":
            continue
        text = "\\".join(str(v) for v in value) if isinstance(value, list | tuple | MultiValue) else str(value)
        out[keyword] = text[:MAX_TAG_CHARS]
    syntax = getattr(dataset, "original_transfer_syntax", None) or dataset.file_meta.get("TransferSyntaxUID")
    if syntax:
        from pydicom.uid import UID

        out["TransferSyntax"] = UID(str(syntax)).name[:MAX_TAG_CHARS]
    return out
