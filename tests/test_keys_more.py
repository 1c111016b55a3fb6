"""SORT / SORT_RO, COPY, DUMP / RESTORE, LCS, HINCRBYFLOAT and INCRBYFLOAT, and Redis's
encoding settings: differential tests against redis-server 7.0 (replies and errors byte
for byte, RESP2 and RESP3), and the payload checks of RESTORE."""

from __future__ import annotations

import pytest
from support.differential import run_all, same
from support.nodes import cut_link, proxied_pair, wait_converged, wait_linked, write_config
from support.resp import Conn

# ---- SORT ----------------------------------------------------------------------------------

SORT_DATA = [
    ("RPUSH", "nums", "3", "1", "2", "10", "-5", "1.5", "1e2", "0x10", " 7"),
    ("RPUSH", "words", "banana", "apple", "cherry", "Apple", "apple", "b\x00z", "b"),
    ("RPUSH", "bad", "1", "x", "3"),
    ("RPUSH", "nanl", "1", "nan"),
    ("RPUSH", "big", "1e400", "2"),
    ("SADD", "s", "5", "3", "9", "1"),
    ("SADD", "sw", "pear", "fig", "kiwi"),
    ("ZADD", "z", "3", "10", "1", "30", "2", "20", "4", "5"),
    ("ZADD", "zw", "1", "c", "2", "a", "3", "b"),
    ("MSET", "w_3", "30", "w_1", "10", "w_2", "-1", "w_10", "x", "w_30", "0.5", "w_20", "2"),
    ("HSET", "h_1", "f", "3", "g", "one"),
    ("HSET", "h_2", "f", "1", "g", "two"),
    ("HSET", "h_3", "f", "2"),
    ("SET", "str", "v"),
    ("MSET", "n_1", "a", "n_2", "b", "n_3", "c", "n_10", "j"),
    ("RPUSH", "small", "3", "1", "2"),
    ("RPUSH", "one", "7"),
    ("RPUSH", "onebad", "x"),
    ("HSET", "notlist", "a", "b"),
]

SORT_CMDS = [
    ("SORT", "nums"),
    ("SORT", "nums", "DESC"),
    ("SORT", "nums", "ALPHA"),
    ("SORT", "nums", "alpha", "desc"),
    ("SORT", "words", "ALPHA"),
    ("SORT", "words", "ALPHA", "DESC"),
    ("SORT", "words"),
    ("SORT", "bad"),
    ("SORT", "bad", "ALPHA"),
    ("SORT", "nanl"),
    ("SORT", "one"),
    ("SORT", "onebad"),
    ("SORT", "onebad", "ALPHA"),
    ("SORT", "missing"),
    ("SORT", "missing", "BY", "w_*", "GET", "#", "LIMIT", "0", "10"),
    ("SORT", "str"),
    ("SORT", "notlist"),
    ("SORT", "s"),
    ("SORT", "s", "DESC", "LIMIT", "1", "2"),
    ("SORT", "sw", "ALPHA"),
    ("SORT", "z"),
    ("SORT", "z", "DESC"),
    ("SORT", "zw", "ALPHA"),
    ("SORT", "zw"),
    ("SORT", "z", "BY", "nosort"),
    ("SORT", "z", "BY", "nosort", "DESC"),
    ("SORT", "z", "BY", "nosort", "LIMIT", "1", "2"),
    ("SORT", "z", "BY", "nosort", "DESC", "LIMIT", "1", "2"),
    ("SORT", "z", "BY", "nosort", "DESC", "LIMIT", "3", "10"),
    ("SORT", "z", "BY", "nosort", "LIMIT", "5", "1"),
    ("SORT", "zw", "BY", "nosort", "GET", "#", "GET", "n_*"),
    ("SORT", "small", "BY", "nosort"),
    ("SORT", "small", "BY", "nosort", "DESC"),
    ("SORT", "small", "BY", "nosort", "DESC", "LIMIT", "1", "1"),
    ("SORT", "small", "BY", "nosort", "LIMIT", "-3", "2"),
    ("SORT", "small", "BY", "w_*"),
    ("SORT", "small", "BY", "w_*", "DESC"),
    ("SORT", "small", "BY", "w_*", "ALPHA"),
    ("SORT", "small", "BY", "w_*", "ALPHA", "DESC"),
    ("SORT", "small", "BY", "nothere_*"),
    ("SORT", "small", "BY", "nothere_*", "ALPHA"),
    ("SORT", "small", "BY", "nothere_*", "ALPHA", "DESC"),
    ("SORT", "small", "BY", "h_*->f"),
    ("SORT", "small", "BY", "h_*->g", "ALPHA"),
    ("SORT", "small", "BY", "h_*->g"),
    ("SORT", "small", "BY", "h_*->"),
    ("SORT", "small", "BY", "str"),
    ("SORT", "small", "GET", "#"),
    (
        "SORT",
        "small",
        "GET",
        "#",
        "GET",
        "n_*",
        "GET",
        "h_*->g",
        "GET",
        "missing_*",
        "GET",
        "fixed",
    ),
    ("SORT", "small", "GET", "h_*"),
    ("SORT", "small", "GET", "*->f"),
    ("SORT", "small", "GET"),
    ("SORT", "small", "LIMIT", "0"),
    ("SORT", "small", "LIMIT", "0", "x"),
    ("SORT", "small", "LIMIT", "x", "1"),
    ("SORT", "small", "LIMIT", "0", "0"),
    ("SORT", "small", "LIMIT", "0", "-1"),
    ("SORT", "small", "LIMIT", "-5", "2"),
    ("SORT", "small", "LIMIT", "2", "10"),
    ("SORT", "small", "LIMIT", "3", "1"),
    ("SORT", "small", "LIMIT", "100", "1"),
    ("SORT", "small", "LIMIT", "1", "9223372036854775807"),
    ("SORT", "small", "LIMIT", "2", "9223372036854775807"),
    ("SORT", "small", "LIMIT", "1", "1", "LIMIT", "0", "2"),
    ("SORT", "small", "BY"),
    ("SORT", "small", "STORE"),
    ("SORT", "small", "FOO"),
    ("SORT", "small", "ASC", "DESC", "ASC"),
    ("SORT", "notlist", "FOO"),
    ("SORT", "notlist", "LIMIT", "a", "b"),
    ("SORT_RO", "small"),
    ("SORT_RO", "small", "STORE", "dst"),
    ("SORT_RO", "small", "BY", "w_*", "GET", "#", "GET", "n_*", "DESC"),
    ("SORT_RO", "notlist"),
    # STORE: a whole new list at the destination
    ("SORT", "small", "STORE", "dst"),
    ("LRANGE", "dst", "0", "-1"),
    ("SORT", "small", "DESC", "STORE", "dst"),
    ("LRANGE", "dst", "0", "-1"),
    ("SORT", "small", "GET", "n_*", "GET", "missing_*", "STORE", "dst"),
    ("LRANGE", "dst", "0", "-1"),
    ("SET", "dst", "was a string"),
    ("EXPIRE", "dst", "100"),
    ("SORT", "z", "STORE", "dst"),
    ("TYPE", "dst"),
    ("TTL", "dst"),
    ("LRANGE", "dst", "0", "-1"),
    ("SORT", "s", "BY", "nosort", "STORE", "dst"),
    ("LRANGE", "dst", "0", "-1"),
    ("SORT", "sw", "BY", "nosort", "STORE", "dst"),
    ("LRANGE", "dst", "0", "-1"),
    ("SORT", "small", "LIMIT", "5", "5", "STORE", "dst"),
    ("EXISTS", "dst"),
    ("SORT", "missing", "STORE", "dst"),
    ("SORT", "bad", "STORE", "dst"),
    ("EXISTS", "dst"),
    ("SORT", "small", "STORE", "small"),
    ("LRANGE", "small", "0", "-1"),
]


