"""Read the findings back from an SR written by xray_exp.sr.writer (highdicom's parser).

read_sr_findings(pydicom.dcmread("report.dcm"))
# {"findings": [{"label", "code", "scheme", "confidence", "box", "referenced_sop_instance_uid"}], "summary": ...}
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from highdicom.sr import Comprehensive3DSR, MeasurementReport
from pydicom import dcmread
from pydicom.dataset import Dataset

from xray_exp.sr.writer import CONFIDENCE, SUMMARY


def read_sr_findings(sr: Dataset | str | Path) -> dict:
    """Boxes (x1, y1, x2, y2 from the polyline), finding codes, confidences and the summary statement."""
    dataset = sr if isinstance(sr, Dataset) else dcmread(str(sr))
    document = Comprehensive3DSR.from_dataset(dataset, copy=True)
    report = document.content  # a MeasurementReport where the SR declares TID 1500, as xray_exp.sr.writer's do
    if not isinstance(report, MeasurementReport):
        raise ValueError("the SR is not a TID 1500 Measurement Report: not written by xray_exp.sr.writer")
    findings = []
    for group in report.get_planar_roi_measurement_groups():
        roi, finding = group.roi, group.finding_type
        if roi is None or finding is None:  # xray_exp.sr.writer gives every finding both
            raise ValueError("the SR has a finding without image region or finding type: not written by xray_exp.sr")
        points = np.asarray(roi.value, dtype=np.float64)
        measurements = group.get_measurements(name=CONFIDENCE)
        image = roi.ContentSequence[0].ReferencedSOPSequence[0]
        findings.append(
            {
                "label": finding.meaning,
                "code": finding.value,
                "scheme": finding.scheme_designator,
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
    for image_group in report.get_image_measurement_groups():
        for evaluation in image_group.get_qualitative_evaluations(name=SUMMARY):
            # highdicom annotates QualitativeEvaluation.value as int | float; it returns the CodedConcept
            summary = evaluation.value.meaning  # type: ignore[union-attr]
    return {"findings": findings, "summary": summary}
