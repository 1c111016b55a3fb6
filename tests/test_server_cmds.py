"""Connection, server and transaction commands, compared byte for byte with
the real redis-server 7.0 (RESP2 and RESP3). Where the content differs by
nature (INFO, CLIENT LIST, COMMAND DOCS of ConstDB's own commands) the format
and the fields are checked instead."""

from __future__ import annotations

import re
import threading

import pytest
import redis
from support.nodes import wait_for
from support.resp import Conn, encode, exchange

# ---- differential cases: each is a pipeline sent on a fresh connection -----------------------

CASES = {
    "ping": [("PING",), ("PING", "hello"), ("PING", "a", "b"), ("ping",), ("PiNg", "x")],
    "echo": [("ECHO",), ("ECHO", "hi"), ("ECHO", "a", "b"), ("ECHO", "")],
    "select": [
        ("SELECT", "0"),
        ("SELECT", "x"),
        ("SELECT", "-1"),
        ("SELECT", "99999999999999999999"),
        ("SELECT", "1.5"),
        ("SELECT",),
        ("SELECT", "0", "1"),
    ],
    "unknown": [
        ("FOO",),
        ("FOO", "a", "b"),
        ("FOO", "x" * 200),
        ("FOO", *["abcdefghij"] * 20),
        ("FOO", "a\r\nb"),
        ("GET",),
        ("SET", "a"),
    ],
    "dbsize_time": [("DBSIZE",), ("DBSIZE", "x"), ("TIME", "x"), ("SET", "k", "v"), ("DBSIZE",)],
    "flush": [
        ("SET", "k", "v"),
        ("FLUSHALL", "x"),
        ("FLUSHALL", "a", "b"),
        ("FLUSHDB", "x"),
        ("DBSIZE",),
        ("FLUSHALL", "ASYNC"),
        ("DBSIZE",),
        ("SET", "k", "v"),
        ("FLUSHDB", "sync"),
        ("FLUSHALL", "SYNC"),
        ("FLUSHDB",),
        ("FLUSHALL",),
        ("DBSIZE",),
    ],
    "auth_without_password": [
        ("AUTH",),
        ("AUTH", "x"),
        ("AUTH", "default", "x"),
        ("AUTH", "bob", "x"),
        ("AUTH", "a", "b", "c"),
    ],
    "hello": [
        ("HELLO",),
        ("HELLO", "2"),
        ("HELLO", "4"),
        ("HELLO", "1"),
        ("HELLO", "x"),
        ("HELLO", "4", "FOO"),
        ("HELLO", "2", "SETNAME", "foo"),
        ("CLIENT", "GETNAME"),
        ("HELLO", "2", "SETNAME"),
        ("HELLO", "2", "SETNAME", "a b"),
        ("HELLO", "2", "FOO"),
        ("HELLO", "2", "AUTH", "default", "x"),
        ("HELLO", "2", "AUTH", "a", "b"),
        ("HELLO", "2", "AUTH", "default"),
        ("HELLO", "3", "AUTH", "default", "pw", "SETNAME", "n1"),
        ("CLIENT", "GETNAME"),
        ("GET", "nokey"),
        ("HGETALL", "nokey"),
        ("HELLO", "2"),
        ("GET", "nokey"),
    ],
    "reset": [
        ("CLIENT", "SETNAME", "x"),
        ("HELLO", "3"),
        ("MULTI",),
        ("RESET",),
        ("CLIENT", "GETNAME"),
        ("GET", "nokey"),
        ("EXEC",),
        ("RESET", "x"),
    ],
    "quit": [("PING",), ("QUIT",), ("PING",)],
    "quit_args": [("QUIT", "x")],
    "multi_basic": [
        ("MULTI",),
        ("SET", "a", "1"),
        ("INCR", "a"),
        ("GET", "a"),
        ("EXEC",),
        ("GET", "a"),
    ],
    "multi_nested_and_without": [
        ("EXEC",),
        ("DISCARD",),
        ("MULTI",),
        ("MULTI",),
        ("PING",),
        ("EXEC",),
        ("MULTI",),
        ("DISCARD",),
        ("DISCARD",),
        ("MULTI",),
        ("EXEC",),
    ],
    "multi_queue_errors": [
        ("MULTI",),
        ("SET", "a"),
        ("SET", "b", "1"),
        ("EXEC",),
        ("EXISTS", "b"),
        ("MULTI",),
        ("NOSUCH", "x"),
        ("EXEC",),
        ("MULTI",),
        ("CONFIG", "NOSUCH"),
        ("EXEC",),
        ("MULTI",),
        ("CLIENT", "SETNAME"),
        ("EXEC",),
    ],
    "multi_runtime_errors": [
        ("SET", "s", "x"),
        ("MULTI",),
        ("INCR", "s"),
        ("SET", "s2", "y"),
        ("SADD", "s2", "m"),
        ("GET", "s2"),
        ("EXEC",),
    ],
    "multi_special": [
        ("MULTI",),
        ("WATCH", "a"),
        ("EXEC",),
        ("MULTI",),
        ("UNWATCH",),
        ("PING",),
        ("EXEC",),
        ("MULTI",),
        ("SHUTDOWN", "ABORT"),
        ("EXEC",),
        ("MULTI",),
        ("SAVE",),
        ("EXEC",),
        ("MULTI",),
        ("SELECT", "0"),
        ("ECHO", "x"),
        ("CLIENT", "GETNAME"),
        ("EXEC",),
    ],
    "exec_rejected": [
        ("EXEC", "x"),
        ("MULTI",),
        ("SET", "k", "v"),
        ("EXEC", "x"),
        ("EXEC",),
        ("EXISTS", "k"),
        ("DISCARD", "x"),
        ("MULTI", "x"),
    ],
    "multi_quit": [("MULTI",), ("SET", "k", "v"), ("QUIT",)],
    "watch_args": [("WATCH",), ("UNWATCH", "x"), ("WATCH", "a", "b"), ("UNWATCH",)],
    "watch_own_write": [
        ("WATCH", "w"),
        ("SET", "w", "1"),
        ("MULTI",),
        ("INCR", "w"),
        ("EXEC",),
        ("GET", "w"),
        ("WATCH", "w"),
        ("MULTI",),
        ("INCR", "w"),
        ("EXEC",),
        ("GET", "w"),
    ],
    "watch_then_unwatch": [
        ("WATCH", "w"),
        ("SET", "w", "1"),
        ("UNWATCH",),
        ("MULTI",),
        ("INCR", "w"),
        ("EXEC",),
    ],
    "client_basic": [
        ("CLIENT",),
        ("CLIENT", "FOO"),
        ("CLIENT", "foo", "bar"),
        ("CLIENT", "GETNAME"),
        ("CLIENT", "GETNAME", "x"),
        ("CLIENT", "SETNAME"),
        ("CLIENT", "SETNAME", "a b"),
        ("CLIENT", "SETNAME", "a\nb"),
        ("CLIENT", "SETNAME", "ab"),
        ("CLIENT", "GETNAME"),
        ("CLIENT", "SETNAME", ""),
        ("CLIENT", "GETNAME"),
        ("CLIENT", "ID", "x"),
        ("CLIENT", "INFO", "x"),
        ("CLIENT", "NO-EVICT", "on"),
        ("CLIENT", "NO-EVICT", "x"),
        ("CLIENT", "NO-EVICT"),
    ],
    "client_kill": [
        ("CLIENT", "KILL"),
        ("CLIENT", "KILL", "1.2.3.4:5"),
        ("CLIENT", "KILL", "ID", "x"),
        ("CLIENT", "KILL", "ID", "0"),
        ("CLIENT", "KILL", "ID", "-3"),
        ("CLIENT", "KILL", "ID", "99999"),
        ("CLIENT", "KILL", "FOO", "x"),
        ("CLIENT", "KILL", "ID"),
        ("CLIENT", "KILL", "ID", "1", "ID"),
        ("CLIENT", "KILL", "TYPE", "foo"),
        ("CLIENT", "KILL", "TYPE", "pubsub"),
        ("CLIENT", "KILL", "TYPE", "master"),
        ("CLIENT", "KILL", "SKIPME", "maybe"),
        ("CLIENT", "KILL", "USER", "nobody"),
        ("CLIENT", "KILL", "MAXAGE", "1000"),
        ("CLIENT", "KILL", "ADDR", "1.2.3.4:5", "SKIPME", "yes"),
    ],
    "client_list_args": [
        ("CLIENT", "LIST", "TYPE", "foo"),
        ("CLIENT", "LIST", "TYPE", "pubsub"),
        ("CLIENT", "LIST", "TYPE", "replica"),
        ("CLIENT", "LIST", "ID", "x"),
        ("CLIENT", "LIST", "ID", "0"),
        ("CLIENT", "LIST", "ID", "99999"),
        ("CLIENT", "LIST", "FOO"),
        ("CLIENT", "LIST", "TYPE"),
        ("CLIENT", "LIST", "ID"),
    ],
    "config_errors": [
        ("CONFIG",),
        ("CONFIG", "FOO"),
        ("CONFIG", "GET"),
        ("CONFIG", "GET", "nosuch"),
        ("CONFIG", "SET", "nosuch", "1"),
        ("CONFIG", "SET", "NoSuch", "1", "maxclients", "10"),
        ("CONFIG", "SET", "maxclients"),
        ("CONFIG", "SET", "maxclients", "x"),
        ("CONFIG", "SET", "MAXCLIENTS", "x"),
        ("CONFIG", "SET", "maxclients", "0"),
        ("CONFIG", "SET", "maxclients", "10", "maxclients", "11"),
        ("CONFIG", "SET", "timeout", "x"),
        ("CONFIG", "SET", "timeout", "-1"),
        ("CONFIG", "SET", "daemonize", "yes"),
        ("CONFIG", "SET", "databases", "4"),
        ("CONFIG", "SET", "hz", "10", "timeout"),
        ("CONFIG", "SET", "proto-max-bulk-len", "foo"),
        ("CONFIG", "SET", "save", "1 x"),
        ("CONFIG", "RESETSTAT", "x"),
        ("CONFIG", "REWRITE", "x"),
        ("CONFIG", "GET", "timeout"),
        ("CONFIG", "GET", "TIMEOUT"),
        ("CONFIG", "GET", "maxmemory-policy"),
        ("CONFIG", "GET", "appendonly"),
        ("CONFIG", "GET", "daemonize"),
        ("CONFIG", "GET", "hz", "hz", "HZ"),
        ("CONFIG", "GET", "loglevel"),
        ("CONFIG", "GET", "maxclients"),
        ("CONFIG", "SET", "maxclients", "500", "timeout", "100"),
        ("CONFIG", "GET", "maxclients"),
        ("CONFIG", "GET", "timeout"),
        ("CONFIG", "SET", "maxclients", "10000", "timeout", "0"),
        ("CONFIG", "SET", "loglevel", "foo"),
        ("CONFIG", "SET", "loglevel", "warning"),
        ("CONFIG", "GET", "loglevel"),
        ("CONFIG", "SET", "loglevel", "notice"),
        ("CONFIG", "SET", "proto-max-bulk-len", "1"),
        ("CONFIG", "SET", "proto-max-bulk-len", "512mb"),
        ("CONFIG", "GET", "proto-max-bulk-len"),
        ("CONFIG", "HELP", "x"),
        ("CONFIG", "HELP"),
    ],
    "command_misc": [
        ("COMMAND", "COUNT", "x"),
        ("COMMAND", "FOO"),
        ("COMMAND", "HELP"),
        ("COMMAND", "INFO", "nosuch"),
        ("COMMAND", "INFO", "get", "nosuch", "client|id", "CLIENT|GETNAME", "client|nosuch"),
        ("COMMAND", "INFO", "lmove", "mset", "sintercard", "watch", "exec"),
        ("COMMAND", "DOCS", "nosuch"),
        ("COMMAND", "LIST", "x"),
        ("COMMAND", "LIST", "FILTERBY", "FOO", "x"),
        ("COMMAND", "LIST", "FILTERBY", "MODULE", "x"),
        ("COMMAND", "LIST", "FILTERBY", "ACLCAT", "nosuch"),
        ("COMMAND", "LIST", "FILTERBY", "PATTERN", "ping*"),
    ],
    "command_getkeys": [
        ("COMMAND", "GETKEYS"),
        ("COMMAND", "GETKEYS", "nosuch"),
        ("COMMAND", "GETKEYS", "nosuch", "x"),
        ("COMMAND", "GETKEYS", "get"),
        ("COMMAND", "GETKEYS", "get", "a"),
        ("COMMAND", "GETKEYS", "get", "a", "b"),
        ("COMMAND", "GETKEYS", "ping", "x"),
        ("COMMAND", "GETKEYS", "set", "a"),
        ("COMMAND", "GETKEYS", "set", "a", "b", "EX", "10"),
        ("COMMAND", "GETKEYS", "mset", "a", "1", "b", "2"),
        ("COMMAND", "GETKEYS", "mset", "a", "b", "c"),
        ("COMMAND", "GETKEYS", "mget", "a", "b", "c"),
        ("COMMAND", "GETKEYS", "smove", "a", "b", "c"),
        ("COMMAND", "GETKEYS", "sintercard", "2", "a", "b"),
        ("COMMAND", "GETKEYS", "sintercard", "3", "a", "b"),
        ("COMMAND", "GETKEYS", "sintercard", "x", "a", "b"),
        ("COMMAND", "GETKEYS", "config", "get", "x"),
        ("COMMAND", "GETKEYS", "config", "foo", "x"),
        ("COMMAND", "GETKEYS", "client", "id"),
        ("COMMAND", "GETKEYSANDFLAGS", "set", "a", "b"),
        ("COMMAND", "GETKEYSANDFLAGS", "set", "a", "b", "GET"),
        ("COMMAND", "GETKEYSANDFLAGS", "smove", "a", "b", "c"),
        ("COMMAND", "GETKEYSANDFLAGS", "get"),
    ],
    "shutdown_args": [
        ("SHUTDOWN", "ABORT"),
        ("SHUTDOWN", "FOO"),
        ("SHUTDOWN", "NOSAVE", "SAVE"),
        ("SHUTDOWN", "ABORT", "NOW"),
        ("SHUTDOWN", "NOW", "FORCE", "ABORT"),
    ],
    "info_args": [("INFO", "nosuch"), ("INFO", "keyspace"), ("INFO", "nosuch", "keyspace")],
    "errors_keep_connection": [
        ("SET", "s", "x"),
        ("INCR", "s"),
        ("SADD", "s", "m"),
        ("NOSUCH",),
        ("GET",),
        ("PING",),
    ],
}


