"""Bitmap commands (SETBIT GETBIT BITCOUNT BITPOS BITOP BITFIELD BITFIELD_RO):
replies compared byte for byte with redis-server 7.0 in RESP2 and RESP3
(targeted cases with every option, error and edge case, and random command
sequences), and the values they leave read back through GET."""

from __future__ import annotations

import random

import pytest
from support.differential import run_all, same


def z(*parts):
    return [p if isinstance(p, bytes) else str(p).encode() for p in parts]


SETBIT = [
    z("SETBIT", "b", 7, 1),
    z("SETBIT", "b", 7, 1),
    z("SETBIT", "b", 7, 0),
    z("SETBIT", "b", 7, 0),
    z("SETBIT", "b", 100, 0),
    z("GET", "b"),
    z("STRLEN", "b"),
    z("SETBIT", "b", 0, 1),
    z("SETBIT", "b", 1, 1),
    z("SETBIT", "b", 2, 2),
    z("SETBIT", "b", 2, -1),
    z("SETBIT", "b", 2, "x"),
    z("SETBIT", "b", 2, ""),
    z("SETBIT", "b", 2, " 1"),
    z("SETBIT", "b", 2, "01"),
    z("SETBIT", "b", -1, 1),
    z("SETBIT", "b", "x", 1),
    z("SETBIT", "b", "", 1),
    z("SETBIT", "b", "1.5", 1),
    z("SETBIT", "b", "#3", 1),
    z("SETBIT", "b", 4294967296, 1),
    z("SETBIT", "b", 4294967295 * 2, 1),
    z("SETBIT", "b", "99999999999999999999", 1),
    z("SETBIT", "b", -1, 5),
    z("SETBIT", "b", 1, 5),
    z("SETBIT", "b"),
    z("SETBIT", "b", 1, 1, 1),
    z("GET", "b"),
    z("SET", "s", "foobar"),
    z("SETBIT", "s", 7, 1),
    z("SETBIT", "s", 6, 0),
    z("GET", "s"),
    z("SET", "n", "12"),
    z("INCR", "n"),
    z("SETBIT", "n", 6, 0),
    z("GET", "n"),
    z("INCR", "c"),
    z("INCRBY", "c", 5),
    z("SETBIT", "c", 7, 0),
    z("GET", "c"),
    z("SETBIT", "c", 30, 1),
    z("GET", "c"),
    z("INCR", "c"),
    z("RPUSH", "l", "a"),
    z("SETBIT", "l", 1, 1),
    z("SETBIT", "l", -1, 1),
    z("SETBIT", "l", 1, 2),
    z("SET", "e", ""),
    z("SETBIT", "e", 3, 1),
    z("GET", "e"),
    z("SETBIT", "x", 0, 0),
    z("EXISTS", "x"),
    z("GET", "x"),
    z("SET", "t", "abc", "EX", 100),
    z("SETBIT", "t", 1, 1),
    z("TTL", "t"),
    z("APPEND", "b", "zz"),
    z("SETRANGE", "b", 1, "Q"),
    z("GETRANGE", "b", 0, 3),
    z("GET", "b"),
]

GETBIT = [
    z("GETBIT", "none", 0),
    z("GETBIT", "none", -1),
    z("GETBIT", "none", "x"),
    z("GETBIT", "none", 4294967296),
    z("GETBIT", "none", 4294967295),
    z("SET", "s", "`"),
    z("GETBIT", "s", 0),
    z("GETBIT", "s", 1),
    z("GETBIT", "s", 2),
    z("GETBIT", "s", 3),
    z("GETBIT", "s", 8),
    z("GETBIT", "s", 100000),
    z("GETBIT", "s", "#1"),
    z("SET", "i", 1234),
    z("GETBIT", "i", 2),
    z("GETBIT", "i", 3),
    z("INCR", "j"),
    z("GETBIT", "j", 2),
    z("GETBIT", "j", 7),
    z("SADD", "set", "a"),
    z("GETBIT", "set", 0),
    z("GETBIT", "set", -1),
    z("GETBIT"),
    z("GETBIT", "s"),
    z("GETBIT", "s", 1, 2),
]

