#!/usr/bin/env python3
"""Sharding through nutcracker (twemproxy): ConstDB groups beside redis-server
groups behind the same proxy, in one run.

For each group count (1, 2 and 4 by default) it starts that many
single-node ConstDB groups (snapshots off) and as many redis-servers
(`--save ""`), and ONE nutcracker with two pools: `constdb` listing the
ConstDB nodes and `redis` listing the redis-servers, both with the settings
deploy/nutcracker/gen_nutcracker.py writes (murmur, ketama, named servers).
Then redis-benchmark (-c 50 -r 100000) runs SET and GET at -P 1 and -P 16
against each pool's port in turn, and once directly against one server of
each kind (the "direct" rows), `--repeat` times, keeping the median req/s.

CPU comes from /proc/PID/stat (utime+stime) of nutcracker and of every
server over each run: "proxy CPU share" is the proxy's part of the CPU that
the proxy and the servers used together; "proxy us/req" and "servers
us/req" are CPU microseconds per request. Every process started here is
stopped by pid at the end. Linux only (/proc).
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

from bench_vs_redis import (
    CLK_TCK,
    ConstDBServer,
    RedisServer,
    _children,
    _sigterm,
    cleanup,
    cpu_ticks,
    log,
    need,
    stop_proc,
)
from benchlib import HOST, free_port

sys.path.insert(
    0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "deploy", "nutcracker")
)
from gen_nutcracker import render  # noqa: E402


class Nutcracker:
    def __init__(self, tmp: str, pools: dict[str, list]):
        self.dir = tmp
        self.ports = {name: free_port() for name in pools}
        self.conf = os.path.join(tmp, "nutcracker.yml")
        with open(self.conf, "w") as f:
            for name, servers in pools.items():
                f.write(
                    render(
                        name,
                        f"{HOST}:{self.ports[name]}",
                        [(f"g{i + 1}", f"{HOST}:{s.port}") for i, s in enumerate(servers)],
                        {},
                    )
                )
        self.proc = None

    def start(self) -> Nutcracker:
        self.proc = subprocess.Popen(
            [
                need("nutcracker"),
                "-c",
                self.conf,
                "-s",
                str(free_port()),
                "-a",
                HOST,
                "-o",
                os.path.join(self.dir, "nutcracker.log"),
            ]
        )
        _children.append(self.proc)
        deadline = time.monotonic() + 20
        for port in self.ports.values():
            while (
                subprocess.run(
                    [need("redis-cli"), "-p", str(port), "ping"], capture_output=True, text=True
                ).stdout.strip()
                != "PONG"
            ):
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("nutcracker did not start")
                time.sleep(0.05)
        return self


def bench(port: int, test: str, pipeline: int, n: int, pids: list[int], proxy_pid: int, args):
    argv = [need("redis-benchmark"), "-h", HOST, "-p", str(port), "-c", str(args.clients)]
    argv += ["-P", str(pipeline), "-n", str(n), "-r", "100000", "--csv", "-t", test]
    c0 = {p: sum(cpu_ticks(p)) for p in pids + ([proxy_pid] if proxy_pid else [])}
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _children.append(p)
    try:
        out, err = p.communicate(timeout=args.timeout)
    finally:
        stop_proc(p, signal.SIGKILL)
    c1 = {q: sum(cpu_ticks(q)) for q in c0}
    rps = None
    for row in csv.reader(io.StringIO(out.decode())):
        if row and row[0] != "test":
            rps = float(row[1])
    if not rps:
        raise RuntimeError(f"redis-benchmark gave nothing on port {port}: {err.decode()}")
    servers = sum(c1[q] - c0[q] for q in pids) / CLK_TCK * 1e6 / n
    proxy = (c1[proxy_pid] - c0[proxy_pid]) / CLK_TCK * 1e6 / n if proxy_pid else 0.0
    return rps, proxy, servers


def run_layout(tmp: str, groups: int, args, rows: list) -> None:
    cdb = [ConstDBServer(tmp) for _ in range(groups)]
    red = [RedisServer(tmp) for _ in range(groups)]
    for s in cdb + red:
        s.start()
    nc = Nutcracker(tmp, {"constdb": cdb, "redis": red}).start()
    targets = [("ConstDB", nc.ports["constdb"], cdb), ("Redis", nc.ports["redis"], red)]
    try:
        for test in args.tests.split(","):
            for pipeline in [int(x) for x in args.pipelines.split(",")]:
                n = args.requests * (4 if pipeline > 1 else 1)
                res: dict = {name: [] for name, _, _ in targets}
                for _ in range(args.repeat):
                    for name, port, servers in targets:  # alternate the two
                        res[name].append(
                            bench(
                                port, test, pipeline, n, [s.pid for s in servers], nc.proc.pid, args
                            )
                        )
                for name, _, _ in targets:
                    rows.append((groups, name, test, pipeline, *median(res[name])))
                    log(f"{groups} group(s) {name} {test} -P {pipeline}: {rows[-1][4]:,.0f} req/s")
    finally:
        cleanup()


def run_direct(tmp: str, args, rows: list) -> None:
    servers = [ConstDBServer(tmp).start(), RedisServer(tmp).start()]
    try:
        for test in args.tests.split(","):
            for pipeline in [int(x) for x in args.pipelines.split(",")]:
                n = args.requests * (4 if pipeline > 1 else 1)
                res: dict = {s.name: [] for s in servers}
                for _ in range(args.repeat):
                    for s in servers:
                        res[s.name].append(bench(s.port, test, pipeline, n, [s.pid], 0, args))
                for s in servers:
                    rows.append(("direct", s.name, test, pipeline, *median(res[s.name])))
    finally:
        cleanup()


def median(samples: list) -> tuple:
    rps = statistics.median(x[0] for x in samples)
    proxy = statistics.median(x[1] for x in samples)
    servers = statistics.median(x[2] for x in samples)
    return rps, proxy, servers


def report(rows: list) -> str:
    out = [
        "| groups | servers | test | pipeline | req/s | proxy CPU share | proxy us/req | servers us/req |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for groups, name, test, pipeline, rps, proxy, servers in rows:
        share = f"{100 * proxy / (proxy + servers):.0f}%" if proxy else "-"
        px = f"{proxy:.2f}" if proxy else "-"
        out.append(
            f"| {groups} | {name} | {test.upper()} | {pipeline} | {rps:,.0f} | {share} | {px} | {servers:.2f} |"
        )
    ratios = ["", "ConstDB / Redis req/s behind the proxy:"]
    by = {(r[0], r[1], r[2], r[3]): r[4] for r in rows}
    for (groups, name, test, pipeline), rps in by.items():
        if name == "ConstDB" and (groups, "Redis", test, pipeline) in by:
            ratios.append(
                f"- {groups} {test.upper()} -P {pipeline}: {rps / by[groups, 'Redis', test, pipeline]:.2f}"
            )
    return "\n".join(out + ratios)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--groups", default="1,2,4", help="group counts (%(default)s)")
    ap.add_argument("--tests", default="set,get")
    ap.add_argument("--pipelines", default="1,16")
    ap.add_argument("--requests", type=int, default=100_000, help="per run at -P 1 (x4 at -P>1)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("-c", "--clients", type=int, default=50)
    ap.add_argument("--timeout", type=float, default=300)
    ap.add_argument("--no-direct", action="store_true", help="skip the rows without the proxy")
    args = ap.parse_args(argv)
    for tool in ("nutcracker", "redis-server", "redis-benchmark", "redis-cli"):
        need(tool)
    signal.signal(signal.SIGTERM, _sigterm)
    tmp = tempfile.mkdtemp(prefix="constdb-bench-proxy-")
    rows: list = []
    try:
        if not args.no_direct:
            run_direct(tmp, args, rows)
        for g in [int(x) for x in args.groups.split(",")]:
            run_layout(tmp, g, args, rows)
    except KeyboardInterrupt:
        log("interrupted")
    finally:
        cleanup()
        shutil.rmtree(tmp, ignore_errors=True)
    print(report(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
