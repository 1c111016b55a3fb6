#!/usr/bin/env python3
"""EVALSHA of a script making two calls (INCR then GET of its key), against
constdb-server and redis-server side by side: req/s at -P 1 and server CPU
microseconds per request at -P 16 (redis-benchmark, 50 clients), with the
ratios ConstDB / Redis. Targets (issue 11): >= 0.8x req/s, <= 2x CPU.

It prints a table; nothing is asserted.

Usage: python benchmarks/bench_scripting.py [--requests N]
"""

from __future__ import annotations

import argparse
import tempfile
import time

from bench_vs_redis import ConstDBServer, RedisServer
from benchlib import bench_rps_cpu

SCRIPT = "redis.call('incr', KEYS[1]) return redis.call('get', KEYS[1])"


def run(srv, sha: str, pipeline: int, n: int) -> tuple[float, float]:
    """(req/s, server CPU us per request)."""
    return bench_rps_cpu(srv, pipeline, n, ["EVALSHA", sha, "1", "counter"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=100_000, help="requests per run (-P 16: 4x)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        servers = [ConstDBServer(tmp).start(), RedisServer(tmp).start()]
        try:
            res = {}
            for srv in servers:
                sha = srv.client().script_load(SCRIPT)
                run(srv, sha, 1, 5_000)  # warm-up
                time.sleep(0.2)
                p1 = run(srv, sha, 1, args.requests)
                p16 = run(srv, sha, 16, args.requests * 4)
                res[srv.name] = (p1, p16)
        finally:
            for srv in servers:
                srv.stop()
    c, r = res["ConstDB"], res["Redis"]
    print(f"EVALSHA ({SCRIPT!r}), 50 clients")
    print(f"{'':24}{'ConstDB':>12}{'Redis':>12}{'ratio':>8}")
    print(f"{'req/s at -P 1':24}{c[0][0]:12.0f}{r[0][0]:12.0f}{c[0][0] / r[0][0]:8.2f}")
    print(f"{'req/s at -P 16':24}{c[1][0]:12.0f}{r[1][0]:12.0f}{c[1][0] / r[1][0]:8.2f}")
    print(f"{'CPU us/req at -P 16':24}{c[1][1]:12.2f}{r[1][1]:12.2f}{c[1][1] / r[1][1]:8.2f}")


if __name__ == "__main__":
    main()
