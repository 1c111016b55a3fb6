"""Numbered databases (SELECT, MOVE, SWAPDB, FLUSHDB, COPY ... DB, INFO
keyspace): replies and errors beside redis-server, and across a group of
real nodes (each db replicated, in snapshots, over partial and full sync)."""

from __future__ import annotations

import subprocess

import pytest
import redis
from support.differential import run_all
from support.nodes import (
    cut_link,
    digest,
    heal_link,
    make_node,
    meet,
    need_tool,
    peer_states,
    proxied_pair,
    wait_converged,
    wait_for,
    wait_linked,
)
from support.resp import Conn

# ---- single node, beside redis-server ---------------------------------------------------


def test_select_and_its_errors(raw_pair):
    run_all(
        raw_pair,
        [
            ("SELECT", "0"),
            ("SET", "k", "zero"),
            ("SELECT", "1"),
            ("GET", "k"),
            ("SET", "k", "one"),
            ("DBSIZE",),
            ("SELECT", "15"),
            ("DBSIZE",),
            ("SELECT", "16"),
            ("SELECT", "-1"),
            ("SELECT", "x"),
            ("SELECT", "1.5"),
            ("SELECT", "99999999999"),
            ("SELECT", "-99999999999"),
            ("SELECT",),
            ("SELECT", "1", "2"),
            ("GET", "k"),
            ("SELECT", "0"),
            ("GET", "k"),
            ("DBSIZE",),
        ],
    )


def test_move(raw_pair):
    run_all(
        raw_pair,
        [
            ("SET", "a", "1"),
            ("PEXPIRE", "a", "100000"),
            ("RPUSH", "l", "x", "y"),
            ("MOVE", "a", "1"),
            ("MOVE", "a", "1"),
            ("MOVE", "nokey", "1"),
            ("MOVE", "l", "0"),
            ("MOVE", "l", "16"),
            ("MOVE", "l", "-1"),
            ("MOVE", "l", "x"),
            ("MOVE", "l", "99999999999"),
            ("SELECT", "1"),
            ("GET", "a"),
            ("EXISTS", "a"),
            ("SET", "l", "here"),
            ("SELECT", "0"),
            ("MOVE", "l", "1"),
            ("LRANGE", "l", "0", "-1"),
            ("SELECT", "1"),
            ("GET", "l"),
            ("MOVE", "a", "0"),
            ("SELECT", "0"),
            ("GET", "a"),
            ("DBSIZE",),
        ],
    )
    a, _b = raw_pair
    assert 0 < int(a.call("PTTL", "a")[1:-2]) <= 100000


def test_swapdb(raw_pair):
    run_all(
        raw_pair,
        [
            ("SET", "k", "zero"),
            ("SELECT", "2"),
            ("SET", "k", "two"),
            ("SADD", "s", "m"),
            ("SELECT", "0"),
            ("SWAPDB", "0", "2"),
            ("GET", "k"),
            ("SMEMBERS", "s"),
            ("DBSIZE",),
            ("SELECT", "2"),
            ("GET", "k"),
            ("SWAPDB", "2", "2"),
            ("GET", "k"),
            ("SWAPDB", "0", "16"),
            ("SWAPDB", "-1", "0"),
            ("SWAPDB", "x", "0"),
            ("SWAPDB", "0", "x"),
            ("SWAPDB", "99999999999", "0"),
            ("SWAPDB", "0", "99999999999"),
            ("SWAPDB", "0"),
            ("SWAPDB", "2", "0"),
            ("GET", "k"),
            ("SELECT", "0"),
            ("GET", "k"),
        ],
    )


