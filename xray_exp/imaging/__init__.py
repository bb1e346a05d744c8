"""Radiograph decoding with hard limits: the one way pixels reach the model, in training and in serving.

    from xray_exp.imaging import DecodeLimits, read_xray
    gray = read_xray("chest.dcm")                  # np.uint8 (H, W): DICOM windowed, MONOCHROME1 inverted
    header = probe_xray_bytes(data)                # format and size from the header alone (refuse bombs first)

Layers, each importing only those below it:
    read.py            the face: read_xray, decode_xray_bytes, probe_xray_bytes (any format)
    dicom_decode.py    DICOM display rules (modality/VOI LUT, inversion, padding), first frame, probe_dicom
    dicom_parse.py     pydicom reading with bounded reads; dicom_inflate.py: Deflated syntax, bounded inflation
    gdcm_plugin.py     GDCM as the last pixel decoder
    pydicom_compat.py  the only use of pydicom's private names (checked per version)
    bitmap.py          PNG/JPEG/BMP/TIFF; pixel_scaling.py: any depth to uint8 without a float copy
    headers.py         magic bytes, PNG/JPEG header probes
    limits.py          errors, DecodeLimits, ImageHeader, check_limits
"""

from xray_exp.imaging.bitmap import decode_bitmap, to_uint8
from xray_exp.imaging.headers import is_dicom_bytes, probe_jpeg, sniff_format
from xray_exp.imaging.limits import (
    DEFAULT_LIMITS,
    DecodeLimits,
    ImageDecodeError,
    ImageHeader,
    ImageTooLarge,
    MiB,
    check_limits,
)
from xray_exp.imaging.read import decode_dicom, decode_xray_bytes, probe_xray_bytes, read_xray

__all__ = [
    "DEFAULT_LIMITS",
    "DecodeLimits",
    "ImageDecodeError",
    "ImageHeader",
    "ImageTooLarge",
    "MiB",
    "check_limits",
    "decode_bitmap",
    "decode_dicom",
    "decode_xray_bytes",
    "is_dicom_bytes",
    "probe_jpeg",
    "probe_xray_bytes",
    "read_xray",
    "sniff_format",
    "to_uint8",
]
