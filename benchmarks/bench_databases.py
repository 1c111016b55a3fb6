#!/usr/bin/env python3
"""SET and GET in db 0 and in db 3 (redis-benchmark --dbnum), ConstDB beside
redis-server in one run.

A write outside db identity 0 costs ConstDB one OP_SELECT marker record per
command in its replication stream (docs/replication.md section 3.1), and a
client's db is one pointer compare per command: this shows both against
db 0 and against Redis. Reported: req/s and the server's CPU per request
(utime+stime from /proc), median of --repeat runs, and the ratios
ConstDB / Redis. Every process is stopped by pid.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time

from bench_vs_redis import (
    CLK_TCK,
    ConstDBServer,
    RedisServer,
    cleanup,
    cpu_ticks,
    log,
    need,
)
from benchlib import HOST


def one_run(srv, test: str, db: int, n: int, pipeline: int) -> tuple[float, float]:
    tool = need("redis-benchmark")
    u0, s0 = cpu_ticks(srv.pid)
    t0 = time.monotonic()
    subprocess.run(
        [
            tool,
            "-h",
            HOST,
            "-p",
            str(srv.port),
            "-n",
            str(n),
            "-q",
            "-t",
            test,
            "-P",
            str(pipeline),
            "-c",
            "50",
            "--dbnum",
            str(db),
            "-r",
            "100000",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
        timeout=600,
    )
    elapsed = time.monotonic() - t0
    u1, s1 = cpu_ticks(srv.pid)
    return n / elapsed, (u1 - u0 + s1 - s0) / CLK_TCK * 1e6 / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=200000, help="requests per run")
    ap.add_argument("-P", type=int, default=16, help="pipeline depth")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    rows: dict[tuple[str, str, int], tuple[float, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        servers = [ConstDBServer(tmp), RedisServer(tmp)]
        try:
            for s in servers:
                s.start()
            for test in ("set", "get"):
                for db in (0, 3):
                    for s in servers:
                        runs = [one_run(s, test, db, args.n, args.P) for _ in range(args.repeat)]
                        rows[(s.name, test, db)] = (
                            statistics.median(r[0] for r in runs),
                            statistics.median(r[1] for r in runs),
                        )
                        log(f"{s.name} {test} db{db}: {rows[(s.name, test, db)][0]:,.0f} req/s")
        finally:
            for s in servers:
                s.stop()
            cleanup()
    print(f"\nSET/GET by db, n={args.n}, -c 50, -P {args.P}, median of {args.repeat}\n")
    print(
        "| command | db | ConstDB req/s | Redis req/s | ratio | ConstDB CPU us | Redis CPU us | ratio |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for test in ("set", "get"):
        for db in (0, 3):
            cr, cc = rows[("ConstDB", test, db)]
            rr, rc = rows[("Redis", test, db)]
            print(
                f"| {test.upper()} | {db} | {cr:,.0f} | {rr:,.0f} | {cr / rr:.2f} "
                f"| {cc:.2f} | {rc:.2f} | {cc / rc:.2f} |"
            )


if __name__ == "__main__":
    sys.exit(main())
