"""GDCM as pydicom's fallback pixel-data decoder, after pylibjpeg; and for 12-bit JPEG Extended (process 2 & 4).

    from xray_exp.imaging.gdcm_plugin import register_gdcm_fallback
    register_gdcm_fallback()          # once; xray_exp.imaging.dicom_decode does it before decoding pixels

Some older modalities write 12-bit JPEG Extended codestreams that libjpeg refuses ("misplaced marker segment":
pydicom's own JPEG-lossy.dcm is one) and that GDCM decodes. pydicom ships a GDCM plugin but turns 12-bit
JPEG Extended away; this plugin is the same frame decoding (a one-fragment gdcm.Image, as
pydicom.pixels.decoders.gdcm does it) without that refusal, added after pydicom's own plugins, so it runs
only when pylibjpeg (and the others) failed. The header checks of xray_exp.imaging.dicom_decode (the codestream
declares the size Rows/Columns do, within DecodeLimits) run before any plugin.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from pydicom import uid

from xray_exp.imaging.pydicom_compat import gdcm_decoder_plugin

if TYPE_CHECKING:
    from pydicom.pixels.decoders.base import DecodeRunner

LABEL = "xray_exp-gdcm"
DECODER_DEPENDENCIES = {uid.JPEGExtended12Bit: ("python-gdcm>=3.0.10",)}
_lock = threading.Lock()
_registered = False


def is_available(syntax: str) -> bool:
    """pydicom's plugin protocol: GDCM is importable and the syntax is one this plugin decodes."""
    try:
        import gdcm  # noqa: F401
    except ImportError:
        return False
    return syntax in DECODER_DEPENDENCIES


def decode_gdcm_frame(src: bytes, runner: DecodeRunner) -> bytes:
    """One encoded frame -> its decoded bytes (pydicom's decoder-plugin signature)."""
    import gdcm

    fragment = gdcm.Fragment()
    fragment.SetByteStringValue(src)
    fragments = gdcm.SequenceOfFragments.New()
    fragments.AddFragment(fragment)
    element = gdcm.DataElement(gdcm.Tag(0x7FE0, 0x0010))
    element.SetValue(fragments.__ref__())
    image = gdcm.Image()
    image.SetNumberOfDimensions(2)
    image.SetDimensions((runner.columns, runner.rows, 1))
    image.SetDataElement(element)
    photometric = gdcm.PhotometricInterpretation.GetPIType(runner.photometric_interpretation)
    image.SetPhotometricInterpretation(gdcm.PhotometricInterpretation(photometric))
    if runner.samples_per_pixel > 1:
        image.SetPlanarConfiguration(runner.planar_configuration)
    syntax = gdcm.TransferSyntax.GetTSType(str.__str__(runner.transfer_syntax))
    image.SetTransferSyntax(gdcm.TransferSyntax(syntax))
    bits = runner.bits_stored
    image.SetPixelFormat(
        gdcm.PixelFormat(runner.samples_per_pixel, runner.bits_allocated, bits, bits - 1, runner.pixel_representation)
    )
    frame = image.GetBuffer()
    if not frame:
        raise ValueError("GDCM could not decode the JPEG Extended frame")
    decoded: bytes = frame.encode("utf-8", "surrogateescape")  # GDCM hands char* back as str
    return decoded


def register_gdcm_fallback() -> bool:
    """Decoder order pylibjpeg first, GDCM after it: pydicom's own GDCM plugin (which pydicom tries first
    when python-gdcm is installed) moves behind the others, and this plugin is added last for 12-bit JPEG
    Extended. Idempotent and thread-safe; False without GDCM."""
    global _registered
    with _lock:
        if not _registered:
            from pydicom.pixels.decoders import base

            if not is_available(uid.JPEGExtended12Bit):
                return False
            import gdcm

            gdcm.Trace.WarningOff()  # GDCM tries 8-bit libjpeg first and prints why it did not fit
            gdcm.Trace.ErrorOff()
            for decoder in vars(base).values():
                if isinstance(decoder, base.Decoder) and "gdcm" in decoder.available_plugins:
                    decoder.remove_plugin("gdcm")
                    decoder.add_plugin("gdcm", gdcm_decoder_plugin())
            base.JPEGExtended12BitDecoder.add_plugin(LABEL, (__name__, "decode_gdcm_frame"))
            _registered = True
    return True
