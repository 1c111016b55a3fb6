from libc.stdint cimport int64_t, uint64_t

cdef enum:
    SCAN_KEYS = 1
    SCAN_SET = 2
    SCAN_HASH = 3
    SCAN_ZSET = 4


cdef class ScanState:
    cdef uint64_t sid        # the cursor that names this state (new every call)
    cdef int kind            # SCAN_*
    cdef object ks           # the Keyspace scanned
    cdef object key          # the key scanned (None for SCAN)
    cdef list items          # the elements when the iteration began (None: walked)
    cdef Py_ssize_t pos      # next element of items to visit (packed: its offset)
    cdef Py_ssize_t held     # what it counts in MAX_HELD (8-byte units)


cdef ScanState scan_find(uint64_t cur, int kind, object ks, object key)
cdef ScanState scan_start(int kind, object ks, object key, list items)
cdef Py_ssize_t scan_end(ScanState st, int64_t count) noexcept
cdef uint64_t scan_next(ScanState st, Py_ssize_t end) except? 0
cdef ScanState scan_start_packed(int kind, object ks, object key, bytes blob)
cdef uint64_t scan_next_at(ScanState st, Py_ssize_t pos, bint done) except? 0
cdef int scan_drop(uint64_t cur, int kind, object ks, object key) except -1
