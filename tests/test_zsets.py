"""Sorted set commands: replies compared byte for byte with redis-server 7.0,
in RESP2 and RESP3 (targeted cases, random command sequences, sets past the
listpack limits), the skip list checked against a sorted Python list in
process, and redis-benchmark's zadd/zpopmin run against constdb-server."""

from __future__ import annotations

import random
import re
import subprocess

import pytest
from constdb._core.backlog import Backlog
from constdb._core.keyspace import Keyspace, describe_obj
from constdb._core.protocol import Client, Server
from constdb._core.t_zset import check_zset, gc_zset, zset_items, zset_removed
from support.differential import run_all, same
from support.nodes import need_tool, wait_for

from constdb._core import cmd_keys, cmd_server, cmd_strings, cmd_zsets, snapshot


def z(*parts):
    return [p if isinstance(p, bytes) else str(p).encode() for p in parts]


TARGETED = [
    z("ZADD", "z", 1, "a", 2, "b", 3, "c"),
    z("ZADD", "z", 1.5, "a", 2, "b", 10, "d"),
    z("ZADD", "z", "CH", 1.5, "a", 2.5, "b", 11, "e"),
    z("ZADD", "z", "NX", 100, "a", 12, "f"),
    z("ZADD", "z", "XX", 100, "a", 12, "g"),
    z("ZADD", "z", "XX", "CH", 99, "a"),
    z("ZADD", "z", "GT", 1, "a"),
    z("ZADD", "z", "GT", "CH", 1000, "a"),
    z("ZADD", "z", "LT", "CH", 1000, "a", 0, "b"),
    z("ZADD", "z", "XX", "GT", 5000, "a"),
    z("ZADD", "z", "NX", "XX", 1, "a"),
    z("ZADD", "z", "NX", "GT", 1, "a"),
    z("ZADD", "z", "GT", "LT", 1, "a"),
    z("ZADD", "z", "INCR", 1, "a", 2, "b"),
    z("ZADD", "z", 1),
    z("ZADD", "z", 1, "a", 2),
    z("ZADD", "z", "NX"),
    z("ZADD", "z", "x", "a"),
    z("ZADD", "z", "nan", "a"),
    z("ZADD", "z", " 1", "a"),
    z("ZADD", "z", "1 ", "a"),
    z("ZADD", "z", "", "a"),
    z("ZADD", "z", "1e400", "a"),
    z("ZADD", "z", "1e-400", "a"),
    z("ZADD", "z", "0x10", "hex"),
    z("ZADD", "z", "inf", "pinf", "-inf", "ninf", "+inf", "pinf2"),
    z("ZADD", "z", "INCR", 5, "a"),
    z("ZADD", "z", "INCR", "NX", 5, "a"),
    z("ZADD", "z", "INCR", "NX", 5, "new"),
    z("ZADD", "z", "INCR", "XX", 5, "nope"),
    z("ZADD", "z", "INCR", "GT", -1, "a"),
    z("ZADD", "z", "INCR", "LT", -1, "a"),
    z("ZADD", "z", "INCR", "-inf", "pinf"),
    z("ZADD", "nokey", "XX", 1, "a"),
    z("ZADD", "nokey", "XX", "INCR", 1, "a"),
    z("ZINCRBY", "z", 2.5, "a"),
    z("ZINCRBY", "z", "x", "a"),
    z("ZINCRBY", "z", "nx", "a"),
    z("ZINCRBY", "z", 0, "a"),
    z("ZINCRBY", "z", "-inf", "pinf"),
    z("ZINCRBY", "z", 0.1, "fresh"),
    z("ZINCRBY", "z", 0.2, "fresh"),
    z("ZRANGE", "z", 0, -1, "WITHSCORES"),
    z("ZSCORE", "z", "a"),
    z("ZSCORE", "z", "nope"),
    z("ZSCORE", "nokey", "a"),
    z("ZMSCORE", "z", "a", "nope", "pinf", "ninf"),
    z("ZMSCORE", "nokey", "a", "b"),
    z("ZCARD", "z"),
    z("ZCARD", "nokey"),
    z("ZCOUNT", "z", "-inf", "+inf"),
    z("ZCOUNT", "z", "(1", "(12"),
    z("ZCOUNT", "z", "1", "1"),
    z("ZCOUNT", "z", "(1", "1"),
    z("ZCOUNT", "z", "5", "1"),
    z("ZCOUNT", "z", "x", "1"),
    z("ZCOUNT", "z", "", "100"),
    z("ZCOUNT", "z", "(", "100"),
    z("ZCOUNT", "z", " 2", "100"),
    z("ZCOUNT", "z", "nan", "100"),
    z("ZCOUNT", "nokey", "x", "1"),
    z("ZCOUNT", "nokey", "0", "1"),
    z("ZRANK", "z", "a"),
    z("ZRANK", "z", "ninf"),
    z("ZREVRANK", "z", "ninf"),
    z("ZRANK", "z", "nope"),
    z("ZRANK", "nokey", "a"),
    z("ZRANK", "z", "a", "WITHSCORE"),
    # ranges
    z("ZRANGE", "z", 0, 2),
    z("ZRANGE", "z", -3, -1, "WITHSCORES"),
    z("ZRANGE", "z", 2, 1),
    z("ZRANGE", "z", 100, 200),
    z("ZRANGE", "z", "x", 1),
    z("ZRANGE", "z", 0, 1, "REV"),
    z("ZRANGE", "z", 0, 1, "rev", "withscores"),
    z("ZRANGE", "z", 0, 1, "LIMIT", 0, 1),
    z("ZRANGE", "z", "-inf", "+inf", "BYSCORE"),
    z("ZRANGE", "z", "+inf", "-inf", "BYSCORE", "REV", "WITHSCORES"),
    z("ZRANGE", "z", "(1", "12", "BYSCORE", "LIMIT", 1, 2),
    z("ZRANGE", "z", "(1", "12", "BYSCORE", "LIMIT", -1, 2),
    z("ZRANGE", "z", "(1", "12", "BYSCORE", "LIMIT", 1, -1),
    z("ZRANGE", "z", "(1", "12", "BYSCORE", "LIMIT", 1, 0),
    z("ZRANGE", "z", "(1", "12", "BYSCORE", "LIMIT", 100, 1),
    z("ZRANGE", "z", "(1", "12", "BYSCORE", "LIMIT", "x", 1),
    z("ZRANGE", "z", "(1", "12", "BYSCORE", "LIMIT", 1),
    z("ZRANGE", "z", "x", "12", "BYSCORE"),
    z("ZRANGE", "z", "[a", "+", "BYLEX"),
    z("ZRANGE", "z", "[a", "+", "BYLEX", "WITHSCORES"),
    z("ZRANGE", "z", "a", "+", "BYLEX"),
    z("ZRANGE", "z", 0, 1, "BYSCORE", "BYLEX"),
    z("ZRANGE", "z", 0, 1, "FOO"),
    z("ZRANGE", "nokey", 0, 1),
    z("ZRANGE", "nokey", "x", 1),
    z("ZRANGEBYSCORE", "z", "-inf", "+inf", "WITHSCORES"),
    z("ZRANGEBYSCORE", "z", 1, 3, "LIMIT", 0, 2),
    z("ZRANGEBYSCORE", "z", 1, 3, "REV"),
    z("ZRANGEBYSCORE", "z", 1, 3, "BYSCORE"),
    z("ZREVRANGEBYSCORE", "z", "+inf", "-inf"),
    z("ZREVRANGEBYSCORE", "z", 12, "(1", "WITHSCORES", "LIMIT", 1, 3),
    z("ZREVRANGEBYSCORE", "z", 1, 12),
    z("ZREVRANGE", "z", 0, -1, "WITHSCORES"),
    z("ZREVRANGE", "z", 1, 2),
    z("ZREVRANGE", "z", 0, 1, "REV"),
    # lex (equal scores)
    z("ZADD", "lex", 0, "a", 0, "b", 0, "c", 0, "d", 0, "e", 0, "ab", 0, ""),
    z("ZRANGEBYLEX", "lex", "-", "+"),
    z("ZRANGEBYLEX", "lex", "[b", "(d"),
    z("ZRANGEBYLEX", "lex", "(a", "[c", "LIMIT", 1, 1),
    z("ZRANGEBYLEX", "lex", "[", "[a"),
    z("ZRANGEBYLEX", "lex", "(", "(a"),
    z("ZRANGEBYLEX", "lex", "+", "-"),
    z("ZRANGEBYLEX", "lex", "-", "-"),
    z("ZRANGEBYLEX", "lex", "+", "+"),
    z("ZRANGEBYLEX", "lex", "[c", "[b"),
    z("ZRANGEBYLEX", "lex", "[c", "[c"),
    z("ZRANGEBYLEX", "lex", "(c", "[c"),
    z("ZRANGEBYLEX", "lex", "-x", "+"),
    z("ZRANGEBYLEX", "lex", "b", "+"),
    z("ZRANGEBYLEX", "lex", "-", "+", "WITHSCORES"),
    z("ZREVRANGEBYLEX", "lex", "+", "-"),
    z("ZREVRANGEBYLEX", "lex", "[d", "(a", "LIMIT", 0, 2),
    z("ZRANGE", "lex", "+", "-", "BYLEX", "REV", "LIMIT", 2, 10),
    # removals
    z("ZREM", "z", "a", "a", "nope", "b"),
    z("ZREM", "nokey", "a"),
    z("ZPOPMIN", "z"),
    z("ZPOPMAX", "z"),
    z("ZPOPMIN", "z", 2),
    z("ZPOPMAX", "z", 0),
    z("ZPOPMIN", "z", -1),
    z("ZPOPMIN", "z", "x"),
    z("ZPOPMIN", "z", 1, 2),
    z("ZPOPMIN", "nokey"),
    z("ZPOPMIN", "nokey", 2),
    z("ZPOPMIN", "nokey", 0),
    z("ZREMRANGEBYSCORE", "z", "(10", "12"),
    z("ZREMRANGEBYSCORE", "z", "x", "12"),
    z("ZREMRANGEBYSCORE", "nokey", "x", "12"),
    z("ZREMRANGEBYSCORE", "nokey", "1", "12"),
    z("ZREMRANGEBYRANK", "z", 0, 0),
    z("ZREMRANGEBYRANK", "z", -1, -1),
    z("ZREMRANGEBYRANK", "z", 5, 1),
    z("ZREMRANGEBYRANK", "z", "x", 1),
    z("ZREMRANGEBYRANK", "nokey", "x", 1),
    z("ZRANGE", "z", 0, -1, "WITHSCORES"),
    z("ZPOPMAX", "z", 100),
    z("EXISTS", "z"),
    # -0 and a listpack vs a skiplist
    z("ZADD", "negz", "-0", "m"),
    z("ZSCORE", "negz", "m"),
    z("ZINCRBY", "negz", "-0", "n"),
    z("ZSCORE", "negz", "n"),
    z("ZRANGE", "negz", 0, -1, "WITHSCORES"),
    z("ZSCAN", "negz", 0),
    # wrong type
    z("SET", "s", "v"),
    z("ZADD", "s", 1, "a"),
    z("ZADD", "s", "x", "a"),
    z("ZINCRBY", "s", 1, "a"),
    z("ZSCORE", "s", "a"),
    z("ZMSCORE", "s", "a"),
    z("ZCARD", "s"),
    z("ZCOUNT", "s", 0, 1),
    z("ZCOUNT", "s", "x", 1),
    z("ZRANK", "s", "a"),
    z("ZREM", "s", "a"),
    z("ZRANGE", "s", 0, 1),
    z("ZRANGE", "s", "x", 1),
    z("ZRANGEBYLEX", "s", "-", "+"),
    z("ZPOPMIN", "s"),
    z("ZPOPMIN", "s", "x"),
    z("ZREMRANGEBYRANK", "s", 0, 1),
    z("ZREMRANGEBYSCORE", "s", 0, 1),
    z("ZSCAN", "s", 0),
    z("ZSCAN", "s", "x"),
    z("LPUSH", "z2", "a"),
    z("ZADD", "z2", 1, "a"),
    # ZSCAN of a small set
    z("ZADD", "sc", 1.5, "a", 2, "b", 0.1, "c", "1e20", "d", "inf", "g", 3, "k1", 4, "k2"),
    z("ZSCAN", "sc", 0),
    z("ZSCAN", "sc", 0, "MATCH", "k*"),
    z("ZSCAN", "sc", 0, "COUNT", 1),
    z("ZSCAN", "sc", 0, "COUNT", 0),
    z("ZSCAN", "sc", 0, "COUNT", "x"),
    z("ZSCAN", "sc", 0, "FOO"),
    z("ZSCAN", "sc", "x"),
    z("ZSCAN", "sc", "-1"),
    z("ZSCAN", "nokey", 0),
    z("ZSCAN", "nokey", "x"),
    z("ZSCAN", "nokey", 0, "FOO"),
    # the key's TTL goes with an emptied set
    z("ZADD", "e", 1, "a"),
    z("EXPIRE", "e", 100),
    z("ZPOPMIN", "e"),
    z("ZADD", "e", 1, "a"),
    z("TTL", "e"),
    z("TYPE", "e"),
    z("DEL", "e"),
    z("ZCARD", "e"),
]


