"""Sorted-set algebra and the multi-key pops (ZUNION ZINTER ZDIFF and their
STORE forms, ZINTERCARD, ZRANGESTORE, ZLEXCOUNT, ZREMRANGEBYLEX, ZRANDMEMBER,
ZMPOP, LMPOP): replies compared byte for byte with redis-server 7.0 in RESP2
and RESP3, random sequences included; ZRANDMEMBER's draws checked by their
properties; a STORE on one node converging on another."""

from __future__ import annotations

import random

import pytest
from support.differential import run_all
from support.nodes import (
    cut_link,
    heal_link,
    make_node,
    meet,
    proxied_pair,
    wait_converged,
    wait_for,
    wait_linked,
)


def z(*parts):
    return [p if isinstance(p, bytes) else str(p).encode() for p in parts]


SETUP = [
    z("ZADD", "a", 1, "x", 2, "y", 3, "z", "-inf", "ninf", "inf", "pinf"),
    z("ZADD", "b", 10, "y", 20, "z", 30, "w", "-inf", "pinf", "inf", "ninf"),
    z("ZADD", "c", 0.5, "x", -0.0, "y"),
    z("SADD", "s", "x", "w", "q"),
    z("SADD", "si", 1, 2, 3),
    z("ZADD", "zi", 1, 1, 2, 2, 5, 5),
    z("SET", "str", "v"),
    z("ZADD", "dst", 7, "old", 1, "x"),
]

