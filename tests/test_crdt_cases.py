"""CRDT laws as small explicit cases (docs/crdt.md sections 3 and 6),
and the minimal reproductions of the convergence bugs that the property tests
(test_crdt_props.py) found, kept as regression tests."""

from __future__ import annotations

from support.core import T_FAR, Net, Node, parse_resp

# ---------------------------------------------------------------- helpers ----


def converge(net: Net) -> dict:
    """Deliver everything everywhere; assert equal visible and internal state."""
    net.deliver_all()
    states = net.states()
    ids = sorted(states)
    for i in ids[1:]:
        assert states[i][0] == states[ids[0]][0], f"node {i}: visible state differs"
        assert states[i][1] == states[ids[0]][1], f"node {i}: internal state differs"
    return states[ids[0]][0]


def get(n: Node, key: bytes):
    return parse_resp(n.run(b"GET", key))


def typ(n: Node, key: bytes) -> bytes:
    return parse_resp(n.run(b"TYPE", key))


def pttl(n: Node, key: bytes) -> int:
    return parse_resp(n.run(b"PEXPIRETIME", key))


def members(n: Node, key: bytes) -> list:
    return sorted(parse_resp(n.run(b"SMEMBERS", key)))


# ------------------------------------ local semantics of counters (7.4) ----


def test_incr_decr_back_to_zero_exists():
    n = Node(1)
    assert n.run(b"INCR", b"k") == b":1\r\n"
    assert n.run(b"DECR", b"k") == b":0\r\n"
    assert n.run(b"GET", b"k") == b"$1\r\n0\r\n"
    assert n.run(b"EXISTS", b"k") == b":1\r\n"
    assert n.run(b"TYPE", b"k") == b"+string\r\n"


def test_set_then_incr_and_del_then_incr():
    n = Node(1)
    n.run(b"SET", b"k", b"10")
    assert n.run(b"INCR", b"k") == b":11\r\n"
    assert n.run(b"INCRBY", b"k", b"-20") == b":-9\r\n"
    assert n.run(b"GET", b"k") == b"$2\r\n-9\r\n"
    assert n.run(b"DEL", b"k") == b":1\r\n"
    assert n.run(b"GET", b"k") == b"$-1\r\n"
    assert n.run(b"EXISTS", b"k") == b":0\r\n"
    assert n.run(b"INCR", b"k") == b":1\r\n"
    assert n.run(b"DECRBY", b"k", b"1") == b":0\r\n"
    assert n.run(b"GET", b"k") == b"$1\r\n0\r\n"
    n.run(b"SET", b"k", b"abc")
    assert n.run(b"INCR", b"k").startswith(b"-ERR value is not an integer")
    assert n.run(b"GET", b"k") == b"$3\r\nabc\r\n"
    n.run(b"SET", b"k", b"7")
    assert n.run(b"APPEND", b"k", b"0") == b":2\r\n"
    assert n.run(b"INCR", b"k") == b":71\r\n"
    assert n.run(b"GETDEL", b"k") == b"$2\r\n71\r\n"
    assert n.run(b"DECR", b"k") == b":-1\r\n"


def test_incr_overflow_is_an_error_without_effect():
    n = Node(1)
    n.run(b"SET", b"k", b"9223372036854775806")
    assert n.run(b"INCR", b"k") == b":9223372036854775807\r\n"
    before = len(n.records())
    assert n.run(b"INCR", b"k").startswith(b"-ERR increment or decrement would overflow")
    assert len(n.records()) == before


# ------------------------------------------------ counter law (docs/crdt.md section 3.1) ----


def test_concurrent_incrby_add_up():
    net = Net()
    net[1].run(b"INCRBY", b"c", b"5")
    net[2].run(b"INCRBY", b"c", b"-2")
    net[3].run(b"INCR", b"c")
    net[3].run(b"INCR", b"c")
    converge(net)
    for i in (1, 2, 3):
        assert get(net[i], b"c") == b"5"


def test_incr_concurrent_with_del_survives():
    net = Net()
    net[1].run(b"SET", b"c", b"10")
    net.deliver_all()
    net[1].run(b"DEL", b"c")
    net[2].run(b"INCR", b"c")  # did not see the DEL
    converge(net)
    assert get(net[3], b"c") == b"1"