def test_targeted(raw_pair):
    for c in TARGETED:
        same(raw_pair, *c)


def test_big_sets_past_the_listpack(raw_pair):
    """More than 128 members, and a long member: Redis converts to a skip
    list (ranks, ranges and -0 behave the same; ZSCAN cursors differ, so a
    whole scan is compared as a set)."""
    a, b = raw_pair
    rnd = random.Random(3)
    cmds = []
    for i in range(300):
        cmds.append(z("ZADD", "big", rnd.choice([i, i / 7, -i, 0]), f"m{i}"))
    cmds.append(z("ZADD", "long", 1, "x" * 65))
    cmds.append(z("ZADD", "long", "-0", "neg"))
    cmds.append(z("ZSCORE", "long", "neg"))
    cmds.append(z("ZADD", "big", "-0", "neg0"))
    cmds.append(z("ZSCORE", "big", "neg0"))
    for _ in range(200):
        i, j = rnd.randint(-310, 310), rnd.randint(-310, 310)
        cmds.append(z("ZRANGE", "big", i, j, "WITHSCORES"))
        cmds.append(z("ZRANGE", "big", i, j, "REV"))
        lo, hi = sorted([rnd.uniform(-300, 300), rnd.uniform(-300, 300)])
        cmds.append(
            z(
                "ZRANGEBYSCORE",
                "big",
                f"({lo!r}",
                hi,
                "LIMIT",
                rnd.randint(0, 5),
                rnd.randint(-1, 30),
            )
        )
        cmds.append(z("ZREVRANGEBYSCORE", "big", hi, lo, "WITHSCORES"))
        cmds.append(z("ZCOUNT", "big", lo, f"({hi!r}"))
        m = f"m{rnd.randint(0, 320)}"
        cmds.append(z("ZRANK", "big", m))
        cmds.append(z("ZREVRANK", "big", m))
        cmds.append(z("ZINCRBY", "big", rnd.choice([1, -2.5, 0.1]), m))
        if rnd.random() < 0.2:
            cmds.append(z("ZREM", "big", m))
        if rnd.random() < 0.05:
            cmds.append(z(rnd.choice(["ZPOPMIN", "ZPOPMAX"]), "big", rnd.randint(1, 5)))
        if rnd.random() < 0.03:
            cmds.append(z("ZREMRANGEBYRANK", "big", rnd.randint(0, 200), rnd.randint(0, 220)))
    cmds.append(z("ZRANGE", "big", 0, -1, "WITHSCORES"))
    run_all(raw_pair, cmds)

    def full_scan(conn):
        cur, seen = b"0", {}
        while True:
            reply = conn.call(b"ZSCAN", b"big", cur, b"COUNT", b"7")
            parts = reply.split(b"\r\n")
            cur = parts[2]
            items = [p for p in parts[4:] if p and p[:1] not in (b"$", b"*", b",")]
            for m, s in zip(items[::2], items[1::2]):
                seen[m] = s
            if cur == b"0":
                return seen

    assert full_scan(a) == full_scan(b)


