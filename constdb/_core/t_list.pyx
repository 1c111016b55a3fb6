"""The list CRDT (docs/crdt.md section 3.5): an RGA sequence, kept in blocks.

Every element has an id, its dot (node, uuid), a value with an LWW ts (LSET)
and, once removed, the uuid of its removal; removed elements stay in the
sequence as tombstones until GC. An insert names the id it goes after (or the
head). Integrating element x after anchor a: start right after a and skip
every element whose id is larger than x's (RGA): a concurrent insert at the
same place with a larger id, and everything inserted after it, stays before
x; so concurrent inserts at one place end ordered by id, newest first, on
every node. Any element inserted after another has a larger uuid than it (the
origin had seen it; the HLC folds what it sees), which is what the rule needs.

Delivery is FIFO per origin only, so an insert may arrive before its anchor,
and a removal or LSET before the insert it names: such an element waits in
`ListObj.pend` (keyed by its anchor's uuid) or is a ghost in `ListObj.ids`
until the missing effect arrives.

Layout (docs/crdt.md section 3.5): `ListObj.blocks` is a list of `LBlock`s,
runs of at most BLOCK_MAX consecutive elements (a packed one: PACK_MAX) with
their live count, so LINDEX/LRANGE find a position by walking block counts
from the nearer end, and pushes and pops at either end are O(1) amortized
(but for a block added or dropped at the head); `ListObj.ids` maps every id to
its element, and every element points at its block, so a remote insert, removal
or LSET finds its element in O(1) and its place in O(BLOCK_MAX). Blocks whose
elements were all removed merge with removed neighbours (a queue's or a stack's
popped elements become one block, kept reversed when it grows at its front), so
that tombstones cost no walking at the ends.
"""

from cpython.bytearray cimport (
    PyByteArray_AS_STRING, PyByteArray_FromStringAndSize, PyByteArray_GET_SIZE, PyByteArray_Resize,
)
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.dict cimport PyDict_GetItem, PyDict_Next, PyDict_SetDefault, PyDict_Size
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE, PyList_SetSlice
from cpython.long cimport PyLong_AsUnsignedLongLongMask
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from cpython.object cimport PyObject
from libc.stdint cimport uint8_t, uint64_t
from libc.string cimport memcpy

from constdb._core.codec cimport Reader, Writer, put_u64_at, put_varint_at, varint_len
from constdb._core.dots cimport _bump, _check_ts
from constdb._core.ktable cimport kt_get
from constdb._core.keyspace cimport Keyspace, TypeOps, mem_update, register_type_ops
from constdb._core.merge cimport Ctx, _check_count
from constdb._core.objects cimport T_LIST, CObj, LBlock, LElem, ListObj, TTLReg, new_list, ts_gt
from constdb._core.ops cimport LINS_CHAIN, LINS_SAME, OP_LCLEAR, OP_LINS, OP_LREM, OP_LSET

from constdb._core.merge import SnapshotError


# ---------------------------------------------------------------- helpers ----

cdef enum:
    BINDEX_WINDOW = 1024  # _bindex: how far from its hint a block is looked for

cdef inline LBlock _blk(ListObj o, Py_ssize_t bi):
    return <LBlock>PyList_GET_ITEM(o.blocks, bi)


cdef inline Py_ssize_t _len(LBlock b) noexcept:
    if b.pbuf is not None:
        return b.live + b.dn
    return PyList_GET_SIZE(b.items)


cdef inline LElem _item(LBlock b, Py_ssize_t k):
    """The k-th element of b in sequence order."""
    if b.rev:
        return <LElem>PyList_GET_ITEM(b.items, PyList_GET_SIZE(b.items) - 1 - k)
    return <LElem>PyList_GET_ITEM(b.items, k)


cdef inline LElem _raw(LBlock b, Py_ssize_t k):
    return <LElem>PyList_GET_ITEM(b.items, k)


cdef LBlock _new_block(list items, Py_ssize_t live):
    cdef LBlock b = LBlock.__new__(LBlock)
    cdef LElem e
    b.items = items
    b.live = live
    b.pos = 0
    b.rev = False
    for x in items:
        e = <LElem>x
        e.blk = <void*>b
    return b


cdef LElem _new_elem(uint64_t node, uint64_t uuid, object val):
    cdef LElem e = LElem.__new__(LElem)
    e.node = node
    e.uuid = uuid
    e.val = val
    e.vu = uuid if val is not None else 0
    e.vn = node if val is not None else 0
    e.rem = 0
    e.an = 0
    e.au = 0
    e.blk = NULL
    e.st = ST_GHOST
    return e


cdef inline void _norm(LBlock b) noexcept:
    if b.rev:
        b.items.reverse()
        b.rev = False


cdef list _one = [None]


cdef int _binsert(ListObj o, Py_ssize_t i, LBlock b) except -1:
    """o.blocks.insert(i, b), moving the blocks after i with one memmove
    (list.insert moves them one pointer at a time: a long list grown at its
    head, as LPUSH grows it, pays that per new block)."""
    cdef list blocks = o.blocks
    if PyList_GET_SIZE(blocks) - i <= 16:
        blocks.insert(i, b)
        return 0
    _one[0] = b
    try:
        PyList_SetSlice(blocks, i, i, _one)
    finally:
        _one[0] = None
    return 0


cdef Py_ssize_t _bindex(ListObj o, LBlock b) noexcept:
    """b's index in o.blocks: its hint if still right; else b found near it
    (blocks added or removed before b shift it: a queue that pops at the
    head merges a dead block there every BLOCK_MAX pops), looking at the
    list's pointers only; else renumber all (which reads every block)."""
    cdef Py_ssize_t p = b.pos, i, d, nb = PyList_GET_SIZE(o.blocks)
    cdef PyObject* pb = <PyObject*>b
    if p < nb and PyList_GET_ITEM(o.blocks, p) == pb:
        return p
    # at an end (pushes and pops: blocks added or removed at the other end
    # shift b's index by any amount)
    if nb and PyList_GET_ITEM(o.blocks, nb - 1) == pb:
        b.pos = nb - 1
        return nb - 1
    if nb and PyList_GET_ITEM(o.blocks, 0) == pb:
        b.pos = 0
        return 0
    if p >= nb:
        p = nb - 1
    for d in range(1, BINDEX_WINDOW + 1):
        if p - d < 0 and p + d >= nb:
            break
        if p - d >= 0 and PyList_GET_ITEM(o.blocks, p - d) == pb:
            b.pos = p - d
            return p - d
        if p + d < nb and PyList_GET_ITEM(o.blocks, p + d) == pb:
            b.pos = p + d
            return p + d
    for i in range(nb):
        (<LBlock>PyList_GET_ITEM(o.blocks, i)).pos = i
    return b.pos


# the index, in its block's items, of the element placed last (a hint that
# makes a multi-value push or a chain of remote inserts O(1) per element)
cdef Py_ssize_t _hint = 0


cdef Py_ssize_t _index_in(LBlock b, LElem e) noexcept:
    """e's sequence index in b (e is in b)."""
    cdef Py_ssize_t n = PyList_GET_SIZE(b.items), r
    cdef PyObject* pe = <PyObject*>e
    if not b.rev and _hint < n and PyList_GET_ITEM(b.items, _hint) == pe:
        return _hint
    r = n - 1
    while r >= 0:
        if PyList_GET_ITEM(b.items, r) == pe:
            break
        r -= 1
    return n - 1 - r if b.rev else r


cdef LElem _get_id_d(ListObj o, uint64_t node, uint64_t uuid):
    """The element with this id if it is an LElem (not packed)."""
    cdef PyObject* p = PyDict_GetItem(o.ids, uuid)
    cdef object x
    if p == NULL:
        return None
    x = <object>p
    if type(x) is LElem:
        if (<LElem>x).node == node:
            return <LElem>x
        return None
    for y in <list>x:
        if (<LElem>y).node == node:
            return <LElem>y
    return None


cdef LElem _get_id(ListObj o, uint64_t node, uint64_t uuid):
    """The element with this id as an LElem (a packed block holding it is
    expanded); None if there is none here."""
    cdef LElem e = _get_id_d(o, node, uuid) if o.ids else None
    cdef LBlock b
    cdef Py_ssize_t k
    if e is not None or o.pidx is None:
        return e
    b = _pfind(o, node, uuid, &k)
    if b is None:
        return None
    _expand(o, b)
    return _get_id_d(o, node, uuid)


cdef int _put_id(ListObj o, LElem e) except -1:
    cdef PyObject* p = PyDict_SetDefault(o.ids, e.uuid, e)
    cdef object x
    if p == <PyObject*>e:
        return 0
    x = <object>p
    if type(x) is LElem:
        o.ids[e.uuid] = [x, e]
    else:
        (<list>x).append(e)
    return 0


cdef int _del_id(ListObj o, LElem e) except -1:
    cdef object x = o.ids.get(e.uuid)
    if x is None:
        return 0
    if type(x) is LElem:
        if x is e:
            del o.ids[e.uuid]
        return 0
    (<list>x).remove(e)
    if len(<list>x) == 1:
        o.ids[e.uuid] = (<list>x)[0]
    return 0


# ----------------------------------------------------------- packed blocks ----
#
# A packed block (LBlock.pbuf not None) holds live elements of one origin
# that were never LSET (their value's ts is their id) and that one block may
# rebuild exactly: their ids, in uuid order, and their anchors follow from
# the block's (node, an, au, same). In sequence order its elements are
# oldest first, each after the one before and the first after (an, au) (a
# chain: RPUSH) or newest first, each after (an, au) (same: LPUSH). Its
# buffer holds them in uuid order (so a push appends to it whichever end of
# the sequence it grows at), one entry each:
#
#   varint uuid delta (0 for the first), varint value length, value,
#   the length of the three as a varint written backwards (read from the end)
#
# so that about 2 + len(value) bytes an element is all it costs. Anything that
# needs an element as an LElem (removal, LSET, an insert in its middle, a
# remote effect naming it) expands the block in place: the same LBlock at the
# same place, its items the LElem in sequence order (positions stay valid).
# ListObj.pidx finds a packed element by id: per origin, the packed blocks
# by uuid, with disjoint uuid ranges (a block grows only while it holds its
# origin's newest packed element).

cdef enum:
    PACK_BYTES = 8192     # a packed block grows while its buffer stays below this
    PBLOCK_COST = 200     # the memory count's bytes per packed block (objects, slots)
    PACK_MIN = 8          # a packed block this small that cannot grow takes no neighbours

# a read cursor (the last packed entry visited): LRANGE and a push chain read
# consecutive entries in O(1) each
cdef LBlock _cb = None
cdef Py_ssize_t _ck = 0         # entry index in _cb's buffer
cdef Py_ssize_t _co = 0         # its offset
cdef uint64_t _cu = 0           # its uuid


cdef inline Py_ssize_t _rv_len(uint64_t v) noexcept:
    return varint_len(v)


cdef inline Py_ssize_t _rd_varint(const unsigned char* p, uint64_t* out) noexcept:
    """A LEB128 varint at p: its value, returns its length."""
    cdef uint64_t v = 0
    cdef Py_ssize_t i = 0
    cdef int shift = 0
    while True:
        v |= <uint64_t>(p[i] & 0x7F) << shift
        if not (p[i] & 0x80):
            break
        i += 1
        shift += 7
    out[0] = v
    return i + 1


cdef inline Py_ssize_t _rd_back(const unsigned char* end, uint64_t* out) noexcept:
    """The backwards varint that ends at end: its value, returns its length."""
    cdef uint64_t v = 0
    cdef Py_ssize_t j = 0
    while True:
        v |= <uint64_t>(end[-1 - j] & 0x7F) << (7 * j)
        if not (end[-1 - j] & 0x80):
            break
        j += 1
    out[0] = v
    return j + 1


cdef inline char* _put_back(char* w, uint64_t v) noexcept:
    cdef Py_ssize_t k = varint_len(v), j
    for j in range(k):
        w[k - 1 - j] = <char>(((v >> (7 * j)) & 0x7F) | (0x80 if j < k - 1 else 0))
    return w + k


cdef inline bint _packed(LBlock b) noexcept:
    return b.pbuf is not None


cdef inline Py_ssize_t _plen(ListObj o, LBlock b, uint64_t uuid, Py_ssize_t vlen) noexcept:
    """The entry bytes of a new element (uuid, a value of vlen bytes) at b's end."""
    cdef uint64_t delta = uuid - b.uhi if b.live else 0
    cdef Py_ssize_t e = varint_len(delta) + varint_len(<uint64_t>vlen) + vlen
    return e + varint_len(<uint64_t>e)


cdef int _pappend(ListObj o, LBlock b, uint64_t uuid, bytes v) except -1:
    """Append an element (uuid, larger than b's) to b's buffer."""
    cdef uint64_t delta = uuid - b.uhi if b.live else 0
    cdef Py_ssize_t vlen = PyBytes_GET_SIZE(v)
    cdef Py_ssize_t e = varint_len(delta) + varint_len(<uint64_t>vlen) + vlen
    cdef Py_ssize_t old = PyByteArray_GET_SIZE(b.pbuf)
    cdef char* w
    PyByteArray_Resize(b.pbuf, old + e + varint_len(<uint64_t>e))
    w = PyByteArray_AS_STRING(b.pbuf) + old
    w = put_varint_at(w, delta)
    w = put_varint_at(w, <uint64_t>vlen)
    memcpy(w, PyBytes_AS_STRING(v), vlen)
    _put_back(w + vlen, <uint64_t>e)
    o.pbytes += e + varint_len(<uint64_t>e)
    if b.live == 0:
        b.ulo = uuid
    b.uhi = uuid
    b.live += 1
    return 0


cdef LBlock _pblock(uint64_t node, uint64_t an, uint64_t au, Py_ssize_t size):
    """An empty packed block (its buffer of size bytes)."""
    cdef LBlock b = LBlock.__new__(LBlock)
    b.items = None
    b.live = 0
    b.pos = 0
    b.rev = False
    b.pbuf = PyByteArray_FromStringAndSize(NULL, size)
    b.node = node
    b.an = an
    b.au = au
    b.same = False
    return b


cdef LBlock _new_packed(ListObj o, uint64_t node, uint64_t uuid, bytes v, uint64_t an,
                        uint64_t au):
    cdef LBlock b = _pblock(node, an, au, 0)
    _pappend(o, b, uuid, v)
    o.pbytes += PBLOCK_COST
    return b


