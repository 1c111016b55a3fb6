"""The node's side of the group: members, links, streams, full syncs, acks,
heartbeats, GC's stable point, and the commands MEET FORGET NODES WAIT
CRDT.DIGEST (docs/replication.md, which also has the wire format)."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import random
import socket
import ssl
import struct
import time
from typing import Any, Callable, Optional

from constdb._core import keyspace, snapshot
from constdb._core.clock import now_ms, uuid_limit
from constdb._core.codec import RespError, Status
from constdb._core.protocol import NO_REPLY
from constdb.commands.common import int_arg, ms_timeout
from constdb.functions import FunctionStore
from constdb.replication import clocksync
from constdb.replication.link import (
    F_ACK,
    F_FLOOR,
    F_FULLSYNC_REQ,
    F_GETACK,
    F_HEARTBEAT,
    F_PUBLISH,
    F_SNAP_BEGIN,
    F_SNAP_DATA,
    F_SNAP_END,
    F_TIME,
    HIGH_WATER,
    PROTO_VERSION,
    Link,
    LinkError,
    esc,
)
from constdb.replication.membership import (
    ACTIVE,
    FORGOTTEN,
    Membership,
    decode_change,
    encode_change,
)
from constdb.tls import peer_verified

log = logging.getLogger("constdb")

# a PUBLISH frame: u8 shard (0 or 1), u32 channel length, channel, message
PUB_HDR = struct.Struct("<BI")
PUB_QUEUE_MAX = 32 * 1024 * 1024  # bytes of messages a link may hold back
SMALL_SNAPSHOT_KEYS = 20_000  # below this a snapshot is taken in-process (no fork)
BACKOFF_MIN = 0.2
BACKOFF_MAX = 30.0
HANDSHAKE_TIMEOUT = 10.0
# an inbound link must prove the secret this soon after CDB.LINK (it is
# counted as a client until then, as Redis counts unauthenticated clients)
PRE_PROOF_TIMEOUT = 5.0
# one log line per (peer host, reason) of failed handshakes per this many
# seconds; the next line says how many were suppressed
FAIL_LOG_EVERY = 10.0
ALIAS_MAX = 128
# the backlog's size while the node has no peer and no link: nothing will read
# what it holds (a node that joins later starts with a full sync); two of its
# 64 KB chunks, and a record longer than that on its own
LONE_BACKLOG_LIMIT = 128 << 10


def encode_vv(vv: dict[int, int]) -> bytes:
    """u32 n, n x (u64 origin, u64 uuid)."""
    return struct.pack("<I", len(vv)) + b"".join(struct.pack("<QQ", o, u) for o, u in vv.items())


def decode_vv(p: bytes, what: str) -> dict[int, int]:
    """encode_vv's output; LinkError (PROTOCOL) unless it is exactly that."""
    if len(p) < 4:
        raise LinkError("PROTOCOL", f"{what} of {len(p)} bytes")
    (n,) = struct.unpack_from("<I", p, 0)
    if len(p) != 4 + 16 * n:
        raise LinkError("PROTOCOL", f"{what} of {len(p)} bytes for {n} entries")
    return {o: u for o, u in struct.iter_unpack("<QQ", p[4:])}


def stable_of(
    floors: list[dict[int, int]], applied: list[dict[int, int]], current: set[int]
) -> int:
    """The stable point from every active member's restart floor and applied
    VV (docs/crdt.md section 6): every member would come back from a crash
    with every effect of every current origin up to it, and with every
    effect of a retired origin up to it unless every floor already holds all
    that any member applied of that origin (an origin that streams no more
    sends nothing new; a removal it made is then in every floor)."""
    best = min(f.get(o, 0) for f in floors for o in current)
    retired: set[int] = set()
    for v in (*floors, *applied):
        retired.update(v)
    for o in retired - current:
        low = min(f.get(o, 0) for f in floors)
        if low < max(a.get(o, 0) for a in applied):
            best = min(best, low)
    return best


class Peer:
    def __init__(self, node_id: int):
        self.node_id = node_id
        self.link: Optional[Link] = None
        self.dialing = False
        self.backoff = BACKOFF_MIN
        self.next_dial = 0.0
        self.last_error = ""
        self.full_syncs = 0
        self.partial_syncs = 0
        self.vv: dict[int, int] = {}  # the peer's VV as it last reported it
        self.floor: dict[int, int] = {}  # the peer's restart floor, as last reported
        self.up_since = 0.0
        self.refused = False  # stop dialing (FORGOTTEN)
        self.clock = clocksync.PeerClock()  # its wall clock's offset from this node's


class SnapshotJob:
    """One snapshot being taken (shared by every link that needs one)."""

    def __init__(self, point_uuid: int, point_off: int, fut: asyncio.Future):
        self.point_uuid = point_uuid
        self.point_off = point_off
        self.fut = fut


def parse_addr(addr: str) -> tuple[str, int]:
    """'host:port' or '[v6]:port' -> (host, port); ValueError if malformed."""
    addr = addr.strip()
    if addr.startswith("["):
        host, sep, port = addr[1:].partition("]:")
        if not sep:
            raise ValueError(addr)
    else:
        host, sep, port = addr.rpartition(":")
        if not sep or not host:
            raise ValueError(addr)
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(addr)
    if not host or any(c.isspace() for c in host):
        raise ValueError(addr)
    if ":" in host:
        ipaddress.IPv6Address(host)
    return host, int(port)


LONG_BACKOFF = (
    "SECRET",
    "VERSION",
    "DUPLICATE",
    "AUTH",
    "NOSECRET",
    "ADDRESS",
    "CLOCK",
    "DATABASES",
)


def peer_host(transport: Any) -> str:
    try:
        return str(transport.get_extra_info("peername")[0])
    except Exception:
        return "?"