def test_flushdb_flushall_dbsize_info_keyspace(raw_pair, r, rr):
    run_all(
        raw_pair,
        [
            ("SET", "a", "1"),
            ("SET", "b", "1"),
            ("EXPIRE", "b", "1000"),
            ("SELECT", "3"),
            ("SET", "c", "1"),
            ("HSET", "h", "f", "v"),
            ("SELECT", "9"),
            ("SET", "d", "1"),
            ("DBSIZE",),
            ("FLUSHDB", "x"),
            ("FLUSHDB", "ASYNC", "x"),
            ("FLUSHDB",),
            ("DBSIZE",),
            ("SELECT", "3"),
            ("DBSIZE",),
            ("SCAN", "0", "MATCH", "c"),
            ("KEYS", "c*"),
            ("SELECT", "0"),
            ("KEYS", "*c*"),
        ],
    )
    a, _b = raw_pair
    assert a.call("RANDOMKEY") in (b"$1\r\na\r\n", b"$1\r\nb\r\n")  # (db 0's keys)
    a.call("SELECT", "3")
    assert a.call("RANDOMKEY") in (b"$1\r\nc\r\n", b"$1\r\nh\r\n")
    a.call("SELECT", "0")
    ks = [x for x in (r.info("keyspace"), rr.info("keyspace"))]
    # avg_ttl: ConstDB's is 0; Redis's is 0 until its expiry cycle has
    # sampled the db, then its running estimate (ms, at most the 1000 s set)
    ttl = [k["db0"].pop("avg_ttl") for k in ks]
    assert ttl[0] == 0 and 0 <= ttl[1] <= 1_000_000, ttl
    assert (
        ks[0]
        == ks[1]
        == {
            "db0": {"keys": 2, "expires": 1},
            "db3": {"keys": 2, "expires": 0, "avg_ttl": 0},
        }
    )
    run_all(raw_pair, [("SELECT", "3"), ("FLUSHDB", "SYNC"), ("DBSIZE",), ("SELECT", "0")])
    assert set(r.info("keyspace")) == set(rr.info("keyspace")) == {"db0"}
    run_all(
        raw_pair,
        [
            ("SELECT", "5"),
            ("SET", "x", "1"),
            ("FLUSHALL", "ASYNC"),
            ("DBSIZE",),
            ("SELECT", "0"),
            ("DBSIZE",),
        ],
    )
    assert r.info("keyspace") == rr.info("keyspace") == {}


def test_copy_db(raw_pair):
    run_all(
        raw_pair,
        [
            ("SET", "k", "v"),
            ("PEXPIRE", "k", "50000"),
            ("COPY", "k", "k", "DB", "0"),
            ("COPY", "k", "k", "DB", "1"),
            ("COPY", "k", "k", "DB", "1"),
            ("COPY", "k", "k2", "DB", "16"),
            ("COPY", "k", "k2", "DB", "x"),
            ("COPY", "k", "k2", "DB", "99999999999"),
            ("COPY", "nokey", "k", "DB", "1"),
            ("SELECT", "1"),
            ("GET", "k"),
            ("SET", "k", "other"),
            ("SELECT", "0"),
            ("ZADD", "z", "1", "a"),
            ("COPY", "z", "k", "DB", "1"),
            ("COPY", "z", "k", "DB", "1", "REPLACE"),
            ("SELECT", "1"),
            ("TYPE", "k"),
            ("ZRANGE", "k", "0", "-1", "WITHSCORES"),
            ("COPY", "k", "k", "DB", "1"),
            ("COPY", "k", "k"),
            ("COPY", "k", "k", "DB", "0"),
            ("SELECT", "0"),
            ("ZRANGE", "k", "0", "-1"),
        ],
    )


def test_select_inside_multi_and_scripts(raw_pair):
    run_all(
        raw_pair,
        [
            ("MULTI",),
            ("SELECT", "4"),
            ("SET", "m", "4"),
            ("SELECT", "99"),
            ("SET", "n", "4"),
            ("EXEC",),
            ("GET", "m"),
            ("GET", "n"),
            ("SELECT", "0"),
            ("GET", "m"),
            # a script's SELECT is its own: the caller stays in its db
            (
                "EVAL",
                "redis.call('SELECT', 6); redis.call('SET', 's', 'six'); return redis.call('GET', 's')",
                "0",
            ),
            ("GET", "s"),
            ("SELECT", "6"),
            ("GET", "s"),
            ("EVAL", "return redis.call('GET', 's')", "0"),
            ("EVAL", "return redis.pcall('SELECT', 16)", "0"),
            ("EVAL", "redis.call('SELECT', 0); return redis.call('DBSIZE')", "0"),
            ("DBSIZE",),
            ("SELECT", "0"),
        ],
    )


