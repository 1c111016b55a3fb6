"""Admin and connection commands in Python: AUTH HELLO RESET CLIENT COMMAND
CONFIG INFO TIME SHUTDOWN LOLWUT. They are off the hot path; each returns its
reply as a value (see WBuf.pyvalue) or raises RespError. Their arguments,
errors and replies follow Redis 7.0 (CLIENT SETINFO and the lib-name/lib-ver
fields of CLIENT LIST follow Redis 7.2, which redis-py uses)."""

from __future__ import annotations

import hmac
import os
import platform
import re
import resource
import sys
import time
from typing import Any, Callable, Optional

from constdb import __version__
from constdb._core.codec import RespError, Status, Verbatim
from constdb._core.keyspace import glob_match
from constdb._core.protocol import NO_REPLY
from constdb.config import (
    BY_NAME,
    REDIS_LOGLEVEL_IN,
    REDIS_LOGLEVEL_OUT,
    SPEC,
    ConfigError,
    parse_runtime,
)

OK = Status("OK")
REDIS_COMPAT_VERSION = "7.0.15"  # the Redis version ConstDB answers as (HELLO, INFO)
SYNTAX = "ERR syntax error"
LONG_MAX = 2**63 - 1


def _int_arg(b: bytes, msg: str = "ERR value is not an integer or out of range") -> int:
    """Redis's string2ll: a 64-bit decimal integer, no sign but '-', no spaces."""
    if not re.fullmatch(rb"-?(0|[1-9][0-9]*)", b):
        raise RespError(msg)
    v = int(b)
    if not -(2**63) <= v < 2**63:
        raise RespError(msg)
    return v


def _s(b: bytes) -> str:
    return b.decode("utf-8", "replace")