def test_sort(raw_pair):
    run_all(raw_pair, SORT_DATA)
    for cmd in SORT_CMDS:
        same(raw_pair, *cmd)


def test_sort_out_of_range_weight(raw_pair):
    # (alone: redis-server does not reset errno before its strtod, so after an
    # ERANGE its later sorts of non-integer strings fail until a new client
    # connection's accept() sets errno again)
    run_all(raw_pair, [("RPUSH", "big", "1e400", "2"), ("RPUSH", "tiny", "1e-400", "2")])
    same(raw_pair, "SORT", "big")


def test_sort_set_by_nosort_is_the_set(raw_pair):
    # a set's own order differs between servers: the members come whole
    run_all(raw_pair, [("SADD", "s", *[str(i) for i in range(40)], "a", "b")])
    a, b = raw_pair
    got = a.call_typed("SORT", "s", "BY", "nosort")
    want = b.call_typed("SORT", "s", "BY", "nosort")
    assert got[0] == want[0] and sorted(got[1]) == sorted(want[1])


def test_sort_large_list(raw_pair):
    vals = [str((i * 7919) % 1000 - 500) for i in range(1000)]
    run_all(
        raw_pair,
        [
            ("RPUSH", "L", *vals),
            ("MSET", *[x for i in range(0, 1000, 3) for x in (f"w_{vals[i]}", str(i % 17))]),
        ],
    )
    for cmd in [
        ("SORT", "L"),
        ("SORT", "L", "DESC", "LIMIT", "10", "20"),
        ("SORT", "L", "ALPHA"),
        ("SORT", "L", "BY", "w_*", "GET", "#", "GET", "w_*"),
        ("SORT", "L", "BY", "w_*", "ALPHA", "STORE", "out"),
        ("LRANGE", "out", "0", "-1"),
    ]:
        same(raw_pair, *cmd)


# ---- COPY ----------------------------------------------------------------------------------

COPY_DATA = [
    ("SET", "s", "v"),
    ("SET", "n", "10"),
    ("INCRBY", "n", "5"),
    ("INCR", "cnt"),
    ("RPUSH", "l", "a", "b", "c"),
    ("SADD", "st", "x", "y"),
    ("HSET", "h", "f", "1", "g", "2"),
    ("HINCRBY", "h", "f", "4"),
    ("ZADD", "z", "1", "a", "2", "b", "-0", "c"),
    ("SET", "ttl", "t", "EX", "100"),
    ("HSET", "hexp", "f", "v"),
    ("PEXPIRE", "hexp", "50000"),
]