cdef void _pgo(LBlock b, Py_ssize_t k) noexcept:
    """Move the cursor to entry k of packed block b (0 <= k < b.live), from
    the nearest of the cursor, the first entry and the last."""
    global _cb, _ck, _co, _cu
    cdef const unsigned char* p = <const unsigned char*>PyByteArray_AS_STRING(b.pbuf)
    cdef Py_ssize_t n = b.live, j, off, d, r
    cdef uint64_t u, x
    if _cb is b and (k - _ck if k >= _ck else _ck - k) <= (k if k < n - 1 - k else n - 1 - k):
        j = _ck
        off = _co
        u = _cu
    elif k <= n - 1 - k:
        j = 0
        off = 0
        u = b.ulo
    else:
        j = n - 1
        r = _rd_back(p + PyByteArray_GET_SIZE(b.pbuf), &x)
        off = PyByteArray_GET_SIZE(b.pbuf) - r - <Py_ssize_t>x
        u = b.uhi
    while j < k:
        # past entry j: its delta, its length, its value, its back length
        d = _rd_varint(p + off, &x)
        d += _rd_varint(p + off + d, &x)
        d += <Py_ssize_t>x
        off += d + varint_len(<uint64_t>d)
        j += 1
        _rd_varint(p + off, &x)
        u += x
    while j > k:
        _rd_varint(p + off, &x)
        u -= x
        r = _rd_back(p + off, &x)
        off -= r + <Py_ssize_t>x
        j -= 1
    _cb = b
    _ck = k
    _co = off
    _cu = u


cdef inline Py_ssize_t _pk(LBlock b, Py_ssize_t ii) noexcept:
    """The buffer entry of b's ii-th element in sequence order."""
    return b.live - 1 - ii if b.same else ii


cdef bytes _pval(LBlock b, Py_ssize_t k):
    """The value of entry k of packed block b."""
    cdef const unsigned char* p
    cdef uint64_t x
    cdef Py_ssize_t d
    _pgo(b, k)
    p = <const unsigned char*>PyByteArray_AS_STRING(b.pbuf) + _co
    d = _rd_varint(p, &x)
    d += _rd_varint(p + d, &x)
    return PyBytes_FromStringAndSize(<const char*>p + d, <Py_ssize_t>x)


cdef inline uint64_t _puuid(LBlock b, Py_ssize_t k) noexcept:
    if k == 0:
        return b.ulo
    if k == b.live - 1:
        return b.uhi
    _pgo(b, k)
    return _cu


cdef inline uint64_t _pfirst_seq(LBlock b) noexcept:
    """The uuid of b's first element in sequence order."""
    return b.uhi if b.same else b.ulo


cdef list _pidx_of(ListObj o, uint64_t node, bint make, bint dead=False):
    """The blocks of origin node in o.pidx (dead: o.didx)."""
    cdef dict idx = o.didx if dead else o.pidx
    cdef PyObject* p
    cdef list lst
    if idx is None:
        if not make:
            return None
        idx = {}
        if dead:
            o.didx = idx
        else:
            o.pidx = idx
    p = PyDict_GetItem(idx, node)
    if p != NULL:
        return <list>p
    if not make:
        return None
    lst = []
    idx[node] = lst
    return lst


cdef inline list _didx_of(ListObj o, uint64_t node, bint make):
    return _pidx_of(o, node, make, True)


cdef int _pidx_drop(ListObj o, uint64_t node, bint dead) except -1:
    """Origin node has no block left in o.pidx (dead: o.didx)."""
    cdef dict idx = o.didx if dead else o.pidx
    del idx[node]
    if not idx:
        if dead:
            o.didx = None
        else:
            o.pidx = None
    return 0


cdef Py_ssize_t _pidx_bisect(list lst, uint64_t u) noexcept:
    """The index of the last block of lst with ulo <= u; -1 if none."""
    cdef Py_ssize_t lo = 0, hi = PyList_GET_SIZE(lst), mid
    while lo < hi:
        mid = (lo + hi) >> 1
        if (<LBlock>PyList_GET_ITEM(lst, mid)).ulo <= u:
            lo = mid + 1
        else:
            hi = mid
    return lo - 1


cdef bint _pidx_add(ListObj o, LBlock b, bint dead=False) except -1:
    """Index packed block b (dead: a dead packed block, in o.didx); False
    (not indexed) if its uuid range meets another block's of its origin."""
    cdef list lst = _pidx_of(o, b.node, True, dead)
    cdef Py_ssize_t i = _pidx_bisect(lst, b.ulo)
    if (i >= 0 and (<LBlock>PyList_GET_ITEM(lst, i)).uhi >= b.ulo) or (
            i + 1 < PyList_GET_SIZE(lst) and (<LBlock>PyList_GET_ITEM(lst, i + 1)).ulo <= b.uhi):
        return False
    lst.insert(i + 1, b)
    return True


cdef int _pidx_del(ListObj o, LBlock b, bint dead=False) except -1:
    cdef list lst = _pidx_of(o, b.node, False, dead)
    cdef Py_ssize_t i
    if lst is None:
        return 0
    i = _pidx_bisect(lst, b.ulo)
    if i >= 0 and PyList_GET_ITEM(lst, i) == <PyObject*>b:
        del lst[i]
        if not lst:
            _pidx_drop(o, b.node, dead)
    return 0


cdef inline bint _didx_add(ListObj o, LBlock b) except -1:
    return _pidx_add(o, b, True)


cdef inline int _didx_del(ListObj o, LBlock b) except -1:
    return _pidx_del(o, b, True)


cdef inline bint _pidx_last(ListObj o, LBlock b) noexcept:
    """b holds its origin's newest packed element (it may grow)."""
    cdef PyObject* p
    cdef PyObject* k
    cdef Py_ssize_t pos = 0
    cdef list lst
    if o.pidx is None:
        return False
    if PyDict_Size(o.pidx) == 1:
        # the common case (one origin pushes), without boxing the origin
        PyDict_Next(o.pidx, &pos, &k, &p)
        if PyLong_AsUnsignedLongLongMask(<object>k) != b.node:
            return False
    else:
        p = PyDict_GetItem(o.pidx, b.node)
        if p == NULL:
            return False
    lst = <list>p
    return PyList_GET_SIZE(lst) > 0 and \
        PyList_GET_ITEM(lst, PyList_GET_SIZE(lst) - 1) == <PyObject*>b


cdef LBlock _pidx_at(ListObj o, uint64_t node, uint64_t u, bint dead):
    """The block of origin node in o.pidx (dead: o.didx) whose uuid range
    holds u; None if none."""
    cdef list lst = _pidx_of(o, node, False, dead)
    cdef Py_ssize_t i
    cdef LBlock b
    if lst is None:
        return None
    i = _pidx_bisect(lst, u)
    if i < 0:
        return None
    b = <LBlock>PyList_GET_ITEM(lst, i)
    if dead and b.dn == 0:
        raise RuntimeError("stale dead packed block in the index")
    return None if u > b.uhi else b


cdef LBlock _pfind(ListObj o, uint64_t node, uint64_t u, Py_ssize_t* k):
    """The packed block holding id (node, u) and the entry's index; None if
    no packed block holds it."""
    cdef Py_ssize_t j, n
    cdef LBlock b = _pidx_at(o, node, u, False)
    if b is None:
        return None
    n = b.live
    if u == b.ulo:
        k[0] = 0
        return b
    if u == b.uhi:
        k[0] = n - 1
        return b
    # walk from the end nearer in uuids
    if u - b.ulo <= b.uhi - u:
        _pgo(b, 0)
        j = 0
        while _cu < u and j + 1 < n:
            j += 1
            _pgo(b, j)
    else:
        _pgo(b, n - 1)
        j = n - 1
        while _cu > u and j > 0:
            j -= 1
            _pgo(b, j)
    if _cu != u:
        return None
    k[0] = j
    return b


cdef int _expand(ListObj o, LBlock b) except -1:
    """Packed block b becomes a block of LElem (in place: positions stay)."""
    global _cb
    cdef const unsigned char* p = <const unsigned char*>PyByteArray_AS_STRING(b.pbuf)
    cdef Py_ssize_t n = b.live, j, off = 0, d, blen = PyByteArray_GET_SIZE(b.pbuf)
    cdef uint64_t u = b.ulo, x, pu = 0
    cdef list items = []
    cdef LElem e
    cdef object v
    if b.dn:
        return _dexpand(o, b)
    _pidx_del(o, b)
    for j in range(n):
        d = _rd_varint(p + off, &x)
        if j:
            u += x
        d += _rd_varint(p + off + d, &x)
        v = PyBytes_FromStringAndSize(<const char*>p + off + d, <Py_ssize_t>x)
        d += <Py_ssize_t>x
        off += d + varint_len(<uint64_t>d)
        e = _new_elem(b.node, u, v)
        e.st = ST_PLACED
        e.blk = <void*>b
        if b.same or j == 0:
            e.an = b.an
            e.au = b.au
        else:
            e.an = b.node
            e.au = pu
        pu = u
        _put_id(o, e)
        items.append(e)
    if b.same:
        items.reverse()
    o.pbytes -= blen + PBLOCK_COST
    b.pbuf = None
    b.items = items
    if _cb is b:
        _cb = None
    return 0


cdef int _expand_all(ListObj o) except -1:
    cdef LBlock b
    if o.pidx is None and o.didx is None:
        return 0
    for x in o.blocks:
        b = <LBlock>x
        if b.pbuf is not None:
            _expand(o, b)
    return 0


cdef list _pelems(LBlock b):
    """Copies of packed block b's elements as LElem, in sequence order (not
    registered anywhere: for snapshots and introspection)."""
    cdef Py_ssize_t n = b.live, j
    cdef list out = []
    cdef LElem e
    if b.dn:
        return _delems(None, b)
    for j in range(n):
        e = _new_elem(b.node, _puuid(b, j), _pval(b, j))
        e.st = ST_PLACED
        if b.same or j == 0:
            e.an = b.an
            e.au = b.au
        else:
            e.an = b.node
            e.au = _puuid(b, j - 1)
        out.append(e)
    if b.same:
        out.reverse()
    return out


# ------------------------------------------------------ dead packed blocks ----
#
# A dead packed block (LBlock.dn > 0, live 0, items None) holds removed
# elements (tombstones) of one origin that one block describes as a packed
# block does: their anchors are implicit (a chain, the first after (an, au);
# or, if same, every one after (an, au)), and they have no value. Its buffer
# holds two u64 an element, its uuid and the uuid of its removal, in sequence
# order (reversed if rev, so that it grows at the buffer's end on either side
# of a live block). uuids are monotonic in sequence order (a chain's grow,
# an LPUSH run's fall), so an id is found by bisection; ListObj.didx indexes
# these blocks per origin by uuid range (disjoint ranges). A pop, or a peer's
# removal, at an end of a packed block puts its tombstone into the dead packed
# block next to it when it continues it (_dead_put), with no object per
# element; a DEL turns every packed block into one (_pkill). Anything that
# needs such an element as an LElem (a state merge, a non-live element placed
# inside) expands the block (_dexpand); a live insert inside one splits it
# (_dsplit); GC drops its entries in place (_dgc).

cdef enum:
    DEAD_MAX = 65536    # entries of a dead packed block that pops grow
    DEAD_SMALL = 32     # smaller, next to a dead block it cannot join: expanded, joins it


cdef inline uint64_t* _dents(LBlock b) noexcept:
    return <uint64_t*>PyByteArray_AS_STRING(b.pbuf)


cdef inline Py_ssize_t _dj(LBlock b, Py_ssize_t k) noexcept:
    """The buffer index of dead packed block b's k-th entry in sequence order."""
    return b.dn - 1 - k if b.rev else k


cdef inline uint64_t _duuid(LBlock b, Py_ssize_t k) noexcept:
    return _dents(b)[2 * _dj(b, k)]


cdef bint _didx_room(ListObj o, LBlock b, uint64_t u) noexcept:
    """b's range may grow to u (beyond its ends): no other dead packed block
    of its origin lies in between."""
    cdef list lst
    cdef Py_ssize_t i, pos = 0
    cdef PyObject* k
    cdef PyObject* v
    if o.didx is None:
        return False
    if PyDict_Size(o.didx) == 1:
        # the common case, without boxing the origin: one origin, one block
        PyDict_Next(o.didx, &pos, &k, &v)
        lst = <list>v
        if PyList_GET_SIZE(lst) == 1:
            return PyList_GET_ITEM(lst, 0) == <PyObject*>b
    lst = _didx_of(o, b.node, False)
    if lst is None:
        return False
    i = _pidx_bisect(lst, b.ulo)
    if i < 0 or PyList_GET_ITEM(lst, i) != <PyObject*>b:
        return False
    if u > b.uhi:
        return i + 1 >= PyList_GET_SIZE(lst) or (<LBlock>PyList_GET_ITEM(lst, i + 1)).ulo > u
    if u < b.ulo:
        return i == 0 or (<LBlock>PyList_GET_ITEM(lst, i - 1)).uhi < u
    return False


cdef LBlock _dfind(ListObj o, uint64_t node, uint64_t u, Py_ssize_t* k):
    """The dead packed block holding id (node, u) and the element's index in
    sequence order; None if none holds it."""
    cdef Py_ssize_t lo, hi, mid, n
    cdef LBlock b = _pidx_at(o, node, u, True)
    cdef uint64_t* p
    cdef bint inc
    if b is None:
        return None
    p = _dents(b)
    n = b.dn
    inc = p[0] <= p[2 * (n - 1)]
    lo = 0
    hi = n
    while lo < hi:
        mid = (lo + hi) >> 1
        if (p[2 * mid] < u) if inc else (p[2 * mid] > u):
            lo = mid + 1
        else:
            hi = mid
    if lo >= n or p[2 * lo] != u:
        return None
    k[0] = n - 1 - lo if b.rev else lo
    return b


cdef inline void _drange(LBlock b) noexcept:
    cdef uint64_t* p = _dents(b)
    cdef uint64_t x = p[0], y = p[2 * (b.dn - 1)]
    b.ulo = x if x < y else y
    b.uhi = y if x < y else x


cdef int _dappend(ListObj o, LBlock d, uint64_t uuid, uint64_t rem) except -1:
    cdef Py_ssize_t old = PyByteArray_GET_SIZE(d.pbuf)
    cdef uint64_t* w
    PyByteArray_Resize(d.pbuf, old + 16)
    w = <uint64_t*>(PyByteArray_AS_STRING(d.pbuf) + old)
    w[0] = uuid
    w[1] = rem
    d.dn += 1
    if uuid < d.ulo:
        d.ulo = uuid
    if uuid > d.uhi:
        d.uhi = uuid
    o.pbytes += 16
    return 0


cdef LBlock _dnew(ListObj o, uint64_t node, uint64_t uuid, uint64_t rem, uint64_t an,
                  uint64_t au):
    """A dead packed block of one tombstone; None if it cannot be indexed."""
    cdef LBlock b = _pblock(node, an, au, 16)
    cdef uint64_t* w
    b.dn = 1
    b.ulo = uuid
    b.uhi = uuid
    w = _dents(b)
    w[0] = uuid
    w[1] = rem
    if not _didx_add(o, b):
        return None
    o.pbytes += 16 + PBLOCK_COST
    return b