@pytest.fixture
def ports(r, rr, constdb_server, redis_server):
    return constdb_server.port, redis_server.port


@pytest.mark.parametrize("name", sorted(CASES))
def test_same_replies_as_redis_resp2(ports, name):
    cport, rport = ports
    assert exchange(cport, CASES[name]) == exchange(rport, CASES[name])


@pytest.mark.parametrize("name", sorted(CASES))
def test_same_replies_as_redis_resp3(ports, name):
    cport, rport = ports
    assert exchange(cport, CASES[name], resp3=True) == exchange(rport, CASES[name], resp3=True)


def test_select_beyond_databases_is_out_of_range(r):
    # databases = 16: 0 .. 15 (tests/test_databases.py has the rest)
    with pytest.raises(redis.ResponseError, match="^DB index is out of range$"):
        r.execute_command("SELECT", "16")
    assert r.execute_command("SELECT", "15") in (True, b"OK")
    assert r.execute_command("SELECT", "0") in (True, b"OK")


# ---- two connections: WATCH ----------------------------------------------------------------

WATCH_SCENARIOS = {
    # (connection, command): connection 0 watches, 1 interferes
    "other_client_writes": [
        (0, ("WATCH", "k")),
        (1, ("SET", "k", "x")),
        (0, ("MULTI",)),
        (0, ("SET", "k", "mine")),
        (0, ("EXEC",)),
        (0, ("GET", "k")),
    ],
    "other_client_writes_same_value": [
        (1, ("SET", "k", "x")),
        (0, ("WATCH", "k")),
        (1, ("SET", "k", "x")),
        (0, ("MULTI",)),
        (0, ("PING",)),
        (0, ("EXEC",)),
    ],
    "other_client_deletes": [
        (1, ("SADD", "k", "a")),
        (0, ("WATCH", "k")),
        (1, ("DEL", "k")),
        (0, ("MULTI",)),
        (0, ("PING",)),
        (0, ("EXEC",)),
    ],
    "other_key_untouched": [
        (0, ("WATCH", "k")),
        (1, ("SET", "other", "x")),
        (0, ("MULTI",)),
        (0, ("SET", "k", "1")),
        (0, ("EXEC",)),
    ],
    "read_does_not_dirty": [
        (1, ("SET", "k", "x")),
        (0, ("WATCH", "k")),
        (1, ("GET", "k")),
        (1, ("EXISTS", "k")),
        (0, ("MULTI",)),
        (0, ("PING",)),
        (0, ("EXEC",)),
    ],
    "watch_missing_then_created": [
        (0, ("WATCH", "k")),
        (1, ("HSET", "k", "f", "v")),
        (0, ("MULTI",)),
        (0, ("PING",)),
        (0, ("EXEC",)),
    ],
    "flushall_touches": [
        (1, ("SET", "k", "x")),
        (0, ("WATCH", "k")),
        (1, ("FLUSHALL",)),
        (0, ("MULTI",)),
        (0, ("PING",)),
        (0, ("EXEC",)),
    ],
    "exec_clears_watch": [
        (0, ("WATCH", "k")),
        (0, ("MULTI",)),
        (0, ("PING",)),
        (0, ("EXEC",)),
        (1, ("SET", "k", "x")),
        (0, ("MULTI",)),
        (0, ("PING",)),
        (0, ("EXEC",)),
    ],
    "discard_clears_watch": [
        (0, ("WATCH", "k")),
        (0, ("MULTI",)),
        (0, ("DISCARD",)),
        (1, ("SET", "k", "x")),
        (0, ("MULTI",)),
        (0, ("PING",)),
        (0, ("EXEC",)),
    ],
    "dirty_with_queue_error": [
        (0, ("WATCH", "k")),
        (1, ("SET", "k", "x")),
        (0, ("MULTI",)),
        (0, ("GET",)),
        (0, ("EXEC",)),
    ],
    "expired_key_watched": [
        (1, ("SET", "k", "x", "PX", "30")),
        (0, ("WATCH", "k")),
        (0, ("DEBUG_SLEEP", 0.1)),
        (0, ("MULTI",)),
        (0, ("PING",)),
        (0, ("EXEC",)),
    ],
}


