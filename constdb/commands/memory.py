"""MEMORY and OBJECT (constdb/eviction.py keeps the figures; the per-key
estimate is keyspace.pyx's mem_est)."""

from __future__ import annotations

from typing import Any

from constdb._core.codec import RespError, Status
from constdb._core.objects import HashObj, ListObj, SetObj, StrObj, ZSetObj
from constdb.commands import command
from constdb.commands.common import OK, SYNTAX, int_arg
from constdb.commands.info import _rss


@command("memory")
def memory(c: Any, argv: list[bytes]) -> Any:
    # a container named alone: never reached, its arity (-2) refuses that first
    raise RespError("ERR wrong number of arguments for 'memory' command")


@command("memory|usage")
def memory_usage(c: Any, argv: list[bytes]) -> Any:
    i = 3
    while i < len(argv):
        if argv[i].lower() == b"samples" and i + 1 < len(argv):
            if int_arg(argv[i + 1]) < 0:
                raise RespError(SYNTAX)
            i += 2
        else:
            raise RespError(SYNTAX)
    r = _visible(c, argv[2])
    return None if r is None else r[0]


def _visible(c: Any, key: bytes) -> Any:
    ks = c.srv.app.ks
    if ks.is_gone(key):
        return None
    return ks.obj_mem(key)


@command("memory|stats")
def memory_stats(c: Any, argv: list[bytes]) -> Any:
    app = c.srv.app
    mem = app.memory
    p = mem.parts()
    used = sum(p.values())
    peak = max(mem.peak, used)
    rss = _rss()
    ks = app.ks
    nkeys = ks.dbsize()  # every db
    ds = p["dataset"]
    over = used - ds
    rows = {
        "peak.allocated": peak,
        "total.allocated": used,
        "startup.allocated": p["startup"],
        "replication.backlog": p["backlog"],
        "clients.slaves": 0,
        "clients.normal": p["clients"],
        "cluster.links": 0,
        "aof.buffer": 0,
        "lua.caches": 0,
        "functions.caches": 0,
        **{
            f"db.{db.index}": {
                "overhead.hashtable.main": 8 * db.d.slots() + 16 * len(db.d),
                "overhead.hashtable.expires": 8 * db.expires.slots() + 16 * len(db.expires),
            }
            for db in ks.dbs
            if db.d or db.index == 0
        },
        "overhead.total": over,
        "keys.count": nkeys,
        "keys.bytes-per-key": (used - p["startup"]) // nkeys if nkeys else 0,
        "dataset.bytes": ds,
        "dataset.percentage": 100.0 * ds / used if used else 0.0,
        "peak.percentage": 100.0 * used / peak if peak else 0.0,
        "eviction.sketch": p["eviction"],
        "tombstones": p["tombstones"],
        "fragmentation": rss / used if used else 0.0,
        "fragmentation.bytes": rss - used,
    }
    return rows


@command("memory|doctor")
def memory_doctor(c: Any, argv: list[bytes]) -> Any:
    app = c.srv.app
    mem = app.memory
    used = mem.used()
    if app.ks.dbsize() == 0 or used < 5 << 20:
        return "This node holds too little data for a memory report to say anything useful."
    rss = _rss()
    lines = []
    if mem.peak > used * 3 / 2:
        lines.append(f"Peak memory: the peak ({mem.peak} bytes) is over 150% of what is used now.")
    if rss > used * 1.4:
        lines.append(
            f"Fragmentation: the RSS is {rss / used:.2f} times used_memory (freed blocks the"
            " allocator keeps, and the interpreter itself)."
        )
    if mem.ev.maxmemory and mem.ev.policy == "noeviction" and used > mem.ev.maxmemory * 0.9:
        lines.append("Near maxmemory under noeviction: writes will soon be refused.")
    if not lines:
        return "No memory problem found on this node."
    return "Memory report:\n\n * " + "\n\n * ".join(lines) + "\n"


@command("memory|malloc-stats")
def memory_malloc_stats(c: Any, argv: list[bytes]) -> Any:
    return "Stats not supported for the current allocator"


@command("memory|purge")
def memory_purge(c: Any, argv: list[bytes]) -> Any:
    return OK


