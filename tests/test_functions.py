"""FUNCTION libraries across members (constdb/functions.py, docs/crdt.md
section 3.10): replicated loads, deletes and flushes, kept over restarts
(snapshot file and append-only log), carried by a newcomer's full sync, and
concurrent loads of one name converging; FUNCTION DUMP / RESTORE: round
trip, corrupt payloads and the three policies, differential against
redis-server where the reply does not depend on the payload's bytes."""

from __future__ import annotations

import re

import pytest
import redis
from support.differential import same
from support.nodes import (
    cut_link,
    heal_link,
    make_node,
    meet,
    proxied_pair,
    wait_for,
    wait_linked,
)


def lib(name: str, *fns: str, ret: str = "1") -> str:
    body = "".join(
        f"redis.register_function('{f}', function(keys, args) return {ret} end)\n" for f in fns
    )
    return f"#!lua name={name}\n{body}"


def libs_of(n) -> list:
    """FUNCTION LIST WITHCODE as comparable data."""
    out = []
    for e in n.client().function_list(withcode=True):
        d = dict(zip(e[::2], e[1::2]))
        fns = sorted(dict(zip(f[::2], f[1::2]))[b"name"] for f in d[b"functions"])
        out.append((d[b"library_name"], d[b"library_code"], fns))
    return sorted(out)


def fcall_or_err(n, fn: str):
    try:
        return n.client().fcall(fn, 0)
    except redis.ResponseError as e:
        return str(e)


def wait_same_libs(nodes, want=None) -> list:
    def ok():
        got = [libs_of(n) for n in nodes]
        if all(g == got[0] for g in got) and (want is None or want(got[0])):
            return (got[0],)  # truthy even when no library is left
        return None

    return wait_for(ok, 20, 0.05, what="the same libraries on every node")[0]


def test_load_delete_flush_replicated(node):
    a, b, c = (make_node(node, n) for n in ("a", "b", "c"))
    meet(b, a)
    meet(c, a)
    wait_linked([a, b, c])
    ra, rb = a.client(), b.client()
    assert ra.function_load(lib("l1", "f1", ret="'one'")) == b"l1"
    wait_for(lambda: fcall_or_err(b, "f1") == b"one", 10, what="f1 callable on b")
    assert c.client().fcall("f1", 0) == b"one"
    # REPLACE on b reaches a and c
    rb.function_load(lib("l1", "f1", ret="'two'"), replace=True)
    for n in (a, c):
        wait_for(lambda n=n: fcall_or_err(n, "f1") == b"two", 10, what="replaced f1")
    with pytest.raises(redis.ResponseError, match="already exists"):
        ra.function_load(lib("l1", "f1"))
    # DELETE on c
    rb.function_load(lib("l2", "f2"))
    wait_same_libs([a, b, c], lambda g: len(g) == 2)
    c.client().function_delete("l1")
    got = wait_same_libs([a, b, c], lambda g: len(g) == 1)
    assert [x[0] for x in got] == [b"l2"]
    assert fcall_or_err(a, "f1") == "Function not found"
    # FLUSH on a
    ra.function_load(lib("l3", "f3"))
    wait_same_libs([a, b, c], lambda g: len(g) == 2)
    ra.function_flush()
    assert wait_same_libs([a, b, c], lambda g: g == []) == []
    # a script of a function written on a peer, and its writes, as any other
    ra.function_load(lib("w", "wr", ret="redis.call('incr', keys[1])"))
    wait_for(lambda: libs_of(c) != [], 10, what="w on c")
    assert c.client().fcall("wr", 1, "cnt") == 1
    wait_for(lambda: ra.get("cnt") == b"1", 10, what="the function's write on a")


def test_restart_keeps_libraries_snapshot_and_log(node):
    s = make_node(node, "s", save=[])
    s.client().function_load(lib("keep", "k1", ret="'saved'"))
    s.client().save()
    s.restart()
    assert s.client().fcall("k1", 0) == b"saved"
    # appendonly: loads after the last snapshot come back from the log, even after a crash
    w = make_node(node, "w", appendonly=True, save=[])
    rw = w.client()
    rw.function_load(lib("first", "g1"))
    rw.bgrewriteaof()
    rw.function_load(lib("second", "g2", ret="'logged'"))
    rw.function_delete("first")
    w.kill()
    w.start()
    assert [x[0] for x in libs_of(w)] == [b"second"]
    assert w.client().fcall("g2", 0) == b"logged"


