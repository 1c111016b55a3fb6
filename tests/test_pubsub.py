"""Pub/Sub: Redis's replies and message sequences side by side with
redis-server (RESP2 and RESP3), and messages crossing the group."""

from __future__ import annotations

import socket

import pytest
import redis
from support.nodes import make_node, meet, wait_for, wait_linked
from support.resp import Conn, encode, parse_typed


@pytest.fixture(params=[2, 3], ids=["resp2", "resp3"])
def quad(request, r, rr, constdb_server, redis_server):
    """[(constdb subscriber, publisher), (redis subscriber, publisher)], the
    subscribers in the parametrized protocol, the publishers in RESP2."""
    conns = [(Conn(s.port, request.param), Conn(s.port, 2)) for s in (constdb_server, redis_server)]
    yield conns
    for a, b in conns:
        a.close()
        b.close()


def both(quad, who: int, *args) -> bytes:
    """One request from the subscriber (who=0) or the publisher (1) of each
    server; the replies must be the same bytes."""
    got = quad[0][who].call(*args)
    want = quad[1][who].call(*args)
    assert got == want, f"{args!r}: constdb {got!r} != redis {want!r}"
    return got


def both_n(quad, who: int, n: int, *args) -> list[bytes]:
    """One request whose reply is n frames (SUBSCRIBE a b ...)."""
    out = []
    for side in quad:
        side[who].send(*args)
        out.append(side[who].read_many(n))
    assert out[0] == out[1], f"{args!r}: constdb {out[0]!r} != redis {out[1]!r}"
    return out[0]


def both_read(quad, n: int = 1) -> list[bytes]:
    """The next n frames the subscribers receive (messages)."""
    got = quad[0][0].read_many(n)
    want = quad[1][0].read_many(n)
    assert got == want, f"constdb {got!r} != redis {want!r}"
    return got


def test_subscribe_publish_and_the_subscribed_context(quad):
    both_n(quad, 0, 1, "UNSUBSCRIBE")  # none yet: a null channel and 0
    both_n(quad, 0, 1, "PUNSUBSCRIBE")
    both_n(quad, 0, 1, "SUNSUBSCRIBE")
    both_n(quad, 0, 2, "SUBSCRIBE", "a", "b")
    both_n(quad, 0, 1, "SUBSCRIBE", "a")  # again: the count does not move
    both_n(quad, 0, 2, "PSUBSCRIBE", "p*", "q?")
    both_n(quad, 0, 1, "SSUBSCRIBE", "s1")
    # RESP2: only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET
    both(quad, 0, "GET", "x")
    both(quad, 0, "PING")
    both(quad, 0, "PING", "hi")
    assert both(quad, 1, "PUBLISH", "a", "hello") == b":1\r\n"
    both_read(quad)
    assert both(quad, 1, "PUBLISH", "pa", "to a pattern") == b":1\r\n"
    both_read(quad)
    both_n(quad, 0, 1, "SUBSCRIBE", "pz")
    assert both(quad, 1, "PUBLISH", "pz", "twice") == b":2\r\n"  # channel and pattern
    both_read(quad, 2)
    assert both(quad, 1, "PUBLISH", "nobody", "x") == b":0\r\n"
    assert both(quad, 1, "SPUBLISH", "s1", "shard") == b":1\r\n"
    both_read(quad)
    assert both(quad, 1, "PUBLISH", "s1", "not a shard message") == b":0\r\n"
    both(quad, 1, "PUBSUB", "NUMSUB", "a", "b", "pz", "none")
    both(quad, 1, "PUBSUB", "NUMPAT")
    both(quad, 1, "PUBSUB", "SHARDNUMSUB", "s1", "s2")
    both(quad, 1, "PUBSUB", "CHANNELS", "p*")
    both(quad, 1, "PUBSUB", "SHARDCHANNELS")
    for side in quad:  # every channel: one frame each, in the server's own order
        assert sorted(side[1].call_typed("PUBSUB", "CHANNELS")[1]) == [
            ("bulk", b"a"),
            ("bulk", b"b"),
            ("bulk", b"pz"),
        ]
    both_n(quad, 0, 1, "SUNSUBSCRIBE", "s1")
    both_n(quad, 0, 1, "UNSUBSCRIBE", "b")
    # unsubscribe from all: Redis answers in its hash table's order (random
    # per process), so compare the channels named and the counts apart
    got = []
    for side in quad:
        side[0].send("UNSUBSCRIBE")
        frames = [parse_typed(b"*" + f[1:])[1] for f in side[0].read_many(2)]  # > as *
        got.append((sorted(f[1] for f in frames), sorted(f[2] for f in frames)))
    assert got[0] == got[1]
    assert got[0][1] == [("int", 2), ("int", 3)]  # the two patterns stay
    both_n(quad, 0, 2, "PUNSUBSCRIBE", "p*", "q?")
    both(quad, 0, "GET", "x")  # out of the subscribed context
    both(quad, 0, "PING")


