"""Check a YOLO-format dataset before training: every problem listed, with the file and the fix.

python -m xray_exp.data.validate path/to/data.yaml
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from xray_exp.errors import DatasetError

IMAGE_SUFFIXES = {".bmp", ".dng", ".jpeg", ".jpg", ".mpo", ".png", ".tif", ".tiff", ".webp"}
REQUIRED_SPLITS = ("train", "val")
MAX_LISTED = 20


@dataclass
class DatasetInfo:
    """What validation found: absolute image paths per split, class names, fingerprint."""

    data_yaml: Path
    root: Path
    names: dict[int, str]
    splits: dict[str, list[Path]] = field(default_factory=dict)
    instances: dict[str, int] = field(default_factory=dict)
    fingerprint: str = ""

    @property
    def has_test(self) -> bool:
        return bool(self.splits.get("test"))


def label_path(image: Path) -> Path:
    """Ultralytics' convention: the last /images/ in the path becomes /labels/, suffix .txt."""
    s = str(image)
    sa, sb = f"{os.sep}images{os.sep}", f"{os.sep}labels{os.sep}"
    if sa in s:
        head, _, tail = s.rpartition(sa)
        s = head + sb + tail
    return Path(s).with_suffix(".txt")


def load_data_yaml(data_yaml: str | Path) -> tuple[dict, Path]:
    """Parse a data.yaml; return it and the dataset root its relative paths resolve against."""
    data_yaml = Path(data_yaml).expanduser().resolve()
    if not data_yaml.is_file():
        raise DatasetError(
            f"{data_yaml}: data.yaml not found. Fix: set dataset.data_yaml to an existing file "
            "(or use dataset=synthetic)."
        )
    try:
        data = yaml.safe_load(data_yaml.read_text()) or {}
    except yaml.YAMLError as exc:
        raise DatasetError(f"{data_yaml}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise DatasetError(f"{data_yaml}: expected a mapping with train/val/names keys")
    root = Path(data.get("path") or ".")
    if not root.is_absolute():
        root = (data_yaml.parent / root).resolve()
    return data, root


def parse_names(data: dict, data_yaml: Path) -> dict[int, str]:
    names = data.get("names")
    if isinstance(names, list):
        names = dict(enumerate(names))
    if not isinstance(names, dict) or not names:
        raise DatasetError(f"{data_yaml}: field 'names' is missing or empty. Fix: add `names: {{0: nodule, ...}}`.")
    try:
        names = {int(k): str(v) for k, v in names.items()}
    except (TypeError, ValueError) as exc:
        raise DatasetError(f"{data_yaml}: field 'names' keys must be class ids 0..nc-1") from exc
    if sorted(names) != list(range(len(names))):
        raise DatasetError(f"{data_yaml}: field 'names' ids must be 0..{len(names) - 1}, got {sorted(names)}")
    return names


def list_split_images(entry, root: Path) -> tuple[list[Path], list[str]]:
    """Images of one split entry (a folder, a .txt list, or a list of those)."""
    problems: list[str] = []
    images: list[Path] = []
    for item in entry if isinstance(entry, list) else [entry]:
        path = Path(str(item))
        path = path if path.is_absolute() else root / path
        if path.is_dir():
            images += sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        elif path.is_file() and path.suffix == ".txt":
            for line in path.read_text().splitlines():
                if line.strip():
                    p = Path(line.strip())
                    images.append(p if p.is_absolute() else (path.parent / p).resolve())
        else:
            problems.append(f"{path}: folder not found")
    return images, problems


def check_image(image: Path) -> str | None:
    """None if the image opens and verifies, else the reason."""
    from PIL import Image

    try:
        with Image.open(image) as im:
            im.verify()
            if im.size[0] < 1 or im.size[1] < 1:
                return "zero-size image"
    except FileNotFoundError:
        return "file not found"
    except Exception as exc:  # PIL raises many types for broken files
        return f"unreadable image ({type(exc).__name__}: {exc})"
    return None


def check_label_text(text: str, nc: int) -> tuple[int, list[str]]:
    """Count instances in YOLO label text and describe each bad line ('line N: ...')."""
    problems, count = [], 0
    for n, line in enumerate(text.splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 5:
            problems.append(f"line {n}: expected 5 values 'class xc yc w h', got {len(parts)}")
            continue
        try:
            cls, *coords = float(parts[0]), *map(float, parts[1:])
        except ValueError:
            problems.append(f"line {n}: non-numeric value in {line.strip()!r}")
            continue
        if not cls.is_integer() or not 0 <= cls < nc:
            problems.append(f"line {n}: class id {parts[0]} outside 0..{nc - 1}")
        if any(not 0.0 <= c <= 1.0 for c in coords):
            problems.append(f"line {n}: coordinates {parts[1:]} outside [0, 1] (labels must be normalised)")
        elif coords[2] <= 0 or coords[3] <= 0:
            problems.append(f"line {n}: zero-size box")
        count += 1
    return count, problems


def validate_dataset(data_yaml: str | Path, check_images: bool = True) -> DatasetInfo:
    """Validate a data.yaml and everything it points to; raise DatasetError listing every problem."""
    data, root = load_data_yaml(data_yaml)
    data_yaml = Path(data_yaml).expanduser().resolve()
    names = parse_names(data, data_yaml)
    info = DatasetInfo(data_yaml=data_yaml, root=root, names=names)
    problems: list[str] = []
    digest = hashlib.sha256()
    for split in ("train", "val", "test"):
        if data.get(split) in (None, ""):
            if split in REQUIRED_SPLITS:
                problems.append(f"{data_yaml}: field '{split}' is missing")
            continue
        images, split_problems = list_split_images(data[split], root)
        problems += [f"{split}: {p}" for p in split_problems]
        if not images and not split_problems:
            problems.append(f"{split}: no images found under {data[split]!r} (root {root})")
        info.splits[split], info.instances[split] = images, 0
        for image in images:
            if check_images and (reason := check_image(image)):
                problems.append(f"{image}: {reason}")
            lbl = label_path(image)
            text = lbl.read_text() if lbl.is_file() else ""
            count, bad = check_label_text(text, len(names))
            info.instances[split] += count
            problems += [f"{lbl}: {b}" for b in bad]
            digest.update(f"{split}\0{image.relative_to(root) if image.is_relative_to(root) else image}\0".encode())
            digest.update(text.encode())
    if problems:
        listed = "\n  ".join(problems[:MAX_LISTED])
        more = f"\n  ... and {len(problems) - MAX_LISTED} more" if len(problems) > MAX_LISTED else ""
        raise DatasetError(
            f"dataset {data_yaml} has {len(problems)} problem(s):\n  {listed}{more}\n"
            "Fix the files listed (labels: 'class xc yc w h', class ids 0..nc-1, coordinates normalised to "
            "[0, 1]) or remove them, then run again."
        )
    digest.update(repr(sorted(names.items())).encode())
    info.fingerprint = digest.hexdigest()
    return info


def main(argv: list[str] | None = None) -> int:
    import argparse
    import sys

    parser = argparse.ArgumentParser(description="Validate a YOLO-format dataset (data.yaml).")
    parser.add_argument("data_yaml")
    args = parser.parse_args(argv)
    try:
        info = validate_dataset(args.data_yaml)
    except DatasetError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 2
    for split, images in info.splits.items():
        print(f"{split:5s} {len(images):6d} images {info.instances[split]:7d} boxes")
    print(f"classes {len(info.names)}  fingerprint {info.fingerprint[:16]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
