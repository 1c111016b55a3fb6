"""constdb.toml: loading and validation.

Every key is declared once in SPEC with its type, default and check; the
repository's constdb.toml documents the same keys. A bad file or value raises
ConfigError with one line that names the file, the key and what was expected.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from typing import Any, Callable, Optional

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


class ConfigError(Exception):
    """A configuration problem: the message is the whole user-facing line."""


_SIZE = re.compile(r"^\s*(\d+)\s*(b|k|kb|m|mb|g|gb)?\s*$", re.I)
_UNITS = {
    None: 1,
    "b": 1,
    "k": 1000,
    "kb": 1024,
    "m": 1000**2,
    "mb": 1024**2,
    "g": 1000**3,
    "gb": 1024**3,
}

LOG_LEVELS = ("OFF", "ERROR", "WARN", "INFO", "DEBUG", "TRACE")


def parse_size(value: Any) -> Optional[int]:
    """Bytes from an int or a Redis-style size string ("512mb", "1gb")."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        m = _SIZE.match(value)
        if m:
            return int(m.group(1)) * _UNITS[(m.group(2) or "").lower() or None]
    return None


@dataclass(frozen=True)
class Key:
    name: str
    default: Any
    kind: str  # bool | int | float | str | size | level | save
    doc: str
    lo: Optional[float] = None
    hi: Optional[float] = None
    runtime: bool = False  # CONFIG SET may change it
    check: Optional[Callable[[Any], Optional[str]]] = None
    protected: bool = False  # CONFIG SET only with enable_protected_configs (as in Redis)


def _check_policy(v: str) -> Optional[str]:
    from constdb.eviction import check_policy

    return check_policy(v)


def _check_events(v: str) -> Optional[str]:
    from constdb.notify import parse_flags

    return None if parse_flags(v) is not None else "Redis's event classes (Ag$lshzxeKEtmdn)"


def _nonempty(v: str) -> Optional[str]:
    return None if v.strip() and "\0" not in v else "a non-empty path without NUL bytes"


def _no_nul(v: str) -> Optional[str]:
    return None if "\0" not in v else "a path without NUL bytes"


def _check_ip(v: str) -> Optional[str]:
    import ipaddress

    if v in ("localhost", "*"):
        return None
    try:
        ipaddress.ip_address(v)
    except ValueError:
        return "an IPv4 or IPv6 address"
    return None


FILENAME = "a file name, not a path"


def _check_filename(v: str) -> Optional[str]:
    # Redis: no "/" or "\\" in dbfilename; and no NUL, no "." or ".."
    if not v or "/" in v or "\\" in v or "\0" in v or v in (".", ".."):
        return FILENAME
    return None


# ---- cluster_secret strength (the replication link's key) ----------------------------
# A secret's strength is estimated as if each character were drawn at random
# from the smallest of these alphabets holding all of its characters; it must
# reach SECRET_MIN_BITS and use at least 8 distinct characters.
SECRET_MIN_BITS = 128
_SECRET_ALPHABETS = (
    (10, "0123456789"),
    (16, "0123456789abcdef"),
    (16, "0123456789ABCDEF"),
    (36, "0123456789abcdefghijklmnopqrstuvwxyz"),
    (62, "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"),
    (64, "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ+/-_="),
    (95, "".join(chr(c) for c in range(32, 127))),
)


def secret_bits(v: str) -> float:
    import math

    chars = set(v)
    for size, alphabet in _SECRET_ALPHABETS:
        if chars <= set(alphabet):
            return len(v) * math.log2(size)
    return len(v.encode()) * 8 * 0.5  # other text: count half of its bits


def check_secret(v: str) -> Optional[str]:
    if v and (secret_bits(v) < SECRET_MIN_BITS or len(set(v)) < 8):
        return (
            "a secret of at least 128 bits (32 hex or 22 base64 characters,"
            " e.g. from constdb-server --gen-secret) or empty"
        )
    return None


PROTECTED_MODES = ("no", "yes", "local")
APPENDFSYNC = ("everysec", "always", "no")


def _check_protected(v: str) -> Optional[str]:
    return None if v in PROTECTED_MODES else "one of " + ", ".join(PROTECTED_MODES)


