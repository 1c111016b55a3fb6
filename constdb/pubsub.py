"""Pub/Sub: who listens on this node, and delivery of messages published here
or on any other member of the group (the links carry them; docs/replication.md
section 3). Nothing of it is kept in the data set or in snapshots."""

from __future__ import annotations

from typing import Any, Optional

from constdb._core.glob import glob_match
from constdb._core.pubsubcore import PubSubCore

# the three kinds of subscription: (subscribe reply, unsubscribe reply)
CHANNEL = (b"subscribe", b"unsubscribe")
PATTERN = (b"psubscribe", b"punsubscribe")
SHARD = (b"ssubscribe", b"sunsubscribe")


class Subs:
    """One client's subscriptions (insertion-ordered sets)."""

    __slots__ = ("channels", "patterns", "shard")

    def __init__(self) -> None:
        self.channels: dict[bytes, None] = {}
        self.patterns: dict[bytes, None] = {}
        self.shard: dict[bytes, None] = {}

    def of(self, kind: tuple[bytes, bytes]) -> dict[bytes, None]:
        return (
            self.channels if kind is CHANNEL else self.patterns if kind is PATTERN else self.shard
        )

    def count(self, kind: tuple[bytes, bytes]) -> int:
        # Redis counts channels and patterns together, shard channels apart
        if kind is SHARD:
            return len(self.shard)
        return len(self.channels) + len(self.patterns)

    def empty(self) -> bool:
        return not (self.channels or self.patterns or self.shard)


def _bulk(b: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(b), b)


class PubSub(PubSubCore):
    """The node's subscription tables (PubSubCore: name -> {client id:
    client}, in the order clients subscribed), SUBSCRIBE and its family and
    PUBSUB. Messages (PUBLISH, SPUBLISH, a peer's, keyspace notifications)
    are delivered by PubSubCore (constdb/_core/pubsubcore.pyx)."""

    def table(self, kind: tuple[bytes, bytes]) -> dict[bytes, dict[int, Any]]:
        return (
            self.channels if kind is CHANNEL else self.patterns if kind is PATTERN else self.shard
        )

    # ---- subscribing -------------------------------------------------------------------

    def subscribe(self, c: Any, kind: tuple[bytes, bytes], names: list[bytes]) -> None:
        """Subscribe c and write one confirmation per name (a push in RESP3)."""
        subs = c.subs
        if subs is None:
            subs = c.subs = Subs()
        mine, table = subs.of(kind), self.table(kind)
        head = b">3\r\n" if c.resp == 3 else b"*3\r\n"
        out = []
        for name in names:
            if name not in mine:
                mine[name] = None
                table.setdefault(name, {})[c.id] = c
            out.append(head + _bulk(kind[0]) + _bulk(name) + b":%d\r\n" % subs.count(kind))
        c.deliver(b"".join(out), False)

    def unsubscribe(self, c: Any, kind: tuple[bytes, bytes], names: list[bytes]) -> None:
        """Unsubscribe c from names (every one of the kind if none) and write
        one confirmation per name, or one with a null name if it had none."""
        subs = c.subs
        mine = subs.of(kind) if subs is not None else {}
        table = self.table(kind)
        head = b">3\r\n" if c.resp == 3 else b"*3\r\n"
        if not names:
            names = list(mine)
        out = []
        if not names:
            null = b"_\r\n" if c.resp == 3 else b"$-1\r\n"
            n = subs.count(kind) if subs is not None else 0
            out.append(head + _bulk(kind[1]) + null + b":%d\r\n" % n)
        for name in names:
            if name in mine:
                del mine[name]
                self._drop(table, name, c.id)
            n = subs.count(kind) if subs is not None else 0
            out.append(head + _bulk(kind[1]) + _bulk(name) + b":%d\r\n" % n)
        if subs is not None and subs.empty():
            c.subs = None
        c.deliver(b"".join(out), False)

    @staticmethod
    def _drop(table: dict[bytes, dict[int, Any]], name: bytes, cid: int) -> None:
        clients = table.get(name)
        if clients is not None:
            clients.pop(cid, None)
            if not clients:
                del table[name]

    def forget(self, c: Any) -> None:
        """A client closed or RESET: every subscription of it goes."""
        subs = c.subs
        if subs is None:
            return
        for kind in (CHANNEL, PATTERN, SHARD):
            table = self.table(kind)
            for name in subs.of(kind):
                self._drop(table, name, c.id)
        c.subs = None

    # ---- PUBSUB ------------------------------------------------------------------------

    def active(self, kind: tuple[bytes, bytes], pattern: Optional[bytes]) -> list[bytes]:
        names = self.table(kind)
        if pattern is None:
            return list(names)
        return [n for n in names if glob_match(pattern, n)]

    def numsub(self, kind: tuple[bytes, bytes], names: list[bytes]) -> list[Any]:
        table = self.table(kind)
        out: list[Any] = []
        for n in names:
            out += [n, len(table.get(n, ()))]
        return out
