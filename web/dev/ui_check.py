#!/usr/bin/python3
"""Drive the web interface in headless Chromium (Selenium + chromedriver) through the
scenarios of issue 19 and write a screenshot of every view at desktop and phone width.

    /usr/bin/python3 web/dev/ui_check.py [--out DIR]            # against the mock server
    /usr/bin/python3 web/dev/ui_check.py --world WORLD.json       # against a real pkgstash

Without `--world` it starts web/dev/mock_server.py on a free port and checks against the
mock's fixture (MOCK_WORLD below). With `--world` it checks a running pkgstash described by a
JSON file: the integration test tests/it/browser.rs sets up that world (an nginx mirror, a
trickling mirror, a custom repo, a fake AUR with held revisions) and writes the file. The
keys are MOCK_WORLD's; a key that is null or missing skips the step that needs it.

Steps: sign in with a wrong then the right token; a download in flight that moves; evict a
file (and, given `cache_dir`, see it gone from disk); cleanup dry run then run; upload
through the file picker; remove a package; approve a held revision and watch its build log
stream until it is built; reject another; open a past build's log; charts with points; every
view at phone width and in the dark scheme; a server without a token. Fails on the first step
that does not happen, or on any error in the browser console (CSP violations included).
Exit 0 when everything passed.

Needs Debian's python3-selenium, chromium and chromium-driver (run it with /usr/bin/python3:
another python3 on PATH may lack selenium)."""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

try:
    from selenium import webdriver
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
except ImportError:
    sys.exit(f"ui_check.py needs Selenium: apt-get install python3-selenium, and run it with /usr/bin/python3 (this is {sys.executable})")

ROOT = Path(__file__).resolve().parents[2]
CHROME_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--disable-dev-shm-usage", "--window-size=1366,900", "--lang=en-US"]

# The mock server's fixture (web/dev/mock_world.py, mock_aur.py), as a world description.
MOCK_WORLD = {
    "url": None,  # set once the mock runs
    "token": "secret",
    # a substring of a download in flight's path ("" = any)
    "inflight": "",
    # a mirror in cooldown whose "Clear cooldown" asks for the token (else: the header's Sign in)
    "cooldown_mirror": {"upstream": "archlinux", "url": "https://slow.example.net/arch"},
    # cache key to evict (null: the first file listed); `cache_dir`: where to see it gone
    "evict": None,
    "cache_dir": None,
    # files to upload through the picker (a package, optionally its .sig) and what must follow
    "upload": {"repo": "custom", "files": None, "name": "hello", "version": "2.12.3-1",
               "added": "added hello 2.12.3-1 (x86_64) to custom, replacing 2.12.1-1",
               "progress": True},
    "drop": True,  # also drag and drop a made-up package (the mock does not read it)
    "remove": {"name": "python-foo", "message": "removed python-foo 0.9-1 from custom"},
    "building_before": True,  # a build is already streaming when the AUR view opens
    # `running_has`: a line the build prints as it runs (several times); `log_has`: at its end
    "approve": {"pkgbase": "hello", "version": "2.12.2-1", "running_has": "==> ",
                "log_has": "Finished making: hello", "repo": "custom", "bidi": True},
    "reject": {"pkgbase": "bar-bin", "message": "rejected bar-bin 4.2.0-1"},
    "no_token_url": None,  # a server without PKGSTASH_TOKEN (the mock starts one)
}

# JavaScript conditions: a view has drawn what its screenshot should show.
READY = {
    "overview": "return (document.getElementById('cache-size')?.textContent ?? '–') !== '–'",
    "charts": "const b = document.getElementById('chart-requests'); return !!b && b.querySelector('canvas') && Number(b.dataset.points) > 0",
    "cache": "return !!document.querySelector(\"#view table[aria-label='Cached files'] tbody tr\")",
    "mirrors": "return !!document.querySelector('#mirrors tr[data-url] td.health span')",
    "repos": "return !!document.getElementById('repo-count')?.textContent",
    "aur": "return !!document.querySelector('#aur-summary') && !!document.querySelector('#aur-pending > *')",
}


