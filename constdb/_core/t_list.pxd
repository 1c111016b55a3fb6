# The list CRDT (CRDT.md 3.5): an RGA sequence kept in blocks. See t_list.pyx.
from libc.stdint cimport uint64_t

from constdb._core.keyspace cimport Keyspace
from constdb._core.objects cimport LBlock, LElem, ListObj

cdef enum:
    # effect record ops (docs/internals.md)
    OP_LINS = 40          # key, anchor (u64 node, u64 uuid; 0 0 = head), u8 mode, varint n, n x value
    OP_LREM = 41          # key, varint n, n x (u64 node, u64 uuid)
    OP_LSET = 42          # key, u64 node, u64 uuid, value
    OP_LCLEAR = 43        # as OP_LREM, and it is a DEL (writes the TTL register)

    LINS_CHAIN = 0        # element i+1 goes right after element i (RPUSH, LINSERT)
    LINS_SAME = 1         # every element goes right after the anchor (LPUSH)

    # elements per block (a block with no live element may grow beyond)
    BLOCK_MAX = 128

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

# local effects: draw uuids, apply through the shared rule, log the record
cdef ListObj emit_push(Keyspace ks, object key, ListObj o, list vals, Py_ssize_t start,
                       bint left)
cdef int emit_insert(Keyspace ks, object key, ListObj o, LElem after, object val) except -1
cdef int emit_remove(Keyspace ks, object key, ListObj o, list elems) except -1
cdef int emit_lset(Keyspace ks, object key, ListObj o, LElem e, object val) except -1
cdef int emit_lclear(Keyspace ks, object key, ListObj o) except -1

cdef int copy_list(Keyspace ks, object dst, ListObj o) except -1

cdef Py_ssize_t gc_list_c(ListObj o, uint64_t stable) except -1
