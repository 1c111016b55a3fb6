"""Snapshots on disk: SAVE, BGSAVE, shutdown saves, crash recovery."""

from __future__ import annotations

import os
import signal
import subprocess
import threading

import pytest
import redis
from support.nodes import (
    make_node,
    meet,
    node_id,
    server_cmd,
    start_fails,
    wait_converged,
    wait_for,
    wait_linked,
)


def state_of(r) -> dict:
    """Every key with its type, value, expiry and CRDT state (DESC)."""
    out = {}
    for k in sorted(r.keys("*")):
        t = r.type(k)
        if t == b"string":
            v = r.get(k)
        elif t == b"set":
            v = sorted(r.smembers(k))
        elif t == b"hash":
            v = sorted(r.hgetall(k).items())
        else:
            v = r.execute_command("MVGET", k)
        out[k] = (t, v, r.pexpiretime(k), r.execute_command("DESC", k))
    return out


def fill(r) -> None:
    r.set("str", "hello")
    r.incrby("cnt", 41)
    r.incr("cnt")
    r.set("num", "10")
    r.incr("num")
    r.sadd("set", "a", "b", "c")
    r.srem("set", "b")
    r.hset("hash", mapping={"f1": "v1", "f2": "v2"})
    r.hdel("hash", "f2")
    r.execute_command("MVSET", "mv", "x")
    r.set("ttl", "t", ex=1000)
    r.sadd("sttl", "m")
    r.pexpire("sttl", 500000)
    r.set("gone", "1")
    r.delete("gone")
    r.set("bin\x00key", b"\x00\xff\r\n")


def test_save_then_sigkill_restart_restores_every_key_ttl_and_crdt_state(node):
    a = make_node(node, "a")
    r = a.client()
    fill(r)
    before = state_of(r)
    assert r.save()
    last = r.lastsave()
    a.kill()
    a.start()
    r = a.client()
    assert state_of(r) == before
    assert r.lastsave() >= last
    info = r.info("persistence")
    assert info["rdb_last_load_keys_loaded"] == len(before)


def _shutdown(r, **kw) -> None:
    try:
        r.shutdown(**kw)
    except redis.ConnectionError:
        pass


@pytest.mark.slow
def test_sigterm_saves_and_shutdown_nosave_does_not(node):
    a = make_node(node, "a")
    r = a.client()
    r.set("k1", "v1")
    assert a.stop(signal.SIGTERM) == 0
    a.start()
    r = a.client()
    assert r.get("k1") == b"v1"
    r.set("k2", "v2")
    _shutdown(r, nosave=True)
    wait_for(lambda: not a.alive(), 10, what="exit after SHUTDOWN NOSAVE")
    a.start()
    r = a.client()
    assert r.get("k1") == b"v1"
    assert r.get("k2") is None
    r.set("k3", "v3")
    _shutdown(r)
    wait_for(lambda: not a.alive(), 10, what="exit after SHUTDOWN")
    a.start()
    assert a.client().get("k3") == b"v3"


def test_sigint_saves(node):
    a = make_node(node, "a")
    a.client().sadd("s", "x")
    assert a.stop(signal.SIGINT) == 0
    a.start()
    assert a.client().smembers("s") == {b"x"}


def test_restarted_member_gets_its_own_post_save_writes_back(node):
    a = make_node(node, "a")
    b = make_node(node, "b")
    meet(b, a)
    wait_linked([a, b])
    ra, rb = a.client(), b.client()
    ra.set("a-before", "1")
    rb.set("b-before", "1")
    rb.incrby("cnt", 3)
    wait_converged([a, b])
    assert rb.save()
    # after the last save: writes on both sides, replicated, then B crashes
    rb.set("b-after", "2")
    rb.incrby("cnt", 4)
    rb.sadd("bset", "x")
    ra.set("a-after", "2")
    wait_converged([a, b])
    b.kill()
    ra.set("a-while-down", "3")
    b.start()
    rb = b.client()
    assert rb.get("b-before") == b"1"  # from its snapshot
    wait_linked([a, b], timeout=30)
    wait_converged([a, b], timeout=30)
    for r in (ra, rb):
        assert r.get("b-after") == b"2"  # its own post-save writes are back
        assert r.get("cnt") == b"7"
        assert r.smembers("bset") == {b"x"}
        assert r.get("a-while-down") == b"3"
    rb.incr("cnt")
    wait_for(lambda: ra.get("cnt") == b"8", 10, what="new write after recovery")


def _start_fails(n, match: str) -> None:
    start_fails(n, match, "dump.cdb")


def _saved_node(node, name):
    a = make_node(node, name)
    a.client().set("k", "v" * 1000)
    a.client().save()
    a.stop()
    return a, os.path.join(a.work_dir, "dump.cdb")