COPY_CMDS = [
    ("COPY", "s", "s2"),
    ("GET", "s2"),
    ("COPY", "s", "s2"),
    ("COPY", "s", "s2", "REPLACE"),
    ("COPY", "n", "n2"),
    ("GET", "n2"),
    ("INCR", "n2"),
    ("COPY", "cnt", "cnt2"),
    ("GET", "cnt2"),
    ("COPY", "l", "l2"),
    ("LRANGE", "l2", "0", "-1"),
    ("COPY", "st", "st2"),
    ("SCARD", "st2"),
    ("SISMEMBER", "st2", "y"),
    ("COPY", "h", "h2"),
    ("HGET", "h2", "f"),
    ("HLEN", "h2"),
    ("COPY", "z", "z2"),
    ("ZRANGE", "z2", "0", "-1", "WITHSCORES"),
    ("COPY", "ttl", "ttl2"),
    ("TTL", "ttl2"),
    ("COPY", "hexp", "hexp2"),
    ("TYPE", "hexp2"),
    ("COPY", "s", "l", "REPLACE"),
    ("TYPE", "l"),
    ("GET", "l"),
    ("COPY", "z", "s", "DB", "0", "REPLACE"),
    ("TYPE", "s"),
    ("TTL", "s"),
    ("COPY", "missing", "x"),
    ("COPY", "missing", "x", "REPLACE"),
    ("EXISTS", "x"),
    ("COPY", "s", "s"),
    ("COPY", "s", "s", "DB", "0"),
    ("COPY", "s", "x", "DB"),
    ("COPY", "s", "x", "DB", "x"),
    ("COPY", "s", "x", "DB", "99999999999"),
    ("COPY", "s", "x", "FOO"),
    ("COPY", "s", "x", "REPLACE", "DB", "0", "REPLACE"),
    ("COPY", "s"),
]


def test_copy(raw_pair):
    run_all(raw_pair, COPY_DATA)
    for cmd in COPY_CMDS:
        if cmd[0] == "TTL":
            a, b = raw_pair
            got, want = a.call_typed(*cmd), b.call_typed(*cmd)
            assert got[0] == want[0] == "int" and abs(got[1] - want[1]) <= 1, (cmd, got, want)
            continue
        same(raw_pair, *cmd)


def test_copy_to_another_db(r):
    # databases = 16 (tests/test_databases.py compares COPY ... DB with redis-server)
    r.set("a", "1")
    for db in ("-1", "16"):
        with pytest.raises(Exception, match="^DB index is out of range$"):
            r.execute_command("COPY", "a", "b", "DB", db)
    assert r.execute_command("COPY", "a", "b", "DB", "0") == 1
    assert r.execute_command("COPY", "a", "b", "DB", "1") == 1
    assert r.execute_command("SELECT", "1") and r.get("b") == b"1"


# ---- DUMP / RESTORE ------------------------------------------------------------------------

VALUES = [
    ("SET", "s", "hello"),
    ("SET", "e", ""),
    ("SET", "n", "41"),
    ("INCR", "n"),
    ("INCRBY", "cnt", "-7"),
    ("RPUSH", "l", "a", "b", "", "c"),
    ("SADD", "st", "x", "y", "1"),
    ("HSET", "h", "f", "1", "g", "two"),
    ("HINCRBY", "h", "f", "4"),
    ("ZADD", "z", "1", "a", "2.5", "b", "-0", "c", "inf", "d", "-inf", "e"),
    ("ZADD", "zbig", *[x for i in range(200) for x in (str(i / 3), f"m{i}")]),
    ("RPUSH", "lbig", *[str(i) for i in range(1000)]),
    ("SET", "ttl", "t", "PX", "100000"),
]

READS = {
    "s": [("GET", "s2")],
    "e": [("GET", "e2"), ("EXISTS", "e2")],
    "n": [("GET", "n2"), ("INCR", "n2")],
    "cnt": [("GET", "cnt2"), ("DECR", "cnt2")],
    "l": [("LRANGE", "l2", "0", "-1")],
    "st": [("SCARD", "st2"), ("SISMEMBER", "st2", "y"), ("SISMEMBER", "st2", "1")],
    "h": [("HGET", "h2", "f"), ("HGET", "h2", "g"), ("HLEN", "h2")],
    "z": [("ZRANGE", "z2", "0", "-1", "WITHSCORES")],
    "zbig": [("ZRANGE", "zbig2", "0", "-1", "WITHSCORES"), ("ZSCORE", "zbig2", "m0")],
    "lbig": [("LRANGE", "lbig2", "0", "-1")],
    "ttl": [("GET", "ttl2")],
}


def dump_restore(conn, src, dst, *opts):
    p = conn.call_typed("DUMP", src)
    assert p[0] == "bulk", p
    return conn.call_typed("RESTORE", dst, *opts[:1], p[1], *opts[1:])


