"""Pieces the benchmark scripts share (they import it as a sibling module:
`python benchmarks/NAME.py` puts this directory on sys.path)."""

from __future__ import annotations

import csv
import io
import socket
import subprocess

HOST = "127.0.0.1"


def free_port() -> int:
    """A free TCP port on the loopback address."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def load_keys(port: int, count: int) -> None:
    """count small string keys `key:%012d` -> `xxx` through redis-cli --pipe."""
    proto = b"".join(
        b"*3\r\n$3\r\nSET\r\n$16\r\nkey:%012d\r\n$3\r\nxxx\r\n" % i for i in range(count)
    )
    subprocess.run(
        ["redis-cli", "-h", HOST, "-p", str(port), "--pipe"],
        input=proto,
        check=True,
        capture_output=True,
    )


def bench_rps_cpu(srv, pipeline: int, n: int, command: list[str]) -> tuple[float, float]:
    """redis-benchmark of one command (50 clients) against srv (a server of
    bench_vs_redis): (req/s, the server's CPU microseconds per request)."""
    from bench_vs_redis import CLK_TCK, cpu_ticks

    argv = ["redis-benchmark", "-h", HOST, "-p", str(srv.port), "-c", "50", "-P", str(pipeline)]
    argv += ["-n", str(n), "--csv", *command]
    c0 = cpu_ticks(srv.pid)
    out = subprocess.run(argv, capture_output=True, check=True, timeout=600).stdout
    c1 = cpu_ticks(srv.pid)
    rps = 0.0
    for row in csv.reader(io.StringIO(out.decode())):
        if row and row[0] != "test":
            rps = float(row[1])
            break
    return rps, ((c1[0] - c0[0]) + (c1[1] - c0[1])) / CLK_TCK * 1e6 / n
