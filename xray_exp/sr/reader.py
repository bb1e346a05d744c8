"""Read the findings back from an SR written by xray_exp.sr.writer (highdicom's parser).

read_sr_findings(pydicom.dcmread("report.dcm"))
# {"findings": [{"label", "code", "scheme", "confidence", "box", "referenced_sop_instance_uid"}], "summary": ...}
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from highdicom.sr import Comprehensive3DSR
from pydicom import dcmread
from pydicom.dataset import Dataset

from xray_exp.sr.writer import CONFIDENCE, SUMMARY


def read_sr_findings(sr: Dataset | str | Path) -> dict:
    """Boxes (x1, y1, x2, y2 from the polyline), finding codes, confidences and the summary statement."""
    dataset = sr if isinstance(sr, Dataset) else dcmread(str(sr))
    document = Comprehensive3DSR.from_dataset(dataset, copy=True)
    findings = []
    for group in document.content.get_planar_roi_measurement_groups():
        points = np.asarray(group.roi.value, dtype=np.float64)
        measurements = group.get_measurements(name=CONFIDENCE)
        image = group.roi.ContentSequence[0].ReferencedSOPSequence[0]
        findings.append(
            {
                "label": group.finding_type.meaning,
                "code": group.finding_type.value,
                "scheme": group.finding_type.scheme_designator,
                "confidence": float(measurements[0].value) / 100.0 if measurements else None,
                "box": [
                    float(points[:, 0].min()),
                    float(points[:, 1].min()),
                    float(points[:, 0].max()),
                    float(points[:, 1].max()),
                ],
                "closed": bool(len(points) > 1 and np.array_equal(points[0], points[-1])),
                "referenced_sop_instance_uid": image.ReferencedSOPInstanceUID,
            }
        )
    summary = None
    for group in document.content.get_image_measurement_groups():
        for evaluation in group.get_qualitative_evaluations(name=SUMMARY):
            summary = evaluation.value.meaning
    return {"findings": findings, "summary": summary}
