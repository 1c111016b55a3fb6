#!/usr/bin/env python3
"""Replication speed: a ConstDB group beside a redis-server master with two
replicas, in the same run.

1. The write node (ConstDB A; the Redis master) under redis-benchmark SET load
   (-c 50 -P 16): req/s and the write node's CPU per request with no peers, then
   with two peers (ConstDB: two nodes that MEET A; Redis: two replicas). During
   the load each peer's lag is sampled (ConstDB: records, from NODES; Redis:
   bytes of replication offset); after it, the time until every lag is zero.
   The peers' own CPU per request is reported too: on a 2-core machine the write
   node, redis-benchmark and two peers that apply every write share two cores,
   so the req/s ratio says as much about the machine as about the code.
2. Replication lag on an idle group: a write on the write node until it is
   visible on a peer (median and p99).
3. Full sync of N small keys (default 1,000,000) to a new node (ConstDB: MEET;
   Redis: REPLICAOF): time until it holds them all; ConstDB's snapshot size
   with and without lz4, Redis's RDB size.

Usage: python benchmarks/bench_replication.py [--keys N] [--requests N] [--out FILE]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import lz4.frame
import redis
from benchlib import HOST, free_port, load_keys

TICK = os.sysconf("SC_CLK_TCK")


class Proc:
    """A server process on a free loopback port, stopped by pid."""

    kind = ""

    def __init__(self, root: str, name: str, argv: list[str]):
        self.name = name
        self.dir = os.path.join(root, name)
        os.makedirs(self.dir)
        self.log = open(os.path.join(self.dir, "log"), "wb")
        self.proc = subprocess.Popen(
            argv(self), stdout=self.log, stderr=subprocess.STDOUT, cwd=self.dir
        )
        deadline = time.time() + 20
        while True:
            try:
                self.r().ping()
                break
            except redis.ConnectionError:
                if time.time() > deadline or self.proc.poll() is not None:
                    raise
                time.sleep(0.05)

    def r(self) -> redis.Redis:
        return redis.Redis(host=HOST, port=self.port, protocol=2, socket_timeout=120)

    def cpu(self) -> float:
        """utime + stime, seconds."""
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


class ConstNode(Proc):
    kind = "ConstDB"

    def __init__(self, root: str, name: str, extra: str = ""):
        """extra: more lines for the node's config file."""
        self.port = free_port()

        def argv(p: Proc) -> list[str]:
            conf = os.path.join(p.dir, "constdb.toml")
            with open(conf, "w") as f:
                f.write(
                    f'node_alias = "{name}"\nreplica_heartbeat_frequency = 0.2\n'
                    'save = []\nlog_level = "WARN"\n' + extra
                )
            exe = shutil.which("constdb-server")
            cmd = [exe] if exe else [sys.executable, "-m", "constdb"]
            return cmd + [conf, "--port", str(self.port), "--work-dir", p.dir]

        super().__init__(root, name, argv)

    def join(self, other: Proc) -> None:
        self.r().execute_command("MEET", f"{HOST}:{other.port}")

    def nodes(self) -> list[dict]:
        out = []
        for row in self.r().execute_command("NODES"):
            out.append({row[i].decode(): row[i + 1] for i in range(0, len(row), 2)})
        return out

    def lags(self) -> list[int]:
        return [int(d["lag_records"]) for d in self.nodes() if d["state"] != b"myself"]

    def linked(self, n: int) -> bool:
        rows = self.nodes()
        return len(rows) == n and all(d["state"] in (b"myself", b"connected") for d in rows)


class RedisNode(Proc):
    kind = "Redis"

    def __init__(self, root: str, name: str, extra: tuple[str, ...] = ()):
        """extra: more command-line arguments."""
        self.port = free_port()

        def argv(p: Proc) -> list[str]:
            return [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                HOST,
                "--dir",
                p.dir,
                "--save",
                "",
                "--appendonly",
                "no",
                "--repl-diskless-sync",
                "yes",
                "--repl-diskless-sync-delay",
                "0",
                *extra,
            ]

        super().__init__(root, name, argv)

    def join(self, other: Proc) -> None:
        self.r().execute_command("REPLICAOF", HOST, str(other.port))

    def info(self) -> dict:
        return self.r().info("replication")

    def lags(self) -> list[int]:
        """Bytes of the master's stream each replica has not acknowledged."""
        info = self.info()
        off = int(info["master_repl_offset"])
        return [off - int(info[f"slave{i}"]["offset"]) for i in range(info["connected_slaves"])]

    def linked(self, n: int) -> bool:
        info = self.info()
        return info["connected_slaves"] == n - 1 and all(
            info[f"slave{i}"]["state"] == "online" for i in range(n - 1)
        )


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


def measured_load(a: Proc, peers: list[Proc], n: int) -> dict:
    """SET load on a: req/s, a's and the peers' CPU us/req, peak lag, drain."""
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            try:
                peak[0] = max(peak[0], *a.lags()) if peers else 0
            except (redis.RedisError, KeyError):
                pass
            time.sleep(0.1)

    t = threading.Thread(target=sample)
    t.start()
    c0 = [x.cpu() for x in [a] + peers]
    rps = benchmark_set(a.port, n)
    end = time.time()
    if peers:
        wait(lambda: all(x == 0 for x in a.lags()), 60, "zero lag")
    drain = time.time() - end
    done.set()
    t.join()
    time.sleep(0.05)
    c1 = [x.cpu() for x in [a] + peers]
    used = [(y - x) * 1e6 / n for x, y in zip(c0, c1)]
    return {
        "rps": rps,
        "cpu": used[0],
        "peer_cpu": sum(used[1:]) / len(peers) if peers else 0.0,
        "peak": peak[0],
        "drain": drain,
    }