def test_incr_observed_by_del_is_cancelled():
    net = Net()
    net[2].run(b"INCRBY", b"c", b"4")
    net.deliver(1, 2)
    net[1].run(b"DEL", b"c")  # saw the INCRBY
    converge(net)
    assert get(net[3], b"c") is None
    assert net[3].run(b"EXISTS", b"c") == b":0\r\n"


def test_set_observes_counters_and_later_incr_adds():
    net = Net()
    net[2].run(b"INCRBY", b"c", b"3")
    net.deliver_all()
    net[1].run(b"SET", b"c", b"100")  # observed the 3
    net[3].run(b"INCR", b"c")  # concurrent with the SET
    converge(net)
    assert get(net[2], b"c") == b"101"


def test_incr_concurrent_with_non_integer_set_is_ignored():
    net = Net()
    net[1].run(b"SET", b"c", b"abc")
    net[2].run(b"INCR", b"c")
    converge(net)
    # docs/crdt.md section 3.1: increments concurrent with a non-integer SET are ignored
    assert get(net[1], b"c") == b"abc"
    assert net[1].run(b"INCR", b"c").startswith(b"-ERR value is not an integer")
    net[3].run(b"SET", b"c", b"5")  # observed the increment: rebases it
    net.deliver(1, 3)
    net[1].run(b"INCR", b"c")
    converge(net)
    assert get(net[2], b"c") == b"6"


# ---------------------------------------------- add-wins, LWW (3.2 - 3.4) ----


def test_sadd_concurrent_with_srem_wins():
    net = Net()
    net[1].run(b"SADD", b"s", b"m", b"n")
    net.deliver_all()
    net[2].run(b"SREM", b"s", b"m")
    net[3].run(b"SADD", b"s", b"m")  # present already: a no-op, ships nothing
    net[1].run(b"SREM", b"s", b"m")
    net[1].run(b"SADD", b"s", b"m")  # a fresh add, concurrent with node 2's SREM
    converge(net)
    assert members(net[2], b"s") == [b"m", b"n"]


def test_srem_before_its_add_arrives_is_not_resurrected():
    net = Net()
    net[1].run(b"SADD", b"s", b"m")
    net.deliver(2, 1)
    net[2].run(b"SREM", b"s", b"m")
    net[2].run(b"SADD", b"s", b"x")
    net.deliver(3, 2)  # node 3 gets the removal before the add
    net.deliver(3, 1)
    converge(net)
    assert members(net[3], b"s") == [b"x"]


def test_hset_concurrent_with_hdel_wins():
    net = Net()
    net[1].run(b"HSET", b"h", b"f", b"1")
    net.deliver_all()
    net[2].run(b"HDEL", b"h", b"f")
    net[3].run(b"HSET", b"h", b"f", b"2")
    converge(net)
    assert parse_resp(net[1].run(b"HGET", b"h", b"f")) == b"2"


def test_concurrent_sets_resolve_by_uuid_then_node():
    net = Net()
    net[1].run(b"SET", b"k", b"one")
    net[2].run(b"SET", b"k", b"two")  # same uuid (same clock start): node 2 wins
    converge(net)
    assert get(net[1], b"k") == b"two"
    net[1].run(b"SET", b"k", b"x")
    net[1].run(b"SET", b"k", b"y")  # a larger uuid than node 3's next write
    net[3].run(b"SET", b"k", b"z")
    converge(net)
    assert get(net[3], b"k") == b"y"


def test_mvset_keeps_concurrent_versions():
    net = Net()
    net[1].run(b"MVSET", b"r", b"a")
    net[2].run(b"MVSET", b"r", b"b")
    converge(net)
    assert parse_resp(net[3].run(b"MVGET", b"r")) == [[1, b"a"], [2, b"b"]]
    net[3].run(b"MVSET", b"r", b"c")
    converge(net)
    assert parse_resp(net[1].run(b"MVGET", b"r")) == [[3, b"c"]]


# ------------------------------ regressions found by test_crdt_props.py ----
#
# Each minimal reproduction diverged before the fix named in its docstring.


