// Mouse, pen and touch on the viewer's canvas (Pointer Events):
//   wheel             zoom about the pointer
//   drag              pan (a click without moving picks the box under the pointer, or clears the pick)
//   right-drag, Ctrl/Shift/Alt-drag, or any drag with viewer.windowDrag on (the "W/L drag" button, touch)
//                     window/level: left-right = width, up-down = level, re-windowed once per animation frame
//   two fingers       pinch to zoom about their midpoint, and pan with it
"use strict";

window.attachViewerPointer = (viewer) => {
  const c = viewer.canvas, pointers = new Map();
  let drag = null, pinch = null;
  const local = (x, y) => { const r = c.getBoundingClientRect(); return [x - r.left, y - r.top]; };
  const spread = () => {
    const [a, b] = [...pointers.values()];
    return { dist: Math.hypot(a.x - b.x, a.y - b.y) || 1, mid: local((a.x + b.x) / 2, (a.y + b.y) / 2) };
  };

  function endDrag(e, click) {
    const d = drag;
    drag = null;
    c.classList.remove("windowing", "panning");
    if (!d) return;
    if (d.frame) { cancelAnimationFrame(d.frame); viewer.setWindow(...d.next); }
    if (click && d.mode === "pan" && d.moved < 4) {
      const i = viewer.findingAt(...local(e.clientX, e.clientY));
      if (viewer.hooks.onSelect) viewer.hooks.onSelect(i === viewer.selected ? -1 : i);
    }
  }

  c.addEventListener("contextmenu", (e) => e.preventDefault());
  c.addEventListener("wheel", (e) => {
    if (!viewer.info) return;
    e.preventDefault();
    viewer.zoomBy(Math.exp(-e.deltaY * 0.0015), ...local(e.clientX, e.clientY));
  }, { passive: false });

  c.addEventListener("pointerdown", (e) => {
    if (!viewer.info) return;
    const windowing = e.button === 2 || (e.button === 0 && (e.ctrlKey || e.shiftKey || e.altKey || viewer.windowDrag));
    if (e.button !== 0 && !windowing) return;
    c.setPointerCapture(e.pointerId);
    pointers.set(e.pointerId, { x: e.clientX, y: e.clientY });
    if (pointers.size === 2) { // a second finger: from drag to pinch
      endDrag(e, false);
      pinch = { ...spread(), scale: viewer.view.scale };
      return;
    }
    if (pointers.size > 2) return;
    drag = { mode: windowing ? "window" : "pan", x: e.clientX, y: e.clientY, moved: 0,
             center: viewer.window.center, width: viewer.window.width };
    c.classList.add(windowing ? "windowing" : "panning");
  });

  c.addEventListener("pointermove", (e) => {
    if (pointers.has(e.pointerId)) pointers.set(e.pointerId, { x: e.clientX, y: e.clientY });
    if (pinch && pointers.size === 2) {
      const now = spread();
      viewer.zoomTo(pinch.scale * (now.dist / pinch.dist), ...pinch.mid);
      viewer.panBy(now.mid[0] - pinch.mid[0], now.mid[1] - pinch.mid[1]);
      pinch.mid = now.mid;
      pinch.scale = viewer.view.scale;
      pinch.dist = now.dist;
      return;
    }
    const d = drag;
    if (!d) { if (viewer.info) hover(...local(e.clientX, e.clientY)); return; }
    const dx = e.clientX - d.x, dy = e.clientY - d.y;
    d.moved = Math.max(d.moved, Math.abs(dx) + Math.abs(dy));
    if (d.mode === "pan") { d.x = e.clientX; d.y = e.clientY; viewer.panBy(dx, dy); return; }
    const step = Math.max(viewer.info.window.width, 64) / 256; // one screen px = 1/256 of the file's window
    d.next = [d.center + dy * step, d.width + dx * step];
    if (!d.frame) d.frame = requestAnimationFrame(() => { d.frame = 0; viewer.setWindow(...d.next); });
  });

  const release = (e) => {
    pointers.delete(e.pointerId);
    if (pinch) { if (pointers.size < 2) pinch = null; return; }
    endDrag(e, e.type === "pointerup");
  };
  c.addEventListener("pointerup", release);
  c.addEventListener("pointercancel", release);
  c.addEventListener("pointerleave", () => { if (!drag && viewer.hooks.onHover) viewer.hooks.onHover(-1); });

  function hover(x, y) {
    const i = viewer.findingAt(x, y);
    c.style.cursor = i >= 0 ? "pointer" : "";
    if (i !== viewer.hover && viewer.hooks.onHover) viewer.hooks.onHover(i);
  }
};
