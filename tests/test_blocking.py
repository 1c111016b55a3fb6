"""Blocking pops, CLIENT UNBLOCK, CLIENT PAUSE and MONITOR: the same
scenarios on ConstDB and on redis-server 7.0, compared byte for byte; a
BLPOP on one node served by a push on another; redis-py and redis-cli."""

from __future__ import annotations

import re
import subprocess
import threading
import time

import pytest
import redis
from support.differential import run_all
from support.nodes import make_node, meet, need_tool, wait_for, wait_linked
from support.resp import Conn


def blocked_clients(port: int) -> int:
    with Conn(port) as c:
        info = c.call("INFO", "clients").decode()
    return int(re.search(r"blocked_clients:(\d+)", info).group(1))


def scenario(port: int, proto: int, steps: list[tuple]) -> list[tuple]:
    """Run steps on connections to one server; what they read, in order.
    Steps: ("send", i, *args) sends without reading; ("call", i, *args);
    ("read", i); ("pipe", i, cmd, ...); ("blocked", n) waits until n clients
    are blocked. An argument "$ID<i>" is connection i's CLIENT ID."""
    conns: dict[int, Conn] = {}
    ids: dict[int, int] = {}
    out: list[tuple] = []

    def conn(i: int) -> Conn:
        if i not in conns:
            conns[i] = Conn(port, proto)
            ids[i] = int(conns[i].call("CLIENT", "ID")[1:-2])
        return conns[i]

    def arg(a):
        if isinstance(a, str) and a.startswith("$ID"):
            return ids[int(a[3:])]
        return a

    try:
        for step in steps:
            kind = step[0]
            if kind == "blocked":
                n = step[1]
                wait_for(lambda n=n: blocked_clients(port) == n, 10, what=f"{n} blocked")
                continue
            c = conn(step[1])
            args = [arg(a) for a in step[2:]]
            if kind == "send":
                c.send(*args)
            elif kind == "call":
                out.append((step[1], c.call(*args)))
            elif kind == "read":
                out.append((step[1], c.read()))
            elif kind == "pipe":
                out.append((step[1], c.pipeline(args)))
            elif kind == "info":  # these INFO clients fields
                text = c.call("INFO", "clients").decode()
                out.append((step[1], [ln for ln in text.split("\r\n") if ln.split(":")[0] in args]))
    finally:
        for c in conns.values():
            c.close()
    return out


def both(constdb_server, redis_server, proto: int, steps: list[tuple]) -> list[tuple]:
    got = scenario(constdb_server.port, proto, steps)
    want = scenario(redis_server.port, proto, steps)
    assert got == want
    return got


@pytest.fixture(params=[2, 3], ids=["resp2", "resp3"])
def proto(request, r, rr):
    return request.param


@pytest.fixture
def blk(constdb_server, redis_server, proto):
    """A scenario on both servers in RESP2 and RESP3: the same transcript."""
    return lambda steps: both(constdb_server, redis_server, proto, steps)


# ---------------------------------------------------------------- at once ---