def test_dump_restore_round_trip(raw_pair):
    run_all(raw_pair, VALUES)
    a, b = raw_pair
    for key, reads in READS.items():
        for conn in raw_pair:
            assert dump_restore(conn, key, key + "2", "0")[1] == b"OK"
        for cmd in reads:
            same(raw_pair, *cmd)
        same(raw_pair, "TYPE", key + "2")
        same(raw_pair, "TTL", key + "2")
    same(raw_pair, "DUMP", "missing")
    # the TTL argument: relative ms, ABSTTL, already past
    for conn in raw_pair:
        assert dump_restore(conn, "s", "t1", "50000")[1] == b"OK"
        assert dump_restore(conn, "s", "t2", "1", "ABSTTL")[1] == b"OK"
        assert (
            dump_restore(conn, "s", "t3", "99999999999999", "ABSTTL", "IDLETIME", "5")[1] == b"OK"
        )
        assert dump_restore(conn, "l", "s", "1", "ABSTTL", "REPLACE")[1] == b"OK"
        assert dump_restore(conn, "h", "h", "0", "REPLACE", "FREQ", "100")[1] == b"OK"
    for cmd in [("EXISTS", "t2"), ("EXISTS", "s"), ("PEXPIRETIME", "t3"), ("HGETALL", "h")]:
        same(raw_pair, *cmd)
    got, want = a.call_typed("PTTL", "t1"), b.call_typed("PTTL", "t1")
    assert 45000 < got[1] <= 50000 and 45000 < want[1] <= 50000


def test_restore_errors(raw_pair):
    run_all(raw_pair, [("SET", "k", "v"), ("SET", "src", "x")])
    a, b = raw_pair
    pa, pb = a.call_typed("DUMP", "src")[1], b.call_typed("DUMP", "src")[1]
    for p_c, p_r in [(pa, pb), (b"bad", b"bad"), (b"", b""), (pa[:-1], pb[:-1])]:
        for args in [
            ("k", "0", "{p}"),
            ("new", "0", "{p}"),
            ("new", "-1", "{p}"),
            ("new", "x", "{p}"),
            ("k", "x", "{p}"),
            ("k", "-1", "{p}", "REPLACE"),
            ("new", "0", "{p}", "FOO"),
            ("new", "0", "{p}", "IDLETIME"),
            ("new", "0", "{p}", "IDLETIME", "-1"),
            ("new", "0", "{p}", "IDLETIME", "x"),
            ("new", "0", "{p}", "FREQ", "256"),
            ("new", "0", "{p}", "FREQ", "-1"),
            ("new", "0", "{p}", "FREQ", "1", "IDLETIME", "1"),
            ("new", "0", "{p}", "IDLETIME", "1", "FREQ", "1"),
            ("new", "0", "{p}", "REPLACE", "ABSTTL", "FOO"),
        ]:
            got = a.call(*[p_c if x == "{p}" else x for x in ("RESTORE", *args)])
            want = b.call(*[p_r if x == "{p}" else x for x in ("RESTORE", *args)])
            if want == b"+OK\r\n":
                assert got == want, (args, got, want)
                run_all(raw_pair, [("DEL", "new")])
                continue
            assert got == want, (args, got, want)
    same(raw_pair, "RESTORE", "k", "0")
    # each server refuses the other's payload as a wrong version
    assert a.call("RESTORE", "x", "0", pb) == b"-ERR DUMP payload version or checksum are wrong\r\n"
    assert b.call("RESTORE", "x", "0", pa) == b"-ERR DUMP payload version or checksum are wrong\r\n"


def _access_replies(conn, src, restore_opts, reads) -> list[bytes]:
    """RESTORE "k" (a copy of src) with restore_opts, then reads, pipelined."""
    payload = conn.call_typed("DUMP", src)[1]
    cmds = [("DEL", "k"), ("RESTORE", "k", "0", payload, *restore_opts), *reads]
    return conn.pipeline(cmds)[1:]


@pytest.mark.parametrize("policy", ["noeviction", "allkeys-lru", "allkeys-lfu", "volatile-lfu"])
def test_restore_idletime_and_freq_set_the_access_stats(raw_pair, policy):
    a, b = raw_pair
    run_all(
        raw_pair,
        [("SET", "s", "v"), ("HSET", "h", "f", "v"), ("CONFIG", "SET", "maxmemory-policy", policy)],
    )
    try:
        cases = [("s", ("IDLETIME", str(t))) for t in (0, 5, 1000, 86400, 4_000_000)]
        cases += [("s", ("FREQ", str(f))) for f in (0, 1, 100, 255)]
        cases += [("s", ()), ("h", ("IDLETIME", "1000")), ("h", ("FREQ", "100"))]
        reads = [("OBJECT", "IDLETIME", "k"), ("OBJECT", "FREQ", "k")]
        for src, opts in cases:
            # Redis's LRU clock ticks in seconds and its LFU time in minutes: a
            # tick between RESTORE and the reads on one server only changes the
            # answer by one, so a mismatch is tried again (a real one repeats)
            for _ in range(3):
                got = _access_replies(a, src, opts, reads)
                want = _access_replies(b, src, opts, reads)
                if got == want:
                    break
            assert got == want, (policy, src, opts, got, want)
        # an access after RESTORE moves the clock as for any key
        reads = [("GET", "k"), *reads]
        got = _access_replies(a, "s", ("IDLETIME", "1000"), reads)
        want = _access_replies(b, "s", ("IDLETIME", "1000"), reads)
        assert got == want
    finally:
        run_all(raw_pair, [("CONFIG", "SET", "maxmemory-policy", "noeviction")])


