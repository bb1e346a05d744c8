// The image viewer: a radiograph at full resolution on a canvas, windowed in the page from its own bit
// depth (POST /render), with zoom, pan, window/level, invert, and the findings' boxes; the mouse and touch
// gestures are in pointer.js. No framework.
//
//   const viewer = new XrayViewer(canvas, { onHover(i), onSelect(i), onChange() });
//   viewer.setImage(typedArray, info);  viewer.setFindings(list);  viewer.setVisible((f) => bool);
"use strict";

const PALETTE = ["#ff3838", "#ffc81f", "#34dc34", "#00a0ff", "#cb38ff", "#ff8c00", "#ff64c8", "#50e6ff"];
const MIN_ZOOM = 1 / 64, MAX_ZOOM = 32;
const MAX_LABELS = 3; // more visible boxes than this on screen: only the hovered or selected one is labelled

class XrayViewer {
  constructor(canvas, hooks) {
    this.canvas = canvas;
    this.hooks = hooks || {};
    this.ctx = canvas.getContext("2d");
    this.bitmap = document.createElement("canvas"); // the windowed image at full resolution
    this.findings = [];
    this.visible = () => true;
    this.hover = -1;
    this.selected = -1;
    this.showBoxes = true;
    this.view = { scale: 1, x: 0, y: 0, fitted: true };
    this.windowDrag = false; // true: a plain drag (one finger) sets window/level instead of panning
    window.attachViewerPointer(this); // pointer.js: mouse, pen and touch
    new ResizeObserver(() => this.resize()).observe(canvas.parentElement);
  }

  // --- image and window/level ---
  setImage(pixels, info) {
    this.pixels = pixels;
    this.info = info;
    this.bitmap.width = info.width;
    this.bitmap.height = info.height;
    this.imageData = new ImageData(info.width, info.height);
    this.out = new Uint32Array(this.imageData.data.buffer);
    this.findings = [];
    this.hover = this.selected = -1;
    this.resetDisplay();
  }

  resetDisplay() {
    this.window = { ...this.info.window };
    this.preset = "file";
    this.invert = !!this.info.invert;
    this.renderWindow();
    this.fit();
  }

  setWindow(center, width, preset) {
    this.window = { center, width: Math.max(1, width) };
    this.preset = preset || "custom";
    this.renderWindow();
  }

  applyPreset(name) {
    if (name === "file") { this.setWindow(this.info.window.center, this.info.window.width, "file"); return; }
    const p = this.info.presets[name];
    if (p) this.setWindow(p.center, p.width, name);
  }

  toggleInvert() { this.invert = !this.invert; this.renderWindow(); }

  // The 8-bit display value of every possible stored value (a LUT), then one pass over the pixels.
  renderWindow() {
    const info = this.info, dtype = info.dtype;
    const size = dtype === "uint8" ? 256 : 65536, offset = dtype === "int16" ? 32768 : 0;
    const [slope, intercept] = info.rescale;
    const { center: c, width: w } = this.window;
    const fn = info.voi_function, pad = info.padding;
    const lut = new Uint32Array(size);
    for (let i = 0; i < size; i++) {
      const stored = i - offset, x = stored * slope + intercept;
      let y;
      if (fn === "SIGMOID") y = 1 / (1 + Math.exp((-4 * (x - c)) / w));
      else if (fn === "LINEAR_EXACT" || w <= 1) y = (x - c) / w + 0.5;
      else y = (x - (c - 0.5)) / (w - 1) + 0.5;
      let v = Math.round(Math.min(1, Math.max(0, y)) * 255);
      if (this.invert) v = 255 - v;
      if (pad && stored >= pad[0] && stored <= pad[1]) v = 0;
      lut[i] = 0xff000000 | (v << 16) | (v << 8) | v;
    }
    const px = this.pixels, out = this.out, n = px.length;
    if (offset) for (let i = 0; i < n; i++) out[i] = lut[px[i] + offset];
    else for (let i = 0; i < n; i++) out[i] = lut[px[i]];
    this.bitmap.getContext("2d").putImageData(this.imageData, 0, 0);
    this.draw();
    this.changed();
  }

  // --- zoom and pan (view.scale: screen px per image px; view.x/y: the image's top-left on screen) ---
  resize() {
    const box = this.canvas.parentElement.getBoundingClientRect();
    const dpr = window.devicePixelRatio || 1;
    this.cssWidth = Math.max(1, Math.floor(box.width));
    this.cssHeight = Math.max(1, Math.floor(box.height));
    this.canvas.width = Math.round(this.cssWidth * dpr);
    this.canvas.height = Math.round(this.cssHeight * dpr);
    this.canvas.style.width = `${this.cssWidth}px`;
    this.canvas.style.height = `${this.cssHeight}px`;
    if (this.info && this.view.fitted) this.fit();
    else this.draw();
  }

  fit() {
    if (!this.info || !this.cssWidth) return;
    const s = Math.min(this.cssWidth / this.info.width, this.cssHeight / this.info.height);
    this.view = { scale: s, x: (this.cssWidth - s * this.info.width) / 2,
                  y: (this.cssHeight - s * this.info.height) / 2, fitted: true };
    this.draw();
    this.changed();
  }

