#!/usr/bin/env python3
"""What TLS costs, ConstDB beside redis-server, in one run.

Makes a CA and certificates with the openssl CLI in a temporary directory,
starts a constdb-server (snapshots off) with `port` and `tls_port` and a
redis-server (`--save "" --appendonly no`) with `--port` and `--tls-port`, all
on free loopback ports, both requiring client certificates (each's default).
Then, for SET and GET at -P 1 and -P 16 (redis-benchmark -c 50), it runs
redis-benchmark against each server's plain port and its TLS port (`--tls
--cacert --cert --key`), alternating, `--repeat` times, and records the
median req/s and the server's CPU time per request (/proc/PID/stat).

It prints a markdown table and, per test, the TLS cost ratio of each server:
plain req/s / TLS req/s and TLS CPU per request / plain CPU per request, and
whether ConstDB's ratio is no worse than Redis's (made visible, not asserted).
With --ab a third server joins the same rounds: ConstDB with
CONSTDB_TLS_PYTHON=1, whose TLS layer takes the Python-level path (ssl's
SSLObject and MemoryBIO methods) instead of calling OpenSSL directly; the
table then shows both paths beside Redis. Each redis-benchmark run opens 50
new connections, so the TLS figures include 50 handshakes; --steady measures
instead over a window (--window seconds after --warmup seconds) of a long
run, CPU per command counted by INFO's total_commands_processed: what TLS
costs a request on connections already made. --handshake measures the
connections themselves: --conns connections in a row to each server, each a
TCP connect, a TLS handshake (TLS 1.3, the client certificate verified, as
redis-benchmark --tls makes them; the client is Python's ssl over the same
OpenSSL), one PING and a close, then as many plain ones, alternating servers,
--repeat rounds; the server's CPU per connection comes from
/proc/PID/task/*/schedstat (nanoseconds). With --jemalloc another ConstDB
joins, started with LD_PRELOAD=libjemalloc.so.2 (what Debian's redis-server
links, so its OpenSSL allocates with jemalloc).
Every process it starts is stopped by pid at the end. Linux only (/proc).
"""

from __future__ import annotations

import argparse
import csv
import ctypes.util
import glob
import io
import os
import signal
import socket
import ssl
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


def openssl(*args: str) -> None:
    subprocess.run([need("openssl"), *args], check=True, capture_output=True)


def make_pki(d: str) -> dict[str, str]:
    """A CA and one certificate (server and client use) it signs, EC P-256."""
    ca_key, ca_crt = os.path.join(d, "ca.key"), os.path.join(d, "ca.crt")
    key, csr, crt = (os.path.join(d, f"node.{x}") for x in ("key", "csr", "crt"))
    ext = os.path.join(d, "node.ext")
    with open(ext, "w") as f:
        f.write(
            "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth,clientAuth\n"
            "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
        )
    openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", ca_key)
    openssl("req", "-x509", "-new", "-key", ca_key, "-days", "2", "-subj", "/CN=bench CA",
            "-out", ca_crt)  # fmt: skip
    openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key)
    openssl("req", "-new", "-key", key, "-subj", "/CN=bench", "-out", csr)
    openssl("x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key, "-CAcreateserial",
            "-days", "2", "-extfile", ext, "-out", crt)  # fmt: skip
    return {"ca": ca_crt, "cert": crt, "key": key}


PY_PATH = "ConstDB (Python path)"
JEMALLOC = "ConstDB (jemalloc)"


