"""Packed list blocks (docs/crdt.md section 3.5, "Layout and cost"): runs of
one origin's pushes are kept as packed blocks on the node that made them and
on the nodes that apply its records, every operation that needs one of their
elements (a removal, LSET, an insert in a run's middle, a peer's effect
naming it) expands or peels it without changing the visible list or the CRDT
state (DESC), and a snapshot rebuilds the blocks.
"""

from __future__ import annotations

import random

from constdb._core.keyspace import describe_obj
from constdb._core.objects import ListObj
from constdb._core.t_list import check_list, gc_list, list_count_ids, list_expand, list_values
from hypothesis import given, settings
from hypothesis import strategies as st
from support.profiles import SETTINGS, examples
from test_lists_crdt import Net, Node, _objects, assert_converged, norm_desc

from constdb._core import snapshot


def obj(n: Node, k: bytes = b"l"):
    return n.ks.py_find(k, 1)


def packed(o) -> int:
    """Elements held in packed blocks."""
    return sum(b.live for b in o.blocks if b.pbuf is not None)


def peek(n: Node, k: bytes = b"l"):
    """The list object, shown or kept in Keyspace.dead, without find()'s
    side effects."""
    for o in _objects(n.ks, k):
        if isinstance(o, ListObj):
            return o
    return None


def dead(o) -> int:
    """Tombstones held in dead packed blocks."""
    return sum(b.dn for b in o.blocks)


def test_pushes_pack_locally_and_on_peers():
    net = Net((1, 2))
    for i in range(300):
        net[1].run(b"RPUSH", b"l", b"r%d" % i)
    for i in range(300):
        net[1].run(b"LPUSH", b"l", b"l%d" % i)
    net[1].run(b"RPUSH", b"l", *[b"m%d" % i for i in range(300)])
    net.deliver_all()
    want = [b"l%d" % i for i in reversed(range(300))] + [b"r%d" % i for i in range(300)]
    want += [b"m%d" % i for i in range(300)]
    for n in (1, 2):
        o = obj(net[n])
        check_list(o)
        assert list_values(o) == want
        assert packed(o) == 900 and not o.ids, n
        # one block a run: 300 pushes fit one packed block (PACK_MAX 1024)
        assert max(b.live for b in o.blocks) == 300
        assert o.pbytes < 900 * 12
    assert_converged(net)


def test_pops_peel_packed_ends_and_keep_tombstones():
    net = Net((1, 2))
    net[1].run(b"RPUSH", b"l", *[b"v%d" % i for i in range(400)])
    net.deliver_all()
    for i in range(150):
        net[1 + i % 2].run(b"LPOP" if i % 3 else b"RPOP", b"l")
        net.deliver_all()
    for n in (1, 2):
        o = obj(net[n])
        check_list(o)
        assert o.n == 250 and list_count_ids(o) == 400
        # the survivors stay packed; each pop left one tombstone, in a dead
        # packed block (no object per element)
        assert packed(o) == 250 and dead(o) == 150 and not o.ids
    assert_converged(net)


def test_effects_inside_a_run_expand_it_and_converge():
    rnd = random.Random(7)
    net = Net()
    for i in range(3):
        net[1 + i].run(b"RPUSH", b"l", *[b"%d-%d" % (i, j) for j in range(200)])
    net.deliver_all()
    cmds = []
    for _ in range(120):
        idx = str(rnd.randint(-300, 300)).encode()
        cmds.append(
            rnd.choice(
                [
                    [b"LSET", b"l", idx, b"set"],
                    [b"LINSERT", b"l", b"BEFORE", b"1-%d" % rnd.randint(0, 199), b"ins"],
                    [b"LINSERT", b"l", b"AFTER", b"2-%d" % rnd.randint(0, 199), b"ins"],
                    [b"LREM", b"l", b"1", b"0-%d" % rnd.randint(0, 199)],
                    [b"LTRIM", b"l", b"1", b"-2"],
                    [b"RPUSH", b"l", b"t1", b"t2"],
                    [b"LPUSH", b"l", b"h1", b"h2"],
                    [b"LPOP", b"l", b"3"],
                    [b"RPOP", b"l", b"2"],
                    [b"LMOVE", b"l", b"l", b"LEFT", b"RIGHT"],
                ]
            )
        )
    for i, c in enumerate(cmds):
        net[1 + i % 3].run(*c)
        if rnd.random() < 0.3:
            a, b = rnd.sample([1, 2, 3], 2)
            net.deliver(a, b, rnd.randint(1, 3))
        for n in net.nodes.values():
            o = obj(n)
            if o is not None:
                check_list(o)
    net.deliver_all()
    assert_converged(net)
    for n in net.nodes.values():
        check_list(obj(n))


