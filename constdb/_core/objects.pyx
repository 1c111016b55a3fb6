"""CRDT object classes. See objects.pxd for the layout and the type modules (t_*.pyx) for the
rules."""

cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.dict cimport PyDict_GetItem
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from cpython.object cimport Py_TYPE, PyObject, PyTypeObject
from cpython.ref cimport Py_XDECREF
from libc.stdint cimport int64_t, uint16_t, uint32_t, uint64_t
from libc.math cimport INFINITY
from libc.string cimport memcpy

from constdb._core.codec cimport fmt_int, ld2string_human, parse_i64, string2ld

import random


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
        return (isinstance(other, Dot) and (<Dot>other).node == self.node
                and (<Dot>other).uuid == self.uuid)

    def __hash__(self):
        return hash((self.node, self.uuid))


@cython.final
@cython.no_gc
cdef class CntEntry:
    def __repr__(self):
        return "CntEntry(node=%d, sum=%d, last=%d, base=(%d, %d))" % (
            self.node, self.sum, self.last, self.bsum, self.blast)


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
    def __dealloc__(self):
        cdef PyObject* c = NULL
        if (self.vw & 7) != SV_TAIL:
            c = self._cnt
            self._cnt = NULL
        sv_drop(self.vw)
        self.vw = 0
        Py_XDECREF(c)

    @property
    def node(self):
        """The register's node."""
        return str_node(self)

    @node.setter
    def node(self, uint64_t n):
        str_set_node(self, n)

    @property
    def cnt(self):
        """The counter entries: None, a CntEntry or a dict {node: CntEntry}."""
        return str_cnt(self)

    @cnt.setter
    def cnt(self, c):
        if c is not None and type(c) is not CntEntry and type(c) is not dict:
            raise TypeError("cnt: None, a CntEntry or a dict")
        str_set_cnt(self, c)

    @property
    def val(self):
        """The register's value (None, bytes, bytearray or BitVal)."""
        return sv_get(self)

    @val.setter
    def val(self, v):
        sv_set(self, v)


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


@cython.final
@cython.no_gc
cdef class HCnt:
    def __repr__(self):
        return "HCnt(%r, ts=(%d, %d))" % (self.cnt, self.ru, self.rn)


@cython.final
@cython.no_gc
cdef class LElem:
    def __repr__(self):
        return "LElem((%d, %d), %r, rem=%d, st=%d)" % (self.node, self.uuid, self.val, self.rem,
                                                       self.st)


@cython.final
@cython.no_gc
cdef class LBlock:
    def __repr__(self):
        if self.pbuf is not None and self.dn:
            return "LBlock(dead packed %d, node %d, uuids %d..%d%s%s)" % (
                self.dn, self.node, self.ulo, self.uhi, ", same" if self.same else "",
                ", rev" if self.rev else "")
        if self.pbuf is not None:
            return "LBlock(packed %d, node %d, uuids %d..%d%s)" % (
                self.live, self.node, self.ulo, self.uhi, ", same" if self.same else "")
        return "LBlock(%d items, %d live%s)" % (len(self.items), self.live,
                                                ", rev" if self.rev else "")


@cython.final
@cython.no_gc
cdef class ListObj(CObj):
    pass


@cython.final
@cython.no_gc
cdef class ZCnt:
    def __repr__(self):
        return "ZCnt(sum=%r, last=%d, base=(%r, %d))" % (self.sum, self.last, self.bsum, self.blast)


@cython.final
@cython.no_gc
cdef class ZEnt:
    def __repr__(self):
        cdef uint64_t rem = 0 if self.x is None else self.x.rem
        return "ZEnt(%r, score=%r, rem=%d)" % (self.member, self.score, rem)


@cython.final
@cython.no_gc
cdef class ZX:
    def __repr__(self):
        return "ZX(val=%r, (%d, %d), cnt=%r, rem=%d)" % (self.val, self.vu, self.vn, self.cnt,
                                                         self.rem)


@cython.final
@cython.no_gc
cdef class ZSetObj(CObj):
    pass


