"""Memory under eviction churn: ConstDB beside redis-server, the same
maxmemory and policy, written with fresh keys far past what fits (SETs of
100-byte values over a key space several times the capacity, redis-benchmark
-r), in rounds. After each round: used_memory, RSS, keys held, evicted keys
and (ConstDB) the tombstones waiting for GC. A cache's RSS must level off
however long the churn goes on.

Both servers keep their default snapshot schedule (ConstDB's `save` default,
Redis's `3600 1 300 100 60 10000`) in a directory of their own: a node alone
that has saved once takes its snapshot file's VV as its restart floor, which
is what made its tombstones wait for the next save (docs/crdt.md section 6,
"A node alone").

    PYTHONPATH=$PWD python3 benchmarks/bench_evict_churn.py [--maxmemory 64mb]
        [--rounds 6] [--per-round 600000] [--keyspace 2000000]
        [--policy allkeys-lru]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile

from bench_vs_redis import HOST, ConstDBServer, RedisServer, _sigterm, cleanup, need, rss_bytes


class DefaultConstDB(ConstDBServer):
    """ConstDB on its defaults (snapshots on), WARN logging."""

    def __init__(self, tmp: str):
        super().__init__(tmp)
        with open(self.config, "w") as f:
            f.write('log_level = "WARN"\n')


class DefaultRedis(RedisServer):
    """redis-server with its default save schedule."""

    def argv(self) -> list[str]:
        a = super().argv()
        i = a.index("--save")
        return a[:i] + a[i + 2 :]


def churn(srv, n: int, keyspace: int) -> None:
    subprocess.run(
        [need("redis-benchmark"), "-h", HOST, "-p", str(srv.port), "-t", "set", "-n", str(n)]
        + ["-r", str(keyspace), "-d", "100", "-P", "16", "-c", "20", "-q"],
        check=True,
        capture_output=True,
        timeout=600,
    )


def look(srv) -> dict:
    c = srv.client()
    m = c.info("everything")
    return {
        "used": m["used_memory"],
        "rss": rss_bytes(srv.pid),
        "keys": c.dbsize(),
        "evicted": m.get("evicted_keys", 0),
        "tombs": m.get("pending_tombstones", 0),
        "tomb_bytes": m.get("mem_tombstones", 0),
    }


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--maxmemory", default="64mb")
    ap.add_argument("--policy", default="allkeys-lru")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--per-round", type=int, default=600_000)
    ap.add_argument("--keyspace", type=int, default=2_000_000)
    a = ap.parse_args()
    signal.signal(signal.SIGTERM, _sigterm)
    rows: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory(prefix="churn-") as tmp:
        try:
            for cls in (DefaultRedis, DefaultConstDB):
                srv = cls(tmp).start()
                try:
                    c = srv.client()
                    c.config_set("maxmemory", a.maxmemory)
                    c.config_set("maxmemory-policy", a.policy)
                    base = look(srv)
                    out = rows[srv.name] = []
                    for r in range(a.rounds):
                        churn(srv, a.per_round, a.keyspace)
                        if r == 0:
                            c.save()  # (a file now exists, as after the first scheduled save)
                        row = look(srv)
                        row["rss_growth"] = row["rss"] - base["rss"]
                        out.append(row)
                        print(
                            f"{srv.name:8} round {r + 1}: used {row['used'] / 2**20:6.1f} MiB"
                            f"  RSS {row['rss'] / 2**20:6.1f} MiB  keys {row['keys']:7}"
                            f"  evicted {row['evicted']:8}  tombstones {row['tombs']:8}",
                            flush=True,
                        )
                finally:
                    srv.stop()
        finally:
            cleanup()
    print()
    print(
        f"maxmemory {a.maxmemory}, {a.policy}, {a.rounds} rounds of {a.per_round} SETs"
        f" (100-byte values, {a.keyspace} keys)"
    )
    print()
    print(
        "| round | Redis RSS MiB | ConstDB RSS MiB | RSS ratio | Redis keys | ConstDB keys |"
        " ConstDB tombstones |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in range(a.rounds):
        x, y = rows["Redis"][r], rows["ConstDB"][r]
        print(
            f"| {r + 1} | {x['rss'] / 2**20:.1f} | {y['rss'] / 2**20:.1f} |"
            f" {y['rss'] / x['rss']:.2f} | {x['keys']} | {y['keys']} | {y['tombs']} |"
        )
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    sys.exit(main())
