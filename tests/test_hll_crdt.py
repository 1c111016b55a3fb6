"""Property tests of the HyperLogLog's CRDT rules (docs/crdt.md section 3.1.1 and section 7):
three in-process nodes run PFADD, PFCOUNT, PFMERGE, PFDEBUG TODENSE and the
string writes that replace an HLL (SET, APPEND, DEL, EXPIRE...) over a few
keys, exchange some records and snapshots mid-way, then everything is
delivered in a random interleaving.

- convergence: equal visible and internal state on every node, and
  re-delivery changes nothing;
- the union's count: PFADDs alone, made concurrently anywhere, end with the
  registers and the count of one HLL given every element;
- snapshot merge laws (round trip, commutativity, associativity, agreement
  with the effects), before and after some nodes folded their causally
  stable updates (GC).
"""

from __future__ import annotations

import pytest
import test_crdt_props as props
from constdb._core.keyspace import describe_obj, gc_collections
from hypothesis import given, settings
from hypothesis import strategies as st
from support.core import parse_resp
from support.profiles import SETTINGS, examples
from test_snapshot_merge import SNet, SNode, dump, merged, state

from constdb._core import cmd_hll, t_hll

NODES = [1, 2, 3]
KEYS = [b"a", b"b", b"c"]
ELEMS = [b"e%d" % i for i in range(600)]


class HNode(SNode):
    def __init__(self, node_id: int):
        super().__init__(node_id)
        cmd_hll.register(self.srv)


class HNet(SNet):
    def __init__(self, ids=NODES):
        self.nodes = {i: HNode(i) for i in ids}
        self.pos = {(r, o): 0 for r in ids for o in ids if r != o}


key = st.sampled_from(KEYS)
elems = st.integers(0, 5).flatmap(
    lambda k: st.lists(st.sampled_from(ELEMS), max_size=[0, 1, 2, 8, 40, 250][k])
)

hll_cmds = st.one_of(
    *[props.cmd(b"PFADD", key, elems)] * 4,
    props.cmd(b"PFCOUNT", key),
    props.cmd(b"PFCOUNT", key, key),
    props.cmd(b"PFMERGE", key, key),
    props.cmd(b"PFMERGE", key, key, key),
    props.cmd(b"PFDEBUG", b"TODENSE", key),
    props.cmd(b"SET", key, st.sampled_from([b"x", b"HYLL"])),
    props.cmd(b"APPEND", key, props.val),
    props.cmd(b"DEL", key),
    props.cmd(b"GETDEL", key),
    # TTLs are absolute: a node alone and one in a group run each command a
    # millisecond apart, and a relative TTL would differ between them
    props.cmd(b"EXPIRE", key, b"-1"),
    props.cmd(b"EXPIREAT", key, str(props.FAR_S + 1).encode()),
    props.cmd(b"PERSIST", key),
    props.cmd(b"SADD", key, props.member),
    props.cmd(b"INCR", key),
    props.cmd(b"RENAME", key, key),
)
node = st.sampled_from(NODES)
link = st.sampled_from([(r, o) for r in NODES for o in NODES if r != o])
pair = st.sampled_from([(a, b) for a in NODES for b in NODES if a != b])


def steps_of(cmds, with_sync=True):
    step = st.one_of(
        *[st.tuples(st.just("cmd"), node, cmds)] * 3,
        *[st.tuples(st.just("deliver"), link, st.integers(1, 3))] * 2,
        *([st.tuples(st.just("sync"), link)] if with_sync else []),
    )
    return st.lists(step, min_size=5, max_size=50)


scenario = steps_of(hll_cmds)
sparse_max = st.sampled_from([3000, 3000, 40, 0])


def build(steps, net=None):
    net = net or HNet()
    for s in steps:
        if s[0] == "cmd":
            net[s[1]].run(*s[2])
        elif s[0] == "deliver":
            (r, o), n = s[1], s[2]
            net.deliver(r, o, n)
        else:
            r, o = s[1]
            net.sync(r, o)
    return net


@pytest.fixture(autouse=True)
def _default_sparse_max():
    yield
    t_hll.set_sparse_max_bytes(3000)


