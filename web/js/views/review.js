// A held AUR revision: why it was held, its diff against the last approved revision, and
// Approve / Reject of exactly this revision (its id goes with the request; the server
// answers 409 if another revision is pending by then).

import { h, actionButton, toast, confirmAction } from "../dom.js";
import { admin, failure } from "../api.js";
import { ago, datetime, shortRev } from "../format.js";
import { parseDiff, renderDiff, countInvisible } from "../diff.js";

/** The card of one `Pending`. `onDecided()` after an approve or reject (or a 409). */
export function reviewCard(p, onDecided) {
  const invisible = countInvisible(p.diff);
  const approve = actionButton(`Approve ${shortRev(p.rev)}`, async () => {
    const ok = await confirmAction({
      title: `Approve ${p.pkgbase} ${p.version}?`,
      body: [h("p", null, "This exact revision will be built (makepkg runs its PKGBUILD on this server) and published to the custom repo:"),
        h("p", { class: "mono" }, p.rev),
        invisible ? h("p", { class: "error" }, `The diff contains ${invisible} invisible or direction-changing character(s).`) : null],
      ok: "Approve and build",
    });
    if (!ok) return;
    try {
      const a = await admin("POST", `aur/approve/${encodeURIComponent(p.pkgbase)}?rev=${encodeURIComponent(p.rev)}`, { why: "Approving a build needs the admin token." });
      toast(`approved ${a.pkgbase} ${a.version} (rev ${a.rev}); the build is queued`);
    } catch (e) {
      const m = failure("Approve", e); if (m) toast(m, { error: true });
      if (e.status !== 409 && e.status !== 404) return;
    }
    onDecided?.();
  }, { cls: "btn primary", title: "Approve exactly revision " + p.rev });
  approve.dataset.rev = p.rev;
  approve.classList.add("approve");

  const reject = actionButton("Reject", async () => {
    const ok = await confirmAction({
      title: `Reject ${p.pkgbase} ${p.version}?`,
      body: [h("p", null, "This revision is dropped and not held again; the next new revision of the package is reviewed as usual."), h("p", { class: "mono" }, p.rev)],
      ok: "Reject", danger: true,
    });
    if (!ok) return;
    try {
      const d = await admin("POST", `aur/reject/${encodeURIComponent(p.pkgbase)}?rev=${encodeURIComponent(p.rev)}`, { why: "Rejecting needs the admin token." });
      toast(d.message);
    } catch (e) {
      const m = failure("Reject", e); if (m) toast(m, { error: true });
      if (e.status !== 409 && e.status !== 404) return;
    }
    onDecided?.();
  }, { cls: "btn danger" });
  reject.classList.add("reject");

  const files = parseDiff(p.diff);
  return h("article", { class: "review", dataset: { pkgbase: p.pkgbase, rev: p.rev }, "aria-label": `${p.pkgbase} ${p.version} waiting for approval` },
    h("div", { class: "review-head" },
      h("h3", null, p.pkgbase), h("span", { class: "mono" }, `${p.old_version ?? "not in the repo"} → ${p.version}`),
      h("span", { class: "tag warn" }, "held"), h("span", { class: "mute", title: datetime(p.since) }, "since " + ago(p.since))),
    h("dl", { class: "kv" },
      p.pkgnames.length > 1 || p.pkgnames[0] !== p.pkgbase ? [h("dt", null, "packages"), h("dd", null, p.pkgnames.join(", "))] : [],
      h("dt", null, "revision"), h("dd", { class: "rev" }, p.rev),
      h("dt", null, "diff against"), h("dd", { class: "rev" }, p.approved_rev ?? "nothing: first review, the whole package is shown")),
    h("p", { class: "reasons-title" }, h("strong", null, "Held because:")),
    h("ul", { class: "reasons" }, p.reasons.map((r) => h("li", null, r))),
    invisible ? h("div", { class: "notice bad", role: "alert" },
      `The diff contains ${invisible} invisible, control or direction-changing character(s), shown as red U+XXXX marks. Code can read differently from how it looks: check those lines.`) : null,
    renderDiff(files),
    h("details", { class: "diff-raw" }, h("summary", null, "Raw diff"), h("pre", { class: "log inline" }, p.diff)),
    h("div", { class: "review-actions" }, approve, reject,
      h("span", { class: "mute" }, "CLI: ", h("code", null, `pkgstash aur approve ${p.pkgbase} --rev ${p.rev}`))));
}
