// The page: open a radiograph (drop or choose), ask POST /render (pixels in their own bit depth) and
// POST /predict (findings at a low threshold, filtered here) at once, then show both in the viewer
// (viewer.js) and the findings panel (findings.js); DICOM tags, downloads and keyboard shortcuts.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const FLOOR = 0.05; // the threshold /predict is asked with; the slider filters above it
  const TAG_LABELS = {
    Modality: "Modality", ViewPosition: "View position", Rows: "Rows", Columns: "Columns",
    PixelSpacing: "Pixel spacing (mm)", ImagerPixelSpacing: "Imager pixel spacing (mm)",
    PhotometricInterpretation: "Photometric interpretation", BitsStored: "Bits stored",
    NumberOfFrames: "Frames", TransferSyntax: "Transfer syntax",
  };
  const ARRAYS = { uint8: Uint8Array, uint16: Uint16Array, int16: Int16Array };
  const statusLine = $("status"), canvas = $("canvas");
  let current = null, opened = 0, defaultConf = 0.25;

  const viewer = new window.XrayViewer(canvas, {
    onHover: (i) => link("hover", i), onSelect: (i) => link("select", i), onChange: readout,
  });
  const panel = new window.FindingsPanel(
    { table: $("findings"), toggles: $("class-toggles"), slider: $("conf"), sliderValue: $("conf-value"),
      summary: $("summary"), note: $("filter-note") },
    { onHover: (i) => link("hover", i), onSelect: (i) => link("select", i),
      onFilter: () => { viewer.setVisible((f) => panel.isVisible(f)); updateStatus(); } },
  );

  function link(kind, i) {
    if (kind === "hover") { viewer.setHover(i); panel.setHover(i); return; }
    viewer.setSelected(i);
    panel.setSelected(i);
  }

  function setStatus(text, isError) {
    statusLine.textContent = text;
    statusLine.className = isError ? "error" : "";
  }

  function errorText(status, body) {
    const detail = body && body.detail;
    if (typeof detail === "string") return detail;
    if (detail && detail.message) return detail.message;
    if (Array.isArray(detail)) return detail.map((d) => d.msg).join("; ");
    return `request failed (HTTP ${status})`;
  }

  async function loadConfig() {
    try {
      const config = await (await fetch("/config")).json();
      defaultConf = Math.max(FLOOR, Number(config.thresholds.conf));
      panel.setThreshold(defaultConf);
      $("model-line").textContent = config.model
        ? `Model ${config.model.name}, version ${config.model.version}`
        : `No model loaded: ${config.model_detail || "unknown reason"}`;
    } catch (err) {
      $("model-line").textContent = "Model information unavailable";
    }
    try { // DICOM SR download only where the service has the route
      const paths = (await (await fetch("/openapi.json")).json()).paths || {};
      $("download-sr").hidden = !paths["/predict/sr"];
    } catch (err) { /* no schema: no SR button */ }
  }

  async function post(path, file) {
    const data = new FormData();
    data.append("file", file);
    const response = await fetch(path, { method: "POST", body: data });
    if (response.ok) return response;
    let body = null;
    try { body = await response.json(); } catch (err) { body = null; }
    throw new Error(errorText(response.status, body));
  }

  async function render(file) {
    const response = await post("/render", file);
    const info = JSON.parse(response.headers.get("X-Render-Info"));
    const buffer = await response.arrayBuffer(), Type = ARRAYS[info.dtype];
    if (!Type || buffer.byteLength !== info.width * info.height * Type.BYTES_PER_ELEMENT) {
      throw new Error(`unexpected pixel data (${buffer.byteLength} bytes for ${info.width}×${info.height} ${info.dtype})`);
    }
    return { pixels: new Type(buffer), info };
  }

  async function open(file) {
    const ticket = ++opened;
    setStatus(`Opening ${file.name}…`, false);
    const t0 = performance.now();
    const predicted = post(`/predict?conf=${FLOOR}`, file).then((r) => r.json());
    predicted.catch(() => {}); // handled below, after the image
    let image;
    try {
      image = await render(file);
    } catch (err) {
      if (ticket !== opened) return;
      $("result").hidden = true;
      setStatus(`Cannot open ${file.name}: ${err.message}`, true);
      return;
    }
    if (ticket !== opened) return;
    const renderMs = performance.now() - t0;
    $("result").hidden = false;
    viewer.setImage(image.pixels, image.info);
    showTags(image.info.dicom);
    current = { file, info: image.info, result: null, renderMs };
    viewer.setFindings([]);
    panel.clear("Analysing…");
    $("details").textContent = "";
    setStatus(`${file.name}: analysing…`, false);
    try {
      current.result = await predicted;
    } catch (err) {
      if (ticket !== opened) return;
      panel.clear("Not analysed");
      setStatus(`Cannot analyse ${file.name}: ${err.message}`, true);
      return;
    }
    if (ticket !== opened) return;
    viewer.setFindings(current.result.findings);
    panel.setResult(current.result.findings, image.info.pixel_spacing_mm);
    details();
  }

  function updateStatus() {
    if (!current || !current.result) return;
    const shown = panel.visibleIndexes().length;
    const text = shown ? `${shown} finding${shown === 1 ? "" : "s"}` : "No findings";
    setStatus(`${current.file.name}: ${text} at confidence ≥ ${panel.threshold.toFixed(2)}`, false);
  }

  function details() {
    const r = current.result, info = current.info, t = r.timings_ms;
    const depth = info.dtype === "uint8" ? "8-bit" : `${info.dtype === "int16" ? "signed " : ""}16-bit`;
    const spacing = info.pixel_spacing_mm ? ` · ${info.pixel_spacing_mm[1]} mm/px` : "";
    $("details").textContent =
      `${info.format.toUpperCase()} ${info.width}×${info.height} px, ${depth}${spacing} · ` +
      `model ${r.model.name}, version ${r.model.version} · analysis ${t.total.toFixed(0)} ms ` +
      `(decode ${t.decode.toFixed(0)}, inference ${(t.inference || 0).toFixed(0)}) · ` +
      `display ${current.renderMs.toFixed(0)} ms` + (r.image.note ? ` · ${r.image.note}` : "");
    updateStatus();
  }

  function showTags(tags) {
    const list = $("dicom-tags");
    list.replaceChildren();
    for (const [key, value] of Object.entries(tags || {})) {
      const dt = document.createElement("dt"), dd = document.createElement("dd");
      dt.textContent = TAG_LABELS[key] || key;
      dd.textContent = key.endsWith("PixelSpacing") ? value.split("\\").join(" × ") : value;
      dd.dataset.tag = key;
      list.append(dt, dd);
    }
    $("dicom-panel").hidden = !tags;
  }

  function readout() {
    if (!viewer.info) return;
    const w = viewer.window;
    $("readout").textContent =
      `zoom ${(viewer.view.scale * 100).toFixed(0)} % · W ${w.width.toFixed(0)} L ${w.center.toFixed(0)}`;
    const preset = $("preset");
    preset.value = viewer.preset;
    $("invert").setAttribute("aria-pressed", String(viewer.invert));
    $("wl-drag").setAttribute("aria-pressed", String(viewer.windowDrag));
  }

  function stem() { return current.file.name.replace(/\.[^.]*$/, "") || "radiograph"; }

  function save(blob, name) {
    const a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = name;
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 60000);
  }

  async function downloadSr() {
    try {
      const response = await post(`/predict/sr?conf=${panel.threshold}`, current.file);
      save(await response.blob(), `${stem()}-findings-sr.dcm`);
    } catch (err) {
      setStatus(`Cannot make the DICOM SR: ${err.message}`, true);
    }
  }

  const actions = {
    zoomIn: () => viewer.zoomBy(1.25), zoomOut: () => viewer.zoomBy(0.8), fit: () => viewer.fit(),
    oneToOne: () => viewer.zoomTo(1 / (window.devicePixelRatio || 1)), invert: () => viewer.toggleInvert(),
    windowDrag: () => { viewer.windowDrag = !viewer.windowDrag; readout(); },
    reset: () => { viewer.resetDisplay(); link("select", -1); },
  };
  const KEYS = {
    "+": actions.zoomIn, "=": actions.zoomIn, "-": actions.zoomOut, f: actions.fit, 0: actions.fit,
    1: actions.oneToOne, i: actions.invert, r: actions.reset, w: actions.windowDrag,
    v: () => viewer.applyPreset("file"), l: () => viewer.applyPreset("lung"),
    m: () => viewer.applyPreset("mediastinum"), b: () => viewer.applyPreset("bone"),
    n: () => panel.step(1), p: () => panel.step(-1), escape: () => link("select", -1),
    h: () => { viewer.showBoxes = !viewer.showBoxes; viewer.draw(); },
    arrowleft: () => viewer.panBy(60, 0), arrowright: () => viewer.panBy(-60, 0),
    arrowup: () => viewer.panBy(0, 60), arrowdown: () => viewer.panBy(0, -60),
  };

  document.addEventListener("keydown", (e) => {
    const target = e.target, tag = target.tagName;
    if (!viewer.info || e.ctrlKey || e.metaKey || e.altKey || tag === "SELECT" || tag === "TEXTAREA") return;
    if (tag === "INPUT" && (target.type !== "range" || e.key.startsWith("Arrow"))) return;
    const action = KEYS[e.key.toLowerCase()];
    if (!action) return;
    e.preventDefault();
    action();
  });

  $("zoom-in").addEventListener("click", actions.zoomIn);
  $("zoom-out").addEventListener("click", actions.zoomOut);
  $("fit").addEventListener("click", actions.fit);
  $("one-to-one").addEventListener("click", actions.oneToOne);
  $("invert").addEventListener("click", actions.invert);
  $("wl-drag").addEventListener("click", actions.windowDrag);
  $("reset").addEventListener("click", actions.reset);
  $("preset").addEventListener("change", (e) => viewer.applyPreset(e.target.value));
  $("download-png").addEventListener("click", async () => save(await viewer.exportPng(), `${stem()}-annotated.png`));
  $("download-sr").addEventListener("click", downloadSr);

  const fileInput = $("file"), zone = $("dropzone");
  fileInput.addEventListener("change", () => { if (fileInput.files.length) open(fileInput.files[0]); });
  $("upload-form").addEventListener("submit", (e) => e.preventDefault());
  document.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("dragging"); });
  document.addEventListener("dragleave", (e) => { if (!e.relatedTarget) zone.classList.remove("dragging"); });
  document.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("dragging");
    const file = e.dataTransfer && e.dataTransfer.files[0];
    if (file) open(file);
  });
  loadConfig();
})();
