"""Processes of the deployment tools the tests run beside ConstDB: nutcracker
(twemproxy) and prometheus-redis-exporter, on free loopback ports, stopped by
pid. A missing tool fails the test (need_tool), it never skips it."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import urllib.request
from typing import Optional

from support.nodes import HOST, Proc, free_port, wait_for

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GEN_NUTCRACKER = os.path.join(REPO, "deploy", "nutcracker", "gen_nutcracker.py")


def need_tool(name: str) -> str:
    """The tool's path; a missing one fails the test (./test.sh installs it)."""
    path = shutil.which(name)
    if path is None:
        raise AssertionError(f"{name} is not installed: the tests need it (apt-get install {name})")
    return path


def gen_nutcracker(layout: str, out: str) -> dict[str, str]:
    """Run deploy/nutcracker/gen_nutcracker.py: region -> config path."""
    r = subprocess.run(
        [sys.executable, GEN_NUTCRACKER, layout, "--out", out],
        capture_output=True,
        text=True,
        check=True,
    )
    paths = r.stdout.split()
    return {os.path.basename(p)[len("nutcracker-") : -len(".yml")]: p for p in paths}


class Nutcracker(Proc):
    """nutcracker with one config; port is the pool's listen port."""

    def __init__(self, conf: str, port: int, work_dir: str):
        self.exe = need_tool("nutcracker")
        self.conf = conf
        self.port = port
        self.stats_port = free_port()
        self.work_dir = work_dir
        os.makedirs(work_dir, exist_ok=True)
        self.log_path = os.path.join(work_dir, f"nutcracker-{port}.log")

    def ping(self) -> bool:
        # nutcracker takes RESP arrays only (no inline commands)
        with socket.create_connection((self.host, self.port), timeout=1) as s:
            s.sendall(b"*1\r\n$4\r\nPING\r\n")
            return s.recv(64).startswith(b"+PONG")

    def start(self) -> Nutcracker:
        self.proc = subprocess.Popen(
            [
                self.exe,
                "-c",
                self.conf,
                "-s",
                str(self.stats_port),
                "-a",
                HOST,
                "-o",
                self.log_path,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for(lambda: self.alive() and self.ping(), 20, what=f"nutcracker on {self.port}")
        except AssertionError:
            self.stop(signal.SIGKILL)
            raise AssertionError(f"nutcracker did not start:\n{self.log()}")
        return self


class Exporter(Proc):
    """prometheus-redis-exporter scraping one node."""

    def __init__(self, target_port: int, work_dir: str, args: tuple = ()):
        self.exe = need_tool("prometheus-redis-exporter")
        self.port = free_port()
        self.target_port = target_port
        self.args = list(args)
        os.makedirs(work_dir, exist_ok=True)
        self.log_path = os.path.join(work_dir, f"exporter-{self.port}.log")

    def start(self) -> Exporter:
        logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [
                self.exe,
                "--web.listen-address",
                f"{HOST}:{self.port}",
                "--redis.addr",
                f"redis://{HOST}:{self.target_port}",
                *self.args,
            ],
            stdout=logf,
            stderr=subprocess.STDOUT,
        )
        logf.close()
        try:
            wait_for(lambda: self.alive() and self.scrape_text(), 20, what="the exporter")
        except AssertionError:
            self.stop(signal.SIGKILL)
            raise AssertionError(f"prometheus-redis-exporter did not start:\n{self.log()}")
        return self

    def scrape_text(self) -> str:
        with urllib.request.urlopen(f"http://{HOST}:{self.port}/metrics", timeout=10) as r:
            return r.read().decode()

    def scrape(self) -> dict[str, float]:
        """'name{labels}' (labels as the exporter prints them) -> value."""
        out: dict[str, float] = {}
        for line in self.scrape_text().splitlines():
            if not line or line.startswith("#"):
                continue
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
        return out


def metric(m: dict[str, float], name: str, **labels: str) -> Optional[float]:
    """The value of name with exactly these labels (any order), else None."""
    want = {f'{k}="{v}"' for k, v in labels.items()}
    for key, v in m.items():
        base, _, rest = key.partition("{")
        if base != name:
            continue
        have = set(rest.rstrip("}").split(",")) if rest else set()
        have.discard("")
        if have == want:
            return v
    return None
