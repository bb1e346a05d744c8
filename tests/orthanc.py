"""A real Orthanc (Debian `orthanc` + `orthanc-dicomweb`) on loopback, storage in a temporary folder.

    with OrthancServer(tmp_path) as pacs:        # skips the test when Orthanc is not installed
        pacs.dicomweb_url, pacs.credentials_file  # http://127.0.0.1:<port>/dicom-web, a user:password file

The configuration is the one docs/pacs.md shows: loopback only, HTTP basic auth, the DICOMweb plugin.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

ORTHANC = shutil.which("Orthanc") or "/usr/sbin/Orthanc"
DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
USER, PASSWORD = "xray", "pacs-test-5e1f"


def orthanc_available() -> bool:
    return Path(ORTHANC).is_file() and DICOMWEB_PLUGIN.is_file()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class OrthancServer:
    def __init__(self, root: Path):
        if not orthanc_available():
            pytest.skip("Orthanc with the DICOMweb plugin is not installed (apt-get install orthanc orthanc-dicomweb)")
        self.root = root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.dicomweb_url = f"{self.url}/dicom-web"
        self.credentials_file = root / "pacs.credentials"
        self.proc: subprocess.Popen | None = None

    def config(self) -> dict:
        return {
            "Name": "xray-exp-test",
            "StorageDirectory": str(self.root / "storage"),
            "IndexDirectory": str(self.root / "index"),
            "HttpPort": self.port,
            "DicomPort": free_port(),
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": True,
            "RegisteredUsers": {USER: PASSWORD},
            "Plugins": [str(DICOMWEB_PLUGIN)],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
        }

    def __enter__(self) -> OrthancServer:
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "orthanc.json").write_text(json.dumps(self.config(), indent=2))
        self.credentials_file.write_text(f"{USER}:{PASSWORD}\n")
        log = (self.root / "orthanc.log").open("w")
        self.proc = subprocess.Popen(
            [ORTHANC, str(self.root / "orthanc.json")], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"Orthanc exited: {(self.root / 'orthanc.log').read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/system", auth=(USER, PASSWORD), timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.1)  # poll interval while the server starts (readiness is the HTTP answer)
        self.__exit__()
        raise RuntimeError("Orthanc did not answer within 30 s")

    def get(self, path: str):
        response = httpx.get(f"{self.url}{path}", auth=(USER, PASSWORD), timeout=30)
        response.raise_for_status()
        return response.json()

    def __exit__(self, *exc) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
