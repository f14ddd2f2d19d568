// Cache browser: per upstream and directory, the cached files with version, size, hits, last
// served and whether the db lists a newer version; sortable, filterable; evict one file;
// cleanup with its dry run first. Needs the token (it shows what the LAN installs).

import { h, replace, card, actionButton, toast, confirmAction } from "../dom.js";
import { admin, encPath, failure } from "../api.js";
import { signedIn, promptSignIn } from "../auth.js";
import { bytes, int, timeAgo } from "../format.js";
import { DataTable } from "../table.js";
import { cleanupCard } from "./cleanup.js";

export function mount(el, ctx) {
  const reload = h("button", { type: "button", class: "btn", onclick: () => loadTree() }, "Reload");
  el.append(h("div", { class: "view-head" }, h("h1", null, "Cache"), signedIn() ? reload : null));
  if (!signedIn()) return lockedView(el, ctx);

  const wantCleanup = location.hash.includes("cleanup");
  const cleanup = cleanupCard({ open: wantCleanup, onDone: () => loadTree() });
  const side = h("ul", { class: "side", "aria-label": "Cached directories" });
  const pick = h("select", { id: "cache-location", "aria-label": "Directory" });
  const filter = h("input", { type: "search", id: "cache-filter", placeholder: "name, version, file…", "aria-label": "Filter files" });
  const kind = h("select", { id: "cache-kind", "aria-label": "Kind of file" },
    h("option", { value: "package" }, "Packages"), h("option", { value: "database" }, "Databases"), h("option", { value: "" }, "All files"));
  const outdated = h("input", { type: "checkbox", id: "cache-outdated" });
  const count = h("span", { class: "mute", id: "cache-count", "aria-live": "polite" });
  const title = h("h2", null, "Files");
  let now = Date.now() / 1000;
  let prefix = null;
  let seq = 0; // only the answer to the latest listing request is shown

  const table = new DataTable([
    { key: "name", label: "name", cls: "mono", sort: (r) => r.name ?? r.file, render: (r) => h("span", { title: r.path }, r.name ?? r.file) },
    { key: "version", label: "version", cls: "mono nowrap" },
    { key: "arch", label: "arch", narrow: false },
    { key: "dir", label: "directory", cls: "mono wide", narrow: false },
    { key: "size", label: "size", num: true, render: (r) => h("span", { title: r.sig ? `+ ${bytes(r.sig_size)} signature` : null }, bytes(r.size)) },
    { key: "hits", label: "hits", num: true, render: (r) => int(r.hits) },
    { key: "last_served", label: "last served", narrow: false, render: (r) => timeAgo(h, r.last_served, now) },
    { key: "db", label: "in db", sort: dbRank, render: dbCell },
    { key: "act", label: "", sortable: false, cls: "act", render: (r) => actionButton("Evict", () => evict(r), { cls: "btn small danger", title: "Remove this file from the cache" }) },
  ], {
    label: "Cached files", rowKey: (r) => r.path, empty: "nothing cached here", tall: true,
    initialSort: { key: "hits", dir: -1 },
    filter: (r, q) => (r.file + " " + (r.version ?? "") + " " + r.dir).toLowerCase().includes(q),
    onRender: (rows) => { count.textContent = `${int(rows.length)} file${rows.length === 1 ? "" : "s"} · ${bytes(rows.reduce((t, r) => t + r.size, 0))}`; },
  });
  const applyFilter = () => table.setFilter((r) => (!kind.value || r.kind === kind.value || (kind.value === "package" && r.kind === "signature")) && (!outdated.checked || r.newer_in_db));
  filter.addEventListener("input", () => table.setQuery(filter.value));
  kind.addEventListener("change", applyFilter);
  outdated.addEventListener("change", applyFilter);
  pick.addEventListener("change", () => select(pick.value));
  applyFilter();

  el.append(cleanup.el,
    h("div", { class: "split" },
      h("section", { class: "card side-wrap", "aria-label": "Directories" }, h("h2", null, "Directories"), side),
      h("section", { class: "card", "aria-label": "Files" },
        h("div", { class: "card-head" }, title),
        h("div", { class: "toolbar" },
          h("label", { class: "field narrow-only" }, "Directory", pick),
          h("label", { class: "field grow" }, "Filter", filter),
          h("label", { class: "field" }, "Show", kind),
          h("label", { class: "field inline" }, outdated, "only where the db has a newer version"),
          count),
        table.el)));

  async function loadTree() {
    let tree;
    try { tree = await admin("GET", "cache"); } catch (e) { const m = failure("Loading the cache", e); if (m) toast(m, { error: true }); return; }
    const items = [];
    for (const u of tree.upstreams) {
      items.push({ prefix: u.name, label: `${u.name} (all)`, n: u.files, bytes: u.bytes, group: u.name });
      for (const d of u.dirs) items.push({ prefix: `${u.name}/${d.dir}`, label: d.dir, n: d.files, bytes: d.bytes, indent: true });
    }
    replace(side, items.length ? items.map((it) => h("li", null,
      h("button", { type: "button", class: it.indent ? "indent" : null, "aria-current": String(it.prefix === prefix), dataset: { prefix: it.prefix },
        title: `${int(it.n)} files, ${bytes(it.bytes)}`, onclick: () => select(it.prefix) },
        it.label, h("span", { class: "n" }, bytes(it.bytes))))) : h("li", { class: "mute" }, "no upstreams"));
    replace(pick, items.map((it) => h("option", { value: it.prefix }, it.indent ? "  " + it.prefix : it.label)));
    if (!prefix || !items.some((it) => it.prefix === prefix)) prefix = items[0]?.prefix ?? null;
    pick.value = prefix ?? "";
    if (prefix) await loadFiles();
  }

  async function select(p) {
    prefix = p;
    pick.value = p;
    for (const b of side.querySelectorAll("button")) b.setAttribute("aria-current", String(b.dataset.prefix === p));
    await loadFiles();
  }

  async function loadFiles() {
    title.textContent = "Files in " + prefix;
    const mine = ++seq;
    try {
      const r = await admin("GET", "cache/" + encPath(prefix));
      if (mine !== seq) return;
      now = r.now ?? Date.now() / 1000;
      table.setRows(r.files);
      if (r.truncated) toast(`Only the first ${int(r.files.length)} files are listed: pick a directory.`);
    } catch (e) {
      table.setRows([]);
      const m = failure("Listing " + prefix, e); if (m) toast(m, { error: true });
    }
  }

  async function evict(r) {
    const ok = await confirmAction({
      title: "Evict from the cache?",
      body: [h("p", { class: "mono" }, r.path), h("p", null, `${bytes(r.size)}${r.sig ? " and its signature" : ""}. The next client asking for it downloads it again from a mirror.`)],
      ok: "Evict", danger: true,
    });
    if (!ok) return;
    try {
      const e = await admin("DELETE", "cache/" + encPath(r.path), { why: "Evicting needs the admin token." });
      let msg = `evicted ${e.path} (${bytes(e.bytes)})`;
      if (r.sig) {
        try { const s = await admin("DELETE", "cache/" + encPath(r.path + ".sig")); msg += ` and its signature (${bytes(s.bytes)})`; } catch (x) {
          if (x.status !== 404) msg += `; the signature stays: ${x.message}`;
        }
      }
      toast(msg);
      table.setRows(table.rows.filter((x) => x.path !== r.path));
      ctx.refreshStatus();
    } catch (x) { const m = failure("Evict", x); if (m) toast(m, { error: true }); }
  }

  loadTree();
  return { statusInterval: 5000, unmount() {} };
}

