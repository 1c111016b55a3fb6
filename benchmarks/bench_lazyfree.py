"""DEL vs UNLINK of a big set, ConstDB beside redis-server: the time the
command takes (the event loop is blocked for that long) and, for UNLINK, how
long until the memory is freed in slices (ConstDB: lazyfree_pending_objects
back to 0).

    PYTHONPATH=$PWD python3 benchmarks/bench_lazyfree.py [--members 1000000]
"""

from __future__ import annotations

import argparse
import tempfile
import time

from bench_vs_redis import ConstDBServer, RedisServer, cleanup


def load(c, key: str, n: int) -> None:
    for start in range(0, n, 10_000):
        c.sadd(key, *[b"member:%d" % i for i in range(start, min(n, start + 10_000))])


def timed(c, *args) -> float:
    t0 = time.perf_counter()
    c.execute_command(*args)
    return (time.perf_counter() - t0) * 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--members", type=int, default=1_000_000)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="bench-lazy-")
    try:
        print(
            f"{a.members} members | DEL ms | UNLINK ms | freed after UNLINK ms | PING during freeing ms (max)"
        )
        for cls in (RedisServer, ConstDBServer):
            srv = cls(tmp).start()
            try:
                c = srv.client()
                load(c, "s1", a.members)
                d = timed(c, "DEL", "s1")
                load(c, "s2", a.members)
                u = timed(c, "UNLINK", "s2")
                t0 = time.perf_counter()
                worst = 0.0
                while True:
                    p = timed(c, "PING")
                    worst = max(worst, p)
                    if int(c.info("memory").get("lazyfree_pending_objects", 0)) == 0:
                        break
                freed = (time.perf_counter() - t0) * 1000
                print(f"{srv.name:8} | {d:7.1f} | {u:7.1f} | {freed:7.1f} | {worst:6.2f}")
            finally:
                srv.stop()
    finally:
        cleanup()


if __name__ == "__main__":
    main()