def _footer(body: bytes) -> bytes:
    from constdb._core.cmd_dump import crc64_of

    body += (257).to_bytes(2, "little")
    return body + crc64_of(body).to_bytes(8, "little")


BAD_DATA = b"-ERR Bad data format\r\n"
BAD_FOOTER = b"-ERR DUMP payload version or checksum are wrong\r\n"


@pytest.fixture
def conn(r, constdb_server):
    """A raw RESP2 connection to the (flushed) constdb server."""
    c = Conn(constdb_server.port)
    yield c
    c.close()


def test_restore_corrupt_payloads(conn):
    # every byte flipped and every truncation of every type's payload is refused
    # (CRC-64 catches every error burst of up to 64 bits) and changes nothing
    a = conn
    a.pipeline(VALUES[:10])
    for key in ("s", "n", "l", "st", "h", "z"):
        p = a.call_typed("DUMP", key)[1]
        assert a.call("RESTORE", "new", "0", p) == b"+OK\r\n"
        assert a.call("DEL", "new") == b":1\r\n"
        for i in range(len(p)):
            for bad in (
                p[:i] + bytes([p[i] ^ 0x01]) + p[i + 1 :],
                p[:i] + bytes([p[i] ^ 0xFF]) + p[i + 1 :],
                p[:i],
            ):
                assert a.call("RESTORE", "new", "0", bad) in (BAD_FOOTER,), (key, i, bad)
        assert a.call("EXISTS", "new") == b":0\r\n"


HOSTILE = [
    b"",  # no type
    b"\x07",  # unknown type code
    b"\x00",  # string without its length
    b"\x00\x05abc",  # string shorter than its length
    b"\x00\x01ab",  # trailing bytes
    b"\x01\x00",  # an empty list
    b"\x01\xff\xff\xff\xff\xff\xff\xff\xff\x7f\x01a",  # 2**63 elements, 2 bytes
    b"\x01\x80\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01",  # a varint past 64 bits
    b"\x02\x02\x01a\x01a",  # a set member twice
    b"\x04\x02\x01f\x01v\x01f\x01w",  # a hash field twice
    b"\x04\x01\x01f",  # a hash field without its value
    b"\x03\x01\x01a" + b"\x00\x00\x00\x00\x00\x00\xf8\x7f",  # a NaN score
    b"\x03\x01\x01a\x00\x00",  # a score cut short
    b"\x03\x02\x01a" + bytes(8) + b"\x01a" + bytes(8),  # a member twice
    b"\x10\x00",  # an empty MV register
]


def test_restore_hostile_bodies(conn):
    a = conn
    for body in HOSTILE:
        assert a.call("RESTORE", "k", "0", _footer(body)) == BAD_DATA, body
    assert a.call("DBSIZE") == b":0\r\n"
    # and well-formed ones of every type restore
    for body, check, want in [
        (b"\x00\x02hi", ("GET", "k"), b"$2\r\nhi\r\n"),
        (b"\x01\x02\x01a\x01b", ("LRANGE", "k", "0", "-1"), b"*2\r\n$1\r\na\r\n$1\r\nb\r\n"),
        (b"\x02\x01\x00", ("SCARD", "k"), b":1\r\n"),
        (b"\x04\x01\x01f\x01v", ("HGET", "k", "f"), b"$1\r\nv\r\n"),
        (b"\x03\x01\x01a\x00\x00\x00\x00\x00\x00\xf8\x3f", ("ZSCORE", "k", "a"), b"$3\r\n1.5\r\n"),
        (b"\x10\x02\x01x\x01y", ("TYPE", "k"), b"+mvreg\r\n"),
    ]:
        assert a.call("RESTORE", "k", "0", _footer(body), "REPLACE") == b"+OK\r\n", body
        assert a.call(*check) == want, body


@pytest.mark.slow
def test_restore_fuzz(constdb_server):
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    conn = Conn(constdb_server.port)
    conn.call("FLUSHALL")
    seeds = [
        b"\x00\x02hi",
        b"\x01\x02\x01a\x01b",
        b"\x04\x01\x01f\x01v",
        b"\x03\x01\x01a" + bytes(8),
    ]

    @settings(max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck))
    @given(
        st.sampled_from(seeds),
        st.lists(st.tuples(st.integers(0, 40), st.integers(0, 255)), max_size=4),
        st.binary(max_size=12),
    )
    def run(seed, edits, tail):
        body = bytearray(seed)
        for pos, val in edits:
            if pos < len(body):
                body[pos] = val
            else:
                body.append(val)
        body = bytes(body) + tail
        got = conn.call("RESTORE", "k", "0", _footer(body), "REPLACE")
        assert got in (b"+OK\r\n", BAD_DATA), (body, got)
        if got == BAD_DATA:
            return
        # what was restored dumps again to a payload that restores
        p = conn.call_typed("DUMP", "k")[1]
        assert conn.call("RESTORE", "k", "0", p, "REPLACE") == b"+OK\r\n"

    try:
        run()
        assert conn.call("PING") == b"+PONG\r\n"
    finally:
        conn.close()


# ---- Redis's encoding settings (accepted, no effect) -----------------------------------------

