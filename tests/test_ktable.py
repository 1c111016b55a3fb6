"""KeyTable (constdb/_core/ktable.pyx, ktable.h), the keyspace's key -> object
map, against a Python dict: random operation sequences, growth and shrink,
odd keys, crowded probing, random entries, iteration under mutation, and
the incremental resize (ktable.h): every operation while a resize drains,
with the drain's batch forced small (KeyTable._set_step), clusters that wrap
around the old array's end, deletes mid-drain, walks and random draws, a
shrink wanted mid-grow, a clear mid-drain, the cron's step."""

from __future__ import annotations

import collections
import random
import time

import pytest
from constdb._core.ktable import KeyTable, rehash_tables
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

keys = st.binary(min_size=0, max_size=12)
ops = st.lists(
    st.tuples(st.sampled_from(["set", "del", "pop", "get", "in"]), keys, st.integers()),
    max_size=400,
)


def check_same(t: KeyTable, d: dict) -> None:
    assert len(t) == len(d)
    assert bool(t) == bool(d)
    assert sorted(t) == sorted(d)
    assert sorted(t.items()) == sorted(d.items())
    assert sorted(t.values()) == sorted(d.values())
    assert t == d and d == t
    for k, v in d.items():
        assert t[k] == v


@settings(max_examples=300, deadline=None)
@given(ops)
def test_random_sequences_same_as_dict(seq):
    t = KeyTable()
    d: dict = {}
    for op, k, v in seq:
        if op == "set":
            t[k] = v
            d[k] = v
        elif op == "del":
            if k in d:
                del t[k]
                del d[k]
            else:
                with pytest.raises(KeyError):
                    del t[k]
        elif op == "pop":
            assert t.pop(k, None) == d.pop(k, None)
        elif op == "get":
            assert t.get(k) == d.get(k)
        else:
            assert (k in t) == (k in d)
    check_same(t, d)


def settle(t: KeyTable) -> None:
    """Finishes a resize in progress (the cron's step, as an idle server's)."""
    while t.rehash_step(1.0):
        pass
    assert not t.rehashing()


def test_grow_and_shrink_across_sizes():
    rng = random.Random(7)
    for n in (1, 5, 6, 7, 13, 100, 1000, 30_000):
        t = KeyTable()
        d = {}
        for i in range(n):
            k = b"key:%010d" % rng.randrange(1 << 40)
            t[k] = i
            d[k] = i
        check_same(t, d)
        settle(t)
        # at most 3/4 full, at least 3/8 after growing (bar the smallest table)
        assert len(t) * 4 <= t.slots() * 3
        assert t.slots() * 3 <= max(24, 8 * len(t))
        # delete all but a few: the table shrinks, every survivor stays
        for k in list(d)[: max(0, n - 3)]:
            assert t.pop(k) == d.pop(k)
        check_same(t, d)
        settle(t)
        # it halves below 1/8 full (to between 1/4 and 1/2)
        assert t.slots() <= max(8, 8 * len(t))
        t.clear()
        assert len(t) == 0 and t.slots() == 0 and t == {}
        t[b"again"] = 1
        assert t[b"again"] == 1


def test_odd_keys():
    t = KeyTable()
    big = bytes(range(256)) * 4096  # 1 MB, every byte value
    odd = [b"", b"\x00", b"\x00\x00", b"a\x00b", b"a", big, big[:-1], big[1:]]
    for i, k in enumerate(odd):
        t[k] = i
    for i, k in enumerate(odd):
        assert t[k] == i
    assert b"a\x00" not in t and b"\x00\x00\x00" not in t
    assert sorted(t) == sorted(odd)
    assert t.pop(big) == 5 and big not in t and t[big[:-1]] == 6
    # a bytes subclass finds the same entry; other types are not keys
    assert t[type("B", (bytes,), {})(b"a")] == 4
    assert "a" not in t and t.get("a") is None
    with pytest.raises(TypeError):
        t["a"] = 1
    with pytest.raises(KeyError):
        t[b"missing"]


