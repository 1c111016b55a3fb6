"""HyperLogLog against redis-server 7.0, byte for byte (docs/crdt.md section 3.1.1):
PFADD, PFCOUNT (one and many keys), PFMERGE, PFDEBUG, PFSELFTEST, the
values' bytes after each (GET: header, encoding, cached cardinality, sparse
opcodes), sparse to dense promotion under hll-sparse-max-bytes, the string
commands on an HLL, and the errors, corrupted HLLs set by SET included."""

from __future__ import annotations

import random

import pytest
from support.differential import run_all, same

WRONG_HLL = b"-WRONGTYPE Key is not a valid HyperLogLog string value.\r\n"
INVALID = b"-INVALIDOBJ Corrupted HLL object detected\r\n"


def els(prefix: str, n: int) -> list[str]:
    return [f"{prefix}{i}" for i in range(n)]


def test_pfadd_pfcount_bytes(raw_pair):
    same(raw_pair, "PFADD", "h")  # creates an empty HLL, replies 1
    same(raw_pair, "GET", "h")
    same(raw_pair, "PFADD", "h")  # nothing to add: 0
    same(raw_pair, "PFADD", "h", "a", "b", "c")
    same(raw_pair, "GET", "h")  # cache invalidated: only its top bit set
    same(raw_pair, "PFCOUNT", "h")
    same(raw_pair, "GET", "h")  # the cache filled in place
    same(raw_pair, "PFADD", "h", "a", "b")
    same(raw_pair, "GET", "h")  # unchanged: the cache still valid
    same(raw_pair, "PFCOUNT", "h")
    same(raw_pair, "PFADD", "h", *els("e", 40))
    same(raw_pair, "GET", "h")
    same(raw_pair, "PFCOUNT", "h", "nokey")
    same(raw_pair, "PFCOUNT", "nokey")
    same(raw_pair, "TYPE", "h")
    same(raw_pair, "STRLEN", "h")
    same(raw_pair, "GETRANGE", "h", "0", "3")
    same(raw_pair, "MGET", "h", "nokey")
    same(raw_pair, "PFDEBUG", "ENCODING", "h")
    same(raw_pair, "PFDEBUG", "DECODE", "h")


def test_sparse_to_dense_promotion(raw_pair):
    for j in range(40):
        same(raw_pair, "PFADD", "h", *els(f"x{j}-", 90))
        same(raw_pair, "GET", "h")
        if j % 7 == 0:
            same(raw_pair, "PFCOUNT", "h")
            same(raw_pair, "PFDEBUG", "ENCODING", "h")
    same(raw_pair, "PFDEBUG", "ENCODING", "h")  # dense by now
    same(raw_pair, "PFDEBUG", "DECODE", "h")  # not sparse: an error
    same(raw_pair, "PFCOUNT", "h")
    same(raw_pair, "GET", "h")


@pytest.mark.parametrize("limit", ["0", "20", "200", "3000", "10000"])
def test_sparse_max_bytes(raw_pair, limit):
    same(raw_pair, "CONFIG", "SET", "hll-sparse-max-bytes", limit)
    same(raw_pair, "CONFIG", "GET", "hll-sparse-max-bytes")
    rnd = random.Random(limit)
    for _ in range(25):
        same(
            raw_pair, "PFADD", "h", *[f"r{rnd.randrange(10**6)}" for _ in range(rnd.randrange(60))]
        )
        same(raw_pair, "GET", "h")
    same(raw_pair, "PFCOUNT", "h")
    same(raw_pair, "GET", "h")
    same(raw_pair, "CONFIG", "SET", "hll-sparse-max-bytes", "3000")


def _dense_set(val: bytes, i: int, v: int) -> bytes:
    """A dense HLL's bytes with register i set to v (6 bits, little end first)."""
    regs = bytearray(val[16:]) + b"\0"
    byte, fb = i * 6 // 8, i * 6 % 8
    word = regs[byte] | regs[byte + 1] << 8
    word = (word & ~(63 << fb)) | v << fb
    regs[byte], regs[byte + 1] = word & 255, word >> 8
    return val[:16] + bytes(regs[:-1])


def test_register_above_32_promotes(raw_pair):
    """A register above 32 cannot be sparse: merging one into a sparse value
    makes it dense (no element hashes that high in a test's time: a dense
    value with such a register is made by hand)."""
    dense = _hll_bytes(raw_pair, *els("d", 3000))
    for i, v in ((5, 40), (16383, 51), (0, 33), (7, 63)):
        dense = _dense_set(dense, i, v)
    same(raw_pair, "SET", "big", dense)
    same(raw_pair, "PFCOUNT", "big")
    same(raw_pair, "PFADD", "small", "a", "b")
    same(raw_pair, "PFMERGE", "small", "big")
    same(raw_pair, "GET", "small")
    same(raw_pair, "PFCOUNT", "small", "big")
    same(raw_pair, "PFDEBUG", "GETREG", "big")


