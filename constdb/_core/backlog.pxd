from libc.stdint cimport int64_t, uint8_t, uint64_t

from constdb._core.codec cimport Writer

cdef enum:
    REC_HDR = 13          # u32 len, u8 op, u64 uuid
    OP_CONT = 0x80        # more records of the same group follow


cdef class Backlog:
    cdef Writer cur
    cdef public object chunks          # deque of (bytes, first_uuid, last_uuid, nrec)
    cdef public Py_ssize_t limit
    cdef public Py_ssize_t sealed_bytes
    cdef public uint64_t last_uuid
    cdef public uint64_t dropped_upto  # every record with uuid <= this may be gone
    cdef public uint64_t nrec_total
    cdef public uint64_t nrec_dropped
    cdef uint64_t cur_first
    cdef uint64_t cur_nrec
    cdef Py_ssize_t rec_start
    cdef Py_ssize_t prev_in_group
    cdef public bint grouping
    cdef public bint dirty
    cdef public Py_ssize_t chunk_size
    cdef public int64_t base_off      # stream offset of the first byte held
    cdef public int64_t cur_off       # stream offset of cur's first byte
    cdef public int64_t done_off      # stream offset just past the last finished record
    cdef public int64_t pin_off       # chunks from here on are kept (the AOF's); -1: none
    # numbered databases: the db identity of the records being written
    # (Keyspace.use sets it) and the one the stream is in at this point (0
    # after a group ends); begin/reserve write an OP_SELECT marker first when
    # they differ (docs/replication.md, "Numbered databases")
    cdef public int want_db
    cdef int at_db

    cdef Writer begin(self, uint8_t op, uint64_t uuid)
    cdef char* reserve(self, uint8_t op, uint64_t uuid, Py_ssize_t plen) except NULL
    cdef int end(self) except -1
    cdef int put_key_u64(self, uint8_t op, uint64_t uuid, bytes key, uint64_t v) except -1
    cdef void group_begin(self) noexcept
    cdef int group_end(self) except -1
    cdef int _seal(self) except -1
    cdef int _mark(self, uint64_t uuid) except -1
