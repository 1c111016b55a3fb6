"""appendonly: the log of a node's own writes, replayed on top of its
snapshot at start (constdb/aof.py); SIGKILL with real processes."""

from __future__ import annotations

import os
import re
import struct
import subprocess
import threading
import time

import pytest
import redis
from hypothesis import given
from hypothesis import strategies as st
from support.nodes import (
    make_node,
    meet,
    peer_states,
    proxied_pair,
    server_cmd,
    start_fails,
    wait_converged,
    wait_for,
    wait_linked,
)
from support.resp import Conn

from constdb import aof
from constdb.persistence import StartupError

AOF = {"appendonly": True, "save": []}


def info(r, section: str = "persistence") -> dict:
    return {k: v for k, v in r.info(section).items()}


class Writers:
    """Threads that SET keys on a node until it dies, remembering when
    each write was acknowledged (one pipelined writer, the rest single)."""

    def __init__(self, n, threads: int = 3, pipeline: int = 16):
        self.n = n
        self.acked: dict[str, tuple[str, float]] = {}
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [
            threading.Thread(target=self._run, args=(i, pipeline if i == 0 else 1), daemon=True)
            for i in range(threads)
        ]

    def _run(self, tid: int, depth: int) -> None:
        r = self.n.client(socket_timeout=5)
        i = 0
        while not self.stop.is_set():
            keys = [f"t{tid}:{i + j}" for j in range(depth)]
            i += depth
            try:
                if depth == 1:
                    r.set(keys[0], keys[0])
                else:
                    p = r.pipeline(transaction=False)
                    for k in keys:
                        p.set(k, k)
                    p.execute()
            except (redis.ConnectionError, redis.TimeoutError, OSError):
                return
            now = time.monotonic()
            with self.lock:
                for k in keys:
                    self.acked[k] = (k, now)

    def __enter__(self) -> Writers:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(10)


def missing(r, keys: list[str]) -> list[str]:
    out = []
    for i in range(0, len(keys), 1000):
        chunk = keys[i : i + 1000]
        for k, v in zip(chunk, r.mget(chunk)):
            if v != k.encode():
                out.append(k)
    return out


def wait_acked(w: Writers, n: int) -> None:
    wait_for(lambda: len(w.acked) >= n, 30, what=f"{n} acknowledged writes")


def test_always_sigkill_loses_no_acknowledged_write_and_the_peer_gets_them(node):
    a = make_node(node, "a", appendfsync="always", **AOF)
    b = make_node(node, "b")
    meet(b, a)
    wait_linked([a, b])
    with Writers(a) as w:
        wait_acked(w, 3000)
        a.kill()  # SIGKILL while the writers run
    acked = sorted(w.acked)
    assert len(acked) >= 3000
    a.start()
    ra = a.client()
    assert missing(ra, acked) == []
    assert int(info(ra)["aof_last_load_records"]) >= len(acked) - 1000
    # every acknowledged write reaches the peer too (shipped before the
    # kill, or sent again from the replayed log: docs/crdt.md section 1)
    wait_linked([a, b], timeout=30)
    rb = b.client()
    wait_for(lambda: not missing(rb, acked), 30, what="every acknowledged write on b")
    wait_converged([a, b])
    # WAIT keeps its meaning: peers' acknowledgements
    ra.set("after", "1")
    assert ra.execute_command("WAIT", 1, 5000) == 1


def test_replayed_writes_reach_a_peer_that_never_got_them(node):
    a, b, pa, pb = proxied_pair(node, appendfsync="always", **AOF)
    try:
        ra, rb = a.client(), b.client()
        ra.set("before", "1")
        wait_for(lambda: rb.get("before") == b"1", 10, what="before on b")
        pa.cut()
        pb.cut()
        wait_for(lambda: link_down(a), 10, what="link down")
        for i in range(200):
            ra.set(f"unshipped{i}", i)
        ra.sadd("unshipped-set", *range(50))
        a.kill()
        assert rb.get("unshipped0") is None
        a.start()
        pa.heal()
        pb.heal()
        wait_linked([a, b], timeout=30)
        wait_for(
            lambda: rb.scard("unshipped-set") == 50 and rb.get("unshipped199") == b"199",
            30,
            what="the replayed writes on b",
        )
        wait_converged([a, b])
        # they went in a full sync: the restarted node streams under a fresh
        # origin, and the old one's effects move only in snapshots
        assert "full sync to b" in a.log().split("append-only log replayed")[-1]
    finally:
        pa.close()
        pb.close()


def link_down(a) -> bool:
    return all(st != "connected" for st in peer_states(a).values())


