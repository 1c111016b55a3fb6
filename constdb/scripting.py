"""Lua scripting (EVAL and its family): one Lua 5.1 state per node (lupa),
set up as Redis 7.0 sets up its own: the redis.* API, the libraries Redis
loads (string, table, math, base without file access, cjson, cmsgpack, bit,
struct), read-only globals, Redis's conversions both ways.

A script runs on the event-loop thread with nothing else running: atomic on
its node. The commands it calls go through the normal dispatch (Client.call)
on the scripts' own client object, so every command works in scripts; their
write records form ONE backlog group (as an EXEC's), which peers apply
together. The script itself is never replicated: a peer only sees its effects.

A script running longer than busy-reply-threshold: a Lua count hook (every
HOOK_COUNT VM instructions) reads the clock; past the threshold the node is
marked busy (other clients' commands get BUSY, except those flagged
allow-busy, SCRIPT KILL among them) and the hook serves the other clients'
sockets itself (the event loop is inside this script), so SCRIPT KILL can
stop a script that has not written. The Lua glue is constdb/lua/prelude.lua;
the hot path (running a script, redis.call, EVALSHA) is compiled, in
constdb/_core/scriptcore.pyx (ScriptCore, this engine's base class).
FUNCTION libraries are replicated registers (constdb/functions.py); the
engine loads what they say (sync).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import select
import socket
import time
from pathlib import Path
from typing import Any, Optional

from lupa import lua51

from constdb._core.cmd_dump import crc64_of
from constdb._core.codec import RespError
from constdb._core.protocol import Client
from constdb._core.scriptcore import FORCE_PYTHON_ENV, Script, ScriptCore, ScriptError
from constdb.commands.common import REDIS_COMPAT_VERSION, int_arg
from constdb.eviction import OOM_ERR, out_of_memory
from constdb.functions import FunctionStore, encode_varint, read_varint
from constdb.scripting_libs import install_libs

log = logging.getLogger("constdb.scripting")

LUA_DIR = Path(__file__).parent / "lua"
# read at import: a process runs the Lua glue of the code it started with
PRELUDE = (LUA_DIR / "prelude.lua").read_bytes()

SHEBANG_FLAGS = ("no-writes", "allow-oom", "allow-stale", "no-cluster", "allow-cross-slot-keys")
UNKILLABLE = (
    "UNKILLABLE Sorry the script already executed write commands against the dataset."
    " You can either wait the script termination or kill the server in a hard way using"
    " the SHUTDOWN NOSAVE command."
)

LOG_LEVELS = (logging.DEBUG, logging.DEBUG, logging.INFO, logging.WARNING)

# FUNCTION DUMP's payload (ConstDB's own, as DUMP's in _core/cmd_dump.pyx):
# per loaded library u8 FUNC_DUMP_LIB and its code (varint length, bytes);
# then u16 FUNC_DUMP_VERSION and the CRC-64 (Redis's crc64) of what precedes.
# The version is above every RDB version: redis-server refuses the payload,
# and ConstDB refuses Redis's, as "version or checksum are wrong".
FUNC_DUMP_LIB = 0xF5
FUNC_DUMP_VERSION = 257


def _attribute_filter(obj: Any, name: str, setting: bool) -> str:
    """Scripts reach no Python attribute but an error's `err` (the sandbox)."""
    if name in (b"err", "err") and not setting and isinstance(obj, ScriptError):
        return name
    raise AttributeError("not accessible")


def _version_num(v: str) -> int:
    a, b, c = (int(x) for x in v.split("."))
    return (a << 16) | (b << 8) | c


class Library:
    __slots__ = ("name", "code", "functions")

    def __init__(self, name: bytes, code: bytes, functions: dict[bytes, Script]) -> None:
        self.name = name
        self.code = code
        self.functions = functions


FN_NAME = re.compile(rb"[A-Za-z0-9_]+")