ALGEBRA = [
    z("ZUNION", 2, "a", "b"),
    z("ZUNION", 2, "a", "b", "WITHSCORES"),
    z("ZUNION", 3, "a", "b", "c", "WITHSCORES"),
    z("ZUNION", 2, "a", "s", "WITHSCORES"),
    z("ZUNION", 2, "si", "zi", "WITHSCORES"),
    z("ZUNION", 2, "a", "nokey", "WITHSCORES"),
    z("ZUNION", 1, "nokey", "WITHSCORES"),
    z("ZUNION", 2, "a", "a", "WITHSCORES"),
    z("ZUNION", 2, "a", "b", "WEIGHTS", 2, 3, "WITHSCORES"),
    z("ZUNION", 2, "a", "b", "WEIGHTS", "inf", 0, "WITHSCORES"),
    z("ZUNION", 2, "a", "b", "WEIGHTS", "-inf", "inf", "WITHSCORES"),
    z("ZUNION", 2, "a", "b", "WEIGHTS", 0, 0, "WITHSCORES"),
    z("ZUNION", 2, "a", "b", "WEIGHTS", -1, 1, "WITHSCORES"),
    z("ZUNION", 2, "a", "b", "AGGREGATE", "MIN", "WITHSCORES"),
    z("ZUNION", 2, "a", "b", "AGGREGATE", "max", "WITHSCORES"),
    z("ZUNION", 2, "a", "b", "AGGREGATE", "sum", "WEIGHTS", 1, "-1", "WITHSCORES"),
    z("ZUNION", 2, "a", "b", "WEIGHTS", "inf", "0", "AGGREGATE", "MIN", "WITHSCORES"),
    z("ZUNION", 2, "a", "b", "WEIGHTS", "inf", "0", "AGGREGATE", "MAX", "WITHSCORES"),
    z("ZUNION", 2, "a", "b", "AGGREGATE", "avg"),
    z("ZUNION", 2, "a", "b", "AGGREGATE"),
    z("ZUNION", 2, "a", "b", "WEIGHTS", 1),
    z("ZUNION", 2, "a", "b", "WEIGHTS", 1, "x"),
    z("ZUNION", 2, "a", "b", "WEIGHTS", 1, "nan"),
    z("ZUNION", 2, "a", "b", "WEIGHTS", 1, 2, 3),
    z("ZUNION", 2, "a", "b", "WITHSCORES", "WITHSCORES"),
    z("ZUNION", 2, "a", "b", "FOO"),
    z("ZUNION", 0, "a"),
    z("ZUNION", -1, "a"),
    z("ZUNION", "x", "a"),
    z("ZUNION", 3, "a", "b"),
    z("ZUNION", 2, "a", "str"),
    z("ZUNION", 2, "str", "a", "FOO"),
    z("ZINTER", 2, "a", "b", "WITHSCORES"),
    z("ZINTER", 2, "a", "s", "WITHSCORES"),
    z("ZINTER", 3, "a", "b", "c", "WITHSCORES"),
    z("ZINTER", 2, "a", "a", "WEIGHTS", 1, 2, "WITHSCORES"),
    z("ZINTER", 2, "a", "b", "WEIGHTS", "inf", 0, "WITHSCORES"),
    z("ZINTER", 2, "a", "b", "WEIGHTS", 0, "inf", "AGGREGATE", "MIN", "WITHSCORES"),
    z("ZINTER", 2, "a", "b", "WEIGHTS", 0, "inf", "AGGREGATE", "MAX", "WITHSCORES"),
    z("ZINTER", 2, "a", "b", "AGGREGATE", "MAX"),
    z("ZINTER", 2, "a", "nokey", "WITHSCORES"),
    z("ZINTER", 2, "si", "zi", "WITHSCORES"),
    z("ZINTER", 2, "a", "str"),
    z("ZINTER", 0, "a"),
    z("ZDIFF", 2, "a", "b", "WITHSCORES"),
    z("ZDIFF", 2, "a", "s"),
    z("ZDIFF", 1, "a", "WITHSCORES"),
    z("ZDIFF", 2, "s", "a", "WITHSCORES"),
    z("ZDIFF", 2, "nokey", "a"),
    z("ZDIFF", 2, "a", "b", "WEIGHTS", 1, 2),
    z("ZDIFF", 2, "a", "b", "AGGREGATE", "SUM"),
    z("ZDIFF", 2, "a", "str"),
    z("ZDIFF", 0, "a"),
    z("ZINTERCARD", 2, "a", "b"),
    z("ZINTERCARD", 2, "a", "b", "LIMIT", 1),
    z("ZINTERCARD", 2, "a", "b", "LIMIT", 0),
    z("ZINTERCARD", 2, "a", "b", "LIMIT", 100),
    z("ZINTERCARD", 2, "a", "b", "LIMIT", -1),
    z("ZINTERCARD", 2, "a", "b", "LIMIT", "x"),
    z("ZINTERCARD", 2, "a", "b", "LIMIT"),
    z("ZINTERCARD", 2, "a", "b", "WITHSCORES"),
    z("ZINTERCARD", 2, "a", "b", "WEIGHTS", 1, 1),
    z("ZINTERCARD", 2, "a", "s"),
    z("ZINTERCARD", 0, "a"),
    z("ZINTERCARD", 3, "a", "b"),
    z("ZINTERCARD", 1, "str"),
    z("ZUNIONSTORE", "dst", 2, "a", "b"),
    z("ZRANGE", "dst", 0, -1, "WITHSCORES"),
    z("TTL", "dst"),
    z("ZUNIONSTORE", "dst", 2, "a", "b", "WITHSCORES"),
    z("ZUNIONSTORE", "dst", 2, "c", "c", "WEIGHTS", 1, -1),
    z("ZRANGE", "dst", 0, -1, "WITHSCORES"),
    z("ZSCORE", "dst", "y"),
    z("ZUNIONSTORE", "dst", 1, "c", "WEIGHTS", "-0"),
    z("ZSCORE", "dst", "x"),
    z("ZINTERSTORE", "dst", 2, "a", "b", "WEIGHTS", 2, 0.5, "AGGREGATE", "MIN"),
    z("ZRANGE", "dst", 0, -1, "WITHSCORES"),
    z("ZINTERSTORE", "dst", 2, "a", "nokey"),
    z("EXISTS", "dst"),
    z("ZDIFFSTORE", "dst", 2, "a", "b"),
    z("ZRANGE", "dst", 0, -1, "WITHSCORES"),
    z("ZDIFFSTORE", "dst", 2, "a", "a"),
    z("EXISTS", "dst"),
    z("ZUNIONSTORE", "str", 1, "a"),
    z("TYPE", "str"),
    z("ZRANGE", "str", 0, -1, "WITHSCORES"),
    z("SET", "str", "v"),
    z("ZUNIONSTORE", "a2", 2, "a", "nope", "AGGREGATE", "MAX"),
    z("ZUNIONSTORE", "a", 2, "a", "b"),
    z("ZRANGE", "a", 0, -1, "WITHSCORES"),
    z("ZUNIONSTORE", "dst", 0, "a"),
    z("ZUNIONSTORE", "dst", 2, "a", "str"),
    z("ZUNIONSTORE", "dst", 2, "a"),
    z("ZINTERSTORE", "dst", 1, "s"),
    z("ZRANGE", "dst", 0, -1, "WITHSCORES"),
    z("SET", "dst", "x"),
    z("ZDIFFSTORE", "dst", 1, "si"),
    z("ZRANGE", "dst", 0, -1, "WITHSCORES"),
]