SKEYS = [b"z1", b"z2", b"s", b"nokey"]
MEMBERS = [b"a", b"b", b"c", b"d", b""]
SCORES = [b"0", b"1", b"-1", b"2.5", b"1e3", b"-0", b"inf", b"-inf", b"0.1", b"(1", b"x"]


def random_cmd(rnd: random.Random) -> list:
    k = rnd.choice(SKEYS)
    m = rnd.choice(MEMBERS)
    sc = lambda: rnd.choice(SCORES[:-2])  # noqa: E731
    bound = lambda: rnd.choice([b"-inf", b"+inf", b"0", b"(0", b"1", b"(2.5", b"x"])  # noqa: E731
    idx = lambda: str(rnd.randint(-5, 5)).encode()  # noqa: E731
    opts = [b"NX", b"XX", b"CH", b"GT", b"LT", b"INCR"]
    choices = [
        lambda: [b"ZADD", k] + rnd.sample(opts, rnd.randint(0, 2)) + [sc(), m],
        lambda: [b"ZADD", k, sc(), m, sc(), rnd.choice(MEMBERS)],
        lambda: [b"ZINCRBY", k, rnd.choice(SCORES), m],
        lambda: [b"ZSCORE", k, m],
        lambda: [b"ZMSCORE", k, m, rnd.choice(MEMBERS)],
        lambda: [b"ZCARD", k],
        lambda: [b"ZCOUNT", k, bound(), bound()],
        lambda: [rnd.choice([b"ZRANK", b"ZREVRANK"]), k, m],
        lambda: [b"ZREM", k, m, rnd.choice(MEMBERS)],
        lambda: (
            [b"ZRANGE", k, idx(), idx()]
            + rnd.choice([[], [b"WITHSCORES"], [b"REV"], [b"REV", b"WITHSCORES"]])
        ),
        lambda: (
            [b"ZRANGE", k, bound(), bound(), b"BYSCORE"]
            + rnd.choice([[], [b"REV"], [b"WITHSCORES"], [b"LIMIT", idx(), idx()]])
        ),
        lambda: (
            [rnd.choice([b"ZRANGEBYSCORE", b"ZREVRANGEBYSCORE"]), k, bound(), bound()]
            + rnd.choice([[], [b"WITHSCORES"], [b"LIMIT", idx(), idx()]])
        ),
        lambda: [rnd.choice([b"ZPOPMIN", b"ZPOPMAX"]), k] + rnd.choice([[], [idx()]]),
        lambda: [b"ZREMRANGEBYSCORE", k, bound(), bound()],
        lambda: [b"ZREMRANGEBYRANK", k, idx(), idx()],
        lambda: [b"ZREVRANGE", k, idx(), idx()] + rnd.choice([[], [b"WITHSCORES"]]),
        lambda: [b"ZSCAN", k, b"0"] + rnd.choice([[], [b"MATCH", b"[ab]*"]]),
        lambda: [b"DEL", k],
        lambda: [b"SET", b"s", b"v"],
        lambda: [b"TYPE", k],
    ]
    return rnd.choice(choices)()


