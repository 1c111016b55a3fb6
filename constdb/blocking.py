"""Blocked clients: the waiters of the blocking pops, CLIENT UNBLOCK and
CLIENT PAUSE (docs/internals.md, "Blocked clients").

A blocking pop that finds nothing (constdb/_core/cmd_blocking.pyx) parks its
client here: `block` puts a Waiter under each of its keys in
`Keyspace.blocking` (first come, first served) and marks the client blocked,
so it executes nothing more of its pipeline. Any change of a key that has
waiters (a local write, a peer's replicated record, a snapshot merge) puts
the key in `Keyspace.ready`; the protocol calls `serve_ready` after the
command (or EXEC) that changed it, as Redis's handleClientsBlockedOnKeys,
and a change made outside a client command (a peer's batch) is served on
the next turn of the loop (`Keyspace.on_ready`). Serving a key gives its
waiters, in order, what it holds, each with the non-blocking pop's effects
as this node's own writes; a waiter whose key holds another type keeps
waiting, as in Redis 7.0.

CLIENT PAUSE: while `Server.pause_mode` is set, the protocol hands each
request to `postpone` first; a paused one is kept with its client (blocked)
and run, in arrival order, when the pause ends. Peers' replicated writes are
applied during a pause: it holds clients, not the group. Waiters are not
served during a pause (their pops would be this node's writes): a key a peer
filled meanwhile serves them when it ends.
"""

from __future__ import annotations

import time
from typing import Any, Optional

from constdb._core import cmd_blocking
from constdb._core.clock import now_ms
from constdb._core.protocol import FLAG, NO_REPLY

PAUSE_WRITE = 1
PAUSE_ALL = 2

# Redis 7.0's CMD_MAY_REPLICATE commands that are not writes: held by a WRITE pause
MAY_REPLICATE = frozenset(
    {
        b"publish",
        b"spublish",
        b"eval",
        b"evalsha",
        b"fcall",
        b"script|load",
        b"script|flush",
        b"pfcount",
    }
)


def _writes(cmd: Any) -> bool:
    return bool(cmd.flags & FLAG["write"]) or cmd.fullname in MAY_REPLICATE


class Waiter:
    __slots__ = ("client", "keys", "params", "timer")

    def __init__(self, client: Any, keys: list[bytes], params: tuple) -> None:
        self.client = client
        self.keys = keys
        self.params = params
        self.timer: Optional[Any] = None


