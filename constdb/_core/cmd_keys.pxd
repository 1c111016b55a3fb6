from libc.stdint cimport int64_t, uint64_t

from constdb._core.keyspace cimport Db, Keyspace
from constdb._core.objects cimport CObj
from constdb._core.protocol cimport Client

cdef bint opt_eq(bytes a, const char* lit, Py_ssize_t n) noexcept
cdef object scan_args(Client c, list argv, Py_ssize_t i, int64_t* count, int* tcode,
                      bint allow_type)
cdef int parse_cursor(Client c, bytes s, uint64_t* cur) except -1
cdef int reply_scan(Client c, uint64_t cursor, list items) except -1
cdef int reply_empty_scan(Client c) except -1
cdef int copy_object(Keyspace ks, bytes dst, CObj o) except -1
cdef int err_lit(Client c, bytes msg) except -1
cdef int reply_error_bytes(Client c, bytes msg) except -1
cdef int reply_range_error(Client c, int64_t lo, int64_t hi) except -1
cdef Db arg_db(Client c, bytes arg)
