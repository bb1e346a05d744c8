"""The classifier's dataset, derived from a prepared (YOLO-format) detection dataset: an image with any box is
`abnormal`, an image without one (empty or no label file) `normal`. Same images, same (patient-level) splits,
in Ultralytics' classify layout, made of hard links (symbolic links across file systems), never copies.

    root = classify_dataset(info, "outputs/.cache/classify")   # info: xray_exp.data.validate.DatasetInfo
    # root/{train,val,test}/{abnormal,normal}/<image>, root/classify.json: counts per split and class
    python -m xray_exp.train task=classify model=yolo12n dataset=nih_cxr14

Built once per dataset fingerprint (a rebuilt dataset gets a new folder); written to a temporary folder
and renamed, so a killed build leaves nothing half-made behind.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from xray_exp.data.validate import label_path

CLASSES = ("abnormal", "normal")  # Ultralytics (ImageFolder) numbers the classes in this (alphabetical) order
MANIFEST = "classify.json"


def is_abnormal(image: Path) -> bool:
    """Whether the image's YOLO label file holds at least one box."""
    label = label_path(Path(image))
    return label.is_file() and any(line.strip() for line in label.read_text().splitlines())


def link(src: Path, dst: Path) -> str:
    """A hard link dst -> src; a symbolic link where hard links fail (another file system). Returns which."""
    try:
        os.link(src, dst)
        return "hard"
    except OSError:
        os.symlink(src.resolve(), dst)
        return "symbolic"


def derive_split(images: list[Path], split_dir: Path) -> tuple[dict[str, int], set[str]]:
    """Link one split's images into split_dir/<class>/; returns the counts per class and the link kinds."""
    counts, kinds, seen = dict.fromkeys(CLASSES, 0), set(), set()
    for cls in CLASSES:
        (split_dir / cls).mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(images):
        cls = CLASSES[0] if is_abnormal(image) else CLASSES[1]
        name = image.name if image.name not in seen else f"{i}_{image.name}"
        seen.add(name)
        kinds.add(link(Path(image), split_dir / cls / name))
        counts[cls] += 1
    return counts, kinds


def classify_dataset(info, out_root: str | Path) -> Path:
    """The classify folder of a validated detection dataset (built on first use; see the module doc)."""
    root = Path(out_root) / info.fingerprint[:16]
    if (root / MANIFEST).is_file():
        return root
    tmp = root.with_name(f"{root.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        counts, kinds = {}, set()
        for split, images in info.splits.items():
            counts[split], split_kinds = derive_split(list(images), tmp / split)
            kinds |= split_kinds
        (tmp / MANIFEST).write_text(
            json.dumps(
                {
                    "source": str(info.data_yaml),
                    "fingerprint": info.fingerprint,
                    "classes": list(CLASSES),
                    "rule": "abnormal = the image has at least one box",
                    "links": sorted(kinds),
                    "counts": counts,
                },
                indent=2,
            )
        )
        if root.exists():  # another process built it meanwhile
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            os.replace(tmp, root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return root


def class_counts(root: str | Path) -> dict[str, dict[str, int]]:
    return json.loads((Path(root) / MANIFEST).read_text())["counts"]
