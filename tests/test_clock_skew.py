"""Clocks that are off (issue 14): each link measures the peer's clock offset
(docs/replication.md section 8), INFO and NODES show it, the log warns, a
clock beyond max_clock_drift refuses the link, and a TTL another node wrote
expires here only once that node's clock has surely passed its deadline
(docs/crdt.md section 6). The nodes' clocks are skewed with the test-only
CONSTDB_TEST_CLOCK_OFFSET_MS (docs/internals.md)."""

from __future__ import annotations

import re
import time

import pytest
from constdb._core.keyspace import ClockDriftError
from hypothesis import given
from hypothesis import strategies as st
from support.core import T_FAR, Node, parse_resp

from constdb.replication import clocksync
from tests.support.fakepeer import record, varbytes, varint
from tests.support.nodes import info_peer, make_node, meet, node_id, wait_for, wait_linked

MIN = 60_000


# ---- the rule, in process ------------------------------------------------------------------


def _pair(adj: int) -> tuple[Node, Node]:
    """Node 1 writes k with PXAT T_FAR; node 2 has it, and judges origin 1's
    deadlines with adjustment adj."""
    a, b = Node(1), Node(2)
    assert a.run("SET", "k", "v", "PXAT", str(T_FAR)) == b"+OK\r\n"
    for g in a.groups():
        b.apply(1, g)
    b.ks.set_clock_skew({1: adj}, 60_000)
    return a, b


def test_own_deadlines_expire_exactly_as_redis_whatever_the_table():
    a, _b = _pair(0)
    a.ks.set_clock_skew({1: 5000, 2: 5000}, 60_000)
    a.expire_at(T_FAR - 1, [b"k"])
    assert a.ks.value_of(b"k") == b"v"
    a.expire_at(T_FAR, [b"k"])
    assert a.ks.value_of(b"k") is None


def test_another_origins_deadline_is_reached_at_its_local_translation():
    # origin 1's clock runs 5 s ahead of node 2's, measured within 10 ms:
    # its deadline is reached here at T_FAR - 5000 + 10, not before
    _a, b = _pair(-5000 + 10)
    assert parse_resp(b.run("PEXPIRETIME", "k")) == T_FAR - 4990
    b.expire_at(T_FAR - 4991, [b"k"])
    assert b.ks.value_of(b"k") == b"v"
    assert b.groups() == []  # nothing deleted, nothing shipped
    b.expire_at(T_FAR - 4990, [b"k"])
    assert b.ks.value_of(b"k") is None
    assert len(b.groups()) == 1  # the DEL


def test_an_unmeasured_origin_waits_for_max_clock_drift():
    _a, b = _pair(0)
    b.ks.set_clock_skew({}, 60_000)
    assert parse_resp(b.run("PEXPIRETIME", "k")) == T_FAR + 60_000
    b.expire_at(T_FAR + 59_999, [b"k"])
    assert b.ks.value_of(b"k") == b"v"
    b.expire_at(T_FAR + 60_000, [b"k"])
    assert b.ks.value_of(b"k") is None


def test_comparisons_and_copies_use_the_local_deadline():
    # origin 1 runs 10 s behind: its deadline is reached here 10 s later
    _a, b = _pair(10_000 + 5)
    local = T_FAR + 10_005
    assert parse_resp(b.run("PEXPIREAT", "k", str(local), "GT")) == 0
    assert parse_resp(b.run("PEXPIREAT", "k", str(local - 1), "LT")) == 1
    assert parse_resp(b.run("PEXPIRETIME", "k")) == local - 1  # now b's own deadline
    _a, b = _pair(10_000 + 5)
    assert b.run("RENAME", "k", "k2") == b"+OK\r\n"
    # the copy's register is node 2's write: its deadline in node 2's clock
    assert parse_resp(b.run("PEXPIRETIME", "k2")) == local
    b.ks.set_clock_skew({}, 0)
    assert parse_resp(b.run("PEXPIRETIME", "k2")) == local