def test_crowded_probing_in_a_small_table():
    # a table of 8 slots with 6 keys, then many deletes and inserts that
    # wrap around its end: every key stays reachable (backward-shift deletion)
    rng = random.Random(3)
    pool = [b"%d" % i for i in range(64)]
    for _round in range(300):
        t = KeyTable()
        d = {}
        for _ in range(40):
            k = rng.choice(pool)
            if len(d) < 6 and rng.random() < 0.6:
                t[k] = _round
                d[k] = _round
            elif k in d:
                del t[k]
                del d[k]
            for x in pool:
                assert (x in t) == (x in d)
        check_same(t, d)


def test_random_key_covers_every_entry():
    for n, keep in ((50, 30), (1000, 130), (5, 5)):
        # (1000 keys, 870 deleted: the table is about 1/8 full, the sparsest
        # it gets before it halves)
        t = KeyTable()
        for i in range(n):
            t[b"k%d" % i] = i
        for k in list(t)[keep:]:
            del t[k]
        draws = 200 * len(t)
        seen = collections.Counter(t.random_key() for _ in range(draws))
        assert set(seen) == set(t)
        # near uniform: every key drawn between half and twice the mean
        assert max(seen.values()) < 400 and min(seen.values()) > 100, seen.most_common(2)
    assert KeyTable().random_key() is None


def test_iteration_raises_when_the_size_changes():
    t = KeyTable({b"a": 1, b"b": 2, b"c": 3})
    with pytest.raises(RuntimeError):
        for k in t:
            t[k + b"x"] = 0
    with pytest.raises(RuntimeError):
        for k, _v in t.items():
            del t[k]
    # replacing a key's object while walking is allowed, as in a dict
    for k in t:
        t[k] = 9
    assert set(t.values()) == {9}
    # a snapshot first, then any change
    for k in list(t):
        del t[k]
    assert not t


def test_mapping_face():
    t = KeyTable()
    assert t.setdefault(b"a", 1) == 1 and t.setdefault(b"a", 2) == 1
    t.update({b"b": 2})
    t.update([(b"c", 3)])
    assert t.keys() == {b"a", b"b", b"c"}
    assert (b"a", 1) in t.items()
    assert t.copy() == t and t.copy() is not t
    assert dict(t) == {b"a": 1, b"b": 2, b"c": 3}
    assert t != {b"a": 1}
    assert t.pop(b"zz", 5) == 5
    with pytest.raises(KeyError):
        t.pop(b"zz")
    assert t.nbytes() == 8 * t.slots() + 3 * 32


# ---- the incremental resize --------------------------------------------------


def _pool_by_low_bits(bits: int, n: int) -> dict[int, list[bytes]]:
    """Keys grouped by the low `bits` bits of their hash (this process's
    bytes hash: the key table uses it)."""
    out: dict[int, list[bytes]] = collections.defaultdict(list)
    i = 0
    while min((len(out[b]) for b in range(1 << bits)), default=0) < n:
        k = b"c%d" % i
        out[hash(k) & ((1 << bits) - 1)].append(k)
        i += 1
    return out


_LOW = _pool_by_low_bits(6, 24)
# homes at the last slots of every table up to 64 slots (their low bits all
# ones, or one short): their clusters wrap around the end, in the old array
# and the new; a few ordinary keys besides
_CROWDED = _LOW[63] + _LOW[62] + _LOW[31][:6] + _LOW[0][:6]
_KEYS = st.one_of(st.sampled_from(_CROWDED), st.binary(min_size=0, max_size=6))