class Failed(Exception):
    pass


class Browser:
    """Headless Chromium through chromedriver, with the few helpers the checks need."""

    def __init__(self, chromium, chromedriver):
        opts = webdriver.ChromeOptions()
        opts.binary_location = chromium
        for a in CHROME_ARGS:
            opts.add_argument(a)
        opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        self.d = webdriver.Chrome(service=Service(executable_path=chromedriver, log_path=os.devnull), options=opts)
        self.d.set_script_timeout(20)
        self.size = (1366, 900)

    def quit(self):
        try:
            self.d.quit()
        except WebDriverException:
            pass

    def go(self, url):
        self.d.get(url)

    def js(self, script, *args):
        return self.d.execute_script(script, *args)

    def text_of(self, css):
        return self.js("const e = document.querySelector(arguments[0]); return e ? e.textContent : null;", css)

    def wait(self, what, fn, timeout=30):
        """Poll `fn()` until it returns something truthy (WebDriver errors count as not yet,
        e.g. an element replaced while it was read); fail naming `what`. The timeouts are
        generous (a loaded CI machine): a passing wait returns as soon as it holds."""
        deadline = time.monotonic() + timeout
        last = None
        while True:
            try:
                v = fn()
                if v:
                    return v
            except WebDriverException as e:
                last = e.msg if hasattr(e, "msg") else str(e)
            if time.monotonic() > deadline:
                raise Failed(f"timed out after {timeout} s waiting for {what}" + (f" (last error: {last})" if last else ""))
            time.sleep(0.1)

    def find(self, css):
        return self.d.find_element(By.CSS_SELECTOR, css)

    def all(self, css):
        return self.d.find_elements(By.CSS_SELECTOR, css)

    def click(self, css, what=None, timeout=30):
        """Click the first visible, enabled `css` once there is one (found again on every try,
        so a re-rendered element is no problem)."""
        def attempt():
            for e in self.all(css):
                if e.is_displayed() and e.is_enabled():
                    e.click()
                    return True
            return False
        self.wait(what or f"`{css}` to click", attempt, timeout)

    def type(self, css, text, clear=False):
        e = self.wait(f"`{css}`", lambda: self.find(css))
        if clear:
            e.clear()
        e.send_keys(text)

    def viewport(self, width, height, mobile=False):
        self.d.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                               {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile})
        self.size = (width, height)

    def settle(self):
        """Two animation frames: what the last DOM change laid out is painted."""
        self.d.execute_async_script("const done = arguments[0]; requestAnimationFrame(() => requestAnimationFrame(() => done()));")

    def screenshot(self, path, css=None, max_height=2600):
        """The page from its top (not only the viewport; at most `max_height` px) as PNG, or
        only the element `css`."""
        import base64
        self.settle()
        if css:
            r = self.js("const r = document.querySelector(arguments[0]).getBoundingClientRect();"
                        "return {x: r.left + scrollX, y: r.top + scrollY, width: r.width, height: r.height};", css)
            clip = {**r, "height": min(r["height"], max_height), "scale": 1}
        else:
            self.js("window.scrollTo(0, 0)")
            h = self.js("return Math.max(document.documentElement.scrollHeight, document.body.scrollHeight, innerHeight);")
            clip = {"x": 0, "y": 0, "width": self.size[0], "height": min(h, max_height), "scale": 1}
        shot = self.d.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip})
        Path(path).write_bytes(base64.b64decode(shot["data"]))

    def console(self):
        """Browser console entries since the last call."""
        try:
            return self.d.get_log("browser")
        except WebDriverException:
            return []