class Srv:
    def __init__(self, name: str, tmp: str, pki: dict[str, str]):
        self.name = name
        self.constdb = name.startswith("ConstDB")
        self.dir = tempfile.mkdtemp(prefix=f"{name.split()[0].lower()}-", dir=tmp)
        self.port = free_port()
        self.tls_port = free_port()
        self.pki = pki
        self.proc: subprocess.Popen | None = None

    def argv(self) -> list[str]:
        p = self.pki
        if self.constdb:
            cfg = os.path.join(self.dir, "bench.toml")
            with open(cfg, "w") as f:
                f.write(
                    f'save = []\nlog_level = "WARN"\ntls_port = {self.tls_port}\n'
                    f'tls_cert_file = "{p["cert"]}"\ntls_key_file = "{p["key"]}"\n'
                    f'tls_ca_cert_file = "{p["ca"]}"\n'
                )
            return constdb_cmd() + [cfg, "--port", str(self.port), "--bind", HOST,
                                    "--work-dir", self.dir]  # fmt: skip
        return [need("redis-server"), "--port", str(self.port), "--bind", HOST,
                "--tls-port", str(self.tls_port), "--tls-cert-file", p["cert"],
                "--tls-key-file", p["key"], "--tls-ca-cert-file", p["ca"],
                "--save", "", "--appendonly", "no", "--dir", self.dir,
                "--daemonize", "no", "--logfile", ""]  # fmt: skip

    def start(self) -> Srv:
        env = dict(os.environ)
        if self.name == PY_PATH:
            env["CONSTDB_TLS_PYTHON"] = "1"
        if self.name == JEMALLOC:
            lib = ctypes.util.find_library("jemalloc")
            if lib is None:
                raise RuntimeError(
                    "--jemalloc: no libjemalloc found (apt-get install libjemalloc2)"
                )
            env["LD_PRELOAD"] = lib
        with open(os.path.join(self.dir, "server.log"), "ab") as logf:
            self.proc = subprocess.Popen(self.argv(), stdout=logf, stderr=subprocess.STDOUT,
                                         cwd=self.dir, env=env)  # fmt: skip
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