cdef bint _djoin(ListObj o, LBlock d, bint left, uint64_t node, uint64_t uuid, uint64_t rem,
                 uint64_t an, uint64_t au, bint chained) except -1:
    """Put tombstone (node, uuid), anchored at (an, au), at the sequence end
    (left: d is left of where it was) or start of dead packed block d, if
    d's description takes it; False if it does not. chained: the next
    element to go that way is inserted after it (it joins only as a chain,
    or its chain's tombstones would fall inside d's uuid range)."""
    cdef Py_ssize_t n = d.dn
    cdef uint64_t x
    if d.node != node or n >= DEAD_MAX or (n > 1 and d.rev == left):
        return False
    if left:
        x = _duuid(d, n - 1)        # the last in sequence order
        if (n == 1 or not d.same) and an == node and au == x and uuid > x:
            if not _didx_room(o, d, uuid):
                return False
            d.same = False
        elif (n == 1 or d.same) and an == d.an and au == d.au and uuid < x and not chained:
            if not _didx_room(o, d, uuid):
                return False
            d.same = True
        else:
            return False
    else:
        x = _duuid(d, 0)            # the first in sequence order
        if (n == 1 or not d.same) and d.an == node and d.au == uuid and uuid < x:
            if not _didx_room(o, d, uuid):
                return False
            d.same = False
            d.an = an
            d.au = au
        elif (n == 1 or d.same) and an == d.an and au == d.au and uuid > x:
            if not _didx_room(o, d, uuid):
                return False
            d.same = True
        else:
            return False
    d.rev = not left
    _dappend(o, d, uuid, rem)
    return True


cdef int _dead_put(ListObj o, LBlock b, Py_ssize_t bi, bint left, uint64_t uuid, uint64_t rem,
                   uint64_t an, uint64_t au, bint chained) except -1:
    """The tombstone of (b.node, uuid), anchored at (an, au), removed at rem,
    just taken from the first (left) or last element of live block b (at
    index bi): into the dead packed block next to it if it continues it,
    else a new one between them (an LElem if none can be indexed)."""
    cdef Py_ssize_t nb = PyList_GET_SIZE(o.blocks), di = bi - 1 if left else bi + 1
    cdef LBlock d = _blk(o, di) if 0 <= di < nb else None, nd
    cdef LElem e
    if d is not None and d.live == 0 and d.dn:
        if _djoin(o, d, left, b.node, uuid, rem, an, au, chained):
            return 0
        if d.dn < DEAD_SMALL:
            # a small one that cannot grow joins the dead blocks beside it
            _dexpand(o, d)
            _merge_dead(o, d)
            bi = _bindex(o, b)
            nb = PyList_GET_SIZE(o.blocks)
            di = bi - 1 if left else bi + 1
            d = _blk(o, di) if 0 <= di < nb else None
    nd = _dnew(o, b.node, uuid, rem, an, au)
    if nd is not None:
        return _put_beside(o, nd, bi, left)
    # an LElem tombstone, in the LElem block of removed elements beside, or a new one
    e = _new_elem(b.node, uuid, None)
    e.rem = rem
    e.an = an
    e.au = au
    e.st = ST_PLACED
    _put_id(o, e)
    if d is not None and d.live == 0 and d.pbuf is None:
        if left:
            _norm(d)
        elif not d.rev:
            d.items.reverse()
            d.rev = True
        d.items.append(e)
        e.blk = <void*>d
        return 0
    return _put_beside(o, _new_block([e], 0), bi, left)


cdef int _put_beside(ListObj o, LBlock nd, Py_ssize_t bi, bint left) except -1:
    """Block nd (of removed elements) goes before (left) or after block bi."""
    nd.rev = not left
    if not left:
        bi += 1
    _binsert(o, bi, nd)
    nd.pos = bi
    return 0


cdef Py_ssize_t _pkill(ListObj o, LBlock b, uint64_t u, uint64_t* ids) except -1:
    """DEL: live packed block b becomes a dead packed block (same elements,
    anchors and description, each removed at u) in one pass; its ids go to
    ids (node, uuid pairs). Not indexed here (the caller: _didx_bulk).
    Returns its element count."""
    global _cb
    cdef const unsigned char* p = <const unsigned char*>PyByteArray_AS_STRING(b.pbuf)
    cdef Py_ssize_t n = b.live, j, off = 0, d, blen = PyByteArray_GET_SIZE(b.pbuf)
    cdef bytearray nbuf = PyByteArray_FromStringAndSize(NULL, 16 * n)
    cdef uint64_t* w = <uint64_t*>PyByteArray_AS_STRING(nbuf)
    cdef uint64_t uu = b.ulo, x
    for j in range(n):
        d = _rd_varint(p + off, &x)
        if j:
            uu += x
        d += _rd_varint(p + off + d, &x)
        d += <Py_ssize_t>x
        off += d + varint_len(<uint64_t>d)
        w[2 * j] = uu
        w[2 * j + 1] = u
        ids[2 * j] = b.node
        ids[2 * j + 1] = uu
    if _cb is b:
        _cb = None
    o.pbytes += 16 * n - blen
    o.n -= n
    b.pbuf = nbuf
    b.dn = n
    b.live = 0
    b.rev = b.same      # the buffer is in uuid order: an LPUSH run's sequence reversed
    return n


cdef object _ulo_key(object b):
    return (<LBlock>b).ulo


cdef int _tidy_dead(ListObj o) except -1:
    """Merge the LElem blocks of removed elements that meet."""
    cdef Py_ssize_t i = 0
    cdef LBlock a, c
    while i + 1 < PyList_GET_SIZE(o.blocks):
        a = _blk(o, i)
        c = _blk(o, i + 1)
        if a.live == 0 and c.live == 0 and a.pbuf is None and c.pbuf is None:
            _merge_pair(o, i)
        else:
            i += 1
    return 0


cdef bint _didx_bulk(ListObj o, list blocks) except -1:
    """Index these new dead packed blocks at once (sorted, not one insert
    each); one whose range meets another's is expanded (returns True then)."""
    cdef dict by = {}
    cdef list lst, out
    cdef LBlock b, t
    cdef set new = set()
    cdef bint expanded = False
    for x in blocks:
        b = <LBlock>x
        new.add(id(b))
        lst = by.get(b.node)
        if lst is None:
            by[b.node] = [b]
        else:
            lst.append(b)
    for node, lst in by.items():
        old = _didx_of(o, node, False)
        if old is not None:
            lst.extend(old)
        lst.sort(key=_ulo_key)
        out = []
        for x in lst:
            b = <LBlock>x
            if out and (<LBlock>out[len(out) - 1]).uhi >= b.ulo:
                t = <LBlock>out[len(out) - 1]
                expanded = True
                if id(b) in new:
                    _dexpand(o, b)
                    continue
                out.pop()           # t is new (old ranges are disjoint)
                _dexpand(o, t)
            out.append(b)
        if o.didx is None:
            o.didx = {}
        if out:
            o.didx[node] = out
        else:
            o.didx.pop(node, None)
    if o.didx is not None and not o.didx:
        o.didx = None
    return expanded


cdef list _delems(ListObj o, LBlock b):
    """Dead packed block b's elements as LElem tombstones in sequence order,
    registered in o (None: copies, registered nowhere)."""
    cdef Py_ssize_t n = b.dn, k, j
    cdef uint64_t* p = _dents(b)
    cdef list out = []
    cdef LElem e
    cdef uint64_t pu = 0
    for k in range(n):
        j = _dj(b, k)
        e = _new_elem(b.node, p[2 * j], None)
        e.rem = p[2 * j + 1]
        e.st = ST_PLACED
        if b.same or k == 0:
            e.an = b.an
            e.au = b.au
        else:
            e.an = b.node
            e.au = pu
        pu = e.uuid
        if o is not None:
            e.blk = <void*>b
            _put_id(o, e)
        out.append(e)
    return out


cdef int _dexpand(ListObj o, LBlock b) except -1:
    """Dead packed block b becomes a block of LElem tombstones (in place)."""
    cdef list items = _delems(o, b)
    _didx_del(o, b)
    o.pbytes -= PyByteArray_GET_SIZE(b.pbuf) + PBLOCK_COST
    b.pbuf = None
    b.dn = 0
    b.items = items
    b.rev = False
    return 0


cdef int _dsplit(ListObj o, Py_ssize_t bi, Py_ssize_t ii) except -1:
    """Split dead packed block bi before its ii-th element (0 < ii < dn)."""
    cdef LBlock b = _blk(o, bi), r = LBlock.__new__(LBlock)
    cdef Py_ssize_t n = b.dn, cut
    cdef bytearray buf = b.pbuf
    cdef uint64_t prev = _duuid(b, ii - 1)
    # the buffer holds [0, ii) then [ii, n) in sequence order (reversed if rev)
    cut = 16 * (n - ii if b.rev else ii)
    r.items = None
    r.live = 0
    r.rev = b.rev
    r.node = b.node
    r.same = b.same
    r.an = b.an if b.same else b.node
    r.au = b.au if b.same else prev
    r.dn = n - ii
    r.pbuf = buf[:cut] if b.rev else buf[cut:]
    b.pbuf = buf[cut:] if b.rev else buf[:cut]
    b.dn = ii
    _drange(b)
    _drange(r)
    if not _didx_add(o, r):
        raise RuntimeError("dead packed block split: ranges overlap")
    o.pbytes += PBLOCK_COST
    _binsert(o, bi + 1, r)
    r.pos = bi + 1
    return 0


cdef Py_ssize_t _dgc(ListObj o, LBlock b, uint64_t stable, bint* ok_next) except -1:
    """gc_list_c's rule on dead packed block b (walked from its end): its
    entries dropped in place; b.dn 0 when every one goes. An LElem block of
    the ones kept when the rest cannot describe them (a chain with a gap).
    Returns the number dropped."""
    cdef Py_ssize_t n = b.dn, k, j, nkeep = 0, first = -1, m
    cdef uint64_t* p = _dents(b)
    cdef uint64_t* w
    cdef bint ok = ok_next[0], contig = True
    cdef unsigned char* keep = <unsigned char*>PyMem_Malloc(n)
    cdef bytearray nbuf
    cdef list items
    cdef LElem e
    if keep == NULL:
        raise MemoryError()
    try:
        k = n - 1
        while k >= 0:
            j = _dj(b, k)
            if p[2 * j + 1] <= stable and ok:
                keep[k] = 0
            else:
                keep[k] = 1
                ok = p[2 * j] <= stable
                if first >= 0 and first != k + 1:
                    contig = False
                first = k
                nkeep += 1
            k -= 1
        ok_next[0] = ok
        if nkeep == n:
            return 0
        if nkeep == 0:
            o.pbytes -= PyByteArray_GET_SIZE(b.pbuf) + PBLOCK_COST
            b.pbuf = None
            b.items = []
            b.dn = 0
            return n
        if contig or b.same:
            nbuf = PyByteArray_FromStringAndSize(NULL, 16 * nkeep)
            w = <uint64_t*>PyByteArray_AS_STRING(nbuf)
            m = 0
            for j in range(n):
                if keep[n - 1 - j if b.rev else j]:
                    w[2 * m] = p[2 * j]
                    w[2 * m + 1] = p[2 * j + 1]
                    m += 1
            if not b.same and first > 0:
                b.an = b.node
                b.au = _duuid(b, first - 1)
            o.pbytes -= 16 * (n - nkeep)
            b.pbuf = nbuf
            b.dn = nkeep
            _drange(b)
            return n - nkeep
        items = []
        k = 0
        for x in _delems(None, b):
            if keep[k]:
                e = <LElem>x
                e.blk = <void*>b
                _put_id(o, e)
                items.append(e)
            k += 1
        o.pbytes -= PyByteArray_GET_SIZE(b.pbuf) + PBLOCK_COST
        b.pbuf = None
        b.dn = 0
        b.items = items
        b.rev = False
        return n - nkeep
    finally:
        PyMem_Free(keep)


# --------------------------------------------------------------- positions ----

cdef bint seek(ListObj o, Py_ssize_t idx, Py_ssize_t* bi, Py_ssize_t* ii) noexcept:
    """The position of the idx-th live element (0 <= idx < o.n), walking the
    block counts from the nearer end."""
    cdef Py_ssize_t b, k, L, j
    cdef LBlock blk
    if idx < 0 or idx >= o.n:
        return False
    if idx < o.n - idx:
        b = 0
        while True:
            blk = _blk(o, b)
            if idx < blk.live:
                break
            idx -= blk.live
            b += 1
    else:
        idx = o.n - 1 - idx
        b = PyList_GET_SIZE(o.blocks) - 1
        while True:
            blk = _blk(o, b)
            if idx < blk.live:
                break
            idx -= blk.live
            b -= 1
        idx = blk.live - 1 - idx
    L = _len(blk)
    if blk.live == L:
        k = idx
    elif idx < blk.live // 2:
        k = 0
        j = -1
        while True:
            if _raw(blk, k).rem == 0:
                j += 1
                if j == idx:
                    break
            k += 1
    else:
        k = L - 1
        j = blk.live
        while True:
            if _raw(blk, k).rem == 0:
                j -= 1
                if j == idx:
                    break
            k -= 1
    bi[0] = b
    ii[0] = k
    return True


cdef bint first_live(ListObj o, Py_ssize_t* bi, Py_ssize_t* ii) noexcept:
    cdef Py_ssize_t b = 0, k
    cdef LBlock blk
    if o.n == 0:
        return False
    while _blk(o, b).live == 0:
        b += 1
    blk = _blk(o, b)
    k = 0
    if blk.live != _len(blk):
        while _raw(blk, k).rem != 0:
            k += 1
    bi[0] = b
    ii[0] = k
    return True


cdef bint last_live(ListObj o, Py_ssize_t* bi, Py_ssize_t* ii) noexcept:
    cdef Py_ssize_t b = PyList_GET_SIZE(o.blocks) - 1, k
    cdef LBlock blk
    if o.n == 0:
        return False
    while _blk(o, b).live == 0:
        b -= 1
    blk = _blk(o, b)
    k = _len(blk) - 1
    if blk.live != k + 1:
        while _raw(blk, k).rem != 0:
            k -= 1
    bi[0] = b
    ii[0] = k
    return True


