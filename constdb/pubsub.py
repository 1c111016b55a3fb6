"""Pub/Sub: who listens on this node, and delivery of messages published here
or on any other member of the group (the links carry them; docs/replication.md
section 3). Nothing of it is kept in the data set or in snapshots."""

from __future__ import annotations

import asyncio
from typing import Any, Callable, Optional

from constdb._core.glob import glob_match

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


class PubSub:
    """The node's subscription tables: name -> {client id: client}, in the
    order clients subscribed."""

    def __init__(self) -> None:
        self.channels: dict[bytes, dict[int, Any]] = {}
        self.patterns: dict[bytes, dict[int, Any]] = {}
        self.shard: dict[bytes, dict[int, Any]] = {}
        # callable(shard, channel, message): hands a local PUBLISH to the links
        self.on_publish: Optional[Callable[[bool, bytes, bytes], None]] = None
        self.remote_messages = 0  # messages received from peers
        # subscribers with messages in their output buffer, written once at
        # the end of the loop turn (as Redis writes its clients' buffers
        # before it sleeps): one write for all a turn's messages to a client
        self.pending: dict[int, Any] = {}

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

    # ---- messages ----------------------------------------------------------------------

    def publish(
        self,
        channel: bytes,
        message: bytes,
        sender: Any = None,
        shard: bool = False,
    ) -> int:
        """Deliver to this node's subscribers; the number of receivers (a
        client subscribed to the channel and to a pattern matching it counts
        twice, as in Redis). sender: the publishing client, whose own
        message (RESP3) goes before its PUBLISH reply."""
        n = 0
        clients = (self.shard if shard else self.channels).get(channel)
        if clients:
            body = b"3\r\n" + _bulk(b"smessage" if shard else b"message") + _bulk(channel)
            body += _bulk(message)
            for cl in list(clients.values()):
                self._push(cl, (b">" if cl.resp == 3 else b"*") + body, sender)
                n += 1
        if not shard and self.patterns:
            for pat, clients in list(self.patterns.items()):
                if not glob_match(pat, channel):
                    continue
                body = b"4\r\n$8\r\npmessage\r\n" + _bulk(pat) + _bulk(channel) + _bulk(message)
                for cl in list(clients.values()):
                    self._push(cl, (b">" if cl.resp == 3 else b"*") + body, sender)
                    n += 1
        return n

    def _push(self, cl: Any, data: bytes, sender: Any) -> None:
        """A message into cl's output buffer; the publisher's own copy goes
        out with its reply, the others' at the end of the loop turn."""
        cl.deliver(data, False)
        if cl is sender:
            return
        if not self.pending:
            try:
                asyncio.get_running_loop().call_soon(self.flush_pending)
            except RuntimeError:  # no loop (a Server driven by hand): write now
                cl.deliver(b"", True)
                return
        self.pending[cl.id] = cl

    def flush_pending(self) -> None:
        """Write what the turn's messages left in the subscribers' buffers
        (deliver: the output limit of pubsub clients is checked there)."""
        pending, self.pending = self.pending, {}
        for cl in pending.values():
            cl.deliver(b"", True)

    def publish_local(self, c: Any, channel: bytes, message: bytes, shard: bool) -> int:
        """PUBLISH / SPUBLISH by a client of this node: to this node's
        subscribers, and to every member's through the links."""
        n = self.publish(channel, message, c, shard)
        if self.on_publish is not None:
            self.on_publish(shard, channel, message)
        return n

    def from_peer(self, shard: bool, channel: bytes, message: bytes) -> None:
        self.remote_messages += 1
        self.publish(channel, message, None, shard)

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
