"""SPOP, SRANDMEMBER, HRANDFIELD and RANDOMKEY draw from kept random-access lists
(objects.draw): these tests check that what they return is always a current
member, that SPOP takes each member once, and that interleaved adds and removals
never leave a member out of reach."""

from __future__ import annotations

import random
import time
from collections import Counter


def members(n: int, tag: str = "m") -> list[bytes]:
    return [f"{tag}{i}".encode() for i in range(n)]


def test_spop_drains_every_member_once(r):
    ms = members(2000)
    r.sadd("s", *ms)
    got = [r.spop("s") for _ in range(len(ms))]
    assert sorted(got) == sorted(ms)
    assert r.spop("s") is None
    assert r.exists("s") == 0


def test_spop_count_is_distinct_and_removes(r):
    ms = members(1000)
    r.sadd("s", *ms)
    seen: set[bytes] = set()
    for k in (1, 3, 10, 50, 200):
        got = r.spop("s", k)
        assert len(got) == k and len(set(got)) == k
        assert not seen & set(got)
        seen |= set(got)
        assert r.scard("s") == len(ms) - len(seen)
    rest = set(r.smembers("s"))
    assert rest | seen == set(ms) and not rest & seen


def test_interleaved_writes_keep_draws_exact(r):
    rnd = random.Random(7)
    model: set[bytes] = set(members(300))
    r.sadd("s", *model)
    fresh = iter(members(10_000, "new"))
    for step in range(3000):
        op = rnd.random()
        if op < 0.3:
            m = next(fresh)
            assert r.sadd("s", m) == 1
            model.add(m)
        elif op < 0.5 and model:
            m = rnd.choice(sorted(model))
            assert r.srem("s", m) == 1
            model.discard(m)
        elif op < 0.8:
            m = r.spop("s")
            if model:
                assert m in model, (step, m)
                model.discard(m)
            else:
                assert m is None
        else:
            m = r.srandmember("s")
            assert (m in model) if model else m is None
    assert set(r.smembers("s")) == model


def test_added_member_is_reachable(r):
    # a member added after the list was built can be drawn
    r.sadd("s", *members(50))
    r.srandmember("s")  # builds the list
    r.sadd("s", b"late")
    got = {r.spop("s") for _ in range(51)}
    assert b"late" in got


def test_srandmember_negative_count_covers_members(r):
    r.sadd("s", b"a", b"b", b"c")
    got = r.srandmember("s", -600)
    assert len(got) == 600
    c = Counter(got)
    assert set(c) == {b"a", b"b", b"c"}
    # each of three members drawn about a third of the time
    assert all(100 < v < 300 for v in c.values()), c
    assert r.scard("s") == 3


def test_spop_is_spread(r):
    # uniform enough: over 60 fresh 10-member sets, every member is the
    # first one popped at least once in a while (a deterministic order fails)
    firsts = Counter()
    for _ in range(60):
        r.delete("s")
        r.sadd("s", *members(10))
        firsts[r.spop("s")] += 1
    assert len(firsts) >= 6, firsts


def test_randomkey_follows_adds_deletes_and_expiry(r):
    # RANDOMKEY draws from a kept list of the keys (cmd_keys): every draw is
    # a live key, new keys are drawn, deleted and expired ones never are
    assert r.randomkey() is None
    r.mset({f"k{i}": i for i in range(200)})
    live = {f"k{i}".encode() for i in range(200)}
    for _ in range(50):
        assert r.randomkey() in live
    r.delete(*[f"k{i}" for i in range(100)])
    live -= {f"k{i}".encode() for i in range(100)}
    for _ in range(200):
        assert r.randomkey() in live
    r.set("late", "x")
    live.add(b"late")
    seen = {r.randomkey() for _ in range(2000)}
    assert b"late" in seen and seen <= live
    # keys that expire are deleted when drawn, never returned
    r.set("px", "1", px=30)
    r.delete(*live)

    time.sleep(0.06)
    assert r.randomkey() is None
    assert r.dbsize() == 0


def test_randomkey_is_spread(r):
    r.mset({f"k{i}": i for i in range(20)})
    seen = {r.randomkey() for _ in range(400)}
    assert len(seen) == 20


def test_hrandfield_follows_writes(r):
    r.hset("h", mapping={f"f{i}": i for i in range(100)})
    fields = {f"f{i}".encode() for i in range(100)}
    for _ in range(50):
        assert r.hrandfield("h") in fields
    r.hdel("h", *[f"f{i}" for i in range(50)])
    fields -= {f"f{i}".encode() for i in range(50)}
    for _ in range(100):
        assert r.hrandfield("h") in fields
    r.hset("h", "late", "x")
    fields.add(b"late")
    r.hincrby("h", "cnt", 3)
    fields.add(b"cnt")
    seen = {r.hrandfield("h") for _ in range(1500)}
    assert seen == fields
    got = r.hrandfield("h", 5)
    assert len(got) == 5 and len(set(got)) == 5 and set(got) <= fields
    got = r.hrandfield("h", -300)
    assert len(got) == 300 and set(got) <= fields
    got = r.hrandfield("h", 3, withvalues=True)
    assert len(got) == 6
    assert all(r.hget("h", f) == v for f, v in zip(got[::2], got[1::2]))


def test_srandmember_positive_count_is_distinct(r):
    ms = members(400)
    r.sadd("s", *ms)
    for k in (1, 5, 50, 99, 100, 150, 399, 400, 500):
        got = r.srandmember("s", k)
        assert len(got) == min(k, 400) and len(set(got)) == len(got)
        assert set(got) <= set(ms)
    assert r.scard("s") == 400


def test_randomkey_lists_are_per_db(constdb_server, r):
    # each db keeps its own RANDOMKEY list (Keyspace.use): a client
    # alternating between dbs draws only its db's live keys, keys written
    # and deleted in one db while another was current are followed, and
    # SWAPDB / FLUSHDB are seen
    c0 = constdb_server.client(db=0)
    c3 = constdb_server.client(db=3)
    c3.flushdb()
    c0.mset({f"a{i}": i for i in range(50)})
    c3.mset({f"b{i}": i for i in range(50)})
    live0 = {f"a{i}".encode() for i in range(50)}
    live3 = {f"b{i}".encode() for i in range(50)}
    for _ in range(100):
        assert c0.randomkey() in live0
        assert c3.randomkey() in live3
    c3.set("late3", "x")
    c3.delete(*[f"b{i}" for i in range(25)])
    live3 = {f"b{i}".encode() for i in range(25, 50)} | {b"late3"}
    seen0, seen3 = set(), set()
    for _ in range(600):
        seen0.add(c0.randomkey())
        seen3.add(c3.randomkey())
    assert seen0 <= live0 and seen3 == live3
    c0.swapdb(0, 3)
    for _ in range(100):
        assert c0.randomkey() in live3
        assert c3.randomkey() in live0
    c0.flushdb()
    assert c0.randomkey() is None
    assert c3.randomkey() in live0
    c3.flushdb()