def fmt_addr(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def is_loopback(ip: str) -> bool:
    if ip == "localhost":
        return True
    try:
        return ipaddress.ip_address(ip).is_loopback
    except ValueError:
        return False


class Replication:
    def __init__(self, app: Any):
        self.pubsub_dropped = 0  # messages not sent to a peer that did not read
        self.app = app
        self.ks = app.ks
        self.backlog = app.backlog
        self.node_id: int = app.node_id
        self.alias: str = app.alias
        self.members = Membership()
        self.peers: dict[int, Peer] = {}
        self.loop: Optional[asyncio.AbstractEventLoop] = None
        self.pump_scheduled = False
        self.waiters: list[tuple[Any, int, int, Optional[asyncio.TimerHandle]]] = []
        self.job: Optional[SnapshotJob] = None
        self.forgotten = False
        self.stable = 0
        self.gc_dropped = 0
        self.clock_drift_refusals = 0
        self.gc_pos = 0
        self.task: Optional[asyncio.Task] = None
        self.links: set[Link] = set()
        self.fail_log: dict[tuple[str, str], list[float]] = {}
        self.backlog_limit = app.cfg.repl_backlog_limit  # as the App set it
        # this node's earlier origins (a restart that took a fresh one): its
        # own clock wrote their TTL deadlines
        self.own_origins: set[int] = set()
        self.ks.on_member = self.on_member

    # ---- config -------------------------------------------------------------------

    @property
    def secret(self) -> bytes:
        return self.app.cfg.cluster_secret.encode()

    def uuid_limit(self) -> int:
        """The largest clock a peer may send now (max_clock_drift ahead of
        this node's wall clock)."""
        return uuid_limit(now_ms(), self.app.cfg.max_clock_drift)

    def check_clock(self, u: int) -> None:
        """A clock a peer sent, before it is folded anywhere: a LinkError
        (CLOCK) when it is too far ahead."""
        try:
            self.ks.check_uuid(u, self.uuid_limit())
        except keyspace.ClockDriftError as e:
            self.clock_drift_refusals += 1
            raise LinkError(
                "CLOCK", f"{e} (max_clock_drift {self.app.cfg.max_clock_drift})"
            ) from None

    def norm_addr(self, addr: str) -> str:
        """addr as parse_addr and fmt_addr spell it (itself if malformed)."""
        try:
            return fmt_addr(*parse_addr(addr))
        except ValueError:
            return addr

    def link_refusal(self) -> Optional[str]:
        """Why this node takes part in no link (protected mode), or None: a
        node whose client port is reachable from other hosts needs a
        cluster_secret before it links, as Redis's protected mode refuses
        outside clients without a password."""
        cfg = self.app.cfg
        if cfg.cluster_secret or is_loopback(cfg.ip):
            return None
        return (
            f"NOSECRET this node listens on {cfg.ip} (not only loopback) and has no"
            " cluster_secret: it refuses replication links; set cluster_secret on every"
            " member (constdb-server --gen-secret prints one)"
        )

    def advertised_addr(self) -> str:
        if self.app.cfg.advertise_addr:
            return self.app.cfg.advertise_addr
        ip = self.app.cfg.ip
        if ip in ("*", "0.0.0.0", "::"):
            try:
                ip = socket.gethostbyname(socket.gethostname())
            except OSError:
                ip = "127.0.0.1"
        # with tls_replication peers dial the TLS port
        cfg = self.app.cfg
        return fmt_addr(ip, cfg.tls_port if cfg.tls_replication else cfg.port)

    # ---- lifecycle ------------------------------------------------------------------

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        refusal = self.link_refusal()
        if refusal is not None:
            log.warning("replication links disabled: %s", refusal.partition(" ")[2])
        self.app.srv.on_backlog = self.schedule_pump
        me = self.members.get(self.node_id)
        addr = self.advertised_addr()
        if (
            me is None
            or not me.active
            or me.alias != self.alias
            or me.addr != addr
            or me.origin != self.ks.node_id
        ):
            self.ks.emit_member(
                encode_change(self.node_id, ACTIVE, self.alias, addr, self.ks.node_id)
            )
        for m in self.members.active():
            if m.node_id != self.node_id:
                self.peer(m.node_id)
        self.update_clock_skew()
        self.task = loop.create_task(self._periodic())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
        for link in list(self.links):
            link.close()

    def peer(self, node_id: int) -> Peer:
        p = self.peers.get(node_id)
        if p is None:
            p = self.peers[node_id] = Peer(node_id)
        return p

    # ---- membership -----------------------------------------------------------------

    def on_member(self, by: int, uuid: int, payload: bytes) -> None:
        node_id, state, alias, addr, origin = decode_change(payload)
        m = self.members.apply(by, uuid, node_id, state, alias, addr, origin)
        if m is not None:
            self._member_changed(m, by)

    def size_backlog(self) -> None:
        """The backlog holds repl_backlog_limit bytes while this node has a peer
        or a link, and at most LONE_BACKLOG_LIMIT while it is alone: records
        no peer will read are not kept (as Redis keeps no replication backlog
        without replicas). It grows before the first link streams from it."""
        limit = self.app.cfg.repl_backlog_limit
        alone = not self.links and not any(m.node_id != self.node_id for m in self.members.active())
        # a node alone folds its bit writes at once (docs/crdt.md section 3.1, "Bits")
        self.ks.solo = alone
        if alone:
            limit = min(limit, LONE_BACKLOG_LIMIT)
        if limit != self.backlog_limit:
            self.backlog_limit = limit
            self.backlog.set_limit(limit)

    def _member_changed(self, m: Any, by: int) -> None:
        self.size_backlog()
        if m.node_id == self.node_id:
            if not m.active and by != self.ks.node_id:
                self._forgotten_by(by)
            return
        if m.active:
            p = self.peer(m.node_id)
            p.refused = False
            if p.link is None:
                p.next_dial = 0.0
                self._dial_due()
        else:
            p = self.peers.pop(m.node_id, None)
            if p is not None and p.link is not None:
                p.link.close("FORGOTTEN", f"node {m.node_id} was removed from the group")
            for link in list(self.links):
                if link.peer_id == m.node_id:
                    link.close("FORGOTTEN", f"node {m.node_id} was removed from the group")

    def _forgotten_by(self, origin: int) -> None:
        if self.forgotten:
            return
        log.warning(
            "this node was removed from the group (FORGET on node %d); it stops dialing", origin
        )
        self.forgotten = True
        for link in list(self.links):
            link.close()

    def meta_blob(self) -> bytes:
        """A snapshot's metadata: the membership, then the function libraries."""
        return self.members.encode() + self.app.functions.encode()

    def merge_members(self, meta: bytes) -> None:
        """A snapshot's metadata: its membership and its function libraries
        (both decoded before either is merged; ValueError if malformed)."""
        members, rest = Membership.decode_split(meta)
        regs = FunctionStore.decode(rest)
        for m in members:
            got = self.members.apply(m.by, m.uuid, m.node_id, m.state, m.alias, m.addr, m.origin)
            if got is not None:
                self._member_changed(got, m.by)
        self.app.functions.merge(regs)

    # ---- dialing --------------------------------------------------------------------

    def _dial_due(self) -> None:
        if self.forgotten or self.loop is None:
            return
        now = time.monotonic()
        for p in list(self.peers.values()):
            m = self.members.get(p.node_id)
            if m is None or not m.active or p.link is not None or p.dialing or p.refused:
                continue
            if now < p.next_dial:
                continue
            p.dialing = True
            self.loop.create_task(self._dial(p, m.addr))

    async def _dial(self, p: Peer, addr: str) -> None:
        try:
            await self.connect(addr, meet=False, expect=p.node_id)
        except Exception as e:
            self._backoff(p, f"dial {addr}: {e}")
        finally:
            p.dialing = False

    def _backoff(self, p: Peer, err: str, long: bool = False) -> None:
        p.last_error = err
        p.backoff = BACKOFF_MAX if long else min(BACKOFF_MAX, max(BACKOFF_MIN, p.backoff * 2))
        p.next_dial = time.monotonic() + p.backoff * random.uniform(0.75, 1.25)

    async def connect(self, addr: str, meet: bool, expect: int = 0) -> Link:
        """Dial addr and complete the handshake; returns the link once up."""
        assert self.loop is not None
        refusal = self.link_refusal()
        if refusal is not None:
            raise ConnectionError(refusal)
        host, port = parse_addr(addr)
        fut = self.loop.create_future()

        def factory() -> Link:
            link = Link(self, True, meet, addr)
            link.expect = expect
            link.waiter = fut
            self.links.add(link)
            self.size_backlog()
            return link

        tls = self.app.tls.dial if self.app.tls is not None else None
        if tls is None:
            conn = self.loop.create_connection(factory, host, port)
        else:  # tls_replication: mutual TLS, each side verifies the other's certificate
            conn = self.loop.create_connection(
                factory, host, port, ssl=tls, ssl_handshake_timeout=HANDSHAKE_TIMEOUT
            )
        try:
            transport, link = await asyncio.wait_for(conn, HANDSHAKE_TIMEOUT)
        except ssl.SSLError as e:
            reason = (e.reason or str(e)).lower().replace("_", " ")
            self.log_failure(host, "TLS", f"TLS link to {esc(addr)} failed: {reason}")
            raise ConnectionError(f"TLS handshake failed: {reason}") from None
        try:
            await asyncio.wait_for(asyncio.shield(fut), HANDSHAKE_TIMEOUT)
        except asyncio.TimeoutError:
            link.close("TIMEOUT", "handshake timed out")
            raise ConnectionError("handshake timed out") from None
        return link

    # ---- links ----------------------------------------------------------------------

    def accept_link(self, client: Any, argv: list[bytes]) -> Any:
        """CDB.LINK on a client connection: answer the hello and turn the
        connection into a link (still counted as a client until the dialer
        proves the secret)."""
        if len(argv) not in (8, 9):  # (8: link protocol 3 and older)
            raise RespError("ERR wrong number of arguments for 'cdb.link' command")
        host = peer_host(client.transport)
        refusal = self.link_refusal()
        pid = porigin = 0
        alias = addr = ""
        pnonce = b""
        meet = False
        dbs = 0
        if refusal is None:
            try:
                proto = int(argv[1])
                if len(argv) == 9:
                    dbs = int(argv[8])
                elif proto == PROTO_VERSION:
                    raise ValueError("no databases")
                pid = int(argv[2])
                porigin = int(argv[3])
                alias = argv[4].decode("utf-8")
                addr = argv[5].decode("ascii")
                pnonce = bytes.fromhex(argv[6].decode("ascii"))
                meet = argv[7] == b"1"
                parse_addr(addr)
                if (
                    not 0 < pid < 2**63
                    or not 0 <= porigin < 2**64
                    or len(pnonce) != 16
                    or len(argv[4]) > ALIAS_MAX
                    or not alias.isprintable()
                ):
                    raise ValueError("out of range")
            except ValueError:
                refusal = "PROTOCOL malformed CDB.LINK"
        if refusal is None and self.app.cfg.tls_replication and not peer_verified(client.transport):
            refusal = (
                "TLS links need a TLS connection with a certificate signed by the CA"
                " (tls_replication)"
            )
        if refusal is None:
            if proto != PROTO_VERSION:
                refusal = f"VERSION link protocol {proto} is not {PROTO_VERSION}"
            elif dbs != len(self.ks.dbs):
                # every member holds the same numbered dbs: a peer's SELECT,
                # MOVE or SWAPDB record names dbs this node must have
                refusal = (
                    f"DATABASES the listener has databases {len(self.ks.dbs)}, the dialer {dbs}:"
                    " every member needs the same setting"
                )
            elif pid == self.node_id:
                refusal = f"DUPLICATE node_id {pid} is this node's own"
            else:
                m = self.members.get(pid)
                if m is not None and not m.active and not meet:
                    refusal = f"FORGOTTEN node {pid} was removed from the group"
                elif self.forgotten and not meet:
                    refusal = "FORGOTTEN this node was removed from the group"
        if refusal is not None:
            code = refusal.partition(" ")[0]
            if code != "FORGOTTEN":
                self.log_failure(host, code, f"refused a link from {esc(host)}: {refusal}")
            client.write_reply(RespError("ERR " + refusal))
            client.close()
            return NO_REPLY
        link = Link(self, False, meet, addr)
        self.links.add(link)
        self.size_backlog()
        adv = self.advertised_addr()
        reply = [
            str(PROTO_VERSION).encode(),
            str(self.node_id).encode(),
            str(self.ks.node_id).encode(),
            self.alias.encode(),
            adv.encode(),
            link.nonce.hex().encode(),
            str(len(self.ks.dbs)).encode(),
        ]
        client.block()  # runs no more requests: the connection is a link now
        client.write_reply(reply)
        link.attach_inbound(
            client,
            argv,
            reply,
            self.norm_addr(adv).encode(),
            pid,
            porigin,
            alias,
            addr,
            pnonce,
            PRE_PROOF_TIMEOUT,
        )
        return NO_REPLY

    def log_failure(self, host: str, code: str, line: str) -> None:
        """A failed handshake's log line, at most one per (peer host, code)
        every FAIL_LOG_EVERY seconds."""
        now = time.monotonic()
        key = (host, code)
        ent = self.fail_log.get(key)
        if ent is not None and now - ent[0] < FAIL_LOG_EVERY:
            ent[1] += 1
            return
        if len(self.fail_log) > 1024:
            self.fail_log.clear()
        self.fail_log[key] = [now, 0]
        n = int(ent[1]) if ent is not None else 0
        log.warning("%s%s", line, f" ({n} similar lines suppressed)" if n else "")

    def link_up(self, link: Link) -> None:
        pid = link.peer_id
        m = self.members.get(pid)
        if m is not None and not m.active and not link.meet:
            link.close("FORGOTTEN", f"node {pid} was removed from the group")
            return
        if link.meet and self.forgotten:
            log.info("rejoining the group through %s", link.describe())
            self.forgotten = False
        p = self.peer(pid)
        old = p.link
        if old is not None and not old.closed:
            keep_new = link.dialer_id == min(self.node_id, pid)
            if not keep_new:
                link.close("DUPLINK", "a link between these nodes exists")
                self._resolve(link, None)
                return
            old.close("DUPLINK", "replaced by a link dialed by the smaller node_id")
        p.link = link
        p.up_since = time.monotonic()
        p.backoff = BACKOFF_MIN
        p.last_error = ""
        p.refused = False
        # measure the peer's clock at once (one round trip), then with every heartbeat
        p.clock.reset_link()
        p.clock.origins.add(link.peer_origin)
        link.write_frame(F_TIME, p.clock.frame(answer=True))
        if (
            m is None
            or not m.active
            or m.alias != link.peer_alias
            or m.addr != link.peer_addr
            or m.origin != link.peer_origin
        ):
            self.ks.emit_member(
                encode_change(pid, ACTIVE, link.peer_alias, link.peer_addr, link.peer_origin)
            )
        log.info("link up with %s (%s)", link.describe(), "dialed" if link.outbound else "accepted")
        pos = link.peer_pos
        # An idle node's heartbeats hand out clock readings that move its
        # peers' VV past its last record (own_last); its clock, kept in the
        # final snapshot, covers them, and no record of its own lies between.
        if pos > self.ks.own_last and pos > self.ks.clock.last:
            # the peer has applied more of this origin's stream than this node
            # has (cannot happen: an incarnation without its history takes a
            # fresh origin); never reuse those uuids, and get the state back
            log.warning(
                "peer %s has applied this node's stream up to %d, this node only %d: asking for a full sync",
                link.describe(),
                pos,
                self.ks.own_last,
            )
            self.check_clock(pos)
            self.ks.clock.observe(pos)
            link.write_frame(F_FULLSYNC_REQ)
            pos = 0
        off = self.backlog.offset_after(pos) if pos else -1
        if off < 0:
            self.start_full_sync(
                link, f"position {pos} outside the backlog" if pos else "first contact"
            )
        else:
            link.off = off
            link.sent = pos
            link.acked = pos
            link.sent_seq = link.acked_seq = self.backlog.nrec_total - self._count_from(off)
            p.partial_syncs += 1
            log.info("partial sync to %s from %d", link.describe(), pos)
            self.schedule_pump()
        self._resolve(link, link)

    def _count_from(self, off: int) -> int:
        n = 0
        while True:
            got = self.backlog.read_at(off, 1 << 30)
            if not got or not got[0]:
                return n
            off = got[1]
            n += got[3]

    def _resolve(self, link: Link, value: Any) -> None:
        fut = link.waiter
        link.waiter = None
        if fut is not None and not fut.done():
            if value is None:
                fut.set_exception(ConnectionError("link not kept"))
            else:
                fut.set_result(value)

    def link_lost(self, link: Link, exc: Optional[BaseException]) -> None:
        self.links.discard(link)
        fut = link.waiter
        if fut is not None and not fut.done():
            fut.set_exception(
                ConnectionError(
                    link.repl_error if hasattr(link, "repl_error") else "connection closed"
                )
            )
        p = self.peers.get(link.peer_id)
        if p is not None and p.link is link:
            p.link = None
            if not p.last_error:
                p.last_error = f"link lost: {exc}" if exc else "link closed"
            self._backoff(p, p.last_error)
            log.info("link down with %s", link.describe())
        self._check_waiters()

    def link_failed(self, link: Link, code: str, msg: str, remote: bool = False) -> None:
        link.repl_error = f"{code} {msg}"  # type: ignore[attr-defined]
        if code == "DUPLINK":
            return
        if not link.proven:
            # a failed handshake: nothing the peer claimed is trusted; a
            # dialed link's peer (as membership knows it) backs off
            p = self.peers.get(link.expect) if link.outbound and link.expect else None
            if p is not None:
                self._backoff(p, f"{code} {msg}", long=code in LONG_BACKOFF)
            host = peer_host(link.transport) if not link.outbound else link.dial_addr
            self.log_failure(
                host,
                code,
                f"link handshake {'to' if link.outbound else 'from'} {link.describe()}"
                f" failed: {code} {msg}",
            )
            return
        p = self.peers.get(link.peer_id)
        if remote and code == "FORGOTTEN":
            self._forgotten_by(link.peer_id)
            return
        if p is not None:
            self._backoff(p, f"{code} {msg}", long=code in LONG_BACKOFF)
        log.warning("link %s: %s %s", link.describe(), code, esc(msg))

    # ---- streaming ----------------------------------------------------------------------

    def schedule_pump(self) -> None:
        if not self.pump_scheduled and self.loop is not None:
            self.pump_scheduled = True
            self.loop.call_soon(self.pump)

    def pump(self) -> None:
        self.pump_scheduled = False
        bl = self.backlog
        end = bl.end_off
        for p in self.peers.values():
            link = p.link
            if link is None or link.closed or link.syncing or link.off < 0:
                continue
            while link.off < end and not link.paused and link.buffered() < HIGH_WATER:
                got = bl.read_at(link.off, 256 * 1024)
                if got is None:
                    self.start_full_sync(link, "fell out of the backlog")
                    break
                data, off, last, n = got
                if not data:
                    break
                link.send_batch(data)
                link.off = off
                link.sent = last
                link.sent_seq += n
                link.batches.append((last, link.sent_seq))
            while link.pubs and link.pubs[0][0] <= link.off:
                payload = link.pubs.popleft()[1]
                link.pub_bytes -= len(payload)
                link.write_frame(F_PUBLISH, payload)

    # ---- Pub/Sub across the group ----------------------------------------------------------

    def publish(self, shard: bool, channel: bytes, message: bytes) -> None:
        """A message PUBLISHed here goes to every member the link to which is
        up, after the records this node wrote before it (so a subscriber
        there that reads the data finds it); a member that is down misses it
        (Pub/Sub is fire and forget, as in Redis). A link whose queue of
        messages passes PUB_QUEUE_MAX (a peer that does not read) drops them."""
        payload = PUB_HDR.pack(1 if shard else 0, len(channel)) + channel + message
        at = self.backlog.end_off
        for p in self.peers.values():
            link = p.link
            if link is None or link.closed or link.state != "up":
                continue
            if link.pub_bytes + len(payload) > PUB_QUEUE_MAX:
                self.pubsub_dropped += 1
                continue
            link.pubs.append((at, payload))
            link.pub_bytes += len(payload)
        self.schedule_pump()

    def got_publish(self, link: Link, p: bytes) -> None:
        if len(p) < PUB_HDR.size:
            raise LinkError("PROTOCOL", f"publish frame of {len(p)} bytes")
        shard, n = PUB_HDR.unpack_from(p, 0)
        if shard > 1 or n > len(p) - PUB_HDR.size:
            raise LinkError("PROTOCOL", "bad publish frame")
        start = PUB_HDR.size
        self.app.pubsub.from_peer(bool(shard), p[start : start + n], p[start + n :])

    def apply_batch(self, link: Link, data: bytes) -> None:
        """A peer's batch, all or nothing: every record is checked (framing,
        values, clocks) before any is applied."""
        try:
            self.ks.apply_records(link.peer_origin, data, self.uuid_limit(), True)
        except keyspace.ClockDriftError as e:
            self.clock_drift_refusals += 1
            raise LinkError(
                "CLOCK", f"{e} (max_clock_drift {self.app.cfg.max_clock_drift})"
            ) from None
        except ValueError as e:
            raise LinkError("PROTOCOL", f"bad batch: {e}") from None
        if self.app.srv.monitor is not None:
            self.app.monitor.feed_records(link.peer_alias, data)
        # over maxmemory: the batch is applied, then this node evicts (never refuses it)
        self.app.memory.after_peer_batch()
        if not link.ack_scheduled and self.loop is not None:
            link.ack_scheduled = True
            self.loop.call_later(0.005, self._ack_later, link)

    def _ack_later(self, link: Link) -> None:
        link.ack_scheduled = False
        self.send_ack(link)

    def send_ack(self, link: Link) -> None:
        if link.state == "up" and not link.closed:
            link.write_frame(F_ACK, struct.pack("<Q", self.ks.vv_of(link.peer_origin)))

    def got_ack(self, link: Link, u: int) -> None:
        if u > link.acked:
            link.acked = u
        while link.batches and link.batches[0][0] <= link.acked:
            link.acked_seq = link.batches.popleft()[1]
        if link.acked >= link.sent and not link.batches:
            link.acked_seq = link.sent_seq
        if self.waiters:
            self._check_waiters()

    def got_heartbeat(self, link: Link, p: bytes) -> None:
        clock, n = struct.unpack_from("<QI", p, 0)
        if len(p) != 12 + 16 * n:
            raise LinkError("PROTOCOL", f"heartbeat of {len(p)} bytes for {n} entries")
        if clock:
            self.check_clock(clock)
            self.ks.advance_vv(link.peer_origin, clock)
        vv = {}
        pos = 12
        for _ in range(n):
            node, u = struct.unpack_from("<QQ", p, pos)
            pos += 16
            vv[node] = u
        peer = self.peers.get(link.peer_id)
        if peer is not None:
            peer.vv = vv
        self._anti_entropy(link, vv)

    def got_floor(self, link: Link, p: bytes) -> None:
        """FLOOR: the peer's restart floor (docs/replication.md section 7),
        checked whole before it is kept: the size, then every clock against
        max_clock_drift (a floor is never folded into the clock)."""
        floor = decode_vv(p, "floor")
        for u in floor.values():
            self.check_clock(u)
        peer = self.peers.get(link.peer_id)
        if peer is not None:
            peer.floor = floor

    def _heartbeat(self, link: Link) -> None:
        caught_up = (
            not link.syncing
            and link.off >= 0
            and link.off >= self.backlog.end_off
            and not self.backlog.grouping
        )
        # every effect this node made is sent: say so with a fresh clock
        # reading, so an idle node still moves its peers' VV (docs/crdt.md section 2)
        clock = self.ks.clock.next() if caught_up else 0
        vv = self.my_vv()
        body = struct.pack("<QI", clock, len(vv)) + b"".join(
            struct.pack("<QQ", k, v) for k, v in vv.items()
        )
        link.write_frame(F_HEARTBEAT, body)
        link.write_frame(F_FLOOR, encode_vv(self.app.persistence.restart_floor()))
        p = self.peers.get(link.peer_id)
        if p is not None:
            link.write_frame(F_TIME, p.clock.frame())
        self.send_ack(link)

    # ---- the peers' clocks (clocksync.py, docs/replication.md section 8) --------------------

    def got_time(self, link: Link, payload: bytes) -> None:
        p = self.peers.get(link.peer_id)
        if p is None or p.link is not link:
            return
        try:
            sample, answer = p.clock.got(payload)
        except (struct.error, ValueError) as e:
            raise LinkError("PROTOCOL", f"bad TIME frame: {e}") from None
        if answer:
            link.write_frame(F_TIME, p.clock.frame())
        if sample is None:
            return
        est = p.clock.estimate()
        assert est is not None
        cfg = self.app.cfg
        if clocksync.surely_beyond(est[0], est[1], cfg.max_clock_drift):
            self.clock_drift_refusals += 1
            raise LinkError(
                "CLOCK",
                f"the peer's clock is {clocksync.describe(*est)}:"
                f" beyond max_clock_drift {cfg.max_clock_drift} ms",
            )
        now = time.monotonic()
        if (
            cfg.clock_drift_warn
            and clocksync.surely_beyond(est[0], est[1], cfg.clock_drift_warn)
            and now - p.clock.last_warn >= clocksync.WARN_EVERY
        ):
            p.clock.last_warn = now
            log.warning(
                "clock of %s is %s (clock_drift_warn %d ms, max_clock_drift %d ms):"
                " synchronize the group's clocks (NTP)",
                link.describe(),
                clocksync.describe(*est),
                cfg.clock_drift_warn,
                cfg.max_clock_drift,
            )
        self.update_clock_skew()

    def update_clock_skew(self) -> None:
        """The keyspace's table of TTL deadline adjustments by origin
        (docs/crdt.md section 6): for each peer's origins, from its measured
        offset and bound (grown until the next update); this node's earlier
        origins 0; every other origin max_clock_drift."""
        adj = dict.fromkeys(self.own_origins, 0)
        now = time.monotonic()
        slack = int(self.app.cfg.replica_heartbeat_frequency * clocksync.DRIFT_US_PER_S) + 1000
        for nid, p in self.peers.items():
            m = self.members.get(nid)
            if m is not None and m.origin:
                p.clock.origins.add(m.origin)
            est = p.clock.estimate(now)
            if est is None:
                continue
            a = clocksync.deadline_adjust_ms(est[0], est[1] + slack)
            for o in p.clock.origins:
                adj[o] = a
        adj.pop(self.ks.node_id, None)
        self.ks.set_clock_skew(adj, self.app.cfg.max_clock_drift)

    # ---- full sync --------------------------------------------------------------------------

    def start_full_sync(self, link: Link, reason: str) -> None:
        if link.syncing or link.closed or self.loop is None:
            return
        link.syncing = True
        log.info("full sync to %s (%s)", link.describe(), reason)
        self.loop.create_task(self._full_sync(link))

    async def _full_sync(self, link: Link) -> None:
        try:
            job = self.snapshot_job()
            try:
                path_or_data = await asyncio.shield(job.fut)
            except RuntimeError as e:  # the snapshot child failed (its own log says why)
                log.error("full sync to %s failed: %s", link.describe(), e)
                link.close("SYNC", f"full sync failed: {e}")
                return
            if link.closed:
                return
            data = path_or_data if isinstance(path_or_data, bytes) else None
            size = len(data) if data is not None else os.path.getsize(path_or_data)
            link.write_frame(F_SNAP_BEGIN, struct.pack("<QQ", job.point_uuid, size))
            chunk = 256 * 1024
            if data is not None:
                for i in range(0, len(data), chunk):
                    await self._drain(link)
                    link.write_frame(F_SNAP_DATA, data[i : i + chunk])
            else:
                with open(path_or_data, "rb") as f:
                    while True:
                        block = f.read(chunk)
                        if not block:
                            break
                        await self._drain(link)
                        link.write_frame(F_SNAP_DATA, block)
            link.write_frame(F_SNAP_END)
            link.off = job.point_off
            link.sent = job.point_uuid
            link.acked = min(link.acked, job.point_uuid)
            link.sent_seq = link.acked_seq = (
                self.backlog.nrec_total - self._count_from(job.point_off)
                if job.point_off >= self.backlog.base_off
                else self.backlog.nrec_total
            )
            link.batches.clear()
            p = self.peers.get(link.peer_id)
            if p is not None:
                p.full_syncs += 1
            log.info("full sync to %s sent (%d bytes)", link.describe(), size)
        except ConnectionError as e:
            # an expected link event (the link dropped mid-transfer): one
            # line; the peer is sent a full sync again when it is back
            log.warning("full sync to %s cut: %s", link.describe(), e)
        except Exception as e:  # a bug: keep its traceback
            log.exception("full sync to %s failed", link.describe())
            link.close("SYNC", f"full sync failed: {e}")
        finally:
            link.syncing = False
            self.schedule_pump()

    async def _drain(self, link: Link) -> None:
        while not link.closed and (link.paused or link.buffered() > HIGH_WATER):
            await asyncio.sleep(0.005)
        if link.closed:
            raise ConnectionError("link closed during the snapshot")

    def snapshot_job(self) -> SnapshotJob:
        """The snapshot being taken, or a new one. Small data sets are dumped
        in-process; large ones by a forked child (copy-on-write, as Redis's
        BGSAVE), so the server keeps serving."""
        if self.job is not None and not self.job.fut.done():
            return self.job
        assert self.loop is not None
        fut = self.loop.create_future()
        job = SnapshotJob(self.ks.own_last, self.backlog.end_off, fut)
        self.job = job
        meta = self.meta_blob()
        alias = self.alias.encode()
        if self.ks.dbsize() < SMALL_SNAPSHOT_KEYS:
            fut.set_result(snapshot.dump(self.ks, alias, meta))
            return job
        path = os.path.join(self.app.cfg.work_dir, f"temp-sync-{os.getpid()}.cdb")
        self.fork_dump(
            path,
            alias,
            meta,
            lambda ok, err: fut.set_result(path) if ok else fut.set_exception(RuntimeError(err)),
        )
        return job

    def fork_dump(
        self, path: str, alias: bytes, meta: bytes, done: Callable[[bool, str], None]
    ) -> None:
        """Write a snapshot file from a forked child; done(ok, error) runs on
        the loop when the child exits."""
        assert self.loop is not None
        rfd, wfd = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: write and leave without touching the loop
            code = 1
            try:
                os.close(rfd)
                snapshot.dump_to_file(self.ks, path, alias, meta)
                code = 0
            except BaseException:
                code = 1
            finally:
                os._exit(code)
        os.close(wfd)
        loop = self.loop

        def finished() -> None:
            loop.remove_reader(rfd)
            os.close(rfd)
            _, status = os.waitpid(pid, 0)
            ok = os.waitstatus_to_exitcode(status) == 0
            done(
                ok,
                ""
                if ok
                else f"snapshot child exited with status {os.waitstatus_to_exitcode(status)}",
            )

        loop.add_reader(rfd, finished)

    def apply_snapshot(self, link: Link, data: bytes) -> None:
        t0 = time.monotonic()
        try:
            snap = snapshot.parse(data, f"snapshot from {link.describe()}")
        except snapshot.SnapshotError as e:
            log.error("%s", e)
            link.close("SYNC", str(e))
            return
        # the clocks a merge folds in, checked first (docs/replication.md section 6)
        for u in (snap.clock, snap.own_last, *snap.vv.values()):
            self.check_clock(u)
        try:
            self.merge_members(snap.meta)
        except (ValueError, struct.error) as e:
            log.error("snapshot from %s: bad metadata: %s", link.describe(), e)
            link.close("SYNC", f"bad snapshot metadata: {e}")
            return
        n = snapshot.merge(self.ks, snap)
        log.info(
            "full sync from %s merged: %d objects, %d bytes in %.3fs",
            link.describe(),
            n,
            len(data),
            time.monotonic() - t0,
        )
        self.send_ack(link)

    # ---- periodic -------------------------------------------------------------------------

    async def _periodic(self) -> None:
        while True:
            try:
                await asyncio.sleep(self.app.cfg.replica_heartbeat_frequency)
                self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("replication tick failed")

    def tick(self) -> None:
        now = time.monotonic()
        self.size_backlog()
        timeout = self.app.cfg.peer_timeout
        for link in list(self.links):
            if link.state == "up":
                if now - link.last_rx > timeout:
                    log.warning(
                        "link to %s silent for %.1fs: closing", link.describe(), now - link.last_rx
                    )
                    p = self.peers.get(link.peer_id)
                    if p is not None:
                        p.last_error = f"timeout: no frame for {timeout}s"
                    link.close("TIMEOUT", "peer_timeout")
                    continue
                self._heartbeat(link)
            elif now - link.created > HANDSHAKE_TIMEOUT:
                link.close("TIMEOUT", "handshake timed out")
        self._dial_due()
        self.update_clock_skew()
        self.collect()

    def my_vv(self) -> dict[int, int]:
        """VV with this node's own entry at its clock: it has every effect of
        its own up to there (none were made between its last and the clock)."""
        vv = self.ks.get_vv()
        vv[self.ks.node_id] = self.ks.clock.last
        return vv

    def stable_point(self) -> int:
        """The stable point (docs/crdt.md section 6): the minimum over active
        members m of their restart floors F_m (what each would come back with
        after a crash; this node's own from persistence), over the current
        origins and over every retired origin of which some member has applied
        more than some floor holds. A member that has not reported its floor
        holds it at 0. A node alone (no other active member, no link: ks.solo)
        takes its applied VV: no member can come back from a crash holding
        what a collected tombstone decided, and a node that MEETs it later
        gets its state by full sync (docs/crdt.md section 6)."""
        applied = [self.my_vv()]
        if self.ks.solo:
            return stable_of(applied, applied, self.members.current_origins() | {self.ks.node_id})
        floors = [self.app.persistence.restart_floor()]
        for m in self.members.active():
            if m.node_id == self.node_id:
                continue
            p = self.peers.get(m.node_id)
            if p is None or not p.floor or not p.vv:
                return 0
            floors.append(p.floor)
            applied.append(p.vv)
        return stable_of(floors, applied, self.members.current_origins() | {self.ks.node_id})

    def _anti_entropy(self, link: Link, vv: dict[int, int]) -> None:
        """Effects of an origin that streams no more (a forgotten node, or an
        earlier incarnation of a node that restarted without its history)
        move only in snapshots: if the peer has less of such an origin than
        this node, send it a full sync."""
        if link.syncing:
            return
        current = self.members.current_origins() | {self.ks.node_id}
        mine = self.ks.get_vv()
        for o, u in mine.items():
            if o not in current and vv.get(o, 0) < u:
                key = (o, u)
                if link.anti_entropy == key:
                    return
                link.anti_entropy = key
                self.start_full_sync(link, f"it lacks effects of retired origin {o}")
                return

    def collect(self) -> None:
        s = self.stable_point()
        if s > self.stable:
            self.stable = s
            self.gc_dropped += self.ks.gc(s)
        if self.stable:
            # lists and sorted sets: a bounded slice per tick
            self.gc_pos, dropped = keyspace.gc_step(self.ks, self.stable, self.gc_pos, 5000)
            self.gc_dropped += dropped

    # ---- WAIT -------------------------------------------------------------------------------

    def acked_count(self, target: int) -> int:
        return sum(
            1
            for p in self.peers.values()
            if p.link is not None
            and p.link.state == "up"
            and (p.link.acked >= target or target == 0)
        )

    def _check_waiters(self) -> None:
        keep = []
        for client, need, target, timer in self.waiters:
            n = self.acked_count(target)
            if n >= need or client.closing:
                if timer is not None:
                    timer.cancel()
                if not client.closing:
                    client.unblock(n)
            else:
                keep.append((client, need, target, timer))
        self.waiters = keep

    def _wait_timeout(self, client: Any) -> None:
        keep = []
        for entry in self.waiters:
            if entry[0] is client:
                if not client.closing:
                    client.unblock(self.acked_count(entry[2]))
            else:
                keep.append(entry)
        self.waiters = keep

    def client_gone(self, client: Any) -> None:
        self.waiters = [w for w in self.waiters if w[0] is not client]

    # ---- INFO / NODES -------------------------------------------------------------------

    def peer_rows(self) -> list[dict[str, Any]]:
        rows = []
        last = self.backlog.last_uuid
        for m in sorted(self.members.members.values(), key=lambda m: m.node_id):
            if m.node_id == self.node_id:
                rows.append(
                    {
                        "id": m.node_id,
                        "alias": m.alias,
                        "addr": m.addr,
                        "state": "myself",
                        "sent": last,
                        "acked": last,
                        "lag_records": 0,
                        "lag_ms": 0,
                        "full_syncs": 0,
                        "partial_syncs": 0,
                        "clock_offset_ms": 0,
                        "clock_offset_bound_ms": 0,
                        "last_error": "",
                    }
                )
                continue
            p = self.peers.get(m.node_id)
            link = p.link if p is not None else None
            if not m.active:
                state = "forgotten"
            elif link is not None and link.state == "up":
                state = "syncing" if link.syncing else "connected"
            elif p is not None and p.dialing:
                state = "connecting"
            else:
                state = "down"
            sent = link.sent if link is not None else 0
            acked = link.acked if link is not None else 0
            lag_records = (
                max(0, self.backlog.nrec_total - link.acked_seq) if link is not None else 0
            )
            lag_ms = (
                max(0, (last >> 22) - (acked >> 22)) if link is not None and acked < last else 0
            )
            # the peer's clock minus this node's, within +- the bound (-1: not measured)
            est = p.clock.estimate() if p is not None else None
            rows.append(
                {
                    "id": m.node_id,
                    "alias": m.alias,
                    "addr": m.addr,
                    "state": state,
                    "sent": sent,
                    "acked": acked,
                    "lag_records": lag_records,
                    "lag_ms": lag_ms,
                    "full_syncs": p.full_syncs if p else 0,
                    "partial_syncs": p.partial_syncs if p else 0,
                    "clock_offset_ms": round(est[0] / 1000) if est else 0,
                    "clock_offset_bound_ms": -(-est[1] // 1000) if est else -1,
                    "last_error": (p.last_error if p else "").replace("\n", " "),
                }
            )
        return rows

    def info(self) -> list[tuple[str, Any]]:
        rows = self.peer_rows()
        others = [r for r in rows if r["state"] != "myself"]
        out: list[tuple[str, Any]] = [
            ("connected_peers", sum(1 for r in others if r["state"] in ("connected", "syncing"))),
            ("known_peers", len(others)),
            ("forgotten", 1 if self.forgotten else 0),
            ("stable_point", self.stable),
            ("pending_tombstones", sum(len(db.tombs) for db in self.ks.dbs)),
            ("gc_dropped_tombstones", self.gc_dropped),
            ("clock_drift_refusals", self.clock_drift_refusals),
        ]
        for i, r in enumerate(others):
            fields = ",".join(f"{k}={str(v).replace(',', ';')}" for k, v in r.items())
            out.append((f"peer{i}", fields))
        return out

    # ---- commands -------------------------------------------------------------------------

    def cmd_meet(self, client: Any, argv: list[bytes]) -> Any:
        addr = argv[1].decode("utf-8", "replace")
        try:
            host, port = parse_addr(addr)
        except ValueError:
            raise RespError(f"ERR Invalid node address specified: {addr}")
        addr = fmt_addr(host, port)
        if addr == self.advertised_addr() or (
            host in ("localhost", "127.0.0.1", "::1")
            and port in (self.app.cfg.port, self.app.cfg.tls_port)
            and self.app.cfg.ip in ("127.0.0.1", "localhost", "::1", "*", "0.0.0.0", "::")
        ):
            raise RespError("ERR cannot MEET this node itself")
        assert self.loop is not None
        client.block()

        async def run() -> None:
            try:
                await self.connect(addr, meet=True)
                self.forgotten = False
                client.unblock(1)
            except RespError as e:
                client.unblock(e)
            except Exception as e:
                client.unblock(
                    RespError(f"ERR MEET {addr} failed: {getattr(e, 'strerror', None) or e}")
                )

        self.loop.create_task(run())
        return NO_REPLY

    def cmd_forget(self, client: Any, argv: list[bytes]) -> Any:
        arg = argv[1].decode("utf-8", "replace")
        target = None
        if arg.isdigit():
            target = self.members.get(int(arg))
        else:
            try:
                host, port = parse_addr(arg)
                target = self.members.find_addr(fmt_addr(host, port))
            except ValueError:
                target = None
        if target is None or not target.active:
            raise RespError(f"ERR Unknown node {arg}")
        if target.node_id == self.node_id:
            raise RespError("ERR I tried hard but I can't forget myself...")
        self.ks.emit_member(
            encode_change(target.node_id, FORGOTTEN, target.alias, target.addr, target.origin)
        )
        self.schedule_pump()
        return Status("OK")

    def cmd_nodes(self, client: Any, argv: list[bytes]) -> Any:
        out = []
        for r in self.peer_rows():
            item = []
            for k, v in r.items():
                item.append(k.encode())
                item.append(v if isinstance(v, int) else str(v).encode())
            out.append(item)
        return out

    def cmd_wait(self, client: Any, argv: list[bytes]) -> Any:
        need = int_arg(argv[1])
        timeout = ms_timeout(argv[2])
        target = client.last_write_uuid
        n = self.acked_count(target)
        if n >= need or client.in_multi:
            return n
        assert self.loop is not None
        self.pump()  # what this client wrote goes out before the GETACK
        for p in self.peers.values():
            if p.link is not None and p.link.state == "up":
                p.link.write_frame(F_GETACK)
        timer = (
            self.loop.call_later(timeout / 1000.0, self._wait_timeout, client) if timeout else None
        )
        client.block()
        self.waiters.append((client, need, target, timer))
        return NO_REPLY