class Check:
    def __init__(self, b, w, out):
        self.b, self.w, self.out = b, w, out
        self.base = w["url"]
        self.shots = []
        self.step_no = 0
        self.console = []

    def step(self, name):
        self.step_no += 1
        print(f"[{self.step_no:2d}] {name}", flush=True)

    def shot(self, name, css=None, toasts=False):
        """Screenshot `name`.png; unless `toasts`, the messages in the corner (already
        checked) are hidden while it is taken, so they do not cover the view."""
        path = self.out / f"{name}.png"
        self.b.js("document.getElementById('toasts').style.visibility = arguments[0] ? '' : 'hidden'", toasts)
        try:
            self.b.screenshot(path, css)
        finally:
            self.b.js("document.getElementById('toasts').style.visibility = ''")
        self.shots.append(path)

    def api(self, path, method="GET"):
        req = urllib.request.Request(self.base + "/_pkgstash/api/" + path, method=method,
                                     headers={"Authorization": "Bearer " + self.w["token"]})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    def view(self, name):
        self.b.js("location.hash = arguments[0]", "#" + name)
        self.b.wait(f"view {name}", lambda: self.b.js("return document.querySelector('nav.tabs a[aria-current=page]')?.dataset.view") == name.split("/")[0])

    def confirm(self):
        self.b.wait("the confirmation dialog", lambda: self.b.js("return document.getElementById('confirm').open"))
        self.b.click("#confirm-ok")
        self.b.wait("the confirmation dialog closed", lambda: not self.b.js("return document.getElementById('confirm').open"))

    def toast(self, contains, timeout=30):
        return self.b.wait(f"a message containing {contains!r}",
                           lambda: next((t for t in self.b.js("return [...document.querySelectorAll('.toast .msg')].map(e => e.textContent)") if contains in t), None),
                           timeout)

    def collect_console(self):
        self.console += self.b.console()

    def console_errors(self):
        self.collect_console()
        bad = [e for e in self.console if e.get("level") == "SEVERE"]
        # The sign-in check's 401 on the deliberate wrong token is expected; nothing else is.
        return [e for e in bad if not ("/_pkgstash/api/status " in e.get("message", "") and "status of 401" in e.get("message", ""))]


def overview(c):
    b, w = c.b, c.w
    b.go(c.base + "/_pkgstash/")
    c.step("overview without a token: numbers and a download in flight that moves")
    b.wait("the cache size", lambda: b.js(READY["overview"]))
    if w.get("inflight") is not None:
        want = w["inflight"]
        done = ("const r = [...document.querySelectorAll('#inflight tr[data-path]')].find(r => r.dataset.path.includes(arguments[0]));"
                "return r ? Number(r.querySelector('progress.download').dataset.done) : null;")
        first = b.wait(f"a progress bar for {want or 'a download'}", lambda: b.js(done, want))
        second = b.wait("the progress bar to move", lambda: (lambda v: v if v and v > first else None)(b.js(done, want)), timeout=20)
        assert second > first, f"the progress bar did not move: {first} then {second}"
    assert b.text_of("#who-state") == "read-only", b.text_of("#who-state")
    c.shot("desktop-1-overview")


def charts(c):
    b = c.b
    c.step("charts draw points for the requests made so far, for the last hour and the last 24 h")
    c.view("charts")
    b.wait("chart canvases", lambda: b.js("return document.querySelectorAll('#chart-requests canvas, #chart-bytes canvas').length === 2"))
    b.wait("points in the requests chart", lambda: b.js(READY["charts"]))
    b.wait("requests counted in the range", lambda: int((b.text_of("#total-requests") or "0").replace(",", "")) > 0)
    # The chart's data is the server's: its current minute holds the requests just made.
    stats = json.loads(urllib.request.urlopen(c.base + "/_pkgstash/stats.json?range=1h", timeout=10).read())
    last = sum((v[-1] or 0) for v in stats["requests"].values())
    assert last > 0 or sum((v[-2] or 0) for v in stats["requests"].values()) > 0, f"no requests in the last minutes: {stats['requests']}"
    c.shot("desktop-4-charts-1h")
    b.click('.seg button[data-range="24h"]')
    b.wait("24 h of buckets", lambda: "1440 one-minute" in (b.text_of("#charts-note") or ""))
    c.shot("desktop-4-charts-24h")