# the node's own files in work_dir, which no setting may name
NODE_ID_FILE = "node_id"
LOCK_FILE = "constdb.running"
NODE_FILES = {
    NODE_ID_FILE: "the node id file",
    NODE_ID_FILE + ".tmp": "the node id file",
    LOCK_FILE: "the lock file",
}


SPEC: list[Key] = [
    Key("daemon", False, "bool", "detach from the terminal; the pid goes to pidfile in work_dir"),
    Key(
        "node_id",
        0,
        "int",
        "63-bit id of this node, unique in the group; 0 = draw at random on first start and keep it in work_dir",
        0,
        2**63 - 1,
    ),
    Key("node_alias", "", "str", "a readable name for this node (default: node<port>)"),
    Key("ip", "127.0.0.1", "str", "address to listen on for clients and peers", check=_check_ip),
    Key("port", 9001, "int", "TCP port; 0 = no plain port (needs tls_port)", 0, 65535),
    Key(
        "log",
        "",
        "str",
        "log file; empty = standard error (daemon: work_dir/constdb.log)",
        check=_no_nul,
    ),
    Key("log_level", "INFO", "level", "one of OFF ERROR WARN INFO DEBUG TRACE", runtime=True),
    Key(
        "work_dir",
        ".",
        "str",
        "directory for node_id, snapshots, pid and log files",
        check=_nonempty,
        protected=True,
    ),
    Key("tcp_backlog", 1024, "int", "listen() backlog", 1, 65535),
    Key(
        "repl_backlog_limit",
        104857600,
        "size",
        "bytes of this node's own effect log kept for partial resync of peers"
        " (at most 1 MiB while the node has no peer)",
        1024,
        2**40,
        runtime=True,
    ),
    Key(
        "replica_heartbeat_frequency",
        1.0,
        "float",
        "seconds between heartbeats (and acks) on each peer link",
        0.01,
        3600,
        runtime=True,
    ),
    Key(
        "max_exec_per_round",
        16,
        "int",
        "commands of one client run before other clients get a turn",
        1,
        1_000_000,
        runtime=True,
    ),
    Key(
        "busy_reply_threshold",
        5000,
        "int",
        "milliseconds a Lua script runs before other clients get BUSY and SCRIPT KILL may stop it;"
        " 0 = never",
        0,
        2**63 - 1,
        runtime=True,
    ),
    Key(
        "hz",
        10,
        "int",
        "server cron frequency: active expiry, timeouts, GC, save schedule",
        1,
        500,
        runtime=True,
    ),
    Key(
        "threads",
        1,
        "int",
        "accepted for compatibility with the original ConstDB; requests run on one thread",
        1,
        1024,
    ),
    Key(
        "replica_gossip_frequency",
        15,
        "int",
        "accepted for compatibility with the original ConstDB; membership is gossiped with every effect batch",
        0,
        3600,
    ),
    Key("requirepass", "", "str", "password clients must AUTH with; empty = none", runtime=True),
    Key(
        "databases",
        16,
        "int",
        "numbered databases (SELECT 0 .. n-1); every member of a group must have the same",
        1,
        2**31 - 1,
    ),
    Key(
        "maxclients",
        10000,
        "int",
        "maximum simultaneous client connections",
        1,
        2**32 - 1,
        runtime=True,
    ),
    Key(
        "slowlog_log_slower_than",
        10000,
        "int",
        "SLOWLOG records commands that take at least this many microseconds; -1 = never, 0 = all",
        -1,
        2**63 - 1,
        runtime=True,
    ),
    # ---- maxmemory (constdb/eviction.py, _core/evict.pyx) ----
    Key(
        "maxmemory",
        0,
        "size",
        "evict (or refuse writes, under noeviction) once used_memory passes this; 0 = no limit",
        0,
        2**63 - 1,
        runtime=True,
    ),
    Key(
        "maxmemory_policy",
        "noeviction",
        "str",
        "noeviction, allkeys-lru, volatile-lru, allkeys-lfu, volatile-lfu, allkeys-random,"
        " volatile-random, volatile-ttl, or allkeys-wtinylfu (W-TinyLFU admission)",
        runtime=True,
        check=lambda v: _check_policy(v),
    ),
    Key(
        "maxmemory_samples",
        5,
        "int",
        "keys sampled per eviction (allkeys-wtinylfu samples twice as many)",
        1,
        64,
        runtime=True,
    ),
    Key(
        "maxmemory_eviction_tenacity",
        10,
        "int",
        "how long one eviction run may take (Redis's scale: 10 = 500 us, 100 = no limit)",
        0,
        100,
        runtime=True,
    ),
    Key(
        "maxmemory_eviction_margin",
        5.0,
        "float",
        "percent of maxmemory left free while the node has a peer or a link: eviction"
        " starts this far below it, room for what peers are still sending",
        0,
        50,
        runtime=True,
    ),
    Key("lfu_log_factor", 10, "int", "LFU counter's logarithm factor", 0, 2**31 - 1, runtime=True),
    Key(
        "lfu_decay_time",
        1,
        "int",
        "minutes for the LFU counter to decay by one",
        0,
        2**31 - 1,
        runtime=True,
    ),
    Key("slowlog_max_len", 128, "int", "entries SLOWLOG keeps", 0, 2**63 - 1, runtime=True),
    Key(
        "latency_monitor_threshold",
        0,
        "int",
        "LATENCY records commands that take at least this many milliseconds; 0 = off",
        0,
        2**63 - 1,
        runtime=True,
    ),
    Key(
        "notify_keyspace_events",
        "",
        "str",
        "keyspace notifications published on this node (Redis's classes: K E g $ l s h z x e t m"
        " d n A); empty = none",
        runtime=True,
        check=lambda v: _check_events(v),
    ),
    Key(
        "tracking_table_max_keys",
        1_000_000,
        "int",
        "keys remembered for CLIENT TRACKING (default mode); past it the oldest are invalidated; 0 = no limit",
        0,
        2**63 - 1,
        runtime=True,
    ),
    Key(
        "timeout",
        0,
        "int",
        "close a client idle this many seconds; 0 = never",
        0,
        2**31 - 1,
        runtime=True,
    ),
    Key(
        "proto_max_bulk_len",
        512 * 1024 * 1024,
        "size",
        "largest bulk string a client may send",
        1024 * 1024,
        2**63 - 1,
        runtime=True,
    ),
    Key(
        "hll_sparse_max_bytes",
        3000,
        "size",
        "largest sparse HyperLogLog value in bytes: a PFADD that would grow one past it"
        " makes it dense (Redis's setting; nodes of a group should agree, the values'"
        " bytes depend on it)",
        0,
        2**63 - 1,
        runtime=True,
    ),
    Key(
        "client_query_buffer_limit",
        1024 * 1024 * 1024,
        "size",
        "largest unparsed input one client may buffer",
        1024 * 1024,
        2**63 - 1,
        runtime=True,
    ),
    Key(
        "cluster_secret",
        "",
        "str",
        "shared secret of the group's links (at least 128 bits: 32 hex or 22 base64"
        " characters; constdb-server --gen-secret prints one); empty = none, allowed"
        " only while the node listens on loopback",
        runtime=True,
        check=check_secret,
    ),
    Key(
        "advertise_addr",
        "",
        "str",
        "host:port peers dial to reach this node; empty = ip:port (use it behind NAT or a proxy)",
    ),
    Key(
        "peer_timeout",
        10.0,
        "float",
        "seconds without any frame after which a peer link is closed and redialed",
        0.1,
        86400,
        runtime=True,
    ),
    Key(
        "max_clock_drift",
        60000,
        "int",
        "milliseconds a peer's clock may be off this node's wall clock, ahead or behind;"
        " a link that sends a clock further ahead, or whose measured clock is further off,"
        " is closed (never folded into this node's clock)",
        1,
        365 * 86_400_000,
        runtime=True,
    ),
    Key(
        "clock_drift_warn",
        1000,
        "int",
        "milliseconds a peer's measured clock may be off this node's before the log warns"
        " (one line per peer a minute); 0 = never",
        0,
        365 * 86_400_000,
        runtime=True,
    ),
    Key(
        "pidfile",
        "constdb.pid",
        "str",
        "pid file (relative to work_dir) written in daemon mode",
        check=_nonempty,
    ),
    Key(
        "dbfilename",
        "dump.cdb",
        "str",
        "snapshot file name in work_dir (not a path, not one of the node's own files)",
        runtime=True,
        check=_check_filename,
        protected=True,
    ),
    # ---- appendonly (constdb/aof.py) ----
    Key(
        "appendonly",
        False,
        "bool",
        "keep a log of this node's own writes in work_dir (appendfilename), replayed on"
        " top of the snapshot at start; CONFIG SET appendonly yes snapshots first",
        runtime=True,
    ),
    Key(
        "appendfsync",
        "everysec",
        "str",
        "when the log reaches the disk: always (before the reply), everysec (once a"
        " second, in a background thread: a crash loses at most the last second), no (the OS decides)",
        runtime=True,
        check=lambda v: None if v in APPENDFSYNC else "one of " + ", ".join(APPENDFSYNC),
    ),
    Key(
        "appendfilename",
        "appendonly.aof",
        "str",
        "the log's file name in work_dir (not a path, not one of the node's own files)",
        check=_check_filename,
    ),
    Key(
        "auto_aof_rewrite_percentage",
        100,
        "int",
        "snapshot and restart the log when it grew this many percent past its size after"
        " the last restart; 0 = never",
        0,
        2**31 - 1,
        runtime=True,
    ),
    Key(
        "auto_aof_rewrite_min_size",
        64 * 1024 * 1024,
        "size",
        "the smallest log auto_aof_rewrite_percentage restarts",
        0,
        2**63 - 1,
        runtime=True,
    ),
    Key(
        "enable_protected_configs",
        "no",
        "str",
        "may CONFIG SET change file-name settings (dbfilename)? no, yes, or local (loopback clients only)",
        check=_check_protected,
    ),
    Key(
        "save",
        [[3600, 1], [300, 100], [60, 10000]],
        "save",
        "snapshot schedule: [seconds, changes] pairs; [] = never",
        runtime=True,
    ),
    # ---- TLS (Redis's tls-* settings; constdb/tls.py) ----
    # CONFIG SET of any of them (the same value included: a renewed certificate
    # file is read again) builds new contexts for the connections that follow;
    # tls_replication is fixed: peers dial a member at the port its membership
    # record names.
    Key(
        "tls_port",
        0,
        "int",
        "TLS port for clients (and links with tls_replication); 0 = none",
        0,
        65535,
        runtime=True,
    ),
    Key(
        "tls_cert_file",
        "",
        "str",
        "this node's certificate (PEM), for clients and links",
        runtime=True,
        check=_no_nul,
    ),
    Key(
        "tls_key_file",
        "",
        "str",
        "the private key of tls_cert_file (PEM, not encrypted)",
        runtime=True,
        check=_no_nul,
    ),
    Key(
        "tls_ca_cert_file",
        "",
        "str",
        "CA certificates (PEM) that client and peer certificates must chain to",
        runtime=True,
        check=_no_nul,
    ),
    Key(
        "tls_ca_cert_dir",
        "",
        "str",
        "directory of CA certificates (hashed names, as c_rehash makes)",
        runtime=True,
        check=_no_nul,
    ),
    Key(
        "tls_auth_clients",
        "yes",
        "str",
        "client certificates on tls_port: yes = required, no = not asked, optional = verified if sent",
        runtime=True,
        check=lambda v: (
            None if v.lower() in ("yes", "no", "optional") else "one of yes, no, optional"
        ),
    ),
    Key(
        "tls_replication",
        False,
        "bool",
        "links between members over mutual TLS: peers dial each other's tls_port",
    ),
    Key(
        "tls_protocols",
        "",
        "str",
        'TLS versions, like "TLSv1.2 TLSv1.3"; empty = TLSv1.2 and TLSv1.3',
        runtime=True,
        check=lambda v: (
            None
            if all(p in ("tlsv1", "tlsv1.1", "tlsv1.2", "tlsv1.3") for p in v.lower().split())
            else 'protocol names like "TLSv1.2 TLSv1.3"'
        ),
    ),
    Key(
        "tls_ciphers",
        "",
        "str",
        "OpenSSL cipher list for TLS 1.2 and older; empty = OpenSSL's default",
        runtime=True,
    ),
    Key(
        "tls_ciphersuites",
        "",
        "str",
        'TLS 1.3 cipher suites, like "TLS_AES_256_GCM_SHA384"; empty = OpenSSL\'s default',
        runtime=True,
    ),
    Key(
        "tls_session_caching",
        True,
        "bool",
        "TLS clients may resume a session (an abbreviated handshake) on tls_port",
        runtime=True,
    ),
    Key(
        "tls_session_cache_size",
        20480,
        "int",
        "TLS sessions kept for resumption, the most recent; 0 = no limit",
        0,
        2**31 - 1,
        runtime=True,
    ),
    Key(
        "tls_session_cache_timeout",
        300,
        "int",
        "seconds a TLS session can be resumed",
        0,
        2**31 - 1,
        runtime=True,
    ),
]


