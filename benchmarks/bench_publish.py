#!/usr/bin/env python3
"""PUBLISH against constdb-server and redis-server side by side, with 0, 1
and 10 subscribers of the channel: req/s at -P 1 and server CPU
microseconds per request at -P 16 (redis-benchmark, 50 clients), with the
ratios ConstDB / Redis. Targets (issue 11, one subscriber): >= 0.8x req/s,
<= 2x CPU. A single node: no link to carry the messages to.

Each subscriber is a process that subscribes over a raw socket and reads
(and throws away) everything it receives, so it never falls behind.

It prints a table; nothing is asserted.

Usage: python benchmarks/bench_publish.py [--requests N]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time

from bench_vs_redis import HOST, ConstDBServer, RedisServer
from benchlib import bench_rps_cpu

SUBSCRIBER = """
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])))
s.sendall(b"*2\\r\\n$9\\r\\nSUBSCRIBE\\r\\n$2\\r\\nch\\r\\n")
first = True
while True:
    d = s.recv(1 << 20)
    if not d:
        break
    if first:
        print("ready", flush=True)
        first = False
"""


def subscribers(port: int, n: int) -> list[subprocess.Popen]:
    procs = []
    for _ in range(n):
        p = subprocess.Popen(
            [sys.executable, "-c", SUBSCRIBER, HOST, str(port)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        procs.append(p)
    return procs


def run(srv, pipeline: int, n: int) -> tuple[float, float]:
    """(req/s, server CPU us per request)."""
    return bench_rps_cpu(srv, pipeline, n, ["PUBLISH", "ch", "hello-message"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=100_000, help="requests per run (-P 16: 4x)")
    args = ap.parse_args()
    res: dict[tuple[str, int], tuple] = {}
    with tempfile.TemporaryDirectory() as tmp:
        servers = [ConstDBServer(tmp).start(), RedisServer(tmp).start()]
        try:
            for nsub in (0, 1, 10):
                for srv in servers:
                    subs = subscribers(srv.port, nsub)
                    try:
                        run(srv, 1, 5_000)  # warm-up
                        time.sleep(0.2)
                        p1 = run(srv, 1, args.requests)
                        p16 = run(srv, 16, args.requests * 4)
                    finally:
                        for p in subs:
                            p.kill()
                            p.wait()
                    res[(srv.name, nsub)] = (p1, p16)
        finally:
            for srv in servers:
                srv.stop()
    print("PUBLISH ch hello-message, 50 clients")
    print(f"{'subscribers':12}{'measure':22}{'ConstDB':>12}{'Redis':>12}{'ratio':>8}")
    for nsub in (0, 1, 10):
        c, r = res[("ConstDB", nsub)], res[("Redis", nsub)]
        rows = [
            ("req/s at -P 1", c[0][0], r[0][0], "%12.0f"),
            ("req/s at -P 16", c[1][0], r[1][0], "%12.0f"),
            ("CPU us/req at -P 16", c[1][1], r[1][1], "%12.2f"),
        ]
        for name, cv, rv, fmt in rows:
            print(f"{nsub:<12}{name:22}{fmt % cv}{fmt % rv}{cv / rv:8.2f}")


if __name__ == "__main__":
    main()
