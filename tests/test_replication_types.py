"""Lists, sorted sets and hash-field counters across real nodes."""

from __future__ import annotations

import time

from support.nodes import (
    cut_link,
    heal_link,
    meet,
    proxied_pair,
    wait_converged,
    wait_for,
    wait_linked,
)


def test_lists_and_zsets_travel_in_full_sync_and_stream(node):
    from support.nodes import make_node

    a = make_node(node, "a")
    ra = a.client()
    ra.rpush("l", "a", "b", "c")
    ra.lpop("l")
    ra.zadd("z", {"x": 1.5, "y": 2})
    ra.zincrby("z", 3, "x")
    ra.hincrby("h", "f", 5)
    b = make_node(node, "b")
    meet(b, a)
    wait_linked([a, b])
    wait_converged([a, b])
    rb = b.client()
    assert rb.lrange("l", 0, -1) == [b"b", b"c"]
    assert rb.zrange("z", 0, -1, withscores=True) == [(b"y", 2.0), (b"x", 4.5)]
    assert rb.hget("h", "f") == b"5"
    rb.rpush("l", "d")
    ra.zadd("z", {"w": 0})
    wait_converged([a, b])
    assert ra.lrange("l", 0, -1) == rb.lrange("l", 0, -1) == [b"b", b"c", b"d"]
    assert ra.zrange("z", 0, 0) == [b"w"]


def test_concurrent_pushes_end_in_the_same_order_everywhere(node):
    a, b, pa, pb = proxied_pair(node)
    try:
        ra, rb = a.client(), b.client()
        ra.rpush("q", "base")
        wait_converged([a, b])
        cut_link(pa, pb, a, b)
        ra.rpush("q", "a1", "a2")
        ra.lpush("q", "a0")
        rb.rpush("q", "b1")
        rb.lpush("q", "b0", "bb")
        ra.linsert("q", "AFTER", "base", "a-after-base")
        rb.linsert("q", "AFTER", "base", "b-after-base")
        heal_link(pa, pb, a, b)
        la, lb = ra.lrange("q", 0, -1), rb.lrange("q", 0, -1)
        assert la == lb
        assert sorted(la) == sorted(
            [b"base", b"a1", b"a2", b"a0", b"b1", b"b0", b"bb", b"a-after-base", b"b-after-base"]
        )
        # each node's own run keeps its order
        assert la.index(b"a1") < la.index(b"a2")
        assert la.index(b"bb") < la.index(b"b0") < la.index(b"base")
    finally:
        pa.close()
        pb.close()


def test_concurrent_pops_are_at_least_once_and_converge(node):
    a, b, pa, pb = proxied_pair(node)
    try:
        ra, rb = a.client(), b.client()
        ra.rpush("q", "1", "2", "3", "4")
        wait_converged([a, b])
        cut_link(pa, pb, a, b)
        pa_pop = ra.lpop("q")
        pb_pop = rb.lpop("q")
        assert pa_pop == pb_pop == b"1"  # both nodes delivered the same element
        rb.lset("q", 0, "two")
        ra.rpop("q")
        heal_link(pa, pb, a, b)
        assert ra.lrange("q", 0, -1) == rb.lrange("q", 0, -1) == [b"two", b"3"]
    finally:
        pa.close()
        pb.close()


def test_concurrent_zincrby_add_up_and_zadd_converges(node):
    a, b, pa, pb = proxied_pair(node)
    try:
        ra, rb = a.client(), b.client()
        ra.zadd("z", {"m": 10, "n": 1})
        wait_converged([a, b])
        cut_link(pa, pb, a, b)
        ra.zincrby("z", 5, "m")
        rb.zincrby("z", 7, "m")
        ra.zadd("z", {"n": 100})
        time.sleep(0.01)
        rb.zincrby("z", 1, "n")
        heal_link(pa, pb, a, b)
        assert ra.zscore("z", "m") == rb.zscore("z", "m") == 22.0
        # the ZADD wins the register, the concurrent increment stays on top
        assert ra.zscore("z", "n") == rb.zscore("z", "n") == 101.0
        assert ra.zrange("z", 0, -1) == rb.zrange("z", 0, -1)
    finally:
        pa.close()
        pb.close()


