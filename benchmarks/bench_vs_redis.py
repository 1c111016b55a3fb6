#!/usr/bin/env python3
"""ConstDB against redis-server, side by side in one run.

Starts a constdb-server (fresh temporary work dir, snapshots off) and a
redis-server (`--save "" --appendonly no`) on free loopback ports, then:

* throughput: redis-benchmark `-c 50` at `-P 1` and `-P 16`, one test at a time
  (SET GET INCR SADD HSET MSET), against each server in turn. For every run it
  records req/s (from `--csv`) and the server's CPU time per request, read from
  /proc/PID/stat (utime + stime) before and after the run;
* memory: RSS (/proc/PID/status VmRSS) of a fresh pair of servers before and
  after writing exactly 1,000,000 small string keys (`key:000000123456` -> 3
  bytes, as redis-benchmark -r writes them) through `redis-cli --pipe`; for
  ConstDB also the part that is its replication backlog (INFO `mem_backlog`,
  CONFIG `repl-backlog-limit`).

It prints markdown tables and the targets (made visible, never asserted):
server CPU per request at -P 16 at most 1.5x redis-server's for SET, GET and
INCR; -P 1 req/s at least 0.8x; memory per small key at most 2.5x.

Every server and tool process it starts is stopped by pid at the end, on error
and on Ctrl-C / SIGTERM. Needs redis-server, redis-benchmark, redis-cli and
redis-py. Linux only (/proc). See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import io
import os
import platform
import random
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Optional

import redis
from benchlib import HOST, free_port

CLK_TCK = os.sysconf("SC_CLK_TCK")
ALL_TESTS = ["set", "get", "incr", "sadd", "hset", "mset"]
# lists and sorted sets: run with --tests (not in the default run). LPOP/RPOP
# and ZPOPMIN pop from a key topped up before each run (unmeasured) so that
# every request pops an element; LRANGE_N reads the first N of a 600-element
# list (a custom command, without the LPUSH phase redis-benchmark -t adds)
LIST_TESTS = ["lpush", "rpush", "lpop", "rpop", "lrange_100", "zadd", "zpopmin"]
# geo and sorted-set algebra: run with --tests geo (not in the default run).
# GEOADD adds a random member at a fixed place (with -r: mostly new members,
# then re-adds that change nothing, in both servers); GEOSEARCH searches a 5 km
# radius (about 20 hits of 20,000 points spread over a 200 x 200 km square, the
# nearest 10 returned with distances); ZUNIONSTORE unions two 1,000-member
# sorted sets sharing half their members into one destination: "zunionstore"
# writes the same result each time (ConstDB then ships nothing: every member is
# in place), "zunionstore_w" multiplies the second set by a random weight, so
# that every request really rewrites the destination (1,000 changed scores)
GEO_TESTS = ["geoadd", "geosearch", "zunionstore", "zunionstore_w"]
CUSTOM = {
    "geoadd": ["GEOADD", "benchgeo:add", "13.361389", "38.115556", "m:__rand_int__"],
    "geosearch": [
        "GEOSEARCH",
        "benchgeo:pts",
        "FROMLONLAT",
        "13.5",
        "38.0",
        "BYRADIUS",
        "5",
        "km",
        "ASC",
        "COUNT",
        "10",
        "WITHDIST",
    ],
    "zunionstore": ["ZUNIONSTORE", "benchz:dst", "2", "benchz:a", "benchz:b"],
    "zunionstore_w": [
        "ZUNIONSTORE",
        "benchz:dstw",
        "2",
        "benchz:a",
        "benchz:b",
        "WEIGHTS",
        "1",
        "__rand_int__",
    ],
}
KNOWN_TESTS = ALL_TESTS + LIST_TESTS + GEO_TESTS + ["lrange_300", "lrange_500", "lrange_600"]
TARGET_CPU_TESTS = ("set", "get", "incr")
TARGET_CPU_RATIO = 1.5  # ConstDB CPU us/req at -P 16 <= 1.5x redis-server's
# lists and sorted sets at -P 16: at most 2x (LRANGE_100 3x)
TARGET_LIST_CPU_RATIO = {t: 2.0 for t in LIST_TESTS}
TARGET_LIST_CPU_RATIO["lrange_100"] = 3.0
# pushes append to packed blocks (issue 10): at most 1.3x
TARGET_LIST_CPU_RATIO.update({"lpush": 1.3, "rpush": 1.3})
# geo and ZUNIONSTORE at -P 16: at most 1.5x (issue 12)
TARGET_LIST_CPU_RATIO.update({t: 1.5 for t in GEO_TESTS})
LRANGE_KEY = "benchlist:lrange"
TARGET_RPS_RATIO = 0.8  # ConstDB req/s at -P 1 >= 0.8x redis-server's
TARGET_MEM_RATIO = 2.5  # ConstDB bytes per small key <= 2.5x redis-server's

# every child process started here, stopped by pid in cleanup()
_children: list[subprocess.Popen] = []


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        sys.exit(f"bench_vs_redis: {tool} not found (apt-get install redis-server redis-tools)")
    return path


def stop_proc(p: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
    """Stop one child by its pid: sig, then SIGKILL if it does not exit."""
    if p.poll() is None:
        try:
            os.kill(p.pid, sig)
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(p.pid, signal.SIGKILL)
            p.wait(5)
        except ProcessLookupError:
            pass
    if p in _children:
        _children.remove(p)


def cleanup() -> None:
    for p in list(reversed(_children)):
        try:
            stop_proc(p)
        except Exception as e:  # keep stopping the others
            log(f"could not stop pid {p.pid}: {e!r}")


def _sigterm(signum, frame):
    raise KeyboardInterrupt


# ------------------------------------------------------------------ servers ---


def cpu_ticks(pid: int) -> tuple[int, int]:
    """(utime, stime) of the whole process (all threads), in clock ticks."""
    with open(f"/proc/{pid}/stat") as f:
        data = f.read()
    # the command name (field 2) may hold spaces: split after its ')'
    fields = data[data.rindex(")") + 2 :].split()
    return int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def constdb_cmd() -> list[str]:
    script = os.path.join(os.path.dirname(sys.executable), "constdb-server")
    if os.path.exists(script):
        return [script]
    found = shutil.which("constdb-server")
    if found:
        return [found]
    return [sys.executable, "-m", "constdb"]


class Server:
    """One server process on a free loopback port, in its own temp dir."""

    def __init__(self, name: str, tmp: str):
        self.name = name
        self.dir = tempfile.mkdtemp(prefix=f"{name.lower()}-", dir=tmp)
        self.port = free_port()
        self.proc: Optional[subprocess.Popen] = None
        self.log_path = os.path.join(self.dir, "server.log")

    def argv(self) -> list[str]:
        raise NotImplementedError

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> Server:
        with open(self.log_path, "ab") as logf:
            self.proc = subprocess.Popen(
                self.argv(), stdout=logf, stderr=subprocess.STDOUT, cwd=self.dir
            )
        _children.append(self.proc)
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start:\n{self.log_tail()}")
            try:
                if self.client(timeout=1).ping():
                    return self
            except (redis.ConnectionError, redis.TimeoutError, OSError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not answer PING:\n{self.log_tail()}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None:
            stop_proc(self.proc)

    def client(self, timeout: float = 60) -> redis.Redis:
        return redis.Redis(host=HOST, port=self.port, socket_timeout=timeout)

    def log_tail(self) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-20:])
        except OSError:
            return ""


class ConstDBServer(Server):
    def __init__(self, tmp: str):
        super().__init__("ConstDB", tmp)
        # snapshots off, like redis-server --save "" (fair CPU accounting)
        self.config = os.path.join(self.dir, "bench.toml")
        with open(self.config, "w") as f:
            f.write('save = []\nlog_level = "WARN"\n')

    def argv(self) -> list[str]:
        return constdb_cmd() + [
            self.config,
            "--port",
            str(self.port),
            "--bind",
            HOST,
            "--work-dir",
            self.dir,
        ]


class RedisServer(Server):
    def __init__(self, tmp: str):
        super().__init__("Redis", tmp)

    def argv(self) -> list[str]:
        return [
            need("redis-server"),
            "--port",
            str(self.port),
            "--bind",
            HOST,
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            self.dir,
            "--daemonize",
            "no",
            "--logfile",
            "",
        ]


# --------------------------------------------------------------- throughput ---


@dataclass
class Sample:
    rps: float
    cpu_us: float  # server CPU microseconds per request (user + system)
    user_us: float
    sys_us: float
    n: int
    wall: float


@dataclass
class Cell:
    """All samples of one (test, pipeline, server)."""

    n: int = 0
    samples: list[Sample] = field(default_factory=list)

    def med(self, attr: str) -> float:
        return statistics.median(getattr(s, attr) for s in self.samples)

    def spread(self, attr: str) -> float:
        """(max - min) / median, in percent."""
        vals = [getattr(s, attr) for s in self.samples]
        m = statistics.median(vals)
        return 100.0 * (max(vals) - min(vals)) / m if m and len(vals) > 1 else 0.0


def _bench_tool(srv: Server, argv_tail: list[str], timeout: float) -> None:
    """An unmeasured redis-benchmark run (filling a key before a measured one)."""
    argv = [need("redis-benchmark"), "-h", HOST, "-p", str(srv.port), "-c", "50", "-P", "16"]
    p = subprocess.Popen(argv + argv_tail, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _children.append(p)
    try:
        _, err = p.communicate(timeout=timeout)
    finally:
        if p in _children:
            _children.remove(p)
    if p.returncode != 0:
        raise RuntimeError(
            f"redis-benchmark fill failed on {srv.name}: {err.decode(errors='replace')}"
        )


def prepare(srv: Server, test: str, n: int, args) -> None:
    """Make the key a pop or range test reads hold enough elements (not measured)."""
    if test in ("lpop", "rpop"):
        c = srv.client()
        want = n + args.clients * 16
        have = c.llen("mylist")
        if have < want:
            _bench_tool(srv, ["-n", str(want - have), "-q", "-t", "rpush"], args.timeout)
        c.close()
    elif test == "zpopmin":
        c = srv.client()
        want = n + args.clients * 16
        for _ in range(5):
            have = c.zcard("myzset")
            if have >= want:
                break
            miss = want - have
            _bench_tool(
                srv,
                [
                    "-n",
                    str(miss + miss // 50 + 100),
                    "-r",
                    "1000000000",
                    "-q",
                    "ZADD",
                    "myzset",
                    "__rand_int__",
                    "element:__rand_int__",
                ],
                args.timeout,
            )
        c.close()
    elif test == "geosearch":
        c = srv.client()
        if c.zcard("benchgeo:pts") < 20_000:
            rnd = random.Random(12)
            args_ = []
            for i in range(20_000):
                args_ += [12.6 + rnd.random() * 1.8, 37.1 + rnd.random() * 1.8, f"p{i}"]
            for i in range(0, len(args_), 3000):
                c.geoadd("benchgeo:pts", args_[i : i + 3000])
        c.close()
    elif test.startswith("zunionstore"):
        c = srv.client()
        if c.zcard("benchz:a") < 1000:
            c.zadd("benchz:a", {f"m{i}": i * 1.5 for i in range(1000)})
            c.zadd("benchz:b", {f"m{i}": i * 0.5 for i in range(500, 1500)})
        c.close()
    elif test.startswith("lrange_"):
        c = srv.client()
        if c.llen(LRANGE_KEY) < 600:
            c.delete(LRANGE_KEY)
            c.rpush(LRANGE_KEY, *([b"xxx"] * 600))
        c.close()


def run_benchmark(srv: Server, test: str, pipeline: int, n: int, args) -> Sample:
    argv = [
        need("redis-benchmark"),
        "-h",
        HOST,
        "-p",
        str(srv.port),
        "-c",
        str(args.clients),
        "-P",
        str(pipeline),
        "-n",
        str(n),
        "--csv",
    ]
    if args.keyspace > 0:
        argv += ["-r", str(args.keyspace)]
    if args.data_size:
        argv += ["-d", str(args.data_size)]
    if test.startswith("lrange_"):
        argv += ["LRANGE", LRANGE_KEY, "0", str(int(test.split("_")[1]) - 1)]
    elif test in CUSTOM:
        argv += CUSTOM[test]
    else:
        argv += ["-t", test]
    prepare(srv, test, n, args)
    t0 = time.monotonic()
    c0 = cpu_ticks(srv.pid)
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _children.append(p)
    try:
        out, err = p.communicate(timeout=args.timeout)
    except subprocess.TimeoutExpired:
        stop_proc(p, signal.SIGKILL)
        raise RuntimeError(f"redis-benchmark timed out after {args.timeout}s: {shlex.join(argv)}")
    finally:
        if p in _children:
            _children.remove(p)
    c1 = cpu_ticks(srv.pid)
    wall = time.monotonic() - t0
    if p.returncode != 0:
        raise RuntimeError(
            f"redis-benchmark failed ({p.returncode}) on {srv.name}: {err.decode(errors='replace')}"
        )
    rps = None
    for row in csv.reader(io.StringIO(out.decode())):
        if row and row[0] != "test":
            rps = float(row[1])
            break
    if rps is None or rps <= 0:
        raise RuntimeError(f"no result from redis-benchmark on {srv.name}: {out!r} {err!r}")
    user_us = (c1[0] - c0[0]) / CLK_TCK * 1e6 / n
    sys_us = (c1[1] - c0[1]) / CLK_TCK * 1e6 / n
    return Sample(rps=rps, cpu_us=user_us + sys_us, user_us=user_us, sys_us=sys_us, n=n, wall=wall)


def pick_n(srv: Server, test: str, pipeline: int, args) -> int:
    """-n for about args.seconds per run, from a short probe (also a warm-up)."""
    if args.requests:
        return args.requests
    probe = 20_000 * pipeline if pipeline > 1 else 20_000
    probe = max(probe, args.clients * pipeline * 20)
    if test.startswith("zunionstore"):
        probe = args.clients * pipeline * 4  # a request costs about 0.1-1 ms
    s = run_benchmark(srv, test, pipeline, probe, args)
    n = int(s.rps * args.seconds)
    n = max(n, args.clients * pipeline * 50, 10_000)
    step = 10_000 if n >= 100_000 else 1_000
    return (n + step - 1) // step * step


def throughput(servers: list[Server], args, cells: dict) -> dict:
    """Fill cells[(test, pipeline, server name)]; kept on failure for the report."""
    for test in args.tests:
        for pl in args.pipelines:
            for srv in servers:
                cell = cells[(test, pl, srv.name)] = Cell()
                cell.n = pick_n(srv, test, pl, args)
    for rep in range(args.repeat):
        for test in args.tests:
            for pl in args.pipelines:
                # alternate which server goes first, so drift hits both alike
                order = servers if rep % 2 == 0 else list(reversed(servers))
                for srv in order:
                    cell = cells[(test, pl, srv.name)]
                    s = run_benchmark(srv, test, pl, cell.n, args)
                    cell.samples.append(s)
                    log(
                        f"  [{rep + 1}/{args.repeat}] {test:5s} -P {pl:<2d} {srv.name:8s}"
                        f" n={cell.n:>9,d} {s.rps:>12,.0f} req/s {s.cpu_us:7.2f} us/req"
                        f" ({s.wall:.1f}s)"
                    )
    return cells


# ------------------------------------------------------------------- memory ---


def set_commands(start: int, stop: int) -> bytes:
    """RESP SET commands for keys start..stop-1, named as redis-benchmark -r names
    them (key:%012d), each with a 3-byte value (redis-benchmark's default -d 3)."""
    out = []
    for i in range(start, stop):
        k = b"key:%012d" % i
        out.append(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$3\r\nxxx\r\n" % (len(k), k))
    return b"".join(out)


def write_keys_file(path: str, nkeys: int) -> None:
    with open(path, "wb") as f:
        for start in range(0, nkeys, 10_000):
            f.write(set_commands(start, min(nkeys, start + 10_000)))


def socket_write(
    srv: Server, nkeys: int, timeout: float, batch: int = 1000, window: int = 4
) -> float:
    """Write the keys over one connection in pipelined batches of `batch` SETs,
    at most `window` batches in flight; check that every reply is +OK."""
    ok = b"+OK\r\n"
    t0 = time.monotonic()
    with socket.create_connection((HOST, srv.port), timeout=timeout) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        inflight: list[int] = []
        buf = bytearray()

        def drain_one() -> None:
            want = inflight.pop(0) * len(ok)
            while len(buf) < want:
                d = s.recv(1 << 16)
                if not d:
                    raise RuntimeError(f"{srv.name} closed the connection while loading keys")
                buf.extend(d)
            if buf[:want] != ok * (want // len(ok)):
                raise RuntimeError(
                    f"{srv.name}: unexpected reply while loading: {bytes(buf[:200])!r}"
                )
            del buf[:want]

        for start in range(0, nkeys, batch):
            stop = min(nkeys, start + batch)
            s.sendall(set_commands(start, stop))
            inflight.append(stop - start)
            if len(inflight) >= window:
                drain_one()
        while inflight:
            drain_one()
        if buf:
            raise RuntimeError(f"{srv.name}: extra replies while loading: {bytes(buf[:200])!r}")
    return time.monotonic() - t0


def pipe_file(srv: Server, path: str, nkeys: int, timeout: float) -> float:
    argv = [need("redis-cli"), "-h", HOST, "-p", str(srv.port), "--pipe"]
    t0 = time.monotonic()
    with open(path, "rb") as stdin:
        p = subprocess.Popen(argv, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        _children.append(p)
        try:
            out, _ = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            stop_proc(p, signal.SIGKILL)
            raise RuntimeError(f"redis-cli --pipe timed out on {srv.name}")
        finally:
            if p in _children:
                _children.remove(p)
    dt = time.monotonic() - t0
    text = out.decode(errors="replace")
    if p.returncode != 0 or f"errors: 0, replies: {nkeys}" not in text:
        raise RuntimeError(f"redis-cli --pipe on {srv.name} failed: {text.strip()}")
    return dt


def settle_rss(pid: int, wait: float = 0.3) -> int:
    time.sleep(wait)
    return rss_bytes(pid)


def config_get(c: redis.Redis, *names: str) -> Optional[str]:
    for name in names:
        try:
            got = c.config_get(name)
        except redis.ResponseError:
            continue
        for v in got.values():
            return v.decode() if isinstance(v, bytes) else str(v)
    return None


def info_field(c: redis.Redis, section: str, name: str) -> Optional[int]:
    v = c.info(section).get(name)
    return int(v) if v is not None else None


def memory(tmp: str, args) -> dict:
    path = os.path.join(tmp, "keys.resp")
    if args.memory_writer == "pipe":
        log(f"memory: generating {args.memory_keys:,d} SET commands for redis-cli --pipe")
        write_keys_file(path, args.memory_keys)
    res: dict = {"nkeys": args.memory_keys}
    for cls in (ConstDBServer, RedisServer):
        srv = cls(tmp).start()
        try:
            c = srv.client()
            c.ping()
            before = settle_rss(srv.pid)
            if args.memory_writer == "pipe":
                dt = pipe_file(srv, path, args.memory_keys, args.timeout)
            else:
                dt = socket_write(srv, args.memory_keys, args.timeout)
            size = c.dbsize()
            if size != args.memory_keys:
                raise RuntimeError(f"{srv.name}: DBSIZE {size} != {args.memory_keys}")
            after = settle_rss(srv.pid, 1.0)
            r = {
                "before": before,
                "after": after,
                "per_key": (after - before) / args.memory_keys,
                "write_s": dt,
                "dbsize": size,
            }
            if isinstance(srv, ConstDBServer):
                # mem_backlog (1a18fcd) was later renamed to Redis's mem_replication_backlog
                bl = info_field(c, "memory", "mem_backlog")
                if bl is None:
                    bl = info_field(c, "memory", "mem_replication_backlog")
                if bl is None:
                    log("  ConstDB INFO memory has no mem_backlog / mem_replication_backlog")
                    bl = 0
                lim = config_get(c, "repl-backlog-limit", "repl_backlog_limit")
                r["backlog"] = bl
                r["backlog_limit"] = int(lim) if lim is not None else None
                r["per_key_ex_backlog"] = (after - before - bl) / args.memory_keys
            else:
                r["used_memory"] = info_field(c, "memory", "used_memory")
            c.close()
            res[srv.name] = r
            log(
                f"  {srv.name:8s} RSS {before / 2**20:7.1f} -> {after / 2**20:7.1f} MiB,"
                f" {r['per_key']:.1f} B/key, write {dt:.2f}s"
            )
        finally:
            srv.stop()
    if os.path.exists(path):
        os.unlink(path)
    return res


# ------------------------------------------------------------------- report ---


def fmt_rate(v: float) -> str:
    return f"{v:,.0f}"


def ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def report(
    cells: Optional[dict], mem: Optional[dict], args, versions: dict, errors: list[str]
) -> str:
    lines: list[str] = []
    add = lines.append
    add("# ConstDB vs redis-server")
    add("")
    add(f"- command: `{args.cmdline}`")
    add(f"- date: {datetime.datetime.now().isoformat(timespec='seconds')}")
    add(f"- host: {platform.node()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    add(
        f"- load average at start {args.load_start}, at end"
        f" {', '.join(f'{x:.2f}' for x in os.getloadavg())} (other work on the machine"
        " inflates req/s noise far more than CPU/req noise)"
    )
    add(f"- versions: {', '.join(f'{k} {v}' for k, v in versions.items())}")
    add(
        f"- redis-benchmark: -c {args.clients}, -P {'/'.join(map(str, args.pipelines))},"
        f" -r {args.keyspace if args.keyspace else '(off)'}, one -t at a time;"
        f" median of {args.repeat} run(s) each"
    )
    add("")
    checks: list[str] = []

    def measured_pairs():
        """(test, pipeline, ConstDB cell, Redis cell) of every cell measured on both."""
        for test in args.tests:
            for pl in args.pipelines:
                a = cells.get((test, pl, "ConstDB"))
                b = cells.get((test, pl, "Redis"))
                if a and b and a.samples and b.samples:
                    yield test, pl, a, b

    if cells:
        add("## Throughput and server CPU per request")
        add("")
        add(
            "| test | pipeline | ConstDB req/s | Redis req/s | req/s ratio |"
            " ConstDB CPU us/req | Redis CPU us/req | CPU ratio |"
        )
        add("|---|---:|---:|---:|---:|---:|---:|---:|")
        for test, pl, a, b in measured_pairs():
            rr = ratio(a.med("rps"), b.med("rps"))
            cr = ratio(a.med("cpu_us"), b.med("cpu_us"))
            add(
                f"| {test.upper()} | {pl} | {fmt_rate(a.med('rps'))} | {fmt_rate(b.med('rps'))}"
                f" | {rr:.2f} | {a.med('cpu_us'):.2f} | {b.med('cpu_us'):.2f} | {cr:.2f} |"
            )
            if pl == 16 and test in TARGET_CPU_TESTS:
                ok = cr <= TARGET_CPU_RATIO
                checks.append(
                    f"- {'met ' if ok else 'MISS'} {test.upper()} -P 16 CPU ratio"
                    f" {cr:.2f} (target <= {TARGET_CPU_RATIO})"
                )
            if pl == 16 and test in TARGET_LIST_CPU_RATIO:
                ok = cr <= TARGET_LIST_CPU_RATIO[test]
                checks.append(
                    f"- {'met ' if ok else 'MISS'} {test.upper()} -P 16 CPU ratio"
                    f" {cr:.2f} (target <= {TARGET_LIST_CPU_RATIO[test]})"
                )
            if pl == 1 and test in ALL_TESTS:
                ok = rr >= TARGET_RPS_RATIO
                checks.append(
                    f"- {'met ' if ok else 'MISS'} {test.upper()} -P 1 req/s ratio"
                    f" {rr:.2f} (target >= {TARGET_RPS_RATIO})"
                )
        add("")
        add("Ratios are ConstDB / Redis. CPU = server utime+stime (/proc/PID/stat) per request.")
        add("")
        add("Noise: (max - min) / median over the repeats, in percent; n = requests per run.")
        add("")
        add(
            "| test | pipeline | n ConstDB | n Redis | ConstDB req/s | Redis req/s |"
            " ConstDB CPU | Redis CPU |"
        )
        add("|---|---:|---:|---:|---:|---:|---:|---:|")
        for test, pl, a, b in measured_pairs():
            add(
                f"| {test.upper()} | {pl} | {a.n:,d} | {b.n:,d} | {a.spread('rps'):.0f}%"
                f" | {b.spread('rps'):.0f}% | {a.spread('cpu_us'):.0f}%"
                f" | {b.spread('cpu_us'):.0f}% |"
            )
        add("")
        add(
            "CPU split (median us/req): user = the server's own code, system = the kernel"
            " (socket reads and writes, wake-ups), which both servers pay alike."
        )
        add("")
        add("| test | pipeline | ConstDB user | ConstDB system | Redis user | Redis system |")
        add("|---|---:|---:|---:|---:|---:|")
        for test, pl, a, b in measured_pairs():
            add(
                f"| {test.upper()} | {pl} | {a.med('user_us'):.2f} | {a.med('sys_us'):.2f}"
                f" | {b.med('user_us'):.2f} | {b.med('sys_us'):.2f} |"
            )
        add("")
    if mem:
        a, b = mem["ConstDB"], mem["Redis"]
        mr = ratio(a["per_key"], b["per_key"])
        add(f"## Memory: {mem['nkeys']:,d} string keys (key:%012d -> 3 bytes)")
        add("")
        add("| server | RSS before | RSS after | bytes/key | DBSIZE | write time |")
        add("|---|---:|---:|---:|---:|---:|")
        for name, r in (("ConstDB", a), ("Redis", b)):
            add(
                f"| {name} | {r['before'] / 2**20:.1f} MiB | {r['after'] / 2**20:.1f} MiB"
                f" | {r['per_key']:.1f} | {r['dbsize']:,d} | {r['write_s']:.2f} s |"
            )
        add("")
        lim = a.get("backlog_limit")
        lim_s = f"{lim:,d} bytes ({lim / 2**20:.0f} MiB)" if lim else "unknown"
        add(f"- bytes/key ratio ConstDB / Redis: **{mr:.2f}**")
        add(
            f"- ConstDB replication backlog (INFO mem_backlog): {a['backlog']:,d} bytes"
            f" ({a['backlog'] / mem['nkeys']:.1f} B/key), repl-backlog-limit {lim_s}"
        )
        mr_ex = ratio(a["per_key_ex_backlog"], b["per_key"])
        add(
            f"- ConstDB excluding the backlog: {a['per_key_ex_backlog']:.1f} B/key,"
            f" ratio {mr_ex:.2f}"
        )
        if b.get("used_memory") is not None:
            add(f"- Redis INFO used_memory after: {b['used_memory']:,d} bytes")
        add("")
        ok = mr <= TARGET_MEM_RATIO
        checks.append(
            f"- {'met ' if ok else 'MISS'} memory per key ratio {mr:.2f}"
            f" (target <= {TARGET_MEM_RATIO}; {mr_ex:.2f} without the backlog)"
        )
    if errors:
        add("## Errors")
        add("")
        for e in errors:
            add(f"- {e}")
        add("")
    if checks:
        add("## Targets (shown, not asserted)")
        add("")
        lines.extend(checks)
        add("")
    return "\n".join(lines)


def versions() -> dict:
    out = {}
    try:
        import constdb

        where = os.path.dirname(os.path.dirname(os.path.abspath(constdb.__file__)))
        desc = constdb.__version__
        head = subprocess.run(
            ["git", "-C", where, "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        )
        if head.returncode == 0:
            dirty = subprocess.run(
                ["git", "-C", where, "status", "--porcelain", "--untracked-files=no"],
                capture_output=True,
                text=True,
            ).stdout.strip()
            desc += f" (git {head.stdout.strip()}{'+dirty' if dirty else ''}, {where})"
        else:
            desc += f" ({where})"
        out["constdb"] = desc
    except Exception:
        out["constdb"] = "?"
    for tool in ("redis-server", "redis-benchmark"):
        try:
            v = subprocess.run([need(tool), "--version"], capture_output=True, timeout=10)
            words = v.stdout.decode().split()
            ver = next((w[2:] for w in words if w.startswith("v=")), None)
            out[tool] = (ver or words[-1]) if words else "?"
        except Exception:
            out[tool] = "?"
    out["redis-py"] = redis.__version__
    return out


# --------------------------------------------------------------------- main ---


def parse_args(argv: Optional[list[str]] = None):
    ap = argparse.ArgumentParser(
        description="ConstDB vs redis-server: throughput, CPU per request, memory per key."
    )
    ap.add_argument("--quick", action="store_true", help="short smoke run (all phases, tiny)")
    ap.add_argument("--out", metavar="FILE", help="also write the report as markdown to FILE")
    ap.add_argument(
        "--tests",
        default=",".join(ALL_TESTS),
        help="comma list of -t tests (default: %(default)s); 'lists' = "
        + ",".join(LIST_TESTS)
        + "; 'geo' = "
        + ",".join(GEO_TESTS),
    )
    ap.add_argument("--pipelines", default="1,16", help="comma list of -P values (%(default)s)")
    ap.add_argument("-c", "--clients", type=int, default=50, help="connections (%(default)s)")
    ap.add_argument(
        "-n",
        "--requests",
        type=int,
        default=0,
        help="requests per run; 0 = calibrate each run to --seconds (default)",
    )
    ap.add_argument(
        "--seconds", type=float, default=3.0, help="target duration of a run (%(default)s)"
    )
    ap.add_argument(
        "--repeat", type=int, default=3, help="runs per cell, median reported (%(default)s)"
    )
    ap.add_argument(
        "-r",
        "--keyspace",
        type=int,
        default=100_000,
        help="redis-benchmark -r (random keys); 0 = one fixed key (%(default)s)",
    )
    ap.add_argument(
        "--memory-keys", type=int, default=1_000_000, help="keys in the memory test (%(default)s)"
    )
    ap.add_argument(
        "--memory-writer",
        choices=("socket", "pipe"),
        default="socket",
        help="load the keys over a socket in pipelined batches of 1000 (default) or as one"
        " stream through redis-cli --pipe",
    )
    ap.add_argument(
        "-d",
        "--data-size",
        type=int,
        default=0,
        help="redis-benchmark -d: value bytes of SET and the like; 0 = its default, 3",
    )
    ap.add_argument("--no-memory", action="store_true", help="skip the memory test")
    ap.add_argument("--no-throughput", action="store_true", help="skip redis-benchmark")
    ap.add_argument(
        "--timeout", type=float, default=300.0, help="limit for one tool run, s (%(default)s)"
    )
    args = ap.parse_args(argv)
    args.tests = [t.strip().lower() for t in args.tests.split(",") if t.strip()]
    if args.tests == ["lists"]:
        args.tests = list(LIST_TESTS)
    if args.tests == ["geo"]:
        args.tests = list(GEO_TESTS)
    bad = [t for t in args.tests if t not in KNOWN_TESTS]
    if bad:
        ap.error(f"unknown test(s) {bad}; choose from {KNOWN_TESTS} (or 'lists', 'geo')")
    args.pipelines = [int(p) for p in args.pipelines.split(",") if p.strip()]
    if args.quick:
        args.seconds = min(args.seconds, 0.5)
        args.repeat = 1
        if args.memory_keys == 1_000_000:
            args.memory_keys = 100_000
    if args.repeat < 1:
        ap.error("--repeat must be >= 1")
    args.load_start = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    args.cmdline = shlex.join(["python", "benchmarks/bench_vs_redis.py"] + sys.argv[1:])
    return args


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    for tool in ("redis-server", "redis-benchmark", "redis-cli"):
        need(tool)
    if not os.path.exists("/proc/self/stat"):
        sys.exit("bench_vs_redis: needs Linux /proc")
    signal.signal(signal.SIGTERM, _sigterm)
    vers = versions()
    cells: Optional[dict] = None
    mem = None
    errors: list[str] = []
    rc = 0
    tmp = tempfile.mkdtemp(prefix="constdb-bench-")
    try:
        if not args.no_throughput:
            cells = {}
            try:
                servers = [ConstDBServer(tmp), RedisServer(tmp)]
                for s in servers:
                    s.start()
                log(
                    f"throughput: ConstDB pid {servers[0].pid} port {servers[0].port},"
                    f" Redis pid {servers[1].pid} port {servers[1].port}"
                )
                throughput(servers, args, cells)
            except Exception as e:
                errors.append(f"throughput: {e}")
                log(f"throughput failed: {e}")
            finally:
                cleanup()
        if not args.no_memory:
            try:
                mem = memory(tmp, args)
            except Exception as e:
                errors.append(f"memory: {e}")
                log(f"memory test failed: {e}")
    except KeyboardInterrupt:
        log("interrupted: stopping servers")
        errors.append("interrupted")
        rc = 130
    finally:
        cleanup()
        shutil.rmtree(tmp, ignore_errors=True)
    text = report(cells, mem, args, vers, errors)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
        log(f"wrote {args.out}")
    return rc or (1 if errors else 0)


if __name__ == "__main__":
    sys.exit(main())
