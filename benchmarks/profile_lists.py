#!/usr/bin/env python3
"""Instructions per request of LPUSH, RPUSH, LPOP and RPOP on a list shaped as
`bench_vs_redis.py --tests lpush,rpush,lpop,rpop` leaves it: one long run of
LPUSHes, then one of RPUSHes, each command one element from one origin (so
each run is packed blocks of PACK_MAX), then the pops at either end.

profile_core.py's list workload preloads a list of alternating 16-command
LPUSH and RPUSH batches (blocks of 16: its LPOP row mostly measures dropping
one block at the head of a long block list); this one measures the steady
path the benchmark runs. Counted by callgrind inside Client.feed, as
profile_core.py does (deterministic, unlike timings on a shared machine).

    PYTHONPATH=$PWD python3 benchmarks/profile_lists.py [--size 200000] [--iters 2000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import profile_core as pc  # noqa: E402

CMDS = ("lpush", "rpush", "lpop", "rpop")


def work(cmd: str, size: int, iters: int) -> None:
    _, c = pc.make_client()
    # half the elements by LPUSH, half by RPUSH, PIPE commands a read (a
    # client runs that many a turn; not counted: callgrind collects inside
    # feed() only)
    for name in (b"LPUSH", b"RPUSH"):
        chunk = b"".join(pc.resp(name, b"mylist", b"xxx") for _ in range(pc.PIPE))
        for _ in range(size // (2 * pc.PIPE)):
            c.data_received(chunk)
            c.out.reset()
    if c.run(b"LLEN", b"mylist") != b":%d\r\n" % (size // (2 * pc.PIPE) * 2 * pc.PIPE):
        sys.exit("preload failed")
    batch = b"".join(
        pc.resp(cmd.upper().encode(), b"mylist", *([b"xxx"] if "push" in cmd else []))
        for _ in range(pc.PIPE)
    )
    feed = c.feed
    for _ in range(iters):
        feed(batch)


def callgrind(cmd: str, size: int, iters: int) -> float:
    with tempfile.TemporaryDirectory(prefix="cgl-") as tmp:
        out = os.path.join(tmp, "cg.out")
        argv = pc.callgrind_argv(out) + [
            sys.executable,
            os.path.abspath(__file__),
            "--work",
            cmd,
            "--size",
            str(size),
            "--iters",
            str(iters),
        ]
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        inc = pc._annotate(shutil.which("callgrind_annotate"), out, True)
    return inc["TOTAL"] / (iters * pc.PIPE)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=200_000, help="elements preloaded")
    ap.add_argument("--iters", type=int, default=2000, help="16-command batches counted")
    ap.add_argument("--work", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.work:
        work(args.work, args.size, args.iters)
        return 0
    print(f"Instructions per request inside Client.feed, -P {pc.PIPE}, list of {args.size:,}")
    print()
    print("| command | Ir/request |")
    print("|---|---:|")
    for cmd in CMDS:
        print(f"| {cmd.upper()} | {callgrind(cmd, args.size, args.iters):,.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
