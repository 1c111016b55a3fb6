#!/usr/bin/env python3
"""How long list tombstones stay now that GC waits for every member's restart
floor (docs/crdt.md section 6, issue 14). Redis has no counterpart (it keeps
no tombstones), so this prints ConstDB's figures alone, for two set-ups in
one run:

- "files": three nodes on the default config, each with a snapshot file
  (SAVE at start, as after any scheduled save): the floor is the file, and
  a grouped node saves at least every 60 s while it has changes;
- "no files": three nodes with `save = []` and no file: the floor is the
  applied VV (as before issue 14).

A writer per node runs a queue (RPUSH on its own key, LPOP of everyone's)
for --secs seconds; every second each node's stable-point lag (wall clock
minus the stable point) and the removed elements its lists still hold
(DESC) are sampled. Prints the median and maximum of both.

Usage: python benchmarks/gc_restart_floor.py [--secs 150] [--rate 200]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import redis
from benchlib import HOST, free_port


def start(d: str, port: int, cfg: str) -> subprocess.Popen:
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, "constdb.toml")
    with open(path, "w") as f:
        f.write(cfg)
    exe = shutil.which("constdb-server")
    cmd = [exe] if exe else [sys.executable, "-m", "constdb"]
    cmd += [path, "--port", str(port), "--work-dir", d, "--log-level", "WARN"]
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    for _ in range(400):
        try:
            redis.Redis(host=HOST, port=port).ping()
            return p
        except redis.ConnectionError:
            time.sleep(0.05)
    raise SystemExit(f"node on {port} did not start")


def tombstones(r: redis.Redis, keys: list[str]) -> int:
    n = 0
    for k in keys:
        for obj in r.execute_command("DESC", k) or []:
            if isinstance(obj, list) and b"elements" in obj:
                n += sum(1 for e in obj[obj.index(b"elements") + 1] if e[5])
    return n


def run(label: str, root: str, save: str, secs: float, rate: float) -> None:
    ports = [free_port() for _ in range(3)]
    cfg = f"save = {save}\n"
    procs = [start(os.path.join(root, label, f"n{i}"), p, cfg) for i, p in enumerate(ports)]
    try:
        rs = [redis.Redis(host=HOST, port=p) for p in ports]
        for r in rs[1:]:
            r.execute_command("MEET", f"{HOST}:{ports[0]}")
        time.sleep(2)
        if save != "[]":
            for r in rs:
                r.save()
        keys = [f"q{i}" for i in range(3)]
        stop = threading.Event()

        def writer(i: int) -> None:
            c = redis.Redis(host=HOST, port=ports[i])
            j = 0
            while not stop.is_set():
                c.rpush(keys[i], j)
                c.lpop(keys[j % 3])
                j += 1
                time.sleep(1.0 / rate)

        ts = [threading.Thread(target=writer, args=(i,)) for i in range(3)]
        for t in ts:
            t.start()
        lags: list[float] = []
        held: list[int] = []
        t0 = time.time()
        while time.time() - t0 < secs:
            time.sleep(1.0)
            for r in rs:
                s = int(r.info("replication")["stable_point"])
                lags.append(time.time() - (s >> 22) / 1000.0 if s else float("inf"))
                held.append(tombstones(r, keys))
        stop.set()
        for t in ts:
            t.join()
        lags.sort()
        held.sort()
        print(
            f"| {label} | {secs:.0f} | {2 * rate:.0f} | {lags[len(lags) // 2]:.1f} | {lags[-1]:.1f}"
            f" | {held[len(held) // 2]} | {held[-1]} |"
        )
    finally:
        for p in procs:
            p.terminate()
            p.wait(10)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--secs", type=float, default=150)
    ap.add_argument("--rate", type=float, default=200, help="RPUSH+LPOP pairs a second per node")
    args = ap.parse_args()
    root = tempfile.mkdtemp(prefix="gcfloor-")
    print(
        "| set-up | seconds | ops/s per node | stable lag median (s) | stable lag max (s)"
        " | tombstones held median | tombstones held max |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    try:
        run("files", root, "[[3600, 1], [300, 100], [60, 10000]]", args.secs, args.rate)
        run("no files", root, "[]", args.secs, args.rate)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
