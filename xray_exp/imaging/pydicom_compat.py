"""The one module that touches pydicom's private names.

    from xray_exp.imaging.pydicom_compat import at_pixel_data, read_file_meta
    read_preamble(fp, False); meta = read_file_meta(fp)       # the (0002,eeee) group of a Part 10 stream
    read_partial(fp, stop_when=at_pixel_data())                # stop_before_pixels, with our own callback

Checked against pydicom 3.0.2 (pyproject.toml bounds it to 3.0.x). tests/package/test_compat_pydicom.py
fails, naming what changed, when an upgrade renames these functions or changes their signatures or
behaviour; tests/package/test_compat_scan.py fails when a module outside the compat modules uses a private
name of pydicom (PRIVATE_NAMES).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, BinaryIO

CHECKED_VERSION = "3.0.2"
# pydicom's private names used here, and only here (tests/package/test_compat_scan.py).
PRIVATE_NAMES = frozenset({"_read_file_meta_info", "_at_pixel_data", "_decode_frame"})
# The modules those names live in: pytest fails on a DeprecationWarning raised there (pyproject.toml).
INTERNAL_MODULES = ("pydicom.filereader", "pydicom.pixels.decoders.gdcm")


def read_file_meta(fp: BinaryIO) -> Any:
    """The File Meta Information group (0002,eeee) read from `fp`, positioned just after the preamble and
    b"DICM" (`pydicom.filereader.read_preamble`); `fp` is left at the first element after the group.

    Checked against pydicom 3.0.2: `pydicom.filereader._read_file_meta_info(fp) -> FileMetaDataset`. The public
    `read_file_meta_info(filename)` takes a path only; ours reads from a bounded in-memory buffer.
    """
    from pydicom.filereader import _read_file_meta_info

    return _read_file_meta_info(fp)


def at_pixel_data() -> Callable[[Any, str | None, int], bool]:
    """pydicom's `stop_when` test of `stop_before_pixels`, `(tag, vr, length) -> bool`: True at (7FE0,0010)
    Pixel Data, (7FE0,0008) Float and (7FE0,0009) Double Float Pixel Data. Returned (not wrapped) so that a
    per-element callback calls it directly.

    Checked against pydicom 3.0.2: `pydicom.filereader._at_pixel_data(tag, vr, length) -> bool`, the callback
    `read_partial`/`read_dataset` use for `stop_before_pixels=True`; ours combines it with other checks.
    """
    from pydicom.filereader import _at_pixel_data

    return _at_pixel_data


def gdcm_decoder_plugin() -> tuple[str, str]:
    """(module, function) of pydicom's own GDCM pixel-data decoder, as `Decoder.add_plugin` takes it.

    Checked against pydicom 3.0.2: `pydicom.pixels.decoders.gdcm._decode_frame(src: bytes, runner: DecodeRunner)
    -> bytes` is what pydicom registers under the label "gdcm" (pydicom.pixels.decoders.base); we register it
    again to change the order of the plugins.
    """
    return "pydicom.pixels.decoders.gdcm", "_decode_frame"
