// Boot: header, sign-in state, the shared status.json poll, and the hash router that mounts
// one view at a time (#overview, #charts, #cache, #mirrors, #repos, #aur).

import { $, replace } from "./dom.js";
import { getPublic } from "./api.js";
import { onAuthChange, promptSignIn, signOut, signedIn, setAdminEnabled } from "./auth.js";
import { duration } from "./format.js";
import { Poller } from "./live.js";
import * as overview from "./views/overview.js";
import * as charts from "./views/charts.js";
import * as cache from "./views/cache.js";
import * as mirrors from "./views/mirrors.js";
import * as repos from "./views/repos.js";
import * as aur from "./views/aur.js";

const VIEWS = { overview, charts, cache, mirrors, repos, aur };
const TITLES = { overview: "Overview", charts: "Charts", cache: "Cache", mirrors: "Mirrors", repos: "Custom repos", aur: "AUR builds" };

/** Shared by the views: the last status.json and a way to hear about new ones. */
const ctx = {
  status: null,
  statusListeners: new Set(),
  onStatus(fn) {
    this.statusListeners.add(fn);
    if (this.status) fn(this.status);
    return () => this.statusListeners.delete(fn);
  },
  refreshStatus: () => statusPoller.kick(),
};

const statusPoller = new Poller(async () => {
  try {
    const s = await getPublic("status.json");
    ctx.status = s;
    $("conn").textContent = "";
    renderHeader(s);
    for (const fn of ctx.statusListeners) fn(s);
  } catch (e) {
    $("conn").textContent = "server unreachable: " + e.message;
  }
}, 5000);

function renderHeader(s) {
  adminEnabled = s.admin_enabled;
  setAdminEnabled(adminEnabled);
  renderWho();
  replace($("meta"), `v${s.version} · up ${duration(s.uptime_secs)} · ${location.host}`);
  const n = s.aur?.pending ?? 0;
  const badge = $("aur-badge");
  badge.hidden = !n;
  badge.textContent = n;
  badge.setAttribute("aria-label", `${n} waiting for approval`);
}

let adminEnabled = true;

function renderWho() {
  const on = signedIn();
  const st = $("who-state");
  st.textContent = on ? "signed in" : adminEnabled ? "read-only" : "read-only: admin API disabled";
  st.title = adminEnabled ? "" : "The server has no PKGSTASH_TOKEN: admin actions are disabled";
  st.classList.toggle("on", on);
  st.classList.toggle("off", !adminEnabled);
  $("btn-signin").hidden = on || !adminEnabled;
  $("btn-signout").hidden = !on;
}

let current = null; // { name, handle }

function route(focus) {
  const name = (location.hash.replace(/^#\/?/, "").split(/[/?]/)[0] || "overview").toLowerCase();
  const view = VIEWS[name] ? name : "overview";
  if (current) current.handle?.unmount?.();
  const main = $("view");
  main.replaceChildren();
  for (const a of document.querySelectorAll("nav.tabs a")) {
    if (a.dataset.view === view) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  document.title = `${TITLES[view]} · pkgstash`;
  const handle = VIEWS[view].mount(main, ctx);
  current = { name: view, handle };
  statusPoller.setInterval(handle?.statusInterval ?? 5000);
  if (focus) main.focus({ preventScroll: false });
}

window.addEventListener("hashchange", () => route(true));
$("btn-signin").addEventListener("click", () => promptSignIn());
$("btn-signout").addEventListener("click", () => signOut());
$("logview-close").addEventListener("click", () => $("logview").close());
onAuthChange(() => { renderWho(); route(false); });

renderWho();
route(false);
statusPoller.start();
