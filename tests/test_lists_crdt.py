"""CRDT laws for lists, sorted sets and hash-field counters (docs/crdt.md section 3.5, 3.6,
3.1 on hash fields; section 7, invariants 1 and 2), with in-process nodes.

Three nodes run random commands over a few keys (shared between types, so
that type conflicts happen too), exchange some of their effect records
mid-way (per-origin FIFO, random cut points: an insert may arrive before its
anchor, a removal before its insert), then everything is delivered
everywhere. All nodes must end with equal visible and internal state, an
observer applying the same streams in another interleaving must agree, and
re-delivery changes nothing. Targeted scenarios check the semantics the
notes promise (docs/crdt.md sections 3.5 and 3.6), and GC at a causally stable point keeps
every replica's visible state.
"""

from __future__ import annotations

from constdb._core.keyspace import describe_obj, gc_collections
from constdb._core.objects import ListObj, ZSetObj
from constdb._core.t_list import check_list, gc_list, list_count_ids
from constdb._core.t_zset import check_zset
from hypothesis import given, settings
from hypothesis import strategies as st
from support import core
from support.profiles import SETTINGS, examples
from support.resp import Conn

from constdb._core import cmd_lists, cmd_zsets, snapshot
from constdb.replication.manager import stable_of

# ------------------------------------------------------------------ nodes ----


class Node(core.Node):
    """core.Node with the list and sorted-set commands, and views that
    cover every object kind (Keyspace.dead too)."""

    def __init__(self, node_id: int):
        super().__init__(node_id)
        for m in (cmd_lists, cmd_zsets):
            m.register(self.srv)

    def keys(self) -> set:
        ks = self.ks
        return set(ks.d) | set(ks.alts) | set(ks.tombs) | {k for k, _t in ks.dead}

    def visible(self) -> dict:
        out = {}
        for k in sorted(self.keys()):
            t = self.run(b"TYPE", k)
            if t == b"+none\r\n":
                continue
            v = self.ks.value_of(k)
            if isinstance(v, dict):
                v = sorted(v.items())
            elif isinstance(v, set):
                v = sorted(v)
            out[k] = (t, repr(v))
        return out

    def internal(self) -> dict:
        ks = self.ks
        out = {}
        for k in sorted(self.keys()):
            objs = []
            for o in _objects(ks, k):
                objs.append(norm_desc(describe_obj(o)))
            out[k] = sorted(objs)
        ks.prune_cloud()
        cloud = {n: sorted(s) for n, s in ks.cloud.items() if s}
        return {"keys": out, "cloud": cloud, "vv": {n: u for n, u in ks.get_vv().items() if u}}

    def check(self) -> None:
        for k in self.keys():
            for o in _objects(self.ks, k):
                if isinstance(o, ListObj):
                    check_list(o)
                elif isinstance(o, ZSetObj):
                    check_zset(o)


def norm_desc(desc: list) -> str:
    """describe_obj output with the lists whose order carries no meaning sorted."""
    out = []
    for name, v in zip(desc[::2], desc[1::2]):
        if name == b"members" and v and isinstance(v[0][1], list) and len(v[0]) == 2:
            v = [[m, sorted(dots)] for m, dots in v]  # a set's members
        elif name == b"fields":
            v = [[f, sorted(vers, key=lambda x: (x[1], x[2]))] for f, vers in v]
        elif name == b"versions":
            v = sorted(v, key=lambda x: (x[1], x[2]))
        out.append((name, v))
    return repr(out)


def _objects(ks, key) -> list:
    """Every object of key: shown, hidden, tombstone, kept while empty."""
    out = []
    if key in ks.d:
        out.append(ks.d[key])
    out.extend(ks.alts.get(key, []))
    if key in ks.tombs:
        out.append(ks.tombs[key])
    out.extend(o for (k, _t), o in ks.dead.items() if k == key)
    return out


class Net(core.Net):
    def __init__(self, ids=(1, 2, 3)):
        self.nodes = {i: Node(i) for i in ids}
        self.pos = {(r, o): 0 for r in ids for o in ids if r != o}

    def max_uuid(self) -> int:
        return max(n.ks.get_vv()[n.id] for n in self.nodes.values())


def assert_converged(net: Net) -> None:
    states = {i: (n.visible(), n.internal()) for i, n in net.nodes.items()}
    first = states[1]
    for i, s in states.items():
        assert s[0] == first[0], f"node {i} visible state differs:\n{s[0]}\n!=\n{first[0]}"
        assert s[1] == first[1], f"node {i} internal state differs:\n{s[1]}\n!=\n{first[1]}"
    for n in net.nodes.values():
        n.check()


