"""Group membership as replicated state (docs/replication.md section 1): a map
node_id -> (alias, advertised address, active | forgotten), last-writer-wins
per node_id on the (uuid, origin) of the record that wrote it. Changes travel
as OP_MEMBER records in the origin's stream and whole in snapshots."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Iterator, Optional

ACTIVE = 1
FORGOTTEN = 0


@dataclass
class Member:
    node_id: int
    alias: str
    addr: str
    state: int
    origin: int  # the node's current CRDT origin id (its stream)
    uuid: int  # ts of the record that wrote this entry: (uuid, by)
    by: int

    @property
    def active(self) -> bool:
        return self.state == ACTIVE


def _pack_str(s: str) -> bytes:
    b = s.encode()
    return struct.pack("<H", len(b)) + b


def _unpack_str(data: bytes, pos: int) -> tuple[str, int]:
    (n,) = struct.unpack_from("<H", data, pos)
    pos += 2
    return data[pos : pos + n].decode("utf-8", "replace"), pos + n


def encode_change(node_id: int, state: int, alias: str, addr: str, origin: int) -> bytes:
    """Payload of an OP_MEMBER record."""
    return struct.pack("<QBQ", node_id, state, origin) + _pack_str(alias) + _pack_str(addr)


def decode_change(payload: bytes) -> tuple[int, int, str, str, int]:
    node_id, state, origin = struct.unpack_from("<QBQ", payload, 0)
    alias, pos = _unpack_str(payload, 17)
    addr, pos = _unpack_str(payload, pos)
    return node_id, state, alias, addr, origin


class Membership:
    def __init__(self) -> None:
        self.members: dict[int, Member] = {}

    def apply(
        self, by: int, uuid: int, node_id: int, state: int, alias: str, addr: str, origin: int
    ) -> Optional[Member]:
        """LWW by (uuid, by): the ts of the record. Returns the entry if it changed."""
        cur = self.members.get(node_id)
        if cur is not None and (uuid, by) <= (cur.uuid, cur.by):
            return None
        m = Member(node_id, alias, addr, state, origin, uuid, by)
        self.members[node_id] = m
        return m

    def get(self, node_id: int) -> Optional[Member]:
        return self.members.get(node_id)

    def active(self) -> Iterator[Member]:
        return (m for m in self.members.values() if m.active)

    def current_origins(self) -> set[int]:
        return {m.origin for m in self.members.values() if m.active}

    def find_addr(self, addr: str) -> Optional[Member]:
        for m in self.members.values():
            if m.addr == addr and m.active:
                return m
        return None

    def encode(self) -> bytes:
        out = [struct.pack("<I", len(self.members))]
        for m in self.members.values():
            out.append(struct.pack("<QBQQQ", m.node_id, m.state, m.origin, m.uuid, m.by))
            out.append(_pack_str(m.alias))
            out.append(_pack_str(m.addr))
        return b"".join(out)

    @staticmethod
    def decode(data: bytes) -> list[Member]:
        return Membership.decode_split(data)[0]

    @staticmethod
    def decode_split(data: bytes) -> tuple[list[Member], bytes]:
        """The members of a snapshot's metadata blob, and what follows them
        (the function libraries' section, constdb/functions.py)."""
        if not data:
            return [], b""
        (n,) = struct.unpack_from("<I", data, 0)
        pos = 4
        out = []
        for _ in range(n):
            node_id, state, origin, uuid, by = struct.unpack_from("<QBQQQ", data, pos)
            pos += 33
            alias, pos = _unpack_str(data, pos)
            addr, pos = _unpack_str(data, pos)
            out.append(Member(node_id, alias, addr, state, origin, uuid, by))
        return out, data[pos:]