def sign_in(c):
    b, w = c.b, c.w
    m = w.get("cooldown_mirror")
    if m:
        c.step("mirrors; clearing a cooldown asks for the token: a wrong one is refused, the right one works")
        c.view("mirrors")
        row = f"#mirrors tr[data-url='{m['upstream']} {m['url']}']"
        # Failures in a row (the button shows) last until a success or the reset; the
        # cooldown itself may be over by now.
        b.wait("the mirror's failure shown", lambda: b.js(f"const e = document.querySelector(\"{row} td.act button\"); return !!e && !e.hidden"))
        c.shot("desktop-2-mirrors")
        b.click(row + " td.act button")
    else:
        c.step("sign in: a wrong token is refused, the right one works")
        b.click("#btn-signin")
    b.wait("the sign-in form", lambda: b.js("return document.getElementById('signin').open"))
    b.type("#signin-token", "not-the-token")
    b.click("#signin-submit")
    b.wait("the wrong-token message", lambda: "Wrong token" in (b.text_of("#signin-error") or ""))
    assert b.js("return sessionStorage.getItem('pkgstash-token')") is None
    c.shot("desktop-3-signin-wrong-token")
    b.type("#signin-token", w["token"], clear=True)
    b.click("#signin-submit")
    if m:
        c.toast(f"cooldown of {m['url']} cleared")

        def cleared():
            mm = next(x for x in c.api("mirrors") if x["url"] == m["url"])
            return mm["cooldown_secs"] == 0 and mm["consecutive_failures"] == 0
        b.wait("the mirror's cooldown cleared on the server", cleared)
        b.wait("the Clear cooldown button gone", lambda: b.js(f"return document.querySelector(\"{row} td.act button\").hidden"))
    b.wait("signed in", lambda: b.text_of("#who-state") == "signed in")
    assert b.js("return sessionStorage.getItem('pkgstash-token')") == w["token"]
    assert w["token"] not in b.js("return document.cookie") and w["token"] not in b.js("return location.href")
    assert b.js("return localStorage.length") == 0


def cache(c):
    b, w = c.b, c.w
    c.step("cache browser: filter, evict a file, cleanup dry run then run")
    c.view("cache")
    rows = "#view table[aria-label='Cached files'] tbody tr[data-key]"
    target = w.get("evict")
    if target:
        b.wait(f"{target} listed", lambda: b.js("return [...document.querySelectorAll(arguments[0])].some(r => r.dataset.key === arguments[1])", rows, target))
    else:
        target = b.wait("cached files", lambda: b.js("return document.querySelector(arguments[0])?.dataset.key", rows))
    b.type("#cache-filter", target.rsplit("/", 1)[1].split("-")[0])
    b.wait("the filtered list", lambda: b.js("return [...document.querySelectorAll(arguments[0])].every(r => r.dataset.key.includes(arguments[1]))", rows, target.rsplit("/", 1)[1].split("-")[0]))
    c.shot("desktop-5-cache")
    b.click(f"tr[data-key='{target}'] td.act button")
    c.confirm()
    c.toast("evicted /" + target)
    b.wait("the row gone", lambda: b.js("return ![...document.querySelectorAll(arguments[0])].some(r => r.dataset.key === arguments[1])", rows, target))
    try:
        listed = [f["path"] for f in c.api("cache/" + target.rsplit("/", 1)[0])["files"]]
    except urllib.error.HTTPError as e:
        if e.code != 404:
            raise
        listed = []
    assert target not in listed, "the evicted file is still listed by the server"
    if w.get("cache_dir"):
        gone = Path(w["cache_dir"]) / target
        assert not gone.exists(), f"{gone} is still in the cache dir"
    c.view("cache/cleanup")
    b.click("#cleanup .toolbar button")
    b.wait("the dry run", lambda: "would remove" in (b.text_of("#cleanup-summary") or ""))
    c.shot("desktop-6-cleanup-dry-run")
    if b.all("#cleanup-run"):
        b.click("#cleanup-run")
        c.confirm()
        b.wait("the cleanup report", lambda: (b.text_of("#cleanup-summary") or "").startswith("removed"))
    else:
        assert "Nothing to remove." in b.text_of("#cleanup-result")


