"""Synthetic VinDr-CXR-style sources (DICOMs + train.csv) for tests and the benchmark.

    from xray_exp.prepare.fake_sources import make_vindr_source
    info = make_vindr_source("/tmp/vindr", images=12, corrupt=1, missing=1)
    # /tmp/vindr/train.csv, /tmp/vindr/train/<id>.dicom|.dcm: 12- and 16-bit, MONOCHROME1 and 2,
    # 3 readers per image with jittered boxes, some "No finding" images and two-image patients.

Findings are bright ellipses inside their box (bright after MONOCHROME1 inversion too), so a test can check
that pixels and labels line up.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from xray_exp.data.synthetic_dicom import chest_xray_bytes

VINDR_CLASSES = (
    "Aortic enlargement",
    "Atelectasis",
    "Calcification",
    "Cardiomegaly",
    "Consolidation",
    "ILD",
    "Infiltration",
    "Lung Opacity",
    "Nodule/Mass",
    "Other lesion",
    "Pleural effusion",
    "Pleural thickening",
    "Pneumothorax",
    "Pulmonary fibrosis",
)
NO_FINDING = "No finding"
HEADER = ("image_id", "class_name", "class_id", "rad_id", "x_min", "y_min", "x_max", "y_max")


@dataclass
class SyntheticSource:
    root: Path
    image_ids: list[str] = field(default_factory=list)  # every id in train.csv
    normal_ids: list[str] = field(default_factory=list)
    corrupt_ids: list[str] = field(default_factory=list)
    missing_ids: list[str] = field(default_factory=list)
    patients: dict[str, str] = field(default_factory=dict)  # image id -> PatientID in the header
    findings: dict[str, list[tuple[int, tuple[int, int, int, int]]]] = field(default_factory=dict)  # true boxes
    formats: dict[str, tuple[int, str]] = field(default_factory=dict)  # image id -> (bits stored, photometric)


def render(size: tuple[int, int], boxes, max_value: int, rng: np.random.Generator) -> np.ndarray:
    """A dim noisy gradient with a bright ellipse in every box; values in [0, max_value]."""
    width, height = size
    image = rng.standard_normal((height, width), dtype=np.float32) * 0.02
    image += np.linspace(0.15, 0.3, height, dtype=np.float32)[:, None]
    for _, (x1, y1, x2, y2) in boxes:
        y, x = np.ogrid[y1:y2, x1:x2]
        cx, cy, rx, ry = (x1 + x2) / 2, (y1 + y2) / 2, max((x2 - x1) / 2, 1), max((y2 - y1) / 2, 1)
        image[y1:y2, x1:x2][((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 <= 1] = 0.9
    return np.clip(image * max_value, 0, max_value).astype(np.uint16)


def make_vindr_source(
    root: str | Path,
    images: int = 12,
    size: tuple[int, int] = (256, 320),
    readers: int = 3,
    normal_fraction: float = 0.25,
    corrupt: int = 0,
    missing: int = 0,
    seed: int = 0,
) -> SyntheticSource:
    """Write `images` DICOMs + train.csv under `root`; `corrupt` of them truncated, `missing` not written."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    (root / "train").mkdir(parents=True, exist_ok=True)
    info = SyntheticSource(root)
    width, height = size
    rows = []
    for i in range(images):
        image_id = f"{seed:02d}{i:04d}{int(rng.integers(0, 2**62)):024x}"
        info.image_ids.append(image_id)
        info.patients[image_id] = f"PAT{seed:02d}{i // 3 * 2 + (i % 3 == 2):05d}"  # images 0+1, 3+4, ...
        bits, photometric = (12, 16)[i % 2], ("MONOCHROME2", "MONOCHROME1")[(i // 2) % 2]
        info.formats[image_id] = (bits, photometric)
        normal = rng.random() < normal_fraction
        boxes = []
        if not normal:
            for _ in range(int(rng.integers(1, 3))):
                bw, bh = (
                    int(rng.integers(width // 8, width // 3)),
                    int(rng.integers(height // 8, height // 3)),
                )
                x1, y1 = int(rng.integers(0, width - bw)), int(rng.integers(0, height - bh))
                boxes.append((int(rng.integers(0, len(VINDR_CLASSES))), (x1, y1, x1 + bw, y1 + bh)))
        info.findings[image_id] = boxes
        reader_ids = [f"R{r}" for r in rng.choice(np.arange(1, 10), size=readers, replace=False)]
        for reader in reader_ids:
            if not boxes:
                rows.append((image_id, NO_FINDING, 14, reader, "", "", "", ""))
                continue
            for class_id, (x1, y1, x2, y2) in boxes:
                jitter = rng.integers(-3, 4, size=4)
                box = (
                    max(x1 + jitter[0], 0),
                    max(y1 + jitter[1], 0),
                    min(x2 + jitter[2], width),
                    min(y2 + jitter[3], height),
                )
                rows.append((image_id, VINDR_CLASSES[class_id], class_id, reader, *box))
        if normal:
            info.normal_ids.append(image_id)
        if i >= images - missing:
            info.missing_ids.append(image_id)
            continue
        pixels = render(size, boxes, 2**bits - 1, rng)
        if photometric == "MONOCHROME1":
            pixels = (2**bits - 1) - pixels
        window = (2**bits / 2, 2**bits) if i % 4 == 1 else None
        path = root / "train" / f"{image_id}{'.dcm' if i % 5 == 4 else '.dicom'}"
        dicom = chest_xray_bytes(
            pixels, bits_stored=bits, photometric=photometric, patient_id=info.patients[image_id], window=window
        )
        path.write_bytes(dicom)
        if images - missing - corrupt <= i < images - missing:
            data = path.read_bytes()
            path.write_bytes(data[: len(data) - width * height])  # header intact, pixel data cut short
            info.corrupt_ids.append(image_id)
    with open(root / "train.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        writer.writerows(rows)
    return info