def run_scenario(port: int, steps: list) -> list[bytes]:
    import time

    conns = [Conn(port), Conn(port)]
    try:
        out = []
        for i, cmd in steps:
            if cmd[0] == "DEBUG_SLEEP":
                time.sleep(cmd[1])
                continue
            out.append(conns[i].call(*cmd))
        return out
    finally:
        for c in conns:
            c.close()


@pytest.mark.parametrize("name", sorted(WATCH_SCENARIOS))
def test_watch_same_as_redis(ports, name):
    cport, rport = ports
    steps = WATCH_SCENARIOS[name]
    assert run_scenario(cport, steps) == run_scenario(rport, steps)


# ---- redis-py: transactions, RESP3 ---------------------------------------------------------


def test_redis_py_uses_resp3_and_it_works(constdb_server, r):
    info = r.client_info()
    assert info["resp"] == "3"
    assert info["lib-name"] == "redis-py"
    assert r.ping() is True
    assert r.echo("x") == b"x"
    r.set("a", 1)
    assert r.get("a") == b"1"
    assert r.dbsize() == 1
    t = r.time()
    assert isinstance(t, tuple) and len(t) == 2


def test_redis_py_pipeline_transaction(r):
    with r.pipeline(transaction=True) as p:
        p.set("a", 1).incr("a").get("a").sadd("s", "x", "y").scard("s")
        assert p.execute() == [True, 2, b"2", 2, 2]
    with r.pipeline(transaction=True) as p:
        p.set("a", 1).incr("a").execute_command("SET", "b")
        with pytest.raises(redis.ResponseError):
            p.execute()
    # the queued error aborted the whole transaction
    assert r.get("a") == b"2"