def test_errors_and_immediate_replies(raw_pair):
    run_all(
        raw_pair,
        [
            ("RPUSH", "l", "a", "b", "c", "d", "e", "f"),
            ("ZADD", "z", "1", "a", "2", "b", "3", "c"),
            ("SET", "s", "x"),
            ("BLPOP", "l", "0"),
            ("BRPOP", "nokey", "l", "0"),
            ("BLPOP", "s", "l", "0"),
            ("BLPOP", "nokey", "s", "0"),
            ("BZPOPMIN", "z", "0"),
            ("BZPOPMAX", "nokey", "z", "1.5"),
            ("BZPOPMIN", "s", "0"),
            ("BLMOVE", "l", "d", "LEFT", "RIGHT", "0"),
            ("BLMOVE", "l", "s", "LEFT", "RIGHT", "0"),
            ("BLMOVE", "s", "d", "LEFT", "RIGHT", "0"),
            ("BLMOVE", "l", "d", "UP", "RIGHT", "0"),
            ("BLMOVE", "l", "d", "LEFT", "RIGHT", "x"),
            ("BRPOPLPUSH", "d", "d", "0"),
            ("RPUSH", "l", "1", "2", "3", "4"),
            ("BLMPOP", "0", "2", "nokey", "l", "RIGHT", "COUNT", "2"),
            ("BLMPOP", "0", "1", "l", "LEFT"),
            ("BLMPOP", "0", "1", "l", "LEFT", "COUNT", "10"),
            ("BZMPOP", "0", "1", "z", "MAX", "COUNT", "5"),
            ("ZADD", "z", "1.5", "a", "2", "b"),
            ("BZMPOP", "0", "2", "nokey", "z", "MIN"),
            ("BLPOP", "l", "abc"),
            ("BLPOP", "l", "-1"),
            ("BLPOP", "l", "nan"),
            ("BLPOP", "l", "inf"),
            ("BLPOP", "l", "1e30"),
            ("BLPOP", "l", " 1"),
            ("BLPOP", "l", ""),
            ("BLPOP", "l", "1e-9999"),
            ("BZPOPMIN", "z", "-0.5"),
            ("BLMPOP", "0", "0", "l", "LEFT"),
            ("BLMPOP", "0", "x", "l", "LEFT"),
            ("BLMPOP", "0", "1", "l"),
            ("BLMPOP", "0", "1", "l", "UP"),
            ("BLMPOP", "0", "1", "l", "LEFT", "COUNT", "0"),
            ("BLMPOP", "0", "1", "l", "LEFT", "COUNT", "1", "COUNT", "1"),
            ("BLMPOP", "0", "1", "l", "LEFT", "FOO"),
            ("BLMPOP", "x", "1", "l", "LEFT"),
            ("BLMPOP", "0", "5", "l", "LEFT"),
            ("BZMPOP", "0", "1", "z", "LEFT"),
            ("BZMPOP", "-1", "1", "z", "MIN"),
            ("BZMPOP", "0", "1", "s", "MIN"),
            ("BLPOP", "l"),
            ("BLMOVE", "a", "b", "LEFT"),
            ("CLIENT", "UNBLOCK", "x"),
            ("CLIENT", "UNBLOCK", "999999"),
            ("CLIENT", "UNBLOCK", "999999", "FOO"),
            ("CLIENT", "UNBLOCK", "999999", "error"),
            ("CLIENT", "PAUSE", "abc"),
            ("CLIENT", "PAUSE", "-1"),
            ("CLIENT", "PAUSE", "1.5"),
            ("CLIENT", "PAUSE", "10", "foo"),
            ("CLIENT", "PAUSE", "10", "ALL", "x"),
            ("client", "Unblock", "1", "timeout", "x"),
        ],
    )


def test_inside_multi_never_blocks(raw_pair):
    run_all(
        raw_pair,
        [
            ("MULTI",),
            ("BLPOP", "nokey", "0"),
            ("BRPOP", "nokey", "0"),
            ("BLMOVE", "nokey", "d", "LEFT", "LEFT", "0"),
            ("BRPOPLPUSH", "nokey", "d", "0"),
            ("BLMPOP", "0", "1", "nokey", "LEFT"),
            ("BZPOPMIN", "nokey", "0"),
            ("BZPOPMAX", "nokey", "0"),
            ("BZMPOP", "0", "1", "nokey", "MIN"),
            ("RPUSH", "l", "a"),
            ("BLPOP", "l", "0"),
            ("BLPOP", "l", "-1"),
            ("EXEC",),
        ],
    )


# ----------------------------------------------------------- blocking ---


def test_first_come_first_served(blk):
    blk(
        [
            ("send", 1, "BLPOP", "k", "0"),
            ("blocked", 1),
            ("send", 2, "BLPOP", "k", "0"),
            ("blocked", 2),
            ("send", 3, "BRPOP", "other", "k", "0"),
            ("blocked", 3),
            ("pipe", 0, ("RPUSH", "k", "a", "b"), ("LLEN", "k"), ("EXISTS", "k")),
            ("read", 1),
            ("read", 2),
            ("call", 0, "RPUSH", "k", "c", "d"),
            ("read", 3),
            ("call", 0, "LRANGE", "k", "0", "-1"),
        ],
    )


