"""Bits across nodes (docs/crdt.md section 3.1, "Bits"): SETBIT and BITFIELD
ship per-bit LWW overrides on top of a string's register.

Property tests in the style of test_crdt_props and test_snapshot_merge, with
the bit commands mixed into the string commands (SET, APPEND, SETRANGE, INCR,
DEL, GETDEL, EXPIRE, EXPIREAT, BITOP) on three in-process nodes: convergence of the
effects in any interleaving, the snapshot merge laws (round trip,
idempotence, commutativity, associativity, agreement with the effects),
also after some nodes folded their stable overrides (GC); a node alone
(which folds every bit write at once) answers exactly as a node in a group;
and small named cases: concurrent SETBITs of different bits both survive,
SETBIT against SET, DEL, APPEND and INCR, a peer's hostile OP_BITS records
refused.
"""

from __future__ import annotations

import random
import struct

import lz4.frame
import pytest
import test_crdt_props as props
import test_snapshot_merge as sm
from constdb._core.bitval import bit_overrides
from constdb._core.keyspace import describe_obj, gc_collections
from hypothesis import given, settings
from hypothesis import strategies as st
from support.core import Net
from support.profiles import SETTINGS, examples

from constdb._core import cmd_bitmaps, snapshot

NODES = [1, 2, 3]
key = props.key
bit = st.integers(0, 23).map(lambda i: str(i).encode())
onoff = st.sampled_from([b"0", b"1"])
ftype = st.sampled_from([b"u1", b"u4", b"i8", b"u12"])
fval = st.sampled_from([b"0", b"1", b"5", b"-3", b"200"])

bit_commands = st.one_of(
    props.cmd(b"SETBIT", key, bit, onoff),
    props.cmd(b"SETBIT", key, bit, onoff),
    props.cmd(b"SETBIT", key, bit, onoff),
    props.cmd(b"BITFIELD", key, b"SET", ftype, bit, fval),
    props.cmd(b"BITFIELD", key, b"INCRBY", ftype, bit, fval),
    props.cmd(b"BITFIELD", key, b"OVERFLOW", b"FAIL", b"INCRBY", ftype, bit, fval),
    props.cmd(b"BITOP", st.sampled_from([b"AND", b"OR", b"XOR"]), key, key, key),
    props.cmd(b"SET", key, props.val),
    props.cmd(b"APPEND", key, props.val),
    props.cmd(b"SETRANGE", key, st.sampled_from([b"0", b"2"]), props.val),
    props.cmd(b"INCR", key),
    props.cmd(b"DEL", key),
    props.cmd(b"GETDEL", key),
    # TTLs are absolute: a node alone and one in a group run each command a
    # millisecond apart, and a relative TTL would differ between them
    props.cmd(b"EXPIRE", key, b"-1"),
    props.cmd(b"EXPIREAT", key, str(props.FAR_S + 1).encode()),
    props.cmd(b"PERSIST", key),
    props.cmd(b"SADD", key, props.member),
)


class BNode(sm.SNode):
    def __init__(self, node_id: int):
        super().__init__(node_id)
        cmd_bitmaps.register(self.srv)


class BNet(sm.SNet):
    def __init__(self, ids=NODES):
        self.nodes = {i: BNode(i) for i in ids}
        self.pos = {(r, o): 0 for r in ids for o in ids if r != o}


class PNet(Net):
    """test_crdt_props's network of nodes, with the bit commands."""

    def __init__(self, ids=NODES):
        self.nodes = {i: BNode(i) for i in ids}
        self.pos = {(r, o): 0 for r in ids for o in ids if r != o}


step = st.one_of(
    st.tuples(st.just("cmd"), props.node, bit_commands),
    st.tuples(st.just("cmd"), props.node, bit_commands),
    st.tuples(st.just("cmd"), props.node, bit_commands),
    st.tuples(st.just("deliver"), props.link, st.integers(1, 3)),
    st.tuples(st.just("redeliver"), props.link, st.integers(0, 5)),
    st.tuples(st.just("skew"), props.node, st.sampled_from([1, 3, 50])),
)
scenario = sm.steps_of(bit_commands)