BITCOUNT = [
    z("BITCOUNT", "none"),
    z("BITCOUNT", "none", 0, 1),
    z("BITCOUNT", "none", 0),
    z("BITCOUNT", "none", "a", "b"),
    z("BITCOUNT", "none", 0, 1, "BIT"),
    z("BITCOUNT", "none", 0, 1, "bad"),
    z("SET", "s", "foobar"),
    z("BITCOUNT", "s"),
    z("BITCOUNT", "s", 0, 0),
    z("BITCOUNT", "s", 1, 1),
    z("BITCOUNT", "s", 0, -1),
    z("BITCOUNT", "s", -2, -1),
    z("BITCOUNT", "s", -1, -2),
    z("BITCOUNT", "s", -100, 100),
    z("BITCOUNT", "s", 100, 200),
    z("BITCOUNT", "s", 3, 1),
    z("BITCOUNT", "s", 5, 30, "BIT"),
    z("BITCOUNT", "s", 5, 30, "bit"),
    z("BITCOUNT", "s", 0, 0, "BYTE"),
    z("BITCOUNT", "s", 1, 1, "byte"),
    z("BITCOUNT", "s", -5, -1, "BIT"),
    z("BITCOUNT", "s", -1, -5, "BIT"),
    z("BITCOUNT", "s", 7, 7, "BIT"),
    z("BITCOUNT", "s", 9, 9, "BIT"),
    z("BITCOUNT", "s", 3, 4, "BIT"),
    z("BITCOUNT", "s", 0, 47, "BIT"),
    z("BITCOUNT", "s", 0, 1000, "BIT"),
    z("BITCOUNT", "s", 0),
    z("BITCOUNT", "s", 0, "x"),
    z("BITCOUNT", "s", "x", 0),
    z("BITCOUNT", "s", 0, 1, "BITS"),
    z("BITCOUNT", "s", 0, 1, "BIT", "x"),
    z("BITCOUNT", "s", "9223372036854775807", "-9223372036854775808"),
    z("BITCOUNT", "s", "-9223372036854775808", "9223372036854775807", "BIT"),
    z("SET", "e", ""),
    z("BITCOUNT", "e"),
    z("BITCOUNT", "e", 0, -1),
    z("BITCOUNT", "e", 0, -1, "BIT"),
    z("SET", "i", "-123"),
    z("BITCOUNT", "i"),
    z("INCRBY", "c", 77),
    z("BITCOUNT", "c"),
    z("RPUSH", "l", "a"),
    z("BITCOUNT", "l"),
    z("BITCOUNT", "l", 0),
    z("BITCOUNT"),
]

