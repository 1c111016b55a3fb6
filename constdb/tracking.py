"""Client-side caching: CLIENT TRACKING's invalidation messages, as Redis
sends them, for keys changed by this node's clients and by writes replicated
from other members alike (every change goes through Keyspace.touched, which
calls `changed` while some client tracks).

Default mode: the keys a tracking client read (read-only commands) are
remembered, key -> client ids; the first change of such a key sends each of
them one invalidation and forgets the key. BCAST mode: every change of a key
under one of the client's prefixes is collected and sent once per event-loop
turn, one message per prefix. A message goes to the client itself in RESP3
(a push) or to its REDIRECT client (a push in RESP3, a `__redis__:invalidate`
Pub/Sub message in RESP2 if subscribed). A message for the client whose
command caused it goes after that command's reply."""

from __future__ import annotations

from typing import Any, Optional

from constdb._core.codec import RespError
from constdb._core.protocol import FLAG

READONLY = FLAG["readonly"]

CHANNEL = b"__redis__:invalidate"


class Track:
    """One client's tracking settings (Client.track; None: tracking off)."""

    __slots__ = ("redirect", "bcast", "optin", "optout", "noloop", "caching", "broken", "prefixes")

    def __init__(self) -> None:
        self.redirect = 0
        self.bcast = self.optin = self.optout = self.noloop = False
        self.caching: Optional[bool] = None  # CLIENT CACHING yes/no for the next command
        self.broken = False  # its redirect client is gone
        self.prefixes: list[bytes] = []


def _bulk(b: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(b), b)


def _keys(keys: Optional[list[bytes]], resp3: bool) -> bytes:
    if keys is None:
        return b"_\r\n" if resp3 else b"*-1\r\n"
    return b"*%d\r\n" % len(keys) + b"".join(_bulk(k) for k in keys)


class Tracking:
    def __init__(self, app: Any) -> None:
        self.app = app
        self.srv = app.srv
        self.table: dict[bytes, dict[int, None]] = {}  # key -> ids of clients that read it
        self.bcast: dict[bytes, dict[int, None]] = {}  # prefix -> ids of BCAST clients
        self.pending: dict[bytes, list[tuple[bytes, int]]] = {}  # prefix -> (key, changer id)
        self.flush_scheduled = False
        self.clients = 0  # clients with tracking on
        self.max_keys = 1_000_000  # tracking_table_max_keys
        self.flushing = False
        self.postponed: list[bytes] = []  # for the running client, after its reply

    # ---- the hooks ---------------------------------------------------------------------

    def _hook(self) -> None:
        on = self.clients > 0
        self.app.ks.on_change = self.changed if on else None
        self.srv.track_on = on

    def after(self, c: Any, cmd: Any, argv: list[bytes]) -> None:
        """Client.call, after a command of a tracking client: remember the
        keys a read-only command read; the CACHING flag lasts one command."""
        t = c.track
        if t is None:
            return
        if cmd.flags & READONLY and not t.bcast:
            if not ((t.optin and t.caching is not True) or (t.optout and t.caching is False)):
                self.remember(c, cmd, argv)
        if (t.optin or t.optout) and not cmd.fullname.startswith(b"client"):
            t.caching = None

    def remember(self, c: Any, cmd: Any, argv: list[bytes]) -> None:
        from constdb.commands.introspection import key_positions

        keys = key_positions(cmd, argv) or ()
        for i, _flags in keys:
            self.table.setdefault(argv[i], {})[c.id] = None
        while len(self.table) > self.max_keys:
            key = next(iter(self.table))
            self.invalidate_key(key, evicted=True)

    def after_call(self, c: Any) -> None:
        """Messages for the client that just ran a command, after its reply."""
        if self.postponed:
            data, self.postponed = b"".join(self.postponed), []
            c.deliver(data, False)

    def changed(self, key: bytes) -> None:
        """Keyspace.touched: key changed (a local command or a peer's write)."""
        if self.flushing:
            return
        if key in self.table:
            self.invalidate_key(key)
        if self.bcast:
            who = self.srv.current.id if self.srv.current is not None else 0
            for prefix in self.bcast:
                if key.startswith(prefix):
                    self.pending.setdefault(prefix, []).append((key, who))
                    if not self.flush_scheduled and self.srv.loop is not None:
                        self.flush_scheduled = True
                        self.srv.loop.call_soon(self.flush_bcast)

    def invalidate_key(self, key: bytes, evicted: bool = False) -> None:
        ids = self.table.pop(key, None)
        if not ids:
            return
        current = self.srv.current
        for cid in ids:
            cl = self.srv.clients.get(cid)
            if cl is None or cl.track is None or cl.track.bcast:
                continue
            if cl.track.noloop and cl is current and not evicted:
                continue
            self.send(cl, [key])

    def flush_bcast(self) -> None:
        self.flush_scheduled = False
        pending, self.pending = self.pending, {}
        for prefix, changes in pending.items():
            for cid in list(self.bcast.get(prefix, ())):
                cl = self.srv.clients.get(cid)
                if cl is None or cl.track is None:
                    continue
                if cl.track.noloop:
                    keys = [k for k, who in changes if who != cid]
                else:
                    keys = [k for k, _ in changes]
                if keys:
                    self.send(cl, keys)

    def flush_all(self) -> None:
        """FLUSHALL: every tracking client is told to drop its whole cache."""
        self.table.clear()
        self.pending.clear()
        for cl in list(self.srv.clients.values()):
            if cl.track is not None:
                self.send(cl, None)

    def send(self, c: Any, keys: Optional[list[bytes]]) -> None:
        """One invalidation message for tracking client c (keys None: all)."""
        t = c.track
        target = c
        redirected = False
        if t.redirect:
            target = self.srv.clients.get(t.redirect)
            if target is None:
                t.broken = True
                if c.resp == 3:
                    data = b">2\r\n$21\r\ntracking-redir-broken\r\n:%d\r\n" % t.redirect
                    self._deliver(c, data)
                return
            redirected = True
        if target.resp == 3:
            data = b">2\r\n$10\r\ninvalidate\r\n" + _keys(keys, True)
        elif redirected and target.subs is not None:
            data = b"*3\r\n$7\r\nmessage\r\n" + _bulk(CHANNEL) + _keys(keys, False)
        else:
            return  # RESP2 and no redirection: there is no way to tell it
        self._deliver(target, data)

    def _deliver(self, c: Any, data: bytes) -> None:
        if c is self.srv.current:
            self.postponed.append(data)
        else:
            c.deliver(data, True)

    # ---- CLIENT TRACKING on / off ------------------------------------------------------

    def enable(self, c: Any, t: Track) -> None:
        old = c.track
        if old is None:
            self.clients += 1
        else:
            self._drop_prefixes(c)
        c.track = t
        if t.bcast:
            for p in t.prefixes or [b""]:
                self.bcast.setdefault(p, {})[c.id] = None
        self._hook()

    def disable(self, c: Any) -> None:
        if c.track is None:
            return
        self._drop_prefixes(c)
        c.track = None
        self.clients -= 1
        self._hook()

    def _drop_prefixes(self, c: Any) -> None:
        for p in c.track.prefixes or [b""]:
            ids = self.bcast.get(p)
            if ids is not None:
                ids.pop(c.id, None)
                if not ids:
                    del self.bcast[p]
                    self.pending.pop(p, None)

    # ---- INFO ----------------------------------------------------------------------------

    def info(self) -> list[tuple[str, int]]:
        return [
            ("tracking_clients", self.clients),
            ("tracking_total_items", sum(len(v) for v in self.table.values())),
            ("tracking_total_keys", len(self.table)),
            ("tracking_total_prefixes", len(self.bcast)),
        ]


