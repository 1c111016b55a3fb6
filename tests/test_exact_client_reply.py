"""CLIENT REPLY ON / OFF / SKIP byte for byte as redis-server 7: before
MULTI, queued inside it (a queued CLIENT REPLY runs at EXEC: the array
header is written or not by the mode when EXEC starts, each queued reply by
the mode when it is written, a queued SKIP silences the request after EXEC),
with errors in the transaction, in RESP2 and RESP3, and around a blocked
pop."""

from __future__ import annotations

import random
import re
import time

import pytest
from support.resp import Conn, encode

MARK = b"$6\r\nmarker\r\n"


def stream(conn: Conn, cmds) -> bytes:
    """Every byte answered to cmds (pipelined), up to a closing CLIENT REPLY
    ON and ECHO marker: the replies need not form whole RESP values (an EXEC
    header can be kept and its elements dropped)."""
    conn.send_raw(
        b"".join(encode(*c) for c in cmds)
        + encode("CLIENT", "REPLY", "ON")
        + encode("ECHO", "marker")
    )
    deadline = time.monotonic() + 10
    while not conn.buf.endswith(MARK):
        assert conn._fill(deadline), f"no marker; have {conn.buf!r}"
    out, conn.buf = conn.buf[: -len(MARK)], b""
    return out


def R(mode: str) -> tuple:
    return ("CLIENT", "REPLY", mode)


