# CRDT object classes (CRDT.md section 3). Plain C structs behind Python objects:
# no cdef methods (that would add a vtable pointer to every key) and no GC
# tracking (they never form reference cycles), so a string key costs a header
# and five fields. All logic lives in keyspace.pyx.
cimport cython
from libc.stdint cimport int64_t, uint64_t

cdef enum:
    T_STRING = 0
    T_LIST = 1
    T_SET = 2
    T_ZSET = 3
    T_HASH = 4
    T_MV = 16


@cython.final
@cython.no_gc
cdef class TTLReg:
    # LWW register of a key's expiry: at = unix ms, 0 = no expiry
    cdef public int64_t at
    cdef public uint64_t uuid
    cdef public uint64_t node


@cython.no_gc
cdef class Dot:
    # the name of one write event (node, uuid); Ver adds the value it wrote
    cdef public uint64_t node
    cdef public uint64_t uuid


@cython.final
@cython.no_gc
cdef class CntEntry:
    # one origin's contribution to a counter, and what the current register
    # write had observed of it (the "base" of CRDT.md 3.1)
    cdef public int64_t sum
    cdef public uint64_t last
    cdef public int64_t bsum
    cdef public uint64_t blast


@cython.final
@cython.no_gc
cdef class Ver(Dot):
    # a value written at dot (node, uuid); its ts is (uuid, node)
    cdef public object val


@cython.no_gc
cdef class CObj:
    cdef public object ttl          # None | TTLReg


@cython.final
@cython.no_gc
cdef class StrObj(CObj):
    # LWW register (val, (uuid, node)) + observed-reset counter entries.
    # ttl None means the TTL register is (no expiry, (uuid, node)) of the register.
    cdef public object val          # bytes | None
    cdef public uint64_t uuid
    cdef public uint64_t node
    cdef public dict cnt            # None | {node: CntEntry}


@cython.final
@cython.no_gc
cdef class SetObj(CObj):
    cdef public dict m              # member -> Dot | list[Dot]
    cdef public uint64_t lu         # newest effect applied: (lu, ln)
    cdef public uint64_t ln


@cython.final
@cython.no_gc
cdef class HashObj(CObj):
    cdef public dict f              # field -> Ver | list[Ver] (concurrent writes)
    cdef public uint64_t lu
    cdef public uint64_t ln


@cython.final
@cython.no_gc
cdef class MVObj(CObj):
    cdef public list vers           # list[Ver]
    cdef public uint64_t lu
    cdef public uint64_t ln


cdef int obj_type(CObj o) noexcept
cdef bint ts_gt(uint64_t u1, uint64_t n1, uint64_t u2, uint64_t n2) noexcept
cdef StrObj new_str()
cdef SetObj new_set()
cdef HashObj new_hash()
cdef MVObj new_mv()
cdef Dot new_dot(uint64_t node, uint64_t uuid)
cdef Ver new_ver(object val, uint64_t uuid, uint64_t node)
cdef Ver best_ver(object entry)