# Object classes of types defined outside this module (a type module may
# declare its own CObj subclass): class -> type code, looked up after the
# built-in ones. The list keeps the classes alive.
cdef PyObject* _xcls[16]
cdef int _xcode[16]
cdef int _nx = 0
cdef list _xkeep = []


cdef int register_class(type cls, int code) except -1:
    """A type module's own object class has type code `code` (obj_type)."""
    global _nx
    cdef int i
    if not issubclass(cls, CObj):
        raise TypeError("%r is not a CObj class" % (cls,))
    for i in range(_nx):
        if _xcls[i] == <PyObject*>cls:
            return 0
    if _nx == 16:
        raise ValueError("too many object classes")
    _xkeep.append(cls)
    _xcls[_nx] = <PyObject*>cls
    _xcode[_nx] = code
    _nx += 1
    return 0


cdef int obj_type(CObj o) noexcept:
    cdef int i
    if type(o) is StrObj:
        return T_STRING
    if type(o) is SetObj:
        return T_SET
    if type(o) is HashObj:
        return T_HASH
    if type(o) is MVObj:
        return T_MV
    if type(o) is ListObj:
        return T_LIST
    if type(o) is ZSetObj:
        return T_ZSET
    for i in range(_nx):
        if <PyObject*>Py_TYPE(o) == _xcls[i]:
            return _xcode[i]
    return -1


cdef bint ts_gt(uint64_t u1, uint64_t n1, uint64_t u2, uint64_t n2) noexcept:
    return u1 > u2 or (u1 == u2 and n1 > n2)


cdef StrObj new_str():
    cdef StrObj o = StrObj.__new__(StrObj)
    o.ttl = None
    return o


# The nodes of tail values' registers (objects.pxd, a string's value): a
# node's 15-bit index is in the value's word. A process-local table, never on
# a link or in a snapshot; an entry stays for the process's life. 32768
# nodes at most (a group has a handful; a node id never seen as a register's
# writer is never added): past that a value stays out of the tail. Open
# addressing over 65536 slots (index + 1; 0 empty) keeps a lookup O(1) at
# most half full.
cdef uint64_t _sv_nodes[32768]
cdef uint16_t _sv_slot[65536]
cdef int _sv_nn = 0


cdef int sv_node_index(uint64_t node) noexcept:
    global _sv_nn
    cdef uint32_t h = <uint32_t>((node * <uint64_t>0x9E3779B97F4A7C15ULL) >> 48)
    cdef uint16_t s
    while True:
        s = _sv_slot[h]
        if s == 0:
            if _sv_nn >= 32768:
                return -1
            _sv_nodes[_sv_nn] = node
            _sv_nn += 1
            _sv_slot[h] = <uint16_t>_sv_nn
            return _sv_nn - 1
        if _sv_nodes[s - 1] == node:
            return s - 1
        h = (h + 1) & 0xFFFF


cdef uint64_t sv_node_at(uint32_t i) noexcept:
    return _sv_nodes[i & 0x7FFF]


cdef int sv_untail(StrObj o) except -1:
    """Move a tail value out of o's block (inline if it has no tail and at
    most 7 bytes, else a buffer): _node and _cnt are fields again (_cnt
    NULL)."""
    cdef uint64_t w = o.vw
    cdef uint64_t nw
    if (w & 7) != SV_TAIL:
        return 0
    nw = _sv_word((<char*>&o.vw) + SV_HDR, <Py_ssize_t>((w >> 3) & 0x1FF), _sv_hi(w))
    _sv_fields(o, w)
    o.vw = nw
    return 0


def str_node_count():
    """The nodes in the tail values' node table (tests)."""
    return _sv_nn


def str_in_tail(StrObj o):
    """o's value is a tail value (tests)."""
    return sv_intail(o)


