"""SLOWLOG, LATENCY and ROLE (constdb/monitoring.py keeps the data)."""

from __future__ import annotations

import time
from typing import Any

from constdb._core.codec import RespError, Status, Verbatim
from constdb.commands import command
from constdb.commands.common import OK, text


@command("slowlog")
def slowlog(c: Any, argv: list[bytes]) -> Any:
    # a container named alone: never reached, its arity (-2) refuses that first
    raise RespError("ERR wrong number of arguments for 'slowlog' command")


@command("slowlog|get")
def slowlog_get(c: Any, argv: list[bytes]) -> Any:
    if len(argv) > 3:
        raise RespError(
            f"ERR unknown subcommand or wrong number of arguments for '{text(argv[1])}'."
            " Try SLOWLOG HELP."
        )
    count = 10
    if len(argv) == 3:
        try:
            count = int(argv[2])
        except ValueError:
            count = -2
        if count < -1:
            raise RespError("ERR count should be greater than or equal to -1")
    entries = list(c.srv.app.monitoring.slowlog)
    if count >= 0:
        entries = entries[:count]
    return entries


@command("slowlog|len")
def slowlog_len(c: Any, argv: list[bytes]) -> Any:
    return len(c.srv.app.monitoring.slowlog)


@command("slowlog|reset")
def slowlog_reset(c: Any, argv: list[bytes]) -> Any:
    c.srv.app.monitoring.slowlog.clear()
    return OK


SLOWLOG_HELP = [
    "SLOWLOG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "GET [<count>]",
    "    Return top <count> entries from the slowlog (default: 10, -1 mean all).",
    "    Entries are made of:",
    "    id, timestamp, time in microseconds, arguments array, client IP and port,",
    "    client name",
    "LEN",
    "    Return the length of the slowlog.",
    "RESET",
    "    Reset the slowlog.",
    "HELP",
    "    Prints this help.",
]


@command("slowlog|help")
def slowlog_help(c: Any, argv: list[bytes]) -> Any:
    return [Status(x) for x in SLOWLOG_HELP]


@command("latency")
def latency(c: Any, argv: list[bytes]) -> Any:
    raise RespError("ERR wrong number of arguments for 'latency' command")


@command("latency|latest")
def latency_latest(c: Any, argv: list[bytes]) -> Any:
    m = c.srv.app.monitoring
    return [
        [event.encode(), hist[-1][0], hist[-1][1], m.latency_max[event]]
        for event, hist in m.latency.items()
        if hist
    ]


@command("latency|history")
def latency_history(c: Any, argv: list[bytes]) -> Any:
    hist = c.srv.app.monitoring.latency.get(text(argv[2]))
    return [list(x) for x in hist] if hist else []


@command("latency|reset")
def latency_reset(c: Any, argv: list[bytes]) -> Any:
    m = c.srv.app.monitoring
    names = [text(a) for a in argv[2:]] or list(m.latency)
    n = 0
    for name in names:
        if m.latency.pop(name, None) is not None:
            m.latency_max.pop(name, None)
            n += 1
    return n


@command("latency|graph")
def latency_graph(c: Any, argv: list[bytes]) -> Any:
    event = text(argv[2])
    hist = c.srv.app.monitoring.latency.get(event)
    if not hist:
        raise RespError(f"ERR No samples available for event '{event}'")
    # ConstDB's own drawing: one column a sample, oldest left, 8 rows high
    top = max(ms for _, ms in hist) or 1
    now = int(time.time())
    rows = []
    for level in range(8, 0, -1):
        rows.append("".join("#" if ms * 8 >= level * top else " " for _, ms in hist))
    ages = " ".join(f"{now - ts}s" for ts, _ in list(hist)[-5:])
    head = f"{event} - high {top} ms, low {min(ms for _, ms in hist)} ms (all time high {c.srv.app.monitoring.latency_max[event]} ms)"
    return Verbatim(
        (
            head + "\n" + "-" * 80 + "\n" + "\n".join(rows) + f"\nlast samples' ages: {ages}\n"
        ).encode()
    )


@command("latency|doctor")
def latency_doctor(c: Any, argv: list[bytes]) -> Any:
    m = c.srv.app.monitoring
    if c.srv.latency_ns <= 0:
        report = (
            "Latency monitoring is off on this node: CONFIG SET latency-monitor-threshold"
            " <milliseconds> turns it on (commands at least that slow are recorded).\n"
        )
    elif not m.latency:
        report = "No latency spike has been recorded on this node since monitoring was turned on.\n"
    else:
        lines = ["Latency spikes recorded on this node:"]
        for event, hist in m.latency.items():
            avg = sum(ms for _, ms in hist) // len(hist)
            lines.append(
                f"- {event}: {len(hist)} samples, average {avg} ms, worst {m.latency_max[event]} ms"
                f" (latest {hist[-1][1]} ms, {int(time.time()) - hist[-1][0]} s ago)."
            )
        lines.append(
            "Look at SLOWLOG GET for the commands, and at INFO commandstats for their mean cost."
        )
        report = "\n".join(lines) + "\n"
    return Verbatim(report.encode())


@command("latency|histogram")
def latency_histogram(c: Any, argv: list[bytes]) -> Any:
    srv = c.srv
    if len(argv) == 2:
        cmds = list(srv.table.values())
    else:
        cmds = []
        for name in argv[2:]:
            parent, bar, sub = name.lower().partition(b"|")
            cmd = srv.command(parent)
            if cmd is not None and bar:
                cmd = (cmd.subcommands or {}).get(sub)
            if cmd is not None:
                cmds.append(cmd)
    out = {}
    for cmd in cmds:
        group = [cmd, *(cmd.subcommands or {}).values()]
        for x in group:
            if x.calls:
                out[x.fullname] = {
                    b"calls": x.calls,
                    b"histogram_usec": {b: n for b, n in x.latency_cdf()},
                }
    return out


LATENCY_HELP = [
    "LATENCY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "DOCTOR",
    "    Return a human readable latency analysis report.",
    "GRAPH <event>",
    "    Return an ASCII latency graph for the <event> class.",
    "HISTORY <event>",
    "    Return time-latency samples for the <event> class.",
    "LATEST",
    "    Return the latest latency samples for all events.",
    "RESET [<event> ...]",
    "    Reset latency data of one or more <event> classes.",
    "    (default: reset all data for all event classes)",
    "HISTOGRAM [COMMAND ...]",
    "    Return a cumulative distribution of latencies in the format of a histogram for the specified command names.",
    "    If no commands are specified then all histograms are replied.",
    "HELP",
    "    Prints this help.",
]


@command("latency|help")
def latency_help(c: Any, argv: list[bytes]) -> Any:
    return [Status(x) for x in LATENCY_HELP]


@command("role")
def role(c: Any, argv: list[bytes]) -> Any:
    """Every member takes writes: each answers "master", with its stream
    position (records it wrote) and, as its replicas, the members whose link
    is up with what each acknowledged of that stream."""
    repl = c.srv.app.repl
    peers = []
    for row in repl.peer_rows():
        if row["state"] not in ("connected", "syncing"):
            continue
        host, _, port = row["addr"].rpartition(":")
        acked = repl.backlog.nrec_total - row["lag_records"]
        peers.append([host.strip("[]").encode(), port.encode(), str(acked).encode()])
    return [b"master", repl.backlog.nrec_total, peers]