# ----------------------------------------------------------- effects ----


@settings(max_examples=examples(400), **SETTINGS)
@given(st.lists(step, min_size=4, max_size=60), props.final_order)
def test_convergence(steps, order):
    """Every interleaving of the same streams ends in the same state, visible
    and internal (bit overrides included)."""
    net = PNet()
    props.run_steps(net, steps)
    props.final_delivery(net, order)
    props.assert_converged(net)


@settings(max_examples=examples(200), **SETTINGS)
@given(st.lists(step, min_size=4, max_size=40), props.final_order, st.data())
def test_idempotence(steps, order, data):
    """Re-delivering a prefix, or everything, changes nothing."""
    net = PNet()
    props.run_steps(net, steps)
    props.final_delivery(net, order)
    before = net.states()
    for r in NODES:
        for o in NODES:
            if r != o:
                groups = net[o].groups()
                k = data.draw(st.integers(0, len(groups)))
                assert net[r].apply(o, b"".join(groups[:k])) == 0
                assert net[r].apply(o, b"".join(groups)) == 0
    assert net.states() == before


# ------------------------------------------------------------ merges ----


@settings(max_examples=examples(200), **SETTINGS)
@given(scenario)
def test_round_trip(steps):
    net = sm.build(steps, BNet())
    for n in net.nodes.values():
        copy = BNode(n.id)
        sm.merged(copy, sm.dump(n))
        assert sm.state(copy) == sm.state(n)


@settings(max_examples=examples(200), **SETTINGS)
@given(scenario, sm.pair)
def test_merge_idempotent_and_commutative(steps, ab):
    net = sm.build(steps, BNet())
    a, b = net[ab[0]], net[ab[1]]
    before = sm.state(a)
    sm.merged(a, sm.dump(a))
    assert sm.state(a) == before
    sa, sb = sm.dump(a), sm.dump(b)
    x = sm.merged(BNode(a.id), sa)
    y = sm.merged(BNode(b.id), sb)
    once = sm.state(sm.merged(x, sb))
    assert sm.state(sm.merged(x, sb)) == once
    assert sm.state(sm.merged(y, sa))[0] == once[0]
    assert sm.state(sm.merged(a, sb)) == sm.state(sm.merged(b, sa))


@settings(max_examples=examples(200), **SETTINGS)
@given(scenario)
def test_merge_associative(steps):
    net = sm.build(steps, BNet())
    sa, sb, sc = sm.dump(net[1]), sm.dump(net[2]), sm.dump(net[3])
    left = sm.merged(sm.merged(net[1], sb), sc)
    bc = sm.merged(net[2], sc)
    right = sm.merged(sm.merged(BNode(1), sa), sm.dump(bc))
    assert sm.state(left) == sm.state(right)


@settings(max_examples=examples(300), **SETTINGS)
@given(scenario, sm.pair, st.permutations(NODES))
def test_merge_agrees_with_effects(steps, ab, origins):
    """Merging B's snapshot into A gives the state that delivering to A what
    B had applied and A had not gives."""
    net = sm.build(steps, BNet())
    i, j = ab
    a = net[i]
    sa, sb = sm.dump(a), sm.dump(net[j])
    by_effects = sm.merged(BNode(i), sa)
    for o in origins:
        have, want = net.applied(i, o), net.applied(j, o)
        if o != i and want > have:
            by_effects.apply(o, b"".join(net[o].groups()[have:want]))
    assert sm.state(sm.merged(a, sb)) == sm.state(by_effects)