def parse_library_meta(code: bytes) -> bytes:
    """The name of a FUNCTION LOAD library from its `#!lua name=...` line."""
    if not code.startswith(b"#!"):
        raise RespError("ERR Missing library metadata")
    end = code.find(b"\n")
    line = code[2:] if end < 0 else code[2:end]
    parts = line.split(b" ")
    if parts[0] != b"lua":
        raise RespError(f"ERR Engine '{parts[0].decode(errors='replace')}' not found")
    name = None
    for p in parts[1:]:
        if not p:
            continue
        if not p.startswith(b"name="):
            raise RespError(f"ERR Invalid metadata value given: {p.decode(errors='replace')}")
        name = p[5:]
    if name is None:
        raise RespError("ERR Library name was not given")
    if not FN_NAME.fullmatch(name):
        raise RespError(
            "ERR Library names can only contain letters, numbers, or underscores(_)"
            " and must be at least one character long"
        )
    return name


def parse_shebang(body: bytes) -> tuple[int, set[bytes]]:
    """(length of the shebang line, its flags) of a script; (0, set()) without one."""
    if not body.startswith(b"#!"):
        return 0, set()
    end = body.find(b"\n")
    line = body if end < 0 else body[:end]
    parts = line[2:].split(b" ")
    if parts[0] != b"lua":
        raise RespError(
            f"ERR Unexpected engine in script shebang: #!{parts[0].decode(errors='replace')}"
        )
    flags: set[bytes] = set()
    for p in parts[1:]:
        if not p:
            continue
        if not p.startswith(b"flags="):
            raise RespError(f"ERR Unknown lua shebang option: {p.decode(errors='replace')}")
        for f in p[6:].split(b","):
            if not f:
                continue
            if f.decode(errors="replace") not in SHEBANG_FLAGS:
                raise RespError(
                    f"ERR Unexpected flag in script shebang: {f.decode(errors='replace')}"
                )
            flags.add(f)
    return len(line), flags


