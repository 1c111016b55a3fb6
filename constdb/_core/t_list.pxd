# The list CRDT (docs/crdt.md section 3.5): an RGA sequence kept in blocks. See t_list.pyx.
from libc.stdint cimport uint64_t

from constdb._core.keyspace cimport Keyspace
from constdb._core.objects cimport LBlock, LElem, ListObj

cdef enum:
    # (record ops and LINS_* modes: ops.pxd)
    # elements per block (a block with no live element may grow beyond, and one a
    # packed block was expanded into holds up to PACK_MAX until inserts split it)
    BLOCK_MAX = 128
    # elements per packed block: pushes at the head insert a block into
    # ListObj.blocks, pops there delete one, each moving every block after it
    # (a Python list): fewer, bigger blocks make that rarer
    PACK_MAX = 1024

    # LElem.st
    ST_GHOST = 0          # named by a removal or LSET before its insert arrived
    ST_WAIT = 1           # inserted, waiting for its anchor to arrive
    ST_PLACED = 2


# positions of live elements: (block index, index in the block's items)
cdef bint seek(ListObj o, Py_ssize_t idx, Py_ssize_t* bi, Py_ssize_t* ii) noexcept
cdef bint first_live(ListObj o, Py_ssize_t* bi, Py_ssize_t* ii) noexcept
cdef bint last_live(ListObj o, Py_ssize_t* bi, Py_ssize_t* ii) noexcept
cdef bint next_live(ListObj o, Py_ssize_t* bi, Py_ssize_t* ii) noexcept
cdef bint prev_live(ListObj o, Py_ssize_t* bi, Py_ssize_t* ii) noexcept
cdef LElem elem_at(ListObj o, Py_ssize_t bi, Py_ssize_t ii)
cdef bytes val_at(ListObj o, Py_ssize_t bi, Py_ssize_t ii)
cdef const char* val_ptr(ListObj o, Py_ssize_t bi, Py_ssize_t ii, Py_ssize_t* n) noexcept

# local effects: draw uuids, apply through the shared rule, log the record
cdef ListObj emit_push(Keyspace ks, object key, ListObj o, list vals, Py_ssize_t start,
                       bint left)
cdef int emit_insert(Keyspace ks, object key, ListObj o, LElem after, object val) except -1
cdef int emit_remove(Keyspace ks, object key, ListObj o, list elems) except -1
cdef list emit_pop(Keyspace ks, object key, ListObj o, Py_ssize_t count, bint left)
cdef bytes emit_pop1(Keyspace ks, object key, ListObj o, bint left)
cdef int emit_lset(Keyspace ks, object key, ListObj o, LElem e, object val) except -1
cdef int emit_lclear(Keyspace ks, object key, ListObj o) except -1

cdef int copy_list(Keyspace ks, object dst, ListObj o) except -1

cdef Py_ssize_t gc_list_c(ListObj o, uint64_t stable) except -1
