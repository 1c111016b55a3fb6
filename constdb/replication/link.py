"""One link between two nodes (docs/replication.md section 2).

A peer dials the other's client port and sends one RESP command (after
`AUTH requirepass` when it has one), `CDB.LINK proto node_id origin alias
addr nonce meet`; the listener answers with its own identity and a nonce,
and from then on both sides speak binary frames `u8 type | u32 len |
payload`. Neither side reveals anything that depends on the secret before
the other has proven it: the dialer proves first (AUTH, which also carries
how far it has applied the listener's stream); the listener checks it and
only then answers with its own proof (POS: how far it has applied the
dialer's stream). Both proofs cover a transcript of the whole hello (both
nonces, node ids, origins, aliases, addresses, the address the dialer dialed)
and a session key derived from it authenticates every later frame with a
tag over a per-direction sequence number. Then each side streams its own
effects, or a snapshot first when the other's position is outside its
backlog.
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

PROTO_VERSION = 4

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
F_FLOOR = 12  # the sender's restart floor (docs/replication.md section 7)
F_TIME = 13  # the sender's wall clock, for the peer's offset (clocksync.py)
F_PUBLISH = 14  # a message PUBLISHed on the sender (constdb/pubsub.py)

HDR = struct.Struct("<BI")
SEQ = struct.Struct("<Q")
POSF = struct.Struct("<QB")
MAX_FRAME = 64 * 1024 * 1024
HIGH_WATER = 4 * 1024 * 1024
TAG = 16  # bytes of HMAC-SHA256 after every frame once the link is up
# before the peer has proven the secret: a frame (AUTH, POS, ERROR) is at most
# PRE_MAX_FRAME bytes and the handshake reply at most HELLO_MAX
PRE_MAX_FRAME = 256
HELLO_MAX = 4096
PROOF = 32
# a batch, decompressed: at most MAX_BATCH_RAW bytes and LZ4_MAX_RATIO times
# its compressed size (what lz4 can expand to), checked before anything is
# allocated; it is decompressed DECOMP_STEP bytes at a time, so memory follows
# what the frame really holds, not what it claims
MAX_BATCH_RAW = 1024 * 1024 * 1024
LZ4_MAX_RATIO = 256
DECOMP_STEP = 4 * 1024 * 1024


def max_snapshot() -> int:
    """The largest snapshot a peer may declare: this machine's physical memory
    (a node cannot hold more of it anyway)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        return 1 << 40


LABEL = b"constdb-link-v2"


def _lp(fields: list[bytes]) -> bytes:
    return b"".join(struct.pack("<I", len(f)) + f for f in fields)


def transcript(hello: list[bytes], reply: list[bytes], channel: bytes) -> bytes:
    """SHA-256 of what both sides saw: the CDB.LINK arguments as sent, the
    listener's reply as sent, and the channel: the listener's address as the
    dialer dialed it (the listener uses its own advertised address; the two
    agree only on a direct link to the node the dialer meant). A TLS session's
    exporter value would be appended to channel."""
    return hashlib.sha256(LABEL + _lp(hello) + b"|" + _lp(reply) + b"|" + _lp([channel])).digest()


def dialer_proof(secret: bytes, t: bytes, pos_flags: bytes) -> bytes:
    return hmac.new(secret, LABEL + b" D" + t + pos_flags, hashlib.sha256).digest()


def listener_proof(secret: bytes, t: bytes, dproof: bytes, pos_flags: bytes) -> bytes:
    return hmac.new(secret, LABEL + b" L" + t + dproof + pos_flags, hashlib.sha256).digest()


def session_keys(secret: bytes, t: bytes) -> tuple[bytes, bytes]:
    """(dialer->listener, listener->dialer) frame keys: HKDF-style, an
    HMAC-SHA256 extract over the transcript, then one expand per direction."""
    prk = hmac.new(secret, LABEL + b" session" + t, hashlib.sha256).digest()
    d2l = hmac.new(prk, b"dialer to listener\x01", hashlib.sha256).digest()
    l2d = hmac.new(prk, b"listener to dialer\x01", hashlib.sha256).digest()
    return d2l, l2d


