"""PHI-free audit log of the service: one JSON line per request that touches images or models.

    XRAY_SERVE_AUDIT_LOG=/var/log/xray_exp/audit.log XRAY_SERVE_AUDIT_SALT=$(openssl rand -hex 32) \\
        python -m xray_exp.serve

Routes audited: POST /predict, POST /predict/annotated, POST /trigger-training, POST /trigger-finetune,
DELETE /jobs/{job_id}, GET /models. A line (every key always present; null where it does not apply):

    {"time": "2026-12-06T21:03:04.123+00:00", "event": "request", "route": "/predict", "method": "POST",
     "status": 200, "outcome": "ok", "detail": null, "caller": "anonymous", "client": "10.1.2.3",
     "model": {"name": "yolo12n", "version": "3"}, "image": {"format": "dicom", "width": 2048,
     "height": 2500, "frames": 1, "bytes": 5242880}, "findings": 2, "duration_ms": 84.1,
     "study_uid": "<32 hex>", "sop_instance_uid": "<32 hex>"}

`caller` is "anonymous" or "token:" + a salted hash of the bearer token; `study_uid` / `sop_instance_uid`
are salted hashes (HMAC-SHA256, 128 bits) of the DICOM Study and SOP Instance UIDs: the same study gives
the same hash under one salt, and nothing in the line names a patient. Patient name, id, birth date,
accession number and pixel data are never read into the line. The salt is XRAY_SERVE_AUDIT_SALT, else a
random one kept in `<audit log>.salt` (created once, mode 0600; keep it with the log to correlate UIDs).

Each line is written whole and flushed; the file rotates by size (XRAY_SERVE_AUDIT_MAX_BYTES, keeping
XRAY_SERVE_AUDIT_BACKUPS files). A line torn by a failed write (full disk) or a power loss is closed with a
newline before the next one, so every other line stays valid JSON.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import logging
import logging.handlers
import os
import secrets
import shutil
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from xray_exp.errors import XrayExpError

log = logging.getLogger(__name__)
LOW_DISK_BYTES = 64 * 1024 * 1024


class AuditLogUnavailable(XrayExpError):
    """The audit log cannot be written and XRAY_SERVE_AUDIT_REQUIRED=true: the service does not start."""


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def salted_hash(salt: bytes, value: str) -> str:
    """HMAC-SHA256 of value under salt, first 128 bits in hex."""
    return hmac.new(salt, value.encode("utf-8", "replace"), hashlib.sha256).hexdigest()[:32]


def caller_of(authorization: str | None, salt: bytes) -> str:
    """ "anonymous", or "token:<salted hash>" of the bearer token sent (valid or not: `status` says)."""
    scheme, _, token = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return "anonymous"
    return "token:" + salted_hash(salt, "token:" + token.strip())


def dicom_uids(data: bytes | BinaryIO) -> tuple[str | None, str | None]:
    """(StudyInstanceUID, SOPInstanceUID) of a DICOM (bytes or a file at its start) that already passed the
    decoder's checks; only these two tags are kept and reading stops before the pixel data."""
    from pydicom import dcmread

    source = io.BytesIO(data) if isinstance(data, bytes) else data
    try:
        ds = dcmread(source, stop_before_pixels=True, specific_tags=["StudyInstanceUID", "SOPInstanceUID"])
    except Exception:  # the decoder accepted the file; a tag we cannot read is just left out of the line
        return None, None
    study, sop = ds.get("StudyInstanceUID"), ds.get("SOPInstanceUID")
    return (str(study) if study else None), (str(sop) if sop else None)


def _close_torn_line(path: Path) -> None:
    """A file that does not end with a newline got a torn line: end it so the next line stands alone."""
    try:
        if not path.is_file() or path.stat().st_size == 0:
            return
        with path.open("rb+") as f:
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":
                f.write(b"\n")
    except OSError:
        pass  # the write that follows reports the problem