# --------------------------------------------------------------- commands ----

KEYS = [b"a", b"b", b"c"]
VALS = [b"x", b"y", b"z", b"1"]
MEMBERS = [b"m1", b"m2", b"m3"]
FIELDS = [b"f1", b"f2"]

key = st.sampled_from(KEYS)
val = st.sampled_from(VALS)
member = st.sampled_from(MEMBERS)
field = st.sampled_from(FIELDS)
idx = st.integers(-4, 4).map(lambda i: str(i).encode())
score = st.sampled_from([b"0", b"1", b"-1", b"2.5", b"10", b"-0.5"])
side = st.sampled_from([b"LEFT", b"RIGHT"])


def cmd(*parts):
    return st.tuples(*[p if isinstance(p, st.SearchStrategy) else st.just(p) for p in parts]).map(
        lambda t: [x for p in t for x in (p if isinstance(p, list) else [p])]
    )


list_cmds = st.one_of(
    cmd(st.sampled_from([b"LPUSH", b"RPUSH"]), key, st.lists(val, min_size=1, max_size=3)),
    cmd(st.sampled_from([b"LPUSH", b"RPUSH"]), key, val),
    cmd(st.sampled_from([b"LPOP", b"RPOP"]), key),
    cmd(st.sampled_from([b"LPOP", b"RPOP"]), key, st.sampled_from([b"1", b"2", b"3"])),
    cmd(b"LSET", key, idx, val),
    cmd(b"LREM", key, st.sampled_from([b"0", b"1", b"-1"]), val),
    cmd(b"LINSERT", key, st.sampled_from([b"BEFORE", b"AFTER"]), val, val),
    cmd(b"LTRIM", key, idx, idx),
    cmd(b"LMOVE", key, key, side, side),
    cmd(b"RPOPLPUSH", key, key),
)

zset_cmds = st.one_of(
    cmd(b"ZADD", key, score, member),
    cmd(b"ZADD", key, st.sampled_from([b"NX", b"XX", b"GT", b"LT", b"CH"]), score, member),
    cmd(b"ZINCRBY", key, st.sampled_from([b"1", b"-1", b"0.5", b"3"]), member),
    cmd(b"ZADD", key, b"INCR", st.sampled_from([b"1", b"2"]), member),
    cmd(b"ZREM", key, member),
    cmd(st.sampled_from([b"ZPOPMIN", b"ZPOPMAX"]), key),
    cmd(
        b"ZREMRANGEBYSCORE", key, st.sampled_from([b"-inf", b"0"]), st.sampled_from([b"1", b"+inf"])
    ),
    cmd(b"ZREMRANGEBYRANK", key, b"0", b"0"),
)

hash_cmds = st.one_of(
    cmd(b"HINCRBY", key, field, st.sampled_from([b"1", b"-1", b"5"])),
    cmd(b"HINCRBY", key, field, b"1"),
    cmd(b"HSET", key, field, st.sampled_from([b"10", b"abc", b"0"])),
    cmd(b"HDEL", key, field),
)

other_cmds = st.one_of(
    cmd(b"DEL", key),
    cmd(b"SET", key, val),
    cmd(b"EXPIRE", key, b"1000"),
)


def scenario(cmds):
    step = st.one_of(
        st.tuples(st.just("cmd"), st.sampled_from([1, 2, 3]), cmds),
        st.tuples(st.just("cmd"), st.sampled_from([1, 2, 3]), cmds),
        st.tuples(
            st.just("sync"),
            st.sampled_from([1, 2, 3]),
            st.sampled_from([1, 2, 3]),
            st.integers(1, 3),
        ),
    )
    return st.lists(step, min_size=1, max_size=40)


def play(net: Net, steps) -> None:
    for s in steps:
        if s[0] == "cmd":
            net[s[1]].run(*s[2])
        elif s[1] != s[2]:
            net.deliver(s[1], s[2], s[3])


def converge_and_check(net: Net, order) -> None:
    # an observer applies the streams in another interleaving
    obs = Node(9)
    streams = {i: net[i].groups() for i in net.nodes}
    pos = dict.fromkeys(streams, 0)
    for o in order:
        if pos[o] < len(streams[o]):
            obs.apply(o, streams[o][pos[o]])
            pos[o] += 1
    for o, g in streams.items():
        for x in g[pos[o] :]:
            obs.apply(o, x)
    net.deliver_all()
    assert_converged(net)
    v1 = net[1].visible()
    assert obs.visible() == v1
    want = net[1].internal()
    got = obs.internal()
    got["vv"].pop(9, None)
    assert got["keys"] == want["keys"]
    # re-delivery changes nothing
    for o, g in streams.items():
        if o != 1:
            assert net[1].apply(o, b"".join(g)) == 0
    assert net[1].visible() == v1
    assert net[1].internal()["keys"] == want["keys"]


