"""INFO: the node's state and statistics, in Redis's sections and field
names (and a few of ConstDB's own: node_id, vv, the backlog, the peers)."""

from __future__ import annotations

import os
import platform
import resource
import sys
import time
from typing import Any, Callable

from constdb import __version__
from constdb._core.clock import now_us
from constdb._core.codec import Verbatim
from constdb.commands import command
from constdb.commands.common import REDIS_COMPAT_VERSION, text

Rows = list[tuple[str, Any]]


@command("info")
def info(c: Any, argv: list[bytes]) -> Any:
    wanted = [text(a).lower() for a in argv[1:]] or ["default"]
    return Verbatim(info_text(c.srv.app, wanted).encode())


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


# ---- the sections, in Redis's order ----


def server(app: Any) -> Rows:
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
        ("tcp_port", app.cfg.port),
        ("server_time_usec", now_us()),
        ("uptime_in_seconds", up),
        ("uptime_in_days", up // 86400),
        ("hz", app.cfg.hz),
        ("configured_hz", app.cfg.hz),
        ("lru_clock", int(time.time()) & ((1 << 24) - 1)),
        ("executable", os.path.abspath(sys.argv[0]) if sys.argv and sys.argv[0] else ""),
        ("config_file", os.path.abspath(app.cfg.path) if app.cfg.path else ""),
        ("io_threads_active", 0),
        ("node_id", app.node_id),
        ("node_alias", app.alias),
    ]


def clients(app: Any) -> Rows:
    cl = list(app.srv.clients.values())
    return [
        ("connected_clients", len(cl)),
        ("cluster_connections", 0),
        ("maxclients", app.srv.maxclients),
        ("client_recent_max_input_buffer", max((c.qbuf for c in cl), default=0)),
        ("client_recent_max_output_buffer", max((c.obuf for c in cl), default=0)),
        ("blocked_clients", sum(1 for c in cl if c.blocked)),
        ("tracking_clients", 0),
        ("clients_in_timeout_table", app.blocking.in_timeout_table()),
    ]


def memory(app: Any) -> Rows:
    bl = app.backlog.size
    return [
        *app.memory.info_rows(_rss(), _total_memory()),
        ("mem_replication_backlog", bl),
        ("mem_backlog", bl),
        ("mem_backlog_human", _human(bl)),
        ("mem_allocator", "pymalloc"),
    ]


def persistence(app: Any) -> Rows:
    return app.persistence.info()


def stats(app: Any) -> Rows:
    rows = [
        ("total_connections_received", app.srv.total_connections),
        ("total_commands_processed", app.srv.total_commands),
        ("instantaneous_ops_per_sec", app.instantaneous_ops()),
        ("total_net_input_bytes", app.srv.net_input_bytes),
        ("total_net_output_bytes", app.srv.net_output_bytes),
        ("rejected_connections", app.srv.rejected_connections),
        ("expired_keys", app.ks.expired_keys),
        *app.memory.stats(),
        ("keyspace_hits", app.ks.hits),
        ("keyspace_misses", app.ks.misses),
        ("pubsub_channels", len(app.pubsub.channels)),
        ("pubsub_patterns", len(app.pubsub.patterns)),
        ("pubsubshard_channels", len(app.pubsub.shard)),
        ("pubsub_messages_from_peers", app.pubsub.remote_messages),
        ("pubsub_messages_dropped", app.repl.pubsub_dropped),
        *app.tracking.info(),
        ("total_error_replies", app.srv.total_errors),
        ("remote_effects_applied", app.ks.applied_remote),
        ("pending_tombstones", sum(len(db.tombs) for db in app.ks.dbs)),
        ("type_conflict_keys", sum(len(db.alts) for db in app.ks.dbs)),
    ]
    return rows


def replication(app: Any) -> Rows:
    bl = app.backlog
    vv = app.ks.get_vv()
    replicas = peer_replicas(app)
    rows = [
        ("role", "master"),
        ("connected_slaves", len(replicas)),
        *replicas,
        # Redis's fields, with values of ConstDB's own: this run's id and the
        # number of records this node has written (its stream position)
        ("master_failover_state", "no-failover"),
        ("master_replid", app.run_id),
        ("master_replid2", "0" * 40),
        ("master_repl_offset", bl.nrec_total),
        ("second_repl_offset", -1),
        ("node_id", app.node_id),
        ("node_alias", app.alias),
        ("uuid", app.ks.clock.last),
        ("vv", ",".join(f"{n}:{u}" for n, u in sorted(vv.items()))),
        ("dot_cloud", sum(len(s) for s in app.ks.cloud.values())),
        ("repl_backlog_active", 1),
        ("repl_backlog_size", app.cfg.repl_backlog_limit),
        # what it holds now: at most 1 MiB while the node has no peer
        ("repl_backlog_limit_now", app.repl.backlog_limit),
        ("repl_backlog_histlen", bl.size),
        ("repl_backlog_records", bl.nrec),
        ("repl_backlog_first_uuid", bl.first_uuid),
        ("repl_backlog_last_uuid", bl.last_uuid),
    ]
    rows.extend(app.repl.info())
    rows.extend(group(app))
    return rows


