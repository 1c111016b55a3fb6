"""CLIENT TRACKING: invalidation messages side by side with redis-server
(RESP3 pushes, RESP2 through a redirect client subscribed to
__redis__:invalidate), and across the group: a write on one member
invalidates the caches of clients tracking on another."""

from __future__ import annotations

import pytest
from support.nodes import make_node, meet, wait_linked
from support.resp import Conn


@pytest.fixture
def sides(r, rr, constdb_server, redis_server):
    """Per server: (tracking client in RESP3, writer, RESP2 redirect target)."""
    out = []
    for s in (constdb_server, redis_server):
        out.append((Conn(s.port, 3), Conn(s.port, 2), Conn(s.port, 2)))
    yield out
    for side in out:
        for c in side:
            c.close()


def same(sides, who: int, *args) -> bytes:
    got = [side[who].call(*args) for side in sides]
    assert got[0] == got[1], f"{args!r}: constdb {got[0]!r} != redis {got[1]!r}"
    return got[0]


def same_n(sides, who: int, n: int, *args) -> list[bytes]:
    got = []
    for side in sides:
        side[who].send(*args)
        got.append(side[who].read_many(n))
    assert got[0] == got[1], f"{args!r}: constdb {got[0]!r} != redis {got[1]!r}"
    return got[0]


def pushed(sides, who: int = 0, n: int = 1) -> list[bytes]:
    got = [side[who].read_many(n) for side in sides]
    assert got[0] == got[1], f"constdb {got[0]!r} != redis {got[1]!r}"
    return got[0]


def nothing_pending(sides, who: int = 0) -> None:
    for side in sides:
        assert side[who].call("PING") in (b"+PONG\r\n", b"*2\r\n$4\r\npong\r\n$0\r\n\r\n")


def test_errors_and_trackinginfo(sides):
    for cmd in (
        ("CLIENT", "TRACKING"),
        ("CLIENT", "TRACKING", "maybe"),
        ("CLIENT", "TRACKING", "on", "prefix", "a"),
        ("CLIENT", "TRACKING", "on", "bcast", "optin"),
        ("CLIENT", "TRACKING", "on", "optin", "optout"),
        ("CLIENT", "TRACKING", "on", "redirect", "999999"),
        ("CLIENT", "TRACKING", "on", "redirect", "x"),
        ("CLIENT", "TRACKING", "on", "foo"),
        ("CLIENT", "TRACKING", "on", "bcast", "prefix", "ab", "prefix", "a"),
        ("CLIENT", "TRACKINGINFO"),
        ("CLIENT", "GETREDIR"),
        ("CLIENT", "CACHING", "yes"),
        ("CLIENT", "TRACKING", "on"),
        ("CLIENT", "TRACKING", "on", "bcast"),
        ("CLIENT", "CACHING", "yes"),
        ("CLIENT", "TRACKINGINFO"),
        ("CLIENT", "GETREDIR"),
        ("CLIENT", "TRACKING", "off"),
        ("CLIENT", "TRACKING", "on", "optin"),
        ("CLIENT", "TRACKING", "on", "optout"),
        ("CLIENT", "CACHING", "maybe"),
        ("CLIENT", "CACHING", "no"),
        ("CLIENT", "CACHING", "yes"),
        ("CLIENT", "TRACKINGINFO"),
        ("CLIENT", "TRACKING", "off"),
        ("CLIENT", "TRACKING", "on", "bcast", "prefix", "a", "noloop"),
        ("CLIENT", "TRACKING", "on", "bcast", "prefix", "ab"),
        ("CLIENT", "TRACKING", "on", "bcast", "prefix", "b"),
        ("CLIENT", "TRACKINGINFO"),
    ):
        same(sides, 0, *cmd)


def test_default_mode_invalidates_what_was_read_once(sides):
    same(sides, 0, "CLIENT", "TRACKING", "on")
    same(sides, 1, "SET", "k", "1")
    same(sides, 0, "GET", "k")
    same(sides, 0, "MGET", "k", "a", "b")
    same(sides, 1, "SET", "k", "2")
    pushed(sides)  # invalidate [k]
    same(sides, 1, "SET", "k", "3")  # not read since: no message
    same(sides, 1, "SET", "a", "x")
    pushed(sides)  # a was read too (missing then)
    nothing_pending(sides)
    # the client's own write: the message comes after its reply
    same(sides, 0, "GET", "k")
    same_n(sides, 0, 2, "SET", "k", "4")
    # every kind of change invalidates: a list push, a delete, an expiry write
    same(sides, 0, "LRANGE", "l", "0", "-1")
    same(sides, 1, "RPUSH", "l", "x")
    pushed(sides)
    same(sides, 0, "HGET", "h", "f")
    same(sides, 1, "HSET", "h", "f", "v")
    pushed(sides)
    same(sides, 0, "GET", "k")
    same(sides, 1, "EXPIRE", "k", "100")
    pushed(sides)
    same(sides, 0, "GET", "k")
    same_n(sides, 0, 2, "FLUSHALL")  # +OK, then "drop everything" (null)
    same(sides, 0, "CLIENT", "TRACKING", "off")
    same(sides, 0, "GET", "k")
    same(sides, 1, "SET", "k", "5")
    nothing_pending(sides)


