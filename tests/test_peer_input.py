"""Every input from a peer is checked before it changes anything (issue 9,
findings 2 8 9): a fake peer completes the real handshake (it knows the
secret: a member gone bad) and sends clocks far ahead, frames and snapshots
bigger than they say, and records with bad values; the node refuses them,
closes the link with one logged line, and keeps its data and clock sane."""

from __future__ import annotations

import math
import os
import random
import struct
import time

import pytest
from constdb._core.backlog import Backlog
from constdb._core.clock import Clock
from constdb._core.keyspace import Keyspace

from constdb._core import snapshot
from constdb.replication import link as L
from tests.support.fakepeer import LinkedPeer, record, varbytes, varint
from tests.support.lz4frames import claiming
from tests.support.nodes import make_node, wait_for

SECRET = "0f4e1b9d2c7a68e35b0d91f7a4c2e86b"
FAR = 2**64 - 20
OP_REG = 1
OP_ZW = 48


def info(r, section: str = "replication") -> dict:
    return r.info(section)


def closed(peer: LinkedPeer, timeout: float = 10.0) -> None:
    _rest, eof = peer.until_close(timeout)
    assert eof, "the node kept the link open"


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for ln in f:
            if ln.startswith("VmRSS:"):
                return int(ln.split()[1])
    raise AssertionError("no VmRSS")


def set_record(uuid: int, key: bytes, value: bytes) -> bytes:
    # OP_REG: key, u8 flags (1: value present), value, observed counters (none)
    return record(OP_REG, uuid, varbytes(key) + b"\x01" + varbytes(value) + varint(0))


def zadd_record(uuid: int, key: bytes, member: bytes, score: float) -> bytes:
    # OP_ZW: key, member, u8 flags, f64 value, observed counters, dots removed
    return record(
        OP_ZW,
        uuid,
        varbytes(key)
        + varbytes(member)
        + b"\x00"
        + struct.pack("<d", score)
        + varint(0)
        + varint(0),
    )


def now_uuid() -> int:
    return int(time.time() * 1000) << 22


# ---- finding 2: clocks far ahead ---------------------------------------------------------


def test_the_local_clock_never_wraps():
    c = Clock(2**64 - 2)
    assert c.next() == 2**64 - 1
    assert c.next() == 2**64 - 1  # stays at the top, never 0
    assert Clock().next(2**42 + 5) == 2**64 - 1


def _writes_still_work(r) -> None:
    for i in range(20):
        assert r.set("x", f"v{i}")
        assert r.get("x") == f"v{i}".encode()
    assert r.execute_command("DESC", "x")


def test_a_heartbeat_clock_far_ahead_is_refused_and_never_folded(node):
    n = make_node(node, "a", cluster_secret=SECRET)
    r = n.client()
    r.set("x", "old")
    peer = LinkedPeer(n.port, SECRET)
    peer.heartbeat(FAR)
    assert not peer.sync()  # the heartbeat was read: the link is closed
    _writes_still_work(r)
    i = info(r)
    assert i["uuid"] < FAR >> 1
    assert i["clock_drift_refusals"] == 1
    lines = [ln for ln in n.log().splitlines() if "CLOCK" in ln]
    assert len(lines) == 1 and "ahead" in lines[0], n.log()
    assert "Traceback" not in n.log()


def test_a_record_clock_far_ahead_is_refused_and_nothing_of_its_batch_applied(node):
    n = make_node(node, "a", cluster_secret=SECRET)
    r = n.client()
    r.set("x", "old")
    peer = LinkedPeer(n.port, SECRET)
    u = now_uuid()
    peer.batch(set_record(u + 1, b"good", b"1") + set_record(FAR, b"x", b"forged"))
    assert not peer.sync()
    assert r.get("good") is None
    assert r.get("x") == b"old"
    _writes_still_work(r)
    assert info(r)["clock_drift_refusals"] == 1
    # a clock within max_clock_drift is taken
    peer = LinkedPeer(n.port, SECRET)
    peer.batch(set_record(now_uuid() + 5, b"near", b"1"))
    wait_for(lambda: r.get("near") == b"1", 10, what="a record within the drift applied")
    peer.close()


def test_max_clock_drift_is_a_config_key(node):
    n = make_node(node, "a", cluster_secret=SECRET)
    r = n.client()
    assert r.config_get("max-clock-drift") == {"max-clock-drift": "60000"}
    assert r.config_set("max_clock_drift", 1000)
    assert r.config_get("max_clock_drift") == {"max_clock_drift": "1000"}
    with pytest.raises(Exception, match="max"):
        r.config_set("max-clock-drift", 0)
    # 10 s ahead: refused under a 1 s drift
    peer = LinkedPeer(n.port, SECRET)
    peer.heartbeat(now_uuid() + (10_000 << 22))
    closed(peer)
    assert info(r)["clock_drift_refusals"] == 1