def test_redis_py_transaction_retries_on_watch_conflict(constdb_server, r):
    other = constdb_server.client()
    r.set("counter", 0)
    attempts = []

    def incr(pipe):
        v = int(pipe.get("counter"))
        attempts.append(v)
        if len(attempts) == 1:
            other.incr("counter")  # a concurrent write: the first EXEC must fail
        pipe.multi()
        pipe.set("counter", v + 10)

    r.transaction(incr, "counter")
    assert attempts == [0, 1]
    assert r.get("counter") == b"11"
    other.close()


def test_transaction_is_atomic_for_other_clients(constdb_server, r):
    """No command of another client runs between a transaction's commands."""
    n = 200
    stop = threading.Event()
    seen_odd = []

    def reader():
        c = constdb_server.client()
        while not stop.is_set():
            a, b = c.mget("x", "y")
            if a != b:
                seen_odd.append((a, b))
        c.close()

    t = threading.Thread(target=reader)
    t.start()
    try:
        for i in range(n):
            with r.pipeline(transaction=True) as p:
                p.set("x", i).set("y", i)
                p.execute()
    finally:
        stop.set()
        t.join(10)
    assert seen_odd == []


# ---- AUTH / requirepass -------------------------------------------------------------------

AUTH_CASES = [
    ("PING",),
    ("GET", "a"),
    ("FOO",),
    ("GET",),
    ("CLIENT", "ID"),
    ("CLIENT", "FOO"),
    ("HELLO",),
    ("HELLO", "3"),
    ("HELLO", "2", "SETNAME", "x"),
    ("MULTI",),
    ("EXEC",),
    ("AUTH",),
    ("AUTH", "x"),
    ("AUTH", "bob", "pw"),
    ("AUTH", "default", "x"),
    ("PING",),
    ("AUTH", "pw"),
    ("PING",),
    ("AUTH", "x"),
    ("PING",),
    ("RESET",),
    ("PING",),
    ("HELLO", "3", "AUTH", "default", "x"),
    ("HELLO", "2", "AUTH", "default", "pw"),
    ("PING",),
    ("AUTH", "default", "pw"),
    ("QUIT",),
]


