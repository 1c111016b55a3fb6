#!/usr/bin/env python3
"""SAVE and load of N small keys (default 1,000,000), ConstDB beside
redis-server in the same run: SAVE time, file size, and the time from start to
serving every key after a restart.

Usage: python benchmarks/bench_persistence.py [--keys N] [--out FILE]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import redis
from benchlib import HOST, free_port, load_keys


def wait_ready(port: int, keys: int, timeout: float = 600) -> float:
    """Seconds until the server answers and holds every key."""
    t0 = time.time()
    while True:
        try:
            r = redis.Redis(host=HOST, port=port, protocol=2, socket_timeout=60)
            if r.dbsize() >= keys:
                return time.time() - t0
        except (redis.ConnectionError, redis.BusyLoadingError, redis.ResponseError):
            pass
        if time.time() - t0 > timeout:
            raise SystemExit(f"port {port} not ready")
        time.sleep(0.01)


class Server:
    def __init__(self, kind: str, root: str):
        self.kind = kind
        self.dir = os.path.join(root, kind)
        os.makedirs(self.dir, exist_ok=True)
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def file(self) -> str:
        return os.path.join(self.dir, "dump.cdb" if self.kind == "constdb" else "dump.rdb")

    def start(self) -> None:
        log = open(os.path.join(self.dir, "log"), "ab")
        if self.kind == "constdb":
            exe = shutil.which("constdb-server")
            cmd = [exe] if exe else [sys.executable, "-m", "constdb"]
            cmd += ["--port", str(self.port), "--work-dir", self.dir, "--log-level", "WARN"]
        else:
            cmd = [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                HOST,
                "--dir",
                self.dir,
                "--save",
                "",
                "--appendonly",
                "no",
            ]
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        log.close()

    def r(self) -> redis.Redis:
        return redis.Redis(host=HOST, port=self.port, protocol=2, socket_timeout=600)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--keys", type=int, default=1_000_000)
    ap.add_argument("--out")
    args = ap.parse_args()
    root = tempfile.mkdtemp(prefix="constdb-bench-persist-")
    servers = [Server("constdb", root), Server("redis", root)]
    results: dict[str, dict[str, float]] = {}
    try:
        for s in servers:
            s.start()
            wait_ready(s.port, 0)
            load_keys(s.port, args.keys)
            assert s.r().dbsize() == args.keys
            t0 = time.time()
            s.r().save()
            save = time.time() - t0
            size = os.path.getsize(s.file)
            s.kill()  # SIGKILL: the file on disk is the last SAVE
            s.start()
            load = wait_ready(s.port, args.keys)
            results[s.kind] = {"save": save, "size": size, "load": load}
            s.kill()
    finally:
        for s in servers:
            s.kill()
        shutil.rmtree(root, ignore_errors=True)
    c, r = results["constdb"], results["redis"]
    rows = [
        (
            f"SAVE of {args.keys:,} keys (s)",
            f"{c['save']:.2f}",
            f"{r['save']:.2f}",
            f"{c['save'] / r['save']:.2f}",
        ),
        (
            "file size (bytes; ConstDB: lz4)",
            f"{c['size']:,.0f}",
            f"{r['size']:,.0f}",
            f"{c['size'] / r['size']:.2f}",
        ),
        (
            "start to serving every key (s)",
            f"{c['load']:.2f}",
            f"{r['load']:.2f}",
            f"{c['load'] / r['load']:.2f}",
        ),
    ]
    table = "| measure | ConstDB | Redis | ratio |\n|---|---:|---:|---:|\n" + "".join(
        f"| {a} | {b} | {cc} | {d} |\n" for a, b, cc, d in rows
    )
    print(table)
    if args.out:
        with open(args.out, "w") as f:
            f.write(table)


if __name__ == "__main__":
    main()
