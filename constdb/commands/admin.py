"""Admin and connection commands in Python: AUTH HELLO CLIENT COMMAND CONFIG INFO
TIME SHUTDOWN. They are off the hot path; each returns its reply as a value
(see WBuf.pyvalue) or raises RespError."""

from __future__ import annotations

import hmac
import os
import platform
import re
import resource
import sys
import time
from typing import Any, Callable

from constdb import __version__
from constdb._core.codec import RespError, Status, Verbatim
from constdb._core.keyspace import glob_match
from constdb._core.protocol import FLAG, NO_REPLY
from constdb.config import BY_NAME, SPEC, ConfigError

OK = Status("OK")
REDIS_COMPAT_VERSION = "7.0.15"


def _lower(b: bytes) -> bytes:
    return b.lower()


def _int_arg(b: bytes, msg: str = "ERR value is not an integer or out of range") -> int:
    if not re.fullmatch(rb"-?(0|[1-9][0-9]*)", b):
        raise RespError(msg)
    v = int(b)
    if not -(2**63) <= v < 2**63:
        raise RespError(msg)
    return v


def _subcommand_error(cmd: str, sub: bytes) -> RespError:
    return RespError(
        f"ERR unknown subcommand '{sub[:128].decode('utf-8', 'replace')}'. Try {cmd.upper()} HELP."
    )


def _arity_error(name: str) -> RespError:
    return RespError(f"ERR wrong number of arguments for '{name}' command")


class Sub:
    """A subcommand table: name -> (arity, handler)."""

    def __init__(self, parent: str):
        self.parent = parent
        self.subs: dict[bytes, tuple[int, Callable[..., Any]]] = {}

    def add(self, name: str, arity: int, fn: Callable[..., Any]) -> None:
        self.subs[name.encode()] = (arity, fn)

    def __call__(self, client: Any, argv: list[bytes]) -> Any:
        sub = _lower(argv[1])
        entry = self.subs.get(sub)
        if entry is None:
            raise _subcommand_error(self.parent, argv[1])
        arity, fn = entry
        n = len(argv)
        if (arity > 0 and n != arity) or n < -arity:
            raise _arity_error(f"{self.parent}|{sub.decode()}")
        return fn(client, argv)


