// A build log viewer: streams `api/aur/builds/<id>/log` as Server-Sent Events (read with
// fetch, since EventSource cannot send the token), follows the end while the build runs,
// resumes a dropped stream with Last-Event-ID, and offers the whole log as a download.

import { h, replace, toast } from "../dom.js";
import { admin, streamEvents, failure, Cancelled } from "../api.js";
import { bytes, duration } from "../format.js";

/** Shown at most (characters); older output is trimmed from the view, not from the server. */
const MAX_SHOWN = 4 << 20;

export const buildTag = (b) => b.state === "building"
  ? h("span", { class: "tag info" }, "building")
  : b.state === "built" ? h("span", { class: "tag ok" }, "built") : h("span", { class: "tag bad", title: b.error ?? "" }, "failed");

/** `{ el, close() }` for build `b`. `onEnd(build)` when the stream says the build ended. */
export function logViewer(b, { inline = false, onEnd } = {}) {
  const pre = h("pre", { class: "log" + (inline ? " inline" : ""), tabindex: "0", "aria-label": `Build log of ${b.pkgbase} ${b.version}`, "aria-live": "off" });
  const follow = h("input", { type: "checkbox", checked: true });
  const state = h("span", null, buildTag(b));
  const size = h("span", { class: "mute" });
  const dl = h("button", { type: "button", class: "btn small ghost" }, "Download");
  const el = h("div", { class: "log-box", dataset: { build: b.id } },
    h("div", { class: "log-bar" }, state, h("span", { class: "mono" }, `#${b.id} ${b.pkgbase} ${b.version}`), size,
      h("span", { class: "grow" }), h("label", { class: "field inline" }, follow, "follow"), dl),
    pre);
  const ctl = new AbortController();
  let offset = null, shown = 0, ended = false, tries = 0;

  // Following stops when the reader scrolls up, and starts again at the bottom. Only the
  // reader's own scrolling counts (not the scrolling that appending does).
  const atBottom = () => pre.scrollHeight - pre.scrollTop - pre.clientHeight < 40;
  for (const t of ["wheel", "touchmove", "keydown", "pointerup"]) {
    pre.addEventListener(t, () => requestAnimationFrame(() => { follow.checked = atBottom(); }), { passive: true });
  }
  dl.addEventListener("click", async () => {
    try {
      const r = await admin("GET", `aur/builds/${b.id}/log`, { raw: true, headers: { Accept: "text/plain" } });
      const url = URL.createObjectURL(await r.blob());
      const a = h("a", { href: url, download: `${b.pkgbase}-${b.version}-build-${b.id}.log` });
      document.body.append(a); a.click(); a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
    } catch (e) { const m = failure("Download", e); if (m) toast(m, { error: true }); }
  });

  const append = (text) => {
    pre.append(text);
    shown += text.length;
    let trimmed = false;
    while (shown > MAX_SHOWN && pre.firstChild) {
      shown -= pre.firstChild.textContent.length;
      pre.firstChild.remove();
      trimmed = true;
    }
    if (trimmed) pre.prepend(h("span", { class: "mute" }, "[earlier output trimmed from this view: Download has the whole log]\n"));
    if (follow.checked) pre.scrollTop = pre.scrollHeight;
  };

  async function run() {
    while (!ended && !ctl.signal.aborted) {
      try {
        await streamEvents(`aur/builds/${b.id}/log`, {
          signal: ctl.signal, lastEventId: offset,
          onEvent: (ev) => {
            tries = 0;
            if (ev.event === "log") {
              append(ev.data + "\n");
              if (ev.id != null) { offset = ev.id; size.textContent = bytes(Number(ev.id)); }
            } else if (ev.event === "end") {
              ended = true;
              const fin = JSON.parse(ev.data);
              replace(state, buildTag(fin));
              if (fin.duration_secs != null) size.textContent = `${bytes(fin.log_bytes)} · took ${duration(fin.duration_secs)}`;
              if (fin.error) append(`\n[pkgstash] build failed: ${fin.error}\n`);
              onEnd?.(fin);
            }
          },
        });
        if (!ended) await sleep(3000, ctl.signal); // closed early: resume from the offset
      } catch (e) {
        if (ctl.signal.aborted || e instanceof Cancelled) return;
        if (e.status && e.status !== 0) { append(`\n[${failure("Log", e)}]\n`); return; }
        if (++tries > 20) { append(`\n[the log stream keeps failing: ${e.message}]\n`); return; }
        await sleep(3000, ctl.signal);
      }
    }
  }
  run();
  return { el, close: () => ctl.abort() };
}

function sleep(ms, signal) {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => { clearTimeout(t); resolve(); });
  });
}

/** Open build `b`'s log in the big dialog. */
export function openLogDialog(b) {
  const dlg = document.getElementById("logview");
  const body = document.getElementById("logview-body");
  document.getElementById("logview-title").textContent = `Build log: ${b.pkgbase} ${b.version}`;
  const v = logViewer(b);
  replace(body, h("p", { class: "mute" }, `revision ${b.rev} · approved by ${b.by}`,
    b.packages?.length ? ` · published ${b.packages.join(", ")}` : ""), v.el);
  const onClose = () => { v.close(); body.replaceChildren(); dlg.removeEventListener("close", onClose); };
  dlg.addEventListener("close", onClose);
  dlg.showModal();
}