RANGESTORE = [
    z("ZADD", "src", 1, "a", 2, "b", 3, "c", 4, "d", 4, "e", 5, "f"),
    z("ZADD", "lex", 0, "a", 0, "b", 0, "c", 0, "d", 0, "e"),
    z("ZRANGESTORE", "d", "src", 0, -1),
    z("ZRANGE", "d", 0, -1, "WITHSCORES"),
    z("ZRANGESTORE", "d", "src", 1, 2),
    z("ZRANGE", "d", 0, -1, "WITHSCORES"),
    z("ZRANGESTORE", "d", "src", 0, 1, "REV"),
    z("ZRANGE", "d", 0, -1, "WITHSCORES"),
    z("ZRANGESTORE", "d", "src", 2, "(4", "BYSCORE"),
    z("ZRANGE", "d", 0, -1, "WITHSCORES"),
    z("ZRANGESTORE", "d", "src", "+inf", "-inf", "BYSCORE", "REV", "LIMIT", 1, 2),
    z("ZRANGE", "d", 0, -1, "WITHSCORES"),
    z("ZRANGESTORE", "d", "lex", "[b", "(d", "BYLEX"),
    z("ZRANGE", "d", 0, -1, "WITHSCORES"),
    z("ZRANGESTORE", "d", "lex", "+", "-", "BYLEX", "REV", "LIMIT", 0, 2),
    z("ZRANGE", "d", 0, -1, "WITHSCORES"),
    z("ZRANGESTORE", "d", "src", 10, 20),
    z("EXISTS", "d"),
    z("ZRANGESTORE", "d", "nokey", 0, -1),
    z("ZRANGESTORE", "d", "src", 0, -1, "WITHSCORES"),
    z("ZRANGESTORE", "d", "src", 0, -1, "LIMIT", 0, 1),
    z("ZRANGESTORE", "d", "src", "x", 1),
    z("ZRANGESTORE", "d", "src", "x", 1, "BYSCORE"),
    z("ZRANGESTORE", "d", "src", "x", 1, "BYLEX"),
    z("SET", "s", "v"),
    z("ZRANGESTORE", "d", "s", 0, -1),
    z("ZRANGESTORE", "s", "src", 0, 0),
    z("TYPE", "s"),
    z("ZLEXCOUNT", "lex", "-", "+"),
    z("ZLEXCOUNT", "lex", "[b", "(d"),
    z("ZLEXCOUNT", "lex", "(e", "+"),
    z("ZLEXCOUNT", "lex", "[z", "[a"),
    z("ZLEXCOUNT", "lex", "b", "d"),
    z("ZLEXCOUNT", "nokey", "-", "+"),
    z("ZLEXCOUNT", "s", "-", "+"),
    z("ZREMRANGEBYLEX", "lex", "(a", "[c"),
    z("ZRANGE", "lex", 0, -1),
    z("ZREMRANGEBYLEX", "lex", "x", "+"),
    z("ZREMRANGEBYLEX", "lex", "-", "+"),
    z("EXISTS", "lex"),
    z("ZREMRANGEBYLEX", "nokey", "-", "+"),
    z("ZREMRANGEBYLEX", "s", "-", "+"),
]