def random_lex_cmd(rnd: random.Random) -> list:
    """BYLEX only on sets whose scores are all equal (Redis leaves the rest
    unspecified)."""
    lex = lambda: rnd.choice([b"-", b"+", b"[a", b"(b", b"[c", b"(", b"[", b"x", b"(ab"])  # noqa: E731
    m = rnd.choice([b"a", b"ab", b"b", b"c", b"", b"d"])
    return rnd.choice(
        [
            [b"ZADD", b"lx", b"0", m],
            [b"ZREM", b"lx", m],
            [rnd.choice([b"ZRANGEBYLEX", b"ZREVRANGEBYLEX"]), b"lx", lex(), lex()]
            + rnd.choice([[], [b"LIMIT", b"0", b"2"], [b"LIMIT", b"1", b"-1"]]),
            [b"ZRANGE", b"lx", lex(), lex(), b"BYLEX"] + rnd.choice([[], [b"REV"]]),
        ]
    )


@pytest.mark.parametrize("seed", range(6))
def test_random_sequences(raw_pair, seed):
    rnd = random.Random(seed)
    cmds = [random_cmd(rnd) for _ in range(500)] + [random_lex_cmd(rnd) for _ in range(150)]
    run_all(raw_pair, cmds)
    for k in SKEYS + [b"lx"]:
        same(raw_pair, b"ZRANGE", k, b"0", b"-1", b"WITHSCORES")