class ScriptEngine(ScriptCore):
    """The node's Lua state, its script cache and the script running now."""

    def __init__(self, srv: Any, app: Any = None) -> None:
        self.srv = srv
        self.app = app
        self.scripts = {}
        self.numkeys = numkeys
        self.libraries: dict[bytes, Library] = {}
        self.functions: dict[bytes, Script] = {}  # every library's, by name
        self.running_fn = None
        self.running_argv = []
        self.client = Client(srv)  # the scripts' client: commands called by scripts run on it
        self.client.authed = True
        self.client.addr = "lua"  # MONITOR shows its commands as [0 lua], as Redis does
        self.rand_x = 0x1234ABCD330E  # Redis's rand48 state (math.random), never reseeded
        self.running = None  # the calling client while a script runs
        self.read_only = False
        self.wrote = False
        self.oom = False  # out of memory when the running script started
        self.killed = False
        self.start = 0.0
        self.served_eof: set[int] = set()
        self.listen_socks: Optional[dict[int, socket.socket]] = None
        self.accepted: list[tuple[Any, socket.socket]] = []  # connections the hook accepted
        self._new_state()
        self.lib_cache: dict[tuple[bytes, bytes], Library] = {}  # compiled, by (name, code)
        app_store = getattr(app, "functions", None)
        self.store = app_store if app_store is not None else FunctionStore()
        self.store.on_change = self.sync
        self.sync()
        self.table_from = self.lua.table_from

    # ---- the Lua state ------------------------------------------------------

    def _new_state(self) -> None:
        lua = lua51.LuaRuntime(
            encoding=None,
            register_eval=False,
            unpack_returned_tuples=True,
            attribute_filter=_attribute_filter,
        )
        self.lua = lua
        libs = lua.table_from(
            {
                b"version": REDIS_COMPAT_VERSION.encode(),
                b"version_num": _version_num(REDIS_COMPAT_VERSION),
            }
        )
        install_libs(lua)
        # redis.call / redis.pcall: scriptcore's C functions when Lua's C API
        # can be reached (native_off says why not), else the lupa path's
        fns = self.native_functions(lua, lua51.__file__)
        if fns is None and os.environ.get(FORCE_PYTHON_ENV, "") in ("", "0"):
            log.warning("scripts run through lupa: %s", self.native_off)
        call, pcall = fns if fns is not None else (self.lua_call, self.lua_pcall)
        loader = lua.execute(b"return loadstring(...)", PRELUDE, b"@prelude")
        (
            self._run,
            self._compile,
            self._parse,
            self._set_resp3,
            self._load_library,
            self._run_tables,
        ) = loader(
            call,
            pcall,
            self._errmsg,
            self._log,
            self._sha1hex,
            self._setresp,
            self._rand,
            self._srand,
            self._tick,
            libs,
        )
        self.native_refs(self._run_tables, self._parse)

    def flush(self) -> None:
        self.scripts.clear()

    # ---- the redis.* API's Python side -------------------------------------

    def _errmsg(self, e: Any) -> Any:
        """A Python exception raised in a script: (True, text) for a Redis
        error (an {err=...} table), (False, text) for a library's error (a
        Lua string error)."""
        if isinstance(e, ScriptError):
            return True, e.err
        if isinstance(e, BaseException):
            return False, str(e).encode("utf-8", "replace")
        return None

    def _log(self, *args: Any) -> None:
        if len(args) < 2:
            raise ScriptError(b"ERR redis.log() requires two arguments or more.")
        level = args[0]
        if type(level) not in (int, float):
            raise ScriptError(b"ERR First argument must be a number (log level).")
        if not 0 <= level <= 3:
            raise ScriptError(b"ERR Invalid debug level.")
        parts = [
            a if type(a) is bytes else b"%.14g" % a
            for a in args[1:]
            if type(a) in (bytes, int, float)
        ]
        log.log(LOG_LEVELS[int(level)], "%s", b" ".join(parts).decode("utf-8", "replace"))

    def _sha1hex(self, *args: Any) -> bytes:
        if len(args) != 1:
            raise ScriptError(b"ERR wrong number of arguments")
        a = args[0]
        s = a if type(a) is bytes else (b"%.14g" % a if type(a) in (int, float) else b"")
        return hashlib.sha1(s).hexdigest().encode()

    def _setresp(self, *args: Any) -> None:
        if len(args) != 1:
            raise ScriptError(b"ERR redis.setresp() requires one argument.")
        v = args[0]
        if v not in (2, 3) or type(v) not in (int, float):
            raise ScriptError(b"ERR RESP version must be 2 or 3.")
        self.client.resp = int(v)
        self.client.out.resp3 = v == 3
        self._set_resp3(v == 3)

    def _rand(self) -> float:
        self.rand_x = (0x5DEECE66D * self.rand_x + 0xB) & 0xFFFFFFFFFFFF
        return ((self.rand_x >> 17) % 0x7FFFFFFF) / 0x7FFFFFFF

    def _srand(self, seed: float) -> None:
        s = int(seed) & 0xFFFFFFFF
        self.rand_x = (s << 16) | 0x330E

    # ---- busy scripts -------------------------------------------------------

    def _tick(self) -> bool:
        """Called by the Lua hook every HOOK_COUNT instructions: past the
        threshold, mark the node busy and serve the other clients (SCRIPT KILL).
        True: the script is killed."""
        if self.killed:
            return True
        limit = self._threshold_ms()
        if limit > 0 and (time.monotonic() - self.start) * 1000.0 >= limit:
            if not self.srv.script_busy:
                self.srv.script_busy = True
                log.warning(
                    "Slow script detected: still in execution after %d milliseconds."
                    " You can try killing the script using the SCRIPT KILL command.",
                    int((time.monotonic() - self.start) * 1000),
                )
            self._serve_others()
        return self.killed

    def _threshold_ms(self) -> int:
        cfg = getattr(self.app, "cfg", None)
        return getattr(cfg, "busy_reply_threshold", 5000) if cfg is not None else 5000

    def _serve_others(self) -> None:
        """Accept new connections and read what the other clients sent, and
        run it (their commands get BUSY but SCRIPT KILL and the allow-busy
        ones): the event loop cannot, it is inside this script. TLS
        connections wait for the script's end."""
        srv = self.srv
        ks = srv.ks
        # the replies of the turn so far (the event loop would write them at
        # its end: it waits for this script), but the running client's
        srv.write_pending(self.running)
        byfd = {}
        for cl in list(srv.clients.values()):
            fd = cl.fd
            if cl is self.running or fd < 0 or fd in self.served_eof or cl.closing:
                continue
            tr = cl.transport
            if tr is None or tr.get_extra_info("sslcontext") is not None:
                continue
            byfd[fd] = cl
        listeners = self._listeners()
        try:
            ready, _, _ = select.select(list(byfd) + list(listeners), [], [], 0)
        except (OSError, ValueError) as e:
            log.warning("busy script: cannot poll the clients: %s", e)
            return
        now = ks.now
        try:
            for fd in ready:
                if fd in listeners:
                    self._accept(listeners[fd])
                    continue
                try:
                    data = os.read(fd, 65536)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    self.served_eof.add(fd)
                    continue
                if not data:
                    # end of input: left for the event loop to see after the script
                    self.served_eof.add(fd)
                    continue
                byfd[fd].data_received(data)
        finally:
            ks.now = now
        srv.write_pending(self.running)  # what was run here

    def _listeners(self) -> dict[int, socket.socket]:
        """The plain listening sockets (fd -> a socket object of our own)."""
        if self.listen_socks is None:
            self.listen_socks = {}
            lst = getattr(self.app, "listener", None)
            for s in getattr(lst, "sockets", None) or ():
                try:
                    dup = socket.socket(fileno=os.dup(s.fileno()))
                except OSError:
                    continue
                dup.setblocking(False)
                self.listen_socks[s.fileno()] = dup
        return self.listen_socks

    def _accept(self, lsock: socket.socket) -> None:
        try:
            conn, _ = lsock.accept()
        except OSError:
            return
        conn.setblocking(False)
        cl = Client(self.srv)
        cl.connection_made(_BusyTransport(conn))
        self.accepted.append((cl, conn))

    def _end_busy(self) -> None:
        """The script ended: the event loop takes over what the hook accepted."""
        self.srv.script_busy = False
        self.served_eof.clear()
        for s in (self.listen_socks or {}).values():
            s.close()  # a dup: the listener's own descriptor stays open
        self.listen_socks = None
        accepted, self.accepted = self.accepted, []
        loop = getattr(self.app, "loop", None)
        for cl, conn in accepted:
            if loop is None or cl.closing:
                cl.connection_lost(None)
                conn.close()
                continue
            loop.create_task(loop.connect_accepted_socket(lambda cl=cl: _Handover(cl), conn))

    def kill(self) -> None:
        if self.running is None:
            raise RespError("NOTBUSY No scripts in execution right now.")
        if self.wrote:
            raise RespError(UNKILLABLE)
        self.killed = True

    # ---- running ------------------------------------------------------------

    def get(self, body: bytes) -> Script:
        """The cached script of this body, compiled on first use."""
        sha = hashlib.sha1(body).hexdigest().encode()
        s = self.scripts.get(sha)
        if s is None:
            s = self.create(sha, body)
        return s

    def create(self, sha: bytes, body: bytes) -> Script:
        skip, flags = parse_shebang(body)
        src = body[skip:] if skip else body
        r = self._compile(src)
        if isinstance(r, tuple):
            fn, err = r
        else:
            fn, err = r, None
        if fn is None:
            msg = err.decode("utf-8", "replace") if isinstance(err, bytes) else str(err)
            raise RespError(f"ERR Error compiling script (new function): {msg}")
        s = Script(sha, body, fn, b"no-writes" in flags, skip > 0)
        s.allow_oom = b"allow-oom" in flags
        self.scripts[sha] = s
        return s

    def _build_library(self, name: bytes, code: bytes, old: Any, check: bool) -> Library:
        """Compile a library's code and register its functions (nothing is
        loaded yet). check: FUNCTION LOAD's collision checks against the
        loaded libraries (old: the library it replaces)."""
        r = self._load_library(code[code.index(b"\n") :] if b"\n" in code else b"")
        fns, err = r if isinstance(r, tuple) else (r, None)
        if fns is None:
            raise RespError((err or b"ERR Error registering functions").decode("utf-8", "replace"))
        lib = Library(name, code, {})
        for fname, entry in sorted(fns.items()):
            cb, flags, desc = entry[1], entry[2], entry[3]
            if not FN_NAME.fullmatch(fname):
                raise RespError(
                    "ERR Function names can only contain letters, numbers, or underscores(_)"
                    " and must be at least one character long"
                )
            other = self.functions.get(fname) if check else None
            if other is not None and other.lib is not old:
                raise RespError(f"ERR Function {fname.decode(errors='replace')} already exists")
            fl = [flags[i] for i in range(1, len(flags) + 1)]
            for f in fl:
                if f.decode(errors="replace") not in SHEBANG_FLAGS:
                    raise RespError("ERR Error registering functions: unknown flag given")
            s = Script(fname, b"", cb, b"no-writes" in fl, True)
            s.allow_oom = b"allow-oom" in fl
            s.is_fn = True
            s.flags = fl
            s.desc = desc
            s.lib = lib
            lib.functions[fname] = s
        return lib

    def compile_library(self, code: bytes, replace: bool) -> Library:
        """FUNCTION LOAD's checks and compilation: the library, not loaded."""
        name = parse_library_meta(code)
        old = self.libraries.get(name)
        if old is not None and not replace:
            raise RespError(f"ERR Library '{name.decode(errors='replace')}' already exists")
        lib = self._build_library(name, code, old, True)
        self.lib_cache[(name, code)] = lib
        return lib

    def load_library(self, code: bytes, replace: bool) -> bytes:
        """FUNCTION LOAD: the library's name. Its register is written (a
        record, replicated); the store's change loads it (sync)."""
        lib = self.compile_library(code, replace)
        self.store.write(lib.name, code)
        return lib.name

    def delete_library(self, name: bytes) -> None:
        """FUNCTION DELETE: a tombstone in the library's register (a loaded
        or a shadowed library)."""
        reg = self.store.regs.get(name)
        if reg is None or reg.code is None:
            raise RespError("ERR Library not found")
        self.store.write(name, None)

    def check_oom(self, s: Optional[Script], body: Optional[bytes] = None) -> None:
        """Redis's deny-oom of a script with flags (a shebang, or a
        function) that allow neither writing nor OOM: refused while the node
        is out of memory, before anything else (processCommand). A script
        without flags is checked at its first write instead (ScriptCore._exec)."""
        if s is None:
            if body is None:
                return
            try:
                skip, flags = parse_shebang(body)
            except RespError:
                return  # (the script's run reports it)
            if not skip or flags & {b"no-writes", b"allow-oom"}:
                return
        elif not s.shebang or s.no_writes or s.allow_oom:
            return
        if out_of_memory(self.srv):
            raise RespError(OOM_ERR)

    def flush_libraries(self) -> None:
        """FUNCTION FLUSH: a tombstone for every library this node holds."""
        for reg in self.store.live():
            self.store.write(reg.name, None)

    def dump_libraries(self) -> bytes:
        """FUNCTION DUMP's payload (FUNC_DUMP_* above)."""
        out = bytearray()
        for name in sorted(self.libraries):
            code = self.libraries[name].code
            out.append(FUNC_DUMP_LIB)
            out += encode_varint(len(code))
            out += code
        out += FUNC_DUMP_VERSION.to_bytes(2, "little")
        out += crc64_of(bytes(out)).to_bytes(8, "little")
        return bytes(out)

    def restore_libraries(self, payload: bytes, policy: bytes) -> None:
        """FUNCTION RESTORE: the payload checked and every library compiled
        before any register is written."""
        n = len(payload)
        if (
            n < 10
            or int.from_bytes(payload[n - 10 : n - 8], "little") != FUNC_DUMP_VERSION
            or int.from_bytes(payload[n - 8 :], "little") != crc64_of(payload[: n - 8])
        ):
            raise RespError("ERR DUMP payload version or checksum are wrong")
        libs: dict[bytes, Library] = {}
        fns: set[bytes] = set()
        pos, end = 0, n - 10
        while pos < end:
            if payload[pos] != FUNC_DUMP_LIB:
                raise RespError("ERR given type is not a function")
            try:
                ln, pos = read_varint(payload, pos + 1)
            except ValueError:
                ln = end
            if pos + ln > end:
                raise RespError("ERR Failed loading library payload")
            code = payload[pos : pos + ln]
            pos += ln
            name = parse_library_meta(code)
            if name in libs:
                raise RespError(f"ERR Library {name.decode(errors='replace')} already exists")
            lib = self.lib_cache.get((name, code)) or self._build_library(name, code, None, False)
            for f in lib.functions:
                if f in fns:
                    raise RespError(f"ERR Function {f.decode(errors='replace')} already exists")
                fns.add(f)
            libs[name] = lib
        if policy != b"FLUSH":
            replaced = set()
            for name in libs:
                if name in self.libraries:
                    if policy != b"REPLACE":
                        raise RespError(
                            f"ERR Library {name.decode(errors='replace')} already exists"
                        )
                    replaced.add(name)
            for lib in libs.values():
                for f in lib.functions:
                    other = self.functions.get(f)
                    if other is not None and other.lib.name not in replaced:
                        raise RespError(f"ERR Function {f.decode(errors='replace')} already exists")
        else:
            for reg in self.store.live():
                if reg.name not in libs:
                    self.store.write(reg.name, None)
        for name, lib in libs.items():
            self.lib_cache[(name, lib.code)] = lib
            self.store.write(name, lib.code)

    def sync(self) -> None:
        """Load what the store's registers say (functions.py has the rule):
        newest first, a library whose function names a newer loaded one
        took is shadowed."""
        libs: dict[bytes, Library] = {}
        fns: dict[bytes, Script] = {}
        cache: dict[tuple[bytes, bytes], Library] = {}
        for reg in self.store.live():
            key = (reg.name, reg.code)
            lib = self.lib_cache.get(key)
            if lib is None:
                try:
                    lib = self._build_library(reg.name, reg.code, None, False)
                except RespError as e:
                    log.warning("library %r cannot be loaded: %s", reg.name, e)
                    continue
            cache[key] = lib
            if any(f in fns for f in lib.functions):
                continue
            libs[reg.name] = lib
            fns.update(lib.functions)
        self.lib_cache = cache
        self.libraries = libs
        self.functions = fns


