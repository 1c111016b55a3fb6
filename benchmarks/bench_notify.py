#!/usr/bin/env python3
"""Keyspace notifications: what they cost a write, ConstDB beside
redis-server in one run.

For each server and each mode, redis-benchmark runs `SET key:__rand_int__ v`
(-r 100000, -c 50) at -P 1 and -P 16: mode "off" with notify-keyspace-events
empty (the default: one flag test a write), "KEA" with every class on and no
subscriber, and "KEA+sub" with one subscriber PSUBSCRIBEd to `__key*__:*`,
reading every message (two per SET). Reported: req/s and the server's CPU
per request (utime+stime from /proc), median of --repeat runs, and the
ratios ConstDB / Redis. Every process is stopped by pid.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import tempfile
import threading
import time

from bench_vs_redis import (
    CLK_TCK,
    ConstDBServer,
    RedisServer,
    cleanup,
    cpu_ticks,
    log,
    need,
    stop_proc,
)
from benchlib import HOST

MODES = ("off", "KEA", "KEA+sub")


class Drain:
    """A subscriber to every keyspace channel that reads and drops what comes."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection((HOST, port))
        self.sock.sendall(b"*2\r\n$10\r\nPSUBSCRIBE\r\n$10\r\n__key*__:*\r\n")
        self.sock.recv(4096)
        self.stop = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        self.sock.settimeout(0.2)
        while not self.stop:
            try:
                if not self.sock.recv(1 << 20):
                    return
            except socket.timeout:
                continue

    def close(self) -> None:
        self.stop = True
        self.thread.join()
        self.sock.close()


def one_run(srv, mode: str, pipeline: int, n: int) -> tuple[float, float]:
    c = srv.client()
    c.config_set("notify-keyspace-events", "" if mode == "off" else "KEA")
    drain = Drain(srv.port) if mode == "KEA+sub" else None
    tool = need("redis-benchmark")
    argv = [tool, "-h", HOST, "-p", str(srv.port), "-n", str(n), "-c", "50", "-P", str(pipeline)]
    argv += ["-r", "100000", "-q", "SET", "key:__rand_int__", "v"]
    try:
        u0, s0 = cpu_ticks(srv.pid)
        t0 = time.monotonic()
        p = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
        try:
            p.wait(300)
        finally:
            if p.poll() is None:
                stop_proc(p)
        elapsed = time.monotonic() - t0
        u1, s1 = cpu_ticks(srv.pid)
    finally:
        if drain is not None:
            drain.close()
        c.config_set("notify-keyspace-events", "")
    return n / elapsed, (u1 - u0 + s1 - s0) / CLK_TCK * 1e6 / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=200000, help="SETs per run")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    rows: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        servers = [ConstDBServer(tmp), RedisServer(tmp)]
        try:
            for s in servers:
                s.start()
            for pipeline in (1, 16):
                for mode in MODES:
                    for s in servers:
                        runs = [one_run(s, mode, pipeline, args.n) for _ in range(args.repeat)]
                        rows[(s.name, mode, pipeline)] = (
                            statistics.median(r[0] for r in runs),
                            statistics.median(r[1] for r in runs),
                        )
                        log(f"{s.name} {mode} -P {pipeline}: {rows[(s.name, mode, pipeline)]}")
        finally:
            for s in servers:
                s.stop()
            cleanup()
    names = [s.name for s in servers]
    print(
        "| mode | pipeline | ConstDB req/s | Redis req/s | req/s ratio"
        " | ConstDB CPU us/req | Redis CPU us/req | CPU ratio |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for pipeline in (1, 16):
        for mode in MODES:
            a, b = rows[(names[0], mode, pipeline)], rows[(names[1], mode, pipeline)]
            print(
                f"| {mode} | {pipeline} | {a[0]:,.0f} | {b[0]:,.0f} | {a[0] / b[0]:.2f}"
                f" | {a[1]:.2f} | {b[1]:.2f} | {a[1] / b[1]:.2f} |"
            )


if __name__ == "__main__":
    main()
