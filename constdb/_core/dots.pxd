# Shared helpers of the type modules: dot entries (an OR-Set element's adds:
# one Dot/Ver, or a list of them), their record encoding, observed counter
# lists, and TTL registers. See dots.pyx.
from libc.stdint cimport int64_t, uint64_t

from constdb._core.codec cimport Reader, Writer
from constdb._core.objects cimport CObj, Dot, TTLReg, ts_gt


cdef inline bint _dot_in(Dot d, list dots) noexcept:
    cdef Dot x
    for x in dots:
        if x.uuid == d.uuid and x.node == d.node:
            return True
    return False


cdef inline void _bump(uint64_t* lu, uint64_t* ln, uint64_t u, uint64_t n) noexcept:
    # (lu, ln): the newest effect applied to an object
    if ts_gt(u, n, lu[0], ln[0]):
        lu[0] = u
        ln[0] = n


cdef inline TTLReg _ttlreg(int64_t at, uint64_t u, uint64_t n):
    cdef TTLReg t = TTLReg.__new__(TTLReg)
    t.at = at
    t.uuid = u
    t.node = n
    return t


cdef object _ent_remove(object ent, list dots)
cdef object _ent_add(object ent, Dot d)
cdef object _ent_append(object ent, Dot d)
cdef list _ent_dots(object ent)
cdef list _ent_dots_raw(object ent)
cdef void _ent_max(object ent, uint64_t* u, uint64_t* n) noexcept
cdef int _put_dots(Writer w, list dots) except -1
cdef list _read_dots(Reader r)
cdef int _put_obs(Writer w, list obs) except -1
cdef list _read_obs(Reader r)
cdef int _skip_n(Reader r, Py_ssize_t size, uint64_t u) except -1
cdef int _check_obs(Reader r, uint64_t u) except -1
cdef int _check_ts(uint64_t x, uint64_t u) except -1
cdef TTLReg _ttl_of(CObj o)
