// A small live chart of a node's `value`: the last WINDOW of its history (one
// GET .../history when the node is shown), then every new sample from the event stream.
// Plain SVG built through the DOM; no library.

import * as api from "./api.js";
import { point, formatNumber } from "./model.js";

const NS = "http://www.w3.org/2000/svg";
const WINDOW = 10 * 60 * 1000; // ms shown
const KEEP = 2000;             // samples kept at most (thinned when more)
const W = 600, H = 90, PAD = 4;

function svg(tag, attrs) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  return el;
}

// A chart for node n's value (ps: its point schema); {el, refresh(n)}.
export function valueChart(n, ps) {
  const samples = []; // [ms, value], oldest first
  const el = document.createElement("figure");
  el.className = "chart";
  el.id = "value-chart";
  const box = svg("svg", { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none", role: "img" });
  const line = svg("polyline", { fill: "none", "stroke-width": 1.5, "vector-effect": "non-scaling-stroke" });
  box.append(line);
  const cap = document.createElement("figcaption");
  el.append(box, cap);
  let last = "";
  const unit = ps && ps.unit ? " " + ps.unit : "";

  function add(p) {
    if (!p || p.tombstone || typeof p.value !== "number") return;
    const t = Date.parse(p.time);
    if (samples.length && t <= samples[samples.length - 1][0]) return;
    samples.push([t, p.value]);
    if (samples.length > KEEP) {
      // Keep every other sample of the older half: the shape stays, the memory bounded.
      const half = samples.splice(0, KEEP / 2).filter((_, i) => i % 2 === 0);
      samples.unshift(...half);
    }
  }

  function draw() {
    const now = Date.now();
    while (samples.length > 2 && samples[1][0] < now - WINDOW) samples.shift();
    if (samples.length === 0) {
      line.setAttribute("points", "");
      cap.textContent = "no samples in the last 10 minutes";
      return;
    }
    let lo = Infinity, hi = -Infinity;
    for (const [, v] of samples) {
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    const span = hi - lo || Math.abs(hi) || 1;
    // The window, or less while the series is younger than it: the line fills the chart.
    const x0 = Math.max(now - WINDOW, samples[0][0]);
    const span_t = Math.max(now - x0, 1000);
    const pts = samples.map(([t, v]) => {
      const x = Math.max(0, ((t - x0) / span_t) * W);
      const y = H - PAD - ((v - lo) / span) * (H - 2 * PAD);
      return x.toFixed(1) + "," + y.toFixed(1);
    });
    // The last value holds until now.
    pts.push(W + "," + pts[pts.length - 1].split(",")[1]);
    line.setAttribute("points", pts.join(" "));
    const secs = Math.round(span_t / 1000);
    cap.textContent = "last " + (secs < 120 ? secs + " s" : Math.round(secs / 60) + " min") + ": " + formatNumber(lo, ps) + " to " + formatNumber(hi, ps) + unit +
      " (" + samples.length + " samples)";
  }

  (async () => {
    try {
      const from = new Date(Date.now() - WINDOW).toISOString();
      const r = await api.get("/v1/nodes/" + api.enc(n.id) + "/history?type=value&order=desc&limit=" + KEEP +
        "&from=" + encodeURIComponent(from));
      const old = r.samples.slice().reverse();
      const live = samples.splice(0);
      for (const p of old) add(p);
      for (const [t, v] of live) if (!samples.length || t > samples[samples.length - 1][0]) samples.push([t, v]);
    } catch (e) {
      cap.textContent = "history: " + e.message;
    }
    draw();
  })();

  return {
    el,
    refresh(m) {
      const p = point(m, "value");
      if (p && p.time !== last) {
        last = p.time;
        add(p);
      }
      draw();
    },
  };
}
