"""COMMAND and its subcommands (COUNT INFO DOCS LIST GETKEYS GETKEYSANDFLAGS
HELP), every reply generated from the command table (constdb/commands/table.py)
and the commands this node registered. Replies have Redis 7.0's shapes in
RESP2 and RESP3 (sets, statuses and maps where Redis sends them)."""

from __future__ import annotations

import re
from typing import Any, Optional

from constdb._core.codec import RespError, Status
from constdb._core.glob import glob_match
from constdb._core.protocol import NO_REPLY
from constdb.commands import command

SYNTAX = "ERR syntax error"


class RSet(list):
    """A RESP3 set (`~`) that keeps its order; an array in RESP2."""

    __slots__ = ()


def encode(v: Any, resp3: bool, out: list[bytes]) -> None:
    """A typed value as RESP (RSet: a set; Status: a status; dict: a map)."""
    if v is None:
        out.append(b"_\r\n" if resp3 else b"$-1\r\n")
    elif isinstance(v, Status):
        out.append(b"+" + v.encode() + b"\r\n")
    elif isinstance(v, bytes):
        out.append(b"$%d\r\n%s\r\n" % (len(v), v))
    elif isinstance(v, str):
        b = v.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    elif isinstance(v, bool):
        out.append(b":%d\r\n" % int(v))
    elif isinstance(v, int):
        out.append(b":%d\r\n" % v)
    elif isinstance(v, RSet):
        out.append(b"%s%d\r\n" % (b"~" if resp3 else b"*", len(v)))
        for x in v:
            encode(x, resp3, out)
    elif isinstance(v, (list, tuple)):
        out.append(b"*%d\r\n" % len(v))
        for x in v:
            encode(x, resp3, out)
    elif isinstance(v, dict):
        out.append(b"%%%d\r\n" % len(v) if resp3 else b"*%d\r\n" % (2 * len(v)))
        for k, x in v.items():
            encode(k, resp3, out)
            encode(x, resp3, out)
    else:
        raise TypeError(f"cannot encode {type(v).__name__}")


def send(c: Any, v: Any) -> Any:
    out: list[bytes] = []
    encode(v, c.resp == 3, out)
    c.out.write_raw(b"".join(out))
    return NO_REPLY


# ---- the table's facts as typed values ---------------------------------------------------------


def _statuses(names: list[str]) -> RSet:
    return RSet(Status(x) for x in names)


def _plain(v: Any) -> Any:
    if isinstance(v, dict):
        return {k.encode(): _plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_plain(x) for x in v]
    if isinstance(v, str):
        return v.encode()
    return v


def _key_spec(ks: dict) -> dict:
    out = {}
    if "notes" in ks:
        out[b"notes"] = ks["notes"].encode()
    out[b"flags"] = _statuses(ks["flags"])
    out[b"begin_search"] = _plain(ks["begin_search"])
    out[b"find_keys"] = _plain(ks["find_keys"])
    return out


def _argument(a: dict) -> dict:
    out = {}
    for k, v in a.items():
        if k == "flags":
            out[b"flags"] = _statuses(v)
        elif k == "arguments":
            out[b"arguments"] = [_argument(x) for x in v]
        else:
            out[k.encode()] = _plain(v)
    return out


_INFO: dict[str, list] = {}  # spec name -> COMMAND INFO's first nine fields
_DOCS: dict[str, dict] = {}  # spec name -> COMMAND DOCS's map without subcommands


def _info9(spec: Any) -> list:
    e = _INFO.get(spec.name)
    if e is None:
        e = _INFO[spec.name] = [
            spec.name.encode(),
            spec.arity,
            _statuses(spec.flags),
            spec.first,
            spec.last,
            spec.step,
            _statuses(spec.acl),
            RSet(t.encode() for t in spec.tips),
            RSet(_key_spec(ks) for ks in spec.key_specs),
        ]
    return e


