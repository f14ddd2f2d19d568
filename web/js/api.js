// Talking to the server (docs/admin-api.md). Public data with plain fetch; admin calls with
// `Authorization: Bearer` only (no cookie, no token in a URL). Errors carry the server's own
// text/plain message, which the views show verbatim, as the CLI does.

import { authMessage, requireToken, signOut, token } from "./auth.js";

export class ApiError extends Error {
  constructor(status, text) {
    super(text || `HTTP ${status}`);
    this.status = status;
  }
}

/** Thrown when the user cancels the sign-in an action asked for. */
export class Cancelled extends Error {
  constructor() { super("cancelled"); }
}

async function errorOf(r) {
  const text = (await r.text().catch(() => "")).trim();
  return new ApiError(r.status, authMessage(r.status) ?? (text || `HTTP ${r.status} ${r.statusText}`));
}

/** GET a public JSON document (status.json, stats.json). */
export async function getPublic(path, { signal } = {}) {
  const r = await fetch(path, { cache: "no-store", signal });
  if (!r.ok) throw await errorOf(r);
  return r.json();
}

/** An admin API call (`path` below `api/`). Asks for the token when the tab has none
 *  (`why` is shown in the form); a 401 signs the tab out and asks once more. */
export async function admin(method, path, { why, headers = {}, signal, raw = false } = {}) {
  for (let attempt = 0; attempt < 2; attempt++) {
    const t = await requireToken(why);
    if (!t) throw new Cancelled();
    const r = await fetch("api/" + path, {
      method, signal, cache: "no-store",
      headers: { ...headers, Authorization: "Bearer " + t },
    });
    if (r.status === 401) {
      signOut("The server refused the token (401): sign in again.");
      continue;
    }
    if (!r.ok) throw await errorOf(r);
    return raw ? r : r.json();
  }
  throw new ApiError(401, authMessage(401));
}

/** An admin GET that never prompts: `null` when the tab is not signed in. */
export async function adminQuiet(path, opts = {}) {
  if (!token()) return null;
  return admin("GET", path, opts);
}

/** Percent-encode each `/`-separated segment of a path taken from data. */
export const encPath = (p) => p.split("/").map(encodeURIComponent).join("/");

/** PUT `file` with upload progress (XMLHttpRequest: fetch has no upload progress).
 *  `onProgress(sent, total)`. Resolves the JSON answer; rejects with ApiError. */
export async function upload(path, file, { headers = {}, onProgress, why, signal } = {}) {
  const t = await requireToken(why);
  if (!t) throw new Cancelled();
  const res = await new Promise((resolve, reject) => {
    const x = new XMLHttpRequest();
    x.open("PUT", "api/" + path);
    x.setRequestHeader("Authorization", "Bearer " + t);
    x.setRequestHeader("Content-Type", "application/octet-stream");
    for (const [k, v] of Object.entries(headers)) x.setRequestHeader(k, v);
    x.upload.onprogress = (e) => onProgress?.(e.loaded, e.lengthComputable ? e.total : file.size);
    x.onload = () => resolve(x);
    x.onerror = () => reject(new ApiError(0, "the upload was interrupted (network error)"));
    x.onabort = () => reject(new ApiError(0, "the upload was cancelled"));
    signal?.addEventListener("abort", () => x.abort());
    x.send(file);
  });
  if (res.status === 401) {
    signOut("The server refused the token (401): sign in again.");
    throw new ApiError(401, authMessage(401));
  }
  const text = (res.responseText || "").trim();
  if (res.status < 200 || res.status > 299) {
    throw new ApiError(res.status, authMessage(res.status) ?? (text || `HTTP ${res.status}`));
  }
  return JSON.parse(text);
}

/** Read a Server-Sent Events stream from an admin route with fetch (EventSource cannot send
 *  the Authorization header). `onEvent({event, data, id})` per event. Resolves when the
 *  server closes the stream; rejects on HTTP errors. `lastEventId` resumes. */
export async function streamEvents(path, { onEvent, lastEventId, signal } = {}) {
  const headers = { Accept: "text/event-stream" };
  if (lastEventId != null) headers["Last-Event-ID"] = String(lastEventId);
  const r = await admin("GET", path, { headers, signal, raw: true });
  const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  let ev = { event: "message", data: [], id: null };
  const line = (l) => {
    if (l === "") {
      if (ev.data.length || ev.event !== "message") onEvent({ event: ev.event, data: ev.data.join("\n"), id: ev.id });
      ev = { event: "message", data: [], id: null };
      return;
    }
    if (l.startsWith(":")) return;
    const i = l.indexOf(":");
    const field = i < 0 ? l : l.slice(0, i);
    let value = i < 0 ? "" : l.slice(i + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") ev.event = value;
    else if (field === "data") ev.data.push(value);
    else if (field === "id") ev.id = value;
  };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += value;
    let nl;
    while ((nl = buf.search(/\r\n|\r|\n/)) >= 0) {
      const sep = buf[nl] === "\r" && buf[nl + 1] === "\n" ? 2 : 1;
      if (buf[nl] === "\r" && nl + 1 === buf.length) break; // maybe half of \r\n
      line(buf.slice(0, nl));
      buf = buf.slice(nl + sep);
    }
  }
}

/** A short message for a failed action (`what failed: server text`). */
export function failure(what, e) {
  if (e instanceof Cancelled) return null;
  return `${what} failed: ${e.message}`;
}
