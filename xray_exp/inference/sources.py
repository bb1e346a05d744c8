"""`source=` -> the image files to predict on: a file, a folder (recursively), a glob, or a list file.

    find_inputs("/data/unlabelled")       # every .png/.jpg/.jpeg/.dcm/.dicom (and extension-less DICOM) below it
    find_inputs("/data/*.dcm")            # a glob (** recurses)
    find_inputs("/data/batch.txt")        # a list file: one path per line (relative to the list's folder), # comments

Each input gets a stable name (its path relative to the folder or list it came from), used as the `image`
column, for resuming and for the names of annotated PNGs and SR files.
"""

from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path

from xray_exp.errors import DatasetError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".dcm", ".dicom")
LIST_SUFFIXES = (".txt", ".lst", ".list")


@dataclass(frozen=True)
class Input:
    path: Path
    name: str  # stable, relative name: the `image` column

    @property
    def stem(self) -> str:
        """A flat file name for outputs: 'a/b/c.dcm' -> 'a__b__c'."""
        return "__".join(Path(self.name).with_suffix("").parts) or "image"


def _is_dicom_file(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            head = f.read(132)
    except OSError:
        return False
    return head[128:132] == b"DICM"


def _is_image(path: Path) -> bool:
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return True
    return path.suffix == "" and _is_dicom_file(path)


def _folder(root: Path) -> list[Input]:
    files = sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".") and _is_image(p))
    return [Input(p, p.relative_to(root).as_posix()) for p in files]


def _list_file(path: Path) -> list[Input]:
    out = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        entry = line.split("#", 1)[0].strip()
        if not entry:
            continue
        item = Path(entry).expanduser()
        item = item if item.is_absolute() else path.parent / item
        if item.is_dir():
            raise DatasetError(f"{path} line {number}: {entry} is a folder; a list file names image files")
        out.append(Input(item, entry))
    return out


def find_inputs(source: str) -> list[Input]:
    """The inputs `source` names, sorted and without duplicates; DatasetError when it names nothing."""
    text = str(source).strip()
    if not text:
        raise DatasetError("source= is empty. Fix: source=<image | folder | 'glob/*.dcm' | list.txt>")
    path = Path(text).expanduser()
    if any(ch in text for ch in "*?["):
        matches = sorted(Path(p) for p in glob.glob(str(path), recursive=True))
        fixed = [part for part in iter_until_glob(path.parts)]
        base = Path(*fixed) if fixed else Path(".")
        inputs = [Input(p, _relative(p, base)) for p in matches if p.is_file()]
    elif path.is_dir():
        inputs = _folder(path)
    elif path.is_file() and path.suffix.lower() in LIST_SUFFIXES:
        inputs = _list_file(path)
    elif path.is_file():
        inputs = [Input(path, path.name)]
    else:
        raise DatasetError(
            f"source={text}: no such file or folder. Fix: source=<image | folder | 'glob/*.dcm' | list.txt>"
        )
    unique: dict[str, Input] = {}
    for item in inputs:
        unique.setdefault(item.name, item)
    if not unique:
        raise DatasetError(f"source={text}: no PNG, JPEG or DICOM files found")
    return list(unique.values())


def iter_until_glob(parts):
    """The leading path parts without glob characters (the folder a glob's names are relative to)."""
    for part in parts:
        if any(ch in part for ch in "*?["):
            return
        yield part


def _relative(path: Path, base: Path) -> str:
    try:
        return path.relative_to(base).as_posix()
    except ValueError:
        return path.as_posix()