POPS = [
    z("ZADD", "z1", 1, "a", 2, "b", 3, "c"),
    z("ZADD", "z2", 5, "x"),
    z("RPUSH", "l1", "a", "b", "c", "d"),
    z("RPUSH", "l2", "x"),
    z("SET", "str", "v"),
    z("ZMPOP", 1, "z1", "MIN"),
    z("ZMPOP", 2, "nokey", "z1", "MAX", "COUNT", 10),
    z("ZMPOP", 2, "z1", "z2", "MIN", "COUNT", 5),
    z("ZMPOP", 2, "z1", "z2", "MIN"),
    z("ZMPOP", 1, "z1", "MIN"),
    z("ZMPOP", 2, "nokey", "str", "MIN"),
    z("ZADD", "z3", 1, "a"),
    z("ZMPOP", 2, "z3", "str", "MIN"),
    z("ZMPOP", 0, "z1", "MIN"),
    z("ZMPOP", "x", "z1", "MIN"),
    z("ZMPOP", 2, "z1", "MIN"),
    z("ZMPOP", 1, "z1", "FOO"),
    z("ZMPOP", 1, "z1", "MIN", "COUNT"),
    z("ZMPOP", 1, "z1", "MIN", "COUNT", 0),
    z("ZMPOP", 1, "z1", "MIN", "COUNT", -1),
    z("ZMPOP", 1, "z1", "MIN", "COUNT", "x"),
    z("ZMPOP", 1, "z1", "MIN", "COUNT", 1, "COUNT", 1),
    z("ZMPOP", 1, "z1", "MIN", "FOO"),
    z("LMPOP", 1, "l1", "LEFT"),
    z("LMPOP", 2, "nokey", "l1", "RIGHT", "COUNT", 2),
    z("LMPOP", 2, "l1", "l2", "left", "count", 10),
    z("LMPOP", 2, "l1", "l2", "RIGHT"),
    z("LMPOP", 1, "l1", "LEFT"),
    z("LMPOP", 2, "nokey", "str", "LEFT"),
    z("LMPOP", 0, "l1", "LEFT"),
    z("LMPOP", 2, "l1", "LEFT"),
    z("LMPOP", 1, "l1", "UP"),
    z("LMPOP", 1, "l1", "LEFT", "COUNT", 0),
    z("LMPOP", 1, "l1", "LEFT", "COUNT"),
    z("LMPOP", 1, "l1", "LEFT", "COUNT", 1, "COUNT", 2),
]

RANDOM_ERRORS = [
    z("ZADD", "z", 1, "a", 2, "b", 3, "c"),
    z("SET", "str", "v"),
    z("ZRANDMEMBER", "nokey"),
    z("ZRANDMEMBER", "nokey", 5),
    z("ZRANDMEMBER", "nokey", 5, "WITHSCORES"),
    z("ZRANDMEMBER", "nokey", "x"),
    z("ZRANDMEMBER", "z", "x"),
    z("ZRANDMEMBER", "z", 1, "FOO"),
    z("ZRANDMEMBER", "z", 1, "WITHSCORES", "x"),
    z("ZRANDMEMBER", "z", "-9223372036854775808"),
    z("ZRANDMEMBER", "z", "9223372036854775807", "WITHSCORES"),
    z("ZRANDMEMBER", "z", "-4611686018427387905", "WITHSCORES"),
    z("ZRANDMEMBER", "z", 0),
    z("ZRANDMEMBER", "z", 0, "WITHSCORES"),
    z("ZRANDMEMBER", "z", 3, "WITHSCORES"),
    z("ZRANDMEMBER", "z", 10),
    z("ZRANDMEMBER", "str"),
    z("ZRANDMEMBER", "str", 1),
]


@pytest.mark.parametrize(
    "cmds",
    [ALGEBRA, RANGESTORE, POPS, RANDOM_ERRORS],
    ids=["algebra", "rangestore", "pops", "randmember-errors"],
)
def test_targeted(raw_pair, cmds):
    run_all(raw_pair, SETUP + cmds)


