"""The command table (constdb/commands/commands.toml) against the running
node and a live redis-server 7.0.15: COMMAND INFO's arity, flags, key specs
and reply shapes for every command both servers have (RESP2 and RESP3);
every handler has a spec and every spec a handler; COMMAND COUNT, LIST and
DOCS agree with the table; the README's table is the generated one."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from constdb._core.backlog import Backlog
from constdb._core.keyspace import Keyspace
from constdb._core.protocol import FLAG, Server
from support.resp import exchange

from constdb.commands import table
from constdb.commands.table import FLAG_BITS, NOQUEUE_BIT

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPECS = table.specs()


# ---- a RESP parser that keeps the types (set, map, status, bulk ...) -------------------------


class Typed(tuple):
    """(type byte, value): b'~' set, b'*' array, b'%' map, b'+' status ..."""


def parse(buf: bytes, pos: int = 0) -> tuple[Typed, int]:
    nl = buf.index(b"\r\n", pos)
    t, head, end = buf[pos : pos + 1], buf[pos + 1 : nl], nl + 2
    if t in (b"+", b"-", b":", b"_", b","):
        return Typed((t, head)), end
    n = int(head)
    if t in (b"$", b"="):
        if n < 0:
            return Typed((t, None)), end
        return Typed((t, buf[end : end + n])), end + n + 2
    if n < 0:
        return Typed((t, None)), end
    items = []
    for _ in range(n * 2 if t == b"%" else n):
        v, end = parse(buf, end)
        items.append(v)
    return Typed((t, tuple(items))), end


def typed(reply: bytes) -> Typed:
    v, end = parse(reply)
    assert end == len(reply)
    return v


def text(v: Typed) -> bytes:
    return v[1]


def without_notes(v: Typed) -> Typed:
    """Key specs' notes are prose (ours differ from Redis's): blank their text,
    keep the field and its type."""
    t, x = v
    if isinstance(x, tuple):
        out = []
        for i, item in enumerate(x):
            if i % 2 == 1 and t in (b"%", b"*") and x[i - 1] in ((b"$", b"notes"),):
                item = Typed((item[0], b""))
            else:
                item = without_notes(item)
            out.append(item)
        return Typed((t, tuple(out)))
    return v


def info_of(port: int, names: list[str], resp3: bool) -> dict[bytes, Typed]:
    reply = exchange(port, [("COMMAND", "INFO", *names)], resp3=resp3)[0]
    entries = text(typed(reply))
    out = {}
    for name, e in zip(names, entries):
        assert e[0] == b"*", name
        out[name.encode()] = e
    return out


@pytest.fixture(scope="module")
def both(constdb_server, redis_server):
    return constdb_server.port, redis_server.port


def command_list(port: int) -> list[bytes]:
    reply = exchange(port, [("COMMAND", "LIST")])[0]
    return [text(x) for x in text(typed(reply))]


# ---- the table itself ------------------------------------------------------------------------


def test_flag_bits_are_dispatchs():
    assert FLAG == {**FLAG_BITS, "noqueue": NOQUEUE_BIT}


def test_every_spec_is_written_out():
    for name, spec in SPECS.items():
        assert spec.summary and "TODO" not in spec.summary, name
        assert spec.across_nodes and "TODO" not in spec.across_nodes, name
        assert spec.arity != 0, name
        assert spec.acl and all(a.startswith("@") for a in spec.acl), name
        assert set(spec.flags) <= set(FLAG_BITS) | {
            "movablekeys",
            "skip_slowlog",
            "skip_monitor",
            "no_async_loading",
            "no_mandatory_keys",
            "may_replicate",
        }, name
        for ks in spec.key_specs:
            assert "TODO" not in ks.get("notes", ""), name
        # the legacy range agrees with the first key spec when it is an index + range
        ks0 = spec.key_specs[0] if spec.key_specs else None
        if ks0 and ks0["begin_search"]["type"] == "index" and ks0["find_keys"]["type"] == "range":
            assert spec.first == ks0["begin_search"]["spec"]["index"], name
        if not spec.key_specs:
            assert spec.keys == [0, 0, 0], name


def test_a_handler_needs_a_spec():
    srv = Server(Keyspace(1, Backlog()))
    with pytest.raises(KeyError, match="no spec"):
        srv.register_py(b"nosuchcommand", lambda c, a: None)


def test_every_handler_has_a_spec_and_every_spec_a_handler(both):
    port, _ = both
    assert sorted(command_list(port)) == sorted(SPECS)


def test_dispatch_uses_the_table():
    """Dispatch's C fields are the spec's: ECHO has Redis's `loading`, PING no
    `stale`, MULTI `noscript` (before the table they disagreed with COMMAND)."""
    from constdb._core import (
        cmd_hashes,
        cmd_keys,
        cmd_lists,
        cmd_server,
        cmd_sets,
        cmd_strings,
        cmd_zsets,
    )

    SUBCTX = 16384  # protocol.pxd F_SUBCTX
    srv = Server(Keyspace(1, Backlog()))
    for m in (cmd_strings, cmd_keys, cmd_sets, cmd_hashes, cmd_lists, cmd_zsets, cmd_server):
        m.register(srv)
    assert len(srv.table) >= 120
    for name, cmd in srv.table.items():
        spec = SPECS[name]
        assert cmd.spec is spec and cmd.is_native
        # the table's flags, and the one dispatch bit of its own: allowed in
        # a RESP2 client's Pub/Sub mode (Redis's list)
        assert (cmd.arity, cmd.flags & ~SUBCTX) == (spec.arity, spec.bits), name
        assert bool(cmd.flags & SUBCTX) == (name in (b"ping", b"quit")), name
        assert (cmd.first_key, cmd.last_key, cmd.key_step) == tuple(spec.keys), name
    assert srv.table[b"echo"].flags & FLAG["loading"]
    assert not srv.table[b"ping"].flags & FLAG["stale"]
    assert srv.table[b"multi"].flags & FLAG["noscript"]
    assert srv.table[b"exec"].flags & FLAG["noqueue"]
    assert not srv.table[b"unwatch"].flags & FLAG["noqueue"]


# ---- COMMAND INFO against redis-server ---------------------------------------------------------


@pytest.mark.parametrize("resp3", [False, True], ids=["resp2", "resp3"])
def test_command_info_matches_redis(both, resp3):
    port, rport = both
    theirs = set(command_list(rport))
    shared = [n.decode() for n in command_list(port) if n in theirs]
    assert len(shared) >= 140
    ours = info_of(port, shared, resp3)
    red = info_of(rport, shared, resp3)
    for name in ours:
        a, b = text(ours[name]), text(red[name])
        assert len(a) == len(b) == 10, name
        # name, arity, flags, first, last, step, ACL categories, tips, key specs
        assert without_notes(Typed((b"*", a[:9]))) == without_notes(Typed((b"*", b[:9]))), name
        # subcommands: same shape; a container lists only the ones this node has
        assert a[9][0] == b[9][0], name
        if text(a[9]):
            subs_b = {text(text(s)[0]): s for s in text(b[9])}
            for s in text(a[9]):
                sub = text(text(s)[0])
                if sub in subs_b:  # (CLIENT SETINFO is Redis 7.2's)
                    assert s == subs_b[sub], name


def test_command_info_of_own_commands(both):
    port, _ = both
    e = info_of(port, ["mvset", "meet", "crdt.digest"], True)

    def fields(name):
        x = text(e[name])
        return text(x[1]), [text(f) for f in text(x[2])], [text(k) for k in x[3:6]]

    assert fields(b"mvset") == (b"3", [b"write", b"denyoom"], [b"1", b"1", b"1"])
    assert fields(b"meet") == (b"2", [b"admin", b"noscript"], [b"0", b"0", b"0"])
    assert fields(b"crdt.digest") == (b"-1", [b"readonly"], [b"0", b"0", b"0"])


def test_mechanical_facts_are_redis_servers(both, tmp_path):
    """tools/gen_command_table.py run against redis-server changes nothing:
    arity, flags, keys, key specs, tips, group, since and every argument of
    every command Redis has are Redis's."""
    _, rport = both
    copy = tmp_path / "commands.toml"
    copy.write_text(open(table.TABLE_PATH).read())
    tool = os.path.join(ROOT, "tools", "gen_command_table.py")
    out = subprocess.run(
        [sys.executable, tool, "--port", str(rport), "--table", str(copy)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert copy.read_text() == open(table.TABLE_PATH).read()


# ---- COUNT, LIST, DOCS -----------------------------------------------------------------------


def plain(v: Typed):
    t, x = v
    if t == b":":
        return int(x)
    if isinstance(x, tuple):
        return [plain(i) for i in x]
    return x


def call(port: int, *args: str):
    return plain(typed(exchange(port, [args])[0]))


def test_count_and_list_agree_with_the_table(both):
    port, _ = both
    top = sorted(n for n in SPECS if b"|" not in n)
    assert call(port, "COMMAND", "COUNT") == len(top)
    assert sorted(e[0] for e in call(port, "COMMAND")) == top
    assert sorted(call(port, "COMMAND", "LIST")) == sorted(SPECS)
    write = call(port, "COMMAND", "LIST", "FILTERBY", "ACLCAT", "write")
    assert sorted(write) == sorted(n for n, s in SPECS.items() if "@write" in s.acl)
    assert call(port, "COMMAND", "LIST", "FILTERBY", "PATTERN", "client|*") == [
        n for n in SPECS if n.startswith(b"client|")
    ]


def _pairs(flat):
    return dict(zip(flat[::2], flat[1::2]))


def test_command_docs_shape_and_summary(both):
    port, rport = both
    names = ["get", "set", "client", "mvset", "substr"]
    for resp3 in (False, True):
        ours = typed(exchange(port, [("COMMAND", "DOCS", *names)], resp3=resp3)[0])
        red = typed(exchange(rport, [("COMMAND", "DOCS", "get", "set")], resp3=resp3)[0])
        assert ours[0] == red[0] == (b"%" if resp3 else b"*")
        docs = {text(k): v for k, v in zip(text(ours)[::2], text(ours)[1::2])}
        assert sorted(docs) == sorted(n.encode() for n in names)
        for name, d in docs.items():
            fields = {text(k): v for k, v in zip(text(d)[::2], text(d)[1::2])}
            assert text(fields[b"summary"]) == SPECS[name].summary.encode()
            assert text(fields[b"group"]) == SPECS[name].group.encode()
            assert b"complexity" not in fields and b"history" not in fields
        # the argument structure is Redis's
        rdocs = {text(k): v for k, v in zip(text(red)[::2], text(red)[1::2])}
        for name in (b"get", b"set"):
            mine = {text(k): v for k, v in zip(text(docs[name])[::2], text(docs[name])[1::2])}
            theirs = {text(k): v for k, v in zip(text(rdocs[name])[::2], text(rdocs[name])[1::2])}
            assert mine[b"arguments"] == theirs[b"arguments"]
        d = {text(k): v for k, v in zip(text(docs[b"substr"])[::2], text(docs[b"substr"])[1::2])}
        assert d[b"doc_flags"][0] == (b"~" if resp3 else b"*")
        client = {
            text(k): v for k, v in zip(text(docs[b"client"])[::2], text(docs[b"client"])[1::2])
        }
        subs = [text(k) for k in text(client[b"subcommands"])[::2]]
        assert b"client|list" in subs and b"client|setinfo" in subs


# ---- the README ------------------------------------------------------------------------------


def test_readme_table_is_generated():
    path = os.path.join(ROOT, "README.md")
    with open(path) as f:
        readme = f.read()
    assert table.readme_with_table(readme) == readme, (
        "README.md's command table is stale: python -m constdb.commands.table --readme"
    )
    for spec in SPECS.values():
        if spec.parent is None and spec.section != "internal":
            shown = spec.readme or spec.name.upper()
            assert shown in readme, spec.name