def test_many_keys_and_merge(raw_pair):
    same(raw_pair, "PFADD", "a", *els("a", 50))
    same(raw_pair, "PFADD", "b", *els("b", 3000))  # dense
    same(raw_pair, "PFADD", "c", *els("a", 25), *els("c", 10))
    same(raw_pair, "PFCOUNT", "a", "b")
    same(raw_pair, "PFCOUNT", "a", "c", "nokey")
    same(raw_pair, "PFCOUNT", "a", "b", "c")
    same(raw_pair, "GET", "a")  # a multi-key count fills no cache
    same(raw_pair, "PFMERGE", "m1", "a", "c")  # sparse sources: sparse destination
    same(raw_pair, "GET", "m1")
    same(raw_pair, "PFDEBUG", "ENCODING", "m1")
    same(raw_pair, "PFMERGE", "m2", "a", "b")  # a dense source: dense destination
    same(raw_pair, "GET", "m2")
    same(raw_pair, "PFMERGE", "a", "c")  # into an existing key
    same(raw_pair, "GET", "a")
    same(raw_pair, "PFMERGE", "empty")  # no source: an empty HLL
    same(raw_pair, "GET", "empty")
    same(raw_pair, "PFMERGE", "empty", "nokey")
    same(raw_pair, "GET", "empty")
    same(raw_pair, "PFCOUNT", "m1")
    same(raw_pair, "GET", "m1")
    same(raw_pair, "PFMERGE", "m1", "m2")
    same(raw_pair, "GET", "m1")
    same(raw_pair, "PFCOUNT", "m1", "m2", "a", "b", "c")


def test_errors(raw_pair):
    same(raw_pair, "SET", "s", "not an hll")
    same(raw_pair, "SET", "short", "HYLL")
    same(raw_pair, "RPUSH", "l", "x")
    same(raw_pair, "PFADD", "h", "x")
    for cmd in (
        ["PFADD", "s", "a"],
        ["PFADD", "short"],
        ["PFADD", "l", "a"],
        ["PFCOUNT", "s"],
        ["PFCOUNT", "l"],
        ["PFCOUNT", "h", "s"],
        ["PFCOUNT", "h", "l"],
        ["PFMERGE", "h", "s"],
        ["PFMERGE", "s", "h"],
        ["PFMERGE", "l", "h"],
        ["PFMERGE", "h", "l"],
        ["PFDEBUG", "GETREG", "nokey"],
        ["PFDEBUG", "nosuch", "nokey"],
        ["PFDEBUG", "nosuch", "h"],
        ["PFDEBUG", "GETREG", "s"],
        ["PFDEBUG", "ENCODING", "l"],
        ["PFDEBUG", "GETREG"],
        ["PFDEBUG", "GETREG", "h", "extra"],
        ["PFADD"],
        ["PFCOUNT"],
        ["PFMERGE"],
        ["PFSELFTEST", "x"],
        ["INCR", "h"],
        ["INCRBYFLOAT", "h", "1"],
        ["LPUSH", "h", "x"],
    ):
        same(raw_pair, *cmd)
    assert same(raw_pair, "PFADD", "s", "a") == WRONG_HLL


def _hll_bytes(raw_pair, *elements) -> bytes:
    a, _b = raw_pair
    a.call("PFADD", "tmp", *elements)
    reply = a.call("GET", "tmp")
    a.call("DEL", "tmp")
    _b.call("PFADD", "tmp", *elements)
    want = _b.call("GET", "tmp")
    _b.call("DEL", "tmp")
    assert reply == want
    head, _, rest = reply.partition(b"\r\n")
    return rest[: int(head[1:])]


