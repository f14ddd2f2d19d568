"""A minimal W3C WebDriver client for Debian's chromedriver + chromium (stdlib only).

Just what the interface checks need: navigate, find, click, type, run script, full-page
screenshots and phone-width emulation (through chromedriver's CDP passthrough), and the
browser console (to catch CSP violations and script errors)."""

import base64
import json
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

ELEMENT = "element-6066-11e4-a52e-4f735466cecf"
CHROME_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--disable-dev-shm-usage", "--window-size=1366,900"]


class WebDriverError(Exception):
    pass


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Browser:
    def __init__(self, chromedriver="chromedriver", chromium="/usr/bin/chromium"):
        self.port = free_port()
        self.profile = tempfile.mkdtemp(prefix="pkgstash-ui-profile-")
        self.proc = subprocess.Popen([chromedriver, f"--port={self.port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.base = f"http://127.0.0.1:{self.port}"
        deadline = time.time() + 20
        while True:
            try:
                if self._req("GET", "/status")["value"].get("ready"):
                    break
            except (OSError, WebDriverError):
                pass
            if time.time() > deadline:
                self.quit()
                raise WebDriverError("chromedriver did not start")
            time.sleep(0.1)
        caps = {"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium, "args": CHROME_ARGS + [f"--user-data-dir={self.profile}"]},
            "goog:loggingPrefs": {"browser": "ALL"},
        }}}
        self.sid = self._req("POST", "/session", caps)["value"]["sessionId"]

    def _req(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return json.loads(r.read() or b"{}")
        except urllib.error.HTTPError as e:
            try:
                v = json.loads(e.read())["value"]
                raise WebDriverError(f"{v.get('error')}: {v.get('message', '').splitlines()[0]}") from None
            except (ValueError, KeyError):
                raise WebDriverError(str(e)) from None

    def cmd(self, method, path, body=None):
        if body is None and method == "POST":
            body = {}
        return self._req(method, f"/session/{self.sid}{path}", body).get("value")

    # ---- pages and elements ----
    def go(self, url):
        self.cmd("POST", "/url", {"url": url})

    def js(self, script, *args):
        return self.cmd("POST", "/execute/sync", {"script": script, "args": list(args)})

    def find(self, css, within=None):
        base = f"/element/{within}" if within else ""
        return self.cmd("POST", base + "/element", {"using": "css selector", "value": css})[ELEMENT]

    def find_all(self, css):
        return [e[ELEMENT] for e in self.cmd("POST", "/elements", {"using": "css selector", "value": css})]

    def click(self, el):
        self.cmd("POST", f"/element/{el}/click")

    def type(self, el, text):
        self.cmd("POST", f"/element/{el}/value", {"text": text})

    def clear(self, el):
        self.cmd("POST", f"/element/{el}/clear")

    def text(self, el):
        return self.cmd("GET", f"/element/{el}/text")

    def attr(self, el, name):
        return self.cmd("GET", f"/element/{el}/attribute/{name}")

    def wait(self, what, fn, timeout=15, every=0.15):
        """Poll `fn()` until it returns something truthy; fail naming `what`."""
        deadline = time.time() + timeout
        last = None
        while time.time() < deadline:
            try:
                v = fn()
                if v:
                    return v
            except WebDriverError as e:
                last = e
            time.sleep(every)
        raise WebDriverError(f"timed out waiting for {what}" + (f" (last error: {last})" if last else ""))

    def wait_css(self, css, timeout=15):
        return self.wait(f"`{css}`", lambda: self.find_all(css) and self.find(css), timeout)

    def text_of(self, css):
        return self.js("const e = document.querySelector(arguments[0]); return e ? e.textContent : null;", css)

    # ---- screen ----
    def cdp(self, command, params=None):
        return self.cmd("POST", "/goog/cdp/execute", {"cmd": command, "params": params or {}})

    def viewport(self, width, height, mobile=False):
        self.cdp("Emulation.setDeviceMetricsOverride", {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile})
        self.viewport_size = (width, height)

    def screenshot(self, path, css=None, max_height=2600):
        """The page from its top (not just the viewport; at most `max_height` px) as PNG, or
        only the element `css`."""
        w, _ = getattr(self, "viewport_size", (1366, 900))
        if css:
            r = self.js("const r = document.querySelector(arguments[0]).getBoundingClientRect();"
                        "return {x: r.left + scrollX, y: r.top + scrollY, width: r.width, height: r.height};", css)
            clip = {**r, "height": min(r["height"], max_height), "scale": 1}
        else:
            h = self.js("return Math.max(document.documentElement.scrollHeight, document.body.scrollHeight, innerHeight);")
            clip = {"x": 0, "y": 0, "width": w, "height": min(h, max_height), "scale": 1}
        shot = self.cdp("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip})
        with open(path, "wb") as f:
            f.write(base64.b64decode(shot["data"]))

    def console(self):
        """Browser console entries since the last call."""
        try:
            return self.cmd("POST", "/se/log", {"type": "browser"}) or []
        except WebDriverError:
            return []

    def quit(self):
        try:
            if getattr(self, "sid", None):
                self.cmd("DELETE", "")
        except (OSError, WebDriverError):
            pass
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.profile, ignore_errors=True)
