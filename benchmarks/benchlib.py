"""Pieces the benchmark scripts share (they import it as a sibling module:
`python benchmarks/NAME.py` puts this directory on sys.path)."""

from __future__ import annotations

import csv
import io
import socket
import subprocess
import time

HOST = "127.0.0.1"


def free_port() -> int:
    """A free TCP port on the loopback address."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def load_keys(port: int, count: int, db: int = 0) -> None:
    """count small string keys `key:%012d` -> `xxx` in db through redis-cli --pipe."""
    proto = b"".join(
        b"*3\r\n$3\r\nSET\r\n$16\r\nkey:%012d\r\n$3\r\nxxx\r\n" % i for i in range(count)
    )
    subprocess.run(
        ["redis-cli", "-h", HOST, "-p", str(port), "-n", str(db), "--pipe"],
        input=proto,
        check=True,
        capture_output=True,
    )


def run_cpu(srv, argvs: list[list[str]], timeout: float = 600) -> tuple[float, float, list[bytes]]:
    """The command lines in argvs (redis-benchmark runs) at once against srv
    (a server of bench_vs_redis): (seconds until all ended, the server's CPU
    seconds meanwhile, each one's stdout). A run that fails or outlives
    timeout is stopped by pid and raises."""
    from bench_vs_redis import CLK_TCK, cpu_ticks, stop_proc

    c0 = cpu_ticks(srv.pid)
    t0 = time.monotonic()
    procs = [subprocess.Popen(a, stdout=subprocess.PIPE) for a in argvs]
    outs = []
    try:
        for p in procs:
            outs.append(p.communicate(timeout=timeout)[0])
            if p.returncode:
                raise subprocess.CalledProcessError(p.returncode, p.args)
    finally:
        for p in procs:
            if p.poll() is None:
                stop_proc(p)
    elapsed = time.monotonic() - t0
    c1 = cpu_ticks(srv.pid)
    return elapsed, ((c1[0] - c0[0]) + (c1[1] - c0[1])) / CLK_TCK, outs


def benchmark_argv(srv, pipeline: int, n: int, clients: int = 50) -> list[str]:
    """redis-benchmark's command line against srv, up to its options."""
    return ["redis-benchmark", "-h", HOST, "-p", str(srv.port), "-c", str(clients)] + [
        "-P",
        str(pipeline),
        "-n",
        str(n),
    ]


def bench_rps_cpu(
    srv, pipeline: int, n: int, command: list[str], options: tuple[str, ...] = ()
) -> tuple[float, float]:
    """redis-benchmark of one command (50 clients; options: more of its
    options, as -r 100000 or --dbnum 3) against srv (a server of
    bench_vs_redis): (req/s, the server's CPU microseconds per request)."""
    argv = benchmark_argv(srv, pipeline, n) + [*options, "--csv", *command]
    _, cpu, outs = run_cpu(srv, [argv])
    rps = 0.0
    for row in csv.reader(io.StringIO(outs[0].decode())):
        if row and row[0] != "test":
            rps = float(row[1])
            break
    return rps, cpu * 1e6 / n
