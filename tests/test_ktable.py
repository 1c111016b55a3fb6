"""KeyTable (constdb/_core/ktable.pyx, ktable.h), the keyspace's key -> object
map, against a Python dict: random operation sequences, growth and shrink,
odd keys, crowded probing, random entries, iteration under mutation."""

from __future__ import annotations

import collections
import random

import pytest
from constdb._core.ktable import KeyTable
from hypothesis import given, settings
from hypothesis import strategies as st

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
        # at most 3/4 full, at least 3/8 after growing (bar the smallest table)
        assert len(t) * 4 <= t.slots() * 3
        assert t.slots() * 3 <= max(24, 8 * len(t))
        # delete all but a few: the table shrinks, every survivor stays
        for k in list(d)[: max(0, n - 3)]:
            assert t.pop(k) == d.pop(k)
        check_same(t, d)
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
