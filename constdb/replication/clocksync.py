"""Each link measures the peer's wall-clock offset (docs/replication.md
section 8): TIME frames carry the sender's wall clock and echo the last one
received, NTP-style, so each side computes the offset and its error bound
from one round trip; the lowest-bound samples are kept. The keyspace reads
the result (Keyspace.set_clock_skew) to judge TTL deadlines other nodes
wrote (docs/crdt.md section 6), INFO and NODES show it, the log warns past
clock_drift_warn, and a link whose peer is surely beyond max_clock_drift is
refused (CLOCK)."""

from __future__ import annotations

import struct
import time
from collections import deque
from typing import Optional

from constdb._core.clock import now_us

# TIME frame payload: u64 the sender's wall clock (us) when sending, u64 the
# peer's clock of the last TIME frame the sender received (0: none), u64 us
# the sender held that one before this frame left, u8 flags (1: answer now)
TIME = struct.Struct("<QQQB")
T_ANSWER = 1

SAMPLES = 8  # the last samples kept per peer; the one with the lowest bound is used
# how fast a clock may drift from its last measurement while it is not
# measured (1 ms a second: far more than a free-running quartz clock)
DRIFT_US_PER_S = 1000
WARN_EVERY = 60.0  # seconds between two warnings about one peer's clock


class PeerClock:
    """What this node knows of one peer's clock."""

    def __init__(self) -> None:
        # (offset us, bound us, time.monotonic() taken): offset = the peer's
        # clock minus this node's, the true offset within offset +- bound
        self.samples: deque[tuple[int, int, float]] = deque(maxlen=SAMPLES)
        self.rx_clock = 0  # the peer's clock in the last TIME frame received
        self.rx_at = 0  # this node's clock (us) when it arrived
        self.origins: set[int] = set()  # the peer's origins seen in this run
        self.last_warn = -WARN_EVERY

    def reset_link(self) -> None:
        self.rx_clock = self.rx_at = 0

    def frame(self, answer: bool = False, now: Optional[int] = None) -> bytes:
        """A TIME frame to send (now: this node's clock in us)."""
        now = now_us() if now is None else now
        held = now - self.rx_at if self.rx_clock else 0
        return TIME.pack(now, self.rx_clock, max(0, held), T_ANSWER if answer else 0)

    def got(
        self, payload: bytes, t3: Optional[int] = None, mono: Optional[float] = None
    ) -> tuple[Optional[tuple[int, int]], bool]:
        """A TIME frame from the peer, received at t3 (this node's clock in
        us): (the new (offset, bound) sample or None, whether the peer asks
        for an answer now). ValueError if it does not decode."""
        t3 = now_us() if t3 is None else t3
        t2, t0, held, flags = TIME.unpack(payload)
        if flags & ~T_ANSWER:
            raise ValueError(f"bad TIME flags {flags}")
        self.rx_clock, self.rx_at = t2, t3
        sample = None
        if t0 and t0 <= t3:
            rtt = (t3 - t0) - held
            if 0 <= rtt and held >= 0:
                t1 = t2 - held
                offset = ((t1 - t0) + (t2 - t3)) // 2
                # + 1 ms: deadlines and clock readings are whole milliseconds
                sample = (offset, (rtt + 1) // 2 + 1000)
                self.samples.append(
                    (sample[0], sample[1], time.monotonic() if mono is None else mono)
                )
        return sample, bool(flags & T_ANSWER)

    def estimate(self, now: Optional[float] = None) -> Optional[tuple[int, int]]:
        """(offset us, bound us) now: the sample with the lowest bound, each
        sample's bound grown by DRIFT_US_PER_S since it was taken; None
        before the first sample."""
        if not self.samples:
            return None
        now = time.monotonic() if now is None else now
        best = None
        for off, bound, at in self.samples:
            b = bound + int(max(0.0, now - at) * DRIFT_US_PER_S)
            if best is None or b < best[1]:
                best = (off, b)
        return best


def deadline_adjust_ms(offset_us: int, bound_us: int) -> int:
    """Milliseconds to add to a deadline written in the peer's clock to get
    the moment this node knows the peer's clock has passed it: the peer's
    clock reads at least this node's + offset - bound, so its deadline `at`
    has passed once this node's clock reads at - offset + bound."""
    return -(offset_us // 1000) + -(-bound_us // 1000)


def surely_beyond(offset_us: int, bound_us: int, limit_ms: int) -> bool:
    """The offset is more than limit_ms whatever the error."""
    return abs(offset_us) - bound_us > limit_ms * 1000


def describe(offset_us: int, bound_us: int) -> str:
    ms = offset_us / 1000
    way = "ahead of" if ms >= 0 else "behind"
    return f"{abs(ms):.0f} ms {way} this node's (+-{bound_us / 1000:.0f} ms)"