def test_served_after_exec_not_inside_it(blk):
    blk(
        [
            ("send", 1, "BLPOP", "k", "0"),
            ("blocked", 1),
            ("pipe", 0, ("MULTI",), ("RPUSH", "k", "a"), ("LLEN", "k"), ("EXEC",), ("LLEN", "k")),
            ("read", 1),
        ],
    )


def test_retyped_key_keeps_waiting_then_served(blk):
    blk(
        [
            ("send", 1, "BLPOP", "k", "0"),
            ("send", 2, "BZPOPMIN", "k", "0"),
            ("blocked", 2),
            ("call", 0, "SET", "k", "x"),
            ("call", 0, "DEL", "k"),
            ("call", 0, "ZADD", "k", "1", "m"),
            ("read", 2),
            ("call", 0, "RPUSH", "k", "v"),
            ("read", 1),
        ],
    )


def test_blmove_chain_and_pipeline_waits(blk):
    blk(
        [
            ("send", 1, "BLMOVE", "a", "b", "LEFT", "RIGHT", "0"),
            ("blocked", 1),
            ("send", 2, "BLPOP", "b", "0"),
            ("send", 2, "PING"),
            ("blocked", 2),
            ("call", 0, "RPUSH", "a", "x", "y"),
            ("read", 1),
            ("read", 2),
            ("read", 2),
            ("call", 0, "LRANGE", "a", "0", "-1"),
            ("call", 0, "LRANGE", "b", "0", "-1"),
            # BLMOVE served into a destination of another type: WRONGTYPE, nothing moved
            ("send", 1, "BRPOPLPUSH", "src", "dst", "0"),
            ("blocked", 1),
            ("call", 0, "SET", "dst", "s"),
            ("call", 0, "RPUSH", "src", "v"),
            ("read", 1),
            ("call", 0, "LRANGE", "src", "0", "-1"),
        ],
    )


def test_mpop_served_with_count(blk):
    blk(
        [
            ("send", 1, "BLMPOP", "0", "2", "k1", "k2", "RIGHT", "COUNT", "3"),
            ("send", 2, "BZMPOP", "0", "2", "z1", "z2", "MAX", "COUNT", "2"),
            ("send", 3, "BZPOPMAX", "z2", "0"),
            ("blocked", 3),
            ("call", 0, "RPUSH", "k2", "a", "b"),
            ("read", 1),
            ("call", 0, "ZADD", "z2", "1", "a", "2", "b", "3", "c"),
            ("read", 2),
            ("read", 3),
        ],
    )


def test_timeouts(blk):
    blk(
        [
            ("call", 1, "BLPOP", "k", "0.05"),
            ("call", 1, "BRPOP", "k", "k2", "0.01"),
            ("call", 1, "BLMOVE", "k", "d", "LEFT", "LEFT", "0.01"),
            ("call", 1, "BRPOPLPUSH", "k", "d", "0.01"),
            ("call", 1, "BLMPOP", "0.01", "1", "k", "LEFT"),
            ("call", 1, "BZPOPMIN", "k", "0.01"),
            ("call", 1, "BZMPOP", "0.01", "1", "k", "MIN"),
            ("send", 1, "BLPOP", "k", "100"),
            ("send", 2, "BLPOP", "k", "0"),
            ("blocked", 2),
            ("info", 0, "blocked_clients", "clients_in_timeout_table"),
            ("call", 0, "RPUSH", "k", "a", "b"),
            ("read", 1),
            ("read", 2),
        ],
    )