def parse_tracking(c: Any, argv: list[bytes]) -> Optional[Track]:
    """CLIENT TRACKING ON|OFF [options]: the new settings (None: off), or
    Redis's error for options that do not go together."""
    from constdb.commands.common import SYNTAX, text

    t = Track()
    i = 3
    while i < len(argv):
        opt = argv[i].lower()
        more = i + 1 < len(argv)
        if opt == b"redirect" and more:
            i += 1
            if t.redirect:
                raise RespError("ERR A client can only redirect to a single other client")
            try:
                rid = int(argv[i])
            except ValueError:
                raise RespError("ERR value is not an integer or out of range") from None
            if rid not in c.srv.clients:
                raise RespError("ERR The client ID you want redirect to does not exist")
            t.redirect = rid
        elif opt == b"bcast":
            t.bcast = True
        elif opt == b"optin":
            t.optin = True
        elif opt == b"optout":
            t.optout = True
        elif opt == b"noloop":
            t.noloop = True
        elif opt == b"prefix" and more:
            i += 1
            t.prefixes.append(argv[i])
        else:
            raise RespError(SYNTAX)
        i += 1
    mode = argv[2].lower()
    if mode == b"off":
        return None
    if mode != b"on":
        raise RespError(SYNTAX)
    if t.prefixes and not t.bcast:
        raise RespError("ERR PREFIX option requires BCAST mode to be enabled")
    old = c.track
    if old is not None and old.bcast != t.bcast:
        raise RespError(
            "ERR You can't switch BCAST mode on/off before disabling tracking for this"
            " client, and then re-enabling it with a different mode."
        )
    if t.bcast and (t.optin or t.optout):
        raise RespError("ERR OPTIN and OPTOUT are not compatible with BCAST")
    if t.optin and t.optout:
        raise RespError("ERR You can't specify both OPTIN mode and OPTOUT mode")
    if old is not None and ((t.optin and old.optout) or (t.optout and old.optin)):
        raise RespError(
            "ERR You can't switch OPTIN/OPTOUT mode before disabling tracking for this"
            " client, and then re-enabling it with a different mode."
        )
    if t.bcast:
        ps = t.prefixes
        have = old.prefixes if old is not None else []
        for a, p in enumerate(ps):
            for q in have:
                if p != q and (p.startswith(q) or q.startswith(p)):
                    raise RespError(
                        f"ERR Prefix '{text(p)}' overlaps with an existing prefix"
                        f" '{text(q)}'. Prefixes for a single client must not overlap."
                    )
            for q in ps[a + 1 :]:
                if p.startswith(q) or q.startswith(p):
                    raise RespError(
                        f"ERR Prefix '{text(p)}' overlaps with another provided prefix"
                        f" '{text(q)}'. Prefixes for a single client must not overlap."
                    )
        # prefixes add up over several CLIENT TRACKING ON
        t.prefixes = have + [p for p in ps if p not in have]
    return t