# ---- Redis's encoding and memory settings: accepted, with no effect ----------------------------
# Redis 7.0's defaults and ranges. Tools and test suites set them before their
# tests; ConstDB keeps its own representations (docs/internals.md), so the value
# is stored, shown by CONFIG GET and otherwise unused. Redis's older names
# (hash-max-ziplist-entries, ...) are aliases (constdb/commands/config.py).
def _no_defrag(v: Any) -> Optional[str]:
    return "false (ConstDB has no active defragmentation)" if v else None


_L = 2**63 - 1
_I = 2**31 - 1
# name, default, kind, range, what Redis uses it for
_REDIS_NO_EFFECT = [
    ("hash_max_listpack_entries", 512, "int", 0, _L, "hash: listpack entries"),
    ("hash_max_listpack_value", 64, "size", 0, _L, "hash: listpack value size"),
    ("list_max_listpack_size", -2, "int", -_I - 1, _I, "list: node size"),
    ("list_compress_depth", 0, "int", 0, _I, "list: uncompressed nodes at each end"),
    ("set_max_intset_entries", 512, "int", 0, _L, "set: intset entries"),
    ("zset_max_listpack_entries", 128, "int", 0, _L, "sorted set: listpack entries"),
    ("zset_max_listpack_value", 64, "size", 0, _L, "sorted set: listpack value size"),
    ("stream_node_max_bytes", 4096, "size", 0, _L, "stream: node bytes"),
    ("stream_node_max_entries", 100, "int", 0, _L, "stream: node entries"),
    ("active_defrag_ignore_bytes", 104857600, "size", 1, _L, "defrag: fragmentation bytes"),
    ("active_defrag_threshold_lower", 10, "int", 0, 1000, "defrag: lower threshold"),
    ("active_defrag_threshold_upper", 100, "int", 0, 1000, "defrag: upper threshold"),
    ("active_defrag_cycle_min", 1, "int", 1, 99, "defrag: minimum CPU"),
    ("active_defrag_cycle_max", 25, "int", 1, 99, "defrag: maximum CPU"),
    ("active_defrag_max_scan_fields", 1000, "int", 1, _L, "defrag: fields per scan"),
    ("lazyfree_lazy_eviction", False, "bool", None, None, "lazy free on eviction"),
    ("lazyfree_lazy_expire", False, "bool", None, None, "lazy free on expiry"),
    ("lazyfree_lazy_server_del", False, "bool", None, None, "lazy free on server deletes"),
    ("lazyfree_lazy_user_del", False, "bool", None, None, "lazy free on DEL"),
    ("lazyfree_lazy_user_flush", False, "bool", None, None, "lazy free on FLUSHALL"),
    ("replica_lazy_flush", False, "bool", None, None, "lazy free on a replica's flush"),
]
SPEC += [
    Key(n, d, k, f"Redis's {w} (accepted, no effect in ConstDB)", lo, hi, runtime=True)
    for n, d, k, lo, hi, w in _REDIS_NO_EFFECT
]
SPEC.append(
    Key(
        "activedefrag",
        False,
        "bool",
        "Redis's active defragmentation: only false (ConstDB has none)",
        runtime=True,
        check=_no_defrag,
    )
)
BY_NAME = {k.name: k for k in SPEC}