def test_shown_type_does_not_depend_on_object_history():
    """A hash that went empty here and was made again by a later-arriving
    concurrent HSET compared as older than one that stayed non-empty on a node
    that applied the same clear (the clear bumped a per-object "last write"
    ts): the two nodes showed different types. Fix: `_last_ts` is the newest
    dot/register the object holds."""
    net = Net()
    net[1].run(b"HSET", b"a", b"f", b"x")  # dot (B+1, 1)
    net[2].run(b"HSET", b"a", b"f", b"x")  # dot (B+1, 2)
    net[3].run(b"MVSET", b"a", b"v")  # (B+1, 3): between the two below
    net[1].run(b"DEL", b"a")  # (B+2, 1): clears node 1's dot only
    converge(net)
    assert typ(net[1], b"a") == b"mvreg"


def test_removal_from_the_shown_object_can_show_another_type():
    """A removal can take away the shown object's newest write; the key must
    then show the newest live object, as a node that never saw that write
    does. Fix: `settle` re-decides when the key has hidden objects."""
    net = Net()
    net[1].run(b"SADD", b"k", b"m1")  # (B+1, 1)
    net[2].run(b"INCR", b"k")  # (B+1, 2)
    net[1].run(b"SADD", b"k", b"m2")  # (B+2, 1)
    net.deliver(2, 1, 2)  # node 2: set shown (B+2) over the counter (B+1, 2)
    net[1].run(b"SREM", b"k", b"m2")
    converge(net)
    assert typ(net[2], b"k") == b"string"
    assert get(net[2], b"k") == b"1"


def test_new_object_takes_the_key_ttl():
    """An EXPIRE reached the string on the node that had it and not the string
    that arrived later elsewhere. Fix: an object made on a key copies the
    key's TTL register (`find`)."""
    net = Net()
    net[1].run(b"SADD", b"a", b"m1")
    net[2].run(b"INCR", b"a")
    net[1].run(b"EXPIRE", b"a", b"1000")
    converge(net)
    assert typ(net[1], b"a") == b"string"
    assert pttl(net[1], b"a") > 0


def test_set_ttl_write_reaches_an_object_not_yet_placed():
    """A SET's TTL write skipped the other objects of the key unless the key
    already had hidden ones (it checked `alts` only). Fix: `_ttl_others`
    covers the shown object, hidden ones and the tombstone, always."""
    net = Net()
    net[1].run(b"SET", b"b", b"x")
    net[1].run(b"SET", b"b", b"x")
    net[2].run(b"HSET", b"b", b"f1", b"x")
    converge(net)


def test_ttl_write_on_a_key_with_no_object_is_kept():
    """A DEL's TTL write was lost on a node where the key had no object left;
    a concurrent older EXPIRE then gave the surviving hash a TTL there and
    not elsewhere. Fix: a key with no object keeps its TTL register in a
    tombstone (`_ttl_write`, `_keep_ttl`)."""
    net = Net()
    net[2].run(b"HSET", b"k", b"f", b"v")  # (B+1, 2)
    net[2].run(b"PEXPIREAT", b"k", str(T_FAR + 5000))  # (B+2, 2)
    net[1].run(b"SADD", b"k", b"m")  # (B+1, 1)
    net[1].run(b"EXPIRE", b"k", b"1000")  # (B+2, 1)
    net[1].run(b"DEL", b"k")  # (B+3, 1): no expiry, and newer than both EXPIREs
    net.deliver(3, 1)  # node 3: the set comes and goes
    net.deliver(3, 2)
    converge(net)
    assert pttl(net[3], b"k") == -1
    assert typ(net[3], b"k") == b"hash"


def test_del_of_other_types_reaches_tombstone_ttl():
    """The clear of a set (DEL) wrote the TTL of the other objects only when
    they were hidden, not the string tombstone, which INCR later revived with
    an older TTL on some nodes. Fix: `_clear_done` uses `_ttl_others`."""
    net = Net()
    n1 = net[1]
    n1.run(b"SET", b"a", b"x")
    n1.run(b"DEL", b"a")
    n1.run(b"SADD", b"a", b"m1")
    n1.run(b"DEL", b"a")
    net[2].run(b"INCR", b"a")
    converge(net)


