#!/usr/bin/env python3
"""pkgstash at real scale (`benches/run.sh --scale`): an Arch-sized mirror, a LAN upgrade day
and the herd measured as a user pays, side by side with nginx `proxy_cache`. Driven by run.sh.

Parts (`--parts`, default all):
  startup  start-up with the Arch-sized catalog cached (+ 2,000 packages): spawn -> listening,
           the first miss (it parses extra.db), CPU seconds and peak RSS of the process;
  refresh  a refresh revalidating the Arch-sized dbs (all changed: next week's revision) and
           planning + running the prefetch for a cache of 2,000 packages, then the same with
           nothing changed (all 304), then with every package of the catalog cached (growth);
  verify   `pkgstash verify` over 20,000 cached packages (and 5,000: growth);
  cleanup  a cleanup plan (`cleanup --dry-run`) over 100,000 cached files (and 25,000: growth);
  during   hit and miss latency while a refresh downloads a rate-limited extra.files, against
           the same requests on an idle server;
  herd     16 clients released at once on one uncached 256 MiB package behind a 20 MiB/s
           mirror, fresh proxy per run, each client its own process (connect included), CPU of
           every thread of the proxy from the release to the last byte (and to idle);
  lan      the LAN upgrade day: 20 real pacman clients (ParallelDownloads = 5, default
           timeouts) started within a few seconds, each `-Syu` from last week's revision to
           this week's (~300 packages, ~1 GiB unique) through one upstream link of 12.5 MiB/s
           (benches/relay.py: one token bucket for all connections), pkgstash then nginx.

The Arch-sized fixture comes from benches/archgen.py (cached on disk; slow once).
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import datetime as dt
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import archgen  # noqa: E402
import bench  # noqa: E402
import load  # noqa: E402
from bench import (MiB, Procs, Row, cpu_seconds, free_port, log, med, proc_children,  # noqa: E402
                   reset_hwm, status_kib, wait_port)

TOKEN = "scale-bench-token"
UPSTREAM = "archlinux"
ARCH = archgen.ARCH


def rss_hwm_mib(pids: list[int]) -> float:
    return sum(status_kib(p, "VmHWM") for p in pids) / 1024


GNU_TIME = "/usr/bin/time"


def run_measured(argv: list[str], env: dict | None = None, timeout: float = 3600) -> dict:
    """Run a command to its end: wall seconds, CPU seconds (user + system of it and its
    children, from wait4) and peak RSS. The peak RSS comes from GNU time's %M when it is
    installed: wait4's ru_maxrss of a child of this (large) Python process counts the Python
    image the child had before its exec (Linux records the old mm's high-water mark at exec)."""
    import tempfile
    rss_file = None
    if os.access(GNU_TIME, os.X_OK):
        fd, rss_file = tempfile.mkstemp(prefix="maxrss-")
        os.close(fd)
        argv = [GNU_TIME, "-f", "%M", "-o", rss_file, *argv]
    t0 = time.perf_counter()
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                         start_new_session=True)
    out: dict = {}

    def reader(stream, key):
        out[key] = stream.read()

    ts = [threading.Thread(target=reader, args=(p.stdout, "stdout")),
          threading.Thread(target=reader, args=(p.stderr, "stderr"))]
    for t in ts:
        t.start()
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    for t in ts:
        t.join(timeout)
    p.returncode = os.waitstatus_to_exitcode(status)
    maxrss_kib = None
    if rss_file:
        try:
            maxrss_kib = int(Path(rss_file).read_text().split()[-1])
        except (OSError, ValueError, IndexError):
            pass
        os.unlink(rss_file)
    return {"wall_s": wall, "cpu_s": ru.ru_utime + ru.ru_stime,
            "maxrss_mib": (maxrss_kib / 1024) if maxrss_kib is not None else None,
            "rc": p.returncode, "stdout": out.get("stdout", b"").decode(errors="replace"),
            "stderr": out.get("stderr", b"").decode(errors="replace")}


class Profile:
    """`perf record` of a process for the length of a `with` block (--profile): the report
    (self time by symbol, and by caller chain) goes to `<dir>/<name>.txt`, the raw data to
    `<dir>/<name>.data`. CPU-clock sampling (no hardware counters needed, works in VMs)."""

    def __init__(self, out_dir: Path | None, name: str, pid: int | list[int] | None):
        self.out_dir, self.name = out_dir, name
        self.pid = ",".join(map(str, pid)) if isinstance(pid, list) else pid
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> "Profile":
        if self.out_dir is None or self.pid is None:
            return self
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.data = self.out_dir / f"{self.name}.data"
        self.proc = subprocess.Popen(
            ["perf", "record", "-q", "-e", "cpu-clock", "-F", "999", "--call-graph",
             "dwarf,16384", "-p", str(self.pid), "-o", str(self.data)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        time.sleep(0.5)  # perf attached
        return self

    def __exit__(self, *exc) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait()
        txt = self.out_dir / f"{self.name}.txt"
        with txt.open("w") as f:
            for args in (["--no-children", "--sort", "dso,sym", "-g", "none"],
                         ["--no-children", "--sort", "sym", "-g", "caller,0.5,callee,function",
                          "--percent-limit", "2"]):
                f.write(f"### perf report {' '.join(args)}\n")
                f.flush()
                subprocess.run(["perf", "report", "-i", str(self.data), "--stdio", *args],
                               stdout=f, stderr=subprocess.DEVNULL)
        log(f"  profile: {txt}")


def growth(n1: float, c1: float, n2: float, c2: float) -> float | None:
    """Exponent k in cost ~ n^k between two sizes (1.0 = linear)."""
    import math
    if c1 <= 0 or c2 <= 0 or n1 == n2:
        return None
    return math.log(c2 / c1) / math.log(n2 / n1)


# ---------------------------------------------------------------- processes

class Mirror:
    """The upstream: nginx serving the fixture's revisions, one server block (port) each, and a
    JSON access log of the bytes sent."""

    def __init__(self, procs: Procs, prefix: Path, roots: dict[str, tuple[Path, str, str]]):
        """roots: name -> (document root, limit_rate for everything, limit_rate for *.files)."""
        self.prefix = prefix
        prefix.mkdir(parents=True)
        self.ports = {name: free_port() for name in roots}
        self.log = prefix / "access.log"
        servers = ""
        for name, (root, rate, files_rate) in roots.items():
            files_loc = (f"\n        location ~ \\.files(\\.tar\\.gz)?$ {{ limit_rate {files_rate}; }}"
                         if files_rate else "")
            servers += f"""
    server {{
        listen 127.0.0.1:{self.ports[name]} backlog=1024;
        root {root};
        limit_rate {rate};
        access_log {self.log} json;{files_loc}
    }}"""
        conf = bench.nginx_conf_common(prefix) + f"""
http {{
    types {{ }}
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000;
{bench.temp_paths(prefix)}
    log_format json escape=json '{{"port":$server_port,"uri":"$uri","status":$status,"bytes":$body_bytes_sent,"rt":$request_time,"t":$msec}}';
{servers}
}}
"""
        (prefix / "nginx.conf").write_text(conf)
        self.proc = procs.start(
            ["nginx", "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-g", "daemon off;"],
            stdout=subprocess.DEVNULL, stderr=open(prefix / "stderr.log", "wb"))
        for name, port in self.ports.items():
            wait_port(port, self.proc, f"mirror nginx ({name})")

    def base(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def mark(self) -> int:
        """A position in the access log (for `entries(since=...)`)."""
        try:
            return self.log.stat().st_size
        except FileNotFoundError:
            return 0

    def entries(self, since: int = 0) -> list[dict]:
        try:
            with self.log.open("rb") as f:
                f.seek(since)
                text = f.read().decode()
        except FileNotFoundError:
            return []
        out = []
        for line in text.splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
        return out


class Pkgstash:
    """One pkgstash process with its own cache and config (admin token set)."""

    def __init__(self, procs: Procs, binary: Path, prefix: Path, mirror_base: str,
                 extra_conf: str = "", cache: Path | None = None):
        self.procs, self.binary, self.prefix = procs, binary, prefix
        prefix.mkdir(parents=True, exist_ok=True)
        self.cache = cache or prefix / "cache"
        self.port = free_port()
        self.conf = prefix / "pkgstash.toml"
        self.conf.write_text(
            f'listen = "127.0.0.1:{self.port}"\ncache_dir = "{self.cache}"\n'
            f'upstream_timeout = "15s"\n{extra_conf}\n'
            f'[upstreams.{UPSTREAM}]\nmirrors = ["{mirror_base}"]\n')
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("PKGSTASH")}
        self.env["PKGSTASH_TOKEN"] = TOKEN
        self.env.setdefault("RUST_LOG", "info")
        self.proc: subprocess.Popen | None = None
        self.logf = prefix / "pkgstash.log"

    def start(self) -> float:
        """Start; returns seconds from spawn to the `listening on` line."""
        pos = self.logf.stat().st_size if self.logf.exists() else 0
        t0 = time.perf_counter()
        self.proc = self.procs.start([str(self.binary), "serve", "-c", str(self.conf)],
                                     stdout=subprocess.DEVNULL, stderr=open(self.logf, "ab"),
                                     env=self.env)
        deadline = time.monotonic() + 120
        while True:
            with self.logf.open("rb") as f:
                f.seek(pos)
                if b"listening on http://" in f.read():
                    return time.perf_counter() - t0
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("pkgstash did not start:\n" + self.logf.read_text()[-3000:])
            time.sleep(0.005)

    def stop(self) -> None:
        if self.proc is not None:
            self.procs.stop(self.proc)
            self.proc = None

    def pids(self) -> list[int]:
        assert self.proc is not None
        return [self.proc.pid]

    def url(self, rel: str) -> str:
        return f"http://127.0.0.1:{self.port}/{UPSTREAM}/{rel}"

    def server(self) -> str:
        return f"http://127.0.0.1:{self.port}/{UPSTREAM}/$repo/os/$arch"

    def api(self, method: str, path: str, timeout: float = 3600) -> dict:
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}/_pkgstash/api/{path}",
                                     method=method, headers={"Authorization": f"Bearer {TOKEN}"})
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return json.loads(r.read())


