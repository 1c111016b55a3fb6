"""Fill the mechanical facts of constdb/commands/commands.toml from a live
redis-server (the version ConstDB answers as, 7.0.15):

    redis-server --port 6399 --save "" &
    python tools/gen_command_table.py --port 6399 [--add NAME ...]

For every spec of a command Redis has, it sets arity, flags, acl, tips, keys,
key_specs (our own `notes` are kept; Redis's are not copied), group, since,
doc_flags, deprecated_since and arguments (names, types, tokens, flags), and
puts a container's subcommands after it, by name. Nothing else is taken from
Redis: summary, across_nodes, section and readme are ours and kept; `--add`
makes a new spec whose summary and across_nodes say TODO (a test refuses
TODO). Commands Redis lacks are left as they are.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from constdb.commands.table import TABLE_PATH, dump, load_raw  # noqa: E402

ARG_FIELDS = ("name", "type", "key_spec_index", "token", "since", "deprecated_since", "flags")


def read_reply(f):
    line = f.readline()
    t, rest = line[:1], line[1:-2]
    if t in (b"+", b"$", b"="):
        if t == b"+":
            return rest.decode()
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)[:-2]
        return data.decode() if t == b"$" else data[4:].decode()
    if t == b"-":
        raise RuntimeError(rest.decode())
    if t == b":":
        return int(rest)
    if t == b"_":
        return None
    if t in (b"*", b"~"):
        return [read_reply(f) for _ in range(int(rest))]
    if t == b"%":
        out = {}
        for _ in range(int(rest)):
            k = read_reply(f)
            out[k] = read_reply(f)
        return out
    raise RuntimeError(f"unexpected reply {line!r}")


class Redis:
    def __init__(self, port: int):
        self.s = socket.create_connection(("127.0.0.1", port))
        self.f = self.s.makefile("rb")
        self.call("HELLO", "3")

    def call(self, *args: str):
        self.s.sendall(
            b"*%d\r\n" % len(args)
            + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in (x.encode() for x in args))
        )
        return read_reply(self.f)


def arguments(args: list) -> list:
    out = []
    for a in args:
        b = {k: a[k] for k in ARG_FIELDS if k in a}
        if "arguments" in a:
            b["arguments"] = arguments(a["arguments"])
        out.append(b)
    return out


def key_specs(theirs: list, ours: list) -> list:
    out = []
    for i, ks in enumerate(theirs):
        d = {}
        if "notes" in ks:  # Redis's note is its prose: ours, or TODO
            old = ours[i] if i < len(ours) else {}
            d["notes"] = old.get("notes", "TODO")
        d["flags"] = ks["flags"]
        d["begin_search"] = ks["begin_search"]
        d["find_keys"] = ks["find_keys"]
        out.append(d)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, default=6379)
    p.add_argument("--table", default=TABLE_PATH)
    p.add_argument("--add", nargs="*", default=[], help="new specs (full names: a or a|b)")
    args = p.parse_args()
    raw = load_raw(args.table) if os.path.exists(args.table) else {}
    for name in args.add:
        raw.setdefault(name, {"summary": "TODO", "across_nodes": "TODO", "section": "server"})
    r = Redis(args.port)
    version = r.call("INFO", "server").split("redis_version:")[1].split("\r\n")[0]
    info = {}
    for e in r.call("COMMAND", "INFO", *raw):
        if e is not None:
            info[e[0]] = e
    docs = {}
    for name, d in r.call("COMMAND", "DOCS", *[n for n in raw if "|" not in n]).items():
        docs[name] = d
        for sub, sd in (d.get("subcommands") or {}).items():
            docs[sub] = sd
    filled = 0
    for name, d in raw.items():
        e = info.get(name)
        if e is None:
            continue
        doc = docs[name]
        d["group"] = doc["group"]
        d["since"] = doc["since"]
        d["arity"] = e[1]
        d["flags"] = e[2]
        d["acl"] = e[6]
        d["keys"] = [e[3], e[4], e[5]]
        for field, v in (
            ("key_specs", key_specs(e[8], d.get("key_specs", []))),
            ("tips", e[7]),
            ("doc_flags", doc.get("doc_flags", [])),
            ("deprecated_since", doc.get("deprecated_since")),
            ("arguments", arguments(doc.get("arguments", []))),
        ):
            if v:
                d[field] = v
            else:
                d.pop(field, None)
        filled += 1
    # a container's subcommands follow it, by name (Redis's order changes
    # from one process to the next: it is its dict's)
    out: dict[str, dict] = {}
    for name, d in raw.items():
        if "|" in name:
            continue
        out[name] = d
        for sub in sorted(n for n in raw if n.startswith(name + "|")):
            out[sub] = raw[sub]
    with open(args.table, "w") as f:
        f.write(dump(out))
    print(f"{args.table}: {len(out)} specs, {filled} filled from redis-server {version}")


if __name__ == "__main__":
    main()