def test_newcomer_full_sync_gets_libraries(node):
    a, b = make_node(node, "a"), make_node(node, "b")
    meet(b, a)
    wait_linked([a, b])
    a.client().function_load(lib("shared", "sf", ret="'hi'"))
    b.client().function_load(lib("gone", "gf"))
    b.client().function_delete("gone")
    wait_same_libs([a, b], lambda g: len(g) == 1)
    c = make_node(node, "c")
    meet(c, a)
    wait_linked([a, b, c])
    got = wait_same_libs([a, b, c], lambda g: len(g) == 1)
    assert got[0][0] == b"shared"
    assert c.client().fcall("sf", 0) == b"hi"


def test_concurrent_loads_of_one_name_converge(node):
    a, b, pa, pb = proxied_pair(node)
    try:
        ra, rb = a.client(), b.client()
        cut_link(pa, pb, a, b)
        ra.function_load(lib("same", "fa", ret="'from a'"))
        rb.function_load(lib("same", "fb", ret="'from b'"))
        # two names, one function name: one library shadows the other
        ra.function_load(lib("xa", "clash", ret="'xa'"))
        rb.function_load(lib("xb", "clash", ret="'xb'"))
        heal_link(pa, pb, a, b)
        got = wait_same_libs([a, b], lambda g: len(g) == 2)
        names = [x[0] for x in got]
        assert b"same" in names and len({b"xa", b"xb"} & set(names)) == 1
        assert fcall_or_err(a, "clash") == fcall_or_err(b, "clash")
        # the shadowed library comes back when the one that shadows it goes
        winner = (set(names) & {b"xa", b"xb"}).pop()
        ra.function_delete(winner.decode())
        loser = ({b"xa", b"xb"} - {winner}).pop()
        got = wait_same_libs([a, b], lambda g: loser in [x[0] for x in g])
        assert fcall_or_err(b, "clash") == loser
    finally:
        pa.close()
        pb.close()


# ---- FUNCTION DUMP / RESTORE ----------------------------------------------------


def test_dump_restore_round_trip_and_policies(r):
    r.function_flush()
    assert r.function_load(lib("l1", "f1", ret="'v1'")) == b"l1"
    r.function_load(lib("l2", "f2", "f3"))
    payload = r.function_dump()
    r.function_flush()
    assert r.function_restore(payload) is True
    assert sorted(x[1] for x in r.function_list()) == [b"l1", b"l2"]
    assert r.fcall("f1", 0) == b"v1"
    # APPEND (default): a library that exists fails the whole restore
    with pytest.raises(redis.ResponseError, match="^Library l1 already exists$"):
        r.function_restore(payload)
    with pytest.raises(redis.ResponseError, match="^Library l1 already exists$"):
        r.function_restore(payload, "APPEND")
    # REPLACE: same names replaced, a function of another library still collides
    r.function_delete("l1")
    r.function_load(lib("other", "f1", ret="'other'"))
    with pytest.raises(redis.ResponseError, match="^Function f1 already exists$"):
        r.function_restore(payload, "REPLACE")
    r.function_delete("other")
    r.function_load(lib("l1", "f1", ret="'changed'"))
    assert r.function_restore(payload, "replace") is True
    assert r.fcall("f1", 0) == b"v1"
    # FLUSH: only the payload's libraries remain
    r.function_load(lib("extra", "e1"))
    assert r.function_restore(payload, "FLUSH") is True
    assert len(r.function_list()) == 2
    # FLUSH with an empty payload: no library remains
    full = r.function_dump()
    r.function_flush()
    empty = r.function_dump()
    assert r.function_restore(full) is True
    assert r.function_restore(empty, "FLUSH") is True
    assert r.function_list() == []


def test_restore_refuses_corrupt_payloads(r):
    r.function_flush()
    r.function_load(lib("l1", "f1"))
    payload = r.function_dump()
    r.function_flush()
    bad = []
    for i in range(len(payload)):
        bad.append(payload[:i] + bytes([payload[i] ^ 0x20]) + payload[i + 1 :])
    bad += [payload[:n] for n in range(len(payload))]
    for p in bad:
        with pytest.raises(redis.ResponseError, match="version or checksum are wrong"):
            r.function_restore(p)
    assert r.function_list() == []


