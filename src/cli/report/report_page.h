// The page around a report: styles and the script that draws its charts, all inline so the
// file opens anywhere without a network. The script draws SVG by hand (no chart library):
// stacked areas with the peak marked and gaps shown, a value read-out under the pointer, and
// the L1 map of one core as `ttmem top` paints it. When a chart has drawn, its element gets
// data-drawn="yes" and the page counts charts drawn in <html data-charts-drawn> (the browser
// test reads both).
#pragma once

#include <string>

namespace ttmem::report {

inline constexpr const char* kStyle = R"CSS(
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px auto; max-width: 1100px; color: #222; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 18px; margin: 28px 0 8px; }
h3 { font-size: 14px; margin: 16px 0 6px; color: #444; }
.dim { color: #777; font-weight: normal; } .ok { color: #2a7d2a; }
table { border-collapse: collapse; margin: 4px 0 8px; }
th, td { padding: 3px 10px; border-bottom: 1px solid #e4e4e4; text-align: right; }
th { background: #f4f4f4; font-weight: 600; } td:first-child, th:first-child { text-align: left; }
ul.failures li { color: #a33; } ul.failures li.ok { color: #2a7d2a; }
section.device { border-top: 2px solid #ddd; }
.chart, .l1map { position: relative; }
.chart svg text, .l1map svg text { font: 11px system-ui, sans-serif; fill: #444; }
.tip { position: absolute; pointer-events: none; background: rgba(255,255,255,.95);
       border: 1px solid #bbb; padding: 4px 8px; font-size: 12px; display: none; white-space: nowrap; }
)CSS";

inline constexpr const char* kScript = R"JS(
"use strict";
const SVG = "http://www.w3.org/2000/svg";
const COLORS = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1",
                "#ff9da7", "#9c755f", "#bab0ac"];
const REGIONS = [["firmware", "#9a9a9a"], ["CB region", "#f28e2b"], ["clash margin", "#cfe8c4"],
                 ["free", "#f7f7f7"], ["L1 buffer", "#4e79a7"], ["L1_SMALL free", "#f6efc8"],
                 ["L1_SMALL buffer", "#b07aa1"], ["CB/L1 clash", "#d62728"]];

function el(name, attrs, parent) {
  const e = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (parent) parent.appendChild(e);
  return e;
}
function text(parent, x, y, s, anchor) {
  const t = el("text", {x: x, y: y, "text-anchor": anchor || "start"}, parent);
  t.textContent = s;
  return t;
}
function bytes(b) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (b >= 1024 && i < units.length - 1) { b /= 1024; i++; }
  return (i === 0 ? b.toFixed(0) : b.toFixed(2)) + " " + units[i];
}
function niceStep(max, ticks) {
  const raw = max / ticks, p = Math.pow(2, Math.floor(Math.log2(raw)));
  return [1, 2, 4, 8].map(m => m * p).find(s => s >= raw) || raw;
}

// Stacked area chart of `series` (arrays of bytes) over `times` (seconds).
function stacked(host, times, series, peak, gaps) {
  const W = 1000, H = 260, L = 80, R = 170, T = 10, B = 28;
  const svg = el("svg", {viewBox: `0 0 ${W} ${H}`, width: "100%", role: "img"}, host);
  const n = times.length, t0 = times[0], t1 = Math.max(times[n - 1], t0 + 1e-9);
  const sums = new Array(n).fill(0);
  series.forEach(s => s.values.forEach((v, i) => { sums[i] += v; }));
  const ymax = Math.max(1, ...sums) * 1.08;
  const x = t => L + (t - t0) / (t1 - t0) * (W - L - R);
  const y = v => H - B - v / ymax * (H - T - B);
  const step = niceStep(ymax, 4);
  for (let v = 0; v <= ymax; v += step) {
    el("line", {x1: L, x2: W - R, y1: y(v), y2: y(v), stroke: "#eee"}, svg);
    text(svg, L - 6, y(v) + 4, bytes(v), "end");
  }
  for (let i = 0; i <= 5; i++) {
    const t = t0 + (t1 - t0) * i / 5;
    text(svg, x(t), H - 8, t.toFixed(t1 - t0 < 1 ? 3 : 1) + " s", "middle");
  }
  // Each series stacks on the ones before it; a step shape, as memory changes at events.
  const base = new Array(n).fill(0);
  let drawn = 0;
  series.forEach((s, k) => {
    const top = base.map((b, i) => b + s.values[i]);
    let d = `M${x(times[0])},${y(top[0])}`;
    for (let i = 1; i < n; i++) d += `H${x(times[i])}V${y(top[i])}`;
    for (let i = n - 1; i > 0; i--) d += `V${y(base[i])}H${x(times[i - 1])}`;
    d += `V${y(base[0])}Z`;
    const color = COLORS[k % COLORS.length];
    el("path", {d: d, fill: color, "fill-opacity": 0.8, stroke: color, "stroke-width": 0.5}, svg);
    drawn++;
    el("rect", {x: W - R + 12, y: T + k * 18, width: 12, height: 12, fill: color}, svg);
    text(svg, W - R + 30, T + k * 18 + 10, s.name.length > 22 ? s.name.slice(0, 21) + "…" : s.name);
    for (let i = 0; i < n; i++) base[i] = top[i];
  });
  (gaps || []).forEach(g => {
    if (g < t0 || g > t1) return;
    el("line", {x1: x(g), x2: x(g), y1: T, y2: H - B, stroke: "#d62728", "stroke-dasharray": "2,3"}, svg);
  });
  if (peak) {
    el("line", {x1: x(peak.t), x2: x(peak.t), y1: T, y2: H - B, stroke: "#000", "stroke-width": 1}, svg);
    el("circle", {cx: x(peak.t), cy: y(peak.bytes), r: 4, fill: "#000"}, svg);
    text(svg, Math.min(x(peak.t) + 6, W - R - 120), T + 12, "peak " + bytes(peak.bytes) +
         " at " + peak.t.toFixed(3) + " s");
  }
  // Read-out: the values at the sample under the pointer.
  const tip = document.createElement("div");
  tip.className = "tip";
  host.appendChild(tip);
  const cursor = el("line", {y1: T, y2: H - B, stroke: "#888", visibility: "hidden"}, svg);
  svg.addEventListener("mousemove", ev => {
    const box = svg.getBoundingClientRect();
    const px = (ev.clientX - box.left) / box.width * W;
    const t = t0 + (px - L) / (W - L - R) * (t1 - t0);
    let i = 0;
    while (i + 1 < n && times[i + 1] <= t) i++;
    cursor.setAttribute("x1", x(times[i]));
    cursor.setAttribute("x2", x(times[i]));
    cursor.setAttribute("visibility", "visible");
    const rows = series.filter(s => s.values[i] > 0).map(s => `${s.name}: ${bytes(s.values[i])}`);
    tip.textContent = "";
    [`${times[i].toFixed(6)} s, total ${bytes(sums[i])}`].concat(rows).forEach(line => {
      const div = document.createElement("div");
      div.textContent = line;
      tip.appendChild(div);
    });
    tip.style.display = "block";
    tip.style.left = Math.min(ev.clientX - box.left + 12, box.width - 260) + "px";
    tip.style.top = "10px";
  });
  svg.addEventListener("mouseleave", () => {
    tip.style.display = "none";
    cursor.setAttribute("visibility", "hidden");
  });
  return drawn;
}

// One core's L1 from address 0 to its top, in rows, as `ttmem top --view l1map` paints it.
function l1map(host, m) {
  const W = 1000, L = 80, rows = 12, rowH = 16, legendH = 40;
  const H = rows * (rowH + 4) + legendH;
  const svg = el("svg", {viewBox: `0 0 ${W} ${H}`, width: "100%", role: "img"}, host);
  const perRow = Math.ceil(m.l1_per_core / rows / 64) * 64;
  const x = a => L + a / perRow * (W - L - 10);
  let drawn = 0;
  for (let r = 0; r < rows; r++) {
    const lo = r * perRow, hi = Math.min(lo + perRow, m.l1_per_core);
    if (lo >= hi) break;
    text(svg, L - 6, r * (rowH + 4) + 12, "0x" + lo.toString(16), "end");
    for (const [b, e, region] of m.spans) {
      const a = Math.max(b, lo), z = Math.min(e, hi);
      if (z <= a) continue;
      // At least a pixel: a margin or clash of a few bytes must stay visible.
      el("rect", {x: x(a - lo), y: r * (rowH + 4), width: Math.max(x(z - lo) - x(a - lo), 1),
                  height: rowH, fill: REGIONS[region][1]}, svg);
      drawn++;
    }
  }
  let lx = L;
  REGIONS.forEach(([name, color]) => {
    el("rect", {x: lx, y: H - legendH + 8, width: 12, height: 12, fill: color, stroke: "#999"}, svg);
    text(svg, lx + 16, H - legendH + 18, name);
    lx += 20 + name.length * 7;
  });
  const margin = m.has_l1_buffers ? (m.clash_margin < 0 ? "CLASH " : "") + bytes(Math.abs(m.clash_margin))
                                  : "no L1 buffers";
  text(svg, L, H - 6, `firmware 0x0-0x${m.unreserved_base.toString(16)}   CB region ` +
       `0x${m.unreserved_base.toString(16)}-0x${m.cb_region_end.toString(16)} ` +
       `(${bytes(m.cb_region_end - m.unreserved_base)})   clash margin ${margin}`);
  return drawn;
}

function drawAll() {
  const data = JSON.parse(document.getElementById("report-data").textContent);
  let charts = 0;
  const mark = (host, drawn) => {
    host.dataset.drawn = drawn > 0 ? "yes" : "no";
    if (drawn > 0) charts++;
    else console.error("chart " + host.id + " drew nothing");
  };
  for (const c of data.charts) {
    mark(document.getElementById(c.id + "-kinds"),
         stacked(document.getElementById(c.id + "-kinds"), c.times, c.kinds, c.peak, data.gaps));
    mark(document.getElementById(c.id + "-ops"),
         stacked(document.getElementById(c.id + "-ops"), c.times, c.ops, c.peak, data.gaps));
    if (c.l1map) {
      const host = document.getElementById(c.id + "-l1");
      mark(host, l1map(host, c.l1map));
    }
  }
  document.documentElement.dataset.chartsDrawn = String(charts);
}
drawAll();
)JS";

inline std::string page(const std::string& title_html, const std::string& body_html,
                        const std::string& data_json) {
  return std::string("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                     "<meta name=\"viewport\" content=\"width=device-width\">"
                     // No network: nothing may be fetched, whatever the page contains.
                     "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
                     "style-src 'unsafe-inline'; script-src 'unsafe-inline'\">"
                     "<title>ttmem report: ") +
         title_html + "</title><style>" + kStyle + "</style></head><body>\n" + body_html +
         "\n<script id=\"report-data\" type=\"application/json\">" + data_json +
         "</script>\n<script>" + kScript + "</script></body></html>\n";
}

}  // namespace ttmem::report