def test_truncated_snapshot_refuses_to_start(node):
    a, path = _saved_node(node, "a")
    data = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write(data[: len(data) // 2])
    _start_fails(a, "truncated")


def test_corrupted_snapshot_refuses_to_start(node):
    a, path = _saved_node(node, "a")
    data = bytearray(open(path, "rb").read())
    data[len(data) // 2] ^= 0xFF
    with open(path, "wb") as f:
        f.write(bytes(data))
    _start_fails(a, "dump.cdb")


def test_wrong_version_snapshot_refuses_to_start(node):
    import lz4.frame

    a, path = _saved_node(node, "a")
    raw = lz4.frame.decompress(open(path, "rb").read())
    raw = raw[:8] + (99).to_bytes(4, "little") + raw[12:]
    with open(path, "wb") as f:
        f.write(lz4.frame.compress(raw, content_checksum=True))
    _start_fails(a, "version 99")


def test_not_a_snapshot_refuses_to_start(node):
    a, path = _saved_node(node, "a")
    with open(path, "wb") as f:
        f.write(b"this is not a snapshot")
    _start_fails(a, "not a ConstDB snapshot")


def test_bgsave_while_clients_write_matches_the_recorded_point(node):
    a = make_node(node, "a")
    r = a.client()
    p = r.pipeline(transaction=False)
    for i in range(30000):
        p.set(f"pre{i}", "x")
    p.execute()
    stop = threading.Event()
    written = []

    def writer() -> None:
        w = a.client()
        i = 0
        while not stop.is_set():
            w.set(f"seq{i:07d}", i)
            written.append(i)
            i += 1

    t = threading.Thread(target=writer)
    t.start()
    wait_for(lambda: len(written) > 200, 10)
    r.bgsave()
    wait_for(
        lambda: (
            r.info("persistence")["rdb_bgsave_in_progress"] == 0
            and r.info("persistence")["rdb_saves"] >= 1
        ),
        30,
        what="bgsave done",
    )
    # more writes after the save, which the file must not hold
    after = len(written)
    wait_for(lambda: len(written) > after + 50, 10, what="writes after the save")
    stop.set()
    t.join()
    assert r.info("persistence")["rdb_last_bgsave_status"] == "ok"
    total = len(written)
    # load the file in a fresh node: it holds a prefix of the sequence
    b = make_node(node, "b", start=False)
    os.makedirs(b.work_dir, exist_ok=True)
    with (
        open(os.path.join(a.work_dir, "dump.cdb"), "rb") as src,
        open(os.path.join(b.work_dir, "dump.cdb"), "wb") as dst,
    ):
        dst.write(src.read())
    b.start()
    rb = b.client()
    seq = sorted(int(k[3:]) for k in rb.keys("seq*"))
    assert seq == list(range(len(seq)))
    assert 0 < len(seq) <= total
    assert rb.dbsize() == 30000 + len(seq)


def test_failed_bgsave_is_reported_and_the_old_file_stays(node):
    a = make_node(node, "a", enable_protected_configs="yes")  # CONFIG SET dbfilename
    r = a.client()
    r.set("k", "1")
    assert r.save()
    path = os.path.join(a.work_dir, "dump.cdb")
    good = open(path, "rb").read()
    os.mkdir(os.path.join(a.work_dir, "blocked.cdb"))
    r.config_set("dbfilename", "blocked.cdb")
    r.set("k", "2")
    r.bgsave()
    wait_for(
        lambda: r.info("persistence")["rdb_last_bgsave_status"] == "err", 10, what="bgsave failure"
    )
    assert open(path, "rb").read() == good
    wait_for(lambda: "Background saving error" in a.log(), 5)
    r.config_set("dbfilename", "dump.cdb")


def test_save_schedule_triggers_a_background_save(node):
    a = make_node(node, "a", save="1 2")
    r = a.client()
    saves = r.info("persistence")["rdb_saves"]
    r.set("a", "1")
    r.set("b", "2")
    wait_for(lambda: r.info("persistence")["rdb_saves"] > saves, 10, what="scheduled save")
    assert r.info("persistence")["rdb_changes_since_last_save"] == 0


def test_a_second_server_on_the_same_work_dir_is_refused(node):
    from support.nodes import free_port

    a = make_node(node, "a")
    proc = subprocess.run(
        server_cmd() + [a.config, "--port", str(free_port()), "--work-dir", a.work_dir],
        capture_output=True,
        timeout=30,
    )
    assert proc.returncode == 2
    assert "in use by another constdb-server" in proc.stderr.decode()
    assert a.alive()
    assert node_id(a)


def test_clean_restart_rejoins_with_partial_syncs(node):
    from support.nodes import info_peer

    a = make_node(node, "a")
    b = make_node(node, "b")
    meet(b, a)
    wait_linked([a, b])
    ra = a.client()
    ra.set("x", "1")
    b.client().set("y", "1")
    wait_converged([a, b])
    ida, idb = node_id(a), node_id(b)
    full_a = int(info_peer(a, idb)["full_syncs"])
    assert b.stop(signal.SIGTERM) == 0
    ra.set("while-b-down", "1")
    ra.incr("x")
    b.start()
    wait_linked([a, b], timeout=30)
    wait_converged([a, b])
    rb = b.client()
    assert rb.get("while-b-down") == b"1"
    assert rb.get("x") == b"2"
    # a's stream to b resumed from b's position; b's own origin is unchanged
    assert int(info_peer(a, idb)["full_syncs"]) == full_a
    assert int(info_peer(a, idb)["partial_syncs"]) >= 1
    assert int(info_peer(b, ida)["partial_syncs"]) >= 1
    assert int(info_peer(b, ida)["full_syncs"]) == 0