orders = st.lists(st.sampled_from([1, 2, 3]), max_size=60)


@settings(max_examples=examples(120), **SETTINGS)
@given(scenario(st.one_of(list_cmds, list_cmds, other_cmds)), orders)
def test_lists_converge(steps, order):
    net = Net()
    play(net, steps)
    converge_and_check(net, order)


@settings(max_examples=examples(120), **SETTINGS)
@given(scenario(st.one_of(zset_cmds, zset_cmds, other_cmds)), orders)
def test_zsets_converge(steps, order):
    net = Net()
    play(net, steps)
    converge_and_check(net, order)


@settings(max_examples=examples(100), **SETTINGS)
@given(scenario(st.one_of(hash_cmds, hash_cmds, other_cmds)), orders)
def test_hash_counters_converge(steps, order):
    net = Net()
    play(net, steps)
    converge_and_check(net, order)


@settings(max_examples=examples(80), **SETTINGS)
@given(scenario(st.one_of(list_cmds, zset_cmds, hash_cmds, other_cmds)), orders)
def test_mixed_types_converge(steps, order):
    net = Net()
    play(net, steps)
    converge_and_check(net, order)


@settings(max_examples=examples(80), **SETTINGS)
@given(
    scenario(st.one_of(list_cmds, zset_cmds)),
    scenario(st.one_of(list_cmds, zset_cmds)),
    st.lists(st.tuples(st.sampled_from([1, 2, 3]), st.booleans()), max_size=12),
)
def test_gc_at_a_stable_point_keeps_visible_state(before, after, gcs):
    """Barrier, so that everything made so far is causally stable; then more
    concurrent work with partial delivery, GC on some nodes at random points
    with the barrier's point; at the end every node shows what a node that
    never collected shows."""
    net = Net()
    play(net, before)
    net.deliver_all()
    stable = net.max_uuid()
    keeper = Node(8)  # never collects
    half = len(after) // 2
    play(net, after[:half])
    for nid, _ in gcs[: len(gcs) // 2]:
        _gc(net[nid], stable)
    play(net, after[half:])
    for nid, _ in gcs[len(gcs) // 2 :]:
        _gc(net[nid], stable)
    net.deliver_all()
    for i in net.nodes:
        keeper.apply(i, b"".join(net[i].groups()))
    for n in net.nodes.values():
        n.check()
        assert n.visible() == keeper.visible()


def _gc(node: Node, stable: int) -> None:
    gc_collections(node.ks, stable)


# ----------------------------------------------------------- the semantics ----


def val_of(node, k):
    return node.ks.value_of(k)


def test_concurrent_pushes_order_the_same_everywhere():
    net = Net()
    net[1].run(b"RPUSH", b"k", b"a")
    net.deliver_all()
    net[1].run(b"RPUSH", b"k", b"x1", b"x2")
    net[2].run(b"RPUSH", b"k", b"y1", b"y2")
    net[3].run(b"LPUSH", b"k", b"z1")
    net[2].run(b"LINSERT", b"k", b"AFTER", b"a", b"w")
    net.deliver_all()
    assert_converged(net)
    vals = val_of(net[1], b"k")
    assert sorted(vals) == sorted([b"a", b"x1", b"x2", b"y1", b"y2", b"z1", b"w"])
    # each node's own run stays in its order
    assert vals.index(b"x1") < vals.index(b"x2") and vals.index(b"y1") < vals.index(b"y2")


def test_concurrent_pops_may_return_the_same_element():
    """At-least-once: two nodes popping at once both get the head; the list
    loses it once (docs/crdt.md section 3.3)."""
    net = Net()
    net[1].run(b"RPUSH", b"q", b"j1", b"j2", b"j3")
    net.deliver_all()
    assert net[1].run(b"LPOP", b"q") == b"$2\r\nj1\r\n"
    assert net[2].run(b"LPOP", b"q") == b"$2\r\nj1\r\n"
    net.deliver_all()
    assert_converged(net)
    assert val_of(net[3], b"q") == [b"j2", b"j3"]


def test_lset_concurrent_with_pop_converges():
    net = Net()
    net[1].run(b"RPUSH", b"k", b"a", b"b")
    net.deliver_all()
    net[1].run(b"LSET", b"k", b"0", b"A")
    net[2].run(b"LPOP", b"k")
    net[3].run(b"LSET", b"k", b"1", b"B")
    net.deliver_all()
    assert_converged(net)
    assert val_of(net[1], b"k") == [b"B"]


def test_ltrim_and_lrem_concurrent_with_inserts_keep_the_inserts():
    net = Net()
    net[1].run(b"RPUSH", b"k", b"a", b"b", b"c", b"d")
    net.deliver_all()
    net[1].run(b"LTRIM", b"k", b"1", b"1")
    net[2].run(b"LINSERT", b"k", b"AFTER", b"c", b"new")
    net[3].run(b"LREM", b"k", b"0", b"b")
    net.deliver_all()
    assert_converged(net)
    assert val_of(net[1], b"k") == [b"new"]


def test_insert_before_its_anchor_arrives_waits_for_it():
    """1 pushes a; 2 sees a and inserts after it; 3 gets 2's insert first."""
    net = Net()
    net[1].run(b"RPUSH", b"k", b"a")
    net.deliver(2, 1)
    net[2].run(b"LINSERT", b"k", b"AFTER", b"a", b"b")
    net[2].run(b"RPUSH", b"k", b"c")
    net[2].run(b"LSET", b"k", b"0", b"A")
    net[2].run(b"RPOP", b"k")
    net.deliver(3, 2)
    assert net[3].run(b"LLEN", b"k") == b":0\r\n"
    net.deliver(3, 1)
    assert val_of(net[3], b"k") == [b"A", b"b"]
    net.deliver_all()
    assert_converged(net)


def test_concurrent_zincrby_add_up_and_zadd_keeps_unobserved_increments():
    net = Net()
    net[1].run(b"ZADD", b"z", b"10", b"m")
    net.deliver_all()
    assert net[1].run(b"ZINCRBY", b"z", b"1", b"m") == b"$2\r\n11\r\n"
    assert net[2].run(b"ZINCRBY", b"z", b"2", b"m") == b"$2\r\n12\r\n"
    net.deliver_all()
    assert_converged(net)
    assert net[3].run(b"ZSCORE", b"z", b"m") == b"$2\r\n13\r\n"
    # ZADD concurrent with ZINCRBY: the written value plus the increment
    net[1].run(b"ZADD", b"z", b"100", b"m")
    net[2].run(b"ZINCRBY", b"z", b"5", b"m")
    net.deliver_all()
    assert_converged(net)
    assert net[3].run(b"ZSCORE", b"z", b"m") == b"$3\r\n105\r\n"
    # on a new member too
    net[1].run(b"ZINCRBY", b"z", b"1", b"n")
    net[2].run(b"ZINCRBY", b"z", b"1", b"n")
    net.deliver_all()
    assert net[3].run(b"ZSCORE", b"z", b"n") == b"$1\r\n2\r\n"


def test_zadd_or_zincrby_concurrent_with_zrem_wins():
    net = Net()
    net[1].run(b"ZADD", b"z", b"1", b"m", b"2", b"n")
    net.deliver_all()
    net[1].run(b"ZREM", b"z", b"m", b"n")
    net[2].run(b"ZINCRBY", b"z", b"5", b"m")
    net[3].run(b"ZADD", b"z", b"7", b"n")
    net.deliver_all()
    assert_converged(net)
    assert net[1].run(b"ZRANGE", b"z", b"0", b"-1", b"WITHSCORES") == (
        b"*4\r\n$1\r\nm\r\n$1\r\n6\r\n$1\r\nn\r\n$1\r\n7\r\n"
    )


def test_concurrent_hincrby_add_up_and_hset_resets_what_it_saw():
    net = Net()
    net[1].run(b"HSET", b"h", b"f", b"10")
    net.deliver_all()
    assert net[1].run(b"HINCRBY", b"h", b"f", b"1") == b":11\r\n"
    assert net[2].run(b"HINCRBY", b"h", b"f", b"2") == b":12\r\n"
    net.deliver_all()
    assert_converged(net)
    assert val_of(net[3], b"h") == {b"f": b"13"}
    net[1].run(b"HSET", b"h", b"f", b"100")
    net[2].run(b"HINCRBY", b"h", b"f", b"5")
    net.deliver_all()
    assert_converged(net)
    assert val_of(net[3], b"h") == {b"f": b"105"}
    # HINCRBY of a field absent on both nodes
    net[1].run(b"HINCRBY", b"h", b"g", b"1")
    net[2].run(b"HINCRBY", b"h", b"g", b"1")
    net.deliver_all()
    assert val_of(net[3], b"h")[b"g"] == b"2"
    assert net[3].run(b"HINCRBY", b"h", b"g", b"0") == b":2\r\n"


def test_hincrby_matches_redis_on_one_node():
    n = Node(1)
    model = {}
    script = [
        (b"HINCRBY", b"f", b"5"),
        (b"HINCRBY", b"f", b"-7"),
        (b"HSET", b"f", b"40"),
        (b"HINCRBY", b"f", b"2"),
        (b"HDEL", b"f", None),
        (b"HINCRBY", b"f", b"3"),
        (b"HSET", b"g", b"x"),
        (b"HINCRBY", b"f", b"9223372036854775800"),
        (b"HINCRBY", b"f", b"100"),
        (b"HINCRBY", b"f", b"-9223372036854775808"),
    ]
    for op, f, arg in script:
        if op == b"HINCRBY":
            got = n.run(b"HINCRBY", b"h", f, arg)
            cur = int(model.get(f, b"0"))
            new = cur + int(arg)
            if -(2**63) <= new < 2**63:
                model[f] = str(new).encode()
                assert got == b":%d\r\n" % new
            else:
                assert got == b"-ERR increment or decrement would overflow\r\n"
        elif op == b"HSET":
            n.run(b"HSET", b"h", f, arg)
            model[f] = arg
        else:
            n.run(b"HDEL", b"h", f)
            model.pop(f, None)
        assert (val_of(n, b"h") or {}) == model
    assert n.run(b"HINCRBY", b"h", b"g", b"1") == b"-ERR hash value is not an integer\r\n"


def test_gc_drops_tombstones_and_keeps_working():
    net = Net()
    net[1].run(b"RPUSH", b"q", *[b"v%d" % i for i in range(500)])
    net.deliver_all()
    for i in (1, 2, 3):
        net[i].run(b"LPOP", b"q", b"100")
    net.deliver_all()
    stable = net.max_uuid()
    o = net[1].ks.py_find(b"q", 1)
    assert list_count_ids(o) == 500
    dropped, empty = gc_list(o, stable)
    assert dropped == 100 and not empty and list_count_ids(o) == 400
    check_list(o)
    net[2].run(b"LPUSH", b"q", b"head")
    net[3].run(b"RPUSH", b"q", b"tail")
    net.deliver_all()
    assert val_of(net[1], b"q") == val_of(net[2], b"q") == val_of(net[3], b"q")
    assert val_of(net[1], b"q")[0] == b"head" and val_of(net[1], b"q")[-1] == b"tail"


# ------------------------------------------------- random runs, causal gaps ----

RVALS = [b"x", b"y", b"z", b"1"]


def _rcmd(rnd) -> list:
    k = rnd.choice([b"a", b"b"])
    v = rnd.choice(RVALS)
    i = str(rnd.randint(-4, 4)).encode()
    return rnd.choice(
        [
            [rnd.choice([b"LPUSH", b"RPUSH"]), k] + rnd.choices(RVALS, k=rnd.randint(1, 3)),
            [rnd.choice([b"LPOP", b"RPOP"]), k],
            [b"LSET", k, i, v],
            [b"LREM", k, b"0", v],
            [b"LINSERT", k, rnd.choice([b"BEFORE", b"AFTER"]), v, v],
            [b"LTRIM", k, i, str(rnd.randint(-4, 4)).encode()],
            [b"LMOVE", k, rnd.choice([b"a", b"b"]), b"LEFT", b"RIGHT"],
            [b"ZADD", k + b"z", rnd.choice([b"1", b"2", b"-1"]), v],
            [b"ZINCRBY", k + b"z", b"1", v],
            [b"ZREM", k + b"z", v],
            [b"HINCRBY", k + b"h", v, b"1"],
            [b"HSET", k + b"h", v, b"5"],
            [b"HDEL", k + b"h", v],
        ]
    )


def test_random_runs_with_causal_gaps():
    """Seeded random runs where records often arrive before what they name:
    inserts wait for their anchor, removals and LSETs meet elements not yet
    inserted. Both must happen, and every run must converge."""
    import random

    waits = ghosts = 0
    for seed in range(150):
        rnd = random.Random(seed)
        net = Net()
        for _ in range(rnd.randint(5, 60)):
            if rnd.random() < 0.7:
                net[rnd.choice([1, 2, 3])].run(*_rcmd(rnd))
            else:
                r, o = rnd.sample([1, 2, 3], 2)
                net.deliver(r, o, rnd.randint(1, 3))
            for n in net.nodes.values():
                for k in n.keys():
                    for ob in _objects(n.ks, k):
                        if isinstance(ob, ListObj):
                            waits += ob.pend is not None
                            for v in ob.ids.values():
                                for e in [v] if not isinstance(v, list) else v:
                                    ghosts += e.st == 0  # ST_GHOST
        converge_and_check(net, [rnd.choice([1, 2, 3]) for _ in range(40)])
    assert waits > 20 and ghosts > 20


# ------------------------------------------------ HINCRBY against redis ----


def test_hincrby_differential(constdb_server, redis_server, r, rr):
    """HINCRBY and the readers of a counted field, byte for byte against
    redis-server, in RESP2 and RESP3."""
    import random

    for resp3 in (False, True):
        proto = 3 if resp3 else 2
        a, b = Conn(constdb_server.port, proto), Conn(redis_server.port, proto)
        a.call(b"FLUSHALL")
        b.call(b"FLUSHALL")
        rnd = random.Random(int(resp3))
        fields = [b"f", b"g", b"h"]
        cmds = [
            [b"HINCRBY", b"nokey", b"f", b"x"],
            [b"SET", b"s", b"v"],
            [b"HINCRBY", b"s", b"f", b"1"],
        ]
        for _ in range(400):
            f = rnd.choice(fields)
            cmds.append(
                rnd.choice(
                    [
                        [b"HINCRBY", b"k", f, str(rnd.randint(-5, 5)).encode()],
                        [
                            b"HINCRBY",
                            b"k",
                            f,
                            rnd.choice(
                                [b"9223372036854775807", b"-9223372036854775808", b"1.5", b"x"]
                            ),
                        ],
                        [b"HSET", b"k", f, rnd.choice([b"7", b"-3", b"abc", b"007", b" 1"])],
                        [b"HDEL", b"k", f],
                        [b"HGET", b"k", f],
                        [b"HMGET", b"k", b"f", b"g", b"h"],
                        [b"HSTRLEN", b"k", f],
                        [b"HEXISTS", b"k", f],
                        [b"HLEN", b"k"],
                        [b"HGETALL", b"k"],
                        [b"HVALS", b"k"],
                        [b"HSCAN", b"k", b"0"],
                        [b"DEL", b"k"],
                    ]
                )
            )
        got, want = a.pipeline(cmds), b.pipeline(cmds)
        for c, g, w in zip(cmds, got, want):
            if c[0] in (b"HGETALL", b"HVALS", b"HSCAN"):
                # field order may differ: compare as sorted lines
                g, w = sorted(g.split(b"\r\n")), sorted(w.split(b"\r\n"))
            assert g == w, f"{c!r}: constdb {g!r} != redis {w!r}"
        a.close()
        b.close()


# ------------------------------------------- crashes and restart floors ----
#
# docs/crdt.md section 6: the stable point is the minimum of every member's
# restart floor (the VV of the state it would come back with after a crash),
# so a member that crashes back to an old snapshot, with a fresh origin, can
# never name an element that another member collected. The model: three
# member slots, each running one incarnation (an origin); effects stream per
# origin in FIFO order; a slot may save (its snapshot becomes its floor),
# crash (its next incarnation loads its last snapshot, or starts empty, with
# a fresh origin; what its old origin had not streamed is lost unless the
# snapshot holds it), exchange full syncs (snapshot merges) and heartbeats,
# and collect garbage at the stable point computed from the current floors
# and VVs of every member (the most any member could ever compute). Healing
# (every stream delivered, full syncs everywhere) must leave equal visible
# lists and digests everywhere and no insert waiting for its anchor.


class Slot:
    """One member: its current incarnation and its last snapshot on disk."""

    def __init__(self, origin: int):
        self.node = Node(origin)
        self.saved: bytes | None = None
        self.floor: dict | None = None  # the saved snapshot's VV (None: no file)

    def applied(self) -> dict:
        ks = self.node.ks
        vv = ks.get_vv()
        vv[ks.node_id] = ks.clock.last
        return vv

    def restart_floor(self) -> dict:
        """As Persistence.restart_floor: the file's VV, or (no file: an empty
        restart) the applied VV."""
        return dict(self.floor) if self.floor is not None else self.applied()

    def save(self) -> None:
        ks = self.node.ks
        vv = ks.get_vv()
        vv[ks.node_id] = max(ks.own_last, ks.clock.last)
        self.saved = snapshot.dump(ks)
        self.floor = vv

    def crash(self, origin: int) -> None:
        """SIGKILL and restart from the last save with a fresh origin (as
        Persistence.loaded sets the floor)."""
        node = Node(origin)
        if self.saved is not None:
            snap = snapshot.parse(self.saved)
            snapshot.merge(node.ks, snap)
            vv = dict(snap.vv)
            vv[snap.node_id] = max(snap.own_last, snap.clock, vv.get(snap.node_id, 0))
            vv[origin] = node.ks.clock.last
            self.floor = vv
        self.node = node


class CrashNet:
    def __init__(self):
        self.slots = {i: Slot(i) for i in (1, 2, 3)}
        self.origins = {i: i for i in (1, 2, 3)}  # origin -> its incarnation's node
        self.streams = {i: self.slots[i].node for i in (1, 2, 3)}  # origin -> node
        self.live = {i: True for i in (1, 2, 3)}  # does the origin still stream?
        self.pos: dict = {}  # (receiver origin, sender origin) -> groups applied
        self.next_origin = 100
        self.collected: set = set()  # list element ids some node's GC dropped

    def deliver(self, r: int, o: int, n: int | None = None) -> None:
        """Slot o's stream to slot r (current incarnations, FIFO)."""
        rn = self.slots[r].node
        sn = self.slots[o].node
        if rn is sn:
            return
        groups = sn.groups()
        key = (rn.id, sn.id)
        p = self.pos.get(key, 0)
        q = len(groups) if n is None else min(len(groups), p + n)
        if q > p:
            rn.apply(sn.id, b"".join(groups[p:q]))
            self.pos[key] = q

    def heartbeat(self, o: int, r: int) -> None:
        """o has sent r every effect it made: r's VV of o's origin moves to a
        fresh clock reading of o's (docs/crdt.md section 2)."""
        sn, rn = self.slots[o].node, self.slots[r].node
        if rn is sn or self.pos.get((rn.id, sn.id), 0) < len(sn.groups()):
            return
        rn.ks.advance_vv(sn.id, sn.ks.clock.next())

    def full_sync(self, o: int, r: int) -> None:
        sn, rn = self.slots[o].node, self.slots[r].node
        if rn is not sn:
            snapshot.merge(rn.ks, snapshot.parse(snapshot.dump(sn.ks)))

    def stable(self) -> int:
        slots = self.slots.values()
        current = {s.node.id for s in slots}
        return stable_of([s.restart_floor() for s in slots], [s.applied() for s in slots], current)

    def gc(self, i: int) -> None:
        s = self.stable()
        node = self.slots[i].node
        before = list_ids(node)
        node.ks.gc(s)
        gc_collections(node.ks, s)
        self.collected |= before - list_ids(node)

    def crash(self, i: int) -> None:
        self.next_origin += 1
        self.slots[i].crash(self.next_origin)

    def heal(self) -> None:
        """What the links do once every member is up: every stream delivered,
        and a full sync wherever a peer has less of a retired origin than
        the sender (anti-entropy, docs/replication.md section 3); never a
        full sync for its own sake, which would paper over a waiting insert."""
        for _ in range(4):
            for r in self.slots:
                for o in self.slots:
                    self.deliver(r, o)
            current = {s.node.id for s in self.slots.values()}
            for o, so in self.slots.items():
                for r, sr in self.slots.items():
                    if so is sr:
                        continue
                    mine, theirs = so.node.ks.get_vv(), sr.node.ks.get_vv()
                    if any(u > theirs.get(x, 0) for x, u in mine.items() if x not in current):
                        self.full_sync(o, r)


# one key, so that a restarted node's pushes meet what it saw removed
one_key_list_cmds = st.one_of(
    list_cmds.map(lambda c: [b"a" if x in (b"b", b"c") else x for x in c]),
    st.sampled_from(
        [[b"RPUSH", b"a", b"x"], [b"LPUSH", b"a", b"y"], [b"RPOP", b"a"], [b"LPOP", b"a"]]
    ),
)
slot = st.sampled_from([1, 2, 3])
maybe_slot = st.one_of(st.none(), slot)
# a phase: saves, commands, partial deliveries and full syncs, then perhaps
# every stream delivered with a heartbeat on every link and GC everywhere,
# then perhaps a crash; phases in a row make the sequence likely
phase = st.tuples(
    st.sets(slot),
    st.lists(st.tuples(slot, one_key_list_cmds), max_size=4),
    st.lists(
        st.one_of(
            st.tuples(st.just("sync"), slot, slot, st.integers(1, 3)),
            st.tuples(st.just("full"), slot, slot),
            st.tuples(st.just("hb"), slot, slot),
            st.tuples(st.just("gc"), slot),
        ),
        max_size=3,
    ),
    st.sampled_from([True, True, False]),
    maybe_slot,
)
# the order, with random commands: a member saves, everyone goes on
# (removals it applies become stable as far as applied VVs go), it crashes
# back to that save and writes at once
episode = st.tuples(
    st.just("episode"),
    slot,
    st.lists(st.tuples(slot, one_key_list_cmds), max_size=4),
    st.lists(st.tuples(slot, one_key_list_cmds), min_size=1, max_size=4),
    st.lists(one_key_list_cmds, min_size=1, max_size=3),
)
crash_steps = st.lists(st.one_of(phase, episode), min_size=1, max_size=8)


def settle(net: CrashNet) -> None:
    """Every stream delivered, a heartbeat on every link, GC everywhere."""
    for r in net.slots:
        for o in net.slots:
            net.deliver(r, o)
    for r in net.slots:
        for o in net.slots:
            net.heartbeat(o, r)
    for i in net.slots:
        net.gc(i)


def play_crashes(net: CrashNet, phases) -> None:
    for p in phases:
        if p[0] == "episode":
            _, victim, before, after, own = p
            for i, c in before:
                net.slots[i].node.run(*c)
            settle(net)
            net.slots[victim].save()
            for i, c in after:
                net.slots[i].node.run(*c)
            settle(net)
            net.crash(victim)
            for c in own:
                net.slots[victim].node.run(*c)
            settle(net)
            continue
        saves, cmds, moves, do_settle, crash = p
        for i in sorted(saves):
            net.slots[i].save()
        for i, c in cmds:
            net.slots[i].node.run(*c)
        for m in moves:
            if m[0] == "sync":
                net.deliver(m[1], m[2], m[3])
            elif m[0] == "full":
                net.full_sync(m[1], m[2])
            elif m[0] == "hb":
                net.heartbeat(m[1], m[2])
            else:
                net.gc(m[1])
        if do_settle:
            settle(net)
        if crash is not None:
            net.crash(crash)


def list_ids(node: Node) -> set:
    out = set()
    for k in node.keys():
        for o in _objects(node.ks, k):
            if isinstance(o, ListObj):
                desc = describe_obj(o)
                for e in desc[desc.index(b"elements") + 1] + desc[desc.index(b"unplaced") + 1]:
                    out.add((e[0], e[1]))
    return out


def unplaced_elements(node: Node) -> list:
    out = []
    for k in node.keys():
        for o in _objects(node.ks, k):
            if isinstance(o, ListObj):
                desc = describe_obj(o)
                out.extend(desc[desc.index(b"unplaced") + 1])
    return out


@settings(max_examples=examples(150), **SETTINGS)
@given(crash_steps)
def test_lists_converge_through_crashes_to_old_snapshots(steps):
    net = CrashNet()
    play_crashes(net, steps)
    net.heal()
    nodes = [s.node for s in net.slots.values()]
    for n in nodes:
        n.check()
        # an insert may wait for good only for an anchor that every holder
        # lost in crashes (no persistence), never for one that GC dropped
        for e in unplaced_elements(n):
            assert (e[6][0], e[6][1]) not in net.collected, f"waits for a collected anchor: {e}"
    assert nodes[1].visible() == nodes[0].visible()
    assert nodes[2].visible() == nodes[0].visible()
    digests = {n.ks.digest() for n in nodes}
    assert len(digests) == 1


def test_a_restart_from_an_old_snapshot_never_names_a_collected_element():
    """The issue's case: node 2 saves, then sees an element removed; the
    others may not collect it before node 2's floor covers the removal, so
    node 2, crashing back to that snapshot and pushing after the element,
    names an element every node still has."""
    net = CrashNet()
    net.slots[1].node.run(b"RPUSH", b"q", b"a", b"b")
    for r in (2, 3):
        net.deliver(r, 1)
    net.slots[2].save()  # holds a, b
    net.slots[1].node.run(b"RPOP", b"q")  # b removed
    rem = net.slots[1].node.ks.own_last
    for r in (2, 3):
        net.deliver(r, 1)
    for o in (1, 2, 3):
        for r in (1, 2, 3):
            net.heartbeat(o, r)
    s = net.stable()
    assert s < rem  # node 2's floor holds the removal of b back
    for i in (1, 2, 3):
        net.gc(i)
    net.crash(2)
    assert net.slots[2].node.run(b"LRANGE", b"q", b"0", b"-1") == b"*2\r\n$1\r\na\r\n$1\r\nb\r\n"
    net.slots[2].node.run(b"RPUSH", b"q", b"c")  # after b, which it still shows
    net.heal()
    for slot in net.slots.values():
        assert slot.node.run(b"LRANGE", b"q", b"0", b"-1") == b"*2\r\n$1\r\na\r\n$1\r\nc\r\n"
        assert unplaced_elements(slot.node) == []
    # once node 2 saves again, the removal is stable and collected everywhere
    net.slots[2].save()
    for o in (1, 2, 3):
        for r in (1, 2, 3):
            net.heartbeat(o, r)
    assert net.stable() >= rem
