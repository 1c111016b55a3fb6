#!/usr/bin/env python3
"""Bitmaps: ConstDB beside redis-server in one run.

Starts a constdb-server (alone: it folds every bit write at once) and a
redis-server as bench_vs_redis.py does, then:

* CPU per request at -P 16: SETBIT (random bits of a 1 MB bitmap, value 1:
  most requests change a bit), GETBIT (random bits of it) and BITCOUNT (the
  whole of a 1 KB bitmap), and SET as a calibration row (to compare this
  driver with redis-benchmark's figures in the README), each from C connections that keep 16 requests in
  flight (redis-benchmark cannot vary a bit offset: its __rand_int__ is
  zero-padded, which both servers refuse as an offset). The requests are
  built before the run; the server's CPU (utime + stime from /proc) is read
  before and after, divided by the requests;
* memory: RSS of each server before and after K bitmaps of B bits, each
  grown by SETBITs of some of its bits (--fill) in random order, then its
  last bit, as bytes per bitmap and per bit, beside Redis.

Prints markdown tables with the ratios and the targets (CPU per request at
most 1.5x redis-server's, bytes per bitmap at most 1.2x), never asserted.
Every process it starts is stopped by pid. Linux only (/proc).
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import socket
import sys
import tempfile
import time

from bench_vs_redis import (
    CLK_TCK,
    ConstDBServer,
    RedisServer,
    _sigterm,
    cleanup,
    cpu_ticks,
    log,
    settle_rss,
)
from benchlib import HOST

TARGET_CPU_RATIO = 1.5
TARGET_MEM_RATIO = 1.2
BITMAP_BITS = 8 * 1024 * 1024  # the 1 MB bitmap SETBIT and GETBIT hit


def resp(*args) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def requests(test: str, n: int, rng: random.Random) -> list[bytes]:
    if test == "setbit":
        return [resp("SETBIT", "bm", rng.randrange(BITMAP_BITS), 1) for _ in range(n)]
    if test == "getbit":
        return [resp("GETBIT", "bm", rng.randrange(BITMAP_BITS)) for _ in range(n)]
    if test == "bitcount":
        return [resp("BITCOUNT", "small")] * n
    if test == "set":
        # a calibration row: this driver's SET beside redis-benchmark's (README)
        return [resp("SET", f"key:{rng.randrange(100000):012d}", "xxx") for _ in range(n)]
    raise ValueError(test)


def drive(port: int, reqs: list[bytes], conns: int, depth: int) -> float:
    """Send reqs over conns connections, depth in flight on each (every reply
    of these commands is one integer line). Returns the wall time."""
    per = len(reqs) // conns
    socks = []
    for i in range(conns):
        s = socket.create_connection((HOST, port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        chunk = reqs[i * per : (i + 1) * per]
        batches = [b"".join(chunk[j : j + depth]) for j in range(0, len(chunk), depth)]
        socks.append([s, batches, 0, 0, 0])  # sock, batches, next batch, want, got
    t0 = time.monotonic()
    live = list(socks)
    for st in live:
        st[0].sendall(st[1][0])
        st[2] = 1
        st[3] = st[1][0].count(b"*")
    import selectors

    sel = selectors.DefaultSelector()
    for st in live:
        sel.register(st[0], selectors.EVENT_READ, st)
    remaining = len(live)
    while remaining:
        for key, _ in sel.select():
            st = key.data
            data = st[0].recv(1 << 16)
            if not data:
                raise RuntimeError("server closed the connection")
            st[4] += data.count(b"\n")
            if st[4] >= st[3]:
                st[4] -= st[3]
                if st[2] < len(st[1]):
                    b = st[1][st[2]]
                    st[2] += 1
                    st[3] = b.count(b"*")
                    st[0].sendall(b)
                else:
                    sel.unregister(st[0])
                    remaining -= 1
    wall = time.monotonic() - t0
    for st in socks:
        st[0].close()
    return wall


def cpu_per_request(srv, test: str, n: int, args) -> tuple[float, float]:
    reqs = requests(test, n, random.Random(1))
    c0 = cpu_ticks(srv.pid)
    wall = drive(srv.port, reqs, args.clients, 16)
    c1 = cpu_ticks(srv.pid)
    cpu = (c1[0] - c0[0] + c1[1] - c0[1]) / CLK_TCK * 1e6 / n
    return cpu, n / wall


def prepare(srv) -> None:
    c = srv.client()
    c.flushall()
    c.setbit("bm", BITMAP_BITS - 1, 0)
    c.set("small", bytes(random.Random(2).randrange(256) for _ in range(1024)))
    c.close()


def throughput(tmp: str, args) -> dict:
    out: dict = {}
    servers = [ConstDBServer(tmp).start(), RedisServer(tmp).start()]
    try:
        for srv in servers:
            prepare(srv)
            # warm-up (not measured)
            for t in args.tests:
                cpu_per_request(srv, t, 20_000, args)
        for rep in range(args.repeat):
            for t in args.tests:
                for srv in servers if rep % 2 == 0 else reversed(servers):
                    cpu, rps = cpu_per_request(srv, t, args.requests, args)
                    out.setdefault((t, srv.name), []).append((cpu, rps))
                    log(f"  [{rep + 1}] {t:8s} {srv.name:8s} {cpu:6.2f} us/req {rps:>10,.0f} req/s")
    finally:
        for srv in servers:
            srv.stop()
    return out


def memory(tmp: str, args) -> dict:
    res = {}
    rng = random.Random(3)
    cmds = []
    for k in range(args.bitmaps):
        for b in rng.sample(range(args.bits), int(args.bits * args.fill)):
            cmds.append(resp("SETBIT", f"bitmap:{k}", b, 1))
        # the last bit, so every bitmap reaches its full length
        cmds.append(resp("SETBIT", f"bitmap:{k}", args.bits - 1, 1))
    for cls in (ConstDBServer, RedisServer):
        srv = cls(tmp).start()
        try:
            before = settle_rss(srv.pid)
            drive(srv.port, cmds, 1, 64)
            after = settle_rss(srv.pid, 1.0)
            c = srv.client()
            assert c.strlen("bitmap:0") == args.bits // 8
            res[srv.name] = (after - before) / args.bitmaps
            c.close()
            log(f"  {srv.name:8s} RSS {before / 2**20:.1f} -> {after / 2**20:.1f} MiB")
        finally:
            srv.stop()
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tests", nargs="+", default=["setbit", "getbit", "bitcount", "set"])
    ap.add_argument("--requests", type=int, default=400_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--bitmaps", type=int, default=100)
    ap.add_argument("--bits", type=int, default=1 << 20)
    ap.add_argument("--fill", type=float, default=1 / 32, help="share of the bits set")
    ap.add_argument("--no-memory", action="store_true")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, _sigterm)
    tmp = tempfile.mkdtemp(prefix="bench-bitmaps-")
    try:
        cells = throughput(tmp, args)
        mem = None if args.no_memory else memory(tmp, args)
    finally:
        cleanup()
    print("\n| command (-P 16) | ConstDB us/req | Redis us/req | ratio (target <= 1.5) |")
    print("|---|---|---|---|")
    for t in args.tests:
        a = sorted(x[0] for x in cells[(t, "ConstDB")])[len(cells[(t, "ConstDB")]) // 2]
        b = sorted(x[0] for x in cells[(t, "Redis")])[len(cells[(t, "Redis")]) // 2]
        print(f"| {t.upper()} | {a:.2f} | {b:.2f} | {a / b:.2f}x |")
    if mem:
        a, b = mem["ConstDB"], mem["Redis"]
        nb = args.bits
        print(
            f"\n| {args.bitmaps} bitmaps of {nb} bits | ConstDB | Redis | ratio (target <= 1.2) |"
        )
        print("|---|---|---|---|")
        print(f"| bytes per bitmap | {a:,.0f} | {b:,.0f} | {a / b:.2f}x |")
        print(f"| bytes per bit | {a / nb:.4f} | {b / nb:.4f} | {a / b:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    sys.exit(main())