def test_big_packed_blocks_expand_and_split_under_inserts():
    """Packed blocks hold up to PACK_MAX (1024) elements, more than an
    ordinary block (128): expanded by an effect inside, such a block stays
    whole (positions found before stay valid) until inserts split it; the
    list stays the one a plain model gives, on both nodes."""
    rnd = random.Random(11)
    net = Net((1, 2))
    model: list[bytes] = []
    for i in range(1000):
        net[1].run(b"RPUSH", b"l", b"r%d" % i)
        model.append(b"r%d" % i)
    for i in range(1000):
        net[1].run(b"LPUSH", b"l", b"l%d" % i)
        model.insert(0, b"l%d" % i)
    o = obj(net[1])
    assert sorted(b.live for b in o.blocks) == [1000, 1000] and packed(o) == 2000
    net.deliver_all()
    assert sorted(b.live for b in obj(net[2]).blocks) == [1000, 1000]
    saw_big = False
    for step in range(300):
        i = rnd.randrange(len(model))
        kind = rnd.randrange(4)
        if kind == 0:
            net[1].run(b"LSET", b"l", b"%d" % i, b"s%d" % step)
            model[i] = b"s%d" % step
        elif kind == 1:
            net[1].run(b"LINSERT", b"l", b"BEFORE", model[i], b"i%d" % step)
            model.insert(model.index(model[i]), b"i%d" % step)
        elif kind == 2:
            net[1].run(b"LREM", b"l", b"1", model[i])
            model.remove(model[i])
        else:
            net[1].run(b"LTRIM", b"l", b"1", b"-1")
            model.pop(0)
        if step % 25 == 0:
            net.deliver(1, 2, rnd.randint(1, 30))
        o = obj(net[1])
        check_list(o)
        assert list_values(o) == model
        big = [len(b.items) for b in o.blocks if b.pbuf is None and b.live]
        saw_big = saw_big or max(big, default=0) > 128
    # an expanded block above 128 elements was there and was walked
    assert saw_big
    net.deliver_all()
    assert_converged(net)
    assert list_values(obj(net[2])) == model
    check_list(obj(net[2]))


def test_expanding_changes_no_state():
    n = Node(1)
    n.run(b"RPUSH", b"l", *[b"a%d" % i for i in range(50)])
    n.run(b"LPUSH", b"l", *[b"b%d" % i for i in range(50)])
    for i in range(20):
        n.run(b"RPUSH", b"l", b"c%d" % i)
    o = obj(n)
    assert packed(o) == 120
    before = norm_desc(describe_obj(o)), list_values(o)
    list_expand(o)
    check_list(o)
    assert packed(o) == 0 and len(o.ids) == 120
    assert (norm_desc(describe_obj(o)), list_values(o)) == before


def test_snapshot_round_trip_repacks():
    n = Node(1)
    n.run(b"RPUSH", b"l", *[b"a%d" % i for i in range(300)])
    for i in range(100):
        n.run(b"LPUSH", b"l", b"b%d" % i)
    n.run(b"LSET", b"l", b"5", b"changed")
    n.run(b"LPOP", b"l", b"2")
    o = obj(n)
    desc = norm_desc(describe_obj(o))
    m = Node(1)
    snapshot.merge(m.ks, snapshot.parse(snapshot.dump(n.ks)))
    o2 = obj(m)
    check_list(o2)
    assert norm_desc(describe_obj(o2)) == desc and list_values(o2) == list_values(o)
    # everything but the LSET one's block and the tombstones is packed again
    assert packed(o2) >= 398 - 128
    # and pushes still extend the runs after it
    m.run(b"RPUSH", b"l", b"tail")
    m.run(b"LPUSH", b"l", b"head")
    check_list(o2)
    assert list_values(o2)[0] == b"head" and list_values(o2)[-1] == b"tail"