BITPOS = [
    z("BITPOS", "none", 0),
    z("BITPOS", "none", 1),
    z("BITPOS", "none", 2),
    z("BITPOS", "none", "x"),
    z("BITPOS", "none", 1, 0, 1, "BIT"),
    z("BITPOS", "none", 0, "x"),
    z("SET", "s", b"\xff\xf0\x00"),
    z("BITPOS", "s", 0),
    z("BITPOS", "s", 1),
    z("BITPOS", "s", 0, 0),
    z("BITPOS", "s", 0, 1),
    z("BITPOS", "s", 0, 2),
    z("BITPOS", "s", 0, 3),
    z("BITPOS", "s", 1, 2),
    z("BITPOS", "s", 1, 2, -1),
    z("BITPOS", "s", 0, 0, 0),
    z("BITPOS", "s", 0, 0, -2),
    z("BITPOS", "s", 1, -1),
    z("BITPOS", "s", 1, -100, 100),
    z("BITPOS", "s", 0, 5, 3),
    z("BITPOS", "s", 0, 0, -1, "BYTE"),
    z("BITPOS", "s", 0, 0, -1, "BIT"),
    z("BITPOS", "s", 1, 3, 10, "BIT"),
    z("BITPOS", "s", 0, 3, 10, "BIT"),
    z("BITPOS", "s", 0, 3, 11, "BIT"),
    z("BITPOS", "s", 0, 12, 13, "BIT"),
    z("BITPOS", "s", 1, 12, 13, "BIT"),
    z("BITPOS", "s", 1, 5, 6, "BIT"),
    z("BITPOS", "s", 0, 5, 6, "BIT"),
    z("BITPOS", "s", 1, 9, 22, "BIT"),
    z("BITPOS", "s", 1, 16, 23, "BIT"),
    z("BITPOS", "s", 0, 16, 23, "BIT"),
    z("BITPOS", "s", 0, -3, -1, "BIT"),
    z("BITPOS", "s", 1, -10, -1, "BIT"),
    z("BITPOS", "s", 0, 0, 100, "BIT"),
    z("BITPOS", "s", 1, 0, 100, "bit"),
    z("BITPOS", "s", 1, 0, 1, "bits"),
    z("BITPOS", "s", 1, "x"),
    z("BITPOS", "s", 1, 0, "x"),
    z("BITPOS", "s", 1, 0, 1, "BIT", "x"),
    z("SET", "ones", b"\xff\xff"),
    z("BITPOS", "ones", 0),
    z("BITPOS", "ones", 0, 0),
    z("BITPOS", "ones", 0, 0, -1),
    z("BITPOS", "ones", 0, 0, 15, "BIT"),
    z("BITPOS", "ones", 0, 3, 9, "BIT"),
    z("BITPOS", "ones", 1, 3, 9, "BIT"),
    z("SET", "zeros", b"\x00\x00"),
    z("BITPOS", "zeros", 1),
    z("BITPOS", "zeros", 0),
    z("BITPOS", "zeros", 1, 1),
    z("BITPOS", "zeros", 1, 0, 15, "BIT"),
    z("SET", "e", ""),
    z("BITPOS", "e", 0),
    z("BITPOS", "e", 1),
    z("BITPOS", "e", 0, 0),
    z("BITPOS", "e", 0, 0, -1),
    z("INCRBY", "c", 7),
    z("BITPOS", "c", 1),
    z("RPUSH", "l", "a"),
    z("BITPOS", "l", 1),
    z("BITPOS", "l", 3),
    z("BITPOS", "s"),
]

BITOP = [
    z("SET", "a", b"\xff\x0f"),
    z("SET", "b", b"\xf0"),
    z("SET", "c", b"\x01\x02\x03"),
    z("BITOP", "AND", "d", "a", "b"),
    z("GET", "d"),
    z("BITOP", "and", "d", "a", "b", "c"),
    z("GET", "d"),
    z("BITOP", "OR", "d", "a", "b", "c"),
    z("GET", "d"),
    z("BITOP", "XOR", "d", "a", "b", "c"),
    z("GET", "d"),
    z("BITOP", "NOT", "d", "a"),
    z("GET", "d"),
    z("BITOP", "NOT", "d", "a", "b"),
    z("BITOP", "AND", "d", "a", "none"),
    z("GET", "d"),
    z("BITOP", "AND", "d", "none", "a"),
    z("GET", "d"),
    z("BITOP", "OR", "d", "none", "a"),
    z("GET", "d"),
    z("BITOP", "NOT", "d", "none"),
    z("EXISTS", "d"),
    z("BITOP", "OR", "d", "none", "none2"),
    z("EXISTS", "d"),
    z("SET", "e", ""),
    z("SET", "d", "x"),
    z("BITOP", "AND", "d", "e"),
    z("EXISTS", "d"),
    z("BITOP", "AND", "d", "e", "a"),
    z("GET", "d"),
    z("BITOP", "NAND", "d", "a"),
    z("BITOP", "AND", "d"),
    z("RPUSH", "l", "x"),
    z("BITOP", "OR", "d", "a", "l"),
    z("BITOP", "OR", "l", "a", "b"),
    z("TYPE", "l"),
    z("GET", "l"),
    z("SET", "t", "v", "EX", 100),
    z("BITOP", "OR", "t", "a"),
    z("TTL", "t"),
    z("INCRBY", "n", 300),
    z("BITOP", "OR", "d", "n", "a"),
    z("GET", "d"),
    z("BITOP", "OR", "a", "a", "c"),
    z("GET", "a"),
]

