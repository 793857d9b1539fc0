// SPDX-License-Identifier: BSL-1.0
// tenorite/detail/console_page.hpp — the console's page: HTML, CSS and script in one string,
// so the binary serves everything and the browser fetches nothing from elsewhere.
//
// The page reads /api/services once, then follows /events (server-sent events; the browser
// reconnects by itself). Charts are SVG drawn from each service's history. Elements carry
// data-* attributes (data-service, data-field) that the browser test reads.
#pragma once

#include <string_view>

namespace tenorite::console::detail {

inline constexpr std::string_view page_html = R"tenorite_page(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>tenorite console</title>
<style>
  :root { --bg:#0f1419; --panel:#171d24; --line:#26303b; --text:#d7dde4; --dim:#8593a3;
          --ok:#3fb950; --warn:#d29922; --bad:#f85149; --accent:#58a6ff; }
  * { box-sizing: border-box; }
  body { margin:0; background:var(--bg); color:var(--text);
         font:13px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; }
  header { display:flex; align-items:center; gap:16px; padding:10px 18px;
           border-bottom:1px solid var(--line); background:var(--panel); }
  header h1 { font-size:16px; margin:0; font-weight:600; letter-spacing:.3px; }
  header .meta { color:var(--dim); }
  #conn { width:9px; height:9px; border-radius:50%; background:var(--bad); display:inline-block; }
  #conn.live { background:var(--ok); }
  main { padding:14px 18px; }
  table { border-collapse:collapse; width:100%; }
  th, td { padding:6px 8px; border-bottom:1px solid var(--line); text-align:right;
           white-space:nowrap; }
  th { color:var(--dim); font-weight:500; font-size:12px; }
  th:first-child, td:first-child, td.text, th.text { text-align:left; }
  tbody tr { cursor:pointer; }
  tbody tr:hover { background:#1c242d; }
  tbody tr.selected { background:#1f2a36; }
  .status { padding:1px 7px; border-radius:9px; font-size:11px; }
  .status.running { background:#12361d; color:var(--ok); }
  .status.draining { background:#3a2f10; color:var(--warn); }
  .status.restarting { background:#3a2f10; color:var(--warn); }
  .status.ended { background:#3b1618; color:var(--bad); }
  .failure { color:var(--bad); max-width:320px; overflow:hidden; text-overflow:ellipsis; }
  .dim { color:var(--dim); }
  .bar { display:inline-block; width:60px; height:6px; background:var(--line);
         border-radius:3px; vertical-align:middle; margin-left:6px; overflow:hidden; }
  .bar > span { display:block; height:100%; background:var(--accent); }
  svg.spark { vertical-align:middle; }
  #detail { margin-top:18px; padding:14px; background:var(--panel); border:1px solid var(--line);
            border-radius:6px; display:none; }
  #detail.open { display:block; }
  #detail h2 { margin:0 0 10px; font-size:15px; }
  .charts { display:grid; grid-template-columns:repeat(auto-fit, minmax(300px, 1fr)); gap:14px; }
  .chart h3 { margin:0 0 4px; font-size:12px; color:var(--dim); font-weight:500; }
  .grid2 { display:grid; grid-template-columns:repeat(auto-fit, minmax(260px, 1fr)); gap:14px;
           margin-top:14px; }
  .kv td { text-align:left; border:none; padding:2px 8px 2px 0; }
  .empty { color:var(--dim); padding:30px; text-align:center; }
</style>
</head>
<body>
<header>
  <span id="conn" title="live updates"></span>
  <h1>tenorite console</h1>
  <span class="meta" id="summary">connecting…</span>
  <span class="meta" id="updated"></span>
</header>
<main>
  <table>
    <thead><tr>
      <th class="text">service</th><th class="text">kind</th><th class="text">status</th>
      <th>workers</th><th>queue</th><th>in flight</th><th>oldest</th><th>calls</th><th>calls/s</th>
      <th>p50</th><th>p99</th><th>failed</th><th>restarts</th>
      <th class="text">last failure</th><th class="text">queue depth</th>
      <th class="text">throughput</th>
    </tr></thead>
    <tbody id="rows"></tbody>
  </table>
  <div id="none" class="empty" style="display:none">no services are listed</div>
  <section id="detail"></section>
</main>
<script>
"use strict";
let selected = decodeURIComponent((location.hash.match(/service=([^&]*)/) || [])[1] || "");
let last = null;

function fmtTime(us) {
  if (!isFinite(us) || us <= 0) return "–";
  if (us < 1000) return us.toFixed(us < 10 ? 1 : 0) + " µs";
  if (us < 1e6) return (us / 1000).toFixed(us < 1e4 ? 1 : 0) + " ms";
  return (us / 1e6).toFixed(2) + " s";
}
function fmtRate(r) {
  if (!isFinite(r) || r <= 0) return "0";
  if (r >= 1e6) return (r / 1e6).toFixed(1) + "M";
  if (r >= 1e3) return (r / 1e3).toFixed(1) + "k";
  return r.toFixed(r < 10 ? 1 : 0);
}
function el(tag, attrs, text) {
  const e = document.createElement(tag);
  for (const k in attrs || {}) e.setAttribute(k, attrs[k]);
  if (text !== undefined) e.textContent = text;
  return e;
}
function spark(values, w, h, color) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("class", "spark");
  svg.setAttribute("width", w);
  svg.setAttribute("height", h);
  svg.setAttribute("viewBox", "0 0 " + w + " " + h);
  const vs = values.length ? values : [0];
  const max = Math.max(1e-9, ...vs);
  const step = vs.length > 1 ? w / (vs.length - 1) : w;
  const pts = vs.map((v, i) => (i * step).toFixed(1) + "," + (h - 1 - (v / max) * (h - 2)).toFixed(1));
  const line = document.createElementNS(ns, "polyline");
  line.setAttribute("points", pts.join(" "));
  line.setAttribute("fill", "none");
  line.setAttribute("stroke", color);
  line.setAttribute("stroke-width", "1.5");
  svg.appendChild(line);
  return svg;
}
function cell(tr, field, text, cls) {
  const td = el("td", {"data-field": field}, text);
  if (cls) td.className = cls;
  tr.appendChild(td);
  return td;
}
function last1(a) { return a.length ? a[a.length - 1] : 0; }

function renderRows(data) {
  const body = document.getElementById("rows");
  body.textContent = "";
  document.getElementById("none").style.display = data.services.length ? "none" : "block";
  let calls = 0;
  for (const s of data.services) {
    const m = s.metrics;
    const tr = el("tr", {"data-service": s.name});
    if (s.name === selected) tr.className = "selected";
    cell(tr, "name", s.name, "text");
    cell(tr, "kind", s.kind, "text dim");
    const st = cell(tr, "status", "", "text");
    st.appendChild(el("span", {"class": "status " + s.status}, s.status));
    cell(tr, "workers", String(s.workers));
    const q = cell(tr, "queue", s.queue_depth + "/" + s.queue_capacity);
    const bar = el("span", {"class": "bar"});
    const fill = el("span");
    fill.style.width = Math.min(100, 100 * s.queue_depth / Math.max(1, s.queue_capacity)) + "%";
    bar.appendChild(fill);
    q.appendChild(bar);
    cell(tr, "in_flight", m ? String(m.in_flight) : "–");
    cell(tr, "oldest", m && m.in_flight ? fmtTime(m.oldest_in_flight_ms * 1000) : "–");
    const rate = last1(s.history.calls_per_s);
    cell(tr, "calls", m ? String(m.calls) : "–");
    cell(tr, "calls_per_s", m ? fmtRate(rate) : "–");
    cell(tr, "p50", m ? fmtTime(m.latency.p50_us) : "–");
    cell(tr, "p99", m ? fmtTime(m.latency.p99_us) : "–");
    cell(tr, "failed", m ? String(m.failed_total) : "–");
    cell(tr, "restarts", String(s.restarts));
    const lf = cell(tr, "last_failure", s.last_failure ? s.last_failure.message : "", "text failure");
    if (s.last_failure) lf.title = s.last_failure.message + " at " + new Date(s.last_failure.time * 1000).toLocaleTimeString();
    cell(tr, "queue_chart", "", "text").appendChild(spark(s.history.queue_depth, 90, 20, "#58a6ff"));
    cell(tr, "throughput_chart", "", "text").appendChild(spark(s.history.calls_per_s, 90, 20, "#3fb950"));
    tr.addEventListener("click", () => { selected = s.name; location.hash = "service=" + encodeURIComponent(s.name); render(last); });
    body.appendChild(tr);
    if (m) calls += rate;
  }
  document.getElementById("summary").textContent =
    data.services.length + " services · " + fmtRate(calls) + " calls/s";
  document.getElementById("updated").textContent =
    "updated " + new Date(data.time * 1000).toLocaleTimeString();
}

function chart(title, values, color) {
  const d = el("div", {"class": "chart"});
  d.appendChild(el("h3", {}, title + " (now " + fmtRate(last1(values)) + ")"));
  d.appendChild(spark(values, 320, 70, color));
  return d;
}
function latencyRow(t, name, l) {
  const tr = el("tr");
  tr.appendChild(el("td", {}, name));
  for (const v of [l.p50_us, l.p90_us, l.p99_us, l.mean_us]) tr.appendChild(el("td", {}, fmtTime(v)));
  tr.appendChild(el("td", {}, String(l.count)));
  t.appendChild(tr);
}

function renderDetail(data) {
  const box = document.getElementById("detail");
  const s = data.services.find(x => x.name === selected);
  box.textContent = "";
  box.className = s ? "open" : "";
  if (!s) return;
  box.setAttribute("data-detail", s.name);
  box.appendChild(el("h2", {}, s.name));
  const info = el("table", {"class": "kv"});
  const add = (k, v) => { const tr = el("tr"); tr.appendChild(el("td", {"class": "dim"}, k)); tr.appendChild(el("td", {"data-field": k}, v)); info.appendChild(tr); };
  add("kind", s.kind);
  add("status", s.status);
  add("workers", String(s.workers));
  add("queue", s.queue_depth + " of " + s.queue_capacity);
  add("started", new Date(s.started * 1000).toLocaleString());
  add("restarts", String(s.restarts));
  add("last failure", s.last_failure ? s.last_failure.message + " (" + new Date(s.last_failure.time * 1000).toLocaleTimeString() + ")" : "none");
  box.appendChild(info);
  const charts = el("div", {"class": "charts"});
  charts.appendChild(chart("queue depth", s.history.queue_depth, "#58a6ff"));
  charts.appendChild(chart("calls per second", s.history.calls_per_s, "#3fb950"));
  charts.appendChild(chart("calls in flight", s.history.in_flight, "#d29922"));
  charts.appendChild(chart("failures per second", s.history.failed_per_s, "#f85149"));
  box.appendChild(charts);
  if (s.metrics) {
    const grid = el("div", {"class": "grid2"});
    const lt = el("table");
    const head = el("tr");
    for (const h of ["latency", "p50", "p90", "p99", "mean", "calls"]) head.appendChild(el("th", {}, h));
    lt.appendChild(head);
    latencyRow(lt, "start to completion", s.metrics.latency);
    latencyRow(lt, "queued", s.metrics.queued);
    latencyRow(lt, "in the worker", s.metrics.in_worker);
    grid.appendChild(lt);
    const ft = el("table");
    const fh = el("tr");
    fh.appendChild(el("th", {"class": "text"}, "outcome"));
    fh.appendChild(el("th", {}, "calls"));
    ft.appendChild(fh);
    const row = (k, v) => { const tr = el("tr"); tr.appendChild(el("td", {"class": "text"}, k)); tr.appendChild(el("td", {"data-field": "outcome-" + k}, String(v))); ft.appendChild(tr); };
    row("answered", s.metrics.answered);
    for (const k in s.metrics.failed) row(k, s.metrics.failed[k]);
    grid.appendChild(ft);
    box.appendChild(grid);
  } else {
    box.appendChild(el("p", {"class": "dim"}, "started without metrics (service_options::metrics): no call figures"));
  }
}

function render(data) {
  if (!data) return;
  last = data;
  renderRows(data);
  renderDetail(data);
}

fetch("api/services").then(r => r.json()).then(render).catch(() => {});
const events = new EventSource("events");
events.onopen = () => document.getElementById("conn").className = "live";
events.onerror = () => document.getElementById("conn").className = "";
events.onmessage = (e) => render(JSON.parse(e.data));
window.addEventListener("hashchange", () => {
  selected = decodeURIComponent((location.hash.match(/service=([^&]*)/) || [])[1] || "");
  render(last);
});
</script>
</body>
</html>
)tenorite_page";

}  // namespace tenorite::console::detail
