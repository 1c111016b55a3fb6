"""Real server processes for the tests: constdb-server and redis-server on free
loopback ports. Every process started here is stopped by pid."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from typing import Callable, Optional

import redis

HOST = "127.0.0.1"


def free_port(host: str = HOST) -> int:
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(fam, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_for(
    cond: Callable[[], object],
    timeout: float = 10.0,
    interval: float = 0.02,
    what: str = "condition",
):
    """Poll cond until it returns a truthy value; fail with what after timeout."""
    deadline = time.monotonic() + timeout
    last_exc: Optional[BaseException] = None
    while True:
        try:
            v = cond()
            if v:
                return v
        except Exception as e:  # keep polling: the process may still be starting
            last_exc = e
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout}s waiting for {what}"
                + (f" (last error: {last_exc!r})" if last_exc else "")
            )
        time.sleep(interval)


def need_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise AssertionError(
            f"{name} is not installed: the tests need it (apt-get install redis-server redis-tools)"
        )
    return path


def server_cmd() -> list[str]:
    """The installed console script next to this interpreter, else -m constdb."""
    script = os.path.join(os.path.dirname(sys.executable), "constdb-server")
    if os.path.exists(script):
        return [script]
    found = shutil.which("constdb-server")
    if found:
        return [found]
    return [sys.executable, "-m", "constdb"]


class Proc:
    """A server process on a loopback port."""

    port: int
    host: str = HOST
    proc: Optional[subprocess.Popen] = None
    log_path: str = ""

    def client(self, **kw) -> redis.Redis:
        kw.setdefault("socket_timeout", 10)
        return redis.Redis(host=self.host, port=self.port, **kw)

    def ping(self) -> bool:
        with socket.create_connection((self.host, self.port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            data = s.recv(64)
            return data.startswith(b"+PONG") or data.startswith(b"-NOAUTH")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> Optional[int]:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        rc = self.proc.returncode
        return rc

    def kill(self) -> None:
        self.stop(signal.SIGKILL)


class ConstDB(Proc):
    def __init__(
        self,
        work_dir: str,
        port: Optional[int] = None,
        args: tuple = (),
        config: Optional[str] = None,
        host: str = HOST,
    ):
        self.work_dir = work_dir
        self.host = host
        self.port = port or free_port(host)
        self.args = list(args)
        self.config = config
        os.makedirs(work_dir, exist_ok=True)
        self.log_path = os.path.join(work_dir, "server.log")

    def argv(self) -> list[str]:
        cmd = server_cmd()
        if self.config is not None:
            cmd.append(self.config)
        return (
            cmd
            + ["--port", str(self.port), "--bind", self.host, "--work-dir", self.work_dir]
            + self.args
        )

    def start(self, wait: bool = True) -> ConstDB:
        logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            self.argv(), stdout=logf, stderr=subprocess.STDOUT, cwd=self.work_dir
        )
        logf.close()
        if wait:
            try:
                wait_for(
                    lambda: self.alive() and self.ping(), 20, what=f"constdb on port {self.port}"
                )
            except AssertionError:
                self.stop(signal.SIGKILL)
                raise AssertionError(f"constdb-server did not start:\n{self.log()}")
        return self

    def restart(self) -> ConstDB:
        self.stop()
        return self.start()


class RedisServer(Proc):
    def __init__(self, work_dir: str, port: Optional[int] = None):
        self.exe = need_tool("redis-server")
        self.port = port or free_port()
        self.work_dir = work_dir
        os.makedirs(work_dir, exist_ok=True)
        self.log_path = os.path.join(work_dir, "redis.log")

    def start(self) -> RedisServer:
        logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [
                self.exe,
                "--port",
                str(self.port),
                "--bind",
                HOST,
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self.work_dir,
                "--daemonize",
                "no",
            ],
            stdout=logf,
            stderr=subprocess.STDOUT,
            cwd=self.work_dir,
        )
        logf.close()
        try:
            wait_for(
                lambda: self.alive() and self.ping(), 20, what=f"redis-server on port {self.port}"
            )
        except AssertionError:
            self.stop(signal.SIGKILL)
            raise AssertionError(f"redis-server did not start:\n{self.log()}")
        return self


def raw_command(
    port: int,
    payload: bytes,
    host: str = HOST,
    read_timeout: float = 2.0,
    expect_close: bool = False,
) -> bytes:
    """Send raw bytes and read what comes back until the reply stalls or the
    server closes the connection."""
    with socket.create_connection((host, port), timeout=read_timeout) as s:
        s.sendall(payload)
        chunks = []
        s.settimeout(read_timeout if expect_close else 0.5)
        while True:
            try:
                d = s.recv(65536)
            except socket.timeout:
                break
            if not d:
                break
            chunks.append(d)
        return b"".join(chunks)
