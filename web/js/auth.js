// The admin token: typed once into the sign-in form, checked against the server
// (GET api/status), kept in sessionStorage only (this tab, until it closes or signs out).
// It is only ever sent in an `Authorization: Bearer` header.

import { $, replace, toast } from "./dom.js";

const KEY = "pkgstash-token";
const listeners = new Set();

export const token = () => sessionStorage.getItem(KEY);
export const signedIn = () => !!token();

/** Call `fn(signedIn)` whenever the sign-in state changes. Returns an unsubscribe function. */
export function onAuthChange(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}
const emit = () => listeners.forEach((fn) => fn(signedIn()));

export function signOut(reason) {
  const had = signedIn();
  sessionStorage.removeItem(KEY);
  if (had) emit();
  if (reason) lastReason = reason;
}
let lastReason = null;

/** The message for an admin API refusal, the same wording as the CLI's. */
export function authMessage(status) {
  switch (status) {
    case 401: return "Wrong token: the server refused it (401).";
    case 403: return "The server has no admin token configured (403): set PKGSTASH_TOKEN in its environment. Admin actions are disabled.";
    case 429: return "Too many failed attempts from this address (429): wait a minute.";
    default: return null;
  }
}

/** Check `candidate` with the server; store it when it is right. */
async function verify(candidate) {
  let r;
  try {
    r = await fetch("api/status", { headers: { Authorization: "Bearer " + candidate }, cache: "no-store" });
  } catch (e) {
    return "Cannot reach the server: " + e.message;
  }
  if (r.ok) {
    sessionStorage.setItem(KEY, candidate);
    emit();
    return null;
  }
  return authMessage(r.status) ?? `The server answered ${r.status}: ${(await r.text()).trim()}`;
}

let pending = null;

/** Open the sign-in form. `why` says what needs the token. Resolves true once signed in,
 *  false when cancelled. */
export function promptSignIn(why) {
  if (pending) return pending;
  const dlg = $("signin"), form = $("signin-form"), input = $("signin-token"), err = $("signin-error");
  replace($("signin-why"), why ? [why, " "] : "", "The token is ", h_code("PKGSTASH_TOKEN"), " in ",
    h_code("/etc/pkgstash/pkgstash.env"), ". It is kept in this tab only, until you close the tab or sign out.");
  err.textContent = lastReason ?? "";
  lastReason = null;
  input.value = "";
  pending = new Promise((resolve) => {
    const finish = (ok) => {
      form.removeEventListener("submit", onSubmit);
      $("signin-cancel").removeEventListener("click", onCancel);
      dlg.removeEventListener("cancel", onCancel);
      if (dlg.open) dlg.close();
      pending = null;
      resolve(ok);
    };
    const onSubmit = async (e) => {
      e.preventDefault();
      const t = input.value.trim();
      if (!t) { err.textContent = "Enter the token."; return; }
      $("signin-submit").disabled = true;
      err.textContent = "Checking…";
      const problem = await verify(t);
      $("signin-submit").disabled = false;
      if (problem) {
        err.textContent = problem;
        input.select();
        return;
      }
      finish(true);
    };
    const onCancel = (e) => { e?.preventDefault?.(); finish(false); };
    form.addEventListener("submit", onSubmit);
    $("signin-cancel").addEventListener("click", onCancel);
    dlg.addEventListener("cancel", onCancel);
    dlg.showModal();
    input.focus();
  });
  return pending;
}

function h_code(text) {
  const c = document.createElement("code");
  c.textContent = text;
  return c;
}

let adminEnabled = true;

/** What status.json says about the server's admin API (`admin_enabled`). */
export function setAdminEnabled(on) {
  adminEnabled = on;
}

/** The token, asking for it when the tab has none. `null` when the user cancels, or when the
 *  server has no token at all (then nobody can sign in: say so instead of asking). */
export async function requireToken(why) {
  if (signedIn()) return token();
  if (!adminEnabled) {
    toast(authMessage(403), { error: true });
    return null;
  }
  return (await promptSignIn(why)) ? token() : null;
}
