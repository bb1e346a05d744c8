"""One study through the model: its images from the PACS, an SR per image, all SRs stored back at once.

    result = analyze_study(DicomWeb(url), study_uid, predictor, FindingCodes.load())
    # {"study_instance_uid", "model": {"name", "version"}, "images": [{"sop_instance_uid", "findings",
    #   "sr_sop_instance_uid"}], "stored": n}

`predictor` is anything with `.predict(gray) -> detections` and `.identity` (xray_exp.inference.predictor). The
SRs are built for every image before anything is stored, then go in one STOW-RS request: a failure leaves no
partial report in the PACS. Their UIDs derive from the source instance and the model version
(xray_exp.sr.files), so analysing a study again stores the same SRs, not new copies.
"""

from __future__ import annotations

import io
import logging

from xray_exp.imaging import DEFAULT_LIMITS, DecodeLimits, decode_xray_bytes
from xray_exp.pacs.dicomweb import DicomWeb, DicomWebError
from xray_exp.sr.codes import FindingCodes
from xray_exp.sr.files import SrOutput

log = logging.getLogger(__name__)


def dataset_bytes(ds) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def analyze_study(
    client: DicomWeb, study_uid: str, predictor, codes: FindingCodes, limits: DecodeLimits = DEFAULT_LIMITS
) -> dict:
    images = client.study_images(study_uid)
    output = SrOutput(predictor.identity, codes)
    reports, rows = [], []
    for ds in images:
        try:
            gray = decode_xray_bytes(dataset_bytes(ds), limits)
        except Exception as exc:  # decoders raise many types; the study is reported on as a whole or not at all
            raise DicomWebError(f"study {study_uid}: image {ds.SOPInstanceUID} cannot be decoded ({exc})") from exc
        detections = predictor.predict(gray)
        sr = output.dataset(ds, detections, source_name=str(ds.SOPInstanceUID))
        reports.append(sr)
        rows.append(
            {
                "sop_instance_uid": str(ds.SOPInstanceUID),
                "sr_sop_instance_uid": str(sr.SOPInstanceUID),
                "findings": [
                    {
                        "label": d.label,
                        "confidence": round(float(d.confidence), 5),
                        "box": [round(float(v), 2) for v in d.box],
                    }
                    for d in detections
                ],
            }
        )
    stored = client.store(reports)
    log.info("study %s: %d image(s), %d SR(s) stored at %s", study_uid, len(images), stored, client.url)
    return {
        "study_instance_uid": study_uid,
        "stored": stored,
        "images": rows,
        "model": {"name": predictor.identity.name, "version": predictor.identity.version},
    }