class ResizeMachine(RuleBasedStateMachine):
    """A KeyTable against a dict while its resizes drain a few entries per
    operation (0 to 3: 0 leaves the drain to the cron's step and to a grow
    that must finish it)."""

    def __init__(self):
        super().__init__()
        self.t = KeyTable()
        self.d: dict = {}
        self.n = 0

    @rule(step=st.integers(0, 3))
    def set_step(self, step):
        self.t._set_step(step)

    @rule(k=_KEYS)
    def set(self, k):
        self.n += 1
        self.t[k] = self.n
        self.d[k] = self.n

    @rule(ks=st.lists(_KEYS, min_size=1, max_size=40))
    def set_many(self, ks):
        for k in ks:
            self.set(k)

    @rule(k=_KEYS)
    def delete(self, k):
        if k in self.d:
            del self.t[k]
            del self.d[k]
        else:
            with pytest.raises(KeyError):
                del self.t[k]

    @rule(frac=st.floats(0.0, 1.0))
    def delete_many(self, frac):
        for k in list(self.d)[: int(len(self.d) * frac)]:
            assert self.t.pop(k) == self.d.pop(k)

    @rule(k=_KEYS)
    def get(self, k):
        assert self.t.get(k) == self.d.get(k)
        assert (k in self.t) == (k in self.d)

    @rule()
    def cron(self):
        self.t.rehash_step(0.0)  # one batch of 128 entries (or the rest)

    @precondition(lambda self: len(self.d) > 0)
    @rule()
    def random_key(self):
        for _ in range(5):
            assert self.t.random_key() in self.d

    @rule()
    def walk(self):
        # a walk (kt_next) sees every entry once, in whichever array it is
        ks = list(self.t)
        assert len(ks) == len(set(ks)) == len(self.d)
        assert set(ks) == set(self.d)

    @rule()
    def clear(self):
        self.t.clear()
        self.d.clear()
        assert self.t.slots() == 0 and not self.t.rehashing()

    @invariant()
    def same(self):
        assert len(self.t) == len(self.d)
        for k, v in self.d.items():
            assert self.t[k] == v
        for k in _CROWDED[:20]:
            assert (k in self.t) == (k in self.d)
        n = len(self.d)
        assert self.t.nbytes() == 8 * self.t.slots() + sum((16 + len(k) + 15) & ~15 for k in self.d)
        if not self.t.rehashing() and self.t.slots():
            assert n * 4 <= self.t.slots() * 3


ResizeMachine.TestCase.settings = settings(max_examples=200, stateful_step_count=60, deadline=None)
test_resize_machine = ResizeMachine.TestCase


def _draining(n: int) -> tuple[KeyTable, dict]:
    """A table of at least n keys left mid-grow: it grew at its last insert
    and nothing moves at an insert or delete (step 0)."""
    t = KeyTable()
    d = {}
    for i in range(n):
        t[b"r%d" % i] = d[b"r%d" % i] = i
    settle(t)
    t._set_step(0)
    i = n
    while not t.rehashing():
        t[b"r%d" % i] = d[b"r%d" % i] = i
        i += 1
    return t, d


def test_walk_and_random_draws_mid_drain_are_uniform():
    t, d = _draining(96)  # a grow from 128 slots: 96 entries in the old array
    for i in range(40):  # and some in the new one
        t[b"n%d" % i] = d[b"n%d" % i] = i
    assert t.rehashing()
    assert t.slots() == 128 + 256
    check_same(t, d)
    draws = 400 * len(t)
    seen = collections.Counter(t.random_key() for _ in range(draws))
    assert set(seen) == set(d)
    # every key near 400 draws, the old array's as the new's
    assert max(seen.values()) < 600 and min(seen.values()) > 250, seen.most_common(2)
    # half drained by the cron's batches: still uniform (draws skip the
    # drained part of the old array)
    t._set_step(1)
    for i in range(30):
        t[b"m%d" % i] = d[b"m%d" % i] = i
    assert t.rehashing()
    seen = collections.Counter(t.random_key() for _ in range(400 * len(t)))
    assert set(seen) == set(d)
    assert max(seen.values()) < 600 and min(seen.values()) > 250, seen.most_common(2)