def test_concurrent_hincrby_add_up(node):
    a, b, pa, pb = proxied_pair(node)
    try:
        ra, rb = a.client(), b.client()
        ra.hset("h", "plain", "x")
        wait_converged([a, b])
        cut_link(pa, pb, a, b)
        for _ in range(3):
            ra.hincrby("h", "c", 2)
        rb.hincrby("h", "c", 10)
        heal_link(pa, pb, a, b)
        assert ra.hget("h", "c") == rb.hget("h", "c") == b"16"
        assert ra.hgetall("h") == rb.hgetall("h")
    finally:
        pa.close()
        pb.close()


def test_list_tombstones_are_collected_across_nodes(node):
    from support.nodes import make_node

    a, b = make_node(node, "a"), make_node(node, "b")
    meet(b, a)
    wait_linked([a, b])
    ra = a.client()
    for i in range(200):
        ra.rpush("q", i)
    for _ in range(200):
        ra.lpop("q")
    ra.rpush("q", "last")
    wait_converged([a, b])
    assert b.client().lrange("q", 0, -1) == [b"last"]
    wait_for(
        lambda: int(ra.info("replication")["gc_dropped_tombstones"]) >= 200,
        15,
        what="list tombstones collected on a",
    )


def test_concurrent_zadd_survives_a_del_of_a_big_zset(node):
    """A DEL of a big sorted set (a bulk removal) removes what it observed:
    members a peer added or re-scored concurrently survive on both nodes,
    with the peer's scores; the rest is gone everywhere."""
    a, b, pa, pb = proxied_pair(node)
    try:
        ra, rb = a.client(), b.client()
        n = 20_000
        for s in range(0, n, 5_000):
            ra.zadd("big", {f"m{i}": i for i in range(s, s + 5_000)})
        ra.zincrby("big", 2, "m1")
        wait_converged([a, b])
        assert rb.zcard("big") == n
        cut_link(pa, pb, a, b)
        rb.zadd("big", {"m5": -5, "fresh": 0.5})  # re-scored and new, concurrently
        assert ra.delete("big") == 1
        heal_link(pa, pb, a, b)
        want = [(b"m5", -5.0), (b"fresh", 0.5)]
        assert ra.zrange("big", 0, -1, withscores=True) == want
        assert rb.zrange("big", 0, -1, withscores=True) == want
        # the removed members' state was kept: a new ZADD on either side converges
        rb.zadd("big", {"m1": 7})
        ra.zincrby("big", 1, "m2")
        wait_converged([a, b])
        assert ra.zrange("big", 0, -1, withscores=True) == [
            (b"m5", -5.0),
            (b"fresh", 0.5),
            (b"m2", 1.0),
            (b"m1", 7.0),
        ]
    finally:
        pa.close()
        pb.close()


def test_del_of_a_packed_list_keeps_a_concurrent_push_and_collects(node):
    """DEL turns a packed list's blocks into dead packed blocks (no object per
    element); pushes and LINSERTs a peer made concurrently, after elements the
    DEL removes, survive it (observed-remove), pops race peers' inserts on the
    popped elements, and the tombstones are collected everywhere."""
    a, b, pa, pb = proxied_pair(node)
    try:
        ra, rb = a.client(), b.client()
        ra.rpush("l", *[f"v{i}" for i in range(3000)])
        ra.rpush("q", *[f"q{i}" for i in range(500)])
        wait_converged([a, b])
        dropped0 = int(ra.info("replication")["gc_dropped_tombstones"])
        cut_link(pa, pb, a, b)
        assert ra.delete("l") == 1
        rb.rpush("l", "late")
        rb.linsert("l", "AFTER", "v1500", "mid")
        ra.lpop("q", 100)
        ra.rpop("q", 100)
        rb.linsert("q", "AFTER", "q50", "after-popped")
        rb.rpush("q", "tail")
        rb.lpush("q", "head")
        heal_link(pa, pb, a, b)
        wait_converged([a, b])
        for r in (ra, rb):
            assert r.lrange("l", 0, -1) == [b"mid", b"late"]
            q = r.lrange("q", 0, -1)
            assert q[0] == b"head" and q[-1] == b"tail" and b"after-popped" in q
            assert len(q) == 303
        assert ra.lrange("q", 0, -1) == rb.lrange("q", 0, -1)
        wait_for(
            lambda: int(ra.info("replication")["gc_dropped_tombstones"]) >= dropped0 + 3200,
            30,
            what="the deleted list's and the pops' tombstones collected on a",
        )
        assert ra.lrange("l", 0, -1) == rb.lrange("l", 0, -1) == [b"mid", b"late"]
    finally:
        pa.close()
        pb.close()