BITFIELD = [
    z("BITFIELD", "none"),
    z("BITFIELD", "none", "GET", "u8", 0),
    z("EXISTS", "none"),
    z("BITFIELD", "f", "SET", "u8", 0, 255),
    z("BITFIELD", "f", "GET", "u8", 0, "GET", "i8", 0, "GET", "u4", 4, "GET", "i4", 4),
    z("BITFIELD", "f", "SET", "i8", 8, -100, "GET", "i8", 8, "GET", "u8", 8),
    z("BITFIELD", "f", "INCRBY", "u2", 100, 1, "OVERFLOW", "SAT", "INCRBY", "u2", 102, 1),
    z("BITFIELD", "f", "INCRBY", "u2", 100, 1, "INCRBY", "u2", 100, 1, "INCRBY", "u2", 100, 1),
    z("BITFIELD", "f", "OVERFLOW", "SAT", "INCRBY", "u2", 100, 10, "INCRBY", "u2", 100, -10),
    z("BITFIELD", "f", "OVERFLOW", "FAIL", "INCRBY", "u2", 100, 10, "INCRBY", "u2", 100, 1),
    z("BITFIELD", "f", "OVERFLOW", "WRAP", "INCRBY", "i8", 200, 127, "INCRBY", "i8", 200, 2),
    z("BITFIELD", "f", "OVERFLOW", "SAT", "INCRBY", "i8", 200, 127, "INCRBY", "i8", 200, -300),
    z("BITFIELD", "f", "OVERFLOW", "FAIL", "INCRBY", "i8", 200, -1000, "GET", "i8", 200),
    z("BITFIELD", "f", "SET", "i64", 300, "9223372036854775807", "INCRBY", "i64", 300, 1),
    z("BITFIELD", "f", "OVERFLOW", "SAT", "INCRBY", "i64", 300, "9223372036854775807"),
    z("BITFIELD", "f", "OVERFLOW", "SAT", "INCRBY", "i64", 300, "-9223372036854775808"),
    z("BITFIELD", "f", "OVERFLOW", "FAIL", "INCRBY", "i64", 300, "-9223372036854775808"),
    z("BITFIELD", "f", "SET", "u63", 400, "9223372036854775807", "GET", "u63", 400),
    z("BITFIELD", "f", "OVERFLOW", "SAT", "INCRBY", "u63", 400, 5, "GET", "u63", 400),
    z("BITFIELD", "f", "OVERFLOW", "WRAP", "INCRBY", "u63", 400, 5, "GET", "u63", 400),
    z("BITFIELD", "f", "SET", "u8", 500, 256, "SET", "u8", 500, -1, "GET", "u8", 500),
    z("BITFIELD", "f", "OVERFLOW", "SAT", "SET", "u8", 500, 256, "SET", "i8", 500, -200),
    z("BITFIELD", "f", "OVERFLOW", "FAIL", "SET", "u8", 500, 256, "GET", "u8", 500),
    z("BITFIELD", "f", "SET", "i5", "#3", 7, "GET", "i5", "#3", "GET", "u15", 13),
    z("BITFIELD", "f", "GET", "u8", "#1000000000"),
    z("BITFIELD", "f", "GET", "u8", "#536870912"),
    z("BITFIELD", "f", "GET", "i64", "#67108863"),
    z("BITFIELD", "f", "GET", "i64", "#67108864"),
    z("BITFIELD", "f", "GET", "i64", "#-1"),
    z("BITFIELD", "f", "GET", "u8", "#9223372036854775807"),
    z("BITFIELD", "f", "GET", "i64", "#2305843009213693952"),
    z("BITFIELD", "f", "GET", "i64", "#2305843009213693953"),
    z("BITFIELD", "f", "GET", "u8", "#0", "GET", "u8", "#00", "GET", "u8", "#+1"),
    z("BITFIELD", "f", "GET", "i64", "#"),
    z("BITFIELD", "f", "GET", "i64", "#x"),
    z("BITFIELD", "f", "GET", "u8", "4294967295"),
    z("BITFIELD", "f", "GET", "u8", "4294967296"),
    z("BITFIELD", "f", "GET", "u8", "-1"),
    z("BITFIELD", "f", "GET", "u64", 0),
    z("BITFIELD", "f", "GET", "i65", 0),
    z("BITFIELD", "f", "GET", "u0", 0),
    z("BITFIELD", "f", "GET", "i0", 0),
    z("BITFIELD", "f", "GET", "I8", 0),
    z("BITFIELD", "f", "GET", "x8", 0),
    z("BITFIELD", "f", "GET", "", 0),
    z("BITFIELD", "f", "GET", "i", 0),
    z("BITFIELD", "f", "GET", "i08", 0),
    z("BITFIELD", "f", "GET", "u8"),
    z("BITFIELD", "f", "SET", "u8", 0),
    z("BITFIELD", "f", "SET", "u8", 0, "x"),
    z("BITFIELD", "f", "INCRBY", "u8", 0, "1.5"),
    z("BITFIELD", "f", "OVERFLOW"),
    z("BITFIELD", "f", "OVERFLOW", "BAD", "GET", "u8", 0),
    z("BITFIELD", "f", "overflow", "sat", "incrby", "u8", 0, 1000, "get", "u8", 0),
    z("BITFIELD", "f", "FOO", "u8", 0),
    z("BITFIELD", "f", "GET", "u8", 0, "SET"),
    z("BITFIELD", "f", "GET", "u8", 0, "GET", "bad", 0),
    z("GET", "f"),
    z("BITFIELD", "g", "OVERFLOW", "FAIL", "INCRBY", "u2", 100, 10),
    z("EXISTS", "g"),
    z("GET", "g"),
    z("BITFIELD", "g", "SET", "u8", 0, 1, "OVERFLOW", "FAIL", "INCRBY", "u8", 200, 1000),
    z("GET", "g"),
    z("BITFIELD", "g", "SET", "i64", "#2000", -5),
    z("STRLEN", "g"),
    z("BITFIELD", "g", "SET", "u8", 4294967295, 1),
    z("BITFIELD", "g", "SET", "u8", 4294967296, 1),
    z("BITFIELD_RO", "none"),
    z("BITFIELD_RO", "none", "GET", "u8", 0),
    z("BITFIELD_RO", "f", "GET", "u8", 0, "GET", "i16", 3),
    z("BITFIELD_RO", "f", "SET", "u8", 0, 1),
    z("BITFIELD_RO", "f", "INCRBY", "u8", 0, 1),
    z("BITFIELD_RO", "f", "OVERFLOW", "SAT", "GET", "u8", 0),
    z("BITFIELD_RO", "f", "GET", "bad", 0),
    z("BITFIELD_RO", "f", "FOO"),
    z("BITFIELD_RO"),
    z("BITFIELD"),
    z("RPUSH", "l", "a"),
    z("BITFIELD", "l", "GET", "u8", 0),
    z("BITFIELD", "l", "SET", "u8", 0, 1),
    z("BITFIELD", "l"),
    z("BITFIELD_RO", "l", "GET", "u8", 0),
    z("BITFIELD", "l", "GET", "bad", 0),
    z("INCRBY", "c", 12345),
    z("BITFIELD", "c", "GET", "u8", 0, "SET", "u4", 4, 9),
    z("GET", "c"),
    z("SET", "t", "abc", "EX", 100),
    z("BITFIELD", "t", "SET", "u8", 0, 65),
    z("TTL", "t"),
    z("GET", "t"),
]


