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
from constdb._core.t_list import check_list, list_count_ids, list_expand, list_values
from test_lists_crdt import Net, Node, assert_converged, norm_desc

from constdb._core import snapshot


def obj(n: Node, k: bytes = b"l"):
    return n.ks.py_find(k, 1)


def packed(o) -> int:
    """Elements held in packed blocks."""
    return sum(b.live for b in o.blocks if b.pbuf is not None)


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
        assert max(b.live for b in o.blocks) <= 128
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
        # the survivors stay packed; each pop left one tombstone
        assert packed(o) == 250 and len(o.ids) == 150
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


def test_memory_count_follows_packed_blocks():
    n = Node(1)
    n.run(b"RPUSH", b"l", *[b"abc"] * 1000)
    o = obj(n)
    assert 1000 * 5 <= o.pbytes <= 1000 * 8
    n.run(b"LTRIM", b"l", b"0", b"-1")
    n.run(b"DEL", b"l")
    o = obj(n)
    assert o is None or o.pbytes == 0
