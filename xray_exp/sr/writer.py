"""One Comprehensive 3D SR (TID 1500 Imaging Measurement Report) for the findings on one source image.

    sr = build_sr(pydicom.dcmread("cxr.dcm", stop_before_pixels=True), detections,
                  ModelIdentity("yolo12n", "3"), FindingCodes.load())
    sr.save_as("cxr-sr.dcm")

In the source's study, in a new series; the device observer and each group's algorithm identification carry
the model's name and version. Each detection is a planar ROI group (TID 1410): a closed POLYLINE box in image
pixel coordinates (SCOORD, column/row of the source referenced by SOP Instance UID, frame 1 of a multi-frame
image), its finding code (xray_exp.sr.codes), and the confidence as a measurement ("Certainty of Finding", %).
Each report also holds a "CAD Processing and Findings Summary" group: "All algorithms succeeded; with findings"
or, for an image without findings, "... without findings" (the explicit no-findings statement).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from highdicom.coding_schemes import CodingSchemeIdentificationItem
from highdicom.sr import (
    AlgorithmIdentification,
    Comprehensive3DSR,
    DeviceObserverIdentifyingAttributes,
    GraphicTypeValues,
    ImageRegion,
    Measurement,
    MeasurementReport,
    MeasurementsAndQualitativeEvaluations,
    ObservationContext,
    ObserverContext,
    PlanarROIMeasurementsAndQualitativeEvaluations,
    QualitativeEvaluation,
    SourceImageForMeasurementGroup,
    SourceImageForRegion,
    TrackingIdentifier,
)
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from xray_exp.sr.codes import LOCAL_SCHEME, FindingCodes
from xray_exp.sr.source_header import evidence_header

log = logging.getLogger(__name__)

MANUFACTURER = "xray_exp"
SERIES_NUMBER = 7001
SERIES_DESCRIPTION = "AI findings (xray_exp)"
CONFIDENCE = codes.DCM.CertaintyOfFinding  # DCM 111012
PERCENT = codes.UCUM.Percent
PROCEDURE = codes.LN.XRUnspecifiedBodyRegion  # LN 43468-8
SUMMARY = codes.DCM.CADProcessingAndFindingsSummary  # DCM 111017
WITH_FINDINGS = codes.DCM.AllAlgorithmsSucceededWithFindings  # DCM 111242
WITHOUT_FINDINGS = codes.DCM.AllAlgorithmsSucceededWithoutFindings  # DCM 111241


@dataclass(frozen=True)
class ModelIdentity:
    """The algorithm a report names: registry name and version, or a file name and its digest."""

    name: str
    version: str

    @property
    def device_uid(self) -> str:
        """A stable UID of this model version (the observer device)."""
        return generate_uid(entropy_srcs=["xray_exp", self.name, self.version])


def box_polyline(box: Sequence[float]) -> np.ndarray:
    """(x1, y1, x2, y2) pixels -> the closed polyline (column, row) of its corners, first point repeated."""
    x1, y1, x2, y2 = (float(v) for v in box)
    return np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2], [x1, y1]], dtype=np.float32)


def _frames(header: Dataset) -> list[int] | None:
    return [1] if int(header.get("NumberOfFrames", 1) or 1) > 1 else None


def build_sr(
    source: Dataset,
    detections: Sequence,
    model: ModelIdentity,
    finding_codes: FindingCodes,
    series_instance_uid: str | None = None,
    sop_instance_uid: str | None = None,
    source_name: str = "",
) -> Comprehensive3DSR:
    """The SR document for `detections` (objects with .box, .confidence, .label) on the `source` image."""
    header, notes = evidence_header(source)
    if notes:  # one line per source: what the SR could not copy as it was
        log.info("SR source %s: %s", source_name or header.SOPInstanceUID, "; ".join(notes))
    algorithm = AlgorithmIdentification(name=model.name[:64], version=model.version[:64], manufacturer=MANUFACTURER)
    device = DeviceObserverIdentifyingAttributes(
        uid=model.device_uid, name=model.name[:64], manufacturer_name=MANUFACTURER, model_name=model.version[:64]
    )
    context = ObservationContext(
        observer_device_context=ObserverContext(observer_type=codes.DCM.Device, observer_identifying_attributes=device)
    )
    sop_class, sop_uid, frames = header.SOPClassUID, header.SOPInstanceUID, _frames(header)
    groups: list = []
    for index, det in enumerate(detections, start=1):
        region = ImageRegion(
            graphic_type=GraphicTypeValues.POLYLINE,
            graphic_data=box_polyline(det.box),
            source_image=SourceImageForRegion(sop_class, sop_uid, frames),
        )
        groups.append(
            PlanarROIMeasurementsAndQualitativeEvaluations(
                tracking_identifier=TrackingIdentifier(
                    uid=generate_uid(), identifier=f"finding {index}: {det.label}"[:64]
                ),
                referenced_region=region,
                finding_type=finding_codes.code_for(det.label),
                algorithm_id=algorithm,
                measurements=[
                    Measurement(
                        name=CONFIDENCE,
                        value=round(float(det.confidence) * 100.0, 4),
                        unit=PERCENT,
                        algorithm_id=algorithm,
                    )
                ],
            )
        )
    groups.append(
        MeasurementsAndQualitativeEvaluations(
            tracking_identifier=TrackingIdentifier(uid=generate_uid(), identifier="findings summary"),
            algorithm_id=algorithm,
            source_images=[SourceImageForMeasurementGroup(sop_class, sop_uid, frames)],
            qualitative_evaluations=[QualitativeEvaluation(SUMMARY, WITH_FINDINGS if detections else WITHOUT_FINDINGS)],
        )
    )
    local = any(finding_codes.code_for(d.label).scheme_designator == LOCAL_SCHEME for d in detections)
    schemes = (
        [
            CodingSchemeIdentificationItem(
                LOCAL_SCHEME,
                name="xray_exp finding codes without a standard code",
                responsible_organization=MANUFACTURER,
            )
        ]
        if local
        else None
    )
    report = MeasurementReport(observation_context=context, procedure_reported=PROCEDURE, imaging_measurements=groups)
    return Comprehensive3DSR(
        evidence=[header],
        content=report,
        series_instance_uid=series_instance_uid or generate_uid(),
        series_number=SERIES_NUMBER,
        sop_instance_uid=sop_instance_uid or generate_uid(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        series_description=SERIES_DESCRIPTION,
        is_complete=True,
        coding_schemes=schemes,
    )