def test_watch_is_per_db(raw_pair, constdb_server, redis_server):
    a, b = raw_pair
    for c in (a, b):
        c.call("SELECT", "1")
        c.call("WATCH", "w")
    # another connection writes w in db 0: EXEC in db 1 goes on
    oa, ob = Conn(constdb_server.port, 2), Conn(redis_server.port, 2)
    try:
        for o in (oa, ob):
            o.call("SET", "w", "0")
        run_all(raw_pair, [("MULTI",), ("SET", "x", "1"), ("EXEC",)])
        for c in (a, b):
            c.call("WATCH", "w")
        for o in (oa, ob):
            o.call("SELECT", "1")
            o.call("SET", "w", "1")
        run_all(raw_pair, [("MULTI",), ("SET", "x", "2"), ("EXEC",), ("GET", "x")])
        # SWAPDB touches the watched keys of both dbs
        for c in (a, b):
            c.call("WATCH", "w")
        for o in (oa, ob):
            o.call("SWAPDB", "0", "1")
        run_all(raw_pair, [("MULTI",), ("SET", "x", "3"), ("EXEC",), ("GET", "x"), ("SELECT", "0")])
    finally:
        oa.close()
        ob.close()


def test_blocking_pop_waits_on_db_and_key(constdb_server, r):
    waiter = constdb_server.client(db=2)
    pusher0 = constdb_server.client(db=0)
    pusher2 = constdb_server.client(db=2)
    import threading

    got = []
    t = threading.Thread(target=lambda: got.append(waiter.blpop("q", 10)))
    t.start()
    wait_for(lambda: r.info("clients")["blocked_clients"] == 1, 10, what="the waiter blocked")
    pusher0.rpush("q", "db0")  # another db: the waiter keeps waiting
    assert pusher0.lrange("q", 0, -1) == [b"db0"]
    pusher2.rpush("q", "db2")
    t.join(10)
    assert got == [(b"q", b"db2")]
    assert pusher0.lrange("q", 0, -1) == [b"db0"]
    # a SWAPDB that brings a list to the waiter's db serves it
    t = threading.Thread(target=lambda: got.append(waiter.blpop("q", 10)))
    t.start()
    wait_for(lambda: r.info("clients")["blocked_clients"] == 1, 10, what="the waiter blocked")
    pusher0.swapdb(0, 2)
    t.join(10)
    assert got[-1] == (b"q", b"db0")


def test_client_list_reset_and_clients(constdb_server, r):
    c = constdb_server.client(db=7)
    c.set("k", "v")
    assert c.client_info()["db"] == 7
    assert r.get("k") is None
    assert r.execute_command("SELECT", 7) and r.get("k") == b"v"
    c.execute_command("RESET")
    assert c.client_info()["db"] == 0
    assert r.config_get("databases") == {"databases": "16"}
    with pytest.raises(redis.ResponseError, match="immutable"):
        r.config_set("databases", 4)
    # redis-cli -n
    exe = need_tool("redis-cli")

    def run(*a):
        return (
            subprocess.run(
                [exe, "-p", str(constdb_server.port), *a],
                capture_output=True,
                timeout=30,
                check=True,
            )
            .stdout.decode()
            .strip()
        )

    assert run("-n", "3", "set", "cli", "x") == "OK"
    assert run("-n", "3", "get", "cli") == "x"
    assert run("get", "cli") == ""
    assert run("-n", "3", "dbsize") == "1"


def test_databases_config(node):
    n = make_node(node, "few", databases=2)
    c = n.client()
    assert c.config_get("databases") == {"databases": "2"}
    c.execute_command("SELECT", 1)
    with pytest.raises(redis.ResponseError, match="DB index is out of range"):
        c.execute_command("SELECT", 2)


# ---- across the group ---------------------------------------------------------------------


