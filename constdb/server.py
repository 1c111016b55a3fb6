"""The running node: start-up state (read_boot), the node (App: keyspace,
command table, replication, persistence), event loop, listener, cron,
shutdown."""

from __future__ import annotations

import asyncio
import errno
import gc
import logging
import os
import random
import re
import resource
import socket
import struct
import time
from dataclasses import dataclass
from typing import Any, Optional

from constdb import __version__, aof, persistence, systemd
from constdb._core import (
    cmd_bitmaps,
    cmd_blocking,
    cmd_dump,
    cmd_geo,
    cmd_hashes,
    cmd_hll,
    cmd_keys,
    cmd_lists,
    cmd_server,
    cmd_sets,
    cmd_sort,
    cmd_strings,
    cmd_zsets,
    pubsubcore,
    snapshot,
    t_hll,
)
from constdb._core.backlog import Backlog
from constdb._core.codec import RespError
from constdb._core.keyspace import Keyspace
from constdb._core.ktable import rehash_tables
from constdb._core.protocol import Client, Server
from constdb._core.tlsconn import TLSConn, native_path
from constdb.blocking import Blocking
from constdb.commands import blocking as blocking_commands
from constdb.commands import (
    client,
    cluster,
    connection,
    info,
    introspection,
    register_handlers,
)
from constdb.commands import config as config_commands
from constdb.commands import memory as memory_commands
from constdb.commands import monitoring as monitoring_commands
from constdb.commands import persistence as persistence_commands
from constdb.commands import pubsub as pubsub_commands
from constdb.commands import scripting as scripting_commands
from constdb.commands import server as server_commands
from constdb.config import NODE_ID_FILE, Config, ConfigError
from constdb.eviction import Memory
from constdb.functions import FunctionStore
from constdb.logs import set_log_level
from constdb.monitor import Monitor
from constdb.monitoring import Monitoring
from constdb.notify import Notifier
from constdb.pubsub import PubSub
from constdb.replication.manager import Replication
from constdb.tracking import Tracking

log = logging.getLogger("constdb")

# descriptors kept for everything but clients (Redis's CONFIG_MIN_RESERVED_FDS)
RESERVED_FDS = 32
MAX_NODE_ID = 2**63 - 1

# the modules of the commands written in Python (constdb/commands/)
PY_COMMANDS = (
    blocking_commands,
    connection,
    client,
    introspection,
    config_commands,
    info,
    server_commands,
    cluster,
    persistence_commands,
    pubsub_commands,
    monitoring_commands,
    memory_commands,
    scripting_commands,
)


def load_node_id(cfg: Config, from_snapshot: Optional[int] = None) -> tuple[int, bool]:
    """node_id from config, else from work_dir, else from the snapshot, else
    drawn and kept there. Returns (node_id, first start: none was kept)."""
    path = os.path.join(cfg.work_dir, NODE_ID_FILE)
    stored = None
    try:
        with open(path, "rb") as f:
            raw = f.read(100)
    except FileNotFoundError:
        pass
    else:
        # what a start wrote: one decimal id in 1..2^63-1 and a newline;
        # anything else is refused, never replaced by a new identity
        t = raw.decode("utf-8", "replace").strip()
        if re.fullmatch(r"[1-9][0-9]{0,18}", t) and int(t) <= MAX_NODE_ID:
            stored = int(t)
        else:
            raise persistence.StartupError(
                f"{path}: expected a node id in 1..{MAX_NODE_ID}, got {t!r}"
                " (fix the file, or remove it to give this node a new identity)"
            )
    if cfg.node_id:
        node_id = cfg.node_id
    elif stored:
        node_id = stored
    elif from_snapshot:
        node_id = from_snapshot
    else:
        node_id = random.SystemRandom().randrange(1, 2**63)
    if stored != node_id:
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"{node_id}\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    return node_id, stored is None and not from_snapshot


@dataclass
class Boot:
    """What start-up reads from work_dir before the node exists."""

    node_id: int
    origin: int  # the CRDT origin id this incarnation writes with
    snap: Optional[snapshot.Snapshot]
    crashed: bool  # the last run did not shut down cleanly (its lock file is there)
    members: bytes  # the group's membership, as the snapshot kept it
    log: Optional[aof.Parsed] = None  # the append-only log (appendonly yes), checked


