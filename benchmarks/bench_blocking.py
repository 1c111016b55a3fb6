#!/usr/bin/env python3
"""A job queue on one key: consumers in BLPOP, producers in RPUSH, ConstDB
beside redis-server in one run.

For each server: one redis-benchmark runs `BLPOP q 0` (-c consumers) while
another runs `RPUSH q job` (-c producers), both -n N at -P 1; the pair ends
when every job was popped. Most BLPOPs find the list empty and wait, so this
measures the blocked-client path: block, a push that makes the key ready,
serve the first waiter, resume its connection. Reported: jobs/s over the
whole run and the server's CPU per job (utime+stime from /proc), median of
--repeat runs, and the ratios ConstDB / Redis. Every process is stopped by pid.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile

from bench_vs_redis import ConstDBServer, RedisServer, cleanup, log, need
from benchlib import benchmark_argv, run_cpu


def one_run(srv, n: int, consumers: int, producers: int) -> tuple[float, float]:
    c = srv.client()
    c.delete("q")
    elapsed, cpu, _ = run_cpu(
        srv,
        [
            benchmark_argv(srv, 1, n, consumers) + ["-q", "BLPOP", "q", "0"],
            benchmark_argv(srv, 1, n, producers) + ["-q", "RPUSH", "q", "job"],
        ],
        timeout=300,
    )
    left = c.llen("q")
    if left:
        raise RuntimeError(f"{srv.name}: {left} jobs left in the queue")
    return n / elapsed, cpu * 1e6 / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=100000, help="jobs per run")
    ap.add_argument("--consumers", type=int, default=25)
    ap.add_argument("--producers", type=int, default=25)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    need("redis-benchmark")
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        servers = [ConstDBServer(tmp), RedisServer(tmp)]
        try:
            for s in servers:
                s.start()
            for s in servers:
                runs = [
                    one_run(s, args.n, args.consumers, args.producers) for _ in range(args.repeat)
                ]
                rows[s.name] = (
                    statistics.median(r[0] for r in runs),
                    statistics.median(r[1] for r in runs),
                )
                log(f"{s.name}: {rows[s.name][0]:,.0f} jobs/s, {rows[s.name][1]:.2f} us CPU/job")
        finally:
            for s in servers:
                s.stop()
            cleanup()
    (cr, cc), (rr, rc) = rows["ConstDB"], rows["Redis"]
    print(
        f"\nBLPOP/RPUSH queue, n={args.n}, {args.consumers} consumers, "
        f"{args.producers} producers, -P 1, median of {args.repeat}\n"
    )
    print("| server | jobs/s | CPU us/job |")
    print("|---|---:|---:|")
    print(f"| ConstDB | {cr:,.0f} | {cc:.2f} |")
    print(f"| Redis | {rr:,.0f} | {rc:.2f} |")
    print(f"| ratio | {cr / rr:.2f} | {cc / rc:.2f} |")


if __name__ == "__main__":
    sys.exit(main())