@pytest.fixture
def with_password(ports):
    """requirepass pw on both servers (set at run time), cleared afterwards."""
    clients = []
    for port in ports:
        c = redis.Redis(port=port, protocol=2)
        c.config_set("requirepass", "pw")
        clients.append(c)
    yield ports
    for c in clients:
        c.config_set("requirepass", "")
        c.close()


def test_auth_same_as_redis(with_password):
    cport, rport = with_password
    assert exchange(cport, AUTH_CASES) == exchange(rport, AUTH_CASES)


def test_auth_protocol_limits_before_auth_same_as_redis(with_password):
    for payload in (b"*11\r\n", b"*2\r\n$16385\r\n", b"*10\r\n$4\r\nPING\r\n"):
        got = []
        for port in with_password:
            with Conn(port) as w:
                w.send_raw(payload)
                got.append(w.rest_until_close(timeout=0.5))
        assert got[0] == got[1], payload
    # after AUTH the limits are the usual ones
    for port in with_password:
        with Conn(port) as w:
            assert w.call("AUTH", "pw") == b"+OK\r\n"
            assert w.call(*["ECHO"] + ["x" * 20000]).startswith(b"$20000\r\n")


def test_requirepass_flag(node):
    n = node("--requirepass", "s3cret").start()
    with Conn(n.port) as w:
        assert w.call("GET", "a") == b"-NOAUTH Authentication required.\r\n"
        assert w.call("AUTH", "nope") == (
            b"-WRONGPASS invalid username-password pair or user is disabled.\r\n"
        )
        assert w.call("AUTH", "s3cret") == b"+OK\r\n"
        assert w.call("GET", "a") == b"$-1\r\n"
    c = n.client(password="s3cret")
    assert c.ping() is True
    c.close()
    c = n.client(username="default", password="s3cret")
    assert c.ping() is True
    c.close()


# ---- COMMAND: formats and the command table ------------------------------------------------


def test_command_table_matches_redis(ports):
    """Every command ConstDB shares with Redis has Redis's arity, flags and
    keys (COMMAND INFO) and Redis's argument structure (COMMAND DOCS), so
    clients and redis-cli treat it as Redis would. The prose is ConstDB's own:
    summaries and key-spec notes differ, complexity and history are absent."""
    cport, rport = ports
    c = RawConn(cport)
    rc = RawConn(rport)
    ours = [n for n in c.execute_command("COMMAND", "LIST") if b"|" not in n]
    theirs = set(rc.execute_command("COMMAND", "LIST"))
    shared = [n for n in ours if n in theirs]
    assert len(shared) >= 90
    own_only = sorted(set(ours) - theirs)
    assert {b"mvset", b"mvget", b"desc"} <= set(own_only)
    for proto in (False, True):
        a = exchange(cport, [("COMMAND", "INFO", *shared)], resp3=proto)
        b = exchange(rport, [("COMMAND", "INFO", *shared)], resp3=proto)
        if a != b:  # containers list only the subcommands ConstDB has
            ca = c.execute_command("COMMAND", "INFO", *shared)
            cb = rc.execute_command("COMMAND", "INFO", *shared)
            for x, y in zip(ca, cb):
                assert _no_notes(x[:9]) == _no_notes(y[:9]), x[0]
    docs_c = _pairs(c.execute_command("COMMAND", "DOCS", *shared))
    docs_r = _pairs(rc.execute_command("COMMAND", "DOCS", *shared))
    for name in shared:
        d_c, d_r = _no_prose(docs_c[name]), _no_prose(docs_r[name])
        if b"subcommands" in d_r:
            subs_c = _pairs(d_c.pop(b"subcommands"))
            subs_r = _pairs(d_r.pop(b"subcommands"))
            assert subs_c and all(
                _no_prose(subs_c[k]) == _no_prose(subs_r[k]) for k in subs_c if k in subs_r
            ), name
        assert d_c == d_r, name
        assert _pairs(docs_c[name])[b"summary"] != _pairs(docs_r[name])[b"summary"], name
    c.close()
    rc.close()


