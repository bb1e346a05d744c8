"""The web page end to end in headless Chromium: choose an X-ray, see it in the viewer with its findings,
or "No findings"; a non-image gets a readable error; with the token entered, the jobs panel shows training
jobs (status, epoch k of n) and cancels them. Screenshots go to outputs/test-artifacts/.

    .venv/bin/pytest tests/serve/test_serve_browser.py

Needs Debian's chromium (/usr/bin/chromium, `apt-get install chromium`) and Playwright for Python
(`pip install playwright`; its own browser download is never used). Skips when either is missing.
"""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import pytest

try:
    from serve_fixtures import helpers as h
    from serve_fixtures.viewer_pages import CHROMIUM, CHROMIUM_ARGS
except ImportError:  # tests/ imported as a package
    from tests.serve_fixtures import helpers as h
    from tests.serve_fixtures.viewer_pages import CHROMIUM, CHROMIUM_ARGS

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
if not Path(CHROMIUM).is_file():
    pytest.skip("chromium is not installed (apt-get install chromium)", allow_module_level=True)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("serve-browser")
    env = {
        "XRAY_SERVE_MODEL": str(h.demo_model()[1]),
        "XRAY_SERVE_DEVICE": "cpu",
        "XRAY_SERVE_TOKEN": h.TOKEN,
        "XRAY_SERVE_JOB_COMMAND": h.fake_job_command(),
        "XRAY_EXP_ROOT": str(workdir / "root"),
    }
    service = h.ServiceProcess(env, workdir).start()
    yield service
    service.stop()


@pytest.fixture(scope="module")
def page(server):
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
        page.errors = errors
        yield page
        browser.close()


@pytest.fixture(scope="module")
def chosen(tmp_path_factory):
    """A radiograph with a few findings at the default threshold, and one with none."""
    from xray_exp.inference.onnx_detector import OnnxDetector

    detector = OnnxDetector(h.demo_model()[1], device="cpu")
    folder = tmp_path_factory.mktemp("browser-images")
    counts = [(len(detector.predict(g, conf=0.25)[0]), name, g) for name, g in h.sample_images(12)]
    some = min((c for c in counts if c[0] > 0), key=lambda c: abs(c[0] - 4))
    none = next((c for c in counts if c[0] == 0), None)
    if none is None:  # a featureless film: nothing to find
        import numpy as np

        none = (0, "flat.png", np.full((512, 512), 128, np.uint8))
        assert not detector.predict(none[2], conf=0.25)[0]
    paths = {}
    for key, (count, name, gray) in (("some", some), ("none", none)):
        paths[key] = folder / f"{Path(name).stem}.png"
        paths[key].write_bytes(h.png_bytes(gray))
        paths[key + "_count"] = count
    return paths


def shoot(page, name: str) -> Path:
    h.ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = h.ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    return path


def analyse(page, server, path: Path) -> None:
    """Open the page, choose the file (which opens it), wait for the findings or the error. Waits go through
    locators: the page's Content-Security-Policy forbids the eval behind wait_for_function. The viewer's own
    tests (window/level, zoom, linking, slider, layout): test_serve_viewer.py."""
    page.goto(server.url + "/")
    sync_api.expect(page.locator("#model-line")).to_have_text(re.compile(r"^Model best\.onnx, version sha256:"))
    page.set_input_files("#file", str(path))
    sync_api.expect(page.locator("#status")).to_have_text(
        re.compile(rf"^({re.escape(path.name)}: .* at confidence|Cannot .*: )"), timeout=30000
    )


def test_findings_are_shown_on_the_image(page, server, chosen):
    analyse(page, server, chosen["some"])
    sync_api.expect(page.locator("#canvas")).to_be_visible()
    box = page.locator("#canvas").bounding_box()
    zoom = float(page.get_attribute("#canvas", "data-zoom"))
    side = max(cv2.imread(str(chosen["some"]), cv2.IMREAD_GRAYSCALE).shape)
    assert box["width"] > 300 and zoom * side == pytest.approx(min(box["width"], box["height"]), abs=1)  # fitted
    rows = page.locator("#findings tbody tr")  # asked at a low threshold, shown from the default 0.25 up
    assert rows.count() == chosen["some_count"]
    noun = "finding" if chosen["some_count"] == 1 else "findings"
    assert page.locator("#summary").inner_text() == f"{chosen['some_count']} {noun}"
    first = rows.nth(0).locator("td")
    assert first.nth(0).inner_text() and first.nth(1).inner_text().endswith("%")
    assert "model best.onnx, version sha256:" in page.locator("#details").inner_text()
    shot = shoot(page, "serve-page-findings.png")
    assert shot.stat().st_size > 10_000
    assert not page.errors, page.errors


def test_no_findings_is_said_plainly(page, server, chosen):
    analyse(page, server, chosen["none"])
    assert page.locator("#summary").inner_text() == "No findings"
    assert not page.locator("#findings").is_visible()
    assert page.locator("#status").inner_text().startswith(f"{chosen['none'].name}: No findings")
    shoot(page, "serve-page-no-findings.png")
    assert not page.errors, page.errors


def test_not_an_image_gets_a_readable_error(page, server, tmp_path):
    bogus = tmp_path / "notes.png"
    bogus.write_text("this is not an X-ray")
    analyse(page, server, bogus)
    status = page.locator("#status")
    assert status.inner_text().startswith("Cannot open notes.png: unsupported file type")
    assert "unsupported file type" in status.inner_text() and "error" in (status.get_attribute("class") or "")
    assert not page.locator("#result").is_visible()
    shoot(page, "serve-page-error.png")


def test_jobs_panel_shows_progress_and_cancels(page, server):
    import httpx

    auth = {"Authorization": f"Bearer {h.TOKEN}"}
    with httpx.Client(base_url=server.url, timeout=30) as client:
        running = client.post(
            "/trigger-training", headers=auth, json={"overrides": ["train.fake_sleep=0.5", "train.epochs=40"]}
        ).json()
        queued = client.post("/trigger-finetune", headers=auth, json={"overrides": ["train.epochs=2"]}).json()
    page.errors.clear()  # the earlier tests' expected 415
    page.goto(server.url + "/")
    assert not page.locator("#jobs").is_visible()  # nothing listed before a token is entered
    page.fill("#token", "not-the-token")
    page.click("#show-jobs")
    row = page.locator(f'#jobs tr[data-job-id="{running["id"]}"]')
    sync_api.expect(row.locator(".job-status")).to_have_text("running", timeout=15000)
    sync_api.expect(row.locator("td").nth(3)).to_have_text(re.compile(r"^epoch [1-9]\d* of 40$"), timeout=15000)
    waiting = page.locator(f'#jobs tr[data-job-id="{queued["id"]}"]')
    sync_api.expect(waiting.locator(".job-status")).to_have_text("queued")
    waiting.locator("button.cancel").click()
    sync_api.expect(page.locator("#jobs-status")).to_have_text(re.compile(r"^Cannot cancel job .*HTTP 403"))

    page.fill("#token", h.TOKEN)
    page.click("#show-jobs")
    waiting.locator("button.cancel").click()
    sync_api.expect(waiting.locator(".job-status")).to_have_text("cancelled", timeout=15000)
    shoot(page, "serve-page-jobs.png")
    row.locator("button.cancel").click()
    sync_api.expect(row.locator(".job-status")).to_have_text("cancelled", timeout=30000)
    assert row.locator("button.cancel").count() == 0
    assert [e for e in page.errors if "status of 403" not in e] == [], page.errors  # 403: the wrong token
