"""Hybrid logical clock and wall time (docs/crdt.md section 1)."""

from libc.stdint cimport int64_t, uint64_t


cdef extern from "<time.h>" nogil:
    ctypedef long time_t
    struct timespec:
        time_t tv_sec
        long tv_nsec
    int clock_gettime(int clk_id, timespec* tp)
    enum:
        CLOCK_REALTIME


cdef int64_t wall_ms() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_REALTIME, &ts)
    return <int64_t>ts.tv_sec * 1000 + ts.tv_nsec // 1000000


cdef int64_t wall_us() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_REALTIME, &ts)
    return <int64_t>ts.tv_sec * 1000000 + ts.tv_nsec // 1000


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
        # wall clock steps back, and never below anything folded in.
        cdef uint64_t cand = (<uint64_t>now_ms) << SEQ_BITS
        if cand <= self.last:
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
