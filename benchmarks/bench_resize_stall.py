"""The longest stall of one write while the keyspace grows: ConstDB beside
redis-server, N fresh keys SET through one connection in pipelines of
--batch commands, each pipeline's round trip timed. The slowest round trip
is where a key table's resize shows: a whole-table rehash stalls every
client for its length, an incremental one (Redis's dict; ConstDB's key
table, ktable.h) spreads it over the writes that follow. Then, in-process
(no server, no network), the slowest single KeyTable insert over the same
N keys.

    PYTHONPATH=$PWD python3 benchmarks/bench_resize_stall.py [--keys 2000000,6000000]
        [--batch 100] [--no-servers]

(Run it with PYTHONPATH pointing at another checkout to measure that one.)
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
import tempfile
import time

from bench_vs_redis import HOST, ConstDBServer, RedisServer, _sigterm, cleanup


def _batches(n: int, batch: int):
    for lo in range(0, n, batch):
        hi = min(n, lo + batch)
        yield (
            hi - lo,
            b"".join(
                b"*3\r\n$3\r\nSET\r\n$16\r\nkey:%012d\r\n$1\r\nv\r\n" % i for i in range(lo, hi)
            ),
        )


def load(port: int, n: int, batch: int) -> tuple[float, list[int]]:
    """SETs n fresh keys in pipelines; (seconds, each round trip in ns)."""
    s = socket.create_connection((HOST, port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    rtts = []
    pc = time.perf_counter_ns
    t0 = time.monotonic()
    for k, req in _batches(n, batch):
        want = 5 * k  # "+OK\r\n" each
        a = pc()
        s.sendall(req)
        got = 0
        while got < want:
            chunk = s.recv(65536)
            if not chunk:
                raise RuntimeError("connection closed")
            got += len(chunk)
        rtts.append(pc() - a)
    s.close()
    return time.monotonic() - t0, rtts


def worst_inserts(n: int, top: int = 4) -> tuple[list, list, float]:
    """The `top` slowest KeyTable inserts of n fresh keys by wall time and
    by the thread's CPU time ((ns, key number), slowest first), and the mean
    wall time (us). On a shared machine a slow one by wall time alone is the
    process losing its CPU; a resize starts at 3/4 of a power of two."""
    from constdb._core.ktable import KeyTable

    t = KeyTable()
    pc = time.perf_counter_ns
    tt = time.thread_time_ns
    wall = [(0, 0)] * top
    cpu = [(0, 0)] * top
    total = 0
    for i in range(n):
        k = b"key:%012d" % i
        c = tt()
        a = pc()
        t[k] = None
        b = pc() - a
        d = tt() - c
        total += b
        if b > wall[-1][0]:
            wall = sorted(wall + [(b, i)], reverse=True)[:top]
        if d > cpu[-1][0]:
            cpu = sorted(cpu + [(d, i)], reverse=True)[:top]
    return wall, cpu, total / n / 1e3


def pct(xs: list[int], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))] / 1e6


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--keys", default="2000000,6000000")
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--no-servers", action="store_true")
    a = ap.parse_args()
    sizes = [int(x) for x in a.keys.split(",")]
    signal.signal(signal.SIGTERM, _sigterm)
    import constdb

    print(f"constdb from {os.path.dirname(constdb.__file__)}; load {os.getloadavg()[0]:.2f}")
    for n in sizes:
        wall, cpu, mean = worst_inserts(n)
        print(f"in-process KeyTable, {n} inserts: mean {mean:.3f} us")
        for what, worst in (("wall", wall), ("CPU", cpu)):
            print(
                f"  slowest by {what}: "
                + ", ".join(f"{ns / 1e6:.3f} ms (key {i})" for ns, i in worst)
            )
    if a.no_servers:
        return 0
    rows = []
    with tempfile.TemporaryDirectory(prefix="stall-") as tmp:
        try:
            for n in sizes:
                row = {"n": n}
                for cls in (RedisServer, ConstDBServer):
                    srv = cls(tmp).start()
                    try:
                        secs, rtts = load(srv.port, n, a.batch)
                        row[srv.name] = (secs, max(rtts) / 1e6, pct(rtts, 0.999), pct(rtts, 0.5))
                        print(
                            f"{srv.name:8} {n} SETs (-P {a.batch}): {secs:.1f} s, round trip"
                            f" max {max(rtts) / 1e6:.2f} ms, p99.9 {pct(rtts, 0.999):.2f} ms,"
                            f" p50 {pct(rtts, 0.5):.3f} ms",
                            flush=True,
                        )
                    finally:
                        srv.stop()
                rows.append(row)
        finally:
            cleanup()
    print()
    print(f"pipelines of {a.batch} SETs of fresh 16-byte keys, one connection")
    print()
    print(
        "| keys | Redis max ms | ConstDB max ms | Redis p99.9 ms | ConstDB p99.9 ms | time ratio |"
    )
    print("|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        x, y = r["Redis"], r["ConstDB"]
        print(
            f"| {r['n']} | {x[1]:.2f} | {y[1]:.2f} | {x[2]:.2f} | {y[2]:.2f} | {y[0] / x[0]:.2f} |"
        )
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    sys.exit(main())