@settings(max_examples=examples(300), **SETTINGS)
@given(scenario, scenario, st.lists(st.booleans(), min_size=3, max_size=3), sm.pair)
def test_merge_laws_hold_after_fold(before, after, gcs, ab):
    """Some nodes fold their causally stable overrides into the register
    (GC), then go on: the merge laws hold, the merge agrees with the effects
    on the visible data, and every node converges."""
    net = sm.build(before, BNet())
    net.deliver_all()
    stable = min(n.ks.clock.last for n in net.nodes.values())
    for n, gc in zip(net.nodes.values(), gcs):
        if gc:
            n.ks.gc(stable)
            gc_collections(n.ks, stable)
            n.check()
    sm.build(after, net)
    i, j = ab
    k = 6 - i - j
    sa, sb, sc = sm.dump(net[i]), sm.dump(net[j]), sm.dump(net[k])
    ab_ = sm.merged(sm.merged(BNode(i), sa), sb)
    assert sm.state(ab_)[0] == sm.state(sm.merged(sm.merged(BNode(j), sb), sa))[0]
    assert sm.state(sm.merged(ab_, sb)) == sm.state(ab_)
    bc = sm.merged(sm.merged(BNode(j), sb), sc)
    right = sm.merged(sm.merged(BNode(i), sa), sm.dump(bc))
    assert sm.state(sm.merged(ab_, sc))[0] == sm.state(right)[0]
    by_effects = sm.merged(BNode(i), sa)
    for o in NODES:
        have, want = net.applied(i, o), net.applied(j, o)
        if o != i and want > have:
            by_effects.apply(o, b"".join(net[o].groups()[have:want]))
    assert sm.merged(net[i], sb).visible() == by_effects.visible()
    net.deliver_all()
    vis = [net[x].visible() for x in NODES]
    assert vis[0] == vis[1] == vis[2]


# ---------------------------------------------- a node alone folds at once ----


@settings(max_examples=examples(200), **SETTINGS)
@given(st.lists(bit_commands, min_size=1, max_size=40))
def test_alone_answers_as_in_a_group(cmds):
    """A node alone folds each bit write into the register as it makes it; a
    node in a group keeps overrides: both answer every command alike and
    show the same values, and the group node, folded, holds the same bytes."""
    alone, grouped = BNode(1), BNode(1)
    alone.ks.solo = True
    for c in cmds:
        assert alone.run(*c) == grouped.run(*c), c
    assert alone.visible() == grouped.visible()
    for k in alone.ks.d:
        assert bit_overrides(alone.ks.d[k]) == {}
    stable = grouped.ks.clock.last
    gc_collections(grouped.ks, stable)
    for k, o in grouped.ks.d.items():
        assert bit_overrides(o) == {}
        assert describe_obj(o) == describe_obj(alone.ks.d[k]), k


# ---------------------------------------------------------- named cases ----


def pair():
    net = PNet([1, 2])
    return net, net[1], net[2]


def later(n) -> None:
    """n's next write is newer than anything written concurrently elsewhere."""
    n.ks.clock.observe(n.ks.clock.last + 10)


def converged(net) -> None:
    """Every node of net in the same state, visible and internal."""
    states = list(net.states().values())
    assert all(s == states[0] for s in states[1:])


def test_concurrent_setbits_of_different_bits_both_survive():
    net, a, b = pair()
    a.run(b"SET", b"k", b"\x00\x00")
    net.deliver_all()
    a.run(b"SETBIT", b"k", b"1", b"1")
    b.run(b"SETBIT", b"k", b"14", b"1")
    b.run(b"SETBIT", b"k", b"30", b"1")
    net.deliver_all()
    for n in (a, b):
        assert n.run(b"GET", b"k") == b"$4\r\n\x40\x02\x00\x02\r\n"
        assert n.run(b"BITCOUNT", b"k") == b":3\r\n"
    converged(net)


def test_concurrent_setbits_on_a_missing_key_both_survive():
    net, a, b = pair()
    a.run(b"SETBIT", b"k", b"0", b"1")
    b.run(b"SETBIT", b"k", b"7", b"1")
    net.deliver_all()
    assert a.run(b"GET", b"k") == b.run(b"GET", b"k") == b"$1\r\n\x81\r\n"


def test_concurrent_setbits_of_one_bit_the_later_wins():
    net, a, b = pair()
    a.run(b"SETBIT", b"k", b"3", b"1")
    b.run(b"SETBIT", b"k", b"3", b"0")
    b.run(b"SETBIT", b"k", b"5", b"1")
    net.deliver_all()
    # the same uuid on both: node 2's ts is the larger, its 0 wins
    assert a.run(b"GET", b"k") == b.run(b"GET", b"k") == b"$1\r\n\x04\r\n"
    converged(net)


