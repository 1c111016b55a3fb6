"""SLOWLOG and LATENCY: what an operator asks a node about its slow
commands, with Redis's entries, limits and replies. Client.call reports a
command that took at least `slowlog-log-slower-than` microseconds or
`latency-monitor-threshold` milliseconds (one comparison per command when
neither is reached)."""

from __future__ import annotations

import time
from collections import deque
from typing import Any

MAX_ARGC = 32  # Redis's SLOWLOG_ENTRY_MAX_ARGC
MAX_STRING = 128  # Redis's SLOWLOG_ENTRY_MAX_STRING
LATENCY_SAMPLES = 160  # Redis's LATENCY_TS_LEN
REDACTED = b"(redacted)"
NS_CAP = 2**62  # thresholds beyond this many ns are never reached


def _redacted(argv: list[bytes]) -> list[bytes]:
    """AUTH's and HELLO ... AUTH's credentials are never shown."""
    name = argv[0].lower()
    if name == b"auth":
        return [argv[0]] + [REDACTED] * (len(argv) - 1)
    if name == b"hello":
        out = list(argv)
        for i in range(2, len(argv) - 2):
            if argv[i].lower() == b"auth":
                out[i + 1] = out[i + 2] = REDACTED
        return out
    return argv


def slowlog_argv(argv: list[bytes]) -> list[bytes]:
    """An entry's arguments: at most 32 (the last one saying how many more),
    each cut at 128 bytes (saying how many more)."""
    argv = _redacted(argv)
    n = min(len(argv), MAX_ARGC)
    out = []
    for i in range(n):
        if i == MAX_ARGC - 1 and len(argv) > MAX_ARGC:
            out.append(b"... (%d more arguments)" % (len(argv) - MAX_ARGC + 1))
            break
        a = argv[i]
        if len(a) > MAX_STRING:
            a = a[:MAX_STRING] + b"... (%d more bytes)" % (len(a) - MAX_STRING)
        out.append(a)
    return out


class Monitoring:
    def __init__(self, app: Any) -> None:
        self.app = app
        self.slowlog: deque[list[Any]] = deque()
        self.slowlog_max = 128
        self.next_id = 0
        # event -> deque of [unix seconds, latency ms]; event -> max ever
        self.latency: dict[str, deque[list[int]]] = {}
        self.latency_max: dict[str, int] = {}

    def configure(self, cfg: Any) -> None:
        srv = self.app.srv
        us, ms = cfg.slowlog_log_slower_than, cfg.latency_monitor_threshold
        srv.slowlog_ns = -1 if us < 0 else min(us, NS_CAP // 1000) * 1000
        srv.latency_ns = min(ms, NS_CAP // 1_000_000) * 1_000_000
        self.slowlog_max = cfg.slowlog_max_len
        while len(self.slowlog) > self.slowlog_max:
            self.slowlog.pop()

    def command_done(self, c: Any, cmd: Any, argv: list[bytes], usec: int) -> None:
        flags = cmd.spec.flags
        slow = self.app.cfg.slowlog_log_slower_than
        if slow >= 0 and usec >= slow and "skip_slowlog" not in flags:
            entry = [
                self.next_id,
                int(time.time()),
                usec,
                slowlog_argv(argv),
                (c.addr or "").encode(),
                c.name or b"",
            ]
            self.next_id += 1
            self.slowlog.appendleft(entry)
            while len(self.slowlog) > self.slowlog_max:
                self.slowlog.pop()
        ms = self.app.cfg.latency_monitor_threshold
        if ms > 0 and usec >= ms * 1000:
            self.sample("fast-command" if "fast" in flags else "command", usec // 1000)

    def sample(self, event: str, ms: int) -> None:
        """Redis's latencyAddSample: one sample a second (the largest)."""
        now = int(time.time())
        hist = self.latency.setdefault(event, deque(maxlen=LATENCY_SAMPLES))
        if hist and hist[-1][0] == now:
            hist[-1][1] = max(hist[-1][1], ms)
        else:
            hist.append([now, ms])
        self.latency_max[event] = max(self.latency_max.get(event, 0), ms)