cdef bint next_live(ListObj o, Py_ssize_t* bi, Py_ssize_t* ii) noexcept:
    """Move (bi, ii) to the next live element; False at the end."""
    cdef Py_ssize_t b = bi[0], k = ii[0] + 1, nb = PyList_GET_SIZE(o.blocks), L
    cdef LBlock blk = _blk(o, b)
    while True:
        if blk.live:
            L = _len(blk)
            if blk.live == L:
                if k < L:
                    bi[0] = b
                    ii[0] = k
                    return True
            else:
                while k < L:
                    if _raw(blk, k).rem == 0:
                        bi[0] = b
                        ii[0] = k
                        return True
                    k += 1
        b += 1
        if b >= nb:
            return False
        blk = _blk(o, b)
        k = 0


cdef bint prev_live(ListObj o, Py_ssize_t* bi, Py_ssize_t* ii) noexcept:
    cdef Py_ssize_t b = bi[0], k = ii[0] - 1
    cdef LBlock blk = _blk(o, b)
    while True:
        if blk.live == _len(blk):
            if k >= 0:
                bi[0] = b
                ii[0] = k
                return True
        elif blk.live:
            while k >= 0:
                if _raw(blk, k).rem == 0:
                    bi[0] = b
                    ii[0] = k
                    return True
                k -= 1
        b -= 1
        if b < 0:
            return False
        blk = _blk(o, b)
        k = _len(blk) - 1


cdef LElem elem_at(ListObj o, Py_ssize_t bi, Py_ssize_t ii):
    """The element at (bi, ii) as an LElem (its block, if packed, is
    expanded in place: positions stay valid)."""
    cdef LBlock b = _blk(o, bi)
    if b.pbuf is not None:
        _expand(o, b)
    return _raw(b, ii)


cdef bytes val_at(ListObj o, Py_ssize_t bi, Py_ssize_t ii):
    """The value at (bi, ii) (a live element)."""
    cdef LBlock b = _blk(o, bi)
    if b.pbuf is not None:
        return _pval(b, _pk(b, ii))
    return <bytes>_raw(b, ii).val


cdef const char* val_ptr(ListObj o, Py_ssize_t bi, Py_ssize_t ii, Py_ssize_t* n) noexcept:
    """The value at (bi, ii) (a live element) in place: its bytes and length
    (valid until the list changes)."""
    cdef LBlock b = _blk(o, bi)
    cdef const unsigned char* p
    cdef uint64_t x
    cdef Py_ssize_t d
    cdef object v
    if b.pbuf is not None:
        _pgo(b, _pk(b, ii))
        p = <const unsigned char*>PyByteArray_AS_STRING(b.pbuf) + _co
        d = _rd_varint(p, &x)
        d += _rd_varint(p + d, &x)
        n[0] = <Py_ssize_t>x
        return <const char*>p + d
    v = _raw(b, ii).val
    n[0] = PyBytes_GET_SIZE(v)
    return PyBytes_AS_STRING(v)


cdef void _id_at(LBlock b, Py_ssize_t ii, uint64_t* node, uint64_t* uuid) noexcept:
    """The id of b's ii-th element in sequence order."""
    cdef LElem e
    if b.pbuf is not None:
        node[0] = b.node
        uuid[0] = _duuid(b, ii) if b.dn else _puuid(b, _pk(b, ii))
    else:
        e = _item(b, ii)
        node[0] = e.node
        uuid[0] = e.uuid


# ------------------------------------------------------- block maintenance ----

cdef int _split_at(ListObj o, Py_ssize_t bi, Py_ssize_t ii) except -1:
    """Split block bi before its ii-th element (0 < ii < len)."""
    cdef LBlock b = _blk(o, bi), nb
    cdef list right
    cdef Py_ssize_t live = 0
    _norm(b)
    right = b.items[ii:]
    del b.items[ii:]
    for x in right:
        if (<LElem>x).rem == 0:
            live += 1
    b.live -= live
    nb = _new_block(right, live)
    _binsert(o, bi + 1, nb)
    return 0


cdef int _merge_pair(ListObj o, Py_ssize_t i) except -1:
    """Merge blocks i and i+1, both without live elements, into the larger;
    a block that grows at its front is kept reversed so that it costs the
    size of the smaller one."""
    cdef LBlock a = _blk(o, i), b = _blk(o, i + 1)
    cdef list moved
    cdef LElem e
    if _len(a) >= _len(b):
        _norm(a)
        moved = b.items[::-1] if b.rev else b.items
        a.items.extend(moved)
        for x in moved:
            e = <LElem>x
            e.blk = <void*>a
        del o.blocks[i + 1]
    else:
        if not b.rev:
            if _len(b) <= 2 * BLOCK_MAX:
                b.items[0:0] = a.items[::-1] if a.rev else a.items
                for x in a.items:
                    e = <LElem>x
                    e.blk = <void*>b
                del o.blocks[i]
                return 0
            b.items.reverse()
            b.rev = True
        moved = a.items if a.rev else a.items[::-1]
        b.items.extend(moved)
        for x in moved:
            e = <LElem>x
            e.blk = <void*>b
        del o.blocks[i]
    return 0


cdef int _merge_dead(ListObj o, LBlock b) except -1:
    """b has no live element left: merge it with such neighbours."""
    cdef Py_ssize_t bi = _bindex(o, b), nb = PyList_GET_SIZE(o.blocks)
    _merge_range(o, bi - 1 if bi > 0 and _blk(o, bi - 1).live == 0 else bi,
                 bi + 1 if bi + 1 < nb and _blk(o, bi + 1).live == 0 else bi)
    return 0


cdef int _join_dead(ListObj o, Py_ssize_t i) except -1:
    """Blocks i and i+1 have no live element: merge them if both hold LElems
    (a small dead packed one is expanded first); else they stay side by side."""
    return _merge_range(o, i, i + 1)


cdef int _merge_range(ListObj o, Py_ssize_t lo, Py_ssize_t hi) except -1:
    """Blocks lo..hi have no live element: the small dead packed ones among
    them are expanded, and the LElem blocks of removed elements that meet
    there (or with a neighbour of the range) merge."""
    cdef Py_ssize_t k
    cdef LBlock a, c
    for k in range(lo, hi + 1):
        a = _blk(o, k)
        if a.dn and a.dn < DEAD_SMALL:
            _dexpand(o, a)
    if lo > 0:
        lo -= 1
    if hi + 1 < PyList_GET_SIZE(o.blocks):
        hi += 1
    k = lo
    while k < hi and k + 1 < PyList_GET_SIZE(o.blocks):
        a = _blk(o, k)
        c = _blk(o, k + 1)
        if a.live == 0 and c.live == 0 and a.pbuf is None and c.pbuf is None:
            _merge_pair(o, k)
            hi -= 1
        else:
            k += 1
    return 0


cdef int _insert_at(ListObj o, LElem e, Py_ssize_t bi, Py_ssize_t ii) except -1:
    """Put e at sequence position ii of block bi (ii may be the block's length)."""
    global _hint
    cdef Py_ssize_t nb = PyList_GET_SIZE(o.blocks), L, half, live
    cdef bint is_live = e.rem == 0
    cdef LBlock b, nbk
    cdef list right
    if nb == 0:
        nbk = _new_block([e], 1 if is_live else 0)
        o.blocks.append(nbk)
        _hint = 0
        if is_live:
            o.n += 1
        return 0
    b = _blk(o, bi)
    if b.pbuf is not None and (b.dn == 0 or not is_live):
        if b.dn:
            # a removed element placed among tombstones: they become LElems,
            # and join the LElem blocks of removed elements beside them
            _expand(o, b)
            _norm(b)
            b.items.insert(ii, e)
            e.blk = <void*>b
            _hint = ii
            return _merge_dead(o, b)
        _expand(o, b)
    L = _len(b)
    if is_live and b.live == 0:
        # a live element never goes into a block of removed ones (maybe huge,
        # maybe reversed): into a live neighbour with room, else a new block
        if (ii == 0 and bi > 0 and _blk(o, bi - 1).live > 0 and not _packed(_blk(o, bi - 1))
                and _len(_blk(o, bi - 1)) < BLOCK_MAX):
            bi -= 1
            b = _blk(o, bi)
            ii = _len(b)
        elif (ii == L and bi + 1 < nb and _blk(o, bi + 1).live > 0
                and not _packed(_blk(o, bi + 1)) and _len(_blk(o, bi + 1)) < BLOCK_MAX):
            bi += 1
            b = _blk(o, bi)
            ii = 0
        else:
            if 0 < ii < L:
                if b.dn:
                    _dsplit(o, bi, ii)
                else:
                    _split_at(o, bi, ii)
                bi += 1
            elif ii == L:
                bi += 1
            nbk = _new_block([e], 1)
            _binsert(o, bi, nbk)
            nbk.pos = bi
            _hint = 0
            o.n += 1
            return 0
    _norm(b)
    b.items.insert(ii, e)
    e.blk = <void*>b
    _hint = ii
    if is_live:
        b.live += 1
        o.n += 1
    L += 1
    if L > BLOCK_MAX and b.live > 0:
        # split a full block in halves; a half left with no live element
        # joins its removed neighbours
        half = L // 2
        right = b.items[half:]
        del b.items[half:]
        live = 0
        for x in right:
            if (<LElem>x).rem == 0:
                live += 1
        b.live -= live
        nbk = _new_block(right, live)
        bi = _bindex(o, b)
        _binsert(o, bi + 1, nbk)
        nbk.pos = bi + 1
        if ii >= half:
            _hint = ii - half
        if nbk.live == 0:
            _merge_dead(o, nbk)
        if b.live == 0:
            _merge_dead(o, b)
    return 0


cdef bint _after(ListObj o, uint64_t an, uint64_t au, Py_ssize_t* pbi,
                 Py_ssize_t* pii) except -1:
    """The position right after element (an, au) ((0, 0): the head); False
    if that element is not placed here."""
    cdef LElem a
    cdef LBlock b
    cdef Py_ssize_t k
    if an == 0 and au == 0:
        pbi[0] = 0
        pii[0] = 0
        return True
    a = _get_id_d(o, an, au) if o.ids else None
    if a is not None:
        if a.st != ST_PLACED:
            return False
        b = <LBlock>a.blk
        pbi[0] = _bindex(o, b)
        pii[0] = _index_in(b, a) + 1
        return True
    b = _pfind(o, an, au, &k) if o.pidx is not None else None
    if b is not None:
        pbi[0] = _bindex(o, b)
        pii[0] = (b.live - 1 - k if b.same else k) + 1
        return True
    b = _dfind(o, an, au, &k) if o.didx is not None else None
    if b is None:
        return False
    pbi[0] = _bindex(o, b)
    pii[0] = k + 1
    return True


cdef void _skip(ListObj o, uint64_t node, uint64_t uuid, Py_ssize_t* pbi,
                Py_ssize_t* pii) noexcept:
    """From (bi, ii), past every element with a larger id than (node, uuid)
    (the RGA rule)."""
    cdef Py_ssize_t bi = pbi[0], ii = pii[0], nb = PyList_GET_SIZE(o.blocks), L
    cdef LBlock b
    cdef uint64_t yn, yu
    while bi < nb:
        b = _blk(o, bi)
        L = _len(b)
        if ii < L and b.pbuf is not None and ii == 0 and ts_gt(b.ulo, b.node, uuid, node):
            ii = L      # every element of the packed block is larger
        if ii >= L:
            if bi + 1 >= nb:
                break
            bi += 1
            ii = 0
            continue
        _id_at(b, ii, &yn, &yu)
        if not ts_gt(yu, yn, uuid, node):
            break
        ii += 1
    pbi[0] = bi
    pii[0] = ii


cdef int _place(ListObj o, LElem e, Py_ssize_t bi, Py_ssize_t ii) except -1:
    """Integrate e from (bi, ii), the position after its anchor (RGA)."""
    _skip(o, e.node, e.uuid, &bi, &ii)
    _insert_at(o, e, bi, ii)
    e.st = ST_PLACED
    return 0


cdef Py_ssize_t _put_block(ListObj o, LBlock b, Py_ssize_t bi, Py_ssize_t ii, uint64_t node,
                           uint64_t uuid, bytes v, uint64_t an, uint64_t au) except -2:
    """A new packed block holding one element, before (ii == 0) or after
    block b at index bi; its index, or -1 if it would meet another's range."""
    cdef LBlock p = _new_packed(o, node, uuid, v, an, au)
    if not _pidx_add(o, p):
        o.pbytes -= PyByteArray_GET_SIZE(p.pbuf) + PBLOCK_COST
        return -1
    if ii != 0:
        bi = _bindex(o, b) + 1
    _binsert(o, bi, p)
    p.pos = bi
    o.n += 1
    return bi


cdef int _put_new(ListObj o, Py_ssize_t* pbi, Py_ssize_t* pii, uint64_t node, uint64_t uuid,
                  bytes v, uint64_t an, uint64_t au) except -1:
    """Put a new live element (node, uuid) with value v (its ts its id), after
    (an, au), at position (bi, ii) (found by the RGA rule): packed when it
    extends a packed block (the next of a chain, or the next of an LPUSH run)
    or starts one between two blocks; else an LElem. Sets (bi, ii) to where it
    went."""
    cdef Py_ssize_t bi = pbi[0], ii = pii[0], nb = PyList_GET_SIZE(o.blocks), L
    cdef Py_ssize_t vlen = PyBytes_GET_SIZE(v)
    cdef LBlock b, p, q
    cdef LElem e
    if nb == 0:
        b = _new_packed(o, node, uuid, v, an, au)
        if _pidx_add(o, b):
            o.blocks.append(b)
            o.n += 1
            pbi[0] = 0
            pii[0] = 0
            return 0
        o.pbytes -= PyByteArray_GET_SIZE(b.pbuf) + PBLOCK_COST
    else:
        b = _blk(o, bi)
        L = _len(b)
        # the next of a chain: after the last element of a packed chain
        p = b if ii == L else (_blk(o, bi - 1) if ii == 0 and bi > 0 else None)
        if (p is not None and p.pbuf is not None and p.dn == 0 and p.node == node and an == node
                and au == p.uhi and uuid > p.uhi and (not p.same or p.live == 1)
                and p.live < PACK_MAX and PyByteArray_GET_SIZE(p.pbuf) + vlen < PACK_BYTES
                and _pidx_last(o, p)):
            _pappend(o, p, uuid, v)
            p.same = False
            o.n += 1
            pbi[0] = bi if p is b else bi - 1
            pii[0] = p.live - 1
            return 0
        # the next of an LPUSH run: before the first element of a packed run
        p = b if ii == 0 else (_blk(o, bi + 1) if ii == L and bi + 1 < nb else None)
        if (p is not None and p.pbuf is not None and p.dn == 0 and p.node == node and p.an == an
                and p.au == au and uuid > p.uhi and (p.same or p.live == 1)
                and p.live < PACK_MAX and PyByteArray_GET_SIZE(p.pbuf) + vlen < PACK_BYTES
                and _pidx_last(o, p)):
            _pappend(o, p, uuid, v)
            p.same = True
            o.n += 1
            pbi[0] = bi if p is b else bi + 1
            pii[0] = 0
            return 0
        if ii == 0 or ii == L:
            # between two blocks: into a live LElem neighbour with room (a
            # small packed one that cannot grow becomes one: so interleaved
            # elements fill LElem blocks), else a new packed block
            p = b if ii == L else (_blk(o, bi - 1) if bi > 0 else None)
            q = b if ii == 0 else (_blk(o, bi + 1) if bi + 1 < nb else None)
            if p is not None and p.pbuf is not None and 0 < p.live < PACK_MIN:
                _expand(o, p)
            if q is not None and q.pbuf is not None and 0 < q.live < PACK_MIN:
                _expand(o, q)
            if p is not None and p.pbuf is None and 0 < p.live and _len(p) < BLOCK_MAX:
                bi = _bindex(o, p)
                ii = _len(p)
            elif q is not None and q.pbuf is None and 0 < q.live and _len(q) < BLOCK_MAX:
                bi = _bindex(o, q)
                ii = 0
            else:
                bi = _put_block(o, b, bi, ii, node, uuid, v, an, au)
                if bi >= 0:
                    pbi[0] = bi
                    pii[0] = 0
                    return 0
                bi = pbi[0]
                ii = pii[0]
    e = _new_elem(node, uuid, v)
    e.an = an
    e.au = au
    _put_id(o, e)
    _insert_at(o, e, bi, ii)
    e.st = ST_PLACED
    pbi[0] = _bindex(o, <LBlock>e.blk)
    pii[0] = _hint
    return 0