def test_client_unblock(blk):
    got = blk(
        [
            ("call", 1, "PING"),
            ("send", 1, "BLPOP", "k", "0"),
            ("blocked", 1),
            ("call", 0, "CLIENT", "UNBLOCK", "$ID1"),
            ("read", 1),
            ("send", 1, "BZPOPMIN", "k", "0"),
            ("blocked", 1),
            ("call", 0, "CLIENT", "UNBLOCK", "$ID1", "ERROR"),
            ("read", 1),
            ("send", 1, "BLMOVE", "k", "d", "LEFT", "LEFT", "0"),
            ("blocked", 1),
            ("call", 0, "CLIENT", "UNBLOCK", "$ID1", "TIMEOUT"),
            ("read", 1),
            ("call", 0, "CLIENT", "UNBLOCK", "$ID1"),
            ("call", 0, "RPUSH", "k", "v"),
            ("call", 0, "LLEN", "k"),
            # WAIT for a replica that no one has: unblocked with its count
            ("send", 1, "WAIT", "1", "0"),
            ("blocked", 1),
            ("call", 0, "CLIENT", "UNBLOCK", "$ID1"),
            ("read", 1),
            ("send", 1, "WAIT", "1", "0"),
            ("blocked", 1),
            ("call", 0, "CLIENT", "UNBLOCK", "$ID1", "ERROR"),
            ("read", 1),
        ],
    )
    assert got[1] == (0, b":1\r\n")


def test_client_list_shows_blocked_command(constdb_server, r):
    with Conn(constdb_server.port) as c:
        c.send("BZPOPMIN", "zz", "0")
        wait_for(lambda: blocked_clients(constdb_server.port) == 1, 10, what="blocked")
        line = [ln for ln in r.execute_command("CLIENT", "LIST").split(b"\n") if b"bzpopmin" in ln]
        assert len(line) == 1 and b" flags=b " in line[0], line
        r.zadd("zz", {"m": 1})
        assert c.read() == b"*3\r\n$2\r\nzz\r\n$1\r\nm\r\n$1\r\n1\r\n"


def test_disconnected_waiter_is_forgotten(constdb_server, r):
    c = Conn(constdb_server.port)
    c.send("BLPOP", "gone", "0")
    wait_for(lambda: blocked_clients(constdb_server.port) == 1, 10, what="blocked")
    c.close()
    wait_for(lambda: blocked_clients(constdb_server.port) == 0, 10, what="unblocked")
    assert r.rpush("gone", "v") == 1
    assert r.lrange("gone", 0, -1) == [b"v"]


def test_redis_py_blocking_calls(constdb_server, r):
    got = []
    t = threading.Thread(target=lambda: got.append(constdb_server.client().blpop(["q1", "q2"])))
    t.start()
    wait_for(lambda: blocked_clients(constdb_server.port) == 1, 10, what="blocked")
    r.rpush("q2", "job")
    t.join(10)
    assert got == [(b"q2", b"job")]
    assert r.blpop(["q1"], timeout=0.05) is None
    assert r.bzpopmin("zq", timeout=0.05) is None
    r.zadd("zq", {"a": 2})
    assert r.bzpopmin("zq", timeout=1) == (b"zq", b"a", 2.0)
    assert r.blmove("nolist", "d", 0.05) is None


# -------------------------------------------------------------- pause ---


def test_client_pause_write_holds_writes_only(blk):
    blk(
        [
            ("call", 0, "CLIENT", "PAUSE", "100000", "WRITE"),
            ("send", 1, "SET", "k", "v"),
            ("send", 1, "GET", "k"),
            ("blocked", 1),
            ("call", 2, "GET", "k"),
            ("call", 2, "MULTI"),
            ("call", 2, "GET", "k"),
            ("send", 2, "EXEC"),
            ("blocked", 1),
            ("call", 3, "MULTI"),
            ("call", 3, "LLEN", "x"),
            ("send", 3, "INCR", "n"),
            ("blocked", 2),
            ("call", 0, "CLIENT", "UNPAUSE"),
            ("read", 1),
            ("read", 1),
            ("read", 2),
            ("read", 3),
            ("call", 3, "EXEC"),
        ],
    )


def test_client_pause_all_holds_everything_until_it_ends(constdb_server, redis_server, proto):
    steps = [
        ("call", 0, "CLIENT", "PAUSE", "300", "ALL"),
        ("send", 1, "PING"),
        ("send", 2, "CLIENT", "UNPAUSE"),
        # (INFO would wait too: nothing shows the two held before the end)
        ("read", 1),
        ("read", 2),
        ("call", 0, "CLIENT", "PAUSE", "0"),
        ("call", 1, "PING"),
    ]
    t0 = time.monotonic()
    both(constdb_server, redis_server, proto, steps)
    assert time.monotonic() - t0 >= 0.6  # each server held the PING about 300 ms


