"""Infinite and overflowing increments (docs/crdt.md sections 3.6 and 3.7):
ZINCRBY / ZADD INCR whose increment or result is infinite, or that would take
this node's counter sum past the doubles, is a register write (a ZADD of the
result), so no counter sum is ever infinite or NaN; INCRBYFLOAT and
HINCRBYFLOAT whose total would not fit a double write the value alone. The
replies stay Redis's; the state loads back after a restart and replicates."""

from __future__ import annotations

import math
import random
import struct
import time

import pytest
import redis
from constdb._core.backlog import Backlog
from constdb._core.keyspace import Keyspace
from support.differential import run_all
from support.fakepeer import LinkedPeer, record, varbytes, varint
from support.nodes import cut_link, heal_link, make_node, proxied_pair, wait_converged, wait_for

from constdb._core import snapshot

REPRO = [
    ("ZADD", "q", "1", "m"),
    ("ZINCRBY", "q", "inf", "m"),
    ("ZADD", "q", "2", "m"),
    ("ZINCRBY", "q", "-inf", "m"),
]


def _desc(r, key: str) -> str:
    """DESC of key as text (it shows every counter's sum and base)."""
    return repr(r.execute_command("DESC", key)).lower()


def test_the_repro_restarts_and_reads_back(node):
    a = make_node(node, "a")
    r = a.client()
    for cmd in REPRO:
        r.execute_command(*cmd)
    assert r.zscore("q", "m") == -math.inf
    assert "nan" not in _desc(r, "q")
    # more of the same: a NaN result is refused, a finite one after infinities
    with pytest.raises(redis.ResponseError, match="resulting score is not a number"):
        r.zincrby("q", math.inf, "m")
    r.zadd("q", {"m": 5})
    assert r.zincrby("q", 2, "m") == 7.0
    r.zincrby("q", 1e308, "n")
    assert r.zincrby("q", 1e308, "n") == math.inf
    assert r.zincrby("q", -1e308, "n") == math.inf
    before = r.zrange("q", 0, -1, withscores=True)
    assert r.save()
    a.stop()
    a.start()
    r = a.client()
    assert r.zrange("q", 0, -1, withscores=True) == before
    assert "nan" not in _desc(r, "q")


def test_concurrent_infinite_increments_converge(node):
    a, b, pa, pb = proxied_pair(node)
    try:
        ra, rb = a.client(), b.client()
        ra.zadd("q", {"m": 1, "x": 3})
        ra.zincrby("q", 2.5, "x")
        wait_converged([a, b])
        cut_link(pa, pb, a, b)
        ra.zincrby("q", math.inf, "m")
        rb.zincrby("q", -math.inf, "m")
        rb.zincrby("q", 1, "m")
        ra.zincrby("q", 1e308, "x")
        rb.zincrby("q", 1e308, "x")
        rb.zincrby("q", 1e308, "x")  # this one overflows b's sum: a ZADD of inf
        heal_link(pa, pb, a, b)
        wait_converged([a, b])
        za = ra.zrange("q", 0, -1, withscores=True)
        assert za == rb.zrange("q", 0, -1, withscores=True)
        scores = dict(za)
        # two register writes of opposite infinities: the later one wins, no NaN
        assert scores[b"m"] in (math.inf, -math.inf)
        assert not any(math.isnan(s) for s in scores.values())
        for n, r in ((a, ra), (b, rb)):
            assert "nan" not in _desc(r, "q")
            assert r.save()
            n.stop()
            n.start()
        ra, rb = a.client(), b.client()
        wait_for(lambda: ra.zrange("q", 0, -1, withscores=True) == za)
        wait_for(lambda: rb.zrange("q", 0, -1, withscores=True) == za)
    finally:
        pa.close()
        pb.close()


def test_float_totals_past_the_doubles_replicate(node):
    a, b, pa, pb = proxied_pair(node)
    try:
        ra, rb = a.client(), b.client()
        ra.incrbyfloat("f", "1e400")
        ra.hincrbyfloat("h", "a", "1e400")
        ra.incrbyfloat("g", "1e308")
        wait_converged([a, b])
        assert rb.get("f") == ra.get("f")
        assert ra.get("f").startswith(b"10000000000000000000") and len(ra.get("f")) == 401
        cut_link(pa, pb, a, b)
        ra.incrbyfloat("f", "1")
        rb.incrbyfloat("f", "2")
        ra.incrbyfloat("g", "1e308")
        rb.incrbyfloat("g", "1e308")
        heal_link(pa, pb, a, b)
        wait_converged([a, b])
        assert ra.get("f") == rb.get("f")
        assert ra.get("g") == rb.get("g")
        assert ra.hget("h", "a") == rb.hget("h", "a")
        assert ra.save()
        a.stop()
        a.start()
        assert a.client().get("g") == rb.get("g")
    finally:
        pa.close()
        pb.close()