# ---------------------------------------------------------------- in process ----


def make_node(node_id=1):
    ks = Keyspace(node_id, Backlog())
    srv = Server(ks)
    for m in (cmd_strings, cmd_keys, cmd_server, cmd_zsets):
        m.register(srv)
    return ks, Client(srv)


@pytest.mark.parametrize("seed", range(3))
def test_skip_list_against_a_sorted_list(seed):
    rnd = random.Random(seed)
    ks, c = make_node()
    model: dict[bytes, float] = {}
    for _ in range(3000):
        m = b"m%d" % rnd.randint(0, 400)
        op = rnd.random()
        if op < 0.5:
            s = rnd.choice([rnd.randint(-50, 50), rnd.random() * 100, 0])
            c.run(b"ZADD", b"k", repr(float(s)), m)
            model[m] = float(s)
        elif op < 0.7:
            d = rnd.choice([1, -1, 0.5])
            c.run(b"ZINCRBY", b"k", d, m)
            model[m] = model.get(m, 0.0) + d
        elif op < 0.85:
            c.run(b"ZREM", b"k", m)
            model.pop(m, None)
        elif op < 0.9 and model:
            c.run(b"ZPOPMIN", b"k")
            del model[min(model, key=lambda x: (model[x], x))]
        o = ks.py_find(b"k", 3)
        if o is not None:
            check_zset(o)
            from constdb._core.t_zset import zset_items

            assert zset_items(o) == sorted(model.items(), key=lambda kv: (kv[1], kv[0]))
        else:
            assert not model


