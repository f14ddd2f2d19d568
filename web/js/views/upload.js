// Uploading packages to a custom repo: a file picker and a drop zone, each package paired
// with its optional `.sig`, checked like the server checks (same messages), sent with upload
// progress; the server's answer or error text is shown per file.

import { h, replace, toast } from "../dom.js";
import { upload, encPath } from "../api.js";
import { bytes } from "../format.js";

/** Extensions pacman accepts after `.pkg.tar` (src/pkgfile.rs `is_package_file_name`). */
const EXTS = ["", ".zst", ".xz", ".gz", ".bz2", ".lz4", ".lzo", ".lrz", ".Z"];
const MAX_SIG = 64 << 10;

export function isPackageFileName(name) {
  const i = name.indexOf(".pkg.tar");
  return i > 0 && EXTS.includes(name.slice(i + 8)) && !name.includes("/");
}

/** Pair packages with signatures: `X.sig` goes with `X`; one package and one unmatched
 *  signature go together (as `pkgstash repo add NAME FILE SIG` allows any sig name). */
export function pair(files) {
  const sigs = files.filter((f) => f.name.endsWith(".sig"));
  const pkgs = files.filter((f) => !f.name.endsWith(".sig"));
  const used = new Set();
  const items = pkgs.map((f) => {
    const sig = sigs.find((s) => s.name === f.name + ".sig");
    if (sig) used.add(sig);
    return { file: f, sig: sig ?? null };
  });
  const loose = sigs.filter((s) => !used.has(s));
  if (items.length === 1 && !items[0].sig && loose.length === 1) {
    items[0].sig = loose[0];
    loose.length = 0;
  }
  return { items, loose };
}

async function base64(file) {
  const buf = new Uint8Array(await file.arrayBuffer());
  let s = "";
  for (let i = 0; i < buf.length; i += 0x8000) s += String.fromCharCode(...buf.subarray(i, i + 0x8000));
  return btoa(s);
}

/** The upload card for `repo` (an `api/repos` entry). `onAdded()` after each success. */
export function uploadCard(repo, onAdded) {
  const input = h("input", { type: "file", id: "upload-input", multiple: true, "aria-describedby": "upload-help" });
  const list = h("ul", { class: "uploads", id: "upload-list", "aria-label": "Files to upload" });
  const go = h("button", { type: "button", class: "btn primary", id: "upload-go", disabled: true }, "Upload");
  const clear = h("button", { type: "button", class: "btn ghost", disabled: true }, "Clear");
  const drop = h("div", { class: "drop", id: "upload-drop" },
    h("div", null, h("strong", null, "Drop package files here"), " (with their .sig files, optional)"),
    h("label", { class: "btn", for: "upload-input" }, "Choose files…"), input,
    h("div", { class: "mute", id: "upload-help" }, `name-version-release-arch.pkg.tar.zst, at most ${bytes(repo.max_upload)}; arch one of ${repo.arch.join(", ")} or any`,
      repo.signed ? "; the server signs it with the repo's key" : ""));
  let items = [];

  const add = (files) => {
    const { items: fresh, loose } = pair([...files]);
    for (const s of loose) toast(`${s.name}: no package to go with this signature (name it PACKAGE.sig, or add one package with one signature)`, { error: true });
    for (const it of fresh) {
      it.state = "ready";
      it.msg = check(it);
      if (it.msg) it.state = "invalid";
      items = items.filter((x) => x.file.name !== it.file.name);
      items.push(it);
    }
    render();
  };
  const check = (it) => {
    if (!isPackageFileName(it.file.name)) return `bad request: \`${it.file.name}\` is not a package file name (name-version-arch.pkg.tar.zst)`;
    if (it.file.size === 0) return "bad request: empty upload";
    if (it.file.size > repo.max_upload) return `payload too large: ${it.file.size} bytes is over the repo's max_upload of ${repo.max_upload}`;
    if (it.sig && it.sig.size > MAX_SIG) return `${it.sig.name} is ${bytes(it.sig.size)}: too large for a detached signature`;
    return null;
  };
  function render() {
    replace(list, items.map((it) => {
      it.bar ??= h("progress", { max: 1, value: 0, "aria-label": "upload progress of " + it.file.name });
      it.bar.hidden = it.state !== "uploading" && it.state !== "done";
      return h("li", { dataset: { file: it.file.name, state: it.state } },
        h("span", { class: "name" }, it.file.name),
        h("span", { class: "mute nowrap" }, bytes(it.file.size)),
        it.bar,
        h("span", { class: "sub" + (it.state === "invalid" || it.state === "error" ? " bad" : it.state === "done" ? " ok" : ""), role: it.state === "error" ? "alert" : null },
          it.msg ?? (it.sig ? `signature: ${it.sig.name}` : "no signature")));
    }));
    const ready = items.filter((x) => x.state === "ready").length;
    go.disabled = !ready;
    go.textContent = ready > 1 ? `Upload ${ready} packages` : "Upload";
    clear.disabled = !items.length || items.some((x) => x.state === "uploading");
  }

  async function run() {
    go.disabled = true;
    for (const it of items.filter((x) => x.state === "ready")) {
      it.state = "uploading";
      it.msg = "uploading…";
      render();
      try {
        const headers = it.sig ? { "X-Pkgstash-Signature": await base64(it.sig) } : {};
        const a = await upload(`repos/${encPath(repo.name)}/packages?filename=${encodeURIComponent(it.file.name)}`, it.file, {
          headers, why: "Uploading needs the admin token.",
          onProgress: (sent, total) => {
            it.bar.max = total || 1;
            it.bar.value = sent;
            it.msg = sent < total ? `uploading… ${bytes(sent)} / ${bytes(total)}` : `sent ${bytes(total)}; the server is checking the package…`;
            it.bar.nextSibling.textContent = it.msg;
          },
        });
        it.state = "done";
        it.bar.value = it.bar.max;
        it.msg = addedText(a);
        onAdded?.(a);
      } catch (e) {
        it.state = e.message === "cancelled" ? "ready" : "error";
        it.msg = e.message === "cancelled" ? null : e.message;
      }
      render();
    }
  }

  input.addEventListener("change", () => { add(input.files); input.value = ""; });
  go.addEventListener("click", run);
  clear.addEventListener("click", () => { items = items.filter((x) => x.state === "uploading"); render(); });
  for (const t of ["dragenter", "dragover"]) drop.addEventListener(t, (e) => { e.preventDefault(); drop.classList.add("over"); });
  for (const t of ["dragleave", "drop"]) drop.addEventListener(t, () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => { e.preventDefault(); if (e.dataTransfer?.files?.length) add(e.dataTransfer.files); });

  return h("section", { class: "card", "aria-label": "Upload to " + repo.name },
    h("div", { class: "card-head" }, h("h2", null, "Upload to " + repo.name)),
    drop, list, h("div", { class: "toolbar" }, go, clear));
}

/** The same line as `pkgstash repo add` prints. */
export function addedText(a) {
  let s = `added ${a.name} ${a.version} (${a.arch}) to ${a.repo}`;
  if (a.replaced) s += `, replacing ${a.replaced}`;
  if (a.pruned?.length) s += `; pruned ${a.pruned.join(", ")}`;
  return s;
}