def _fmt(v: Any) -> str:
    return repr(v) if isinstance(v, str) else str(v)


def in_range(key: Key, n: Any) -> bool:
    """The one range check of a numeric key, for the file, the flags and
    CONFIG SET alike (Python ints: any width, no overflow)."""
    return (key.lo is None or n >= key.lo) and (key.hi is None or n <= key.hi)


def range_text(key: Key) -> str:
    """The file's wording of key's range: 1..4294967295."""
    if key.kind == "float":
        return f"{key.lo}..{key.hi}"
    return f"{int(key.lo or 0)}..{int(key.hi or 0)}"


def coerce(key: Key, value: Any, where: str) -> Any:
    """Validate one value; raise ConfigError naming where/key/expected."""

    def bad(expected: str) -> ConfigError:
        return ConfigError(f"{where}: key '{key.name}': expected {expected}, got {_fmt(value)}")

    rng = ""
    if key.lo is not None and key.hi is not None:
        rng = " in " + range_text(key)
    if key.kind == "bool":
        if isinstance(value, str) and value.lower() in ("yes", "no", "true", "false"):
            value = value.lower() in ("yes", "true")
        if not isinstance(value, bool):
            raise bad("true or false")
        err = key.check(value) if key.check is not None else None
        if err:
            raise bad(err)
        return value
    if key.kind == "int":
        n = value
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
                n = int(value)
            else:
                raise bad("an integer" + rng)
        if not in_range(key, n):
            raise bad("an integer" + rng)
        return n
    if key.kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            try:
                value = float(value)
            except (TypeError, ValueError):
                raise bad("a number" + rng)
        if value != value or not in_range(key, value):
            raise bad("a number" + rng)
        return float(value)
    if key.kind == "size":
        n = parse_size(value)
        if n is None or not in_range(key, n):
            raise bad(f'a size in bytes (an integer or a string like "64mb") in {range_text(key)}')
        return n
    if key.kind == "level":
        if isinstance(value, str) and value.upper() in LOG_LEVELS:
            return value.upper()
        raise bad("one of " + ", ".join(LOG_LEVELS))
    if key.kind == "str":
        if not isinstance(value, str):
            raise bad("a string")
        if key.check is not None:
            err = key.check(value)
            if err:
                raise bad(err)
        return value
    if key.kind == "save":
        return parse_save(value, bad)
    raise AssertionError(key.kind)