def _doc(spec: Any) -> dict:
    d = _DOCS.get(spec.name)
    if d is None:
        d = {
            b"summary": spec.summary.encode(),
            b"since": spec.since.encode(),
            b"group": spec.group.encode(),
        }
        if spec.doc_flags:
            d[b"doc_flags"] = _statuses(spec.doc_flags)
        if spec.deprecated_since:
            d[b"deprecated_since"] = spec.deprecated_since.encode()
        if spec.arguments:
            d[b"arguments"] = [_argument(a) for a in spec.arguments]
        _DOCS[spec.name] = d
    return d


def subcommands_of(cmd: Any) -> list:
    """A container's registered subcommands, in table order."""
    return sorted(cmd.subcommands.values(), key=lambda s: s.spec.order)


def info_entry(cmd: Any) -> list:
    subs: Any = RSet()
    if cmd.subcommands:
        subs = [info_entry(s) for s in subcommands_of(cmd)]
    return [*_info9(cmd.spec), subs]


def doc_entry(cmd: Any) -> dict:
    doc = _doc(cmd.spec)
    if cmd.subcommands:
        doc = dict(doc)
        doc[b"subcommands"] = {s.fullname: doc_entry(s) for s in subcommands_of(cmd)}
    return doc


def top_level(srv: Any) -> list:
    return [srv.table[n] for n in sorted(srv.table)]


def lookup(srv: Any, name: bytes) -> Optional[Any]:
    """A command by name, or a subcommand by 'parent|sub' (COMMAND INFO/DOCS)."""
    if b"|" in name:
        parent, _, subname = name.partition(b"|")
        p = srv.command(parent)
        if p is None or not p.subcommands or b"|" in subname:
            return None
        return p.subcommands.get(subname.lower())
    return srv.command(name)


# ---- COMMAND ---------------------------------------------------------------------------------


@command("command")
def command_all(c: Any, argv: list[bytes]) -> Any:
    return send(c, [info_entry(x) for x in top_level(c.srv)])


@command("command|count")
def command_count(c: Any, argv: list[bytes]) -> Any:
    return len(c.srv.table)


@command("command|info")
def command_info(c: Any, argv: list[bytes]) -> Any:
    if len(argv) == 2:
        return command_all(c, argv)
    out = []
    for n in argv[2:]:
        cmd = lookup(c.srv, n)
        out.append(None if cmd is None else info_entry(cmd))
    return send(c, out)


@command("command|docs")
def command_docs(c: Any, argv: list[bytes]) -> Any:
    if len(argv) == 2:
        return send(c, {x.fullname: doc_entry(x) for x in top_level(c.srv)})
    out = {}
    for n in argv[2:]:
        cmd = lookup(c.srv, n)
        if cmd is not None:
            out[cmd.fullname] = doc_entry(cmd)
    return send(c, out)


@command("command|list")
def command_list(c: Any, argv: list[bytes]) -> Any:
    cmds = []
    for cmd in top_level(c.srv):
        cmds.append(cmd)
        if cmd.subcommands:
            cmds.extend(subcommands_of(cmd))
    if len(argv) == 2:
        return [x.fullname for x in cmds]
    if len(argv) != 5 or argv[2].lower() != b"filterby":
        raise RespError(SYNTAX)
    kind, val = argv[3].lower(), argv[4]
    if kind == b"pattern":
        return [x.fullname for x in cmds if glob_match(val, x.fullname, True)]
    if kind == b"aclcat":
        cat = "@" + val.lower().decode("utf-8", "replace")
        return [x.fullname for x in cmds if cat in x.spec.acl]
    if kind == b"module":
        return []
    raise RespError(SYNTAX)


def _int(b: bytes) -> Optional[int]:
    if not re.fullmatch(rb"0|-?[1-9][0-9]*", b):
        return None
    return int(b)


