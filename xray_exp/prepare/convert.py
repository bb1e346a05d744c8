"""Convert one image (runs in worker processes): decode -> clip/fuse boxes -> resize -> PNG + YOLO label.

    result = convert_image(ConvertTask("img1", "/data/train/img1.dicom", "out/images/train/img1.png",
                                       "out/labels/train/img1.txt", boxes, readers, longest_side=1024))

Never raises for a bad image: problems come back in `result.issues`. Files are written to a temporary
name and moved into place (os.replace), so a killed run leaves no half-written image or label.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from xray_exp.imaging import DEFAULT_LIMITS, DecodeLimits, ImageTooLarge, decode_bitmap, decode_dicom, is_dicom_bytes
from xray_exp.imaging.dicom_decode import read_dataset
from xray_exp.prepare.boxes import clip_box, resized_shape, round_box, scale_box, to_yolo_line
from xray_exp.prepare.fusion import fuse_boxes
from xray_exp.prepare.readers import keep_min_readers, reader_counts
from xray_exp.prepare.records import BOX_OUTSIDE, CORRUPT_IMAGE, IMAGE_TOO_LARGE, Issue, RawBox

DICOM_SUFFIXES = (".dcm", ".dicom")
PLACEHOLDER_PATIENT_IDS = {"", "anonymous", "anon", "unknown", "none", "n/a", "na", "0", "patient"}


@dataclass(frozen=True)
class ConvertTask:
    image_id: str
    source: str
    image_out: str
    label_out: str
    boxes: tuple[RawBox, ...]
    readers: tuple[str, ...]
    longest_side: int | None = 1024
    fusion_method: str = "wbf"
    iou_thr: float = 0.4
    skip_box_thr: float = 0.0
    png_compression: int = 1
    limits: DecodeLimits = DEFAULT_LIMITS
    min_readers: int = 1  # fusion.min_readers (xray_exp.prepare.readers)


@dataclass
class ConvertResult:
    image_id: str
    ok: bool
    issues: list[Issue] = field(default_factory=list)
    source_size: tuple[int, int] = (0, 0)  # width, height of the decoded source
    size: tuple[int, int] = (0, 0)  # width, height written
    boxes: list[tuple[int, tuple[float, float, float, float]]] = field(default_factory=list)  # output pixels
    raw_boxes: int = 0
    clipped: int = 0
    dicom: dict = field(default_factory=dict)  # photometric, bits_stored
    box_readers: list[int] = field(default_factory=list)  # readers who drew each kept box (label order)
    dropped_min_readers: int = 0  # fused boxes fewer than min_readers readers drew


def decode_source(path: str | Path, limits: DecodeLimits = DEFAULT_LIMITS) -> tuple[np.ndarray, dict]:
    """A DICOM or bitmap file -> (uint8 grayscale, DICOM header info or {}), within `limits`."""
    data = Path(path).read_bytes()
    if is_dicom_bytes(data) or str(path).lower().endswith(DICOM_SUFFIXES):
        image, info = decode_dicom(data, limits)
        return image, info
    return decode_bitmap(data, limits), {}


def read_patient_id(path: str, limits: DecodeLimits = DEFAULT_LIMITS) -> tuple[str | None, str | None]:
    """PatientID from a DICOM header without reading pixels -> (patient id or None, error or None).

    Placeholders of anonymised data ("", "ANONYMOUS", "0", ...) count as absent. A Deflated file is
    inflated with the decompressed-bytes bound; over it, no id here (convert_image reports the image).
    """
    try:
        header = read_dataset(Path(path).read_bytes(), limits, stop_before_pixels=True)
    except ImageTooLarge:
        return None, None
    except Exception as exc:  # pydicom raises many types for broken files
        return None, f"{path}: unreadable DICOM header: {exc}"
    patient = str(header.get("PatientID", "") or "").strip()
    return (None if patient.casefold() in PLACEHOLDER_PATIENT_IDS else patient), None


def atomic_write(path: str | Path, data: bytes) -> None:
    """Write to `.<name>.<pid>.tmp` next to `path`, then rename over it."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def convert_image(task: ConvertTask) -> ConvertResult:
    import cv2

    result = ConvertResult(task.image_id, ok=False, raw_boxes=len(task.boxes))
    try:
        image, info = decode_source(task.source, task.limits)
    except ImageTooLarge as exc:
        result.issues.append(Issue(IMAGE_TOO_LARGE, f"{task.source}: {exc}", task.image_id))
        return result
    except Exception as exc:  # any decoder failure is a corrupt image, never a crash
        result.issues.append(Issue(CORRUPT_IMAGE, f"{task.source}: {type(exc).__name__}: {exc}", task.image_id))
        return result
    result.dicom = {k: info[k] for k in ("photometric", "bits_stored") if k in info}
    height, width = image.shape[:2]
    result.source_size = (width, height)

    inside = []
    for box in task.boxes:
        clipped, was_clipped = clip_box((box.x1, box.y1, box.x2, box.y2), width, height)
        if clipped is None:
            where = f"box ({box.x1:g}, {box.y1:g}, {box.x2:g}, {box.y2:g})"
            result.issues.append(
                Issue(
                    BOX_OUTSIDE,
                    f"{task.source}: {where} is outside the {width}x{height} image",
                    task.image_id,
                )
            )
            continue
        result.clipped += was_clipped
        inside.append((box.class_id, clipped, box.reader))
    if task.boxes and not inside:  # every finding lost: not a normal image, leave it out
        return result

    fused = fuse_boxes(inside, task.readers, width, height, task.fusion_method, task.iou_thr, task.skip_box_thr)
    n_readers = len(set(task.readers) | {r for _, _, r in inside})
    fused, counts, result.dropped_min_readers = keep_min_readers(
        fused, reader_counts(fused, inside, task.iou_thr), n_readers, task.min_readers
    )
    if result.dropped_min_readers and not fused:  # no finding kept: not a normal image, leave it out
        return result
    result.box_readers = counts
    out_w, out_h = resized_shape(width, height, task.longest_side)
    if (out_w, out_h) != (width, height):
        image = cv2.resize(image, (out_w, out_h), interpolation=cv2.INTER_AREA)
    sx, sy = out_w / width, out_h / height
    result.boxes = [(c, round_box(scale_box(box, sx, sy))) for c, box, _ in fused]
    lines = [to_yolo_line(c, box, out_w, out_h) for c, box in result.boxes]

    ok, png = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, int(task.png_compression)])
    if not ok:
        result.issues.append(Issue(CORRUPT_IMAGE, f"{task.source}: PNG encoding failed", task.image_id))
        return result
    atomic_write(task.image_out, png.tobytes())
    atomic_write(task.label_out, "".join(line + "\n" for line in lines).encode())
    result.size = (out_w, out_h)
    result.ok = True
    return result