def parse_save(value: Any, bad: Callable[[str], ConfigError]) -> list[list[int]]:
    """[[seconds, changes], ...], or Redis's "3600 1 300 100" string form."""
    expected = 'a list of [seconds, changes] pairs (or "")'
    if isinstance(value, str):
        parts = value.split()
        if len(parts) % 2 or not all(p.isdigit() for p in parts):
            raise bad(expected)
        value = [[int(parts[i]), int(parts[i + 1])] for i in range(0, len(parts), 2)]
    if not isinstance(value, list):
        raise bad(expected)
    out = []
    for item in value:
        if (
            not isinstance(item, list)
            or len(item) != 2
            or not all(isinstance(x, int) and not isinstance(x, bool) and x > 0 for x in item)
        ):
            raise bad(expected)
        out.append([item[0], item[1]])
    return out


def _file_paths(values: dict[str, Any], config_path: Optional[str]) -> list[tuple[str, str, str]]:
    """(key or "", absolute path, what it is) of every file the node writes
    or reads by name."""
    wd = os.path.abspath(values["work_dir"])
    out = [("", os.path.join(wd, name), what) for name, what in NODE_FILES.items()]
    out.append(("dbfilename", os.path.join(wd, values["dbfilename"]), "the snapshot file"))
    out.append(("pidfile", os.path.join(wd, values["pidfile"]), "the pid file"))
    out.append(
        ("appendfilename", os.path.join(wd, values["appendfilename"]), "the append-only log")
    )
    log = values["log"] or (os.path.join(wd, "constdb.log") if values["daemon"] else "")
    if log:
        out.append(("log", os.path.abspath(log), "the log file"))
    if config_path is not None:
        out.append(("", os.path.abspath(config_path), "the config file"))
    return out


