"""maxmemory and memory accounting (docs/internals.md "Memory and eviction").

`used_memory` is ConstDB's own count, not the RSS: the estimated bytes of
the data set (Keyspace.mem_ds, kept per object as it changes: keyspace.pyx
mem_est), plus the key tables' slot arrays, the backlog, the clients'
buffers, the replication links' buffers, the W-TinyLFU sketch and window,
what waits for GC, plus a fixed startup share. The links' buffers and what
waits for GC do not count towards eviction (as Redis leaves replicas'
output buffers out: mem_not_counted_for_evict): a slow peer must not make
its node evict. Eviction itself is C (_core/evict.pyx); this module
configures it, refreshes its limit from the cron and gives INFO its rows.
"""

from __future__ import annotations

import resource
from typing import Any

from constdb._core.evict import POLICIES, Evictor

# what a node holds before any key: command table, config, scripts' tables
STARTUP_BYTES = 1 << 20
LAZY_SLICE = 20_000  # elements freed per event-loop turn (about 1-2 ms)
OOM_ERR = "OOM command not allowed when used memory > 'maxmemory'."


def out_of_memory(srv: Any) -> bool:
    """Redis's out_of_memory of processCommand: over the limit, and evicting
    cannot bring the data set under it (noeviction, or nothing to evict)."""
    ev = srv.evictor
    ks = srv.ks
    return ev is not None and ks.mem_ds > ks.ds_limit and ev.run() == 1


def human(n: float) -> str:
    """Redis's bytesToHuman."""
    for unit, size in (("B", 1), ("K", 1 << 10), ("M", 1 << 20), ("G", 1 << 30), ("T", 1 << 40)):
        if n < size * 1024 or unit == "T":
            return f"{n}B" if unit == "B" else f"{n / size:.2f}{unit}"
    return f"{n}B"


def check_policy(v: str) -> str | None:
    return None if v.lower() in POLICIES else "one of " + ", ".join(POLICIES)


class Memory:
    """The node's memory figures and its Evictor."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.ev = Evictor(app.ks)
        app.srv.evictor = self.ev
        self.peak = 0
        self.other = 0
        self.pumping = False

    def lazy_pump(self) -> None:
        """Free what UNLINK, FLUSHALL ASYNC and evictions left, a slice of
        LAZY_SLICE elements per event-loop turn."""
        if self.app.ks.lazy_step(LAZY_SLICE):
            self.app.loop.call_soon(self.lazy_pump)
        else:
            self.pumping = False

    def configure(self, cfg: Any) -> None:
        ev = self.ev
        ks = self.app.ks
        ev.maxmemory = cfg.maxmemory
        ev.margin = cfg.maxmemory_eviction_margin
        ev.samples = cfg.maxmemory_samples
        ev.tenacity = cfg.maxmemory_eviction_tenacity
        ks.lfu_log_factor = cfg.lfu_log_factor
        ks.lfu_decay_time = cfg.lfu_decay_time
        policy = cfg.maxmemory_policy.lower()
        if policy != ev.policy:
            ev.set_policy(policy)
        self.refresh()

    # ---- the figures ----

    def clients_bytes(self) -> int:
        n = 0
        for c in self.app.srv.clients.values():
            n += c.qbuf + c.obuf
        return n

    def links_bytes(self) -> int:
        repl = getattr(self.app, "repl", None)
        if repl is None:
            return 0
        return sum(link.mem_bytes() for link in repl.links)

    def parts(self) -> dict[str, int]:
        ev = self.ev
        return {
            "dataset": self.app.ks.mem_ds,
            "tables": self.app.ks.table_bytes(),
            "backlog": self.app.backlog.size,
            "clients": self.clients_bytes(),
            "links": self.links_bytes(),
            "eviction": ev.sketch_bytes(),
            "tombstones": self.app.ks.waiting_bytes(),
            "startup": STARTUP_BYTES,
        }

    def used(self) -> int:
        u = sum(self.parts().values())
        if u > self.peak:
            self.peak = u
        return u

    def refresh(self) -> None:
        """The data set's limit from what else the node holds (cron, CONFIG
        SET). Left out (not counted for eviction), as Redis leaves its
        replicas' buffers out: the links' buffers and the tombstones waiting
        for GC, both of which an eviction adds to (its DEL is sent, and
        leaves a tombstone). The margin applies while the node has a peer or
        a link (ks.solo: the replication layer's)."""
        p = self.parts()
        self.other = p["tables"] + p["backlog"] + p["clients"] + p["eviction"] + p["startup"]
        self.ev.set_limit(self.other, not self.app.ks.solo)
        self.used()

    def cron(self) -> None:
        if self.app.ks.lazy and not self.pumping:
            self.pumping = True
            self.app.loop.call_soon(self.lazy_pump)
        self.refresh()
        if self.app.ks.mem_ds > self.app.ks.ds_limit:
            self.ev.run()

    def after_peer_batch(self) -> None:
        """A node over its limit applies a peer's effects, then evicts."""
        if self.app.ks.mem_ds > self.app.ks.ds_limit:
            self.ev.run()

    # ---- INFO memory ----

    def info_rows(self, rss: int, total: int) -> list[tuple[str, Any]]:
        p = self.parts()
        used = sum(p.values())
        self.peak = max(self.peak, used)
        peak = self.peak
        mx = self.ev.maxmemory
        ds = p["dataset"]
        return [
            ("used_memory", used),
            ("used_memory_human", human(used)),
            ("used_memory_rss", rss),
            ("used_memory_rss_human", human(rss)),
            ("used_memory_peak", peak),
            ("used_memory_peak_human", human(peak)),
            ("used_memory_peak_perc", f"{100.0 * used / peak if peak else 0:.2f}%"),
            ("used_memory_overhead", used - ds),
            ("used_memory_startup", p["startup"]),
            ("used_memory_dataset", ds),
            ("used_memory_dataset_perc", f"{100.0 * ds / used if used else 0:.2f}%"),
            ("total_system_memory", total),
            ("total_system_memory_human", human(total)),
            ("maxmemory", mx),
            ("maxmemory_human", human(mx)),
            ("maxmemory_policy", self.ev.policy),
            ("maxmemory_eviction_margin", f"{self.ev.margin:g}"),
            ("mem_fragmentation_ratio", f"{rss / used if used else 0:.2f}"),
            ("mem_fragmentation_bytes", rss - used),
            ("mem_not_counted_for_evict", p["links"] + p["tombstones"]),
            ("mem_clients_slaves", p["links"]),
            ("mem_clients_normal", p["clients"]),
            ("mem_eviction_sketch", p["eviction"]),
            ("mem_key_tables", p["tables"]),
            ("mem_tombstones", p["tombstones"]),
            ("lazyfree_pending_objects", len(self.app.ks.lazy)),
        ]

    def stats(self) -> list[tuple[str, Any]]:
        ev = self.ev
        return [
            ("evicted_keys", self.app.ks.evicted_keys),
            ("evicted_admitted", ev.admitted),
            ("evicted_rejected_newcomers", ev.rejected),
            ("eviction_exceeded_time", 0),
            ("total_eviction_exceeded_time", ev.evict_ns // 1_000_000),
        ]


def peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