@settings(max_examples=examples(300), **SETTINGS)
@given(scenario, props.final_order, sparse_max)
def test_convergence(steps, order, limit):
    t_hll.set_sparse_max_bytes(limit)
    net = build(steps)
    net.deliver_all([(r, o, n) for (r, o), n in order])
    states = {i: state(n) for i, n in net.nodes.items()}
    for i in NODES[1:]:
        assert states[i] == states[1], i
    # re-delivering every record changes nothing
    for r in NODES:
        for o in NODES:
            if r != o:
                net[r].apply(o, b"".join(net[o].groups()))
        assert state(net[r]) == states[r]


@settings(max_examples=examples(200), **SETTINGS)
@given(
    st.lists(st.tuples(node, key, elems), min_size=1, max_size=25),
    st.lists(st.tuples(link, st.integers(1, 3)), max_size=20),
    props.final_order,
    sparse_max,
)
def test_concurrent_pfadds_converge_to_the_union(adds, mid, order, limit):
    """PFADDs on any nodes, delivered in any order: every node ends with the
    registers of one HLL given every element, hence the union's count."""
    t_hll.set_sparse_max_bytes(limit)
    net = HNet()
    for i, (n, k, es) in enumerate(adds):
        net[n].run(b"PFADD", k, *es)
        if i < len(mid):
            (r, o), c = mid[i]
            net.deliver(r, o, c)
    net.deliver_all([(r, o, c) for (r, o), c in order])
    one = HNode(9)
    for k in KEYS:
        every = [e for _n, kk, es in adds if kk == k for e in es]
        want_count = parse_resp(one.run(b"PFADD", b"u" + k, *every)) and parse_resp(
            one.run(b"PFCOUNT", b"u" + k)
        )
        if not any(kk == k for _n, kk, _es in adds):
            continue
        want_regs = parse_resp(one.run(b"PFDEBUG", b"GETREG", b"u" + k))
        for n in net.nodes.values():
            assert parse_resp(n.run(b"PFCOUNT", k)) == want_count
            assert parse_resp(n.run(b"PFDEBUG", b"GETREG", k)) == want_regs
        assert len({n.run(b"GET", k) for n in net.nodes.values()}) == 1


@settings(max_examples=examples(200), **SETTINGS)
@given(scenario, sparse_max)
def test_round_trip_and_idempotence(steps, limit):
    t_hll.set_sparse_max_bytes(limit)
    net = build(steps)
    for n in net.nodes.values():
        copy = fresh_h(n.id, dump(n))
        assert state(copy) == state(n)
        before = state(n)
        merged(n, dump(n))
        assert state(n) == before


def fresh_h(node_id, *snaps):
    n = HNode(node_id)
    for s in snaps:
        merged(n, s)
    return n


@settings(max_examples=examples(200), **SETTINGS)
@given(scenario, pair)
def test_commutativity_and_associativity(steps, ab):
    net = build(steps)
    a, b = net[ab[0]], net[ab[1]]
    c = net[6 - ab[0] - ab[1]]
    sa, sb, sc = dump(a), dump(b), dump(c)
    assert state(fresh_h(a.id, sa, sb)) == state(fresh_h(b.id, sb, sa))
    left = fresh_h(a.id, sa, sb, sc)
    right = fresh_h(a.id, sa, dump(fresh_h(b.id, sb, sc)))
    assert state(left) == state(right)


@settings(max_examples=examples(200), **SETTINGS)
@given(scenario, pair)
def test_merge_agrees_with_effects(steps, ab):
    net = build(steps)
    i, j = ab
    a = net[i]
    by_effects = fresh_h(i, dump(a))
    for o in NODES:
        have, want = net.applied(i, o), net.applied(j, o)
        if o != i and want > have:
            by_effects.apply(o, b"".join(net[o].groups()[have:want]))
    assert state(merged(a, dump(net[j]))) == state(by_effects)


