#!/usr/bin/env python3
"""pkgstash vs nginx (caching reverse proxy), side by side, in one run. Driven by run.sh.

Processes (all on 127.0.0.1, all killed at the end):
  * upstream  - nginx serving the test files; one server block per rate limit
                (unlimited / 20 / 50 / 100 MiB/s) and a JSON access log with $body_bytes_sent,
                so the bytes each proxy pulled from upstream can be counted;
  * nginx     - the peer: nginx as a caching reverse proxy as the Arch wiki sets it up
                (proxy_cache, proxy_cache_lock on, proxy_cache_lock_timeout 1h,
                proxy_cache_valid 200 1y, proxy_buffering on);
  * pkgstash  - target/release/pkgstash, pointed at the same upstream.
Both proxies serve the same URL space: /bench/ (unlimited upstream), /bench20/ (20 MiB/s),
/bench50/ (50 MiB/s) and /benchtail/ (100 MiB/s).

Scenarios (see README "Benchmarks" and benches/RESULTS.md): 1 warm hit of one big file,
2 warm hits of many 64 KiB files (wrk, 64 connections), 3 cold miss behind a 50 MiB/s upstream,
4 herd of 32 clients on one cold file, 5 peak RSS with 100 clients tailing a download in
flight + startup time with 100,000 cached files, 6 real `pacman -Syw` of a 50-package repo,
7 the brief's bar, as a user pays: 16 client processes released at once on one cold package
behind a 20 MiB/s mirror (first byte within 25 ms of the release for every client, CPU of every
proxy thread no more than an nginx that fetches the file once), 8 a pool of 3 pkgstash nodes
behind HAProxy (the shipped config) against one node: 64 KiB hits per second and a herd
(benches/pool.py).
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import datetime as dt
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import load  # noqa: E402

MiB = 1 << 20
GiB = 1 << 30
CLK_TCK = os.sysconf("SC_CLK_TCK")
PKG = "-1.0-1-x86_64.pkg.tar.zst"  # a package-like suffix: cached forever by both proxies


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def pct(xs, p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with status {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"{what} did not listen on {port} within {timeout}s")


# ---------------------------------------------------------------- /proc accounting

def proc_children(pid: int) -> list[int]:
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = Path(f"/proc/{d}/stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            out.append(int(d))
    return out


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime of each process (all its threads), in seconds."""
    total = 0
    for pid in pids:
        try:
            f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(f[11]) + int(f[12])  # fields 14 (utime) and 15 (stime)
    return total / CLK_TCK


def status_kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def reset_hwm(pids: list[int]) -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0: `echo 5 > /proc/PID/clear_refs`)."""
    try:
        for pid in pids:
            Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


# ---------------------------------------------------------------- processes

class Procs:
    """Every process we start; `stop_all` kills them (by pid / own process group)."""

    def __init__(self, pidfile: Path):
        self.procs: list[subprocess.Popen] = []
        self.pidfile = pidfile

    def start(self, argv: list[str], **kw) -> subprocess.Popen:
        p = subprocess.Popen(argv, start_new_session=True, stdin=subprocess.DEVNULL, **kw)
        self.procs.append(p)
        with self.pidfile.open("a") as f:
            f.write(f"{p.pid}\n")
        return p

    def stop(self, p: subprocess.Popen) -> None:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait()
        if p in self.procs:
            self.procs.remove(p)

    def stop_all(self) -> None:
        for p in list(reversed(self.procs)):
            self.stop(p)


def nginx_conf_common(prefix: Path, workers: str = "auto") -> str:
    user = "user root;" if os.geteuid() == 0 else ""
    return f"""{user}
worker_processes {workers};
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 4096; }}
"""


def temp_paths(prefix: Path) -> str:
    return "\n".join(
        f"    {k}_temp_path {prefix}/{k};" for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )


class Upstream:
    """nginx serving `root`, one server block (port) per rate limit, JSON access log."""

    def __init__(self, procs: Procs, prefix: Path, root: Path, rates: dict[str, str]):
        self.prefix, self.root = prefix, root
        prefix.mkdir(parents=True)
        self.ports = {name: free_port() for name in rates}
        self.log = prefix / "access.log"
        servers = "".join(
            f"""
    server {{
        listen 127.0.0.1:{self.ports[name]};
        root {root};
        limit_rate {rate};
        access_log {self.log} json;
    }}"""
            for name, rate in rates.items()
        )
        conf = nginx_conf_common(prefix) + f"""