def test_everysec_sigkill_keeps_every_write_acknowledged_over_a_second_before(node):
    a = make_node(node, "a", appendfsync="everysec", **AOF)
    with Writers(a) as w:
        wait_acked(w, 2000)
        time.sleep(2.0)  # writes older than the fsync period must be durable
        killed = time.monotonic()
        a.kill()
    old = sorted(k for k, (_, t) in w.acked.items() if t < killed - 1.5)
    assert len(old) >= 2000
    a.start()
    assert missing(a.client(), old) == []


def visible(r) -> dict:
    return {
        "s1": r.get("s1"),
        "s2": r.get("s2"),
        "cnt": r.get("cnt"),
        "l": r.lrange("l", 0, -1),
        "h": r.hgetall("h"),
        "z": r.zrange("z", 0, -1, withscores=True),
        "set": r.smembers("set"),
        "mv": r.execute_command("MVGET", "mv"),
        "keys": sorted(r.keys("*")),
    }


def test_start_replays_the_log_on_top_of_the_snapshot(node):
    a = make_node(node, "a", **AOF)
    r = a.client()
    r.set("s1", "in the snapshot")
    r.rpush("l", "a", "b")
    r.save()
    r.set("s2", "only in the log")
    r.incrby("cnt", 5)
    r.rpush("l", "c")
    r.lpop("l")
    r.hset("h", mapping={"f": "v", "g": "w"})
    r.hdel("h", "g")
    r.zadd("z", {"m": 1.5})
    r.zincrby("z", 2, "m")
    r.set("ttl", "t", ex=1000)
    r.sadd("set", "x", "y")
    r.srem("set", "x")
    r.set("gone", "1")
    r.delete("gone")
    r.execute_command("MVSET", "mv", "v")
    expected = visible(r)
    ttl_at = r.pexpiretime("ttl")
    # everysec: the fsync thread catches up with the last write within a second or so
    wait_for(
        lambda: info(r)["aof_fsynced_uuid"] == r.info("replication")["uuid"],
        10,
        what="the background fsync",
    )
    a.kill()
    a.start()
    r = a.client()
    got = visible(r)
    assert got == expected
    assert r.pexpiretime("ttl") == ttl_at
    assert "append-only log replayed" in a.log()
    # a second crash: the log now holds two origins' sections
    r.set("third", "3")
    a.kill()
    a.start()
    r = a.client()
    assert r.get("third") == b"3" and r.get("s2") == b"only in the log"


def test_bgrewriteaof_restarts_the_log_after_a_snapshot(node):
    a = make_node(node, "a", **AOF)
    r = a.client()
    for i in range(500):
        r.set(f"k{i}", "v" * 100)
    before = int(info(r)["aof_current_size"])
    assert before > 50_000
    with Conn(a.port) as c:
        assert c.call("BGREWRITEAOF") == b"+Background append only file rewriting started\r\n"
    wait_for(lambda: int(info(r)["aof_rewrites"]) == 1, 20, what="the rewrite")
    st = info(r)
    assert st["aof_last_bgrewrite_status"] == "ok"
    assert int(st["aof_current_size"]) < 1000
    assert int(st["aof_base_size"]) == int(st["aof_current_size"])
    r.set("after", "1")
    a.kill()
    a.start()
    r = a.client()
    assert r.dbsize() == 501 and r.get("k499") == b"v" * 100 and r.get("after") == b"1"


def test_config_set_appendonly_at_runtime_snapshots_then_logs(node):
    a = make_node(node, "a", save=[])
    r = a.client()
    r.set("early", "1")
    assert r.config_get("appendonly") == {"appendonly": "no"}
    assert info(r)["aof_enabled"] == 0
    r.config_set("appendonly", "yes")
    wait_for(lambda: int(info(r)["aof_rewrites"]) == 1, 20, what="the first log")
    assert info(r)["aof_enabled"] == 1
    assert os.path.exists(os.path.join(a.work_dir, "appendonly.aof"))
    assert os.path.exists(os.path.join(a.work_dir, "dump.cdb"))
    r.set("late", "2")
    r.config_set("appendfsync", "always")
    assert r.config_get("appendfsync") == {"appendfsync": "always"}
    r.set("later", "3")
    a.kill()
    a.start()
    r = a.client()
    # the file config says appendonly = false: start as Redis does, without the log
    assert r.get("early") == b"1" and r.get("late") is None
    r.config_set("appendonly", "yes")
    wait_for(lambda: int(info(r)["aof_rewrites"]) == 1, 20, what="the first log")
    r.config_set("appendonly", "no")
    assert info(r)["aof_enabled"] == 0
    size = os.path.getsize(os.path.join(a.work_dir, "appendonly.aof"))
    r.set("unlogged", "1")
    time.sleep(0.2)  # nothing may be appended now; give a wrong write time to show
    assert os.path.getsize(os.path.join(a.work_dir, "appendonly.aof")) == size


