"""The append-only log (`appendonly yes`; docs/replication.md section 5).

The log holds this node's own effect records, the bytes its backlog streams
to peers, in `work_dir/appendfilename`, on top of the snapshot in
`work_dir/dbfilename`: a start loads the snapshot, then replays the log.

File: the magic `CDBAOF1\\n`, then blocks `u32 len | u8 type | u32 hcrc |
u32 crc | payload`: `len` the payload's size, `hcrc` the CRC-32 of `len |
type`, `crc` the CRC-32 of the payload. Types: ORIGIN (`u64 origin | u64
base`: the records that follow are that origin's, and the snapshot the log
continues holds every record of it up to `base`) and RECORDS (whole effect records,
docs/internals.md "Records"). One RECORDS block per event-loop turn that
wrote: every record made in the turn, one write() (and with `appendfsync
always` one fdatasync) before the turn's replies leave (the replies wait in
their clients: constdb/_core/protocol.pyx `Client.flush`).

Rewriting: every snapshot saved to dbfilename (SAVE, BGSAVE, the save
schedule, BGREWRITEAOF, a clean shutdown) covers the records made before it
started; once it is on disk the log restarts with an ORIGIN block whose base
is that point and the records made while the snapshot was written (kept in
the backlog meanwhile: the log pins what it has not taken).

A start after a crash takes a fresh origin (docs/crdt.md section 1): the
replayed records keep their own (now retired) origin, and the log goes on
with an ORIGIN block for the new one, so one file may hold several origins'
sections until the next snapshot covers them.
"""

from __future__ import annotations

import logging
import os
import queue
import struct
import threading
import time
import zlib
from dataclasses import dataclass, field
from typing import Any, Optional

from constdb.persistence import StartupError, read_work_file

log = logging.getLogger("constdb")

MAGIC = b"CDBAOF1\n"
B_ORIGIN = 1
B_RECORDS = 2
_HDR = struct.Struct("<IBII")  # len, type, hcrc, crc
_LT = struct.Struct("<IB")
HDR = 13
_ORIGIN = struct.Struct("<QQ")
REC_HDR = 13  # u32 len | u8 op | u64 uuid
AUTO_REWRITE_RETRY = 5.0


def block(typ: int, payload: bytes) -> bytes:
    ln = len(payload)
    return _HDR.pack(ln, typ, zlib.crc32(_LT.pack(ln, typ)), zlib.crc32(payload)) + payload


def origin_block(origin: int, base: int) -> bytes:
    return block(B_ORIGIN, _ORIGIN.pack(origin, base))


@dataclass
class Section:
    origin: int
    base: int
    blobs: list[bytes] = field(default_factory=list)
    last: int = 0  # the last record's uuid (base when none)
    records: int = 0


@dataclass
class Parsed:
    """A log read back and checked: its sections, where its valid part ends,
    and why the rest (a torn last block) was cut, if it was."""

    path: str
    sections: list[Section]
    valid_end: int
    size: int
    torn: str = ""

    def records(self) -> int:
        return sum(s.records for s in self.sections)

    def has_records_of(self, origin: int) -> bool:
        return any(s.origin == origin and s.records for s in self.sections)


def parse(data: bytes, path: str) -> Parsed:
    """Check every byte of a log before anything is used: the magic, each
    block's size and checksum, ORIGIN payloads, and the framing and order
    of the records (their values are checked by the keyspace at replay). A
    bad last block (a write cut by a crash) is cut off; a bad block with
    more after it stops the start (StartupError, one line)."""
    n = len(data)
    if n < len(MAGIC):
        if MAGIC.startswith(data):  # cut while the file was being created
            return Parsed(path, [], 0, n, "the header is torn" if n else "")
        raise StartupError(f"{path}: not an append-only log of ConstDB (bad magic)")
    if data[: len(MAGIC)] != MAGIC:
        raise StartupError(f"{path}: not an append-only log of ConstDB (bad magic)")
    sections: list[Section] = []
    pos = len(MAGIC)

    def bad(msg: str) -> StartupError:
        return StartupError(
            f"{path}: the append-only log is corrupt at byte {pos}: {msg}"
            " (restore it, or remove it to start from the snapshot alone)"
        )

    while pos < n:
        if n - pos < HDR:
            return Parsed(
                path, sections, pos, n, f"a block header of {n - pos} bytes at byte {pos}"
            )
        ln, typ, hcrc, crc = _HDR.unpack_from(data, pos)
        if zlib.crc32(_LT.pack(ln, typ)) != hcrc:
            # a write cut inside the header leaves zeros after it (a file
            # grows with zeros); anything else is damage
            if data.count(0, pos + HDR) == n - pos - HDR:
                return Parsed(path, sections, pos, n, f"a torn block header at byte {pos}")
            raise bad("a block header fails its checksum")
        end = pos + HDR + ln
        if end > n:
            return Parsed(
                path, sections, pos, n, f"a block of {ln} bytes at byte {pos} ends past the file"
            )
        payload = data[pos + HDR : end]
        if zlib.crc32(payload) != crc:
            if data.count(0, end) == n - end:  # the last block (zeros may follow)
                return Parsed(
                    path, sections, pos, n, f"the last block (byte {pos}) fails its checksum"
                )
            raise bad("a block fails its checksum")
        if typ == B_ORIGIN:
            if len(payload) != 16:
                raise bad(f"an ORIGIN block of {len(payload)} bytes")
            origin, base = _ORIGIN.unpack(payload)
            if origin == 0:
                raise bad("origin 0")
            sections.append(Section(origin, base, last=base))
        elif typ == B_RECORDS:
            if not sections:
                raise bad("records before any ORIGIN block")
            s = sections[-1]
            err = _check_framing(payload, s)
            if err:
                raise bad(err)
            s.blobs.append(payload)
        else:
            raise bad(f"unknown block type {typ}")
        pos = end
    return Parsed(path, sections, n, n)


