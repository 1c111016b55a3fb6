#!/usr/bin/env python3
"""PUBLISH against constdb-server and redis-server side by side, with 0, 1
and 10 subscribers of the channel: req/s at -P 1 and server CPU
microseconds per request at -P 16 (redis-benchmark, 50 clients), with the
ratios ConstDB / Redis (and the CPU per request at -P 1, steadier than
its req/s on a busy machine), each the median of --runs runs (the servers take
turns). GET of one key is measured the same way for comparison. Targets
(issue 11, one subscriber): >= 0.8x req/s, <= 2x CPU. A single node: no
link to carry the messages to.

Each subscriber is a process that subscribes over a raw socket and reads
(and throws away) everything it receives, so it never falls behind.

It prints a table; nothing is asserted.

Usage: python benchmarks/bench_publish.py [--requests N] [--runs N]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time

from bench_vs_redis import HOST, ConstDBServer, RedisServer
from benchlib import bench_rps_cpu

PUBLISH = ["PUBLISH", "ch", "hello-message"]

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


def run(srv, pipeline: int, n: int, command: list[str] = PUBLISH) -> tuple[float, float]:
    """(req/s, server CPU us per request)."""
    return bench_rps_cpu(srv, pipeline, n, command)


def median(xs: list[float]) -> float:
    return sorted(xs)[len(xs) // 2]


def measure(servers, runs: int, n: int, command: list[str]) -> dict[str, tuple]:
    """name -> (req/s at -P 1, (req/s, CPU) at -P 16), each the median of
    runs, the servers taking turns so that both see the same load."""
    p1: dict[str, list] = {s.name: [] for s in servers}
    p16: dict[str, list] = {s.name: [] for s in servers}
    for srv in servers:
        run(srv, 1, 5_000, command)  # warm-up
    time.sleep(0.2)
    for _ in range(runs):
        for srv in servers:
            p1[srv.name].append(run(srv, 1, n, command))
        for srv in servers:
            p16[srv.name].append(run(srv, 16, n * 4, command))
    return {
        name: (
            (median([x[0] for x in p1[name]]), median([x[1] for x in p1[name]])),
            (median([x[0] for x in p16[name]]), median([x[1] for x in p16[name]])),
        )
        for name in p1
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=100_000, help="requests per run (-P 16: 4x)")
    ap.add_argument("--runs", type=int, default=3, help="runs per measure (the median is shown)")
    args = ap.parse_args()
    res: dict[tuple[str, object], tuple] = {}
    with tempfile.TemporaryDirectory() as tmp:
        servers = [ConstDBServer(tmp).start(), RedisServer(tmp).start()]
        try:
            for srv in servers:
                subprocess.run(
                    ["redis-cli", "-h", HOST, "-p", str(srv.port), "SET", "k", "v"],
                    check=True,
                    capture_output=True,
                )
            got = measure(servers, args.runs, args.requests, ["GET", "k"])
            for name, v in got.items():
                res[(name, "GET")] = v
            for nsub in (0, 1, 10):
                subs = [p for srv in servers for p in subscribers(srv.port, nsub)]
                try:
                    got = measure(servers, args.runs, args.requests, PUBLISH)
                finally:
                    for p in subs:
                        p.kill()
                        p.wait()
                for name, v in got.items():
                    res[(name, nsub)] = v
        finally:
            for srv in servers:
                srv.stop()
    print(f"PUBLISH ch hello-message, 50 clients, median of {args.runs} runs")
    print("(GET k: the cost of a command that looks one thing up and answers)")
    print(f"{'subscribers':12}{'measure':22}{'ConstDB':>12}{'Redis':>12}{'ratio':>8}")
    for nsub in ("GET", 0, 1, 10):
        c, r = res[("ConstDB", nsub)], res[("Redis", nsub)]
        rows = [
            ("req/s at -P 1", c[0][0], r[0][0], "%12.0f"),
            ("CPU us/req at -P 1", c[0][1], r[0][1], "%12.2f"),
            ("req/s at -P 16", c[1][0], r[1][0], "%12.0f"),
            ("CPU us/req at -P 16", c[1][1], r[1][1], "%12.2f"),
        ]
        for name, cv, rv, fmt in rows:
            print(f"{nsub!s:<12}{name:22}{fmt % cv}{fmt % rv}{cv / rv:8.2f}")


if __name__ == "__main__":
    main()