  zoomTo(scale, cx, cy) {
    if (!this.info) return;
    const s = Math.min(MAX_ZOOM, Math.max(MIN_ZOOM, scale));
    cx = cx === undefined ? this.cssWidth / 2 : cx;
    cy = cy === undefined ? this.cssHeight / 2 : cy;
    const v = this.view, ix = (cx - v.x) / v.scale, iy = (cy - v.y) / v.scale;
    this.view = { scale: s, x: cx - ix * s, y: cy - iy * s, fitted: false };
    this.draw();
    this.changed();
  }

  zoomBy(factor, cx, cy) { this.zoomTo(this.view.scale * factor, cx, cy); }

  panBy(dx, dy) {
    this.view = { ...this.view, x: this.view.x + dx, y: this.view.y + dy, fitted: false };
    this.draw();
    this.changed();
  }

  // --- findings ---
  setFindings(findings) { this.findings = findings; this.hover = this.selected = -1; this.draw(); }
  setVisible(predicate) { this.visible = predicate; this.draw(); }
  setHover(i) { if (i !== this.hover) { this.hover = i; this.draw(); this.changed(); } }
  setSelected(i) { if (i !== this.selected) { this.selected = i; this.draw(); this.changed(); } }

  findingAt(sx, sy) {
    const v = this.view, x = (sx - v.x) / v.scale, y = (sy - v.y) / v.scale;
    let best = -1, bestArea = Infinity;
    this.findings.forEach((f, i) => {
      const [x1, y1, x2, y2] = f.box, area = (x2 - x1) * (y2 - y1);
      if (this.showBoxes && this.visible(f) && x >= x1 && x <= x2 && y >= y1 && y <= y2 && area < bestArea) {
        best = i; bestArea = area;
      }
    });
    return best;
  }

  // --- drawing ---
  draw() {
    const ctx = this.ctx, dpr = window.devicePixelRatio || 1, v = this.view;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, this.canvas.width, this.canvas.height);
    if (!this.info) return;
    ctx.setTransform(dpr * v.scale, 0, 0, dpr * v.scale, dpr * v.x, dpr * v.y);
    ctx.imageSmoothingEnabled = v.scale < 2;
    ctx.drawImage(this.bitmap, 0, 0);
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    if (this.showBoxes) this.drawBoxes(ctx, (px) => px * v.scale, v.x, v.y, 13);
  }

  drawBoxes(ctx, scale, ox, oy, font, labelAll) {
    const order = this.findings.map((f, i) => i).filter((i) => this.visible(this.findings[i]));
    order.sort((a, b) => this.emphasis(a) - this.emphasis(b)); // the highlighted box on top
    labelAll = labelAll || order.length <= MAX_LABELS;
    for (const i of order) {
      const f = this.findings[i], [x1, y1, x2, y2] = f.box, strong = this.emphasis(i) > 0;
      const x = ox + scale(x1), y = oy + scale(y1), w = scale(x2 - x1), h = scale(y2 - y1);
      ctx.strokeStyle = PALETTE[f.class_id % PALETTE.length];
      ctx.lineWidth = strong ? font / 3.5 : font / 8;
      ctx.strokeRect(x, y, w, h);
      if (strong) { ctx.fillStyle = "rgba(255,255,255,0.12)"; ctx.fillRect(x, y, w, h); }
      if (!strong && !labelAll) continue;
      const text = `${f.label} ${f.confidence.toFixed(2)}`;
      ctx.font = `${strong ? "bold " : ""}${font}px system-ui, sans-serif`;
      const tw = ctx.measureText(text).width + font * 0.6, th = font * 1.4;
      const ty = y - th >= 0 ? y - th : y;
      ctx.fillStyle = ctx.strokeStyle;
      ctx.fillRect(x, ty, tw, th);
      ctx.fillStyle = "#000";
      ctx.fillText(text, x + font * 0.3, ty + font * 1.05);
    }
  }

  emphasis(i) { return i === this.selected ? 2 : i === this.hover ? 1 : 0; }

  // The radiograph at full resolution as displayed (window, invert) with the visible boxes (unless hidden), as PNG.
  exportPng() {
    const out = document.createElement("canvas");
    out.width = this.info.width;
    out.height = this.info.height;
    const ctx = out.getContext("2d");
    ctx.drawImage(this.bitmap, 0, 0);
    const keep = [this.hover, this.selected];
    this.hover = this.selected = -1;
    const font = Math.max(12, Math.round(Math.max(out.width, out.height) / 80));
    if (this.showBoxes) this.drawBoxes(ctx, (px) => px, 0, 0, font, true);
    [this.hover, this.selected] = keep;
    return new Promise((resolve) => out.toBlob(resolve, "image/png"));
  }

  changed() {
    const d = this.canvas.dataset, v = this.view;
    d.zoom = v.scale.toFixed(4);
    d.viewX = v.x.toFixed(2);
    d.viewY = v.y.toFixed(2);
    if (this.window) { d.center = this.window.center.toFixed(1); d.width = this.window.width.toFixed(1); }
    d.invert = String(!!this.invert);
    d.preset = this.preset || "";
    d.hover = String(this.hover);
    d.selected = String(this.selected);
    if (this.hooks.onChange) this.hooks.onChange();
  }
}

window.XrayViewer = XrayViewer;
window.XRAY_PALETTE = PALETTE;