def test_publish_in_multi_and_in_scripts(quad):
    """PUBLISH queued by MULTI and called by a script reaches the subscriber
    as Redis's does; the counts are the replies of EXEC and of the script."""
    both_n(quad, 0, 1, "SUBSCRIBE", "a")
    both_n(quad, 0, 1, "PSUBSCRIBE", "a*")
    both(quad, 1, "MULTI")
    both(quad, 1, "PUBLISH", "a", "in multi")
    both(quad, 1, "SPUBLISH", "a", "nobody")
    both(quad, 1, "PUBLISH", "ab", "pattern only")
    assert both(quad, 1, "EXEC") == b"*3\r\n:2\r\n:0\r\n:1\r\n"
    both_read(quad, 3)
    assert both(quad, 1, "EVAL", "return redis.call('publish', KEYS[1], ARGV[1])", 1, "a", "lua")
    assert both(quad, 1, "EVAL", "return redis.pcall('spublish', 'a', 'x')", 0) == b":0\r\n"
    both_read(quad, 2)
    both(quad, 1, "PUBLISH", "a", "last")
    both_read(quad, 2)


def test_publish_to_oneself_in_resp3_comes_before_the_reply(r, rr, constdb_server, redis_server):
    got = []
    for s in (constdb_server, redis_server):
        with Conn(s.port, 3) as c:
            c.call("SUBSCRIBE", "me")
            c.send("PUBLISH", "me", "hi")
            got.append(c.read_many(2))
            got.append(c.call("GET", "x"))
            c.send("RESET")
            got.append(c.read())
    assert got[:3] == got[3:]


def test_resp3_pushes_and_replies_keep_their_order_in_a_pipeline(
    r, rr, constdb_server, redis_server
):
    """A RESP3 client subscribed to channels, a pattern and a shard channel
    pipelines PUBLISHes to them between other commands: each of its own
    messages comes before the reply of the command that made it, and the
    replies stay in order (the bytes must be Redis's)."""
    cmds = [
        ("SUBSCRIBE", "me", "other"),
        ("PSUBSCRIBE", "m*"),
        ("SSUBSCRIBE", "me"),
        ("PUBLISH", "me", "one"),  # channel, then pattern, then the reply
        ("SET", "k", "v"),
        ("PUBLISH", "other", "two"),
        ("GET", "k"),
        ("SPUBLISH", "me", "three"),  # shard subscribers only
        ("PUBLISH", "mine", "four"),  # the pattern only
        ("PUBLISH", "nobody", "five"),
        ("UNSUBSCRIBE", "me"),
        ("PUBLISH", "me", "six"),  # the pattern still matches
        ("PING",),
    ]
    got = []
    for s in (constdb_server, redis_server):
        with Conn(s.port, 3) as c:
            c.send_raw(b"".join(encode(*x) for x in cmds))
            # 2 + 1 + 1 confirmations, the messages (3 + 1 + 1 + 1 + 1) and
            # one reply for each of the other 9 commands
            got.append(c.read_many(4 + 7 + 9 - 1 + 1))
            c.send("RESET")
            got.append(c.read())
    assert got[0] == got[2] and got[1] == got[3]
    assert got[0][4:8] == [
        b">3\r\n$7\r\nmessage\r\n$2\r\nme\r\n$3\r\none\r\n",
        b">4\r\n$8\r\npmessage\r\n$2\r\nm*\r\n$2\r\nme\r\n$3\r\none\r\n",
        b":2\r\n",
        b"+OK\r\n",
    ]