def test_a_snapshot_clock_far_ahead_is_refused_and_never_merged(node):
    n = make_node(node, "a", cluster_secret=SECRET)
    r = n.client()
    r.set("x", "old")
    other = Keyspace(12345, Backlog())
    other.clock.observe(FAR)
    snap = snapshot.dump(other, b"fake")
    peer = LinkedPeer(n.port, SECRET)
    peer.send(L.F_SNAP_BEGIN, struct.pack("<QQ", 0, len(snap)))
    peer.send(L.F_SNAP_DATA, snap)
    peer.send(L.F_SNAP_END)
    assert not peer.sync()
    _writes_still_work(r)
    assert info(r)["uuid"] < FAR >> 1
    assert info(r)["clock_drift_refusals"] == 1


# ---- finding 8: sizes checked before allocation ---------------------------------------------


def test_a_batch_claiming_4_gib_is_refused_before_allocation(node):
    n = make_node(node, "a", cluster_secret=SECRET)
    r = n.client()
    before = rss_kb(n.pid)
    peer = LinkedPeer(n.port, SECRET)
    comp = lz4_blob = os.urandom(1024)
    peer.send(L.F_BATCH, struct.pack("<I", 0xFFFFFFFF) + comp)
    closed(peer)
    assert rss_kb(n.pid) - before < 64 * 1024, (before, rss_kb(n.pid))
    # a claim within the cap but far beyond what lz4 could expand the frame to
    peer = LinkedPeer(n.port, SECRET)
    peer.send(L.F_BATCH, struct.pack("<I", 256 * 1024 * 1024) + lz4_blob)
    closed(peer)
    assert rss_kb(n.pid) - before < 64 * 1024
    assert r.ping()
    assert "Traceback" not in n.log()


@pytest.mark.parametrize("claim", [4 * 1024**3, 2**63 + 5])
def test_a_snapshot_whose_lz4_frame_claims_gigabytes_is_refused_before_allocation(node, claim):
    n = make_node(node, "a", cluster_secret=SECRET)
    r = n.client()
    r.set("x", "kept")
    before = rss_kb(n.pid)
    other = Keyspace(12345, Backlog())
    raw = b"".join(snapshot.dump_chunks(other, b"fake", b""))
    blob = claiming(raw, claim)
    peer = LinkedPeer(n.port, SECRET)
    peer.send(L.F_SNAP_BEGIN, struct.pack("<QQ", 0, len(blob)))
    peer.send(L.F_SNAP_DATA, blob)
    peer.send(L.F_SNAP_END)
    closed(peer)
    assert f"claims {claim}" in n.log()
    assert rss_kb(n.pid) - before < 64 * 1024
    assert r.get("x") == b"kept"
    assert "Traceback" not in n.log()


def test_a_batch_whose_lz4_frame_claims_4_gib_is_not_allocated(node):
    n = make_node(node, "a", cluster_secret=SECRET)
    r = n.client()
    before = rss_kb(n.pid)
    peer = LinkedPeer(n.port, SECRET)
    records = set_record(now_uuid() + 1, b"k", b"v")
    peer.send(L.F_BATCH, struct.pack("<I", len(records)) + claiming(records, 4 * 1024**3))
    peer.until_close(2.0)
    assert rss_kb(n.pid) - before < 64 * 1024
    assert r.ping()
    assert "Traceback" not in n.log()


def test_a_large_batch_within_the_limits_is_applied(node):
    # 12 MiB decompressed (3 decompression steps) from a small frame
    n = make_node(node, "a", cluster_secret=SECRET)
    r = n.client()
    peer = LinkedPeer(n.port, SECRET)
    value = b"0123456789abcdef" * (768 * 1024)
    peer.batch(set_record(now_uuid() + 1, b"big", value))
    assert peer.sync()
    assert r.strlen("big") == len(value)
    assert r.get("big") == value
    peer.close()


def test_snapshot_data_is_bounded_by_what_its_begin_declared(node):
    n = make_node(node, "a", cluster_secret=SECRET)
    r = n.client()
    peer = LinkedPeer(n.port, SECRET)
    peer.send(L.F_SNAP_BEGIN, struct.pack("<QQ", 0, 16))
    peer.send(L.F_SNAP_DATA, b"x" * 16)
    peer.send(L.F_SNAP_DATA, b"x" * 1024 * 1024)
    closed(peer)
    assert "beyond the 16 bytes declared" in n.log()
    # a declared size beyond the machine's memory is refused at the begin
    peer = LinkedPeer(n.port, SECRET)
    peer.send(L.F_SNAP_BEGIN, struct.pack("<QQ", 0, 2**63))
    closed(peer)
    assert r.ping()
    assert "Traceback" not in n.log()


