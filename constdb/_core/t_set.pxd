# Sets (docs/crdt.md section 3.2): an OR-Set, add-wins. See t_set.pyx.
from constdb._core.keyspace cimport Keyspace
from constdb._core.objects cimport SetObj

# local effects: draw a uuid, apply through the shared rule, log the record
cdef int emit_sadd(Keyspace ks, object key, object member) except -1
cdef int emit_srem(Keyspace ks, object key, SetObj o, object member) except -1