http {{
    types {{ }}
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000;
{temp_paths(prefix)}
    log_format json escape=json '{{"port":$server_port,"uri":"$uri","status":$status,"bytes":$body_bytes_sent,"range":"$http_range","rt":$request_time}}';
{servers}
}}
"""
        (prefix / "nginx.conf").write_text(conf)
        self.proc = procs.start(
            ["nginx", "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-g", "daemon off;"],
            stdout=subprocess.DEVNULL, stderr=open(prefix / "stderr.log", "wb"),
        )
        for name, port in self.ports.items():
            wait_port(port, self.proc, f"upstream nginx ({name})")

    def url(self, name: str, path: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}/{path}"

    def requests(self, path: str) -> list[dict]:
        """Logged requests (ended ones) for `/path`."""
        out = []
        try:
            text = self.log.read_text()
        except FileNotFoundError:
            return out
        for line in text.splitlines():
            try:
                j = json.loads(line)
            except ValueError:
                continue
            if j["uri"] == "/" + path:
                out.append(j)
        return out

    def bytes_sent(self, path: str) -> int:
        return sum(j["bytes"] for j in self.requests(path))


class NginxCache:
    """The peer: nginx as a caching reverse proxy (the Arch wiki's setup)."""

    def __init__(self, procs: Procs, prefix: Path, upstream: Upstream, routes: dict[str, str]):
        self.prefix = prefix
        prefix.mkdir(parents=True)
        (prefix / "cache").mkdir()
        self.port = free_port()
        # A second port serves the same cache with Debian's default `tcp_nopush on`; a third
        # with `proxy_cache_lock_age 1h`: nginx then fetches a file once however long it takes
        # (its default 5 s sends another request upstream every 5 s), the cheapest nginx.
        self.port_nopush = free_port()
        self.port_1fetch = free_port()
        locs = "".join(
            f"""
        location /{route}/ {{ proxy_pass http://127.0.0.1:{upstream.ports[up]}/; }}"""
            for route, up in routes.items()
        )

        def server(port: int, nopush: str, lock_age: str = "") -> str:
            return f"""
    server {{
        listen 127.0.0.1:{port};
        tcp_nopush {nopush};
        proxy_cache pkgcache;
        proxy_cache_lock on;
        proxy_cache_lock_timeout 1h;{lock_age}
        proxy_cache_valid 200 1y;
        proxy_buffering on;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        add_header X-Cache-Status $upstream_cache_status;
{locs}
    }}"""

        # The peer runs with `tcp_nopush off`: with Debian's `tcp_nopush on`, cached keep-alive
        # hits of small files stall ~40 ms each (scenario 2 measures both).
        conf = nginx_conf_common(prefix) + f"""
http {{
    types {{ }}
    default_type application/octet-stream;
    sendfile on;
    tcp_nodelay on;
    keepalive_requests 100000;
    # nginx's default access log, like pkgstash's default access log (one line per request).
    access_log {prefix}/access.log;
{temp_paths(prefix)}
    proxy_cache_path {prefix}/cache levels=1:2 keys_zone=pkgcache:64m inactive=365d max_size=200g use_temp_path=off;
{server(self.port, "off")}
{server(self.port_nopush, "on")}
{server(self.port_1fetch, "off", chr(10) + "        proxy_cache_lock_age 1h;")}
}}
"""
        (prefix / "nginx.conf").write_text(conf)
        self.proc = procs.start(
            ["nginx", "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-g", "daemon off;"],
            stdout=subprocess.DEVNULL, stderr=open(prefix / "stderr.log", "wb"),
        )
        wait_port(self.port, self.proc, "nginx cache")

    def pids(self) -> list[int]:
        return [self.proc.pid] + proc_children(self.proc.pid)


class Pkgstash:
    def __init__(self, procs: Procs, binary: Path, prefix: Path, upstream: Upstream,
                 routes: dict[str, str]):
        self.procs, self.binary, self.prefix = procs, binary, prefix
        prefix.mkdir(parents=True)
        self.cache = prefix / "cache"
        self.port = free_port()
        ups = "".join(
            f'\n[upstreams.{route}]\nmirrors = ["http://127.0.0.1:{upstream.ports[up]}"]\n'
            for route, up in routes.items()
        )
        self.conf = prefix / "pkgstash.toml"
        self.conf.write_text(
            f'listen = "127.0.0.1:{self.port}"\ncache_dir = "{self.cache}"\n'
            f'upstream_timeout = "15s"\n{ups}'
        )
        self.proc: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        logf = open(self.prefix / "pkgstash.log", "ab")
        self.proc = self.procs.start([str(self.binary), "serve", "-c", str(self.conf)],
                                     stdout=subprocess.DEVNULL, stderr=logf)
        deadline = time.monotonic() + 30
        while "listening on http://" not in (self.prefix / "pkgstash.log").read_text():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("pkgstash did not start:\n"
                                   + (self.prefix / "pkgstash.log").read_text()[-2000:])
            time.sleep(0.02)

    def pids(self) -> list[int]:
        assert self.proc is not None
        return [self.proc.pid]


# ---------------------------------------------------------------- results

@dataclass
class Row:
    scenario: str
    metric: str
    unit: str
    pkgstash: float | None
    nginx: float | None = None
    direct: float | None = None
    better: str = "higher"  # or "lower"
    target: str = ""
    passed: bool | None = None
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.pkgstash is None or not self.nginx:
            return None
        return self.pkgstash / self.nginx


@dataclass
class Results:
    rows: list[Row] = field(default_factory=list)
    raw: dict = field(default_factory=dict)

    def add(self, row: Row) -> None:
        self.rows.append(row)
        log(f"  {row.metric}: pkgstash={fmt(row.pkgstash)} nginx={fmt(row.nginx)} "
            f"direct={fmt(row.direct)} {row.unit} ratio={fmt(row.ratio, 2)} "
            f"{'' if row.passed is None else ('PASS' if row.passed else 'MISS')} {row.note}")


def fmt(x, digits: int | None = None) -> str:
    if x is None:
        return "-"
    if isinstance(x, bool):
        return str(x)
    if digits is None:
        digits = 0 if abs(x) >= 1000 else 1 if abs(x) >= 10 else 2
    return f"{x:.{digits}f}"


def table(rows: list[Row]) -> str:
    head = ["#", "metric", "pkgstash", "nginx-cache", "pkgstash/nginx", "direct", "target", "met?"]
    lines = []
    for r in rows:
        ratio = r.ratio
        mark = ""
        if ratio is not None:
            good = ratio >= 1 if r.better == "higher" else ratio <= 1
            mark = " (better)" if good and abs(ratio - 1) > 0.02 else " (worse)" if not good and abs(ratio - 1) > 0.02 else ""
        lines.append([
            r.scenario, f"{r.metric} [{r.unit}]", fmt(r.pkgstash), fmt(r.nginx),
            (fmt(ratio, 2) + "x" + mark) if ratio is not None else "-", fmt(r.direct), r.target,
            "" if r.passed is None else ("yes" if r.passed else "**NO**"),
        ])
    widths = [max(len(h), *(len(l[i]) for l in lines)) for i, h in enumerate(head)]
    out = ["| " + " | ".join(h.ljust(w) for h, w in zip(head, widths)) + " |",
           "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    for l in lines:
        out.append("| " + " | ".join(c.ljust(w) for c, w in zip(l, widths)) + " |")
    notes = [f"{r.scenario} {r.metric}: {r.note}" for r in rows if r.note]
    if notes:
        out.append("")
        out.extend(f"- {n}" for n in notes)
    return "\n".join(out)


# ---------------------------------------------------------------- the benchmark

@dataclass
class Sizes:
    reps: int
    big: int  # scenarios 1 and 5
    cold: int  # scenarios 3, 4 and 7
    small_n: int  # scenario 2
    wrk_secs: int
    herd: int
    tailers: int
    tail_rate: float  # per tailing client, bytes/s
    cached_files: int
    pkg_sizes: list[int]


QUICK = Sizes(reps=1, big=256 * MiB, cold=64 * MiB, small_n=200, wrk_secs=2, herd=32,
              tailers=100, tail_rate=10 * MiB, cached_files=20_000,
              pkg_sizes=[16 << 10, 32 << 10, 128 << 10, 256 << 10, 512 << 10])
FULL = Sizes(reps=3, big=1 * GiB, cold=256 * MiB, small_n=1000, wrk_secs=5, herd=32,
             tailers=100, tail_rate=10 * MiB, cached_files=100_000,
             pkg_sizes=[64 << 10, 256 << 10, 1 << 20, 2 << 20, 4 << 20])


class Bench:
    def __init__(self, args):
        self.args = args
        self.sz = QUICK if args.quick else FULL
        self.repo = Path(args.repo).resolve()
        self.binary = Path(args.binary).resolve() if args.binary else \
            self.repo / "target/release/pkgstash"
        self.work = Path(args.workdir)
        self.procs = Procs(self.work / "pids")
        self.res = Results()
        self.counter = 0

    # -- setup -------------------------------------------------------------------------
    def setup(self) -> None:
        t = time.monotonic()
        self.up_root = self.work / "upstream-root"
        for d in ("hit", "small", "cold", "tail", "data"):
            (self.up_root / d).mkdir(parents=True)
        log(f"creating test files (big {self.sz.big // MiB} MiB, cold {self.sz.cold // MiB} MiB, "
            f"{self.sz.small_n} x 64 KiB)")
        self.big_data = self.up_root / "data/big.bin"
        self.cold_data = self.up_root / "data/cold.bin"
        self.one_data = self.up_root / "data/one.bin"
        self.one_data.write_bytes(os.urandom(MiB))
        for path, size in ((self.big_data, self.sz.big), (self.cold_data, self.sz.cold)):
            with open(path, "wb") as f:
                subprocess.run(["head", "-c", str(size), "/dev/urandom"], stdout=f, check=True)
        os.link(self.big_data, self.up_root / f"hit/big{PKG}")
        for i in range(self.sz.small_n):
            (self.up_root / f"small/s{i}{PKG}").write_bytes(os.urandom(64 << 10))
        self.up = Upstream(self.procs, self.work / "upstream", self.up_root,
                           {"full": "0", "r20": "20m", "r50": "50m", "r100": "100m"})
        routes = {"bench": "full", "bench20": "r20", "bench50": "r50", "benchtail": "r100"}
        self.ngx = NginxCache(self.procs, self.work / "nginx-cache", self.up, routes)
        self.pk = Pkgstash(self.procs, self.binary, self.work / "pkgstash", self.up, routes)
        log(f"setup done in {time.monotonic() - t:.1f}s: upstream ports {self.up.ports}, "
            f"nginx-cache :{self.ngx.port}, pkgstash :{self.pk.port}")

    def fresh(self, data: Path, dirname: str) -> str:
        """A new upstream name (hard link) for `data`: cold for both proxies."""
        self.counter += 1
        rel = f"{dirname}/f{self.counter}{PKG}"
        os.link(data, self.up_root / rel)
        return rel

    def proxy_url(self, who: str, route: str, rel: str) -> str:
        port = self.pk.port if who == "pkgstash" else self.ngx.port
        return f"http://127.0.0.1:{port}/{route}/{rel}"

    def check(self, r: load.Result, what: str) -> load.Result:
        if not r.ok:
            raise RuntimeError(f"{what}: status {r.status}, {r.body} of {r.length} bytes, {r.error}")
        return r

    def loadavg(self) -> str:
        return Path("/proc/loadavg").read_text().split(" ", 3)[:3].__str__()

    # -- 1 ----------------------------------------------------------------------------
    def s1_warm_hit(self) -> None:
        log(f"1. warm hit, one client, {self.sz.big // MiB} MiB file")
        rel = f"hit/big{PKG}"
        urls = {"direct": self.up.url("full", rel),
                "pkgstash": self.proxy_url("pkgstash", "bench", rel),
                "nginx": self.proxy_url("nginx", "bench", rel)}
        for who in ("pkgstash", "nginx"):
            self.check(load.get(urls[who]), f"warm-up {who}")
            self.check(load.get(urls[who]), f"warm-up {who}")
        out = {k: [] for k in urls}
        for rep in range(self.sz.reps):
            for who, url in urls.items():
                r = self.check(load.get(url), f"hit {who}")
                if who == "nginx" and r.headers.get("x-cache-status") != "HIT":
                    raise RuntimeError(f"nginx did not serve a HIT: {r.headers}")
                out[who].append(r.mib_s)
        self.res.raw["1_warm_hit_mib_s"] = out
        target = 1.0
        pk, ng = med(out["pkgstash"]), med(out["nginx"])
        self.res.add(Row("1", f"warm hit {self.sz.big // MiB} MiB, 1 client", "MiB/s", pk, ng,
                         med(out["direct"]), target=">= 1.0x nginx", passed=pk >= target * ng))

    # -- 2 ----------------------------------------------------------------------------
    def wrk(self, base: str, prefix: str) -> dict:
        script = self.work / "small.lua"
        script.write_text(f"""
local n = {self.sz.small_n}
local i = 0
setup = function(thread) thread:set("off", math.random(n)) end
init = function(args) i = off or 0 end
request = function()
  i = i + 1
  return wrk.format("GET", "{prefix}s" .. (i % n) .. "{PKG}")
end
""")
        cmd = ["wrk", "-t2", "-c64", f"-d{self.sz.wrk_secs}s", "--latency", "-s", str(script), base]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
        m = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        p99 = float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[m.group(2)]
        bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        errs = re.search(r"Socket errors: (.*)", out)
        if bad:
            raise RuntimeError(f"wrk {base}{prefix}: {bad.group(0)}\n{out}")
        return {"rps": rps, "p99_ms": p99, "socket_errors": errs.group(1) if errs else None}

    def s2_small_hits(self) -> None:
        n = self.sz.small_n
        log(f"2. warm hits, {n} x 64 KiB files, wrk 64 connections, {self.sz.wrk_secs}s")
        for who in ("pkgstash", "nginx"):
            urls = [self.proxy_url(who, "bench", f"small/s{i}{PKG}") for i in range(n)]
            with cf.ThreadPoolExecutor(8) as ex:
                for r in ex.map(load.get, urls):
                    self.check(r, f"warm-up {who}")
        r = load.get(self.proxy_url("nginx", "bench", f"small/s0{PKG}"))
        if r.headers.get("x-cache-status") != "HIT":
            raise RuntimeError("nginx: 64 KiB files not cached after warm-up")
        bases = {"direct": (f"http://127.0.0.1:{self.up.ports['full']}", "/small/"),
                 "pkgstash": (f"http://127.0.0.1:{self.pk.port}", "/bench/small/"),
                 "nginx": (f"http://127.0.0.1:{self.ngx.port}", "/bench/small/"),
                 "nginx_tcp_nopush_on": (f"http://127.0.0.1:{self.ngx.port_nopush}", "/bench/small/")}
        out = {k: [] for k in bases}
        for rep in range(self.sz.reps):
            for who, (base, prefix) in bases.items():
                out[who].append(self.wrk(base, prefix))
        self.res.raw["2_small_hits"] = out
        rps = {k: med([x["rps"] for x in v]) for k, v in out.items()}
        p99 = {k: med([x["p99_ms"] for x in v]) for k, v in out.items()}
        self.res.add(Row("2", "64 KiB hits, 64 conns", "req/s", rps["pkgstash"], rps["nginx"],
                         rps["direct"], target=">= 1.1x nginx",
                         passed=rps["pkgstash"] >= 1.1 * rps["nginx"]))
        self.res.add(Row("2", "64 KiB hits, 64 conns, p99", "ms", p99["pkgstash"], p99["nginx"],
                         p99["direct"], better="lower", target="<= nginx",
                         passed=p99["pkgstash"] <= p99["nginx"],
                         note="nginx-cache runs with `tcp_nopush off`; with Debian's default "
                              f"`tcp_nopush on` it does {rps['nginx_tcp_nopush_on']:.0f} req/s, p99 "
                              f"{p99['nginx_tcp_nopush_on']:.1f} ms (keep-alive hits stall ~40 ms)"))

    # -- 3 ----------------------------------------------------------------------------
    def s3_cold_miss(self) -> None:
        log(f"3. cold miss, {self.sz.cold // MiB} MiB, upstream limited to 50 MiB/s")
        out = {k: {"mib_s": [], "ttfb_ms": [], "last_gap_ms": [], "upstream_s": [], "client_s": []}
               for k in ("direct", "pkgstash", "nginx")}
        for rep in range(self.sz.reps):
            for who in out:
                rel = self.fresh(self.cold_data, "cold")
                url = self.up.url("r50", rel) if who == "direct" else self.proxy_url(who, "bench50", rel)
                r = self.check(load.get(url), f"cold {who}")
                out[who]["mib_s"].append(r.mib_s)
                out[who]["ttfb_ms"].append(r.ttfb * 1e3)
                out[who]["last_gap_ms"].append(r.last_gap * 1e3)
                out[who]["client_s"].append(r.total)
                self.settle(rel, 0.0)
                # How long upstream took to send the file ($request_time), for the diagnosis.
                out[who]["upstream_s"].append(sum(j.get("rt", 0) for j in self.up.requests(rel)))
        # TTFB needs more samples than throughput: cold 1 MiB files, interleaved.
        ttfb = {k: [] for k in ("direct", "pkgstash", "nginx")}
        for i in range(8 * self.sz.reps):
            for who in ttfb:
                rel = self.fresh(self.one_data, "cold")
                url = self.up.url("r50", rel) if who == "direct" else self.proxy_url(who, "bench50", rel)
                ttfb[who].append(self.check(load.get(url), f"cold {who}").ttfb * 1e3)
        out["ttfb_1mib_ms"] = ttfb
        # A real cache: thousands of packages in one directory (Arch's extra/os/x86_64 has
        # ~14,000). Fill pkgstash's copy of the directory, then sample TTFB again. (nginx's
        # cache is a hash-addressed tree: its lookup does not depend on the number of files.)
        n_fill = 15_000
        fill_dir = self.pk.cache / "bench50/cold"
        fill_dir.mkdir(parents=True, exist_ok=True)
        for i in range(n_fill):
            os.close(os.open(fill_dir / f"filler{i}{PKG}", os.O_CREAT | os.O_WRONLY, 0o644))
        ttfb_full = {k: [] for k in ("direct", "pkgstash", "nginx")}
        for i in range(8 * self.sz.reps):
            for who in ttfb_full:
                rel = self.fresh(self.one_data, "cold")
                url = self.up.url("r50", rel) if who == "direct" else self.proxy_url(who, "bench50", rel)
                ttfb_full[who].append(self.check(load.get(url), f"cold {who}").ttfb * 1e3)
        out["ttfb_1mib_ms_15k_files_in_dir"] = ttfb_full
        self.res.raw["3_cold_miss"] = out
        tp = {k: med(out[k]["mib_s"]) for k in ttfb}
        tt = {k: med(v) for k, v in ttfb.items()}
        self.res.add(Row("3", "cold miss @50 MiB/s, throughput", "MiB/s", tp["pkgstash"],
                         tp["nginx"], tp["direct"], target=">= 0.98x direct",
                         passed=tp["pkgstash"] >= 0.98 * tp["direct"],
                         note=f"vs direct: pkgstash {tp['pkgstash'] / tp['direct']:.3f}x, "
                              f"nginx {tp['nginx'] / tp['direct']:.3f}x; wait before the last "
                              f"read: pkgstash {med(out['pkgstash']['last_gap_ms']):.0f} ms, "
                              f"nginx {med(out['nginx']['last_gap_ms']):.0f} ms, direct "
                              f"{med(out['direct']['last_gap_ms']):.0f} ms"))
        add = {k: tt[k] - tt["direct"] for k in ("pkgstash", "nginx")}
        self.res.add(Row("3", "cold miss, added TTFB (vs direct)", "ms", add["pkgstash"],
                         add["nginx"], tt["direct"], better="lower", target="<= 5 ms",
                         passed=add["pkgstash"] <= 5.0,
                         note=f"median of {len(ttfb['direct'])} cold 1 MiB misses each; direct "
                              f"column = upstream's own TTFB; 90th percentile added: pkgstash "
                              f"{pct(ttfb['pkgstash'], 90) - tt['direct']:.2f} ms, nginx "
                              f"{pct(ttfb['nginx'], 90) - tt['direct']:.2f} ms"))
        tf = {k: med(v) for k, v in ttfb_full.items()}
        addf = {k: tf[k] - tf["direct"] for k in ("pkgstash", "nginx")}
        self.res.add(Row("3", f"same, {n_fill} cached files in the directory", "ms",
                         addf["pkgstash"], addf["nginx"], tf["direct"], better="lower",
                         target="<= 5 ms", passed=addf["pkgstash"] <= 5.0,
                         note="like a real extra/os/x86_64; filler files in pkgstash's cache "
                              "directory only"))

    # -- 4 ----------------------------------------------------------------------------
    def s4_herd(self) -> None:
        self.herd_rows("4", self.sz.herd, "bench50", "r50", 50)

    # -- 7 ----------------------------------------------------------------------------
    def s7_brief_herd(self) -> None:
        """The brief's bar, measured as a user pays: 16 client *processes* released at once on
        one uncached package behind a 20 MiB/s mirror, each connecting after the release and
        reading like libcurl; first bytes within 25 ms of the release for every client; CPU of
        every proxy thread from the release until the proxy is idle, against nginx fetching once
        (`proxy_cache_lock_age 1h`; the wiki setup's 5 s default fetches it up to 3 times).
        (`--scale` runs the same herd on fresh proxies, with flexo.)"""
        n, rate_mib = 16, 20
        size = self.sz.cold
        log(f"7. herd as a user pays: {n} client processes released at once on one cold "
            f"{size // MiB} MiB file, upstream {rate_mib} MiB/s")
        who_port = {"pkgstash": self.pk.port, "nginx": self.ngx.port,
                    "nginx-1fetch": self.ngx.port_1fetch}
        keys = ("upstream_x", "ttfb_max_ms", "finish_s", "cpu_last_s", "cpu_idle_s")
        out = {w: {k: [] for k in keys} for w in who_port}
        direct = []
        for rep in range(self.sz.reps):
            rel = self.fresh(self.cold_data, "cold")
            direct.append(self.check(load.get(self.up.url("r20", rel)), "direct").total)
            for who, port in who_port.items():
                proxy = self.pk if who == "pkgstash" else self.ngx
                rel = self.fresh(self.cold_data, "cold")
                pids = proxy.pids()
                cpu: dict = {}
                res = load.herd_procs(f"http://127.0.0.1:{port}/bench20/{rel}", n,
                                      on_release=lambda: cpu.setdefault("0", cpu_seconds(pids)))
                cpu["last"] = cpu_seconds(pids)
                self.settle(rel, size / (rate_mib * MiB))
                cpu["idle"] = cpu_seconds(pids)
                t, cl = res["release"], res["clients"]
                bad = [c.get("error") or c.get("status") for c in cl
                       if c.get("error") or c.get("status") != 200]
                if bad:
                    raise RuntimeError(f"herd {who}: {bad[:3]}")
                o = out[who]
                o["upstream_x"].append(self.up.bytes_sent(rel) / size)
                o["ttfb_max_ms"].append(max(c["first_body"] - t for c in cl) * 1e3)
                o["finish_s"].append(max(c["last_body"] - t for c in cl))
                o["cpu_last_s"].append(cpu["last"] - cpu["0"])
                o["cpu_idle_s"].append(cpu["idle"] - cpu["0"])
                log(f"  {who} rep {rep + 1}: upstream {o['upstream_x'][-1]:.2f}x, worst first "
                    f"byte {o['ttfb_max_ms'][-1]:.1f} ms, last byte {o['finish_s'][-1]:.2f}s, "
                    f"cpu {o['cpu_last_s'][-1]:.2f}s to last byte, {o['cpu_idle_s'][-1]:.2f}s "
                    f"to idle")
        self.res.raw[f"7_herd_{n}_{rate_mib}_procs"] = out
        m = {w: {k: med(out[w][k]) for k in keys} for w in who_port}
        pk, ng, ng1 = m["pkgstash"], m["nginx"], m["nginx-1fetch"]
        label = f"herd {n} procs @{rate_mib} MiB/s"
        ideal = med(direct)
        self.res.add(Row("7", f"{label}: upstream bytes / file size", "x", pk["upstream_x"],
                         ng["upstream_x"], 1.0, better="lower", target="exactly 1x",
                         passed=all(abs(x - 1.0) < 1e-9 for x in out["pkgstash"]["upstream_x"])))
        worst = max(out["pkgstash"]["ttfb_max_ms"])
        self.res.add(Row("7", f"{label}: worst first byte from release", "ms",
                         pk["ttfb_max_ms"], ng["ttfb_max_ms"], better="lower",
                         target="<= 25 ms", passed=worst <= 25.0,
                         note=f"connect included; worst of every run: pkgstash {worst:.1f} ms"))
        self.res.add(Row("7", f"{label}: last byte / one client straight from the mirror", "x",
                         pk["finish_s"] / ideal, ng["finish_s"] / ideal, better="lower",
                         target="<= 1.05x", passed=pk["finish_s"] / ideal <= 1.05,
                         note=f"one client from the mirror: {ideal:.2f}s; last byte from the "
                              f"release: pkgstash {pk['finish_s']:.2f}s, nginx "
                              f"{ng['finish_s']:.2f}s, nginx fetching once "
                              f"{ng1['finish_s']:.2f}s"))
        self.res.add(Row("7", f"{label}: proxy CPU, release -> idle, vs nginx fetching once", "s",
                         pk["cpu_idle_s"], ng1["cpu_idle_s"], better="lower", target="<= nginx",
                         passed=pk["cpu_idle_s"] <= ng1["cpu_idle_s"],
                         note=f"utime+stime of every thread (nginx: master + workers); to the "
                              f"last byte: pkgstash {pk['cpu_last_s']:.2f}s; nginx with the 5 s "
                              f"lock age (fetched {ng['upstream_x']:.0f}x): "
                              f"{ng['cpu_idle_s']:.2f}s"))

    def herd_rows(self, no: str, n: int, route: str, up_key: str, rate_mib: int,
                  ttfb_limit_ms: float | None = None, cpu_vs_nginx: bool = False) -> None:
        log(f"{no}. herd: {n} clients at once on one cold {self.sz.cold // MiB} MiB file, "
            f"upstream {rate_mib} MiB/s")
        keys = ("upstream_x", "ttfb_max_ms", "finish_ratio", "cpu_s", "single_s", "finish_max_s")
        out = {"direct_ttfb_ms": [], **{w: {k: [] for k in keys} for w in ("pkgstash", "nginx")}}
        for rep in range(self.sz.reps):
            rel = self.fresh(self.cold_data, "cold")
            out["direct_ttfb_ms"].append(self.check(load.get(self.up.url(up_key, rel)),
                                                    "direct").ttfb * 1e3)
            for who, proxy in (("pkgstash", self.pk), ("nginx", self.ngx)):
                rel = self.fresh(self.cold_data, "cold")
                single = self.check(load.get(self.proxy_url(who, route, rel)), "single").total
                rel = self.fresh(self.cold_data, "cold")
                pids = proxy.pids()
                cpu0 = cpu_seconds(pids)
                rs = load.herd(self.proxy_url(who, route, rel), n)
                for r in rs:
                    self.check(r, f"herd {who}")
                s = load.summary(rs)
                # Let any upstream request still running end (nginx may start more than
                # one), then count what upstream sent.
                self.settle(rel, single)
                cpu = cpu_seconds(pids) - cpu0
                up_x = self.up.bytes_sent(rel) / self.sz.cold
                o = out[who]
                o["upstream_x"].append(up_x)
                o["ttfb_max_ms"].append(s["ttfb_max"] * 1e3)
                o["finish_max_s"].append(s["finish_max"])
                o["single_s"].append(single)
                o["finish_ratio"].append(s["finish_max"] / single)
                o["cpu_s"].append(cpu)
                log(f"  {who} rep {rep + 1}: upstream {up_x:.2f}x, worst TTFB "
                    f"{s['ttfb_max'] * 1e3:.1f} ms, worst finish {s['finish_max']:.2f}s vs single "
                    f"{single:.2f}s, cpu {cpu:.2f}s")
        self.res.raw[f"{no}_herd_{n}_{rate_mib}"] = out
        m = {w: {k: med(out[w][k]) for k in keys} for w in ("pkgstash", "nginx")}
        up_ttfb = med(out["direct_ttfb_ms"])
        pk, ng = m["pkgstash"], m["nginx"]
        label = f"herd {n} @{rate_mib} MiB/s"
        self.res.add(Row(no, f"{label}: upstream bytes / file size", "x", pk["upstream_x"],
                         ng["upstream_x"], 1.0, better="lower", target="exactly 1x",
                         passed=all(abs(x - 1.0) < 1e-9 for x in out["pkgstash"]["upstream_x"])))
        if ttfb_limit_ms is None:
            ttfb_target, ttfb_ok = "<= upstream TTFB + 50 ms", pk["ttfb_max_ms"] <= up_ttfb + 50
        else:
            # Every repetition, not the median: "every client" in every run.
            worst = max(out["pkgstash"]["ttfb_max_ms"])
            ttfb_target, ttfb_ok = f"<= {ttfb_limit_ms:.0f} ms", worst <= ttfb_limit_ms
        self.res.add(Row(no, f"{label}: worst client TTFB", "ms", pk["ttfb_max_ms"],
                         ng["ttfb_max_ms"], up_ttfb, better="lower", target=ttfb_target,
                         passed=ttfb_ok,
                         note=f"direct column = upstream TTFB ({up_ttfb:.2f} ms); worst of "
                              f"every run: pkgstash {max(out['pkgstash']['ttfb_max_ms']):.1f} ms"))
        self.res.add(Row(no, f"{label}: worst finish / single-client time", "x",
                         pk["finish_ratio"], ng["finish_ratio"], better="lower",
                         target="<= 1.05x", passed=pk["finish_ratio"] <= 1.05,
                         note=f"single-client time: pkgstash {pk['single_s']:.2f}s, nginx "
                              f"{ng['single_s']:.2f}s; worst finish: pkgstash "
                              f"{pk['finish_max_s']:.2f}s, nginx {ng['finish_max_s']:.2f}s"))
        self.res.add(Row(no, f"{label}: proxy CPU time", "s", pk["cpu_s"], ng["cpu_s"],
                         better="lower",
                         target="<= nginx" if cpu_vs_nginx else "",
                         passed=(pk["cpu_s"] <= ng["cpu_s"]) if cpu_vs_nginx else None,
                         note="utime+stime from /proc/PID/stat (nginx: master + "
                              "workers), herd start until upstream is done"))

    def settle(self, rel: str, single: float) -> None:
        """Wait until the upstream log for `rel` stops changing (max ~ one more download)."""
        deadline = time.monotonic() + single + 2.0
        last, stable_since = None, time.monotonic()
        while time.monotonic() < deadline:
            cur = len(self.up.requests(rel))
            if cur != last:
                last, stable_since = cur, time.monotonic()
            elif cur > 0 and time.monotonic() - stable_since > 1.0 and \
                    not self.upstream_busy(rel):
                return
            time.sleep(0.1)

    def upstream_busy(self, rel: str) -> bool:
        """Any connection to an upstream port with unsent data?"""
        ports = {f"{p:04X}" for p in self.up.ports.values()}
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            f = line.split()
            local_port = f[1].split(":")[1]
            tx_queue = int(f[4].split(":")[0], 16)
            if local_port in ports and f[3] == "01" and tx_queue > 0:
                return True
        return False

    # -- 5 ----------------------------------------------------------------------------
    def s5_tail_rss(self) -> None:
        n = self.sz.tailers
        rate = self.sz.tail_rate
        log(f"5a. peak RSS: {n} clients (each capped at {rate / MiB:.0f} MiB/s) tailing a "
            f"{self.sz.big // MiB} MiB download in flight, upstream 100 MiB/s")
        out = {w: {"hwm_mib": [], "base_mib": [], "upstream_x": []} for w in ("pkgstash", "nginx")}
        for rep in range(self.sz.reps):
            for who, proxy in (("pkgstash", self.pk), ("nginx", self.ngx)):
                rel = self.fresh(self.big_data, "tail")
                pids = proxy.pids()
                reset_hwm(pids)
                base = sum(status_kib(p, "VmRSS") for p in pids) / 1024
                stop = threading.Event()
                holder: dict = {}
                t = threading.Thread(target=lambda: holder.setdefault(
                    "rs", load.herd(self.proxy_url(who, "benchtail", rel), n, rate=rate,
                                    stop=stop)), daemon=True)
                t.start()
                # Until the upstream download has ended (logged), plus a second of tailing.
                deadline = time.monotonic() + self.sz.big / (100 * MiB) * 4 + 30
                while not self.up.requests(rel) and time.monotonic() < deadline:
                    time.sleep(0.05)
                time.sleep(1.0)
                hwm = sum(status_kib(p, "VmHWM") for p in proxy.pids()) / 1024
                stop.set()
                t.join()
                errs = [r.error for r in holder["rs"] if r.error not in (None, "stopped")]
                if errs:
                    raise RuntimeError(f"tail {who}: {errs[:3]}")
                self.settle(rel, self.sz.big / (100 * MiB))
                out[who]["hwm_mib"].append(hwm)
                out[who]["base_mib"].append(base)
                out[who]["upstream_x"].append(self.up.bytes_sent(rel) / self.sz.big)
                log(f"  {who} rep {rep + 1}: peak RSS {hwm:.1f} MiB (before {base:.1f} MiB), "
                    f"upstream {out[who]['upstream_x'][-1]:.2f}x")
        self.res.raw["5_tail_rss"] = out
        pk = med(out["pkgstash"]["hwm_mib"])
        ng = med(out["nginx"]["hwm_mib"])
        self.res.add(Row("5", f"peak RSS, {n} clients tailing {self.sz.big // MiB} MiB in flight",
                         "MiB", pk, ng, better="lower", target="<= 64 MiB", passed=pk <= 64,
                         note="VmHWM after `clear_refs 5` (nginx: master + workers summed; its "
                              "clients wait on the cache lock instead of tailing); upstream "
                              f"bytes: pkgstash {med(out['pkgstash']['upstream_x']):.2f}x, "
                              f"nginx {med(out['nginx']['upstream_x']):.2f}x"))

    def s5_startup(self) -> None:
        n = self.sz.cached_files
        log(f"5b. startup with {n} cached files")
        prefix = self.work / "startup"
        cache = prefix / "cache"
        t = time.monotonic()
        per_dir = 1000

        def make_dir(d: int) -> None:
            dd = cache / f"bench/repo{d}/os/x86_64"
            dd.mkdir(parents=True)
            for i in range(min(per_dir, n - d * per_dir)):
                os.close(os.open(dd / f"p{d}x{i}{PKG}", os.O_CREAT | os.O_WRONLY, 0o644))

        with cf.ThreadPoolExecutor(8) as ex:
            list(ex.map(make_dir, range((n + per_dir - 1) // per_dir)))
        log(f"  created {n} files in {time.monotonic() - t:.1f}s")
        port = free_port()
        conf = prefix / "pkgstash.toml"
        conf.write_text(f'listen = "127.0.0.1:{port}"\ncache_dir = "{cache}"\n'
                        f'upstream_timeout = "15s"\n[upstreams.bench]\n'
                        f'mirrors = ["http://127.0.0.1:{self.up.ports["full"]}"]\n')
        times, scans = [], []
        for rep in range(max(3, self.sz.reps)):
            t0 = time.perf_counter()
            p = self.procs.start([str(self.binary), "serve", "-c", str(conf)],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            scan = None
            for line in p.stderr:
                m = re.search(r"cache index: (\d+) files in (\d+) ms", line)
                if m:
                    scan = (int(m.group(1)), int(m.group(2)))
                if "listening on http://" in line:
                    times.append(time.perf_counter() - t0)
                    break
            else:
                raise RuntimeError("pkgstash (startup test) exited before listening")
            self.procs.stop(p)
            scans.append(scan)
            if scan and scan[0] != n:
                raise RuntimeError(f"startup: index saw {scan[0]} files, expected {n}")
        self.res.raw["5_startup"] = {"seconds": times, "index_scan": scans}
        s = med(times)
        self.res.add(Row("5", f"startup with {n} cached files", "s", s, better="lower",
                         target="<= 1 s", passed=s <= 1.0,
                         note=f"spawn until the `listening on` line; index scan "
                              f"{med([x[1] for x in scans if x])} ms (warm dentry cache)"))

    # -- 6 ----------------------------------------------------------------------------
    def build_repo(self) -> tuple[Path, list[str]]:
        src = self.work / "pkgsrc"
        src.mkdir()
        names = [f"benchpkg{i:02d}" for i in range(50)]

        def build(i_name):
            i, name = i_name
            size = self.sz.pkg_sizes[i % len(self.sz.pkg_sizes)]
            root = src / f"build-{name}"
            data = root / "usr/share" / name
            data.mkdir(parents=True)
            (data / "data").write_bytes(os.urandom(size))
            (root / ".PKGINFO").write_text(
                f"pkgname = {name}\npkgbase = {name}\npkgver = 1.0-1\npkgdesc = bench {name}\n"
                f"url = https://example.org\nbuilddate = 1700000000\npackager = bench\n"
                f"size = {size}\narch = x86_64\nlicense = MIT\n")
            subprocess.run(["bsdtar", "-czf", ".MTREE", "--format=mtree",
                            "--options=!all,use-set,type,uid,gid,mode,time,size,md5,sha256,link",
                            ".PKGINFO", "usr"], cwd=root, check=True)
            subprocess.run(["bsdtar", "-cf", "pkg.tar", ".PKGINFO", ".MTREE", "usr"], cwd=root,
                           check=True)
            out = src / f"{name}{PKG}"
            subprocess.run(["zstd", "-q", "-f", "-1", "pkg.tar", "-o", str(out)], cwd=root,
                           check=True)
            shutil.rmtree(root)
            return out

        with cf.ThreadPoolExecutor(os.cpu_count() or 2) as ex:
            pkgs = list(ex.map(build, enumerate(names)))
        subprocess.run(["repo-add", "-q", str(src / "benchrepo.db.tar.gz"), *map(str, pkgs)],
                       check=True, capture_output=True)
        return src, names

    def fresh_repo(self, src: Path) -> str:
        self.counter += 1
        name = f"repo{self.counter}"
        d = self.up_root / name / "os/x86_64"
        d.mkdir(parents=True)
        for p in src.glob(f"*{PKG}"):
            os.link(p, d / p.name)
        shutil.copy(src / "benchrepo.db.tar.gz", d / f"{name}.db")
        return name

    def pacman(self, repo: str, server: str, names: list[str]) -> float:
        self.counter += 1
        r = self.work / f"pacman{self.counter}"
        for d in ("db", "cache", "gpg"):
            (r / d).mkdir(parents=True)
        (r / "pacman.conf").write_text(
            f"[options]\nArchitecture = x86_64\nSigLevel = Never\nParallelDownloads = 5\n\n"
            f"[{repo}]\nServer = {server}\n")
        cmd = ["pacman", "--root", str(r), "--dbpath", str(r / "db"), "--cachedir",
               str(r / "cache"), "--config", str(r / "pacman.conf"), "--gpgdir", str(r / "gpg"),
               "--logfile", str(r / "pacman.log"), "--noconfirm", "--noprogressbar", "-Syw",
               *names]
        t0 = time.perf_counter()
        p = subprocess.run(cmd, capture_output=True, text=True)
        t = time.perf_counter() - t0
        got = len(list((r / "cache").glob(f"*{PKG}")))
        if p.returncode != 0 or got != len(names):
            raise RuntimeError(f"pacman via {server}: exit {p.returncode}, {got} packages\n"
                               f"{p.stdout[-1500:]}\n{p.stderr[-1500:]}")
        shutil.rmtree(r)
        return t

    def s6_pacman(self) -> None:
        log("6. pacman -Syw of a 50-package repo (ParallelDownloads = 5)")
        src, names = self.build_repo()
        total = sum(p.stat().st_size for p in src.glob(f"*{PKG}"))
        log(f"  repo built: 50 packages, {total / MiB:.1f} MiB")
        out = {k: [] for k in ("direct", "pkgstash_cold", "pkgstash_warm", "nginx_cold",
                               "nginx_warm")}
        up = self.up.ports["full"]
        for rep in range(self.sz.reps):
            repo = self.fresh_repo(src)
            out["direct"].append(
                self.pacman(repo, f"http://127.0.0.1:{up}/$repo/os/$arch", names))
            for who, port in (("pkgstash", self.pk.port), ("nginx", self.ngx.port)):
                repo = self.fresh_repo(src)
                server = f"http://127.0.0.1:{port}/bench/$repo/os/$arch"
                out[f"{who}_cold"].append(self.pacman(repo, server, names))
                out[f"{who}_warm"].append(self.pacman(repo, server, names))
        self.res.raw["6_pacman_s"] = out
        m = {k: med(v) for k, v in out.items()}
        for kind in ("cold", "warm"):
            self.res.add(Row("6", f"pacman -Syw 50 pkgs ({total / MiB:.0f} MiB), {kind}", "s",
                             m[f"pkgstash_{kind}"], m[f"nginx_{kind}"], m["direct"],
                             better="lower",
                             note="" if kind == "warm" else
                             "direct = straight from the (unlimited) upstream nginx"))

    # -- 8 ----------------------------------------------------------------------------
    def s8_pool(self) -> None:
        import pool  # benches/pool.py (it imports this module)
        pool.s8_pool(self)

    # -- run ----------------------------------------------------------------------------
    def run(self) -> int:
        started = time.monotonic()
        self.setup()
        steps = [("1", self.s1_warm_hit), ("2", self.s2_small_hits), ("3", self.s3_cold_miss),
                 ("4", self.s4_herd), ("5", self.s5_tail_rss), ("5", self.s5_startup),
                 ("6", self.s6_pacman), ("7", self.s7_brief_herd), ("8", self.s8_pool)]
        only = set(self.args.only.split(",")) if self.args.only else None
        load_before = {}
        for sid, fn in steps:
            if only and sid not in only:
                continue
            t = time.monotonic()
            load_before[fn.__name__] = self.loadavg()
            fn()
            log(f"  ({fn.__name__} took {time.monotonic() - t:.1f}s, loadavg before "
                f"{load_before[fn.__name__]})")
        elapsed = time.monotonic() - started
        pk_pid = self.pk.pids()[0]
        lifetime_hwm = status_kib(pk_pid, "VmHWM") / 1024
        machine = machine_info()
        doc = {
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "mode": "quick" if self.args.quick else "full",
            "reps": self.sz.reps,
            "elapsed_s": round(elapsed, 1),
            "machine": machine,
            "pkgstash_source": source_info(self.repo),
            "loadavg_before": load_before,
            "sizes": self.sz.__dict__,
            "table": [r.__dict__ | {"ratio": r.ratio} for r in self.res.rows],
            "raw": self.res.raw,
        }
        Path(self.args.json).write_text(json.dumps(doc, indent=2) + "\n")
        print()
        print(f"pkgstash vs nginx caching proxy - {doc['mode']} mode, median of "
              f"{self.sz.reps} run(s), {doc['date']}")
        print(f"machine: {machine['cpu']}, {machine['nproc']} CPUs, kernel {machine['kernel']}")
        print()
        print(table(self.res.rows))
        print()
        print(f"pkgstash lifetime VmHWM over the whole run: {lifetime_hwm:.1f} MiB; "
              f"benchmarks took {elapsed:.0f}s; JSON: {self.args.json}")
        return 0


def source_info(repo: Path) -> dict:
    """Which pkgstash was measured (read-only git queries)."""
    def git(*a: str) -> str:
        try:
            return subprocess.run(["git", "-C", str(repo), *a], capture_output=True,
                                  text=True).stdout.strip()
        except OSError:
            return ""
    return {"commit": git("rev-parse", "--short", "HEAD"),
            "uncommitted_src_files": len(git("status", "--porcelain", "--", "src").splitlines())}


def machine_info() -> dict:
    cpu = "?"
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = Path("/proc/meminfo").read_text().split("\n", 1)[0].split()[1]
    return {"cpu": cpu, "nproc": os.cpu_count(), "kernel": platform.release(),
            "mem_gib": round(int(mem) / (1 << 20), 1),
            "nginx": subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr.strip(),
            "pacman": (re.findall(r"Pacman v(\S+)", subprocess.run(
                ["pacman", "--version"], capture_output=True, text=True).stdout) or ["?"])[0]}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="small sizes, 1 run each (< 2 min)")
    ap.add_argument("--repo", default=str(Path(__file__).resolve().parent.parent))
    ap.add_argument("--binary", help="pkgstash binary to measure (default: the repo's "
                                     "target/release/pkgstash), e.g. a prototype for a before/after")
    ap.add_argument("--workdir")
    ap.add_argument("--json")
    ap.add_argument("--only", help="comma-separated scenario numbers, e.g. 1,3")
    ap.add_argument("--render", metavar="JSON", help="print the table of a results file, run nothing")
    args = ap.parse_args()
    if args.render:
        doc = json.loads(Path(args.render).read_text())
        fields = Row.__dataclass_fields__
        print(table([Row(**{k: v for k, v in r.items() if k in fields}) for r in doc["table"]]))
        return 0
    if not args.workdir or not args.json:
        ap.error("--workdir and --json are required (use benches/run.sh)")
    b = Bench(args)

    def on_signal(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    try:
        return b.run()
    finally:
        b.procs.stop_all()


if __name__ == "__main__":
    sys.exit(main())
