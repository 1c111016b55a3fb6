"""Snapshots on disk (docs/replication.md section 5; the same format as full sync):
the work of SAVE, BGSAVE (a forked child, as Redis does) and LASTSAVE (the
commands: constdb/commands/persistence.py), the save schedule, the save on
clean shutdown, and loading at start.

Writes are atomic: a temp file in work_dir, fsync, rename over the target,
fsync of the directory. The lock file `constdb.running` says a process runs
on this work_dir; it is removed only after a final save at clean shutdown, so
its presence at start means the snapshot may miss this node's last writes
(see docs/crdt.md section 1)."""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Any, Callable, Optional

from constdb._core import snapshot
from constdb._core.codec import RespError
from constdb.config import LOCK_FILE

log = logging.getLogger("constdb")
BGSAVE_RETRY_DELAY = 5.0
# a node whose snapshot file lags its state saves at least this often while it
# has changes: GC waits for every member's restart floor (restart_floor), so
# this bounds how long tombstones stay (docs/crdt.md section 6)
GC_SAVE_SECS = 60.0


def write_atomic(ks: Any, path: str, alias: bytes, meta: bytes) -> tuple[int, int]:
    """Snapshot to path: temp file, fsync, rename, fsync of the directory."""
    d = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(d, f"temp-{os.getpid()}.cdb")
    try:
        size, raw = snapshot.dump_to_file(ks, tmp, alias, meta)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        dfd = os.open(d, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return size, raw


def fork_job(loop: Any, work: Callable[[], None], done: Callable[[bool, str], None]) -> int:
    """Run work() in a forked child (copy-on-write view of this process);
    done(ok, error) runs on the loop when the child exits. Returns its pid."""
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: do the work and leave without touching the loop
        code = 1
        try:
            os.close(rfd)
            work()
            code = 0
        except BaseException as e:
            try:
                os.write(wfd, str(e).encode()[:500])
            except OSError:
                pass
        finally:
            os._exit(code)
    os.close(wfd)

    def finished() -> None:
        try:
            msg = os.read(rfd, 4096)
        except OSError:
            msg = b""
        loop.remove_reader(rfd)
        os.close(rfd)
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        ok = code == 0
        done(
            ok, "" if ok else (msg.decode("utf-8", "replace") or f"child exited with status {code}")
        )

    loop.add_reader(rfd, finished)
    return pid


def encode_meta(app: Any, final: bool) -> bytes:
    head = json.dumps(
        {"node_id": app.node_id, "alias": app.alias, "final": final, "time": time.time()}
    ).encode()
    return len(head).to_bytes(4, "little") + head + app.repl.meta_blob()


def decode_meta(meta: bytes) -> tuple[dict[str, Any], bytes]:
    """(header dict, membership blob). A full-sync snapshot carries the bare
    membership blob; a file carries a JSON header before it."""
    if len(meta) >= 4:
        n = int.from_bytes(meta[:4], "little")
        if 0 < n <= len(meta) - 4 and meta[4:5] == b"{":
            try:
                return json.loads(meta[4 : 4 + n]), meta[4 + n :]
            except ValueError:
                pass
    return {}, meta


class StartupError(Exception):
    """The node cannot start with what is in work_dir (one line for the user)."""


def read_work_file(path: str, what: str) -> Optional[bytes]:
    """The bytes of a file start-up reads, None if there is none;
    StartupError naming it if it cannot be read."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise StartupError(f"{path}: cannot read {what}: {e.strerror}") from None


def read_snapshot(path: str) -> Optional[snapshot.Snapshot]:
    """Parse the snapshot file at path, or None if there is none. Raises
    StartupError naming the file and the problem."""
    data = read_work_file(path, "the snapshot")
    if data is None:
        return None
    log.info("loading snapshot %s (%d bytes)", path, len(data))
    try:
        return snapshot.parse(data, path)
    except snapshot.SnapshotError as e:
        raise StartupError(str(e)) from None


def check_lock(work_dir: str) -> bool:
    """True if the previous run did not shut down cleanly. Raises
    StartupError if another live process holds work_dir."""
    path = os.path.join(work_dir, LOCK_FILE)
    try:
        with open(path) as f:
            pid = int(f.read().split()[0])
    except FileNotFoundError:
        return False
    except (OSError, ValueError, IndexError):
        return True
    if pid != os.getpid():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            pass
        else:
            if _is_constdb(pid):
                raise StartupError(
                    f"{work_dir}: work_dir is in use by another constdb-server (pid {pid})"
                )
    return True


def _is_constdb(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"constdb" in f.read()
    except OSError:
        return True


class Persistence:
    def __init__(self, app: Any):  # the node (constdb.server.App)
        self.app = app
        self.last_save = int(time.time())
        self.dirty_at_save = 0
        self.child: Optional[int] = None
        self.child_started = 0.0
        self.child_dirty = 0
        self.child_token: Optional[tuple[int, int, float]] = None  # the log's point (aof.py)
        self.scheduled = False
        self.last_status = "ok"
        self.last_error = ""
        self.last_bgsave_secs = -1
        self.last_try = 0.0
        self.saves = 0
        self.loaded_keys = 0
        self.load_secs = 0.0
        self.lock_path = os.path.join(app.cfg.work_dir, LOCK_FILE)
        # the VV of the snapshot file on disk (None: no file), and of the one a
        # running BGSAVE is writing (it may land): restart_floor's inputs
        self.floor: Optional[dict[int, int]] = None
        self.floor_pending: Optional[dict[int, int]] = None
        # the last save took changes: one more GC save is due even if idle
        self.edge = False

    @property
    def path(self) -> str:
        return os.path.join(self.app.cfg.work_dir, self.app.cfg.dbfilename)

    def take_lock(self) -> None:
        with open(self.lock_path, "w") as f:
            f.write(f"{os.getpid()} {self.app.origin}\n")

    def release_lock(self) -> None:
        try:
            os.unlink(self.lock_path)
        except OSError:
            pass

    def changes(self) -> int:
        return self.app.ks.dirty - self.dirty_at_save

    # ---- the restart floor (docs/crdt.md section 6) ------------------------------------

    def dump_vv(self) -> dict[int, int]:
        """The VV a snapshot taken now carries, this node's own entry at its
        clock (no own effect lies between its last one and the clock)."""
        ks = self.app.ks
        vv = ks.get_vv()
        vv[ks.node_id] = max(ks.own_last, ks.clock.last)
        return vv

    def loaded(self, snap: Any) -> None:
        """At start, after the file was loaded: that file is the floor. Its
        writer's own entry is at the file's clock; this incarnation's origin,
        if fresh, has no effect yet (a crash now would lose none of them)."""
        vv = dict(snap.vv)
        vv[snap.node_id] = max(snap.own_last, snap.clock, vv.get(snap.node_id, 0))
        ks = self.app.ks
        if ks.node_id != snap.node_id:
            vv[ks.node_id] = ks.clock.last
        self.floor = vv

    def restart_floor(self) -> dict[int, int]:
        """The VV of the state this node would come back with if it crashed
        now: it has applied every effect of origin o up to floor[o]. The
        newest snapshot file's VV (and a running BGSAVE's, which may replace
        it first); with no file a restart comes back empty, which can name no
        element (docs/crdt.md section 6), so the floor is the applied VV.
        Peers take the stable point at the minimum of every member's floor.
        This is the one place that says what survives a crash: a log replayed
        at start (appendonly) raises the floor to what it has fsynced."""
        ks = self.app.ks
        if self.floor is None:
            base = ks.get_vv()
            base[ks.node_id] = ks.clock.last
        else:
            base = dict(self.floor)
            log_ = self.app.aof
            if log_.enabled and log_.synced_uuid > base.get(ks.node_id, 0):
                # the log brings this origin's own effects back up to what it
                # has fsynced (it holds no other origin's)
                base[ks.node_id] = log_.synced_uuid
        pend = self.floor_pending
        if pend is None:
            return base
        return {o: min(base.get(o, 0), pend.get(o, 0)) for o in base.keys() | pend.keys()}

    # ---- SAVE / BGSAVE ---------------------------------------------------------------

    def save(self, final: bool = False) -> None:
        """Blocking save (SAVE, shutdown)."""
        if self.child is not None:
            raise RespError("ERR Background save already in progress")
        app = self.app
        t0 = time.monotonic()
        dirty = app.ks.dirty
        vv = self.dump_vv()
        token = app.aof.rewrite_begin()  # the append-only log restarts after it
        try:
            size, raw = write_atomic(app.ks, self.path, app.alias.encode(), encode_meta(app, final))
        except (OSError, ValueError) as e:  # ValueError: a path the OS cannot take
            app.aof.rewrite_done(False, token)
            self.last_status = "err"
            self.last_error = str(e)
            log.error("SAVE to %s failed: %s", self.path, e)
            reason = getattr(e, "strerror", None) or e
            raise RespError(f"ERR Error saving the snapshot: {reason}") from None
        self.floor = vv
        self.edge = dirty != self.dirty_at_save
        self.dirty_at_save = dirty
        self.last_save = int(time.time())
        self.last_status = "ok"
        self.saves += 1
        log.info(
            "DB saved on disk: %s, %d bytes (%d uncompressed) in %.3fs",
            self.path,
            size,
            raw,
            time.monotonic() - t0,
        )
        app.aof.rewrite_done(True, token)

    def bgsave(self) -> None:
        app = self.app
        assert app.loop is not None
        path = self.path
        alias = app.alias.encode()
        meta = encode_meta(app, False)
        ks = app.ks
        self.child_dirty = ks.dirty
        self.floor_pending = self.dump_vv()  # the floor is at most this until it lands
        self.child_started = time.monotonic()
        self.last_try = time.monotonic()
        self.child_token = app.aof.rewrite_begin()
        try:
            self.child = fork_job(
                app.loop, lambda: write_atomic(ks, path, alias, meta), self._bg_done
            )
        except OSError:
            app.aof.rewrite_done(False, self.child_token)
            raise
        log.info("Background saving started by pid %d", self.child)

    def _bg_done(self, ok: bool, err: str) -> None:
        secs = time.monotonic() - self.child_started
        self.child = None
        self.last_bgsave_secs = int(round(secs))
        landed, self.floor_pending = self.floor_pending, None
        if ok:
            self.floor = landed
            self.edge = self.child_dirty != self.dirty_at_save
            self.dirty_at_save = self.child_dirty
            self.last_save = int(time.time())
            self.last_status = "ok"
            self.saves += 1
            log.info("Background saving terminated with success (%.3fs)", secs)
        else:
            self.last_status = "err"
            self.last_error = err
            log.error("Background saving error: %s; %s is unchanged", err, self.path)
        token, self.child_token = self.child_token, None
        self.app.aof.rewrite_done(ok, token)
        if self.scheduled:
            self.scheduled = False
            self.bgsave()

    # ---- schedule and shutdown --------------------------------------------------------------

    def cron(self) -> None:
        if self.child is not None:
            return
        now = time.time()
        changes = self.changes()
        if not changes and not self.edge:
            return
        if self.last_status != "ok" and time.monotonic() - self.last_try < BGSAVE_RETRY_DELAY:
            return
        for secs, need in self.app.cfg.save:
            if changes and changes >= need and now - self.last_save >= secs:
                log.info("%d changes in %d seconds. Saving...", need, secs)
                self.bgsave()
                return
        # a member's file is what it comes back with after a crash, and the
        # group's GC waits for it (restart_floor): with changes since, or once
        # more after a save that took changes (the VV entries that heartbeats
        # advance lag the effects applied just before a save by up to one
        # heartbeat: one save later, on an idle node, they cover them)
        if self.floor is not None and now - self.last_save >= GC_SAVE_SECS and self.grouped():
            log.info(
                "%d changes since the last save %ds ago: saving so that GC can go on",
                changes,
                now - self.last_save,
            )
            self.bgsave()

    def grouped(self) -> bool:
        """This node has another active member (whose GC waits for its floor)."""
        me = self.app.node_id
        return any(m.node_id != me for m in self.app.repl.members.active())

    def shutdown(self, save: Optional[bool]) -> bool:
        """Save at clean shutdown (unless NOSAVE, or no schedule and no SAVE).
        Returns True if the node may stop."""
        if self.child is not None:
            try:
                os.kill(self.child, 9)
                os.waitpid(self.child, 0)
            except OSError:
                pass
            self.child = None
            self.app.aof.rewrite_done(None, self.child_token)
            self.child_token = None
        # with appendonly on, the snapshot is the log's base: a clean
        # shutdown saves it (unless NOSAVE), so the next start keeps the origin
        want = save if save is not None else bool(self.app.cfg.save) or self.app.aof.enabled
        if not want:
            return True
        try:
            self.save(final=True)
        except RespError as e:
            log.error("saving at shutdown failed: %s", e)
            return False
        self.release_lock()
        return True

    # ---- INFO -----------------------------------------------------------------

    def info(self) -> list[tuple[str, Any]]:
        cur = int(time.monotonic() - self.child_started) if self.child is not None else -1
        return [
            ("loading", 0),
            ("async_loading", 0),
            ("current_cow_peak", 0),
            ("current_fork_perc", "0.00"),
            ("current_save_keys_processed", 0),
            ("current_save_keys_total", 0),
            ("rdb_changes_since_last_save", self.changes()),
            ("rdb_bgsave_in_progress", 1 if self.child is not None else 0),
            ("rdb_last_save_time", self.last_save),
            ("rdb_last_bgsave_status", self.last_status),
            ("rdb_last_bgsave_time_sec", self.last_bgsave_secs),
            ("rdb_current_bgsave_time_sec", cur),
            ("rdb_saves", self.saves),
            ("rdb_last_load_keys_loaded", self.loaded_keys),
            ("rdb_last_load_time_sec", f"{self.load_secs:.3f}"),
            ("rdb_last_error", self.last_error.replace("\n", " ")),
            ("snapshot_file", self.path),
            *self.app.aof.info(),
        ]
