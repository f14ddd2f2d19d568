// Mirrors: health, cooldown, bytes, last error, recent rate per mirror (public, status.json
// every 2 s); clearing a mirror's cooldown needs the token.

import { h, replace, actionButton, toast } from "../dom.js";
import { admin, failure } from "../api.js";
import { bytes, rate, int, duration, ago } from "../format.js";

export function mount(el, ctx) {
  const box = h("div", { id: "mirrors", class: "stack" });
  el.append(h("div", { class: "view-head" }, h("h1", null, "Mirrors"),
    h("span", { class: "mute" }, "Failing mirrors cool down (exponential backoff) and are tried last until then.")), box);
  let lastKey = "";
  const unsub = ctx.onStatus((s) => {
    // Rebuild only when the set of mirrors changes; otherwise update cells in place so a
    // focused button keeps its focus.
    const key = s.mirrors.map((m) => m.upstream + " " + m.url).join("\n");
    if (key !== lastKey) { lastKey = key; build(box, s.mirrors, ctx); }
    for (const m of s.mirrors) update(box, m, s.now);
  });
  return { statusInterval: 2000, unmount: unsub };
}

function build(box, mirrors, ctx) {
  const byUp = new Map();
  for (const m of mirrors) {
    if (!byUp.has(m.upstream)) byUp.set(m.upstream, []);
    byUp.get(m.upstream).push(m);
  }
  if (!byUp.size) { replace(box, h("p", { class: "mute" }, "no mirrors configured")); return; }
  replace(box, [...byUp].map(([up, list]) => h("section", { class: "card", "aria-label": "Mirrors of " + up },
    h("div", { class: "card-head" }, h("h2", null, up), h("span", { class: "mute" }, `${list.length} mirror${list.length > 1 ? "s" : ""}, in preference order`)),
    h("div", { class: "table-wrap" }, h("table", { "aria-label": "Mirrors of " + up, class: "stack-narrow" },
      h("thead", null, h("tr", null,
        h("th", null, "mirror"), h("th", null, "health"), h("th", { class: "num" }, "recent rate"),
        h("th", { class: "num" }, "received"), h("th", { class: "num" }, "ok / failed"),
        h("th", null, "last ok / failure"), h("th", null, "last error"), h("th", null, ""))),
      h("tbody", null, list.map((m) => row(m, ctx))))))));
}

function row(m, ctx) {
  const reset = actionButton("Clear cooldown", async () => {
    try {
      const q = `upstream=${encodeURIComponent(m.upstream)}&url=${encodeURIComponent(m.url)}`;
      await admin("POST", "mirrors/reset-cooldown?" + q, { why: "Clearing a mirror's cooldown needs the admin token." });
      toast(`cooldown of ${m.url} cleared: it is tried first again`);
      ctx.refreshStatus();
    } catch (e) { const msg = failure("Clear cooldown", e); if (msg) toast(msg, { error: true }); }
  }, { cls: "btn small", title: "Try this mirror again now instead of waiting for its cooldown to end" });
  return h("tr", { dataset: { url: m.upstream + " " + m.url } },
    h("td", { class: "path", "data-label": "mirror" }, m.url),
    h("td", { class: "health nowrap", "data-label": "health" }),
    h("td", { class: "num rate nowrap", "data-label": "recent rate" }),
    h("td", { class: "num bytes nowrap", "data-label": "received" }),
    h("td", { class: "num count nowrap", "data-label": "ok / failed" }),
    h("td", { class: "when nowrap wide", "data-label": "last ok / failure" }),
    h("td", { class: "err", "data-label": "last error" }),
    h("td", { class: "act", "data-label": "" }, reset));
}

function update(box, m, now) {
  const tr = [...box.querySelectorAll("tr[data-url]")].find((r) => r.dataset.url === m.upstream + " " + m.url);
  if (!tr) return;
  const cell = (c) => tr.querySelector("." + c);
  replace(cell("health"), h("span", null, m.healthy
    ? [h("span", { class: "dot ok" }), "healthy"]
    : [h("span", { class: "dot bad" }), `cooling down ${duration(m.cooldown_secs)}`,
       h("div", { class: "mute" }, `${m.consecutive_failures} failure${m.consecutive_failures === 1 ? "" : "s"} in a row`)]));
  cell("rate").textContent = m.recent_rate_bps == null ? "–" : rate(m.recent_rate_bps);
  cell("bytes").textContent = bytes(m.bytes);
  cell("count").textContent = `${int(m.successes)} / ${int(m.failures)}`;
  replace(cell("when"), `${m.last_success_at ? ago(m.last_success_at, now) : "never"} / ${m.last_failure_at ? ago(m.last_failure_at, now) : "never"}`);
  cell("err").textContent = m.last_error ?? "–";
  cell("err").className = "err" + (m.last_error && !m.healthy ? " error" : "");
  const btn = tr.querySelector(".act button");
  btn.hidden = m.healthy && !m.consecutive_failures;
}