@pytest.mark.parametrize(
    "cmds",
    [SETBIT, GETBIT, BITCOUNT, BITPOS, BITOP, BITFIELD],
    ids=["setbit", "getbit", "bitcount", "bitpos", "bitop", "bitfield"],
)
def test_targeted(raw_pair, cmds):
    run_all(raw_pair, cmds)


def test_proto_max_bulk_len(raw_pair):
    """The offset limit follows proto-max-bulk-len (a smaller one here)."""
    try:
        run_all(
            raw_pair,
            [
                z("CONFIG", "SET", "proto-max-bulk-len", 1048576),
                z("SETBIT", "k", 8388607, 1),
                z("SETBIT", "k", 8388608, 1),
                z("GETBIT", "k", 8388608),
                z("BITFIELD", "k", "GET", "u8", 8388600, "GET", "u8", 8388608),
                z("BITFIELD", "k", "SET", "i64", "#131071", 1),
                z("BITFIELD", "k", "SET", "i64", "#131072", 1),
                z("STRLEN", "k"),
                z("BITCOUNT", "k"),
            ],
        )
    finally:
        for conn in raw_pair:
            conn.call(b"CONFIG", b"SET", b"proto-max-bulk-len", b"536870912")


@pytest.mark.slow
def test_big_offsets(raw_pair):
    """The last bit below the 512 MB limit, then reads across it."""
    run_all(
        raw_pair,
        [
            z("SETBIT", "big", 4294967295, 1),
            z("STRLEN", "big"),
            z("GETBIT", "big", 4294967295),
            z("BITCOUNT", "big"),
            z("BITCOUNT", "big", -1, -1),
            z("BITPOS", "big", 1),
            z("BITPOS", "big", 1, -1, -1, "BIT"),
            z("BITFIELD", "big", "GET", "u8", 4294967288, "GET", "i64", 4294967290),
            z("BITFIELD", "big", "SET", "u8", 4294967290, 3),
            z("BITFIELD", "big", "INCRBY", "i64", "#67108863", 3),
            z("STRLEN", "big"),
            z("DEL", "big"),
        ],
    )