def read_boot(cfg: Config) -> Boot:
    """The lock file, the snapshot and the node id in work_dir (StartupError,
    OSError with the key at fault)."""
    crashed = persistence.check_lock(cfg.work_dir)
    snap = persistence.read_snapshot(os.path.join(cfg.work_dir, cfg.dbfilename))
    meta, members = persistence.decode_meta(snap.meta) if snap is not None else ({}, b"")
    try:
        node_id, first_start = load_node_id(cfg, meta.get("node_id"))
    except OSError as e:
        raise OSError(
            f"key 'work_dir': cannot keep the node id in {cfg.work_dir!r}: {e.strerror}"
        ) from None
    # The CRDT origin id (dots, ts, VV, streams). A node's first start uses
    # its node_id; a start without its complete own history (no
    # persistence, or after a crash) takes a fresh origin, so that its VV
    # entry never claims writes it lost (docs/crdt.md section 1).
    if snap is not None and meta.get("final") and not crashed and meta.get("node_id") == node_id:
        origin = snap.node_id  # a clean shutdown saved every own write
    elif first_start and snap is None:
        origin = node_id
    else:
        origin = random.SystemRandom().randrange(1, 2**63)
    parsed = None
    if cfg.appendonly:
        parsed = aof.read_log(os.path.join(cfg.work_dir, cfg.appendfilename))
        if parsed is not None and parsed.has_records_of(origin):
            # the log holds writes the snapshot lacks: a crash, whatever the
            # snapshot says (docs/crdt.md section 1)
            origin = random.SystemRandom().randrange(1, 2**63)
    return Boot(node_id, origin, snap, crashed, members, parsed)


