"""FUNCTION libraries as replicated state (docs/crdt.md section 3.10,
docs/replication.md section 9).

Every library name has a last-writer-wins register: the library's code, or
no code (a tombstone: FUNCTION DELETE, FUNCTION FLUSH), written at the ts
(uuid, origin) of the OP_FUNC record that wrote it. FUNCTION LOAD, DELETE,
FLUSH and RESTORE write registers here through `Keyspace.emit_func`; a
peer's record comes back through `Keyspace.on_func`; the whole table travels
in every snapshot (after the membership in the snapshot's metadata blob), so
a full sync, a restart from the snapshot file and the append-only log's
replay (it replays the records) bring the libraries back.

Which libraries are loaded is a function of the table alone, so members
holding the same registers load the same libraries: the libraries whose
register holds code, newest ts first, each loaded unless one of its function
names is already taken by a newer loaded library (it is then *shadowed*: kept,
not callable, and loaded again if the newer one goes). The script engine
(constdb/scripting.py) compiles them; this module has no Lua in it.
"""

from __future__ import annotations

import struct
from typing import Callable, Optional

SECTION_MAGIC = b"CDBFN1"  # the snapshot metadata's functions section


class Reg:
    """A library name's register: code None is a tombstone."""

    __slots__ = ("name", "code", "uuid", "by")

    def __init__(self, name: bytes, code: Optional[bytes], uuid: int, by: int) -> None:
        self.name = name
        self.code = code
        self.uuid = uuid
        self.by = by


def encode_varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def read_varint(data: bytes, pos: int) -> tuple[int, int]:
    n = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ValueError("truncated varint")
        b = data[pos]
        pos += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, pos


def _read_bytes(data: bytes, pos: int) -> tuple[bytes, int]:
    n, pos = read_varint(data, pos)
    if pos + n > len(data):
        raise ValueError("truncated bytes")
    return data[pos : pos + n], pos + n


def encode_record(name: bytes, code: Optional[bytes]) -> bytes:
    """The payload of an OP_FUNC record (ops.pxd)."""
    out = encode_varint(len(name)) + name
    if code is None:
        return out + b"\x00"
    return out + b"\x01" + encode_varint(len(code)) + code


def _read_record(data: bytes, pos: int) -> tuple[bytes, Optional[bytes], int]:
    """(name, code, position after) of a record payload at pos."""
    name, pos = _read_bytes(data, pos)
    if pos >= len(data) or data[pos] > 1:
        raise ValueError("malformed function record")
    has = data[pos]
    pos += 1
    code = None
    if has:
        code, pos = _read_bytes(data, pos)
    return name, code, pos


def decode_record(payload: bytes) -> tuple[bytes, Optional[bytes]]:
    name, code, pos = _read_record(payload, 0)
    if pos != len(payload):
        raise ValueError("malformed function record")
    return name, code


class FunctionStore:
    """The node's library registers. `on_change` (the script engine's sync)
    runs after every change; `ks` writes the records (None: a store of its
    own, for an engine without a node)."""

    def __init__(self, ks: object = None) -> None:
        self.regs: dict[bytes, Reg] = {}
        self.ks = ks
        self.on_change: Optional[Callable[[], None]] = None
        self._local_uuid = 0

    # ---- the rule ---------------------------------------------------------

    def _put(self, name: bytes, code: Optional[bytes], uuid: int, by: int) -> bool:
        cur = self.regs.get(name)
        if cur is not None and (uuid, by) <= (cur.uuid, cur.by):
            return False
        self.regs[name] = Reg(name, code, uuid, by)
        return True

    def apply(self, by: int, uuid: int, payload: bytes) -> None:
        """An OP_FUNC record (this node's or a peer's), Keyspace.on_func."""
        name, code = decode_record(payload)
        if self._put(name, code, uuid, by) and self.on_change is not None:
            self.on_change()

    def live(self) -> list[Reg]:
        """The registers that hold code, newest ts first (the load order)."""
        regs = [r for r in self.regs.values() if r.code is not None]
        regs.sort(key=lambda r: (r.uuid, r.by), reverse=True)
        return regs

    # ---- local writes ------------------------------------------------------

    def write(self, name: bytes, code: Optional[bytes]) -> None:
        payload = encode_record(name, code)
        if self.ks is not None:
            self.ks.emit_func(payload)
            return
        self._local_uuid += 1
        self.apply(0, self._local_uuid, payload)

    # ---- snapshots -----------------------------------------------------------

    def encode(self) -> bytes:
        """The section of the snapshot metadata (empty without registers, so a
        snapshot without libraries is as before)."""
        if not self.regs:
            return b""
        out = [SECTION_MAGIC, struct.pack("<I", len(self.regs))]
        for r in self.regs.values():
            out.append(struct.pack("<QQ", r.uuid, r.by))
            out.append(encode_record(r.name, r.code))
        return b"".join(out)

    @staticmethod
    def decode(data: bytes) -> list[Reg]:
        """A snapshot's section (ValueError if malformed; empty: none)."""
        if not data:
            return []
        if not data.startswith(SECTION_MAGIC) or len(data) < len(SECTION_MAGIC) + 4:
            raise ValueError("bad functions section")
        pos = len(SECTION_MAGIC)
        (n,) = struct.unpack_from("<I", data, pos)
        pos += 4
        out = []
        for _ in range(n):
            if pos + 16 > len(data):
                raise ValueError("truncated functions section")
            uuid, by = struct.unpack_from("<QQ", data, pos)
            name, code, pos = _read_record(data, pos + 16)
            out.append(Reg(name, code, uuid, by))
        if pos != len(data):
            raise ValueError("trailing bytes in the functions section")
        return out

    def merge(self, regs: list[Reg]) -> None:
        """A snapshot's registers, each by the LWW rule."""
        changed = False
        for r in regs:
            changed |= self._put(r.name, r.code, r.uuid, r.by)
        if changed and self.on_change is not None:
            self.on_change()
