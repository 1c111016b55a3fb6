"""The command table: one spec per command and subcommand, kept in
commands.toml next to this file. It is the only place command metadata is
written: dispatch (arity, flags, key positions: `add_command` and
`Server.register_py` read it), COMMAND (INFO, DOCS, LIST, COUNT, GETKEYS:
constdb/commands/introspection.py) and the README's command table
(`python -m constdb.commands.table --readme`) are generated from it.

A spec (a TOML table named by the command's full name, `get` or `client|list`):

- summary: what the command does on this node (COMMAND DOCS), in our words
- across_nodes: what it means across the group's nodes (the README table)
- section: the README section it is listed in ("internal": not listed)
- readme: how the README names it, when not just its name (options)
- group, since: COMMAND DOCS's group and the Redis (or ConstDB) version
- arity, flags, acl, tips: COMMAND INFO's fields, in Redis's order
- keys: [first, last, step], the legacy key range of COMMAND INFO
- key_specs: Redis 7's key specs (begin_search, find_keys, flags, notes)
- noqueue: runs at once inside MULTI instead of being queued (ConstDB's
  dispatch; Redis hard-codes EXEC, DISCARD, MULTI, WATCH, QUIT, RESET)
- doc_flags, deprecated_since, arguments: COMMAND DOCS's syntax facts

Mechanical facts of commands Redis has were first taken from a live
redis-server by tools/gen_command_table.py; the file is the source of truth.
"""

from __future__ import annotations

import os
import re
import sys
from typing import Any, Optional

try:
    import tomllib
except ImportError:  # Python < 3.11
    import tomli as tomllib  # type: ignore[no-redef]

TABLE_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "commands.toml")

# Dispatch bits (protocol.pxd's F_* enum) of the flags COMMAND INFO shows;
# the other flags (movablekeys, skip_slowlog ...) are shown only.
# tests/test_command_table.py checks them against constdb._core.protocol.FLAG.
FLAG_BITS = {
    "write": 1,
    "readonly": 2,
    "admin": 4,
    "no_auth": 8,
    "fast": 32,
    "noscript": 64,
    "loading": 128,
    "stale": 256,
    "denyoom": 512,
    "pubsub": 1024,
    "blocking": 2048,
    "no_multi": 4096,
    "allow_busy": 8192,
}
NOQUEUE_BIT = 16

# README sections, in order: id -> heading row
SECTIONS = {
    "strings": "**Strings**",
    "keys": "**Keys**",
    "sets": "**Sets** (add-wins OR-Set)",
    "hashes": "**Hashes** (OR-Map of last-writer-wins fields)",
    "lists": "**Lists** (a sequence CRDT: RGA in blocks)",
    "zsets": "**Sorted sets** (add-wins members, LWW + counter scores)",
    "geo": "**Geo** (on sorted sets: a position is a member scored by its 52-bit geohash)",
    "mvreg": "**Multi-value register** (from the original ConstDB)",
    "transactions": "**Transactions**",
    "pubsub": "**Pub/Sub** (messages cross the group on the links)",
    "scripting": "**Scripting** (Lua 5.1; atomic on the node, effects replicated)",
    "group": "**Group**",
    "persistence": "**Persistence**",
    "server": "**Connection and server**",
}
SECTION_IDS = set(SECTIONS) | {"internal"}

FIELDS = (
    "summary",
    "across_nodes",
    "section",
    "readme",
    "group",
    "since",
    "arity",
    "flags",
    "noqueue",
    "acl",
    "keys",
    "key_specs",
    "tips",
    "doc_flags",
    "deprecated_since",
    "arguments",
)
REQUIRED = ("summary", "across_nodes", "section", "group", "since", "arity", "flags", "acl")


class Spec:
    """One command's (or subcommand's) spec, as read from the table."""

    __slots__ = (*FIELDS, "name", "parent", "order", "bits", "first", "last", "step")

    def __init__(self, name: str, d: dict, order: int):
        unknown = set(d) - set(FIELDS)
        if unknown:
            raise ValueError(f"commands.toml: [{name}]: unknown field(s) {sorted(unknown)}")
        missing = [f for f in REQUIRED if f not in d]
        if missing:
            raise ValueError(f"commands.toml: [{name}]: missing {missing}")
        self.name = name
        self.parent = name.split("|")[0] if "|" in name else None
        self.order = order
        self.summary = d["summary"]
        self.across_nodes = d["across_nodes"]
        self.section = d["section"]
        if self.section not in SECTION_IDS:
            raise ValueError(f"commands.toml: [{name}]: unknown section {self.section!r}")
        self.readme = d.get("readme")
        self.group = d["group"]
        self.since = d["since"]
        self.arity = d["arity"]
        self.flags = list(d["flags"])
        self.noqueue = bool(d.get("noqueue", False))
        self.acl = list(d["acl"])
        self.keys = list(d.get("keys", [0, 0, 0]))
        self.first, self.last, self.step = self.keys
        self.key_specs = list(d.get("key_specs", []))
        self.tips = list(d.get("tips", []))
        self.doc_flags = list(d.get("doc_flags", []))
        self.deprecated_since = d.get("deprecated_since")
        self.arguments = list(d.get("arguments", []))
        bits = NOQUEUE_BIT if self.noqueue else 0
        for f in self.flags:
            bits |= FLAG_BITS.get(f, 0)
        self.bits = bits

    def __repr__(self) -> str:
        return f"Spec({self.name!r})"