def repos(c):
    b, w = c.b, c.w
    up = w["upload"]
    c.step("custom repos: a refused file, an upload through the file picker, a removal")
    c.view("repos")
    b.wait("the upload form", lambda: b.find("#upload-input"))
    tmp = Path(tempfile.mkdtemp(prefix="pkgstash-ui-"))
    bad = tmp / "notes.txt"
    bad.write_text("not a package")
    b.type("#upload-input", str(bad))
    b.wait("the file-name check", lambda: "is not a package file name" in (b.text_of("#upload-list") or ""))
    files = [Path(f) for f in up["files"]] if up.get("files") else mock_upload_files(tmp)
    b.type("#upload-input", "\n".join(str(f) for f in files))
    pkg = files[0].name
    sig = next((f.name for f in files if f.name.endswith(".sig")), None)
    staged = f"#upload-list li[data-file='{pkg}'][data-state=ready]"
    b.wait("the package staged", lambda: b.text_of(staged) is not None)
    if sig:
        assert "signature: " + sig in b.text_of(staged), b.text_of(staged)
    b.click("#upload-go")
    if up.get("progress"):
        b.wait("upload progress", lambda: b.js("const p = document.querySelector('#upload-list li[data-state=uploading] progress'); return p && p.value > 0"))
        c.shot("desktop-7-repos-uploading")
    b.wait("the upload done", lambda: up["added"] in (b.text_of("#upload-list") or ""), timeout=60)
    assert b.js(f"const p = document.querySelector(\"#upload-list li[data-file='{pkg}'] progress\"); return p.value === p.max")
    table = f"#view table[aria-label='Packages in {up['repo']}']"
    b.wait("the new version listed", lambda: up["version"] in (b.text_of(table) or ""))
    listed = [p for p in c.api(f"repos/{up['repo']}/packages") if p["name"] == up["name"]]
    assert any(p["version"] == up["version"] and (p["pgpsig"] or not sig) for p in listed), listed
    if not up.get("progress"):
        c.shot("desktop-7-repos-uploaded")
    if w.get("drop"):
        c.step("custom repos: drag and drop a package with its signature")
        b.js("""
            const dt = new DataTransfer();
            const head = new Uint8Array([0x28, 0xb5, 0x2f, 0xfd, 1, 2, 3, 4]);
            dt.items.add(new File([head, new Uint8Array(200000)], "dropped-1.0-1-any.pkg.tar.zst"));
            dt.items.add(new File([new Uint8Array(310)], "dropped-1.0-1-any.pkg.tar.zst.sig"));
            const zone = document.getElementById("upload-drop");
            for (const t of ["dragenter", "dragover", "drop"]) zone.dispatchEvent(new DragEvent(t, { dataTransfer: dt, bubbles: true, cancelable: true }));
        """)
        b.wait("the dropped package staged", lambda: "signature: dropped-1.0-1-any.pkg.tar.zst.sig" in (b.text_of("#upload-list") or ""))
        b.click("#upload-go")
        b.wait("the dropped package added", lambda: "added dropped 1.0-1 (any) to custom" in (b.text_of("#upload-list") or ""), timeout=30)
    rm = w.get("remove")
    if rm:
        b.click(f"{table} tr[data-key='{rm['name']}'] td.act button")
        c.confirm()
        c.toast(rm["message"])
        b.wait("the removed package gone", lambda: not b.all(f"{table} tr[data-key='{rm['name']}']"))
        assert not any(p["name"] == rm["name"] for p in c.api(f"repos/{up['repo']}/packages"))
    c.shot("desktop-8-repos")


def mock_upload_files(tmp):
    """A made-up package and signature (the mock checks names and sizes only); big enough
    that the mock's slow reading shows the progress bar."""
    pkg = tmp / "hello-2.12.3-1-x86_64.pkg.tar.zst"
    pkg.write_bytes(b"\x28\xb5\x2f\xfd" + os.urandom(3 << 20))
    sig = tmp / "hello-2.12.3-1-x86_64.pkg.tar.zst.sig"
    sig.write_bytes(os.urandom(566))
    return [pkg, sig]