def check_files(
    values: dict[str, Any], config_path: Optional[str], keys: tuple[str, ...] = ()
) -> Optional[tuple[str, str]]:
    """(key, what it collides with) if a file-name setting names another of
    the node's files (node_id, the lock, the snapshot, pid, log or config
    file); keys limits the check to those settings."""
    files = _file_paths(values, config_path)
    for key, path, _ in files:
        if not key or (keys and key not in keys):
            continue
        for other, opath, what in files:
            if other != key and opath == path:
                return key, what
    return None


class Config:
    """Validated settings: attribute access by key name."""

    def __init__(
        self,
        values: dict[str, Any],
        path: Optional[str] = None,
        sources: Optional[dict[str, str]] = None,
    ):
        self.path = path
        self._values = values
        self._sources = dict(sources or {})

    def where(self, name: str) -> str:
        """Where the value of key name came from, for error messages: the
        config file, a command-line flag, or the defaults."""
        return self._sources.get(name, "defaults")

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(name) from None

    def get(self, name: str) -> Any:
        return self._values[name]

    def set(self, name: str, value: Any, where: str = "CONFIG SET") -> Any:
        v = coerce(BY_NAME[name], value, where)
        self._values[name] = v
        self._sources[name] = where
        return v

    def as_dict(self) -> dict[str, Any]:
        return dict(self._values)


