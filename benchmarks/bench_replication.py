#!/usr/bin/env python3
"""Replication speed, side by side with a node that has no peers.

1. Node A under redis-benchmark SET load (-c 50 -P 16): req/s with no peers,
   then with two peers; during the load each peer's lag (records, from
   NODES) is sampled; after it, the time until every lag is zero.
2. Replication lag on an idle group: a write on A until it is visible on B.
3. Full sync of N small keys (default 1,000,000) to a new node: time until it
   holds them all, and the snapshot's size with and without lz4.

Usage: python benchmarks/bench_replication.py [--keys N] [--requests N] [--out FILE]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import lz4.frame
import redis

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


class Node:
    def __init__(self, root: str, name: str):
        self.name = name
        self.dir = os.path.join(root, name)
        os.makedirs(self.dir)
        self.port = free_port()
        with open(os.path.join(self.dir, "constdb.toml"), "w") as f:
            f.write(
                f'node_alias = "{name}"\nreplica_heartbeat_frequency = 0.2\nsave = []\nlog_level = "WARN"\n'
            )
        exe = shutil.which("constdb-server") or sys.executable
        args = [exe] if exe != sys.executable else [exe, "-m", "constdb"]
        self.log = open(os.path.join(self.dir, "log"), "wb")
        self.proc = subprocess.Popen(
            args
            + [
                os.path.join(self.dir, "constdb.toml"),
                "--port",
                str(self.port),
                "--work-dir",
                self.dir,
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.time() + 20
        while True:
            try:
                self.r().ping()
                break
            except redis.ConnectionError:
                if time.time() > deadline:
                    raise
                time.sleep(0.05)

    def r(self) -> redis.Redis:
        return redis.Redis(host=HOST, port=self.port, protocol=2, socket_timeout=120)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def lags(n: Node) -> list[int]:
    out = []
    for row in n.r().execute_command("NODES"):
        d = {row[i].decode(): row[i + 1] for i in range(0, len(row), 2)}
        if d["state"] != b"myself":
            out.append(int(d["lag_records"]))
    return out


def linked(nodes: list[Node]) -> bool:
    for n in nodes:
        for row in n.r().execute_command("NODES"):
            d = {row[i].decode(): row[i + 1] for i in range(0, len(row), 2)}
            if d["state"] not in (b"myself", b"connected"):
                return False
        if len(n.r().execute_command("NODES")) != len(nodes):
            return False
    return True


def wait(cond, timeout: float, what: str) -> float:
    t0 = time.time()
    while not cond():
        if time.time() - t0 > timeout:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.005)
    return time.time() - t0


def benchmark_set(port: int, n: int) -> float:
    out = subprocess.run(
        [
            "redis-benchmark",
            "-h",
            HOST,
            "-p",
            str(port),
            "-c",
            "50",
            "-P",
            "16",
            "-t",
            "set",
            "-n",
            str(n),
            "-r",
            "100000",
            "--csv",
        ],
        capture_output=True,
        check=True,
        text=True,
    ).stdout
    for line in out.splitlines():
        if line.startswith('"SET"'):
            return float(line.split(",")[1].strip('"'))
    raise SystemExit(out)


def load_keys(n: Node, count: int) -> None:
    """count small string keys through redis-cli --pipe."""
    proto = b"".join(
        b"*3\r\n$3\r\nSET\r\n$16\r\nkey:%012d\r\n$3\r\nxxx\r\n" % i for i in range(count)
    )
    subprocess.run(
        ["redis-cli", "-h", HOST, "-p", str(n.port), "--pipe"],
        input=proto,
        check=True,
        capture_output=True,
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--keys", type=int, default=1_000_000)
    ap.add_argument("--requests", type=int, default=2_000_000)
    ap.add_argument("--samples", type=int, default=300)
    ap.add_argument("--out")
    args = ap.parse_args()
    root = tempfile.mkdtemp(prefix="constdb-bench-repl-")
    nodes: list[Node] = []
    rows: list[tuple[str, str]] = []
    try:
        a = Node(root, "a")
        nodes.append(a)
        alone = benchmark_set(a.port, args.requests)
        b, c = Node(root, "b"), Node(root, "c")
        nodes += [b, c]
        b.r().execute_command("MEET", f"{HOST}:{a.port}")
        c.r().execute_command("MEET", f"{HOST}:{a.port}")
        wait(lambda: linked(nodes), 30, "links")
        peak = [0]
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                try:
                    peak[0] = max(peak[0], *lags(a))
                except redis.RedisError:
                    pass
                time.sleep(0.1)

        t = threading.Thread(target=sample)
        t.start()
        with_peers = benchmark_set(a.port, args.requests)
        end = time.time()
        wait(lambda: all(x == 0 for x in lags(a)), 60, "zero lag")
        drain = time.time() - end
        done.set()
        t.join()
        rows += [
            ("SET -c 50 -P 16 on A, no peers (req/s)", f"{alone:,.0f}"),
            ("SET -c 50 -P 16 on A, two peers (req/s)", f"{with_peers:,.0f}"),
            ("ratio with peers / alone", f"{with_peers / alone:.2f}"),
            ("peak peer lag during the load (records)", f"{peak[0]:,}"),
            ("time from end of load to zero lag (s)", f"{drain:.3f}"),
        ]

        # idle replication lag: a write on A until it is visible on B
        ra, rb = a.r(), b.r()
        lat = []
        for i in range(args.samples):
            key, val = f"lat{i}", str(time.time())
            ra.set(key, val)
            t0 = time.perf_counter()
            while rb.get(key) != val.encode():
                pass
            lat.append((time.perf_counter() - t0) * 1000)
            time.sleep(0.01)
        lat.sort()
        rows += [
            ("idle write-to-visible lag A->B, median (ms)", f"{statistics.median(lat):.2f}"),
            ("idle write-to-visible lag A->B, p99 (ms)", f"{lat[int(len(lat) * 0.99) - 1]:.2f}"),
        ]
        for n in (b, c):
            n.stop()
        nodes = [a]

        # full sync of many small keys to a new node
        ra.flushall()
        load_keys(a, args.keys)
        assert ra.dbsize() == args.keys, ra.dbsize()
        ra.save()
        snap = open(os.path.join(a.dir, "dump.cdb"), "rb").read()
        raw = len(lz4.frame.decompress(snap))
        d = Node(root, "d")
        nodes.append(d)
        t0 = time.time()
        d.r().execute_command("MEET", f"{HOST}:{a.port}")
        took = wait(lambda: d.r().dbsize() >= args.keys, 300, "full sync") + 0
        took = time.time() - t0
        rows += [
            (f"full sync of {args.keys:,} keys to a new node (s)", f"{took:.2f}"),
            ("snapshot size with lz4 (bytes)", f"{len(snap):,}"),
            ("snapshot size without lz4 (bytes)", f"{raw:,}"),
        ]
    finally:
        for n in nodes:
            n.stop()
        shutil.rmtree(root, ignore_errors=True)
    table = "| measure | value |\n|---|---|\n" + "".join(f"| {k} | {v} |\n" for k, v in rows)
    print(table)
    if args.out:
        with open(args.out, "w") as f:
            f.write(table)


if __name__ == "__main__":
    main()
