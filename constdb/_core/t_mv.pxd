# Multi-value registers (docs/crdt.md section 3.4; MVSET/MVGET). See t_mv.pyx.
from constdb._core.keyspace cimport Keyspace

# local effect: draw a uuid, apply through the shared rule, log the record
cdef int emit_mv(Keyspace ks, object key, object val, bint replace) except -1