def test_corrupted_values_set_by_set(raw_pair):
    """HLL strings corrupted by hand (SET, APPEND, SETRANGE), in every way
    Redis tells apart: bad magic, bad encoding byte, dense of the wrong size,
    sparse opcodes that do not add up to 16384 registers."""
    sparse = _hll_bytes(raw_pair, *els("s", 30))
    dense = _hll_bytes(raw_pair, *els("d", 3000))
    cases = {
        "magic": b"HYLM" + sparse[4:],
        "encoding": sparse[:4] + b"\x02" + sparse[5:],
        "dense_short": dense[:-1],
        "dense_long": dense + b"\x00",
        "sparse_short": sparse[:-2],  # the last XZERO cut off
        "sparse_long": sparse + b"\x7f\xff",  # 16384 more zeroes
        "sparse_badval": sparse[:16] + b"\x83" * 5000,  # VAL runs past the end
        "header_only": sparse[:16],
        "valid_cache": sparse[:15] + b"\x00" + sparse[16:],  # a cached count taken as is
        "dense_from_sparse_header": dense[:4] + b"\x01" + dense[5:],
    }
    for name, val in cases.items():
        k = "c_" + name
        same(raw_pair, "SET", k, val)
        for cmd in (
            ["PFCOUNT", k],
            ["GET", k],
            ["PFCOUNT", k, "nokey"],
            ["PFMERGE", "dst_" + name, k],
            ["GET", "dst_" + name],
            ["PFDEBUG", "ENCODING", k],
            ["PFDEBUG", "DECODE", k],
            ["PFADD", k, *els("z", 5)],
            ["GET", k],
            ["PFCOUNT", k],
            ["GET", k],
        ):
            same(raw_pair, *cmd)
    # a valid HLL made by hand (SET of Redis's own bytes) takes PF* writes
    same(raw_pair, "SET", "copy", sparse)
    same(raw_pair, "PFADD", "copy", *els("more", 20))
    same(raw_pair, "GET", "copy")
    same(raw_pair, "PFCOUNT", "copy")
    same(raw_pair, "GET", "copy")
    same(raw_pair, "SET", "dcopy", dense)
    same(raw_pair, "PFCOUNT", "dcopy")
    same(raw_pair, "GET", "dcopy")
    same(raw_pair, "PFADD", "dcopy", *els("more", 20))
    same(raw_pair, "GET", "dcopy")


def test_string_commands_on_hll(raw_pair):
    same(raw_pair, "PFADD", "h", *els("a", 20))
    same(raw_pair, "PFCOUNT", "h")
    same(raw_pair, "APPEND", "h", "xyz")  # now a plain string, still an HLL? (sparse: yes)
    same(raw_pair, "GET", "h")
    same(raw_pair, "PFCOUNT", "h")
    same(raw_pair, "PFADD", "h", "b")
    same(raw_pair, "PFADD", "h2", *els("q", 20))
    same(raw_pair, "SETRANGE", "h2", "0", "X")
    same(raw_pair, "PFADD", "h2", "b")
    same(raw_pair, "PFADD", "h3", "a")
    same(raw_pair, "GETSET", "h3", "v")
    same(raw_pair, "PFADD", "h4", "a")
    same(raw_pair, "SET", "h4", "v", "GET")
    same(raw_pair, "PFADD", "h5", "a")
    same(raw_pair, "GETDEL", "h5")
    same(raw_pair, "EXISTS", "h5")
    same(raw_pair, "PFADD", "h6", "a")
    same(raw_pair, "EXPIRE", "h6", "100")
    same(raw_pair, "GETEX", "h6", "PERSIST")
    same(raw_pair, "TTL", "h6")
    same(raw_pair, "PFADD", "h7", "a")
    same(raw_pair, "EXPIRE", "h7", "100")
    same(raw_pair, "PFADD", "h7", "b", "c")
    same(raw_pair, "TTL", "h7")
    same(raw_pair, "RENAME", "h7", "h8")
    same(raw_pair, "GET", "h8")
    same(raw_pair, "PFADD", "h8", "zz")
    same(raw_pair, "GET", "h8")
    same(raw_pair, "TTL", "h8")
    same(raw_pair, "SCAN", "0", "TYPE", "string", "MATCH", "h8")
    same(raw_pair, "DEL", "h8")
    same(raw_pair, "PFCOUNT", "h8")


def test_bit_commands_on_hll(raw_pair):
    """An HLL is a string: bit commands read its bytes, and a bit write makes
    it a plain string that PF* commands then check as Redis does."""
    run_all(
        raw_pair,
        [
            ("PFADD", "h", "a", "b", "c"),
            ("GETBIT", "h", "3"),
            ("BITCOUNT", "h"),
            ("BITPOS", "h", "1"),
            ("BITFIELD_RO", "h", "GET", "u8", "0"),
            ("BITOP", "OR", "dst", "h"),
            ("GET", "dst"),
            ("PFCOUNT", "dst"),
            ("SETBIT", "h", "100", "1"),
            ("GET", "h"),
            ("PFCOUNT", "h"),
            ("PFADD", "h2", "x"),
            ("BITFIELD", "h2", "SET", "u8", "200", "7"),
            ("STRLEN", "h2"),
            ("PFADD", "h2", "y"),
            ("DUMP", "nosuchkey"),
        ],
    )


