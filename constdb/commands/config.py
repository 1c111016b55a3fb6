"""CONFIG and its subcommands: this node's configuration (constdb/config.py's
keys, under their Redis names or ours)."""

from __future__ import annotations

import os
from typing import Any, Optional

from constdb._core.codec import RespError, Status
from constdb._core.glob import glob_match
from constdb.commands import command
from constdb.commands.common import OK, SYNTAX, text
from constdb.config import (
    BY_NAME,
    REDIS_LOGLEVEL_IN,
    REDIS_LOGLEVEL_OUT,
    SPEC,
    ConfigError,
    check_files,
    parse_runtime,
)
from constdb.notify import flags_string, parse_flags


@command("config")
def config(c: Any, argv: list[bytes]) -> Any:
    # a container named alone: never reached, its arity (-2) refuses that first
    raise RespError("ERR wrong number of arguments for 'config' command")


def redis_name(name: str) -> str:
    return name.replace("_", "-")


# Redis's names for ConstDB keys (CONFIG GET/SET accept both)
ALIASES = {
    "bind": "ip",
    "dir": "work_dir",
    "repl-backlog-size": "repl_backlog_limit",
    "loglevel": "log_level",
    "logfile": "log",
    "daemonize": "daemon",
    # Redis's older names of its encoding settings (constdb/config.py: no effect here)
    "hash-max-ziplist-entries": "hash_max_listpack_entries",
    "hash-max-ziplist-value": "hash_max_listpack_value",
    "list-max-ziplist-size": "list_max_listpack_size",
    "zset-max-ziplist-entries": "zset_max_listpack_entries",
    "zset-max-ziplist-value": "zset_max_listpack_value",
    "slave-lazy-flush": "replica_lazy_flush",
    "lua-time-limit": "busy_reply_threshold",
}
# the aliases Redis itself has (its older names of a parameter)
REDIS_ALIASES = {
    "hash-max-ziplist-entries",
    "hash-max-ziplist-value",
    "list-max-ziplist-size",
    "zset-max-ziplist-entries",
    "zset-max-ziplist-value",
    "slave-lazy-flush",
    "lua-time-limit",
}
# Redis parameters that have one fixed value here
FIXED = {
    "cluster-enabled": "no",
}


def config_value(cfg: Any, alias: str, name: str) -> str:
    v = cfg.get(name)
    if alias == "dir":
        return os.path.abspath(v)
    if alias == "loglevel":
        return REDIS_LOGLEVEL_OUT.get(v, v.lower())
    if name == "notify_keyspace_events":
        return flags_string(parse_flags(v) or 0)
    return config_str(name, v)


def config_items(cfg: Any) -> list[tuple[str, str]]:
    items = [(redis_name(k.name), config_value(cfg, redis_name(k.name), k.name)) for k in SPEC]
    items += [(alias, config_value(cfg, alias, target)) for alias, target in ALIASES.items()]
    items += list(FIXED.items())
    return items


def resolve(raw: bytes) -> Optional[str]:
    """The SPEC key a CONFIG SET/GET name refers to (any case, - or _)."""
    n = text(raw).lower()
    if n in ALIASES:
        return ALIASES[n]
    n = n.replace("-", "_")
    return n if n in BY_NAME else None


@command("config|get")
def config_get(c: Any, argv: list[bytes]) -> Any:
    items = config_items(c.srv.app.cfg)
    out: dict[bytes, bytes] = {}
    for pat in argv[2:]:
        if not any(ch in pat for ch in b"*?["):
            # an exact name comes back as it was asked (Redis 7.0)
            p = text(pat).lower()
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