# A StrObj's block may go on past its fixed 64 bytes (objects.pxd, a string's
# value): StrObj's tp_alloc (set at import) allocates tp_basicsize plus the
# tail new_str_for asks for in constdb_str_tail, which it consumes; zeroed as
# PyType_GenericAlloc's. Cython's tp_new allocates through tp_alloc (no
# freelist) and its tp_dealloc frees through tp_free (PyObject_Free), which
# frees the whole block.
cdef extern from *:
    """
    static Py_ssize_t constdb_str_tail = 0;
    static PyObject *constdb_str_alloc(PyTypeObject *t, Py_ssize_t nitems) {
        size_t size = (size_t)t->tp_basicsize + (size_t)constdb_str_tail;
        PyObject *o;
        (void)nitems;
        constdb_str_tail = 0;
        o = (PyObject *)PyObject_Malloc(size);
        if (o == NULL)
            return PyErr_NoMemory();
        memset(o, 0, size);
        return PyObject_Init(o, t);
    }
    static void constdb_str_hook(PyTypeObject *t) { t->tp_alloc = constdb_str_alloc; }
    static Py_ssize_t constdb_str_basicsize(PyTypeObject *t) { return t->tp_basicsize; }
    """
    Py_ssize_t constdb_str_tail
    void constdb_str_hook(PyTypeObject* t)
    Py_ssize_t constdb_str_basicsize(PyTypeObject* t)


cdef StrObj new_str_for(Py_ssize_t n):
    """A new string object for a first value of n bytes: with a tail that
    holds it (objects.sv_tail_for), filling its pymalloc size class; a value
    of at most 7 bytes (inline) or one too long for a tail gets new_str()'s."""
    global constdb_str_tail
    cdef Py_ssize_t tail = sv_tail_for(n)
    cdef StrObj o
    if tail == 0:
        return new_str()
    constdb_str_tail = tail
    o = StrObj.__new__(StrObj)
    constdb_str_tail = 0
    o.vw = (<uint64_t>tail) << 48      # None, the tail kept (objects.pxd)
    o.ttl = None
    return o


def str_for(Py_ssize_t n):
    """new_str_for(n) (tests)."""
    return new_str_for(n)


def str_tail(StrObj o):
    """The bytes of o's block past its 64 (tests)."""
    return sv_tail(o)


def _str_layout():
    """(tp_basicsize, offsets of vw, _node and _cnt): 64, 40, 48 and 56, as
    a tail value needs."""
    cdef StrObj o = new_str()
    return (constdb_str_basicsize(<PyTypeObject*>StrObj),
            <char*>&o.vw - <char*><PyObject*>o,
            <char*>&o._node - <char*><PyObject*>o,
            <char*>&o._cnt - <char*><PyObject*>o)


if _str_layout() != (SV_FIXED, SV_VW, SV_VW + 8, SV_VW + 16):
    raise ImportError("StrObj layout %r: vw, _node and _cnt must end the 64-byte object"
                      % (_str_layout(),))
constdb_str_hook(<PyTypeObject*>StrObj)


cdef SetObj new_set():
    cdef SetObj o = SetObj.__new__(SetObj)
    o.ttl = None
    o.m = {}
    return o


cdef HashObj new_hash():
    cdef HashObj o = HashObj.__new__(HashObj)
    o.ttl = None
    o.f = {}
    o.hc = None
    return o


cdef MVObj new_mv():
    cdef MVObj o = MVObj.__new__(MVObj)
    o.ttl = None
    o.vers = []
    return o


cdef ListObj new_list():
    cdef ListObj o = ListObj.__new__(ListObj)
    o.ttl = None
    o.blocks = []
    o.ids = {}
    o.pend = None
    o.n = 0
    o.pidx = None
    o.pbytes = 0
    o.didx = None
    return o


cdef ZSetObj new_zset():
    cdef ZSetObj o = ZSetObj.__new__(ZSetObj)
    o.ttl = None
    o.m = {}
    o.idx = None
    o.gone = None
    return o