def _fill(c, key: bytes, start: int, n: int) -> None:
    for s in range(start, start + n, 500):
        args = []
        for i in range(s, min(start + n, s + 500)):
            args += [b"%d" % i, b"m%d" % i]
        c.run(b"ZADD", key, *args)


def test_unlink_of_a_big_zset_is_a_bulk_removal_freed_in_slices():
    """UNLINK removes every member at once (the bulk, one removal mark), its
    skip list's nodes are freed a slice at a time with commands served in
    between, and GC later drops the bulk whole, its dict freed in slices too."""
    ks, c = make_node()
    n = 6000
    _fill(c, b"k", 0, n)
    assert c.run(b"ZINCRBY", b"k", b"1", b"m7") == b"$1\r\n8\r\n"
    o = ks.py_find(b"k", 3)
    assert c.run(b"UNLINK", b"k") == b":1\r\n"
    assert c.run(b"EXISTS", b"k") == b":0\r\n"
    check_zset(o)
    assert not o.m and list(o.gone) == [b"m7"]  # (counters: kept past GC, one by one)
    assert len(ks.lazy) == 1 and len(ks.lazy[0]) == n  # the detached skip list
    back = []
    while ks.lazy_step(1000):
        # between slices the node serves commands, here ones that take
        # members back out of the bulk (a removed member's state is kept)
        back.append(b"m%d" % (len(back) * 3))
        assert c.run(b"ZADD", b"k", b"-1", back[-1]) == b":1\r\n"
        check_zset(o)
    assert len(back) >= 5
    assert c.run(b"ZCARD", b"k") == b":%d\r\n" % len(back)
    assert c.run(b"ZINCRBY", b"k", b"1", b"m7") == b"$1\r\n1\r\n"  # (a new member, as Redis)
    dropped, empty = gc_zset(o, 2**63)
    assert dropped == n - 1 - len(back) and not empty
    check_zset(o)
    assert len(ks.lazy) == 1 and len(ks.lazy[0]) == dropped  # the bulk's dict
    while ks.lazy_step(1000):
        assert c.run(b"ZSCORE", b"k", back[0]) == b"$2\r\n-1\r\n"
    assert zset_items(o) == sorted(
        [(m, -1.0) for m in back] + [(b"m7", 1.0)], key=lambda kv: (kv[1], kv[0])
    )
    # DEL again, then a GC that finds nothing left: the object goes
    c.run(b"DEL", b"k")
    assert gc_zset(o, 2**63) == (len(back), False)  # m7 keeps its counters
    assert not ks.lazy


