"""Scenario 8 of bench.py: a pool of 3 pkgstash nodes behind HAProxy (the shipped
packaging/haproxy/pkgstash.cfg, addresses replaced) against one node, on this one machine.

  * 64 KiB hits per second (wrk, 64 connections) through the pool, one node alone, and
    nginx-cache in the same run: on one machine the pool cannot add CPU, so this is what the
    proxy hop costs per request (on real hardware each node brings its own CPU, disk, NIC);
  * a herd of 32 clients on one cold file behind a 50 MiB/s upstream, through the pool and to
    one node: upstream bytes (1x for the whole pool), worst TTFB, worst finish.
"""

from __future__ import annotations

import concurrent.futures as cf
import subprocess
import time
from pathlib import Path

import load
from bench import PKG, MiB, Pkgstash, Row, free_port, log, med, wait_port

NODES = 3


class Haproxy:
    """HAProxy running the shipped config in front of `ports` (127.0.0.1)."""

    def __init__(self, procs, prefix: Path, repo: Path, ports: list[int]):
        prefix.mkdir(parents=True)
        self.port = free_port()
        self.socket = prefix / "stats.sock"
        lines, servers_done = [], False
        for line in (repo / "packaging/haproxy/pkgstash.cfg").read_text().splitlines():
            t = line.strip()
            if t.startswith("server node"):
                if not servers_done:
                    lines += [f"    server node{i + 1} 127.0.0.1:{p}" for i, p in enumerate(ports)]
                    servers_done = True
                continue
            if t == "bind :7878":
                line = f"    bind 127.0.0.1:{self.port}"
            elif t == "log /dev/log local0":
                line = "    log stdout format raw local0 err"
            elif t.startswith("stats socket /run/haproxy/pkgstash.sock"):
                line = "    " + t.replace("/run/haproxy/pkgstash.sock", str(self.socket))
            lines.append(line)
        cfg = prefix / "haproxy.cfg"
        cfg.write_text("\n".join(lines) + "\n")
        binary = "/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists() else "haproxy"
        self.proc = procs.start([binary, "-db", "-f", str(cfg)], stdout=subprocess.DEVNULL,
                                stderr=open(prefix / "stderr.log", "wb"))
        wait_port(self.port, self.proc, "haproxy")
        deadline = time.monotonic() + 20
        while not self.all_up():
            if time.monotonic() > deadline:
                raise RuntimeError("haproxy: the nodes did not come UP")
            time.sleep(0.2)

    def all_up(self) -> bool:
        import socket
        try:
            s = socket.socket(socket.AF_UNIX)
            s.connect(str(self.socket))
            s.sendall(b"show stat\n")
            out = b""
            while chunk := s.recv(65536):
                out += chunk
            s.close()
        except OSError:
            return False
        rows = [line.split(",") for line in out.decode().splitlines()
                if line.startswith("pkgstash_pool,node")]
        return len(rows) > 0 and all(r[17] == "UP" for r in rows)


def s8_pool(b) -> None:
    """`b` is the running bench.Bench (its upstream, nginx-cache, single pkgstash, sizes)."""
    routes = {"bench": "full", "bench50": "r50"}
    nodes = [Pkgstash(b.procs, b.binary, b.work / f"pool-node{i}", b.up, routes)
             for i in range(NODES)]
    lb = Haproxy(b.procs, b.work / "haproxy", b.repo, [n.port for n in nodes])
    base = f"http://127.0.0.1:{lb.port}"
    n = b.sz.small_n
    log(f"8. pool: {NODES} nodes behind HAProxy vs one node: {n} x 64 KiB hits, wrk 64 "
        f"connections, {b.sz.wrk_secs}s; herd of {b.sz.herd} on a cold file @50 MiB/s")
    for who, url in (("pool", base), ("one node", f"http://127.0.0.1:{b.pk.port}"),
                     ("nginx", f"http://127.0.0.1:{b.ngx.port}")):
        with cf.ThreadPoolExecutor(8) as ex:
            for r in ex.map(load.get, [f"{url}/bench/small/s{i}{PKG}" for i in range(n)]):
                b.check(r, f"warm-up {who}")
    bases = {"pool": (base, "/bench/small/"),
             "one": (f"http://127.0.0.1:{b.pk.port}", "/bench/small/"),
             "nginx": (f"http://127.0.0.1:{b.ngx.port}", "/bench/small/")}
    out = {k: [] for k in bases}
    for rep in range(b.sz.reps):
        for who, (url, prefix) in bases.items():
            out[who].append(b.wrk(url, prefix))
    rps = {k: med([x["rps"] for x in v]) for k, v in out.items()}
    p99 = {k: med([x["p99_ms"] for x in v]) for k, v in out.items()}
    herd = {"pool": {"up_x": [], "ttfb": [], "finish": []},
            "one": {"up_x": [], "ttfb": [], "finish": []}}
    for rep in range(b.sz.reps):
        for who, url in (("pool", base), ("one", f"http://127.0.0.1:{b.pk.port}")):
            rel = b.fresh(b.cold_data, "cold")
            rs = load.herd(f"{url}/bench50/{rel}", b.sz.herd)
            for r in rs:
                b.check(r, f"herd {who}")
            s = load.summary(rs)
            b.settle(rel, b.sz.cold / (50 * MiB))
            herd[who]["up_x"].append(b.up.bytes_sent(rel) / b.sz.cold)
            herd[who]["ttfb"].append(s["ttfb_max"] * 1e3)
            herd[who]["finish"].append(s["finish_max"])
    b.res.raw["8_pool"] = {"wrk": out, "herd": herd, "nodes": NODES}
    note = (f"pkgstash column = {NODES} nodes behind HAProxy, direct column = one pkgstash "
            f"node, nginx = nginx-cache; all on this one machine")
    b.res.add(Row("8", f"pool of {NODES} behind HAProxy: 64 KiB hits, 64 conns", "req/s",
                  rps["pool"], rps["nginx"], rps["one"], note=note))
    b.res.add(Row("8", f"pool of {NODES} behind HAProxy: 64 KiB hits p99", "ms", p99["pool"],
                  p99["nginx"], p99["one"], better="lower"))
    m = {w: {k: med(v) for k, v in herd[w].items()} for w in herd}
    b.res.add(Row("8", f"pool: herd {b.sz.herd} @50 MiB/s, upstream bytes / file size", "x",
                  m["pool"]["up_x"], None, m["one"]["up_x"], better="lower",
                  target="exactly 1x",
                  passed=all(abs(x - 1.0) < 1e-9 for x in herd["pool"]["up_x"])))
    b.res.add(Row("8", f"pool: herd {b.sz.herd} @50 MiB/s, worst TTFB", "ms",
                  m["pool"]["ttfb"], None, m["one"]["ttfb"], better="lower"))
    b.res.add(Row("8", f"pool: herd {b.sz.herd} @50 MiB/s, worst finish", "s",
                  m["pool"]["finish"], None, m["one"]["finish"], better="lower"))
    for node in nodes:
        b.procs.stop(node.proc)
    b.procs.stop(lb.proc)