def origins(n) -> list[str]:
    return re.findall(r" started: .* origin=(\d+) ", n.log())


def test_clean_shutdown_keeps_the_origin(node):
    a = make_node(node, "a", **AOF)
    r = a.client()
    r.set("k", "v")
    a.stop()
    a.start()
    assert a.client().get("k") == b"v"
    first, second = origins(a)
    assert first == second
    a.kill()
    a.start()
    assert a.client().get("k") == b"v"
    assert origins(a)[2] != first  # a crash: a fresh origin


def _blocks(data: bytes) -> list[tuple[int, int]]:
    pos, out = len(aof.MAGIC), []
    while pos < len(data):
        (ln,) = struct.unpack_from("<I", data, pos)
        out.append((pos, pos + aof.HDR + ln))
        pos += aof.HDR + ln
    return out


def _logged_node(node, n: int = 20):
    a = make_node(node, "a", **AOF)
    r = a.client()
    for i in range(n):
        r.set(f"k{i}", i)
    a.kill()
    return a, os.path.join(a.work_dir, "appendonly.aof")


def test_torn_last_record_is_ignored_with_one_log_line(node):
    a, path = _logged_node(node)
    data = open(path, "rb").read()
    start, end = _blocks(data)[-1]
    with open(path, "wb") as f:
        f.write(data[: end - 3])  # the last write cut by the crash
    a.start()
    r = a.client()
    assert r.get("k18") == b"18" and r.get("k19") is None
    lines = [x for x in a.log().splitlines() if "was cut" in x]
    assert len(lines) == 1 and "WARN" in lines[0], a.log()
    # the torn tail is gone: later writes append to a well-formed log
    r.set("next", "1")
    a.kill()
    a.start()
    assert a.client().get("next") == b"1"
    assert len([x for x in a.log().splitlines() if "was cut" in x]) == 1


def _start_fails(n, match: str) -> None:
    start_fails(n, match, "appendonly.aof")