def commands(port: int) -> int:
    out = subprocess.run([need("redis-cli"), "-h", HOST, "-p", str(port), "INFO", "stats"],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    for line in out.splitlines():
        if line.startswith("total_commands_processed:"):
            return int(line.split(":")[1])
    raise RuntimeError("INFO stats has no total_commands_processed")


def run(srv: Srv, test: str, tls: bool, pipeline: int, n: int, clients: int,
        steady: tuple[float, float] | None = None) -> tuple[float, float]:  # fmt: skip
    """(req/s, server CPU microseconds per request) of one redis-benchmark run,
    or with steady=(warmup, window) of a window inside a long run."""
    argv = [need("redis-benchmark"), "-h", HOST, "-c", str(clients), "-P", str(pipeline),
            "-n", str(n if steady is None else 10**9), "-r", "100000", "-t", test,
            "--csv"]  # fmt: skip
    if tls:
        p = srv.pki
        argv += ["-p", str(srv.tls_port), "--tls", "--cacert", p["ca"], "--cert", p["cert"],
                 "--key", p["key"]]  # fmt: skip
    else:
        argv += ["-p", str(srv.port)]
    assert srv.proc is not None
    if steady is not None:
        bench = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _children.append(bench)
        try:
            time.sleep(steady[0])
            c0, (u0, s0), t0 = commands(srv.port), cpu_ticks(srv.proc.pid), time.monotonic()
            time.sleep(steady[1])
            c1, (u1, s1), t1 = commands(srv.port), cpu_ticks(srv.proc.pid), time.monotonic()
        finally:
            stop_proc(bench, signal.SIGKILL)
        done = c1 - c0 - 1  # the first INFO counts
        return done / (t1 - t0), ((u1 - u0) + (s1 - s0)) / CLK_TCK * 1e6 / done
    u0, s0 = cpu_ticks(srv.proc.pid)
    out = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    u1, s1 = cpu_ticks(srv.proc.pid)
    if out.returncode != 0:
        raise RuntimeError(f"redis-benchmark failed on {srv.name}: {out.stderr}")
    rows = [r for r in csv.reader(io.StringIO(out.stdout)) if r and r[0] != "test"]
    rps = float(rows[0][1])
    cpu_us = ((u1 - u0) + (s1 - s0)) / CLK_TCK * 1e6 / n
    return rps, cpu_us


def cpu_ns(pid: int) -> int:
    """CPU time of all the process's threads so far, in nanoseconds."""
    total = 0
    for path in glob.glob(f"/proc/{pid}/task/*/schedstat"):
        try:
            with open(path) as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass  # a thread that ended meanwhile
    return total


def client_context(pki: dict[str, str]) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(pki["ca"])
    ctx.load_cert_chain(pki["cert"], pki["key"])
    return ctx


def one_connection(port: int, ctx: ssl.SSLContext | None) -> None:
    """Connect (TLS if ctx), PING, read PONG, close (no close_notify, as a
    client that just goes away)."""
    with socket.create_connection((HOST, port), timeout=10) as raw:
        s: socket.socket = raw if ctx is None else ctx.wrap_socket(raw, server_hostname=HOST)
        s.sendall(b"*1\r\n$4\r\nPING\r\n")
        got = b""
        while not got.endswith(b"\r\n"):
            chunk = s.recv(64)
            if not chunk:
                break
            got += chunk
        if got != b"+PONG\r\n":
            raise RuntimeError(f"port {port}: {got!r} instead of +PONG")
        if s is not raw:
            s.close()


def connections_cpu(srv: Srv, ctx: ssl.SSLContext | None, n: int) -> float:
    """The server's CPU microseconds per connection over n connections."""
    assert srv.proc is not None
    port = srv.tls_port if ctx is not None else srv.port
    for _ in range(10):  # warm
        one_connection(port, ctx)
    c0 = cpu_ns(srv.proc.pid)
    for _ in range(n):
        one_connection(port, ctx)
    return (cpu_ns(srv.proc.pid) - c0) / n / 1000


def handshakes(servers: list[Srv], pki: dict[str, str], conns: int, repeat: int) -> None:
    ctx = client_context(pki)
    got: dict[tuple[str, bool], list[float]] = {}
    for rnd in range(repeat):
        for srv in servers if rnd % 2 == 0 else list(reversed(servers)):
            for tls in (True, False):
                us = connections_cpu(srv, ctx if tls else None, conns)
                got.setdefault((srv.name, tls), []).append(us)
                log(f"round {rnd + 1} {srv.name} {'TLS' if tls else 'plain'}:"
                    f" {us:.0f} us CPU/connection")  # fmt: skip
    print(f"Server CPU per connection (connect, TLS handshake or not, PING, close),"
          f" {conns} connections a run, median of {repeat} (min-max)\n")  # fmt: skip
    print("| server | TLS us/conn | plain us/conn | handshake us (TLS - plain) | vs Redis |")
    print("|---|---:|---:|---:|---:|")
    med = {k: statistics.median(v) for k, v in got.items()}
    redis_hs = med[("Redis", True)] - med[("Redis", False)]
    for srv in servers:
        t, p = got[(srv.name, True)], got[(srv.name, False)]
        hs = med[(srv.name, True)] - med[(srv.name, False)]
        print(f"| {srv.name} | {med[(srv.name, True)]:.0f} ({min(t):.0f}-{max(t):.0f})"
              f" | {med[(srv.name, False)]:.0f} ({min(p):.0f}-{max(p):.0f})"
              f" | {hs:.0f} | {hs / redis_hs:.2f}x |")  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=200_000, help="requests per run at -P 16")
    ap.add_argument("--n1", type=int, default=50_000, help="requests per run at -P 1")
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="small runs, one repeat")
    ap.add_argument(
        "--steady",
        action="store_true",
        help="CPU per command over a window of a long run (no handshakes)",
    )
    ap.add_argument("--warmup", type=float, default=1.5)
    ap.add_argument("--window", type=float, default=4.0)
    ap.add_argument("--ab", action="store_true",
                    help="also ConstDB with its TLS layer's Python-level path")  # fmt: skip
    ap.add_argument("--handshake", action="store_true",
                    help="server CPU per connection (handshake + PING) instead")  # fmt: skip
    ap.add_argument("--conns", type=int, default=300, help="connections a run (--handshake)")
    ap.add_argument("--jemalloc", action="store_true",
                    help="also ConstDB under LD_PRELOAD=libjemalloc.so.2")  # fmt: skip
    args = ap.parse_args()
    if args.quick:
        args.n, args.n1, args.repeat = 40_000, 10_000, 1
    signal.signal(signal.SIGTERM, _sigterm)
    tmp = tempfile.mkdtemp(prefix="bench-tls-")
    results: dict[tuple[str, str, int, bool], list[tuple[float, float]]] = {}
    try:
        pki = make_pki(tmp)
        names = ["ConstDB", PY_PATH, "Redis"] if args.ab else ["ConstDB", "Redis"]
        if args.jemalloc:
            names.insert(1, JEMALLOC)
        servers = [Srv(name, tmp, pki).start() for name in names]
        if args.handshake:
            handshakes(servers, pki, args.conns, args.repeat)
            return 0
        for rnd in range(args.repeat):
            for test in ("set", "get"):
                for pipeline in (1, 16):
                    n = args.n1 if pipeline == 1 else args.n
                    for srv in servers if rnd % 2 == 0 else reversed(servers):
                        for tls in (False, True) if rnd % 2 == 0 else (True, False):
                            steady = (args.warmup, args.window) if args.steady else None
                            r = run(srv, test, tls, pipeline, n, args.clients, steady)
                            results.setdefault((srv.name, test, pipeline, tls), []).append(r)
                            log(f"round {rnd + 1} {srv.name} {test} -P {pipeline}"
                                f" {'tls' if tls else 'plain'}: {r[0]:.0f} req/s,"
                                f" {r[1]:.2f} us CPU/req")  # fmt: skip
        for srv in servers:
            assert srv.proc is not None
            stop_proc(srv.proc)
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        cleanup()

    def med(name, test, p, tls, i):
        return statistics.median(x[i] for x in results[(name, test, p, tls)])

    how = f"a {args.window:g} s window after {args.warmup:g} s" if args.steady else "whole runs"
    print(f"TLS vs plain, redis-benchmark -c {args.clients}, {how}, median of {args.repeat}\n")
    print("| test | server | plain req/s | TLS req/s | req/s cost | plain CPU us/req"
          " | TLS CPU us/req | CPU cost |")  # fmt: skip
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    verdicts = []
    for test in ("set", "get"):
        for p in (1, 16):
            cost = {}
            for name in names:
                pr, tr = med(name, test, p, False, 0), med(name, test, p, True, 0)
                pc, tc = med(name, test, p, False, 1), med(name, test, p, True, 1)
                cost[name] = (pr / tr, tc / pc)
                print(f"| {test.upper()} -P {p} | {name} | {pr:.0f} | {tr:.0f} | {pr / tr:.2f}x"
                      f" | {pc:.2f} | {tc:.2f} | {tc / pc:.2f}x |")  # fmt: skip
            ok = cost["ConstDB"][1] <= cost["Redis"][1] * 1.05
            verdicts.append(
                f"{test.upper()} -P {p}: ConstDB's TLS CPU cost {cost['ConstDB'][1]:.2f}x,"
                f" Redis's {cost['Redis'][1]:.2f}x: {'no worse' if ok else 'WORSE'}"
                f" (req/s cost {cost['ConstDB'][0]:.2f}x vs {cost['Redis'][0]:.2f}x)"
                + (f"; the Python-level path's {cost[PY_PATH][1]:.2f}x" if args.ab else "")
            )
    print("\nTarget: ConstDB's TLS cost ratio no worse than Redis's (within 5%)")
    for v in verdicts:
        print(f"- {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