LOG_BOX = ("return [...document.querySelectorAll('#aur-building .log-box')]"
           ".map(e => ({text: e.textContent, state: e.querySelector('.log-bar .tag')?.textContent, head: e.querySelector('.log-bar .mono')?.textContent}))"
           ".find(x => x.head.split(' ')[1] === arguments[0]) ?? null")


def aur(c):
    b, w = c.b, c.w
    ap, rj = w["approve"], w["reject"]
    c.step("AUR: a held revision with its diff; approve exactly it and watch its build log stream; reject another")
    c.view("aur")
    review = f"article.review[data-pkgbase='{ap['pkgbase']}']"
    rev = b.wait(f"{ap['pkgbase']} waiting for approval", lambda: b.find(review).get_attribute("data-rev"), timeout=30)
    b.wait(f"{rj['pkgbase']} waiting for approval", lambda: b.all(f"article.review[data-pkgbase='{rj['pkgbase']}']"))
    assert b.js(f"return document.querySelectorAll(\"{review} tr.add\").length") > 3, "the diff shows no added lines"
    assert b.js(f"return document.querySelectorAll(\"{review} ul.reasons li\").length") >= 1, "no reason why it was held"
    if ap.get("bidi"):
        assert b.js(f"return document.querySelectorAll(\"{review} .invisible\").length") >= 1, "the bidi character is not marked"
    if w.get("building_before"):
        b.wait("a build log streaming", lambda: len(b.text_of("#aur-building pre.log") or "") > 100)
    c.shot("desktop-9-aur")
    c.shot("desktop-9b-aur-review", review)
    b.click(review + " button.approve")
    c.confirm()
    c.toast(f"approved {ap['pkgbase']} {ap['version']} (rev {rev}); the build is queued")
    approved = next(p for p in c.api("aur")["packages"] if p["pkgbase"] == ap["pkgbase"])["approved"]
    assert approved["rev"] == rev and approved["by"] == "admin", approved
    # The build runs: its log streams into the page, and grows, while the state says building.
    running = ap.get("running_has") or "==> "
    box = lambda: b.js(LOG_BOX, ap["pkgbase"]) or {"text": "", "state": None}  # noqa: E731
    first = b.wait(f"the {ap['pkgbase']} build in progress, its log showing {running!r}",
                   lambda: (lambda x: x if x["state"] == "building" and running in x["text"] else None)(box()), timeout=60)
    c.shot("desktop-9c-aur-building", "#aur-building")
    b.wait("the build log to grow while the build runs",
           lambda: (lambda x: x["state"] == "building" and x["text"].count(running) > first["text"].count(running))(box()), timeout=30)
    done = b.wait(f"the {ap['pkgbase']} build done", lambda: (lambda x: x if x and x["state"] == "built" and ap["log_has"] in x["text"] else None)(b.js(LOG_BOX, ap["pkgbase"])), timeout=120)
    assert "failed" not in done["state"], done
    in_repo = c.api(f"repos/{ap['repo']}/packages")
    assert any(p["name"] == ap["pkgbase"] and p["version"] == ap["version"] for p in in_repo), \
        f"the built package is not in the repo: {[(p['name'], p['version']) for p in in_repo]}"
    b.click(f"article.review[data-pkgbase='{rj['pkgbase']}'] button.reject")
    c.confirm()
    c.toast(rj["message"])
    b.wait("nothing pending", lambda: b.all("#aur-none-pending"))
    assert not c.api("aur/pending"), "a revision is still pending"

    c.step("AUR: a past build's log")
    history = "#view table[aria-label='Build history'] tbody tr"
    b.wait(f"the {ap['pkgbase']} build in the history", lambda: b.js(f"return [...document.querySelectorAll(\"{history}\")].some(r => r.textContent.includes(arguments[0]) && r.textContent.includes('built'))", ap["pkgbase"]))
    b.click(history + " td.act button")
    b.wait("the log dialog", lambda: "==> " in (b.text_of("#logview pre.log") or "") and b.text_of("#logview .log-bar .tag") != "building", timeout=30)
    c.shot("desktop-10-build-log", "#logview")
    b.click("#logview-close")