def load(path: Optional[str] = None, overrides: Optional[dict[str, Any]] = None) -> Config:
    values = {k.name: k.default for k in SPEC}
    values["save"] = [list(p) for p in values["save"]]
    sources: dict[str, str] = {}
    if path is not None:
        try:
            with open(path, "rb") as f:
                raw = f.read()
        except OSError as e:
            raise ConfigError(f"{path}: cannot read config file: {e.strerror or e}") from None
        try:
            data = tomllib.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise ConfigError(f"{path}: not a UTF-8 text file") from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{path}: invalid TOML: {e}") from None
        for name, value in data.items():
            key = BY_NAME.get(name)
            if key is None:
                if isinstance(value, dict):
                    raise ConfigError(
                        f"{path}: unknown table [{name}]: constdb.toml has no tables, only the keys it lists"
                    )
                raise ConfigError(f"{path}: unknown key '{name}' (see constdb.toml for the keys)")
            values[name] = coerce(key, value, path)
            sources[name] = path
    for name, value in (overrides or {}).items():
        where = f"command line --{FLAG_NAMES.get(name, name.replace('_', '-'))}"
        values[name] = coerce(BY_NAME[name], value, where)
        sources[name] = where
    # the key the user set is the one at fault
    clash = check_files(values, path, tuple(sources)) if sources else None
    clash = clash or check_files(values, path)
    if clash is not None:
        key, what = clash
        raise ConfigError(
            f"{sources.get(key, 'defaults')}: key '{key}': expected a file other than {what},"
            f" got {_fmt(values[key])}"
        )
    if values["port"] == 0 and values["tls_port"] == 0:
        where = sources.get("port", "defaults")
        raise ConfigError(f"{where}: key 'port': 0 (no plain port) needs a tls_port")
    return Config(values, path, sources)


# command-line flags whose name is not the key's
FLAG_NAMES = {"ip": "bind"}


# ---- CONFIG SET: Redis's parsing and error texts ---------------------------------------------


def memtoull(raw: str) -> Optional[int]:
    """Redis's memtoull as CONFIG SET reads a memory value: digits (none is 0)
    and a unit, nothing else; a number past 64 bits saturates (strtoull) and
    the product with the unit wraps at 64 bits, read back as a signed integer."""
    i = 0
    while i < len(raw) and raw[i] in "0123456789":
        i += 1
    mul = _UNITS.get(raw[i:].lower() or None)
    if mul is None or i >= 128:
        return None
    val = min(int(raw[:i] or "0"), 2**64 - 1) * mul % 2**64  # (Redis 7.0 wraps)
    return val - 2**64 if val >= 2**63 else val