def test_big_inputs_and_stores(raw_pair):
    """Past the listpack limits (long members, many members), ties in score
    ordered by member, a store replacing a big destination."""
    rnd = random.Random(7)
    cmds = []
    for key in (b"A", b"B", b"C"):
        args = [b"ZADD", key]
        for _ in range(300):
            args += [str(rnd.randrange(-50, 50) / 4).encode(), b"m%d" % rnd.randrange(500)]
        cmds.append(args)
    cmds.append(z("SADD", "S", *[f"m{i}" for i in range(0, 500, 3)]))
    cmds.append(z("ZADD", "L", 1, "x" * 65, 2, "y"))
    for op in ("ZUNION", "ZINTER", "ZDIFF"):
        cmds.append(z(op, 4, "A", "B", "C", "S", "WITHSCORES"))
    cmds += [
        z("ZUNION", 4, "A", "B", "C", "S", "WEIGHTS", 1, -2, 0.5, 3, "WITHSCORES"),
        z("ZINTER", 3, "A", "B", "S", "AGGREGATE", "MAX", "WITHSCORES"),
        z("ZINTERCARD", 3, "A", "B", "C"),
        z("ZINTERCARD", 2, "A", "B", "LIMIT", 5),
        z("ZUNIONSTORE", "D", 3, "A", "B", "C"),
        z("ZRANGE", "D", 0, -1, "WITHSCORES"),
        z("ZUNIONSTORE", "D", 2, "L", "S"),
        z("ZRANGE", "D", 0, -1, "WITHSCORES"),
        z("ZINTERSTORE", "D", 2, "A", "B", "WEIGHTS", 0, 0),
        z("ZRANGE", "D", 0, -1, "WITHSCORES"),
        z("ZSCAN", "D", 0),
        z("ZRANGESTORE", "D", "A", 0, 127),
        z("ZSCAN", "D", 0),
        z("ZRANGESTORE", "D", "A", 0, 200),
        z("ZCARD", "D"),
    ]
    run_all(raw_pair, cmds)


KEYS = [b"a", b"b", b"c", b"s", b"d", b"nokey"]
SCORES = [b"0", b"1", b"-1", b"2.5", b"-0", b"inf", b"-inf", b"1e300", b"-1e300"]
WEIGHTS = [b"1", b"0", b"-1", b"2", b"inf", b"-inf", b"0.5", b"-0"]


def random_cmd(rnd: random.Random) -> list:
    kind = rnd.randrange(8)
    if kind == 0:
        args = [b"ZADD", rnd.choice(KEYS[:3])]
        for _ in range(rnd.randint(1, 4)):
            args += [rnd.choice(SCORES), rnd.choice([b"p", b"q", b"r", b"t", b"u"])]
        return args
    if kind == 1:
        return [b"SADD", b"s", rnd.choice([b"p", b"q", b"v"])]
    n = rnd.randint(1, 4)
    keys = [rnd.choice(KEYS) for _ in range(n)]
    op = rnd.choice([b"ZUNION", b"ZINTER", b"ZDIFF", b"ZUNIONSTORE", b"ZINTERSTORE", b"ZDIFFSTORE"])
    args = [op] + ([b"d"] if op.endswith(b"STORE") else []) + [str(n).encode()] + keys
    if op not in (b"ZDIFF", b"ZDIFFSTORE"):
        if rnd.random() < 0.5:
            args += [b"WEIGHTS"] + [rnd.choice(WEIGHTS) for _ in range(n)]
        if rnd.random() < 0.5:
            args += [b"AGGREGATE", rnd.choice([b"SUM", b"MIN", b"MAX"])]
    if not op.endswith(b"STORE") and rnd.random() < 0.7:
        args.append(b"WITHSCORES")
    return args


@pytest.mark.parametrize("seed", range(4))
def test_random_sequences(raw_pair, seed):
    rnd = random.Random(seed)
    cmds = [random_cmd(rnd) for _ in range(300)]
    cmds.append([b"ZRANGE", b"d", b"0", b"-1", b"WITHSCORES"])
    run_all(raw_pair, cmds)


def test_zrandmember_properties(r):
    members = {f"m{i}".encode(): float(i) for i in range(200)}
    r.zadd("z", members)
    small = {b"a": 1.0, b"b": 2.0}
    r.zadd("s", small)
    assert r.zrandmember("z") in members
    assert r.zrandmember("nokey") is None
    for count in (1, 5, 49, 50, 51, 150, 199):
        got = r.zrandmember("z", count)
        assert len(got) == count and len(set(got)) == count and set(got) <= set(members)
    got = r.zrandmember("z", 10, withscores=True)
    got = list(zip(got[::2], got[1::2]))
    assert len(got) == 10 and len({m for m, _ in got}) == 10
    assert all(members[m] == float(s) for m, s in got)
    got = r.zrandmember("z", -500)
    assert len(got) == 500 and set(got) <= set(members) and len(set(got)) < 200
    got = r.zrandmember("s", -40, withscores=True)
    got = list(zip(got[::2], got[1::2]))
    assert len(got) == 40 and all(small[m] == float(s) for m, s in got)
    assert {m for m, _ in got} == {b"a", b"b"}
    # every member is drawn sooner or later
    seen = set()
    for _ in range(200):
        seen.add(r.zrandmember("s"))
    assert seen == {b"a", b"b"}
    assert r.zrandmember("z", 200) == r.zrevrange("z", 0, -1)
    got = r.zrandmember("z", 1000, withscores=True)
    assert list(zip(got[::2], map(float, got[1::2]))) == r.zrevrange("z", 0, -1, withscores=True)


