// Upload a radiograph to POST /predict?include_image=true and show the annotated image and findings.
"use strict";

const $ = (id) => document.getElementById(id);
const form = $("upload-form"), fileInput = $("file"), button = $("analyse");
const conf = $("conf"), confValue = $("conf-value"), statusLine = $("status");

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
    const response = await fetch("/config");
    const config = await response.json();
    conf.value = config.thresholds.conf;
    confValue.textContent = Number(config.thresholds.conf).toFixed(2);
    $("model-line").textContent = config.model
      ? `Model ${config.model.name}, version ${config.model.version} (${config.model.architecture || "YOLO"})`
      : `No model loaded: ${config.model_detail || "unknown reason"}`;
  } catch (err) {
    $("model-line").textContent = "Model information unavailable";
  }
}

function showResult(result) {
  $("annotated").src = result.annotated_image;
  const summary = $("summary");
  summary.textContent = result.findings.length ? `${result.findings.length} finding(s)` : "No findings";
  summary.className = result.findings.length ? "" : "none";
  const table = $("findings"), tbody = table.querySelector("tbody");
  tbody.replaceChildren();
  for (const f of result.findings) {
    const row = tbody.insertRow();
    row.insertCell().textContent = f.label;
    const c = row.insertCell();
    c.textContent = `${(f.confidence * 100).toFixed(1)} %`;
    c.className = "num";
    const b = row.insertCell();
    b.textContent = f.box.map((v) => Math.round(v)).join(", ");
    b.className = "num";
  }
  table.hidden = result.findings.length === 0;
  const t = result.timings_ms;
  $("details").textContent =
    `${result.image.format.toUpperCase()} ${result.image.width}×${result.image.height} px · ` +
    `model ${result.model.name}, version ${result.model.version} · ` +
    `${t.total.toFixed(0)} ms (decode ${t.decode.toFixed(0)}, inference ${t.inference.toFixed(0)}, ` +
    `drawing ${(t.annotate || 0).toFixed(0)})`;
  $("result").hidden = false;
}

async function analyse(event) {
  event.preventDefault();
  const file = fileInput.files[0];
  if (!file) return;
  button.disabled = true;
  setStatus(`Analysing ${file.name}…`, false);
  const data = new FormData();
  data.append("file", file);
  try {
    const url = `/predict?include_image=true&conf=${encodeURIComponent(conf.value)}`;
    const response = await fetch(url, { method: "POST", body: data });
    let body = null;
    try { body = await response.json(); } catch (err) { body = null; }
    if (!response.ok) {
      $("result").hidden = true;
      setStatus(`Cannot analyse ${file.name}: ${errorText(response.status, body)}`, true);
      return;
    }
    showResult(body);
    setStatus(`${file.name}: ${body.summary}`, false);
  } catch (err) {
    setStatus(`Network error: ${err}`, true);
  } finally {
    button.disabled = !fileInput.files.length;
  }
}

conf.addEventListener("input", () => { confValue.textContent = Number(conf.value).toFixed(2); });
fileInput.addEventListener("change", () => {
  button.disabled = !fileInput.files.length;
  if (fileInput.files.length) form.requestSubmit();
});
form.addEventListener("submit", analyse);
loadConfig();