class NginxProxy:
    """The peer for the LAN day and the herd: nginx as the Arch wiki sets it up - databases and
    signatures passed through to the mirror uncached, packages cached with proxy_cache +
    proxy_cache_lock (lock_timeout 1h; `lock_age` nginx's default 5 s unless given)."""

    def __init__(self, procs: Procs, prefix: Path, upstream_base: str, lock_age: str | None = None):
        self.prefix = prefix
        prefix.mkdir(parents=True)
        (prefix / "cache").mkdir()
        self.port = free_port()
        up = upstream_base.removeprefix("http://")
        age = f"\n            proxy_cache_lock_age {lock_age};" if lock_age else ""
        conf = bench.nginx_conf_common(prefix) + f"""
http {{
    types {{ }}
    default_type application/octet-stream;
    sendfile on;
    tcp_nodelay on;
    keepalive_requests 100000;
    access_log {prefix}/access.log;
{bench.temp_paths(prefix)}
    proxy_cache_path {prefix}/cache levels=1:2 keys_zone=pkgcache:64m inactive=365d max_size=200g use_temp_path=off;
    server {{
        listen 127.0.0.1:{self.port} backlog=1024;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        # Databases and signatures: always from the mirror (never a stale db).
        location ~ ^/{UPSTREAM}/.*\\.(db|sig|files)$ {{
            rewrite ^/{UPSTREAM}/(.*)$ /$1 break;
            proxy_pass http://{up};
        }}
        # Packages: cached for good, one upstream fetch per file while the lock holds.
        location /{UPSTREAM}/ {{
            proxy_cache pkgcache;
            proxy_cache_lock on;
            proxy_cache_lock_timeout 1h;{age}
            proxy_cache_valid 200 1y;
            proxy_buffering on;
            add_header X-Cache-Status $upstream_cache_status;
            proxy_pass http://{up}/;
        }}
    }}
}}
"""
        (prefix / "nginx.conf").write_text(conf)
        self.proc = procs.start(
            ["nginx", "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-g", "daemon off;"],
            stdout=subprocess.DEVNULL, stderr=open(prefix / "stderr.log", "wb"))
        wait_port(self.port, self.proc, "nginx proxy")
        self.procs = procs

    def pids(self) -> list[int]:
        return [self.proc.pid] + proc_children(self.proc.pid)

    def url(self, rel: str) -> str:
        return f"http://127.0.0.1:{self.port}/{UPSTREAM}/{rel}"

    def server(self) -> str:
        return f"http://127.0.0.1:{self.port}/{UPSTREAM}/$repo/os/$arch"

    def stop(self) -> None:
        self.procs.stop(self.proc)


class Flexo:
    """flexo (optional: `--flexo BINARY`), configured by its FLEXO_* environment variables
    (predefined mirror: the benchmark's upstream; its 1 B/s-for-10 s low-speed limit)."""

    def __init__(self, procs: Procs, binary: Path, prefix: Path, upstream_base: str):
        prefix.mkdir(parents=True)
        self.port = free_port()
        (prefix / "cache").mkdir()
        (prefix / "mirrorlist").write_text("")
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLEXO")}
        env.update({
            "FLEXO_CACHE_DIRECTORY": str(prefix / "cache"),
            "FLEXO_MIRRORLIST_FALLBACK_FILE": str(prefix / "mirrorlist"),
            "FLEXO_MIRRORLIST_LATENCY_TEST_RESULTS_FILE": str(prefix / "latency.json"),
            "FLEXO_PORT": str(self.port),
            "FLEXO_LISTEN_IP_ADDRESS": "127.0.0.1",
            "FLEXO_MIRROR_SELECTION_METHOD": "predefined",
            "FLEXO_MIRRORS_PREDEFINED": f'["{upstream_base}/"]',
            "FLEXO_CONNECT_TIMEOUT": "3000",
            "FLEXO_LOW_SPEED_LIMIT": "1",
            "FLEXO_LOW_SPEED_TIME_SECS": "10",
            "FLEXO_NUM_VERSIONS_RETAIN": "3",
            "RUST_LOG": "warn",
        })
        self.proc = procs.start([str(binary)], env=env, stdout=subprocess.DEVNULL,
                                stderr=open(prefix / "flexo.log", "wb"))
        wait_port(self.port, self.proc, "flexo")
        self.procs = procs

    def pids(self) -> list[int]:
        return [self.proc.pid]

    def url(self, rel: str) -> str:
        return f"http://127.0.0.1:{self.port}/{rel}"

    def stop(self) -> None:
        self.procs.stop(self.proc)


# ---------------------------------------------------------------- the benchmark

class Sizes:
    """What each part works on; `--quick-scale` shrinks everything for a validation run."""

    def __init__(self, f: float, reps: int, lan_clients: int, lan_payload_mib: int,
                 lan_spread: float, lan_rate_mib: float):
        self.f = f
        self.reps = reps
        self.cached = max(50, int(2000 * f))  # refresh / during / startup
        self.verify = [max(100, int(5000 * f)), max(400, int(20000 * f))]
        self.cleanup = [max(500, int(25000 * f)), max(2000, int(100000 * f))]
        self.herd_clients = 16
        self.herd_size = 256 * MiB if f >= 1 else max(32 * MiB, int(256 * MiB * f))
        self.herd_rate = "20m"
        self.lan_clients = lan_clients
        self.lan_payload = lan_payload_mib * MiB
        self.lan_spread = lan_spread
        self.lan_rate = lan_rate_mib * MiB
        # extra.files during the `during` part: ~12 s of refresh at full scale
        self.files_rate = "4m" if f >= 0.5 else "64k"


