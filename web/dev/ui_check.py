#!/usr/bin/env python3
"""Drive the web interface in headless Chromium against the mock server and write a
screenshot of every view at desktop and phone width.

    python3 web/dev/ui_check.py [--out target/ui-screenshots]

It starts web/dev/mock_server.py on a free port (--url points it at another server that has
the same fixture data). It walks the issue's browser
scenarios (sign in with a wrong then the right token, a download in flight that moves, evict,
cleanup dry run then run, upload through the file picker, remove, approve and watch the build
log stream, reject, open a past build's log, charts with points) and fails on the first step
that does not happen, or on any error in the browser console (CSP violations included).
Exit 0 when everything passed. Stdlib only; needs chromium and chromedriver."""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from webdriver import Browser, WebDriverError  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def start_mock(token):
    p = subprocess.Popen([sys.executable, str(Path(__file__).with_name("mock_server.py")), "--port", "0", "--quiet",
                          "--token", token, "--upload-rate", str(1 << 20)], stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    url = line.split(" on ")[1].split("/_pkgstash")[0]
    return p, url


class Check:
    def __init__(self, b, base, token, out):
        self.b, self.base, self.token, self.out = b, base, token, out
        self.shots = []
        self.step_no = 0

    def step(self, name):
        self.step_no += 1
        print(f"[{self.step_no:2d}] {name}", flush=True)

    def shot(self, name, css=None):
        path = self.out / f"{name}.png"
        if not css:
            self.b.js("window.scrollTo(0, 0)")
        self.b.screenshot(str(path), css)
        self.shots.append(path)

    def api(self, path):
        req = urllib.request.Request(self.base + "/_pkgstash/api/" + path, headers={"Authorization": "Bearer " + self.token})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    def view(self, name):
        self.b.js("location.hash = arguments[0]", "#" + name)
        self.b.wait(f"view {name}", lambda: self.b.js("return document.querySelector('nav.tabs a[aria-current=page]')?.dataset.view") == name.split("/")[0])

    def confirm(self):
        self.b.wait("the confirmation dialog", lambda: self.b.js("return document.getElementById('confirm').open"))
        self.b.click(self.b.find("#confirm-ok"))

    def toast(self, contains, timeout=15):
        return self.b.wait(f"a message containing {contains!r}",
                           lambda: next((t for t in self.b.js("return [...document.querySelectorAll('.toast .msg')].map(e => e.textContent)") if contains in t), None),
                           timeout)

    def console_errors(self):
        bad = [e for e in self.b.console() if e.get("level") == "SEVERE"]
        # A 401 on a deliberate wrong token is expected in the console; nothing else is.
        return [e for e in bad if "401" not in e.get("message", "")]


def run(c: Check, phone_only=False):
    b = c.b
    b.go(c.base + "/_pkgstash/")

    c.step("overview without a token: numbers and a download in flight that moves")
    b.wait("the cache size", lambda: (b.text_of("#cache-size") or "–") != "–")
    bar = 'document.querySelector("progress.download")'
    first = b.wait("a progress bar", lambda: b.js(f"return {bar}?.dataset.done && Number({bar}.dataset.done)"))
    time.sleep(1.6)
    second = b.js(f"return Number({bar}.dataset.done)")
    assert second > first, f"the progress bar did not move: {first} then {second}"
    assert b.text_of("#who-state") == "read-only"
    c.shot("desktop-1-overview")

    c.step("charts draw points for the last hour and the last 24 h")
    c.view("charts")
    b.wait("chart canvases", lambda: b.js("return document.querySelectorAll('#chart-requests canvas, #chart-bytes canvas').length === 2"))
    b.wait("points in the requests chart", lambda: int(b.js("return document.getElementById('chart-requests').dataset.points || 0")) > 0)
    assert int(b.text_of("#total-requests").replace(",", "")) > 0
    c.shot("desktop-2-charts-1h")
    b.click(b.find('.seg button[data-range="24h"]'))
    b.wait("24 h of buckets", lambda: "1440 one-minute" in (b.text_of("#charts-note") or ""))
    c.shot("desktop-2-charts-24h")

    c.step("mirrors; clearing a cooldown asks for the token: a wrong one is refused, the right one works")
    c.view("mirrors")
    btn = b.wait("a Clear cooldown button", lambda: next((e for e in b.find_all("#mirrors td.act button") if b.js("return !arguments[0].hidden", {"element-6066-11e4-a52e-4f735466cecf": e})), None))
    c.shot("desktop-3-mirrors")
    b.click(btn)
    b.wait("the sign-in form", lambda: b.js("return document.getElementById('signin').open"))
    b.type(b.find("#signin-token"), "not-the-token")
    b.click(b.find("#signin-submit"))
    b.wait("the wrong-token message", lambda: "Wrong token" in (b.text_of("#signin-error") or ""))
    assert b.js("return sessionStorage.getItem('pkgstash-token')") is None
    c.shot("desktop-4-signin-wrong-token")
    el = b.find("#signin-token")
    b.clear(el)
    b.type(el, c.token)
    b.click(b.find("#signin-submit"))
    c.toast("cooldown of https://slow.example.net/arch cleared")
    assert b.js("return sessionStorage.getItem('pkgstash-token')") == c.token
    assert "token" not in b.js("return document.cookie") and c.token not in b.js("return location.href")
    b.wait("the mirror healthy", lambda: all(m["healthy"] for m in c.api("mirrors")))

    c.step("cache browser: filter, evict a file, cleanup dry run then run")
    c.view("cache")
    b.wait("cached files", lambda: len(b.find_all("#view table[aria-label='Cached files'] tbody tr[data-key]")) > 5)
    target = b.js("return document.querySelector(\"#view table[aria-label='Cached files'] tbody tr[data-key]\").dataset.key")
    b.type(b.find("#cache-filter"), target.rsplit("/", 1)[1].split("-")[0])
    c.shot("desktop-5-cache")
    b.click(b.find(f"tr[data-key='{target}'] td.act button"))
    c.confirm()
    c.toast("evicted /" + target)
    b.wait("the row gone", lambda: b.js("return !document.querySelector(`tr[data-key='${arguments[0]}']`)", target))
    listing = c.api("cache/" + target.rsplit("/", 1)[0])
    assert target not in [f["path"] for f in listing["files"]], "the evicted file is still listed by the server"
    c.view("cache/cleanup")
    b.click(b.wait_css("#cleanup .toolbar button"))
    b.wait("the dry run", lambda: "would remove" in (b.text_of("#cleanup-summary") or ""))
    c.shot("desktop-6-cleanup-dry-run")
    b.click(b.find("#cleanup-run"))
    c.confirm()
    b.wait("the cleanup report", lambda: (b.text_of("#cleanup-summary") or "").startswith("removed"))

    c.step("custom repos: a refused file, an upload with progress through the file picker, a removal")
    c.view("repos")
    b.wait_css("#upload-input")
    tmp = Path(tempfile.mkdtemp(prefix="pkgstash-ui-"))
    bad = tmp / "notes.txt"
    bad.write_text("not a package")
    pkg = tmp / "hello-2.12.3-1-x86_64.pkg.tar.zst"
    pkg.write_bytes(b"\x28\xb5\x2f\xfd" + os.urandom(3 << 20))
    sig = tmp / "hello-2.12.3-1-x86_64.pkg.tar.zst.sig"
    sig.write_bytes(os.urandom(566))
    b.type(b.find("#upload-input"), str(bad))
    b.wait("the file-name check", lambda: "is not a package file name" in (b.text_of("#upload-list") or ""))
    b.type(b.find("#upload-input"), f"{pkg}\n{sig}")
    b.wait("the package staged with its signature", lambda: "signature: " + sig.name in (b.text_of("#upload-list") or ""))
    b.click(b.find("#upload-go"))
    b.wait("upload progress", lambda: b.js("const p = document.querySelector('#upload-list li[data-state=uploading] progress'); return p && p.value > 0"))
    c.shot("desktop-7-repos-uploading")
    b.wait("the upload done", lambda: "added hello 2.12.3-1 (x86_64) to custom, replacing 2.12.1-1" in (b.text_of("#upload-list") or ""), timeout=20)
    b.wait("the new version listed", lambda: "2.12.3-1" in (b.text_of("#view table[aria-label='Packages in custom']") or ""))
    assert any(p["version"] == "2.12.3-1" and p["pgpsig"] for p in c.api("repos/custom/packages") if p["name"] == "hello")
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
    b.click(b.find("#upload-go"))
    b.wait("the dropped package added", lambda: "added dropped 1.0-1 (any) to custom" in (b.text_of("#upload-list") or ""), timeout=20)
    b.click(b.find("tr[data-key='python-foo'] td.act button"))
    c.confirm()
    c.toast("removed python-foo 0.9-1 from custom")
    c.shot("desktop-8-repos")

    c.step("AUR: held revision with its diff; approve exactly it and watch the build log stream; reject another")
    c.view("aur")
    review = b.wait_css("article.review[data-pkgbase='hello']")
    rev = b.attr(review, "data-rev")
    assert b.js("return document.querySelectorAll('article.review[data-pkgbase=hello] tr.add').length") > 3
    assert b.js("return document.querySelectorAll('article.review[data-pkgbase=hello] .invisible').length") >= 1, "the bidi character is not marked"
    b.wait("a build log streaming", lambda: len(b.text_of("#aur-building pre.log") or "") > 100)
    c.shot("desktop-9-aur")
    c.shot("desktop-9b-aur-review", "article.review[data-pkgbase='hello']")
    c.shot("desktop-9c-aur-building", "#aur-building")
    b.click(b.find("article.review[data-pkgbase='hello'] button.approve"))
    c.confirm()
    c.toast(f"approved hello 2.12.2-1 (rev {rev}); the build is queued")
    assert c.api("aur")["packages"][0]["approved"]["rev"] == rev
    box = b.wait("the hello build in progress", lambda: next((e for e in b.find_all("#aur-building .log-box") if "hello" in b.text(e)), None), timeout=20)
    n1 = len(b.text(box))
    time.sleep(1.5)
    assert len(b.text(box)) > n1, "the build log does not grow"
    b.wait("the hello build done", lambda: "built" in b.text(box) and "Finished making: hello" in b.text(box), timeout=60)
    assert any(p["name"] == "hello" and p["version"] == "2.12.2-1" for p in c.api("repos/custom/packages")), "the built package is not in the custom repo"
    b.click(b.find("article.review[data-pkgbase='bar-bin'] button.reject"))
    c.confirm()
    c.toast("rejected bar-bin 4.2.0-1")
    b.wait("nothing pending", lambda: b.find_all("#aur-none-pending"))
    c.step("AUR: a past build's log")
    b.click(b.find("#view table[aria-label='Build history'] tbody tr td.act button"))
    b.wait("the log dialog", lambda: "==> " in (b.text_of("#logview pre.log") or "") and b.text_of("#logview .log-bar .tag") != "building", timeout=20)
    c.shot("desktop-10-build-log", "#logview")
    b.click(b.find("#logview-close"))


def no_token_server(b, out):
    """A server without PKGSTASH_TOKEN: the interface says so, and an action explains the 403."""
    mock = subprocess.Popen([sys.executable, str(Path(__file__).with_name("mock_server.py")), "--port", "0", "--quiet", "--no-token"],
                            stdout=subprocess.PIPE, text=True)
    try:
        url = mock.stdout.readline().split(" on ")[1].split("/_pkgstash")[0]
        b.js("sessionStorage.clear()")
        b.go(url + "/_pkgstash/#overview")
        b.wait("the disabled notice", lambda: "admin API disabled" in (b.text_of("#who-state") or ""))
        assert b.js("return document.getElementById('btn-signin').hidden")
        b.click(b.wait_css(".view-head button"))
        b.wait("the 403 explanation", lambda: "no admin token configured (403)" in (b.text_of("#toasts") or ""))
        assert not b.js("return document.getElementById('signin').open"), "nobody can sign in: the form must not open"
        b.screenshot(str(out / "desktop-11-no-token-server.png"))
    finally:
        mock.terminate()


def phone(c: Check):
    b = c.b
    c.step("phone width: every view")
    b.viewport(390, 844, mobile=True)
    for i, v in enumerate(["overview", "charts", "cache", "mirrors", "repos", "aur"], 1):
        c.view(v)
        time.sleep(1.2)
        c.shot(f"phone-{i}-{v}")
    wide = b.js("return document.documentElement.scrollWidth")
    assert wide <= 392, f"the page is {wide}px wide on a 390px screen"
    c.step("dark colour scheme")
    b.cdp("Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": "dark"}]})
    b.viewport(1366, 900)
    for v in ["overview", "aur"]:
        c.view(v)
        time.sleep(1.2)
        c.shot(f"dark-{v}", None if v == "overview" else "#view")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(ROOT / "target" / "ui-screenshots"))
    ap.add_argument("--url", help="a running server (default: start the mock)")
    ap.add_argument("--token", default="secret")
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    mock = None
    if not a.url:
        mock, a.url = start_mock(a.token)
    b = Browser()
    c = Check(b, a.url, a.token, out)
    ok = False
    try:
        b.viewport(1366, 900)
        run(c)
        phone(c)
        errors = c.console_errors()
        assert not errors, "browser console errors:\n" + "\n".join(e["message"] for e in errors)
        c.step("a server without a token")
        no_token_server(b, out)
        ok = True
    except (AssertionError, WebDriverError) as e:
        print(f"FAILED at step {c.step_no}: {e}", file=sys.stderr)
        try:
            c.shot("failure")
            for e in c.b.console():
                print("console:", e.get("level"), e.get("message"), file=sys.stderr)
        except WebDriverError:
            pass
    finally:
        b.quit()
        if mock:
            mock.terminate()
    print(("all checks passed; " if ok else "") + f"screenshots in {out}: " + ", ".join(p.name for p in c.shots))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
