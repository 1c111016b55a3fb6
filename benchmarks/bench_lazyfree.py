"""DEL vs UNLINK of a big set, hash, sorted set and list, ConstDB beside
redis-server: the time the command takes (the event loop is blocked for
that long) and, for UNLINK, how long until the memory is freed in slices
(lazyfree_pending_objects back to 0) with the worst PING meanwhile. For
ConstDB's sorted sets, the removed members stay as removal state until the
GC drops them (docs/crdt.md section 6): the last two columns go on until
INFO's gc_dropped_tombstones has counted both deletes' members and the freeing
is done (ConstDB alone: its stable point follows its own writes).

    PYTHONPATH=$PWD python3 benchmarks/bench_lazyfree.py [--members 1000000]
        [--types set,hash,zset,list]
"""

from __future__ import annotations

import argparse
import tempfile
import time

from bench_vs_redis import ConstDBServer, RedisServer, cleanup


def load(c, typ: str, key: str, n: int) -> None:
    for start in range(0, n, 10_000):
        ms = [b"member:%d" % i for i in range(start, min(n, start + 10_000))]
        if typ == "set":
            c.sadd(key, *ms)
        elif typ == "hash":
            c.hset(key, mapping={m: b"v" for m in ms})
        elif typ == "zset":
            c.zadd(key, {m: i for i, m in enumerate(ms, start)})
        else:
            c.rpush(key, *ms)


def gc_dropped(c) -> int:
    return int(c.info("replication").get("gc_dropped_tombstones", 0))


def timed(c, *args) -> float:
    t0 = time.perf_counter()
    c.execute_command(*args)
    return (time.perf_counter() - t0) * 1000


def gc_free(c, n: int, limit: float = 30.0) -> None:
    """ConstDB keeps a deleted list's elements as tombstones (anchors for
    concurrent inserts) until they are causally stable; the GC then frees
    them. Wait for the GC to drop n of them (INFO gc_dropped_tombstones),
    with the worst PING meanwhile."""

    def dropped() -> int:
        return int(c.info("all").get("gc_dropped_tombstones", 0))

    t0 = time.perf_counter()
    worst = 0.0
    while dropped() < n and time.perf_counter() - t0 < limit:
        worst = max(worst, timed(c, "PING"))
    ms = (time.perf_counter() - t0) * 1000
    print(
        f"list  | ConstDB GC of both deleted lists: {dropped()} of {n} tombstones dropped"
        f" in {ms:.1f} ms | worst PING meanwhile {worst:.2f} ms",
        flush=True,
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--members", type=int, default=1_000_000)
    ap.add_argument("--types", default="set,hash,zset,list")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="bench-lazy-")
    try:
        print(
            f"{a.members} elements | server | DEL ms | UNLINK ms | freed after UNLINK ms"
            " | PING during freeing ms (max) | GC done after UNLINK ms | PING until GC ms (max)"
        )
        for typ in a.types.split(","):
            for cls in (RedisServer, ConstDBServer):
                srv = cls(tmp).start()
                try:
                    c = srv.client()
                    gc0 = gc_dropped(c) if srv.name == "ConstDB" else 0
                    load(c, typ, "k1", a.members)
                    d = timed(c, "DEL", "k1")
                    load(c, typ, "k2", a.members)
                    u = timed(c, "UNLINK", "k2")
                    t0 = time.perf_counter()
                    worst = 0.0
                    while True:
                        worst = max(worst, timed(c, "PING"))
                        if int(c.info("memory").get("lazyfree_pending_objects", 0)) == 0:
                            break
                    freed = (time.perf_counter() - t0) * 1000
                    gc_ms, gc_worst = "", ""
                    if srv.name == "ConstDB" and typ == "zset":
                        w2 = worst
                        while time.perf_counter() - t0 < 120:
                            # (every reply timed: a stall during an INFO counts too)
                            w2 = max(w2, timed(c, "PING"))
                            t1 = time.perf_counter()
                            dropped = gc_dropped(c)
                            t2 = time.perf_counter()
                            pending = int(c.info("memory").get("lazyfree_pending_objects", 0))
                            t3 = time.perf_counter()
                            w2 = max(w2, (t2 - t1) * 1000, (t3 - t2) * 1000)
                            if dropped >= gc0 + 2 * a.members and not pending:
                                break
                        gc_ms = f"{(time.perf_counter() - t0) * 1000:7.1f}"
                        gc_worst = f"{w2:6.2f}"
                    print(
                        f"{typ:5} | {srv.name:8} | {d:7.1f} | {u:7.1f} | {freed:7.1f} | {worst:6.2f}"
                        f" | {gc_ms} | {gc_worst}",
                        flush=True,
                    )
                    if typ == "list" and cls is ConstDBServer:
                        gc_free(c, 2 * a.members)
                finally:
                    srv.stop()
    finally:
        cleanup()


if __name__ == "__main__":
    main()
