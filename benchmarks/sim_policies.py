"""Offline policy simulator: bench_cache.py's request sequences (the same
seeds and defaults) replayed against models of cache policies at a given
capacity in keys, so designs are compared without servers. Hit ratio over
the second half of each sequence, as bench_cache.py reports it.

Policies (the C part is benchmarks/sim_core.pyx, built by pyximport on the
first run):

  lru          exact LRU
  redis-lru    Redis's allkeys-lru: 5 samples a run into the 16-entry pool
  redis-lfu    Redis's allkeys-lfu: log counter (factor 10, LFU_INIT_VAL 5)
  lfu-hist     LFU remembering every key's count forever (ties: least recent)
  opt          Belady's OPT (evicts the key used furthest ahead; a newcomer
               used later than every key held is not kept): the upper bound
  DESIGNS      W-TinyLFU variants (the DESIGNS table below; `constdb` is
               what constdb/_core/evict.pyx implements)

    python3 benchmarks/sim_policies.py [--capacity 239000,352000]
        [--workloads zipf,scan,shift] [--policies opt,lru,...] [--requests N]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import pyximport

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
# (sim_core cimports constdb/_core/sketch.pxd: the sketch's hashing)
pyximport.install(
    setup_args={"include_dirs": [np.get_include(), os.path.dirname(HERE)]}, language_level=3
)

import bench_cache  # noqa: E402
import sim_core  # noqa: E402

# W-TinyLFU designs (sim_core.wtinylfu's parameters)
DESIGNS = {
    # Caffeine: window LRU 1%, probation/protected 20/80, sketch of width
    # ~cap halved every 10 x cap increments, a warm candidate let in 1 in 128
    "caffeine": {"win": 0.01, "main": "slru"},
    # the same with an adaptive window (a hill climber sampling every cap/2)
    "caffeine-climb": {"win": 0.01, "main": "slru", "climb": 0.5},
    # main region sampled as Redis's pool (what a dict of keys allows)
    "sampled-lru": {"win": 0.01, "main": "sampled", "wfifo": True, "width": 2},
    "sampled-freq": {"win": 0.01, "main": "sampled", "wfifo": True, "width": 2, "vfreq": True},
    # ... with a sketch twice as wide
    "sampled-freq-w4": {"win": 0.01, "main": "sampled", "wfifo": True, "width": 4, "vfreq": 1},
    # what evict.pyx did before (victim: Redis's sampled LRU pick; a miss's
    # GET and SET both counted)
    "constdb-before": {
        "win": 0.01,
        "main": "sampled",
        "wfifo": True,
        "width": 2,
        "stale": 1.0,
        "missadd": 2,
    },
    # what evict.pyx did before the sketch's width was exact (2026-12-06):
    # width 8 (a power of two at least 8 x the keys held), stale 0.25
    "constdb-w8": {
        "win": 0.10,
        "main": "sampled",
        "wfifo": True,
        "width": 8,
        "period": 20,
        "vfreq": 1,
        "stale": 0.25,
    },
    # what evict.pyx did before the ghost (2026-12-06): width 6, the sampler
    # blind to staleness
    "constdb-w6": {
        "win": 0.10,
        "main": "sampled",
        "wfifo": True,
        "width": 6,
        "period": 20,
        "vfreq": 1,
        "stale": 0.05,
    },
    # what constdb/_core/evict.pyx implements (kept in step with it): a FIFO
    # window of 1% of the keys, a sketch of width 4 x the keys held (to a
    # multiple of 1024) halved every 20 x, the victim the least frequent
    # (then idlest) of Redis's pool, a victim quiet for longer than 0.05 x
    # the sketch's period / its frequency is let go; the sampler counts a
    # key quiet for longer than 2**g times that as frequency 0, g moved by
    # the ghost's outcomes (horizon the keys held, one duel in 4 marked)
    # within 2..6 (at 2 a key idle for 4x the keys held in reads per unit of
    # frequency), up only if more victims came back than newcomers were hit,
    # down only if newcomers were hit more than 1.5x as often; the pool
    # refilled with 10 keys of the main region (twice maxmemory-samples)
    "constdb": {
        "gdown": 1.5,
        "samples": 10,
        "gmin": 2,
        "win": 0.01,
        "main": "sampled",
        "wfifo": True,
        "width": 4,
        "period": 20,
        "vfreq": 1,
        "stale": 0.05,
        "ghost": 1.0,
        "gsamp": 3,
    },
}

# what evict.pyx did before its window was 1% and the sampler's staleness
# threshold stopped at 4x (2026-12-06): a window of 10% of the keys, whose key
# objects used_memory did not count; stale_g down to -4
DESIGNS["constdb-win10"] = {
    **DESIGNS["constdb"],
    "win": 0.10,
    "gmin": -4,
    "samples": 5,
    "gdown": 0,
}
# what it did before its pool drew twice maxmemory-samples keys and the
# ghost's verdict needed newcomers hit 1.5x as often to go down (2026-12-06,
# night): 5 a refill (a window key drawn used one up, which this model leaves
# out), down on any majority of good outcomes
DESIGNS["constdb-s5"] = {**DESIGNS["constdb"], "samples": 5, "gdown": 0}


def ids_of(keys: list[bytes]) -> np.ndarray:
    return np.fromiter((int(k[2:]) for k in keys), dtype=np.int32, count=len(keys))


def simulate(policy: str, seq: np.ndarray, cap: int, nids: int, nxt=None) -> float:
    half = len(seq) - len(seq) // 2
    if policy == "lru":
        h = sim_core.lru(seq, cap, nids)
    elif policy == "redis-lru":
        h = sim_core.redis(seq, cap, nids, False)
    elif policy == "redis-lfu":
        h = sim_core.redis(seq, cap, nids, True)
    elif policy == "lfu-hist":
        h = sim_core.lfu_hist(seq, cap, nids)
    elif policy == "opt":
        h = sim_core.opt(seq, cap, nids, nxt)
    elif policy.startswith("{"):
        h = sim_core.wtinylfu(seq, cap, nids, eval(policy))  # an ad-hoc design
    else:
        h = sim_core.wtinylfu(seq, cap, nids, DESIGNS[policy])
    return h / half


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--capacity", default="239000,352000", help="keys held")
    ap.add_argument(
        "--policies", default="opt,lru,redis-lru,redis-lfu,lfu-hist," + ",".join(DESIGNS)
    )
    bench_cache.workload_args(ap)
    a = ap.parse_args()
    caps = [int(x) for x in a.capacity.split(",")]
    pols = a.policies.split(";") if a.policies.startswith("{") else a.policies.split(",")
    res: dict[tuple, float] = {}
    for wl in a.workloads.split(","):
        seq = ids_of(bench_cache.workload(wl, a))
        nids = int(seq.max()) + 1
        nxt = sim_core.next_use(seq, nids) if "opt" in pols else None
        for cap in caps:
            for pol in pols:
                t0 = time.monotonic()
                r = res[wl, cap, pol] = simulate(pol, seq, cap, nids, nxt)
                print(
                    f"{wl:6} {cap:8} {pol:16} {r:.4f}  ({time.monotonic() - t0:.1f} s)",
                    flush=True,
                )
    print()
    print(f"hit ratio over the second half; {a.requests} requests, universe {a.universe}")
    print()
    cols = [(wl, cap) for wl in a.workloads.split(",") for cap in caps]
    print("| policy | " + " | ".join(f"{wl} {cap // 1000}k" for wl, cap in cols) + " |")
    print("|---" * (len(cols) + 1) + "|")
    for pol in pols:
        print(f"| {pol} | " + " | ".join(f"{res[wl, cap, pol]:.4f}" for wl, cap in cols) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