cdef int _release(ListObj o, uint64_t node, uint64_t uuid) except -1:
    """Place the inserts that waited for element (node, uuid) (and, in turn,
    for them)."""
    cdef list work = [(node, uuid)], keep, lst
    cdef LElem x
    cdef uint64_t an, au
    cdef Py_ssize_t bi, ii
    while work:
        t = work.pop()
        an = <uint64_t>t[0]
        au = <uint64_t>t[1]
        if o.pend is None:
            break
        lst = (<dict>o.pend).get(au)
        if lst is None:
            continue
        keep = []
        for item in lst:
            x = <LElem>item[0]
            if <uint64_t>item[1] == an and _after(o, an, au, &bi, &ii):
                _place(o, x, bi, ii)
                work.append((x.node, x.uuid))
            else:
                keep.append(item)
        if keep:
            o.pend[au] = keep
        else:
            del o.pend[au]
            if not o.pend:
                o.pend = None
    return 0


cdef bint _kill(ListObj o, LElem e, uint64_t u) except -1:
    """Remove e at uuid u. False if it was removed already."""
    cdef LBlock b
    if e.rem != 0:
        if u < e.rem:
            e.rem = u
        return False
    e.rem = u
    e.val = None        # a removed element keeps only its id and place
    e.vu = 0
    e.vn = 0
    if e.st == ST_PLACED:
        b = <LBlock>e.blk
        b.live -= 1
        o.n -= 1
        if b.live == 0:
            _merge_dead(o, b)
    return True


# ------------------------------------------------- the rules (local + remote) ----

cdef int _lins_on(Keyspace ks, object key, ListObj o, uint64_t an, uint64_t au, int mode,
                  list vals, uint64_t u, uint64_t origin) except -1:
    """Insert vals with ids (origin, u-n+1) .. (origin, u) after (an, au)."""
    cdef Py_ssize_t i, n = PyList_GET_SIZE(vals), bi, ii
    cdef uint64_t first = u - <uint64_t>n + 1, eu
    cdef LElem e
    cdef list lst
    for i in range(n):
        eu = first + <uint64_t>i
        v = <object>PyList_GET_ITEM(vals, i)
        e = _get_id_d(o, origin, eu) if o.ids else None
        if e is None:
            if _after(o, an, au, &bi, &ii):
                # the common case: a new element whose anchor is here
                _skip(o, origin, eu, &bi, &ii)
                _put_new(o, &bi, &ii, origin, eu, <bytes>v, an, au)
                if o.pend is not None:
                    _release(o, origin, eu)
                if mode == LINS_CHAIN:
                    an = origin
                    au = eu
                continue
            e = _new_elem(origin, eu, v)
            _put_id(o, e)
        elif e.st == ST_GHOST:
            # its removal or an LSET arrived first
            if e.rem == 0 and ts_gt(eu, origin, e.vu, e.vn):
                e.val = v
                e.vu = eu
                e.vn = origin
        else:
            continue        # a duplicate (cannot happen: VV filters records)
        e.an = an
        e.au = au
        if _after(o, an, au, &bi, &ii):
            _place(o, e, bi, ii)
            if o.pend is not None:
                _release(o, e.node, e.uuid)
        else:
            e.st = ST_WAIT
            if o.pend is None:
                o.pend = {}
            lst = (<dict>o.pend).get(au)
            if lst is None:
                o.pend[au] = [(e, an)]
            else:
                lst.append((e, an))
        if mode == LINS_CHAIN:
            an = origin
            au = eu
    _bump(&o.lu, &o.ln, u, origin)
    ks.touched(key)
    ks.settle(key, o)
    return 0


cdef int _lins_local(Keyspace ks, object key, ListObj o, uint64_t an, uint64_t au,
                     Py_ssize_t bi, Py_ssize_t ii, int mode, list vals, Py_ssize_t start,
                     uint64_t u, bint shown) except -1:
    """_lins_on of a local push: the new elements' uuids are the newest of
    all, so no element with such an id exists yet (no ghost, no duplicate),
    and the RGA skip after the anchor passes nothing: each element goes right
    after its anchor: the first at (bi, ii) (just after (an, au), or at the
    head when that is (0, 0)), which the caller found. The values are
    vals[start:]. shown: o is d[key]."""
    cdef Py_ssize_t i, n = PyList_GET_SIZE(vals) - start
    cdef uint64_t origin = ks.node_id, first = u - <uint64_t>n + 1, eu
    for i in range(n):
        eu = first + <uint64_t>i
        if i and mode == LINS_CHAIN:
            ii += 1     # right after the previous one
        elif i:
            bi = 0
            ii = 0
        _put_new(o, &bi, &ii, origin, eu, <bytes>PyList_GET_ITEM(vals, start + i), an, au)
        if o.pend is not None:
            _release(o, origin, eu)
        if mode == LINS_CHAIN:
            an = origin
            au = eu
    _bump(&o.lu, &o.ln, u, origin)
    _touched(ks, key, o, shown)
    if not shown or ks.alts:
        ks.settle(key, o)
    return 0


cdef LElem _resolve(Keyspace ks, ListObj o, uint64_t node, uint64_t uuid):
    """The element with this id; a ghost if its insert has not arrived; None
    if it was seen and collected (GC)."""
    cdef LElem e = _get_id(o, node, uuid)
    if e is not None:
        return e
    if uuid <= ks.vv_get(node):
        return None
    e = _new_elem(node, uuid, None)
    _put_id(o, e)
    return e


cdef int _lset_on(Keyspace ks, object key, ListObj o, LElem e, object val, uint64_t u,
                  uint64_t origin) except -1:
    if e is not None and e.rem == 0 and ts_gt(u, origin, e.vu, e.vn):
        e.val = val
        e.vu = u
        e.vn = origin
    _bump(&o.lu, &o.ln, u, origin)
    ks.touched(key)
    ks.settle(key, o)
    return 0


cdef inline int _touched(Keyspace ks, object key, ListObj o, bint shown) except -1:
    """ks.touched(key) after a local effect on o; shown: o is d[key] (its
    memory count is updated here, and touched() need not look key up)."""
    if shown:
        mem_update(ks, key, o)
        return ks.touched(key, False)
    return ks.touched(key)


cdef inline bint _has_ttl(ListObj o) noexcept:
    return o.ttl is not None and (<TTLReg>o.ttl).at != 0


cdef int _emptied(Keyspace ks, object key, ListObj o, bint had_ttl) except -1:
    """A local removal left the list empty: as in Redis the key's TTL goes
    with it (a list made later on the key has none)."""
    if o.n == 0 and had_ttl and (kt_get(&ks.d.t, key) == NULL):
        ks.emit_ttl(key, 0)
    return 0


# ---------------------------------------------------------- local effects ----

cdef ListObj emit_push(Keyspace ks, object key, ListObj o, list vals, Py_ssize_t start,
                       bint left):
    """LPUSH (left) / RPUSH: vals[start:] go to the head one by one, or after
    the last element as a chain. o: the list if the caller has it (d[key], as
    Keyspace.lookup gives it), else None."""
    cdef Py_ssize_t i, n = PyList_GET_SIZE(vals) - start, bi = 0, ii = 0, plen, vlen
    cdef Py_ssize_t klen = PyBytes_GET_SIZE(key)
    cdef uint64_t u, an = 0, au = 0
    cdef bint shown = o is not None
    cdef char* w
    cdef bytes v
    if o is None:
        o = <ListObj>ks.find(key, T_LIST, True)
    if not left and last_live(o, &bi, &ii):
        _id_at(_blk(o, bi), ii, &an, &au)
        ii += 1
    # one uuid per element: within a command the clock gives consecutive ones
    u = ks.tick()
    for i in range(1, n):
        if ks.tick() != u + <uint64_t>i:
            raise RuntimeError("clock did not give consecutive uuids")
    u = u + <uint64_t>(n - 1)
    _lins_local(ks, key, o, an, au, bi, ii, LINS_SAME if left else LINS_CHAIN, vals, start, u,
                shown)
    # the record in one go: key, anchor, mode, values
    plen = varint_len(<uint64_t>klen) + klen + 17 + varint_len(<uint64_t>n)
    for i in range(n):
        vlen = PyBytes_GET_SIZE(<bytes>PyList_GET_ITEM(vals, start + i))
        plen += varint_len(<uint64_t>vlen) + vlen
    w = ks.bl.reserve(OP_LINS, u, plen)
    w = put_varint_at(w, <uint64_t>klen)
    memcpy(w, PyBytes_AS_STRING(key), klen)
    w = put_u64_at(w + klen, an)
    w = put_u64_at(w, au)
    w[0] = <char>(LINS_SAME if left else LINS_CHAIN)
    w = put_varint_at(w + 1, <uint64_t>n)
    for i in range(n):
        v = <bytes>PyList_GET_ITEM(vals, start + i)
        vlen = PyBytes_GET_SIZE(v)
        w = put_varint_at(w, <uint64_t>vlen)
        memcpy(w, PyBytes_AS_STRING(v), vlen)
        w += vlen
    ks.bl.end()
    return o


cdef int emit_insert(Keyspace ks, object key, ListObj o, LElem after, object val) except -1:
    """LINSERT: val right after `after` (None: at the head)."""
    cdef uint64_t u = ks.tick()
    cdef uint64_t an = 0 if after is None else after.node
    cdef uint64_t au = 0 if after is None else after.uuid
    cdef Writer w
    _lins_on(ks, key, o, an, au, LINS_CHAIN, [val], u, ks.node_id)
    w = ks.bl.begin(OP_LINS, u)
    w.put_bytes(key)
    w.put_u64(an)
    w.put_u64(au)
    w.put_u8(LINS_CHAIN)
    w.put_varint(1)
    w.put_bytes(val)
    ks.bl.end()
    return 0


cdef int _put_ids(Writer w, list elems) except -1:
    cdef LElem e
    w.put_varint(<uint64_t>PyList_GET_SIZE(elems))
    for x in elems:
        e = <LElem>x
        w.put_u64(e.node)
        w.put_u64(e.uuid)
    return 0


cdef int emit_remove(Keyspace ks, object key, ListObj o, list elems) except -1:
    """Pops, LREM, LTRIM: the removal of exactly these (live) elements of o,
    d[key] (as Keyspace.lookup gives it)."""
    cdef uint64_t u = ks.tick()
    cdef bint had_ttl = _has_ttl(o)
    cdef Py_ssize_t n = PyList_GET_SIZE(elems), i = 0
    cdef uint64_t* ids = <uint64_t*>PyMem_Malloc(16 * n + 16)
    cdef LElem e
    if ids == NULL:
        raise MemoryError()
    try:
        for x in elems:
            e = <LElem>x
            ids[i] = e.node
            ids[i + 1] = e.uuid
            i += 2
            _kill(o, e, u)
        return _removed(ks, key, o, u, ids, n, had_ttl)
    finally:
        PyMem_Free(ids)


cdef bytes _ppop(ListObj o, Py_ssize_t bi, bint left, uint64_t u, uint64_t* pn,
                 uint64_t* pu):
    """Remove at u the first (left) or last element of packed block bi, in
    sequence order, with no expansion: its tombstone joins the dead packed
    block next to it, or starts one (_dead_put). Returns its value; its id
    in (pn, pu)."""
    global _cb
    cdef LBlock b = _blk(o, bi)
    cdef const unsigned char* p = <const unsigned char*>PyByteArray_AS_STRING(b.pbuf)
    cdef Py_ssize_t blen = PyByteArray_GET_SIZE(b.pbuf), off, k, r, tot
    cdef uint64_t x, uuid, an, au, delta
    cdef bint first_entry = left != b.same
    cdef bytes val
    b.pos = bi      # (a block added beside it below: _bindex finds it one step away)
    if _cb is b:
        _cb = None
    if first_entry:
        k = _rd_varint(p, &x)
        k += _rd_varint(p + k, &x)
        val = PyBytes_FromStringAndSize(<const char*>p + k, <Py_ssize_t>x)
        k += <Py_ssize_t>x
        tot = k + varint_len(<uint64_t>k)
        uuid = b.ulo
        if b.live > 1:
            _rd_varint(p + tot, &delta)
            b.ulo += delta      # the next entry's delta is now unused
        del b.pbuf[:tot]
    else:
        r = _rd_back(p + blen, &x)
        off = blen - r - <Py_ssize_t>x
        tot = blen - off
        k = _rd_varint(p + off, &delta)
        k += _rd_varint(p + off + k, &x)
        val = PyBytes_FromStringAndSize(<const char*>p + off + k, <Py_ssize_t>x)
        uuid = b.uhi
        if b.live > 1:
            b.uhi -= delta
        PyByteArray_Resize(b.pbuf, off)
    o.pbytes -= tot
    # the removed element's anchor (and the chain's new first one's)
    an = b.an
    au = b.au
    if not b.same:
        if left:
            b.an = b.node
            b.au = uuid
        elif b.live > 1:
            an = b.node
            au = b.uhi
    b.live -= 1
    o.n -= 1
    _dead_put(o, b, bi, left, uuid, u, an, au, left and not b.same and b.live > 0)
    if b.live == 0:
        # the packed block is empty: it goes, and removed neighbours join
        bi = _bindex(o, b)
        _pidx_del(o, b)
        o.pbytes -= PBLOCK_COST
        del o.blocks[bi]
        if 0 < bi < PyList_GET_SIZE(o.blocks) and _blk(o, bi - 1).live == 0 \
                and _blk(o, bi).live == 0:
            _join_dead(o, bi - 1)
    pn[0] = b.node
    pu[0] = uuid
    return val


