"""What the type modules share for snapshots (snapshot.pyx has the file and
the driver; each type module encodes, decodes and merges its objects).

Merging never replaces local state: a dot that only one side has is kept iff
the other side has not seen it (VV or dot cloud); a register, a counter entry
(by its (node, last uuid)) or a list element that only one side has is kept
iff the other side has not applied its effect (VV: it could only have
collected it); registers are LWW and a counter base travels with its register.

Encodings: dots = varint n, n x (u64 node, u64 uuid); versions = varint n,
n x (bytes value, u64 node, u64 uuid); counters = varint n, n x (u64 node,
i64 sum, u64 last, i64 bsum, u64 blast).
"""

from cpython.dict cimport PyDict_GetItem
from cpython.object cimport PyObject
from libc.stdint cimport uint64_t

from constdb._core.codec cimport Reader, Writer
from constdb._core.objects cimport CntEntry, Dot, Ver, cnt_origin, new_dot, new_ver


class SnapshotError(ValueError):
    """A snapshot that cannot be used: truncated, bad checksum, wrong version."""


cdef class Ctx:
    """A causal context (VV and dot cloud) frozen for a merge."""

    def __init__(self, dict vv, dict cloud):
        self.vv = vv
        self.cloud = cloud

    cdef bint applied(self, uint64_t node, uint64_t uuid):
        """The effect (node, uuid) was applied here. What decides for the
        parts of an effect that are not dots (registers, counter entries, list
        elements): a dot in the cloud names an add whose removal arrived first,
        its register write and increment still have to come."""
        cdef PyObject* p = PyDict_GetItem(self.vv, node)
        return p != NULL and uuid <= <uint64_t><object>p

    cdef bint seen(self, uint64_t node, uint64_t uuid):
        """The dot (node, uuid) was seen here: its add applied, or its
        removal (the cloud)."""
        cdef PyObject* p = PyDict_GetItem(self.vv, node)
        if p != NULL and uuid <= <uint64_t><object>p:
            return True
        if self.cloud:
            p = PyDict_GetItem(self.cloud, node)
            if p != NULL and uuid in <object>p:
                return True
        return False


# ----------------------------------------------------------------- encoding ---

cdef int _enc_dots(Writer w, object ent) except -1:
    if ent is None:
        w.put_varint(0)
    elif type(ent) is list:
        w.put_varint(len(<list>ent))
        for x in <list>ent:
            w.put_u64((<Dot>x).node)
            w.put_u64((<Dot>x).uuid)
    else:
        w.put_varint(1)
        w.put_u64((<Dot>ent).node)
        w.put_u64((<Dot>ent).uuid)
    return 0


cdef int _enc_vers(Writer w, object ent) except -1:
    cdef Ver v
    if ent is None:
        w.put_varint(0)
    elif type(ent) is list:
        w.put_varint(len(<list>ent))
        for x in <list>ent:
            v = <Ver>x
            w.put_bytes(v.val)
            w.put_u64(v.node)
            w.put_u64(v.uuid)
    else:
        v = <Ver>ent
        w.put_varint(1)
        w.put_bytes(v.val)
        w.put_u64(v.node)
        w.put_u64(v.uuid)
    return 0


cdef int _enc_cnts(Writer w, object cnt) except -1:
    cdef CntEntry e
    if not cnt:
        w.put_varint(0)
        return 0
    w.put_varint(len(<dict>cnt))
    for k, v in (<dict>cnt).items():
        e = <CntEntry>v
        w.put_u64(<uint64_t>k)
        w.put_i64(e.sum)
        w.put_u64(e.last)
        w.put_i64(e.bsum)
        w.put_u64(e.blast)
    return 0


cdef int _check_count(Reader r, uint64_t n, Py_ssize_t min_size) except -1:
    if n > <uint64_t>(r.end - r.pos) // <uint64_t>min_size:
        raise SnapshotError("corrupt snapshot (bad count)")
    return 0


cdef object _dec_dots(Reader r):
    cdef uint64_t n = r.varint(), _i, node
    cdef list out
    if n == 0:
        return None
    if n == 1:
        node = r.u64()
        return new_dot(node, r.u64())
    _check_count(r, n, 16)
    out = []
    for _i in range(n):
        node = r.u64()
        out.append(new_dot(node, r.u64()))
    return out


cdef object _dec_vers(Reader r):
    cdef uint64_t n = r.varint(), _i, node
    cdef list out = []
    cdef bytes val
    if n == 0:
        return None
    _check_count(r, n, 17)
    for _i in range(n):
        val = r.bytes_()
        node = r.u64()
        out.append(new_ver(val, r.u64(), node))
    if len(out) == 1:
        return out[0]
    return out