OPS = [
    "SETBIT",
    "GETBIT",
    "BITCOUNT",
    "BITPOS",
    "BITFIELD",
    "BITOP",
    "GET",
    "SET",
    "APPEND",
    "SETRANGE",
    "INCR",
    "DEL",
    "STRLEN",
    "GETRANGE",
]


def random_command(rng: random.Random) -> list[bytes]:
    k = rng.choice(["k1", "k2", "k3"])
    op = rng.choice(OPS)
    off = rng.choice([rng.randrange(64), rng.randrange(300), -1, "x"])
    if op == "SETBIT":
        return z(op, k, off, rng.choice([0, 1, 1, 2]))
    if op == "GETBIT":
        return z(op, k, off)
    if op in ("BITCOUNT", "BITPOS"):
        args = z(op, k) + (z(rng.randrange(2)) if op == "BITPOS" else [])
        n = rng.randrange(4)
        if n >= 1:
            args += z(rng.randrange(-40, 40))
        if n >= 2 or (op == "BITCOUNT" and n == 1):
            args += z(rng.randrange(-40, 40))
        if n == 3:
            args += z(rng.choice(["BIT", "BYTE"]))
        return args
    if op == "BITFIELD":
        args = z(op, k)
        for _ in range(rng.randrange(1, 4)):
            t = rng.choice(["u1", "u7", "i8", "u16", "i33", "u63", "i64"])
            o = rng.choice([rng.randrange(100), f"#{rng.randrange(4)}"])
            sub = rng.choice(["GET", "SET", "INCRBY", "OVERFLOW"])
            if sub == "OVERFLOW":
                args += z(sub, rng.choice(["WRAP", "SAT", "FAIL"]))
            elif sub == "GET":
                args += z(sub, t, o)
            else:
                args += z(sub, t, o, rng.choice([1, -1, 100, -1000, 2**62, -(2**63)]))
        return args
    if op == "BITOP":
        bop = rng.choice(["AND", "OR", "XOR", "NOT"])
        srcs = ["k1"] if bop == "NOT" else rng.sample(["k1", "k2", "k3", "k4"], 2)
        return z(op, bop, k, *srcs)
    if op == "SET":
        return z(op, k, rng.choice(["", "abc", "123", b"\xff\x00"]))
    if op == "APPEND":
        return z(op, k, "xy")
    if op == "SETRANGE":
        return z(op, k, rng.randrange(10), "Z")
    if op == "GETRANGE":
        return z(op, k, 0, -1)
    return z(op, k)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_sequences(raw_pair, seed):
    rng = random.Random(seed)
    cmds = [random_command(rng) for _ in range(400)]
    cmds += [z("GET", k) for k in ("k1", "k2", "k3")]
    run_all(raw_pair, cmds)


def test_reads_are_same_after_writes(raw_pair):
    same(raw_pair, b"SETBIT", b"w", b"10", b"1")
    same(raw_pair, b"GET", b"w")