cdef int _rec_lrem(Keyspace ks, uint8_t op, object key, uint64_t u, const uint64_t* ids,
                   Py_ssize_t n) except -1:
    """The LREM (or LCLEAR) record of n ids, ids[2i] the node and ids[2i+1]
    the uuid."""
    cdef Py_ssize_t klen = PyBytes_GET_SIZE(key), i
    cdef char* w = ks.bl.reserve(op, u, varint_len(<uint64_t>klen) + klen
                                 + varint_len(<uint64_t>n) + 16 * n)
    w = put_varint_at(w, <uint64_t>klen)
    memcpy(w, PyBytes_AS_STRING(key), klen)
    w = put_varint_at(w + klen, <uint64_t>n)
    for i in range(2 * n):
        w = put_u64_at(w, ids[i])
    ks.bl.end()
    return 0


cdef int _removed(Keyspace ks, object key, ListObj o, uint64_t u, const uint64_t* ids,
                  Py_ssize_t n, bint had_ttl) except -1:
    """The end of a local removal of ids at u: the object's bookkeeping, the
    record, the TTL of a list it emptied."""
    _bump(&o.lu, &o.ln, u, ks.node_id)
    _touched(ks, key, o, True)
    if o.n == 0 or ks.alts:
        ks.settle(key, o)
    _rec_lrem(ks, OP_LREM, key, u, ids, n)
    if o.n == 0:
        _emptied(ks, key, o, had_ttl)
    return 0


cdef bytes _pop_end(ListObj o, bint left, uint64_t u, uint64_t* pn, uint64_t* pu):
    """Remove at u the first (left) or last live element of o (there is one):
    its value; its id in (pn, pu). An element at the end of a packed block
    leaves it without expanding it."""
    cdef Py_ssize_t bi, ii
    cdef LBlock b
    cdef LElem e
    if left:
        first_live(o, &bi, &ii)
    else:
        last_live(o, &bi, &ii)
    b = _blk(o, bi)
    if b.pbuf is not None:
        return _ppop(o, bi, left, u, pn, pu)
    e = _raw(b, ii)
    v = e.val
    pn[0] = e.node
    pu[0] = e.uuid
    _kill(o, e, u)
    return <bytes>v


cdef bytes emit_pop1(Keyspace ks, object key, ListObj o, bint left):
    """LPOP / RPOP of one element of o, d[key] (not empty): its value."""
    cdef uint64_t u = ks.tick()
    cdef bint had_ttl = _has_ttl(o)
    cdef uint64_t ids[2]
    cdef bytes v = _pop_end(o, left, u, &ids[0], &ids[1])
    _removed(ks, key, o, u, ids, 1, had_ttl)
    return v


cdef list emit_pop(Keyspace ks, object key, ListObj o, Py_ssize_t count, bint left):
    """LPOP (left) / RPOP of count (1 <= count <= LLEN) elements of o, d[key]:
    their values, in pop order."""
    cdef uint64_t u = ks.tick()
    cdef bint had_ttl = _has_ttl(o)
    cdef list vals = []
    cdef Py_ssize_t i
    cdef uint64_t* ids = <uint64_t*>PyMem_Malloc(16 * count)
    if ids == NULL:
        raise MemoryError()
    try:
        for i in range(count):
            vals.append(_pop_end(o, left, u, &ids[2 * i], &ids[2 * i + 1]))
        _removed(ks, key, o, u, ids, count, had_ttl)
    finally:
        PyMem_Free(ids)
    return vals


cdef int emit_lset(Keyspace ks, object key, ListObj o, LElem e, object val) except -1:
    cdef uint64_t u = ks.tick()
    cdef Writer w
    _lset_on(ks, key, o, e, val, u, ks.node_id)
    w = ks.bl.begin(OP_LSET, u)
    w.put_bytes(key)
    w.put_u64(e.node)
    w.put_u64(e.uuid)
    w.put_bytes(val)
    ks.bl.end()
    return 0


cdef list _live_elems(ListObj o):
    """Every live element, as LElem (packed blocks are expanded)."""
    cdef list out = []
    cdef LBlock b
    _expand_all(o)
    for x in o.blocks:
        b = <LBlock>x
        if b.live == 0:
            continue
        if b.live == _len(b):
            out.extend(b.items)
        else:
            for e in b.items:
                if (<LElem>e).rem == 0:
                    out.append(e)
    return out


cdef list _values(ListObj o):
    """The visible values in order."""
    cdef list out = []
    cdef Py_ssize_t bi, ii
    if first_live(o, &bi, &ii):
        out.append(val_at(o, bi, ii))
        while next_live(o, &bi, &ii):
            out.append(val_at(o, bi, ii))
    return out


cdef int emit_lclear(Keyspace ks, object key, ListObj o) except -1:
    """DEL of a list: the observed removal of every live element. A packed
    block becomes a dead packed block in one pass over its buffer (no object
    per element: _pkill); LElems are removed one by one."""
    cdef uint64_t u = ks.tick()
    cdef Py_ssize_t n = o.n, i = 0
    cdef uint64_t* ids = <uint64_t*>PyMem_Malloc(16 * n + 16)
    cdef list elems = [], conv = []
    cdef LBlock b
    cdef LElem e
    if ids == NULL:
        raise MemoryError()
    try:
        for x in o.blocks:
            b = <LBlock>x
            if b.live == 0:
                continue
            if b.pbuf is not None:
                i += 2 * _pkill(o, b, u, ids + i)
                conv.append(b)
            else:
                for y in b.items:
                    e = <LElem>y
                    if e.rem == 0:
                        elems.append(e)
                        ids[i] = e.node
                        ids[i + 1] = e.uuid
                        i += 2
        if conv:
            o.pidx = None       # every packed block is dead now
            if _didx_bulk(o, conv):
                _tidy_dead(o)
        for x in elems:
            _kill(o, <LElem>x, u)
        _bump(&o.lu, &o.ln, u, ks.node_id)
        ks._clear_done(key, o, u, ks.node_id)
        _rec_lrem(ks, OP_LCLEAR, key, u, ids, n)
    finally:
        PyMem_Free(ids)
    return 0


cdef int copy_list(Keyspace ks, object dst, ListObj o) except -1:
    """RENAME/COPY: dst gets o's elements as one new push (dst cleared first)."""
    cdef list vals = _values(o)
    if vals:
        emit_push(ks, dst, None, vals, 0, False)
    return 0


# --------------------------------------------------------- remote records ----

cdef int _apply_lins(Keyspace ks, uint64_t origin, uint64_t u, Reader r) except -1:
    cdef object key = r.bytes_()
    cdef uint64_t an = r.u64(), au = r.u64()
    cdef uint8_t mode = r.u8()
    cdef uint64_t n = r.varint(), _i
    cdef list vals = []
    if n == 0 or n > <uint64_t>(r.end - r.pos) or n > u:
        raise ValueError("bad list insert count")
    for _i in range(n):
        vals.append(r.bytes_())
    _lins_on(ks, key, <ListObj>ks.find(key, T_LIST, True), an, au, mode, vals, u, origin)
    return 0


cdef int _remove_id(Keyspace ks, ListObj o, uint64_t node, uint64_t uuid,
                    uint64_t u) except -1:
    """A peer's removal of element (node, uuid) at u: at either end of a
    packed block it leaves it without expanding it (as a local pop)."""
    cdef LElem e = _get_id_d(o, node, uuid) if o.ids else None
    cdef LBlock b
    cdef Py_ssize_t k, ii, bi
    cdef bint left
    cdef uint64_t pn, pu
    if e is None and o.pidx is not None:
        b = _pfind(o, node, uuid, &k)
        if b is not None:
            ii = b.live - 1 - k if b.same else k
            if ii == 0 or ii == b.live - 1:
                bi = _bindex(o, b)
                left = ii == 0
                if b.live == 1:
                    # both ends: the side of the dead block it may join
                    left = bi > 0 and _blk(o, bi - 1).live == 0
                _ppop(o, bi, left, u, &pn, &pu)
                return 0
            _expand(o, b)
            e = _get_id_d(o, node, uuid)
    if e is None and o.didx is not None:
        b = _dfind(o, node, uuid, &k)
        if b is not None:
            # removed already: the smaller removal uuid stays (as _kill)
            k = _dj(b, k)
            if u < _dents(b)[2 * k + 1]:
                _dents(b)[2 * k + 1] = u
            return 0
    if e is None:
        e = _resolve(ks, o, node, uuid)
    if e is not None:
        _kill(o, e, u)
    return 0


cdef int _read_remove(Keyspace ks, ListObj o, Reader r, uint64_t u) except -1:
    """Read a record's ids and remove those elements at u."""
    cdef uint64_t n = r.varint(), _i, node, uuid
    if n > <uint64_t>(r.end - r.pos):
        raise ValueError("bad id count")
    for _i in range(n):
        node = r.u64()
        uuid = r.u64()
        _remove_id(ks, o, node, uuid, u)
    return 0


cdef int _apply_lrem(Keyspace ks, uint64_t origin, uint64_t u, Reader r) except -1:
    cdef object key = r.bytes_()
    cdef ListObj o = <ListObj>ks.find(key, T_LIST, True)
    _read_remove(ks, o, r, u)
    _bump(&o.lu, &o.ln, u, origin)
    ks.touched(key)
    ks.settle(key, o)
    return 0


cdef int _apply_lclear(Keyspace ks, uint64_t origin, uint64_t u, Reader r) except -1:
    cdef object key = r.bytes_()
    cdef ListObj o = <ListObj>ks.find(key, T_LIST, True)
    _read_remove(ks, o, r, u)
    _bump(&o.lu, &o.ln, u, origin)
    ks._clear_done(key, o, u, origin)
    return 0


cdef int _apply_lset(Keyspace ks, uint64_t origin, uint64_t u, Reader r) except -1:
    cdef object key = r.bytes_()
    cdef uint64_t node = r.u64(), uuid = r.u64()
    cdef object val = r.bytes_()
    cdef ListObj o = <ListObj>ks.find(key, T_LIST, True)
    _lset_on(ks, key, o, _resolve(ks, o, node, uuid), val, u, origin)
    return 0


cdef int _apply(Keyspace ks, uint8_t op, uint64_t origin, uint64_t u, Reader r) except -1:
    if op == OP_LINS:
        return _apply_lins(ks, origin, u, r)
    if op == OP_LREM:
        return _apply_lrem(ks, origin, u, r)
    if op == OP_LSET:
        return _apply_lset(ks, origin, u, r)
    return _apply_lclear(ks, origin, u, r)


cdef int _check(uint8_t op, uint64_t u, Reader r) except -1:
    """A peer's record checked without applying it: framing, counts, the
    insert mode."""
    cdef uint64_t n, _i
    cdef uint8_t mode
    r.bytes_()
    if op == OP_LINS:
        r.u64()
        _check_ts(r.u64(), u)  # the anchor: an element the writer had
        mode = r.u8()
        if mode != LINS_CHAIN and mode != LINS_SAME:
            raise ValueError("bad list insert mode %d" % mode)
        n = r.varint()
        if n == 0 or n > <uint64_t>(r.end - r.pos) or n > u:
            raise ValueError("bad list insert count")
        for _i in range(n):
            r.bytes_()
    elif op == OP_LSET:
        r.u64()
        _check_ts(r.u64(), u)
        r.bytes_()
    else:
        n = r.varint()
        if n > <uint64_t>(r.end - r.pos) // 16:
            raise ValueError("bad id count")
        for _i in range(n):
            r.u64()
            _check_ts(r.u64(), u)
    return 0


# ---------------------------------------------------------------------- GC ----

cdef Py_ssize_t gc_list_c(ListObj o, uint64_t stable) except -1:
    """Drop the tombstones that no insert can name or need any more.

    `stable` must be a causally stable point: every node had applied every
    effect with a uuid <= stable before it made any effect that has not yet
    been applied here (docs/crdt.md section 3.5). Then an element removed
    at rem <= stable can no longer be an anchor: nodes insert only after live
    elements. Its place must not matter to a future insert either: inserts
    still to come have uuids > stable, so the RGA skip stops at any element
    with a uuid <= stable; a tombstone goes only if the next element kept
    after it is such an element (or the end), so every skip stops where it
    did. Returns the number of elements dropped.

    Blocks are walked from the end; one with no removed element is passed
    over in O(1) (only its first element matters to what precedes it), so a
    long list costs its block count plus its tombstones, and only the blocks
    that lost elements change (a shrunk live block joins a live neighbour
    when both fit in one)."""
    cdef Py_ssize_t nb = PyList_GET_SIZE(o.blocks), bi, k, j, L, dropped = 0
    cdef bint ok_next = True, changed = False, dchanged = False
    cdef LBlock b, prev
    cdef LElem e
    cdef list kept, blocks
    bi = nb - 1
    while bi >= 0:
        b = _blk(o, bi)
        bi -= 1
        if b.dn:
            k = _dgc(o, b, stable, &ok_next)
            if k:
                dropped += k
                changed = True
                dchanged = True
            continue
        L = _len(b)
        if b.live == L:
            # no removed element: nothing to drop; what precedes sees its first
            ok_next = (_pfirst_seq(b) if b.pbuf is not None else _item(b, 0).uuid) <= stable
            continue
        kept = None
        k = L - 1
        while k >= 0:
            e = _item(b, k)
            if e.rem != 0 and e.rem <= stable and ok_next:
                if kept is None:
                    # the elements after k were kept (in reverse order here)
                    kept = [_item(b, j) for j in range(L - 1, k, -1)]
                _del_id(o, e)
                e.blk = NULL
                dropped += 1
            else:
                if kept is not None:
                    kept.append(e)
                ok_next = e.uuid <= stable
            k -= 1
        if kept is not None:
            kept.reverse()
            b.items = kept
            b.rev = False
            b.pos = -1          # shrunk (may join a neighbour below)
            changed = True
    if not changed:
        return dropped
    # drop the emptied blocks (a dead block's neighbours are live: no two dead
    # blocks meet) and join shrunk live blocks with live neighbours that fit
    if dchanged:
        _didx_prune(o)
    blocks = []
    prev = None
    for x in o.blocks:
        b = <LBlock>x
        if b.pbuf is None and not b.items:
            continue
        if (prev is not None and prev.live == 0 and b.live == 0 and prev.pbuf is None
                and b.pbuf is None):
            # two LElem blocks of removed elements met (what was between went)
            _norm(prev)
            moved = b.items[::-1] if b.rev else b.items
            for y in moved:
                (<LElem>y).blk = <void*>prev
            prev.items.extend(moved)
            continue
        if (prev is not None and prev.live > 0 and b.live > 0 and (prev.pos < 0 or b.pos < 0)
                and prev.pbuf is None and b.pbuf is None and _len(prev) + _len(b) <= BLOCK_MAX):
            for y in b.items:
                (<LElem>y).blk = <void*>prev
            prev.items.extend(b.items)
            prev.live += b.live
            prev.pos = -1
            continue
        if prev is not None:
            prev.pos = PyList_GET_SIZE(blocks) - 1
        blocks.append(b)
        prev = b
    if prev is not None:
        prev.pos = PyList_GET_SIZE(blocks) - 1
    o.blocks = blocks
    return dropped


