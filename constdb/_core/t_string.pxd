# Strings (docs/crdt.md section 3.1): an LWW register plus an observed-reset counter.
# See t_string.pyx.
from libc.stdint cimport int64_t

from constdb._core.keyspace cimport Keyspace
from constdb._core.objects cimport StrObj

cdef enum:
    TTL_KEEP = 0          # emit_reg: the write keeps the key's TTL register
    TTL_WRITE = 1         # it writes it (to at; 0: no expiry)

    # str_int results
    STR_ABSENT = 0
    STR_INT = 1
    STR_NOTINT = 2


cdef object str_get(StrObj o)
cdef int str_int(StrObj o, int64_t* out) noexcept
cdef dict str_cnts(StrObj o)
cdef int str_set_cnts(StrObj o, object cnts) except -1
cdef bint str_live(StrObj o) noexcept

# local effects: draw a uuid, apply through the shared rule, log the record
cdef int emit_reg(Keyspace ks, object key, object val, int ttl_mode, int64_t at) except -1
cdef int emit_reg_at(Keyspace ks, object key, StrObj o, bint shown, object val, int ttl_mode,
                     int64_t at) except -1
cdef int emit_cnt(Keyspace ks, object key, StrObj o, int64_t delta) except -1
cdef int emit_fincr(Keyspace ks, object key, StrObj o, object val, long double by,
                    int ttl_mode) except -1
