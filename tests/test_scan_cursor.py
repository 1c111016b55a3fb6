"""SCAN, SSCAN, HSCAN and ZSCAN's cursor argument against a real redis-server
(7.0), in RESP2 and RESP3: the same strings accepted and refused ("ERR invalid
cursor": Redis's parseScanCursorOrReply reads the cursor with strtoul, so a
sign, an empty string and leading zeros are cursors, a negative one wraps
modulo 2**64; a leading space, anything after the digits and a value past
2**64 - 1 are not), checked before the key's type and before the options.

Where Redis ignores the cursor (a missing key, an intset or listpack
collection, an empty database) the replies are compared byte for byte. Where
it does not (a hash table), a cursor ConstDB did not hand out names no
iteration and the reply is Redis's shape: a decimal cursor and elements of
the collection (field/member and value pairs for HSCAN/ZSCAN); following the
cursors from there ends, on both servers, having returned nothing foreign."""

from __future__ import annotations

import pytest
from support.resp import parse_typed

VALID = [
    b"0",
    b"",
    b"-0",
    b"+0",
    b"00",
    b"007",
    b"+7",
    b"-1",
    b"-7",
    b"1\x00x",  # (strtoul stops at the NUL: the C string ends there)
    b"\x001",
    b"18446744073709551615",
    b"-18446744073709551615",
    b"4294967296",
    b"9007199254740992",
    b"9007199254740993",
    b"0" * 40 + b"1",
    b"987654321",
]
INVALID = [
    b"abc",
    b" ",
    b" 1",
    b"1 ",
    b"\t1",
    b"\n1",
    b"\x0b1",
    b"\x0c1",
    b"\r1",
    b"1\n",
    b"0x10",
    b"1.5",
    b"1e3",
    b"1a",
    b"+",
    b"-",
    b"+-1",
    b"--1",
    b"- 1",
    b"+ 1",
    b"\xa01",
    b"18446744073709551616",
    b"-18446744073709551616",
    b"99999999999999999999999",
]
CURSORS = VALID + INVALID
OPTIONS = [(), ("COUNT", "0"), ("MATCH",), ("COUNT", "5", "MATCH", "*1*")]
BIG = 300  # elements: past every compact encoding


def _fill(conn) -> None:
    """The same keys on either server: small and big collections of every
    scanned type, a string (WRONGTYPE) and no "missing"."""
    cmds = [
        ("SET", "str", "v"),
        ("SADD", "ints", "3", "1", "2", "10"),
        ("SADD", "sbig", *[f"m{i}" for i in range(BIG)]),
        ("HSET", "hsmall", "f1", "a", "f2", "b", "f3", "c"),
        ("HSET", "hbig", *[x for i in range(BIG) for x in (f"f{i}", f"v{i}")]),
        ("ZADD", "zsmall", "1", "a", "2", "b", "3", "c"),
        ("ZADD", "zbig", *[x for i in range(BIG) for x in (str(i), f"z{i}")]),
    ]
    for rep in conn.pipeline(cmds):
        assert rep[:1] in (b":", b"+"), rep


def _contents(key: str) -> dict[bytes, bytes | None]:
    if key == "sbig":
        return {b"m%d" % i: None for i in range(BIG)}
    if key == "hbig":
        return {b"f%d" % i: b"v%d" % i for i in range(BIG)}
    if key == "zbig":
        return {b"z%d" % i: b"%d" % i for i in range(BIG)}
    return {b"k%d" % i: None for i in range(30)}  # SCAN's keys


def _shape(reply: bytes, contents: dict, pairs: bool) -> bytes:
    """A reply that must be [cursor, elements of contents]: its cursor."""
    v = parse_typed(reply)
    assert v[0] == "arr" and len(v[1]) == 2, reply
    cur, items = v[1]
    assert cur[0] == "bulk" and cur[1].isdigit() and int(cur[1]) < 2**64, reply
    assert items[0] == "arr", reply
    flat = [x[1] for x in items[1]]
    assert all(x[0] == "bulk" for x in items[1]), reply
    if pairs:
        assert len(flat) % 2 == 0, reply
        for m, val in zip(flat[0::2], flat[1::2]):
            assert contents.get(m, b"?") == val, (m, val)
    else:
        assert set(flat) <= set(contents), reply
    return cur[1]


def _follow(conn, cmd: list, cur: bytes, contents: dict, pairs: bool) -> None:
    """From cur, the iteration ends within the element count's calls."""
    calls = 0
    while cur != b"0":
        calls += 1
        assert calls <= len(contents) + 2, f"{cmd!r}: no end"
        at = 1 if cmd[0] == "SCAN" else 2
        cur = _shape(conn.call(*cmd[:at], cur, *cmd[at + 1 :]), contents, pairs)


def _requests(name: str, keys: list[str]) -> list[tuple]:
    out = []
    for key in keys:
        for cur in CURSORS:
            for opt in OPTIONS:
                out.append((name, cur, *opt) if name == "SCAN" else (name, key, cur, *opt))
    return out


def _compare(pair, reqs, exact_keys: set, contents_of) -> None:
    a, b = pair
    got, want = a.pipeline(reqs), b.pipeline(reqs)
    for req, g, w in zip(reqs, got, want):
        key = "db" if req[0] == "SCAN" else req[1]
        if w.startswith(b"-") or g.startswith(b"-") or key in exact_keys:
            assert g == w, f"{req!r}: constdb {g!r} != redis {w!r}"
            continue
        pairs = req[0] in ("HSCAN", "ZSCAN")
        contents = contents_of(key)
        cmd = list(req)
        for conn, rep in ((a, g), (b, w)):
            _follow(conn, cmd, _shape(rep, contents, pairs), contents, pairs)


@pytest.mark.parametrize(
    "name,exact,shaped",
    [
        ("SSCAN", ["missing", "str", "ints"], ["sbig"]),
        ("HSCAN", ["missing", "str", "hsmall"], ["hbig"]),
        ("ZSCAN", ["missing", "str", "zsmall"], ["zbig"]),
    ],
)
def test_key_scan_cursors_as_redis(raw_pair, name, exact, shaped):
    for conn in raw_pair:
        _fill(conn)
    _compare(raw_pair, _requests(name, exact + shaped), set(exact), _contents)


def test_scan_cursors_as_redis(raw_pair):
    # an empty database: every reply byte for byte (errors, "0" and no keys)
    _compare(raw_pair, _requests("SCAN", ["db"]), {"db"}, _contents)
    for conn in raw_pair:
        assert conn.pipeline([("SET", f"k{i}", "v") for i in range(30)]) == [b"+OK\r\n"] * 30
    _compare(raw_pair, _requests("SCAN", ["db"]), set(), _contents)


def test_cursor_lists_are_what_redis_says(raw_pair):
    """The lists above are right about Redis (an error exactly for INVALID)."""
    b = raw_pair[1]
    for cur in CURSORS:
        rep = b.call("SCAN", cur)
        assert (rep == b"-ERR invalid cursor\r\n") == (cur in INVALID), (cur, rep)