def test_restore_checks_the_body(r):
    """Payloads with a right footer and a bad body: nothing is loaded."""
    from constdb._core.cmd_dump import crc64_of

    def seal(body: bytes) -> bytes:
        body += (257).to_bytes(2, "little")
        return body + crc64_of(body).to_bytes(8, "little")

    code = lib("l1", "f1").encode()

    def entry(c: bytes) -> bytes:
        return b"\xf5" + bytes([len(c)]) + c

    cases = {
        b"\x01" + bytes([len(code)]) + code: "given type is not a function",
        b"\xf5\x7f" + code[:10]: "Failed loading library payload",
        b"\xf5" + bytes([len(code)]) + code + b"\xf5" + bytes([len(code)]) + code: (
            "Library l1 already exists"
        ),
        entry(b"hello"): "Missing library metadata",
        entry(b"#!lua name=x\nreturn x("): "Error compiling",
    }
    r.function_flush()
    for body, err in cases.items():
        with pytest.raises(redis.ResponseError, match=err):
            r.function_restore(seal(body))
    assert r.function_list() == []
    assert r.function_restore(seal(b"\xf5" + bytes([len(code)]) + code)) is True
    assert r.fcall("f1", 0) == 1
    r.function_flush()


DUMP_CASES = [
    ("function", "flush"),
    ("function", "dump", "x"),
    ("function", "restore"),
    ("function", "restore", "x", "y", "z"),
    ("function", "RESTORE", "x", "APPEND", "z"),
    ("function", "restore", "x", "bogus"),
    ("function", "restore", "x"),
    ("function", "restore", "short", "flush"),
    ("function", "restore", "\xf5" + "a" * 40, "replace"),
]


def test_dump_restore_errors_same_as_redis(raw_pair):
    for case in DUMP_CASES:
        same(raw_pair, *case)


def test_redis_refuses_our_payload_and_we_refuse_its(r, rr):
    for src, dst in ((r, rr), (rr, r)):
        src.function_flush()
        dst.function_flush()
        src.function_load(lib("l1", "f1"))
        with pytest.raises(
            redis.ResponseError, match="^DUMP payload version or checksum are wrong$"
        ):
            dst.function_restore(src.function_dump())
        src.function_flush()


def test_monitor_shows_script_commands_as_redis(constdb_server, redis_server, r, rr):
    from test_blocking import _monitor_lines

    body = "redis.call('set', KEYS[1], ARGV[1]) redis.pcall('incr', KEYS[1]) return redis.call('get', KEYS[1])"
    sha = r.script_load(body)
    assert rr.script_load(body) == sha
    code = lib("mon", "mf", ret="redis.call('incr', keys[1])")
    for c in (r, rr):
        c.function_flush()
        c.function_load(code)
    cmds = [
        ("EVAL", body, "1", "k", "v"),
        ("EVALSHA", sha, "1", "k", "w"),
        ("EVAL_RO", "return redis.call('get', KEYS[1])", "1", "k"),
        ("FCALL", "mf", "1", "n"),
        ("SET", "after", "1"),
    ]

    def lines(port: int) -> list[str]:
        return [re.sub(r"^\+\d+\.\d{6} ", "+T ", x) for x in _monitor_lines(port, cmds)]

    got = lines(constdb_server.port)
    assert got == lines(redis_server.port)
    assert '+T [0 lua] "incr" "n"\r\n' in got
    for c in (r, rr):
        c.function_flush()


def test_function_list_flags_and_fcall_numkeys_errors_same_as_redis(raw_pair):
    flagged = (
        "#!lua name=fl\nredis.register_function{function_name='ro', callback="
        "function(keys, args) return 1 end, flags={'allow-stale', 'no-writes'}}"
    )
    for case in (
        ("FUNCTION", "FLUSH"),
        ("FUNCTION", "LOAD", flagged),
        ("FUNCTION", "LIST"),  # flags are status replies (a set in RESP3)
        ("FUNCTION", "LIST", "WITHCODE", "LIBRARYNAME", "f*"),
        ("FUNCTION", "LIST", "LIBRARYNAME"),
        ("FUNCTION", "LIST", "LIBRARYNAME", "a", "LIBRARYNAME"),
        ("FCALL", "ro", "abc"),
        ("FCALL_RO", "ro", "1.5"),
        ("FCALL", "ro", "-1"),
        ("FCALL", "ro", "2", "k"),
        ("FCALL", "nofn", "abc"),
        ("FCALL_RO", "nofn", "-1"),
        ("FUNCTION", "FLUSH"),
    ):
        same(raw_pair, *case)
