"""Hybrid logical clock and wall time (docs/crdt.md section 1)."""

import os

from libc.stdint cimport UINT64_MAX, int64_t, uint64_t


cdef extern from "<time.h>" nogil:
    ctypedef long time_t
    struct timespec:
        time_t tv_sec
        long tv_nsec
    int clock_gettime(int clk_id, timespec* tp)
    enum:
        CLOCK_REALTIME


# TEST ONLY (docs/internals.md): CONSTDB_TEST_CLOCK_OFFSET_MS, read once when
# this module is imported, shifts every wall-clock read of the node (the uuid
# clock, expiry, heartbeats' clock readings, TIME, INFO's server time), so a
# process test can run a node whose clock is minutes off. Never set it in
# production.
cdef int64_t _test_offset_ms = int(os.environ.get("CONSTDB_TEST_CLOCK_OFFSET_MS") or 0)


def test_clock_offset_ms():
    """The test-only offset in force (0 unless CONSTDB_TEST_CLOCK_OFFSET_MS)."""
    return _test_offset_ms


cdef int64_t wall_ms() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_REALTIME, &ts)
    return <int64_t>ts.tv_sec * 1000 + ts.tv_nsec // 1000000 + _test_offset_ms


cdef int64_t wall_us() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_REALTIME, &ts)
    return <int64_t>ts.tv_sec * 1000000 + ts.tv_nsec // 1000 + _test_offset_ms * 1000


def now_ms():
    return wall_ms()


def now_us():
    return wall_us()


def uuid_ms(uint64_t u):
    """The wall-clock milliseconds encoded in a uuid."""
    return u >> SEQ_BITS


cdef class Clock:
    def __init__(self, uint64_t last=0):
        self.last = last

    cdef uint64_t tick(self, int64_t now_ms) noexcept:
        # next = max(last + 1, now_ms << 22): strictly monotonic even when the
        # wall clock steps back, and never below anything folded in. Never
        # wraps: a wall clock past 2^42 ms (year 2109) or a clock already at
        # the top of the range stays at the top (links refuse peer clocks too
        # far ahead of the wall clock, so only a wall clock that far ahead
        # gets there).
        cdef uint64_t cand = 0
        if now_ms >= (<int64_t>1 << (64 - SEQ_BITS)):
            cand = UINT64_MAX
        elif now_ms > 0:
            cand = (<uint64_t>now_ms) << SEQ_BITS
        if cand <= self.last:
            if self.last == UINT64_MAX:
                return UINT64_MAX
            cand = self.last + 1
        self.last = cand
        return cand

    cdef void fold(self, uint64_t u) noexcept:
        if u > self.last:
            self.last = u

    def next(self, now=None):
        return self.tick(wall_ms() if now is None else now)

    def observe(self, uint64_t u):
        self.fold(u)


def uuid_limit(int64_t now_ms, int64_t drift_ms):
    """The largest uuid a peer may send when this node's wall clock reads
    now_ms and it accepts clocks at most drift_ms ahead of it."""
    cdef int64_t top = now_ms + drift_ms
    if top >= (<int64_t>1 << (64 - SEQ_BITS)):
        return UINT64_MAX
    if top < 0:
        return 0
    return ((<uint64_t>top) << SEQ_BITS) | ((<uint64_t>1 << SEQ_BITS) - 1)