def test_snapshot_round_trip_repacks_tombstones():
    """A snapshot of a deleted list (pops, a middle removal, DEL) loads its
    tombstones into dead packed blocks (16 bytes each, no object per
    element), the state (DESC) the same; GC then drops them in place."""
    n = Node(1)
    n.run(b"RPUSH", b"l", *[b"a%d" % i for i in range(600)])
    n.run(b"LPUSH", b"l", *[b"b%d" % i for i in range(400)])
    n.run(b"RPOP", b"l", b"50")
    n.run(b"LREM", b"l", b"0", b"a7")  # a middle removal
    n.run(b"DEL", b"l")
    o = peek(n)
    # (LREM expanded the RPUSH run: its tombstones are objects here)
    assert dead(o) == 450 and len(o.ids) == 550
    desc = norm_desc(describe_obj(o))
    m = Node(1)
    snapshot.merge(m.ks, snapshot.parse(snapshot.dump(n.ks)))
    o2 = peek(m)
    check_list(o2)
    assert norm_desc(describe_obj(o2)) == desc
    assert dead(o2) == 1000 and not o2.ids  # (the LREM'd one too: it is in the chain)
    assert sum(1 for b in o2.blocks if b.dn) <= 4
    d, empty = gc_list(o2, m.ks.get_vv()[1])
    assert d == 1000 and empty


def test_memory_count_follows_packed_blocks():
    n = Node(1)
    n.run(b"RPUSH", b"l", *[b"abc"] * 1000)
    o = obj(n)
    assert 1000 * 5 <= o.pbytes <= 1000 * 8
    n.run(b"LTRIM", b"l", b"0", b"-1")
    n.run(b"DEL", b"l")
    o = obj(n)
    # the tombstones: 16 bytes each in dead packed blocks, until GC
    assert dead(o) == 1000 and not o.ids
    assert 1000 * 16 <= o.pbytes <= 1000 * 16 + 8 * 200
    gc_list(o, n.ks.get_vv()[1])
    assert o.pbytes == 0 and not o.blocks


# ------------------------------------------------- tombstones, packed too ----


def test_pops_make_no_object_per_tombstone():
    n = Node(1)
    n.run(b"RPUSH", b"l", *[b"a%d" % i for i in range(600)])
    for i in range(400):
        n.run(b"LPUSH", b"l", b"b%d" % i)
    o = obj(n)
    n.run(b"LPOP", b"l", b"450")
    for _ in range(300):
        n.run(b"RPOP", b"l")
    check_list(o)
    assert o.n == 250 and dead(o) == 750 and not o.ids
    # a few dead blocks (one per run and side), not one per element
    assert sum(1 for b in o.blocks if b.dn) <= 4
    want = list_values(o)
    d, empty = gc_list(o, n.ks.get_vv()[1])
    assert d == 750 and not empty and dead(o) == 0
    check_list(o)
    assert list_values(o) == want
    n.run(b"DEL", b"l")
    d, empty = gc_list(o, n.ks.get_vv()[1])
    assert d == 250 and empty


def test_del_kills_packed_blocks_whole_and_a_concurrent_push_survives():
    net = Net((1, 2))
    net[1].run(b"RPUSH", b"l", *[b"v%d" % i for i in range(1000)])
    net[1].run(b"LPUSH", b"l", *[b"w%d" % i for i in range(300)])
    net.deliver_all()
    net[1].run(b"DEL", b"l")
    o = obj(net[1])
    assert o.n == 0 and dead(o) == 1300 and not o.ids
    check_list(o)
    # concurrently, the peer pushes after elements the DEL removes
    net[2].run(b"RPUSH", b"l", b"late")
    net[2].run(b"LINSERT", b"l", b"AFTER", b"v500", b"mid")
    net.deliver_all()
    for i in (1, 2):
        assert list_values(obj(net[i])) == [b"mid", b"late"], i
    assert_converged(net)
    stable = net.max_uuid()
    for i in (1, 2):
        gc_list(obj(net[i]), stable)
        check_list(obj(net[i]))
        assert list_count_ids(obj(net[i])) == 2
    assert_converged(net)