@given(
    true_off=st.integers(-20 * MIN * 1000, 20 * MIN * 1000),
    d1=st.integers(0, 200_000),
    d2=st.integers(0, 200_000),
    held=st.integers(0, 2_000_000),
    t0=st.integers(1_700_000_000_000_000, 1_800_000_000_000_000),
    ttl=st.integers(1, 10 * MIN),
)
def test_the_measured_bound_never_lets_a_node_expire_before_the_writer(
    true_off, d1, d2, held, t0, ttl
):
    # one NTP exchange between clocks true_off us apart with one-way delays
    # d1 and d2 and the peer holding the frame `held` us
    pc = clocksync.PeerClock()
    mine = pc.frame(now=t0)
    peer = clocksync.PeerClock()
    t1 = t0 + d1 + true_off
    peer.got(mine, t3=t1)
    reply = peer.frame(now=t1 + held)
    sample, answer = pc.got(reply, t3=t0 + d1 + held + d2, mono=0.0)
    assert sample is not None and not answer
    off, bound = sample
    assert off - bound <= true_off <= off + bound
    assert bound <= (d1 + d2 + 1) // 2 + 1000
    # the writer (the peer) sets a deadline in its clock; this node deletes
    # at the first whole ms where its clock reaches at + adjust: the writer's
    # clock has passed the deadline by then
    writer_now_ms = (t0 + true_off) // 1000
    at = writer_now_ms + ttl
    local_ms = at + clocksync.deadline_adjust_ms(off, bound)
    assert local_ms * 1000 + true_off >= at * 1000


def test_a_samples_bound_grows_while_it_is_not_renewed():
    pc = clocksync.PeerClock()
    pc.samples.append((5000, 2000, 100.0))
    pc.samples.append((9000, 5000, 110.0))
    assert pc.estimate(100.0) == (5000, 2000)  # the lowest bound
    # 60 s later the older one's bound grew by 10 s more of drift allowance
    assert pc.estimate(160.0) == (9000, 5000 + 50 * clocksync.DRIFT_US_PER_S)


def test_a_record_naming_a_clock_after_its_own_uuid_is_refused():
    n = Node(2)
    u = 1_000 << 22
    # SREM k m, removing the dot (7, u + 1): a dot its writer cannot have seen
    srem = record(
        5,
        u,
        varbytes(b"k")
        + varbytes(b"m")
        + varint(1)
        + (7).to_bytes(8, "little")
        + (u + 1).to_bytes(8, "little"),
    )
    with pytest.raises(ClockDriftError, match="after its own"):
        n.ks.apply_records(7, srem, 2**64 - 1, True)
    ok = record(
        5,
        u,
        varbytes(b"k")
        + varbytes(b"m")
        + varint(1)
        + (7).to_bytes(8, "little")
        + (u - 1).to_bytes(8, "little"),
    )
    assert n.ks.apply_records(7, ok, 2**64 - 1, True) == 1


# ---- real nodes ---------------------------------------------------------------------------------


def skewed(node, name: str, offset_ms: int, **cfg):
    n = make_node(node, name, start=False, **cfg)
    n.env = {"CONSTDB_TEST_CLOCK_OFFSET_MS": str(offset_ms)}
    return n.start()


def exists(n, key: str) -> tuple[bool, float]:
    """Whether n has key, and the monotonic time after its reply."""
    e = n.client().exists(key) == 1
    return e, time.monotonic()


