#!/usr/bin/env python3
"""SET and GET in db 0 and in db 3 (redis-benchmark --dbnum), and RANDOMKEY
from one db and from two dbs at once, ConstDB beside redis-server in one run.

A write outside db identity 0 costs ConstDB one OP_SELECT marker record per
command in its replication stream (docs/replication.md section 3.1), and a
client's db is one pointer compare per command: SET/GET show both against
db 0 and against Redis. RANDOMKEY draws from a list of the db's keys kept
per db (Keyspace.use): "RANDOMKEY 0+3" runs two redis-benchmarks at once,
one in db 0 and one in db 3 (--keys keys in each), so the server alternates
between the dbs all the time. Reported: req/s and the server's CPU per
request (utime+stime from /proc), median of --repeat runs, and the ratios
ConstDB / Redis. Every process is stopped by pid.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile

from bench_vs_redis import ConstDBServer, RedisServer, cleanup, log, need
from benchlib import bench_rps_cpu, benchmark_argv, load_keys, run_cpu


def one_run(srv, test: str, db: int, n: int, pipeline: int) -> tuple[float, float]:
    command = ["SET", "key:__rand_int__", "xxx"] if test == "set" else ["GET", "key:__rand_int__"]
    return bench_rps_cpu(srv, pipeline, n, command, ("-r", "100000", "--dbnum", str(db)))


def randomkey_run(srv, dbs: tuple[int, ...], n: int, pipeline: int) -> tuple[float, float]:
    """RANDOMKEY from each db in dbs at once (50 clients in all, n requests each)."""
    per = 50 // len(dbs)
    argvs = [
        benchmark_argv(srv, pipeline, n, per) + ["-q", "--dbnum", str(db), "RANDOMKEY"]
        for db in dbs
    ]
    elapsed, cpu, _ = run_cpu(srv, argvs)
    total = n * len(dbs)
    return total / elapsed, cpu * 1e6 / total


def median_of(runs: list[tuple[float, float]]) -> tuple[float, float]:
    return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=200000, help="requests per run")
    ap.add_argument("-P", type=int, default=16, help="pipeline depth")
    ap.add_argument("--keys", type=int, default=100000, help="keys in db 0 and in db 3 (RANDOMKEY)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--only-randomkey", action="store_true", help="skip SET and GET")
    args = ap.parse_args()
    need("redis-benchmark")
    rows: dict[tuple[str, str, str], tuple[float, float]] = {}
    tests = [] if args.only_randomkey else [(t, db) for t in ("set", "get") for db in (0, 3)]
    with tempfile.TemporaryDirectory() as tmp:
        servers = [ConstDBServer(tmp), RedisServer(tmp)]
        try:
            for s in servers:
                s.start()
            for test, db in tests:
                for s in servers:
                    runs = [one_run(s, test, db, args.n, args.P) for _ in range(args.repeat)]
                    rows[(s.name, test.upper(), str(db))] = median_of(runs)
                    log(f"{s.name} {test} db{db}: {rows[(s.name, test.upper(), str(db))]}")
            for s in servers:
                s.client().flushall()
                load_keys(s.port, args.keys, 0)
                load_keys(s.port, args.keys, 3)
            for dbs in ((3,), (0, 3)):
                label = "+".join(map(str, dbs))
                for s in servers:
                    runs = [randomkey_run(s, dbs, args.n, args.P) for _ in range(args.repeat)]
                    rows[(s.name, "RANDOMKEY", label)] = median_of(runs)
                    log(f"{s.name} RANDOMKEY db {label}: {rows[(s.name, 'RANDOMKEY', label)]}")
        finally:
            for s in servers:
                s.stop()
            cleanup()
    print(f"\nBy db, n={args.n}, -c 50, -P {args.P}, median of {args.repeat}\n")
    print(
        "| command | db | ConstDB req/s | Redis req/s | ratio | ConstDB CPU us | Redis CPU us | ratio |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, test, db in rows:
        if name != "ConstDB":
            continue
        cr, cc = rows[("ConstDB", test, db)]
        rr, rc = rows[("Redis", test, db)]
        ratio = f"{cc / rc:.2f}" if rc else "-"  # (a short run may read 0 ticks)
        print(
            f"| {test} | {db} | {cr:,.0f} | {rr:,.0f} | {cr / rr:.2f} "
            f"| {cc:.2f} | {rc:.2f} | {ratio} |"
        )


if __name__ == "__main__":
    sys.exit(main())