def test_optin_optout_noloop(sides):
    same(sides, 0, "CLIENT", "TRACKING", "on", "optin")
    same(sides, 0, "GET", "a")  # not tracked: no CACHING yes before it
    same(sides, 0, "CLIENT", "CACHING", "yes")
    same(sides, 0, "GET", "b")
    same(sides, 1, "MSET", "a", "1", "b", "1")
    pushed(sides)  # b only
    nothing_pending(sides)
    same(sides, 0, "CLIENT", "TRACKING", "off")
    same(sides, 0, "CLIENT", "TRACKING", "on", "optout", "noloop")
    same(sides, 0, "CLIENT", "CACHING", "no")
    same(sides, 0, "GET", "a")  # not tracked
    same(sides, 0, "GET", "b")
    same(sides, 0, "SET", "b", "2")  # its own write: NOLOOP, no message
    same(sides, 0, "GET", "b")
    same(sides, 1, "SET", "b", "3")
    pushed(sides)
    nothing_pending(sides)


def test_bcast_prefixes_one_message_per_prefix(sides):
    same(sides, 0, "CLIENT", "TRACKING", "on", "bcast", "prefix", "user:", "prefix", "item:")
    same(sides, 1, "MSET", "user:1", "a", "other", "b", "user:2", "c")
    pushed(sides)  # [user:1, user:2]
    same(sides, 1, "SET", "item:9", "x")
    pushed(sides)
    same(sides, 0, "SET", "user:3", "own")  # no NOLOOP: its own change too
    pushed(sides)
    nothing_pending(sides)


def test_resp2_redirect_to_a_pubsub_client(sides):
    for side in sides:
        cid = side[2].call("CLIENT", "ID")
        side[2].send("SUBSCRIBE", "__redis__:invalidate")
        side[2].read()
        side[1].call("CLIENT", "TRACKING", "on", "redirect", cid[1:-2].decode())
        side[1].call("GET", "k")
        side[0].call("SET", "k", "1")
    pushed(sides, who=2)  # a Pub/Sub message on __redis__:invalidate
    infos = []
    for side in sides:
        side[2].close()
        side[1].call("GET", "k")
        side[0].call("SET", "k", "2")  # the redirect target is gone
        info = side[1].call_typed("CLIENT", "TRACKINGINFO")
        infos.append(info[1][1])  # the flags
        side[1].call("PING")
    assert infos[0] == infos[1]
    assert ("bulk", b"broken_redirect") in infos[0][1]


def test_a_write_on_another_member_invalidates_a_tracking_client(node):
    a, b = make_node(node, "a"), make_node(node, "b")
    meet(b, a)
    wait_linked([a, b])
    with Conn(b.port, 3) as t:
        assert t.call("CLIENT", "TRACKING", "on") == b"+OK\r\n"
        assert t.call("GET", "k") == b"_\r\n"
        a.client().set("k", "from a")
        # the push arrives once the write has crossed the link
        assert t.read(timeout=10) == b">2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nk\r\n"
        assert t.call("GET", "k") == b"$6\r\nfrom a\r\n"
    info = b.client().info("stats")
    assert info["tracking_clients"] == 0


def test_keys_a_script_reads_are_tracked_for_its_caller(sides):
    same(sides, 0, "CLIENT", "TRACKING", "on")
    same(sides, 0, "EVAL", "return redis.call('GET', KEYS[1])", "1", "k")
    same(sides, 1, "SET", "k", "1")
    pushed(sides)  # invalidate [k], to the client that ran the script
    same(sides, 0, "GET", "k")
    # a script that writes a key its caller tracks: the message after the reply
    same_n(sides, 0, 2, "EVAL", "return redis.call('SET', KEYS[1], 'x')", "1", "k")
    nothing_pending(sides)