def test_replies_match_redis(raw_pair):
    run_all(
        raw_pair,
        [
            *REPRO,
            ("ZINCRBY", "q", "inf", "m"),
            ("ZADD", "q", "INCR", "+inf", "m"),
            ("ZADD", "q", "INCR", "-inf", "m"),
            ("ZSCORE", "q", "m"),
            ("ZADD", "q", "3", "m"),
            ("ZINCRBY", "q", "1.5", "m"),
            ("ZINCRBY", "q", "1e308", "n"),
            ("ZINCRBY", "q", "1e308", "n"),
            ("ZINCRBY", "q", "-1e308", "n"),
            ("ZINCRBY", "q", "-inf", "n"),
            ("ZINCRBY", "q", "inf", "n"),
            ("ZADD", "q", "-1e308", "o"),
            ("ZINCRBY", "q", "1e308", "o"),
            ("ZINCRBY", "q", "1e308", "o"),
            ("ZINCRBY", "q", "1e308", "o"),
            ("ZINCRBY", "q", "-1e308", "o"),
            ("ZINCRBY", "q", "inf", "new"),
            ("ZADD", "q", "INCR", "-inf", "new2"),
            ("ZRANGE", "q", "0", "-1", "WITHSCORES"),
            ("INCRBYFLOAT", "f", "1e400"),
            ("INCRBYFLOAT", "f", "1"),
            ("INCRBYFLOAT", "f", "-1e400"),
            ("INCRBYFLOAT", "g", "1e308"),
            ("INCRBYFLOAT", "g", "1e308"),
            ("INCRBYFLOAT", "g", "inf"),
            ("HINCRBYFLOAT", "h", "a", "1e400"),
            ("HINCRBYFLOAT", "h", "a", "1e308"),
            ("HINCRBYFLOAT", "h", "a", "-1e400"),
            ("HGET", "h", "a"),
            ("GET", "f"),
            ("GET", "g"),
        ],
    )


SCORES = ["inf", "-inf", "1e308", "-1e308", "1", "-2.5", "0", "1.7e308"]
OPS = ["ZADD", "ZINCRBY", "INCR", "ZREM"]


def _cmd(op: str, s: str, m: str) -> tuple:
    if op == "ZADD":
        return ("ZADD", "k", s, m)
    if op == "INCR":
        return ("ZADD", "k", "INCR", s, m)
    if op == "ZREM":
        return ("ZREM", "k", m)
    return ("ZINCRBY", "k", s, m)


@pytest.mark.parametrize("seed", range(4))
def test_counter_arithmetic_against_redis_and_no_nan_state(raw_pair, seed):
    """Random sequences of writes of infinite and huge scores: the replies are
    Redis's, and no counter state holds NaN (DESC shows every sum)."""
    rnd = random.Random(seed)
    for _ in range(40):
        ops = [
            _cmd(rnd.choice(OPS), rnd.choice(SCORES), rnd.choice("mn"))
            for _ in range(rnd.randint(1, 14))
        ]
        run_all(raw_pair, [("DEL", "k"), *ops, ("ZRANGE", "k", "0", "-1", "WITHSCORES")])
        d = raw_pair[0].call("DESC", "k")
        assert b"nan" not in d.lower(), (ops, d)


# ---- what a peer or a snapshot may bring ----------------------------------------------------

SECRET = "0f4e1b9d2c7a68e35b0d91f7a4c2e86b"
OP_REG, OP_ZW, ZW_CNT = 1, 48, 2


def _zincr_record(uuid: int, value: float, delta: float) -> bytes:
    # OP_ZW with ZW_CNT: key, member, flags, value, delta, observed (node, sum, last), dots
    return record(
        OP_ZW,
        uuid,
        varbytes(b"z")
        + varbytes(b"m")
        + bytes([ZW_CNT])
        + struct.pack("<dd", value, delta)
        + varint(0)
        + varint(0),
    )


def _now_uuid() -> int:
    return (time.time_ns() // 1_000_000) << 22


@pytest.mark.parametrize("what", ["zw-inf-increment", "reg-observed-inf-float-total"])
def test_a_peer_cannot_plant_an_infinite_counter(node, what):
    n = make_node(node, "a", cluster_secret=SECRET)
    r = n.client()
    u = _now_uuid()
    if what == "zw-inf-increment":
        bad = _zincr_record(u + 2, math.inf, math.inf)
    else:
        # a REG observing a float counter entry (origin with the top bit) whose total is inf
        bad = record(
            OP_REG,
            u + 2,
            varbytes(b"k")
            + b"\x01"
            + varbytes(b"1")
            + varint(1)
            + struct.pack("<QdQ", (1 << 63) | 77, math.inf, u),
        )
    good = record(OP_REG, u + 1, varbytes(b"good") + b"\x01" + varbytes(b"1") + varint(0))
    peer = LinkedPeer(n.port, SECRET)
    peer.batch(good + bad)
    assert not peer.sync()
    assert r.get("good") is None
    assert r.ping()
    assert "Traceback" not in n.log()
    # a finite increment is taken
    peer = LinkedPeer(n.port, SECRET)
    peer.batch(_zincr_record(_now_uuid() + 5, 0.0, 2.5))
    assert peer.sync()
    assert r.zscore("z", "m") == 2.5
    peer.close()


def test_a_snapshot_loads_an_infinite_sum_and_refuses_a_nan_one():
    """The load check: an infinite counter sum (an older node's, or huge
    finite sums) loads, a NaN one (inf + -inf) is refused."""
    u = _now_uuid()
    ks = Keyspace(12345, Backlog())
    # the core API applies without the peer checks
    ks.apply_records(12345, _zincr_record(u, 1e308, 1e308) + _zincr_record(u + 1, math.inf, 1e308))
    snap = snapshot.dump(ks, b"fake")
    back = Keyspace(999, Backlog())
    snapshot.merge(back, snapshot.parse(snap))
    assert b"z" in back.d
    ks.apply_records(12345, _zincr_record(u + 2, 0.0, -math.inf))
    snap = snapshot.dump(ks, b"fake")
    with pytest.raises(Exception, match="NaN sorted set score"):
        snapshot.parse(snap)
