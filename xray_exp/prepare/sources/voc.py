"""Pascal VOC importer: one XML per image (Annotations/*.xml) + image files -> image records.

    python -m xray_exp.prepare dataset=voc source=/data/export       # Annotations/ + JPEGImages/ (or images/)

    <annotation><filename>a.png</filename>
      <object><name>Nodule</name><difficult>0</difficult>
        <bndbox><xmin>120</xmin><ymin>340</ymin><xmax>260</xmax><ymax>470</ymax></bndbox></object>
    </annotation>

The image is `<filename>` (else the XML's own name) under an image_dirs folder. An XML without objects is an
image without findings. `difficult` objects are kept or dropped (dataset.voc_difficult); an image whose only
findings were dropped is left out, not made a background image. XML from a labelling tool is semi-trusted:
a DOCTYPE (DTD, entities) is refused, as is a file over 16 MiB; an XML that does not parse is a
`malformed_annotation` issue naming the file, line and column.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from xml.parsers import expat

from xray_exp.prepare.config import SourceDatasetConfig, VocDifficult
from xray_exp.prepare.records import (
    BAD_BOX,
    DUPLICATE_ANNOTATION,
    MALFORMED_ANNOTATION,
    ImageRecord,
    Issue,
    IssueLog,
    PrepareError,
)
from xray_exp.prepare.sources.common import resolve
from xray_exp.prepare.sources.export import ExportImage, Mark, export_records, image_id_for, resolve_classes

MAX_XML_BYTES = 16 * 1024 * 1024
BOX_TAGS = ("xmin", "ymin", "xmax", "ymax")


class RefusedXml(ValueError):
    """An annotation XML with a DOCTYPE, or too large."""


def parse_untrusted_xml(data: bytes) -> ET.Element:
    """Parse XML that may come from anywhere: no DTD, no entity declarations, bounded size.

    Expat reads the document first with handlers that refuse a DOCTYPE or entity; only then ElementTree
    builds the tree. Raises RefusedXml, or expat.ExpatError for XML that is not well-formed.
    """
    if len(data) > MAX_XML_BYTES:
        raise RefusedXml(f"{len(data)} bytes, over the {MAX_XML_BYTES} byte limit for an annotation file")

    def refuse(*_args):
        raise RefusedXml("has a DOCTYPE/entity declaration; DTDs and entities are refused in annotation files")

    scanner = expat.ParserCreate()
    scanner.StartDoctypeDeclHandler = refuse
    scanner.EntityDeclHandler = refuse
    scanner.ExternalEntityRefHandler = refuse
    scanner.Parse(data, True)
    return ET.fromstring(data)


def _child_text(node: ET.Element | None, tag: str) -> str:
    child = node.find(tag) if node is not None else None
    return (child.text or "").strip() if child is not None else ""


def _one_based(coords: dict[str, object]) -> dict[str, object]:
    """The devkit's 1-based pixel indices -> pixel edges: xmin - 1, ymin - 1 (non-numbers left for the check)."""
    out = dict(coords)
    for tag in ("xmin", "ymin"):
        try:
            out[tag] = float(str(out[tag])) - 1
        except ValueError:
            pass
    return out


def read_xml(path: Path, where: str, ds: SourceDatasetConfig, log: IssueLog) -> tuple[ExportImage, list[Mark]] | None:
    try:
        root = parse_untrusted_xml(path.read_bytes())
    except (RefusedXml, expat.ExpatError) as exc:
        log.add(Issue(MALFORMED_ANNOTATION, f"{where}: not a usable XML file: {exc}", path.stem))
        return None
    if root.tag != "annotation":
        log.add(Issue(MALFORMED_ANNOTATION, f"{where}: the root element is <{root.tag}>, not <annotation>", path.stem))
        return None
    file_name = _child_text(root, "filename") or path.stem
    image_id = image_id_for(file_name, ds)
    if image_id is None:
        message = f"{where}: <filename> {file_name!r} is not a path inside the image folders"
        log.add(Issue(MALFORMED_ANNOTATION, message, path.stem))
        return None
    image = ExportImage(image_id, where, file_name, alternatives=(path.stem,) if file_name != path.stem else ())
    marks = []
    for k, obj in enumerate(root.findall("object"), start=1):
        place = f"{where} object {k}"
        if _child_text(obj, "difficult").casefold() in ("1", "true") and ds.voc_difficult == VocDifficult.drop:
            log.notes["difficult_dropped"] += 1
            image.held_back += 1
            continue
        box = obj.find("bndbox")
        if box is None:
            log.add(Issue(BAD_BOX, f"{place}: no <bndbox>", image_id))
            continue
        coords: dict[str, object] = {tag: _child_text(box, tag) for tag in BOX_TAGS}
        marks.append(
            Mark(image_id, _child_text(obj, "name"), _one_based(coords) if ds.voc_one_based else coords, place)
        )
    return image, marks


def load_voc(source: Path, ds: SourceDatasetConfig, log: IssueLog, seed: int) -> list[ImageRecord]:
    folder = resolve(source, ds.annotations)
    if not folder.is_dir():
        raise PrepareError(f"dataset.annotations: {folder} is not a folder of VOC XML files (source={source})")
    paths = sorted(p for p in folder.glob("*.xml") if p.is_file())
    if not paths:
        raise PrepareError(f"dataset.annotations: no *.xml file in {folder}")
    images: dict[str, ExportImage] = {}
    marks: list[Mark] = []
    for path in paths:
        read = read_xml(path, f"{ds.annotations}/{path.name}", ds, log)
        if read is None:
            continue
        image, image_marks = read
        if image.image_id in images:
            message = f"{image.where}: names the same image as {images[image.image_id].where}; skipped"
            log.add(Issue(DUPLICATE_ANNOTATION, message, image.image_id))
            continue
        images[image.image_id] = image
        marks += image_marks
    resolve_classes(ds, sorted({m.label for m in marks}, key=str.casefold), ds.annotations)
    return export_records(source, images, marks, ds, log, seed)
