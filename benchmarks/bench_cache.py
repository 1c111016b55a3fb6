"""A cache under maxmemory: ConstDB beside redis-server, same maxmemory and
policy, one read-through client (GET; on a miss SET with a 100-byte value)
over a key universe several times what fits. Workloads:

  zipf   Zipf-distributed keys (s = 0.99)
  scan   the same, and every --scan-every requests a one-pass scan of
         --scan-len fresh keys (never asked before, never again)
  shift  Zipf whose popular keys move: every --shift-every requests the
         ranks map to keys --shift-by further on

Reports, per server and policy: hit ratio (over the second half of the run,
the cache being full by then), req/s (client side, pipelined 100 requests a
batch), server CPU per request (GET and SET counted as one request each),
used_memory and RSS at the end, evicted keys. ConstDB's
maxmemory_eviction_margin is set to 0 (a lone node: no peer to leave room for).

ConstDB holds fewer keys per MB than Redis, so with --modes memory,keys it
also runs at equal key capacity: ConstDB's maxmemory scaled so that it holds
as many 100-byte string keys as Redis holds at --maxmemory (both measured by
filling each server with fresh keys until it evicts); those rows are marked
"ConstDB=keys".

    PYTHONPATH=$PWD python3 benchmarks/bench_cache.py [--maxmemory 64mb]
        [--requests 3000000] [--universe 2000000] [--workloads zipf,scan,shift]
        [--modes memory,keys]
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import time

import numpy as np
from bench_vs_redis import (
    CLK_TCK,
    ConstDBServer,
    RedisServer,
    _sigterm,
    cleanup,
    cpu_ticks,
    rss_bytes,
)

VALUE = b"v" * 100
BATCH = 100


def zipf_ranks(n: int, s: float, count: int, rng: np.random.Generator) -> np.ndarray:
    w = 1.0 / np.power(np.arange(1, n + 1, dtype=np.float64), s)
    cdf = np.cumsum(w)
    cdf /= cdf[-1]
    return np.searchsorted(cdf, rng.random(count)).astype(np.int64)


def workload(name: str, a, seed: int = 7) -> list[bytes]:
    """The request sequence (key names), the same for every server."""
    rng = np.random.default_rng(seed)
    n = a.universe
    ranks = zipf_ranks(n, a.s, a.requests, rng)
    # rank -> key id: a fixed permutation (hot keys are not neighbours)
    perm = rng.permutation(n)
    if name == "shift":
        epoch = np.arange(a.requests) // a.shift_every
        ids = perm[(ranks + epoch * a.shift_by) % n]
    else:
        ids = perm[ranks]
    keys = [b"k:%d" % i for i in ids.tolist()]
    if name == "scan":
        out: list[bytes] = []
        fresh = n
        for start in range(0, len(keys), a.scan_every):
            out.extend(keys[start : start + a.scan_every])
            out.extend(b"k:%d" % (fresh + j) for j in range(a.scan_len))
            fresh += a.scan_len
        keys = out
    return keys


def workload_args(ap: argparse.ArgumentParser) -> None:
    """The request sequences' options (also benchmarks/sim_policies.py's)."""
    ap.add_argument("--requests", type=int, default=3_000_000)
    ap.add_argument("--universe", type=int, default=2_000_000)
    ap.add_argument("--s", type=float, default=0.99)
    ap.add_argument("--scan-every", type=int, default=200_000)
    ap.add_argument("--scan-len", type=int, default=100_000)
    ap.add_argument("--shift-every", type=int, default=500_000)
    ap.add_argument("--shift-by", type=int, default=100_000)
    ap.add_argument("--workloads", default="zipf,scan,shift")


def run(srv, keys: list[bytes]) -> dict:
    c = srv.client()
    half = len(keys) // 2
    hits = hits2 = reqs2 = 0
    cmds = 0
    u0, s0 = cpu_ticks(srv.pid)
    t0 = time.monotonic()
    for start in range(0, len(keys), BATCH):
        batch = keys[start : start + BATCH]
        p = c.pipeline(transaction=False)
        for k in batch:
            p.get(k)
        got = p.execute()
        cmds += len(batch)
        p = c.pipeline(transaction=False)
        miss = 0
        for i, (k, v) in enumerate(zip(batch, got)):
            if v is None:
                p.set(k, VALUE)
                miss += 1
            else:
                hits += 1
                if start + i >= half:
                    hits2 += 1
            if start + i >= half:
                reqs2 += 1
        if miss:
            p.execute()
            cmds += miss
    dt = time.monotonic() - t0
    u1, s1 = cpu_ticks(srv.pid)
    time.sleep(0.3)
    m = c.info("memory")
    st = c.info("stats")
    return {
        "hit": hits2 / reqs2 if reqs2 else 0.0,
        "hit_all": hits / len(keys),
        "rps": cmds / dt,
        "cpu_us": (u1 + s1 - u0 - s0) / CLK_TCK * 1e6 / cmds,
        "used": m["used_memory"],
        "rss": rss_bytes(srv.pid),
        "keys": c.dbsize(),
        "evicted": st.get("evicted_keys", 0),
    }


def mem_bytes(v: str) -> int:
    v = v.lower()
    for unit, m in (("gb", 1 << 30), ("mb", 1 << 20), ("kb", 1 << 10), ("b", 1)):
        if v.endswith(unit):
            return int(float(v[: -len(unit)]) * m)
    return int(v)


def capacity(cls, tmp: str, maxmemory: int) -> int:
    """Keys of 100-byte values the server holds at maxmemory (allkeys-lru)."""
    srv = cls(tmp).start()
    try:
        c = srv.client()
        c.config_set("maxmemory", str(maxmemory))
        c.config_set("maxmemory-policy", "allkeys-lru")
        if cls is ConstDBServer:
            c.config_set("maxmemory-eviction-margin", "0")
        i = 0
        while True:
            p = c.pipeline(transaction=False)
            for j in range(i, i + 10_000):
                p.set(b"fill:%d" % j, VALUE)
            p.execute()
            i += 10_000
            if c.info("stats").get("evicted_keys", 0) > 20_000:
                return c.dbsize()
    finally:
        srv.stop()


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--maxmemory", default="64mb")
    workload_args(ap)
    ap.add_argument("--policies", default="allkeys-lru,allkeys-lfu")
    ap.add_argument("--ours", default="allkeys-wtinylfu", help="ConstDB-only policies")
    ap.add_argument("--modes", default="memory", help="memory (equal maxmemory), keys")
    a = ap.parse_args()
    signal.signal(signal.SIGTERM, _sigterm)
    rows = []
    tmp = tempfile.mkdtemp(prefix="bench-cache-")
    modes = a.modes.split(",")
    try:
        mm = mem_bytes(a.maxmemory)
        mm_keys = mm
        if "keys" in modes:
            kr = capacity(RedisServer, tmp, mm)
            kc = capacity(ConstDBServer, tmp, mm)
            mm_keys = int(mm * kr / kc)
            print(
                f"capacity at {a.maxmemory}: Redis {kr} keys, ConstDB {kc};"
                f" ConstDB=keys runs at maxmemory {mm_keys / 2**20:.1f} MB",
                flush=True,
            )
        ours = a.policies.split(",") + [x for x in a.ours.split(",") if x]
        for wl in a.workloads.split(","):
            keys = workload(wl, a)
            plan = [("Redis", p, mm) for p in a.policies.split(",")]
            if "memory" in modes:
                plan += [("ConstDB", p, mm) for p in ours]
            if "keys" in modes:
                plan += [("ConstDB=keys", p, mm_keys) for p in ours]
            for name, policy, limit in plan:
                srv = (RedisServer if name == "Redis" else ConstDBServer)(tmp).start()
                try:
                    c = srv.client()
                    c.config_set("maxmemory", str(limit))
                    c.config_set("maxmemory-policy", policy)
                    if name != "Redis":
                        c.config_set("maxmemory-eviction-margin", "0")
                    r = run(srv, keys)
                finally:
                    srv.stop()
                r.update(workload=wl, server=name, policy=policy)
                rows.append(r)
                print(
                    f"{wl:6} {name:12} {policy:17} hit {r['hit']:.4f}  {r['rps']:9.0f} req/s"
                    f"  cpu {r['cpu_us']:5.2f} us/req  used {r['used'] / 2**20:6.1f} MB"
                    f"  rss {r['rss'] / 2**20:6.1f} MB  keys {r['keys']}",
                    flush=True,
                )
    finally:
        cleanup()
    print()
    print(
        f"maxmemory {a.maxmemory}, universe {a.universe} keys, {a.requests} Zipf requests"
        f" (s={a.s}), 100-byte values; hit ratio over the second half"
    )
    print()
    print(
        "| workload | server | policy | hit ratio | vs Redis best | req/s | server CPU us/req | used_memory MB | RSS MB | keys held |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for wl in a.workloads.split(","):
        best = max(
            (r["hit"] for r in rows if r["workload"] == wl and r["server"] == "Redis"), default=0
        )
        for r in rows:
            if r["workload"] != wl:
                continue
            print(
                f"| {wl} | {r['server']} | {r['policy']} | {r['hit']:.4f} | {r['hit'] / best if best else 0:.3f}"
                f" | {r['rps']:.0f} | {r['cpu_us']:.2f} | {r['used'] / 2**20:.1f} | {r['rss'] / 2**20:.1f}"
                f" | {r['keys']} |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
