#!/usr/bin/env python3
"""A TCP relay with ONE rate limit shared by all its connections: an office uplink.

    relay.py --listen PORT --to HOST:PORT --rate BYTES_PER_S [--stats FILE]

Why not nginx `limit_rate`: it limits each connection, so N parallel downloads get N times the
rate. Why not `tc` (tbf on a veth pair in a network namespace): it needs CAP_NET_ADMIN and
changes the host's network setup, which a shared machine should not see; `tc` on `lo` would
throttle every other program's loopback traffic. This relay sits between the proxies and the
upstream nginx, so everything a proxy pulls from upstream crosses one token bucket:

* downstream bytes (upstream -> proxy) take tokens from the one bucket, in FIFO order across
  connections (chunks of at most 64 KiB: 5 ms of link time at 12.5 MiB/s), so parallel
  downloads share the link fairly and their sum never exceeds `rate` (burst: 256 KiB);
* request bytes (proxy -> upstream) pass unlimited (a few hundred bytes each);
* a connection closed on one side is closed on the other after the data in flight.

Stats (JSON, rewritten every second and at exit): bytes relayed downstream, connections, and
the busy time (seconds during which some connection had data waiting for tokens), so the
harness can check the link was saturated.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import time
from pathlib import Path

CHUNK = 64 * 1024
BURST = 256 * 1024


class Bucket:
    def __init__(self, rate: float):
        self.rate = rate
        self.tokens = float(BURST)
        self.t = time.monotonic()
        self.lock = asyncio.Lock()  # FIFO: waiters are served in order
        self.bytes = 0
        self.waiting = 0
        self.busy = 0.0
        self.busy_since: float | None = None

    async def take(self, n: int) -> None:
        self.waiting += 1
        if self.busy_since is None:
            self.busy_since = time.monotonic()
        try:
            async with self.lock:
                while True:
                    now = time.monotonic()
                    self.tokens = min(BURST, self.tokens + (now - self.t) * self.rate)
                    self.t = now
                    if self.tokens >= n:
                        self.tokens -= n
                        self.bytes += n
                        return
                    await asyncio.sleep((n - self.tokens) / self.rate)
        finally:
            self.waiting -= 1
            if self.waiting == 0 and self.busy_since is not None:
                self.busy += time.monotonic() - self.busy_since
                self.busy_since = None


async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
               bucket: Bucket | None) -> None:
    try:
        while True:
            data = await reader.read(CHUNK)
            if not data:
                break
            if bucket is not None:
                await bucket.take(len(data))
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        try:
            if writer.can_write_eof():
                writer.write_eof()
        except (OSError, RuntimeError):
            pass


async def main_async(a) -> None:
    bucket = Bucket(a.rate)
    host, port = a.to.rsplit(":", 1)
    conns = 0

    async def handle(cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        nonlocal conns
        conns += 1
        try:
            ur, uw = await asyncio.open_connection(host, int(port))
        except OSError:
            cw.close()
            return
        await asyncio.gather(pump(cr, uw, None), pump(ur, cw, bucket))
        for w in (cw, uw):
            try:
                w.close()
            except OSError:
                pass

    server = await asyncio.start_server(handle, "127.0.0.1", a.listen, backlog=1024)
    started = time.monotonic()

    def write_stats() -> None:
        if a.stats:
            busy = bucket.busy + ((time.monotonic() - bucket.busy_since)
                                  if bucket.busy_since is not None else 0.0)
            tmp = Path(a.stats + ".tmp")
            tmp.write_text(json.dumps({"bytes": bucket.bytes, "connections": conns,
                                       "busy_s": busy, "rate": a.rate,
                                       "uptime_s": time.monotonic() - started}))
            tmp.replace(a.stats)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for s in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(s, stop.set)
    print(f"relay listening on 127.0.0.1:{a.listen} -> {a.to} at {a.rate:.0f} B/s", flush=True)
    async with server:
        while not stop.is_set():
            write_stats()
            try:
                await asyncio.wait_for(stop.wait(), 1.0)
            except asyncio.TimeoutError:
                pass
    write_stats()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--listen", type=int, required=True)
    ap.add_argument("--to", required=True, help="HOST:PORT")
    ap.add_argument("--rate", type=float, required=True, help="bytes per second, all connections")
    ap.add_argument("--stats", help="JSON stats file")
    asyncio.run(main_async(ap.parse_args()))


if __name__ == "__main__":
    main()