class _BusyTransport:
    """The transport of a connection accepted while a script is busy, until
    the event loop takes it (_Handover): replies are written at once."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.closed = False

    def write(self, data: bytes) -> None:
        if self.closed:
            return
        try:
            self.sock.send(data)
        except OSError:
            self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        try:
            if name == "peername":
                return self.sock.getpeername()
            if name == "sockname":
                return self.sock.getsockname()
        except OSError:
            return default
        if name == "socket":
            return self.sock
        return default


class _Handover:
    """The protocol of a connection accepted by a busy script's hook, once
    the event loop has it: everything goes to its Client."""

    def __init__(self, cl: Any) -> None:
        self.cl = cl

    def connection_made(self, transport: Any) -> None:
        self.cl.transport = transport
        s = transport.get_extra_info("socket")
        if s is not None:
            self.cl.fd = s.fileno()

    def data_received(self, data: bytes) -> None:
        self.cl.data_received(data)

    def eof_received(self) -> Any:
        return self.cl.eof_received()

    def connection_lost(self, exc: Any) -> None:
        self.cl.connection_lost(exc)

    def pause_writing(self) -> None:
        self.cl.pause_writing()

    def resume_writing(self) -> None:
        self.cl.resume_writing()


_ENGINES: dict[int, ScriptEngine] = {}  # id(Server) -> its engine


def engine(c: Any) -> ScriptEngine:
    """The node's script engine (made on first use)."""
    srv = c.srv
    e = _ENGINES.get(id(srv))
    if e is None or e.srv is not srv:
        e = _ENGINES[id(srv)] = ScriptEngine(srv, srv.app)
        if srv.app is not None:
            srv.app.scripting = e
        # from now on EVALSHA goes from the command table straight into the
        # engine's compiled path (the Python handlers only made the engine)
        for name, fn in ((b"evalsha", e.evalsha), (b"evalsha_ro", e.evalsha_ro)):
            cmd = srv.command(name)
            if cmd is not None:
                cmd.pyfn = fn
    return e


def numkeys(argv: list[bytes]) -> int:
    n = int_arg(argv[2])
    if n < 0:
        raise RespError("ERR Number of keys can't be negative")
    if n > len(argv) - 3:
        raise RespError("ERR Number of keys can't be greater than number of args")
    return n
