"""MONITOR: every command this node runs, streamed to the monitor clients in
Redis's format, and the records it applies from peers (docs/internals.md,
"MONITOR").

A local command, after it ran (Client.call, as Redis 7.0's call()):
`+<unix s>.<usec> [0 <client addr>] "arg0" "arg1" ...`, each argument
escaped as Redis's sdscatrepr; admin commands and those flagged
skip_monitor are not shown; the secrets of AUTH, HELLO ... AUTH and
MIGRATE ... AUTH/AUTH2 show as "(redacted)".

A peer's replicated batch, once applied: one line per record,
`+<unix s>.<usec> [0 peer:<alias>] "<op>" "<key>"`, op being the record's
name in docs/internals.md "Records" in lower case (reg, cnt, ttl, sadd,
lins, zw, ...).

Cost: while no monitor is connected `Server.monitor` is None and the
protocol's one check per command is all there is.
"""

from __future__ import annotations

from typing import Any

from constdb._core.clock import now_us
from constdb._core.codec import Status
from constdb._core.protocol import FLAG

OP_NAMES = {
    1: "reg",
    2: "cnt",
    3: "ttl",
    4: "sadd",
    5: "srem",
    6: "sclear",
    7: "hset",
    8: "hrem",
    9: "hclear",
    10: "mv",
    11: "mvclear",
    40: "lins",
    41: "lrem",
    42: "lset",
    43: "lclear",
    48: "zw",
    49: "zrem",
    50: "zclear",
    56: "hcnt",
    57: "hsetc",
    64: "bits",
    65: "fcnt",
    66: "hfcnt",
    67: "hlladd",
    68: "hllreg",
    69: "hllcache",
    70: "func",
}
OP_MEMBER = 32
OP_SELECT = 33  # the group's next records are in db <identity> (ops.pxd)
OP_SWAPDB = 34

_ESC = {0x5C: "\\\\", 0x22: '\\"', 0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t", 0x07: "\\a", 0x08: "\\b"}
_REPR = [_ESC.get(i, chr(i) if 0x20 <= i <= 0x7E else f"\\x{i:02x}") for i in range(256)]


def sdscatrepr(b: bytes) -> str:
    """Redis's sdscatrepr: quoted, escaped, non-printable bytes as \\xHH."""
    return '"' + "".join([_REPR[x] for x in b]) + '"'


def _redacted(argv: list[bytes]) -> list[bytes]:
    """The arguments as Redis shows them: secrets replaced."""
    name = argv[0].lower()
    red = b"(redacted)"
    if name == b"auth":
        return [argv[0]] + [red] * (len(argv) - 1)
    if name == b"hello":
        out = list(argv)
        j = 2
        while j < len(out):
            opt = out[j].lower()
            if opt == b"auth" and j + 2 < len(out):
                out[j + 1] = out[j + 2] = red
                j += 3
            elif opt == b"setname" and j + 1 < len(out):
                j += 2
            else:
                break
        return out
    if name == b"migrate":
        out = list(argv)
        for j in range(6, len(out)):
            opt = out[j].lower()
            if opt == b"auth" and j + 1 < len(out):
                out[j + 1] = red
            elif opt == b"auth2" and j + 2 < len(out):
                out[j + 1] = out[j + 2] = red
        return out
    return argv


def _stamp() -> str:
    us = now_us()
    return f"{us // 1000000}.{us % 1000000:06d}"


class Monitor:
    def __init__(self, app: Any) -> None:
        self.app = app
        self.srv = app.srv
        self.clients: list[Any] = []
        self.skip = FLAG["admin"]

    def add(self, c: Any) -> None:
        if c not in self.clients:
            self.clients.append(c)
        self.srv.monitor = self.feed

    def client_gone(self, c: Any) -> None:
        if c in self.clients:
            self.clients.remove(c)
        if not self.clients:
            self.srv.monitor = None

    def _send(self, line: str) -> None:
        st = Status(line)
        for m in list(self.clients):
            if m.closing:
                self.client_gone(m)
            else:
                m.write_reply(st)

    def feed(self, c: Any, cmd: Any, argv: list[bytes]) -> None:
        """A command c ran (Client.call)."""
        if cmd.flags & self.skip or "skip_monitor" in cmd.spec.flags:
            return
        if argv[0].lower() in (b"auth", b"hello", b"migrate"):
            argv = _redacted(argv)
        args = " ".join([sdscatrepr(a) for a in argv])
        self._send(f"{_stamp()} [{c.db.index} {c.addr}] {args}")

    def feed_script(self, c: Any, argv: list[bytes]) -> None:
        """EVAL, EVALSHA, FCALL and their _RO forms (flagged skip_monitor):
        shown before the commands the script runs, as Redis 7.0 shows them."""
        self._send(f"{_stamp()} [0 {c.addr}] {' '.join([sdscatrepr(a) for a in argv])}")

    def feed_records(self, alias: str, data: bytes) -> None:
        """A peer's batch was applied: one line per record (op and key)."""
        stamp = _stamp()
        who = "peer:" + alias
        pos, n = 0, len(data)
        by_ident = self.app.ks.by_ident
        db = by_ident[0].index
        while pos + 5 <= n:
            size = int.from_bytes(data[pos : pos + 4], "little")
            raw = data[pos + 4]
            op = raw & 0x7F
            body = pos + 13  # u32 len, u8 op, u64 uuid
            pos += 4 + size
            if op == OP_SELECT:
                ident = _varint(data, body, pos)
                db = by_ident[ident].index if ident < len(by_ident) else db
                continue
            shown = db
            if not raw & 0x80:
                db = by_ident[0].index  # a group ends: back to identity 0
            if op == OP_MEMBER or op == OP_SWAPDB:
                continue
            key = _varbytes(data, body, pos)
            name = OP_NAMES.get(op) or f"op{op}"
            self._send(f"{stamp} [{shown} {who}] {sdscatrepr(name.encode())} {sdscatrepr(key)}")


def _varint(data: bytes, pos: int, end: int) -> int:
    return _varint_at(data, pos, end)[0]


def _varint_at(data: bytes, pos: int, end: int) -> tuple[int, int]:
    """The varint at pos and the position after it."""
    v = shift = 0
    while pos < end:
        b = data[pos]
        pos += 1
        v |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            break
    return v, pos


def _varbytes(data: bytes, pos: int, end: int) -> bytes:
    """A varint-length byte string at pos (the key at a record's payload start)."""
    length, pos = _varint_at(data, pos, end)
    return data[pos : min(pos + length, end)]