def _fill(n, tag: str) -> None:
    for db in (0, 1, 5, 15):
        c = n.client(db=db)
        c.set(f"s-{tag}", f"{tag}{db}")
        c.sadd("set", f"{tag}{db}")
        c.rpush(f"l-{tag}", db)
        c.hset("h", tag, db)
        c.zadd("z", {tag: db})
        c.incrby("cnt", db + 1)
        c.pexpire(f"l-{tag}", 600000)


def _dbs(n) -> dict:
    return {db: n.client(db=db).execute_command("CRDT.DIGEST", db) for db in range(16)}


def test_writes_in_several_dbs_converge_on_three_nodes(node):
    a, b, c = (make_node(node, x) for x in ("a", "b", "c"))
    _fill(a, "a")
    _fill(b, "b")
    meet(a, b)
    meet(c, a)
    wait_linked([a, b, c])
    _fill(c, "c")
    wait_converged([a, b, c])
    for n in (a, b, c):
        assert n.client(db=1).smembers("set") == {b"a1", b"b1", b"c1"}
        assert n.client(db=5).get("cnt") == b"18"
        assert n.client(db=2).dbsize() == 0
        assert n.client(db=15).hgetall("h") == {b"a": b"15", b"b": b"15", b"c": b"15"}
    assert _dbs(a) == _dbs(b) == _dbs(c)
    # a MOVE on one node, a FLUSHDB on another
    a.client(db=5).move("s-a", 6)
    b.client(db=1).flushdb()
    wait_converged([a, b, c])
    for n in (a, b, c):
        assert n.client(db=6).get("s-a") == b"a5"
        assert n.client(db=5).get("s-a") is None
        assert n.client(db=1).dbsize() == 0
        assert n.client(db=0).get("s-b") == b"b0"
    assert _dbs(a) == _dbs(b) == _dbs(c)


def test_swapdb_concurrent_with_writes_converges(node):
    a, b, pa, pb = proxied_pair(node)
    a.client(db=1).set("k", "one")
    a.client(db=2).set("k", "two")
    wait_converged([a, b])
    cut_link(pa, pb, a, b)
    # b writes db 1 before it sees a's swap: the write follows the data
    a.client().swapdb(1, 2)
    b.client(db=1).sadd("s", "b")
    b.client(db=2).set("x", "b")
    a.client(db=1).sadd("s", "a")
    heal_link(pa, pb, a, b)
    wait_converged([a, b])
    for n in (a, b):
        assert n.client(db=1).get("k") == b"two"
        assert n.client(db=2).get("k") == b"one"
        # b's db-1 write landed in the data it wrote to: now shown as db 2
        assert n.client(db=2).smembers("s") == {b"b"}
        assert n.client(db=1).smembers("s") == {b"a"}
        assert n.client(db=1).get("x") == b"b"
    # concurrent SWAPDBs: the later one wins wholly, the same on both
    cut_link(pa, pb, a, b)
    a.client().swapdb(0, 3)
    b.client().swapdb(1, 3)
    heal_link(pa, pb, a, b)
    wait_converged([a, b])
    assert _dbs(a) == _dbs(b)
    assert [a.client(db=i).get("k") for i in range(4)] == [
        b.client(db=i).get("k") for i in range(4)
    ]


def test_restart_and_partial_sync_keep_dbs(node):
    a, b, pa, pb = proxied_pair(node)
    _fill(a, "a")
    a.client().swapdb(0, 9)
    wait_converged([a, b])
    cut_link(pa, pb, a, b)
    _fill(a, "p")  # caught up by partial sync
    a.client(db=3).set("only3", "x")
    heal_link(pa, pb, a, b)
    wait_converged([a, b])
    assert b.client(db=3).get("only3") == b"x"
    assert b.client(db=9).get("s-a") == b"a0"
    before = _dbs(b)
    b.client().save()
    b.restart()
    assert _dbs(b) == before
    assert b.client(db=9).get("s-a") == b"a0"
    assert b.client(db=0).get("s-a") is None


def test_aof_keeps_dbs(node):
    n = make_node(node, "aof", appendonly=True)
    n.client(db=4).set("k", "four")
    n.client(db=0).set("k", "zero")
    n.client(db=4).rpush("l", "x")
    n.client().swapdb(4, 5)
    n.client(db=5).rpush("l", "y")
    before = _dbs(n)
    n.stop()
    n.start()
    assert _dbs(n) == before
    assert n.client(db=5).lrange("l", 0, -1) == [b"x", b"y"]
    assert n.client(db=0).get("k") == b"zero"


