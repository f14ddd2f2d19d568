// Overview: today's status page — cache size, hit ratio, bytes saved, downloads in flight
// with live progress, last refresh, AUR summary. Public (status.json, every second).

import { h, replace, card, actionButton, toast } from "../dom.js";
import { admin, failure } from "../api.js";
import { bytes, rate, int, pct, duration, datetime, ago } from "../format.js";

export function mount(el, ctx) {
  const tiles = {
    size: h("div", { class: "big", id: "cache-size" }, "–"),
    files: h("div", { class: "big", id: "cache-files" }, "–"),
    ratio: h("div", { class: "big", id: "hit-ratio" }, "–"),
    saved: h("div", { class: "big", id: "bytes-saved" }, "–"),
    streamed: h("div", { class: "big", id: "bytes-upstream" }, "–"),
  };
  const tile = (big, label) => h("div", { class: "tile" }, big, h("div", { class: "label" }, label));
  const upstreams = h("tbody");
  const requests = h("tbody");
  const inflight = h("tbody");
  const refresh = h("div", { id: "refresh" }, "…");
  const aurBox = h("div");

  const refreshBtn = actionButton("Refresh now", async () => {
    try {
      const r = await admin("POST", "refresh", { why: "Refreshing the repo databases needs the admin token." });
      toast(`Refresh done: ${r.dbs_checked} dbs checked, ${r.dbs_updated} updated, ${r.prefetched.length} prefetched, ${r.cleaned} cleaned` +
        (r.errors.length ? `; errors: ${r.errors.join("; ")}` : ""), { error: r.errors.length > 0 });
      ctx.refreshStatus();
    } catch (e) { const m = failure("Refresh", e); if (m) toast(m, { error: true }); }
  }, { cls: "btn", title: "Revalidate repo databases, prefetch updates of cached packages, then clean up" });

  el.append(
    h("div", { class: "view-head" }, h("h1", null, "Overview"), refreshBtn,
      h("a", { class: "btn", href: "#cache/cleanup", title: "See what the retention policy would remove, then run it" }, "Cleanup…")),
    h("div", { class: "grid" },
      card("Cache", null,
        h("div", { class: "tiles" }, tile(tiles.size, "on disk"), tile(tiles.files, "files")),
        h("div", { class: "table-wrap" }, h("table", { id: "upstreams", "aria-label": "Cache per upstream" },
          h("thead", null, h("tr", null, h("th", null, "upstream"), h("th", { class: "num" }, "files"), h("th", { class: "num" }, "size"))),
          upstreams))),
      card("Traffic since start", null,
        h("div", { class: "tiles" }, tile(tiles.ratio, "hit ratio"), tile(tiles.saved, "served from cache"),
          tile(tiles.streamed, "streamed while downloading")),
        h("div", { class: "table-wrap" }, h("table", { id: "requests", "aria-label": "Requests by result" }, requests)))),
    h("section", { class: "card wide", "aria-label": "Downloads in flight" },
      h("div", { class: "card-head" }, h("h2", null, "Downloads in flight")),
      h("div", { class: "table-wrap" }, h("table", { id: "inflight" },
        h("thead", null, h("tr", null, h("th", null, "file"), h("th", { style: null, class: "w30" }, "progress"),
          h("th", { class: "num" }, "done"), h("th", { class: "num" }, "rate"), h("th", { class: "num" }, "clients"))),
        inflight))),
    h("div", { class: "grid" },
      card("Last refresh", null, refresh),
      aurBox));

  const unsub = ctx.onStatus((s) => {
    tiles.size.textContent = bytes(s.cache_bytes);
    tiles.files.textContent = int(s.cache_files);
    tiles.ratio.textContent = pct(s.hit_ratio);
    tiles.saved.textContent = bytes(s.bytes_saved);
    tiles.streamed.textContent = bytes(s.bytes_from_upstream);
    const ups = Object.entries(s.upstreams);
    replace(upstreams, ups.length ? ups.map(([k, u]) => h("tr", null, h("td", null, k), h("td", { class: "num" }, int(u.files)), h("td", { class: "num" }, bytes(u.bytes))))
      : h("tr", null, h("td", { colspan: 3, class: "empty" }, "no upstreams")));
    const labels = { hit: "hit", miss: "miss", joined: "joined a download", revalidated: "revalidated", stale: "stale (upstream down)", not_found: "not found", error: "error" };
    replace(requests, Object.entries(s.requests).map(([k, v]) =>
      h("tr", null, h("td", null, h("span", { class: `dot c-${k}` }), labels[k] ?? k), h("td", { class: "num" }, int(v)))));
    renderInflight(inflight, s.inflight);
    renderRefresh(refresh, s.last_refresh);
    renderAur(aurBox, s.aur, s.now);
  });
  return { statusInterval: 1000, unmount: unsub };
}

