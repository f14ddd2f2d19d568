// AUR build server: the public summary (status.json); signed in, the held revisions with
// their diffs and Approve / Reject, the build in progress with its live log, the queue, the
// tracked packages and the build history with logs.

import { h, replace, card, actionButton, toast } from "../dom.js";
import { admin, failure } from "../api.js";
import { signedIn, promptSignIn } from "../auth.js";
import { ago, datetime, duration, shortRev } from "../format.js";
import { Poller } from "../live.js";
import { DataTable } from "../table.js";
import { reviewCard } from "./review.js";
import { logViewer, openLogDialog, buildTag } from "./buildlog.js";

const STATE_TAG = { building: "info", queued: "info", pending: "warn", failed: "bad", built: "ok", rejected: "mute", new: "mute" };

export function mount(el, ctx) {
  const check = actionButton("Check AUR now", async () => {
    try {
      const d = await admin("POST", "aur/check", { why: "Checking the AUR needs the admin token." });
      toast(d.message);
    } catch (e) { const m = failure("Check", e); if (m) toast(m, { error: true }); }
  }, { cls: "btn" });
  const summary = h("div");
  const detail = h("div", { class: "stack" });
  el.append(h("div", { class: "view-head" }, h("h1", null, "AUR build server"), check), summary, detail);

  let off = null;
  let stopDetail = () => {};
  const startDetail = (box) => { stopDetail = detailView(box).stop; };
  const unsub = ctx.onStatus((s) => {
    if (off === !s.aur) { if (s.aur) renderSummary(summary, s.aur, s.now); return; }
    off = !s.aur;
    check.hidden = off;
    if (off) {
      replace(summary, h("div", { class: "notice" }, "The AUR build server is off. Add an ", h("code", null, "[aur]"),
        " section to the config to track AUR packages, review their changes and build them into a custom repo (docs/aur.md)."));
      detail.replaceChildren();
      stopDetail();
      return;
    }
    renderSummary(summary, s.aur, s.now);
    if (!signedIn()) {
      replace(detail, card("Sign in to review and build", null,
        h("p", null, "Held revisions with their diffs, Approve and Reject, the queue and the build logs need the admin token."),
        h("button", { type: "button", class: "btn primary", onclick: () => promptSignIn("The AUR build server's detail needs the admin token.") }, "Sign in")));
    } else startDetail(detail);
  });

  return { statusInterval: 2000, unmount() { unsub(); stopDetail(); } };
}

function renderSummary(box, a, now) {
  const builds = a.builds.slice(0, 6);
  replace(box, h("div", { class: "grid" },
    card("Summary", null, h("dl", { class: "kv", id: "aur-summary" },
      h("dt", null, "tracked"), h("dd", null, a.tracked),
      h("dt", null, "waiting for approval"), h("dd", null, a.pending ? `${a.pending}: ${a.pending_names.join(", ")}` : "none"),
      h("dt", null, "queued"), h("dd", null, a.queued),
      h("dt", null, "building"), h("dd", null, a.building ?? "nothing"),
      h("dt", null, "last check"), h("dd", null, a.last_check ? `${ago(a.last_check, now)} (${datetime(a.last_check)})` : "not yet"),
      a.last_check_error ? [h("dt", null, "check error"), h("dd", { class: "error" }, a.last_check_error)] : [])),
    card("Last build per package", null, builds.length ? h("div", { class: "table-wrap" }, h("table", { "aria-label": "Last build per package" },
      h("tbody", null, builds.map((b) => h("tr", null, h("td", { class: "mono" }, b.pkgbase), h("td", { class: "mono" }, b.version),
        h("td", null, b.ok ? h("span", { class: "tag ok" }, "built") : h("span", { class: "tag bad", title: b.error ?? "" }, "failed")),
        h("td", { class: "nowrap" }, ago(b.at, now)))))))
      : h("p", { class: "mute" }, "no builds yet"))));
}

