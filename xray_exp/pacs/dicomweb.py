"""DICOMweb client (dicomweb-client) with bounded retries, credentials from a file, and errors that say what failed.

    client = DicomWeb("http://127.0.0.1:8042/dicom-web", credentials_file="pacs.cred", timeout_s=30, retries=3)
    images = client.study_images(study_uid)          # WADO-RS; DicomWebError when the study has no images
    client.store([sr_dataset, ...])                  # STOW-RS: one request, all or nothing

Connection errors, timeouts and 5xx answers are retried `retries` times in all (backoff 0.5 s, 1 s, 2 s, ...);
4xx answers are not. The credentials file holds `user:password` (HTTP basic) or a bearer token; neither it nor
the URL's user info is ever logged or put in an error message.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import requests
from pydicom.dataset import Dataset

from xray_exp.errors import XrayExpError

log = logging.getLogger(__name__)
T = TypeVar("T")
IMAGE_EXCLUDED_MODALITIES = ("SR", "KO", "PR", "SEG", "RTSTRUCT", "DOC")


class DicomWebError(XrayExpError):
    """The DICOMweb server is down, refused, or the study cannot be analysed; the message says which."""


def redact(url: str) -> str:
    """http://user:pass@host/path?token=x -> http://host/path"""
    if "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    authority, slash, path = rest.partition("/")
    return f"{scheme}://{authority.rsplit('@', 1)[-1]}{slash}{path.split('?', 1)[0]}"


def parse_study_url(text: str) -> tuple[str, str]:
    """'<base>/studies/<uid>' -> (base, uid)."""
    base, sep, uid = text.rstrip("/").rpartition("/studies/")
    if not sep or not base or not uid or "/" in uid:
        raise DicomWebError(f"{redact(text)!r} is not a DICOMweb study URL. Fix: source=dicomweb:<url>/studies/<uid>")
    return base, uid


def session_with_credentials(credentials_file: str | Path | None) -> requests.Session:
    session = requests.Session()
    if not credentials_file:
        return session
    path = Path(credentials_file).expanduser()
    try:
        secret = path.read_text().strip()
    except OSError as exc:
        raise DicomWebError(f"DICOMweb credentials file {path} cannot be read ({exc.strerror})") from exc
    if not secret:
        raise DicomWebError(f"DICOMweb credentials file {path} is empty. Fix: write user:password or a token in it")
    if ":" in secret:
        user, password = secret.split(":", 1)
        session.auth = (user, password)
    else:
        session.headers["Authorization"] = f"Bearer {secret}"
    return session


def is_image(dataset: Dataset) -> bool:
    return "PixelData" in dataset and str(dataset.get("Modality", "")) not in IMAGE_EXCLUDED_MODALITIES


class DicomWeb:
    def __init__(
        self,
        url: str,
        credentials_file: str | Path | None = None,
        timeout_s: float = 30.0,
        retries: int = 3,
        backoff_s: float = 0.5,
    ):
        from dicomweb_client import DICOMwebClient

        if not url.startswith(("http://", "https://")):
            raise DicomWebError(f"DICOMweb URL must start with http:// or https:// (got {redact(url)!r})")
        self.url = redact(url)
        self.retries, self.backoff_s = max(1, int(retries)), backoff_s
        self.client = DICOMwebClient(url, session=session_with_credentials(credentials_file), timeout=timeout_s)
        self.client.set_http_retry_params(retry=False)  # retried here, the same way for every status and error

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        last = ""
        for attempt in range(1, self.retries + 1):
            try:
                return fn()
            except requests.HTTPError as exc:
                status = exc.response.status_code if exc.response is not None else 0
                if status == 404:
                    raise DicomWebError(f"{what}: not found at {self.url} (HTTP 404)") from exc
                if status in (401, 403):
                    raise DicomWebError(
                        f"{what}: {self.url} refused the credentials (HTTP {status}). Fix: check the credentials file"
                    ) from exc
                if status < 500:
                    raise DicomWebError(f"{what}: {self.url} answered HTTP {status}") from exc
                last = f"HTTP {status}"
            except (requests.ConnectionError, requests.Timeout) as exc:
                last = f"{type(exc).__name__}"
            if attempt < self.retries:
                log.warning("%s: %s from %s (attempt %d of %d); retrying", what, last, self.url, attempt, self.retries)
                time.sleep(self.backoff_s * 2 ** (attempt - 1))  # backoff between attempts, not synchronisation
        raise DicomWebError(
            f"{what}: {self.url} failed {self.retries} times (last: {last}); nothing was stored. "
            "Fix: check that the PACS is up and XRAY_SERVE_DICOMWEB_URL / the URL is right"
        )

    def study_images(self, study_uid: str) -> list[Dataset]:
        """Every image instance of the study (SRs, key objects, presentation states left out)."""
        from pydicom.errors import InvalidDicomError

        try:
            instances = self._call(f"retrieving study {study_uid}", lambda: self.client.retrieve_study(study_uid))
        except InvalidDicomError as exc:
            raise DicomWebError(
                f"study {study_uid} at {self.url}: an instance is not a DICOM Part 10 file "
                f"(no preamble; stored by a client that omits it?): {exc}"
            ) from exc
        images = [ds for ds in instances if is_image(ds)]
        if not images:
            kinds = sorted({str(ds.get("Modality", "?")) for ds in instances}) or ["nothing"]
            raise DicomWebError(
                f"study {study_uid} at {self.url} has no images to analyse (it holds "
                f"{len(instances)} instance(s): {', '.join(kinds)})"
            )
        return images

    def fetch_study(self, study_uid: str, folder: Path) -> Path:
        """The study's images saved as <folder>/<SOPInstanceUID>.dcm (for python -m xray_exp.predict)."""
        folder.mkdir(parents=True, exist_ok=True)
        for ds in self.study_images(study_uid):
            path = folder / f"{ds.SOPInstanceUID}.dcm"
            tmp = path.with_name(f".{path.name}.tmp")
            ds.save_as(str(tmp), enforce_file_format=True)
            tmp.replace(path)
        return folder

    def store(self, datasets: Sequence[Dataset]) -> int:
        """STOW-RS in one request; DicomWebError when the server refuses any instance."""
        if not datasets:
            return 0
        for ds in datasets:  # dicomweb-client writes each part as it is: with the preamble, a Part 10 file
            ds.preamble = getattr(ds, "preamble", None) or b"\0" * 128
        response = self._call(
            f"storing {len(datasets)} instance(s)", lambda: self.client.store_instances(list(datasets))
        )
        failed = response.get("FailedSOPSequence") if response is not None else None
        if failed:
            reasons = sorted({str(item.get("FailureReason", "?")) for item in failed})
            raise DicomWebError(
                f"{self.url} refused {len(failed)} of {len(datasets)} SR(s) (failure reasons {', '.join(reasons)})"
            )
        return len(datasets)

    def store_files(self, paths: Sequence[Path]) -> int:
        from pydicom import dcmread

        return self.store([dcmread(str(p)) for p in paths])
