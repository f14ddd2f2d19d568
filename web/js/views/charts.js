// Charts: requests per minute by result, and bytes served from cache vs fetched upstream,
// over the last hour or 24 hours, from the per-minute ring (stats.json). Drawn with uPlot.

import uPlot from "../../vendor/uplot/uPlot.esm.js";
import { h, replace, card } from "../dom.js";
import { getPublic } from "../api.js";
import { bytes, rate, int, pct, datetime } from "../format.js";
import { Poller } from "../live.js";

const REQUESTS = [
  ["hit", "hit"], ["miss", "miss"], ["joined", "joined"], ["revalidated", "revalidated"],
  ["stale", "stale"], ["not_found", "404"], ["error", "error"],
];
const BYTES = [
  ["served_cache", "served from cache"], ["fetched_upstream", "fetched upstream"], ["served_inflight", "served while downloading"],
];

/** Tick steps: whole numbers for counts, 1-2-5 steps of KiB/MiB/GiB for bytes. */
const COUNT_INCRS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1e3, 2e3, 5e3, 1e4, 2e4, 5e4, 1e5, 2e5, 5e5, 1e6];
const BYTE_INCRS = [0, 1, 2, 3, 4, 5].flatMap((k) => [1, 2, 5, 10, 20, 50, 100, 200, 500].map((m) => m * 1024 ** k));

/** Axis width that fits its longest label (uPlot measures nothing itself). */
const axisSize = (u, values) => (values ? Math.ceil(Math.max(3, ...values.map((v) => String(v).length)) * 7.5) + 18 : 40);

const css = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();

export function mount(el) {
  let range = location.hash.includes("24h") ? "24h" : "1h";
  const seg = h("div", { class: "seg", role: "group", "aria-label": "Time range" });
  const setRange = (r) => {
    range = r;
    history.replaceState(null, "", "#charts/" + r);
    for (const b of seg.children) b.setAttribute("aria-pressed", String(b.dataset.range === r));
    poller.setInterval(r === "1h" ? 10000 : 60000);
  };
  for (const [r, label] of [["1h", "Last hour"], ["24h", "Last 24 h"]]) {
    seg.append(h("button", { type: "button", dataset: { range: r }, "aria-pressed": String(r === range), onclick: () => setRange(r) }, label));
  }
  const note = h("span", { class: "mute", id: "charts-note" });
  const reqBox = h("div", { class: "chart", id: "chart-requests", role: "img", "aria-label": "Requests per minute by result" });
  const byteBox = h("div", { class: "chart", id: "chart-bytes", role: "img", "aria-label": "Bytes per second, averaged per minute: served from cache, fetched upstream, served while downloading" });
  const reqTotals = h("dl", { class: "totals", id: "totals-requests", "aria-label": "Requests in range" });
  const byteTotals = h("dl", { class: "totals", id: "totals-bytes", "aria-label": "Bytes in range" });
  const error = h("p", { class: "error", role: "alert" });

  el.append(
    h("div", { class: "view-head" }, h("h1", null, "Charts"), note, seg),
    error,
    h("section", { class: "card chart-card", "aria-label": "Requests per minute" },
      h("div", { class: "card-head" }, h("h2", null, "Requests per minute, by result")), reqBox,
      reqTotals),
    card("Bytes per second (average of each minute)", null, byteBox,
      byteTotals));

  const charts = { requests: null, bytes: null };
  const sync = uPlot.sync("pkgstash");

  function makeChart(box, names, fmtAxis, fmtValue, incrs) {
    const ink = css("--mute"), grid = css("--line");
    const axis = { stroke: ink, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 } };
    const opts = {
      width: Math.max(280, box.clientWidth), height: box.clientWidth < 500 ? 220 : 280,
      cursor: { sync: { key: sync.key }, drag: { x: true, y: false } },
      scales: { x: { time: true }, y: { range: (u, min, max) => [0, Math.max(max * 1.05, 1)] } },
      series: [{ value: (u, v) => (v == null ? "–" : datetime(v)) },
        ...names.map(([key, label]) => ({
          label, stroke: css("--c-" + key), width: 1.5, spanGaps: false,
          value: (u, v) => (v == null ? "–" : fmtValue(v)),
        }))],
      axes: [{ ...axis }, { ...axis, size: axisSize, incrs, values: (u, vals) => vals.map((v) => fmtAxis(v)) }],
    };
    return new uPlot(opts, [[], ...names.map(() => [])], box);
  }

  const ro = new ResizeObserver(() => {
    for (const [k, c] of Object.entries(charts)) {
      if (!c) continue;
      const box = k === "requests" ? reqBox : byteBox;
      c.setSize({ width: Math.max(280, box.clientWidth), height: box.clientWidth < 500 ? 220 : 280 });
    }
  });
  ro.observe(reqBox);

  const poller = new Poller(async () => {
    let s;
    try {
      s = await getPublic("stats.json?range=" + range);
      error.textContent = "";
    } catch (e) {
      error.textContent = "Cannot load stats.json: " + e.message;
      return;
    }
    const xs = Array.from({ length: s.buckets }, (_, i) => s.start + i * s.step_secs);
    if (!charts.requests) charts.requests = makeChart(reqBox, REQUESTS, (v) => int(v), (v) => int(v) + "/min", COUNT_INCRS);
    if (!charts.bytes) charts.bytes = makeChart(byteBox, BYTES, (v) => rate(v), (v) => rate(v), BYTE_INCRS);
    charts.requests.setData([xs, ...REQUESTS.map(([k]) => s.requests[k])]);
    charts.bytes.setData([xs, ...BYTES.map(([k]) => s.bytes[k].map((v) => (v == null ? null : v / s.step_secs)))]);
    reqBox.dataset.points = String(s.requests.hit.filter((v) => v != null).length);
    renderTotals(s);
    note.textContent = `${s.buckets} one-minute buckets, ${datetime(s.start)} to now` +
      (s.since > s.start ? ` (server started ${datetime(s.since)})` : "");
  }, range === "1h" ? 10000 : 60000);

  function renderTotals(s) {
    const sum = (a) => a.reduce((t, v) => t + (v ?? 0), 0);
    const req = Object.fromEntries(REQUESTS.map(([k]) => [k, sum(s.requests[k])]));
    const all = Object.values(req).reduce((a, b) => a + b, 0);
    const local = req.hit + req.revalidated + req.stale;
    const answered = local + req.miss + req.joined;
    const item = (key, label, value, id) => h("div", null, h("dt", null, key ? h("span", { class: `dot c-${key}` }) : null, label), h("dd", { id }, value));
    replace(reqTotals,
      item(null, "requests in range", int(all), "total-requests"),
      item(null, "hit ratio", answered ? pct(local / answered) : "–"),
      REQUESTS.map(([k, label]) => item(k, label, int(req[k]))));
    replace(byteTotals, BYTES.map(([k, label]) => item(k, label, bytes(sum(s.bytes[k])))));
  }

  poller.start();
  return {
    statusInterval: 5000,
    unmount() { poller.stop(); ro.disconnect(); for (const c of Object.values(charts)) c?.destroy(); },
  };
}
