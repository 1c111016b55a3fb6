#!/usr/bin/env python3
"""HyperLogLog beside redis-server: CPU per request and bytes per HLL.

Both servers run side by side (snapshots off). For each test redis-benchmark
runs `-c 50 -P 16` on one server, then the other, `--repeat` times; the
server's CPU time per request is read from /proc (user + system), and the
median is printed with the ratio ConstDB / Redis (pfcount2 and pfmerge, at
about 100 us a request, run a tenth of --n requests):

- pfadd_one:   PFADD of random elements to one key (dense after a few
               thousand);
- pfadd_many:  PFADD of a random element to one of 10,000 keys (sparse);
- pfcount:     PFCOUNT of that one dense key (the cache is valid: Redis's
               fast path);
- pfcount2:    PFCOUNT of two dense keys (the union's registers and estimate
               computed every time);
- pfmerge:     PFMERGE of two dense keys into a third.

Then memory: N keys of K random elements each (sparse at K=100 with
N = 10 x --mem-keys, dense at K=5000 with N = --mem-keys) loaded through
redis-cli --pipe, RSS growth / N per server, and the ratio (a node alone folds each update as it makes it; the reading waits a
second and a half all the same, for any GC tick to have run). Fixed costs (the
effect backlog: up to 1 MiB while alone) are spread over the keys: use
enough keys (--mem-keys) that they weigh little.

Targets (issue 12): CPU per request at most 1.5x redis-server's, bytes per
HLL at most 1.2x. Nothing is asserted; the table is the output.

Usage: python benchmarks/bench_hll.py [--repeat 3] [--n 200000]
"""

from __future__ import annotations

import argparse
import os
import random
import shlex
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_vs_redis import (  # noqa: E402
    HOST,
    ConstDBServer,
    RedisServer,
    cleanup,
    cpu_ticks,
    need,
    rss_bytes,
)

TICK_US = 1e6 / os.sysconf("SC_CLK_TCK")

TESTS = {
    "pfadd_one": ["PFADD", "hll", "e:__rand_int__"],
    "pfadd_many": ["PFADD", "hll:__rand_int__", "e:__rand_int__"],
    "pfcount": ["PFCOUNT", "hllA"],
    "pfcount2": ["PFCOUNT", "hllA", "hllB"],
    "pfmerge": ["PFMERGE", "hllC", "hllA", "hllB"],
}


def fill(port: int, key: str, n: int, seed: int) -> None:
    rnd = random.Random(seed)
    proto = b"".join(
        b"*3\r\n$5\r\nPFADD\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(key), key.encode(), len(e), e)
        for e in (b"x%d" % rnd.randrange(10**9) for _ in range(n))
    )
    subprocess.run(
        [need("redis-cli"), "-h", HOST, "-p", str(port), "--pipe"],
        input=proto,
        check=True,
        capture_output=True,
    )


# the tests that cost ~100 us a request run a tenth of --n requests
HEAVY = {"pfcount2", "pfmerge"}


def bench(srv, test: str, n: int) -> float:
    """Server CPU microseconds per request of one redis-benchmark run."""
    if test in HEAVY:
        n //= 10
    argv = [need("redis-benchmark"), "-h", HOST, "-p", str(srv.port), "-c", "50", "-P", "16"]
    argv += ["-n", str(n), "-r", "10000" if test == "pfadd_many" else "100000000", "-q"]
    argv += TESTS[test]
    u0, s0 = cpu_ticks(srv.pid)
    p = subprocess.run(argv, capture_output=True, timeout=600)
    u1, s1 = cpu_ticks(srv.pid)
    if p.returncode != 0:
        raise RuntimeError(f"{shlex.join(argv)}: {p.stderr.decode(errors='replace')}")
    return ((u1 - u0) + (s1 - s0)) * TICK_US / n


def memory(srv, nkeys: int, per_key: int) -> float:
    """RSS growth per HLL key of nkeys keys of per_key random elements."""
    c = srv.client()
    time.sleep(0.5)
    before = rss_bytes(srv.pid)
    rnd = random.Random(7)
    cmds = []
    for k in range(nkeys):
        key = b"m:%d" % k
        es = [b"x%d" % rnd.randrange(10**9) for _ in range(per_key)]
        parts = [b"PFADD", key, *es]
        cmds.append(
            b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(x), x) for x in parts)
        )
    subprocess.run(
        [need("redis-cli"), "-h", HOST, "-p", str(srv.port), "--pipe"],
        input=b"".join(cmds),
        check=True,
        capture_output=True,
    )
    time.sleep(1.5)  # ConstDB: GC folds the pending updates into the values
    c.execute_command("PING")
    return (rss_bytes(srv.pid) - before) / nkeys


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--mem-keys", type=int, default=2000)
    ap.add_argument(
        "--tests", default=",".join(TESTS), help="comma-separated, of: " + " ".join(TESTS)
    )
    ap.add_argument("--no-memory", action="store_true")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="bench-hll-")
    servers = []
    try:
        servers = [ConstDBServer(tmp).start(), RedisServer(tmp).start()]
        for s in servers:
            fill(s.port, "hllA", 20000, 1)
            fill(s.port, "hllB", 20000, 2)
            fill(s.port, "hll", 5000, 3)
            s.client().pfcount("hllA")
        print(f"{'test (-P 16)':14s} {'ConstDB us/req':>15s} {'Redis us/req':>13s} {'ratio':>6s}")
        for test in args.tests.split(","):
            cells = {s.name: [] for s in servers}
            for _ in range(args.repeat):
                for s in servers:
                    cells[s.name].append(bench(s, test, args.n))
            c = statistics.median(cells["ConstDB"])
            r = statistics.median(cells["Redis"])
            print(f"{test:14s} {c:15.2f} {r:13.2f} {c / r:6.2f}", flush=True)
        for s in servers:
            s.stop()
        if args.no_memory:
            return 0
        print()
        print(f"{'memory':14s} {'ConstDB B/key':>15s} {'Redis B/key':>13s} {'ratio':>6s}")
        for per_key in (100, 5000):
            # fresh servers: memory freed by earlier tests would be reused
            servers = [ConstDBServer(tmp).start(), RedisServer(tmp).start()]
            # a small value's RSS growth needs more keys to stand out of the noise
            nk = args.mem_keys * (10 if per_key < 1000 else 1)
            c = memory(servers[0], nk, per_key)
            r = memory(servers[1], nk, per_key)
            print(f"{'HLL of ' + str(per_key):14s} {c:15.0f} {r:13.0f} {c / r:6.2f}", flush=True)
            for s in servers:
                s.stop()
    finally:
        for s in servers:
            s.stop()
        cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