const dbRank = (r) => (r.newer_in_db ? 0 : r.db_version == null ? (r.kind === "package" ? 1 : 3) : 2);

function dbCell(r) {
  if (r.kind !== "package") return r.kind === "database" ? h("span", { class: "mute" }, "db") : h("span", { class: "mute" }, r.kind);
  if (r.newer_in_db) return h("span", { class: "tag warn", title: "A cached db lists a newer version: clients download that one now" }, "newer: " + r.db_version);
  if (r.db_version == null) return h("span", { class: "tag mute", title: "No cached db of this directory lists this package name" }, "not listed");
  if (r.db_version === r.version) return h("span", { class: "tag ok", title: "This is the version the db lists" }, "current");
  return h("span", { class: "tag info", title: "The db lists an older version" }, "db: " + r.db_version);
}

/** Without the token: say why, show the public totals, offer the sign-in. */
function lockedView(el, ctx) {
  const usage = h("tbody");
  el.append(card("Sign in to browse the cache", null,
    h("p", null, "The file list shows which packages the machines on this network install, so it needs the admin token. Totals are public:"),
    h("div", { class: "table-wrap" }, h("table", { "aria-label": "Cache per upstream" },
      h("thead", null, h("tr", null, h("th", null, "upstream"), h("th", { class: "num" }, "files"), h("th", { class: "num" }, "size"))), usage)),
    h("p", null, h("button", { type: "button", class: "btn primary", onclick: () => promptSignIn("The cache browser needs the admin token.") }, "Sign in"))));
  const unsub = ctx.onStatus((s) => replace(usage, Object.entries(s.upstreams).map(([k, u]) =>
    h("tr", null, h("td", null, k), h("td", { class: "num" }, int(u.files)), h("td", { class: "num" }, bytes(u.bytes))))));
  return { statusInterval: 5000, unmount: unsub };
}