@command("config|set")
def config_set(c: Any, argv: list[bytes]) -> Any:
    app = c.srv.app
    if len(argv) % 2:
        raise RespError(SYNTAX)
    pairs = []
    bad_name = None
    err = None
    for i in range(2, len(argv), 2):
        raw = argv[i]
        name = resolve(raw)
        fixed_name = text(raw).lower() in FIXED
        if name is None and not fixed_name:
            if bad_name is None:
                bad_name = raw
            continue
        if bad_name is not None or err is not None:
            continue
        if name is not None and BY_NAME[name].protected and not protected_allowed(c):
            err = (raw, "can't set protected config")
            continue
        if fixed_name or not BY_NAME[name].runtime:
            err = (raw, "can't set immutable config")
            continue
        # Redis's own aliases (hash-max-ziplist-entries...) are parameters of
        # their own there: naming one with its new name is no duplicate (the
        # last one given wins)
        spelled = text(raw).lower() if text(raw).lower() in REDIS_ALIASES else name
        if any(p[0] == name and p[3] == spelled for p in pairs):
            err = (raw, "duplicate parameter")
            continue
        pairs.append((name, raw, argv[i + 1], spelled))
    if bad_name is not None:
        raise RespError(
            f"ERR Unknown option or number of arguments for CONFIG SET - '{text(bad_name)}'"
        )
    if err is not None:
        raise RespError(
            f"ERR CONFIG SET failed (possibly related to argument '{text(err[0])}') - {err[1]}"
        )
    new = {}
    names = {}
    for name, raw, val, _spelled in pairs:
        names[name] = raw
        try:
            if raw.lower() == b"loglevel":
                # Redis's names for Redis's parameter
                v = REDIS_LOGLEVEL_IN.get(text(val).lower())
                if v is None:
                    raise ConfigError(
                        "argument(s) must be one of the following: debug, verbose, notice, warning"
                    )
                new[name] = v
                continue
            new[name] = parse_runtime(BY_NAME[name], text(val))
        except ConfigError as e:
            canonical = next(
                (a for a, t in ALIASES.items() if t == name and a == text(raw).lower()),
                redis_name(name),
            )
            raise RespError(
                f"ERR CONFIG SET failed (possibly related to argument '{canonical}') - {e}"
            ) from None
    cfg = app.cfg
    clash = check_files({**cfg.as_dict(), **new}, cfg.path, tuple(new))
    if clash is not None:
        key, what = clash
        raise RespError(
            f"ERR CONFIG SET failed (possibly related to argument '{text(names[key])}')"
            f" - {key} can't be {what}"
        )
    # all or nothing, as Redis 7.0: a value the node cannot apply (maxclients
    # past the descriptor limit) puts every old value back
    old = {name: (cfg.get(name), cfg.where(name)) for name in new}
    for name, v in new.items():
        cfg.set(name, v)
    try:
        app.apply_config(set(new))
    except ConfigError as e:
        for name, (v, where) in old.items():
            cfg.set(name, v, where)
        app.apply_config()
        raise RespError(
            f"ERR CONFIG SET failed (possibly related to argument '{text(names[e.args[1]])}')"
            f" - {e.args[0]}"
        ) from None
    return OK


def protected_allowed(c: Any) -> bool:
    """enable-protected-configs: yes, or local for a client on loopback
    (Redis's rule: 127.0.0.1 or ::1)."""
    mode = c.srv.app.cfg.enable_protected_configs
    if mode == "yes":
        return True
    if mode == "local":
        host = (c.addr or "").rsplit(":", 1)[0]
        return host in ("127.0.0.1", "::1")
    return False


@command("config|resetstat")
def config_resetstat(c: Any, argv: list[bytes]) -> Any:
    srv = c.srv
    app = srv.app
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
        cmd.reset_latency()
    return OK


@command("config|rewrite")
def config_rewrite(c: Any, argv: list[bytes]) -> Any:
    app = c.srv.app
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


@command("config|help")
def config_help(c: Any, argv: list[bytes]) -> Any:
    return [Status(x) for x in CONFIG_HELP]


def config_str(name: str, value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if name == "save":
        return " ".join(f"{a} {b}" for a, b in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