def test_a_loaded_deleted_zset_keeps_its_removed_members_in_bulk():
    """A snapshot of a deleted sorted set loads its removed members back into
    one bulk with the DEL's mark (no removal object per member, GC drops
    them whole, freed in slices); a member with counters, and one removed at
    another mark, stay in gone. The loaded state describes the same."""
    ks, c = make_node()
    n = 3000
    _fill(c, b"k", 0, n)
    assert c.run(b"ZINCRBY", b"k", b"1", b"m7") == b"$1\r\n8\r\n"
    assert c.run(b"ZREM", b"k", b"m9") == b":1\r\n"
    assert c.run(b"DEL", b"k") == b":1\r\n"
    o = ks.py_find(b"k", 3)
    assert zset_removed(o) == (2, n - 2)
    ks2, c2 = make_node()
    snapshot.merge(ks2, snapshot.parse(snapshot.dump(ks)))
    o2 = ks2.py_find(b"k", 3)
    check_zset(o2)
    assert zset_removed(o2) == (2, n - 2)
    assert describe_obj(o2) == describe_obj(o)
    assert c2.run(b"ZADD", b"k", b"5", b"m3") == b":1\r\n"  # out of the bulk, back
    assert zset_removed(o2) == (2, n - 3)
    dropped, empty = gc_zset(o2, 2**63)
    assert dropped == n - 2 and not empty  # the bulk whole, m9; m7 keeps its counters
    assert len(ks2.lazy) == 1 and len(ks2.lazy[0]) == n - 3  # its dict, freed in slices
    while ks2.lazy_step(1000):
        pass
    assert zset_items(o2) == [(b"m3", 5.0)]


def _zsets_of(ks) -> list:
    out = [ks.py_find(k, 3) for k in list(ks.d)]
    return [o for o in out if o is not None]


def _ship(src, dst, pos: list) -> None:
    """src's records past pos[0] applied at dst (a peer's effects)."""
    data, last, _n = src.bl.read_from(pos[0], 1 << 40)
    if data:
        dst.apply_records(src.node_id, data)
        pos[0] = last