def cpu(app: Any) -> Rows:
    r = resource.getrusage(resource.RUSAGE_SELF)
    rc = resource.getrusage(resource.RUSAGE_CHILDREN)
    return [
        ("used_cpu_sys", f"{r.ru_stime:.6f}"),
        ("used_cpu_user", f"{r.ru_utime:.6f}"),
        ("used_cpu_sys_children", f"{rc.ru_stime:.6f}"),
        ("used_cpu_user_children", f"{rc.ru_utime:.6f}"),
    ]


def commandstats(app: Any) -> Rows:
    rows = []
    cmds = sorted(app.srv.all_commands(), key=lambda c: c.fullname)
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


def errorstats(app: Any) -> Rows:
    return [(f"errorstat_{k}", f"count={v}") for k, v in sorted(app.srv.error_counts.items())]


def cluster(app: Any) -> Rows:
    return [("cluster_enabled", 0)]


def keyspace(app: Any) -> Rows:
    ks = app.ks
    rows: Rows = []
    for db in ks.dbs:
        if db.d:
            n = len(db.d)
            rows.append(
                (f"db{db.index}", f"keys={n},expires={ks.expires_count(db.index)},avg_ttl=0")
            )
    return rows


# ---- metrics for prometheus-redis-exporter (docs/deploy.md, "What to alert on") ----
# The exporter (1.45) turns each `slaveN:ip=,port=,state=,offset=,lag=` line of
# the Replication section into redis_connected_slave_offset_bytes and
# redis_connected_slave_lag_seconds labelled by the peer's address and state,
# and every numeric field named `cluster_*` (any section) into a gauge
# redis_cluster_*; other unknown fields are dropped. So a peer with a link up
# is a `slaveN` line (offset: the records it acknowledged, in the same unit as
# master_repl_offset, the records this node has written; lag: the age of the
# oldest write it has not acknowledged, in seconds), and the group's own
# figures are the `cluster_*` fields that end the Replication section.

REPLICA_STATES = {"connected": "online", "syncing": "send_bulk"}


def peer_replicas(app: Any) -> Rows:
    rows: Rows = []
    for r in app.repl.peer_rows():
        state = REPLICA_STATES.get(r["state"])
        if state is None:
            continue
        host, _, port = str(r["addr"]).rpartition(":")
        link = app.repl.peers[r["id"]].link
        offset = link.acked_seq if link is not None else 0
        rows.append(
            (
                f"slave{len(rows)}",
                f"ip={host.strip('[]')},port={port},state={state},offset={offset},"
                f"lag={r['lag_ms'] / 1000:.3f}",
            )
        )
    return rows


def group(app: Any) -> Rows:
    rows = app.repl.peer_rows()
    peers = [r for r in rows if r["state"] not in ("myself", "forgotten")]
    stable = app.repl.stable
    age = max(0, int(time.time() * 1000) - (stable >> 22)) if stable else -1
    bl = app.backlog
    return [
        ("cluster_peers_known", len(peers)),
        ("cluster_peers_connected", sum(1 for r in peers if r["state"] == "connected")),
        ("cluster_peers_syncing", sum(1 for r in peers if r["state"] == "syncing")),
        ("cluster_peers_down", sum(1 for r in peers if r["state"] in ("connecting", "down"))),
        ("cluster_peer_lag_records_max", max((r["lag_records"] for r in peers), default=0)),
        ("cluster_peer_lag_ms_max", max((r["lag_ms"] for r in peers), default=0)),
        ("cluster_full_syncs", sum(r["full_syncs"] for r in peers)),
        ("cluster_partial_syncs", sum(r["partial_syncs"] for r in peers)),
        ("cluster_backlog_bytes", bl.size),
        ("cluster_backlog_records", bl.nrec),
        ("cluster_backlog_limit_bytes", app.repl.backlog_limit),
        ("cluster_pending_tombstones", sum(len(db.tombs) for db in app.ks.dbs)),
        ("cluster_stable_point_age_ms", age),
        ("cluster_clock_drift_refusals", app.repl.clock_drift_refusals),
        ("cluster_remote_effects_applied", app.ks.applied_remote),
    ]


# latency-tracking-info-percentiles, Redis's default
LATENCY_PERCENTILES = (50.0, 99.0, 99.9)


def latencystats(app: Any) -> Rows:
    """Redis 7's latency_percentiles_usec_<cmd>:p50=..,p99=..,p99.9=.. from the
    per-command histograms (protocol.pyx Command.latency_percentiles)."""
    rows = []
    for cmd in sorted(app.srv.all_commands(), key=lambda c: c.fullname):
        if not cmd.calls:
            continue
        ps = cmd.latency_percentiles(LATENCY_PERCENTILES)
        if ps:
            rows.append(
                (
                    f"latency_percentiles_usec_{cmd.fullname.decode()}",
                    ",".join(f"p{p:g}={v:.3f}" for p, v in ps),
                )
            )
    return rows


SECTIONS: dict[str, Callable[[Any], Rows]] = {
    "server": server,
    "clients": clients,
    "memory": memory,
    "persistence": persistence,
    "stats": stats,
    "replication": replication,
    "cpu": cpu,
    "modules": lambda app: [],
    "commandstats": commandstats,
    "errorstats": errorstats,
    "latencystats": latencystats,
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
    sections = SECTIONS
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
        rows = fn(app)
        body = "".join(f"{k}:{v}\r\n" for k, v in rows)
        parts.append(f"# {SECTION_TITLES.get(name, name.capitalize())}\r\n{body}")
    return "\r\n".join(parts)
