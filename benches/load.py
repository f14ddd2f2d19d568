#!/usr/bin/env python3
"""HTTP load helpers for the pkgstash benchmarks (stdlib only, Python >= 3.11).

Every request is a raw-socket HTTP/1.1 GET with `Connection: close`, so what is measured is
the server, not a client library:

* TTFB is the time from just before the request is written to the socket to the moment the
  first *body* byte is received (not the first header byte);
* throughput is body bytes / (time of the last body byte - time the request was sent);
* the body is read with `recv_into` into one preallocated buffer (no per-chunk allocation),
  and its length is checked against `Content-Length`.

Used as a module by bench.py, and as a small CLI for ad-hoc runs:

    load.py get  URL [--rate MiB/s]
    load.py herd N URL            # N clients connect, then all send at the same instant
    load.py tail N URL --rate R   # N rate-capped clients, e.g. tailing a download in flight
    load.py client URL --go-fd FD # one client in its own process: waits until FD reaches EOF
                                  # (the release), then connects, sends, reads like libcurl
                                  # (16 KiB reads); prints JSON with absolute perf_counter times

`herd_procs` runs N such client processes and releases them at once (the herd "as a user pays":
each client's time counts from the release, its TCP connect included; no GIL between clients).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import statistics
import sys
import threading
import time
import urllib.parse
from dataclasses import asdict, dataclass, field

BUF = 1 << 20  # recv buffer per client


@dataclass
class Result:
    status: int = 0
    body: int = 0  # body bytes received
    length: int | None = None  # Content-Length announced
    ttfb: float | None = None  # seconds, request sent -> first body byte
    total: float | None = None  # seconds, request sent -> last body byte (or EOF)
    started: float = 0.0  # perf_counter() when the request was sent
    last_gap: float = 0.0  # seconds between the last two reads of the body (a held-back tail)
    headers: dict[str, str] = field(default_factory=dict)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return (
            self.error is None
            and self.status in (200, 206)
            and (self.length is None or self.length == self.body)
        )

    @property
    def mib_s(self) -> float:
        if not self.total:
            return 0.0
        return self.body / self.total / (1 << 20)


def split_url(url: str) -> tuple[str, int, str]:
    u = urllib.parse.urlsplit(url)
    path = u.path or "/"
    if u.query:
        path += "?" + u.query
    return u.hostname or "127.0.0.1", u.port or 80, path


def connect(host: str, port: int, timeout: float = 120.0) -> socket.socket:
    s = socket.create_connection((host, port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def get(
    url: str,
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    sock: socket.socket | None = None,
    barrier: threading.Barrier | None = None,
    rate: float | None = None,
    stop: threading.Event | None = None,
    timeout: float = 300.0,
) -> Result:
    """One request. `sock`: an already connected socket (closed here). `barrier`: wait on it
    right before sending (for a herd). `rate`: cap the read rate (bytes/s) by sleeping.
    `stop`: when set, the client hangs up (result keeps what was read, error='stopped')."""
    host, port, path = split_url(url)
    r = Result()
    buf = bytearray(BUF)
    view = memoryview(buf)
    try:
        s = sock or connect(host, port, timeout)
        s.settimeout(timeout)
        hdrs = {"Host": f"{host}:{port}", "User-Agent": "pkgstash-bench", "Connection": "close"}
        hdrs.update(headers or {})
        req = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs.items())
        req = (req + "\r\n").encode()
        if barrier is not None:
            barrier.wait()
        r.started = t0 = time.perf_counter()
        s.sendall(req)
        # --- headers
        head = b""
        rest = b""
        while True:
            n = s.recv_into(buf)
            if n == 0:
                raise ConnectionError("connection closed before the response headers")
            head += bytes(view[:n])
            i = head.find(b"\r\n\r\n")
            if i >= 0:
                t_first = time.perf_counter()
                rest = head[i + 4 :]
                head = head[:i]
                break
            if len(head) > 65536:
                raise ConnectionError("response headers too long")
        lines = head.decode("latin-1").split("\r\n")
        r.status = int(lines[0].split()[1])
        for line in lines[1:]:
            k, _, v = line.partition(":")
            r.headers[k.strip().lower()] = v.strip()
        if "content-length" in r.headers:
            r.length = int(r.headers["content-length"])
        if method == "HEAD" or r.status in (204, 304):
            r.ttfb = r.total = time.perf_counter() - t0
            s.close()
            return r
        r.body = len(rest)
        if r.body:
            r.ttfb = t_first - t0
        t_prev = t_last = t_first
        cap = rate
        while r.length is None or r.body < r.length:
            if stop is not None and stop.is_set():
                r.error = "stopped"
                break
            want = BUF
            if cap:
                # Simple pacing: never be ahead of `cap` bytes/s since the first body byte.
                ahead = r.body / cap - (time.perf_counter() - t0)
                if ahead > 0:
                    time.sleep(min(ahead, 0.05))
                    continue
                want = min(BUF, max(65536, int(cap / 20)))
            n = s.recv_into(view[:want])
            if n == 0:
                break
            t_prev, t_last = t_last, time.perf_counter()
            if r.ttfb is None:
                r.ttfb = t_last - t0
            r.body += n
        r.total = t_last - t0
        if r.body > len(rest):
            r.last_gap = t_last - t_prev
        s.close()
        if r.error is None and r.length is not None and r.body != r.length:
            r.error = f"short body: {r.body} of {r.length} bytes"
    except Exception as e:  # noqa: BLE001 - reported, not raised
        r.error = f"{type(e).__name__}: {e}"
    return r


def herd(url: str, n: int, *, rate: float | None = None, stop: threading.Event | None = None,
         headers: dict[str, str] | None = None) -> list[Result]:
    """`n` clients: all connect first, then send their request at the same instant."""
    host, port, _ = split_url(url)
    socks = [connect(host, port) for _ in range(n)]
    barrier = threading.Barrier(n)
    results: list[Result | None] = [None] * n

    def one(i: int) -> None:
        results[i] = get(url, sock=socks[i], barrier=barrier, rate=rate, stop=stop,
                         headers=headers)

    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [r for r in results if r is not None]


CURL_BUF = 16 * 1024  # libcurl's default receive buffer (CURLOPT_BUFFERSIZE): pacman's reads


def client_from_release(url: str, go_fd: int, bufsize: int = CURL_BUF,
                        ready_fd: int | None = None) -> dict:
    """Block until `go_fd` reaches EOF, then GET `url` on a new connection. Times are absolute
    `time.perf_counter()` values (CLOCK_MONOTONIC: comparable across processes)."""
    host, port, path = split_url(url)
    if ready_fd is not None:
        os.write(ready_fd, b"r")
        os.close(ready_fd)
    while os.read(go_fd, 1):
        pass
    out = {"released": time.perf_counter(), "connected": None, "first_body": None,
           "last_body": None, "status": 0, "length": None, "body": 0, "error": None}
    buf = bytearray(max(bufsize, 1024))
    view = memoryview(buf)
    try:
        s = connect(host, port)
        out["connected"] = time.perf_counter()
        s.sendall((f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                   "User-Agent: pkgstash-bench\r\nAccept: */*\r\nConnection: close\r\n\r\n").encode())
        head = b""
        while True:
            n = s.recv_into(buf)
            if n == 0:
                raise ConnectionError("closed before the response headers")
            head += bytes(view[:n])
            i = head.find(b"\r\n\r\n")
            if i >= 0:
                break
        now = time.perf_counter()
        body0 = len(head) - (i + 4)
        lines = head[:i].decode("latin-1").split("\r\n")
        out["status"] = int(lines[0].split()[1])
        for line in lines[1:]:
            k, _, v = line.partition(":")
            if k.strip().lower() == "content-length":
                out["length"] = int(v.strip())
        out["body"] = body0
        if body0:
            out["first_body"] = out["last_body"] = now
        while out["length"] is None or out["body"] < out["length"]:
            n = s.recv_into(view)
            if n == 0:
                break
            now = time.perf_counter()
            if out["first_body"] is None:
                out["first_body"] = now
            out["last_body"] = now
            out["body"] += n
        s.close()
        if out["length"] is not None and out["body"] != out["length"]:
            out["error"] = f"short body: {out['body']} of {out['length']}"
    except Exception as e:  # noqa: BLE001 - reported
        out["error"] = f"{type(e).__name__}: {e}"
    return out


def herd_procs(url: str, n: int, bufsize: int = CURL_BUF, on_release=None) -> dict:
    """`n` client processes released at once (the write end of a pipe they all read is closed).
    Returns {"release": t, "clients": [dict...]}; `on_release()` runs right before the release
    (e.g. to read the proxy's CPU counters)."""
    r, w = os.pipe()
    rr, rw = os.pipe()
    procs = [subprocess.Popen([sys.executable, os.path.abspath(__file__), "client", url,
                               "--go-fd", str(r), "--ready-fd", str(rw), "--buf", str(bufsize)],
                              pass_fds=(r, rw), stdout=subprocess.PIPE, text=True)
             for _ in range(n)]
    os.close(r)
    os.close(rw)
    ready = 0
    while ready < n:  # every client has written "r" and is about to block in read()
        b = os.read(rr, n)
        if not b:
            break
        ready += len(b)
    os.close(rr)
    time.sleep(0.05)
    if on_release is not None:
        on_release()
    release = time.perf_counter()
    os.close(w)
    clients = []
    for p in procs:
        out, _ = p.communicate(timeout=900)
        try:
            clients.append(json.loads(out))
        except ValueError:
            clients.append({"error": f"client exited {p.returncode} without a result"})
    return {"release": release, "clients": clients}


def summary(results: list[Result]) -> dict:
    ok = [r for r in results if r.ok]
    ttfbs = [r.ttfb for r in results if r.ttfb is not None]
    totals = [r.total for r in results if r.total is not None]
    # Finish time relative to the common start (the herd's send instant).
    t0 = min((r.started for r in results if r.started), default=0.0)
    finish = [r.started - t0 + r.total for r in results if r.total is not None]
    return {
        "clients": len(results),
        "ok": len(ok),
        "errors": sorted({r.error for r in results if r.error}),
        "ttfb_max": max(ttfbs, default=None),
        "ttfb_median": statistics.median(ttfbs) if ttfbs else None,
        "total_median": statistics.median(totals) if totals else None,
        "finish_max": max(finish, default=None),
        "bytes": sum(r.body for r in results),
    }


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("get")
    g.add_argument("url")
    g.add_argument("--rate", type=float, help="cap, MiB/s")
    h = sub.add_parser("herd")
    h.add_argument("n", type=int)
    h.add_argument("url")
    t = sub.add_parser("tail")
    t.add_argument("n", type=int)
    t.add_argument("url")
    t.add_argument("--rate", type=float, default=10.0, help="cap per client, MiB/s")
    c = sub.add_parser("client")
    c.add_argument("url")
    c.add_argument("--go-fd", type=int, required=True)
    c.add_argument("--buf", type=int, default=CURL_BUF)
    c.add_argument("--ready-fd", type=int)
    a = ap.parse_args(argv)
    if a.cmd == "client":
        json.dump(client_from_release(a.url, a.go_fd, a.buf, a.ready_fd), sys.stdout)
        return 0
    if a.cmd == "get":
        r = get(a.url, rate=a.rate * (1 << 20) if a.rate else None)
        out = asdict(r) | {"mib_s": r.mib_s, "ok": r.ok}
    else:
        rate = a.rate * (1 << 20) if getattr(a, "rate", None) else None
        out = summary(herd(a.url, a.n, rate=rate))
    json.dump(out, sys.stdout, indent=2, default=str)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