def test_store_converges_across_nodes(node):
    """A ZUNIONSTORE on one node writes the destination on the other; a STORE
    over a destination the other node wrote keeps nothing of it."""
    a, b = make_node(node, "a"), make_node(node, "b")
    meet(b, a)
    wait_linked([a, b])
    ca, cb = a.client(), b.client()
    cb.zadd("dst", {"stale": 1, "x": 100})
    cb.expire("dst", 1000)
    wait_for(lambda: ca.zcard("dst") == 2 and ca.ttl("dst") > 0)
    ca.zadd("a", {"x": 1, "y": 2})
    ca.sadd("s", "y", "z")
    assert ca.zunionstore("dst", ["a", "s"]) == 3
    want = [(b"x", 1.0), (b"z", 1.0), (b"y", 3.0)]
    assert ca.zrange("dst", 0, -1, withscores=True) == want
    wait_for(lambda: cb.zrange("dst", 0, -1, withscores=True) == want)
    assert cb.ttl("dst") == -1
    ca.geoadd("g", [13.361389, 38.115556, "Palermo", 15.087269, 37.502669, "Catania"])
    assert (
        ca.execute_command(
            "GEOSEARCHSTORE",
            "near",
            "g",
            "FROMLONLAT",
            15,
            37,
            "BYRADIUS",
            200,
            "km",
            "ASC",
            "STOREDIST",
        )
        == 2
    )
    wait_for(
        lambda: (
            cb.zrange("near", 0, -1, withscores=True) == ca.zrange("near", 0, -1, withscores=True)
        )
    )
    assert cb.geopos("g", "Palermo") == ca.geopos("g", "Palermo")
    assert ca.zrangestore("dst", "a", 0, 0) == 1
    wait_for(lambda: cb.zrange("dst", 0, -1, withscores=True) == [(b"x", 1.0)])
    assert ca.zinterstore("dst", ["a", "nokey"]) == 0
    wait_for(lambda: cb.exists("dst") == 0)
    wait_converged([a, b])


def test_concurrent_stores_converge(node):
    """Two nodes cut apart both store into one destination (and pop the same
    set): once healed they agree, with the meaning docs/crdt.md 3.6 gives."""
    a, b, pa, pb = proxied_pair(node)
    try:
        ra, rb = a.client(), b.client()
        ra.zadd("dst", {"keep": 1, "shared": 2, "gone": 3, "adrop": 4})
        ra.zadd("src1", {"keep": 1, "shared": 20, "onlya": 5})
        ra.zadd("src2", {"keep": 1, "shared": 30, "onlyb": 6, "adrop": 4})
        ra.zadd("q", {"x": 1, "y": 2})
        wait_converged([a, b])
        cut_link(pa, pb, a, b)
        # a: keep unchanged, shared rescored, onlya new; gone and adrop dropped
        assert ra.zunionstore("dst", ["src1"]) == 3
        # b: keep and adrop unchanged, shared rescored, onlyb new; gone dropped
        assert rb.zunionstore("dst", ["src2"]) == 4
        assert ra.zmpop(1, ["q"], min=True) == rb.zmpop(1, ["q"], min=True)
        heal_link(pa, pb, a, b)
        got = ra.zrange("dst", 0, -1, withscores=True)
        assert got == rb.zrange("dst", 0, -1, withscores=True)
        members = {m for m, _ in got}
        # both results' members, except adrop: b left it in place (no effect)
        # while a dropped it
        assert members == {b"keep", b"shared", b"onlya", b"onlyb"}
        assert dict(got)[b"shared"] in (20.0, 30.0)
        assert ra.zrange("q", 0, -1) == rb.zrange("q", 0, -1) == [b"y"]
    finally:
        pa.close()
        pb.close()