KINDS = st.sampled_from([b"LPOP", b"RPOP"])
pop_step = st.one_of(
    st.tuples(st.just("pop"), st.sampled_from([1, 2, 3]), KINDS, st.integers(1, 60)),
    st.tuples(st.just("pop"), st.sampled_from([1, 2, 3]), KINDS, st.integers(1, 3)),
    st.tuples(
        st.just("push"),
        st.sampled_from([1, 2, 3]),
        st.sampled_from([b"LPUSH", b"RPUSH"]),
        st.integers(1, 40),
    ),
    st.tuples(
        st.just("ins"),
        st.sampled_from([1, 2, 3]),
        st.sampled_from([b"BEFORE", b"AFTER"]),
        st.integers(0, 10_000),
    ),
    st.tuples(st.just("lrem"), st.sampled_from([1, 2, 3]), st.just(b""), st.integers(0, 10_000)),
    st.tuples(st.just("del"), st.sampled_from([1, 2, 3]), st.just(b""), st.just(0)),
    st.tuples(
        st.just("sync"), st.sampled_from([1, 2, 3]), st.sampled_from([1, 2, 3]), st.integers(1, 4)
    ),
    st.tuples(st.just("barrier"), st.just(0), st.just(b""), st.just(0)),
    st.tuples(st.just("gc"), st.sampled_from([1, 2, 3]), st.just(b""), st.just(0)),
)


@settings(max_examples=examples(150), **SETTINGS)
@given(st.lists(pop_step, min_size=4, max_size=40))
def test_pops_interleaved_with_remote_inserts_on_popped_elements(steps):
    """Pops (their tombstones in dead packed blocks) while peers push and
    LINSERT after the same elements without having seen the pops, so that
    their inserts arrive anchored on tombstones; DELs, partial deliveries, GC
    at causally stable points: every node ends in the same state (DESC
    included) as a node that never collected, the structure checks hold."""
    net = Net()
    keeper = Node(8)
    count = {1: 0, 2: 0, 3: 0}
    stable = 0
    gced = False
    net[1].run(b"RPUSH", b"l", *[b"s%d" % i for i in range(200)])
    net.deliver_all()
    for kind, nid, arg, k in steps:
        n = net[nid] if nid else None
        if kind == "pop":
            n.run(arg, b"l", str(k).encode())
        elif kind == "push":
            vals = [b"%d-%d" % (nid, count[nid] + i) for i in range(k)]
            count[nid] += k
            for i in range(0, k, 7):
                n.run(arg, b"l", *vals[i : i + 7])
        elif kind in ("ins", "lrem"):
            vals = list_values(peek(n)) if peek(n) is not None else []
            if vals:
                pivot = vals[k % len(vals)]
                if kind == "ins":
                    n.run(b"LINSERT", b"l", arg, pivot, b"i%d-%d" % (nid, count[nid]))
                    count[nid] += 1
                else:
                    n.run(b"LREM", b"l", b"1", pivot)
        elif kind == "del":
            n.run(b"DEL", b"l")
        elif kind == "sync":
            if nid != arg:
                net.deliver(nid, arg, k)
        elif kind == "barrier":
            net.deliver_all()
            stable = net.max_uuid()
        elif stable and peek(n) is not None:
            gc_list(peek(n), stable)
            gced = True
        for i in (1, 2, 3):
            if peek(net[i]) is not None:
                check_list(peek(net[i]))
    net.deliver_all()
    for i in (1, 2, 3):
        keeper.apply(i, b"".join(net[i].groups()))
    for n in net.nodes.values():
        n.check()
        assert n.visible() == keeper.visible()
    if not gced:
        assert_converged(net)
