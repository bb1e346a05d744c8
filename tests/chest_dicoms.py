"""Chest X-ray DICOMs made for the SR, predict and PACS tests (no patient data: made-up names and UIDs).

chest_dx(pixels)                     # a clean DX For Presentation, MONOCHROME2, 8 or 16 bits
chest_dx(pixels, messy=True)         # as real exports are: no birth date, sex, study date/time, referring
                                     # physician, accession, study id; Patient's Age "81" (invalid AS)
dciodvfy_errors(path)                # dciodvfy's "Error" lines (None when dciodvfy is not installed)
"""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import DigitalXRayImageStorageForPresentation, ExplicitVRLittleEndian, generate_uid

NIH_IMAGES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "nih-cxr14-bbox" / "images"


def nih_pixels(index: int = 0, size: int | None = 512) -> tuple[str, np.ndarray]:
    """(name, uint8 grey) of a real NIH radiograph (downscaled to `size`), or a synthetic film without ../shared."""
    paths = sorted(NIH_IMAGES.glob("*.png")) if NIH_IMAGES.is_dir() else []
    if paths:
        path = paths[index % len(paths)]
        gray = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if size:
            gray = cv2.resize(gray, (size, size), interpolation=cv2.INTER_AREA)
        return path.name, gray
    from xray_exp.serve.demo_model import synthetic_images

    return f"synthetic-{index}", synthetic_images(1, size=size or 512, seed=index)[0]


def chest_dx(
    pixels: np.ndarray,
    messy: bool = False,
    study_uid: str | None = None,
    patient_id: str = "XR-TEST-01",
    instance: int = 1,
) -> Dataset:
    """A DX For Presentation dataset (file meta included) holding `pixels` (uint8 or uint16)."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = DigitalXRayImageStorageForPresentation
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = study_uid or generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientName, ds.PatientID = "Test^Chest", patient_id
    ds.Modality, ds.SeriesNumber, ds.InstanceNumber = "DX", 1, instance
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.PresentationIntentType, ds.BodyPartExamined, ds.ViewPosition = "FOR PRESENTATION", "CHEST", "PA"
    ds.Manufacturer, ds.PatientOrientation, ds.ImageLaterality = "", ["L", "F"], "U"
    ds.BurnedInAnnotation, ds.LossyImageCompression = "NO", "00"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    bits = 16 if pixels.dtype == np.uint16 else 8
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits, bits, bits - 1, 0
    ds.PresentationLUTShape, ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = "IDENTITY", 0, 1, "US"
    ds.ContentDate, ds.ContentTime = "20240102", "101112"
    ds.DetectorType = "DIRECT"
    ds.PixelData = np.ascontiguousarray(pixels).tobytes()
    if messy:  # what real exports look like: type 2 attributes absent, an age without its unit
        ds.PatientAge = "81"
    else:
        ds.PatientBirthDate, ds.PatientSex, ds.PatientAge = "19430101", "F", "081Y"
        ds.StudyDate, ds.StudyTime, ds.ReferringPhysicianName = "20240102", "101010", ""
        ds.AccessionNumber, ds.StudyID = "ACC-0001", "1"
    return ds


def dicom_bytes(ds: Dataset) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def dciodvfy_errors(path: Path) -> list[str] | None:
    """dciodvfy's error lines for a file (None when dicom3tools is not installed)."""
    if shutil.which("dciodvfy") is None:
        return None
    proc = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=60)
    return [line for line in (proc.stdout + proc.stderr).splitlines() if line.startswith("Error")]