def test_a_subscriber_past_the_output_limit_within_pipelined_publishes(r, constdb_server):
    """Messages queued in one loop turn (a pipeline of PUBLISHes) are written
    at its end; a subscriber that does not read is closed once 32 MiB wait,
    another that reads gets every message once, in order, and the node
    goes on."""
    slow = Conn(constdb_server.port)
    slow.send("SUBSCRIBE", "flood")
    slow.read()
    slow.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    good = Conn(constdb_server.port, 3)
    good.send("SUBSCRIBE", "flood")
    good.read()
    msg = b"%03d" + b"x" * (512 * 1024)
    replies: list[bytes] = []
    got: list[bytes] = []
    with Conn(constdb_server.port) as pub:
        # 16 pipelines of 8 (4 MiB each): the reading subscriber is never
        # more than one pipeline behind, the other one falls further each time
        for b in range(16):
            replies += pub.pipeline([("PUBLISH", "flood", msg % (b * 8 + i)) for i in range(8)])
            got += good.read_many(8, timeout=30)
    assert replies[0] == b":2\r\n" and replies[-1] == b":1\r\n"  # the slow one went
    assert [m.split(b"\r\n")[6][:3] for m in got] == [b"%03d" % i for i in range(128)]
    assert all(m.startswith(b">3\r\n$7\r\nmessage\r\n") for m in got)
    # the slow one's socket drains what the kernel holds slowly: look at
    # the server's side
    assert "closed for overcoming of output buffer limits" in constdb_server.log()
    assert r.pubsub_numsub("flood") == [(b"flood", 1)]
    assert [c["flags"] for c in r.client_list()].count("P") == 1
    good.close()
    slow.close()


def test_multi_reset_and_errors(raw_pair):
    a, b = raw_pair
    for cmds in (
        [("MULTI",), ("SUBSCRIBE", "m"), ("EXEC",)],
        [("RESET",), ("GET", "x")],
        [("PUBSUB",), ("PUBSUB", "HELP"), ("PUBSUB", "NOPE"), ("PUBLISH",), ("PUBLISH", "a")],
        [("SUBSCRIBE",), ("PSUBSCRIBE",), ("SSUBSCRIBE",), ("SPUBLISH", "a")],
        [("PUBSUB", "NUMPAT", "x"), ("PUBSUB", "CHANNELS", "a", "b"), ("PUBSUB", "NUMSUB")],
    ):
        got = a.pipeline(cmds)
        want = b.pipeline(cmds)
        assert got == want, (cmds, got, want)


def test_client_list_shows_subscriptions(r, constdb_server):
    with Conn(constdb_server.port) as c:
        c.send("SUBSCRIBE", "a", "b")
        c.read_many(2)
        c.send("PSUBSCRIBE", "p*")
        c.read()
        c.send("SSUBSCRIBE", "s")
        c.read()
        rows = [x for x in r.client_list() if x["sub"] != "0"]
        assert len(rows) == 1
        assert (rows[0]["sub"], rows[0]["psub"], rows[0]["ssub"]) == ("2", "1", "1")
        assert rows[0]["flags"] == "P"
        assert [x["id"] for x in r.client_list(_type="pubsub")] == [rows[0]["id"]]
        assert rows[0]["id"] not in [x["id"] for x in r.client_list(_type="normal")]
        assert r.client_kill_filter(_type="pubsub") == 1
        assert c.rest_until_close()[1]