@settings(max_examples=examples(200), **SETTINGS)
@given(scenario, scenario, st.lists(st.booleans(), min_size=3, max_size=3), pair, sparse_max)
def test_gc_folds_without_changing_what_is_seen(before, after, gcs, ab, limit):
    """Folding the causally stable updates into the register changes no
    value; the nodes still converge, and merges still agree with the effects
    on the visible data."""
    t_hll.set_sparse_max_bytes(limit)
    net = build(before)
    net.deliver_all()
    stable = min(n.ks.clock.last for n in net.nodes.values())
    for n, gc in zip(net.nodes.values(), gcs):
        if gc:
            seen = n.visible()
            gc_collections(n.ks, stable)
            assert n.visible() == seen
            n.check()
    build(after, net)
    i, j = ab
    sa, sb = dump(net[i]), dump(net[j])
    by_effects = fresh_h(i, sa)
    for o in NODES:
        have, want = net.applied(i, o), net.applied(j, o)
        if o != i and want > have:
            by_effects.apply(o, b"".join(net[o].groups()[have:want]))
    assert merged(fresh_h(i, sa), sb).visible() == by_effects.visible()
    assert merged(fresh_h(i, sa), sb).visible() == merged(fresh_h(j, sb), sa).visible()
    net.deliver_all()
    seen = {i: n.visible() for i, n in net.nodes.items()}
    assert seen[1] == seen[2] == seen[3]


@settings(max_examples=examples(200), **SETTINGS)
@given(st.lists(hll_cmds, min_size=1, max_size=40), sparse_max)
def test_a_node_alone_folds_as_it_goes(cmds, limit):
    """A node alone (Keyspace.solo) folds each local update as it makes it:
    the same replies, values and records as a node in a group, nothing
    pending, and the same state as that node once GC folded its updates."""
    t_hll.set_sparse_max_bytes(limit)
    alone, grouped = HNode(1), HNode(1)
    alone.ks.solo = True
    for c in cmds:
        assert alone.run(*c) == grouped.run(*c), c
        assert alone.visible() == grouped.visible(), c
    assert alone.records() == grouped.records()
    objs = [o for o in alone.ks.d.values() if type(o) is t_hll.HllObj]
    objs += [o for o in alone.ks.dead.values() if type(o) is t_hll.HllObj]
    for o in objs:
        d = describe_obj(o)
        assert d[d.index(b"pending") + 1] == [], d
    # (GC on both: a cleared HLL goes once its register write is stable)
    for n in (alone, grouped):
        gc_collections(n.ks, n.ks.clock.last)
    assert state(alone) == state(grouped)


def test_a_newer_set_drops_older_concurrent_pfadds():
    """SET and PFADD on one key on two nodes at once: the newer write's
    outcome on both, in both arrival orders (the SET here is the newer)."""
    net = HNet()
    net[1].run(b"PFADD", b"k", b"a", b"b")
    net.deliver_all()
    net[2].run(b"PFADD", b"k", b"c")  # concurrent with the SET below
    net[1].ks.clock.observe(net[2].ks.clock.last + 10)
    net[1].run(b"SET", b"k", b"plain")
    net.deliver_all()
    for n in net.nodes.values():
        assert n.run(b"GET", b"k") == b"$5\r\nplain\r\n"
    net[3].run(b"PFADD", b"k", b"x")
    assert net[3].run(b"PFADD", b"k", b"x").startswith(b"-WRONGTYPE Key is not a valid")


def test_a_newer_pfadd_survives_an_older_concurrent_del():
    net = HNet()
    net[1].run(b"PFADD", b"k", b"a", b"b")
    net.deliver_all()
    net[1].run(b"DEL", b"k")
    net[2].ks.clock.observe(net[1].ks.clock.last + 10)
    net[2].run(b"PFADD", b"k", b"c")  # newer, concurrent with the DEL
    net.deliver_all()
    one = HNode(9)
    one.run(b"PFADD", b"k", b"c")
    for n in net.nodes.values():
        assert n.run(b"PFCOUNT", b"k") == b":1\r\n"
        assert n.run(b"PFDEBUG", b"GETREG", b"k") == one.run(b"PFDEBUG", b"GETREG", b"k")
