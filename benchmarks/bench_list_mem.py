"""Bytes per list element, ConstDB beside redis-server in one run.

One client pushes N small elements (3 bytes) to one key, one element per
command, pipelined (LPUSH, then on fresh servers RPUSH); also N elements over
100 keys round robin (RPUSH). Prints the RSS growth per element of both
servers and their ratio; for ConstDB also the growth without its replication
backlog (INFO mem_replication_backlog) and its own count (used_memory).

    PYTHONPATH=$PWD python3 benchmarks/bench_list_mem.py [--n 1000000]
"""

from __future__ import annotations

import argparse
import tempfile

import redis
from bench_vs_redis import ConstDBServer, RedisServer, info_field, settle_rss

TARGET_RATIO = 3.0  # ConstDB bytes per element <= 3x Redis's (issue 10)


def fill(r: redis.Redis, cmd: str, n: int, keys: int) -> None:
    p = r.pipeline(transaction=False)
    for i in range(n):
        p.execute_command(cmd, f"list{i % keys}" if keys > 1 else "list", b"abc")
        if i % 1000 == 999:
            p.execute()
    p.execute()


def backlog(c: redis.Redis) -> int:
    for name in ("mem_replication_backlog", "mem_backlog"):
        v = info_field(c, "memory", name)
        if v is not None:
            return v
    return 0


def measure(cls, tmp: str, cmd: str, n: int, keys: int) -> dict:
    srv = cls(tmp).start()
    try:
        c = srv.client()
        rss0, used0, bl0 = settle_rss(srv.pid), info_field(c, "memory", "used_memory"), backlog(c)
        fill(c, cmd, n, keys)
        total = sum(c.llen(f"list{i}" if keys > 1 else "list") for i in range(keys))
        if total != n:
            raise RuntimeError(f"{srv.name}: {total} elements, want {n}")
        rss1, used1, bl1 = (
            settle_rss(srv.pid, 1.0),
            info_field(c, "memory", "used_memory"),
            backlog(c),
        )
        return {
            "rss": (rss1 - rss0) / n,
            "rss_ex_backlog": (rss1 - rss0 - (bl1 - bl0)) / n,
            "used": (used1 - used0) / n,
        }
    finally:
        srv.stop()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1_000_000)
    a = ap.parse_args()
    rows = [
        ("LPUSH, one key", "LPUSH", 1),
        ("RPUSH, one key", "RPUSH", 1),
        ("RPUSH, 100 keys", "RPUSH", 100),
    ]
    print(f"{a.n:,d} elements of 3 bytes, one client, one element a command, pipelined")
    print(
        "| workload | ConstDB RSS B/elem | ConstDB w/o backlog | ConstDB used_memory B/elem"
        " | Redis RSS B/elem | ratio (w/o backlog) |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        for name, cmd, keys in rows:
            a_ = measure(ConstDBServer, tmp, cmd, a.n, keys)
            b_ = measure(RedisServer, tmp, cmd, a.n, keys)
            ratio = a_["rss_ex_backlog"] / max(b_["rss"], 0.1)
            ok = ok and ratio <= TARGET_RATIO
            print(
                f"| {name} | {a_['rss']:.1f} | {a_['rss_ex_backlog']:.1f} | {a_['used']:.1f}"
                f" | {b_['rss']:.1f} | {ratio:.2f} |"
            )
    print(f"{'met' if ok else 'MISS'}: ConstDB bytes per element <= {TARGET_RATIO}x Redis's")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
