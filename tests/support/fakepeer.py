"""A fake peer that completes the real link handshake (docs/replication.md
section 2) over a raw socket and then sends whatever frames a test wants,
each with its session tag: what a member that went bad, or an attacker who
knows the secret, could send."""

from __future__ import annotations

import hashlib
import hmac
import os
import random
import struct
import time

import lz4.frame

from constdb.replication import link as L
from tests.support.resp import Conn, parse_typed


def _lp(fields: list[bytes]) -> bytes:
    return b"".join(struct.pack("<I", len(f)) + f for f in fields)


def _hm(key: bytes, msg: bytes) -> bytes:
    return hmac.new(key, msg, hashlib.sha256).digest()


def read_exact(c: Conn, n: int, timeout: float = 10.0) -> bytes:
    deadline = time.monotonic() + timeout
    while len(c.buf) < n:
        assert c._fill(deadline), f"short read: {c.buf!r}"
    out, c.buf = c.buf[:n], c.buf[n:]
    return out


class LinkedPeer:
    """Dials node port `port`, proves `secret` and is up: send() tags frames."""

    def __init__(self, port: int, secret: str, alias: str = "fake", origin: int = 0):
        self.c = Conn(port)
        self.id = random.randrange(1, 2**63)
        self.origin = origin or self.id
        self.nonce = os.urandom(16)
        k = secret.encode()
        hello = [
            str(L.PROTO_VERSION).encode(),
            str(self.id).encode(),
            str(self.origin).encode(),
            alias.encode(),
            b"127.0.0.1:1",
            self.nonce.hex().encode(),
            b"0",
            b"16",
        ]
        kind, items = parse_typed(self.c.call("CDB.LINK", *hello))
        assert kind == "arr", items
        reply = [v for _, v in items]
        channel = f"127.0.0.1:{port}".encode()
        t = hashlib.sha256(
            b"constdb-link-v2" + _lp(hello) + b"|" + _lp(reply) + b"|" + _lp([channel])
        ).digest()
        pf = struct.pack("<QB", 0, 0)
        proof_d = _hm(k, b"constdb-link-v2 D" + t + pf)
        self.c.send_raw(struct.pack("<BI", L.F_AUTH, len(proof_d + pf)) + proof_d + pf)
        ftype, ln = struct.unpack("<BI", read_exact(self.c, 5))
        assert (ftype, ln) == (L.F_POS, 41), (ftype, ln)
        read_exact(self.c, 41)
        prk = _hm(k, b"constdb-link-v2 session" + t)
        self.k_dl = _hm(prk, b"dialer to listener\x01")
        self.seq = 0
        self.comp = lz4.frame.LZ4FrameCompressor(block_linked=True, auto_flush=True)
        self.comp_head = self.comp.begin()

    def tagged(self, ftype: int, payload: bytes = b"") -> bytes:
        hdr = struct.pack("<BI", ftype, len(payload))
        tag = _hm(self.k_dl, struct.pack("<Q", self.seq) + hdr + payload)[:16]
        self.seq += 1
        return hdr + payload + tag

    def send(self, ftype: int, payload: bytes = b"") -> None:
        self.send_raw(self.tagged(ftype, payload))

    def send_raw(self, data: bytes) -> None:
        """Send, unless the node has closed the link (after a frame it
        refused): what a peer sends then is lost, as on a real link."""
        try:
            self.c.send_raw(data)
        except (BrokenPipeError, ConnectionResetError):
            self.c.eof = True

    def batch(self, records: bytes) -> None:
        """One BATCH frame holding records, compressed as a node does."""
        body = self.comp_head + self.comp.compress(records)
        self.comp_head = b""
        self.send(L.F_BATCH, struct.pack("<I", len(records)) + body)

    def heartbeat(self, clock: int, vv: dict[int, int] | None = None) -> None:
        vv = vv or {}
        body = struct.pack("<QI", clock, len(vv)) + b"".join(
            struct.pack("<QQ", n, u) for n, u in vv.items()
        )
        self.send(L.F_HEARTBEAT, body)

    def sync(self, timeout: float = 10.0) -> bool:
        """Send GETACK and read until the node's ACK (True: every frame sent
        before was processed and the link is up) or the close (False)."""
        self.send(L.F_GETACK)
        deadline = time.monotonic() + timeout
        while True:
            while len(self.c.buf) < 5:
                if not self.c._fill(deadline):
                    assert self.c.eof, "no ACK and no close"
                    return False
            ftype, ln = struct.unpack_from("<BI", self.c.buf, 0)
            while len(self.c.buf) < 5 + ln + L.TAG:
                if not self.c._fill(deadline):
                    assert self.c.eof, "no ACK and no close"
                    return False
            self.c.buf = self.c.buf[5 + ln + L.TAG :]
            if ftype == L.F_ACK:
                return True

    def until_close(self, timeout: float = 10.0) -> tuple[bytes, bool]:
        return self.c.rest_until_close(timeout)

    def close(self) -> None:
        self.c.close()


def record(op: int, uuid: int, payload: bytes) -> bytes:
    """One effect record (constdb/_core/ops.pxd): u32 len | u8 op | u64 uuid | payload."""
    body = struct.pack("<BQ", op, uuid) + payload
    return struct.pack("<I", len(body)) + body


def varbytes(b: bytes) -> bytes:
    return varint(len(b)) + b


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        x = n & 0x7F
        n >>= 7
        if n:
            out.append(x | 0x80)
        else:
            out.append(x)
            return bytes(out)