# ------------------------------------------------------------ monitor ---


def _monitor_lines(port: int, cmds: list[tuple]) -> list[str]:
    with Conn(port) as m, Conn(port) as c:
        assert m.call("MONITOR") == b"+OK\r\n"
        for cmd in cmds:
            c.call(*cmd)
        c.call("ECHO", "end")
        lines = []
        while True:
            line = m.read().decode()
            lines.append(re.sub(r"^\+\d+\.\d{6} \[0 [\d.]+:\d+\]", "+T [0 ADDR]", line))
            if '"end"' in line:
                return lines


def test_monitor_lines_as_redis(constdb_server, redis_server, r, rr):
    cmds = [
        ("SET", "k", "v"),
        ("set", "sp ace", 'q"uote\\back\n\r\t\a\b\x00\x7f\xff'.encode("latin-1")),
        ("GET", "k"),
        ("MULTI",),
        ("INCR", "n"),
        ("RPUSH", "l", "a"),
        ("EXEC",),
        ("AUTH", "nopass"),
        ("AUTH", "user", "pass"),
        ("HELLO", "2", "AUTH", "default", "secret"),
        ("CONFIG", "GET", "maxmemory"),
        ("CLIENT", "PAUSE", "0"),
        ("CLIENT", "ID"),
        ("BLPOP", "nolist", "0.01"),
        ("LPOP", "l"),
        ("WRONGARITY",),
        ("GET",),
    ]
    got = _monitor_lines(constdb_server.port, cmds)
    want = _monitor_lines(redis_server.port, cmds)
    assert got == want


def test_monitor_refused_inside_exec_and_said_once(constdb_server, redis_server, r, rr):
    def run(port: int) -> list[bytes]:
        with Conn(port) as m, Conn(port) as c:
            out = m.pipeline([("MULTI",), ("MONITOR",), ("EXEC",), ("MONITOR",)])
            m.send("MONITOR")  # a second MONITOR has no reply
            c.call("SET", "x", "1")
            out.append(re.sub(rb"^\+[\d.]+ \[0 [\d.:]+\]", b"", m.read()))
            return out

    assert run(constdb_server.port) == run(redis_server.port)


def test_reset_ends_monitor(constdb_server, redis_server, r, rr):
    def run(port: int) -> list[bytes]:
        with Conn(port) as m, Conn(port) as c:
            out = [m.call("MONITOR"), m.call("RESET")]
            c.call("SET", "x", "1")
            out.append(m.call("PING"))  # no monitor line before the PONG
            return out

    assert run(constdb_server.port) == run(redis_server.port)


