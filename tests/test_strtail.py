"""A string key holds a value of up to 468 bytes in its own allocation: the
value starts at the object's offset 44 (byte 4 of the value word), over the
register node and counter fields (the node then an index in the word), and
a key made with a value of 21 to 468 bytes has a block that goes on past the
object's 64 bytes (a "tail") up to the pymalloc size class that 44 + the
value's length fills (objects.pxd, "a string's value"; new_str_for). These
tests walk values across the tail's boundaries with the string and bit
commands beside redis-server, check that the memory count follows the
blocks (the object's 64 + tail, and a buffer's when a value outgrows it),
and that the register's node and counter entries live through every form."""

from __future__ import annotations

import os

import pytest
from support.differential import run_all
from support.nodes import make_node, meet, wait_converged, wait_linked


def block(n: int) -> int:
    """The block of an object made for a first value of n bytes."""
    if n <= 20 or n > 468:
        return 64
    return (44 + n + 15) & ~15


def cap(n: int) -> int:
    """The bytes an object made for n holds in place (from offset 44)."""
    return block(n) - 44 if n <= 468 else 0


def buf(n: int) -> int:
    """A buffer's block for a value of n bytes (a uint32 length + the bytes)."""
    m = 4 + n
    return (m + 15) & ~15 if m <= 512 else (m + 8 + 15) & ~15


def val(n: int, c: str = "v") -> str:
    return (c * n)[:n]


def fresh(tag: str) -> str:
    # a key name no earlier test used (a key's tombstone may outlive FLUSHALL
    # and would be reused, with no tail); same length for every call
    return f"st:{tag:>4}:{os.urandom(4).hex()}"


# around the inline limit (7), the fixed block's room (20), the smallest
# tail (21 -> an 80-byte block, 36 bytes in place), class edges (100 fills
# 144, 101 takes 160, 116 fills it), the largest tail (468 fills 512) and
# past it (a buffer)
LENGTHS = [0, 1, 7, 8, 9, 20, 21, 100, 101, 116, 117, 467, 468, 469, 600]