MEMORY_HELP = [
    "MEMORY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "DOCTOR",
    "    Return memory problems reports.",
    "MALLOC-STATS",
    "    Return internal statistics report from the memory allocator.",
    "PURGE",
    "    Attempt to purge dirty pages for reclamation by the allocator.",
    "STATS",
    "    Return information about the memory usage of the server.",
    "USAGE <key> [SAMPLES <count>]",
    "    Return memory in bytes used by <key> and its value. Nested values are",
    "    sampled up to <count> times (default: 5, 0 means sample all).",
    "HELP",
    "    Prints this help.",
]


@command("memory|help")
def memory_help(c: Any, argv: list[bytes]) -> Any:
    return [Status(x) for x in MEMORY_HELP]


# ---- OBJECT ----

LFU_OFF = (
    "ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note"
    " that when switching between policies at runtime LRU and LFU data will take some time"
    " to adjust."
)
LFU_ON = (
    "ERR An LFU maxmemory policy is selected, idle time not tracked. Please note that when"
    " switching between policies at runtime LRU and LFU data will take some time to adjust."
)
SHARED_REFCOUNT = 2147483647


@command("object")
def object_(c: Any, argv: list[bytes]) -> Any:
    raise RespError("ERR wrong number of arguments for 'object' command")


def _obj(c: Any, key: bytes) -> Any:
    ks = c.srv.app.ks
    if ks.is_gone(key):
        return None
    return ks.d.get(key)


def _small_int(v: Any) -> bool:
    return type(v) is bytes and 0 < len(v) <= 4 and v.isdigit() and (v == b"0" or v[0:1] != b"0")


def _is_int(v: bytes) -> bool:
    if not 0 < len(v) <= 20:
        return False
    s = v[1:] if v[:1] == b"-" else v
    if not s.isdigit() or (len(s) > 1 and s[:1] == b"0") or v == b"-0":
        return False
    return -(2**63) <= int(v) < 2**63


@command("object|encoding")
def object_encoding(c: Any, argv: list[bytes]) -> Any:
    o = _obj(c, argv[2])
    if o is None:
        return None
    t = type(o)
    if t is StrObj:
        v = o.val
        if type(v) is not bytes:
            return "raw"
        if _is_int(v):
            return "int"
        return "embstr" if len(v) <= 44 else "raw"
    if t is SetObj or t is HashObj:
        return "hashtable"
    if t is ZSetObj:
        return "skiplist"
    if t is ListObj:
        return "rga"
    return "mvreg"


@command("object|freq")
def object_freq(c: Any, argv: list[bytes]) -> Any:
    if _obj(c, argv[2]) is None:
        return None
    if c.srv.app.memory.ev.policy not in ("allkeys-lfu", "volatile-lfu"):
        raise RespError(LFU_OFF)
    return c.srv.app.ks.lfu_counter(argv[2])


@command("object|idletime")
def object_idletime(c: Any, argv: list[bytes]) -> Any:
    o = _obj(c, argv[2])
    if o is None:
        return None
    if c.srv.app.memory.ev.policy in ("allkeys-lfu", "volatile-lfu"):
        raise RespError(LFU_ON)
    now = c.srv.app.ks.now & 0xFFFFFFFF
    return ((now - o.lru) & 0xFFFFFFFF) // 1000


@command("object|refcount")
def object_refcount(c: Any, argv: list[bytes]) -> Any:
    o = _obj(c, argv[2])
    if o is None:
        return None
    if type(o) is StrObj and _small_int(o.val):
        return SHARED_REFCOUNT
    return 1


OBJECT_HELP = [
    "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "ENCODING <key>",
    "    Return the kind of internal representation used in order to store the value",
    "    associated with a <key>.",
    "FREQ <key>",
    "    Return the access frequency index of the <key>. The returned integer is",
    "    proportional to the logarithm of the recent access frequency of the key.",
    "IDLETIME <key>",
    "    Return the idle time of the <key>, that is the approximated number of",
    "    seconds elapsed since the last access to the key.",
    "REFCOUNT <key>",
    "    Return the number of references of the value associated with the specified",
    "    <key>.",
    "HELP",
    "    Prints this help.",
]


@command("object|help")
def object_help(c: Any, argv: list[bytes]) -> Any:
    return [Status(x) for x in OBJECT_HELP]