class App:
    """One ConstDB node. Making it does no I/O; `load` (the snapshot read by
    read_boot, the lock) and `serve` do."""

    def __init__(
        self, cfg: Config, node_id: int, origin: int, sock: Optional[socket.socket] = None
    ):
        self.cfg = cfg
        self.sock = sock
        self.node_id = node_id
        self.origin = origin
        self.alias = cfg.node_alias or f"node{cfg.port or cfg.tls_port}"
        self.started = time.time()
        self.run_id = os.urandom(20).hex()
        self.backlog = Backlog(cfg.repl_backlog_limit)
        self.ks = Keyspace(origin, self.backlog, cfg.databases)
        # FUNCTION libraries (replicated registers); the script engine loads them
        self.functions = FunctionStore(self.ks)
        self.ks.on_func = self.functions.apply
        self.persistence = persistence.Persistence(self)
        self.aof = aof.AOF(self)
        self.after_writes_scheduled = False
        self.srv = Server(self.ks)
        self.srv.app = self
        self.ks.on_touch = self._watch_touched
        self.loop: Optional[asyncio.AbstractEventLoop] = None
        self.listener: Optional[asyncio.base_events.Server] = None
        # the TLS client port (tls_port): its socket and context, made by
        # listen_socket (cli.py calls it before daemonizing so errors show)
        self.tls_sock: Optional[socket.socket] = None
        self.tls: Optional[Any] = None  # constdb.tls.Contexts
        self.tls_listener: Optional[asyncio.base_events.Server] = None
        self.stopping: Optional[asyncio.Future] = None
        self.cron_task: Optional[asyncio.Task] = None
        self.ops_samples: list[tuple[float, int]] = []
        self.exit_code = 0
        self.shutdown_save: Optional[bool] = None
        for mod in (
            cmd_strings,
            cmd_keys,
            cmd_sets,
            cmd_hashes,
            cmd_hll,
            cmd_lists,
            cmd_zsets,
            cmd_bitmaps,
            cmd_geo,
            cmd_server,
            cmd_sort,
            cmd_dump,
            cmd_blocking,
            pubsubcore,
        ):
            mod.register(self.srv)
        register_handlers(self.srv, PY_COMMANDS)
        self.pubsub = self.srv.pubsub = PubSub()
        self.repl = Replication(self)
        self.pubsub.on_publish = self.repl.publish
        self.pubsub.peers = self.repl.peers  # on_publish only while there are members
        self.tracking = self.srv.tracking = Tracking(self)
        self.notify = Notifier(self)
        self.monitoring = Monitoring(self)
        self.memory = Memory(self)
        self.blocking = Blocking(self)
        self.monitor = Monitor(self)
        self.serving = False  # the start finished: the node took requests
        self.apply_config()

    def load(self, boot: Boot) -> None:
        """Start-up's I/O once the node exists: the snapshot's data and the
        group's members merged in, the work_dir lock taken."""
        if boot.snap is not None:
            self._load(boot.snap, boot.crashed)
            meta, _ = persistence.decode_meta(boot.snap.meta)
            if meta.get("node_id") == self.node_id and boot.snap.node_id != self.origin:
                # this node's own earlier origin: its TTL deadlines are in this clock
                self.repl.own_origins.add(boot.snap.node_id)
        if boot.members:
            try:
                self.repl.merge_members(boot.members)
            except (ValueError, struct.error) as e:
                raise persistence.StartupError(
                    f"{os.path.join(self.cfg.work_dir, self.cfg.dbfilename)}: bad metadata: {e}"
                ) from None
        if boot.log is not None:
            self.aof.replay(boot.log)
        if self.cfg.appendonly:
            try:
                self.aof.open_at_start(boot.log)
            except OSError as e:
                raise persistence.StartupError(
                    f"{self.aof.path}: cannot open the append-only log: {e.strerror}"
                ) from None
        self.persistence.take_lock()

    def _load(self, snap: Any, crashed: bool) -> None:
        t0 = time.monotonic()
        last = [t0]

        def progress(n: int) -> None:
            now = time.monotonic()
            if now - last[0] >= 1.0:
                last[0] = now
                log.info("loading: %d objects so far", n)

        n = snapshot.merge(self.ks, snap, progress)
        # this incarnation's backlog holds nothing before what was loaded
        self.backlog.dropped_upto = self.ks.own_last
        self.persistence.loaded_keys = self.ks.dbsize()
        self.persistence.load_secs = time.monotonic() - t0
        self.persistence.dirty_at_save = self.ks.dirty
        self.persistence.loaded(snap)  # what a crash now would come back with
        log.info(
            "snapshot loaded: %d objects, %d keys in %.3fs%s",
            n,
            self.ks.dbsize(),
            self.persistence.load_secs,
            " (the last run did not shut down cleanly: new origin)" if crashed else "",
        )

    # ---- config ---------------------------------------------------------------

    def apply_config(self, changed: Optional[set[str]] = None) -> None:
        """Push the config into the running parts. changed: the keys CONFIG
        SET just changed (None: all, at start). ConfigError(reason, key) if
        a changed value cannot be applied; nothing is applied then."""
        c = self.cfg
        srv = self.srv
        if changed is None or "maxclients" in changed:
            allowed = fit_open_files(c.maxclients)
            if allowed < c.maxclients:
                if changed is not None:
                    raise ConfigError(
                        "The operating system is not able to handle the specified number"
                        f" of clients, try with {allowed}",
                        "maxclients",
                    )
                if allowed < 1:
                    raise persistence.StartupError(
                        f"Your current 'ulimit -n' of {allowed + RESERVED_FDS} is not enough for"
                        " the server to start. Please increase your open file limit to at least"
                        f" {c.maxclients + RESERVED_FDS}."
                    )
                c.set("maxclients", allowed, "the open files limit (RLIMIT_NOFILE)")
        srv.requirepass = c.requirepass.encode() if c.requirepass else None
        srv.proto_max_bulk_len = c.proto_max_bulk_len
        srv.client_query_buffer_limit = c.client_query_buffer_limit
        t_hll.set_sparse_max_bytes(c.hll_sparse_max_bytes)
        srv.max_exec_per_round = c.max_exec_per_round
        srv.maxclients = min(c.maxclients, 2**31 - 1)  # the limit keeps it far below
        srv.timeout = c.timeout
        if changed is not None and "appendonly" in changed:
            if c.appendonly:
                self.aof.turn_on()
            else:
                self.aof.turn_off()
        self.repl.backlog_limit = -1  # recomputed: at most 1 MiB while alone
        self.repl.size_backlog()
        set_log_level(c.log_level)
        self.tracking.max_keys = c.tracking_table_max_keys or 2**63
        self.notify.configure(c.notify_keyspace_events)
        self.monitoring.configure(c)
        self.memory.configure(c)
        if changed is not None and changed & TLS_RUNTIME_KEYS:
            self.tls_reload(changed)

    # ---- lifecycle --------------------------------------------------------------

    def listen_socket(self) -> Optional[socket.socket]:
        """Bind the client port (done before daemonizing so errors show);
        None with port 0 (TLS only)."""
        if self.sock is None and self.cfg.port:
            self.sock = bind(self.cfg.ip, self.cfg.port, self.cfg.tcp_backlog)
        return self.sock

    def tls_setup(self) -> None:
        """The TLS contexts (ConfigError on bad files) and the TLS port's
        socket (OSError); cli.py does it before daemonizing so errors show."""
        if self.tls is None:
            from constdb import tls

            self.tls = tls.Contexts(self.cfg)
        if self.cfg.tls_port and self.tls_sock is None:
            self.tls_sock = bind(self.cfg.ip, self.cfg.tls_port, self.cfg.tcp_backlog)

    async def _tls_listen(self, sock: socket.socket) -> None:
        """Serve the TLS port on sock with the current server context, unless
        a later CONFIG SET has replaced sock meanwhile."""
        if sock is not self.tls_sock or self.loop is None:
            return
        ctx, loop = self.tls.server, self.loop
        native_path()  # checks, once, that records can go to OpenSSL directly; logs which path

        def factory() -> TLSConn:
            return TLSConn(ctx, lambda: Client(self.srv), loop, TLS_HANDSHAKE_TIMEOUT)

        server = await self.loop.create_server(factory, sock=sock, backlog=self.cfg.tcp_backlog)
        if sock is not self.tls_sock:
            server.close()
        else:
            self.tls_listener = server

    def tls_reload(self, changed: set[str]) -> None:
        """CONFIG SET of tls_* keys: new contexts (every file read again) and,
        if tls_port changed, a new listening socket; connections made before
        keep theirs, as in Redis. ConfigError(Redis's reason, key) if the new
        settings do not load; then nothing changes (details in the log)."""
        from constdb import tls

        c = self.cfg
        key = next(k for k in TLS_RUNTIME_KEYS_ORDER if k in changed)
        bound = self.tls_sock.getsockname()[1] if self.tls_sock is not None else 0
        new_port = "tls_port" in changed and c.tls_port != bound
        if new_port and c.tls_replication:
            raise ConfigError(
                "tls_port can't change while tls_replication is on (peers dial it)", "tls_port"
            )
        if c.port == 0 and c.tls_port == 0:
            raise ConfigError("port is 0, so the node needs a tls_port", "tls_port")
        try:
            contexts = tls.Contexts(c) if tls.enabled(c) else None
        except ConfigError as e:
            log.warning("CONFIG SET of the TLS settings not applied: %s", e)
            raise ConfigError(
                "Unable to update TLS configuration. Check server logs.", key
            ) from None
        old_sock, old_listener = self.tls_sock, self.tls_listener
        sock = old_sock
        if new_port:
            sock = None
            if c.tls_port:
                try:
                    sock = bind(c.ip, c.tls_port, c.tcp_backlog)
                except OSError as e:
                    log.warning(
                        "CONFIG SET tls-port %d: cannot listen on %s:%d: %s",
                        c.tls_port,
                        c.ip,
                        c.tls_port,
                        e.strerror or e,
                    )
                    raise ConfigError(
                        "Unable to listen on this port. Check server logs.", "tls_port"
                    ) from None
        elif sock is not None:
            # the same port with the new context: a copy of the listening
            # socket keeps its queue of connections while the old server closes
            sock = sock.dup()
        self.tls, self.tls_sock, self.tls_listener = contexts, sock, None
        if old_listener is not None:
            old_listener.close()
        if old_sock is not None:
            old_sock.close()
        if sock is not None and self.loop is not None:
            self.loop.create_task(self._tls_listen(sock))
        log.info(
            "TLS settings applied (%s)%s",
            ", ".join(sorted(changed & TLS_RUNTIME_KEYS)),
            f"; tls_port {c.tls_port}" if new_port else "",
        )

    async def serve(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.srv.loop = self.loop
        self.stopping = self.loop.create_future()
        sock = self.listen_socket()
        if sock is not None:
            self.listener = await self.loop.create_server(
                lambda: Client(self.srv), sock=sock, backlog=self.cfg.tcp_backlog
            )
        self.tls_setup()
        if self.tls_sock is not None:
            await self._tls_listen(self.tls_sock)
        # long-lived objects never form cycles: keep the collector off them
        gc.collect()
        gc.freeze()
        gc.set_threshold(50_000, 50, 100)
        log.info(
            "ConstDB %s started: node_id=%d origin=%d alias=%s address=%s:%d%s work_dir=%s pid=%d",
            __version__,
            self.node_id,
            self.origin,
            self.alias,
            self.cfg.ip,
            self.cfg.port,
            f" tls_port={self.cfg.tls_port}" if self.cfg.tls_port else "",
            os.path.abspath(self.cfg.work_dir),
            os.getpid(),
        )
        self.repl.start(self.loop)
        self.srv.on_backlog = self.on_backlog
        self.cron_task = self.loop.create_task(self._cron())
        self.serving = True
        systemd.notify(f"READY=1\nMAINPID={os.getpid()}\nSTATUS=serving on port {self.cfg.port}")
        try:
            await self.stopping
        finally:
            await self._shutdown()

    def request_shutdown(self, reason: str = "signal") -> None:
        if self.stopping is not None and not self.stopping.done():
            log.info("shutting down (%s)", reason)
            systemd.notify("STOPPING=1")
            self.srv.shutting_down = True
            self.stopping.set_result(reason)

    def shutdown_command(self, save: Optional[bool], force: bool) -> None:
        """SHUTDOWN: save now (unless NOSAVE); on failure refuse unless FORCE."""
        if not self.persistence.shutdown(save) and not force:
            raise RespError("ERR Errors trying to SHUTDOWN. Check logs.")
        self.shutdown_save = False  # done
        self.request_shutdown("SHUTDOWN")

    async def _shutdown(self) -> None:
        if self.cron_task is not None:
            self.cron_task.cancel()
        await self.repl.stop()
        if self.shutdown_save is not False:
            self.persistence.shutdown(self.shutdown_save)
        self.aof.stop()
        if self.listener is not None:
            self.listener.close()
        if self.tls_listener is not None:
            self.tls_listener.close()
        for c in list(self.srv.clients.values()):
            c.close()
        log.info("ConstDB node %d stopped", self.node_id)

    # ---- cron -------------------------------------------------------------------

    async def _cron(self) -> None:
        while True:
            try:
                await asyncio.sleep(1.0 / self.cfg.hz)
                self.cron()
            except asyncio.CancelledError:
                raise
            except Exception:  # never let the cron die
                log.exception("cron failed")

    def cron(self) -> None:
        now = time.time()
        ks = self.ks
        # active expiry: a bounded slice per tick (about 25% of a tick at most)
        budget = 250.0 / self.cfg.hz
        for _ in range(16):
            checked, expired = ks.active_expire(200, budget)
            if checked < 200 or expired < 50:
                break
        # key tables mid-resize: entries moved for up to 1 ms a tick (Redis's
        # incrementallyRehash), so a table nobody writes to finishes its move
        rehash_tables([t for db in ks.dbs for t in (db.d, db.expires)], 1.0)
        self.persistence.cron()
        self.memory.cron()
        self.aof.cron()
        if self.backlog.dirty and self.srv.on_backlog is not None:
            self.backlog.dirty = False
            self.srv.on_backlog()
        if self.cfg.timeout:
            limit = now - self.cfg.timeout
            for c in list(self.srv.clients.values()):
                if c.last_interaction < limit and not c.blocked:
                    c.close()
        self.ops_samples.append((now, self.srv.total_commands))
        if len(self.ops_samples) > 16:
            del self.ops_samples[0]

    def instantaneous_ops(self) -> int:
        if len(self.ops_samples) < 2:
            return 0
        (t0, n0), (t1, n1) = self.ops_samples[0], self.ops_samples[-1]
        return int((n1 - n0) / (t1 - t0)) if t1 > t0 else 0

    # ---- hooks --------------------------------------------------------------------

    def on_backlog(self) -> None:
        """New records (or replies waiting for the log): one callback at
        the end of this loop turn takes care of every write the turn made."""
        if not self.after_writes_scheduled and self.loop is not None:
            self.after_writes_scheduled = True
            self.loop.call_soon(self.after_writes)

    def after_writes(self) -> None:
        """The turn's records go to the append-only log (one write, and one
        fsync with appendfsync always: Redis's beforeSleep), then the
        replies that waited for it, then to the peers."""
        self.after_writes_scheduled = False
        srv = self.srv
        self.aof.write_pending()
        waiting = srv.aof_waiting
        if waiting:
            srv.aof_waiting = []
            for c in waiting:
                c.aof_release()
        self.repl.pump()

    @staticmethod
    def _watch_touched(clients: list[Any]) -> None:
        for c in clients:
            c.cas_dirty = True

    def client_gone(self, client: Any) -> None:
        """A blocked client disconnected (WAIT, MEET, blocking pops, CLIENT
        PAUSE), or a MONITOR."""
        self.repl.client_gone(client)
        self.blocking.client_gone(client)
        self.monitor.client_gone(client)


def fit_open_files(maxclients: int) -> int:
    """Raise the soft RLIMIT_NOFILE toward maxclients + 32 as Redis does (at
    start and on CONFIG SET maxclients), logging what it did; the number of
    clients the limit allows (maxclients if it was raised enough)."""
    need = maxclients + RESERVED_FDS
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    inf = resource.RLIM_INFINITY
    if soft == inf or soft >= need:
        return maxclients
    # the highest of: what is needed, the kernel's ceiling, the hard limit
    tries = [need]
    try:
        with open("/proc/sys/fs/nr_open") as f:
            tries.append(int(f.read()))
    except (OSError, ValueError):
        pass
    if hard != inf:
        tries.append(hard)
    best = soft
    error = ""
    for n in sorted({t for t in tries if soft < t <= need}, reverse=True):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (n, inf if hard == inf else max(n, hard)))
        except OSError as e:
            error = error or e.strerror or str(e)
            continue
        except ValueError:  # Python's word for EPERM here
            error = error or os.strerror(errno.EPERM)
            continue
        best = n
        break
    if best >= need:
        log.info(
            "Increased maximum number of open files to %d (it was originally set to %d).",
            need,
            soft,
        )
        return maxclients
    allowed = best - RESERVED_FDS
    log.warning(
        "You requested maxclients of %d requiring at least %d max file descriptors.",
        maxclients,
        need,
    )
    log.warning(
        "Server can't set maximum open files to %d because of OS error: %s.",
        need,
        error or os.strerror(errno.EPERM),
    )
    if allowed >= 1:
        log.warning(
            "Current maximum open files is %d. maxclients has been reduced to %d to compensate"
            " for low ulimit. If you need higher maxclients increase 'ulimit -n'.",
            best,
            allowed,
        )
    return allowed


TLS_HANDSHAKE_TIMEOUT = 10.0  # seconds, as uvloop's default

# the TLS settings CONFIG SET may change (constdb/config.py)
TLS_RUNTIME_KEYS_ORDER = (
    "tls_port",
    "tls_cert_file",
    "tls_key_file",
    "tls_ca_cert_file",
    "tls_ca_cert_dir",
    "tls_auth_clients",
    "tls_protocols",
    "tls_ciphers",
    "tls_ciphersuites",
    "tls_session_caching",
    "tls_session_cache_size",
    "tls_session_cache_timeout",
)
TLS_RUNTIME_KEYS = frozenset(TLS_RUNTIME_KEYS_ORDER)


def bind(ip: str, port: int, backlog: int) -> socket.socket:
    host = None if ip == "*" else ip
    family = socket.AF_INET6 if host and ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    try:
        sock.bind((host or "0.0.0.0", port))
        sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock
