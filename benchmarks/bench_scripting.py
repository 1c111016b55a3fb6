#!/usr/bin/env python3
"""EVALSHA of a script making two calls (INCR then GET of its key), against
constdb-server and redis-server side by side: req/s at -P 1 and server CPU
microseconds per request at -P 16 (redis-benchmark, 50 clients), with the
ratios ConstDB / Redis. Targets (issue 11): >= 0.8x req/s, <= 2x CPU.

--ab adds a second constdb-server started with CONSTDB_LUA_PYTHON=1 (scripts
through lupa instead of Lua's C API), measured in the same run. The last row
is INCR of the same key at -P 1: what a request costs each server outside
scripts (one read, one write, one command).

It prints a table; nothing is asserted.

Usage: python benchmarks/bench_scripting.py [--requests N] [--ab]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from bench_vs_redis import ConstDBServer, RedisServer
from benchlib import bench_rps_cpu

SCRIPT = "redis.call('incr', KEYS[1]) return redis.call('get', KEYS[1])"


def run(srv, sha: str, pipeline: int, n: int) -> tuple[float, float]:
    """(req/s, server CPU us per request)."""
    return bench_rps_cpu(srv, pipeline, n, ["EVALSHA", sha, "1", "counter"])


def start_lupa_path(tmp: str) -> ConstDBServer:
    """A constdb-server whose scripts run through lupa (CONSTDB_LUA_PYTHON=1)."""
    srv = ConstDBServer(tmp)
    srv.name = "lupa path"
    os.environ["CONSTDB_LUA_PYTHON"] = "1"
    try:
        return srv.start()
    finally:
        del os.environ["CONSTDB_LUA_PYTHON"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=100_000, help="requests per run (-P 16: 4x)")
    ap.add_argument("--ab", action="store_true", help="also ConstDB with CONSTDB_LUA_PYTHON=1")
    args = ap.parse_args()
    os.environ.pop("CONSTDB_LUA_PYTHON", None)
    with tempfile.TemporaryDirectory() as tmp:
        servers = [ConstDBServer(tmp).start()]
        if args.ab:
            servers.append(start_lupa_path(tmp))
        servers.append(RedisServer(tmp).start())
        try:
            res = {}
            for srv in servers:
                sha = srv.client().script_load(SCRIPT)
                run(srv, sha, 1, 5_000)  # warm-up
                time.sleep(0.2)
                p1 = run(srv, sha, 1, args.requests)
                p16 = run(srv, sha, 16, args.requests * 4)
                incr = bench_rps_cpu(srv, 1, args.requests, ["INCR", "counter"])
                res[srv.name] = (p1, p16, incr)
        finally:
            for srv in servers:
                srv.stop()
    r = res.pop("Redis")
    print(f"EVALSHA ({SCRIPT!r}), 50 clients")
    print(f"{'':24}{'Redis':>12}" + "".join(f"{n:>12}{'ratio':>8}" for n in res))
    rows = (("req/s at -P 1", 0, 0, ".0f"), ("req/s at -P 16", 1, 0, ".0f"))
    rows += (("CPU us/req at -P 1", 0, 1, ".2f"), ("CPU us/req at -P 16", 1, 1, ".2f"))
    rows += (("INCR CPU us/req at -P 1", 2, 1, ".2f"),)
    for label, p, k, fmt in rows:
        line = f"{label:24}{r[p][k]:12{fmt}}"
        for c in res.values():
            line += f"{c[p][k]:12{fmt}}{c[p][k] / r[p][k]:8.2f}"
        print(line)


if __name__ == "__main__":
    main()