/** The signed-in part: polls api/aur every 3 s. */
function detailView(box) {
  const reviews = h("div", { id: "aur-pending" });
  const building = h("div", { id: "aur-building" });
  const queue = new DataTable([
    { key: "pkgbase", label: "package", cls: "mono" },
    { key: "version", label: "version", cls: "mono", render: (j) => `${j.old_version ?? "–"} → ${j.version}` },
    { key: "rev", label: "revision", cls: "mono", render: (j) => h("span", { title: j.rev }, shortRev(j.rev)) },
    { key: "by", label: "approved by" },
    { key: "queued_at", label: "queued", render: (j) => ago(j.queued_at) },
  ], { label: "Build queue", empty: "nothing queued", rowKey: (j) => j.rev });
  const tracked = new DataTable([
    { key: "name", label: "package", cls: "mono", render: (p) => h("span", { title: p.pkgbase && p.pkgbase !== p.name ? "package base " + p.pkgbase : null }, p.name) },
    { key: "state", label: "state", render: (p) => h("span", { class: "tag " + (STATE_TAG[p.state] ?? "mute") }, p.state) },
    { key: "repo_version", label: "in repo", cls: "mono" },
    { key: "approved", label: "approved", cls: "wide", sort: (p) => p.approved?.at, render: (p) => (p.approved
      ? h("span", { title: p.approved.rev }, `${p.approved.version} by ${p.approved.by}, ${ago(p.approved.at)}`) : "–") },
    { key: "last_build", label: "last build", narrow: false, sort: (p) => p.last_build?.id, render: (p) => (p.last_build
      ? [buildTag(p.last_build), " ", ago(p.last_build.ended_at ?? p.last_build.started_at)] : "–") },
  ], { label: "Tracked packages", empty: "no packages tracked (aur.packages)", rowKey: (p) => p.name });
  const history = new DataTable([
    { key: "id", label: "#", num: true, render: (b) => "#" + b.id },
    { key: "pkgbase", label: "package", cls: "mono" },
    { key: "version", label: "version", cls: "mono" },
    { key: "rev", label: "revision", cls: "mono", narrow: false, render: (b) => h("span", { title: b.rev }, shortRev(b.rev)) },
    { key: "state", label: "result", cls: "wide", render: (b) => [buildTag(b), b.error ? h("div", { class: "mute" }, b.error) : null] },
    { key: "ended_at", label: "ended", sort: (b) => b.ended_at ?? b.started_at, render: (b) => (b.ended_at ? h("span", { title: datetime(b.ended_at) }, ago(b.ended_at)) : "running") },
    { key: "duration_secs", label: "took", num: true, narrow: false, render: (b) => (b.duration_secs == null ? "–" : duration(b.duration_secs)) },
    { key: "act", label: "", sortable: false, cls: "act", render: (b) => h("button", { type: "button", class: "btn small", onclick: () => openLogDialog(b) }, "Log") },
  ], { label: "Build history", empty: "no builds yet", tall: true, rowKey: (b) => String(b.id), initialSort: { key: "id", dir: -1 } });
  const older = h("button", { type: "button", class: "btn small ghost" }, "Load older builds");
  const error = h("p", { class: "error", role: "alert" });

  replace(box, error,
    h("section", { class: "card", "aria-label": "Waiting for approval" }, h("div", { class: "card-head" }, h("h2", null, "Waiting for approval")), reviews),
    h("section", { class: "card", "aria-label": "Building now" }, h("div", { class: "card-head" }, h("h2", null, "Building now")), building),
    h("div", { class: "grid" },
      h("section", { class: "card", "aria-label": "Build queue" }, h("h2", null, "Queue"), queue.el),
      h("section", { class: "card", "aria-label": "Tracked packages" }, h("h2", null, "Tracked packages"), tracked.el)),
    h("section", { class: "card", "aria-label": "Build history" }, h("div", { class: "card-head" }, h("h2", null, "Build history"), older), history.el));

  let pendingKey = null;
  const viewers = new Map(); // build id → viewer
  let builds = new Map();
  let historyKey = "";

  async function loadPending() {
    const list = await admin("GET", "aur/pending");
    replace(reviews, list.length ? list.map((p) => reviewCard(p, () => { pendingKey = null; poller.kick(); }))
      : h("p", { class: "mute", id: "aur-none-pending" }, "Nothing is waiting for approval."));
  }

  async function loadHistory(before) {
    const list = await admin("GET", "aur/builds?limit=50" + (before ? "&before=" + before : ""));
    for (const b of list) builds.set(b.id, b);
    older.hidden = list.length < 50;
    history.setRows([...builds.values()]);
  }
  older.addEventListener("click", () => loadHistory(Math.min(...builds.keys())).catch((e) => toast(failure("Loading builds", e), { error: true })));

  const poller = new Poller(async () => {
    let a;
    try { a = await admin("GET", "aur"); error.textContent = ""; } catch (e) { error.textContent = failure("Loading the build server state", e) ?? ""; return; }
    const key = a.packages.filter((p) => p.pending).map((p) => p.pending.rev).sort().join(",");
    if (key !== pendingKey) { pendingKey = key; await loadPending().catch((e) => { pendingKey = null; error.textContent = failure("Loading held revisions", e) ?? ""; }); }
    // A viewer (and its stream) lives across polls while its build runs.
    const fresh = a.building.filter((b) => !viewers.has(b.id));
    for (const b of fresh) {
      // An ended build's log stays a little, then lives in the history.
      const v = logViewer(b, { inline: true, onEnd: () => {
        poller.kick();
        setTimeout(() => { if (viewers.get(b.id) === v) { v.close(); v.el.remove(); viewers.delete(b.id); poller.kick(); } }, 20000);
      } });
      viewers.set(b.id, v);
      building.append(v.el);
    }
    if (!viewers.size) replace(building, h("p", { class: "mute", id: "aur-idle" }, "Nothing is building."));
    else building.querySelector("#aur-idle")?.remove();
    queue.setRows(a.queue);
    tracked.setRows(a.packages);
    const hk = a.building.map((b) => b.id).join(",") + "|" + a.packages.map((p) => p.last_build?.id ?? "").join(",");
    if (hk !== historyKey) { historyKey = hk; builds = new Map(); await loadHistory().catch(() => {}); }
  }, 3000).start();

  return { stop() { poller.stop(); for (const v of viewers.values()) v.close(); } };
}
