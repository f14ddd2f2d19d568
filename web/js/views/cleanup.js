// The cleanup panel: a dry run (what the retention policy would remove, and why) is always
// shown before the real run is offered.

import { h, replace, toast, confirmAction, actionButton } from "../dom.js";
import { admin, failure } from "../api.js";
import { bytes, int } from "../format.js";
import { DataTable } from "../table.js";

/** `{ el }`: a card. `open`: start expanded (e.g. from the Overview's Cleanup button). */
export function cleanupCard({ open = false, onDone } = {}) {
  const body = h("div", { id: "cleanup-result" });
  const details = h("details", { class: "card", id: "cleanup", open },
    h("summary", null, h("h2", { class: "inline-h" }, "Cleanup")),
    h("p", null, "Apply the retention policy ([cleanup] keep_versions, max_age, max_size). Files a cached db lists and downloads in flight are never removed. Preview first:"),
    h("div", { class: "toolbar" }, actionButton("Preview cleanup", preview, { cls: "btn", busy: "Planning…" })),
    body);

  async function preview() {
    let r;
    try { r = await admin("POST", "cleanup?dry_run=true", { why: "Planning a cleanup needs the admin token." }); } catch (e) {
      const m = failure("Cleanup preview", e); if (m) toast(m, { error: true });
      return;
    }
    const table = report(r);
    const run = actionButton(`Run cleanup`, () => runIt(r), { cls: "btn danger primary", busy: "Cleaning…" });
    run.id = "cleanup-run";
    replace(body,
      h("p", { id: "cleanup-summary" }, h("strong", null, `would remove ${int(r.removed.length)} files, ${bytes(r.freed_bytes)}`),
        r.errors.length ? h("span", { class: "error" }, "; errors: " + r.errors.join("; ")) : ""),
      r.removed.length ? table.el : null,
      h("div", { class: "toolbar" }, r.removed.length ? run : h("span", { class: "mute" }, "Nothing to remove."),
        h("button", { type: "button", class: "btn ghost", onclick: () => body.replaceChildren() }, "Discard")));
  }

  async function runIt(plan) {
    const ok = await confirmAction({
      title: "Run the cleanup?",
      body: h("p", null, `The preview would remove ${int(plan.removed.length)} files (${bytes(plan.freed_bytes)}). The run decides again from the cache as it is now, and shows what it removed.`),
      ok: "Run cleanup", danger: true,
    });
    if (!ok) return;
    try {
      const r = await admin("POST", "cleanup");
      replace(body,
        h("p", { id: "cleanup-summary" }, h("strong", null, `removed ${int(r.removed.length)} files, ${bytes(r.freed_bytes)}`),
          r.errors.length ? h("span", { class: "error" }, "; errors: " + r.errors.join("; ")) : ""),
        r.removed.length ? report(r).el : null);
      toast(`Cleanup: removed ${r.removed.length} files, ${bytes(r.freed_bytes)}`, { error: r.errors.length > 0 });
      onDone?.();
    } catch (e) { const m = failure("Cleanup", e); if (m) toast(m, { error: true }); }
  }

  return { el: details };
}

function report(r) {
  const t = new DataTable([
    { key: "path", label: "file", cls: "path" },
    { key: "bytes", label: "size", num: true, render: (x) => bytes(x.bytes) },
    { key: "reason", label: "reason", cls: "wide" },
  ], { label: r.dry_run ? "Files the cleanup would remove" : "Files removed", initialSort: { key: "bytes", dir: -1 }, pageSize: 100, tall: true });
  t.setRows(r.removed);
  return t;
}
