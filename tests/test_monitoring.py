"""SLOWLOG, LATENCY and ROLE beside redis-server, and their configs."""

from __future__ import annotations

import socket
import time

import pytest
import redis
from support.differential import same
from support.nodes import wait_for
from support.resp import Conn, encode, parse_typed


def entries(conn: Conn, count: str = "-1") -> list:
    """SLOWLOG GET's entries without what differs between servers (id,
    time, duration, client address)."""
    rep = parse_typed(conn.call("SLOWLOG", "GET", count))
    out = []
    for e in rep[1]:
        f = e[1]
        out.append((f[3], f[5]))
    return out


def test_slowlog_entries_as_redis(r, rr, constdb_server, redis_server):
    conns = [Conn(s.port) for s in (constdb_server, redis_server)]
    try:
        for c in conns:
            assert c.call("CONFIG", "SET", "slowlog-log-slower-than", "0") == b"+OK\r\n"
            assert c.call("SLOWLOG", "RESET") == b"+OK\r\n"
            c.call("CLIENT", "SETNAME", "app")
            c.call("SET", "x" * 200, "y")
            c.call("RPUSH", "l", *[str(i) for i in range(40)])
            c.call("AUTH", "default", "secret-password")
            c.call("HELLO", "2", "AUTH", "default", "secret-password")
            c.call("MULTI")
            c.call("SET", "a", "1")
            c.call("EXEC")  # EXEC is not logged; the commands inside are
        got = [entries(c) for c in conns]
        assert got[0] == got[1]
        assert [parse_typed(c.call("SLOWLOG", "LEN")) for c in conns][0][1] >= 8
        for c in conns:
            assert c.call("CONFIG", "SET", "slowlog-max-len", "2") == b"+OK\r\n"
        got = [entries(c) for c in conns]
        assert got[0] == got[1] and len(got[0]) == 2
        for cmd in (
            ("SLOWLOG", "GET", "x"),
            ("SLOWLOG", "GET", "-5"),
            ("SLOWLOG", "GET", "0"),
            ("SLOWLOG", "GET", "1", "2"),
            ("SLOWLOG", "LEN", "1"),
            ("SLOWLOG", "NOPE"),
            ("SLOWLOG", "HELP"),
            ("CONFIG", "SET", "slowlog-log-slower-than", "-2"),
            ("CONFIG", "SET", "slowlog-max-len", "-1"),
            ("CONFIG", "SET", "latency-monitor-threshold", "-1"),
        ):
            same(tuple(conns), *cmd)
        # CONFIG GET answers in each server's own order
        got = [parse_typed(c.call("CONFIG", "GET", "slowlog*"))[1] for c in conns]
        assert sorted(map(str, got[0])) == sorted(map(str, got[1]))
    finally:
        for c in conns:
            c.call("CONFIG", "SET", "slowlog-log-slower-than", "10000")
            c.call("CONFIG", "SET", "slowlog-max-len", "128")
            c.call("SLOWLOG", "RESET")
            c.close()


def test_slowlog_off_with_minus_one(r):
    r.config_set("slowlog-log-slower-than", -1)
    try:
        r.slowlog_reset()
        r.set("k", "v")
        assert r.slowlog_len() == 0
    finally:
        r.config_set("slowlog-log-slower-than", 10000)


def test_latency_commands(raw_pair):
    for cmds in (
        [("LATENCY", "LATEST"), ("LATENCY", "HISTORY", "command"), ("LATENCY", "RESET")],
        [("LATENCY", "RESET", "a", "b"), ("LATENCY", "GRAPH", "command"), ("LATENCY", "NOPE")],
        [("LATENCY", "HISTORY"), ("LATENCY", "LATEST", "1"), ("LATENCY", "HELP")],
        [("CONFIG", "GET", "latency-monitor-threshold")],
    ):
        a, b = raw_pair
        assert a.pipeline(cmds) == b.pipeline(cmds), cmds


def test_latency_records_slow_commands(r):
    r.config_set("latency-monitor-threshold", 1)
    try:
        r.latency_reset()
        # KEYS over many keys takes a few milliseconds
        r.mset({f"k{i}": "v" for i in range(200_000)})
        r.keys("*nomatch*")
        latest = r.execute_command("LATENCY", "LATEST")
        events = {e[0] for e in latest}
        assert events & {b"command", b"fast-command"}
        name = sorted(events)[0].decode()
        hist = r.execute_command("LATENCY", "HISTORY", name)
        assert hist and hist[-1][1] >= 1
        assert b"ms" in r.execute_command("LATENCY", "GRAPH", name)
        assert r.execute_command("LATENCY", "RESET") >= 1
        assert r.execute_command("LATENCY", "LATEST") == []
    finally:
        r.config_set("latency-monitor-threshold", 0)


def test_role_answers_master(r):
    role = r.execute_command("ROLE")
    assert role[0] == b"master" and isinstance(role[1], int) and role[2] == []
    info = r.info("replication")
    assert info["role"] == "master" and info["master_repl_offset"] >= 0
    assert len(info["master_replid"]) == 40
    with pytest.raises(redis.ResponseError, match="wrong number of arguments for 'role'"):
        r.execute_command("ROLE", "x")