def _pairs(flat):
    return dict(zip(flat[::2], flat[1::2]))


def _no_prose(flat):
    """A COMMAND DOCS entry without its prose (ConstDB writes its own)."""
    d = _pairs(flat)
    for k in (b"summary", b"complexity", b"history", b"replaced_by"):
        d.pop(k, None)
    return d


def _no_notes(entry):
    """A COMMAND INFO entry whose key specs' notes (prose) are blanked."""
    specs = [
        [x if i == 0 or flat[i - 1] != b"notes" else b"" for i, x in enumerate(flat)]
        for flat in entry[8]
    ]
    return [*entry[:8], specs]


class RawConn:
    """A RESP2 connection whose replies are not reshaped by redis-py."""

    def __init__(self, port: int):
        self.conn = redis.connection.Connection(port=port, protocol=2)
        self.conn.connect()

    def execute_command(self, *args):
        self.conn.send_command(*args)
        return self.conn.read_response()

    def close(self):
        self.conn.disconnect()


def test_command_formats(r):
    c = RawConn(r.connection_pool.connection_kwargs["port"])
    count = c.execute_command("COMMAND", "COUNT")
    entries = c.execute_command("COMMAND")
    assert len(entries) == count
    names = c.execute_command("COMMAND", "LIST")
    assert len([n for n in names if b"|" not in n]) == count
    assert b"client|list" in names and b"config|get" in names
    for e in entries:
        assert len(e) == 10
        name, arity, flags, first, last, step, cats, tips, specs, subs = e
        assert isinstance(arity, int) and arity != 0
        assert all(isinstance(f, bytes) for f in flags)
        assert all(x.startswith(b"@") for x in cats)
    own = {e[0]: e for e in entries}
    mvset = own[b"mvset"]
    assert mvset[1] == 3 and b"write" in mvset[2] and mvset[3:6] == [1, 1, 1]
    assert b"@write" in mvset[6]
    assert c.execute_command("COMMAND", "GETKEYS", "MVSET", "k", "v") == [b"k"]
    docs = _pairs(c.execute_command("COMMAND", "DOCS", "mvset", "desc"))
    assert set(docs) == {b"mvset", b"desc"}
    mv = _pairs(docs[b"mvset"])
    assert mv[b"group"] == b"string" and mv[b"summary"]
    assert [_pairs(a)[b"name"] for a in mv[b"arguments"]] == [b"key", b"value"]
    # redis-py's own parser of COMMAND (RESP3)
    assert r.command_count() == count
    assert b"get" in r.command_list() or "get" in r.command_list()
    c.close()


# ---- CLIENT ----------------------------------------------------------------------------------

REDIS_CLIENT_FIELDS = (
    "id addr laddr fd name age idle flags db sub psub ssub multi qbuf qbuf-free argv-mem "
    "multi-mem rbs rbp obl oll omem tot-mem events cmd user redir resp"
).split()


def _fields(line: str) -> dict[str, str]:
    return dict(kv.split("=", 1) for kv in line.split(" "))


def test_client_list_and_info_format(ports, constdb_server):
    cport, rport = ports
    with Conn(rport) as w:
        ref = _fields(_bulk_text(w.call("CLIENT", "INFO")).strip())
    assert list(ref) == REDIS_CLIENT_FIELDS  # the reference itself
    with Conn(cport) as w, Conn(cport) as w2:
        w2.call("CLIENT", "SETNAME", "second")
        w2.call("CLIENT", "SETINFO", "LIB-NAME", "mylib")
        w2.call("CLIENT", "SETINFO", "lib-ver", "1.2")
        w2.call("MULTI")
        w2.call("PING")
        myid = int(w.call("CLIENT", "ID")[1:-2])
        info = _fields(_bulk_text(w.call("CLIENT", "INFO")).strip())
        # Redis 7.0's fields in its order, then 7.2's lib-name and lib-ver
        assert list(info) == REDIS_CLIENT_FIELDS + ["lib-name", "lib-ver"]
        assert info["id"] == str(myid)
        assert info["cmd"] == "client|info"
        assert info["flags"] == "N" and info["multi"] == "-1" and info["db"] == "0"
        assert re.fullmatch(r"127\.0\.0\.1:\d+", info["addr"])
        assert info["laddr"] == f"127.0.0.1:{cport}"
        text = _bulk_text(w.call("CLIENT", "LIST"))
        assert text.endswith("\n")
        lines = [_fields(x) for x in text.strip().split("\n")]
        byid = {int(x["id"]): x for x in lines}
        assert myid in byid
        other = [x for x in lines if x["name"] == "second"][0]
        assert other["lib-name"] == "mylib" and other["lib-ver"] == "1.2"
        assert other["flags"] == "x" and other["multi"] == "1" and other["cmd"] == "multi"
        only = _bulk_text(w.call("CLIENT", "LIST", "ID", other["id"], "99999", str(myid)))
        assert [_fields(x)["id"] for x in only.strip().split("\n")] == [other["id"], str(myid)]
        assert _bulk_text(w.call("CLIENT", "LIST", "TYPE", "normal")).count("\n") == len(lines)
        assert w.call("CLIENT", "KILL", "ID", other["id"]) == b":1\r\n"
        assert w2.rest_until_close()[1] is True
        # old form: by address, and may kill itself (after the reply)
        assert w.call("CLIENT", "KILL", info["addr"]) == b"+OK\r\n"
        assert w.rest_until_close()[1] is True


