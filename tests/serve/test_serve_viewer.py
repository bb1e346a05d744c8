"""The viewer at `/` in headless Chromium on real inputs (an NIH radiograph as PNG and inside a DICOM built
from pydicom's CT_small.dcm with a patient's name, id, birth date and accession number): window/level,
zoom and pan, findings linked to their boxes, the confidence slider without a new request, keyboard
shortcuts, the PNG download, and the layout at 1280x800 and 390x844. Screenshots: outputs/test-artifacts/.

    .venv/bin/pytest tests/serve/test_serve_viewer.py

Needs Debian's chromium and Playwright for Python (skips without them; see test_serve_browser.py).
"""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pytest

try:
    from serve_fixtures import helpers as h
    from serve_fixtures.viewer_pages import (
        CHROMIUM,
        CHROMIUM_ARGS,
        FLOOR,
        PHI,
        SPACING,
        box_center,
        canvas_pixels,
        drop_file,
        open_image,
        pydicom_display,
        state,
        touch,
        viewer_inputs,
    )
except ImportError:  # tests/ imported as a package
    from tests.serve_fixtures import helpers as h
    from tests.serve_fixtures.viewer_pages import (
        CHROMIUM,
        CHROMIUM_ARGS,
        FLOOR,
        PHI,
        SPACING,
        box_center,
        canvas_pixels,
        drop_file,
        open_image,
        pydicom_display,
        state,
        touch,
        viewer_inputs,
    )

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
if not Path(CHROMIUM).is_file():
    pytest.skip("chromium is not installed (apt-get install chromium)", allow_module_level=True)
expect = sync_api.expect


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    yield from h.demo_service(tmp_path_factory.mktemp("serve-viewer"))


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return viewer_inputs(tmp_path_factory.mktemp("viewer-inputs"))


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 800}, accept_downloads=True)
    page = context.new_page()
    page.errors = []
    page.on("pageerror", lambda exc: page.errors.append(str(exc)))
    page.on("console", lambda msg: page.errors.append(msg.text) if msg.type == "error" else None)
    yield page
    assert not page.errors, page.errors
    context.close()


def test_dicom_window_level_presets_invert_and_reset(page, server, inputs):
    seen = []
    page.on("response", lambda r: seen.append(r) if r.url.endswith(("/render", f"/predict?conf={FLOOR}")) else None)
    open_image(page, server, inputs["dicom"])
    assert state(page)["center"] == "2200.0" and state(page)["width"] == "3000.0"  # the file's own VOI
    tags = page.locator("#dicom-tags")
    assert tags.locator('dd[data-tag="Modality"]').inner_text() == "DX"
    assert tags.locator('dd[data-tag="ViewPosition"]').inner_text() == "PA"
    assert tags.locator('dd[data-tag="TransferSyntax"]').inner_text() == "Explicit VR Little Endian"
    sizes = page.locator("#findings tbody td:nth-child(3)").all_inner_texts()
    assert sizes and all(s.endswith(" mm") for s in sizes)
    predicted = next(r for r in seen if "predict" in r.url).json()
    assert predicted["image"]["pixel_spacing_mm"] == [SPACING, SPACING]
    x1, y1, x2, y2 = predicted["findings"][int(page.locator("#findings tbody tr").first.get_attribute("data-index"))][
        "box"
    ]
    shown = [float(v) for v in re.findall(r"[\d.]+", sizes[0])]
    assert shown == pytest.approx([(x2 - x1) * SPACING, (y2 - y1) * SPACING], abs=0.51)  # mm = px x spacing
    text = page.content() + "".join(str(r.headers) + r.text() for r in seen if "predict" in r.url)
    text += "".join(str(r.headers) for r in seen)
    assert len(seen) == 2 and not [v for v in PHI if v.lower() in text.lower() or v.split("^")[0] in text]

    page.keyboard.press("h")  # boxes off: the pixels below are the film's alone
    before = canvas_pixels(page)
    rect = page.locator("#canvas").bounding_box()
    cx, cy = rect["x"] + rect["width"] / 2, rect["y"] + rect["height"] / 2
    page.mouse.move(cx, cy)
    page.mouse.down(button="right")
    page.mouse.move(cx - 150, cy - 60, steps=4)  # narrower window, lower level
    page.mouse.up(button="right")
    after = state(page)
    assert float(after["width"]) < 3000 and float(after["center"]) < 2200 and after["preset"] == "custom"
    windowed = canvas_pixels(page)
    assert np.abs(windowed.astype(int) - before).mean() > 5
    page.keyboard.press("l")
    assert state(page)["preset"] == "lung" and page.locator("#preset").input_value() == "lung"
    page.keyboard.press("r")
    page.mouse.move(0, 0)  # no box under the pointer
    assert state(page)["hover"] == "-1"
    assert state(page)["width"] == "3000.0" and np.array_equal(canvas_pixels(page), before)
    with page.expect_download() as download:  # the file's window at full resolution, boxes hidden
        page.click("#download-png")
    shown = cv2.imread(download.value.path(), cv2.IMREAD_GRAYSCALE).astype(int)
    assert np.abs(shown - pydicom_display(inputs["dicom"])).max() <= 1  # pydicom's own windowing

    page.keyboard.press("i")
    s = state(page)
    x0, y0, zoom = float(s["view-x"]), float(s["view-y"]), float(s["zoom"])
    film = (slice(int(y0) + 3, int(y0 + zoom * 1024) - 3), slice(int(x0) + 3, int(x0 + zoom * 1024) - 3))
    inverted = canvas_pixels(page)[film].astype(int)
    assert np.abs((255 - inverted) - before[film]).mean() < 1.5
    page.keyboard.press("h")
    page.select_option("#preset", "bone")
    assert state(page)["preset"] == "bone"
    h.ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(h.ARTIFACTS / "viewer-dicom-bone-inverted.png"))


