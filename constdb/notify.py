"""Keyspace notifications (`notify-keyspace-events`): Redis's event classes
and their flag string, and the publishing of one event on this node's Pub/Sub.

The events themselves are raised at C level (`keyspace.notify`, one test of
`Keyspace.nmask` when the class is off): by the command handlers for local
writes, by `Keyspace.apply_one` for a peer's records, by expiry and
eviction. A notification is node-local: it goes to this node's subscribers
only, never on the links (each member publishes its own when the change
reaches it)."""

from __future__ import annotations

from typing import Any, Optional

from constdb._core.pubsubcore import NotifyCore

# Redis's NOTIFY_* bits (keyspace.pxd has the same as N_*)
K = 1 << 0
E = 1 << 1
GENERIC = 1 << 2
STRING = 1 << 3
LIST = 1 << 4
SET = 1 << 5
HASH = 1 << 6
ZSET = 1 << 7
EXPIRED = 1 << 8
EVICTED = 1 << 9
STREAM = 1 << 10
KEYMISS = 1 << 11
MODULE = 1 << 13
NEW = 1 << 14
ALL = GENERIC | STRING | LIST | SET | HASH | ZSET | EXPIRED | EVICTED | STREAM | MODULE

_CHARS = {
    "A": ALL,
    "g": GENERIC,
    "$": STRING,
    "l": LIST,
    "s": SET,
    "h": HASH,
    "z": ZSET,
    "x": EXPIRED,
    "e": EVICTED,
    "K": K,
    "E": E,
    "t": STREAM,
    "m": KEYMISS,
    "d": MODULE,
    "n": NEW,
}
# CONFIG GET's order (Redis's keyspaceEventsFlagsToString)
_ORDER = (
    ("g", GENERIC),
    ("$", STRING),
    ("l", LIST),
    ("s", SET),
    ("h", HASH),
    ("z", ZSET),
    ("x", EXPIRED),
    ("e", EVICTED),
    ("t", STREAM),
    ("d", MODULE),
    ("n", NEW),
)
BAD_CLASS = "Invalid event class character. Use 'Ag$lshzxeKEtmdn'."


def parse_flags(s: str) -> Optional[int]:
    """The flags of a notify-keyspace-events string, None if it has a
    character Redis refuses."""
    flags = 0
    for ch in s:
        f = _CHARS.get(ch)
        if f is None:
            return None
        flags |= f
    return flags


def flags_string(flags: int) -> str:
    """Redis's canonical form (CONFIG GET): A for every class of ALL (n is
    then not shown, as in Redis), else the classes in its order; K, E, m."""
    if flags & ALL == ALL:
        out = "A"
    else:
        out = "".join(ch for ch, f in _ORDER if flags & f)
    if flags & K:
        out += "K"
    if flags & E:
        out += "E"
    if flags & KEYMISS:
        out += "m"
    return out


def check(v: str) -> Optional[str]:
    """constdb.config's check of the key: None if valid."""
    return None if parse_flags(v) is not None else BAD_CLASS


class Notifier:
    """Sets Keyspace.on_notify to what publishes the events Keyspace raises:
    pubsubcore.NotifyCore, on __keyspace@<db>__:<key> (message: the event)
    and __keyevent@<db>__:<event> (message: the key), as Redis's
    notifyKeyspaceEvent. <db> is the number of the db being changed now
    (Keyspace.cur, switched by a client's SELECT and by a peer's records)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.flags = 0

    def configure(self, value: str) -> None:
        flags = parse_flags(value) or 0
        self.flags = flags
        app = self.app
        ks = app.ks
        # nothing is published without K or E: the keyspace then raises nothing
        ks.nmask = flags & ~(K | E) if flags & (K | E) else 0
        ks.on_notify = NotifyCore(app.pubsub, app.srv, flags) if ks.nmask else None