def esc(s: str, limit: int = 160) -> str:
    """Peer-supplied text for a log line: control and non-ASCII characters
    escaped, long text cut."""
    if len(s) > limit:
        s = s[:limit] + "..."
    return s.encode("unicode_escape").decode("ascii")


# codes a peer may refuse a handshake with (anything else is shown as REFUSED)
REFUSAL_CODES = (
    "SECRET",
    "VERSION",
    "DUPLICATE",
    "PROTOCOL",
    "TIMEOUT",
    "NOSECRET",
    "ADDRESS",
    "DATABASES",
)


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
        self.client: Any = None  # inbound: the client connection until the proof
        self.expect = 0  # outbound: the member this link was dialed for (0: MEET)
        self.state = "connect"
        self.rx = bytearray()
        self.reader = hiredis.Reader()
        self.hello_bytes = 0
        self.auth_pending = False
        self.hello: list[bytes] = []  # CDB.LINK arguments as sent
        self.transcript = b""
        self.dproof = b""
        self.tx_mac: Any = None  # keyed HMAC objects once the proofs are checked
        self.rx_mac: Any = None
        self.tx_seq = 0
        self.rx_seq = 0
        self.timer: Optional[asyncio.TimerHandle] = None
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
        # PUBLISHed messages waiting for the records written before them:
        # (backlog offset they follow, payload); pub_bytes: their size
        self.pubs: deque[tuple[int, bytes]] = deque()
        self.pub_bytes = 0
        self.syncing = False
        self.snap_rx: Optional[bytearray] = None
        self.snap_point = 0
        self.snap_size = 0
        self.paused = False
        self.closed = False
        self.last_rx = time.monotonic()
        self.created = time.monotonic()
        self.ack_scheduled = False
        self.waiter: Optional[asyncio.Future] = None
        self.anti_entropy: Optional[tuple[int, int]] = None
        self.bytes_out = 0
        self.bytes_in = 0

    @property
    def proven(self) -> bool:
        """The peer has proven the secret (frames are authenticated)."""
        return self.rx_mac is not None

    # ---- transport --------------------------------------------------------------

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        if self.outbound:
            r = self.repl
            self.state = "hello"
            self.hello = [
                str(PROTO_VERSION).encode(),
                str(r.node_id).encode(),
                str(r.ks.node_id).encode(),
                r.alias.encode(),
                r.advertised_addr().encode(),
                self.nonce.hex().encode(),
                b"1" if self.meet else b"0",
                str(len(r.ks.dbs)).encode(),
            ]
            args = [b"CDB.LINK"] + self.hello
            pw = r.app.cfg.requirepass
            if pw:  # the listener gates CDB.LINK by its requirepass (members share it)
                self.auth_pending = True
                args = [b"AUTH", pw.encode()]
                transport.write(_resp(args))
                args = [b"CDB.LINK"] + self.hello
            transport.write(_resp(args))

    def attach_inbound(
        self,
        client: Any,
        argv: list[bytes],
        reply: list[bytes],
        channel: bytes,
        peer_id: int,
        origin: int,
        alias: str,
        addr: str,
        peer_nonce: bytes,
        timeout: float,
    ) -> None:
        """Take over a client connection after the CDB.LINK command. The
        client stays counted as a client (maxclients, CLIENT LIST) until the
        dialer has proven the secret."""
        self.client = client
        self.transport = client.transport
        self.peer_id = peer_id
        self.peer_origin = origin
        self.peer_alias = alias
        self.peer_addr = addr
        self.peer_nonce = peer_nonce
        self.dialer_id = peer_id
        self.hello = list(argv[1:])
        self.transcript = transcript(self.hello, reply, channel)
        self.state = "auth"
        loop = asyncio.get_event_loop()
        self.timer = loop.call_later(timeout, self._handshake_timeout)
        self.transport.set_protocol(self)

    def _handshake_timeout(self) -> None:
        self.timer = None
        if not self.closed and not self.proven:
            self.repl.link_failed(self, "TIMEOUT", "handshake timed out")
            self.close("TIMEOUT", "handshake timed out")

    def _release_client(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.client is not None:
            self.client.detach()  # no longer a client: a proven link
            self.client = None

    def connection_lost(self, exc: Optional[BaseException]) -> None:
        self.closed = True
        self.state = "closed"
        self._release_client()
        self.repl.link_lost(self, exc)

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        self.repl.schedule_pump()

    def write_frame(self, ftype: int, payload: bytes = b"") -> None:
        if self.closed or self.transport is None:
            return
        hdr = HDR.pack(ftype, len(payload))
        mac = self.tx_mac
        if mac is None:
            self.transport.write(hdr + payload)
            self.bytes_out += len(payload) + 5
            return
        h = mac.copy()
        h.update(SEQ.pack(self.tx_seq))
        h.update(hdr)
        h.update(payload)
        self.tx_seq += 1
        self.transport.write(hdr + payload + h.digest()[:TAG])
        self.bytes_out += len(payload) + 5 + TAG

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

    def mem_bytes(self) -> int:
        """What the link holds (used_memory's links share): its output
        buffer, input not yet applied, PUBLISHes waiting for their records,
        a snapshot being received."""
        n = self.buffered() + len(self.rx) + self.pub_bytes
        if self.snap_rx is not None:
            n += len(self.snap_rx)
        return n

    def _keys(self) -> None:
        d2l, l2d = session_keys(self.repl.secret, self.transcript)
        tx, rx = (d2l, l2d) if self.outbound else (l2d, d2l)
        self.tx_mac = hmac.new(tx, digestmod=hashlib.sha256)
        self.rx_mac = hmac.new(rx, digestmod=hashlib.sha256)

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
            self.repl.link_failed(self, e.code, e.msg)
            self.close(e.code, e.msg)
        except (struct.error, ValueError) as e:  # a frame that does not decode
            msg = f"malformed frame: {esc(str(e))}"
            self.repl.link_failed(self, "PROTOCOL", msg)
            self.close("PROTOCOL", "malformed frame")
        except Exception as e:  # a broken peer must not take the node down
            if self.proven:
                log.exception("link to %s failed", self.describe())
            self.repl.link_failed(self, "PROTOCOL", str(e))
            self.close("PROTOCOL", "malformed frame")

    def _hello_reply(self, data: bytes) -> None:
        self.hello_bytes += len(data)
        if self.hello_bytes > HELLO_MAX:
            raise LinkError("PROTOCOL", "handshake reply too long")
        self.reader.feed(data)
        if self.auth_pending:
            got = self.reader.gets()
            if got is False:
                return
            self.auth_pending = False
            if isinstance(got, hiredis.ReplyError) and "without any password" not in str(got):
                raise LinkError(
                    "AUTH", f"the peer refused this node's requirepass: {esc(str(got))}"
                )
        reply = self.reader.gets()
        if reply is False:
            return
        rest = self.reader.gets()  # nothing may follow before our AUTH
        if rest is not False:
            raise LinkError("PROTOCOL", "unexpected data after the handshake reply")
        if isinstance(reply, hiredis.ReplyError):
            text = str(reply)
            words = text.split(" ")
            if words[0] in ("NOAUTH", "WRONGPASS"):
                code = "AUTH"
            elif words[0] == "ERR" and len(words) > 1 and words[1] in REFUSAL_CODES:
                code = words[1]
            else:
                code = "REFUSED"
            raise LinkError(code, esc(text))
        if (
            not isinstance(reply, list)
            or len(reply) not in (6, 7)
            or not all(isinstance(x, bytes) for x in reply)
        ):
            raise LinkError("PROTOCOL", "bad handshake reply")
        proto, pid, porigin, alias, addr, pnonce = reply[:6]
        if proto != str(PROTO_VERSION).encode():
            raise LinkError(
                "VERSION",
                f"peer speaks link protocol {esc(proto.decode('utf-8', 'replace'))}, this node {PROTO_VERSION}",
            )
        r = self.repl
        if len(reply) != 7:
            raise LinkError("PROTOCOL", "bad handshake reply")
        if reply[6] != str(len(r.ks.dbs)).encode():
            # (the listener refuses first; this holds against one that did not)
            raise LinkError(
                "DATABASES",
                f"the peer at {self.dial_addr} has databases"
                f" {esc(reply[6].decode('utf-8', 'replace'))}, this node {len(r.ks.dbs)}",
            )
        self.peer_id = int(pid)
        self.peer_origin = int(porigin)
        self.peer_alias = alias.decode("utf-8", "replace")
        self.peer_addr = addr.decode("utf-8", "replace")
        self.peer_nonce = bytes.fromhex(pnonce.decode())
        if len(self.peer_nonce) != 16:
            raise LinkError("PROTOCOL", "bad handshake reply")
        self.dialer_id = r.node_id
        if self.peer_id == r.node_id:
            raise LinkError(
                "DUPLICATE", f"peer at {self.dial_addr} has this node's own node_id {r.node_id}"
            )
        channel = r.norm_addr(self.dial_addr)
        if r.norm_addr(self.peer_addr) != channel:
            raise LinkError(
                "ADDRESS",
                f"dialed {self.dial_addr} but the node there advertises {esc(self.peer_addr)}",
            )
        self.transcript = transcript(self.hello, list(reply), channel.encode())
        pos_flags = POSF.pack(r.ks.vv_of(self.peer_origin), 1 if self.meet else 0)
        self.dproof = dialer_proof(r.secret, self.transcript, pos_flags)
        self.write_frame(F_AUTH, self.dproof + pos_flags)
        self.state = "pos"

    def _frames(self) -> None:
        rx = self.rx
        pos = 0
        n = len(rx)
        while n - pos >= 5 and not self.closed:
            ftype, ln = HDR.unpack_from(rx, pos)
            mac = self.rx_mac
            if mac is None:
                if ln > PRE_MAX_FRAME:
                    raise LinkError("PROTOCOL", f"frame of {ln} bytes before the proof")
                need = 5 + ln
            else:
                if ln > MAX_FRAME:
                    raise LinkError("PROTOCOL", f"frame of {ln} bytes")
                need = 5 + ln + TAG
            if n - pos < need:
                break
            payload = bytes(rx[pos + 5 : pos + 5 + ln])
            if mac is not None:
                h = mac.copy()
                h.update(SEQ.pack(self.rx_seq))
                h.update(rx[pos : pos + 5])
                h.update(payload)
                if not hmac.compare_digest(h.digest()[:TAG], bytes(rx[pos + 5 + ln : pos + need])):
                    raise LinkError("PROTOCOL", f"frame {self.rx_seq} failed authentication")
                self.rx_seq += 1
            pos += need
            self._frame(ftype, payload)
        if pos:
            del rx[:pos]

    def _frame(self, ftype: int, p: bytes) -> None:
        r = self.repl
        if not self.proven:
            self._handshake_frame(ftype, p)
            return
        if ftype == F_ERROR:
            text = p.decode("utf-8", "replace")
            code, _, msg = text.partition(" ")
            log.warning("link to %s closed by the peer: %s", self.describe(), esc(text))
            r.link_failed(self, code, msg, remote=True)
            self.close()
            return
        if self.state != "up":
            raise LinkError("PROTOCOL", f"frame {ftype} in state {self.state}")
        if ftype == F_BATCH:
            if self.decomp is None:
                self.decomp = lz4.frame.LZ4FrameDecompressor()
            # the frame says how much it holds: python-lz4's streaming
            # decompressor can return less than a flushed block holds when
            # max_length is left unbounded
            if len(p) < 4:
                raise LinkError("PROTOCOL", "short batch frame")
            (raw,) = struct.unpack_from("<I", p, 0)
            if raw > MAX_BATCH_RAW or raw > LZ4_MAX_RATIO * len(p) + 65536:
                raise LinkError("PROTOCOL", f"batch of {len(p)} bytes claims {raw} decompressed")
            data = self._decompress(p[4:], raw)
            if len(data) != raw:
                raise LinkError("PROTOCOL", f"batch of {raw} bytes decompressed to {len(data)}")
            if data:
                r.apply_batch(self, data)
        elif ftype == F_ACK:
            (u,) = struct.unpack("<Q", p)
            r.got_ack(self, u)
        elif ftype == F_HEARTBEAT:
            r.got_heartbeat(self, p)
        elif ftype == F_FLOOR:
            r.got_floor(self, p)
        elif ftype == F_GETACK:
            r.send_ack(self)
        elif ftype == F_SNAP_BEGIN:
            self.snap_point, self.snap_size = struct.unpack("<QQ", p)
            if self.snap_size > max_snapshot():
                raise LinkError(
                    "PROTOCOL",
                    f"snapshot of {self.snap_size} bytes (more than this machine's memory)",
                )
            self.snap_rx = bytearray()
            log.info("full sync from %s: receiving a snapshot", self.describe())
        elif ftype == F_SNAP_DATA:
            if self.snap_rx is None:
                raise LinkError("PROTOCOL", "snapshot data outside a snapshot")
            if len(self.snap_rx) + len(p) > self.snap_size:
                raise LinkError(
                    "PROTOCOL", f"snapshot data beyond the {self.snap_size} bytes declared"
                )
            self.snap_rx += p
        elif ftype == F_SNAP_END:
            if self.snap_rx is None:
                raise LinkError("PROTOCOL", "snapshot end outside a snapshot")
            if len(self.snap_rx) != self.snap_size:
                raise LinkError(
                    "PROTOCOL",
                    f"snapshot of {len(self.snap_rx)} bytes, {self.snap_size} declared",
                )
            data = bytes(self.snap_rx)
            self.snap_rx = None
            r.apply_snapshot(self, data)
        elif ftype == F_PUBLISH:
            r.got_publish(self, p)
        elif ftype == F_FULLSYNC_REQ:
            r.start_full_sync(self, "requested by the peer")
        elif ftype == F_TIME:
            r.got_time(self, p)
        else:
            raise LinkError("PROTOCOL", f"unknown frame type {ftype}")

    def _decompress(self, comp: bytes, raw: int) -> bytes:
        d = self.decomp
        assert d is not None
        try:
            out = [d.decompress(comp, max_length=min(raw, DECOMP_STEP))]
            got = len(out[0])
            while got < raw:
                more = d.decompress(b"", max_length=min(raw - got, DECOMP_STEP))
                if not more:
                    break
                out.append(more)
                got += len(more)
        except RuntimeError as e:  # lz4: the data does not decode
            raise LinkError("PROTOCOL", f"batch does not decompress: {esc(str(e))}") from None
        return out[0] if len(out) == 1 else b"".join(out)

    def _handshake_frame(self, ftype: int, p: bytes) -> None:
        """A frame before the peer has proven the secret: only the one the
        handshake expects is acted on. An ERROR frame here is unauthenticated:
        it ends the handshake and changes nothing else (never FORGOTTEN)."""
        r = self.repl
        if ftype == F_ERROR:
            text = p.decode("utf-8", "replace")
            code = text.partition(" ")[0]
            raise LinkError(
                code if code in REFUSAL_CODES else "REFUSED",
                f"the peer ended the handshake: {esc(text)}",
            )
        if self.state == "auth":
            if ftype != F_AUTH or len(p) != PROOF + POSF.size:
                raise LinkError("PROTOCOL", "expected AUTH")
            pos_flags = p[PROOF:]
            want = dialer_proof(r.secret, self.transcript, pos_flags)
            if not hmac.compare_digest(p[:PROOF], want):
                raise LinkError("SECRET", "the peer does not know this node's cluster_secret")
            self.peer_pos, flags = POSF.unpack(pos_flags)
            self.meet = bool(flags & 1)
            mine = POSF.pack(r.ks.vv_of(self.peer_origin), 0)
            self.write_frame(
                F_POS, listener_proof(r.secret, self.transcript, p[:PROOF], mine) + mine
            )
            self._up()
            return
        if self.state == "pos":
            if ftype != F_POS or len(p) != PROOF + POSF.size:
                raise LinkError("PROTOCOL", "expected POS")
            want = listener_proof(r.secret, self.transcript, self.dproof, p[PROOF:])
            if not hmac.compare_digest(p[:PROOF], want):
                raise LinkError("SECRET", "the peer does not know this node's cluster_secret")
            self.peer_pos, _flags = POSF.unpack_from(p, PROOF)
            self._up()
            return
        raise LinkError("PROTOCOL", f"frame {ftype} in state {self.state}")

    def _up(self) -> None:
        self._keys()
        self._release_client()
        self.state = "up"
        self.repl.link_up(self)

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
        who = f"{esc(self.peer_alias, 64) or '?'}({self.peer_id or '?'})"
        return f"{who}@{esc(self.peer_addr or self.dial_addr, 80)}"


def _resp(args: list[bytes]) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)
