"""Sets (docs/crdt.md section 3.2): an OR-Set with add-wins.

Each member keeps the dots of the adds that made it (SetObj.m: member -> Dot
or [Dot]); an add replaces the dots it saw, a removal takes the dots it saw,
so an add concurrent with a removal survives. Every change goes through
`_sadd_on` or `_srem_on`, for a local write (emit_*) and a remote record
(_apply) alike.
"""

from cpython.dict cimport PyDict_GetItem
from cpython.object cimport PyObject
from libc.stdint cimport uint8_t, uint64_t

from constdb._core.codec cimport Reader, Writer
from constdb._core.dots cimport (
    _bump, _ent_add, _ent_dots, _ent_dots_raw, _ent_max, _ent_remove, _put_dots, _read_dots,
    _skip_n,
)
from constdb._core.ktable cimport kt_get
from constdb._core.keyspace cimport (
    Keyspace, TypeOps, _emptied, _ttl_write, obj_live, register_type_ops,
)
from constdb._core.merge cimport (
    Ctx, _any_seen, _check_count, _dec_dots, _enc_dots, _filter_ent, _merge_ent,
)
from constdb._core.objects cimport T_SET, CObj, Dot, SetObj, new_dot, new_set
from constdb._core.ops cimport OP_SADD, OP_SCLEAR, OP_SREM


# ------------------------------------------------- the rules (local + remote) ----

cdef int _sadd_on(Keyspace ks, object key, SetObj o, object member, uint64_t u, uint64_t n,
                  list removes) except -1:
    cdef PyObject* p = PyDict_GetItem(o.m, member)
    cdef object ent = <object>p if p != NULL else None
    if removes:
        ent = _ent_remove(ent, removes)
        ks._note_unseen(removes)
    if not ks._in_cloud(n, u):
        ent = _ent_add(ent, new_dot(n, u))
    if ent is None:
        o.m.pop(member, None)
    else:
        if p == NULL and o.pick is not None:
            o.pick = None    # a new member: the random-access list lacks it
        o.m[member] = ent
    _bump(&o.lu, &o.ln, u, n)
    ks.touched(key)
    ks.settle(key, o)
    return 0


cdef int _srem_on(Keyspace ks, object key, SetObj o, object member, list dots) except -1:
    cdef object ent
    ks._note_unseen(dots)
    if o is None:
        return 0
    ent = o.m.get(member)
    if ent is not None:
        ent = _ent_remove(ent, dots)
        if ent is None:
            del o.m[member]
            if o.pick is not None and len(o.pick) > 2 * len(o.m) + 64:
                o.pick = None   # mostly removed members: let them go
        else:
            o.m[member] = ent
    return 0


# ---------------------------------------------------------- local effects ----

cdef int emit_sadd(Keyspace ks, object key, object member) except -1:
    """Add a member that the set does not have (a no-op SADD logs nothing)."""
    cdef uint64_t u = ks.tick()
    cdef PyObject* p = kt_get(&ks.d.t, key)
    cdef SetObj o
    cdef list removes = None
    cdef Writer w
    if p != NULL and type(<object>p) is SetObj:
        o = <SetObj>p
    else:
        o = <SetObj>ks.find(key, T_SET, True)
    ent = o.m.get(member)
    if ent is not None:
        removes = _ent_dots(ent)
    _sadd_on(ks, key, o, member, u, ks.node_id, removes)
    w = ks.bl.begin(OP_SADD, u)
    w.put_bytes(key)
    w.put_bytes(member)
    if removes is None:
        w.put_u8(0)
    else:
        _put_dots(w, removes)
    ks.bl.end()
    return 0


cdef int emit_srem(Keyspace ks, object key, SetObj o, object member) except -1:
    cdef uint64_t u = ks.tick()
    cdef list dots = _ent_dots(o.m.get(member))
    cdef Writer w
    _srem_on(ks, key, o, member, dots)
    _bump(&o.lu, &o.ln, u, ks.node_id)
    ks.touched(key)
    ks.settle(key, o)
    w = ks.bl.begin(OP_SREM, u)
    w.put_bytes(key)
    w.put_bytes(member)
    _put_dots(w, dots)
    ks.bl.end()
    if not obj_live(o):
        _emptied(ks, key)
    return 0


cdef int _clear(Keyspace ks, object key, CObj x) except -1:
    """DEL of a set: the observed removal of every member."""
    cdef SetObj o = <SetObj>x
    cdef uint64_t u = ks.tick()
    cdef dict old = o.m
    cdef Writer w = ks.bl.begin(OP_SCLEAR, u)
    w.put_bytes(key)
    w.put_varint(len(old))
    for m, ent in old.items():
        w.put_bytes(m)
        _put_dots(w, _ent_dots(ent))
    # every dot of every member is removed (_srem_on of each, all seen
    # here): the set is left empty. A big one is freed in slices when the
    # DEL is an UNLINK, FLUSHALL ASYNC or an eviction (Keyspace.lazy_free)
    o.m = {}
    o.pick = None
    o.pick_m = None
    if ks.lazy_free and len(old) > 64:
        ks.lazy.append(old)
    _bump(&o.lu, &o.ln, u, ks.node_id)
    ks._clear_done(key, o, u, ks.node_id)
    ks.bl.end()
    return 0


