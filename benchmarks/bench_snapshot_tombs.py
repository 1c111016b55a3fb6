#!/usr/bin/env python3
"""Snapshot load of deleted collections, in process: a sorted set and a list
of N members each, deleted (their removed members kept until GC, as a group
keeps them until every node has seen the delete), dumped, then loaded into
an empty keyspace. Prints the load time, the memory the loaded tombstones
hold (tracemalloc: bytes and blocks), the time of a GC pass that can drop
nothing yet (the removals not stable) and of the one that drops them.

Redis keeps nothing of a deleted key, so there is no Redis column: run it
with PYTHONPATH at two checkouts to compare the code (before/after).

Usage: python benchmarks/bench_snapshot_tombs.py [--members N]
"""

from __future__ import annotations

import argparse
import time
import tracemalloc

from constdb._core.backlog import Backlog
from constdb._core.keyspace import Keyspace, gc_collections
from constdb._core.protocol import Client, Server

from constdb._core import cmd_keys, cmd_lists, cmd_zsets, snapshot


def node(node_id: int):
    bl = Backlog()
    ks = Keyspace(node_id, bl)
    srv = Server(ks)
    for mod in (cmd_keys, cmd_lists, cmd_zsets):
        mod.register(srv)
    return ks, Client(srv)


def build(kind: str, n: int) -> bytes:
    ks, c = node(1)
    step = 10_000
    for i in range(0, n, step):
        if kind == "zset":
            args = [b"ZADD", b"k"]
            for j in range(i, min(n, i + step)):
                args += [b"%d" % j, b"member:%d" % j]
        else:
            args = [b"RPUSH", b"k"] + [b"e%d" % j for j in range(i, min(n, i + step))]
        c.run(*args)
    if kind == "list":
        # middle removals too: LREM leaves tombstones that are objects
        c.run(b"LREM", b"k", b"0", b"e7")
    assert c.run(b"DEL", b"k") == b":1\r\n"
    return snapshot.dump(ks)


def measure(kind: str, n: int) -> dict:
    data = build(kind, n)
    t0 = time.perf_counter()
    ks, _c = node(2)
    snapshot.merge(ks, snapshot.parse(data))
    load = time.perf_counter() - t0
    del ks, _c
    # again, traced: what the loaded keyspace holds
    tracemalloc.start()
    ks, _c = node(2)
    snapshot.merge(ks, snapshot.parse(data))
    cur, _peak = tracemalloc.get_traced_memory()
    blocks = sum(st.count for st in tracemalloc.take_snapshot().statistics("filename"))
    tracemalloc.stop()
    t0 = time.perf_counter()
    kept = gc_collections(ks, 0)
    gc_none = time.perf_counter() - t0
    t0 = time.perf_counter()
    dropped = gc_collections(ks, 1 << 63)
    gc_all = time.perf_counter() - t0
    assert kept == 0 and dropped >= n, (kept, dropped)
    return {
        "snapshot MB": len(data) / 1e6,
        "load ms": load * 1e3,
        "held MB": cur / 1e6,
        "blocks k": blocks / 1e3,
        "GC pass ms (none stable)": gc_none * 1e3,
        "GC ms (all stable)": gc_all * 1e3,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--members", type=int, default=200_000)
    a = ap.parse_args()
    print(f"{a.members} members, deleted, then a snapshot load ({snapshot.__file__})")
    for kind in ("zset", "list"):
        r = measure(kind, a.members)
        print(f"{kind:5} " + "  ".join(f"{k} {v:.1f}" for k, v in r.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
