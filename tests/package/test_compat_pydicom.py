"""What xray_exp/imaging/pydicom_compat.py relies on in pydicom is still there: a changed internal fails here, by
name, instead of as uploads that no longer parse.

    PYTHONPATH=$PWD .venv/bin/python -m pytest tests/package/test_compat_pydicom.py -q
"""

from __future__ import annotations

import io

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.filereader import read_partial, read_preamble
from pydicom.pixels.decoders import base

try:
    from compat_modules import private
except ImportError:  # tests/ imported as a package
    from tests.package.compat_modules import private

from xray_exp.imaging.pydicom_compat import at_pixel_data, gdcm_decoder_plugin, read_file_meta

COMPAT = "imaging/pydicom_compat.py"


def test_private_reader_functions_exist_with_their_signatures():
    from pydicom import filereader

    private(filereader, "_read_file_meta_info", "(fp)", COMPAT)
    private(filereader, "_at_pixel_data", "(tag, vr, length)", COMPAT)


@pytest.mark.parametrize(
    ("name", "syntax"), [("CT_small.dcm", "1.2.840.10008.1.2.1"), ("image_dfl.dcm", "1.2.840.10008.1.2.1.99")]
)
def test_read_file_meta_reads_the_meta_group_of_a_real_file(name, syntax):
    data = open(get_testdata_file(name), "rb").read()
    fp = io.BytesIO(data)
    read_preamble(fp, False)
    meta = read_file_meta(fp)
    assert str(meta.TransferSyntaxUID) == syntax == str(pydicom.dcmread(io.BytesIO(data)).file_meta.TransferSyntaxUID)
    # left at the first element after group 0002: the data set starts there
    assert data[fp.tell() : fp.tell() + 2] != b"\x02\x00" and data[fp.tell() - 200 : fp.tell()].count(b"\x02\x00")


def test_at_pixel_data_stops_where_stop_before_pixels_does():
    path = get_testdata_file("CT_small.dcm")
    ours = read_partial(open(path, "rb"), stop_when=at_pixel_data())
    reference = pydicom.dcmread(path, stop_before_pixels=True)
    assert "PixelData" not in ours and list(ours.keys()) == list(reference.keys())
    assert at_pixel_data()(pydicom.tag.Tag(0x7FE00010), "OW", 100) is True
    assert at_pixel_data()(pydicom.tag.Tag(0x7FE00008), "OF", 4) is True  # Float Pixel Data
    assert at_pixel_data()(pydicom.tag.Tag(0x00280010), "US", 2) is False


def test_gdcm_decoder_plugin_is_what_pydicom_registers():
    """pydicom registers its own GDCM decoder under this (module, function), the pair we register again (after
    the others); `add_plugin` imports it, so a moved function fails the registration."""
    import importlib
    import inspect

    module, function = gdcm_decoder_plugin()
    private(importlib.import_module(module), function, "(src, runner)", COMPAT)
    assert f'("gdcm", ("{module}", "{function}"))' in inspect.getsource(base), "pydicom registers GDCM otherwise"
    from xray_exp.imaging.gdcm_plugin import register_gdcm_fallback

    assert register_gdcm_fallback()
    assert [d for d in vars(base).values() if isinstance(d, base.Decoder) and "gdcm" in d.available_plugins]