cdef object hash_val(HashObj o, object field, object ent):
    """The visible value of a hash field whose entry (o.f[field]) is ent: the
    value of its newest version, plus, for a field HINCRBY touched, the counter
    contributions that version's write had not observed (docs/crdt.md section 3.1; a value
    that is not an integer ignores them, as a string register does)."""
    cdef object v = best_ver(ent).val
    cdef PyObject* p
    cdef HCnt h
    cdef CntEntry e
    cdef uint64_t delta = 0
    cdef int64_t iv
    cdef char buf[24]
    cdef list fl = None
    if o.hc is None:
        return v
    p = PyDict_GetItem(<dict>o.hc, field)
    if p == NULL:
        return v
    h = <HCnt>p
    for k, x in h.cnt.items():
        e = <CntEntry>x
        if cnt_is_float(<uint64_t>k):
            if e.last > e.blast:
                if fl is None:
                    fl = []
                fl.append((<uint64_t>k, e))
            continue
        # two's-complement wrap on purpose: sums are int64 like Redis's
        delta += <uint64_t>e.sum - <uint64_t>e.bsum
    if fl is not None:
        return with_floats(v, delta, fl)
    if delta == 0 or not parse_i64(PyBytes_AS_STRING(v), PyBytes_GET_SIZE(v), &iv):
        return v
    return PyBytes_FromStringAndSize(buf, fmt_int(buf, <int64_t>(<uint64_t>iv + delta)))


cdef long double float_total(int64_t bits):
    """A float counter total (the bits of a double) as a long double: the
    shortest decimal that reads back as that double (repr), read as Redis reads
    a value. So totals of decimal increments stay decimal: three increments of
    0.1 count 0.3, not the double nearest 0.1 + 0.1 + 0.1."""
    cdef double d
    cdef long double x = 0
    cdef bytes s
    memcpy(&d, &bits, 8)
    if d == 0:
        return 0
    s = repr(d).encode()
    string2ld(PyBytes_AS_STRING(s), PyBytes_GET_SIZE(s), &x)
    return x


cdef int64_t float_bits(long double x):
    """float_total's inverse: the double nearest x, as bits."""
    cdef double d = <double>x
    cdef int64_t bits
    memcpy(&bits, &d, 8)
    return bits


cdef object with_floats(object v, uint64_t int_delta, list fl):
    """A value with float counter contributions that its register write did not
    observe (docs/crdt.md section 3.7): the register's value v (None: 0) as a long
    double, plus the integer counters' delta, plus each float entry's (sum - bsum),
    fl being [(key, CntEntry)], added in origin order so that every node computes
    the same bytes; formatted as INCRBYFLOAT does. A v that is not a number
    ignores them (as a string register ignores integer increments)."""
    cdef long double x = 0
    cdef CntEntry e
    if v is not None and not string2ld(PyBytes_AS_STRING(v), PyBytes_GET_SIZE(v), &x):
        return v
    x += <long double><int64_t>int_delta
    fl.sort(key=_first)
    for item in fl:
        e = <CntEntry>item[1]
        x += float_total(e.sum) - float_total(e.bsum)
    return ld2string_human(x)


def _first(item):
    return item[0]


cdef int check_float_bits(int64_t bits) except -1:
    """A float counter's total from a peer must be a finite double."""
    cdef double d
    memcpy(&d, &bits, 8)
    if d != d or d == INFINITY or d == -INFINITY:
        raise ValueError("bad float counter total")
    return 0


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


cdef object draw(dict m, list p, bint remove):
    """One key of m drawn at random from p, a list of m's keys that the caller
    keeps (SPOP, SRANDMEMBER, HRANDFIELD): O(1) expected instead of a walk of
    m. p may hold keys m no longer has: those are dropped from p on the way
    (the last one fills the hole); when none is left, p is filled again from
    m. remove: take the drawn key out of p too. None: m is empty."""
    cdef Py_ssize_t i, n
    cdef object k
    while True:
        n = PyList_GET_SIZE(p)
        if n == 0:
            if not m:
                return None
            p.extend(m)
            continue
        i = random.randrange(n)
        k = <object>PyList_GET_ITEM(p, i)
        if not remove and k in m:
            return k
        p[i] = p[n - 1]
        del p[n - 1]
        if k in m:
            return k