cdef dict _dec_cnts(Reader r):
    cdef uint64_t n = r.varint(), _i, node
    cdef dict out
    cdef CntEntry e
    if n == 0:
        return None
    _check_count(r, n, 40)
    out = {}
    for _i in range(n):
        node = r.u64()
        e = CntEntry.__new__(CntEntry)
        e.sum = r.i64()
        e.last = r.u64()
        e.bsum = r.i64()
        e.blast = r.u64()
        out[node] = e
    return out


# ------------------------------------------------------------ dots, counters ---

cdef list _as_list(object ent):
    if ent is None:
        return []
    if type(ent) is list:
        return <list>ent
    return [ent]


cdef object _filter_ent(object ent, Ctx other):
    """Keep the dots of ent that `other` has not seen (the one-sided rule)."""
    cdef list keep
    if ent is None:
        return None
    if type(ent) is list:
        keep = [x for x in <list>ent if not other.seen((<Dot>x).node, (<Dot>x).uuid)]
        if not keep:
            return None
        return keep[0] if len(keep) == 1 else keep
    if other.seen((<Dot>ent).node, (<Dot>ent).uuid):
        return None
    return ent


cdef bint _any_seen(object ent, Ctx other):
    if ent is None:
        return False
    if type(ent) is list:
        for x in <list>ent:
            if other.seen((<Dot>x).node, (<Dot>x).uuid):
                return True
        return False
    return other.seen((<Dot>ent).node, (<Dot>ent).uuid)


cdef object _merge_ent(object a, object b, Ctx ca, Ctx cb):
    """Dots in both: kept; in one only: kept iff the other has not seen them."""
    cdef list out = []
    cdef list la = _as_list(a), lb = _as_list(b)
    cdef Dot x, y
    cdef bint found
    for x in la:
        found = False
        for y in lb:
            if x.node == y.node and x.uuid == y.uuid:
                found = True
                break
        if found or not cb.seen(x.node, x.uuid):
            out.append(x)
    for y in lb:
        found = False
        for x in la:
            if x.node == y.node and x.uuid == y.uuid:
                found = True
                break
        if not found and not ca.seen(y.node, y.uuid):
            out.append(y)
    if not out:
        return None
    return out[0] if len(out) == 1 else out


cdef set _cnt_nodes(object xa, object xb):
    """The origins with a counter entry on either side."""
    cdef set nodes = set(xa) if xa else set()
    if xb:
        nodes.update(xb)
    return nodes


cdef object _cnt_src(object ea, uint64_t la, object eb, uint64_t lb, uint64_t node, Ctx ca,
                     Ctx cb):
    """Which of one origin's counter entries (la, lb: their last uuids) a merge
    keeps: the later one; a one-sided one only if the other side has not seen
    it (it saw it and dropped it: observed-reset, or GC). None: neither."""
    if ea is not None and eb is not None:
        return eb if lb > la else ea
    if ea is not None:
        return ea if la and not cb.applied(node, la) else None
    if eb is not None:
        return eb if lb and not ca.applied(node, lb) else None
    return None


cdef dict _merge_cnts(object xa, object xb, object base, Ctx ca, Ctx cb):
    """Counter entries (CntEntry) of two sides: each origin's (sum, last) is the
    one with the later last (a one-sided one is kept iff the other side has not
    seen it); the base (bsum, blast) is the winning register's. Entries that
    hold nothing are left out."""
    cdef dict out = {}
    cdef CntEntry ea, eb, src, e
    cdef PyObject* p
    for node in _cnt_nodes(xa, xb):
        ea = (<dict>xa).get(node) if xa else None
        eb = (<dict>xb).get(node) if xb else None
        src = _cnt_src(ea, ea.last if ea is not None else 0, eb,
                       eb.last if eb is not None else 0, cnt_origin(<uint64_t>node), ca, cb)
        e = CntEntry.__new__(CntEntry)
        if src is not None:
            e.sum = src.sum
            e.last = src.last
        if base:
            p = PyDict_GetItem(<dict>base, node)
            if p != NULL:
                e.bsum = (<CntEntry>p).bsum
                e.blast = (<CntEntry>p).blast
        if e.sum or e.last or e.bsum or e.blast:
            out[node] = e
    return out


cdef bint _cnts_seen(object cnt, Ctx other):
    cdef CntEntry e
    if not cnt:
        return False
    for k, v in (<dict>cnt).items():
        e = <CntEntry>v
        if e.last and other.applied(cnt_origin(<uint64_t>k), e.last):
            return True
    return False


cdef dict _filter_cnts(object cnt, Ctx other, bint drop_base):
    """One side's counter entries: drop the (sum, last) the other side saw
    (and the bases, with their register, when drop_base)."""
    cdef dict out = {}
    cdef CntEntry e
    if not cnt:
        return out
    for k, v in (<dict>cnt).items():
        e = <CntEntry>v
        if e.last and other.applied(cnt_origin(<uint64_t>k), e.last):
            e.sum = 0
            e.last = 0
        if drop_base:
            e.bsum = 0
            e.blast = 0
        if e.sum or e.last or e.bsum or e.blast:
            out[k] = e
    return out