def test_drop_zoom_pan_and_keyboard(page, server, inputs):
    drop_file(page, server, inputs["png"])
    fitted = float(state(page)["zoom"])
    assert 0.5 < fitted < 1  # a 1024-px film in a ~600-px high stage
    page.keyboard.press("+")
    assert float(state(page)["zoom"]) == pytest.approx(fitted * 1.25, rel=1e-3)
    page.click("#zoom-out")
    assert float(state(page)["zoom"]) == pytest.approx(fitted, rel=1e-3)
    page.keyboard.press("1")
    assert state(page)["zoom"] == "1.0000"
    rect = page.locator("#canvas").bounding_box()
    page.mouse.move(rect["x"] + 100, rect["y"] + 100)
    page.mouse.wheel(0, -400)
    expect(page.locator("#canvas")).not_to_have_attribute("data-zoom", "1.0000")
    assert float(state(page)["zoom"]) > 1
    before, x0 = canvas_pixels(page), float(state(page)["view-x"])
    page.mouse.down()
    page.mouse.move(rect["x"] + 40, rect["y"] + 130, steps=3)
    page.mouse.up()
    assert float(state(page)["view-x"]) == pytest.approx(x0 - 60, abs=0.5)
    assert not np.array_equal(canvas_pixels(page), before)
    page.keyboard.press("f")
    assert float(state(page)["zoom"]) == pytest.approx(fitted, rel=1e-3)
    shortcuts = page.locator("#shortcuts").inner_text()
    assert all(k in shortcuts for k in ("wheel", "right-drag", "Invert".lower(), "N / P"))


def test_findings_list_and_boxes_are_linked_and_the_slider_filters_locally(page, server, inputs):
    predicts = []
    page.on("request", lambda r: predicts.append(r.url) if "/predict" in r.url else None)
    open_image(page, server, inputs["png"])
    rows = page.locator("#findings tbody tr")
    assert rows.count() == inputs["above"] and predicts == [f"{server.url}/predict?conf={FLOOR}"]
    findings = page.request.post(
        f"{server.url}/predict?conf={FLOOR}",
        multipart={"file": {"name": "x.png", "mimeType": "image/png", "buffer": inputs["png"].read_bytes()}},
    ).json()["findings"]
    first = int(rows.first.get_attribute("data-index"))
    plain = canvas_pixels(page)
    rows.first.hover()
    assert state(page)["hover"] == str(first)
    assert not np.array_equal(canvas_pixels(page), plain)  # the hovered box is drawn emphasised
    rows.first.click()
    assert state(page)["selected"] == str(first) and "selected" in rows.first.get_attribute("class")
    page.keyboard.press("Escape")
    assert state(page)["selected"] == "-1"
    page.mouse.move(*box_center(page, first, findings))  # the reverse: the box lights its row
    expect(rows.first).to_have_class(re.compile("hover"))
    page.mouse.click(*box_center(page, first, findings))
    expect(rows.first).to_have_class(re.compile("selected"))

    page.fill("#conf", str(FLOOR))
    expect(rows).to_have_count(inputs["total"])
    page.fill("#conf", "1")
    expect(page.locator("#summary")).to_have_text("No findings")
    assert not page.locator("#findings").is_visible() and state(page)["selected"] == "-1"
    page.fill("#conf", str(FLOOR))
    labels = sorted({f["label"] for f in findings})
    toggle = page.locator(f'#class-toggles input[data-label="{labels[0]}"]')
    toggle.uncheck()
    expect(rows).to_have_count(sum(f["label"] != labels[0] for f in findings))
    toggle.check()
    page.keyboard.press("n")
    assert state(page)["selected"] == rows.first.get_attribute("data-index")
    assert predicts == [f"{server.url}/predict?conf={FLOOR}"]  # slider and toggles asked nothing more

    with page.expect_download() as download:
        page.click("#download-png")
    png = cv2.imdecode(np.frombuffer(open(download.value.path(), "rb").read(), np.uint8), cv2.IMREAD_COLOR)
    assert download.value.suggested_filename == f"{inputs['png'].stem}-annotated.png"
    assert png.shape[:2] == (1024, 1024) and (png[..., 2].astype(int) - png[..., 1]).max() > 100  # coloured boxes