def test_each_operation_moves_a_bounded_batch():
    # default step: an insert or delete moves at most 16 entries, so a
    # drain of m entries lasts m / 17 operations or more (a delete also
    # takes its own entry out of the old array)
    t = KeyTable()
    i = 0
    while t.slots() < 1 << 16 or not t.rehashing():
        t[b"k%d" % i] = i
        i += 1
    old = t.slots() - (1 << 16)  # the array being drained
    assert old == 1 << 15
    left = len(t) - 1
    ops = 0
    while t.rehashing():
        if ops % 2:
            del t[b"k%d" % (ops // 2)]
        else:
            t[b"x%d" % ops] = ops
        ops += 1
    assert ops >= left // 17, (ops, left)
    assert t.slots() == 1 << 16
    for j in range(ops // 2 + 1, i):
        assert t[b"k%d" % j] == j


def test_deletes_mid_drain_then_shrink():
    t, d = _draining(6000)  # mid-grow 8192 -> 16384 slots
    # delete nearly everything while the old array drains: a shrink is
    # wanted but waits for the drain's end
    for k in list(d)[:5990]:
        assert t.pop(k) == d.pop(k)
    check_same(t, d)
    settle(t)  # the cron ends the drain and halves the table, then drains that
    assert not t.rehashing() and t.slots() <= max(8, 8 * len(t))
    check_same(t, d)


def test_grow_needed_mid_drain_finishes_it_first():
    t, d = _draining(48)  # grow 64 -> 128 slots, nothing moved (step 0)
    for i in range(200):  # past 3/4 of 128 and 256: each grow ends the drain before
        t[b"g%d" % i] = d[b"g%d" % i] = i
    check_same(t, d)
    settle(t)
    assert t.slots() == 512


def test_clear_mid_drain():
    t, d = _draining(3000)
    t.clear()
    assert len(t) == 0 and t.slots() == 0 and not t.rehashing() and t.random_key() is None
    for i in range(1000):
        t[b"z%d" % i] = i
    assert len(t) == 1000 and t[b"z999"] == 999


def test_rehash_tables_drains_idle_tables_within_a_budget():
    a, da = _draining(3000)
    b, db = _draining(24)
    c = KeyTable({b"x": 1})
    left = rehash_tables([c, a, b], 0.0)  # no time: nothing moves
    assert left == 2 and a.rehashing() and b.rehashing()
    a.rehash_step(0.0)  # one batch of 128 entries
    assert a.rehashing()
    while rehash_tables([c, a, b], 1.0):
        pass
    assert not a.rehashing() and not b.rehashing()
    check_same(a, da)
    check_same(b, db)


def _main_overhead(r) -> int:
    return r.memory_stats()["db.0"]["overhead.hashtable.main"]


def test_a_server_mid_resize_answers_right_and_its_cron_finishes(r):
    # 49,200 keys: the db's key table grew at the 49,153rd (65,536 ->
    # 131,072 slots) and is drained by the next writes and the cron's step
    n = 49_200
    p = r.pipeline(transaction=False)
    for i in range(n):
        p.set(b"k%d" % i, i)
    p.execute()
    assert r.dbsize() == n
    assert _main_overhead(r) - 16 * n in (8 * 131_072, 8 * (131_072 + 65_536))
    assert len(r.keys("*")) == n
    assert all(r.randomkey().startswith(b"k") for _ in range(50))
    # delete all but 4,200 (a shrink is wanted, during or after the grow's
    # drain: at 16,383 keys, to 32,768 slots)
    p = r.pipeline(transaction=False)
    for i in range(4_200, n):
        p.delete(b"k%d" % i)
    p.execute()
    seen, cur = set(), 0
    while True:
        cur, ks = r.scan(cur, count=1000)
        seen.update(ks)
        if cur == 0:
            break
    assert seen == {b"k%d" % i for i in range(4_200)}
    assert r.mget([b"k%d" % i for i in range(4_200)]) == [b"%d" % i for i in range(4_200)]
    # an idle server: the cron ends every drain and the shrink
    want = 8 * 32_768 + 16 * 4_200
    deadline = time.monotonic() + 20
    while _main_overhead(r) != want:
        assert time.monotonic() < deadline, _main_overhead(r)
        time.sleep(0.02)
    assert r.dbsize() == 4_200