def test_pfdebug(raw_pair):
    same(raw_pair, "PFADD", "h", *els("a", 30))
    same(raw_pair, "PFDEBUG", "DECODE", "h")
    same(raw_pair, "PFDEBUG", "ENCODING", "h")
    same(raw_pair, "PFDEBUG", "GETREG", "h")  # converts to dense
    same(raw_pair, "GET", "h")
    same(raw_pair, "PFDEBUG", "TODENSE", "h")
    same(raw_pair, "PFADD", "h2", "x")
    same(raw_pair, "PFDEBUG", "todense", "h2")
    same(raw_pair, "GET", "h2")
    same(raw_pair, "PFDEBUG", "Encoding", "h2")
    same(raw_pair, "PFSELFTEST")


def test_random_sequences(raw_pair):
    rnd = random.Random(12)
    cmds = []
    for _ in range(400):
        k = f"k{rnd.randrange(4)}"
        x = rnd.random()
        if x < 0.55:
            n = rnd.choice([0, 1, 3, 20, 150])
            cmds.append(["PFADD", k, *[f"e{rnd.randrange(20000)}" for _ in range(n)]])
        elif x < 0.7:
            cmds.append(["PFCOUNT", k])
        elif x < 0.8:
            cmds.append(["PFCOUNT", *[f"k{rnd.randrange(4)}" for _ in range(3)]])
        elif x < 0.9:
            cmds.append(["PFMERGE", k, *[f"k{rnd.randrange(4)}" for _ in range(rnd.randrange(3))]])
        elif x < 0.93:
            cmds.append(["DEL", k])
        else:
            cmds.append(["PFDEBUG", rnd.choice(["ENCODING", "TODENSE", "DECODE"]), k])
        cmds.append(["GET", k])
    run_all(raw_pair, cmds)


def test_pfadd_reply_when_created_or_changed(raw_pair):
    assert same(raw_pair, "PFADD", "h") == b":1\r\n"
    assert same(raw_pair, "PFADD", "h", "a") == b":1\r\n"
    assert same(raw_pair, "PFADD", "h", "a") == b":0\r\n"
    a, _ = raw_pair
    assert a.call("PFCOUNT", "h") == b":1\r\n"
    assert a.call("PFCOUNT", "h", "h") == b":1\r\n"
    assert a.call("SET", "bad", "x") == b"+OK\r\n"
    assert a.call("PFCOUNT", "bad") == WRONG_HLL
    # a cut XZERO, and the cache marked stale (a valid cache is answered as is)
    bad2 = b"HYLL\x01\x00\x00\x00" + b"\x00" * 7 + b"\x80\x7f"
    assert a.call("SET", "bad2", bad2) == b"+OK\r\n"
    assert a.call("PFCOUNT", "bad2") == INVALID
    assert a.call("PFADD", "bad2", "x") == INVALID


def test_two_nodes_pfadd_disjoint_sets_concurrently(node, rr):
    """Two real nodes, their link cut: each PFADDs its own elements; once
    healed both answer the count Redis gives for the union (and the same
    registers), and the key's bytes are equal on both."""
    from support.nodes import cut_link, heal_link, proxied_pair, wait_converged

    a, b, pa, pb = proxied_pair(node)
    try:
        ra, rb = a.client(), b.client()
        ra.pfadd("h", "common")
        wait_converged([a, b])
        cut_link(pa, pb, a, b)
        xs, ys = els("a-", 2500), els("b-", 700)
        for i in range(0, len(xs), 100):
            ra.pfadd("h", *xs[i : i + 100])
        ra.pfcount("h")
        for i in range(0, len(ys), 50):
            rb.pfadd("h", *ys[i : i + 50])
        rb.pfcount("h")
        heal_link(pa, pb, a, b)
        wait_converged([a, b])
        rr.pfadd("h", "common", *xs, *ys)
        want = rr.pfcount("h")
        assert ra.pfcount("h") == rb.pfcount("h") == want
        assert ra.execute_command("PFDEBUG", "GETREG", "h") == rr.execute_command(
            "PFDEBUG", "GETREG", "h"
        )
        wait_converged([a, b])
        assert ra.get("h") == rb.get("h")
        # PFMERGE on one node merges with a concurrent PFADD on the other
        cut_link(pa, pb, a, b)
        ra.pfadd("src", *els("s-", 300))
        ra.pfmerge("h", "src")
        rb.pfadd("h", *els("late-", 40))
        heal_link(pa, pb, a, b)
        wait_converged([a, b])
        rr.pfadd("h", *els("s-", 300), *els("late-", 40))
        assert ra.pfcount("h") == rb.pfcount("h") == rr.pfcount("h")
    finally:
        pa.close()
        pb.close()
