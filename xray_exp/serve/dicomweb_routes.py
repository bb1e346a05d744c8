"""The PACS round trip: POST /studies/{StudyInstanceUID}/analyze fetches the study from the DICOMweb server
(XRAY_SERVE_DICOMWEB_URL, WADO-RS), runs the served model, and stores one SR per image back (STOW-RS).

    curl -X POST -H "Authorization: Bearer $XRAY_SERVE_TOKEN" http://127.0.0.1:8000/studies/1.2.3/analyze   # 202
    curl http://127.0.0.1:8000/studies/1.2.3/analyze        # {"status": "done", "result": {...}} or "failed", "error"

The analysis runs in the background; the answer is its record: status queued | running | done | failed. It is
idempotent for the same study and model version: a second POST while one runs or after it is done answers the
same record (200) without analysing again; a failed one is started again. The SRs' UIDs derive from the source
images and the model version, so even a new service process stores the same SRs again (the PACS keeps one).
Bearer token as for the training triggers (it writes into the PACS); 403 (off) when no DICOMweb server is
configured, 503 when no model is loaded.
Credentials come from XRAY_SERVE_DICOMWEB_CREDENTIALS_FILE and are never logged or returned.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field

from fastapi import APIRouter, Depends, HTTPException, Path
from fastapi.responses import JSONResponse

from xray_exp.pacs.analyze import analyze_study
from xray_exp.pacs.dicomweb import DicomWeb
from xray_exp.serve.sr_routes import finding_codes, served_predictor

log = logging.getLogger(__name__)
UID = r"^[0-9]+(\.[0-9]+)*$"


@dataclass
class Analysis:
    study_instance_uid: str
    model: dict
    status: str = "queued"  # queued | running | done | failed
    result: dict | None = None
    error: str | None = None
    log: list[str] = field(default_factory=list)

    def public(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k != "log"}


class Analyses:
    """Analyses by (study, model name, model version), run one at a time in a background thread."""

    def __init__(self) -> None:
        self.records: dict[tuple[str, str, str], Analysis] = {}
        self.lock = threading.Lock()
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="analyze")

    def start(self, study: str, predictor, run) -> tuple[Analysis, bool]:
        key = (study, predictor.identity.name, predictor.identity.version)
        with self.lock:
            known = self.records.get(key)
            if known is not None and known.status != "failed":
                return known, False
            record = Analysis(study, {"name": key[1], "version": key[2]})
            self.records[key] = record
        self.executor.submit(self._run, record, run)
        return record, True

    @staticmethod
    def _run(record: Analysis, run) -> None:
        record.status = "running"
        try:
            record.result = run()
            record.status = "done"
        except Exception as exc:  # reported in the record; the service goes on
            record.error = str(exc) if str(exc) else type(exc).__name__
            record.status = "failed"
            log.warning("analysis of study %s failed: %s", record.study_instance_uid, record.error)

    def latest(self, study: str) -> Analysis | None:
        with self.lock:
            found = [a for (s, _, _), a in self.records.items() if s == study]
        return found[-1] if found else None

    def shutdown(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)


def dicomweb_router(settings, holder, require_token) -> APIRouter:
    router = APIRouter()
    analyses = Analyses()
    codes = finding_codes(settings)
    StudyUid = Path(pattern=UID, max_length=64, description="StudyInstanceUID")

    def client():
        return DicomWeb(
            settings.dicomweb_url,
            settings.dicomweb_credentials_file,
            settings.dicomweb_timeout_s,
            settings.dicomweb_retries,
        )

    @router.post("/studies/{study_uid}/analyze", dependencies=[Depends(require_token)], status_code=202)
    def analyze(study_uid: str = StudyUid):
        """Fetch the study (WADO-RS), predict every image, store one SR per image in the study (STOW-RS)."""
        if not settings.dicomweb_url:
            raise HTTPException(403, "the PACS round trip is disabled on this server (no XRAY_SERVE_DICOMWEB_URL set)")
        predictor = served_predictor(holder, settings)

        record, started = analyses.start(
            study_uid, predictor, lambda: analyze_study(client(), study_uid, predictor, codes)
        )
        return JSONResponse(record.public(), status_code=202 if started else 200)

    @router.get("/studies/{study_uid}/analyze")
    def analysis(study_uid: str = StudyUid):
        """The latest analysis of the study: status, and the result (SR UIDs, findings) or the error."""
        record = analyses.latest(study_uid)
        if record is None:
            raise HTTPException(404, f"study {study_uid} has not been analysed by this service")
        return record.public()

    return router