@pytest.mark.parametrize("n", LENGTHS)
def test_overwrites_across_the_tail_beside_redis(raw_pair, n):
    k = fresh(str(n))
    c = cap(n) or 7
    cmds = [("SET", k, val(n))]
    for m in (c, c + 1, 3, 0, 7, 8, n, 5000, n // 2, c, 1):
        cmds += [("SET", k, val(m, "abcdefgh"[m % 8]), "GET"), ("GET", k), ("STRLEN", k)]
    cmds += [
        ("GETRANGE", k, "0", "-1"),
        ("OBJECT", "ENCODING", k),
        ("SET", k, val(n, "q")),
        ("APPEND", k, "xyz"),
        ("GET", k),
        ("APPEND", k, val(c, "g")),
        ("GET", k),
        ("SET", k, val(n, "r")),
        ("SETRANGE", k, "2", "AB"),
        ("GET", k),
        ("SETRANGE", k, str(c), "Z"),
        ("GET", k),
        ("STRLEN", k),
        ("SETRANGE", k, "1", "Y"),
        ("GET", k),
        ("GETDEL", k),
        ("GET", k),
        ("EXISTS", k),
        ("SET", k, val(n, "s"), "NX"),
        ("GET", k),
        ("GETEX", k, "PERSIST"),
        ("SET", k, val(n + 1, "t"), "XX", "GET"),
        ("GET", k),
    ]
    run_all(raw_pair, cmds)


@pytest.mark.parametrize("n", [9, 13, 100, 468])
def test_counters_on_a_tail_value_beside_redis(raw_pair, n):
    k = fresh(str(n))
    digits = ("1" + "0" * 17)[: min(n, 18)]
    run_all(
        raw_pair,
        [
            ("SET", k, digits),
            ("INCR", k),
            ("GET", k),
            ("INCRBY", k, "-2000000000000000000"),
            ("GET", k),
            ("DECRBY", k, "7"),
            ("STRLEN", k),
            ("INCRBYFLOAT", k, "0.25"),
            ("GET", k),
            ("SET", k, val(n, "w")),
            ("GET", k),
            ("INCR", k),
            ("SET", k, "12"),
            ("INCR", k),
            ("APPEND", k, "5"),
            ("INCR", k),
            ("GET", k),
        ],
    )


@pytest.mark.parametrize("n", [8, 20, 100, 468])
def test_bit_commands_turn_a_tail_value_into_bits_and_back(raw_pair, n):
    k = fresh(str(n))
    run_all(
        raw_pair,
        [
            ("SET", k, val(n, "a")),
            ("SETBIT", k, "5", "1"),
            ("GET", k),
            ("BITCOUNT", k),
            ("GETBIT", k, "5"),
            ("SET", k, val(n, "c")),
            ("GET", k),
            ("SETBIT", k, str(8 * n + 3), "1"),
            ("STRLEN", k),
            ("GET", k),
            ("SET", k, val(max(n - 3, 0), "d")),
            ("GET", k),
            ("SETBIT", k, "0", "1"),
            ("APPEND", k, "x"),
            ("GET", k),
            ("BITFIELD", k, "SET", "u8", "8", "65", "GET", "u16", "0"),
            ("GET", k),
            ("SET", k, "e"),
            ("GET", k),
            ("SET", k, val(n, "f")),
            ("GET", k),
            ("BITPOS", k, "1"),
        ],
    )


def usage(r, k: str) -> int:
    return r.memory_usage(k, samples=0)


def test_memory_usage_is_the_objects_block(r):
    keys = {n: fresh(str(n)) for n in (7, 8, 20, 21, 100, 101, 116, 117, 468, 469, 600)}
    for n, k in keys.items():
        r.set(k, val(n))
    u = {n: usage(r, k) for n, k in keys.items()}
    # a key's count less its object's block is the same for every length here
    # (the key's entry, the same name length)
    rest = u[7] - 64
    for n in (8, 20, 21, 100, 101, 116, 117, 468):
        assert u[n] == rest + block(n), n
    blocks = [block(n) for n in (8, 20, 21, 100, 101, 116, 117, 468)]
    assert blocks == [64, 64, 80, 144, 160, 160, 176, 512]
    for n in (469, 600):
        assert u[n] == rest + 64 + buf(n), n
    k = keys[100]
    # in place while it fits (a shorter or inline-sized value too); past the
    # tail a buffer, and the tail is still counted; back in place after
    for m, want in (
        (100, 144),
        (3, 144),
        (0, 144),
        (101, 144 + buf(101)),
        (5000, 144 + buf(5000)),
        (42, 144),
    ):
        r.set(k, val(m, "z"))
        assert r.get(k) == val(m, "z").encode()
        assert usage(r, k) == rest + want, m
    # SETBIT on a node alone writes the register's new bytes: in place too
    r.setbit(k, 3, 1)
    assert usage(r, k) == rest + 144
    r.set(k, val(50, "b"))
    assert usage(r, k) == rest + 144
    assert r.get(k) == val(50, "b").encode()


def test_used_memory_moves_by_the_blocks(node):
    srv = node().start()
    c = srv.client()
    ks = [f"um:{i:06d}" for i in range(400)]
    d0 = c.info("memory")["used_memory_dataset"]
    for k in ks[:200]:
        c.set(k, val(100))
    d1 = c.info("memory")["used_memory_dataset"]
    for k in ks[200:]:
        c.set(k, val(101))
    d2 = c.info("memory")["used_memory_dataset"]
    # 144 and 160-byte blocks, keys of the same length: 16 bytes a key apart
    assert (d2 - d1) - (d1 - d0) == 200 * 16
    assert d1 - d0 == 200 * usage(c, ks[0])
    # overwrites that fit the tail do not move the count; one past it adds a buffer
    for k in ks[:200]:
        c.set(k, val(60, "y"))
    assert c.info("memory")["used_memory_dataset"] == d2
    for k in ks[:100]:
        c.set(k, val(200, "y"))
    assert c.info("memory")["used_memory_dataset"] == d2 + 100 * buf(200)
    c.close()


def test_dump_restore_and_copy_make_tail_objects(r):
    src = fresh("src")
    for n in (5, 8, 100, 468, 469, 5000):
        r.set(src, val(n, "d"))
        for how in ("restore", "copy"):
            dst = fresh(how[:4])
            if how == "restore":
                r.restore(dst, 0, r.dump(src))
            else:
                assert r.copy(src, dst)
            assert r.get(dst) == val(n, "d").encode()
            assert r.strlen(dst) == n
            fresh_set = fresh("set")
            r.set(fresh_set, val(n, "d"))
            assert usage(r, dst) == usage(r, fresh_set), (n, how)


def test_snapshot_restart_keeps_values_and_blocks(node):
    a = make_node(node, "a")
    r = a.client()
    lens = [0, 1, 7, 8, 9, 20, 21, 100, 101, 468, 469, 600, 5000]
    keys = {n: f"sn:{n:05d}" for n in lens}
    for n, k in keys.items():
        r.set(k, val(n, "s"))
    # a grown, a shrunk and a bit value: the object made at load holds the
    # value it has now (a tail sized for it, or none)
    r.set(keys[21], val(300, "g"))
    r.set(keys[468], val(10, "h"))
    r.setbit(keys[100], 7, 1)
    r.incrby("sn:cnt", 5)
    before = {k: r.get(k) for k in [*keys.values(), "sn:cnt"]}
    r.set("sn:probe300", val(300))
    r.set("sn:probe010", val(10))
    want = {keys[21]: usage(r, "sn:probe300"), keys[468]: usage(r, "sn:probe010")}
    for n in (0, 1, 7, 8, 9, 20, 101, 469, 600, 5000):
        want[keys[n]] = usage(r, keys[n])
    assert r.save()
    a.kill()
    a.start()
    r = a.client()
    assert {k: r.get(k) for k in before} == before
    assert {k: usage(r, k) for k in want} == want
    assert r.getbit(keys[100], 7) == 1
    assert r.incrby("sn:cnt", 1) == 6


def test_a_peer_makes_the_same_tail_objects(node):
    a = make_node(node, "a")
    b = make_node(node, "b")
    meet(b, a)
    wait_linked([a, b])
    ra, rb = a.client(), b.client()
    lens = [3, 8, 21, 64, 100, 101, 468, 469, 2000]
    for n in lens:
        ra.set(f"rp:{n:05d}", val(n, "p"))
    wait_converged([a, b])
    for n in lens:
        k = f"rp:{n:05d}"
        assert rb.get(k) == val(n, "p").encode()
        assert usage(rb, k) == usage(ra, k), n
    # overwrites from the peer land in place when they fit
    ra.set("rp:00100", val(40, "q"))
    ra.set("rp:00101", val(400, "q"))
    wait_converged([a, b])
    for k in ("rp:00100", "rp:00101"):
        assert rb.get(k) == ra.get(k)
        assert usage(rb, k) == usage(ra, k), k


def test_the_value_word_in_process():
    # the object itself (objects.str_for / str_tail, test views): its real
    # allocation, and the tail kept through every kind of value
    import tracemalloc

    from constdb._core.objects import str_for, str_tail

    tracemalloc.start()
    try:
        for n, want in (
            (0, 64),
            (7, 64),
            (20, 64),
            (21, 80),
            (100, 144),
            (101, 160),
            (468, 512),
            (469, 64),
        ):
            before = tracemalloc.get_traced_memory()[0]
            o = str_for(n)
            assert tracemalloc.get_traced_memory()[0] - before == want, n
            assert str_tail(o) == want - 64
            assert o.val is None
            del o
    finally:
        tracemalloc.stop()
    o = str_for(100)
    ba = bytearray(b"bits")
    for v in (
        b"a" * 100,
        b"",
        b"b" * 7,
        None,
        b"c" * 101,
        b"d" * 3,
        ba,
        b"e" * 100,
        None,
        b"f" * 5000,
        ba,
        b"g" * 99,
        b"h" * 8,
    ):
        o.val = v
        assert o.val == v and type(o.val) is type(v)
        assert str_tail(o) == 80
    # a bytes value is copied in; a Python object (a bit value) is held
    ba2 = bytearray(b"held")
    import sys

    refs = sys.getrefcount(ba2)
    o.val = ba2
    assert o.val is ba2
    assert sys.getrefcount(ba2) == refs + 1
    o.val = b"i" * 50
    assert sys.getrefcount(ba2) == refs
    o.val = ba2
    del o
    assert sys.getrefcount(ba2) == refs  # freeing the object let its reference go
    # a value written in place from its own bytes (an overlapping copy)
    o = str_for(40)
    o.val = bytes(range(40))
    o.val = o.val[5:]
    assert o.val == bytes(range(5, 40))
    # an object with no tail holds up to 20 bytes in place, then a buffer
    o = str_for(3)
    assert str_tail(o) == 0
    for v in (b"", b"1234567", b"12345678", None, ba, b"x" * 600):
        o.val = v
        assert o.val == v
        assert str_tail(o) == 0


def test_the_register_node_and_counters_beside_a_tail_value():
    """A tail value shares its bytes with the node and counter fields: the
    node moves into the value's word and back, and counter entries move the
    value out to a buffer; nothing is lost on the way."""
    import sys

    from constdb._core.objects import CntEntry, str_for, str_in_tail

    o = str_for(100)
    o.uuid, o.node = 99, 7
    o.val = b"a" * 100
    assert str_in_tail(o) and (o.uuid, o.node, o.cnt) == (99, 7, None)
    o.node = 2**64 - 1
    assert str_in_tail(o) and o.node == 2**64 - 1 and o.val == b"a" * 100
    e = CntEntry()
    refs = sys.getrefcount(e)
    o.cnt = e
    assert not str_in_tail(o) and o.cnt is e and o.val == b"a" * 100
    assert (o.uuid, o.node) == (99, 2**64 - 1)
    assert sys.getrefcount(e) == refs + 1
    # with counter entries a value that fits stays out of the block
    o.val = b"b" * 50
    assert not str_in_tail(o) and o.val == b"b" * 50 and o.cnt is e
    o.node = 5
    o.cnt = {5: e, 6: CntEntry()}
    assert sys.getrefcount(e) == refs + 1  # held by the dict now, not the object
    o.cnt = None
    assert sys.getrefcount(e) == refs
    o.val = b"c" * 60
    assert str_in_tail(o) and o.val == b"c" * 60 and o.node == 5 and o.cnt is None
    for v in (b"d" * 200, None, bytearray(b"bits"), b"e" * 3, b"", b"f" * 100):
        o.val = v
        assert o.val == v and o.node == 5 and o.cnt is None and o.uuid == 99, v
    assert str_in_tail(o)
    o.cnt = e
    del o
    assert sys.getrefcount(e) == refs  # freeing the object let its entries go
    # the fixed block: 20 bytes in place, one more is a buffer
    o = str_for(3)
    o.node = 3
    for v, inside in ((b"x" * 20, True), (b"x" * 21, False), (b"y" * 7, True)):
        o.val = v
        assert (str_in_tail(o), o.val, o.node) == (inside, v, 3), v
    with pytest.raises(TypeError):
        o.cnt = 5


def test_a_full_node_table_keeps_values_out_of_the_block():
    """The tail values' node table holds 32768 nodes; a register written by
    a node past that keeps its value in a buffer, and reads the same.
    (A process of its own: the table lives as long as the process.)"""
    import subprocess
    import sys

    code = """
from constdb._core.objects import str_for, str_in_tail, str_node_count
o = str_for(100)
o.val = b"a" * 100
assert str_in_tail(o)
base = 10**12
for i in range(40000):
    o.node = base + i
    assert o.node == base + i and o.val == b"a" * 100
assert str_node_count() == 32768
assert not str_in_tail(o)
o.val = b"b" * 100
assert not str_in_tail(o) and o.val == b"b" * 100 and o.node == base + 39999
o.node = base + 5
o.val = b"c" * 100
assert str_in_tail(o) and o.node == base + 5 and o.val == b"c" * 100
o.node = base + 39998
assert not str_in_tail(o) and o.node == base + 39998 and o.val == b"c" * 100
"""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
