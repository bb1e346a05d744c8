"""POST /predict/sr: a DICOM radiograph in, its findings as a DICOM SR (TID 1500) out (application/dicom).

    curl -F file=@chest.dcm http://127.0.0.1:8000/predict/sr -o findings-sr.dcm

The SR is in the upload's study (a new series), references the uploaded instance, and names the served model's
name and version (xray_exp.sr). 415 for anything but DICOM (PNG/JPEG have no study to report into: use
/predict); 422 for a DICOM without Study/SOP Instance UIDs; the upload limits and status codes of /predict apply.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from fastapi import APIRouter, File, HTTPException, Query, UploadFile
from fastapi.responses import Response

from xray_exp.imaging import sniff_format
from xray_exp.serve.schemas import errors
from xray_exp.serve.upload_routes import request_limits, run_in_pool
from xray_exp.serve.uploads import UploadError, decode_upload, read_limited
from xray_exp.sr.codes import FindingCodes
from xray_exp.sr.files import SrOutput
from xray_exp.sr.source_header import SourceHeaderError
from xray_exp.sr.writer import ModelIdentity


@dataclass
class ServedPredictor:
    """The served detector with the service's thresholds, as the SR and PACS code expects a predictor."""

    detector: object
    identity: ModelIdentity
    conf: float
    iou: float
    max_det: int

    def predict(self, gray):
        return self.detector.predict(gray, conf=self.conf, iou=self.iou, max_det=self.max_det)[0]


def served_predictor(holder, settings, conf: float | None = None, iou: float | None = None) -> ServedPredictor:
    current = holder.current
    if current is None:
        raise HTTPException(503, f"no model loaded: {holder.detail}")
    detector, info = current
    return ServedPredictor(
        detector,
        ModelIdentity(info.name, info.version),
        settings.conf if conf is None else conf,
        settings.iou if iou is None else iou,
        settings.max_det,
    )


def finding_codes(settings):
    return FindingCodes.load(settings.sr_codes)


def sr_router(settings, holder, pool) -> APIRouter:
    router = APIRouter()
    codes = finding_codes(settings)

    def make_sr(file: UploadFile, conf: float | None, iou: float | None) -> tuple[bytes, dict]:
        from pydicom import dcmread

        predictor = served_predictor(holder, settings, conf, iou)
        try:
            data = read_limited(file.file, settings.max_upload_bytes)
            if data and sniff_format(data) != "dicom":
                raise UploadError(
                    415,
                    "POST /predict/sr takes a DICOM (Part 10) file; PNG and JPEG have no study "
                    "to report into: use POST /predict",
                )
            gray, _ = decode_upload(data, settings.max_pixels, request_limits(settings))
        except UploadError as exc:
            raise HTTPException(exc.status_code, exc.message) from exc
        detections = predictor.predict(gray)
        try:
            header = dcmread(io.BytesIO(data), stop_before_pixels=True)
            sr = SrOutput(predictor.identity, codes).dataset(header, detections)
        except SourceHeaderError as exc:
            raise HTTPException(422, str(exc)) from exc
        buf = io.BytesIO()
        sr.save_as(buf, enforce_file_format=True)
        headers = {
            "X-Findings-Count": str(len(detections)),
            "X-SR-SOP-Instance-UID": str(sr.SOPInstanceUID),
            "X-Model-Version": predictor.identity.version.encode("ascii", "replace").decode("ascii"),
        }
        return buf.getvalue(), headers

    @router.post(
        "/predict/sr",
        response_class=Response,
        responses={
            200: {"content": {"application/dicom": {}}, "description": "the Comprehensive 3D SR of the findings"},
            **errors(413, 415, 422, 503, 504),
        },
    )
    async def predict_sr(
        file: UploadFile = File(description="DICOM radiograph"),
        conf: float | None = Query(None, ge=0, le=1, allow_inf_nan=False),
        iou: float | None = Query(None, ge=0, le=1, allow_inf_nan=False),
    ):
        """The findings on one DICOM radiograph as a DICOM SR (TID 1500) in its study."""
        body, headers = await run_in_pool(pool, make_sr, file, conf, iou)
        return Response(body, media_type="application/dicom", headers=headers)

    return router
