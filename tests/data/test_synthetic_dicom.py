"""The one chest X-ray DICOM builder (xray_exp.data.synthetic_dicom): valid files, every option where it belongs.

    PYTHONPATH=$PWD .venv/bin/python -m pytest tests/data/test_synthetic_dicom.py -q

Validity is dciodvfy's (Debian dicom3tools, installed by scripts/test.sh); pixels are read back by pydicom.
"""

from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLSLossless,
    RLELossless,
    SecondaryCaptureImageStorage,
)

try:
    from dicom_corpus import dciodvfy_errors
except ImportError:  # tests/ imported as a package
    from tests.dicom_corpus import dciodvfy_errors

from xray_exp.data.synthetic_dicom import chest_xray_bytes, chest_xray_dicom

RNG = np.random.default_rng(3)
U12 = RNG.integers(0, 4096, (48, 64)).astype(np.uint16)
U8 = RNG.integers(0, 256, (48, 64)).astype(np.uint8)


def read(data: bytes) -> pydicom.Dataset:
    return pydicom.dcmread(io.BytesIO(data))


@pytest.mark.parametrize("photometric", ["MONOCHROME2", "MONOCHROME1"])
def test_complete_header_is_a_valid_dx_for_presentation(tmp_path, photometric):
    path = tmp_path / "dx.dcm"
    path.write_bytes(
        chest_xray_bytes(U12, header="complete", bits_stored=12, photometric=photometric, window=(2048, 4096))
    )
    errors = dciodvfy_errors(path)
    if errors is None:
        pytest.skip("dciodvfy (Debian dicom3tools) is not installed")
    assert errors == [], "\n".join(errors)
    ds = pydicom.dcmread(path)
    assert ds.PresentationLUTShape == ("INVERSE" if photometric == "MONOCHROME1" else "IDENTITY")
    minimal = tmp_path / "minimal.dcm"
    minimal.write_bytes(chest_xray_bytes(U12, bits_stored=12, window=(2048, 4096)))
    assert any("StudyInstanceUID" in line for line in dciodvfy_errors(minimal) or [])  # what "complete" adds


def test_messy_header_lacks_the_type_2_attributes_real_exports_drop():
    ds = chest_xray_dicom(U8, header="messy")
    absent = ("PatientBirthDate", "PatientSex", "StudyDate", "StudyTime", "AccessionNumber", "StudyID")
    assert not [k for k in absent if k in ds] and ds.PatientAge == "81" and "StudyInstanceUID" in ds
    clean = chest_xray_dicom(U8, header="complete")
    assert all(k in clean for k in absent) and clean.PatientAge == "081Y"
    with pytest.raises(ValueError, match="header='tidy'"):
        chest_xray_dicom(U8, header="tidy")  # type: ignore[arg-type]


def test_image_options_land_in_their_attributes_and_pixels_read_back():
    ds = read(chest_xray_bytes(U12, bits_stored=12, photometric="MONOCHROME1", window=(1500, 800), rescale=(2, -7)))
    assert (ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation) == (16, 12, 11, 0)
    assert ds.PhotometricInterpretation == "MONOCHROME1" and (ds.WindowCenter, ds.WindowWidth) == (1500, 800)
    assert (ds.RescaleSlope, ds.RescaleIntercept) == (2, -7) and np.array_equal(ds.pixel_array, U12)
    signed = (U12.astype(np.int16) - 2048).astype(np.int16)
    ds = read(chest_xray_bytes(signed))
    assert ds.PixelRepresentation == 1 and np.array_equal(ds.pixel_array, signed)
    ds = read(chest_xray_bytes(U8, modality="CR", sop_class=SecondaryCaptureImageStorage, without=("PatientID",)))
    assert ds.Modality == "CR" and ds.SOPClassUID == SecondaryCaptureImageStorage and "PatientID" not in ds
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID and ds.BitsAllocated == 8
    ds = read(chest_xray_bytes(Rows=9, NumberOfFrames=3))  # elements are set last: a header that lies
    assert (ds.Rows, ds.Columns, ds.NumberOfFrames) == (9, 64, 3)
    with pytest.raises(ValueError, match="2-D 8- or 16-bit integer"):
        chest_xray_dicom(U12.astype(np.float32))


@pytest.mark.parametrize(
    "syntax",
    [ImplicitVRLittleEndian, ExplicitVRBigEndian, DeflatedExplicitVRLittleEndian, RLELossless, JPEGLSLossless],
)
def test_every_lossless_syntax_keeps_the_pixels(syntax):
    ds = read(chest_xray_bytes(U12, header="complete", bits_stored=12, syntax=syntax))
    assert ds.file_meta.TransferSyntaxUID == syntax and np.array_equal(ds.pixel_array, U12)
    assert ds.LossyImageCompression == "00"


def test_lossy_syntaxes_say_so():
    j2k = read(chest_xray_bytes(U8, header="complete", syntax=JPEG2000Lossless))
    assert np.array_equal(j2k.pixel_array, U8) and j2k.LossyImageCompression == "00"
    jpeg = read(chest_xray_bytes(U8, header="complete", syntax=JPEGBaseline8Bit, compression={"quality": 90}))
    assert jpeg.file_meta.TransferSyntaxUID == JPEGBaseline8Bit and jpeg.LossyImageCompression == "01"
    assert np.abs(jpeg.pixel_array.astype(int) - U8).mean() < 40  # noise compresses badly, but it is the image
    with pytest.raises(ValueError, match="JPEG Baseline holds 8-bit"):
        chest_xray_dicom(U12, syntax=JPEGBaseline8Bit)