def test_redis_py_pubsub(r):
    p = r.pubsub()
    p.subscribe("news")
    p.psubscribe("n*")
    assert p.get_message(timeout=5)["type"] == "subscribe"
    assert p.get_message(timeout=5)["type"] == "psubscribe"
    assert r.publish("news", "hello") == 2
    got = [p.get_message(timeout=5) for _ in range(2)]
    assert {m["type"] for m in got} == {"message", "pmessage"}
    assert all(m["data"] == b"hello" for m in got)
    p.check_health()
    p.close()


def test_a_slow_subscriber_is_closed_past_the_output_limit(r, constdb_server):
    c = Conn(constdb_server.port)
    c.send("SUBSCRIBE", "flood")
    c.read()
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    msg = b"x" * (1024 * 1024)
    receivers = [r.publish("flood", msg) for _ in range(64)]
    assert receivers[0] == 1
    assert receivers[-1] == 0  # closed once 32 MiB were waiting
    assert "closed for overcoming of output buffer limits" in constdb_server.log()
    assert r.ping()
    c.close()


# ---- across the group ------------------------------------------------------------------------


def test_a_message_published_on_one_member_reaches_every_members_subscribers_once(node):
    nodes = [make_node(node, name) for name in "abc"]
    meet(nodes[1], nodes[0])
    meet(nodes[2], nodes[0])
    wait_linked(nodes)
    subs = []
    for n in nodes:
        p = n.client().pubsub()
        p.subscribe("ch")
        p.psubscribe("c*")
        assert p.get_message(timeout=5)["type"] == "subscribe"
        assert p.get_message(timeout=5)["type"] == "psubscribe"
        subs.append(p)
    assert nodes[0].client().publish("ch", "from a") == 2  # this node's receivers only
    assert nodes[2].client().spublish("ch", "shard, from c") == 0
    for p in subs:
        got = []
        while len(got) < 2:
            m = p.get_message(timeout=5)
            assert m is not None, "a message did not arrive"
            got.append((m["type"], m["data"]))
        assert sorted(got) == [("message", b"from a"), ("pmessage", b"from a")]
        assert p.get_message(timeout=0.3) is None  # once each
        p.close()
    info = nodes[1].client().info("stats")
    assert info["pubsub_messages_from_peers"] == 2


def test_pipelined_messages_from_one_member_reach_anothers_subscribers_once_in_order(node):
    """Many messages in one pipeline on A: B's channel and pattern
    subscribers each get every one once, in order; A's reply counts A's
    receivers only."""
    a, b = make_node(node, "a"), make_node(node, "b")
    meet(b, a)
    wait_linked([a, b])
    subs = []
    for n in (a, b):
        c = Conn(n.port, 3)
        c.send("SUBSCRIBE", "ch")
        c.read()
        c.send("PSUBSCRIBE", "c?")
        c.read()
        subs.append(c)
    with Conn(a.port) as pub:
        replies = pub.pipeline([("PUBLISH", "ch", f"m{i}") for i in range(200)])
    assert set(replies) == {b":2\r\n"}
    for c in subs:
        got = [parse_typed(b"*" + m[1:]) for m in c.read_many(400)]
        for kind in (b"message", b"pmessage"):
            assert [x[1][-1][1] for x in got if x[1][0][1] == kind] == [
                b"m%d" % i for i in range(200)
            ]
        c.send("PING")
        assert c.read() == b"+PONG\r\n"  # nothing more came
        c.close()
    assert b.client().info("stats")["pubsub_messages_from_peers"] == 200


def test_a_peer_message_is_not_kept_in_the_data_set(node):
    a, b = make_node(node, "a"), make_node(node, "b")
    meet(b, a)
    wait_linked([a, b])
    p = b.client().pubsub()
    p.subscribe("ch")
    p.get_message(timeout=5)
    a.client().publish("ch", "x")
    wait_for(lambda: (m := p.get_message(timeout=0.1)) is not None and m["data"] == b"x", 5)
    assert a.client().dbsize() == b.client().dbsize() == 0
    with pytest.raises(redis.ResponseError):
        a.client().execute_command("PUBLISH", "only-two-args")
    p.close()