def register(app: Any) -> None:
    srv = app.srv
    F = FLAG

    def reg(
        name: str, arity: int, flags: int, fn: Callable, first=0, last=0, step=0, group="server"
    ):
        return srv.register_py(name.encode(), arity, flags, first, last, step, fn, group)

    # ---- AUTH / HELLO ---------------------------------------------------------

    def check_password(user: bytes, password: bytes) -> bool:
        req = srv.requirepass
        if user != b"default":
            return False
        if req is None:
            return True
        return hmac.compare_digest(password, req)

    def cmd_auth(c, argv):
        if len(argv) > 3:
            raise RespError("ERR syntax error")
        if srv.requirepass is None and len(argv) == 2:
            raise RespError(
                "ERR AUTH <password> called without any password configured for the default user. "
                "Are you sure your configuration is correct?"
            )
        user, pw = (b"default", argv[1]) if len(argv) == 2 else (argv[1], argv[2])
        if not check_password(user, pw):
            srv.count_error("WRONGPASS")
            raise RespError("WRONGPASS invalid username-password pair or user is disabled.")
        c.authed = True
        return OK

    def cmd_hello(c, argv):
        ver = 2
        i = 1
        if len(argv) > 1:
            try:
                ver = _int_arg(argv[1])
            except RespError:
                raise RespError("ERR Protocol version is not an integer or out of range")
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
                raise RespError(
                    f"ERR Syntax error in HELLO option '{argv[i].decode('utf-8', 'replace')}'"
                )
        if ver < 2 or ver > 3:
            raise RespError("NOPROTO unsupported protocol version")
        if user is not None:
            if not check_password(user, pw):
                raise RespError("WRONGPASS invalid username-password pair or user is disabled.")
            c.authed = True
        if not c.authed:
            raise RespError(
                "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time"
            )
        if name is not None:
            _check_name(name)
            c.name = name or None
        if len(argv) > 1:
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

    reg(
        "auth",
        -2,
        F["noauth"] | F["noscript"] | F["loading"] | F["stale"] | F["fast"],
        cmd_auth,
        group="connection",
    )
    reg(
        "hello",
        -1,
        F["noauth"] | F["noscript"] | F["loading"] | F["stale"] | F["fast"],
        cmd_hello,
        group="connection",
    )

    # ---- CLIENT -------------------------------------------------------------------

    def _check_name(name: bytes) -> None:
        if any(ch < 33 or ch > 126 for ch in name):
            raise RespError(
                "ERR Client names cannot contain spaces, newlines or special characters."
            )

    def client_line(c) -> str:
        now = time.time()
        flags = "N"
        if c.in_multi:
            flags = "x"
        if c.blocked:
            flags += "b"
        return (
            f"id={c.id} addr={c.addr} laddr={c.laddr} fd={c.fd} "
            f"name={(c.name or b'').decode('utf-8', 'replace')} age={int(now - c.ctime)} "
            f"idle={int(max(0, now - c.last_interaction))} flags={flags} db=0 sub=0 psub=0 ssub=0 "
            f"multi={c.multi_count} qbuf={c.qbuf} qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 "
            f"obl={c.obuf} oll=0 omem=0 tot-mem=0 events=r cmd={c.last_cmd.decode('utf-8', 'replace').lower()} "
            f"user=default redir=-1 resp={c.resp} "
            f"lib-name={(c.lib_name or b'').decode('utf-8', 'replace')} "
            f"lib-ver={(c.lib_ver or b'').decode('utf-8', 'replace')}"
        )

    client = Sub("client")
    client.add("id", 2, lambda c, a: c.id)
    client.add("getname", 2, lambda c, a: c.name)

    def client_setname(c, argv):
        _check_name(argv[2])
        c.name = argv[2] or None
        return OK

    def client_setinfo(c, argv):
        attr = argv[2].upper()
        val = argv[3]
        if attr not in (b"LIB-NAME", b"LIB-VER"):
            raise RespError(f"ERR Unrecognized option '{argv[2].decode('utf-8', 'replace')}'")
        if any(ch < 33 or ch > 126 for ch in val):
            raise RespError(
                f"ERR {attr.decode().lower()} cannot contain spaces, newlines or special characters."
            )
        if attr == b"LIB-NAME":
            c.lib_name = val
        else:
            c.lib_ver = val
        return OK

    def client_list(c, argv):
        clients = list(srv.clients.values())
        i = 2
        while i < len(argv):
            opt = argv[i].upper()
            if opt == b"TYPE" and i + 1 < len(argv):
                t = argv[i + 1].lower()
                if t not in (b"normal", b"master", b"replica", b"pubsub", b"slave"):
                    raise RespError(
                        f"ERR Unknown client type '{argv[i + 1].decode('utf-8', 'replace')}'"
                    )
                if t != b"normal":
                    clients = []
                i += 2
            elif opt == b"ID" and i + 1 < len(argv):
                ids = set()
                for a in argv[i + 1 :]:
                    try:
                        v = _int_arg(a)
                    except RespError:
                        raise RespError("ERR Invalid client ID")
                    if v <= 0:
                        raise RespError("ERR Invalid client ID")
                    ids.add(v)
                clients = [x for x in clients if x.id in ids]
                break
            else:
                raise RespError("ERR syntax error")
        return Verbatim(
            "".join(client_line(x) + "\n" for x in sorted(clients, key=lambda x: x.id)).encode()
        )

    def client_kill(c, argv):
        if len(argv) == 3:
            addr = argv[2].decode("utf-8", "replace")
            for x in list(srv.clients.values()):
                if x.addr == addr:
                    x.close()
                    return OK
            raise RespError("ERR No such client")
        killed = 0
        i = 2
        filt: list[Callable[[Any], bool]] = []
        skipme = True
        while i + 1 < len(argv):
            opt, val = argv[i].upper(), argv[i + 1]
            if opt == b"ID":
                cid = _int_arg(val, "ERR client-id should be greater than 0")
                filt.append(lambda x, cid=cid: x.id == cid)
            elif opt == b"ADDR":
                filt.append(lambda x, v=val.decode(): x.addr == v)
            elif opt == b"LADDR":
                filt.append(lambda x, v=val.decode(): x.laddr == v)
            elif opt == b"SKIPME":
                if val.lower() not in (b"yes", b"no"):
                    raise RespError("ERR syntax error")
                skipme = val.lower() == b"yes"
            elif opt == b"TYPE":
                t = val.lower()
                filt.append(lambda x, t=t: t == b"normal")
            elif opt == b"USER":
                filt.append(lambda x, v=val: v == b"default")
            else:
                raise RespError("ERR syntax error")
            i += 2
        if i != len(argv):
            raise RespError("ERR syntax error")
        for x in list(srv.clients.values()):
            if skipme and x is c:
                continue
            if all(f(x) for f in filt):
                killed += 1
                x.close()
        return killed

    def client_help(c, argv):
        return [
            "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "GETNAME",
            "    Return the name of the current connection.",
            "ID",
            "    Return the ID of the current connection.",
            "INFO",
            "    Return information about the current client connection.",
            "KILL <ip:port> | <option> <value> [<option> <value> [...]]",
            "    Kill connections.",
            "LIST [options ...]",
            "    Return information about client connections.",
            "SETINFO <LIB-NAME|LIB-VER> <value>",
            "    Set client meta attributes.",
            "SETNAME <name>",
            "    Assign the name <name> to the current connection.",
            "HELP",
            "    Print this help.",
        ]

    client.add("setname", 3, client_setname)
    client.add("setinfo", 4, client_setinfo)
    client.add("list", -2, client_list)
    client.add("info", 2, lambda c, a: Verbatim((client_line(c) + "\n").encode()))
    client.add("kill", -3, client_kill)
    client.add("help", 2, client_help)
    reg(
        "client",
        -2,
        F["admin"] | F["noscript"] | F["loading"] | F["stale"],
        client,
        group="connection",
    )

    # ---- COMMAND --------------------------------------------------------------------

    def cmd_info_entry(cmd) -> list:
        return [
            cmd.name,
            cmd.arity,
            [Status(f) for f in cmd.flag_names()],
            cmd.first_key,
            cmd.last_key,
            cmd.key_step,
            [Status("@" + str(cmd.group))],
            [],
            [],
            [],
        ]

    def cmd_docs_entry(cmd) -> list:
        return [
            cmd.name,
            [
                b"summary",
                (cmd.summary or f"{cmd.name.decode().upper()} ({cmd.group})").encode(),
                b"since",
                b"1.0.0",
                b"group",
                str(cmd.group).encode(),
            ],
        ]

    command = Sub("command")

    def command_count(c, argv):
        return len(srv.table)

    def command_info(c, argv):
        names = argv[2:] or sorted(srv.table)
        return [cmd_info_entry(srv.command(n)) if srv.command(n) else None for n in names]

    def command_docs(c, argv):
        names = argv[2:] or sorted(srv.table)
        out = []
        for n in names:
            cmd = srv.command(n)
            if cmd is not None:
                out.extend(cmd_docs_entry(cmd))
        return out

    def command_list(c, argv):
        names = sorted(srv.table)
        if len(argv) > 2:
            if len(argv) != 5 or argv[2].upper() != b"FILTERBY":
                raise RespError("ERR syntax error")
            kind, val = argv[3].upper(), argv[4]
            if kind == b"PATTERN":
                names = [n for n in names if glob_match(val, n, True)]
            elif kind == b"ACLCAT":
                names = [n for n in names if str(srv.table[n].group).encode() == val.lower()]
            elif kind == b"MODULE":
                names = []
            else:
                raise RespError("ERR syntax error")
        return names

    def command_getkeys(c, argv):
        cmd = srv.command(argv[2])
        if cmd is None:
            raise RespError("ERR Invalid command specified")
        args = argv[2:]
        if (cmd.arity > 0 and len(args) != cmd.arity) or len(args) < -cmd.arity:
            raise RespError("ERR Invalid number of arguments specified for command")
        if cmd.first_key == 0:
            raise RespError("ERR The command has no key arguments")
        last = cmd.last_key if cmd.last_key >= 0 else len(args) + cmd.last_key
        return [args[i] for i in range(cmd.first_key, last + 1, cmd.key_step or 1)]

    command.add("count", 2, command_count)
    command.add("info", -2, command_info)
    command.add("docs", -2, command_docs)
    command.add("list", -2, command_list)
    command.add("getkeys", -3, command_getkeys)
    command.add(
        "help",
        2,
        lambda c, a: [
            "COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "(no subcommand)",
            "    Return details about all commands.",
            "COUNT",
            "INFO [<command-name> ...]",
            "DOCS [<command-name> ...]",
            "LIST [FILTERBY (MODULE <module-name>|ACLCAT <category>|PATTERN <pattern>)]",
            "GETKEYS <full-command>",
            "HELP",
        ],
    )

    def cmd_command(c, argv):
        if len(argv) == 1:
            return [cmd_info_entry(srv.table[n]) for n in sorted(srv.table)]
        return command(c, argv)

    reg("command", -1, F["loading"] | F["stale"], cmd_command, group="server")

    # ---- CONFIG -----------------------------------------------------------------------

    config = Sub("config")

    def redis_name(name: str) -> str:
        return name.replace("_", "-")

    aliases = {
        "bind": "ip",
        "dir": "work_dir",
        "repl-backlog-size": "repl_backlog_limit",
        "loglevel": "log_level",
        "logfile": "log",
        "client-query-buffer-limit": "client_query_buffer_limit",
        "daemonize": "daemon",
    }
    fixed = {
        "appendonly": "no",
        "databases": "1",
        "maxmemory": "0",
        "maxmemory-policy": "noeviction",
    }

    def config_items() -> list[tuple[str, str]]:
        items = []
        for key in SPEC:
            items.append((redis_name(key.name), _config_str(key.name, app.cfg.get(key.name))))
        for alias, target in aliases.items():
            if redis_name(target) != alias:
                items.append((alias, _config_str(target, app.cfg.get(target))))
        for k, v in fixed.items():
            items.append((k, v))
        return items

    def config_get(c, argv):
        items = config_items()
        out: dict[str, str] = {}
        for pat in argv[2:]:
            p = pat.lower().replace(b"_", b"-")
            for k, v in items:
                if glob_match(p, k.encode(), True) and k not in out:
                    out[k] = v
        return {k.encode(): v.encode() for k, v in out.items()}

    def config_set(c, argv):
        if len(argv) % 2 != 0:
            raise _arity_error("config|set")
        pairs = []
        for i in range(2, len(argv), 2):
            raw = argv[i].decode("utf-8", "replace").lower()
            name = aliases.get(raw, raw.replace("-", "_"))
            key = BY_NAME.get(name)
            if key is None:
                raise RespError(
                    f"ERR Unknown option or number of arguments for CONFIG SET - '{raw}'"
                )
            if not key.runtime:
                raise RespError(
                    f"ERR CONFIG SET failed (possibly related to argument '{raw}') - can't set immutable config"
                )
            pairs.append((key, raw, argv[i + 1].decode("utf-8", "replace")))
        old = app.cfg.as_dict()
        for key, raw, val in pairs:
            try:
                app.cfg.set(key.name, val)
            except ConfigError as e:
                app.cfg._values.update(old)
                detail = str(e).split(": ", 1)[-1].replace(f"key '{key.name}': ", "")
                raise RespError(
                    f"ERR CONFIG SET failed (possibly related to argument '{raw}') - {detail}"
                ) from None
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
        for cmd in srv.table.values():
            cmd.calls = 0
            cmd.failed = 0
        reset = getattr(app, "reset_stats", None)
        if reset is not None:
            reset()
        return OK

    def config_rewrite(c, argv):
        raise RespError(
            "ERR The server is running without a config file"
            if app.cfg.path is None
            else "ERR CONFIG REWRITE is not supported; edit " + app.cfg.path
        )

    config.add("get", -3, config_get)
    config.add("set", -4, config_set)
    config.add("resetstat", 2, config_resetstat)
    config.add("rewrite", 2, config_rewrite)
    config.add(
        "help",
        2,
        lambda c, a: [
            "CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "GET <pattern>",
            "SET <directive> <value>",
            "RESETSTAT",
            "REWRITE",
            "HELP",
        ],
    )
    reg(
        "config", -2, F["admin"] | F["noscript"] | F["loading"] | F["stale"], config, group="server"
    )

    # ---- INFO -------------------------------------------------------------------------

    def cmd_info(c, argv):
        wanted = [a.lower().decode("utf-8", "replace") for a in argv[1:]] or ["default"]
        return Verbatim(info_text(app, wanted).encode())

    reg("info", -1, F["loading"] | F["stale"], cmd_info, group="server")

    def cmd_time(c, argv):
        t = time.time_ns() // 1000
        return [str(t // 1_000_000).encode(), str(t % 1_000_000).encode()]

    reg("time", 1, F["loading"] | F["stale"] | F["fast"], cmd_time, group="server")

    def cmd_shutdown(c, argv):
        nosave = save = False
        for a in argv[1:]:
            u = a.upper()
            if u == b"NOSAVE":
                nosave = True
            elif u == b"SAVE":
                save = True
            elif u in (b"NOW", b"FORCE"):
                pass
            elif u == b"ABORT":
                raise RespError("ERR No shutdown in progress.")
            else:
                raise RespError("ERR syntax error")
        if nosave and save:
            raise RespError("ERR syntax error")
        app.shutdown_save = not nosave if (nosave or save) else None
        app.request_shutdown("SHUTDOWN")
        return NO_REPLY

    reg(
        "shutdown",
        -1,
        F["admin"] | F["noscript"] | F["loading"] | F["stale"],
        cmd_shutdown,
        group="server",
    )

    def cmd_lolwut(c, argv):
        return Verbatim(f"ConstDB ver. {__version__}\n".encode())

    reg("lolwut", -1, F["readonly"] | F["fast"], cmd_lolwut, group="server")


def _config_str(name: str, value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if name == "save":
        return " ".join(f"{a} {b}" for a, b in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _human(n: float) -> str:
    for unit in ("B", "K", "M", "G", "T"):
        if n < 1024 or unit == "T":
            return f"{n:.2f}{unit}" if unit != "B" else f"{int(n)}B"
        n /= 1024
    return f"{n}"


def _rss() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def info_sections(app: Any) -> dict[str, Callable[[], list[tuple[str, Any]]]]:
    srv = app.srv
    ks = app.ks
    cfg = app.cfg

    def server():
        up = int(time.time() - app.started)
        return [
            ("redis_version", REDIS_COMPAT_VERSION),
            ("constdb_version", __version__),
            ("redis_mode", "standalone"),
            ("os", f"{platform.system()} {platform.release()} {platform.machine()}"),
            ("arch_bits", 64 if sys.maxsize > 2**32 else 32),
            ("multiplexing_api", "uvloop"),
            ("python_version", platform.python_version()),
            ("process_id", os.getpid()),
            ("run_id", app.run_id),
            ("tcp_port", cfg.port),
            ("server_time_usec", time.time_ns() // 1000),
            ("uptime_in_seconds", up),
            ("uptime_in_days", up // 86400),
            ("hz", cfg.hz),
            ("configured_hz", cfg.hz),
            ("executable", os.path.abspath(sys.argv[0]) if sys.argv and sys.argv[0] else ""),
            ("config_file", os.path.abspath(cfg.path) if cfg.path else ""),
            ("node_id", app.node_id),
            ("node_alias", app.alias),
        ]

    def clients():
        return [
            ("connected_clients", len(srv.clients)),
            ("maxclients", srv.maxclients),
            ("blocked_clients", sum(1 for c in srv.clients.values() if c.blocked)),
            ("tracking_clients", 0),
        ]

    def memory():
        rss = _rss()
        bl = app.backlog.size
        return [
            ("used_memory", rss),
            ("used_memory_human", _human(rss)),
            ("used_memory_rss", rss),
            ("used_memory_rss_human", _human(rss)),
            ("used_memory_peak", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024),
            ("mem_backlog", bl),
            ("mem_backlog_human", _human(bl)),
            ("maxmemory", 0),
            ("maxmemory_policy", "noeviction"),
            ("mem_allocator", "pymalloc"),
        ]

    def stats():
        return [
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
            ("total_error_replies", srv.total_errors),
            ("remote_effects_applied", ks.applied_remote),
            ("pending_tombstones", len(ks.tombs)),
            ("type_conflict_keys", len(ks.alts)),
        ]

    def replication():
        bl = app.backlog
        vv = ks.get_vv()
        rows = [
            ("role", "master"),
            ("node_id", app.node_id),
            ("node_alias", app.alias),
            ("uuid", ks.clock.last),
            ("vv", ",".join(f"{n}:{u}" for n, u in sorted(vv.items()))),
            ("dot_cloud", sum(len(s) for s in ks.cloud.values())),
            ("repl_backlog_active", 1),
            ("repl_backlog_size", cfg.repl_backlog_limit),
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

    def persistence():
        extra = getattr(app, "persistence_info", None)
        if extra is not None:
            return extra()
        return [("loading", 0), ("rdb_changes_since_last_save", ks.dirty)]

    def keyspace():
        n = ks.dbsize()
        if not n:
            return []
        return [("db0", f"keys={n},expires={ks.expires_count()},avg_ttl=0")]

    def commandstats():
        rows = []
        for name, cmd in sorted(srv.table.items()):
            if cmd.calls:
                rows.append(
                    (
                        f"cmdstat_{name.decode()}",
                        f"calls={cmd.calls},usec=0,usec_per_call=0.00,rejected_calls=0,failed_calls={cmd.failed}",
                    )
                )
        return rows

    def errorstats():
        return [(f"errorstat_{k}", f"count={v}") for k, v in sorted(srv.error_counts.items())]

    def cpu():
        r = resource.getrusage(resource.RUSAGE_SELF)
        return [
            ("used_cpu_sys", f"{r.ru_stime:.6f}"),
            ("used_cpu_user", f"{r.ru_utime:.6f}"),
        ]

    return {
        "server": server,
        "clients": clients,
        "memory": memory,
        "persistence": persistence,
        "stats": stats,
        "replication": replication,
        "cpu": cpu,
        "commandstats": commandstats,
        "errorstats": errorstats,
        "keyspace": keyspace,
    }


DEFAULT_SECTIONS = [
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "cpu",
    "errorstats",
    "keyspace",
]


def info_text(app: Any, wanted: list[str]) -> str:
    sections = info_sections(app)
    names: list[str] = []
    for w in wanted:
        if w in ("default",):
            names.extend(DEFAULT_SECTIONS)
        elif w in ("all", "everything"):
            names.extend(sections)
        elif w in sections:
            names.append(w)
    seen = set()
    parts = []
    for name in names:
        if name in seen:
            continue
        seen.add(name)
        rows = sections[name]()
        body = "".join(f"{k}:{v}\r\n" for k, v in rows)
        parts.append(f"# {name.capitalize() if name != 'cpu' else 'CPU'}\r\n{body}")
    return "\r\n".join(parts)
