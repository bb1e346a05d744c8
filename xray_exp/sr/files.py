"""SR files for a batch of DICOM inputs, with UIDs that do not change when the same model reports again.

    out = SrOutput(ModelIdentity("yolo12n", "3"), FindingCodes.load())
    out.write(item_path, detections, Path("out/sr/cxr.dcm"))   # {"sr": ..., "sr_sop_instance_uid": ...}
    out.dataset(source_header, detections)                      # the SR as a pydicom Dataset (the service)

The series UID derives from (study, model name, version) and the SOP Instance UID from (source instance, model
name, version): re-running a model version on the same image gives the same SR identity, so a PACS that receives
it again replaces it instead of keeping duplicates (the idempotence of the analyze route).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from xray_exp.sr.codes import FindingCodes
from xray_exp.sr.writer import ModelIdentity, build_sr

log = logging.getLogger(__name__)


class SrOutput:
    def __init__(self, model: ModelIdentity, codes: FindingCodes):
        self.model, self.codes = model, codes

    def uids(self, header: Dataset) -> tuple[str, str]:
        """(series, SOP instance) UIDs of this model version's SR on this source image."""
        key = [self.model.name, self.model.version]
        series = generate_uid(entropy_srcs=["series", str(header.get("StudyInstanceUID", "")), *key])
        instance = generate_uid(entropy_srcs=["instance", str(header.get("SOPInstanceUID", "")), *key])
        return series, instance

    def dataset(self, header: Dataset, detections, source_name: str = "") -> Dataset:
        series, instance = self.uids(header)
        return build_sr(header, detections, self.model, self.codes, series, instance, source_name=source_name)

    def write(self, item, detections, path: Path) -> dict:
        """The SR of one input saved at `path` (atomically); or {"sr_error": why} (logged), nothing written."""
        try:
            header = dcmread(str(item.path), stop_before_pixels=True)
            sr = self.dataset(header, detections, source_name=item.name)
        except Exception as exc:  # a source the SR cannot reference (no UIDs), or a header highdicom refuses
            log.warning("no SR for %s: %s", item.name, exc)
            return {"sr_error": f"{type(exc).__name__}: {exc}"}
        tmp = path.with_name(f".{path.name}.tmp")
        sr.save_as(str(tmp), enforce_file_format=True)
        os.replace(tmp, path)
        return {"sr": f"{path.parent.name}/{path.name}", "sr_sop_instance_uid": str(sr.SOPInstanceUID)}