def key_positions(cmd: Any, args: list[bytes]) -> Optional[list[tuple[int, list[str]]]]:
    """Redis's getKeysUsingKeySpecs: (position, flags) of each key, None if
    the arguments do not fit the specs."""
    argc = len(args)
    out = []
    for spec in cmd.spec.key_specs:
        bs = spec["begin_search"]
        fk = spec["find_keys"]
        flags = spec["flags"]
        if "variable_flags" in flags and cmd.fullname == b"set":
            get = any(a.lower() == b"get" for a in args[3:])
            flags = ["RW", "access", "update"] if get else ["OW", "update"]
        if bs["type"] == "index":
            first = bs["spec"]["index"]
        elif bs["type"] == "keyword":
            kw = bs["spec"]["keyword"].lower().encode()
            start = bs["spec"]["startfrom"]
            rng = range(start, argc) if start > 0 else range(argc + start, 0, -1)
            first = 0
            for i in rng:
                if i >= argc or i < 1:
                    break
                if args[i].lower() == kw:
                    first = i + 1
                    break
            if not first:
                continue
        else:
            continue
        if fk["type"] == "range":
            sp = fk["spec"]
            step = sp["keystep"]
            if sp["lastkey"] >= 0:
                last = first + sp["lastkey"]
            elif not sp["limit"]:
                last = argc + sp["lastkey"]
            else:
                last = first + ((argc - first) // sp["limit"] + sp["lastkey"])
        elif fk["type"] == "keynum":
            sp = fk["spec"]
            idx = first + sp["keynumidx"]
            if idx >= argc:
                return None
            numkeys = _int(args[idx])
            if numkeys is None or numkeys < 0:
                return None
            first += sp["firstkey"]
            step = sp["keystep"]
            last = first + numkeys - 1
        else:
            continue
        if last >= argc or last < first or first >= argc:
            return None
        for j in range(first, last + 1, step):
            out.append((j, flags))
    return out


def _getkeys(c: Any, argv: list[bytes], with_flags: bool) -> Any:
    args = argv[2:]
    cmd = c.srv.command(args[0])
    if cmd is not None and cmd.subcommands and len(args) >= 2:
        cmd = cmd.subcommands.get(args[1].lower())
    if cmd is None:
        raise RespError("ERR Invalid command specified")
    if not cmd.spec.key_specs:
        raise RespError("ERR The command has no key arguments")
    if (cmd.arity > 0 and len(args) != cmd.arity) or len(args) < -cmd.arity:
        raise RespError("ERR Invalid number of arguments specified for command")
    keys = key_positions(cmd, args)
    if not keys:
        if "no_mandatory_keys" in cmd.spec.flags:
            return []  # (EVAL ... 0: no keys is a valid call)
        raise RespError("ERR Invalid arguments specified for command")
    if with_flags:
        return send(c, [[args[i], _statuses(flags)] for i, flags in keys])
    return [args[i] for i, _ in keys]


@command("command|getkeys")
def command_getkeys(c: Any, argv: list[bytes]) -> Any:
    return _getkeys(c, argv, False)


@command("command|getkeysandflags")
def command_getkeysandflags(c: Any, argv: list[bytes]) -> Any:
    return _getkeys(c, argv, True)


COMMAND_HELP = [
    "COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "(no subcommand)",
    "    Return details about all Redis commands.",
    "COUNT",
    "    Return the total number of commands in this Redis server.",
    "LIST",
    "    Return a list of all commands in this Redis server.",
    "INFO [<command-name> ...]",
    "    Return details about multiple Redis commands.",
    "    If no command names are given, documentation details for all",
    "    commands are returned.",
    "DOCS [<command-name> ...]",
    "    Return documentation details about multiple Redis commands.",
    "    If no command names are given, documentation details for all",
    "    commands are returned.",
    "GETKEYS <full-command>",
    "    Return the keys from a full Redis command.",
    "GETKEYSANDFLAGS <full-command>",
    "    Return the keys and the access flags from a full Redis command.",
    "HELP",
    "    Prints this help.",
]


@command("command|help")
def command_help(c: Any, argv: list[bytes]) -> Any:
    return [Status(x) for x in COMMAND_HELP]
