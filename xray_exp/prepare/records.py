"""What a source importer hands to the pipeline: images with their readers' boxes, and the problems found.

from xray_exp.prepare.records import ImageRecord, RawBox
ImageRecord("img1", "/data/train/img1.dicom", None, (RawBox(3, 10, 20, 300, 400, "R1"),), ("R1",))
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from xray_exp.errors import XrayExpError

# Problems that drop data; `strict=true` fails on the first of them.
UNKNOWN_CLASS = "unknown_class"  # a class name not in dataset.classes
BAD_BOX = "bad_box"  # empty, non-numeric, non-finite or inverted coordinates
ZERO_AREA = "zero_area"  # x_max == x_min or y_max == y_min
MALFORMED_ROW = "malformed_row"  # a CSV row with the wrong number of fields or no image id
MISSING_IMAGE = "missing_image"  # listed in the CSV, no file on disk
CORRUPT_IMAGE = "corrupt_image"  # the file cannot be decoded
IMAGE_TOO_LARGE = "image_too_large"  # over max_pixel_bytes / max_decompressed_bytes (refused before decoding)
BOX_OUTSIDE = "box_outside"  # entirely outside the image
MALFORMED_ANNOTATION = "malformed_annotation"  # an XML that does not parse, a COCO entry without its fields
DUPLICATE_ANNOTATION = "duplicate_annotation"  # the same class and box twice on one image (coco/csv/voc)
ISSUE_KINDS = (
    UNKNOWN_CLASS,
    BAD_BOX,
    ZERO_AREA,
    MALFORMED_ROW,
    MALFORMED_ANNOTATION,
    DUPLICATE_ANNOTATION,
    MISSING_IMAGE,
    CORRUPT_IMAGE,
    IMAGE_TOO_LARGE,
    BOX_OUTSIDE,
)


class PrepareError(XrayExpError, RuntimeError):
    """Preparation cannot go on (or `strict` met a problem); the message names the file and field."""


@dataclass(frozen=True)
class RawBox:
    """One reader's box in the source image's pixel coordinates (x1, y1) top-left, (x2, y2) bottom-right."""

    class_id: int
    x1: float
    y1: float
    x2: float
    y2: float
    reader: str = ""


@dataclass(frozen=True)
class ImageRecord:
    """An image to convert: its file, patient (None: read from DICOM or fall back to the image id), the
    readers' boxes (empty: a background image) and every reader that read it (fusion needs the count)."""

    image_id: str
    path: str
    patient_id: str | None
    boxes: tuple[RawBox, ...] = ()
    readers: tuple[str, ...] = ()

    @property
    def class_ids(self) -> frozenset[int]:
        return frozenset(b.class_id for b in self.boxes)


@dataclass(frozen=True)
class Issue:
    """A problem that dropped a box, a row or an image."""

    kind: str
    message: str
    image_id: str = ""

    def __str__(self) -> str:
        return f"{self.kind}: {self.message}"

    def to_dict(self) -> dict:
        return {"kind": self.kind, "image_id": self.image_id, "message": self.message}


@dataclass
class IssueLog:
    """Collects issues; with `strict` the first one raises PrepareError. `notes` counts what is worth
    knowing but loses nothing that was usable (clipped boxes, images without boxes, partial downloads)."""

    strict: bool = False
    issues: list[Issue] = field(default_factory=list)
    notes: Counter = field(default_factory=Counter)

    def add(self, issue: Issue) -> None:
        self.issues.append(issue)
        if self.strict:
            raise PrepareError(f"strict: {issue} (set strict=false to count and skip such problems)")

    def extend(self, issues) -> None:
        for issue in issues:
            self.add(issue)

    def counts(self) -> dict[str, int]:
        counts = Counter(issue.kind for issue in self.issues)
        return {kind: counts[kind] for kind in ISSUE_KINDS if counts[kind]}