def test_full_sync_to_a_newcomer_carries_every_db(node):
    a = make_node(node, "a")
    for db in range(16):
        a.client(db=db).set("k", db)
    a.client().swapdb(3, 4)
    b = make_node(node, "b")
    meet(b, a)
    wait_converged([a, b])
    assert _dbs(a) == _dbs(b)
    assert [int(b.client(db=db).get("k")) for db in range(16)] == [
        int(a.client(db=db).get("k")) for db in range(16)
    ]
    assert b.client(db=3).get("k") == b"4"
    assert digest(a) == digest(b)


# ---- expiry, eviction and memory cover every db ---------------------------------------------


def test_active_expiry_walks_every_db(node):
    n = make_node(node, "exp")
    for db in (0, 4, 15):
        c = n.client(db=db)
        for i in range(50):
            c.set(f"t{i}", "x", px=50)
        c.set("keep", "x")
    # never read again: only the active cycle deletes them (INFO keyspace
    # counts keys without touching them)
    wait_for(
        lambda: all(v["keys"] == 1 for v in n.client().info("keyspace").values()),
        10,
        what="the expiry cycle in every db",
    )
    assert set(n.client().info("keyspace")) == {"db0", "db4", "db15"}
    assert n.client().info("stats")["expired_keys"] == 150


@pytest.mark.parametrize("policy", ["allkeys-lru", "allkeys-random", "allkeys-wtinylfu"])
def test_eviction_counts_and_evicts_every_db(node, policy):
    srv = node().start()
    c = srv.client()
    c.config_set("maxmemory-eviction-margin", "0")
    c.config_set("repl-backlog-size", "16kb")
    c.config_set("maxmemory-policy", policy)
    used0 = c.info("memory")["used_memory"]
    d7 = srv.client(db=7)
    p = d7.pipeline(transaction=False)
    for i in range(1000):
        p.set(f"k{i}", "v" * 100)
    p.execute()
    # the data of db 7 is in used_memory
    assert c.info("memory")["used_memory"] > used0 + 100_000
    c.config_set("maxmemory", str(c.info("memory")["used_memory"]))
    d3 = srv.client(db=3)
    p = d3.pipeline(transaction=False)
    for i in range(500):
        p.set(f"n{i}", "v" * 100)
    p.execute()
    assert c.info("stats")["evicted_keys"] > 0
    # db 7 gave keys for db 3's writes
    assert d7.dbsize() < 1000
    c.config_set("maxmemory", "0")


def test_blocking_pop_in_a_db_served_by_a_push_on_another_node(node):
    import threading

    a, b = make_node(node, "a"), make_node(node, "b")
    meet(a, b)
    wait_linked([a, b])
    got = []
    w = b.client(db=3)
    t = threading.Thread(target=lambda: got.append(w.blpop("jobs", 20)))
    t.start()
    wait_for(lambda: b.client().info("clients")["blocked_clients"] == 1, 10, what="blocked")
    a.client(db=2).rpush("jobs", "wrong db")
    a.client(db=3).rpush("jobs", "j1")
    t.join(20)
    assert got == [(b"jobs", b"j1")]
    wait_converged([a, b])
    assert a.client(db=3).llen("jobs") == 0 and a.client(db=2).llen("jobs") == 1


# ---- in-process: the stream's db markers and the snapshot format ---------------------------

OP_SELECT, OP_SWAPDB = 33, 34