class ScaleBench:
    def __init__(self, args):
        self.args = args
        self.repo = Path(args.repo).resolve()
        self.binary = Path(args.binary).resolve() if args.binary else \
            self.repo / "target/release/pkgstash"
        self.work = Path(args.workdir)
        self.procs = Procs(self.work / "pids")
        self.res = bench.Results()
        self.sz = Sizes(args.scale_factor, args.reps, args.lan_clients, args.lan_payload_mib,
                        args.lan_spread, args.lan_rate_mib)
        params = archgen.Params(lan_payload=self.sz.lan_payload)
        if args.scale_factor != 1.0:
            params = params.scaled(args.scale_factor)
            params = archgen.Params(**{**params.__dict__, "lan_payload": self.sz.lan_payload})
        base = Path(args.fixtures).resolve() if args.fixtures else archgen.default_base(self.repo)
        self.fx = archgen.Fixture(base, params)
        self.parts = args.parts.split(",") if args.parts else PARTS
        self.rng = random.Random(2121)
        self.counter = 0
        self.profile_dir = Path(args.profile).resolve() if args.profile else None

    def profile(self, name: str, pid: int | list[int] | None, first: bool = True) -> Profile:
        """A perf profile of `pid` (with --profile, and only for the first repetition)."""
        return Profile(self.profile_dir if first else None, name, pid)

    # -- helpers --------------------------------------------------------------------------
    def rel(self, p: archgen.Pkg, rev: str = "old") -> str:
        return f"{p.repo}/os/{ARCH}/{p.filename(p.version(rev))}"

    def seed_cache(self, cache: Path, pkgs: list[archgen.Pkg], rev: str = "old",
                   dbs: bool = True) -> None:
        """A cache as pkgstash leaves it: `rev`'s dbs (.db and .files) and `pkgs` (hard links
        into the fixture: pkgstash only ever renames over or unlinks cached files)."""
        for repo in archgen.REPOS:
            d = cache / UPSTREAM / repo / "os" / ARCH
            d.mkdir(parents=True, exist_ok=True)
            if dbs:
                for kind in ("db", "files"):
                    os.link(self.fx.db_path(rev, repo, kind), d / f"{repo}.{kind}")
        for p in pkgs:
            os.link(self.fx.tree(rev, p.repo) / p.filename(p.version(rev)),
                    cache / UPSTREAM / p.repo / "os" / ARCH / p.filename(p.version(rev)))

    def fresh_dir(self, name: str) -> Path:
        self.counter += 1
        d = self.work / f"{name}{self.counter}"
        d.mkdir(parents=True)
        return d

    def sample_cached(self, n: int) -> list[archgen.Pkg]:
        return random.Random(7).sample(self.fx.pkgs, min(n, len(self.fx.pkgs)))

    # -- setup ----------------------------------------------------------------------------
    def setup(self) -> None:
        need_lan = "lan" in self.parts
        roots = {}
        if set(self.parts) - {"herd"}:
            t = time.monotonic()
            self.fx.ensure(lan=need_lan)
            self.fx.load()
            log(f"fixture {self.fx.dir.name}: {len(self.fx.pkgs)} packages, "
                f"{len(self.fx.bumped())} bumped ({time.monotonic() - t:.0f}s)")
            roots = {"old": (self.fx.tree("old"), "0", ""),
                     "next": (self.fx.tree("next"), "0", ""),
                     "nextslow": (self.fx.tree("next"), "0", self.sz.files_rate)}
        if need_lan:
            roots["lan"] = (self.fx.tree("lan"), "0", "")
        if "herd" in self.parts:
            self.herd_root = self.work / "herd-root"
            self.herd_root.mkdir()
            self.herd_data = self.work / "herd.bin"
            with open(self.herd_data, "wb") as f:
                subprocess.run(["head", "-c", str(self.sz.herd_size), "/dev/urandom"], stdout=f,
                               check=True)
            roots["herd"] = (self.herd_root, self.sz.herd_rate, "")
        self.mirror = Mirror(self.procs, self.work / "mirror", roots)

    # -- startup ----------------------------------------------------------------------------
    def part_startup(self) -> None:
        n = self.sz.cached
        log(f"startup: Arch-sized catalog (3 dbs + 3 files dbs) and {n} packages cached")
        cached = self.sample_cached(n)
        cached_set = {id(p) for p in cached}
        uncached = [p for p in self.fx.pkgs if id(p) not in cached_set]
        self.rng.shuffle(uncached)
        d = self.fresh_dir("startup")
        self.seed_cache(d / "cache", cached)
        pk = Pkgstash(self.procs, self.binary, d, self.mirror.base("old"), cache=d / "cache")
        out = {k: [] for k in ("listen_s", "first_hit_ms", "first_miss_ttfb_ms",
                               "first_miss_total_ms", "second_miss_ms", "cpu_s", "hwm_mib")}
        for rep in range(max(3, self.sz.reps)):
            out["listen_s"].append(pk.start())
            hit = load.get(pk.url(self.rel(cached[rep])))
            miss = load.get(pk.url(self.rel(uncached[2 * rep])))
            miss2 = load.get(pk.url(self.rel(uncached[2 * rep + 1])))
            for r in (hit, miss, miss2):
                if not r.ok:
                    raise RuntimeError(f"startup: {r.status} {r.error}")
            out["first_hit_ms"].append(hit.total * 1e3)
            out["first_miss_ttfb_ms"].append(miss.ttfb * 1e3)
            out["first_miss_total_ms"].append(miss.total * 1e3)
            out["second_miss_ms"].append(miss2.total * 1e3)
            out["cpu_s"].append(cpu_seconds(pk.pids()))
            out["hwm_mib"].append(rss_hwm_mib(pk.pids()))
            pk.stop()
            log(f"  rep {rep + 1}: listening after {out['listen_s'][-1]:.3f}s, first hit "
                f"{hit.total * 1e3:.1f} ms, first miss {miss.total * 1e3:.1f} ms (second "
                f"{miss2.total * 1e3:.1f} ms), cpu {out['cpu_s'][-1]:.2f}s, "
                f"peak RSS {out['hwm_mib'][-1]:.1f} MiB")
        self.res.raw["startup"] = out
        m = {k: med(v) for k, v in out.items()}
        lbl = f"start-up, Arch dbs + {n} pkgs cached"
        self.res.add(Row("S1", f"{lbl}: spawn -> listening", "s", m["listen_s"], better="lower"))
        self.res.add(Row("S1", f"{lbl}: first miss after start", "ms", m["first_miss_total_ms"],
                         better="lower",
                         note=f"TTFB {m['first_miss_ttfb_ms']:.1f} ms; it parses extra.db "
                              f"(the catalog); the next miss {m['second_miss_ms']:.1f} ms, "
                              f"first hit {m['first_hit_ms']:.1f} ms"))
        self.res.add(Row("S1", f"{lbl}: CPU to first miss served", "s", m["cpu_s"],
                         better="lower", note="utime+stime of the process, all threads"))
        self.res.add(Row("S1", f"{lbl}: peak RSS", "MiB", m["hwm_mib"], better="lower"))

    # -- refresh ----------------------------------------------------------------------------
    def one_refresh(self, n: int, label: str, prof: bool = False) -> dict:
        cached = self.sample_cached(n)
        expect_prefetch = sum(1 for p in cached if p.new)
        d = self.fresh_dir("refresh")
        self.seed_cache(d / "cache", cached)
        pk = Pkgstash(self.procs, self.binary, d, self.mirror.base("next"), cache=d / "cache")
        pk.start()
        res = {}
        for kind in ("changed", "unchanged"):
            pids = pk.pids()
            reset_hwm(pids)
            cpu0 = cpu_seconds(pids)
            with self.profile(f"refresh-{kind}-{n}", pids[0], prof):
                t0 = time.perf_counter()
                rep = pk.api("POST", "refresh")
                wall = time.perf_counter() - t0
            cpu = cpu_seconds(pids) - cpu0
            hwm = rss_hwm_mib(pids)
            if rep.get("errors"):
                raise RuntimeError(f"refresh errors: {rep['errors'][:5]}")
            want_upd = 6 if kind == "changed" else 0
            if rep["dbs_checked"] != 6 or rep["dbs_updated"] != want_upd:
                raise RuntimeError(f"refresh ({kind}): {rep['dbs_checked']} dbs checked, "
                                   f"{rep['dbs_updated']} updated; expected 6 / {want_upd}")
            if kind == "changed" and len(rep["prefetched"]) != expect_prefetch:
                raise RuntimeError(f"refresh: prefetched {len(rep['prefetched'])}, expected "
                                   f"{expect_prefetch}")
            res[kind] = {"wall_s": wall, "cpu_s": cpu, "hwm_mib": hwm,
                         "prefetched": len(rep["prefetched"]), "server_ms": rep["duration_ms"]}
            log(f"  {label} {kind}: {wall:.2f}s, cpu {cpu:.2f}s, peak RSS {hwm:.1f} MiB, "
                f"{len(rep['prefetched'])} prefetched")
        pk.stop()
        shutil.rmtree(d)
        return res

    def part_refresh(self) -> None:
        n = self.sz.cached
        log(f"refresh: Arch-sized dbs revalidated (next week's revision), prefetch planned and "
            f"run for {n} cached packages")
        runs = [self.one_refresh(n, f"{n} cached", i == 0) for i in range(self.sz.reps)]
        everything = self.one_refresh(len(self.fx.pkgs), f"{len(self.fx.pkgs)} cached", True)
        self.res.raw["refresh"] = {"runs": runs, "all_cached": everything}
        c = {k: med([r["changed"][k] for r in runs]) for k in ("wall_s", "cpu_s", "hwm_mib")}
        u = {k: med([r["unchanged"][k] for r in runs]) for k in ("wall_s", "cpu_s", "hwm_mib")}
        sizes = {r: {k: self.fx.db_path("next", r, k).stat().st_size / MiB for k in ("db", "files")}
                 for r in archgen.REPOS}
        lbl = f"refresh, dbs changed, {n} cached"
        self.res.add(Row("S2", f"{lbl}: time", "s", c["wall_s"], better="lower",
                         note=f"6 dbs revalidated and downloaded (extra.db "
                              f"{sizes['extra']['db']:.1f} MiB, extra.files "
                              f"{sizes['extra']['files']:.1f} MiB, unlimited local mirror), "
                              f"{runs[0]['changed']['prefetched']} packages prefetched, cleanup"))
        self.res.add(Row("S2", f"{lbl}: CPU", "s", c["cpu_s"], better="lower",
                         target="< 1 CPU-s", passed=c["cpu_s"] < 1.0))
        self.res.add(Row("S2", f"{lbl}: peak RSS", "MiB", c["hwm_mib"], better="lower",
                         target="< 128 MiB", passed=c["hwm_mib"] < 128))
        self.res.add(Row("S2", f"refresh, nothing changed (6 x 304), {n} cached: CPU", "s",
                         u["cpu_s"], better="lower", target="< 1 CPU-s", passed=u["cpu_s"] < 1.0,
                         note=f"time {u['wall_s']:.2f}s, peak RSS {u['hwm_mib']:.1f} MiB"))
        e, eu = everything["changed"], everything["unchanged"]
        n_all = len(self.fx.pkgs)
        k = growth(n, c["cpu_s"], n_all, e["cpu_s"])
        ku = growth(n, u["cpu_s"], n_all, eu["cpu_s"])
        self.res.add(Row("S2", f"refresh, dbs changed, all {n_all} cached: CPU", "s",
                         e["cpu_s"], better="lower",
                         note=f"time {e['wall_s']:.2f}s, peak RSS {e['hwm_mib']:.1f} MiB, "
                              f"{e['prefetched']} prefetched; CPU grows as n^{k:.2f} from {n}"
                         if k is not None else ""))
        self.res.add(Row("S2", f"refresh, nothing changed, all {n_all} cached: CPU", "s",
                         eu["cpu_s"], better="lower",
                         note=f"time {eu['wall_s']:.2f}s; the prefetch plan alone: CPU grows as "
                              f"n^{ku:.2f} from {n} cached" if ku is not None else
                              f"time {eu['wall_s']:.2f}s"))

    # -- verify -----------------------------------------------------------------------------
    def verify_cache(self, n: int) -> tuple[Path, int]:
        """A cache with the Arch dbs and `n` packages: those the dbs list (hashed by verify) and
        ~27 % older versions no db lists (verdict unknown, as in a real cache)."""
        real_n = min(len(self.fx.pkgs), round(n * 0.7275))
        real = self.sample_cached(real_n)
        d = self.fresh_dir("verify")
        cache = d / "cache"
        self.seed_cache(cache, real)
        for i in range(n - real_n):
            p = real[i % len(real)]
            older = f"{p.name}-0.0.0.{i // len(real) + 1}-1-{p.arch}.pkg.tar.zst"
            os.link(self.fx.tree("old", p.repo) / p.filename(p.old),
                    cache / UPSTREAM / p.repo / "os" / ARCH / older)
        return d, real_n

    def part_verify(self) -> None:
        out = {}
        for n in self.sz.verify:
            d, real_n = self.verify_cache(n)
            pk = Pkgstash(self.procs, self.binary, d, self.mirror.base("old"), cache=d / "cache")
            runs = []
            for rep in range(self.sz.reps):
                r = run_measured([str(self.binary), "verify", "--no-quarantine", "-c",
                                  str(pk.conf)], env=pk.env)
                m = re.search(r"(\d+) ok, (\d+) mismatch, (\d+) unknown", r["stdout"])
                if r["rc"] != 0 or not m or int(m.group(1)) != real_n or int(m.group(2)):
                    raise RuntimeError(f"verify: rc {r['rc']}, {m and m.group(0)}; expected "
                                       f"{real_n} ok\n{r['stderr'][-2000:]}")
                runs.append({k: r[k] for k in ("wall_s", "cpu_s", "maxrss_mib")})
                log(f"  verify {n}: {m.group(0)}; {r['wall_s']:.2f}s, cpu {r['cpu_s']:.2f}s, "
                    f"peak RSS {bench.fmt(r['maxrss_mib'])} MiB")
            out[n] = {"runs": runs, "hashed": real_n}
            if self.profile_dir is not None:
                self.profile_dir.mkdir(parents=True, exist_ok=True)
                data = self.profile_dir / f"verify-{n}.data"
                run_measured(["perf", "record", "-q", "-e", "cpu-clock", "-F", "999",
                              "--call-graph", "dwarf,16384", "-o", str(data), "--",
                              str(self.binary), "verify", "--no-quarantine", "-c", str(pk.conf)],
                             env=pk.env)
                with (self.profile_dir / f"verify-{n}.txt").open("w") as f:
                    subprocess.run(["perf", "report", "-i", str(data), "--stdio", "--no-children",
                                    "--sort", "dso,sym", "-g", "none"], stdout=f,
                                   stderr=subprocess.DEVNULL)
            shutil.rmtree(d)
        self.res.raw["verify"] = out
        (n1, n2) = self.sz.verify
        m1 = {k: med([r[k] for r in out[n1]["runs"]]) for k in ("wall_s", "cpu_s", "maxrss_mib")}
        m2 = {k: med([r[k] for r in out[n2]["runs"]]) for k in ("wall_s", "cpu_s", "maxrss_mib")}
        k = growth(n1, m1["cpu_s"], n2, m2["cpu_s"])
        lbl = f"verify, {n2} cached pkgs ({out[n2]['hashed']} listed)"
        self.res.add(Row("S3", f"{lbl}: time", "s", m2["wall_s"], better="lower",
                         note="`pkgstash verify --no-quarantine`, a process of its own; tiny "
                              "packages: the per-file cost, not the hashing"))
        self.res.add(Row("S3", f"{lbl}: CPU", "s", m2["cpu_s"], better="lower",
                         note=f"{n1} pkgs: {m1['cpu_s']:.2f}s; grows as n^{k:.2f}"
                         if k is not None else ""))
        self.res.add(Row("S3", f"{lbl}: peak RSS", "MiB", m2["maxrss_mib"], better="lower",
                         note=f"{n1} pkgs: {bench.fmt(m1['maxrss_mib'])} MiB (GNU time's %M)"))

    # -- cleanup ----------------------------------------------------------------------------
    def cleanup_cache(self, n: int) -> tuple[Path, int, set[str]]:
        """The Arch dbs, the current version of n/6.87 packages (listed: protected) and 5-6
        older versions of each (sparse files of the package's nominal size, last served
        within 180 days). Returns (dir, total bytes, names of the current versions)."""
        per = 6.87
        k = max(1, min(len(self.fx.pkgs), round(n / per)))
        cur = [p for p in self.sample_cached(len(self.fx.pkgs)) if not p.old.startswith("0.0.0")][:k]
        d = self.fresh_dir("cleanup")
        cache = d / "cache"
        self.seed_cache(cache, cur)
        rng = random.Random(11)
        now = time.time()
        total = 0
        made = len(cur)
        i = 0
        while made < n:
            p = cur[i % len(cur)]
            v = i // len(cur) + 1
            fn = f"{p.name}-0.0.0.{v}-1-{p.arch}.pkg.tar.zst"
            path = cache / UPSTREAM / p.repo / "os" / ARCH / fn
            size = max(4096, int(p.isize / 3))
            with open(path, "wb") as f:
                f.truncate(size)
            t = now - rng.uniform(0, 180 * 86400)
            os.utime(path, (t, t))
            total += size
            made += 1
            i += 1
        return d, total, {p.filename(p.old) for p in cur}

    def part_cleanup(self) -> None:
        out = {}
        for n in self.sz.cleanup:
            t = time.monotonic()
            d, total, current = self.cleanup_cache(n)
            log(f"cleanup: {n} cached files made in {time.monotonic() - t:.1f}s")
            pk = Pkgstash(self.procs, self.binary, d, self.mirror.base("old"),
                          extra_conf=f'[cleanup]\nkeep_versions = 3\nmax_size = "{total // 2}B"\n',
                          cache=d / "cache")
            runs = []
            for rep in range(self.sz.reps):
                listen = pk.start()
                scan = re.findall(r"cache index: (\d+) files in (\d+) ms", pk.logf.read_text())
                row = {"listen_s": listen, "scan_ms": int(scan[-1][1]) if scan else None}
                for phase in ("cold", "warm"):
                    pids = pk.pids()
                    reset_hwm(pids)
                    cpu0 = cpu_seconds(pids)
                    with self.profile(f"cleanup-{phase}-{n}", pids[0],
                                      rep == 0 and n == self.sz.cleanup[-1]):
                        t0 = time.perf_counter()
                        rep_ = pk.api("POST", "cleanup?dry_run=true")
                        row[f"{phase}_wall_s"] = time.perf_counter() - t0
                    row[f"{phase}_cpu_s"] = cpu_seconds(pids) - cpu0
                    row[f"{phase}_hwm_mib"] = rss_hwm_mib(pids)
                    removed = [r["path"].rsplit("/", 1)[1] for r in rep_["removed"]]
                    if not removed or any(x in current for x in removed):
                        raise RuntimeError(f"cleanup plan: {len(removed)} removals, "
                                           f"{sum(x in current for x in removed)} of them listed")
                    row["removed"] = len(removed)
                pk.stop()
                runs.append(row)
                log(f"  {n} files: listening {listen:.2f}s; plan cold {row['cold_wall_s']:.2f}s "
                    f"cpu {row['cold_cpu_s']:.2f}s, warm {row['warm_wall_s']:.2f}s cpu "
                    f"{row['warm_cpu_s']:.2f}s, peak RSS {row['cold_hwm_mib']:.1f} MiB, "
                    f"{row['removed']} to remove")
            out[n] = runs
            shutil.rmtree(d)
        self.res.raw["cleanup"] = out
        n1, n2 = self.sz.cleanup
        m1 = {k: med([r[k] for r in out[n1]]) for k in out[n1][0] if k != "scan_ms"}
        m2 = {k: med([r[k] for r in out[n2]]) for k in out[n2][0] if k != "scan_ms"}
        k = growth(n1, m1["warm_cpu_s"], n2, m2["warm_cpu_s"])
        lbl = f"cleanup plan (dry run), {n2} cached files"
        self.res.add(Row("S4", f"{lbl}: time", "s", m2["cold_wall_s"], better="lower",
                         note=f"first plan after start (parses the dbs); the next one "
                              f"{m2['warm_wall_s']:.2f}s; {m2['removed']:.0f} files to remove "
                              f"(keep_versions 3 + max_size)"))
        self.res.add(Row("S4", f"{lbl}: CPU", "s", m2["cold_cpu_s"], better="lower",
                         note=f"next plan {m2['warm_cpu_s']:.2f}s; {n1} files: "
                              f"{m1['warm_cpu_s']:.2f}s; grows as n^{k:.2f}" if k else ""))
        self.res.add(Row("S4", f"{lbl}: peak RSS", "MiB", m2["cold_hwm_mib"], better="lower",
                         note=f"start-up with these files: {m2['listen_s']:.2f}s to listening"))

    # -- hit and miss latency during a refresh ----------------------------------------------
    def latency_loop(self, pk: Pkgstash, cached: list[archgen.Pkg], misses: list[archgen.Pkg],
                     until, max_hits: int) -> dict:
        hits, miss, miss_ttfb = [], [], []
        i = 0
        while True:
            if until is None and len(hits) >= max_hits:
                break
            if until is not None and until():
                break
            r = load.get(pk.url(self.rel(cached[self.rng.randrange(len(cached))])))
            if not r.ok:
                raise RuntimeError(f"hit: {r.status} {r.error}")
            hits.append(r.total * 1e3)
            i += 1
            if i % 4 == 0 and misses:
                r = load.get(pk.url(self.rel(misses.pop())))
                if not r.ok:
                    raise RuntimeError(f"miss: {r.status} {r.error}")
                miss.append(r.total * 1e3)
                miss_ttfb.append(r.ttfb * 1e3)
            time.sleep(0.002)
        return {"hit_ms": hits, "miss_ms": miss, "miss_ttfb_ms": miss_ttfb}

    def part_during(self) -> None:
        n = self.sz.cached
        log(f"during: hits and misses while a refresh downloads extra.files at "
            f"{self.sz.files_rate} (nginx limit_rate; idle first)")
        cached = self.sample_cached(n)
        cached_set = {id(p) for p in cached}
        pool = [p for p in self.fx.pkgs if id(p) not in cached_set and not p.new]
        self.rng.shuffle(pool)
        runs = []
        for rep in range(self.sz.reps):
            d = self.fresh_dir("during")
            self.seed_cache(d / "cache", cached)
            pk = Pkgstash(self.procs, self.binary, d, self.mirror.base("nextslow"),
                          cache=d / "cache")
            pk.start()
            # warm: the catalog parsed, the hit path's open files
            load.get(pk.url(self.rel(pool.pop())))
            for p in cached[:50]:
                load.get(pk.url(self.rel(p)))
            idle = self.latency_loop(pk, cached, pool, None, 300)
            holder: dict = {}

            def refresh():
                t0 = time.perf_counter()
                holder["report"] = pk.api("POST", "refresh")
                holder["s"] = time.perf_counter() - t0

            t = threading.Thread(target=refresh, daemon=True)
            with self.profile("during", pk.pids()[0], rep == 0):
                t.start()
                busy = self.latency_loop(pk, cached, pool, lambda: not t.is_alive(), 0)
                t.join()
            pk.stop()
            shutil.rmtree(d)
            runs.append({"idle": idle, "during": busy, "refresh_s": holder.get("s")})
            log(f"  rep {rep + 1}: refresh {holder.get('s', 0):.1f}s; hit median idle "
                f"{bench.fmt(med(idle['hit_ms']))} ms, during {bench.fmt(med(busy['hit_ms']))} ms "
                f"({len(busy['hit_ms'])} hits); miss median idle "
                f"{bench.fmt(med(idle['miss_ms']))} ms, during {bench.fmt(med(busy['miss_ms']))} "
                f"ms ({len(busy['miss_ms'])} misses), worst {max(busy['miss_ms'] or [0]):.1f} ms")
            if len(busy["hit_ms"]) < 20 or len(busy["miss_ms"]) < 3:
                raise RuntimeError("during: the refresh ended before 20 hits and 3 misses; "
                                   "lower the rate of extra.files (Sizes.files_rate)")
        def summary(xs: list[float]) -> dict:
            if not xs:
                return {"n": 0}
            return {"n": len(xs), "median": med(xs), "p90": bench.pct(xs, 90),
                    "p99": bench.pct(xs, 99), "max": max(xs)}

        self.res.raw["during"] = [
            {"refresh_s": r["refresh_s"],
             **{f"{phase}_{k}": summary(r[phase][k]) for phase in ("idle", "during")
                for k in ("hit_ms", "miss_ms", "miss_ttfb_ms")}} for r in runs]
        hi = med([med(r["idle"]["hit_ms"]) for r in runs])
        hd = med([med(r["during"]["hit_ms"]) for r in runs])
        mi = med([med(r["idle"]["miss_ms"]) for r in runs])
        md = med([med(r["during"]["miss_ms"]) for r in runs])
        worst_hit = max(max(r["during"]["hit_ms"]) for r in runs)
        worst_miss = max(max(r["during"]["miss_ms"] or [0]) for r in runs)
        worst_miss_ttfb = max(max(r["during"]["miss_ttfb_ms"] or [0]) for r in runs)
        worst_idle_ttfb = max(max(r["idle"]["miss_ttfb_ms"] or [0]) for r in runs)
        p99 = med([bench.pct(r["during"]["hit_ms"], 99) for r in runs])
        p99i = med([bench.pct(r["idle"]["hit_ms"], 99) for r in runs])
        self.res.add(Row("S5", "hit during a refresh of extra.files, median / idle median", "x",
                         hd / hi, better="lower", target="<= 2x", passed=hd / hi <= 2.0,
                         note=f"median {hd:.2f} ms during vs {hi:.2f} ms idle; p99 {p99:.2f} vs "
                              f"{p99i:.2f} ms; worst {worst_hit:.1f} ms"))
        self.res.add(Row("S5", "miss during a refresh of extra.files, median / idle median", "x",
                         md / mi, better="lower",
                         note=f"median {md:.2f} ms during vs {mi:.2f} ms idle; worst "
                              f"{worst_miss:.1f} ms, worst first byte {worst_miss_ttfb:.1f} ms "
                              f"(idle: {worst_idle_ttfb:.1f} ms): a miss after the new extra.db "
                              f"is published waits for its parse"))

    # -- the herd, as a user pays -------------------------------------------------------------
    def herd_proxies(self, d: Path) -> list[tuple[str, object]]:
        base = self.mirror.base("herd")
        out: list[tuple[str, object]] = []
        for who in self.herd_who:
            p = d / who.replace("/", "_").replace(":", "_")
            if who.startswith("pkgstash"):
                # `pkgstash:BINARY[:VAR=VALUE]`: another build (a before/after, interleaved)
                _, binary, var = (who.split(":", 2) + ["", ""])[:3]
                pk = Pkgstash(self.procs, Path(binary) if binary else self.binary,
                              p, base)
                if var:
                    k, _, v = var.partition("=")
                    pk.env[k] = v
                pk.start()
                out.append((who, pk))
            elif who == "nginx":
                out.append((who, NginxProxy(self.procs, p, base)))
            elif who == "nginx-1fetch":
                out.append((who, NginxProxy(self.procs, p, base, lock_age="1h")))
            elif who == "flexo":
                out.append((who, Flexo(self.procs, Path(self.args.flexo), p, base)))
        return out

    def quiet(self, pids: list[int], uri: str, timeout: float) -> None:
        """Until upstream logged the file's requests and the proxy's CPU stopped moving."""
        deadline = time.monotonic() + timeout
        last = cpu_seconds(pids)
        stable_since = time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.25)
            cur = cpu_seconds(pids)
            logged = any(e["uri"] == uri for e in self.mirror.entries())
            if cur != last:
                last, stable_since = cur, time.monotonic()
            elif logged and time.monotonic() - stable_since >= 1.0:
                return

    def part_herd(self) -> None:
        n, size = self.sz.herd_clients, self.sz.herd_size
        self.herd_who = self.args.herd_who.split(",") + (["flexo"] if self.args.flexo else [])
        log(f"herd: {n} client processes released at once on one uncached {size // MiB} MiB "
            f"package, mirror {self.sz.herd_rate.rstrip('m')} MiB/s, fresh proxies: {', '.join(self.herd_who)}")
        keys = ("ttfb_max_ms", "connect_ttfb_max_ms", "finish_s", "cpu_last_s", "cpu_idle_s",
                "upstream_x", "errors")
        out = {w: {k: [] for k in keys} for w in self.herd_who}
        single = size / (20 * MiB)
        for rep in range(self.sz.reps):
            d = self.fresh_dir("herd")
            for who, proxy in self.herd_proxies(d):
                self.counter += 1
                name = f"herd{self.counter}-1.0-1-x86_64.pkg.tar.zst"
                os.link(self.herd_data, self.herd_root / name)
                pids = proxy.pids()
                cpu: dict = {}
                with self.profile(f"herd-{who.split(':')[0]}", pids,
                                  rep == 0 and who in ("pkgstash", "nginx-1fetch")):
                    res = load.herd_procs(proxy.url(name), n,
                                          on_release=lambda: cpu.setdefault("0", cpu_seconds(pids)))
                    cpu["last"] = cpu_seconds(pids)
                    self.quiet(pids, "/" + name, single * 3 + 30)
                    cpu["idle"] = cpu_seconds(pids)
                t = res["release"]
                cl = res["clients"]
                errs = [c.get("error") for c in cl if c.get("error") or c.get("status") != 200]
                ttfb = [c["first_body"] - t for c in cl if c.get("first_body")]
                cttfb = [c["first_body"] - c["connected"] for c in cl if c.get("first_body")]
                fin = [c["last_body"] - t for c in cl if c.get("last_body")]
                up = sum(e["bytes"] for e in self.mirror.entries() if e["uri"] == "/" + name)
                o = out[who]
                o["ttfb_max_ms"].append(max(ttfb) * 1e3 if ttfb else None)
                o["connect_ttfb_max_ms"].append(max(cttfb) * 1e3 if cttfb else None)
                o["finish_s"].append(max(fin) if fin else None)
                o["cpu_last_s"].append(cpu["last"] - cpu["0"])
                o["cpu_idle_s"].append(cpu["idle"] - cpu["0"])
                o["upstream_x"].append(up / size)
                o["errors"].append(len(errs))
                log(f"  {who} rep {rep + 1}: worst first byte {o['ttfb_max_ms'][-1]:.1f} ms "
                    f"(after connect {o['connect_ttfb_max_ms'][-1]:.1f} ms), last byte "
                    f"{o['finish_s'][-1]:.2f}s, cpu to last byte {o['cpu_last_s'][-1]:.2f}s, "
                    f"to idle {o['cpu_idle_s'][-1]:.2f}s, upstream {o['upstream_x'][-1]:.2f}x, "
                    f"{len(errs)} failed {errs[:2]}")
                proxy.stop()
            shutil.rmtree(d)
        self.res.raw["herd"] = out
        m = {w: {k: med(out[w][k]) for k in keys} for w in self.herd_who}
        if not {"pkgstash", "nginx", "nginx-1fetch"} <= set(m):
            return  # a partial comparison (--herd-who): the log lines above are the result
        pk, ng, ng1 = m["pkgstash"], m["nginx"], m["nginx-1fetch"]
        lbl = f"herd {n} procs @{self.sz.herd_rate.rstrip('m')} MiB/s, {size // MiB} MiB"
        others = "; ".join(
            f"{w}: {m[w]['cpu_idle_s']:.2f}s to idle, worst first byte {m[w]['ttfb_max_ms']:.1f} ms,"
            f" upstream {m[w]['upstream_x']:.2f}x" for w in self.herd_who if w not in ("pkgstash", "nginx"))
        worst = max(x for x in out["pkgstash"]["ttfb_max_ms"] if x is not None)
        self.res.add(Row("H", f"{lbl}: worst first byte from release", "ms", pk["ttfb_max_ms"],
                         ng["ttfb_max_ms"], better="lower", target="<= 25 ms (every run)",
                         passed=worst <= 25.0,
                         note=f"worst of every run {worst:.1f} ms; connect included; after "
                              f"connect: pkgstash {pk['connect_ttfb_max_ms']:.1f} ms, nginx "
                              f"{ng['connect_ttfb_max_ms']:.1f} ms"))
        self.res.add(Row("H", f"{lbl}: last byte from release", "s", pk["finish_s"],
                         ng["finish_s"], single, better="lower",
                         note="direct column: file size / mirror rate"))
        self.res.add(Row("H", f"{lbl}: proxy CPU, release -> last byte", "s", pk["cpu_last_s"],
                         ng["cpu_last_s"], better="lower", target="<= nginx",
                         passed=pk["cpu_last_s"] <= ng["cpu_last_s"],
                         note="utime+stime of every thread (nginx: master + workers) from "
                              "/proc/PID/stat"))
        self.res.add(Row("H", f"{lbl}: proxy CPU, release -> idle", "s", pk["cpu_idle_s"],
                         ng["cpu_idle_s"], better="lower", target="<= nginx",
                         passed=pk["cpu_idle_s"] <= ng["cpu_idle_s"],
                         note="until the proxy's CPU stops moving: includes pkgstash's publish "
                              "(fsync) after the last byte"))
        self.res.add(Row("H", f"{lbl}: proxy CPU vs nginx fetching once, to idle", "s",
                         pk["cpu_idle_s"], ng1["cpu_idle_s"], better="lower", target="<= nginx",
                         passed=pk["cpu_idle_s"] <= ng1["cpu_idle_s"],
                         note=f"nginx with proxy_cache_lock_age 1h (one upstream fetch, every "
                              f"client waits for the whole file). {others}"))
        self.res.add(Row("H", f"{lbl}: upstream bytes / file size", "x", pk["upstream_x"],
                         ng["upstream_x"], 1.0, better="lower", target="exactly 1x",
                         passed=all(abs(x - 1) < 1e-9 for x in out["pkgstash"]["upstream_x"])))

    # -- the LAN upgrade day ----------------------------------------------------------------
    def lan_template(self) -> Path:
        """A client that has last week's packages: the bumped ones and their dependencies
        registered (`--dbonly`) from the old revision, and last week's sync dbs."""
        t = self.work / "lan-template"
        if t.exists():
            return t
        for d in ("db", "cache", "gnupg", "hooks"):
            (t / d).mkdir(parents=True)
        self.pacman_conf(t, {r: f"file://{self.fx.tree('old')}/$repo/os/$arch"
                             for r in archgen.REPOS})
        names = [p.name for p in self.fx.bumped()]
        r = subprocess.run(self.pacman_argv(t, ["-Sy", "--dbonly", *names]), capture_output=True,
                           text=True, env=dict(os.environ, LC_ALL="C"))
        if r.returncode != 0:
            raise RuntimeError(f"LAN template: pacman failed\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
        shutil.rmtree(t / "cache")
        (t / "cache").mkdir()
        for repo in archgen.REPOS:
            shutil.copy2(self.fx.db_path("old", repo), t / "db" / "sync" / f"{repo}.db")
        n = len(list((t / "db" / "local").iterdir())) - 1
        log(f"  LAN client template: {n} packages installed (last week's), old sync dbs")
        return t

    def pacman_conf(self, root: Path, servers: dict[str, str]) -> None:
        conf = (f"[options]\nRootDir = {root}\nDBPath = {root}/db/\nCacheDir = {root}/cache/\n"
                f"LogFile = {root}/pacman.log\nGPGDir = {root}/gnupg/\nHookDir = {root}/hooks/\n"
                f"Architecture = {ARCH}\nSigLevel = Never\nLocalFileSigLevel = Never\n"
                f"ParallelDownloads = 5\n")
        for repo, server in servers.items():
            conf += f"\n[{repo}]\nServer = {server}\n"
        (root / "pacman.conf").write_text(conf)

    def pacman_argv(self, root: Path, args: list[str]) -> list[str]:
        return ["pacman", "--root", str(root), "--dbpath", str(root / "db"), "--cachedir",
                str(root / "cache"), "--config", str(root / "pacman.conf"), "--noconfirm",
                "--noprogressbar", *args]

    @staticmethod
    def lan_sample(t0: float, pids: list[int], relay_stats: Path) -> dict:
        mem = {}
        for line in Path("/proc/meminfo").read_text().splitlines():
            k, v = line.split(":", 1)
            if k in ("Dirty", "Writeback"):
                mem[k] = int(v.split()[0]) // 1024
        blocked = []
        for pid in pids:
            try:
                tasks = os.listdir(f"/proc/{pid}/task")
            except OSError:
                continue
            for tid in tasks:
                try:
                    st = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
                    if st[0] == "D":
                        blocked.append(Path(f"/proc/{pid}/task/{tid}/wchan").read_text())
                except OSError:
                    pass
        try:
            relay = json.loads(relay_stats.read_text())
        except (OSError, ValueError):
            relay = {}
        return {"t": round(time.perf_counter() - t0, 2), "dirty_mib": mem.get("Dirty"),
                "writeback_mib": mem.get("Writeback"), "blocked": blocked,
                "relay_bytes": relay.get("bytes"), "relay_busy_s": relay.get("busy_s"),
                "load1": float(Path("/proc/loadavg").read_text().split()[0])}

    def lan_day(self, who: str, template: Path, relay_base: str, relay_stats: Path) -> dict:
        d = self.fresh_dir(f"lan-{who}-")
        if who == "pkgstash":
            proxy = Pkgstash(self.procs, self.binary, d / "proxy", relay_base)
            proxy.start()
        else:
            proxy = NginxProxy(self.procs, d / "proxy", relay_base)
        n = self.sz.lan_clients
        rng = random.Random(21)
        offsets = sorted(rng.uniform(0, self.sz.lan_spread) for _ in range(n))
        offsets[0] = 0.0
        clients = []
        for i in range(n):
            root = d / f"client{i:02d}"
            shutil.copytree(template / "db", root / "db", symlinks=True)
            for x in ("cache", "gnupg", "hooks"):
                (root / x).mkdir(parents=True)
            self.pacman_conf(root, {r: proxy.server() for r in archgen.REPOS})
            clients.append(root)
        args = ["-Syu"] + ([] if self.args.lan_extract else ["--dbonly"])
        bumped = self.fx.bumped()
        mark = self.mirror.mark()
        results: list[dict] = [{} for _ in range(n)]
        pids = proxy.pids()
        reset_hwm(pids)
        cpu0 = cpu_seconds(pids)
        prof = self.profile(f"lan-{who}", pids[0], who == "pkgstash")
        prof.__enter__()
        t0 = time.perf_counter()
        epoch0 = time.time()
        timeout = max(600.0, 20 * self.sz.lan_payload / self.sz.lan_rate)

        def client(i: int) -> None:
            delay = t0 + offsets[i] - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            root = clients[i]
            res = results[i]
            res["start"] = time.perf_counter() - t0
            p = subprocess.Popen(self.pacman_argv(root, args), stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True, start_new_session=True,
                                 env=dict(os.environ, LC_ALL="C"))
            lines = []
            killer = threading.Timer(timeout, lambda: os.killpg(p.pid, signal.SIGKILL))
            killer.start()
            for line in p.stdout:
                lines.append(line.rstrip())
                if "downloads_done" not in res and ("checking keyring" in line
                                                    or "checking package integrity" in line):
                    res["downloads_done"] = time.perf_counter() - t0
            p.wait()
            killer.cancel()
            res["end"] = time.perf_counter() - t0
            res["rc"] = p.returncode
            local = {x.name for x in (root / "db" / "local").iterdir()}
            res["missing"] = sum(1 for b in bumped if f"{b.name}-{b.new}" not in local)
            res["errors"] = [x for x in lines if x.startswith("error:")][:5]
            shutil.rmtree(root / "cache", ignore_errors=True)

        threads = [threading.Thread(target=client, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        peak = 0.0
        timeline = []  # what explains a link that is not busy: dirty pages, blocked threads
        ticks = 0
        while any(t.is_alive() for t in threads):
            time.sleep(0.5)
            peak = max(peak, rss_hwm_mib(proxy.pids()))
            ticks += 1
            if ticks % 4 == 0:  # every 2 s
                timeline.append(self.lan_sample(t0, proxy.pids(), relay_stats))
        for t in threads:
            t.join()
        end = time.perf_counter() - t0
        cpu = cpu_seconds(proxy.pids()) - cpu0
        peak = max(peak, rss_hwm_mib(proxy.pids()))
        prof.__exit__(None, None, None)
        proxy.stop()
        entries = self.mirror.entries(mark)
        up_bytes = sum(e["bytes"] for e in entries)
        # The upstream's view (nginx $msec at the end of each request, $request_time): when the
        # first package was asked for, when the last package byte left. Between the dbs and the
        # first package request every client is busy reading the new dbs (pacman's own CPU).
        pkgs = [e for e in entries if e["uri"].endswith(".pkg.tar.zst")]
        dbs = [e for e in entries if not e["uri"].endswith(".pkg.tar.zst")]
        first_pkg = min((e["t"] - epoch0 - e["rt"] for e in pkgs), default=None)
        last_pkg = max((e["t"] - epoch0 for e in pkgs), default=None)
        last_db = max((e["t"] - epoch0 for e in dbs), default=None)
        failed = [i for i, r in enumerate(results) if r.get("rc") != 0 or r.get("missing")]
        out = {"end_s": end, "last_done_s": max(r.get("end", end) for r in results),
               "last_downloads_s": max(r.get("downloads_done", r.get("end", end)) for r in results),
               "upstream_bytes": up_bytes, "upstream_requests": len(entries),
               "failed": len(failed), "cpu_s": cpu, "hwm_mib": peak,
               "first_pkg_request_s": first_pkg, "last_pkg_byte_s": last_pkg,
               "last_db_byte_s": last_db,
               "pkg_upstream_bytes": sum(e["bytes"] for e in pkgs),
               "clients": results, "offsets": offsets, "timeline": timeline}
        log(f"  {who}: last client done {out['last_done_s']:.1f}s (downloads "
            f"{out['last_downloads_s']:.1f}s; dbs upstream until {bench.fmt(last_db)}s, first "
            f"package asked at {bench.fmt(first_pkg)}s, last package byte "
            f"{bench.fmt(last_pkg)}s), upstream {up_bytes / MiB:.0f} MiB in "
            f"{len(entries)} requests, {len(failed)} failed "
            f"{[results[i].get('errors', [])[:1] for i in failed[:3]]}, cpu {cpu:.1f}s, peak "
            f"RSS {peak:.1f} MiB")
        shutil.rmtree(d, ignore_errors=True)
        return out

    def part_lan(self) -> None:
        bumped = self.fx.bumped()
        unique_files = [self.fx.db_path("lan", r) for r in archgen.REPOS] + \
            [self.fx.tree("lan", p.repo) / p.filename(p.new) for p in bumped]
        unique = sum(f.stat().st_size for f in unique_files)
        rate = self.sz.lan_rate
        limit = unique / rate
        log(f"lan: {self.sz.lan_clients} pacman clients, -Syu of {len(bumped)} packages "
            f"({unique / MiB:.0f} MiB unique with the 3 dbs) through {rate / MiB:.1f} MiB/s: "
            f"physical limit {limit:.1f}s")
        template = self.lan_template()
        who_list = self.args.lan_who.split(",")
        runs: dict[str, list] = {w: [] for w in who_list}
        for rep in range(self.args.lan_reps):
            for who in who_list:
                port = free_port()
                stats = self.work / f"relay-{who}-{rep}.json"
                relay = self.procs.start(
                    [sys.executable, str(Path(__file__).parent / "relay.py"), "--listen",
                     str(port), "--to", f"127.0.0.1:{self.mirror.ports['lan']}", "--rate",
                     str(rate), "--stats", str(stats)],
                    stdout=subprocess.DEVNULL, stderr=open(self.work / "relay.log", "ab"))
                wait_port(port, relay, "relay")
                r = self.lan_day(who, template, f"http://127.0.0.1:{port}", stats)
                self.procs.stop(relay)
                try:
                    r["relay"] = json.loads(stats.read_text())
                except (OSError, ValueError):
                    r["relay"] = None
                runs[who].append(r)
        self.res.raw["lan"] = {"unique_bytes": unique, "rate": rate, "limit_s": limit,
                               "runs": {w: [{k: v for k, v in r.items()} for r in rs]
                                        for w, rs in runs.items()}}
        m = {w: {k: med([r[k] for r in rs]) for k in ("last_done_s", "last_downloads_s",
                                                       "upstream_bytes", "failed", "cpu_s",
                                                       "hwm_mib")}
             for w, rs in runs.items()}
        none = {k: None for k in ("last_done_s", "last_downloads_s", "upstream_bytes", "failed",
                                  "cpu_s", "hwm_mib")}
        pk, ng = m.get("pkgstash", none), m.get("nginx", none)
        if pk["last_done_s"] is None:
            return
        if ng["last_done_s"] is None:
            ng = {k: float("nan") for k in none}
        lbl = f"LAN day, {self.sz.lan_clients} x pacman -Syu, {rate / MiB:.1f} MiB/s uplink"
        worst_dl = max(r["last_downloads_s"] for r in runs["pkgstash"])
        self.res.add(Row("L", f"{lbl}: last client's downloads done / physical limit", "x",
                         pk["last_downloads_s"] / limit, ng["last_downloads_s"] / limit, 1.0,
                         better="lower", target="<= 1.05x", passed=worst_dl / limit <= 1.05,
                         note=f"physical limit = {unique / MiB:.0f} MiB unique / "
                              f"{rate / MiB:.1f} MiB/s = {limit:.1f}s; downloads done = pacman's "
                              f"'checking ...' line; pkgstash {pk['last_downloads_s']:.1f}s, "
                              f"nginx {ng['last_downloads_s']:.1f}s"))
        pkg_unique = sum(self.fx.file_size("lan", p) for p in bumped)
        pkg_limit = pkg_unique / rate

        def phase(rs):
            xs = [(r["last_pkg_byte_s"] - r["first_pkg_request_s"]) / pkg_limit for r in rs
                  if r.get("first_pkg_request_s") is not None]
            return med(xs)

        think = med([r["first_pkg_request_s"] - r["last_db_byte_s"] for r in runs["pkgstash"]
                     if r.get("first_pkg_request_s") is not None])
        self.res.add(Row("L", f"{lbl}: package phase / its physical limit", "x",
                         phase(runs["pkgstash"]), phase(runs.get("nginx", [])) if "nginx" in runs
                         else None, 1.0, better="lower", target="<= 1.05x",
                         passed=phase(runs["pkgstash"]) <= 1.05,
                         note=f"upstream's view: first package request -> last package byte, "
                              f"against {pkg_unique / MiB:.0f} MiB of packages / "
                              f"{rate / MiB:.1f} MiB/s = {pkg_limit:.1f}s. Before it, "
                              f"{think:.1f}s pass between the last db byte and the first package "
                              f"request: {self.sz.lan_clients} pacman processes reading the new "
                              f"dbs on this machine's {os.cpu_count()} cores (on a LAN each has "
                              f"its own CPU)" if think is not None else ""))
        self.res.add(Row("L", f"{lbl}: last client finished", "s", pk["last_done_s"],
                         ng["last_done_s"], limit, better="lower",
                         note=f"direct column: physical limit; after its downloads each client "
                              f"checks and loads {unique / MiB:.0f} MiB of packages "
                              f"({'extracting them' if self.args.lan_extract else '`--dbonly`: no extraction'}), "
                              f"{self.sz.lan_clients} clients on the proxy's {os.cpu_count()} cores"))
        self.res.add(Row("L", f"{lbl}: upstream bytes / unique bytes", "x",
                         pk["upstream_bytes"] / unique, ng["upstream_bytes"] / unique, 1.0,
                         better="lower", target="exactly 1.00x",
                         passed=all(abs(r["upstream_bytes"] / unique - 1) < 0.0005
                                    for r in runs["pkgstash"]),
                         note="nginx passes dbs through uncached (the wiki setup): every client "
                              "fetches them"))
        self.res.add(Row("L", f"{lbl}: failed clients", "n", pk["failed"], ng["failed"],
                         better="lower", target="0",
                         passed=all(r["failed"] == 0 for r in runs["pkgstash"])))
        self.res.add(Row("L", f"{lbl}: proxy CPU", "s", pk["cpu_s"], ng["cpu_s"], better="lower"))
        self.res.add(Row("L", f"{lbl}: proxy peak RSS", "MiB", pk["hwm_mib"], ng["hwm_mib"],
                         better="lower", note="VmHWM (nginx: master + workers summed)"))

    # -- run -----------------------------------------------------------------------------------
    def run(self) -> int:
        started = time.monotonic()
        self.setup()
        fns = {"startup": self.part_startup, "refresh": self.part_refresh,
               "verify": self.part_verify, "cleanup": self.part_cleanup,
               "during": self.part_during, "herd": self.part_herd, "lan": self.part_lan}
        load_before = {}
        for part in self.parts:
            t = time.monotonic()
            load_before[part] = Path("/proc/loadavg").read_text().split()[:3]
            fns[part]()
            log(f"  ({part} took {time.monotonic() - t:.0f}s, loadavg before {load_before[part]})")
        elapsed = time.monotonic() - started
        doc = {
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "mode": "scale",
            "scale_factor": self.sz.f,
            "reps": self.sz.reps,
            "elapsed_s": round(elapsed, 1),
            "machine": bench.machine_info(),
            "pkgstash_source": bench.source_info(self.repo),
            "fixture": {"dir": str(self.fx.dir), "params": self.fx.params.__dict__,
                        "db_sizes": {r: {k: self.fx.db_path("old", r, k).stat().st_size
                                         for k in ("db", "files")} for r in archgen.REPOS}}
            if self.fx.pkgs else None,
            "loadavg_before": load_before,
            "table": [r.__dict__ | {"ratio": r.ratio} for r in self.res.rows],
            "raw": self.res.raw,
        }
        Path(self.args.json).write_text(json.dumps(doc, indent=1, default=str) + "\n")
        print()
        print(f"pkgstash at scale - factor {self.sz.f}, median of {self.sz.reps} run(s), "
              f"{doc['date']}")
        m = doc["machine"]
        print(f"machine: {m['cpu']}, {m['nproc']} CPUs, kernel {m['kernel']}")
        print()
        print(bench.table(self.res.rows))
        print()
        print(f"took {elapsed:.0f}s; JSON: {self.args.json}")
        return 0


PARTS = ["startup", "refresh", "verify", "cleanup", "during", "herd", "lan"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repo", default=str(Path(__file__).resolve().parent.parent))
    ap.add_argument("--binary", help="pkgstash binary to measure (default: the repo's "
                                     "target/release/pkgstash), e.g. a prototype for a before/after")
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--json", required=True)
    ap.add_argument("--fixtures", help="fixture cache dir (default target/bench-fixtures or "
                                       "$PKGSTASH_BENCH_FIXTURES)")
    ap.add_argument("--parts", help=f"comma-separated subset of {','.join(PARTS)}")
    ap.add_argument("--scale-factor", type=float, default=1.0,
                    help="shrink the catalog and every count (validation runs)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--lan-reps", type=int, default=1)
    ap.add_argument("--lan-clients", type=int, default=20)
    ap.add_argument("--lan-payload-mib", type=int, default=1024)
    ap.add_argument("--lan-spread", type=float, default=3.0,
                    help="clients start within this many seconds")
    ap.add_argument("--lan-rate-mib", type=float, default=12.5)
    ap.add_argument("--herd-who", default="pkgstash,nginx,nginx-1fetch",
                    help="proxies for the herd (flexo is added by --flexo); "
                         "`pkgstash:BINARY[:VAR=VALUE]` adds another pkgstash build, interleaved "
                         "with the others in every run (before/after comparisons)")
    ap.add_argument("--lan-who", default="pkgstash,nginx",
                    help="proxies for the LAN day (pkgstash,nginx)")
    ap.add_argument("--lan-extract", action="store_true",
                    help="clients install for real (extract ~1 GiB each) instead of --dbonly")
    ap.add_argument("--flexo", help="path of a flexo binary: adds flexo to the herd")
    ap.add_argument("--profile", metavar="DIR",
                    help="perf-record pkgstash in each part's measured window (first run); "
                         "reports in DIR. Profiling costs CPU: do not quote those runs' figures")
    args = ap.parse_args()
    b = ScaleBench(args)

    def on_signal(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    try:
        return b.run()
    finally:
        b.procs.stop_all()


if __name__ == "__main__":
    sys.exit(main())
