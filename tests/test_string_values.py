"""A string's value is kept three ways (objects.pxd, "a string's value"):
inline in the object (up to 7 bytes), in a buffer the object owns (longer
bytes), or as a Python object (a value bit commands wrote). These tests walk
values across those boundaries with every string command, beside redis-server,
and check that the memory count follows the buffers."""

from __future__ import annotations

import pytest
from support.differential import run_all

# lengths around the inline limit (7), pymalloc's size classes and its
# 512-byte limit (a buffer holds 4 bytes of length before the value)
LENGTHS = [0, 1, 7, 8, 9, 12, 13, 100, 107, 108, 508, 509, 600, 5000]


def val(n: int, c: str = "v") -> str:
    return (c * n)[:n]


@pytest.mark.parametrize("n", LENGTHS)
def test_value_lengths_through_the_string_commands(raw_pair, n):
    v = val(n)
    run_all(
        raw_pair,
        [
            ("SET", "k", v),
            ("GET", "k"),
            ("STRLEN", "k"),
            ("GETRANGE", "k", "1", "-2"),
            ("OBJECT", "ENCODING", "k"),
            ("APPEND", "k", "ab"),
            ("GET", "k"),
            ("SETRANGE", "k", "3", "XYZ"),
            ("GET", "k"),
            ("SETRANGE", "k", str(n + 10), "Q"),
            ("GET", "k"),
            ("STRLEN", "k"),
            ("SET", "k", val(n, "w"), "GET"),
            ("GET", "k"),
            ("SET", "k", val(n + 1, "z"), "GET"),
            ("GETSET", "k", val(max(n - 1, 0), "y")),
            ("GETDEL", "k"),
            ("GET", "k"),
            ("SET", "n", "1" + "0" * min(n, 17)),
            ("INCRBYFLOAT", "n", "0.5"),
            ("GET", "n"),
            ("INCRBY", "n", "3"),
            ("SET", "m", val(n)),
            ("INCR", "m"),
            ("GET", "m"),
        ],
    )


@pytest.mark.parametrize("n", [8, 100, 600])
def test_bit_commands_on_a_buffer_value(raw_pair, n):
    run_all(
        raw_pair,
        [
            ("SET", "b", val(n, "a")),
            ("SETBIT", "b", "5", "1"),
            ("GET", "b"),
            ("BITCOUNT", "b"),
            ("SET", "b", val(n, "c")),
            ("GET", "b"),
            ("SETBIT", "b", str(8 * n + 3), "1"),
            ("STRLEN", "b"),
            ("APPEND", "b", "x"),
            ("GET", "b"),
        ],
    )


@pytest.mark.parametrize("n", [3, 100, 600, 5000])
def test_dump_restore_round_trip(r, n):
    r.set("k", val(n, "d"))
    r.restore("k2", 0, r.dump("k"))
    assert r.get("k2") == val(n, "d").encode()
    assert r.strlen("k2") == n


def test_memory_usage_follows_the_value_block(r):
    # a buffer is 4 bytes of length and the value, in pymalloc's 16-byte
    # classes: 100 and 108 bytes share one (112), 109 takes the next (128).
    # (Key names of their own: a key earlier tests counted on keeps its
    # counter entries after FLUSHALL, in its tombstone, and counts them.)
    for k, n in (("a", 100), ("b", 108), ("c", 109), ("d", 7), ("e", 8)):
        r.set("mu-buf:" + k, "x" * n)
    ua, ub, uc, ud, ue = (r.memory_usage("mu-buf:" + k) for k in "abcde")
    assert ua == ub
    assert uc == ua + 16
    assert ue == ud + 16
    # a same-length overwrite reuses the buffer; the count does not move
    used = r.info("memory")["used_memory"]
    r.set("mu-buf:a", "y" * 100)
    assert r.memory_usage("mu-buf:a") == ua
    assert r.get("mu-buf:a") == b"y" * 100
    assert r.info("memory")["used_memory"] - used < 1024
