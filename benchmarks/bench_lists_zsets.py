#!/usr/bin/env python3
"""How list and sorted-set operations scale with the size of the key.

In process (no sockets, so the numbers are the data structures' own cost plus
command dispatch): for a key of 100 and of 100,000 elements it times LRANGE
0 99, LINDEX at both ends and in the middle, pushes and pops at both ends, a
queue and a stack that leave their popped elements as tombstones (no GC), the
remote application of an insert and of a removal by id, and the sorted-set
commands ZADD ZSCORE ZRANK ZRANGE 0 99 ZPOPMIN. Then, over the network, the
same LRANGE 0 99 against constdb-server and redis-server side by side.

It prints a table (microseconds per operation); nothing is asserted.

Usage: python benchmarks/bench_lists_zsets.py [--big N] [--no-net]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

from constdb._core.backlog import Backlog
from constdb._core.keyspace import Keyspace
from constdb._core.protocol import Client, Server

from constdb._core import cmd_keys, cmd_lists, cmd_strings, cmd_zsets


def node(node_id: int = 1):
    ks = Keyspace(node_id, Backlog(1 << 34))
    srv = Server(ks)
    for m in (cmd_strings, cmd_keys, cmd_lists, cmd_zsets):
        m.register(srv)
    return ks, Client(srv)


def per_op(fn, n: int) -> float:
    """Microseconds per call of fn over n calls (best of 3 rounds)."""
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - t) / n)
    return best * 1e6


def filled_list(size: int):
    ks, c = node()
    chunk = [b"v%d" % i for i in range(1000)]
    left = size
    while left > 0:
        c.run(b"RPUSH", b"l", *chunk[: min(1000, left)])
        left -= 1000
    return ks, c


def list_rows(size: int) -> dict[str, float]:
    ks, c = filled_list(size)
    run = c.run
    mid = str(size // 2).encode()
    rows = {
        "LRANGE l 0 99": per_op(lambda: run(b"LRANGE", b"l", b"0", b"99"), 2000),
        "LRANGE l -100 -1": per_op(lambda: run(b"LRANGE", b"l", b"-100", b"-1"), 2000),
        "LINDEX l 0": per_op(lambda: run(b"LINDEX", b"l", b"0"), 20000),
        "LINDEX l -1": per_op(lambda: run(b"LINDEX", b"l", b"-1"), 20000),
        "LINDEX l <middle>": per_op(lambda: run(b"LINDEX", b"l", mid), 20000),
        "LLEN l": per_op(lambda: run(b"LLEN", b"l"), 20000),
    }
    # pushes and pops keep the size: push then pop at the same end
    rows["RPUSH l x + RPOP l"] = (
        per_op(lambda: (run(b"RPUSH", b"l", b"x"), run(b"RPOP", b"l")), 20000) / 2
    )
    rows["LPUSH l x + LPOP l"] = (
        per_op(lambda: (run(b"LPUSH", b"l", b"x"), run(b"LPOP", b"l")), 20000) / 2
    )
    # a queue: RPUSH at the tail, LPOP at the head (tombstones pile up at the head)
    rows["queue RPUSH + LPOP (tombstones kept)"] = (
        per_op(lambda: (run(b"RPUSH", b"l", b"x"), run(b"LPOP", b"l")), 20000) / 2
    )
    rows["LRANGE l 0 99 after the queue ran"] = per_op(
        lambda: run(b"LRANGE", b"l", b"0", b"99"), 2000
    )
    o = ks.py_find(b"l", 1)
    rows["  (tombstones in the list)"] = float(len(o.ids) - o.n)

    # remote effects on a list of this size: another node inserts after an
    # element in the middle and removes an element, by id
    ks2, c2 = node(2)
    data, _, _ = ks.bl.read_from(0, 1 << 40)
    ks2.apply_records(1, data)
    ks3, c3 = node(3)
    ks3.apply_records(1, data)
    c3.run(b"LSET", b"l", mid, b"anchor")
    for i in range(2000):
        c3.run(b"LINSERT", b"l", b"AFTER", b"anchor", b"n%d" % i)
    for i in range(2000):
        c3.run(b"LREM", b"l", b"1", b"n%d" % i)
    recs, _, nrec = ks3.bl.read_from(ks2.get_vv().get(3, 0), 1 << 40)
    t = time.perf_counter()
    ks2.apply_records(3, recs)
    rows["remote LINSERT/LREM by id (per record)"] = (time.perf_counter() - t) / nrec * 1e6
    return rows


def zset_rows(size: int) -> dict[str, float]:
    ks, c = node()
    run = c.run
    for start in range(0, size, 1000):
        args = []
        for i in range(start, min(size, start + 1000)):
            args += [b"%d" % ((i * 7919) % size), b"m%d" % i]
        run(b"ZADD", b"z", *args)
    mid = b"m%d" % (size // 2)
    counter = [0]

    def zadd_new():
        counter[0] += 1
        run(b"ZADD", b"z", b"%d" % counter[0], b"n%d" % counter[0])

    rows = {
        "ZSCORE z m": per_op(lambda: run(b"ZSCORE", b"z", mid), 20000),
        "ZRANK z m": per_op(lambda: run(b"ZRANK", b"z", mid), 20000),
        "ZRANGE z 0 99": per_op(lambda: run(b"ZRANGE", b"z", b"0", b"99"), 2000),
        "ZRANGE z <middle> +99 WITHSCORES": per_op(
            lambda: run(
                b"ZRANGE", b"z", b"%d" % (size // 2), b"%d" % (size // 2 + 99), b"WITHSCORES"
            ),
            2000,
        ),
        "ZRANGEBYSCORE z <10 in the middle>": per_op(
            lambda: run(b"ZRANGEBYSCORE", b"z", b"%d" % (size // 2), b"%d" % (size // 2 + 9)), 5000
        ),
        "ZINCRBY z 1 m": per_op(lambda: run(b"ZINCRBY", b"z", b"1", mid), 20000),
        "ZADD z <new member>": per_op(zadd_new, 20000),
        "ZPOPMIN z": per_op(lambda: run(b"ZPOPMIN", b"z"), 20000),
    }
    return rows


def net_rows(size: int) -> dict[str, tuple[float, float]]:
    """LRANGE 0 99 and ZRANGE 0 99 over loopback, constdb vs redis."""
    import redis

    out: dict[str, tuple[float, float]] = {}
    work = tempfile.mkdtemp()
    procs = []
    try:
        ports = []
        for name in ("constdb", "redis"):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
            s.close()
            if name == "constdb":
                exe = os.path.join(os.path.dirname(sys.executable), "constdb-server")
                cmd = [
                    exe if os.path.exists(exe) else "constdb-server",
                    "--port",
                    str(port),
                    "--bind",
                    "127.0.0.1",
                    "--work-dir",
                    os.path.join(work, "c"),
                ]
                os.makedirs(os.path.join(work, "c"))
            else:
                cmd = [
                    shutil.which("redis-server"),
                    "--port",
                    str(port),
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    work,
                ]
            procs.append(
                subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            )
            ports.append(port)
        clients = []
        for port in ports:
            cl = redis.Redis(port=port)
            deadline = time.monotonic() + 20
            while True:
                try:
                    cl.ping()
                    break
                except redis.ConnectionError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
            clients.append(cl)
        for cl in clients:
            p = cl.pipeline(transaction=False)
            for start in range(0, size, 1000):
                p.rpush("l", *[b"v%d" % i for i in range(start, min(size, start + 1000))])
                p.zadd("z", {b"m%d" % i: i for i in range(start, min(size, start + 1000))})
            p.execute()
        for label, cmd in (
            ("LRANGE l 0 99", ("LRANGE", "l", 0, 99)),
            ("ZRANGE z 0 99", ("ZRANGE", "z", 0, 99)),
        ):
            res = []
            for cl in clients:
                n = 2000
                best = float("inf")
                for _ in range(3):
                    p = cl.pipeline(transaction=False)
                    for _ in range(n):
                        p.execute_command(*cmd)
                    t = time.perf_counter()
                    p.execute()
                    best = min(best, (time.perf_counter() - t) / n * 1e6)
                res.append(best)
            out[label] = (res[0], res[1])
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
            p.wait(10)
        shutil.rmtree(work, ignore_errors=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--big", type=int, default=100_000)
    ap.add_argument("--no-net", action="store_true")
    args = ap.parse_args()
    sizes = [100, args.big]
    print(f"in process, microseconds per operation (best of 3), sizes {sizes[0]} and {sizes[1]}\n")
    for title, fn in (("list", list_rows), ("sorted set", zset_rows)):
        res = [fn(s) for s in sizes]
        print(f"| {title} | {sizes[0]} | {sizes[1]} |")
        print("|---|---:|---:|")
        for k in res[0]:
            print(f"| {k} | {res[0][k]:.2f} | {res[1][k]:.2f} |")
        print()
    if not args.no_net:
        print("over loopback (pipelined, microseconds per command), constdb vs redis-server 7.0\n")
        for size in sizes:
            res = net_rows(size)
            print(f"| size {size} | constdb | redis |")
            print("|---|---:|---:|")
            for k, (a, b) in res.items():
                print(f"| {k} | {a:.2f} | {b:.2f} |")
            print()


if __name__ == "__main__":
    main()