def _check_framing(p: bytes, s: Section) -> str:
    """Records exactly fill p, each at least a header long, uuids strictly
    increasing after the section's base; "" when they do."""
    pos, n = 0, len(p)
    last = s.last
    count = 0
    while pos < n:
        if n - pos < REC_HDR:
            return f"a record header of {n - pos} bytes"
        (ln,) = struct.unpack_from("<I", p, pos)
        if ln < 9 or pos + 4 + ln > n:
            return f"a record of {ln} bytes"
        (u,) = struct.unpack_from("<Q", p, pos + 5)
        if u <= last:
            return f"record uuid {u} after {last} (uuids must increase)"
        last = u
        count += 1
        pos += 4 + ln
    s.last = last
    s.records += count
    return ""


def read_log(path: str) -> Optional[Parsed]:
    """The log at path read and checked, or None if there is none."""
    data = read_work_file(path, "the append-only log")
    return None if data is None else parse(data, path)


def _fsync_dir(path: str) -> None:
    dfd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


class AOF:
    """The node's append-only log (app.aof). Positions are backlog stream
    offsets (Backlog.done_off): `written_off` is what the file holds,
    `synced_off` what an fsync has made durable; `synced_uuid` is this
    origin's last record in the durable part."""

    def __init__(self, app: Any):
        self.app = app
        self.fd = -1
        self.state = "off"  # off | wait_rewrite (CONFIG SET appendonly yes) | on
        self.written_off = 0
        self.written_uuid = 0
        self.synced_off = 0
        self.synced_uuid = 0
        self.size = 0
        self.base_size = 0
        self.rw: Optional[tuple[int, int, float]] = None  # (off, uuid, started) of a rewrite
        self.rewrite_scheduled = False
        self.rewrites = 0
        self.rewrite_failures = 0
        self.last_rewrite_secs = -1
        self.last_rewrite_status = "ok"
        self.last_write_status = "ok"
        self.last_write_error = ""
        self.last_fsync = time.monotonic()
        self.fsync_inflight = False
        self.delayed_fsync = 0
        self.last_try = 0.0
        self.replayed = 0
        self.jobs: Optional[queue.SimpleQueue] = None
        self.worker: Optional[threading.Thread] = None
        self.lock = threading.Lock()  # synced_* (the fsync thread sets them too)

    @property
    def path(self) -> str:
        return os.path.join(self.app.cfg.work_dir, self.app.cfg.appendfilename)

    @property
    def enabled(self) -> bool:
        return self.state != "off"

    # ---- start-up ---------------------------------------------------------------------

    def replay(self, parsed: Parsed) -> None:
        """Apply the log's records on top of the loaded snapshot, each
        section as its origin's records (checked first, as a peer's batch)."""
        app = self.app
        ks = app.ks
        t0 = time.monotonic()
        n = 0
        from constdb._core import keyspace

        for s in parsed.sections:
            have = ks.vv_of(s.origin)
            if have < s.base:
                raise StartupError(
                    f"{parsed.path}: the append-only log continues a snapshot holding origin"
                    f" {s.origin} up to {s.base}, but {app.persistence.path} holds it only up"
                    f" to {have} (start with the snapshot the log belongs to, or remove the log)"
                )
            for blob in s.blobs:
                try:
                    n += ks.apply_records(s.origin, blob, app.repl.uuid_limit(), True)
                except keyspace.ClockDriftError as e:
                    raise StartupError(
                        f"{parsed.path}: the append-only log holds a clock ahead of this"
                        f" node's wall clock: {e}"
                    ) from None
                except ValueError as e:
                    raise StartupError(
                        f"{parsed.path}: the append-only log is corrupt: a bad record: {e}"
                    ) from None
        self.replayed = n
        if parsed.torn:
            log.warning(
                "%s: the last write to the append-only log was cut (%s): its %d bytes are ignored",
                parsed.path,
                parsed.torn,
                parsed.size - parsed.valid_end,
            )
        log.info(
            "append-only log replayed: %d records applied (%d in the file) in %.3fs",
            n,
            parsed.records(),
            time.monotonic() - t0,
        )

    def open_at_start(self, parsed: Optional[Parsed]) -> None:
        """appendonly yes at start: go on appending to the log (its torn
        tail cut), or create it; an ORIGIN block for this incarnation."""
        app = self.app
        path = self.path
        ks = app.ks
        if parsed is not None and parsed.valid_end >= len(MAGIC):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
            try:
                os.ftruncate(fd, parsed.valid_end)
                os.lseek(fd, parsed.valid_end, os.SEEK_SET)
                size = parsed.valid_end
                last = parsed.sections[-1] if parsed.sections else None
                if last is None or last.origin != ks.node_id:
                    head = origin_block(ks.node_id, ks.own_last)
                    _write_all(fd, head)
                    size += len(head)
                os.fdatasync(fd)
            except OSError:
                os.close(fd)
                raise
            self.fd = fd
            self.size = size
            self.base_size = size
        else:
            self._create(path, origin_block(ks.node_id, ks.own_last))
        self._started()

    def _create(self, path: str, body: bytes) -> None:
        """A new log at path holding body after the magic, made atomically
        (temp file, fdatasync, rename, fsync of the directory)."""
        tmp = os.path.join(
            os.path.dirname(os.path.abspath(path)), f"temp-rewriteaof-{os.getpid()}.aof"
        )
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            _write_all(fd, MAGIC + body)
            os.fdatasync(fd)
            os.replace(tmp, path)
            _fsync_dir(path)
        except BaseException:
            os.close(fd)
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        old = self.fd
        self.fd = fd
        self.size = self.base_size = len(MAGIC) + len(body)
        if old >= 0:
            self._close_fd(old)

    def _started(self) -> None:
        bl = self.app.backlog
        srv = self.app.srv
        self.state = "on"
        self.written_off = self.synced_off = bl.done_off
        self.written_uuid = self.synced_uuid = self.app.ks.own_last
        self._pin()
        srv.aof_done_off = bl.done_off
        srv.aof_defer = True

    def _submit(self, job: tuple) -> None:
        """A job for the fsync thread, started on first use (not at start:
        daemon mode forks after the log is opened, and a thread does not
        survive a fork)."""
        if self.worker is None or not self.worker.is_alive():
            self.jobs = queue.SimpleQueue()
            self.worker = threading.Thread(target=self._work, name="aof-fsync", daemon=True)
            self.worker.start()
        assert self.jobs is not None
        self.jobs.put(job)

    # ---- the write path (one call per event-loop turn that wrote) ---------------------

    def write_pending(self) -> None:
        """Append the records made since the last call as one block; with
        appendfsync always, fdatasync it. Then the replies waiting for it may go."""
        if self.fd < 0:
            return
        app = self.app
        bl = app.backlog
        end = bl.done_off
        if end > self.written_off:
            data = block(B_RECORDS, bl.slice(self.written_off, end))
            try:
                _write_all(self.fd, data)
            except OSError as e:
                self._write_failed(e)
                return
            self.size += len(data)
            self.written_off = end
            self.written_uuid = app.ks.own_last
            if self.last_write_status != "ok":
                log.warning("writing to the append-only log works again")
                self.last_write_status = "ok"
            self._pin()
            if app.cfg.appendfsync == "always":
                try:
                    os.fdatasync(self.fd)
                except OSError as e:
                    self._fatal(f"fdatasync failed: {e.strerror}")
                self._synced(end, self.written_uuid)
        app.srv.aof_done_off = end

    def _write_failed(self, e: OSError) -> None:
        """A write that did not go through: the file is cut back to its
        last whole block and the records stay in the backlog for the next
        try. With appendfsync always the node cannot keep its promise: it
        stops, as Redis does."""
        try:
            os.ftruncate(self.fd, self.size)
            os.lseek(self.fd, self.size, os.SEEK_SET)
        except OSError:
            pass
        if self.app.cfg.appendfsync == "always":
            self._fatal(f"write failed: {e.strerror}")
        if self.last_write_status == "ok":
            log.error(
                "writing to the append-only log %s failed: %s (retrying)", self.path, e.strerror
            )
        self.last_write_status = "err"
        self.last_write_error = e.strerror or str(e)
        # replies go on (Redis with everysec/no does the same); the records wait
        self.app.srv.aof_done_off = self.app.backlog.done_off

    def _fatal(self, why: str) -> None:
        log.critical(
            "append-only log %s: %s; with appendfsync always an acknowledged write could"
            " be lost: exiting",
            self.path,
            why,
        )
        logging.shutdown()
        os._exit(1)

    def _synced(self, off: int, uuid: int) -> None:
        with self.lock:
            if off > self.synced_off:
                self.synced_off = off
                self.synced_uuid = uuid
            self.last_fsync = time.monotonic()

    def sync_now(self) -> None:
        """Write what is pending and make it durable now (a client closing
        with a reply that waited for the log; shutdown)."""
        if self.fd < 0:
            return
        self.write_pending()
        if self.synced_off < self.written_off:
            off, u = self.written_off, self.written_uuid
            try:
                os.fdatasync(self.fd)
            except OSError as e:
                log.error("fdatasync of the append-only log failed: %s", e.strerror)
                return
            self._synced(off, u)

    def cron(self) -> None:
        """appendfsync everysec: an fdatasync once a second in the worker
        thread, off the event loop; a rewrite that failed is retried; the log
        is rewritten when it grew past auto-aof-rewrite-*."""
        cfg = self.app.cfg
        if self.fd >= 0 and self.written_off < self.app.backlog.done_off:
            self.write_pending()  # a write that failed, retried even when nothing new comes
        if self.fd >= 0 and cfg.appendfsync == "everysec" and self.synced_off < self.written_off:
            if time.monotonic() - self.last_fsync >= 1.0:
                if self.fsync_inflight:
                    self.delayed_fsync += 1
                else:
                    self.fsync_inflight = True
                    self._submit(("fsync", self.fd, self.written_off, self.written_uuid))
        p = self.app.persistence
        if p.child is not None:
            return
        if self.state == "wait_rewrite" or self.rewrite_scheduled:
            if time.monotonic() - self.last_try >= AUTO_REWRITE_RETRY or self.rewrite_scheduled:
                self.rewrite_scheduled = False
                p.bgsave()
            return
        pct = cfg.auto_aof_rewrite_percentage
        if self.state == "on" and pct and self.size >= cfg.auto_aof_rewrite_min_size:
            if self.size >= self.base_size * (100 + pct) // 100:
                log.info(
                    "Starting automatic rewriting of AOF on %d%% growth",
                    (self.size - self.base_size) * 100 // max(self.base_size, 1),
                )
                p.bgsave()

    def _work(self) -> None:
        """The fsync thread (Redis's bio): fdatasync and close off the loop."""
        jobs = self.jobs
        assert jobs is not None
        while True:
            job = jobs.get()
            if job is None:
                return
            if job[0] == "close":
                try:
                    os.close(job[1])
                except OSError:
                    pass
                continue
            _, fd, off, u = job
            try:
                os.fdatasync(fd)
            except OSError as e:
                log.error("fdatasync of the append-only log failed: %s", e.strerror)
            else:
                self._synced(off, u)
            finally:
                self.fsync_inflight = False

    def _close_fd(self, fd: int) -> None:
        if self.fsync_inflight:
            self._submit(("close", fd))  # after the fsync of it in flight
        else:
            os.close(fd)

    def _pin(self) -> None:
        bl = self.app.backlog
        pin = self.written_off if self.fd >= 0 else -1
        if self.rw is not None:
            pin = self.rw[0] if pin < 0 else min(pin, self.rw[0])
        bl.pin_off = pin

    # ---- rewriting: a snapshot, then a fresh log ----------------------------------------

    def rewrite_begin(self) -> Optional[tuple[int, int, float]]:
        """A snapshot of dbfilename is about to be taken of the current
        state: the point it covers (None with appendonly off)."""
        if not self.enabled:
            return None
        self.write_pending()
        self.rewrite_scheduled = False  # this snapshot is the rewrite asked for
        self.rw = (self.app.backlog.done_off, self.app.ks.own_last, time.monotonic())
        self.last_try = time.monotonic()
        self._pin()
        return self.rw

    def rewrite_done(self, ok: Optional[bool], token: Optional[tuple[int, int, float]]) -> None:
        """The snapshot begun at token is on disk (ok), failed (False) or was
        abandoned (None: shutdown killed it): with ok the log restarts from
        its point, holding what was written since."""
        if token is None or self.rw is not token:
            return
        self.rw = None
        off, uuid, started = token
        secs = time.monotonic() - started
        if not ok or not self.enabled:
            if ok is False:
                self.last_rewrite_status = "err"
                self.rewrite_failures += 1
            self._pin()
            return
        app = self.app
        try:
            if self.fd >= 0:
                self.write_pending()
                data = app.backlog.slice(off, self.written_off)
            else:
                data = app.backlog.slice(off, app.backlog.done_off)
            body = origin_block(app.ks.node_id, uuid)
            if data:
                body += block(B_RECORDS, data)
            self._create(self.path, body)
        except OSError as e:
            self.last_rewrite_status = "err"
            self.rewrite_failures += 1
            log.error("rewriting the append-only log %s failed: %s", self.path, e.strerror)
            self._pin()
            return
        was = self.state
        if was == "on":
            self._synced(self.written_off, self.written_uuid)
            self._pin()
        else:  # the first log after CONFIG SET appendonly yes
            self._started()
        self.rewrites += 1
        self.rewrite_failures = 0
        self.last_rewrite_status = "ok"
        self.last_rewrite_secs = int(round(secs))
        log.info(
            "append-only log %s restarted after the snapshot (%d bytes carried over)",
            self.path,
            len(data),
        )

    # ---- CONFIG SET appendonly, shutdown ------------------------------------------------

    def turn_on(self) -> None:
        """CONFIG SET appendonly yes: a snapshot first, then a fresh log
        (Redis rewrites the AOF first)."""
        if self.enabled:
            return
        self.state = "wait_rewrite"
        p = self.app.persistence
        if p.child is not None:
            self.rewrite_scheduled = True
        else:
            p.bgsave()

    def turn_off(self) -> None:
        """CONFIG SET appendonly no (and shutdown): the log synced and closed."""
        if self.fd >= 0:
            self.sync_now()
            self._close_fd(self.fd)
            self.fd = -1
        self.state = "off"
        self.rw = None
        self.rewrite_scheduled = False
        srv = self.app.srv
        srv.aof_defer = False
        self.app.backlog.pin_off = -1
        waiting, srv.aof_waiting = srv.aof_waiting, []
        for c in waiting:
            c.aof_release()

    def stop(self) -> None:
        """Shutdown: synced, closed, the worker gone."""
        self.turn_off()
        if self.worker is not None and self.worker.is_alive() and self.jobs is not None:
            self.jobs.put(None)
            self.worker.join(5.0)
        self.worker = None

    # ---- INFO persistence -----------------------------------------------------------------

    def info(self) -> list[tuple[str, Any]]:
        p = self.app.persistence
        in_progress = self.rw is not None and p.child is not None
        cur = int(time.monotonic() - self.rw[2]) if self.rw is not None else -1
        out: list[tuple[str, Any]] = [
            ("aof_enabled", 1 if self.enabled else 0),
            ("aof_rewrite_in_progress", 1 if in_progress else 0),
            ("aof_rewrite_scheduled", 1 if self.rewrite_scheduled else 0),
            ("aof_last_rewrite_time_sec", self.last_rewrite_secs),
            ("aof_current_rewrite_time_sec", cur),
            ("aof_last_bgrewrite_status", self.last_rewrite_status),
            ("aof_rewrites", self.rewrites),
            ("aof_rewrites_consecutive_failures", self.rewrite_failures),
            ("aof_last_write_status", self.last_write_status),
            ("aof_last_cow_size", 0),
            ("module_fork_in_progress", 0),
            ("module_fork_last_cow_size", 0),
        ]
        if self.enabled:
            bl = self.app.backlog
            out += [
                ("aof_current_size", self.size),
                ("aof_base_size", self.base_size),
                ("aof_pending_rewrite", 1 if self.rewrite_scheduled else 0),
                ("aof_buffer_length", max(0, bl.done_off - self.written_off)),
                ("aof_pending_bio_fsync", 1 if self.fsync_inflight else 0),
                ("aof_delayed_fsync", self.delayed_fsync),
                ("aof_file", self.path),
                ("aof_fsynced_uuid", self.synced_uuid),
                ("aof_last_load_records", self.replayed),
            ]
        return out