def test_stream_names_a_db_only_where_it_changes():
    from constdb._core.backlog import iter_records
    from support.core import Node

    a, b = Node(1), Node(2)
    a.run("SET", "k", "0")
    a.run("SADD", "s", "x")
    assert [op & 0x7F for op, *_ in iter_records(b"".join(a.groups()))].count(OP_SELECT) == 0
    a.run("SELECT", "2")
    a.run("SET", "k", "2")
    a.run("SET", "j", "2")
    a.run("MOVE", "k", "5")  # the target's writes, then the source's delete: one group
    a.run("SWAPDB", "2", "7")
    a.run("SELECT", "0")
    a.run("SET", "z", "0")
    groups = a.groups()
    ops = [[op & 0x7F for op, *_ in iter_records(g)] for g in groups]
    assert ops[2][0] == OP_SELECT and ops[2].count(OP_SELECT) == 1  # SET k in db 2
    assert ops[3][0] == OP_SELECT  # each group starts in identity 0
    assert ops[4].count(OP_SELECT) == 2  # MOVE: db 5, then db 2
    assert ops[5] == [OP_SWAPDB]
    assert OP_SELECT not in ops[6]
    # a peer applying the groups one batch at a time (any resume point) agrees
    for g in groups:
        b.apply(1, g)
    for db in range(16):
        assert a.ks.digest(db) == b.ks.digest(db), db
    assert b.ks.mapping()[2] == 7 and b.ks.mapping()[7] == 2
    assert b.ks.dbs[7].d.keys() == {b"j"} and b.ks.dbs[5].d.keys() == {b"k"}


def test_snapshot_format_2_while_only_db_0_is_used():
    from support.core import Node

    from constdb._core import snapshot

    a = Node(1)
    a.run("SET", "k", "v")
    body = snapshot.decompress(snapshot.dump(a.ks))
    assert int.from_bytes(body[8:12], "little") == 2
    a.run("SELECT", "4")
    a.run("SET", "k", "four")
    a.run("SWAPDB", "4", "9")
    s = snapshot.parse(snapshot.dump(a.ks))
    assert s.version == 3 and s.mapping[4] == 9
    b = Node(2)
    b.run("SELECT", "9")
    b.run("SET", "mine", "x")
    snapshot.merge(b.ks, s)
    assert b.ks.mapping() == a.ks.mapping()
    # a's k is in identity 4 (shown as db 9), b's db-9 write in identity 9 (now db 4)
    assert b.ks.dbs[4].d.keys() == {b"mine"} and b.ks.dbs[9].d.keys() == {b"k"}
    assert b.ks.dbs[0].d.keys() == {b"k"}
    # the mapping is LWW: an older one is replaced, a newer one stays
    c = Node(3)
    c.run("SWAPDB", "1", "2")
    assert c.ks.map_u < a.ks.map_u
    snapshot.merge(c.ks, s)
    assert c.ks.mapping() == a.ks.mapping()
    d = Node(4)
    for i in range(20):
        d.run("SET", "x", str(i))
    d.run("SWAPDB", "1", "2")
    assert d.ks.map_u > a.ks.map_u
    snapshot.merge(d.ks, s)
    assert d.ks.mapping()[:3] == [0, 2, 1] and d.ks.mapping()[4] == 4
    assert d.ks.dbs[4].d.keys() == {b"k"} and d.ks.dbs[9].d.keys() == set()


def test_members_with_different_databases_refuse_to_link(node):
    # a peer's SELECT, MOVE and SWAPDB records name dbs every member must hold:
    # the handshake compares `databases` and refuses a mismatch on both sides
    a = make_node(node, "a")
    b = make_node(node, "b", databases=4)
    a.client(db=9).set("k", "a9")
    for x, y in ((a, b), (b, a)):
        with pytest.raises(redis.ResponseError, match="DATABASES") as e:
            meet(x, y)
        assert "has databases" in str(e.value), e.value
        assert {"4", "16"} <= set(str(e.value).replace(",", " ").replace(":", " ").split()), e.value
    for n in (a, b):
        wait_for(lambda n=n: n.log().count("DATABASES") >= 2, 10, what="both refusals logged")
        assert "every member needs the same setting" in n.log()
        assert peer_states(n) == {}
    assert b.client(db=0).dbsize() == 0
    # the same setting links at once
    c = make_node(node, "c", databases=4)
    meet(c, b)
    wait_linked([b, c])
    c.client(db=3).set("x", "c3")
    wait_for(lambda: b.client(db=3).get("x") == b"c3", 10, what="db 3 replicated")