ENCODING_DEFAULTS = {
    "hash-max-listpack-entries": "512",
    "hash-max-listpack-value": "64",
    "list-max-listpack-size": "-2",
    "list-compress-depth": "0",
    "set-max-intset-entries": "512",
    "zset-max-listpack-entries": "128",
    "zset-max-listpack-value": "64",
    "stream-node-max-bytes": "4096",
    "stream-node-max-entries": "100",
    "hll-sparse-max-bytes": "3000",
    "active-defrag-ignore-bytes": "104857600",
    "active-defrag-threshold-lower": "10",
    "active-defrag-threshold-upper": "100",
    "active-defrag-cycle-min": "1",
    "active-defrag-cycle-max": "25",
    "active-defrag-max-scan-fields": "1000",
    "lazyfree-lazy-eviction": "no",
    "lazyfree-lazy-expire": "no",
    "lazyfree-lazy-server-del": "no",
    "lazyfree-lazy-user-del": "no",
    "lazyfree-lazy-user-flush": "no",
    "replica-lazy-flush": "no",
    "activedefrag": "no",
}
ENCODING_ALIASES = {
    "hash-max-ziplist-entries": "hash-max-listpack-entries",
    "hash-max-ziplist-value": "hash-max-listpack-value",
    "list-max-ziplist-size": "list-max-listpack-size",
    "zset-max-ziplist-entries": "zset-max-listpack-entries",
    "zset-max-ziplist-value": "zset-max-listpack-value",
    "slave-lazy-flush": "replica-lazy-flush",
}


def _config_map(reply):
    kind, items = reply
    if kind == "map":
        return {k[1]: v[1] for k, v in items}
    return {items[i][1]: items[i + 1][1] for i in range(0, len(items), 2)}


def test_encoding_settings(raw_pair):
    a, b = raw_pair
    try:
        for name, default in {
            **ENCODING_DEFAULTS,
            **{k: ENCODING_DEFAULTS[v] for k, v in ENCODING_ALIASES.items()},
        }.items():
            reply = same(raw_pair, "CONFIG", "GET", name)
            assert default.encode() in reply, (name, reply)
        for pat in (
            "*listpack*",
            "*ziplist*",
            "*intset*",
            "stream-node*",
            "hll*",
            "*lazy*",
            "active-defrag-*",
            "HASH-MAX-*",
        ):
            got, want = (
                _config_map(a.call_typed("CONFIG", "GET", pat)),
                _config_map(b.call_typed("CONFIG", "GET", pat)),
            )
            assert got == want, (pat, got, want)
        for name in list(ENCODING_DEFAULTS) + list(ENCODING_ALIASES):
            if name == "activedefrag":
                continue
            for val in (
                "0",
                "1",
                "-1",
                "7",
                "1k",
                "2mb",
                "abc",
                "",
                "99",
                "100",
                "1000",
                "1001",
                "-2147483649",
                "2147483648",
                "9223372036854775807",
                "9223372036854775808",
                "yes",
                "no",
                "01",
            ):
                same(raw_pair, "CONFIG", "SET", name, val)
                same(raw_pair, "CONFIG", "GET", name)
                alias = ENCODING_ALIASES.get(name)
                if alias:
                    same(raw_pair, "CONFIG", "GET", alias)
        same(
            raw_pair,
            "CONFIG",
            "SET",
            "hash-max-ziplist-entries",
            "5",
            "hash-max-listpack-entries",
            "6",
        )
        same(raw_pair, "CONFIG", "SET", "activedefrag", "no")
        # this node has no defragmenter (redis-server without jemalloc refuses it too)
        assert a.call_typed("CONFIG", "SET", "activedefrag", "yes")[0] == "err"
        same(raw_pair, "CONFIG", "GET", "activedefrag")
    finally:
        for conn in raw_pair:
            for name, default in ENCODING_DEFAULTS.items():
                conn.call("CONFIG", "SET", name, default)


def test_encoding_settings_in_the_file(node, tmp_path):
    conf = write_config(
        str(tmp_path),
        hash_max_listpack_entries=5,
        zset_max_listpack_value="1kb",
        lazyfree_lazy_user_del=True,
    )
    srv = node(config=conf).start()
    c = srv.client()
    assert c.config_get("hash-max-ziplist-entries") == {"hash-max-ziplist-entries": "5"}
    assert c.config_get("zset-max-listpack-value") == {"zset-max-listpack-value": "1024"}
    assert c.config_get("lazyfree-lazy-user-del") == {"lazyfree-lazy-user-del": "yes"}
    c.close()


# ---- LCS -----------------------------------------------------------------------------------

