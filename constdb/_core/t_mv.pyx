"""Multi-value registers (docs/crdt.md section 3.4; MVSET, MVGET): every concurrent write
is kept.

An MV register is the list of versions (MVObj.vers, Ver: a value at its dot)
no write has replaced yet: MVSET adds a version and removes the versions it
saw, so writes made concurrently on different nodes are all kept until a
write that saw them all. Every change goes through `_mv_on`, for a local
write (emit_mv) and a remote record (_apply) alike.
"""

from libc.stdint cimport uint8_t, uint64_t

from constdb._core.codec cimport Reader, Writer
from constdb._core.dots cimport _bump, _dot_in, _ent_max, _put_dots, _read_dots, _skip_n
from constdb._core.keyspace cimport Keyspace, TypeOps, _ttl_write, register_type_ops
from constdb._core.merge cimport (
    Ctx, _any_seen, _as_list, _dec_vers, _enc_vers, _filter_ent, _merge_ent,
)
from constdb._core.objects cimport T_MV, CObj, Dot, MVObj, Ver, new_dot, new_mv, new_ver
from constdb._core.ops cimport OP_MV, OP_MVCLEAR


# ------------------------------------------------- the rules (local + remote) ----

cdef int _mv_on(Keyspace ks, object key, MVObj o, object val, uint64_t u, uint64_t n,
                list removes) except -1:
    cdef Ver v
    if removes:
        o.vers = [x for x in o.vers if not _dot_in(<Dot>x, removes)]
        ks._note_unseen(removes)
    if val is not None and not ks._in_cloud(n, u):
        v = new_ver(val, u, n)
        o.vers.append(v)
    _bump(&o.lu, &o.ln, u, n)
    ks.touched(key)
    ks.settle(key, o)
    return 0


# ---------------------------------------------------------- local effects ----

cdef int emit_mv(Keyspace ks, object key, object val, bint replace) except -1:
    """MVSET: a new version replacing every version seen here (replace=False
    keeps them: RENAME copying a register that holds concurrent versions)."""
    cdef uint64_t u = ks.tick()
    cdef MVObj o = <MVObj>ks.find(key, T_MV, True)
    cdef list removes = [new_dot((<Ver>x).node, (<Ver>x).uuid) for x in o.vers] if replace else []
    cdef Writer w
    _mv_on(ks, key, o, val, u, ks.node_id, removes)
    w = ks.bl.begin(OP_MV, u)
    w.put_bytes(key)
    w.put_bytes(val)
    _put_dots(w, removes)
    ks.bl.end()
    return 0


cdef int _clear(Keyspace ks, object key, CObj x) except -1:
    """DEL of an MV register: the observed removal of every version."""
    cdef MVObj o = <MVObj>x
    cdef uint64_t u = ks.tick()
    cdef list dots = [new_dot((<Ver>v).node, (<Ver>v).uuid) for v in o.vers]
    cdef Writer w = ks.bl.begin(OP_MVCLEAR, u)
    w.put_bytes(key)
    _put_dots(w, dots)
    _mv_on(ks, key, o, None, u, ks.node_id, dots)
    _bump(&o.lu, &o.ln, u, ks.node_id)
    ks._clear_done(key, o, u, ks.node_id)
    ks.bl.end()
    return 0


# --------------------------------------------------------- remote records ----

cdef int _check(uint8_t op, uint64_t u, Reader r) except -1:
    """A peer's record checked without applying it (framing and counts)."""
    r.bytes_()
    if op == OP_MV:
        r.bytes_()
    return _skip_n(r, 16, u)


cdef int _apply(Keyspace ks, uint8_t op, uint64_t origin, uint64_t u, Reader r) except -1:
    cdef object key = r.bytes_()
    cdef object val
    cdef list dots
    cdef MVObj o
    if op == OP_MV:
        val = r.bytes_()
        dots = _read_dots(r)
        _mv_on(ks, key, <MVObj>ks.find(key, T_MV, True), val, u, origin, dots)
    else:
        dots = _read_dots(r)
        o = <MVObj>ks.find(key, T_MV, False)
        if o is None:
            ks._note_unseen(dots)
            _ttl_write(ks, key, 0, u, origin)
        else:
            _mv_on(ks, key, o, None, u, origin, dots)
            _bump(&o.lu, &o.ln, u, origin)
            ks._clear_done(key, o, u, origin)
    return 0


# ------------------------------------------------------------- type table ----

cdef CObj _new():
    return new_mv()


cdef bint _live(CObj o) noexcept:
    return len((<MVObj>o).vers) > 0


cdef void _last_ts(CObj o, uint64_t* u, uint64_t* n) noexcept:
    u[0] = 0
    n[0] = 0
    for x in (<MVObj>o).vers:
        _ent_max(x, u, n)


cdef object _value(CObj o):
    return sorted(((<Ver>v).node, (<Ver>v).val) for v in (<MVObj>o).vers)


cdef list _describe(CObj o):
    return [b"versions", [[(<Ver>x).val, (<Ver>x).node, (<Ver>x).uuid] for x in (<MVObj>o).vers]]


# -------------------------------------------------------------- snapshots ----
#
# mvreg = u64 lu, u64 ln, versions

cdef int _encode(Writer w, CObj o) except -1:
    w.put_u64((<MVObj>o).lu)
    w.put_u64((<MVObj>o).ln)
    _enc_vers(w, (<MVObj>o).vers)
    return 0


cdef CObj _decode(Reader r, int version):
    cdef MVObj mv = new_mv()
    mv.lu = r.u64()
    mv.ln = r.u64()
    mv.vers = _as_list(_dec_vers(r))
    return mv


cdef int _merge(CObj x, CObj y, Ctx ca, Ctx cb, uint64_t clock) except -1:
    cdef MVObj a = <MVObj>x, b = <MVObj>y
    a.vers = _as_list(_merge_ent(a.vers, b.vers, ca, cb))
    _bump(&a.lu, &a.ln, b.lu, b.ln)
    return 0


cdef bint _filter(CObj x, Ctx other, uint64_t clock) except -1:
    cdef MVObj o = <MVObj>x
    if not _any_seen(o.vers, other):
        return False
    o.vers = _as_list(_filter_ent(o.vers, other))
    return True


cdef TypeOps OPS
OPS.code = T_MV
OPS.name = b"mvreg"
OPS.ops[0] = OP_MV
OPS.ops[1] = OP_MVCLEAR
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
