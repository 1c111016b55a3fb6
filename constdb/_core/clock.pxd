from libc.stdint cimport int64_t, uint64_t

cdef enum:
    SEQ_BITS = 22

cdef int64_t wall_ms() noexcept nogil
cdef int64_t wall_us() noexcept nogil


cdef class Clock:
    """Hybrid logical clock (docs/crdt.md section 1): uuid = (unix_ms << 22) | seq."""
    cdef public uint64_t last

    cdef uint64_t tick(self, int64_t now_ms) noexcept
    cdef void fold(self, uint64_t u) noexcept