def test_setbit_concurrent_with_set():
    """A SETBIT newer than a concurrent SET stays on top of its value; an
    older one is dropped with the value it was made on."""
    net, a, b = pair()
    a.run(b"SET", b"k", b"\x00")
    net.deliver_all()
    b.run(b"SET", b"k", b"\xf0")  # older
    later(a)
    a.run(b"SETBIT", b"k", b"7", b"1")  # newer
    net.deliver_all()
    assert a.run(b"GET", b"k") == b.run(b"GET", b"k") == b"$1\r\n\xf1\r\n"
    a.run(b"SETBIT", b"k", b"0", b"0")  # older
    later(b)
    later(b)
    b.run(b"SET", b"k", b"AB")  # newer
    net.deliver_all()
    assert a.run(b"GET", b"k") == b.run(b"GET", b"k") == b"$2\r\nAB\r\n"
    converged(net)


def test_setbit_concurrent_with_del_and_append():
    net, a, b = pair()
    a.run(b"SET", b"k", b"ab")
    net.deliver_all()
    a.run(b"DEL", b"k")  # older
    later(b)
    b.run(b"SETBIT", b"k", b"15", b"1")  # newer: the key comes back as zeros + the bit
    net.deliver_all()
    assert a.run(b"GET", b"k") == b.run(b"GET", b"k") == b"$2\r\n\x00\x01\r\n"
    b.run(b"SETBIT", b"k", b"0", b"1")  # older than the APPEND: dropped
    later(a)
    later(a)
    a.run(b"APPEND", b"k", b"Z")
    net.deliver_all()
    assert a.run(b"GET", b"k") == b.run(b"GET", b"k") == b"$3\r\n\x00\x01Z\r\n"
    converged(net)


def test_setbit_on_a_counter_is_a_register_write():
    """A string INCR touched shows the counter's value: SETBIT there writes
    the whole new value (the counter's bits are not overrides of it)."""
    net, a, b = pair()
    a.run(b"INCRBY", b"k", b"48")
    net.deliver_all()
    a.run(b"SETBIT", b"k", b"15", b"1")  # "48" -> "49"
    net.deliver_all()
    assert a.run(b"GET", b"k") == b.run(b"GET", b"k") == b"$2\r\n49\r\n"
    b.run(b"INCR", b"k")
    net.deliver_all()
    assert a.run(b"GET", b"k") == b"$2\r\n50\r\n"
    converged(net)


def test_concurrent_bitfield_incrby_of_one_field_do_not_add_up():
    net, a, b = pair()
    a.run(b"BITFIELD", b"k", b"SET", b"u8", b"0", b"10")
    net.deliver_all()
    a.run(b"BITFIELD", b"k", b"INCRBY", b"u8", b"0", b"1")
    later(b)
    b.run(b"BITFIELD", b"k", b"INCRBY", b"u8", b"0", b"5")
    b.run(b"BITFIELD", b"k", b"INCRBY", b"u8", b"8", b"7")
    net.deliver_all()
    # the later write of the field wins as a whole; the other field survives
    assert a.run(b"BITFIELD", b"k", b"GET", b"u8", b"0", b"GET", b"u8", b"8") == (
        b"*2\r\n:15\r\n:7\r\n"
    )
    converged(net)


def test_fold_keeps_the_value_and_drops_the_overrides():
    net, a, b = pair()
    a.run(b"SETBIT", b"k", b"9", b"1")
    b.run(b"SETBIT", b"k", b"2", b"1")
    net.deliver_all()
    assert bit_overrides(a.ks.d[b"k"])
    stable = min(n.ks.clock.last for n in (a, b))
    gc_collections(a.ks, stable)
    assert bit_overrides(a.ks.d[b"k"]) == {}
    assert a.run(b"GET", b"k") == b.run(b"GET", b"k") == b"$2\r\n\x20\x40\r\n"
    # a later concurrent pair still merges bit by bit on both
    a.run(b"SETBIT", b"k", b"0", b"1")
    b.run(b"SETBIT", b"k", b"15", b"1")
    net.deliver_all()
    assert a.run(b"GET", b"k") == b.run(b"GET", b"k") == b"$2\r\n\xa0\x41\r\n"


