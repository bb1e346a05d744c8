"""Source importers: a downloaded dataset or a labelling tool's export -> ImageRecords + issues.

from xray_exp.prepare.sources import load_source
records = load_source(Path("/data/nih"), cfg.dataset, IssueLog(), seed=0)

Public datasets: vindr.py (VinDr-CXR), nih.py (NIH ChestX-ray14). Exports: coco.py, csv_boxes.py, voc.py
(shared steps in export.py).
"""

from __future__ import annotations

import importlib
from pathlib import Path

from xray_exp.prepare.config import SourceDatasetConfig, SourceFormat
from xray_exp.prepare.records import ImageRecord, IssueLog

LOADERS = {
    SourceFormat.vindr_cxr: ("vindr", "load_vindr"),
    SourceFormat.nih_cxr14: ("nih", "load_nih"),
    SourceFormat.coco: ("coco", "load_coco"),
    SourceFormat.csv: ("csv_boxes", "load_csv_boxes"),
    SourceFormat.voc: ("voc", "load_voc"),
}
DISCOVERS_CLASSES = (SourceFormat.coco, SourceFormat.csv, SourceFormat.voc)  # `classes: []` allowed


def load_source(source: Path, ds: SourceDatasetConfig, log: IssueLog, seed: int) -> list[ImageRecord]:
    """Dispatch on dataset.format (an export format with `classes: []` fills ds.classes from the source)."""
    module, function = LOADERS[SourceFormat(ds.format)]
    loader = getattr(importlib.import_module(f"xray_exp.prepare.sources.{module}"), function)
    return loader(source, ds, log, seed)