/** Update the in-flight rows in place (keyed by path) so the bars animate instead of blinking. */
function renderInflight(tbody, list) {
  const seen = new Set();
  for (const d of list) {
    seen.add(d.path);
    let tr = [...tbody.rows].find((r) => r.dataset.path === d.path);
    if (!tr) {
      tr = h("tr", { dataset: { path: d.path } },
        h("td", null, h("div", { class: "inflight-file" }, d.path), h("div", { class: "inflight-sub" })),
        h("td", null, h("progress", { class: "download", max: 1, value: 0, "aria-label": "progress of " + d.path.split("/").pop() })),
        h("td", { class: "num done nowrap" }), h("td", { class: "num rate nowrap" }), h("td", { class: "num clients" }));
      tbody.append(tr);
    }
    const bar = tr.querySelector("progress");
    if (d.bytes_total) { bar.max = d.bytes_total; bar.value = d.bytes_done; } else bar.removeAttribute("value");
    bar.dataset.done = d.bytes_done;
    tr.querySelector(".inflight-sub").textContent = `${d.phase}${d.mirror ? " from " + d.mirror : ""} · ${duration(d.elapsed_ms / 1000)}`;
    tr.querySelector(".done").textContent = bytes(d.bytes_done) + (d.bytes_total ? " / " + bytes(d.bytes_total) : "") +
      (d.bytes_total ? ` (${Math.floor((d.bytes_done * 100) / d.bytes_total)} %)` : "");
    tr.querySelector(".rate").textContent = rate(d.rate_bps);
    tr.querySelector(".clients").textContent = d.clients;
  }
  for (const tr of [...tbody.rows]) if (!tr.dataset.path || !seen.has(tr.dataset.path)) tr.remove();
  if (!tbody.rows.length) tbody.append(h("tr", null, h("td", { colspan: 5, class: "empty" }, "nothing downloading")));
}

function renderRefresh(el, r) {
  if (!r) { replace(el, h("span", { class: "mute" }, "none since start")); return; }
  replace(el,
    h("p", null, `${datetime(r.started_at)} (${ago(r.started_at)}), took ${duration(r.duration_ms / 1000)}`),
    h("dl", { class: "kv" },
      h("dt", null, "dbs checked"), h("dd", null, `${r.dbs_checked}, ${r.dbs_updated} updated`),
      h("dt", null, "prefetched"), h("dd", null, r.prefetched.length ? `${r.prefetched.length} packages` : "nothing"),
      h("dt", null, "cleaned"), h("dd", null, `${r.cleaned} files`),
      r.errors.length ? [h("dt", null, "errors"), h("dd", { class: "error" }, r.errors.join("; "))] : []));
}

function renderAur(box, a, now) {
  if (!a) { box.replaceChildren(); return; }
  replace(box, card("AUR build server", h("a", { href: "#aur" }, "details"),
    h("dl", { class: "kv" },
      h("dt", null, "tracked"), h("dd", null, a.tracked),
      h("dt", null, "waiting for approval"), h("dd", null, a.pending ? `${a.pending} (${a.pending_names.join(", ")})` : "none"),
      h("dt", null, "queued"), h("dd", null, a.queued),
      h("dt", null, "building"), h("dd", null, a.building ?? "nothing"),
      h("dt", null, "last check"), h("dd", null, a.last_check ? ago(a.last_check, now) : "not yet",
        a.last_check_error ? h("span", { class: "error" }, " — " + a.last_check_error) : ""))));
}
