// `git diff` text → a readable view: one collapsible block per file, old/new line numbers,
// added and removed lines coloured (and marked + / − for colour-blind readers), the changed
// part of a changed line highlighted, and invisible or direction-changing characters
// (Trojan Source, zero-width, control characters) shown as visible red marks and counted.

import { h } from "./dom.js";

const INVISIBLE = /[\u0000-\u0008\u000B-\u001F\u007F-\u009F\u00AD\u061C\u115F\u1160\u180E\u200B-\u200F\u202A-\u202E\u2060-\u2064\u2066-\u2069\u3164\uFEFF\uFFA0]/g;

/** Parse unified diff text into files: `{ name, status, lines: [{t, text, o, n}], adds, dels }`.
 *  `t`: "ctx" | "add" | "del" | "hunk" | "meta". Text outside any file becomes a "meta" file. */
export function parseDiff(text) {
  const files = [];
  let f = null, o = 0, n = 0;
  const meta = [];
  for (const line of text.replace(/\n$/, "").split("\n")) {
    if (line.startsWith("diff --git ")) {
      const m = /^diff --git a\/(.*) b\/(.*)$/.exec(line);
      f = { name: m ? m[2] : line.slice(11), status: "modified", lines: [], adds: 0, dels: 0, header: true };
      files.push(f);
      continue;
    }
    if (!f) { meta.push(line); continue; }
    if (f.header) {
      if (line.startsWith("@@")) f.header = false;
      else {
        if (line.startsWith("new file mode")) f.status = "added";
        else if (line.startsWith("deleted file mode")) f.status = "deleted";
        else if (line.startsWith("rename to ")) { f.status = "renamed"; f.name = line.slice(10); }
        else if (line.startsWith("+++ b/")) f.name = line.slice(6);
        else if (line.startsWith("Binary files")) f.lines.push({ t: "meta", text: line });
        else if (line.startsWith("old mode") || line.startsWith("new mode")) f.lines.push({ t: "meta", text: line });
        continue;
      }
    }
    if (line.startsWith("@@")) {
      const m = /^@@ -(\d+)(?:,\d+)? \+(\d+)(?:,\d+)? @@(.*)$/.exec(line);
      if (m) { o = +m[1]; n = +m[2]; }
      f.lines.push({ t: "hunk", text: line });
    } else if (line.startsWith("+")) {
      f.lines.push({ t: "add", text: line.slice(1), n: n++ }); f.adds++;
    } else if (line.startsWith("-")) {
      f.lines.push({ t: "del", text: line.slice(1), o: o++ }); f.dels++;
    } else if (line.startsWith(" ")) {
      f.lines.push({ t: "ctx", text: line.slice(1), o: o++, n: n++ });
    } else if (line.startsWith("\\")) {
      f.lines.push({ t: "meta", text: line });
    } else {
      // The `[… cut at N bytes]` marker, or anything unexpected: shown, never dropped.
      f.lines.push({ t: "meta", text: line });
    }
  }
  if (meta.some((l) => l.trim())) files.unshift({ name: "(outside any file)", status: "meta", lines: meta.map((t) => ({ t: "meta", text: t })), adds: 0, dels: 0 });
  return files;
}

/** Count invisible / bidi / control characters in `text`. */
export const countInvisible = (text) => (text.match(INVISIBLE) ?? []).length;

/** Text with invisible characters replaced by visible marks. */
function visible(text) {
  const out = [];
  let last = 0;
  for (const m of text.matchAll(INVISIBLE)) {
    if (m.index > last) out.push(text.slice(last, m.index));
    const cp = "U+" + m[0].codePointAt(0).toString(16).toUpperCase().padStart(4, "0");
    out.push(h("span", { class: "invisible", title: `invisible character ${cp}` }, cp));
    last = m.index + m[0].length;
  }
  out.push(text.slice(last));
  return out;
}

/** The text of a changed line with the part that differs from `other` in <mark>. */
function marked(text, other) {
  if (other == null) return visible(text);
  let p = 0;
  while (p < text.length && p < other.length && text[p] === other[p]) p++;
  let s = 0;
  while (s < text.length - p && s < other.length - p && text[text.length - 1 - s] === other[other.length - 1 - s]) s++;
  const mid = text.slice(p, text.length - s);
  if (!mid || mid.length === text.length) return visible(text);
  return [visible(text.slice(0, p)), h("mark", null, visible(mid)), visible(text.slice(text.length - s))];
}

/** Pair each run of removed lines with the run of added lines right after it (same count):
 *  those are edits of the same lines, worth an in-line highlight. */
function partners(lines) {
  const other = new Map();
  for (let i = 0; i < lines.length;) {
    if (lines[i].t !== "del") { i++; continue; }
    let j = i;
    while (j < lines.length && lines[j].t === "del") j++;
    let k = j;
    while (k < lines.length && lines[k].t === "add") k++;
    if (k - j === j - i) for (let x = 0; x < j - i; x++) { other.set(i + x, lines[j + x].text); other.set(j + x, lines[i + x].text); }
    i = Math.max(k, i + 1);
  }
  return other;
}

const STATUS_TAG = { added: "ok", deleted: "bad", modified: "info", renamed: "info", meta: "mute" };

/** Render parsed files. */
export function renderDiff(files) {
  if (!files.length) return h("p", { class: "mute" }, "The diff is empty (only file modes changed, or nothing at all).");
  return h("div", { class: "diff" }, files.map((f) => {
    const other = partners(f.lines);
    const rows = f.lines.map((l, i) => {
      if (l.t === "hunk" || l.t === "meta") return h("tr", { class: l.t }, h("td", { colspan: 4 }, visible(l.text)));
      const sign = l.t === "add" ? "+" : l.t === "del" ? "−" : " ";
      return h("tr", { class: l.t === "ctx" ? null : l.t },
        h("td", { class: "ln" }, l.o ?? ""), h("td", { class: "ln" }, l.n ?? ""),
        h("td", { class: "sign", "aria-hidden": "true" }, sign),
        h("td", null, l.t === "ctx" ? null : h("span", { class: "sr-only" }, l.t === "add" ? "added: " : "removed: "), marked(l.text, other.get(i))));
    });
    return h("details", { class: "diff-file", open: true },
      h("summary", null, h("span", { class: `tag ${STATUS_TAG[f.status] ?? "info"}` }, f.status), f.name,
        h("span", { class: "stat" }, h("span", { class: "a" }, `+${f.adds}`), " ", h("span", { class: "d" }, `−${f.dels}`))),
      h("div", { class: "diff-body" }, h("table", { class: "diff", "aria-label": "Changes in " + f.name },
        h("thead", { class: "sr-only" }, h("tr", null, h("th", null, "old line"), h("th", null, "new line"), h("th", null, "change"), h("th", null, "text"))),
        h("tbody", null, rows))));
  }));
}
