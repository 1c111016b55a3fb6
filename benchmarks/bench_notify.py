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
import tempfile
import threading

from bench_vs_redis import ConstDBServer, RedisServer, cleanup, log, need
from benchlib import HOST, bench_rps_cpu

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
    try:
        return bench_rps_cpu(srv, pipeline, n, ["SET", "key:__rand_int__", "v"], ("-r", "100000"))
    finally:
        if drain is not None:
            drain.close()
        c.config_set("notify-keyspace-events", "")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=200000, help="SETs per run")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    need("redis-benchmark")
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
