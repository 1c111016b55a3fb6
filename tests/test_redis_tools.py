"""Redis's own tools against ConstDB: redis-cli (commands, interactive mode
with its COMMAND DOCS help) and redis-benchmark."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import time

from support.nodes import need_tool


def cli(port: int, *args: str, stdin: str | None = None) -> str:
    exe = need_tool("redis-cli")
    p = subprocess.run(
        [exe, "-p", str(port), *args], capture_output=True, text=True, timeout=30, input=stdin
    )
    assert p.returncode == 0, p.stderr
    return p.stdout


def test_redis_cli_server_commands(constdb_server, redis_server, r):
    p = constdb_server.port
    assert cli(p, "ping").strip() == "PONG"
    assert cli(p, "config", "get", "maxclients").split() == ["maxclients", "10000"]
    assert cli(p, "config", "get", "port").split() == ["port", str(p)]
    assert cli(p, "config", "set", "hz", "20").strip() == "OK"
    assert cli(p, "config", "get", "hz").split() == ["hz", "20"]
    assert cli(p, "config", "set", "hz", "10").strip() == "OK"
    out = cli(p, "config", "set", "hz", "x")
    assert out.strip() == (
        "ERR CONFIG SET failed (possibly related to argument 'hz') - "
        "argument couldn't be parsed into an integer"
    )
    assert cli(p, "config", "resetstat").strip() == "OK"
    info = cli(p, "info")
    assert "# Server" in info and "redis_version:7.0.15" in info
    assert f"tcp_port:{p}" in info
    assert "# Keyspace" in info
    assert "cmdstat_config|resetstat:calls=1," in cli(p, "info", "commandstats")
    assert re.search(
        r"^id=\d+ addr=127\.0\.0\.1:\d+ .* cmd=client\|list ", cli(p, "client", "list"), re.M
    )
    assert cli(p, "client", "info").startswith("id=")
    assert re.fullmatch(r"\d+\n", cli(p, "client", "id"))
    assert cli(p, "dbsize").strip() == "0"
    assert cli(p, "time").count("\n") == 2
    assert cli(p, "select", "1").strip() == "OK"
    assert cli(p, "select", "16").strip() == "ERR DB index is out of range"
    assert cli(p, "command", "count").strip().isdigit()
    assert "get" in cli(p, "command", "list").split()
    assert cli(p, "command", "getkeys", "mset", "a", "1", "b", "2").split() == ["a", "b"]
    # COMMAND DOCS: Redis's structure, ConstDB's own summary (the command table)
    docs = cli(p, "command", "docs", "incr").split("\n")
    assert docs[:6] == ["incr", "summary", "Add 1 to a key's integer value; the new value.",
                        "since", "1.0.0", "group"]  # fmt: skip
    # the same output as from Redis
    for args in (
        ("nosuch", "x"),
        ("config", "set", "maxclients", "x"),
        ("config", "get", "maxmemory-policy"),
        ("client", "getname"),
        ("client", "setname", "a b"),
        ("client", "kill", "1.1.1.1:1"),
        ("command", "getkeys", "set", "k", "v"),
        ("command", "info", "get"),
        ("hello", "4"),
        ("exec",),
        ("auth", "x"),
        ("echo", "hello world"),
    ):
        assert cli(p, *args) == cli(redis_server.port, *args), args


def test_redis_cli_pipe_mode(constdb_server, r):
    """redis-cli --pipe: a mass insert of raw RESP."""
    data = "".join(
        f"*3\r\n$3\r\nSET\r\n${len(f'k{i}')}\r\nk{i}\r\n$1\r\nv\r\n" for i in range(5000)
    )
    out = cli(constdb_server.port, "--pipe", stdin=data)
    assert "errors: 0, replies: 5000" in out
    assert r.dbsize() == 5000


def _interactive(port: int, lines: list[str], timeout: float = 20) -> str:
    """Run redis-cli in a pseudo-terminal, as a person would, and return the screen text."""
    exe = need_tool("redis-cli")
    pid, fd = pty.fork()
    if pid == 0:  # child
        os.environ["TERM"] = "dumb"
        os.execv(exe, [exe, "-p", str(port)])
    out = b""
    prompt = f"127.0.0.1:{port}> ".encode()
    deadline = time.monotonic() + timeout

    def read_until(marker: bytes, start: int) -> None:
        nonlocal out
        while marker not in out[start:] and time.monotonic() < deadline:
            r, _, _ = select.select([fd], [], [], 0.1)
            if r:
                try:
                    out += os.read(fd, 65536)
                except OSError:
                    return

    try:
        read_until(prompt, 0)
        for line in lines:
            mark = len(out)
            os.write(fd, line.encode() + b"\r")
            if line == "quit":
                break
            read_until(prompt, mark + len(line))
    finally:
        try:
            os.waitpid(pid, 0) if lines and lines[-1] == "quit" else os.kill(pid, 9)
        except (ChildProcessError, ProcessLookupError):
            pass
        if not (lines and lines[-1] == "quit"):
            os.waitpid(pid, 0)
        os.close(fd)
    text = out.decode("utf-8", "replace").replace("\r", "")
    return re.sub(r"\x1b\[[0-9;]*m", "", text)  # colours


def test_redis_cli_interactive_help_from_command_docs(constdb_server, r):
    screen = _interactive(
        constdb_server.port,
        ["help set", "help mvset", "help client list", "set foo bar", "get foo", "quit"],
    )
    # redis-cli built its help from COMMAND DOCS: the arguments of SET as Redis has them
    assert (
        "SET key value [NX|XX] [GET] [EX seconds|PX milliseconds|EXAT unix-time-seconds|"
        "PXAT unix-time-milliseconds|KEEPTTL]" in screen
    )
    assert "summary: Write a key's string value, with an optional expiry" in screen
    # ConstDB's own commands have their documentation too
    assert "MVSET key value" in screen
    assert "CLIENT LIST [TYPE NORMAL|MASTER|REPLICA|PUBSUB]" in screen
    assert "OK" in screen and '"bar"' in screen
    assert r.get("foo") == b"bar"


def test_redis_benchmark(constdb_server, r):
    exe = need_tool("redis-benchmark")
    p = subprocess.run(
        [
            exe,
            "-p",
            str(constdb_server.port),
            "-t",
            "ping,set,get,incr,sadd,hset,spop,mset",
            "-n",
            "20000",
            "-q",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 0, p.stderr
    # -q: progress updates ending in \r, then one result line per test
    found = re.findall(r"([A-Z_]+(?: \(\d+ keys\))?): ([\d.]+) requests per second", p.stdout)
    tests = {name: float(rps) for name, rps in found}
    assert len(found) == len(tests)
    assert set(tests) == {
        "PING_INLINE",
        "PING_MBULK",
        "SET",
        "GET",
        "INCR",
        "SADD",
        "HSET",
        "SPOP",
        "MSET (10 keys)",
    }
    assert all(v > 0 for v in tests.values())
    assert "ERR" not in p.stdout + p.stderr and "rror" not in p.stdout + p.stderr
    # the server is still up and the data is there
    assert r.ping() is True
    assert int(r.get("counter:__rand_int__")) == 20000
    assert constdb_server.alive()
