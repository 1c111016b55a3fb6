# What the type modules share for snapshots: the causal context of a merge
# (Ctx), the encoding of dots, versions and counters, and the merge rules of
# dot entries and counter entries. See merge.pyx.
from libc.stdint cimport uint64_t

from constdb._core.codec cimport Reader, Writer


cdef class Ctx:
    cdef public dict vv
    cdef public dict cloud

    cdef bint applied(self, uint64_t node, uint64_t uuid)
    cdef bint seen(self, uint64_t node, uint64_t uuid)


cdef int _check_count(Reader r, uint64_t n, Py_ssize_t min_size) except -1
cdef int _enc_dots(Writer w, object ent) except -1
cdef int _enc_vers(Writer w, object ent) except -1
cdef int _enc_cnts(Writer w, object cnt) except -1
cdef object _dec_dots(Reader r)
cdef object _dec_vers(Reader r)
cdef dict _dec_cnts(Reader r)
cdef list _as_list(object ent)
cdef object _filter_ent(object ent, Ctx other)
cdef bint _any_seen(object ent, Ctx other)
cdef object _merge_ent(object a, object b, Ctx ca, Ctx cb)
cdef set _cnt_nodes(object xa, object xb)
cdef object _cnt_src(object ea, uint64_t la, object eb, uint64_t lb, uint64_t node, Ctx ca,
                     Ctx cb)
cdef dict _merge_cnts(object xa, object xb, object base, Ctx ca, Ctx cb)
cdef bint _cnts_seen(object cnt, Ctx other)
cdef dict _filter_cnts(object cnt, Ctx other, bint drop_base)