def load(path: str = TABLE_PATH) -> dict[bytes, Spec]:
    """Every spec, by full name as bytes (b"get", b"client|list"), in file order."""
    with open(path, "rb") as f:
        raw = tomllib.load(f)
    specs: dict[bytes, Spec] = {}
    for i, (name, d) in enumerate(raw.items()):
        spec = Spec(name, d, i)
        if spec.parent is not None and spec.parent.encode() not in specs:
            raise ValueError(f"commands.toml: [{name}] comes before its container")
        specs[name.encode()] = spec
    return specs


_SPECS: Optional[dict[bytes, Spec]] = None


def specs() -> dict[bytes, Spec]:
    """The package's table, loaded once."""
    global _SPECS
    if _SPECS is None:
        _SPECS = load()
    return _SPECS


# ---- writing the table (tools/gen_command_table.py) ------------------------------------------

_BARE = re.compile(r"^[A-Za-z0-9_-]+$")


def _toml_key(k: str) -> str:
    return k if _BARE.match(k) else _toml_str(k)


def _toml_str(s: str) -> str:
    out = s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    return f'"{out}"'


def _toml_inline(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return _toml_str(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_inline(x) for x in v) + "]"
    if isinstance(v, dict):
        if not v:
            return "{}"
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_inline(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def dump(raw: dict[str, dict]) -> str:
    """The table's text: one TOML table per command, fields in FIELDS order;
    key_specs and arguments one item a line."""
    parts = [
        "# ConstDB's command table: one spec per command and subcommand.\n"
        "# The fields are described in constdb/commands/table.py; dispatch, COMMAND\n"
        "# and the README's command table are generated from this file.\n"
    ]
    for name, d in raw.items():
        lines = [f"[{_toml_key(name)}]"]
        for field in FIELDS:
            if field not in d:
                continue
            v = d[field]
            if field in ("key_specs", "arguments") and v:
                lines.append(f"{field} = [")
                lines.extend(f"  {_toml_inline(x)}," for x in v)
                lines.append("]")
            else:
                lines.append(f"{field} = {_toml_inline(v)}")
        parts.append("\n".join(lines) + "\n")
    return "\n".join(parts)


def load_raw(path: str = TABLE_PATH) -> dict[str, dict]:
    with open(path, "rb") as f:
        return tomllib.load(f)


# ---- the README's command table ---------------------------------------------------------------

README_BEGIN = "<!-- command table: generated by `python -m constdb.commands.table --readme` -->"
README_END = "<!-- end of command table -->"


def readme_table(table: Optional[dict[bytes, Spec]] = None) -> str:
    """The README's table: a row per run of commands of one section that mean
    the same across nodes (file order)."""
    table = specs() if table is None else table
    by_section: dict[str, list[Spec]] = {s: [] for s in SECTIONS}
    subs: dict[str, list[Spec]] = {}
    for spec in table.values():
        if spec.parent is not None:
            subs.setdefault(spec.parent, []).append(spec)
        elif spec.section in by_section:
            by_section[spec.section].append(spec)
    lines = ["| command | across nodes |", "|---|---|"]
    for section, title in SECTIONS.items():
        lines.append(f"| {title} | |")
        rows: list[tuple[list[str], str]] = []
        for spec in by_section[section]:
            shown = spec.readme
            if shown is None:
                shown = spec.name.upper()
                children = [s.name.split("|")[1].upper() for s in subs.get(spec.name, [])]
                children = [c for c in children if c != "HELP"]
                if children:
                    shown += f" ({' '.join(children)})"
            if rows and rows[-1][1] == spec.across_nodes:
                rows[-1][0].append(shown)
            else:
                rows.append(([shown], spec.across_nodes))
        for names, text in rows:
            lines.append(f"| {', '.join(names)} | {text} |")
    return "\n".join(lines) + "\n"


def readme_with_table(text: str, table: Optional[dict[bytes, Spec]] = None) -> str:
    """README text with the part between the markers regenerated."""
    start = text.index(README_BEGIN) + len(README_BEGIN)
    end = text.index(README_END)
    return text[:start] + "\n" + readme_table(table) + text[end:]


def main(argv: list[str]) -> int:
    readme = os.path.join(
        os.path.dirname(os.path.dirname(os.path.dirname(TABLE_PATH))), "README.md"
    )
    if argv[:1] == ["--readme"] or argv[:1] == ["--check"]:
        path = argv[1] if len(argv) > 1 else readme
        with open(path) as f:
            text = f.read()
        new = readme_with_table(text)
        if argv[0] == "--check":
            if new != text:
                print(f"{path}: the command table is out of date (--readme rewrites it)")
                return 1
            return 0
        if new != text:
            with open(path, "w") as f:
                f.write(new)
        return 0
    print("usage: python -m constdb.commands.table --readme|--check [README.md]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
