"""Property tests of the core's CRDT laws (docs/crdt.md section 7, invariants 1 and 2).

Three in-process nodes (tests/support/core.py) run random commands over a tiny
key space, so that keys, members, fields and types collide; they exchange some
of their effect records mid-way (per-origin FIFO, random cut points), then
everything is delivered everywhere in a random interleaving. All nodes must
end with equal visible and internal state; re-delivery must change nothing;
an observer that applies the same streams in two interleavings must agree.

The number of examples follows the Hypothesis profile (tests/support/profiles.py;
the default keeps the file under a minute).
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.core import T_FAR, Net, Node, parse_resp
from support.profiles import SETTINGS, examples
from support.resp import Conn

KEYS = [b"a", b"b", b"c"]
VALS = [b"x", b"y", b"1", b"10", b"-2"]
MEMBERS = [b"m1", b"m2", b"m3"]
FIELDS = [b"f1", b"f2"]
NODES = [1, 2, 3]
FAR_S = T_FAR // 1000

key = st.sampled_from(KEYS)
val = st.sampled_from(VALS)
member = st.sampled_from(MEMBERS)
field = st.sampled_from(FIELDS)
small = st.integers(-3, 3)
fincr = st.sampled_from([b"0.5", b"-1.25", b"0.1", b"3", b"1e3"])

set_opts = st.sampled_from(
    [
        [],
        [],
        [b"EX", b"1000"],
        [b"PX", b"300000"],
        [b"EXAT", str(FAR_S + 2).encode()],
        [b"PXAT", str(T_FAR + 1500).encode()],
        [b"KEEPTTL"],
        [b"NX"],
        [b"XX"],
        [b"XX", b"KEEPTTL"],
        [b"GET"],
    ]
)


def cmd(*parts):
    """A strategy for one command: constant bytes or strategies, flattened."""
    return st.tuples(*[p if isinstance(p, st.SearchStrategy) else st.just(p) for p in parts]).map(
        lambda t: [x for p in t for x in (p if isinstance(p, list) else [p])]
    )


commands = st.one_of(
    cmd(b"SET", key, val, set_opts),
    cmd(b"DEL", key),
    cmd(b"DEL", key, key),
    cmd(b"INCR", key),
    cmd(b"DECR", key),
    cmd(b"INCRBY", key, small.map(lambda i: str(i).encode())),
    cmd(b"INCRBYFLOAT", key, fincr),
    cmd(b"APPEND", key, val),
    cmd(b"GETDEL", key),
    cmd(b"EXPIRE", key, st.sampled_from([b"1000", b"-1", b"0"])),
    cmd(b"PEXPIRE", key, st.sampled_from([b"400000", b"-5"])),
    cmd(b"EXPIREAT", key, st.sampled_from([str(FAR_S + i).encode() for i in (1, 2, 3)])),
    cmd(b"PEXPIREAT", key, st.sampled_from([str(T_FAR + i).encode() for i in (500, 2500)])),
    cmd(b"PERSIST", key),
    cmd(b"SADD", key, member),
    cmd(b"SADD", key, member, member),
    cmd(b"SREM", key, member),
    cmd(b"SPOP", key),
    cmd(b"SPOP", key, st.sampled_from([b"1", b"2"])),
    cmd(b"SMOVE", key, key, member),
    cmd(b"SINTERSTORE", key, key, key),
    cmd(b"HSET", key, field, val),
    cmd(b"HDEL", key, field),
    cmd(b"HINCRBY", key, field, small.map(lambda i: str(i).encode())),
    cmd(b"HINCRBYFLOAT", key, field, fincr),
    cmd(b"MVSET", key, val),
    cmd(b"RENAME", key, key),
    st.just([b"FLUSHALL"]),
)

node = st.sampled_from(NODES)
link = st.sampled_from([(r, o) for r in NODES for o in NODES if r != o])

step = st.one_of(
    # weights by repetition: mostly commands, some delivery, a little expiry
    st.tuples(st.just("cmd"), node, commands),
    st.tuples(st.just("cmd"), node, commands),
    st.tuples(st.just("cmd"), node, commands),
    st.tuples(st.just("deliver"), link, st.integers(1, 3)),
    st.tuples(st.just("redeliver"), link, st.integers(0, 5)),
    st.tuples(st.just("expire"), node, st.sampled_from([0, 1000, 1600, 2200, 3500])),
    # this node's clock jumps ahead (a faster wall clock): its writes win LWW
    st.tuples(st.just("skew"), node, st.sampled_from([1, 3, 50])),
)

final_order = st.lists(st.tuples(link, st.integers(1, 4)), max_size=12)


def run_steps(net: Net, steps, check: bool = True) -> None:
    for s in steps:
        kind = s[0]
        if kind == "cmd":
            net[s[1]].run(*s[2])
        elif kind == "deliver":
            (r, o), n = s[1], s[2]
            net.deliver(r, o, n)
        elif kind == "redeliver":
            # a duplicate of a prefix of what was already delivered: a no-op
            (r, o), n = s[1], s[2]
            done = net.pos[(r, o)]
            if done:
                before = net[r].internal()
                groups = net[o].groups()[: min(n, done) or done]
                assert net[r].apply(o, b"".join(groups)) == 0
                assert net[r].internal() == before
        elif kind == "expire":
            nd = net[s[1]]
            nd.expire_at(T_FAR + s[2], sorted(nd.all_keys()))
        elif kind == "skew":
            clock = net[s[1]].ks.clock
            clock.observe(clock.last + s[2])
        if check:
            for n in net.nodes.values():
                n.check_invariants()


def final_delivery(net: Net, order) -> None:
    net.deliver_all([(r, o, n) for (r, o), n in order])


def assert_converged(net: Net) -> dict:
    for n in net.nodes.values():
        n.check_invariants()
    states = net.states()
    first = states[NODES[0]]
    for i in NODES[1:]:
        assert states[i][0] == first[0], f"visible state of node {i} differs from node {NODES[0]}"
        assert states[i][1] == first[1], f"internal state of node {i} differs from node {NODES[0]}"
    return first


def observer(net: Net, order) -> Node:
    """A fresh node (id 9) that applies the three streams in the given order of
    (origin, n groups) steps, then the rest."""
    obs = Node(9)
    pos = {o: 0 for o in NODES}
    streams = {o: net[o].groups() for o in NODES}
    for o, n in order:
        q = min(len(streams[o]), pos[o] + n)
        if q > pos[o]:
            obs.apply(o, b"".join(streams[o][pos[o] : q]))
            pos[o] = q
    for o in NODES:
        obs.apply(o, b"".join(streams[o][pos[o] :]))
    return obs


def keys_state(n: Node) -> tuple:
    st_ = n.internal()
    return n.visible(), st_["keys"], st_["cloud"]


@pytest.mark.slow
@settings(max_examples=examples(2000), **SETTINGS)
@given(st.lists(step, min_size=4, max_size=60), final_order)
def test_convergence(steps, order):
    """Invariant 1: every node ends in the same state, visible and internal."""
    net = Net(NODES)
    run_steps(net, steps)
    final_delivery(net, order)
    assert_converged(net)


@settings(max_examples=examples(250), **SETTINGS)
@given(st.lists(step, min_size=4, max_size=40), final_order, st.data())
def test_idempotence(steps, order, data):
    """Invariant 2: re-delivering any prefix, or everything, changes nothing."""
    net = Net(NODES)
    run_steps(net, steps)
    final_delivery(net, order)
    before = net.states()
    for r in NODES:
        for o in NODES:
            if r == o:
                continue
            groups = net[o].groups()
            k = data.draw(st.integers(0, len(groups)))
            assert net[r].apply(o, b"".join(groups[:k])) == 0
            assert net[r].apply(o, b"".join(groups)) == 0
            # record by record too (not only group-aligned batches)
            assert net[r].apply(o, b"".join(net[o].records())) == 0
    assert net.states() == before


@settings(max_examples=examples(250), **SETTINGS)
@given(
    st.lists(step, min_size=4, max_size=40),
    st.lists(st.tuples(node, st.integers(1, 3)), max_size=15),
    st.lists(st.tuples(node, st.integers(1, 3)), max_size=15),
)
def test_commutativity_across_origins(steps, order1, order2):
    """Invariant 1 again, from outside: two interleavings of the same per-origin
    streams give equal state, and the state the nodes themselves reached."""
    net = Net(NODES)
    run_steps(net, steps)
    net.deliver_all()
    a = observer(net, order1)
    b = observer(net, order2)
    sa = keys_state(a)
    assert sa == keys_state(b)
    assert sa == keys_state(net[1])


# ------------------------------------------------ local semantics (7.4) ----
#
# The CRDT machinery (counters over a register, TTL register kept on every
# object and in tombstones, hidden objects) must not show on a single node:
# the same command sequence gives the same replies as a real redis-server.
# Deterministic commands only (no SPOP), no MVSET (not in Redis).

local_commands = st.one_of(
    cmd(b"SET", key, val, set_opts),
    cmd(b"DEL", key),
    cmd(b"INCR", key),
    cmd(b"DECR", key),
    cmd(b"INCRBY", key, small.map(lambda i: str(i).encode())),
    cmd(b"DECRBY", key, small.map(lambda i: str(i).encode())),
    cmd(b"INCRBYFLOAT", key, fincr),
    cmd(b"APPEND", key, val),
    cmd(b"GETDEL", key),
    cmd(b"EXPIRE", key, st.sampled_from([b"1000", b"-1", b"0"])),
    cmd(b"PEXPIRE", key, st.sampled_from([b"400000", b"-5"])),
    cmd(b"EXPIREAT", key, st.sampled_from([str(FAR_S + i).encode() for i in (1, 2)])),
    cmd(b"PERSIST", key),
    cmd(b"SADD", key, member),
    cmd(b"SADD", key, member, member),
    cmd(b"SREM", key, member),
    cmd(b"SMOVE", key, key, member),
    cmd(b"SINTERSTORE", key, key, key),
    cmd(b"HSET", key, field, val),
    cmd(b"HDEL", key, field),
    cmd(b"HINCRBY", key, field, small.map(lambda i: str(i).encode())),
    cmd(b"HINCRBYFLOAT", key, field, fincr),
    cmd(b"RENAME", key, key),
    cmd(b"GET", key),
    cmd(b"TYPE", key),
    cmd(b"TTL", key),
    cmd(b"EXISTS", key),
    cmd(b"STRLEN", key),
    cmd(b"SMEMBERS", key),
    cmd(b"HGETALL", key),
    st.just([b"FLUSHALL"]),
)

UNORDERED = {b"SMEMBERS"}
PAIRS = {b"HGETALL"}


def _canon(args, reply):
    if isinstance(reply, Exception):
        return ("error", str(reply))
    if args[0] in UNORDERED and isinstance(reply, list):
        return sorted(reply)
    if args[0] in PAIRS and isinstance(reply, list):
        return sorted(zip(reply[::2], reply[1::2]))
    return reply


@settings(max_examples=examples(150), **SETTINGS)
@given(st.lists(local_commands, min_size=1, max_size=40))
def test_single_node_matches_redis(redis_server, cmds):
    with Conn(redis_server.port) as raw:
        raw.call(b"FLUSHALL")
        n = Node(1)
        for args in cmds:
            mine = _canon(args, parse_resp(n.run(*args)))
            ref = _canon(args, parse_resp(raw.call(*args)))
            assert mine == ref, (args, mine, ref)
        for k in KEYS:
            for probe in ([b"TYPE", k], [b"TTL", k], [b"EXISTS", k]):
                assert parse_resp(n.run(*probe)) == parse_resp(raw.call(*probe)), probe


# ------------------------------------------------ counter law (docs/crdt.md section 3.1) ----


@settings(max_examples=examples(100), **SETTINGS)
@given(
    st.lists(
        st.one_of(
            st.tuples(st.just("incr"), node, st.integers(-5, 5)),
            st.tuples(st.just("deliver"), link, st.integers(1, 3)),
        ),
        max_size=30,
    ),
    final_order,
)
def test_concurrent_increments_add_up(steps, order):
    """With no register write, the value is the sum of every INCRBY, whatever
    the interleaving (and "0" when they cancel: the key exists)."""
    net = Net(NODES)
    total = 0
    touched = False
    for s in steps:
        if s[0] == "incr":
            net[s[1]].run(b"INCRBY", b"c", str(s[2]).encode())
            total += s[2]
            touched = True
        else:
            (r, o), n = s[1], s[2]
            net.deliver(r, o, n)
    final_delivery(net, order)
    assert_converged(net)
    for i in NODES:
        want = b"$%d\r\n%d\r\n" % (len(str(total)), total) if touched else b"$-1\r\n"
        assert net[i].run(b"GET", b"c") == want
