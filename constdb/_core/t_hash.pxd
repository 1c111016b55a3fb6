# Hash field counters (HINCRBY; CRDT.md 3.1 rule on a hash field). See t_hash.pyx.
from libc.stdint cimport int64_t

from constdb._core.keyspace cimport Keyspace

cdef enum:
    # effect record ops (docs/internals.md)
    OP_HCNT = 56          # key, field, i64 delta, u8 create, [observed triples if create]
    OP_HSETC = 57         # key, field, value, dots removed, observed triples

cdef int emit_hincr(Keyspace ks, object key, object field, int64_t delta, bint create) except -1
