#!/usr/bin/env python3
"""Mock pkgstash for developing the web interface without the Rust backend.

Serves web/ exactly as the server should (docs/admin-api.md, "Static interface": index at
/_pkgstash/, assets under /_pkgstash/ui/, content types, ETag, security headers) and answers
every public and admin endpoint of the contract from a fake, time-driven world
(mock_world.py, mock_aur.py): a download in flight that progresses, a mirror cooling down,
the per-minute ring, custom repos taking uploads, held AUR revisions, builds whose logs
stream as Server-Sent Events.

    python3 web/dev/mock_server.py [--port 7879] [--token secret | --no-token]

then open http://127.0.0.1:7879/_pkgstash/ . Stdlib only.
"""

import argparse
import hashlib
import hmac
import json
import mimetypes
import os
import re
import sys
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mock_world import ApiError, World  # noqa: E402

WEB = Path(__file__).resolve().parent.parent
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
         ".svg": "image/svg+xml", ".md": "text/plain; charset=utf-8", ".json": "application/json", "": "text/plain; charset=utf-8"}
MAX_FAILURES, WINDOW = 20, 60


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "pkgstash-mock"
    world: World = None
    token = "secret"
    quiet = False

    def log_message(self, fmt, *args):
        if not self.quiet:
            sys.stderr.write("mock: %s %s\n" % (self.address_string(), fmt % args))

    # ---- answers ----
    def send(self, status, body=b"", ctype="text/plain; charset=utf-8", headers=None):
        if isinstance(body, str):
            body = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def json(self, value):
        self.send(200, json.dumps(value), "application/json", {"Cache-Control": "no-store"})

    def error(self, e: ApiError):
        headers = {"Cache-Control": "no-store"}
        if e.status == 401:
            headers["WWW-Authenticate"] = 'Bearer realm="pkgstash"'
        if e.allow:
            headers["Allow"] = e.allow
        self.send(e.status, e.text + "\n", headers=headers)

    def security_headers(self):
        return {"Content-Security-Policy": CSP, "X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "no-referrer", "Cache-Control": "no-cache"}

    def static(self, path: Path):
        data = path.read_bytes()
        etag = '"' + hashlib.sha256(data).hexdigest()[:32] + '"'
        headers = self.security_headers()
        headers["ETag"] = etag
        if self.headers.get("If-None-Match") == etag:
            self.send_response(304)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        ctype = TYPES.get(path.suffix, mimetypes.guess_type(path.name)[0] or "application/octet-stream")
        if path.name == "LICENSE" or path.name == "VERSION":
            ctype = TYPES[""]
        self.send(200, data, ctype, headers)

    # ---- dispatch ----
    def do_GET(self):
        self.route()

    def do_HEAD(self):
        self.route()

    def do_POST(self):
        self.route()

    def do_PUT(self):
        self.route()

    def do_DELETE(self):
        self.route()

    def route(self):
        url = urllib.parse.urlsplit(self.path)
        raw_path, query = url.path, urllib.parse.parse_qs(url.query)
        try:
            with self.world.lock:
                self.world.aur.tick()
            if raw_path == "/_pkgstash":
                return self.send(308, "", headers={"Location": "/_pkgstash/"})
            if raw_path == "/_pkgstash/" and self.command in ("GET", "HEAD"):
                return self.static(WEB / "index.html")
            if raw_path.startswith("/_pkgstash/ui/") and self.command in ("GET", "HEAD"):
                return self.asset(raw_path[len("/_pkgstash/ui/"):])
            if raw_path == "/_pkgstash/status.json" and self.command == "GET":
                with self.world.lock:
                    return self.json(dict(self.world.status(), admin_enabled=self.token is not None))
            if raw_path == "/_pkgstash/stats.json" and self.command == "GET":
                with self.world.lock:
                    return self.json(self.world.stats(query.get("range", ["1h"])[0]))
            if raw_path == "/_pkgstash/metrics":
                return self.send(200, "# mock: see the real server\n", "text/plain; version=0.0.4; charset=utf-8")
            if raw_path.startswith("/_pkgstash/api/") or raw_path == "/_pkgstash/api":
                self.check_auth()
                return self.api(raw_path[len("/_pkgstash/api/"):], query)
            raise ApiError(404)
        except ApiError as e:
            self.drain()
            self.error(e)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def drain(self):
        """Read an unread request body so the connection stays in sync."""
        n = int(self.headers.get("Content-Length") or 0)
        if n and not getattr(self, "_drained", False):
            self._drained = True
            while n > 0:
                chunk = self.rfile.read(min(n, 1 << 16))
                if not chunk:
                    break
                n -= len(chunk)

    def asset(self, rel):
        rel = urllib.parse.unquote(rel)
        if not rel or rel.startswith("dev/") or ".." in rel.split("/") or rel.startswith("/"):
            raise ApiError(404)
        p = (WEB / rel).resolve()
        if WEB not in p.parents or not p.is_file():
            raise ApiError(404)
        return self.static(p)

    def check_auth(self):
        if self.token is None:
            raise AdminDisabled()
        ip = self.client_address[0]
        now = time.time()
        f = self.world.auth_failures.get(ip)
        if f and now - f[1] < WINDOW and f[0] >= MAX_FAILURES:
            raise TooMany()
        got = self.headers.get("Authorization", "")
        if got.startswith("Bearer ") and hmac.compare_digest(got[7:].strip().encode(), self.token.encode()):
            return
        if not f or now - f[1] >= WINDOW:
            f = [0, now]
        f[0] += 1
        self.world.auth_failures[ip] = f
        raise Unauthorized()

    def body(self, limit):
        n = int(self.headers.get("Content-Length") or 0)
        if n > limit:
            raise ApiError(413, f"{n} bytes is over the limit of {limit}")
        self._drained = True
        return self.rfile.read(n) if n else b""

    # ---- the admin API ----
    def api(self, rel, q):
        w, m = self.world, self.command
        one = lambda k: (q.get(k) or [None])[0]  # noqa: E731
        parts = [urllib.parse.unquote(p) for p in rel.split("/")]
        raw_parts = rel.split("/")
        with w.lock:
            if parts == ["status"]:
                return self.only("GET") or self.json(w.status())
            if parts == ["refresh"]:
                self.only("POST")
                w.last_refresh = dict(w.last_refresh, started_at=int(time.time()), duration_ms=812)
                return self.json(w.last_refresh)
            if parts == ["cleanup"]:
                self.only("POST")
                return self.json(w.cleanup(one("dry_run") == "true"))
            if parts == ["cache"]:
                self.only("GET")
                return self.json(w.cache_tree())
            if parts[0] == "cache" and len(parts) >= 2:
                self.only("GET", "DELETE")
                path = "/".join(parts[1:])
                if any(s in ("", ".", "..") for s in parts[1:]) or any(ord(c) < 32 for c in path):
                    raise ApiError(400, "dot segment" if ".." in parts else "empty path segment")
                return self.json(w.cache_list(path) if m == "GET" else w.evict(path))
            if parts == ["mirrors"]:
                self.only("GET")
                return self.json([w.mirror_status(x) for x in w.mirrors])
            if parts == ["mirrors", "reset-cooldown"]:
                self.only("POST")
                return self.json(w.reset_cooldown(one("upstream") or "", one("url") or ""))
            if parts == ["repos"]:
                self.only("GET")
                return self.json(w.repo_summaries())
            if len(parts) == 3 and parts[0] == "repos" and parts[2] == "packages":
                self.only("GET", "PUT")
                if m == "GET":
                    r = w.repo(parts[1])
                    return self.json([r["packages"][k] for k in sorted(r["packages"])])
            if len(parts) == 4 and parts[0] == "repos" and parts[2] == "packages" and parts[3]:
                self.only("DELETE")
                return self.json(w.remove_package(parts[1], parts[3]))
        if len(parts) == 3 and parts[0] == "repos" and parts[2] == "packages" and m == "PUT":
            return self.upload(parts[1], one("filename"))
        return self.aur_api(parts, raw_parts, one)

    def aur_api(self, parts, raw_parts, one):
        w, m, aur = self.world, self.command, self.world.aur
        bid = None
        if parts[0] != "aur":
            raise ApiError(404)
        with w.lock:
            if parts == ["aur"]:
                self.only("GET")
                return self.json(aur.overview())
            if parts == ["aur", "pending"]:
                self.only("GET")
                return self.json(aur.pending())
            if parts == ["aur", "check"]:
                self.only("POST")
                aur.last_check = int(time.time())
                return self.json({"pkgbase": None, "rev": None, "message": "AUR check started"})
            if len(parts) == 3 and parts[1] in ("approve", "reject") and parts[2]:
                self.only("POST")
                rev = (one("rev") or "").strip() or None
                if parts[1] == "approve":
                    return self.json(aur.approve(parts[2], rev))
                return self.json(aur.reject(parts[2], rev))
            if parts == ["aur", "builds"]:
                self.only("GET")
                limit = max(1, min(500, int(one("limit") or 50)))
                before = int(one("before")) if one("before") else None
                ids = sorted((i for i in aur.builds if before is None or i < before), reverse=True)[:limit]
                return self.json([aur.public(aur.builds[i]) for i in ids])
            if len(parts) in (3, 4) and parts[1] == "builds" and parts[2].isdigit():
                b = aur.build(int(parts[2]))
                if len(parts) == 3:
                    self.only("GET")
                    return self.json(aur.public(b))
                if parts[3] != "log":
                    raise ApiError(404)
                self.only("GET")
                if "text/event-stream" in (self.headers.get("Accept") or ""):
                    bid = b["id"]
                else:
                    return self.send(200, aur.log_text(b), headers={"Cache-Control": "no-store"})
        if bid is None:
            raise ApiError(404)
        return self.sse_log(bid)

    def only(self, *methods):
        if self.command not in methods and not (self.command == "HEAD" and "GET" in methods):
            raise ApiError(405, allow=", ".join(methods))
        return None

    def upload(self, repo, filename):
        if not filename:
            raise ApiError(400, "query: missing field `filename` (need ?filename=NAME.pkg.tar.zst)")
        length = self.headers.get("Content-Length")
        sig = self.headers.get("X-Pkgstash-Signature")
        with self.world.lock:
            self.world.check_upload(repo, filename, int(length) if length else None, sig)
        # Read slowly (upload_rate) so the interface's progress bar has something to show.
        n, got, head = int(length or 0), 0, b""
        self._drained = True
        t0 = time.time()
        while got < n:
            chunk = self.rfile.read(min(n - got, 64 << 10))
            if not chunk:
                raise ApiError(400, "upload interrupted: connection closed")
            if len(head) < 512:
                head += chunk[: 512 - len(head)]
            got += len(chunk)
            wait = got / self.world.upload_rate - (time.time() - t0)
            if wait > 0:
                time.sleep(wait)
        with self.world.lock:
            return self.json(self.world.finish_upload(repo, filename, got, head, sig is not None))

    def sse_log(self, bid):
        """docs/admin-api.md: `GET api/aur/builds/<id>/log` with Accept: text/event-stream."""
        aur = self.world.aur
        start = self.headers.get("Last-Event-ID")
        offset = int(start) if start and start.isdigit() else 0
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Accel-Buffering", "no")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        out = self.wfile
        out.write(b"retry: 3000\n\n")
        out.flush()
        quiet_since = time.time()
        try:
            while True:
                with self.world.lock:
                    aur.tick()
                    b = aur.build(bid)
                    data = aur.log_text(b).encode()
                    ended = b["state"] != "building"
                    final = aur.public(b)
                if len(data) > offset:
                    cut = data.rfind(b"\n", offset, len(data)) + 1 if not ended else len(data)
                    if cut > offset:
                        text = data[offset:cut].decode("utf-8", "replace")
                        lines = re.split(r"\r\n|\r|\n", text[:-1] if text.endswith("\n") else text)
                        ev = "event: log\nid: %d\n" % cut + "".join("data: %s\n" % line for line in lines) + "\n"
                        out.write(ev.encode())
                        out.flush()
                        offset = cut
                        quiet_since = time.time()
                if ended and offset >= len(data):
                    out.write(("event: end\ndata: %s\n\n" % json.dumps(final)).encode())
                    out.flush()
                    return
                if time.time() - quiet_since > 15:
                    out.write(b": keep-alive\n\n")
                    out.flush()
                    quiet_since = time.time()
                time.sleep(0.25)
        except (BrokenPipeError, ConnectionResetError):
            return


class Unauthorized(ApiError):
    def __init__(self):
        super().__init__(401)
        self.text = "unauthorized: missing or wrong admin token"


class AdminDisabled(ApiError):
    def __init__(self):
        super().__init__(403)
        self.text = "admin API disabled: no PKGSTASH_TOKEN is configured"


class TooMany(ApiError):
    def __init__(self):
        super().__init__(429)
        self.text = "too many failed authentication attempts; try again later"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=7879, help="0: pick a free port (printed)")
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--token", default=os.environ.get("PKGSTASH_TOKEN", "secret"))
    g.add_argument("--no-token", action="store_true", help="behave as a server without PKGSTASH_TOKEN (403)")
    ap.add_argument("--upload-rate", type=int, default=4 << 20, help="bytes/s the mock reads uploads at")
    ap.add_argument("--quiet", action="store_true")
    a = ap.parse_args()
    Handler.world = World(upload_rate=a.upload_rate)
    Handler.token = None if a.no_token else a.token
    Handler.quiet = a.quiet
    srv = ThreadingHTTPServer((a.host, a.port), Handler)
    srv.daemon_threads = True
    print(f"mock pkgstash on http://{a.host}:{srv.server_address[1]}/_pkgstash/ (token: {Handler.token!r})", flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
