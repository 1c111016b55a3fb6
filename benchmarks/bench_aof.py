#!/usr/bin/env python3
"""What appendonly costs, ConstDB beside redis-server, in one run.

For each fsync policy (no log at all, `everysec`, `always`) it starts a
constdb-server (`appendonly = true`, `appendfsync = X`, `save = []`) and a
redis-server (`--appendonly yes --appendfsync X --save ""`), each in its own
directory on the same disk (`--dir`, default: a temporary directory under
the system's), then runs `redis-benchmark -t set -c 50 -r 100000` at -P 1
and -P 16 against each, alternating, `--repeat` times, and records the
median req/s and the server's CPU time per request (/proc/PID/stat).

It prints a markdown table with the ratios ConstDB / Redis, and each
server's cost of the log against its own run without it. Every process it
starts is stopped by pid at the end. Linux only (/proc).
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time

from bench_vs_redis import (
    _children,
    _sigterm,
    cleanup,
    constdb_cmd,
    cpu_ticks,
    log,
    need,
    stop_proc,
)
from benchlib import HOST, free_port

CLK_TCK = os.sysconf("SC_CLK_TCK")
MODES = ("off", "everysec", "always")


class Srv:
    def __init__(self, name: str, tmp: str, mode: str):
        self.name = name
        self.mode = mode
        self.dir = tempfile.mkdtemp(prefix=f"{name.lower()}-{mode}-", dir=tmp)
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    def argv(self) -> list[str]:
        on = self.mode != "off"
        fsync = self.mode if on else "everysec"
        if self.name == "ConstDB":
            cfg = os.path.join(self.dir, "bench.toml")
            with open(cfg, "w") as f:
                f.write(
                    f'save = []\nlog_level = "WARN"\nappendonly = {"true" if on else "false"}\n'
                    f'appendfsync = "{fsync}"\n'
                )
            return constdb_cmd() + [cfg, "--port", str(self.port), "--bind", HOST,
                                    "--work-dir", self.dir]  # fmt: skip
        return [need("redis-server"), "--port", str(self.port), "--bind", HOST,
                "--save", "", "--appendonly", "yes" if on else "no", "--appendfsync", fsync,
                "--dir", self.dir, "--daemonize", "no", "--logfile", ""]  # fmt: skip

    def start(self) -> Srv:
        with open(os.path.join(self.dir, "server.log"), "ab") as logf:
            self.proc = subprocess.Popen(self.argv(), stdout=logf, stderr=subprocess.STDOUT,
                                         cwd=self.dir)  # fmt: skip
        _children.append(self.proc)
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start (see {self.dir}/server.log)")
            r = subprocess.run([need("redis-cli"), "-h", HOST, "-p", str(self.port), "PING"],
                               capture_output=True, text=True)  # fmt: skip
            if r.stdout.strip() == "PONG":
                return self
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not answer PING")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None:
            stop_proc(self.proc)


def run(srv: Srv, pipeline: int, n: int, clients: int) -> tuple[float, float]:
    """(req/s, server CPU microseconds per request) of one redis-benchmark run."""
    argv = [need("redis-benchmark"), "-h", HOST, "-p", str(srv.port), "-c", str(clients),
            "-P", str(pipeline), "-n", str(n), "-r", "100000", "-t", "set", "--csv"]  # fmt: skip
    assert srv.proc is not None
    u0, s0 = cpu_ticks(srv.proc.pid)
    out = subprocess.run(argv, capture_output=True, text=True, timeout=900)
    u1, s1 = cpu_ticks(srv.proc.pid)
    if out.returncode != 0:
        raise RuntimeError(f"redis-benchmark failed on {srv.name}: {out.stderr}")
    rows = [r for r in csv.reader(io.StringIO(out.stdout)) if r and r[0] != "test"]
    rps = float(rows[0][1])
    cpu_us = ((u1 - u0) + (s1 - s0)) / CLK_TCK * 1e6 / n
    return rps, cpu_us


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=200_000, help="requests per run at -P 16")
    ap.add_argument("--n1", type=int, default=50_000, help="requests per run at -P 1")
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--dir", default=None, help="where the servers' directories go")
    ap.add_argument("--quick", action="store_true", help="small runs, one repeat")
    args = ap.parse_args()
    if args.quick:
        args.n, args.n1, args.repeat = 40_000, 10_000, 1
    signal.signal(signal.SIGTERM, _sigterm)
    tmp = tempfile.mkdtemp(prefix="bench-aof-", dir=args.dir)
    results: dict[tuple[str, str, int], list[tuple[float, float]]] = {}
    try:
        for mode in MODES:
            servers = [Srv("ConstDB", tmp, mode).start(), Srv("Redis", tmp, mode).start()]
            for rnd in range(args.repeat):
                for pipeline in (1, 16):
                    n = args.n1 if pipeline == 1 else args.n
                    for srv in servers if rnd % 2 == 0 else reversed(servers):
                        r = run(srv, pipeline, n, args.clients)
                        results.setdefault((srv.name, mode, pipeline), []).append(r)
                        log(f"round {rnd + 1} {srv.name} appendfsync {mode} -P {pipeline}:"
                            f" {r[0]:.0f} req/s, {r[1]:.2f} us CPU/req")  # fmt: skip
            for srv in servers:
                srv.stop()
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        cleanup()

    def med(name: str, mode: str, p: int, i: int) -> float:
        return statistics.median(x[i] for x in results[(name, mode, p)])

    print(f"SET, redis-benchmark -c {args.clients} -r 100000, median of {args.repeat}"
          f" (log directory: {tmp})\n")  # fmt: skip
    print("| appendfsync | pipeline | ConstDB req/s | Redis req/s | req/s ratio"
          " | ConstDB CPU us/req | Redis CPU us/req | CPU ratio |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for mode in MODES:
        for p in (1, 16):
            cr, rr = med("ConstDB", mode, p, 0), med("Redis", mode, p, 0)
            cc, rc = med("ConstDB", mode, p, 1), med("Redis", mode, p, 1)
            label = "(no log)" if mode == "off" else mode
            print(f"| {label} | {p} | {cr:,.0f} | {rr:,.0f} | {cr / rr:.2f} | {cc:.2f} | {rc:.2f}"
                  f" | {cc / rc:.2f} |")  # fmt: skip
    print("\nCost of the log against the same server without it (CPU us/req added):")
    for mode in MODES[1:]:
        for p in (1, 16):
            parts = []
            for name in ("ConstDB", "Redis"):
                add = med(name, mode, p, 1) - med(name, "off", p, 1)
                slow = med(name, "off", p, 0) / med(name, mode, p, 0)
                parts.append(f"{name} +{add:.2f} us, req/s {slow:.2f}x lower")
            print(f"- {mode} -P {p}: " + "; ".join(parts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
