#!/usr/bin/env python3
"""SORT of a 1000-element list: server CPU per request, ConstDB beside redis-server.

Both servers get the same list `L` of 1000 random integers (and weight keys
`w_<n>` for the BY case); `redis-benchmark -c 50 -P 16 -n N <command>` runs each
command against each server in turn (alternating which goes first, --repeat
times) and the server's utime+stime (/proc/PID/stat) around each run gives
microseconds of server CPU per request. Prints a table with the ratio
ConstDB / Redis (median of the repeats); nothing is asserted.

Usage: python benchmarks/bench_sort.py [--n 20000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile

from bench_vs_redis import ConstDBServer, RedisServer, cleanup, cpu_ticks, need
from benchlib import HOST

CLK = os.sysconf("SC_CLK_TCK")

COMMANDS = [
    ["SORT", "L"],
    ["SORT", "L", "LIMIT", "0", "10"],
    ["SORT", "L", "DESC"],
    ["SORT", "L", "ALPHA"],
    ["SORT", "L", "BY", "w_*"],
    ["SORT", "L", "BY", "nosort", "LIMIT", "0", "100"],
]


def fill(srv, rnd_seed: int = 7) -> None:
    rnd = random.Random(rnd_seed)
    vals = [str(rnd.randint(-(10**6), 10**6)) for _ in range(1000)]
    c = srv.client()
    c.delete("L")
    c.rpush("L", *vals)
    c.mset({f"w_{v}": str(rnd.randint(0, 10**4)) for v in vals})
    c.close()


def cpu_per_request(srv, cmd: list[str], n: int) -> float:
    u0, s0 = cpu_ticks(srv.pid)
    subprocess.run(
        [need("redis-benchmark"), "-h", HOST, "-p", str(srv.port), "-c", "50", "-P", "16"]
        + ["-n", str(n), "-q", *cmd],
        check=True,
        capture_output=True,
    )
    u1, s1 = cpu_ticks(srv.pid)
    return ((u1 - u0) + (s1 - s0)) / CLK / n * 1e6


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20000, help="requests per run")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="bench-sort-")
    try:
        servers = [ConstDBServer(tmp).start(), RedisServer(tmp).start()]
        for s in servers:
            fill(s)
        print(f"SORT of a 1000-element list, redis-benchmark -c 50 -P 16 -n {args.n}")
        print("| command | ConstDB µs CPU/req | Redis µs CPU/req | ratio |")
        print("|---|---:|---:|---:|")
        for cmd in COMMANDS:
            got: dict[str, list[float]] = {"ConstDB": [], "Redis": []}
            for i in range(args.repeat):
                order = servers if i % 2 == 0 else servers[::-1]
                for s in order:
                    got[s.name].append(cpu_per_request(s, cmd, args.n))
            c, r = statistics.median(got["ConstDB"]), statistics.median(got["Redis"])
            print(f"| {' '.join(cmd)} | {c:.1f} | {r:.1f} | {c / r:.2f} |")
        return 0
    finally:
        cleanup()


if __name__ == "__main__":
    sys.exit(main())