def test_member_bytes_stay_what_a_recount_gives():
    """A sorted set's memory estimate counts its members' bytes as they come
    and go (ZSetObj.mb): after every kind of write, local or a peer's, the
    node's running data set count is what a recount of every object gives,
    and each set's member bytes what summing its members gives (members of 1
    byte, of a few, and past pymalloc's 512-byte blocks)."""
    a, ca = make_node(1)
    b, cb = make_node(2)
    pos_ab, pos_ba = [0], [0]
    big = b"B" * 600

    def check(ks) -> None:
        counted = ks.mem_ds
        for o in _zsets_of(ks):
            check_zset(o)  # (ZSetObj.mb is the sum of its members' blocks)
        assert ks.mem_recount() == counted

    def exchange() -> None:
        # each node checked before and after it applies the other's new records
        check(a)
        check(b)
        _ship(a, b, pos_ab)
        _ship(b, a, pos_ba)
        check(a)
        check(b)

    def step(c, *args) -> None:
        c.run(*args)
        exchange()

    step(ca, b"ZADD", b"z", 1, b"a", 2, b"bb", 3, big, 4, b"c" * 20, 5, b"d" * 40)
    step(ca, b"ZADD", b"src", 1, b"a", 2, b"x" * 30, 3, b"y" * 700)
    steps = [
        (b"ZADD", b"z", 9, b"a"),  # a new score
        (b"ZADD", b"z", b"NX", 10, b"a", 11, b"e" * 9),
        (b"ZADD", b"z", b"XX", 12, b"a", 13, b"absent"),
        (b"ZADD", b"z", b"GT", b"CH", 0, b"bb", 100, b"c" * 20),
        (b"ZADD", b"z", b"LT", 1, b"d" * 40, 2, b"f" * 64),
        (b"ZADD", b"z", b"INCR", 2, b"a"),
        (b"ZADD", b"z", b"INCR", 2, b"g" * 17),
        (b"ZINCRBY", b"z", 3, b"h" * 100),
        (b"ZADD", b"z", 7, b"g" * 17),  # a new score for a member with counters
        (b"ZREM", b"z", b"bb", b"h" * 100, b"absent"),
        (b"ZPOPMIN", b"z"),
        (b"ZPOPMAX", b"z", 2),
        (b"ZADD", b"z", 1, b"i", 2, b"j" * 33, 3, b"k" * 300, 4, b"l"),
        (b"ZREMRANGEBYSCORE", b"z", 2, 3),
        (b"ZREMRANGEBYRANK", b"z", 0, 0),
        (b"ZADD", b"z", 0, b"m", 0, b"n" * 50, 0, b"o"),
        (b"ZREMRANGEBYLEX", b"z", b"[m", b"[n~"),
        (b"ZINTERSTORE", b"z", 2, b"z", b"src"),  # into an existing key
        (b"ZUNIONSTORE", b"z", 2, b"z", b"src"),
        (b"ZRANGESTORE", b"z2", b"src", 0, -1),
        (b"COPY", b"src", b"z2", b"REPLACE"),
        (b"RENAME", b"z2", b"z3"),
        (b"DEL", b"z"),
        (b"ZADD", b"z", 5, big, 6, b"p" * 3),  # members back out of the bulk
        (b"UNLINK", b"z3"),
        (b"ZADD", b"z3", 1, b"q"),
    ]
    for args in steps:
        step(ca, *args)
    # concurrent writes on both nodes, then each applies the other's
    ca.run(b"ZADD", b"z", 1, b"r" * 45, 2, big)
    cb.run(b"DEL", b"z")
    cb.run(b"ZADD", b"z", 3, b"s" * 70, 4, b"p" * 3)
    ca.run(b"ZINCRBY", b"z", 1, b"s" * 70)
    cb.run(b"ZREM", b"src", b"a")
    ca.run(b"ZADD", b"src", 8, b"a")
    exchange()
    assert ca.run(b"ZRANGE", b"z", 0, -1, b"WITHSCORES") == cb.run(
        b"ZRANGE", b"z", 0, -1, b"WITHSCORES"
    )
    assert a.mem_ds == b.mem_ds > 0
    step(cb, b"FLUSHALL")
    assert a.mem_ds == b.mem_ds == 0


def test_unlink_of_a_big_zset_does_not_stall_the_loop(constdb_server, r):
    """While the skip list of an UNLINKed big sorted set is freed, other
    clients are answered: the UNLINK and an INFO in one pipeline see the
    freeing still pending, and a PING from another client is answered before
    it ends (progress, not timing)."""
    n = 300_000
    for s in range(0, n, 10_000):
        r.zadd("big", {f"m{i}": i for i in range(s, s + 10_000)})
    p = r.pipeline(transaction=False)
    p.unlink("big")
    p.info("memory")
    unlinked, mem = p.execute()
    assert unlinked == 1 and mem["lazyfree_pending_objects"] >= 1
    other = constdb_server.client()
    try:
        assert other.ping() is True
        assert other.exists("big") == 0
        wait_for(lambda: r.info("memory")["lazyfree_pending_objects"] == 0, 30, what="freed")
        r.zadd("big", {"again": 1})
        assert r.zrange("big", 0, -1, withscores=True) == [(b"again", 1.0)]
    finally:
        other.close()


# ---------------------------------------------------------------- benchmark ----


def test_redis_benchmark_zsets(constdb_server, r):
    exe = need_tool("redis-benchmark")
    out = subprocess.run(
        [exe, "-p", str(constdb_server.port), "-t", "zadd,zpopmin", "-n", "20000", "-q"],
        capture_output=True,
        timeout=300,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    text = out.stdout.replace("\r", "\n")
    assert "rror" not in text, text
    for name in ("ZADD", "ZPOPMIN"):
        assert re.search(rf"^{name}.*requests per second", text, re.M), text