def test_client_kill_filters(constdb_server, r):
    port = constdb_server.port
    conns = [Conn(port) for _ in range(3)]
    try:
        for i, c in enumerate(conns):
            c.call("CLIENT", "SETNAME", f"k{i}")
        ids = [int(c.call("CLIENT", "ID")[1:-2]) for c in conns]
        me = conns[0]
        assert me.call("CLIENT", "KILL", "LADDR", "1.2.3.4:1") == b":0\r\n"
        # every normal client but the caller (SKIPME yes is the default)
        n = int(me.call("CLIENT", "KILL", "TYPE", "normal")[1:-2])
        assert n >= 2
        for c in conns[1:]:
            assert c.rest_until_close()[1] is True
        assert me.call("PING") == b"+PONG\r\n"
        assert me.call("CLIENT", "KILL", "ID", str(ids[0]), "SKIPME", "no") == b":1\r\n"
        assert me.rest_until_close()[1] is True
    finally:
        for c in conns:
            c.close()


def test_client_setinfo(r):
    # Redis 7.2's CLIENT SETINFO (redis-py sends it on connect)
    assert r.execute_command("CLIENT", "SETINFO", "LIB-NAME", "x") in (True, b"OK")
    with pytest.raises(redis.ResponseError, match="^lib-name cannot contain spaces"):
        r.execute_command("CLIENT", "SETINFO", "lib-name", "a b")
    with pytest.raises(redis.ResponseError, match="^Unrecognized option 'foo'$"):
        r.execute_command("CLIENT", "SETINFO", "foo", "x")
    with pytest.raises(redis.ResponseError, match="wrong number of arguments for 'client|setinfo'"):
        r.execute_command("CLIENT", "SETINFO", "lib-name")


def _bulk_text(reply: bytes) -> str:
    assert reply[:1] in (b"$", b"="), reply
    body = reply.split(b"\r\n", 1)[1][:-2]
    if reply[:1] == b"=":
        body = body[4:]
    return body.decode()


# ---- INFO ------------------------------------------------------------------------------------

INFO_FIELDS = {
    "Server": "redis_version redis_mode os arch_bits multiplexing_api process_id run_id tcp_port "
    "server_time_usec uptime_in_seconds uptime_in_days hz configured_hz executable config_file",
    "Clients": "connected_clients maxclients blocked_clients",
    "Memory": "used_memory used_memory_human used_memory_rss used_memory_peak maxmemory "
    "maxmemory_policy mem_allocator",
    "Persistence": "loading",
    "Stats": "total_connections_received total_commands_processed instantaneous_ops_per_sec "
    "total_net_input_bytes total_net_output_bytes rejected_connections expired_keys "
    "evicted_keys keyspace_hits keyspace_misses total_error_replies",
    "Replication": "role",
    "CPU": "used_cpu_sys used_cpu_user",
    "Cluster": "cluster_enabled",
}


def _info_sections(text: str) -> dict[str, dict[str, str]]:
    assert "\n" not in text.replace("\r\n", "")  # CRLF line ends, as Redis
    out: dict[str, dict[str, str]] = {}
    cur = None
    for line in text.split("\r\n"):
        if not line:
            continue
        if line.startswith("# "):
            cur = out.setdefault(line[2:], {})
            continue
        assert cur is not None and ":" in line, line
        k, v = line.split(":", 1)
        cur[k] = v
    return out


def test_info_format_and_fields(ports):
    cport, rport = ports
    with Conn(cport) as w:
        w.call("CONFIG", "RESETSTAT")
        w.call("SET", "k", "v")
        w.call("PEXPIRE", "k", "100000")
        w.call("SET", "k2", "v")
        w.call("GET", "k")
        w.call("GET", "nokey")
        w.call("INCR", "k")
        w.call("NOSUCHCMD")
        w.call("GET")
        default = _info_sections(_bulk_text(w.call("INFO")))
        every = _info_sections(_bulk_text(w.call("INFO", "everything")))
        some = _info_sections(_bulk_text(w.call("INFO", "keyspace", "SERVER")))
        stats = _info_sections(_bulk_text(w.call("INFO", "commandstats", "errorstats")))
    with Conn(rport) as w:
        ref_default = _info_sections(_bulk_text(w.call("INFO")))
        ref_every = _info_sections(_bulk_text(w.call("INFO", "everything")))
    # the same sections as Redis, in Redis's order
    assert list(default) == list(ref_default)
    assert list(every) == list(ref_every)
    assert list(some) == ["Server", "Keyspace"]
    for section, fields in INFO_FIELDS.items():
        for f in fields.split():
            assert f in default[section], (section, f)
            assert f in ref_default[section], (section, f)
    assert default["Server"]["redis_version"] == "7.0.15"
    assert default["Server"]["tcp_port"] == str(cport)
    assert default["Replication"]["role"] == "master"
    assert default["Keyspace"]["db0"] == "keys=2,expires=1,avg_ttl=0"
    assert int(default["Stats"]["total_error_replies"]) >= 3
    cs = stats["Commandstats"]
    assert re.fullmatch(
        r"calls=2,usec=\d+,usec_per_call=\d+\.\d\d,rejected_calls=1,failed_calls=0",
        cs["cmdstat_get"],
    )
    assert re.fullmatch(r"calls=1,.*,rejected_calls=0,failed_calls=1", cs["cmdstat_incr"])
    assert "cmdstat_info" in cs
    es = stats["Errorstats"]
    assert re.fullmatch(r"count=\d+", es["errorstat_ERR"])