cdef int _didx_prune(ListObj o) except -1:
    """Drop the dead packed blocks that GC emptied or expanded from o.didx."""
    cdef dict idx = {}
    cdef list lst
    if o.didx is None:
        return 0
    for node, v in o.didx.items():
        lst = [b for b in <list>v if (<LBlock>b).dn]
        if lst:
            idx[node] = lst
    o.didx = idx if idx else None
    return 0


cdef Py_ssize_t _gc(CObj x, uint64_t stable, bint* empty) except -1:
    """GC hook (see gc_list_c): empty when the object holds nothing any more
    (no element, no waiting insert) and can go."""
    cdef ListObj o = <ListObj>x
    cdef Py_ssize_t d = gc_list_c(o, stable)
    empty[0] = not o.ids and o.pend is None and o.n == 0 and o.didx is None
    return d


def gc_list(ListObj o, uint64_t stable):
    """The GC hook from Python: (dropped, empty)."""
    cdef bint empty = False
    cdef Py_ssize_t d = _gc(o, stable, &empty)
    return d, empty


# ------------------------------------------------------------ introspection ----

def list_values(ListObj o):
    return _values(o)


def list_expand(ListObj o):
    """Expand every packed block (tests)."""
    _expand_all(o)


def list_count_ids(ListObj o):
    """Every element known here, packed ones included."""
    cdef Py_ssize_t n = 0
    for v in o.ids.values():
        n += 1 if type(v) is LElem else len(v)
    if o.pidx is not None:
        for lst in o.pidx.values():
            for b in lst:
                n += (<LBlock>b).live
    if o.didx is not None:
        for lst in o.didx.values():
            for b in lst:
                n += (<LBlock>b).dn
    return n


def list_sequence(ListObj o):
    """Every placed element in sequence order, removed ones included."""
    cdef list out = []
    cdef LBlock b
    for x in o.blocks:
        b = <LBlock>x
        if b.pbuf is not None:
            out.extend(_pelems(b))
        else:
            out.extend(b.items[::-1] if b.rev else b.items)
    return out


def check_list(ListObj o):
    """Check the structure's invariants (tests): counts, block pointers, ids,
    no live element in a reversed block, no two adjacent dead blocks."""
    cdef LBlock b, prev = None
    cdef LElem e
    cdef Py_ssize_t n = 0, live, placed = 0, packed = 0, pbytes = 0
    cdef uint64_t u
    cdef Py_ssize_t dead = 0
    for x in o.blocks:
        b = <LBlock>x
        if b.dn:
            assert b.items is None and b.live == 0 and b.pbuf is not None, "bad dead block"
            assert len(b.pbuf) == 16 * b.dn, "bad dead buffer"
            assert b in o.didx[b.node], "dead packed block not indexed"
            us = [_duuid(b, k) for k in range(b.dn)]
            if b.dn > 1:
                assert us == sorted(us, reverse=b.same) and len(set(us)) == len(us), \
                    "dead uuids not monotonic"
            assert b.ulo == min(us) and b.uhi == max(us), "bad dead range"
            for k in range(b.dn):
                assert _dfind(o, b.node, us[k], &live) is b and live == k, "dead id not found"
                assert _get_id_d(o, b.node, us[k]) is None, "dead element also in ids"
                assert _dents(b)[2 * _dj(b, k) + 1] != 0, "dead element not removed"
            pbytes += len(b.pbuf) + PBLOCK_COST
            dead += b.dn
            prev = b
            continue
        if b.pbuf is not None:
            assert b.items is None and b.live > 0 and not b.rev, "bad packed block"
            assert b.live <= PACK_MAX, "oversized packed block"
            assert b in o.pidx[b.node], "packed block not indexed"
            u = 0
            for k in range(b.live):
                _pgo(b, k)
                assert k == 0 or _cu > u, "packed uuids not increasing"
                u = _cu
                assert _pfind(o, b.node, u, &live) is b and live == k, "packed id not found"
                assert _get_id_d(o, b.node, u) is None, "packed element also in ids"
            assert b.ulo == _puuid(b, 0) and b.uhi == u, "bad packed range"
            pbytes += len(b.pbuf) + PBLOCK_COST
            packed += b.live
            prev = b
            n += b.live
            continue
        assert len(b.items) > 0, "empty block"
        live = 0
        for y in b.items:
            e = <LElem>y
            assert e.blk == <void*>b, "element points at another block"
            assert e.st == ST_PLACED
            assert _get_id_d(o, e.node, e.uuid) is e, "element missing from ids"
            if e.rem == 0:
                live += 1
            placed += 1
        assert live == b.live, "bad live count"
        assert not (b.rev and b.live), "reversed live block"
        assert b.live == 0 or len(b.items) <= PACK_MAX, "oversized live block"
        if prev is not None:
            assert prev.live > 0 or b.live > 0 or prev.dn, "adjacent dead blocks"
        prev = b
        n += live
    assert n == o.n, "bad element count"
    assert pbytes == o.pbytes, "bad packed byte count"
    if o.pidx is not None:
        for node, lst in o.pidx.items():
            assert lst, "empty packed index"
            for i in range(len(lst)):
                assert (<LBlock>lst[i]).pbuf is not None and (<LBlock>lst[i]).node == node
                assert i == 0 or (<LBlock>lst[i - 1]).uhi < (<LBlock>lst[i]).ulo, \
                    "packed ranges overlap"
                packed -= (<LBlock>lst[i]).live
        assert packed == 0, "packed blocks missing from o.blocks"
    if o.didx is not None:
        for node, lst in o.didx.items():
            assert lst, "empty dead index"
            for i in range(len(lst)):
                assert (<LBlock>lst[i]).dn and (<LBlock>lst[i]).node == node
                assert i == 0 or (<LBlock>lst[i - 1]).uhi < (<LBlock>lst[i]).ulo, \
                    "dead ranges overlap"
                dead -= (<LBlock>lst[i]).dn
        assert dead == 0, "dead packed blocks missing from o.blocks"
    total = 0
    for v in o.ids.values():
        total += 1 if type(v) is LElem else len(v)
    waiting = 0
    if o.pend is not None:
        for lst in o.pend.values():
            waiting += len(lst)
    ghosts = 0
    for v in o.ids.values():
        for y in ([v] if type(v) is LElem else v):
            if (<LElem>y).st == ST_GHOST:
                ghosts += 1
    assert total == placed + waiting + ghosts, "ids do not match the elements"
    return True


cdef list _describe(CObj x):
    cdef ListObj o = <ListObj>x
    cdef LElem e
    seq = [[(<LElem>y).node, (<LElem>y).uuid, (<LElem>y).val, (<LElem>y).vu, (<LElem>y).vn,
            (<LElem>y).rem, [(<LElem>y).an, (<LElem>y).au]] for y in list_sequence(o)]
    other = []
    for v in o.ids.values():
        for y in ([v] if type(v) is LElem else v):
            e = <LElem>y
            if e.st != ST_PLACED:
                other.append([e.node, e.uuid, e.val, e.vu, e.vn, e.rem, [e.an, e.au], e.st])
    other.sort(key=lambda x: (x[0], x[1]))
    return [b"elements", seq, b"unplaced", other]


# ------------------------------------------------------------- type table ----

cdef CObj _new():
    return new_list()


cdef bint _live(CObj o) noexcept:
    return (<ListObj>o).n > 0


cdef bint _keeps(CObj o) noexcept:
    # tombstones and inserts waiting for their anchor, until GC
    return (len((<ListObj>o).ids) > 0 or (<ListObj>o).pend is not None
            or (<ListObj>o).didx is not None)


cdef void _last_ts(CObj x, uint64_t* u, uint64_t* n) noexcept:
    # a list holds the writes of its live elements: their inserts and LSETs
    cdef ListObj o = <ListObj>x
    cdef LBlock b
    cdef LElem e
    u[0] = 0
    n[0] = 0
    for y in o.blocks:
        b = <LBlock>y
        if b.live == 0:
            continue
        if b.pbuf is not None:
            if ts_gt(b.uhi, b.node, u[0], n[0]):
                u[0] = b.uhi
                n[0] = b.node
            continue
        for z in b.items:
            e = <LElem>z
            if e.rem != 0:
                continue
            if ts_gt(e.uuid, e.node, u[0], n[0]):
                u[0] = e.uuid
                n[0] = e.node
            if ts_gt(e.vu, e.vn, u[0], n[0]):
                u[0] = e.vu
                n[0] = e.vn


cdef int _clear(Keyspace ks, object key, CObj o) except -1:
    return emit_lclear(ks, key, <ListObj>o)


cdef object _value(CObj o):
    return list_values(<ListObj>o)


# -------------------------------------------------------------- snapshots ----
#
# list = u64 lu, u64 ln, varint p, p x element (placed, in sequence order),
#        varint q, q x element (ghosts, and inserts waiting for their anchor)
# element = u64 node, u64 uuid, u8 state, u8 has_value [bytes value], u64 vu,
#        u64 vn, u64 rem, u64 an, u64 au
# (not in version 1)

cdef int _enc_elem(Writer w, LElem e) except -1:
    w.put_u64(e.node)
    w.put_u64(e.uuid)
    w.put_u8(e.st)
    if e.val is None:
        w.put_u8(0)
    else:
        w.put_u8(1)
        w.put_bytes(<bytes>e.val)
    w.put_u64(e.vu)
    w.put_u64(e.vn)
    w.put_u64(e.rem)
    w.put_u64(e.an)
    w.put_u64(e.au)
    return 0


cdef LElem _dec_elem(Reader r):
    cdef LElem e = LElem.__new__(LElem)
    cdef uint8_t st
    e.node = r.u64()
    e.uuid = r.u64()
    st = r.u8()
    if st > ST_PLACED:
        raise SnapshotError("corrupt snapshot (bad list element state)")
    e.st = st
    e.val = r.bytes_() if r.u8() else None
    e.vu = r.u64()
    e.vn = r.u64()
    e.rem = r.u64()
    e.an = r.u64()
    e.au = r.u64()
    e.blk = NULL
    return e


cdef int _encode(Writer w, CObj o) except -1:
    cdef ListObj lo = <ListObj>o
    cdef list unplaced
    w.put_u64(lo.lu)
    w.put_u64(lo.ln)
    seq = _list_seq(lo)
    w.put_varint(len(seq))
    for e in seq:
        _enc_elem(w, <LElem>e)
    unplaced = [e for e in _list_all(lo) if (<LElem>e).st != ST_PLACED]
    w.put_varint(len(unplaced))
    for e in unplaced:
        _enc_elem(w, <LElem>e)
    return 0


cdef CObj _decode(Reader r, int version):
    cdef ListObj lo
    cdef list seq, unplaced
    cdef uint64_t n, _i
    if version < 2:
        raise SnapshotError("corrupt snapshot (unknown object type %d)" % T_LIST)
    lo = new_list()
    lo.lu = r.u64()
    lo.ln = r.u64()
    seq = []
    n = r.varint()
    _check_count(r, n, 58)
    for _i in range(n):
        seq.append(_dec_elem(r))
    unplaced = []
    n = r.varint()
    _check_count(r, n, 58)
    for _i in range(n):
        e = _dec_elem(r)
        if (<LElem>e).st == ST_PLACED:
            raise SnapshotError("corrupt snapshot (bad list element state)")
        unplaced.append(e)
    if not _list_build(lo, seq, unplaced):
        raise SnapshotError("corrupt snapshot (list element twice)")
    return lo


# ------------------------------------------------------------ the list merge ---
#
# A list's state is its elements (id, value and LWW ts, removal, anchor) and
# the RGA order of the placed ones. Elements: the union, minus one side's
# elements whose insert the other side has seen and does not have (it dropped
# them at GC); a removal wins (the smallest removal uuid, as t_list keeps),
# values are LWW, an anchor is known if either side has the insert. Order:
# both sides' sequences are the RGA order of the union restricted to what
# each has placed, so the common placed elements come in the same order on
# both; between two consecutive common elements, each side's own elements
# are interleaved by the RGA rule (an element goes after its anchor, or at
# the start of the gap if its anchor is further back, past every element
# with a larger id). Elements placed on neither side whose anchor is now
# placed are integrated as an insert would be; the others wait (or stay
# ghosts). docs/crdt.md section 5 has the argument.

cdef list _list_seq(ListObj o):
    """The placed elements in sequence order."""
    cdef list out = []
    cdef LBlock b
    for x in o.blocks:
        b = <LBlock>x
        if b.pbuf is not None:
            out.extend(_pelems(b))
        elif b.rev:
            out.extend(reversed(b.items))
        else:
            out.extend(b.items)
    return out


cdef list _list_all(ListObj o):
    cdef list out = []
    for v in o.ids.values():
        if type(v) is LElem:
            out.append(v)
        else:
            out.extend(<list>v)
    return out


cdef inline bint _id_gt(LElem a, LElem b) noexcept:
    return ts_gt(a.uuid, a.node, b.uuid, b.node)


cdef bint _put_id_once(ListObj o, LElem e) except -1:
    cdef PyObject* p = PyDict_GetItem(o.ids, e.uuid)
    cdef object x
    if p == NULL:
        o.ids[e.uuid] = e
        return True
    x = <object>p
    if type(x) is LElem:
        if (<LElem>x).node == e.node:
            return False
        o.ids[e.uuid] = [x, e]
        return True
    for y in <list>x:
        if (<LElem>y).node == e.node:
            return False
    (<list>x).append(e)
    return True


cdef int _push_block(list blocks, list items, Py_ssize_t live) except -1:
    cdef LBlock b
    cdef LElem e
    if (live == 0 and blocks and (<LBlock>blocks[len(blocks) - 1]).live == 0
            and (<LBlock>blocks[len(blocks) - 1]).pbuf is None):
        b = <LBlock>blocks[len(blocks) - 1]
        b.items.extend(items)
    else:
        b = LBlock.__new__(LBlock)
        b.items = items
        b.live = live
        b.pos = len(blocks)
        b.rev = False
        blocks.append(b)
    for x in items:
        e = <LElem>x
        e.blk = <void*>b
    return 0


