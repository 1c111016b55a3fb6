"""Active-active replication between real constdb-server processes."""

from __future__ import annotations

import random
import subprocess
import threading
import time

import pytest
import redis
from support.nodes import (
    cut_link,
    digest,
    info_peer,
    make_node,
    meet,
    need_tool,
    node_id,
    nodes_info,
    peer_states,
    proxied_pair,
    wait_converged,
    wait_for,
    wait_linked,
)


def cli(port: int, *args: str) -> str:
    exe = need_tool("redis-cli")
    out = subprocess.run([exe, "-p", str(port), *args], capture_output=True, timeout=30, check=True)
    return out.stdout.decode().strip()


def test_seed_demo_verbatim_with_redis_cli(node):
    a = make_node(node, "node9001")
    b = make_node(node, "node9002")
    pa, pb = str(a.port), str(b.port)
    assert cli(a.port, "incr", "k1") == "1"
    assert cli(b.port, "incr", "k2") == "1"
    assert cli(b.port, "meet", f"127.0.0.1:{pa}") == "1"
    # (wait)
    wait_for(lambda: cli(a.port, "get", "k2") == "1", 10, what="k2 on 9001")
    wait_for(lambda: cli(b.port, "get", "k1") == "1", 10, what="k1 on 9002")
    assert cli(b.port, "incr", "k2") == "2"
    wait_for(lambda: cli(a.port, "get", "k2") == "2", 10, what="k2=2 on 9001")
    assert cli(a.port, "hset", "h1", "k1", "v1") == "1"
    wait_for(lambda: cli(b.port, "hget", "h1", "k1") == "v1", 10, what="h1 on 9002")
    assert pb


def test_third_node_meets_one_member_and_links_to_all(node):
    a, b, c = (make_node(node, n) for n in ("a", "b", "c"))
    a.client().set("from-a", "1")
    b.client().sadd("from-b", "x", "y")
    assert meet(a, b) == 1
    wait_linked([a, b])
    c.client().hset("from-c", "f", "v")
    assert meet(c, b) == 1
    wait_linked([a, b, c])
    for n in (a, b, c):
        cl = n.client()
        wait_for(
            lambda cl=cl: (
                cl.get("from-a") == b"1"
                and cl.smembers("from-b") == {b"x", b"y"}
                and cl.hget("from-c", "f") == b"v"
            ),
            10,
            what="all data everywhere",
        )
    wait_converged([a, b, c])


def test_two_nodes_joining_through_different_members_find_each_other(node):
    a, b, c, d = (make_node(node, n) for n in ("a", "b", "c", "d"))
    meet(a, b)
    wait_linked([a, b])
    t1 = threading.Thread(target=meet, args=(c, a))
    t2 = threading.Thread(target=meet, args=(d, b))
    t1.start()
    t2.start()
    t1.join()
    t2.join()
    wait_linked([a, b, c, d], timeout=30)