def test_info_commandstats_and_resetstat_same_shape_as_redis(ports):
    cport, rport = ports
    script = [
        ("CONFIG", "RESETSTAT"),
        ("SET", "s", "x"),
        ("INCR", "s"),
        ("CLIENT", "GETNAME"),
        ("GET",),
        ("NOSUCH",),
        ("EXEC",),
        ("INFO", "commandstats", "errorstats"),
    ]
    shapes = []
    for port in (cport, rport):
        text = _bulk_text(exchange(port, script)[-1])
        text = re.sub(r"usec=\d+,usec_per_call=[\d.]+", "usec=U", text)
        # Redis lists commands in its hash order
        shapes.append(sorted(text.split("\r\n")))
    assert shapes[0] == shapes[1]


def test_redis_py_parses_info(r):
    info = r.info()
    assert info["redis_version"] == "7.0.15"
    assert info["connected_clients"] >= 1
    assert r.info("keyspace") == {}
    r.set("a", 1)
    assert r.info("keyspace")["db0"]["keys"] == 1
    assert "cmdstat_set" in r.info("commandstats")
    assert isinstance(r.info("all"), dict)


# ---- CONFIG -------------------------------------------------------------------------------


def test_config_get_set_constdb_keys(r):
    cfg = r.config_get("*")
    # every key of constdb.toml, with Redis's dash style names
    from constdb.config import SPEC

    for key in SPEC:
        assert key.name.replace("_", "-") in cfg, key.name
    assert cfg["port"] == str(r.connection_pool.connection_kwargs["port"])
    assert r.config_get("max_exec_per_round") == {"max_exec_per_round": "16"}
    assert r.config_get("max-exec-*") == {"max-exec-per-round": "16"}
    assert r.config_set("max-exec-per-round", 32) is True
    assert r.config_get("max-exec-per-round") == {"max-exec-per-round": "32"}
    assert r.config_set("max_exec_per_round", 16) is True
    with pytest.raises(
        redis.ResponseError, match="argument must be between 1 and 1000000 inclusive"
    ):
        r.config_set("max-exec-per-round", 0)
    with pytest.raises(redis.ResponseError, match="can't set immutable config"):
        r.config_set("node-id", 5)
    assert r.config_set("save", "100 10 20 5") is True
    assert r.config_get("save") == {"save": "100 10 20 5"}
    assert r.config_set("save", "3600 1 300 100 60 10000") is True
    assert r.config_set("repl-backlog-size", "64mb") is True
    assert r.config_get("repl-backlog-limit") == {"repl-backlog-limit": str(64 * 1024 * 1024)}
    assert r.config_set("repl-backlog-limit", "104857600") is True
    assert r.config_get("dir")["dir"].startswith("/")
    assert r.config_get("databases") == {"databases": "16"}


def test_config_set_maxclients_applies(constdb_server, r):
    r.config_set("maxclients", 1)
    try:
        with Conn(constdb_server.port) as w:
            data, closed = w.rest_until_close(timeout=5)
        assert data == b"-ERR max number of clients reached\r\n" and closed
    finally:
        r.config_set("maxclients", 10000)
    assert r.ping() is True


def test_config_set_timeout_closes_idle_clients(constdb_server, r):
    r.config_set("timeout", 1)
    try:
        with Conn(constdb_server.port) as w:
            w.call("PING")
            data, closed = w.rest_until_close(timeout=5)
            assert closed and data == b""
    finally:
        r.config_set("timeout", 0)


def test_config_rewrite_without_file(r):
    with pytest.raises(redis.ResponseError, match="^The server is running without a config file$"):
        r.execute_command("CONFIG", "REWRITE")


# ---- SHUTDOWN -------------------------------------------------------------------------------


@pytest.mark.parametrize("args", [(), ("NOSAVE",), ("SAVE", "NOW"), ("NOW", "FORCE")])
def test_shutdown_exits_cleanly(node, args):
    n = node().start()
    with Conn(n.port) as w:
        w.send("SHUTDOWN", *args)
        data, closed = w.rest_until_close(timeout=10)
    assert closed and data == b""
    wait_for(lambda: not n.alive(), 10, what="constdb-server exit")
    assert n.proc.returncode == 0
    assert "shutting down (SHUTDOWN)" in n.log()


def test_many_pipelined_requests_in_one_write(constdb_server, r):
    with Conn(constdb_server.port) as w:
        w.send_raw(b"".join(encode("INCR", "n") for _ in range(500)) + b"PING\r\n" * 100)
        got = [w.read() for _ in range(600)]
    assert got[:500] == [b":%d\r\n" % i for i in range(1, 501)]
    assert got[500:] == [b"+PONG\r\n"] * 100
