from libc.stdint cimport int64_t

from constdb._core.protocol cimport Client

cdef enum:
    # zadd_core's flags
    ZADD_NX = 1
    ZADD_XX = 2
    ZADD_CH = 4
    ZADD_GT = 8
    ZADD_LT = 16
    ZADD_INCR = 32

cdef int zadd_core(Client c, list argv, list scores, Py_ssize_t midx, Py_ssize_t mstep,
                   int flags) except -1
cdef bint fits_lp(object members) except -1
cdef Py_ssize_t mpop_args(Client c, list argv, bytes first, bytes second, bint* is_second,
                          int64_t* count) except -1
cdef Py_ssize_t zadd_flags(list argv, Py_ssize_t idx, int* flags, bint geo) noexcept
