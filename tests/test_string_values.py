"""A string's value is kept four ways (objects.pxd, "a string's value"):
in the object's own block from its offset 44 (up to 20 bytes in the fixed
64, up to 468 in a key made with a longer one, its block going on past the
64; test_strtail.py), inline in the object's word (up to 7 bytes, when the
block cannot take it: the key has counter entries), in a buffer the object
owns (longer bytes), or as a Python object (a value bit commands wrote).
These tests walk values across those boundaries with every string command,
beside redis-server, and check that the memory count follows the buffers."""

from __future__ import annotations

import pytest
from support.differential import run_all

# lengths around the inline limit (7), the fixed block's room (20),
# pymalloc's size classes and its 512-byte limit (a buffer holds 4 bytes of
# length before the value; a block value starts at offset 44)
LENGTHS = [0, 1, 7, 8, 9, 12, 13, 20, 21, 100, 107, 108, 468, 469, 508, 509, 600, 5000]


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
    # a value of up to 20 bytes fits the object's 64-byte block; a key made
    # with one of 21 to 468 bytes has a block of 44 + the length, in
    # pymalloc's 16-byte classes (test_strtail.py), so 100 and 85 bytes share
    # one (144), 101 takes the next (160), and so do 20 (64) and 21 (80).
    # Past 468 bytes the value is a buffer: 4 bytes of length and the value.
    # (Key names of their own: a key earlier tests counted on keeps its
    # counter entries after FLUSHALL, in its tombstone, and counts them.)
    for k, n in (("a", 100), ("b", 85), ("c", 101), ("d", 20), ("e", 21), ("f", 600), ("g", 613)):
        r.set("mu-buf:" + k, "x" * n)
    ua, ub, uc, ud, ue, uf, ug = (r.memory_usage("mu-buf:" + k) for k in "abcdefg")
    assert ua == ub
    assert uc == ua + 16
    assert ue == ud + 16
    assert uf == ud + 624 and ug == uf + 16  # glibc: 8 bytes of header, 16-aligned
    # an overwrite that fits the block is written in place; the count does not move
    used = r.info("memory")["used_memory"]
    r.set("mu-buf:a", "y" * 100)
    r.set("mu-buf:c", "y" * 90)
    assert r.memory_usage("mu-buf:a") == ua
    assert r.memory_usage("mu-buf:c") == uc
    assert r.get("mu-buf:a") == b"y" * 100
    assert r.info("memory")["used_memory"] - used < 1024
