"""CRDT object classes. See objects.pxd for the layout and keyspace.pyx for the rules."""

cimport cython
from libc.stdint cimport int64_t, uint64_t


@cython.final
@cython.no_gc
cdef class TTLReg:
    def __repr__(self):
        return "TTLReg(at=%d, ts=(%d, %d))" % (self.at, self.uuid, self.node)


@cython.no_gc
cdef class Dot:
    def __repr__(self):
        return "Dot(%d, %d)" % (self.node, self.uuid)

    def __eq__(self, other):
        return isinstance(other, Dot) and (<Dot>other).node == self.node and (<Dot>other).uuid == self.uuid

    def __hash__(self):
        return hash((self.node, self.uuid))


@cython.final
@cython.no_gc
cdef class CntEntry:
    def __repr__(self):
        return "CntEntry(sum=%d, last=%d, base=(%d, %d))" % (self.sum, self.last, self.bsum, self.blast)


@cython.final
@cython.no_gc
cdef class Ver(Dot):
    def __repr__(self):
        return "Ver(%r, ts=(%d, %d))" % (self.val, self.uuid, self.node)


@cython.no_gc
cdef class CObj:
    pass


@cython.final
@cython.no_gc
cdef class StrObj(CObj):
    pass


@cython.final
@cython.no_gc
cdef class SetObj(CObj):
    pass


@cython.final
@cython.no_gc
cdef class HashObj(CObj):
    pass


@cython.final
@cython.no_gc
cdef class MVObj(CObj):
    pass


cdef int obj_type(CObj o) noexcept:
    if type(o) is StrObj:
        return T_STRING
    if type(o) is SetObj:
        return T_SET
    if type(o) is HashObj:
        return T_HASH
    if type(o) is MVObj:
        return T_MV
    return -1


cdef bint ts_gt(uint64_t u1, uint64_t n1, uint64_t u2, uint64_t n2) noexcept:
    return u1 > u2 or (u1 == u2 and n1 > n2)


cdef StrObj new_str():
    cdef StrObj o = StrObj.__new__(StrObj)
    o.ttl = None
    o.val = None
    o.cnt = None
    return o


cdef SetObj new_set():
    cdef SetObj o = SetObj.__new__(SetObj)
    o.ttl = None
    o.m = {}
    return o


cdef HashObj new_hash():
    cdef HashObj o = HashObj.__new__(HashObj)
    o.ttl = None
    o.f = {}
    return o


cdef MVObj new_mv():
    cdef MVObj o = MVObj.__new__(MVObj)
    o.ttl = None
    o.vers = []
    return o


cdef Dot new_dot(uint64_t node, uint64_t uuid):
    cdef Dot d = Dot.__new__(Dot)
    d.node = node
    d.uuid = uuid
    return d


cdef Ver new_ver(object val, uint64_t uuid, uint64_t node):
    cdef Ver v = Ver.__new__(Ver)
    v.val = val
    v.uuid = uuid
    v.node = node
    return v


cdef Ver best_ver(object entry):
    """The winning version of a hash field: the one with the largest ts."""
    cdef Ver b, v
    if type(entry) is Ver:
        return <Ver>entry
    b = None
    for v in <list>entry:
        if b is None or ts_gt(v.uuid, v.node, b.uuid, b.node):
            b = v
    return b
