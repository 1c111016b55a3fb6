"""Checks used_memory (ConstDB's own estimate) against the RSS growth the
same writes cause: per type, N keys (or N elements of a few keys) written to a
fresh constdb-server; prints bytes per entry by RSS and by used_memory, both
without the replication backlog's growth (INFO mem_replication_backlog: up
to 1 MiB on a node with no peer), which is not the entries'. List elements
cost a few bytes each, so their row writes --list-factor times more entries
(the RSS's slack, the backlog and a fresh process's heap moves are fixed sizes).
With --redis, the same writes to a fresh redis-server too: its bytes per
entry by RSS and ConstDB's ratio to it.

    PYTHONPATH=$PWD python3 benchmarks/mem_calibrate.py [--n 200000] [--kinds list,...] [--redis]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import redis
from bench_vs_redis import ConstDBServer, RedisServer, settle_rss


def info(r: redis.Redis) -> tuple[int, int]:
    """used_memory and the replication backlog's bytes."""
    m = r.info("memory")
    return m["used_memory"], m.get("mem_replication_backlog", m.get("mem_backlog", 0))


def fill(r: redis.Redis, kind: str, n: int) -> None:
    p = r.pipeline(transaction=False)
    for i in range(n):
        if kind == "string":
            p.set(f"key:{i:010d}", b"x" * 100)
        elif kind == "string-small":
            p.set(f"k{i}", b"v")
        elif kind == "set":
            p.sadd(f"s{i % 100}", f"member:{i:010d}")
        elif kind == "hash":
            p.hset(f"h{i % 100}", f"field:{i:010d}", b"v" * 10)
        elif kind == "zset":
            p.zadd(f"z{i % 100}", {f"member:{i:010d}": i})
        elif kind == "list":
            p.rpush(f"l{i % 100}", b"abc")
        if i % 1000 == 999:
            p.execute()
    p.execute()


def wait_tables(r: redis.Redis, limit: float = 30.0) -> None:
    """Until ConstDB's key tables are done resizing (INFO mem_key_tables
    still for a second: a resize counts and holds both slot arrays while it
    drains, a step each cron tick); at once for redis-server."""
    end = time.monotonic() + limit
    last = r.info("memory").get("mem_key_tables")
    while last is not None and time.monotonic() < end:
        time.sleep(1.0)
        now = r.info("memory").get("mem_key_tables")
        if now == last:
            return
        last = now


def rss_per_entry(node, kind: str, n: int) -> tuple[float, float]:
    """(RSS growth, used_memory growth) per entry of n writes of kind, once
    the key tables are done resizing."""
    r = node.client()
    rss0, (used0, bl0) = settle_rss(node.pid), info(r)
    fill(r, kind, n)
    wait_tables(r)
    rss1, (used1, bl1) = settle_rss(node.pid), info(r)
    bl = bl1 - bl0
    return (rss1 - rss0 - bl) / n, (used1 - used0 - bl) / n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--redis", action="store_true", help="the same writes to redis-server")
    ap.add_argument("--list-factor", type=int, default=10)
    ap.add_argument("--kinds", default="string,string-small,set,hash,zset,list")
    a = ap.parse_args()
    head = f"{'type':14} {'RSS B/entry':>12} {'used B/entry':>13} {'used/RSS':>9}"
    if a.redis:
        head += f" {'Redis RSS B/entry':>18} {'vs Redis':>9}"
    print(head)
    for kind in a.kinds.split(","):
        n = a.n * (a.list_factor if kind == "list" else 1)
        with tempfile.TemporaryDirectory() as d:
            node = ConstDBServer(d).start()
            try:
                dr, du = rss_per_entry(node, kind, n)
            finally:
                node.stop()
            line = f"{kind:14} {dr:12.1f} {du:13.1f} {du / dr:9.2f}"
            if a.redis:
                rs = RedisServer(d).start()
                try:
                    rr, _ = rss_per_entry(rs, kind, n)
                finally:
                    rs.stop()
                line += f" {rr:18.1f} {dr / rr:9.2f}"
            print(line, flush=True)


if __name__ == "__main__":
    main()