# ---- finding 9: records validated, batches all or nothing ------------------------------------


def test_a_nan_score_is_refused_and_nothing_of_its_batch_applied(node):
    n = make_node(node, "a", cluster_secret=SECRET)
    r = n.client()
    r.zadd("z", {"a": 1, "b": 2, "c": 3})
    peer = LinkedPeer(n.port, SECRET)
    u = now_uuid()
    peer.batch(set_record(u + 1, b"good", b"1") + zadd_record(u + 2, b"z", b"d", math.nan))
    assert not peer.sync()
    assert r.get("good") is None
    assert r.zrange("z", 0, -1, withscores=True) == [(b"a", 1.0), (b"b", 2.0), (b"c", 3.0)]
    assert r.zrem("z", "b") == 1
    assert r.zadd("z", {"e": 5}) == 1
    assert r.zrange("z", 0, -1) == [b"a", b"c", b"e"]
    assert "NaN score" in n.log()
    assert "Traceback" not in n.log()
    # the same record with a number is taken
    peer = LinkedPeer(n.port, SECRET)
    peer.batch(zadd_record(now_uuid() + 5, b"z", b"d", 4.0))
    assert peer.sync()
    assert r.zscore("z", "d") == 4.0
    peer.close()


@pytest.mark.parametrize(
    "bad",
    [
        record(99, 0, b"x"),  # unknown op
        record(3, 0, varbytes(b"k") + struct.pack("<q", 5) + b"extra"),  # OP_TTL too long
        record(3, 0, varbytes(b"k")),  # OP_TTL too short
        struct.pack("<I", 4) + b"abcd",  # shorter than op + uuid
        zadd_record(0, b"z", b"m", 1.0)[:-1],  # truncated
        record(
            OP_ZW, 0, varbytes(b"z") + varbytes(b"m") + b"\x80" + struct.pack("<d", 1) + b"\0\0"
        ),
        record(49, 0, varbytes(b"z") + varint(2**40)),  # ZREM count beyond the record
        record(OP_REG, 0, varbytes(b"k") + b"\x04" + varint(0)),  # unknown SET flag
        record(40, 0, varbytes(b"l") + bytes(16) + b"\x07" + varint(1) + varbytes(b"v")),
        record(4, 0, varbytes(b"s") + varbytes(b"m") + varint(5)),  # SADD dots beyond
        record(56, 0, varbytes(b"h") + varbytes(b"f") + struct.pack("<q", 1) + b"\x02"),
        record(10, 0, varbytes(b"k") + varbytes(b"v") + varint(3)),  # MV dots beyond
    ],
    ids=[
        "unknown-op",
        "ttl-long",
        "ttl-short",
        "no-uuid",
        "truncated",
        "zw-flags",
        "zrem-count",
        "reg-flags",
        "lins-mode",
        "sadd-dots",
        "hcnt-create",
        "mv-dots",
    ],
)
def test_malformed_records_refuse_the_whole_batch(node, bad):
    n = make_node(node, "a", cluster_secret=SECRET)
    r = n.client()
    peer = LinkedPeer(n.port, SECRET)
    u = now_uuid()
    if len(bad) >= 13:
        bad = bad[:5] + struct.pack("<Q", u + 2) + bad[13:]
    peer.batch(set_record(u + 1, b"good", b"1") + bad)
    assert not peer.sync()
    assert r.get("good") is None
    assert r.ping()
    assert "Traceback" not in n.log()


def test_a_snapshot_with_a_nan_score_is_refused(node):
    n = make_node(node, "a", cluster_secret=SECRET)
    r = n.client()
    r.zadd("z", {"a": 1})
    other = Keyspace(12345, Backlog())
    # the core API applies without checks: what a bad member's state could hold
    other.apply_records(12345, zadd_record(now_uuid(), b"z", b"n", math.nan))
    snap = snapshot.dump(other, b"fake")
    peer = LinkedPeer(n.port, SECRET)
    peer.send(L.F_SNAP_BEGIN, struct.pack("<QQ", 0, len(snap)))
    peer.send(L.F_SNAP_DATA, snap)
    peer.send(L.F_SNAP_END)
    assert not peer.sync()
    assert r.zrange("z", 0, -1, withscores=True) == [(b"a", 1.0)]
    assert "NaN sorted set score" in n.log()
    assert "Traceback" not in n.log()