class _AuditHandler(logging.handlers.RotatingFileHandler):
    """Rotating handler whose failures are counted and warned about, never raised into a request."""

    def __init__(self, path: Path, max_bytes: int, backups: int, on_error):
        super().__init__(path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8")
        self.on_error, self.torn = on_error, False

    def emit(self, record: logging.LogRecord) -> None:
        if self.torn:
            self.flush_quietly()
            _close_torn_line(Path(self.baseFilename))
            self.torn = False
        super().emit(record)

    def flush_quietly(self) -> None:
        try:
            self.flush()
        except OSError:
            pass

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 (logging's name)
        self.torn = True
        if self.stream is not None:  # drop what a failed write left buffered: it is retried as a new line
            try:
                self.stream.close()
            except OSError:
                pass
            self.stream = None
        self.on_error()


class AuditLog:
    """Writes audit lines; `write` never raises (a failure is counted in `errors` and logged as a warning)."""

    def __init__(self, path: str | Path, salt: bytes, max_bytes: int, backups: int, on_error=None):
        self.path, self.salt = Path(path), salt
        self.errors = 0
        self._on_error = on_error or (lambda: None)
        self._lock = threading.Lock()
        self._logger = logging.Logger("xray_exp.audit")  # not in the logging tree: lines never reach the service log
        self._handler = _AuditHandler(self.path, max_bytes, backups, self._failed)
        self._handler.setFormatter(logging.Formatter("%(message)s"))
        self._logger.addHandler(self._handler)

    def _failed(self) -> None:
        with self._lock:
            self.errors += 1
            errors = self.errors
        self._on_error()
        if errors == 1 or errors % 100 == 0:
            log.warning(
                "cannot write the audit log %s (%d failed writes so far); requests are still served", self.path, errors
            )

    def write(self, entry: dict) -> None:
        self._logger.info(json.dumps(entry, separators=(",", ":"), default=str))

    def close(self) -> None:
        self._handler.close()


def _probe(path: Path, line: str) -> None:
    """Write the start line with one write(2) (raises OSError when the file or disk cannot take it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _close_torn_line(path)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def load_salt(path: Path, configured: str | None) -> bytes:
    """XRAY_SERVE_AUDIT_SALT, else the install's salt file (made once with 32 random bytes, mode 0600)."""
    if configured:
        return configured.encode()
    salt_file = path.with_name(path.name + ".salt")
    if not salt_file.is_file():
        salt_file.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(salt_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # made by a concurrent start
        else:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32))
    salt = salt_file.read_text().strip()
    if not salt:
        raise OSError(f"the salt file {salt_file} is empty (delete it to make a new one)")
    return salt.encode()


def open_audit_log(settings, start_entry: dict, on_error=None) -> AuditLog | None:
    """The audit log of settings.audit_log (None when unset). When it cannot be written: AuditLogUnavailable if
    settings.audit_required, else a warning and None (the service runs without an audit trail)."""
    if not settings.audit_log:
        return None
    path = Path(settings.audit_log)
    try:
        salt = load_salt(path, settings.audit_salt)
        _probe(path, json.dumps({"time": utc_now(), "event": "start", **start_entry}, separators=(",", ":")) + "\n")
        audit = AuditLog(path, salt, settings.audit_max_bytes, settings.audit_backups, on_error)
    except OSError as exc:
        message = (
            f"cannot write the audit log XRAY_SERVE_AUDIT_LOG={path} ({exc.strerror or exc}); "
            "fix the path or its permissions, or free disk space"
        )
        if settings.audit_required:
            raise AuditLogUnavailable(message + " (XRAY_SERVE_AUDIT_REQUIRED=true: not starting)") from exc
        log.warning(
            "%s; the service runs WITHOUT an audit log (set XRAY_SERVE_AUDIT_REQUIRED=true to refuse to start instead)",
            message,
        )
        return None
    try:
        free = shutil.disk_usage(path.parent).free
    except OSError:
        free = None
    if free is not None and free < LOW_DISK_BYTES:
        log.warning("only %d MiB free for the audit log %s", free // (1024 * 1024), path)
    return audit