def test_expire_reaches_the_string_tombstone_locally_too():
    """EXPIRE wrote the tombstone's TTL on peers (OP_TTL) but not on the
    origin (emit_ttl): a counter that revived the tombstone later had a TTL
    on the peers only. Fix: both go through `_ttl_write`."""
    net = Net()
    n1 = net[1]
    n1.run(b"SET", b"k", b"v")
    n1.run(b"DEL", b"k")
    n1.run(b"SADD", b"k", b"m")
    n1.run(b"EXPIRE", b"k", b"1000")
    net.deliver_all()
    n1.run(b"SREM", b"k", b"m")
    n1.run(b"INCR", b"k")
    converge(net)
    assert pttl(n1, b"k") == -1


def test_emptied_key_loses_its_ttl_like_redis():
    """Redis: a set emptied by SREM is deleted with its TTL; SADD makes a new
    key without one. The key's TTL register outlives the set (tombstone), so
    the removal that empties a key also writes it (`_emptied`)."""
    net = Net()
    n1 = net[1]
    for cmds in (
        [(b"SADD", b"k", b"m"), (b"EXPIRE", b"k", b"1000"), (b"SREM", b"k", b"m")],
        [(b"SADD", b"k", b"m"), (b"EXPIRE", b"k", b"1000"), (b"SPOP", b"k")],
        [(b"HSET", b"k", b"f", b"v"), (b"EXPIRE", b"k", b"1000"), (b"HDEL", b"k", b"f")],
    ):
        for c in cmds:
            n1.run(*c)
        assert n1.run(b"EXISTS", b"k") == b":0\r\n"
        n1.run(b"SADD", b"k", b"m2")
        assert n1.run(b"TTL", b"k") == b":-1\r\n"
        n1.run(b"DEL", b"k")
    converge(net)


def test_expiry_is_a_del_and_converges():
    net = Net()
    net[1].run(b"SET", b"k", b"v", b"PXAT", str(T_FAR + 1000))
    net[1].run(b"SADD", b"s", b"m")
    net[1].run(b"PEXPIREAT", b"s", str(T_FAR + 1000))
    net.deliver_all()
    net[2].run(b"SADD", b"s", b"n")  # concurrent with node 3's expiry: survives
    net[3].expire_at(T_FAR + 1000, [b"k", b"s"])
    converge(net)
    assert net[1].run(b"EXISTS", b"k") == b":0\r\n"
    assert members(net[1], b"s") == [b"n"]
    assert pttl(net[1], b"s") == -1


def test_rename_onto_key_with_stale_ttl_register():
    """An EXPIRE concurrent with a DEL, and newer, leaves an expiry in the
    register of a key that is gone. RENAME onto that key must give it the
    source's TTL (none), as in Redis: the DEL of the absent destination writes
    the register (`emit_del`, `_clear_stale_ttl`)."""
    net = Net()
    net[1].run(b"SADD", b"d", b"m")
    net.deliver(2, 1)
    clock = net[2].ks.clock
    clock.observe(clock.last + 100)  # node 2's clock runs ahead
    net[2].run(b"EXPIRE", b"d", b"1000")
    net[1].run(b"DEL", b"d")  # concurrent, older than the EXPIRE
    converge(net)
    assert net[3].run(b"EXISTS", b"d") == b":0\r\n"
    net[3].run(b"SADD", b"s", b"x")
    assert net[3].run(b"RENAME", b"s", b"d") == b"+OK\r\n"
    assert net[3].run(b"TTL", b"d") == b":-1\r\n"
    converge(net)
    assert members(net[1], b"d") == [b"x"]
    assert pttl(net[1], b"d") == -1


def test_gc_keeps_a_tombstone_whose_ttl_register_holds_an_expiry():
    # node 2 deletes k while node 1, later by ts, gives it an expiry: the key's
    # TTL register then holds that expiry, for whatever is made on k next; a
    # node that collected the tombstone must not forget it
    net = Net()
    net[2].run(b"SADD", b"k", b"m")
    net.deliver_all()
    net[2].run(b"DEL", b"k")
    for _ in range(3):
        net[1].run(b"SET", b"x", b"y")
    net[1].run(b"EXPIRE", b"k", b"1000")
    net.deliver_all()
    net[3].run(b"SET", b"z", b"1")
    net.deliver_all()
    stable = min(n.ks.clock.last for n in net.nodes.values())
    net[1].ks.gc(stable)
    net[3].run(b"SADD", b"k", b"m2")
    net.deliver_all()
    times = {i: net[i].run(b"PEXPIRETIME", b"k") for i in net.nodes}
    assert len(set(times.values())) == 1, times
