"""Source importers: a downloaded dataset (CSVs + image files) -> ImageRecords + issues.

from xray_exp.prepare.sources import load_source
records = load_source(Path("/data/nih"), cfg.dataset, IssueLog(), seed=0)
"""

from __future__ import annotations

from pathlib import Path

from xray_exp.prepare.config import SourceDatasetConfig, SourceFormat
from xray_exp.prepare.records import ImageRecord, IssueLog


def load_source(source: Path, ds: SourceDatasetConfig, log: IssueLog, seed: int) -> list[ImageRecord]:
    """Dispatch on dataset.format."""
    if SourceFormat(ds.format) is SourceFormat.vindr_cxr:
        from xray_exp.prepare.sources.vindr import load_vindr

        return load_vindr(source, ds, log, seed)
    from xray_exp.prepare.sources.nih import load_nih

    return load_nih(source, ds, log, seed)