LCS_CMDS = [
    ("MSET", "a", "ohmytext", "b", "mynewtext", "e", "", "x", "abcdefgh", "y", "hgfedcba"),
    ("SET", "n", "12345"),
    ("INCRBY", "m", "2345"),
    ("SET", "bin", "a\x00b\x00c"),
    ("SET", "bin2", "\x00b\x00"),
    ("RPUSH", "l", "x"),
    ("LCS", "a", "b"),
    ("LCS", "b", "a"),
    ("LCS", "a", "b", "LEN"),
    ("LCS", "a", "b", "IDX"),
    ("LCS", "a", "b", "IDX", "WITHMATCHLEN"),
    ("LCS", "a", "b", "IDX", "MINMATCHLEN", "4"),
    ("LCS", "a", "b", "IDX", "MINMATCHLEN", "4", "WITHMATCHLEN"),
    ("LCS", "a", "b", "IDX", "MINMATCHLEN", "-5"),
    ("LCS", "a", "b", "MINMATCHLEN", "2"),
    ("LCS", "a", "b", "LEN", "MINMATCHLEN", "2", "WITHMATCHLEN"),
    ("LCS", "a", "b", "IDX", "LEN"),
    ("LCS", "a", "b", "LEN", "IDX"),
    ("LCS", "a", "b", "MINMATCHLEN"),
    ("LCS", "a", "b", "MINMATCHLEN", "x"),
    ("LCS", "a", "b", "FOO"),
    ("LCS", "a", "a", "IDX", "WITHMATCHLEN"),
    ("LCS", "a", "e"),
    ("LCS", "a", "e", "IDX"),
    ("LCS", "missing", "a", "LEN"),
    ("LCS", "missing", "other", "IDX"),
    ("LCS", "x", "y", "IDX", "WITHMATCHLEN"),
    ("LCS", "x", "y"),
    ("LCS", "n", "m", "IDX", "WITHMATCHLEN"),
    ("LCS", "bin", "bin2"),
    ("LCS", "bin", "bin2", "IDX"),
    ("LCS", "a", "l"),
    ("LCS", "l", "missing", "LEN"),
    ("LCS", "a"),
]


def test_lcs(raw_pair):
    for cmd in LCS_CMDS:
        same(raw_pair, *cmd)


def test_lcs_random(raw_pair):
    import random

    rnd = random.Random(12)
    for _ in range(60):
        s1 = "".join(rnd.choice("abc") for _ in range(rnd.randint(0, 40)))
        s2 = "".join(rnd.choice("abc") for _ in range(rnd.randint(0, 40)))
        run_all(raw_pair, [("MSET", "p", s1, "q", s2)])
        same(raw_pair, "LCS", "p", "q")
        same(
            raw_pair, "LCS", "p", "q", "IDX", "WITHMATCHLEN", "MINMATCHLEN", str(rnd.randint(0, 3))
        )


def test_lcs_memory_bound(raw_pair):
    run_all(
        raw_pair,
        [
            ("CONFIG", "SET", "proto-max-bulk-len", "1mb"),
            ("SET", "a", "x" * 1000),
            ("SET", "b", "y" * 1000),
        ],
    )
    try:
        same(raw_pair, "LCS", "a", "b", "LEN")
        run_all(raw_pair, [("SET", "b", "y" * 200)])
        same(raw_pair, "LCS", "a", "b", "LEN")
    finally:
        run_all(raw_pair, [("CONFIG", "SET", "proto-max-bulk-len", "512mb")])


# ---- INCRBYFLOAT / HINCRBYFLOAT: a lone writer is Redis-exact ----------------------------

FLOAT_STEPS = ["0.1", "0.2", "-0.3", "1e17", "0.5", "3.0e3", "-1e17", "10.5", "1.1", "0.0001", "7"]


def test_incrbyfloat_chains(raw_pair):
    run_all(
        raw_pair,
        [
            ("SET", "big", "123456789012345678"),
            ("SET", "txt", "abc"),
            ("HSET", "h", "txt", "abc", "big", "1e300"),
        ],
    )
    for step in FLOAT_STEPS * 3:
        same(raw_pair, "INCRBYFLOAT", "f", step)
        same(raw_pair, "HINCRBYFLOAT", "h", "f", step)
        same(raw_pair, "INCRBYFLOAT", "big", step)
    for cmd in [
        ("GET", "f"),
        ("HGET", "h", "f"),
        ("INCR", "f"),
        ("HINCRBY", "h", "f", "1"),
        ("SET", "i", "10"),
        ("INCRBYFLOAT", "i", "5"),
        ("INCR", "i"),
        ("INCRBYFLOAT", "i", "0.5"),
        ("INCR", "i"),
        ("HSET", "h", "i", "10"),
        ("HINCRBYFLOAT", "h", "i", "5"),
        ("HINCRBY", "h", "i", "1"),
        ("HINCRBYFLOAT", "h", "i", "0.25"),
        ("HINCRBY", "h", "i", "1"),
        ("INCRBY", "c", "5"),
        ("INCRBYFLOAT", "c", "1.5"),
        ("HINCRBY", "h", "c", "5"),
        ("HINCRBYFLOAT", "h", "c", "1.5"),
        ("HINCRBYFLOAT", "h", "txt", "1"),
        ("HINCRBYFLOAT", "h", "big", "1e308"),
        ("HINCRBYFLOAT", "h", "x", "inf"),
        ("HINCRBYFLOAT", "h", "x", "nan"),
        ("HINCRBYFLOAT", "h", "x", "abc"),
        ("HINCRBYFLOAT", "h", "x", ""),
        ("HINCRBYFLOAT", "h", "x", " 1"),
        ("HINCRBYFLOAT", "h", "x", "1e5000"),
        ("HINCRBYFLOAT", "txt", "x", "1"),
        ("HINCRBYFLOAT", "h", "x"),
        ("INCRBYFLOAT", "txt", "1"),
        ("INCRBYFLOAT", "h", "1"),
        ("INCRBYFLOAT", "f", "inf"),
        ("SET", "f", "1.5"),
        ("INCRBYFLOAT", "f", "1"),
        ("HSET", "h", "f", "1.5"),
        ("HINCRBYFLOAT", "h", "f", "1"),
        ("HDEL", "h", "f"),
        ("HINCRBYFLOAT", "h", "f", "2.5"),
        ("DEL", "f"),
        ("INCRBYFLOAT", "f", "2.5"),
        ("SET", "e", "5", "EX", "100"),
        ("INCRBYFLOAT", "e", "1"),
        ("TTL", "e"),
        ("HLEN", "h"),
        *[("HGET", "h", f) for f in ("txt", "big", "i", "c", "f", "x")],
    ]:
        same(raw_pair, *cmd)


