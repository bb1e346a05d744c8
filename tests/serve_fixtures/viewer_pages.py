"""Pieces of the viewer's browser tests (tests/serve/test_serve_viewer.py): the inputs (an NIH radiograph as
PNG and as a 12-bit DX DICOM (xray_exp.data.synthetic_dicom), with a patient's name, id, birth date and accession
number), opening or dropping a file on the page, and reading the viewer's state and pixels.
"""

from __future__ import annotations

import base64
import re
import shutil
from pathlib import Path

import cv2
import numpy as np

from . import helpers as h

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
PHI = ("Quixote^Zebulon", "PID-71830492", "19230405", "ACC-55501234")
SPACING = 0.4  # mm per pixel of the 1024-px NIH images (a 41 cm plate)
FLOOR, DEFAULT_CONF = 0.05, 0.25  # the page asks /predict at FLOOR; the slider starts at the service's conf


def viewer_inputs(folder: Path) -> dict:
    """An NIH PNG whose findings straddle the default threshold, and the same film as a 12-bit DICOM."""
    from xray_exp.data.synthetic_dicom import chest_xray_bytes
    from xray_exp.inference.onnx_detector import OnnxDetector

    detector = OnnxDetector(h.demo_model()[1], device="cpu")
    scored = []
    for name, gray in h.sample_images(12):
        confs = [d.confidence for d in detector.predict(gray, conf=FLOOR)[0]]
        above = sum(c >= DEFAULT_CONF for c in confs)
        scored.append((above >= 1 and len(confs) > above, -above, name, gray, above, len(confs)))
    ok, _, name, gray, above, total = max(scored, key=lambda s: (s[0], s[1]))
    assert ok, "no sample image with findings on both sides of the default threshold"
    png = folder / name
    png.write_bytes(h.png_bytes(gray))
    name, patient_id, birth_date, accession = PHI
    dcm = folder / "chest.dcm"
    dcm.write_bytes(
        chest_xray_bytes(
            gray.astype(np.uint16) * 16,
            header="complete",
            bits_stored=12,
            window=(2200, 3000),
            patient_id=patient_id,
            PatientName=name,
            PatientBirthDate=birth_date,
            AccessionNumber=accession,
            PixelSpacing=[SPACING, SPACING],
        )
    )
    return {"png": png, "dicom": dcm, "above": above, "total": total}


def open_image(page, server, path) -> None:
    page.goto(server.url + "/")
    _expect()(page.locator("#model-line")).to_have_text(re.compile(r"^Model best\.onnx, version sha256:"))
    page.set_input_files("#file", str(path))
    _expect()(page.locator("#status")).to_have_text(
        re.compile(rf"^{re.escape(path.name)}: .* at confidence"), timeout=30000
    )


def drop_file(page, server, path) -> None:
    """Open the page and drop the file on it (a real DataTransfer with a File, as a desktop drag gives)."""
    page.goto(server.url + "/")
    _expect()(page.locator("#model-line")).to_have_text(re.compile(r"^Model "))
    page.evaluate(
        """([name, b64]) => {
            const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0)), dt = new DataTransfer();
            dt.items.add(new File([bytes], name, { type: "image/png" }));
            document.body.dispatchEvent(new DragEvent("drop", { dataTransfer: dt, bubbles: true, cancelable: true }));
        }""",
        [path.name, base64.b64encode(path.read_bytes()).decode("ascii")],
    )
    _expect()(page.locator("#status")).to_have_text(
        re.compile(rf"^{re.escape(path.name)}: .* at confidence"), timeout=30000
    )


def canvas_pixels(page) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(page.locator("#canvas").screenshot(), np.uint8), cv2.IMREAD_GRAYSCALE)


def state(page) -> dict:
    canvas = page.locator("#canvas")
    keys = ("zoom", "view-x", "view-y", "center", "width", "invert", "preset", "hover", "selected")
    return {k: canvas.get_attribute(f"data-{k}") for k in keys}


def box_center(page, index: int, findings: list[dict]) -> tuple[float, float]:
    s, rect = state(page), page.locator("#canvas").bounding_box()
    x1, y1, x2, y2 = findings[index]["box"]
    zoom = float(s["zoom"])
    return (
        rect["x"] + float(s["view-x"]) + zoom * (x1 + x2) / 2,
        rect["y"] + float(s["view-y"]) + zoom * (y1 + y2) / 2,
    )


def _expect():
    from playwright.sync_api import expect

    return expect


def touch(cdp, kind: str, *points) -> None:
    """One CDP touch event (Chromium turns it into pointer events, as from a touch screen)."""
    cdp.send(
        "Input.dispatchTouchEvent",
        {"type": kind, "touchPoints": [{"x": x, "y": y, "id": i} for i, (x, y) in enumerate(points)]},
    )


def pydicom_display(path) -> np.ndarray:
    """8-bit display values of a DICOM by pydicom (Modality LUT, then its first window), an independent check."""
    import pydicom
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    ds = pydicom.dcmread(path)
    lo, hi = 0, 2**ds.BitsStored - 1  # pydicom's output range for unsigned data without rescale
    values = apply_voi_lut(apply_modality_lut(ds.pixel_array, ds), ds)
    return np.round((values - lo) * 255 / (hi - lo)).astype(int)