def test_client_reply_on_off_skip(raw_pair):
    """The bytes a client gets back for a sequence with replies turned off
    and skipped, up to a final PING after CLIENT REPLY ON."""
    from support.resp import encode

    cmds = [
        ("CLIENT", "REPLY"),
        ("CLIENT", "REPLY", "maybe"),
        ("CLIENT", "REPLY", "SKIP"),
        ("SET", "k", "1"),
        ("GET", "k"),
        ("CLIENT", "REPLY", "OFF"),
        ("PING",),
        ("NOSUCHCOMMAND",),
        ("CLIENT", "REPLY", "SKIP"),
        ("INCR", "k"),
        ("CLIENT", "REPLY", "ON"),
        ("CLIENT", "REPLY", "SKIP"),
        ("GET", "k", "extra"),  # an error skipped too
        ("GET", "k"),
        ("ECHO", "end"),
    ]
    got = []
    for conn in raw_pair:
        conn.send_raw(b"".join(encode(*c) for c in cmds))
        data = b""
        while not data.endswith(b"$3\r\nend\r\n"):
            assert conn._fill(time.monotonic() + 5), data
            data, conn.buf = data + conn.buf, b""
        got.append(data)
    assert got[0] == got[1]


def test_client_list_memory_fields(r, constdb_server):
    """qbuf-free, multi-mem, omem and tot-mem hold real figures: a MULTI's
    queued arguments count in multi-mem, replies a client does not read in omem."""
    big = b"x" * (1 << 20)
    r.set("big", big)
    slow = Conn(constdb_server.port)
    tx = Conn(constdb_server.port)
    try:
        slow.call("CLIENT", "SETNAME", "slow")
        tx.call("CLIENT", "SETNAME", "tx")
        slow.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow.send_raw(b"GET big\r\n" * 16)  # 16 MiB of replies it does not read
        tx.call("MULTI")
        tx.call("SET", "k", "v" * 1000)

        def row(name):
            return next(x for x in r.client_list() if x["name"] == name)

        wait_for(lambda: int(row("slow")["omem"]) > 4 << 20, 10, what="omem")
        s, t = row("slow"), row("tx")
        assert int(s["tot-mem"]) > int(s["omem"])
        assert int(t["multi-mem"]) >= 1000 + len("SET") + len("k")
        assert int(t["qbuf-free"]) >= 0 and int(t["tot-mem"]) > 0
    finally:
        slow.close()
        tx.close()


def test_own_client_line_counts_the_running_command(constdb_server, redis_server):
    """CLIENT INFO and the caller's CLIENT LIST line count the command being
    run in qbuf (its bytes as sent) and argv-mem (its arguments), as Redis's;
    another client's line, idle, counts nothing there."""

    def fields(port, *cmd):
        own, other = Conn(port), Conn(port)
        try:
            other.call("CLIENT", "SETNAME", "other")
            own.call("CLIENT", "SETNAME", "own")
            text = own.call(*cmd).decode().split("\r\n", 1)[1]  # (a bulk string)
            rows = {}
            for line in text.strip().splitlines():
                kv = dict(x.split("=", 1) for x in line.split(" ") if "=" in x)
                rows[kv["name"]] = (int(kv["qbuf"]), int(kv["argv-mem"]))
            return rows
        finally:
            own.close()
            other.close()

    for cmd in (("CLIENT", "INFO"), ("CLIENT", "LIST"), ("client", "list", "type", "normal")):
        got = fields(constdb_server.port, *cmd)
        want = fields(redis_server.port, *cmd)
        assert got == want, cmd
        assert got["own"] == (len(encode(*cmd)), sum(len(a) for a in cmd))
        assert got.get("other", (0, 0)) == (0, 0)


def test_latency_histogram_of_a_command_in_several_buckets(r, rr):
    # EVAL once fast and once slow: its histogram has two buckets, counts
    # cumulative up to every call, as Redis's (the server used to crash here)
    spin = "for i = 1, tonumber(ARGV[1]) do end"
    for c in (r, rr):
        c.execute_command("CONFIG", "RESETSTAT")
        c.eval(spin, 0, 1)
        c.eval(spin, 0, 3000000)
    for c in (r, rr):
        got = c.execute_command("LATENCY", "HISTOGRAM", "eval")  # (redis-py: dicts)
        assert list(got) == [b"eval"] and got[b"eval"][b"calls"] == 2, got
        hist = got[b"eval"][b"histogram_usec"]
        bounds, counts = list(hist), list(hist.values())
        assert len(bounds) >= 2 and counts[-1] == 2 and counts[0] == 1, got
        assert bounds == sorted(bounds), got
        # Redis's bounds: 1024 << k ns's highest equivalent value, in usec
        assert set(bounds) <= {((1024 << k) + (8 << k) - 1) // 1000 for k in range(40)}, got
    assert r.ping()