# ---- across nodes ------------------------------------------------------------------------


def test_concurrent_float_increments_add_up(node):
    a, b, pa, pb = proxied_pair(node)
    try:
        ra, rb = a.client(), b.client()
        ra.set("f", "10")
        ra.hset("h", "f", "1.5")
        ra.incrbyfloat("g", "0.1")
        wait_converged([a, b])
        cut_link(pa, pb, a, b)
        for _ in range(3):
            ra.incrbyfloat("f", "0.1")
            rb.incrbyfloat("f", "2.5")
            ra.hincrbyfloat("h", "f", "-0.25")
            rb.hincrbyfloat("h", "f", "1")
            rb.hincrbyfloat("h", "new", "0.5")
            ra.hincrbyfloat("h", "new", "0.5")
            rb.incrbyfloat("g", "1e-3")
        # each side alone is Redis's chain
        assert ra.get("f") == b"10.3" and rb.get("f") == b"17.5"
        pa.heal()
        pb.heal()
        wait_linked([a, b])
        wait_converged([a, b])
        for r in (ra, rb):
            assert r.get("f") == b"17.8"
            assert r.hget("h", "f") == b"3.75"
            assert r.hget("h", "new") == b"3"
            assert r.get("g") == b"0.103"
        # a later write observes every contribution: a lone writer again
        rb.incrbyfloat("f", "0.2")
        ra.hincrbyfloat("h", "f", "0.25")
        wait_converged([a, b])
        for r in (ra, rb):
            assert r.get("f") == b"18"
            assert r.hget("h", "f") == b"4"
        # and an integer again: INCR counts on it
        assert ra.incr("f") == 19
    finally:
        pa.close()
        pb.close()


def test_restore_copy_and_sort_store_replicate(node):
    a, b, pa, pb = proxied_pair(node)
    try:
        ra, rb = a.client(), b.client()
        ra.rpush("l", "3", "1", "2")
        ra.hset("h", mapping={"f": "v", "g": "w"})
        ra.zadd("z", {"a": 1, "b": 2})
        payload = ra.dump("h")
        ra.restore("h2", 0, payload)
        ra.copy("z", "z2")
        ra.copy("l", "l2")
        ra.sort("l", store="sorted")
        ra.set("s", "x")
        ra.copy("l", "s", replace=True)
        wait_converged([a, b])
        assert rb.hgetall("h2") == {b"f": b"v", b"g": b"w"}
        assert rb.zrange("z2", 0, -1, withscores=True) == [(b"a", 1.0), (b"b", 2.0)]
        assert rb.lrange("l2", 0, -1) == [b"3", b"1", b"2"]
        assert rb.lrange("sorted", 0, -1) == [b"1", b"2", b"3"]
        assert rb.lrange("s", 0, -1) == [b"3", b"1", b"2"]
        # a payload from one node restores on the other
        rb.restore("h3", 0, payload)
        rb.sort("l", desc=True, store="sorted")
        wait_converged([a, b])
        assert ra.hgetall("h3") == {b"f": b"v", b"g": b"w"}
        assert ra.lrange("sorted", 0, -1) == [b"3", b"2", b"1"]
        # a push concurrent with a SORT ... STORE of the same destination survives it
        cut_link(pa, pb, a, b)
        ra.sort("l", store="sorted")
        rb.rpush("sorted", "extra")
        pa.heal()
        pb.heal()
        wait_linked([a, b])
        wait_converged([a, b])
        assert ra.lrange("sorted", 0, -1) == rb.lrange("sorted", 0, -1)
        assert b"extra" in ra.lrange("sorted", 0, -1) and ra.llen("sorted") == 4
    finally:
        pa.close()
        pb.close()


def test_copy_and_dump_of_an_mv_register(conn):
    a = conn
    assert a.call("MVSET", "mv", "x") == b"+OK\r\n"
    assert a.call("COPY", "mv", "mv2") == b":1\r\n"
    assert a.call("TYPE", "mv2") == a.call("TYPE", "mv")
    p = a.call_typed("DUMP", "mv")[1]
    assert a.call("RESTORE", "mv3", "0", p) == b"+OK\r\n"
    want = a.call("MVGET", "mv")
    assert b"$1\r\nx\r\n" in want
    for k in ("mv2", "mv3"):
        got = a.call("MVGET", k)
        assert b"$1\r\nx\r\n" in got and got.count(b"\r\nx\r\n") == 1, got