def _bits_record(key: bytes, runs, uuid: int) -> bytes:
    payload = bytes([len(key)]) + key + bytes([len(runs)])
    for start, nb, val in runs:
        v = start
        enc = b""
        while v >= 0x80:
            enc += bytes([(v & 0x7F) | 0x80])
            v >>= 7
        payload += enc + bytes([v]) + bytes([nb]) + struct.pack("<Q", val)
    body = bytes([64]) + struct.pack("<Q", uuid) + payload
    return struct.pack("<I", len(body)) + body


@pytest.mark.parametrize(
    "runs",
    [
        [],
        [(0, 0, 0)],
        [(0, 65, 0)],
        [(0, 4, 0x10)],
        [(1 << 32, 1, 1)],
        [(1 << 40, 8, 1)],
    ],
    ids=["no-run", "zero-bits", "65-bits", "value-too-wide", "offset-2^32", "offset-2^40"],
)
def test_hostile_bit_records_are_refused(runs):
    """A peer's OP_BITS record is checked before anything is applied: a run
    of 1..64 bits, no value bits above them, starting below 2^32."""
    n = BNode(1)
    rec = _bits_record(b"k", runs, n.ks.clock.last + 10)
    good = _bits_record(b"g", [(3, 1, 1)], n.ks.clock.last + 5)
    with pytest.raises(ValueError):
        n.ks.apply_records(2, good + rec, check=True)
    assert n.ks.d == {}
    assert n.ks.apply_records(2, good, check=True) == 1
    assert n.run(b"GET", b"g") == b"$1\r\n\x10\r\n"


def test_random_bit_workload_converges_and_folds():
    rng = random.Random(7)
    net = PNet()
    for _ in range(300):
        nd = net[rng.choice(NODES)]
        if rng.random() < 0.8:
            nd.run(b"SETBIT", b"k", str(rng.randrange(200)).encode(), rng.choice([b"0", b"1"]))
        else:
            nd.run(b"BITFIELD", b"k", b"INCRBY", b"u7", str(rng.randrange(190)).encode(), b"3")
        if rng.random() < 0.3:
            r, o = rng.sample(NODES, 2)
            net.deliver(r, o, rng.randrange(1, 4))
    net.deliver_all()
    converged(net)
    stable = min(n.ks.clock.last for n in net.nodes.values())
    before = net[1].run(b"GET", b"k")
    for n in net.nodes.values():
        gc_collections(n.ks, stable)
        assert bit_overrides(n.ks.d[b"k"]) == {}
        assert n.run(b"GET", b"k") == before


@pytest.mark.parametrize(
    "change",
    [
        (5, 100),  # the override's bit past the visible bytes
        (6, 2),  # a bit value that is not 0 or 1
        (6, 0),  # a value that disagrees with the visible bytes
        (1, 5),  # a bad "register holds no value" flag
        (4, 0),  # no override at all
    ],
    ids=["bit-past-end", "bad-value", "disagrees", "bad-flag", "no-override"],
)
def test_bad_bit_overrides_in_a_snapshot_are_refused(change):
    """A snapshot's bit overrides are checked before anything is allocated
    or applied (bitval.bits_decode)."""
    n = BNode(1)
    n.run(b"SETBIT", b"k", b"3", b"1")  # a node in a group: one pending override
    raw = lz4.frame.decompress(sm.dump(n))
    # string flag 2, none 1, 1 visible byte 0x10, 1 override: bit 3, value 1
    at = raw.index(b"\x02\x01\x01\x10\x01\x03\x01")
    off, val = change
    pos = at + off
    bad = raw[:pos] + bytes([val]) + raw[pos + 1 :]
    assert bad != raw
    target = BNode(2)
    with pytest.raises(snapshot.SnapshotError):
        snapshot.merge(target.ks, snapshot.parse(lz4.frame.compress(bad, content_checksum=True)))
    assert target.ks.d == {}
    sm.merged(target, sm.dump(n))
    assert target.run(b"GET", b"k") == b"$1\r\n\x10\r\n"
