#!/usr/bin/env python3
"""Where a server's *system* time per request goes: ConstDB beside redis-server
under one redis-benchmark test, with counts that CPU load does not move much.

For each run (the servers alternate, --repeat runs each) it records, per
request: the server's user and system CPU (/proc/PID/stat), its voluntary and
involuntary context switches (/proc/PID/status), and, when `perf` can read
tracepoints, the wakeups the server performs (sched:sched_wakeup, counted in
the waker's context: mostly redis-benchmark woken by a reply) and the IPIs it
sends (ipi:ipi_send_cpu); and redis-benchmark's own CPU and how often it
blocked (its voluntary context switches, from wait4's rusage). Medians and
ConstDB/Redis ratios are printed.

--pin puts each server on CPU 0 and redis-benchmark on CPU 1, both SCHED_FIFO
(needs root): on a machine shared with other work this approximates a quiet
one, where redis-benchmark's CPU halts whenever it waits, so that every
wakeup the server does costs an IPI (on a VM: an exit, several microseconds
charged to the server as system time). This is how the ZADD -P 16 system time
gap (issue 10) was found: a server that writes each client's reply right
after running its read wakes the client once per read; Redis (and ConstDB
since) writes all replies of a loop turn at its end, one wakeup per turn.

Example: python3 benchmarks/bench_wakeups.py --test zadd --pin --repeat 3
Every process it starts is stopped by pid. Linux only.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_vs_redis import (  # noqa: E402
    CLK_TCK,
    HOST,
    ConstDBServer,
    RedisServer,
    _children,
    cleanup,
    cpu_ticks,
    need,
)

FIELDS = [
    ("user_us", "server user us/req"),
    ("sys_us", "server sys us/req"),
    ("cpu_us", "server CPU us/req"),
    ("vcs", "server voluntary cs /1k req"),
    ("nvcs", "server involuntary cs /1k req"),
    ("wakeups", "server wakeups /1k req"),
    ("ipis", "server IPIs sent /1k req"),
    ("bench_us", "redis-benchmark CPU us/req"),
    ("bench_blocks", "redis-benchmark blocked /1k req"),
]


def ctxt(pid: int) -> tuple[int, int]:
    v = nv = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("voluntary_ctxt_switches:"):
                v = int(line.split()[1])
            elif line.startswith("nonvoluntary_ctxt_switches:"):
                nv = int(line.split()[1])
    return v, nv


def perf_ok() -> bool:
    if shutil.which("perf") is None:
        return False
    r = subprocess.run(
        ["perf", "stat", "-e", "sched:sched_wakeup,ipi:ipi_send_cpu", "true"],
        capture_output=True,
    )
    return r.returncode == 0


def run_one(srv, args, use_perf: bool) -> dict:
    pid = srv.pid
    if args.pin:
        subprocess.run(["taskset", "-p", "1", str(pid)], check=True, capture_output=True)
        subprocess.run(["chrt", "-f", "-p", "50", str(pid)], check=True)
    perf = None
    out = os.path.join(srv.dir, "perfstat.txt")
    if use_perf:
        perf = subprocess.Popen(
            ["perf", "stat", "-x,", "-o", out, "-e", "sched:sched_wakeup,ipi:ipi_send_cpu"]
            + ["-p", str(pid)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _children.append(perf)
        time.sleep(0.5)
    argv = [need("redis-benchmark"), "-h", HOST, "-p", str(srv.port), "-c", str(args.clients)]
    argv += ["-P", str(args.pipeline), "-n", str(args.requests), "-r", str(args.keyspace)]
    argv += ["-q", "-t", args.test]
    if args.pin:
        argv = ["taskset", "2", "chrt", "-f", "50"] + argv
    c0, x0 = cpu_ticks(pid), ctxt(pid)
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
    _, status, ru = os.wait4(p.pid, 0)
    c1, x1 = cpu_ticks(pid), ctxt(pid)
    if args.pin:
        subprocess.run(["chrt", "-o", "-p", "0", str(pid)], check=True)
        subprocess.run(["taskset", "-p", "3", str(pid)], check=True, capture_output=True)
    wakeups = ipis = float("nan")
    if perf is not None:
        perf.send_signal(2)
        perf.wait(10)
        _children.remove(perf)
        with open(out) as f:
            for line in f:
                parts = line.strip().split(",")
                if len(parts) > 2 and parts[0].isdigit():
                    if parts[2] == "sched:sched_wakeup":
                        wakeups = int(parts[0])
                    elif parts[2] == "ipi:ipi_send_cpu":
                        ipis = int(parts[0])
        os.unlink(out)
    if status != 0:
        raise RuntimeError(f"redis-benchmark failed on {srv.name}")
    n = args.requests
    k = 1000.0 / n
    user = (c1[0] - c0[0]) / CLK_TCK * 1e6 / n
    sys_ = (c1[1] - c0[1]) / CLK_TCK * 1e6 / n
    return {
        "user_us": user,
        "sys_us": sys_,
        "cpu_us": user + sys_,
        "vcs": (x1[0] - x0[0]) * k,
        "nvcs": (x1[1] - x0[1]) * k,
        "wakeups": wakeups * k,
        "ipis": ipis * k,
        "bench_us": (ru.ru_utime + ru.ru_stime) * 1e6 / n,
        "bench_blocks": ru.ru_nvcsw * k,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--test", default="zadd", help="redis-benchmark -t (%(default)s)")
    ap.add_argument("-P", "--pipeline", type=int, default=16)
    ap.add_argument("-c", "--clients", type=int, default=50)
    ap.add_argument("-n", "--requests", type=int, default=1_000_000)
    ap.add_argument("-r", "--keyspace", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--pin", action="store_true", help="CPU 0 / CPU 1, SCHED_FIFO (root)")
    args = ap.parse_args(argv)
    if args.pin and os.geteuid() != 0:
        sys.exit("--pin needs root (SCHED_FIFO)")
    use_perf = perf_ok()
    tmp = tempfile.mkdtemp(prefix="bench_wakeups.")
    res: dict[str, list[dict]] = {"ConstDB": [], "Redis": []}
    try:
        servers = [ConstDBServer(tmp).start(), RedisServer(tmp).start()]
        for srv in servers:  # unmeasured: fills the key space
            run_one(srv, argparse.Namespace(**{**vars(args), "pin": False}), False)
        for rep in range(args.repeat):
            order = servers if rep % 2 == 0 else servers[::-1]
            for srv in order:
                s = run_one(srv, args, use_perf)
                res[srv.name].append(s)
                print(
                    f"  [{rep + 1}/{args.repeat}] {srv.name:8s} user {s['user_us']:.2f}"
                    f" sys {s['sys_us']:.2f} us/req, wakeups {s['wakeups']:.1f}/1k req",
                    file=sys.stderr,
                    flush=True,
                )
    finally:
        cleanup()
        shutil.rmtree(tmp, ignore_errors=True)
    print(
        f"\nredis-benchmark -t {args.test} -P {args.pipeline} -c {args.clients}"
        f" -n {args.requests} -r {args.keyspace}, {args.repeat} runs each (medians)"
        f"{', pinned + SCHED_FIFO' if args.pin else ''}"
        f"{'' if use_perf else ' (no perf: wakeups/IPIs not counted)'}\n"
    )
    print(f"| {'':34s} | {'ConstDB':>9s} | {'Redis':>9s} | {'ratio':>6s} |")
    print(f"|{'-' * 36}|{'-' * 11}|{'-' * 11}|{'-' * 8}|")
    for key, label in FIELDS:
        c = statistics.median(s[key] for s in res["ConstDB"])
        r = statistics.median(s[key] for s in res["Redis"])
        ratio = f"{c / r:6.2f}" if r else "     -"
        print(f"| {label:34s} | {c:9.2f} | {r:9.2f} | {ratio} |")
    return 0


if __name__ == "__main__":
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    sys.exit(main())