def register(app: Any) -> None:
    srv = app.srv

    # ---- AUTH / HELLO / RESET ------------------------------------------------------------

    def check_password(user: bytes, password: bytes) -> bool:
        req = srv.requirepass
        if user != b"default":
            return False
        if req is None:
            return True
        return hmac.compare_digest(password, req)

    def cmd_auth(c, argv):
        if len(argv) > 3:
            raise RespError(SYNTAX)
        if srv.requirepass is None and len(argv) == 2:
            raise RespError(
                "ERR AUTH <password> called without any password configured for the default user. "
                "Are you sure your configuration is correct?"
            )
        user, pw = (b"default", argv[1]) if len(argv) == 2 else (argv[1], argv[2])
        if not check_password(user, pw):
            raise RespError("WRONGPASS invalid username-password pair or user is disabled.")
        c.authed = True
        return OK

    def cmd_hello(c, argv):
        ver = 0
        i = 1
        if len(argv) > 1:
            ver = _int_arg(argv[1], "ERR Protocol version is not an integer or out of range")
            if ver < 2 or ver > 3:
                raise RespError("NOPROTO unsupported protocol version")
            i = 2
        user = pw = name = None
        while i < len(argv):
            opt = argv[i].upper()
            more = len(argv) - i - 1
            if opt == b"AUTH" and more >= 2:
                user, pw = argv[i + 1], argv[i + 2]
                i += 3
            elif opt == b"SETNAME" and more >= 1:
                name = argv[i + 1]
                i += 2
            else:
                raise RespError(f"ERR Syntax error in HELLO option '{_s(argv[i])}'")
        if user is not None:
            if not check_password(user, pw):
                raise RespError("WRONGPASS invalid username-password pair or user is disabled.")
            c.authed = True
        if not c.authed:
            raise RespError(
                "NOAUTH HELLO must be called with the client already authenticated, otherwise the "
                "HELLO AUTH <user> <pass> option can be used to authenticate the client and select "
                "the RESP protocol version at the same time"
            )
        if name is not None:
            _check_name(name)
            c.name = name or None
        if ver:
            c.resp = ver
            c.out.resp3 = ver == 3
        return {
            b"server": b"redis",
            b"version": REDIS_COMPAT_VERSION.encode(),
            b"proto": c.resp,
            b"id": c.id,
            b"mode": b"standalone",
            b"role": b"master",
            b"modules": [],
        }

    def cmd_reset(c, argv):
        # Redis's clearClientConnectionState
        c.discard_multi()
        c.resp = 2
        c.out.resp3 = False
        c.name = None
        c.authed = srv.requirepass is None
        return Status("RESET")

    srv.register_py(b"auth", cmd_auth)
    srv.register_py(b"hello", cmd_hello)
    srv.register_py(b"reset", cmd_reset)

    # ---- CLIENT ----------------------------------------------------------------------------

    def _check_name(name: bytes) -> None:
        if any(ch < 33 or ch > 126 for ch in name):
            raise RespError(
                "ERR Client names cannot contain spaces, newlines or special characters."
            )

    def client_line(c) -> str:
        now = time.time()
        flags = ""
        if c.in_multi:
            flags += "x"
        if c.blocked:
            flags += "b"
        if c.cas_dirty:
            flags += "d"
        if c.closing:
            flags += "c"
        flags = flags or "N"
        events = "rw" if c.obuf else "r"
        return (
            f"id={c.id} addr={c.addr} laddr={c.laddr} fd={c.fd} "
            f"name={_s(c.name or b'')} age={int(now - c.ctime)} "
            f"idle={int(max(0, now - c.last_interaction))} flags={flags} db=0 sub=0 psub=0 ssub=0 "
            f"multi={c.multi_count} qbuf={c.qbuf} qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 "
            f"obl={c.obuf} oll=0 omem=0 tot-mem=0 events={events} cmd={_s(c.last_cmd_name)} "
            f"user=default redir=-1 resp={c.resp} "
            f"lib-name={_s(c.lib_name or b'')} lib-ver={_s(c.lib_ver or b'')}"
        )

    app.client_line = client_line

    def client_type(t: bytes) -> bytes:
        t = t.lower()
        if t not in (b"normal", b"master", b"replica", b"slave", b"pubsub"):
            raise RespError(f"ERR Unknown client type '{_s(t)}'")
        return b"replica" if t == b"slave" else t

    def client_setname(c, argv):
        _check_name(argv[2])
        c.name = argv[2] or None
        return OK

    def client_setinfo(c, argv):
        attr = argv[2].lower()
        val = argv[3]
        if attr not in (b"lib-name", b"lib-ver"):
            raise RespError(f"ERR Unrecognized option '{_s(argv[2])}'")
        if any(ch < 33 or ch > 126 for ch in val):
            raise RespError(
                f"ERR {_s(argv[2])} cannot contain spaces, newlines or special characters."
            )
        if attr == b"lib-name":
            c.lib_name = val or None
        else:
            c.lib_ver = val or None
        return OK

    def client_list(c, argv):
        clients = sorted(srv.clients.values(), key=lambda x: x.id)
        if len(argv) == 4 and argv[2].lower() == b"type":
            if client_type(argv[3]) != b"normal":
                clients = []
        elif len(argv) > 3 and argv[2].lower() == b"id":
            chosen = []
            for a in argv[3:]:
                cid = _int_arg(a, "ERR Invalid client ID")
                x = srv.clients.get(cid)
                if x is not None:
                    chosen.append(x)
            clients = chosen
        elif len(argv) != 2:
            raise RespError(SYNTAX)
        return Verbatim("".join(client_line(x) + "\n" for x in clients).encode())

    def client_kill(c, argv):
        addr = laddr = None
        ctype = None
        cid = 0
        skipme = True
        if len(argv) == 3:
            addr = _s(argv[2])
            skipme = False
        else:
            i = 2
            while i < len(argv):
                opt = argv[i].lower()
                more = i + 1 < len(argv)
                if opt == b"id" and more:
                    cid = _int_arg(argv[i + 1], "ERR client-id should be greater than 0")
                    if cid < 1:
                        raise RespError("ERR client-id should be greater than 0")
                elif opt == b"type" and more:
                    ctype = client_type(argv[i + 1])
                elif opt == b"addr" and more:
                    addr = _s(argv[i + 1])
                elif opt == b"laddr" and more:
                    laddr = _s(argv[i + 1])
                elif opt == b"user" and more:
                    if argv[i + 1] != b"default":
                        raise RespError(f"ERR No such user '{_s(argv[i + 1])}'")
                elif opt == b"skipme" and more:
                    v = argv[i + 1].lower()
                    if v not in (b"yes", b"no"):
                        raise RespError(SYNTAX)
                    skipme = v == b"yes"
                else:
                    raise RespError(SYNTAX)
                i += 2
        killed = 0
        close_self = False
        for x in sorted(srv.clients.values(), key=lambda x: x.id):
            if addr is not None and x.addr != addr:
                continue
            if laddr is not None and x.laddr != laddr:
                continue
            if ctype is not None and ctype != b"normal":
                continue
            if cid and x.id != cid:
                continue
            if x is c and skipme:
                continue
            if x is c:
                close_self = True
            else:
                x.close()
            killed += 1
        if len(argv) == 3:
            if not killed:
                raise RespError("ERR No such client")
            reply: Any = OK
        else:
            reply = killed
        if close_self:
            c.write_reply(reply)
            c.close_after_reply()
            return NO_REPLY
        return reply

    def client_no_evict(c, argv):
        if argv[2].lower() not in (b"on", b"off"):
            raise RespError(SYNTAX)
        return OK

    CLIENT_HELP = [
        "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "GETNAME",
        "    Return the name of the current connection.",
        "ID",
        "    Return the ID of the current connection.",
        "INFO",
        "    Return information about the current client connection.",
        "KILL <ip:port>",
        "    Kill connection made from <ip:port>.",
        "KILL <option> <value> [<option> <value> [...]]",
        "    Kill connections. Options are:",
        "    * ADDR (<ip:port>|<unixsocket>:0)",
        "      Kill connections made from the specified address",
        "    * LADDR (<ip:port>|<unixsocket>:0)",
        "      Kill connections made to specified local address",
        "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
        "      Kill connections by type.",
        "    * USER <username>",
        "      Kill connections authenticated by <username>.",
        "    * SKIPME (YES|NO)",
        "      Skip killing current connection (default: yes).",
        "LIST [options ...]",
        "    Return information about client connections. Options:",
        "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
        "      Return clients of specified type.",
        "SETNAME <name>",
        "    Assign the name <name> to the current connection.",
        "SETINFO <option> <value>",
        "    Set client meta attr. Options are:",
        "    * LIB-NAME: the client lib name.",
        "    * LIB-VER: the client lib version.",
        "NO-EVICT (ON|OFF)",
        "    Protect current client connection from eviction.",
        "HELP",
        "    Prints this help.",
    ]

    def cmd_container(name: str) -> Callable:
        def run(c, argv):  # reached only without a subcommand: the arity check refuses it
            raise RespError(f"ERR wrong number of arguments for '{name}' command")

        return run

    srv.register_py(b"client", cmd_container("client"))
    srv.register_py(b"client|id", lambda c, a: c.id)
    srv.register_py(b"client|getname", lambda c, a: c.name)
    srv.register_py(b"client|setname", client_setname)
    srv.register_py(b"client|setinfo", client_setinfo)
    srv.register_py(b"client|list", client_list)
    srv.register_py(b"client|info", lambda c, a: Verbatim((client_line(c) + "\n").encode()))
    srv.register_py(b"client|kill", client_kill)
    srv.register_py(b"client|no-evict", client_no_evict)
    srv.register_py(b"client|help", lambda c, a: [Status(x) for x in CLIENT_HELP])

    from constdb.commands import introspection, register_handlers

    register_handlers(srv, [introspection])

    # ---- CONFIG ----------------------------------------------------------------------------

    def redis_name(name: str) -> str:
        return name.replace("_", "-")

    # Redis's names for ConstDB keys (CONFIG GET/SET accept both)
    aliases = {
        "bind": "ip",
        "dir": "work_dir",
        "repl-backlog-size": "repl_backlog_limit",
        "loglevel": "log_level",
        "logfile": "log",
        "daemonize": "daemon",
    }
    # Redis parameters that have one fixed value here
    fixed = {
        "appendonly": "no",
        "databases": "1",
        "maxmemory": "0",
        "maxmemory-policy": "noeviction",
        "cluster-enabled": "no",
    }

    def config_value(alias: str, name: str) -> str:
        v = app.cfg.get(name)
        if alias == "dir":
            return os.path.abspath(v)
        if alias == "loglevel":
            return REDIS_LOGLEVEL_OUT.get(v, v.lower())
        return _config_str(name, v)

    def config_items() -> list[tuple[str, str]]:
        items = [(redis_name(k.name), config_value(redis_name(k.name), k.name)) for k in SPEC]
        items += [(alias, config_value(alias, target)) for alias, target in aliases.items()]
        items += list(fixed.items())
        return items

    def resolve(raw: bytes) -> Optional[str]:
        """The SPEC key a CONFIG SET/GET name refers to (any case, - or _)."""
        n = _s(raw).lower()
        if n in aliases:
            return aliases[n]
        n = n.replace("-", "_")
        return n if n in BY_NAME else None

    def config_get(c, argv):
        items = config_items()
        out: dict[bytes, bytes] = {}
        for pat in argv[2:]:
            if not any(ch in pat for ch in b"*?["):
                # an exact name comes back as it was asked (Redis 7.0)
                p = _s(pat).lower()
                p2 = p.replace("_", "-")
                if any(k.lower() == pat.lower() for k in out):
                    continue
                for k, v in items:
                    if k == p or k == p2:
                        out[pat] = v.encode()
                        break
                continue
            p = pat.lower().replace(b"_", b"-")
            for k, v in items:
                kb = k.encode()
                if glob_match(p, kb, True) and kb not in out:
                    out[kb] = v.encode()
        return out

    def config_set(c, argv):
        if len(argv) % 2:
            raise RespError(SYNTAX)
        pairs = []
        bad_name = None
        err = None
        for i in range(2, len(argv), 2):
            raw = argv[i]
            name = resolve(raw)
            fixed_name = _s(raw).lower() in fixed
            if name is None and not fixed_name:
                if bad_name is None:
                    bad_name = raw
                continue
            if bad_name is not None or err is not None:
                continue
            if fixed_name or not BY_NAME[name].runtime:
                err = (raw, "can't set immutable config")
                continue
            if any(p[0] == name for p in pairs):
                err = (raw, "duplicate parameter")
                continue
            pairs.append((name, raw, argv[i + 1]))
        if bad_name is not None:
            raise RespError(
                f"ERR Unknown option or number of arguments for CONFIG SET - '{_s(bad_name)}'"
            )
        if err is not None:
            raise RespError(
                f"ERR CONFIG SET failed (possibly related to argument '{_s(err[0])}') - {err[1]}"
            )
        new = {}
        for name, raw, val in pairs:
            try:
                if raw.lower() == b"loglevel":
                    # Redis's names for Redis's parameter
                    v = REDIS_LOGLEVEL_IN.get(_s(val).lower())
                    if v is None:
                        raise ConfigError(
                            "argument(s) must be one of the following: "
                            "debug, verbose, notice, warning"
                        )
                    new[name] = v
                    continue
                new[name] = parse_runtime(BY_NAME[name], _s(val))
            except ConfigError as e:
                canonical = next(
                    (a for a, t in aliases.items() if t == name and a == _s(raw).lower()),
                    redis_name(name),
                )
                raise RespError(
                    f"ERR CONFIG SET failed (possibly related to argument '{canonical}') - {e}"
                ) from None
        for name, v in new.items():
            app.cfg.set(name, v)
        app.apply_config()
        return OK

    def config_resetstat(c, argv):
        srv.total_commands = 0
        srv.total_connections = 0
        srv.rejected_connections = 0
        srv.net_input_bytes = 0
        srv.net_output_bytes = 0
        srv.total_errors = 0
        srv.error_counts.clear()
        app.ks.hits = 0
        app.ks.misses = 0
        app.ks.expired_keys = 0
        for cmd in srv.all_commands():
            cmd.calls = 0
            cmd.failed = 0
            cmd.rejected = 0
            cmd.usec = 0
        reset = getattr(app, "reset_stats", None)
        if reset is not None:
            reset()
        return OK

    def config_rewrite(c, argv):
        if app.cfg.path is None:
            raise RespError("ERR The server is running without a config file")
        raise RespError(
            f"ERR Rewriting config file: ConstDB does not rewrite {app.cfg.path}; edit it instead"
        )

    CONFIG_HELP = [
        "CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "GET <pattern>",
        "    Return parameters matching the glob-like <pattern> and their values.",
        "SET <directive> <value>",
        "    Set the configuration <directive> to <value>.",
        "RESETSTAT",
        "    Reset statistics reported by the INFO command.",
        "REWRITE",
        "    Rewrite the configuration file.",
        "HELP",
        "    Prints this help.",
    ]

    srv.register_py(b"config", cmd_container("config"))
    srv.register_py(b"config|get", config_get)
    srv.register_py(b"config|set", config_set)
    srv.register_py(b"config|resetstat", config_resetstat)
    srv.register_py(b"config|rewrite", config_rewrite)
    srv.register_py(b"config|help", lambda c, a: [Status(x) for x in CONFIG_HELP])

    # ---- INFO, TIME, SHUTDOWN, LOLWUT ----------------------------------------------------

    def cmd_info(c, argv):
        wanted = [_s(a).lower() for a in argv[1:]] or ["default"]
        return Verbatim(info_text(app, wanted).encode())

    srv.register_py(b"info", cmd_info)

    def cmd_time(c, argv):
        t = time.time_ns() // 1000
        return [str(t // 1_000_000).encode(), str(t % 1_000_000).encode()]

    srv.register_py(b"time", cmd_time)

    def cmd_shutdown(c, argv):
        nosave = save = abort = force = False
        for a in argv[1:]:
            u = a.upper()
            if u == b"NOSAVE":
                nosave = True
            elif u == b"SAVE":
                save = True
            elif u == b"FORCE":
                force = True
            elif u == b"NOW":
                pass
            elif u == b"ABORT":
                abort = True
            else:
                raise RespError(SYNTAX)
        if (abort and len(argv) > 2) or (nosave and save):
            raise RespError(SYNTAX)
        if abort:
            raise RespError("ERR No shutdown in progress.")
        app.shutdown_command(not nosave if (nosave or save) else None, force)
        return NO_REPLY

    srv.register_py(b"shutdown", cmd_shutdown)

    def cmd_lolwut(c, argv):
        return Verbatim(f"ConstDB ver. {__version__}\n".encode())

    srv.register_py(b"lolwut", cmd_lolwut)


def _config_str(name: str, value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if name == "save":
        return " ".join(f"{a} {b}" for a, b in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _human(n: float) -> str:
    """Redis's bytesToHuman."""
    for unit in ("B", "K", "M", "G", "T", "P"):
        if n < 1024 or unit == "P":
            return f"{int(n)}B" if unit == "B" else f"{n:.2f}{unit}"
        n /= 1024
    return f"{n}"


def _rss() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _total_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return 0


def info_sections(app: Any) -> dict[str, Callable[[], list[tuple[str, Any]]]]:
    """INFO's sections, in Redis's order, with Redis's field names (and a few
    ConstDB fields). Other parts of the node extend them through hooks on app:
    replication_info(), persistence_info(), stats_info()."""
    srv = app.srv
    ks = app.ks
    cfg = app.cfg

    def server():
        up = int(time.time() - app.started)
        return [
            ("redis_version", REDIS_COMPAT_VERSION),
            ("redis_git_sha1", "00000000"),
            ("redis_git_dirty", 0),
            ("redis_build_id", "0"),
            ("redis_mode", "standalone"),
            ("constdb_version", __version__),
            ("os", f"{platform.system()} {platform.release()} {platform.machine()}"),
            ("arch_bits", 64 if sys.maxsize > 2**32 else 32),
            ("monotonic_clock", "POSIX clock_gettime"),
            ("multiplexing_api", "uvloop"),
            ("atomicvar_api", "none"),
            ("python_version", platform.python_version()),
            ("process_id", os.getpid()),
            ("process_supervised", "no"),
            ("run_id", app.run_id),
            ("tcp_port", cfg.port),
            ("server_time_usec", time.time_ns() // 1000),
            ("uptime_in_seconds", up),
            ("uptime_in_days", up // 86400),
            ("hz", cfg.hz),
            ("configured_hz", cfg.hz),
            ("lru_clock", int(time.time()) & ((1 << 24) - 1)),
            ("executable", os.path.abspath(sys.argv[0]) if sys.argv and sys.argv[0] else ""),
            ("config_file", os.path.abspath(cfg.path) if cfg.path else ""),
            ("io_threads_active", 0),
            ("node_id", app.node_id),
            ("node_alias", app.alias),
        ]

    def clients():
        cl = list(srv.clients.values())
        return [
            ("connected_clients", len(cl)),
            ("cluster_connections", 0),
            ("maxclients", srv.maxclients),
            ("client_recent_max_input_buffer", max((c.qbuf for c in cl), default=0)),
            ("client_recent_max_output_buffer", max((c.obuf for c in cl), default=0)),
            ("blocked_clients", sum(1 for c in cl if c.blocked)),
            ("tracking_clients", 0),
            ("clients_in_timeout_table", 0),
        ]

    def memory():
        rss = _rss()
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        total = _total_memory()
        bl = app.backlog.size
        return [
            ("used_memory", rss),
            ("used_memory_human", _human(rss)),
            ("used_memory_rss", rss),
            ("used_memory_rss_human", _human(rss)),
            ("used_memory_peak", peak),
            ("used_memory_peak_human", _human(peak)),
            ("used_memory_peak_perc", f"{100.0 * rss / peak if peak else 0:.2f}%"),
            ("total_system_memory", total),
            ("total_system_memory_human", _human(total)),
            ("maxmemory", 0),
            ("maxmemory_human", "0B"),
            ("maxmemory_policy", "noeviction"),
            ("mem_fragmentation_ratio", "1.00"),
            ("mem_replication_backlog", bl),
            ("mem_backlog", bl),
            ("mem_backlog_human", _human(bl)),
            ("mem_allocator", "pymalloc"),
        ]

    def persistence():
        extra = getattr(app, "persistence_info", None)
        if extra is not None:
            return extra()
        return [
            ("loading", 0),
            ("async_loading", 0),
            ("rdb_changes_since_last_save", ks.dirty),
            ("rdb_bgsave_in_progress", 0),
            ("rdb_last_save_time", int(app.started)),
            ("rdb_last_bgsave_status", "ok"),
            ("aof_enabled", 0),
            ("aof_rewrite_in_progress", 0),
            ("aof_last_write_status", "ok"),
        ]

    def stats():
        rows = [
            ("total_connections_received", srv.total_connections),
            ("total_commands_processed", srv.total_commands),
            ("instantaneous_ops_per_sec", app.instantaneous_ops()),
            ("total_net_input_bytes", srv.net_input_bytes),
            ("total_net_output_bytes", srv.net_output_bytes),
            ("rejected_connections", srv.rejected_connections),
            ("expired_keys", ks.expired_keys),
            ("evicted_keys", 0),
            ("keyspace_hits", ks.hits),
            ("keyspace_misses", ks.misses),
            ("pubsub_channels", 0),
            ("pubsub_patterns", 0),
            ("total_error_replies", srv.total_errors),
            ("remote_effects_applied", ks.applied_remote),
            ("pending_tombstones", len(ks.tombs)),
            ("type_conflict_keys", len(ks.alts)),
        ]
        extra = getattr(app, "stats_info", None)
        if extra is not None:
            rows.extend(extra())
        return rows

    def replication():
        bl = app.backlog
        vv = ks.get_vv()
        rows = [
            ("role", "master"),
            ("connected_slaves", 0),
            ("node_id", app.node_id),
            ("node_alias", app.alias),
            ("uuid", ks.clock.last),
            ("vv", ",".join(f"{n}:{u}" for n, u in sorted(vv.items()))),
            ("dot_cloud", sum(len(s) for s in ks.cloud.values())),
            ("repl_backlog_active", 1),
            ("repl_backlog_size", cfg.repl_backlog_limit),
            # what it holds now: at most 1 MiB while the node has no peer
            (
                "repl_backlog_limit_now",
                getattr(getattr(app, "repl", None), "backlog_limit", cfg.repl_backlog_limit),
            ),
            ("repl_backlog_histlen", bl.size),
            ("repl_backlog_records", bl.nrec),
            ("repl_backlog_first_uuid", bl.first_uuid),
            ("repl_backlog_last_uuid", bl.last_uuid),
        ]
        extra = getattr(app, "replication_info", None)
        if extra is not None:
            rows.extend(extra())
        else:
            rows.append(("connected_peers", 0))
        return rows

    def cpu():
        r = resource.getrusage(resource.RUSAGE_SELF)
        rc = resource.getrusage(resource.RUSAGE_CHILDREN)
        return [
            ("used_cpu_sys", f"{r.ru_stime:.6f}"),
            ("used_cpu_user", f"{r.ru_utime:.6f}"),
            ("used_cpu_sys_children", f"{rc.ru_stime:.6f}"),
            ("used_cpu_user_children", f"{rc.ru_utime:.6f}"),
        ]

    def commandstats():
        rows = []
        cmds = sorted(srv.all_commands(), key=lambda c: c.fullname)
        for cmd in cmds:
            if cmd.calls or cmd.rejected or cmd.failed:
                per = cmd.usec / cmd.calls if cmd.calls else 0.0
                rows.append(
                    (
                        f"cmdstat_{cmd.fullname.decode()}",
                        f"calls={cmd.calls},usec={cmd.usec},usec_per_call={per:.2f},"
                        f"rejected_calls={cmd.rejected},failed_calls={cmd.failed}",
                    )
                )
        return rows

    def errorstats():
        return [(f"errorstat_{k}", f"count={v}") for k, v in sorted(srv.error_counts.items())]

    def cluster():
        return [("cluster_enabled", 0)]

    def keyspace():
        n = ks.dbsize()
        if not n:
            return []
        return [("db0", f"keys={n},expires={ks.expires_count()},avg_ttl=0")]

    return {
        "server": server,
        "clients": clients,
        "memory": memory,
        "persistence": persistence,
        "stats": stats,
        "replication": replication,
        "cpu": cpu,
        "modules": list,
        "commandstats": commandstats,
        "errorstats": errorstats,
        "latencystats": list,  # as Redis with latency-tracking off
        "cluster": cluster,
        "keyspace": keyspace,
    }


# INFO with no argument (Redis's "default"): all but commandstats and latencystats
DEFAULT_SECTIONS = {
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "cpu",
    "modules",
    "errorstats",
    "cluster",
    "keyspace",
}
SECTION_TITLES = {"cpu": "CPU"}


def info_text(app: Any, wanted: list[str]) -> str:
    """Redis's genRedisInfoString: the chosen sections in Redis's order."""
    sections = info_sections(app)
    chosen: set[str] = set()
    for w in wanted:
        if w == "default":
            chosen |= DEFAULT_SECTIONS
        elif w in ("all", "everything"):
            chosen |= set(sections)
        elif w in sections:
            chosen.add(w)
    parts = []
    for name, fn in sections.items():
        if name not in chosen:
            continue
        rows = fn()
        body = "".join(f"{k}:{v}\r\n" for k, v in rows)
        parts.append(f"# {SECTION_TITLES.get(name, name.capitalize())}\r\n{body}")
    return "\r\n".join(parts)
