// Custom repos: the packages of each repo, upload (picker or drop, with progress), remove.
// Needs the token (as `pkgstash repo list` does).

import { h, replace, card, actionButton, toast, confirmAction } from "../dom.js";
import { admin, encPath, failure } from "../api.js";
import { signedIn, promptSignIn } from "../auth.js";
import { bytes, int, datetime } from "../format.js";
import { DataTable } from "../table.js";
import { uploadCard } from "./upload.js";

export function mount(el) {
  el.append(h("div", { class: "view-head" }, h("h1", null, "Custom repos")));
  if (!signedIn()) {
    el.append(card("Sign in to manage the custom repos", null,
      h("p", null, "Listing, uploading and removing packages need the admin token (like ", h("code", null, "pkgstash repo list"), ")."),
      h("button", { type: "button", class: "btn primary", onclick: () => promptSignIn("The custom repos need the admin token.") }, "Sign in")));
    return { unmount() {} };
  }
  const body = h("div", { class: "stack" });
  el.append(body);
  let repos = [];
  let current = sessionStorage.getItem("pkgstash-repo");

  // A file dropped outside the drop zone must not make the browser open it.
  const stop = (e) => { if (e.dataTransfer?.types?.includes("Files")) e.preventDefault(); };
  window.addEventListener("dragover", stop);
  window.addEventListener("drop", stop);

  async function load() {
    try { repos = await admin("GET", "repos"); } catch (e) {
      const m = failure("Loading the repos", e); if (m) replace(body, h("p", { class: "error" }, m));
      return;
    }
    if (!repos.length) {
      replace(body, h("div", { class: "notice" }, "No custom repo is configured. Add a ", h("code", null, "[repos.NAME]"), " section to the config (see the README, “Custom repo”)."));
      return;
    }
    if (!repos.some((r) => r.name === current)) current = repos[0].name;
    show();
  }

  function show() {
    sessionStorage.setItem("pkgstash-repo", current);
    const repo = repos.find((r) => r.name === current);
    const tabs = repos.length > 1 ? h("div", { class: "seg", role: "group", "aria-label": "Repo" }, repos.map((r) =>
      h("button", { type: "button", "aria-pressed": String(r.name === current), onclick: () => { current = r.name; show(); } }, r.name))) : null;
    const filter = h("input", { type: "search", placeholder: "name, version…", "aria-label": "Filter packages", id: "repo-filter" });
    const table = new DataTable([
      { key: "name", label: "name", cls: "mono", render: (p) => h("span", { title: p.desc }, p.name) },
      { key: "version", label: "version", cls: "mono nowrap" },
      { key: "arch", label: "arch", narrow: false },
      { key: "csize", label: "size", num: true, render: (p) => bytes(p.csize) },
      { key: "builddate", label: "built", narrow: false, sort: (p) => Number(p.builddate) || 0, render: (p) => datetime(Number(p.builddate) || null) },
      { key: "packager", label: "packager", narrow: false },
      { key: "pgpsig", label: "signed", narrow: false, sort: (p) => (p.pgpsig ? 1 : 0), render: (p) => (p.pgpsig ? h("span", { class: "tag ok" }, "yes") : h("span", { class: "tag mute" }, "no")) },
      { key: "act", label: "", sortable: false, cls: "act", render: (p) => actionButton("Remove", () => remove(repo, p), { cls: "btn small danger" }) },
    ], { label: "Packages in " + repo.name, rowKey: (p) => p.name, empty: "no packages yet: upload one",
      initialSort: { key: "name", dir: 1 },
      filter: (p, q) => (p.name + " " + p.version + " " + p.desc).toLowerCase().includes(q) });
    filter.addEventListener("input", () => table.setQuery(filter.value));
    const count = h("span", { class: "mute", id: "repo-count" });
    const reloadPkgs = async () => {
      try {
        const pkgs = await admin("GET", `repos/${encPath(repo.name)}/packages`);
        table.setRows(pkgs);
        count.textContent = `${int(pkgs.length)} package${pkgs.length === 1 ? "" : "s"} in ${repo.name}`;
      } catch (e) { const m = failure("Listing " + repo.name, e); if (m) toast(m, { error: true }); }
    };
    const server = `${location.origin}/${repo.name}/os/$arch`;
    const size = h("dd", { id: "repo-size" }, `${int(repo.packages)}, ${bytes(repo.bytes)}`);
    const refreshSummary = async () => {
      try { repos = await admin("GET", "repos"); } catch { return; }
      const now = repos.find((x) => x.name === repo.name);
      if (now) size.textContent = `${int(now.packages)}, ${bytes(now.bytes)}`;
    };
    replace(body,
      tabs ? h("div", { class: "toolbar" }, tabs) : null,
      h("div", { class: "grid" },
        card(repo.name, null, h("dl", { class: "kv" },
          h("dt", null, "architectures"), h("dd", null, repo.arch.join(", ")),
          h("dt", null, "packages"), size,
          h("dt", null, "signing"), h("dd", null, repo.signed ? "packages and dbs signed by the server" : "off (no sign_key)"),
          h("dt", null, "largest upload"), h("dd", null, bytes(repo.max_upload)),
          repo.aur ? [h("dt", null, "AUR"), h("dd", null, "the build server publishes here")] : []),
          h("p", { class: "mute" }, "In a client's /etc/pacman.conf:"),
          h("pre", { class: "log" }, `[${repo.name}]\nSigLevel = ${repo.signed ? "Required" : "Optional TrustAll"}\nServer = ${server}`)),
        uploadCard(repo, () => { reloadPkgs(); refreshSummary(); })),
      h("section", { class: "card", "aria-label": "Packages" },
        h("div", { class: "card-head" }, h("h2", null, "Packages"), count),
        h("div", { class: "toolbar" }, h("label", { class: "field grow" }, "Filter", filter)),
        table.el));
    reloadPkgs();

    async function remove(r, p) {
      const ok = await confirmAction({
        title: `Remove ${p.name} from ${r.name}?`,
        body: h("p", null, `${p.name} ${p.version} leaves the repo's dbs; clients stop seeing it after their next `, h("code", null, "pacman -Sy"),
          ". Its file stays in the pool per [cleanup] keep_versions."),
        ok: "Remove", danger: true,
      });
      if (!ok) return;
      try {
        const m = await admin("DELETE", `repos/${encPath(r.name)}/packages/${encodeURIComponent(p.name)}`, { why: "Removing a package needs the admin token." });
        toast(`removed ${m.name} ${m.version} from ${r.name}`);
        reloadPkgs();
        refreshSummary();
      } catch (e) { const m = failure("Remove", e); if (m) toast(m, { error: true }); }
    }
  }

  load();
  return { unmount() { window.removeEventListener("dragover", stop); window.removeEventListener("drop", stop); } };
}
