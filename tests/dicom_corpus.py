"""Real DICOMs for the decoding, SR, predict and PACS tests: pydicom's own test files, and NIH chest X-rays made
into DICOMs by the package's one builder (xray_exp.data.synthetic_dicom), per transfer syntax.

    pydicom_file("CT_small.dcm")   # a path inside pydicom's wheel (get_testdata_file resolves it offline)
    nih_pixels(3, size=256)        # (name, uint8 grey) of an NIH radiograph of ../shared (a synthetic film without it)
    nih_dicom("j2k-lossless")      # that radiograph as DICOM bytes in one syntax (LOSSLESS_NIH, LOSSY_NIH)
    dciodvfy_errors(path)          # dciodvfy's "Error" lines (None when dicom3tools is not installed)
"""

from __future__ import annotations

import shutil
import subprocess
from functools import cache
from pathlib import Path

import cv2
import numpy as np
from pydicom.uid import (
    JPEG2000,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLSLossless,
    RLELossless,
)

from xray_exp.data.synthetic_dicom import chest_xray_bytes

NIH_IMAGES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "nih-cxr14-bbox" / "images"

# name -> transfer syntax UID it must carry (the test checks both: the file is what its name says)
PYDICOM_FILES = {
    "MR_small.dcm": "1.2.840.10008.1.2.1",  # explicit VR little endian
    "MR_small_implicit.dcm": "1.2.840.10008.1.2",
    "MR_small_bigendian.dcm": "1.2.840.10008.1.2.2",
    "MR_small_RLE.dcm": "1.2.840.10008.1.2.5",
    "MR_small_jpeg_ls_lossless.dcm": "1.2.840.10008.1.2.4.80",
    "JPEGLSNearLossless_16.dcm": "1.2.840.10008.1.2.4.81",
    "MR_small_jp2klossless.dcm": "1.2.840.10008.1.2.4.90",
    "J2K_pixelrep_mismatch.dcm": "1.2.840.10008.1.2.4.90",
    "JPEG2000.dcm": "1.2.840.10008.1.2.4.91",  # lossy
    "693_J2KI.dcm": "1.2.840.10008.1.2.4.91",  # lossy, Pixel Padding Value -2000
    "JPGExtended.dcm": "1.2.840.10008.1.2.4.51",  # 12-bit JPEG Extended
    "SC_rgb_jpeg_gdcm.dcm": "1.2.840.10008.1.2.4.70",  # JPEG Lossless process 14 SV1
    "SC_rgb_jpeg.dcm": "1.2.840.10008.1.2.4.50",  # JPEG Baseline
    "image_dfl.dcm": "1.2.840.10008.1.2.1.99",  # Deflated
    "CT_small.dcm": "1.2.840.10008.1.2.1",
    "SC_rgb_rle_2frame.dcm": "1.2.840.10008.1.2.5",  # multi-frame
    "examples_ybr_color.dcm": "1.2.840.10008.1.2.4.50",  # 30 frames, YBR_FULL_422
}
# the same 64x64 MR slice in six syntaxes: lossless decoders must agree pixel for pixel
MR_SMALL_FAMILY = (
    "MR_small.dcm",
    "MR_small_implicit.dcm",
    "MR_small_bigendian.dcm",
    "MR_small_RLE.dcm",
    "MR_small_jpeg_ls_lossless.dcm",
    "MR_small_jp2klossless.dcm",
)
LOSSLESS_NIH = ("explicit", "implicit", "big-endian", "deflated", "rle", "jpeg-ls", "j2k-lossless")
LOSSY_NIH = ("j2k-lossy", "jpeg-baseline")


def pydicom_file(name: str) -> Path:
    from pydicom.data import get_testdata_file

    path = get_testdata_file(name)
    assert path, f"{name} is not in the installed pydicom's test data"
    return Path(path)


def synthetic_film(size: int = 512, seed: int = 0) -> np.ndarray:
    """A synthetic chest film as smooth as a radiograph: xray_exp.data.synthetic's film without its grain
    (Gaussian blur, sigma 1 px). Its noise-like grain is what a lossy codec cannot keep: JPEG 2000 at ratio 20
    gives PSNR 36.8 dB on the grainy film, 50 dB on this one (50.5 dB on the NIH radiograph)."""
    from xray_exp.serve.demo_model import synthetic_images

    return cv2.GaussianBlur(synthetic_images(1, size=size, seed=seed)[0], (0, 0), 1.0)


def nih_pixels(index: int = 0, size: int | None = 512) -> tuple[str, np.ndarray]:
    """(name, uint8 grey) of a real NIH radiograph (downscaled to `size`), or a synthetic film without ../shared."""
    paths = sorted(NIH_IMAGES.glob("*.png")) if NIH_IMAGES.is_dir() else []
    if paths:
        path = paths[index % len(paths)]
        gray = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if size:
            gray = cv2.resize(gray, (size, size), interpolation=cv2.INTER_AREA)
        return path.name, gray
    return f"synthetic-{index}", synthetic_film(size or 512, seed=index)


# the NIH radiograph's syntaxes: kind -> (transfer syntax, encoder options)
NIH_SYNTAXES = {
    "explicit": (ExplicitVRLittleEndian, {}),
    "implicit": (ImplicitVRLittleEndian, {}),
    "big-endian": (ExplicitVRBigEndian, {}),
    "deflated": (DeflatedExplicitVRLittleEndian, {}),
    "rle": (RLELossless, {}),
    "jpeg-ls": (JPEGLSLossless, {}),
    "j2k-lossless": (JPEG2000Lossless, {}),
    "j2k-lossy": (JPEG2000, {"j2k_cr": [20]}),
    "jpeg-baseline": (JPEGBaseline8Bit, {"quality": 95}),  # libjpeg's (OpenCV's) codestream, encapsulated as it is
}


@cache
def nih_dicom(kind: str) -> bytes:
    """The first NIH radiograph, full size, as a DX DICOM in the syntax `kind` (LOSSLESS_NIH or LOSSY_NIH)."""
    return encode_as(nih_pixels(0, size=None)[1], kind)


def encode_as(pixels: np.ndarray, kind: str) -> bytes:
    """uint8 grey `pixels` as a DX DICOM in the syntax `kind` (LOSSLESS_NIH or LOSSY_NIH)."""
    syntax, options = NIH_SYNTAXES[kind]
    return chest_xray_bytes(pixels, syntax=syntax, compression=options)


def dciodvfy_errors(path: Path) -> list[str] | None:
    """dciodvfy's error lines for a file (None when dicom3tools is not installed)."""
    if shutil.which("dciodvfy") is None:
        return None
    proc = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=60)
    return [line for line in (proc.stdout + proc.stderr).splitlines() if line.startswith("Error")]