def test_corrupt_log_stops_the_start_with_one_line(node):
    a, path = _logged_node(node)
    data = bytearray(open(path, "rb").read())
    start, end = _blocks(bytes(data))[3]
    data[(start + end) // 2] ^= 0x40
    with open(path, "wb") as f:
        f.write(bytes(data))
    _start_fails(a, "corrupt")


def test_log_that_does_not_continue_the_snapshot_stops_the_start(node):
    a = make_node(node, "a", **AOF)
    r = a.client()
    r.set("k", "v")
    r.save()
    r.set("k2", "v2")
    a.kill()
    os.unlink(os.path.join(a.work_dir, "dump.cdb"))
    _start_fails(a, "holds it only up to 0")


def test_appendfilename_is_checked(node, tmp_path):
    a = make_node(node, "a", start=False, appendonly=True, appendfilename="node_id")
    proc = subprocess.run(
        server_cmd() + [a.config, "--port", str(a.port), "--work-dir", a.work_dir],
        capture_output=True,
        timeout=30,
    )
    assert proc.returncode == 2
    assert "appendfilename" in proc.stderr.decode()
    assert "node id" in proc.stderr.decode()


def test_config_errors_are_redis_s(r, rr):
    for args in (
        ("appendfsync", "sometimes"),
        ("appendonly", "maybe"),
        ("appendfilename", "other.aof"),
    ):
        with pytest.raises(redis.ResponseError) as mine:
            r.config_set(*args)
        with pytest.raises(redis.ResponseError) as theirs:
            rr.config_set(*args)
        assert str(mine.value) == str(theirs.value)
    assert r.config_get("appendfsync") == rr.config_get("appendfsync")
    assert r.config_get("appendonly") == rr.config_get("appendonly")


def test_full_sync_cut_by_a_link_drop_is_one_warning(node):
    a, b, pa, pb = proxied_pair(node, repl_backlog_limit=4096)
    try:
        ra = a.client()
        pa.cut()
        pb.cut()
        wait_for(lambda: link_down(a), 10, what="link down")
        p = ra.pipeline(transaction=False)
        for i in range(300):
            p.set(f"big{i}", os.urandom(128 * 1024))
        p.execute()
        seen = a.log().count("full sync to")
        pa.heal()
        pb.heal()
        # the proxies pass no byte once a starts the full sync, so the 38 MiB
        # snapshot's transfer stalls (far more than the sockets can hold);
        # then the link drops
        wait_for(
            lambda: a.log().count("full sync to") > seen, 30, interval=0.002, what="the full sync"
        )
        pa.freeze()
        pb.freeze()
        # a is sending the snapshot (its link's output buffer, INFO
        # mem_clients_slaves, holds more than anything but snapshot data)
        wait_for(
            lambda: int(ra.info("memory")["mem_clients_slaves"]) > 64 * 1024,
            30,
            what="the stalled snapshot transfer",
        )
        pa.cut()
        pb.cut()
        wait_for(lambda: "full sync to" in a.log() and " cut: " in a.log(), 20, what="cut")
        log = a.log()
        lines = [x for x in log.splitlines() if "full sync to" in x and " cut: " in x]
        assert len(lines) == 1 and "WARN" in lines[0], log
        assert "Traceback" not in log and " ERROR " not in log, log
        pa.heal()
        pb.heal()
        wait_linked([a, b], timeout=30)
        wait_converged([a, b], timeout=60)
    finally:
        pa.close()
        pb.close()


# ---- the log's reader against hostile bytes ----------------------------------------------


def _good_log() -> bytes:
    rec = struct.pack("<IBQ", 9 + 3, 1, 100) + b"abc"
    rec2 = struct.pack("<IBQ", 9, 1, 101)
    return (
        aof.MAGIC
        + aof.origin_block(7, 50)
        + aof.block(aof.B_RECORDS, rec)
        + aof.block(aof.B_RECORDS, rec2)
    )


def test_parse_reads_back_what_was_written():
    p = aof.parse(_good_log(), "x.aof")
    assert not p.torn and p.valid_end == len(_good_log())
    (s,) = p.sections
    assert (s.origin, s.base, s.last, s.records) == (7, 50, 101, 2)


def test_parse_cuts_every_truncation_and_never_reads_past_it():
    data = _good_log()
    ends = [len(aof.MAGIC)] + [e for _, e in _blocks(data)]
    for n in range(len(data)):
        p = aof.parse(data[:n], "x.aof")
        assert p.valid_end <= n
        assert p.valid_end == max([e for e in ends if e <= n], default=0)
        assert bool(p.torn) == (n not in ends and n != 0)


@given(st.integers(0, len(_good_log()) - 1), st.integers(1, 255))
def test_parse_of_a_flipped_byte_refuses_or_cuts(pos, x):
    data = bytearray(_good_log())
    data[pos] ^= x
    try:
        p = aof.parse(bytes(data), "x.aof")
    except StartupError as e:
        assert "x.aof" in str(e)
        return
    # accepted only as a torn tail: the last block's bytes
    last_start = _blocks(_good_log())[-1][0]
    assert p.torn and pos >= last_start and p.valid_end <= last_start


@given(st.binary(max_size=300))
def test_parse_of_random_bytes_never_fails_otherwise(tail):
    for data in (tail, aof.MAGIC + tail, aof.MAGIC + aof.origin_block(1, 0) + tail):
        try:
            aof.parse(data, "x.aof")
        except StartupError:
            pass


def test_replies_that_wait_for_the_log_are_sent_before_a_close(node):
    a = make_node(node, "a", appendfsync="always", **AOF)
    with Conn(a.port) as c:
        c.send_raw(b"SET k 1\r\nINCR n\r\nQUIT\r\n")
        assert c.read_many(3) == [b"+OK\r\n", b":1\r\n", b"+OK\r\n"]
    with Conn(a.port) as c:  # a protocol error closes the connection after the replies
        c.send_raw(b"SET k 2\r\n*1\r\n$x\r\n")
        assert c.read_many(2) == [b"+OK\r\n", b"-ERR Protocol error: invalid bulk length\r\n"]
    a.kill()
    a.start()
    r = a.client()
    assert r.get("k") == b"2" and r.get("n") == b"1"


def test_backlog_keeps_every_chunk_the_log_has_not_taken():
    from support.core import Node

    n = Node(1)
    n.bl.chunk_size = 256
    n.bl.set_limit(1024)
    n.bl.pin_off = 0  # the log has taken nothing yet
    for i in range(200):
        n.run("SET", f"key{i}", "v" * 20)
    assert n.bl.base_off == 0 and n.bl.size > 4 * 1024
    data = n.bl.slice(0, n.bl.done_off)
    assert len(data) == n.bl.done_off
    # the bytes are the records, whole: replayed elsewhere they give the same keys
    m = Node(2)
    assert m.apply(1, data) == 200
    assert m.run("GET", "key199") == b"$20\r\n" + b"v" * 20 + b"\r\n"
    half = n.bl.slice(0, 2000)
    n.bl.pin_off = n.bl.done_off  # taken: the old chunks may go now
    for i in range(20):  # enough to seal a chunk: the drop happens then
        n.run("SET", f"more{i}", "x")
    assert n.bl.base_off > 0 and n.bl.size <= 1024 + 256
    with pytest.raises(ValueError):
        n.bl.slice(0, 10)
    assert data.startswith(half)