# --------------------------------------------------------- remote records ----

cdef int _check(uint8_t op, uint64_t u, Reader r) except -1:
    """A peer's record checked without applying it (framing and counts)."""
    cdef uint64_t n, _i
    r.bytes_()
    if op == OP_SADD or op == OP_SREM:
        r.bytes_()
        return _skip_n(r, 16, u)
    n = r.varint()
    if n > <uint64_t>(r.end - r.pos):
        raise ValueError("bad member count")
    for _i in range(n):
        r.bytes_()
        _skip_n(r, 16, u)
    return 0


cdef int _apply(Keyspace ks, uint8_t op, uint64_t origin, uint64_t u, Reader r) except -1:
    cdef object key = r.bytes_()
    cdef object member
    cdef list dots
    cdef SetObj o
    cdef uint64_t n, _i
    if op == OP_SADD:
        member = r.bytes_()
        dots = _read_dots(r)
        _sadd_on(ks, key, <SetObj>ks.find(key, T_SET, True), member, u, origin, dots)
    elif op == OP_SREM:
        member = r.bytes_()
        dots = _read_dots(r)
        o = <SetObj>ks.find(key, T_SET, False)
        _srem_on(ks, key, o, member, dots)
        if o is not None:
            _bump(&o.lu, &o.ln, u, origin)
            ks.touched(key)
            ks.settle(key, o)
    else:
        o = <SetObj>ks.find(key, T_SET, False)
        n = r.varint()
        for _i in range(n):
            member = r.bytes_()
            dots = _read_dots(r)
            _srem_on(ks, key, o, member, dots)
        if o is not None:
            _bump(&o.lu, &o.ln, u, origin)
            ks._clear_done(key, o, u, origin)
        else:
            # a clear is a DEL: it writes the key's TTL register even here
            _ttl_write(ks, key, 0, u, origin)
    return 0


# ------------------------------------------------------------- type table ----

cdef CObj _new():
    return new_set()


cdef bint _live(CObj o) noexcept:
    return len((<SetObj>o).m) > 0


cdef void _last_ts(CObj o, uint64_t* u, uint64_t* n) noexcept:
    u[0] = 0
    n[0] = 0
    for ent in (<SetObj>o).m.values():
        _ent_max(ent, u, n)


cdef object _value(CObj o):
    return set((<SetObj>o).m)


cdef list _describe(CObj o):
    return [b"members", [[m, [[(<Dot>x).node, (<Dot>x).uuid] for x in _ent_dots_raw(ent)]]
                         for m, ent in sorted((<SetObj>o).m.items())]]


# -------------------------------------------------------------- snapshots ----
#
# set = u64 lu, u64 ln, varint n, n x (bytes member, dots)

cdef int _encode(Writer w, CObj o) except -1:
    w.put_u64((<SetObj>o).lu)
    w.put_u64((<SetObj>o).ln)
    w.put_varint(len((<SetObj>o).m))
    for m, ent in (<SetObj>o).m.items():
        w.put_bytes(<bytes>m)
        _enc_dots(w, ent)
    return 0


cdef CObj _decode(Reader r, int version):
    cdef SetObj so = new_set()
    cdef uint64_t n, _i
    so.lu = r.u64()
    so.ln = r.u64()
    n = r.varint()
    _check_count(r, n, 2)
    for _i in range(n):
        m = r.bytes_()
        ent = _dec_dots(r)
        if ent is not None:
            so.m[m] = ent
    return so


cdef int _merge(CObj x, CObj y, Ctx ca, Ctx cb, uint64_t clock) except -1:
    cdef SetObj a = <SetObj>x, b = <SetObj>y
    cdef dict out = {}
    for m in set(a.m) | set(b.m):
        ent = _merge_ent(a.m.get(m), b.m.get(m), ca, cb)
        if ent is not None:
            out[m] = ent
    a.m = out
    _bump(&a.lu, &a.ln, b.lu, b.ln)
    return 0


cdef bint _filter(CObj x, Ctx other, uint64_t clock) except -1:
    cdef SetObj o = <SetObj>x
    cdef dict out = {}
    cdef bint hit = False
    for ent in o.m.values():
        if _any_seen(ent, other):
            hit = True
            break
    if not hit:
        return False
    for m, ent in o.m.items():
        ent = _filter_ent(ent, other)
        if ent is not None:
            out[m] = ent
    o.m = out
    return True


cdef TypeOps OPS
OPS.code = T_SET
OPS.name = b"set"
OPS.ops[0] = OP_SADD
OPS.ops[1] = OP_SREM
OPS.ops[2] = OP_SCLEAR
OPS.new = _new
OPS.live = _live
OPS.last_ts = _last_ts
OPS.apply = _apply
OPS.check = _check
OPS.clear = _clear
OPS.value = _value
OPS.describe = _describe
OPS.encode = _encode
OPS.decode = _decode
OPS.merge = _merge
OPS.filter = _filter
register_type_ops(&OPS)
