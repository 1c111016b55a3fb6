"""Pieces the benchmark scripts share (they import it as a sibling module:
`python benchmarks/NAME.py` puts this directory on sys.path)."""

from __future__ import annotations

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