# ---- link-protocol fuzz ---------------------------------------------------------------------


def _fuzz(node, rounds: int, seed: int) -> None:
    n = make_node(node, "a", cluster_secret=SECRET)
    r = n.client()
    r.set("k", "v")
    r.zadd("z", {"a": 1})
    rng = random.Random(seed)
    before = rss_kb(n.pid)
    u = now_uuid()
    valid = [
        set_record(u + 1, b"k", b"w"),
        zadd_record(u + 2, b"z", b"b", 2.0),
        record(3, u + 3, varbytes(b"k") + struct.pack("<q", 0)),
    ]
    for i in range(rounds):
        peer = LinkedPeer(n.port, SECRET)
        raw = False
        for _ in range(rng.randrange(1, 6)):
            kind = rng.randrange(5)
            if kind == 0:  # a random frame type and payload
                peer.send(rng.randrange(256), rng.randbytes(rng.randrange(64)))
            elif kind == 1:  # a known type, random payload
                t = rng.choice(
                    [
                        L.F_BATCH,
                        L.F_SNAP_BEGIN,
                        L.F_SNAP_DATA,
                        L.F_SNAP_END,
                        L.F_ACK,
                        L.F_HEARTBEAT,
                        L.F_FLOOR,
                        L.F_GETACK,
                        L.F_ERROR,
                    ]
                )
                peer.send(t, rng.randbytes(rng.randrange(40)))
            elif kind == 2:  # a batch of valid records with bytes flipped
                recs = bytearray(b"".join(rng.sample(valid, rng.randrange(1, 4))))
                for _ in range(rng.randrange(1, 4)):
                    recs[rng.randrange(len(recs))] ^= 1 << rng.randrange(8)
                peer.batch(bytes(recs))
            elif kind == 3:  # a heartbeat with a random clock and VV
                clock = rng.choice([0, u, 2**64 - 1, rng.getrandbits(64)])
                peer.heartbeat(clock, {rng.getrandbits(63): rng.getrandbits(64)})
            else:  # raw bytes on the tagged stream
                peer.send_raw(rng.randbytes(rng.randrange(1, 100)))
                raw = True
        if not raw:  # (raw bytes may leave a partial frame that would swallow GETACK)
            peer.sync()
        peer.close()
        if i % 10 == 0:
            assert r.ping()
    assert r.ping()
    assert r.set("after", "1") and r.get("after") == b"1"
    wait_for(lambda: len(r.client_list()) == 1, 10, what="every fake link gone")
    assert rss_kb(n.pid) - before < 100 * 1024, (before, rss_kb(n.pid))
    assert n.alive()
    assert "Traceback" not in n.log(), n.log()


def test_link_fuzz_after_the_handshake(node):
    _fuzz(node, 25, 1)


@pytest.mark.slow
def test_link_fuzz_after_the_handshake_long(node):
    _fuzz(node, 400, 2)


# ---- issue 14: the restart floor a peer reports ------------------------------------------


def _floor(vv: dict[int, int]) -> bytes:
    return struct.pack("<I", len(vv)) + b"".join(struct.pack("<QQ", o, u) for o, u in vv.items())


@pytest.mark.parametrize(
    "payload",
    [b"", b"\x01\x00\x00", _floor({1: 2})[:-1], _floor({1: 2}) + b"\x00", b"\x02\x00\x00\x00"],
    ids=["empty", "short-count", "short-entry", "trailing", "count-beyond"],
)
def test_a_malformed_floor_closes_the_link(node, payload):
    n = make_node(node, "a", cluster_secret=SECRET)
    peer = LinkedPeer(n.port, SECRET)
    peer.send(L.F_FLOOR, payload)
    assert not peer.sync()
    wait_for(lambda: "floor of" in n.log(), 10, what="the refusal logged")
    assert "Traceback" not in n.log()
    _writes_still_work(n.client())


def test_a_floor_clock_far_ahead_is_refused_and_a_sane_one_kept(node):
    n = make_node(node, "a", cluster_secret=SECRET)
    r = n.client()
    peer = LinkedPeer(n.port, SECRET)
    peer.send(L.F_FLOOR, _floor({12345: now_uuid(), 777: FAR}))
    assert not peer.sync()
    assert info(r)["clock_drift_refusals"] == 1
    assert info(r)["uuid"] < FAR >> 1
    peer = LinkedPeer(n.port, SECRET)
    peer.send(L.F_FLOOR, _floor({12345: now_uuid()}))
    assert peer.sync()  # taken: the link stays up
    peer.close()
