# Hashes (docs/crdt.md section 3.3): an OR-Set of fields with LWW values, and field counters
# (HINCRBY; the 3.1 rule on a field). See t_hash.pyx.
from libc.stdint cimport int64_t

from constdb._core.keyspace cimport Keyspace
from constdb._core.objects cimport HashObj

# local effects: draw a uuid, apply through the shared rule, log the record
cdef int emit_hset(Keyspace ks, object key, object field, object val) except -1
cdef int emit_hset_at(Keyspace ks, object key, HashObj o, bint shown, object field,
                      object val) except -1
cdef int emit_hdel(Keyspace ks, object key, HashObj o, object field) except -1
cdef int emit_hincr(Keyspace ks, object key, object field, int64_t delta, bint create) except -1
cdef int emit_hfincr(Keyspace ks, object key, object field, object val,
                     long double by) except -1
