"""One link between two nodes (docs/replication.md section 2).

A peer dials the other's client port and sends one RESP command,
`CDB.LINK proto node_id alias addr nonce meet`; the listener answers with its
own identity, a nonce and an HMAC over the dialer's nonce, and from then on
both sides speak binary frames `u8 type | u32 len | payload`. The dialer
proves the secret with an AUTH frame that also carries how far it has applied
the listener's stream; the listener answers with POS (how far it has applied
the dialer's stream). Then each side streams its own effects, or a snapshot
first when the other's position is outside its backlog.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import os
import struct
import time
from collections import deque
from typing import Any, Optional

import hiredis
import lz4.frame

log = logging.getLogger("constdb")

PROTO_VERSION = 1

F_AUTH = 1
F_POS = 2
F_BATCH = 3
F_SNAP_BEGIN = 4
F_SNAP_DATA = 5
F_SNAP_END = 6
F_ACK = 7
F_HEARTBEAT = 8
F_GETACK = 9
F_FULLSYNC_REQ = 10
F_ERROR = 11

HDR = struct.Struct("<BI")
MAX_FRAME = 64 * 1024 * 1024
HIGH_WATER = 4 * 1024 * 1024


def proof(secret: bytes, role: bytes, nonce: bytes, a: int, b: int) -> bytes:
    """HMAC-SHA256 of the cluster secret over a nonce the other side chose."""
    msg = role + nonce + struct.pack("<QQ", a, b)
    return hmac.new(secret, msg, hashlib.sha256).digest()


class LinkError(Exception):
    def __init__(self, code: str, msg: str):
        super().__init__(f"{code} {msg}")
        self.code = code
        self.msg = msg


class Link(asyncio.Protocol):
    def __init__(self, repl: Any, outbound: bool, meet: bool = False, addr: str = ""):
        # repl: the node's replication manager (manager.Replication), which
        # imports this module: a link calls back into it, never imports it
        self.repl = repl
        self.outbound = outbound
        self.meet = meet
        self.dial_addr = addr
        self.transport: Any = None
        self.state = "connect"
        self.rx = bytearray()
        self.reader = hiredis.Reader()
        self.nonce = os.urandom(16)
        self.peer_nonce = b""
        self.peer_id = 0
        self.peer_origin = 0
        self.peer_alias = ""
        self.peer_addr = ""
        self.peer_pos = 0  # how far the peer has applied our stream
        self.dialer_id = 0
        self.comp: Optional[lz4.frame.LZ4FrameCompressor] = None
        self.decomp: Optional[lz4.frame.LZ4FrameDecompressor] = None
        self.off = -1  # backlog stream offset of the next record to send
        self.sent = 0  # uuid of the last record sent
        self.acked = 0  # peer's ACK: uuid of ours it has applied
        self.sent_seq = 0  # backlog record index sent through
        self.acked_seq = 0
        self.batches: deque[tuple[int, int]] = deque()  # (last uuid, seq after)
        self.syncing = False
        self.snap_rx: Optional[bytearray] = None
        self.snap_point = 0
        self.paused = False
        self.closed = False
        self.last_rx = time.monotonic()
        self.created = time.monotonic()
        self.ack_scheduled = False
        self.waiter: Optional[asyncio.Future] = None
        self.anti_entropy: Optional[tuple[int, int]] = None
        self.bytes_out = 0
        self.bytes_in = 0

    # ---- transport --------------------------------------------------------------

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        if self.outbound:
            r = self.repl
            self.state = "hello"
            args = [
                b"CDB.LINK",
                str(PROTO_VERSION).encode(),
                str(r.node_id).encode(),
                str(r.ks.node_id).encode(),
                r.alias.encode(),
                r.advertised_addr().encode(),
                self.nonce.hex().encode(),
                b"1" if self.meet else b"0",
            ]
            transport.write(
                b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)
            )

    def attach_inbound(
        self, transport: Any, peer_id: int, origin: int, alias: str, addr: str, peer_nonce: bytes
    ) -> None:
        """Take over a client connection after the CDB.LINK command."""
        self.transport = transport
        self.peer_id = peer_id
        self.peer_origin = origin
        self.peer_alias = alias
        self.peer_addr = addr
        self.peer_nonce = peer_nonce
        self.dialer_id = peer_id
        self.state = "auth"
        transport.set_protocol(self)

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        self.closed = True
        self.state = "closed"
        self.repl.link_lost(self, exc)

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        self.repl.schedule_pump()

    def write_frame(self, ftype: int, payload: bytes = b"") -> None:
        if self.closed or self.transport is None:
            return
        self.transport.write(HDR.pack(ftype, len(payload)) + payload)
        self.bytes_out += len(payload) + 5

    def close(self, code: str = "", msg: str = "") -> None:
        if self.closed:
            return
        if code:
            self.write_frame(F_ERROR, f"{code} {msg}".encode())
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def buffered(self) -> int:
        if self.transport is None:
            return 0
        return self.transport.get_write_buffer_size()

    # ---- input --------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        self.last_rx = time.monotonic()
        self.bytes_in += len(data)
        try:
            if self.state == "hello":
                self._hello_reply(data)
                return
            self.rx += data
            self._frames()
        except LinkError as e:
            log.warning("link to %s: %s", self.describe(), e)
            self.repl.link_failed(self, e.code, e.msg)
            self.close(e.code, e.msg)
        except Exception as e:  # a broken peer must not take the node down
            log.exception("link to %s failed", self.describe())
            self.repl.link_failed(self, "PROTOCOL", str(e))
            self.close("PROTOCOL", str(e))

    def _hello_reply(self, data: bytes) -> None:
        self.reader.feed(data)
        reply = self.reader.gets()
        if reply is False:
            return
        rest = self.reader.gets()  # nothing may follow before our AUTH
        if rest is not False:
            raise LinkError("PROTOCOL", "unexpected data after the handshake reply")
        if isinstance(reply, hiredis.ReplyError):
            text = str(reply)
            code = (
                text.split(" ", 2)[1]
                if text.startswith("ERR ") and len(text.split(" ")) > 1
                else "REFUSED"
            )
            raise LinkError(code if code.isupper() else "REFUSED", text)
        if not isinstance(reply, list) or len(reply) != 7:
            raise LinkError("PROTOCOL", "bad handshake reply")
        proto, pid, porigin, alias, addr, pnonce, pproof = reply
        if int(proto) != PROTO_VERSION:
            raise LinkError(
                "VERSION", f"peer speaks link protocol {int(proto)}, this node {PROTO_VERSION}"
            )
        r = self.repl
        self.peer_id = int(pid)
        self.peer_origin = int(porigin)
        self.peer_alias = alias.decode("utf-8", "replace")
        self.peer_addr = addr.decode("utf-8", "replace")
        self.peer_nonce = bytes.fromhex(pnonce.decode())
        self.dialer_id = r.node_id
        if self.peer_id == r.node_id:
            raise LinkError(
                "DUPLICATE", f"peer at {self.dial_addr} has this node's own node_id {r.node_id}"
            )
        if not hmac.compare_digest(
            pproof, proof(r.secret, b"L", self.nonce, self.peer_id, r.node_id)
        ):
            raise LinkError("SECRET", "the peer does not know this node's cluster_secret")
        mine = proof(r.secret, b"D", self.peer_nonce, r.node_id, self.peer_id)
        self.write_frame(
            F_AUTH, mine + struct.pack("<QB", r.ks.vv_of(self.peer_origin), 1 if self.meet else 0)
        )
        self.state = "pos"

    def _frames(self) -> None:
        rx = self.rx
        pos = 0
        n = len(rx)
        while n - pos >= 5 and not self.closed:
            ftype, ln = HDR.unpack_from(rx, pos)
            if ln > MAX_FRAME:
                raise LinkError("PROTOCOL", f"frame of {ln} bytes")
            if n - pos - 5 < ln:
                break
            payload = bytes(rx[pos + 5 : pos + 5 + ln])
            pos += 5 + ln
            self._frame(ftype, payload)
        if pos:
            del rx[:pos]

    def _frame(self, ftype: int, p: bytes) -> None:
        r = self.repl
        if ftype == F_ERROR:
            text = p.decode("utf-8", "replace")
            code, _, msg = text.partition(" ")
            log.warning("link to %s closed by the peer: %s", self.describe(), text)
            r.link_failed(self, code, msg, remote=True)
            self.close()
            return
        if self.state == "auth":
            if ftype != F_AUTH or len(p) != 41:
                raise LinkError("PROTOCOL", "expected AUTH")
            want = proof(r.secret, b"D", self.nonce, self.peer_id, r.node_id)
            if not hmac.compare_digest(p[:32], want):
                raise LinkError("SECRET", "the peer does not know this node's cluster_secret")
            self.peer_pos, flags = struct.unpack_from("<QB", p, 32)
            self.meet = bool(flags & 1)
            self.write_frame(F_POS, struct.pack("<QB", r.ks.vv_of(self.peer_origin), 0))
            self.state = "up"
            r.link_up(self)
            return
        if self.state == "pos":
            if ftype != F_POS or len(p) != 9:
                raise LinkError("PROTOCOL", "expected POS")
            self.peer_pos, _flags = struct.unpack_from("<QB", p, 0)
            self.state = "up"
            r.link_up(self)
            return
        if self.state != "up":
            raise LinkError("PROTOCOL", f"frame {ftype} in state {self.state}")
        if ftype == F_BATCH:
            if self.decomp is None:
                self.decomp = lz4.frame.LZ4FrameDecompressor()
            # the frame says how much it holds: python-lz4's streaming
            # decompressor can return less than a flushed block holds when
            # max_length is left unbounded
            (raw,) = struct.unpack_from("<I", p, 0)
            data = self.decomp.decompress(p[4:], max_length=raw)
            if len(data) != raw:
                raise LinkError("PROTOCOL", f"batch of {raw} bytes decompressed to {len(data)}")
            if data:
                r.apply_batch(self, data)
        elif ftype == F_ACK:
            (u,) = struct.unpack("<Q", p)
            r.got_ack(self, u)
        elif ftype == F_HEARTBEAT:
            r.got_heartbeat(self, p)
        elif ftype == F_GETACK:
            r.send_ack(self)
        elif ftype == F_SNAP_BEGIN:
            self.snap_point, _size = struct.unpack("<QQ", p)
            self.snap_rx = bytearray()
            log.info("full sync from %s: receiving a snapshot", self.describe())
        elif ftype == F_SNAP_DATA:
            if self.snap_rx is None:
                raise LinkError("PROTOCOL", "snapshot data outside a snapshot")
            self.snap_rx += p
        elif ftype == F_SNAP_END:
            if self.snap_rx is None:
                raise LinkError("PROTOCOL", "snapshot end outside a snapshot")
            data = bytes(self.snap_rx)
            self.snap_rx = None
            r.apply_snapshot(self, data)
        elif ftype == F_FULLSYNC_REQ:
            r.start_full_sync(self, "requested by the peer")
        else:
            raise LinkError("PROTOCOL", f"unknown frame type {ftype}")

    # ---- output ---------------------------------------------------------------------

    def send_batch(self, data: bytes) -> None:
        size = struct.pack("<I", len(data))
        if self.comp is None:
            self.comp = lz4.frame.LZ4FrameCompressor(block_linked=True, auto_flush=True)
            head = self.comp.begin()
            self.write_frame(F_BATCH, size + head + self.comp.compress(data))
        else:
            self.write_frame(F_BATCH, size + self.comp.compress(data))

    def describe(self) -> str:
        who = f"{self.peer_alias or '?'}({self.peer_id or '?'})"
        return f"{who}@{self.peer_addr or self.dial_addr}"