class Blocking:
    def __init__(self, app: Any) -> None:
        self.app = app
        self.srv = app.srv
        self.ks = app.ks
        self.waiters: dict[int, Waiter] = {}  # client id -> its waiter
        self.postponed: dict[int, tuple[Any, Any, list]] = {}  # client id -> (c, cmd, argv)
        self.pause_end = 0.0  # time.monotonic() the pause ends at
        self.pause_timer: Optional[Any] = None
        self.soon = False
        self.srv.blocking = self
        self.ks.on_ready = self._ready_soon
        cmd_blocking.set_blocker(self.block)

    # ---- blocking pops ---------------------------------------------------------

    def block(self, c: Any, keys: list[bytes], deadline_ms: int, params: tuple) -> None:
        w = Waiter(c, list(dict.fromkeys(keys)), params)
        blocking = c.db.blocking  # waiters wait on (db, key): the client's db
        for k in w.keys:
            lst = blocking.get(k)
            if lst is None:
                blocking[k] = [w]
            else:
                lst.append(w)
        if deadline_ms:
            loop = self.srv.loop
            if loop is not None:
                delay = max(0.0, (deadline_ms - now_ms()) / 1000.0)
                w.timer = loop.call_later(delay, self._timed_out, w)
        self.waiters[c.id] = w
        c.block()

    def _release(self, w: Waiter) -> None:
        self.waiters.pop(w.client.id, None)
        if w.timer is not None:
            w.timer.cancel()
            w.timer = None
        blocking = w.client.db.blocking
        for k in w.keys:
            lst = blocking.get(k)
            if lst is not None:
                try:
                    lst.remove(w)
                except ValueError:
                    pass
                if not lst:
                    del blocking[k]

    def _timed_out(self, w: Waiter) -> None:
        if self.waiters.get(w.client.id) is not w:
            return
        w.timer = None
        self._release(w)
        mark = w.client.obuf
        cmd_blocking.reply_timeout(w.client)
        w.client.unblock(NO_REPLY, mark)

    def serve_ready(self) -> None:
        """Serve the waiters of every key that changed, key by key in the
        order they changed, each key's waiters first come first served; a
        served BLMOVE's push can make another key ready, served in turn."""
        if self.srv.pause_mode:
            return  # a pop is a write of this node's: served when the pause ends
        again = True
        while again:
            # each db's ready keys (a served BLMOVE may push into another db)
            again = False
            for db in self.ks.dbs:
                if db.ready:
                    self._serve_db(db)
                    again = True

    def _serve_db(self, db: Any) -> None:
        ready = db.ready
        while ready:
            key = next(iter(ready))
            del ready[key]
            lst = db.blocking.get(key)
            if not lst:
                continue
            for w in list(lst):
                if self.waiters.get(w.client.id) is not w:
                    continue
                mark = w.client.obuf
                r = cmd_blocking.serve(w.client, key, w.params)
                if r < 0:
                    break
                if r:
                    self._release(w)
                    w.client.unblock(NO_REPLY, mark)

    def _ready_soon(self) -> None:
        # a key with waiters changed: served after the command that changed
        # it (Client.run_cmd), or here for changes made outside one (peers)
        if not self.soon and self.srv.loop is not None:
            self.soon = True
            self.srv.loop.call_soon(self._serve_soon)

    def _serve_soon(self) -> None:
        self.soon = False
        if not any(db.ready for db in self.ks.dbs):
            return
        self.ks.set_now()
        self.serve_ready()
        bl = self.ks.bl
        if bl.dirty and self.srv.on_backlog is not None:
            bl.dirty = False
            self.srv.on_backlog()

    def unblock(self, client_id: int, error: bool) -> int:
        """CLIENT UNBLOCK: 1 if the client waited in a blocking pop or in
        WAIT (TIMEOUT answers WAIT with the acks so far, as Redis). A client
        held by CLIENT PAUSE is not unblocked (0; Redis 7.0.15 crashes on it)."""
        w = self.waiters.get(client_id)
        if w is None:
            return self._unblock_wait(client_id, error)
        self._release(w)
        mark = w.client.obuf
        if error:
            cmd_blocking.reply_unblocked(w.client)
        else:
            cmd_blocking.reply_timeout(w.client)
        w.client.unblock(NO_REPLY, mark)
        return 1

    def _unblock_wait(self, client_id: int, error: bool) -> int:
        repl = self.app.repl
        c = self.srv.clients.get(client_id)
        if c is None or not any(e[0] is c for e in repl.waiters):
            return 0
        if error:
            repl.client_gone(c)  # (its timer then finds nothing to do)
            cmd_blocking.reply_unblocked(c)
            c.unblock(NO_REPLY)
        else:
            repl._wait_timeout(c)
        return 1

    def in_timeout_table(self) -> int:
        """Blocked clients with a deadline (INFO clients_in_timeout_table)."""
        n = sum(1 for w in self.waiters.values() if w.timer is not None)
        return n + sum(1 for e in self.app.repl.waiters if e[3] is not None)

    def client_gone(self, c: Any) -> None:
        w = self.waiters.get(c.id)
        if w is not None:
            self._release(w)
        self.postponed.pop(c.id, None)

    # ---- CLIENT PAUSE ------------------------------------------------------------

    def pause(self, ms: int, mode: int) -> None:
        """Hold clients' commands (all, or the writes) for ms milliseconds; a
        pause already on keeps the later end and the stricter mode."""
        end = time.monotonic() + ms / 1000.0
        if mode > self.srv.pause_mode:
            self.srv.pause_mode = mode
        if end > self.pause_end or self.pause_timer is None:
            self.pause_end = max(end, self.pause_end)
            if self.pause_timer is not None:
                self.pause_timer.cancel()
            loop = self.srv.loop
            if loop is not None:
                self.pause_timer = loop.call_later(
                    max(0.0, self.pause_end - time.monotonic()), self.unpause
                )

    def unpause(self) -> None:
        """The pause ends: the held requests run, in the order they came."""
        self.srv.pause_mode = 0
        self.pause_end = 0.0
        if self.pause_timer is not None:
            self.pause_timer.cancel()
            self.pause_timer = None
        self._serve_soon()  # waiters whose keys a peer filled during the pause
        held = list(self.postponed.values())
        self.postponed.clear()
        for c, cmd, argv in held:
            if not c.closing:
                c.resume(cmd, argv)

    def postpone(self, c: Any, cmd: Any, argv: list) -> bool:
        """Called by the protocol for every request while a pause is on: hold
        it (True) when the pause covers it."""
        if self.srv.pause_mode == PAUSE_WRITE and not _writes(cmd):
            if not (cmd.fullname == b"exec" and c.in_multi):
                return False
            if not any(_writes(q) for q, _ in (c.mqueue or ())):
                return False
        self.postponed[c.id] = (c, cmd, argv)
        c.last_cmd = cmd
        c.block()
        return True