CASES = {
    "off-before-multi": [R("OFF"), ("MULTI",), ("SET", "a", "1"), ("EXEC",), ("PING",)],
    "skip-before-multi": [R("SKIP"), ("MULTI",), ("SET", "a", "1"), ("EXEC",)],
    "skip-before-exec-alone": [R("SKIP"), ("EXEC",), ("PING",)],
    "off-queued-first": [("MULTI",), R("OFF"), ("SET", "a", "1"), ("GET", "a"), ("EXEC",)],
    "off-queued-middle": [("MULTI",), ("SET", "a", "1"), R("OFF"), ("GET", "a"), ("EXEC",)],
    "off-on-queued": [
        ("MULTI",),
        R("OFF"),
        ("SET", "a", "1"),
        R("ON"),
        ("GET", "a"),
        ("EXEC",),
        ("PING",),
    ],
    "off-before-on-queued": [
        R("OFF"),
        ("MULTI",),
        ("SET", "a", "1"),
        R("ON"),
        ("GET", "a"),
        ("EXEC",),
        ("PING",),
    ],
    "skip-last-queued": [
        ("MULTI",),
        ("SET", "a", "1"),
        ("GET", "a"),
        R("SKIP"),
        ("EXEC",),
        ("PING",),
        ("PING", "x"),
    ],
    "skip-first-queued": [
        ("MULTI",),
        R("SKIP"),
        ("SET", "a", "1"),
        ("EXEC",),
        ("PING",),
        ("PING", "x"),
    ],
    "skip-then-on-queued": [("MULTI",), R("SKIP"), R("ON"), ("EXEC",), ("PING",), ("PING", "x")],
    "skip-then-off-queued": [("MULTI",), R("SKIP"), R("OFF"), ("SET", "a", "1"), ("EXEC",)],
    "off-skip-on-queued": [
        ("MULTI",),
        R("OFF"),
        ("SET", "a", "1"),
        R("SKIP"),
        R("ON"),
        ("GET", "a"),
        ("EXEC",),
        ("PING",),
    ],
    "skip-multi-off-queued": [R("SKIP"), ("MULTI",), R("OFF"), ("EXEC",), ("PING",)],
    "runtime-errors": [
        ("MULTI",),
        R("OFF"),
        ("INCR", "a"),
        ("LPUSH", "a", "x"),
        R("ON"),
        ("LPUSH", "a", "y"),
        ("EXEC",),
        ("PING",),
    ],
    "queue-error-execabort": [
        ("MULTI",),
        R("OFF"),
        ("SET", "a", "1"),
        ("NOSUCH",),
        ("EXEC",),
        ("PING",),
    ],
    "queue-error-on-queued": [
        R("OFF"),
        ("MULTI",),
        ("SET", "a", "1"),
        ("NOSUCH", "x"),
        R("ON"),
        ("EXEC",),
        ("PING",),
    ],
    "queue-arity-error-skip": [("MULTI",), R("SKIP"), ("GET",), ("EXEC",), ("PING",)],
    "bad-mode-queued": [("MULTI",), R("BAD"), ("SET", "a", "1"), ("EXEC",)],
    "discard": [R("OFF"), ("MULTI",), ("DISCARD",), R("ON"), ("PING",)],
    "off-queued-discard": [("MULTI",), R("OFF"), ("DISCARD",), ("PING",)],
    "watch-dirty": [("WATCH", "a"), ("SET", "a", "2"), ("MULTI",), R("OFF"), ("EXEC",), ("PING",)],
    "watch-dirty-skip": [("WATCH", "a"), ("SET", "a", "2"), ("MULTI",), R("SKIP"), ("EXEC",)],
    "skip-skip": [R("SKIP"), R("SKIP"), ("PING", "a"), ("PING", "b")],
    "skip-on": [R("SKIP"), R("ON"), ("PING", "a"), ("PING", "b")],
    "off-skip-on": [R("OFF"), R("SKIP"), R("ON"), ("PING", "a"), ("PING", "b")],
    "skip-unknown": [R("SKIP"), ("NOSUCH", "a"), ("PING", "b")],
    "skip-arity": [R("SKIP"), ("GET",), ("PING", "b")],
    # (un)subscribe confirmations are pushes: sent whatever the mode
    "skip-subscribe": [R("SKIP"), ("SUBSCRIBE", "c1", "c2"), ("UNSUBSCRIBE", "c1", "c2")],
    "off-subscribe": [R("OFF"), ("SUBSCRIBE", "c1"), R("ON"), ("UNSUBSCRIBE",)],
    "off-psubscribe": [R("OFF"), ("PSUBSCRIBE", "p*"), ("PUNSUBSCRIBE", "p*", "q*"), ("PING",)],
    "skip-queued-then-subscribe": [
        ("MULTI",),
        R("SKIP"),
        ("PING",),
        ("EXEC",),
        ("SUBSCRIBE", "c"),
        ("UNSUBSCRIBE",),
    ],
    "off-subscribe-queued": [("MULTI",), R("OFF"), ("SUBSCRIBE", "c"), ("EXEC",), ("UNSUBSCRIBE",)],
    "skip-script": [R("SKIP"), ("EVAL", "return redis.call('set','a','1')", "0"), ("PING",)],
    "script-cannot-reply-off": [("EVAL", "redis.call('client','reply','off')", "0"), ("PING",)],
    "skip-hello": [R("SKIP"), ("HELLO", "3"), ("PING",)],
    # RESET ends OFF (and a pending SKIP), not the SKIP of itself
    "skip-reset": [R("SKIP"), ("RESET",), ("PING",)],
    "off-reset": [R("OFF"), ("RESET",), ("PING",)],
    "off-queued-reset": [("MULTI",), R("OFF"), ("RESET",), ("PING",)],
    "skip-queued-reset": [("MULTI",), R("SKIP"), ("EXEC",), ("RESET",), ("PING",)],
    "skip-nested-multi": [R("SKIP"), ("MULTI",), ("MULTI",), ("EXEC",)],
    "skip-watch": [R("SKIP"), ("WATCH", "a"), ("PING",)],
    "watch-queued-skip": [("MULTI",), ("WATCH", "a"), R("SKIP"), ("EXEC",), ("PING",)],
    "skip-queued-twice": [("MULTI",), R("SKIP"), ("EXEC",), ("MULTI",), ("PING",), ("EXEC",)],
    "off-queued-then-multi": [("MULTI",), R("OFF"), ("EXEC",), ("MULTI",), ("PING",), ("EXEC",)],
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_client_reply_and_multi(raw_pair, name):
    a, b = raw_pair
    got, want = stream(a, CASES[name]), stream(b, CASES[name])
    assert got == want, f"{name}: constdb {got!r} != redis {want!r}"


def _skip_blocked(port: int) -> bytes:
    with Conn(port) as c, Conn(port) as other:
        other.call("DEL", "bk")
        c.send_raw(encode("CLIENT", "REPLY", "SKIP") + encode("BLPOP", "bk", "0"))
        # the BLPOP waits once the server counts a blocked client
        deadline = time.monotonic() + 10
        while b"blocked_clients:1\r" not in other.call("INFO", "clients"):
            assert time.monotonic() < deadline, "BLPOP did not block"
        other.call("LPUSH", "bk", "x")
        return stream(c, [("PING", "after")])


def test_skip_silences_a_blocked_pop(constdb_server, redis_server, r, rr):
    """The SKIP lasts until the blocked request ends: its reply is dropped."""
    assert _skip_blocked(constdb_server.port) == _skip_blocked(redis_server.port)


def _pushes_while_off(port: int, protocol: int) -> bytes:
    """A subscriber with CLIENT REPLY OFF: its own PUBLISH's message (RESP3)
    and another client's messages come; its replies do not."""
    with Conn(port, protocol) as c, Conn(port) as other:
        c.send_raw(encode("CLIENT", "REPLY", "OFF") + encode("SUBSCRIBE", "ch"))
        deadline = time.monotonic() + 10
        while other.call("PUBSUB", "NUMSUB", "ch") != b"*2\r\n$2\r\nch\r\n:1\r\n":
            assert time.monotonic() < deadline, "SUBSCRIBE did not happen"
        if protocol == 3:
            c.send_raw(encode("PUBLISH", "ch", "own") + encode("SET", "x", "1"))
            while other.call("GET", "x") != b"$1\r\n1\r\n":  # c's SET ran
                assert time.monotonic() < deadline, "PUBLISH did not happen"
        other.call("PUBLISH", "ch", "other")
        return stream(c, [("PING",), ("UNSUBSCRIBE", "ch")])


def _invalidation_while_off(port: int) -> bytes:
    """CLIENT TRACKING in RESP3 with CLIENT REPLY OFF: the invalidation
    pushes of its own writes come, its replies do not."""
    with Conn(port, 3) as c:
        c.call("SET", "k", "1")
        c.call("CLIENT", "TRACKING", "ON")
        c.call("GET", "k")
        return stream(c, [R("OFF"), ("SET", "k", "2"), ("GET", "k"), ("DEL", "k")])


@pytest.mark.parametrize("protocol", [2, 3])
def test_pushes_pass_client_reply_off(constdb_server, redis_server, r, rr, protocol):
    got = _pushes_while_off(constdb_server.port, protocol)
    want = _pushes_while_off(redis_server.port, protocol)
    assert got == want, f"constdb {got!r} != redis {want!r}"


def test_invalidations_pass_client_reply_off(constdb_server, redis_server, r, rr):
    got = _invalidation_while_off(constdb_server.port)
    want = _invalidation_while_off(redis_server.port)
    assert got == want, f"constdb {got!r} != redis {want!r}"


TX_POOL = [
    ("MULTI",),
    ("EXEC",),
    ("DISCARD",),
    ("WATCH", "a"),
    ("UNWATCH",),
    R("OFF"),
    R("ON"),
    R("SKIP"),
    R("SKIP"),
    R("BAD"),
    ("SET", "a", "1"),
    ("GET", "a"),
    ("INCR", "a"),
    ("LPUSH", "a", "x"),
    ("NOSUCH",),
    ("GET",),
    ("PING",),
    ("SET", "b", "2"),
    ("EVAL", "return redis.call('incr','a')", "0"),
    ("SELECT", "1"),
    ("SELECT", "0"),
    ("DEL", "a"),
    ("HELLO", "3"),
    ("HELLO", "2"),
    ("BLPOP", "nolist", "0.01"),
    ("SWAPDB", "0", "1"),
    ("FLUSHDB",),
    ("RESET",),
]
_HELLO_ID = re.compile(rb"id\r\n:\d+")


@pytest.mark.parametrize("seed", [1, 2])
def test_random_transactions_and_reply_modes(raw_pair, seed):
    """Random runs of MULTI/EXEC/DISCARD/WATCH, CLIENT REPLY modes, errors
    (queued and at EXEC), protocol switches and RESET: the same bytes."""
    a, b = raw_pair
    rng = random.Random(seed * 10 + a.protocol)
    for _ in range(150):
        seq = [("FLUSHALL",)]
        seq += [rng.choice(TX_POOL) for _ in range(rng.randint(1, 10))]
        seq.append(("DISCARD",))  # (no MULTI left open)
        got = _HELLO_ID.sub(b"id:N", stream(a, seq))
        want = _HELLO_ID.sub(b"id:N", stream(b, seq))
        assert got == want, f"{seq!r}: constdb {got!r} != redis {want!r}"