def parse_runtime(key: Key, raw: str) -> Any:
    """A CONFIG SET value for key; ConfigError carries Redis's reason text."""
    kind = key.kind
    lo, hi = key.lo, key.hi
    if kind == "bool":
        v = raw.lower()
        if v not in ("yes", "true", "no", "false"):
            raise ConfigError("argument must be 'yes' or 'no'")
        b = v in ("yes", "true")
        err = key.check(b) if key.check is not None else None
        if err:
            raise ConfigError(f"argument must be {err}")
        return b
    if kind == "int":
        # Redis's string2ll: no sign on 0, no leading zeros, 64-bit signed
        if not re.fullmatch(r"0|-?[1-9][0-9]*", raw) or not -(2**63) <= int(raw) < 2**63:
            raise ConfigError("argument couldn't be parsed into an integer")
        n = int(raw)
        if not in_range(key, n):
            raise ConfigError(
                f"argument must be between {int(lo or 0)} and {int(hi or 0)} inclusive"
            )
        return n
    if kind == "float":
        try:
            f = float(raw)
        except ValueError:
            raise ConfigError("argument couldn't be parsed into a number") from None
        if f != f or not in_range(key, f):
            raise ConfigError(f"argument must be between {lo:g} and {hi:g} inclusive")
        return f
    if kind == "size":
        n = memtoull(raw)
        if n is None:
            raise ConfigError("argument must be a memory value")
        if not in_range(key, n):
            raise ConfigError(
                f"argument must be between {int(lo or 0)} and {int(hi or 0)} inclusive"
            )
        return n
    if kind == "level":
        v = raw.upper()
        if v not in LOG_LEVELS:
            raise ConfigError(
                "argument(s) must be one of the following: "
                + ", ".join(x.lower() for x in LOG_LEVELS)
            )
        return v
    if kind == "save":
        parts = raw.split()
        if len(parts) % 2 or not all(p.isdigit() and int(p) > 0 for p in parts):
            raise ConfigError("Invalid save parameters")
        return [[int(parts[i]), int(parts[i + 1])] for i in range(0, len(parts), 2)]
    if key.name == "appendfsync":
        # Redis's enum text
        v = raw.lower()
        if v not in APPENDFSYNC:
            raise ConfigError("argument(s) must be one of the following: " + ", ".join(APPENDFSYNC))
        return v
    if key.name == "notify_keyspace_events":
        from constdb.notify import BAD_CLASS, parse_flags

        # kept as given: the canonical form (CONFIG GET) drops n beside A
        if parse_flags(raw) is None:
            raise ConfigError(BAD_CLASS)
        return raw
    if key.name == "dbfilename":
        # Redis's text for a path; ours for the rest
        if "/" in raw or "\\" in raw:
            raise ConfigError("dbfilename can't be a path, just a filename")
        if "\0" in raw:
            raise ConfigError("dbfilename can't contain a NUL byte")
        if not raw:
            raise ConfigError("dbfilename can't be empty")
        if raw in (".", ".."):
            raise ConfigError("dbfilename can't be . or ..")
    if key.check is not None:
        err = key.check(raw)
        if err:
            raise ConfigError(f"argument must be {err}")
    return raw


# Redis's loglevel names, for CONFIG GET/SET loglevel
REDIS_LOGLEVEL_IN = {
    "debug": "DEBUG",
    "verbose": "DEBUG",
    "notice": "INFO",
    "warning": "WARN",
}
REDIS_LOGLEVEL_OUT = {
    "TRACE": "debug",
    "DEBUG": "debug",
    "INFO": "notice",
    "WARN": "warning",
    "ERROR": "warning",
    "OFF": "nothing",
}


# ---- constdb.toml ------------------------------------------------------------------------------

TOML_HEADER = """\
# ConstDB configuration. Every key is optional; the value shown is the default.
# Start a node with:  constdb-server constdb.toml   (flags such as --port override it)
# Sizes accept bytes or strings like "64mb". Unknown keys are an error.
"""


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return repr(v)


def render_toml() -> str:
    """The repository's constdb.toml: every key of SPEC with its default and meaning."""
    parts = [TOML_HEADER]
    for key in SPEC:
        parts.append(f"\n# {key.doc}\n{key.name} = {_toml_value(key.default)}\n")
    return "".join(parts)
