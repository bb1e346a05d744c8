// The findings list beside the viewer: one row per finding (label, confidence, size in mm when the DICOM
// has a pixel spacing, else in pixels), per-class toggles and a confidence slider that filters the findings
// of one request made at a low threshold (no new request). Rows and boxes are linked through the hooks.
//
//   const panel = new FindingsPanel(elements, { onHover(i), onSelect(i), onFilter() });
//   panel.setResult(findings, [rowMm, colMm] | null);  panel.isVisible(finding);  panel.setSelected(i);
"use strict";

class FindingsPanel {
  constructor(el, hooks) {
    this.el = el;
    this.hooks = hooks;
    this.findings = [];
    this.classOn = new Map();
    this.hover = this.selected = -1;
    el.slider.addEventListener("input", () => this.filterChanged());
    el.table.addEventListener("pointerleave", () => hooks.onHover(-1));
  }

  get threshold() { return Number(this.el.slider.value); }

  setThreshold(value) {
    this.el.slider.value = value;
    this.filterChanged();
  }

  // No result (yet): the message instead of a count ("Analysing…", "Not analysed").
  clear(message) {
    this.setResult([], null);
    this.message = message;
    this.renderRows();
  }

  setResult(findings, spacing) {
    this.message = null;
    this.findings = findings;
    this.spacing = spacing;
    this.hover = this.selected = -1;
    this.classOn = new Map([...new Set(findings.map((f) => f.label))].sort().map((label) => [label, true]));
    this.renderToggles();
    this.filterChanged();
  }

  isVisible(f) { return f.confidence >= this.threshold && this.classOn.get(f.label) !== false; }

  visibleIndexes() { return this.findings.map((f, i) => i).filter((i) => this.isVisible(this.findings[i])); }

  filterChanged() {
    this.el.sliderValue.textContent = this.threshold.toFixed(2);
    if (this.selected >= 0 && !this.isVisible(this.findings[this.selected])) this.hooks.onSelect(-1);
    this.renderRows();
    this.renderToggles();
    this.hooks.onFilter();
  }

  size(f) {
    const [x1, y1, x2, y2] = f.box;
    if (this.spacing) {
      const [row, col] = this.spacing;
      return `${((x2 - x1) * col).toFixed(0)} × ${((y2 - y1) * row).toFixed(0)} mm`;
    }
    return `${Math.round(x2 - x1)} × ${Math.round(y2 - y1)} px`;
  }

  renderRows() {
    const { table, summary, note } = this.el, tbody = table.tBodies[0];
    tbody.replaceChildren();
    const shown = this.visibleIndexes();
    for (const i of shown) {
      const f = this.findings[i], row = tbody.insertRow();
      row.dataset.index = String(i);
      row.tabIndex = 0;
      const label = row.insertCell();
      const swatch = document.createElement("span");
      swatch.className = "swatch";
      swatch.style.background = window.XRAY_PALETTE[f.class_id % window.XRAY_PALETTE.length];
      label.append(swatch, f.label);
      const conf = row.insertCell();
      conf.textContent = `${(f.confidence * 100).toFixed(1)} %`;
      conf.className = "num";
      const size = row.insertCell();
      size.textContent = this.size(f);
      size.className = "num";
      row.addEventListener("pointerenter", () => this.hooks.onHover(i));
      row.addEventListener("focus", () => this.hooks.onHover(i));
      row.addEventListener("click", () => this.hooks.onSelect(i === this.selected ? -1 : i));
      row.addEventListener("keydown", (e) => {
        if (e.key === "Enter" || e.key === " ") { e.preventDefault(); this.hooks.onSelect(i); }
      });
    }
    table.hidden = shown.length === 0;
    const noun = shown.length === 1 ? "finding" : "findings";
    summary.textContent = this.message || (shown.length ? `${shown.length} ${noun}` : "No findings");
    summary.className = this.message ? "pending" : shown.length ? "" : "none";
    const hidden = this.findings.length - shown.length;
    note.textContent = hidden ? `${hidden} more below the threshold or switched off` : "";
    this.mark();
  }

  renderToggles() {
    const box = this.el.toggles;
    box.replaceChildren();
    for (const [label, on] of this.classOn) {
      const all = this.findings.filter((f) => f.label === label);
      const above = all.filter((f) => f.confidence >= this.threshold).length;
      const item = document.createElement("label");
      item.className = "toggle";
      const input = document.createElement("input");
      input.type = "checkbox";
      input.checked = on;
      input.dataset.label = label;
      input.addEventListener("change", () => { this.classOn.set(label, input.checked); this.filterChanged(); });
      const swatch = document.createElement("span");
      swatch.className = "swatch";
      swatch.style.background = window.XRAY_PALETTE[all[0].class_id % window.XRAY_PALETTE.length];
      item.append(input, swatch, `${label} (${above})`);
      box.append(item);
    }
    box.hidden = this.classOn.size === 0;
  }

  setHover(i) { this.hover = i; this.mark(); }

  setSelected(i) {
    this.selected = i;
    this.mark();
    const row = this.row(i);
    if (row) row.scrollIntoView({ block: "nearest" });
  }

  row(i) { return i < 0 ? null : this.el.table.querySelector(`tr[data-index="${i}"]`); }

  mark() {
    for (const row of this.el.table.tBodies[0].rows) {
      const i = Number(row.dataset.index);
      row.classList.toggle("hover", i === this.hover);
      row.classList.toggle("selected", i === this.selected);
      row.setAttribute("aria-selected", String(i === this.selected));
    }
  }

  // Next/previous visible finding from the selected one (keyboard).
  step(direction) {
    const shown = this.visibleIndexes();
    if (!shown.length) return;
    const at = shown.indexOf(this.selected);
    const next = at < 0 ? (direction > 0 ? 0 : shown.length - 1) : (at + direction + shown.length) % shown.length;
    this.hooks.onSelect(shown[next]);
  }
}

window.FindingsPanel = FindingsPanel;