def check_touch_gestures(page) -> None:
    """A phone has no wheel or right button: two-finger pinch zooms, "W/L drag" makes one finger window."""
    cdp = page.context.new_cdp_session(page)
    box = page.locator("#canvas").bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    zoom = float(state(page)["zoom"])
    touch(cdp, "touchStart", (x - 30, y), (x + 30, y))
    for step in range(1, 5):
        touch(cdp, "touchMove", (x - 30 - 15 * step, y), (x + 30 + 15 * step, y))
    touch(cdp, "touchEnd")
    assert float(state(page)["zoom"]) == pytest.approx(zoom * 3, rel=0.05)  # fingers 60 -> 180 px apart
    width = state(page)["width"]
    page.tap("#wl-drag")
    assert page.locator("#wl-drag").get_attribute("aria-pressed") == "true"
    touch(cdp, "touchStart", (x, y))
    for step in range(1, 5):
        touch(cdp, "touchMove", (x + 20 * step, y))
    touch(cdp, "touchEnd")
    expect(page.locator("#canvas")).not_to_have_attribute("data-width", width)
    assert float(state(page)["width"]) > float(width)  # dragged right: a wider window
    page.keyboard.press("r")


def test_without_a_model_the_image_opens_and_says_it_was_not_analysed(page, tmp_path, inputs):
    service = h.ServiceProcess({"XRAY_SERVE_DEVICE": "cpu"}, tmp_path).start()  # no XRAY_SERVE_MODEL
    try:
        page.goto(service.url + "/")
        expect(page.locator("#model-line")).to_have_text(re.compile(r"^No model loaded"))
        page.set_input_files("#file", str(inputs["dicom"]))
        expect(page.locator("#status")).to_have_text(re.compile(r"^Cannot analyse chest\.dcm: .+"), timeout=30000)
    finally:
        service.stop()
    assert page.locator("#summary").inner_text() == "Not analysed"  # never "No findings"
    assert state(page)["width"] == "3000.0" and page.locator('dd[data-tag="Modality"]').inner_text() == "DX"
    assert page.locator("#findings tbody tr").count() == 0
    page.errors[:] = [e for e in page.errors if "status of 503" not in e]  # the browser logs the refused /predict


@pytest.mark.parametrize("width,height", [(1280, 800), (390, 844)])
def test_layout_keeps_the_controls_in_view(browser, server, inputs, width, height):
    context = browser.new_context(viewport={"width": width, "height": height}, has_touch=width < 1000)
    page = context.new_page()
    open_image(page, server, inputs["dicom"])
    page.mouse.move(0, 0)
    scroll_width = page.evaluate("() => document.documentElement.scrollWidth")
    assert scroll_width <= width, f"horizontal overflow: {scroll_width} px in a {width} px viewport"
    for selector in (
        "#zoom-in",
        "#zoom-out",
        "#fit",
        "#one-to-one",
        "#preset",
        "#invert",
        "#reset",
        "#download-png",
        "#canvas",
    ):
        box = page.locator(selector).bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= width, selector
        assert box["y"] + box["height"] <= height, f"{selector} is below the first screen"
    stage, side = page.locator("#stage").bounding_box(), page.locator(".side").bounding_box()
    if width >= 1000:
        assert side["x"] >= stage["x"] + stage["width"] and stage["width"] > 600  # side by side
    else:
        assert side["y"] >= stage["y"] + stage["height"] and stage["width"] >= width - 30  # stacked, full width
    table = page.locator("#findings").bounding_box()
    assert table["x"] + table["width"] <= side["x"] + side["width"] + 0.5  # the findings' columns fit the side
    has_sr = "/predict/sr" in page.request.get(server.url + "/openapi.json").json()["paths"]
    assert page.locator("#download-sr").is_visible() == has_sr  # shown only where the service makes SRs
    slider = page.locator("#conf").bounding_box()
    assert slider["x"] >= 0 and slider["x"] + slider["width"] <= width
    h.ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = h.ARTIFACTS / f"viewer-{width}x{height}.png"
    page.screenshot(path=str(shot), full_page=True)
    assert cv2.imread(str(shot)).shape[1] == width  # the full page is no wider than the screen
    if width < 1000:
        check_touch_gestures(page)
    context.close()