def test_skewed_clocks_keep_each_others_ttl_keys_until_their_deadlines(node):
    # b runs 5 minutes fast; the group allows 10
    a = skewed(node, "a", 0, max_clock_drift=10 * MIN)
    b = skewed(node, "b", 5 * MIN, max_clock_drift=10 * MIN)
    t = b.client().time()
    assert abs(t[0] + t[1] / 1e6 - time.time() - 300) < 5  # TIME shows b's clock
    meet(a, b)
    wait_linked([a, b])
    ida, idb = node_id(a), node_id(b)

    # each side sees the other's offset, with the right sign
    def offsets():
        pa, pb = info_peer(a, idb), info_peer(b, ida)
        if int(pa["clock_offset_bound_ms"]) < 0 or int(pb["clock_offset_bound_ms"]) < 0:
            return None
        return (
            int(pa["clock_offset_ms"]),
            int(pa["clock_offset_bound_ms"]),
            int(pb["clock_offset_ms"]),
        )

    off_ab, bound, off_ba = wait_for(offsets, 10, what="offsets measured")
    assert abs(off_ab - 5 * MIN) < 1000 and abs(off_ba + 5 * MIN) < 1000
    assert 0 < bound < 1000
    row = a.client().info("replication")["peer0"]
    assert abs(int(row["clock_offset_ms"]) - 5 * MIN) < 1000 and "clock_offset_bound_ms" in row
    # both logs warn (clock_drift_warn is 1000 ms by default), once
    for n, way in ((a, "ahead of"), (b, "behind")):
        wait_for(lambda n=n: "clock of" in n.log(), 10, what="the clock warning")
        lines = [ln for ln in n.log().splitlines() if "clock of" in ln]
        assert len(lines) == 1 and way in lines[0] and "NTP" in lines[0], lines

    # a TTL written on either node lives 5 s by its writer's clock on both
    _ttl_lives_on_both(a, b, "slow", bound)
    _ttl_lives_on_both(b, a, "fast", bound)


def _ttl_lives_on_both(writer, other, key: str, bound: int) -> None:
    t_w = time.monotonic()
    assert writer.client().set(key, "x", ex=5)
    wait_for(lambda: other.client().exists(key) == 1, 5, what=f"{key} replicated")
    pttl = other.client().pttl(key)
    assert 3000 < pttl <= 5000 + bound + 1000, pttl
    while True:  # both have it until 4.8 s after the write (replies read before then)
        ew, _ = exists(writer, key)
        eo, to = exists(other, key)
        if to >= t_w + 4.8:
            break
        assert ew and eo, (key, to - t_w)
        time.sleep(0.05)
    wait_for(lambda: other.client().exists(key) == 0, 10, what=f"{key} expired")
    wait_for(lambda: writer.client().exists(key) == 0, 10, what=f"{key} expired")


def test_a_clock_beyond_max_clock_drift_refuses_the_link(node):
    # b runs 2 minutes fast; the default max_clock_drift is 1 minute
    a = skewed(node, "a", 0)
    b = skewed(node, "b", 2 * MIN)
    try:
        meet(a, b)
    except Exception:
        pass  # the link may be refused before MEET answers

    def refusals() -> int:
        return sum(n.client().info("replication")["clock_drift_refusals"] for n in (a, b))

    def drift_lines() -> list[str]:
        # (either check may refuse first: the TIME frames' estimate, "beyond
        # max_clock_drift", or a clock the handshake carries, "... ms ahead of
        # this node's wall clock (max_clock_drift ...)")
        return [
            ln
            for n in (a, b)
            for ln in n.log().splitlines()
            if "CLOCK" in ln and "max_clock_drift" in ln
        ]

    wait_for(lambda: refusals() >= 1 and drift_lines(), 10, what="the link refused and logged")
    lines = drift_lines()
    assert any("ahead of" in ln or "behind" in ln for ln in lines)
    # refused links back off for 30 s: the two stay unlinked
    ida = node_id(a)
    assert (
        info_peer(b, ida)["state"] != "connected"
        or info_peer(a, node_id(b))["state"] != "connected"
    )


def test_a_restart_with_a_fresh_origin_keeps_its_own_deadlines_exact(node):
    # after a crash the node writes with a fresh origin; the deadlines its
    # earlier origin wrote are still in its own clock (not max_clock_drift later)
    a = make_node(node, "a")
    r = a.client()
    assert r.set("k", "v", px=30_000)
    assert r.save()
    a.kill()
    a.start()
    r = a.client()
    origins = re.findall(r"started: node_id=\d+ origin=(\d+)", a.log())
    assert len(origins) == 2 and origins[0] != origins[1], origins
    assert 20_000 < r.pttl("k") <= 30_000
    assert r.pexpiretime("k") <= int(time.time() * 1000) + 30_000