def test_redis_cli_monitor(constdb_server, r):
    cli = need_tool("redis-cli")
    p = subprocess.Popen(
        [cli, "-p", str(constdb_server.port), "monitor"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert p.stdout.readline().strip() == "OK"
        wait_for(lambda: b"O" in _flags_of_monitor(r), 10, what="monitor flag")
        r.set("mk", "hello world")
        line = p.stdout.readline()
        assert re.fullmatch(r'\d+\.\d{6} \[0 127\.0\.0\.1:\d+\] "SET" "mk" "hello world"\n', line)
    finally:
        p.terminate()
        p.wait(10)


def _flags_of_monitor(r: redis.Redis) -> bytes:
    for ln in r.execute_command("CLIENT", "LIST").split(b"\n"):
        if b"cmd=monitor" in ln:
            return ln.split(b" flags=")[1].split(b" ")[0]
    return b""


# -------------------------------------------------------- across nodes ---


def test_blpop_on_b_served_by_rpush_on_a(node):
    a = make_node(node, "a")
    b = make_node(node, "b")
    assert meet(a, b) == 1
    wait_linked([a, b])
    with Conn(b.port) as waiter, Conn(b.port, 3) as mon:
        assert mon.call("MONITOR") == b"+OK\r\n"
        waiter.send("BLPOP", "jobs", "0")
        waiter.send("LLEN", "jobs")
        wait_for(lambda: blocked_clients(b.port) == 1, 10, what="blocked on b")
        a.client().rpush("jobs", "j1", "j2")
        assert waiter.read() == b"*2\r\n$4\r\njobs\r\n$2\r\nj1\r\n"
        assert waiter.read() == b":1\r\n"
        # the monitor saw the BLPOP, the peer's insert, then the LLEN that
        # waited behind the BLPOP
        seen: list[str] = []
        while not seen or '"LLEN"' not in seen[-1]:
            line = mon.read().decode()
            if '"INFO" "clients"' not in line:  # (blocked_clients polls)
                seen.append(line)
        assert seen[0].endswith('"BLPOP" "jobs" "0"\r\n'), seen
        assert re.fullmatch(r'\+\d+\.\d{6} \[0 peer:a\] "lins" "jobs"\r\n', seen[1]), seen
        assert seen[2].endswith('"LLEN" "jobs"\r\n'), seen
    # the pop on b is an ordinary local pop: a sees it
    wait_for(lambda: a.client().lrange("jobs", 0, -1) == [b"j2"], 10, what="pop replicated")
    # a zset waiter on a, served by b
    with Conn(a.port) as w:
        w.send("BZPOPMAX", "z", "0")
        wait_for(lambda: blocked_clients(a.port) == 1, 10, what="blocked on a")
        b.client().zadd("z", {"m": 5})
        assert w.read() == b"*3\r\n$1\r\nz\r\n$1\r\nm\r\n$1\r\n5\r\n"


def test_peers_writes_apply_during_a_pause(node):
    a = make_node(node, "a")
    b = make_node(node, "b")
    assert meet(a, b) == 1
    wait_linked([a, b])
    rb = b.client()
    with Conn(b.port) as w:
        w.send("BLPOP", "q", "0")
        wait_for(lambda: blocked_clients(b.port) == 1, 10, what="blocked on b")
        assert rb.execute_command("CLIENT", "PAUSE", "60000", "WRITE")
        try:
            a.client().set("from-a", "1")
            a.client().rpush("q", "job")
            wait_for(lambda: rb.get("from-a") == b"1", 10, what="a's write applied on paused b")
            wait_for(lambda: rb.llen("q") == 1, 10, what="a's push applied on paused b")
            # the waiter is not served while b is paused: its pop would be a write
            assert blocked_clients(b.port) == 1
        finally:
            with Conn(b.port) as c:
                assert c.call("CLIENT", "UNPAUSE") == b"+OK\r\n"
        assert w.read() == b"*2\r\n$1\r\nq\r\n$3\r\njob\r\n"
    wait_for(lambda: a.client().llen("q") == 0, 10, what="b's pop replicated to a")


def test_pause_keeps_the_stricter_mode_and_longer_end(constdb_server, r):
    with Conn(constdb_server.port) as ctl, Conn(constdb_server.port) as w:
        t0 = time.monotonic()
        assert ctl.call("CLIENT", "PAUSE", "1500", "WRITE") == b"+OK\r\n"
        assert ctl.call("CLIENT", "PAUSE", "10", "ALL") == b"+OK\r\n"  # ALL until the 1.5 s end
        assert w.call("PING") == b"+PONG\r\n"
        assert time.monotonic() - t0 >= 1.4


def test_unblock_leaves_a_client_held_by_a_pause(constdb_server, r):
    # (redis-server 7.0.15 crashes on CLIENT UNBLOCK of a client held by a pause)
    with Conn(constdb_server.port) as ctl, Conn(constdb_server.port) as w:
        wid = int(w.call("CLIENT", "ID")[1:-2])
        assert ctl.call("CLIENT", "PAUSE", "100000", "WRITE") == b"+OK\r\n"
        w.send("SET", "k", "v")
        wait_for(lambda: blocked_clients(constdb_server.port) == 1, 10, what="SET held")
        assert ctl.call("CLIENT", "UNBLOCK", wid) == b":0\r\n"
        assert ctl.call("GET", "k") == b"$-1\r\n"
        assert ctl.call("CLIENT", "UNPAUSE") == b"+OK\r\n"
        assert w.read() == b"+OK\r\n"
        assert ctl.call("GET", "k") == b"$1\r\nv\r\n"