def phone(c):
    b = c.b
    c.step("phone width: every view fits")
    b.viewport(390, 844, mobile=True)
    for i, v in enumerate(["overview", "charts", "cache", "mirrors", "repos", "aur"], 1):
        c.view(v)
        b.wait(f"the {v} view drawn", lambda: b.js(READY[v]))
        c.shot(f"phone-{i}-{v}")
        wide = b.js("return document.documentElement.scrollWidth")
        assert wide <= 392, f"the {v} view is {wide}px wide on a 390px screen"
    c.step("dark colour scheme")
    b.d.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": "dark"}]})
    b.viewport(1366, 900)
    for v in ["overview", "aur"]:
        c.view(v)
        b.wait(f"the {v} view drawn", lambda: b.js(READY[v]))
        c.shot(f"dark-{v}", None if v == "overview" else "#view")
    b.d.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})


def no_token_server(c):
    """A server without PKGSTASH_TOKEN: the interface says so, and an action explains the 403."""
    b = c.b
    c.step("a server without a token")
    b.js("sessionStorage.clear()")
    b.go(c.w["no_token_url"] + "/_pkgstash/#overview")
    b.wait("the disabled notice", lambda: "admin API disabled" in (b.text_of("#who-state") or ""))
    assert b.js("return document.getElementById('btn-signin').hidden")
    b.click(".view-head button")
    b.wait("the 403 explanation", lambda: "no admin token configured (403)" in (b.text_of("#toasts") or ""))
    assert not b.js("return document.getElementById('signin').open"), "nobody can sign in: the form must not open"
    c.shot("desktop-11-no-token-server", toasts=True)


def start_mock(*args):
    p = subprocess.Popen([sys.executable, str(Path(__file__).with_name("mock_server.py")), "--port", "0", "--quiet", *args],
                         stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    return p, line.split(" on ")[1].split("/_pkgstash")[0]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--world", help="JSON describing a running pkgstash (default: start the mock)")
    ap.add_argument("--out", help="screenshot dir (default: target/ui-screenshots/mock)")
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    ap.add_argument("--chromedriver", default="/usr/bin/chromedriver")
    a = ap.parse_args()
    mocks = []
    if a.world:
        w = {k: None for k in MOCK_WORLD} | {"drop": False, "building_before": False}
        w |= json.loads(Path(a.world).read_text())
    else:
        w = dict(MOCK_WORLD)
        p, w["url"] = start_mock("--token", w["token"], "--upload-rate", str(1 << 20))
        mocks.append(p)
        p, w["no_token_url"] = start_mock("--no-token")
        mocks.append(p)
    out = Path(a.out or ROOT / "target" / "ui-screenshots" / "mock")
    out.mkdir(parents=True, exist_ok=True)
    b = Browser(a.chromium, a.chromedriver)
    c = Check(b, w, out)
    ok = False
    started = time.monotonic()
    try:
        overview(c)
        sign_in(c)
        charts(c)
        cache(c)
        repos(c)
        aur(c)
        phone(c)
        errors = c.console_errors()
        assert not errors, "browser console errors:\n" + "\n".join(e["message"] for e in errors)
        if w.get("no_token_url"):
            no_token_server(c)
            errors = c.console_errors()
            assert not errors, "browser console errors:\n" + "\n".join(e["message"] for e in errors)
        ok = True
    except (AssertionError, Failed, WebDriverException, urllib.error.URLError) as e:
        print(f"FAILED at step {c.step_no}: {type(e).__name__}: {e}", file=sys.stderr)
        try:
            c.shot("failure", toasts=True)
            c.collect_console()
            for e in c.console:
                print("console:", e.get("level"), e.get("message"), file=sys.stderr)
        except WebDriverException:
            pass
    finally:
        b.quit()
        for p in mocks:
            p.terminate()
    print(("all checks passed " if ok else "") + f"in {time.monotonic() - started:.0f} s; screenshots in {out}: " + ", ".join(p.name for p in c.shots))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