def idle_lag(a: Proc, b: Proc, samples: int) -> list[float]:
    ra, rb = a.r(), b.r()
    lat = []
    for i in range(samples):
        key, val = f"lat{i}", str(time.time())
        ra.set(key, val)
        t0 = time.perf_counter()
        while rb.get(key) != val.encode():
            pass
        lat.append((time.perf_counter() - t0) * 1000)
        time.sleep(0.01)
    lat.sort()
    return lat


def run_group(cls, root: str, args, procs: list[Proc]) -> dict:
    res: dict = {}
    a = cls(root, f"{cls.kind}-a")
    procs.append(a)
    res["alone"] = measured_load(a, [], args.requests)
    peers = [cls(root, f"{cls.kind}-b"), cls(root, f"{cls.kind}-c")]
    procs += peers
    for p in peers:
        p.join(a)
    wait(lambda: a.linked(3) and all(p.linked(3) for p in peers if cls is ConstNode), 60, "links")
    res["peers"] = measured_load(a, peers, args.requests)
    res["lat"] = idle_lag(a, peers[0], args.samples)
    for p in peers:
        p.stop()
        procs.remove(p)
    # full sync of many small keys to a new node
    a.r().flushall()
    load_keys(a.port, args.keys)
    assert a.r().dbsize() == args.keys
    if cls is ConstNode:
        a.r().save()
        snap = open(os.path.join(a.dir, "dump.cdb"), "rb").read()
        res["size"] = len(snap)
        res["raw"] = len(lz4.frame.decompress(snap))
    else:
        a.r().save()
        res["size"] = os.path.getsize(os.path.join(a.dir, "dump.rdb"))
    d = cls(root, f"{cls.kind}-d")
    procs.append(d)
    t0 = time.time()
    d.join(a)

    def synced() -> bool:
        try:
            return d.r().dbsize() >= args.keys
        except (redis.BusyLoadingError, redis.ConnectionError):
            return False

    wait(synced, 300, "full sync")
    res["sync"] = time.time() - t0
    for p in (a, d):
        p.stop()
        procs.remove(p)
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--keys", type=int, default=1_000_000)
    ap.add_argument("--requests", type=int, default=2_000_000)
    ap.add_argument("--samples", type=int, default=300)
    ap.add_argument("--out")
    args = ap.parse_args()
    root = tempfile.mkdtemp(prefix="constdb-bench-repl-")
    procs: list[Proc] = []
    try:
        c = run_group(ConstNode, root, args, procs)
        r = run_group(RedisNode, root, args, procs)
    finally:
        for p in procs:
            p.stop()
        shutil.rmtree(root, ignore_errors=True)

    def med(x):
        return f"{statistics.median(x['lat']):.2f}"

    def p99(x):
        return f"{x['lat'][int(len(x['lat']) * 0.99) - 1]:.2f}"

    rows = [
        ("SET -P 16 on the write node, no peers (req/s)", c["alone"]["rps"], r["alone"]["rps"]),
        ("SET -P 16 on the write node, two peers (req/s)", c["peers"]["rps"], r["peers"]["rps"]),
        (
            "ratio with peers / alone",
            c["peers"]["rps"] / c["alone"]["rps"],
            r["peers"]["rps"] / r["alone"]["rps"],
        ),
        ("write node CPU us/req, no peers", c["alone"]["cpu"], r["alone"]["cpu"]),
        ("write node CPU us/req, two peers", c["peers"]["cpu"], r["peers"]["cpu"]),
        (
            "each peer's CPU us/req (applying the stream)",
            c["peers"]["peer_cpu"],
            r["peers"]["peer_cpu"],
        ),
        (
            "peak peer lag during the load",
            f"{c['peers']['peak']:,} records",
            f"{r['peers']['peak']:,} bytes",
        ),
        ("time from end of load to zero lag (s)", c["peers"]["drain"], r["peers"]["drain"]),
        ("idle write-to-visible lag, median (ms)", med(c), med(r)),
        ("idle write-to-visible lag, p99 (ms)", p99(c), p99(r)),
        (f"full sync of {args.keys:,} keys to a new node (s)", c["sync"], r["sync"]),
        ("snapshot / RDB size (bytes)", c["size"], r["size"]),
        ("ConstDB snapshot without lz4 (bytes)", c["raw"], "-"),
    ]

    def fmt(v) -> str:
        if isinstance(v, str):
            return v
        if v >= 1000:
            return f"{v:,.0f}"
        return f"{v:.2f}"

    table = "| measure | ConstDB | Redis |\n|---|---:|---:|\n" + "".join(
        f"| {k} | {fmt(x)} | {fmt(y)} |\n" for k, x, y in rows
    )
    print(table)
    if args.out:
        with open(args.out, "w") as f:
            f.write(table)


if __name__ == "__main__":
    main()
