"""Synthetic chest X-ray DICOMs: the one builder behind the tests, the benchmarks and prepare's fake sources.

    from xray_exp.data.synthetic_dicom import chest_xray_bytes, chest_xray_dicom, dicom_file_bytes
    ds = chest_xray_dicom(pixels)                                # DX, MONOCHROME2, bits of the dtype, minimal header
    ds = chest_xray_dicom(pixels, header="complete", window=(128, 256))   # a valid DX For Presentation
    ds = chest_xray_dicom(pixels, header="messy")                # as real exports come: type 2 attributes absent,
                                                                 # Patient's Age "81" (an AS without its unit)
    ds = chest_xray_dicom(u16, bits_stored=12, photometric="MONOCHROME1", window=(2048, 4096), rescale=(1, -1024))
    ds = chest_xray_dicom(u8, syntax=JPEG2000, compression={"j2k_cr": [20]})   # any syntax pydicom can encode;
                                                                 # JPEG Baseline through OpenCV's libjpeg
    ds = chest_xray_dicom(pixels, modality="CR", without=("PatientID",), WindowCenter=[40, 400])  # any element
    data = chest_xray_bytes(pixels, ...)                         # the same, as DICOM Part 10 bytes

No patient data: the names, IDs and dates are made up; UIDs are new for every call (pydicom's generate_uid).
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import Any, Literal

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import (
    JPEG2000,
    UID,
    DeflatedExplicitVRLittleEndian,
    DigitalXRayImageStorageForPresentation,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLSNearLossless,
    generate_uid,
)

Header = Literal["minimal", "complete", "messy"]
HEADERS: tuple[str, ...] = ("minimal", "complete", "messy")
# written as they are (pydicom encodes these while saving); every other syntax goes through an encoder
UNCOMPRESSED = (ExplicitVRLittleEndian, ImplicitVRLittleEndian, ExplicitVRBigEndian, DeflatedExplicitVRLittleEndian)
LOSSY = (JPEGBaseline8Bit, JPEGExtended12Bit, JPEG2000, JPEGLSNearLossless)  # Lossy Image Compression "01"
PATIENT_ID = "XR-TEST-01"


def chest_xray_dicom(
    pixels: np.ndarray | None = None,
    *,
    header: Header = "minimal",
    syntax: str = ExplicitVRLittleEndian,
    compression: dict[str, Any] | None = None,
    photometric: str = "MONOCHROME2",
    bits_stored: int | None = None,
    window: tuple[float, float] | None = None,
    rescale: tuple[float, float] | None = None,
    modality: str = "DX",
    sop_class: str = DigitalXRayImageStorageForPresentation,
    patient_id: str = PATIENT_ID,
    study_uid: str | None = None,
    instance: int = 1,
    without: Iterable[str] = (),
    **elements: Any,
) -> Dataset:
    """A single-frame grey radiograph as a DICOM data set (file meta included).

    pixels: 2-D uint8/uint16 (int16: signed pixel representation); None: 64x64 zeros (uint16).
    header: "minimal" (what a decoder reads: SOP class/instance, Modality, PatientID, the Image Pixel module),
        "complete" (every type 1 and 2 attribute of the DX For Presentation IOD: dciodvfy finds no error once a
        `window` is given, the VOI the IOD asks for), "messy" ("complete" less its type 2 patient/study
        attributes, with Patient's Age "81").
    bits_stored: default the dtype's bits (Bits Allocated is always the dtype's). window: (center, width) of a
    VOI LUT; rescale: (slope, intercept). `elements` (keyword=value) are set last, before compression;
    `without` names elements removed at the very end (a missing-attribute variant).
    """
    if header not in HEADERS:
        raise ValueError(f"header={header!r}: one of {', '.join(HEADERS)}")
    pixels = np.zeros((64, 64), np.uint16) if pixels is None else np.asarray(pixels)
    if pixels.ndim != 2 or pixels.dtype.kind not in "ui" or pixels.dtype.itemsize > 2:
        raise ValueError(f"pixels: a 2-D 8- or 16-bit integer array, not {pixels.dtype} {pixels.shape}")
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop_class)
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = UID(syntax) if syntax in UNCOMPRESSED else ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    if header != "minimal":
        ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.Modality, ds.PatientID = modality, patient_id
    if header != "minimal":
        _dx_header(ds, messy=header == "messy", study_uid=study_uid, instance=instance)
    elif study_uid:
        ds.StudyInstanceUID = study_uid
    _image_pixels(ds, pixels, photometric, bits_stored, big_endian=syntax == ExplicitVRBigEndian)
    if header != "minimal":  # DX: IDENTITY for MONOCHROME2, INVERSE for MONOCHROME1 (the same, single inversion)
        ds.PresentationLUTShape = "INVERSE" if photometric == "MONOCHROME1" else "IDENTITY"
    if rescale is not None:
        ds.RescaleSlope, ds.RescaleIntercept = rescale
    elif header != "minimal":
        ds.RescaleSlope, ds.RescaleIntercept = 1, 0
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    for keyword, value in elements.items():
        setattr(ds, keyword, value)
    if syntax not in UNCOMPRESSED:
        _compress(ds, pixels, syntax, compression or {})
    for keyword in without:
        delattr(ds, keyword)
    return ds


def chest_xray_bytes(pixels: np.ndarray | None = None, **options: Any) -> bytes:
    """chest_xray_dicom(pixels, **options) as DICOM Part 10 bytes."""
    return dicom_file_bytes(chest_xray_dicom(pixels, **options))


def dicom_file_bytes(ds: Dataset) -> bytes:
    """A data set (with its file meta) as DICOM Part 10 bytes, in the transfer syntax its file meta names."""
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def _dx_header(ds: Dataset, messy: bool, study_uid: str | None, instance: int) -> None:
    """Patient, study, series, equipment and DX attributes of a frontal chest film."""
    ds.StudyInstanceUID = study_uid or generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientName = "Test^Chest"
    ds.SeriesNumber, ds.InstanceNumber = 1, instance
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.PresentationIntentType, ds.BodyPartExamined, ds.ViewPosition = "FOR PRESENTATION", "CHEST", "PA"
    ds.Manufacturer, ds.PatientOrientation, ds.ImageLaterality = "", ["L", "F"], "U"
    ds.BurnedInAnnotation, ds.LossyImageCompression = "NO", "00"
    ds.RescaleType = "US"
    ds.PixelIntensityRelationship, ds.PixelIntensityRelationshipSign = "LOG", 1
    ds.ContentDate, ds.ContentTime = "20240102", "101112"
    ds.DetectorType, ds.ImagerPixelSpacing, ds.PositionerType = "DIRECT", [0.143, 0.143], ""
    ds.AcquisitionContextSequence = Sequence([])
    chest = Dataset()  # PS3.16 CID 4031: Chest
    chest.CodeValue, chest.CodingSchemeDesignator, chest.CodeMeaning = "43799004", "SCT", "Chest"
    ds.AnatomicRegionSequence = Sequence([chest])
    if messy:  # what real exports look like: type 2 attributes absent, an age without its unit
        ds.PatientAge = "81"
        return
    ds.PatientBirthDate, ds.PatientSex, ds.PatientAge = "19430101", "F", "081Y"
    ds.StudyDate, ds.StudyTime, ds.ReferringPhysicianName = "20240102", "101010", ""
    ds.AccessionNumber, ds.StudyID = "ACC-0001", "1"


def _image_pixels(ds: Dataset, pixels: np.ndarray, photometric: str, bits_stored: int | None, big_endian: bool) -> None:
    """The Image Pixel module; the pixel bytes in the syntax's byte order (pydicom writes OW values as given)."""
    bits = 8 * pixels.dtype.itemsize
    stored = bits_stored or bits
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = bits, stored, stored - 1
    ds.PixelRepresentation = int(pixels.dtype.kind == "i")
    ds.PixelData = np.ascontiguousarray(pixels, dtype=pixels.dtype.newbyteorder(">" if big_endian else "<")).tobytes()


def _compress(ds: Dataset, pixels: np.ndarray, syntax: str, options: dict[str, Any]) -> None:
    """Encode the pixel data: JPEG Baseline with OpenCV (libjpeg; option `quality`), the rest with pydicom's
    encoders (RLE, JPEG-LS, JPEG 2000; options as ds.compress takes them)."""
    if syntax == JPEGBaseline8Bit:
        import cv2
        from pydicom.encaps import encapsulate

        if pixels.dtype != np.uint8:
            raise ValueError("JPEG Baseline holds 8-bit pixels: pass uint8")
        ok, jpeg = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, int(options.get("quality", 95))])
        if not ok:
            raise ValueError("OpenCV could not encode the pixels as JPEG")
        ds.PixelData = encapsulate([jpeg.tobytes()])
        ds["PixelData"].VR = "OB"
        ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    else:
        ds.compress(syntax, **options)
    if "LossyImageCompression" in ds and syntax in LOSSY:
        ds.LossyImageCompression = "01"