def test_meet_refuses_bad_addresses(node):
    a = make_node(node, "a")
    r = a.client()
    for bad in ("nope", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:99999", "host:port"):
        with pytest.raises(redis.ResponseError, match="Invalid node address"):
            r.execute_command("MEET", bad)
    with pytest.raises(redis.ResponseError, match="MEET 127.0.0.1:1 failed"):
        r.execute_command("MEET", "127.0.0.1:1")
    with pytest.raises(redis.ResponseError, match="itself"):
        r.execute_command("MEET", f"127.0.0.1:{a.port}")


def _writer(n, stop, seed, counters, lock, errors):
    rng = random.Random(seed)
    r = n.client()
    keys = [f"k{i}" for i in range(6)]
    try:
        while not stop.is_set():
            k = rng.choice(keys)
            op = rng.randrange(12)
            if op == 0:
                r.set(k, rng.choice(["a", "b", "7"]))
            elif op == 1:
                r.delete(k)
            elif op == 2:
                try:
                    r.incr(k)
                except redis.ResponseError:
                    pass
            elif op == 3:
                r.expire(k, rng.choice([1, 100]))
            elif op == 4:
                try:
                    r.sadd("s" + k, rng.choice("abcd"))
                except redis.ResponseError:
                    pass
            elif op == 5:
                r.srem("s" + k, rng.choice("abcd"))
            elif op == 6:
                r.spop("s" + k)
            elif op == 7:
                r.hset("h" + k, rng.choice("fg"), rng.choice("xyz"))
            elif op == 8:
                r.hdel("h" + k, rng.choice("fg"))
            elif op == 9:
                r.execute_command("MVSET", "mv" + k, rng.choice("pq"))
            else:
                c = rng.choice(["c1", "c2"])
                by = rng.randrange(1, 5)
                r.incrby(c, by)
                with lock:
                    counters[c] = counters.get(c, 0) + by
    except Exception as e:  # reported by the test
        errors.append(repr(e))


def test_convergence_under_concurrent_writes_of_every_type(node):
    nodes = [make_node(node, n) for n in ("a", "b", "c")]
    meet(nodes[1], nodes[0])
    meet(nodes[2], nodes[0])
    wait_linked(nodes)
    stop = threading.Event()
    counters: dict[str, int] = {}
    lock = threading.Lock()
    errors: list[str] = []
    threads = [
        threading.Thread(target=_writer, args=(n, stop, 100 * i + j, counters, lock, errors))
        for i, n in enumerate(nodes)
        for j in range(2)
    ]
    for t in threads:
        t.start()
    time.sleep(3)
    stop.set()
    for t in threads:
        t.join()
    assert not errors
    wait_converged(nodes)
    keys = set()
    for n in nodes:
        keys |= {k for k in n.client().keys("*")}
    for k in sorted(keys):
        seen = set()
        for n in nodes:
            r = n.client()
            t = r.type(k)
            if t == b"string":
                v = r.get(k)
            elif t == b"set":
                v = tuple(sorted(r.smembers(k)))
            elif t == b"hash":
                v = tuple(sorted(r.hgetall(k).items()))
            elif t == b"mvreg":
                v = tuple(map(tuple, r.execute_command("MVGET", k)))
            else:
                v = None
            seen.add((t, v))
        assert len(seen) == 1, (k, seen)
    for c, total in counters.items():
        for n in nodes:
            assert int(n.client().get(c)) == total


def test_add_wins_and_lww_under_a_cut_link(node):
    a, b, pa, pb = proxied_pair(node)
    try:
        ra, rb = a.client(), b.client()
        ra.sadd("s", "x")
        ra.sadd("t", "x")
        ra.set("reg", "base")
        wait_converged([a, b])
        cut_link(pa, pb, a, b)
        # add-wins: a removes x; b removes and re-adds x (a new dot a never saw)
        ra.srem("s", "x")
        rb.srem("s", "x")
        rb.sadd("s", "x")
        # an add concurrent with a whole-key delete survives it
        ra.delete("t")
        rb.sadd("t", "y")
        # LWW: the later write wins on both
        ra.set("reg", "first")
        time.sleep(0.01)
        rb.set("reg", "second")
        # a concurrent INCR survives a DEL
        ra.set("n", "10")
        pa.heal()
        pb.heal()
        wait_linked([a, b])
        wait_converged([a, b])
        cut_link(pa, pb, a, b)
        ra.delete("n")
        rb.incr("n")
        pa.heal()
        pb.heal()
        wait_linked([a, b])
        wait_converged([a, b])
        for r in (ra, rb):
            assert r.smembers("s") == {b"x"}
            assert r.smembers("t") == {b"y"}
            assert r.get("reg") == b"second"
            assert r.get("n") == b"1"
    finally:
        pa.close()
        pb.close()


def test_cut_and_heal_is_a_partial_sync_without_loss_or_double_counting(node):
    a, b, pa, pb = proxied_pair(node)
    try:
        ra, rb = a.client(), b.client()
        ida, idb = node_id(a), node_id(b)
        before = int(info_peer(a, idb)["partial_syncs"]) + int(info_peer(b, ida)["partial_syncs"])
        full_before = int(info_peer(a, idb)["full_syncs"]) + int(info_peer(b, ida)["full_syncs"])
        for _ in range(50):
            ra.incr("c")
        cut_link(pa, pb, a, b)
        for i in range(30):
            ra.incr("c")
            rb.incr("c")
            rb.set(f"b{i}", i)
        pa.heal()
        pb.heal()
        wait_linked([a, b])
        wait_converged([a, b])
        assert ra.get("c") == rb.get("c") == b"110"
        assert all(ra.get(f"b{i}") == str(i).encode() for i in range(30))
        after = int(info_peer(a, idb)["partial_syncs"]) + int(info_peer(b, ida)["partial_syncs"])
        full_after = int(info_peer(a, idb)["full_syncs"]) + int(info_peer(b, ida)["full_syncs"])
        assert after >= before + 2
        assert full_after == full_before
    finally:
        pa.close()
        pb.close()


def test_backlog_too_small_for_the_outage_forces_a_full_sync(node):
    a, b, pa, pb = proxied_pair(node, repl_backlog_limit=4096)
    try:
        ra, rb = a.client(), b.client()
        ida = node_id(a)
        full_before = int(info_peer(a, node_id(b))["full_syncs"])
        cut_link(pa, pb, a, b)
        p = ra.pipeline(transaction=False)
        for i in range(2000):
            p.set(f"key{i}", "x" * 20)
        p.execute()
        assert rb.dbsize() == 0
        pa.heal()
        pb.heal()
        wait_linked([a, b])
        wait_for(lambda: rb.dbsize() == 2000, 20, what="all keys on b")
        wait_converged([a, b])
        assert int(info_peer(a, node_id(b))["full_syncs"]) > full_before
        assert ida
    finally:
        pa.close()
        pb.close()


def test_node_killed_and_restarted_empty_gets_everything_back(node):
    a = make_node(node, "a")
    b = make_node(node, "b")
    meet(b, a)
    wait_linked([a, b])
    ra, rb = a.client(), b.client()
    ra.set("from-a", "1")
    rb.set("from-b", "2")
    rb.incrby("cnt", 5)
    rb.sadd("bset", "m1", "m2")
    wait_converged([a, b])
    b.kill()
    # b comes back with an empty work dir except its node id
    b.start()
    rb = b.client()
    wait_linked([a, b], timeout=30)
    wait_converged([a, b])
    assert rb.get("from-a") == b"1"
    assert rb.get("from-b") == b"2"  # its own earlier writes come back
    assert rb.get("cnt") == b"5"
    assert rb.smembers("bset") == {b"m1", b"m2"}
    assert rb.incr("cnt") == 6
    wait_for(lambda: ra.get("cnt") == b"6", 10, what="b's new write on a")


def test_wrong_cluster_secret_is_refused(node):
    # 128-bit secrets (shorter ones are refused at start)
    right, wrong = "5d41402abc4b2a76b9719d911017c592", "7d793037a0760186574b0282f2f435e7"
    a = make_node(node, "a", cluster_secret=right)
    b = make_node(node, "b", cluster_secret=wrong)
    with pytest.raises(redis.ResponseError, match="SECRET"):
        meet(b, a)
    c = make_node(node, "c", cluster_secret=right)
    assert meet(c, a) == 1
    wait_linked([a, c])
    assert node_id(b) not in peer_states(a)
    assert "SECRET" in a.log() or "SECRET" in b.log()


def test_forget_removes_a_node_everywhere_and_it_stops_dialing(node):
    a, b, c = (make_node(node, n) for n in ("a", "b", "c"))
    meet(b, a)
    meet(c, a)
    wait_linked([a, b, c])
    idc = node_id(c)
    assert a.client().execute_command("FORGET", str(idc)) == b"OK"
    wait_for(
        lambda: all(
            idc not in peer_states(n) or peer_states(n)[idc] == "forgotten" for n in (a, b)
        ),
        10,
        what="c forgotten on a and b",
    )
    wait_for(
        lambda: c.client().info("replication")["forgotten"] == 1,
        10,
        what="c knows it was forgotten",
    )
    # and stays out: for a second, neither links to c again
    until = time.time() + 1.0
    while time.time() < until:
        assert peer_states(a).get(idc) in (None, "forgotten")
        assert peer_states(b).get(idc) in (None, "forgotten")
        time.sleep(0.05)
    # writes on c no longer reach the group; c can MEET again
    c.client().set("late", "1")
    assert a.client().get("late") is None
    assert meet(c, b) == 1
    wait_linked([a, b, c])
    wait_for(lambda: a.client().get("late") == b"1", 10, what="c's write after rejoining")
    with pytest.raises(redis.ResponseError, match="Unknown node"):
        a.client().execute_command("FORGET", "12345")


def test_wait_counts_peers_that_acked(node):
    a, b, c = (make_node(node, n) for n in ("a", "b", "c"))
    meet(b, a)
    meet(c, a)
    wait_linked([a, b, c])
    r = a.client()
    r.set("k", "v")
    assert r.execute_command("WAIT", 2, 2000) == 2
    c.kill()
    wait_for(lambda: peer_states(a).get(node_id(b)) == "connected", 5)
    r.set("k2", "v")
    t0 = time.monotonic()
    assert r.execute_command("WAIT", 2, 300) == 1
    assert time.monotonic() - t0 >= 0.25
    with pytest.raises(redis.ResponseError, match="timeout is negative"):
        r.execute_command("WAIT", 1, -1)


def test_gc_drops_stable_tombstones(node):
    a, b = make_node(node, "a"), make_node(node, "b")
    meet(b, a)
    wait_linked([a, b])
    ra = a.client()
    for i in range(20):
        ra.set(f"t{i}", "v")
    for i in range(20):
        ra.delete(f"t{i}")
    wait_converged([a, b])
    wait_for(
        lambda: (
            int(ra.info("replication")["pending_tombstones"]) == 0
            and int(b.client().info("replication")["pending_tombstones"]) == 0
        ),
        10,
        what="tombstones collected",
    )
    assert int(ra.info("replication")["stable_point"]) > 0


def test_info_replication_and_nodes_describe_every_peer(node):
    a, b = make_node(node, "a"), make_node(node, "b")
    meet(b, a)
    wait_linked([a, b])
    a.client().set("x", "1")
    wait_converged([a, b])
    info = a.client().info("replication")
    for field in (
        "node_id",
        "node_alias",
        "uuid",
        "vv",
        "repl_backlog_histlen",
        "repl_backlog_first_uuid",
        "repl_backlog_last_uuid",
        "connected_peers",
        "stable_point",
    ):
        assert field in info
    assert info["connected_peers"] == 1
    rows = nodes_info(a)
    assert {r["state"] for r in rows} == {"myself", "connected"}
    peer = [r for r in rows if r["state"] == "connected"][0]
    for f in (
        "id",
        "alias",
        "addr",
        "sent",
        "acked",
        "lag_records",
        "lag_ms",
        "full_syncs",
        "partial_syncs",
        "last_error",
    ):
        assert f in peer
    assert peer["alias"] == "b"
    assert digest(a) == digest(b)


def test_silent_link_is_closed_after_peer_timeout_and_redialed(node):
    a, b, pa, pb = proxied_pair(node, peer_timeout=1.0)
    try:
        idb = node_id(b)
        pa.freeze()
        pb.freeze()
        wait_for(lambda: peer_states(a).get(idb) != "connected", 10, what="silent link closed")
        assert "timeout" in info_peer(a, idb)["last_error"].lower()
        pa.heal()
        pb.heal()
        wait_linked([a, b], timeout=30)
        a.client().set("after", "1")
        wait_for(lambda: b.client().get("after") == b"1", 10, what="stream after redial")
    finally:
        pa.close()
        pb.close()


def test_duplicate_node_id_is_refused(node):
    a = make_node(node, "a", node_id=4242)
    b = make_node(node, "b", node_id=4242)
    with pytest.raises(redis.ResponseError, match="DUPLICATE"):
        meet(b, a)
    assert peer_states(a) == {}
    assert "DUPLICATE" in a.log()


def test_link_protocol_version_mismatch_is_refused(node):
    a = make_node(node, "a")
    r = a.client()
    with pytest.raises(redis.ResponseError, match="VERSION"):
        r.execute_command("CDB.LINK", "99", "7", "7", "x", "127.0.0.1:1", "00" * 16, "1")
    assert "link protocol 99" in a.log()
    assert peer_states(a) == {}


def test_backlog_is_small_while_alone_and_full_once_linked(node):
    # alone, a node keeps at most 1 MiB of records (nobody can read them; a
    # node that joins starts with a full sync); a link gives it the full size
    a = make_node(node, "a", repl_backlog_limit=64 * 1024 * 1024)
    b = make_node(node, "b", repl_backlog_limit=64 * 1024 * 1024)
    ra, rb = a.client(), b.client()
    pipe = ra.pipeline(transaction=False)
    for i in range(30_000):
        pipe.set(f"k{i}", "v" * 100)
    pipe.execute()

    def repl(r):
        return r.info("replication")

    wait_for(lambda: repl(ra)["repl_backlog_limit_now"] == 128 << 10, 5, what="small backlog")
    assert repl(ra)["repl_backlog_histlen"] <= (128 << 10) + 64 * 1024
    assert repl(ra)["repl_backlog_size"] == 64 * 1024 * 1024
    meet(b, a)
    wait_linked([a, b])
    for r in (ra, rb):
        assert repl(r)["repl_backlog_limit_now"] == 64 * 1024 * 1024
    # what is written from now on is kept past 128 KiB, and both converge
    pipe = ra.pipeline(transaction=False)
    for i in range(30_000):
        pipe.set(f"n{i}", "w" * 100)
    pipe.execute()
    wait_converged([a, b])
    assert rb.dbsize() == 60_000
    assert repl(ra)["repl_backlog_histlen"] > 2 << 20