cdef inline bint _packable(LElem e) noexcept:
    """e may sit in a packed block: live, never LSET."""
    return e.rem == 0 and e.vu == e.uuid and e.vn == e.node and type(e.val) is bytes


cdef inline bint _dead_packable(LElem e) noexcept:
    """e may sit in a dead packed block: a tombstone (no value, no LSET ts)."""
    return e.rem != 0 and e.val is None and e.vu == 0 and e.vn == 0


cdef int _run_joins(list run, int mode, LElem e, LElem nxt, Py_ssize_t nbytes,
                    bint dead) noexcept:
    """How packable e (dead: a tombstone, _dead_packable) continues the run
    (in sequence order) of packed elements (dead: of tombstones): 1 as the
    next of a chain, 2 as the next of an LPUSH run (the run's mode, 0 while
    it has one element); 0 if it does not. An element that the next one
    (nxt) chains onto starts a chain rather than end an LPUSH run (as when a
    push made it: an LPUSH run holds newer elements)."""
    cdef LElem first = <LElem>PyList_GET_ITEM(run, 0)
    cdef LElem last = <LElem>PyList_GET_ITEM(run, PyList_GET_SIZE(run) - 1)
    if e.node != first.node:
        return 0
    if dead:
        if PyList_GET_SIZE(run) >= DEAD_MAX:
            return 0
    elif (PyList_GET_SIZE(run) >= PACK_MAX
            or nbytes + PyBytes_GET_SIZE(<bytes>e.val) + 4 >= PACK_BYTES):
        return 0
    if mode != 2 and e.an == e.node and e.au == last.uuid and e.uuid > last.uuid:
        return 1
    if mode != 1 and e.an == first.an and e.au == first.au and e.uuid < last.uuid:
        if (nxt is not None and nxt.node == e.node and nxt.an == e.node and nxt.au == e.uuid
                and (_dead_packable(nxt) if dead else _packable(nxt))):
            return 0
        return 2
    return 0


cdef class _Builder:
    """The blocks of a list being rebuilt (_list_build): LElem blocks, and
    packed blocks for runs of at least PACK_MIN packable elements, dead
    packed blocks for runs of at least PACK_MIN tombstones (a loaded deleted
    list holds them as the DEL and the pops left them: 16 bytes each)."""
    cdef ListObj o
    cdef list blocks
    cdef list cur           # the LElem block being filled
    cdef Py_ssize_t live
    cdef Py_ssize_t total
    cdef list run           # packable elements that may become a packed block
    cdef bint dead          # run holds tombstones (a dead packed block's)
    cdef int mode
    cdef Py_ssize_t nbytes

    cdef int add(self, LElem e, LElem nxt) except -1:
        cdef int m
        cdef bint dead = _dead_packable(e)
        if dead or _packable(e):
            if self.run:
                if self.dead == dead:
                    m = _run_joins(self.run, self.mode, e, nxt, self.nbytes, dead)
                    if m:
                        self.run.append(e)
                        self.mode = m
                        if not dead:
                            self.nbytes += PyBytes_GET_SIZE(<bytes>e.val) + 4
                        return 0
                self.end_run()
            self.run = [e]
            self.dead = dead
            self.mode = 0
            self.nbytes = 0 if dead else PyBytes_GET_SIZE(<bytes>e.val) + 4
            return 0
        if self.run:
            self.end_run()
        return self.add_elem(e)

    cdef int add_elem(self, LElem e) except -1:
        self.cur.append(e)
        if e.rem == 0:
            self.live += 1
        if PyList_GET_SIZE(self.cur) == BLOCK_MAX:
            self.end_cur()
        return 0

    cdef int end_cur(self) except -1:
        if self.cur:
            _push_block(self.blocks, self.cur, self.live)
            self.total += self.live
            self.cur = []
            self.live = 0
        return 0

    cdef int end_run(self) except -1:
        cdef list run = self.run
        cdef LBlock b
        cdef LElem first
        self.run = None
        if run is None:
            return 0
        if self.dead:
            return self.end_dead_run(run)
        if PyList_GET_SIZE(run) >= PACK_MIN:
            first = <LElem>PyList_GET_ITEM(run, 0)
            b = LBlock.__new__(LBlock)
            b.items = None
            b.live = 0
            b.rev = False
            b.pbuf = bytearray()
            b.node = first.node
            b.an = first.an
            b.au = first.au
            b.same = self.mode == 2
            for x in (reversed(run) if b.same else run):
                _pappend(self.o, b, (<LElem>x).uuid, <bytes>(<LElem>x).val)
            self.o.pbytes += PBLOCK_COST
            if _pidx_add(self.o, b):
                self.end_cur()
                b.pos = PyList_GET_SIZE(self.blocks)
                self.blocks.append(b)
                self.total += b.live
                for x in run:
                    _del_id(self.o, <LElem>x)
                    (<LElem>x).blk = NULL
                return 0
            self.o.pbytes -= PyByteArray_GET_SIZE(b.pbuf) + PBLOCK_COST
        for x in run:
            self.add_elem(<LElem>x)
        return 0

    cdef int end_dead_run(self, list run) except -1:
        """A dead packed block of the run's tombstones (its buffer in uuid
        order, as _pkill leaves one), if it is long enough and its uuid range
        can be indexed; else they go into LElem blocks."""
        cdef Py_ssize_t n = PyList_GET_SIZE(run), j = 0
        cdef LElem first = <LElem>PyList_GET_ITEM(run, 0)
        cdef LBlock b
        cdef uint64_t* w
        if n >= PACK_MIN:
            b = _pblock(first.node, first.an, first.au, 16 * n)
            b.same = self.mode == 2
            b.rev = b.same
            b.dn = n
            w = _dents(b)
            for x in (reversed(run) if b.same else run):
                w[2 * j] = (<LElem>x).uuid
                w[2 * j + 1] = (<LElem>x).rem
                j += 1
            _drange(b)
            if _didx_add(self.o, b):
                self.o.pbytes += 16 * n + PBLOCK_COST
                self.end_cur()
                b.pos = PyList_GET_SIZE(self.blocks)
                self.blocks.append(b)
                for x in run:
                    _del_id(self.o, <LElem>x)
                    (<LElem>x).blk = NULL
                return 0
        for x in run:
            self.add_elem(<LElem>x)
        return 0


cdef bint _list_build(ListObj o, list seq, list unplaced) except -1:
    """Make o hold exactly these placed elements (in this order) and these
    ghosts and waiting inserts. False if an id comes twice."""
    cdef _Builder bld = _Builder.__new__(_Builder)
    cdef LElem e
    cdef list lst
    cdef Py_ssize_t i, ns = PyList_GET_SIZE(seq)
    o.ids = {}
    o.pend = None
    o.pidx = None
    o.didx = None
    o.pbytes = 0
    bld.o = o
    bld.blocks = []
    bld.cur = []
    bld.live = 0
    bld.total = 0
    bld.run = None
    for i in range(ns):
        e = <LElem>PyList_GET_ITEM(seq, i)
        e.st = ST_PLACED
        if not _put_id_once(o, e):
            return False
        bld.add(e, <LElem>PyList_GET_ITEM(seq, i + 1) if i + 1 < ns else None)
    bld.end_run()
    bld.end_cur()
    o.blocks = bld.blocks
    o.n = bld.total
    for x in unplaced:
        e = <LElem>x
        e.blk = NULL
        if not _put_id_once(o, e):
            return False
        if e.st == ST_WAIT:
            if o.pend is None:
                o.pend = {}
            lst = (<dict>o.pend).get(e.au)
            if lst is None:
                o.pend[e.au] = [(e, e.an)]
            else:
                lst.append((e, e.an))
    return True


cdef int _merge_elem(LElem x, LElem y) except -1:
    """y's knowledge of one element into x."""
    if x.st == ST_GHOST and y.st != ST_GHOST:
        x.an = y.an
        x.au = y.au
        x.st = ST_WAIT
    if y.rem != 0 and (x.rem == 0 or y.rem < x.rem):
        x.rem = y.rem
    if ts_gt(y.vu, y.vn, x.vu, x.vn):
        x.val = y.val
        x.vu = y.vu
        x.vn = y.vn
    if x.rem != 0:
        x.val = None
        x.vu = 0
        x.vn = 0
    return 0


cdef list _interleave(list runa, list runb):
    """Integrate b's run into a's run of one gap (RGA). Each element of b's
    run lands after the previous one (both sides' sequences are restrictions
    of one order), and between its anchor and it there are only larger ids:
    so, from the previous one on, it goes past a's elements with a larger id.
    A linear merge."""
    cdef list out = []
    cdef LElem y, x
    cdef Py_ssize_t i = 0, n = len(runa)
    for v in runb:
        y = <LElem>v
        while i < n:
            x = <LElem>runa[i]
            if not _id_gt(x, y):
                break
            out.append(x)
            i += 1
        out.append(y)
    out.extend(runa[i:])
    return out


cdef int _merge_list(ListObj a, ListObj b, Ctx ca, Ctx cb) except -1:
    cdef dict ea = {}, eb = {}, keep = {}
    cdef LElem x, y
    cdef list sa, sb, result, runa, runb, waiting, rest, unplaced
    cdef set ina, inb, placed
    cdef Py_ssize_t i = 0, j = 0, na, nb
    cdef dict nxt
    cdef bint progress
    _expand_all(a)
    _expand_all(b)
    for x in _list_all(a):
        ea[(x.node, x.uuid)] = x
    for y in _list_all(b):
        eb[(y.node, y.uuid)] = y
    for key, v in ea.items():
        x = <LElem>v
        p = eb.get(key)
        if p is None:
            if cb.applied(x.node, x.uuid):
                continue
        else:
            _merge_elem(x, <LElem>p)
        keep[key] = x
    for key, v in eb.items():
        y = <LElem>v
        if key not in ea and not ca.applied(y.node, y.uuid):
            keep[key] = y
    sa = [e for e in _list_seq(a) if ((<LElem>e).node, (<LElem>e).uuid) in keep]
    sb = [keep[((<LElem>e).node, (<LElem>e).uuid)] for e in _list_seq(b)
          if ((<LElem>e).node, (<LElem>e).uuid) in keep]
    ina = {((<LElem>e).node, (<LElem>e).uuid) for e in sa}
    inb = {((<LElem>e).node, (<LElem>e).uuid) for e in sb}
    result = []
    na = len(sa)
    nb = len(sb)
    while True:
        runa = []
        while i < na and ((<LElem>sa[i]).node, (<LElem>sa[i]).uuid) not in inb:
            runa.append(sa[i])
            i += 1
        runb = []
        while j < nb and ((<LElem>sb[j]).node, (<LElem>sb[j]).uuid) not in ina:
            runb.append(sb[j])
            j += 1
        result.extend(_interleave(runa, runb) if runb else runa)
        if i >= na or j >= nb:
            break
        if sa[i] is sb[j]:
            result.append(sa[i])
            i += 1
            j += 1
        else:
            # the two orders disagree (states of one group never do): a's
            # order wins, b's elements left over are placed by their anchors
            result.append(sa[i])
            i += 1
    result.extend(sa[i:])
    placed = {((<LElem>e).node, (<LElem>e).uuid) for e in result}
    # inserts known here whose anchor is now placed: integrate them as an
    # insert is (RGA), in uuid order so that chains resolve; over a linked
    # list, so that each finds its anchor at once
    waiting = [e for key, e in keep.items() if key not in placed and (<LElem>e).st != ST_GHOST]
    if waiting:
        waiting.sort(key=lambda e: ((<LElem>e).uuid, (<LElem>e).node))
        nxt = {}
        prev = None
        for v in result:
            key = ((<LElem>v).node, (<LElem>v).uuid)
            nxt[prev] = key
            prev = key
        nxt[prev] = None
        progress = True
        while waiting and progress:
            progress = False
            rest = []
            for v in waiting:
                x = <LElem>v
                if x.an == 0 and x.au == 0:
                    at = None
                elif (x.an, x.au) in placed:
                    at = (x.an, x.au)
                else:
                    rest.append(x)
                    continue
                cur = nxt[at]
                while cur is not None and _id_gt(<LElem>keep[cur], x):
                    at = cur
                    cur = nxt[cur]
                key = (x.node, x.uuid)
                nxt[at] = key
                nxt[key] = cur
                placed.add(key)
                progress = True
            waiting = rest
        result = []
        cur = nxt[None]
        while cur is not None:
            result.append(keep[cur])
            cur = nxt[cur]
    unplaced = []
    for key, v in keep.items():
        if key not in placed:
            x = <LElem>v
            x.st = ST_WAIT if x.st != ST_GHOST else ST_GHOST
            unplaced.append(x)
    _list_build(a, result, unplaced)
    _bump(&a.lu, &a.ln, b.lu, b.ln)
    return 0


cdef bint _filter_list(ListObj o, Ctx other) except -1:
    cdef set drop = set()
    cdef LElem e
    cdef LBlock b
    for idx in (o.pidx, o.didx):
        if idx is None:
            continue
        # a packed block holds an applied element if its oldest is one
        for lst in (<dict>idx).values():
            for y in <list>lst:
                b = <LBlock>y
                if other.applied(b.node, b.ulo):
                    _expand_all(o)
                    break
            if o.pidx is None and o.didx is None:
                break
    for x in _list_all(o):
        e = <LElem>x
        if other.applied(e.node, e.uuid):
            drop.add((e.node, e.uuid))
    if not drop:
        return False
    seq = [x for x in _list_seq(o) if ((<LElem>x).node, (<LElem>x).uuid) not in drop]
    unplaced = [x for x in _list_all(o) if (<LElem>x).st != ST_PLACED
                and ((<LElem>x).node, (<LElem>x).uuid) not in drop]
    _list_build(o, seq, unplaced)
    return True


cdef int _merge(CObj a, CObj b, Ctx ca, Ctx cb, uint64_t clock) except -1:
    return _merge_list(<ListObj>a, <ListObj>b, ca, cb)


cdef bint _filter(CObj o, Ctx other, uint64_t clock) except -1:
    return _filter_list(<ListObj>o, other)


cdef TypeOps OPS
OPS.code = T_LIST
OPS.name = b"list"
OPS.ops[0] = OP_LINS
OPS.ops[1] = OP_LREM
OPS.ops[2] = OP_LSET
OPS.ops[3] = OP_LCLEAR
OPS.new = _new
OPS.live = _live
OPS.keeps = _keeps
OPS.last_ts = _last_ts
OPS.apply = _apply
OPS.check = _check
OPS.clear = _clear
OPS.value = _value
OPS.describe = _describe
OPS.gc = _gc
OPS.encode = _encode
OPS.decode = _decode
OPS.merge = _merge
OPS.filter = _filter
register_type_ops(&OPS)
