"""Strings (docs/crdt.md section 3.1): an LWW register (val, (uuid, node)) plus an
observed-reset counter per origin.

The visible value is the register's value plus the counter contributions its
write did not observe: SET writes the register with what it observed of the
counters (OP_REG), INCRBY adds to this node's counter (OP_CNT), so concurrent
INCRs on two nodes add up and a SET resets what it saw. A string with no value
is a tombstone (Keyspace.tombs): its ts must outlive the value so that an
older concurrent SET still loses. Every change goes through `_reg_on` or
`_cnt_on`, for a local write (emit_*) and a remote record (_apply) alike.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.dict cimport PyDict_GetItem
from cpython.object cimport PyObject
from libc.math cimport isfinite
from libc.stdint cimport int64_t, uint8_t, uint64_t
from libc.string cimport memcpy

from constdb._core.codec cimport Reader, Writer, parse_i64, put_u64_at, put_varint_at, varint_len
from constdb._core.ktable cimport kt_get, kt_set
from constdb._core.keyspace cimport Keyspace, TypeOps, register_type_ops
from constdb._core.merge cimport (
    Ctx, _cnts_seen, _dec_cnts, _enc_cnts, _filter_cnts, _merge_cnts,
)
from constdb._core.objects cimport (
    T_STRING, CObj, CntEntry, StrObj, TTLReg, check_float_bits, cnt_is_float, cnt_origin,
    float_bits, float_key, float_total, new_str, new_str_for, str_cnt, str_nocnt, str_node,
    str_set_cnt, str_set_node, sv_get, sv_none, sv_plain, sv_raw, sv_set, ts_gt, with_floats,
)
from constdb._core.dots cimport _check_obs, _ttlreg
from constdb._core.ops cimport OP_BITS, OP_CNT, OP_FCNT, OP_REG
from constdb._core.bitval cimport (
    BitVal, bits_apply, bits_check, bits_decode, bits_describe, bits_encode, bits_filter,
    bits_gc, bits_merge, reg_bytes, reg_last_ts, reg_raw, reg_rebase,
)

from constdb._core.merge import SnapshotError


# ------------------------------------------------------- counter entries ----

cdef inline CntEntry _cnt_entry(uint64_t node):
    cdef CntEntry e = CntEntry.__new__(CntEntry)
    e.sum = 0
    e.last = 0
    e.bsum = 0
    e.blast = 0
    e.node = node
    return e


# A string's counter entries (origin -> CntEntry) are StrObj.cnt: None, the one
# origin's CntEntry (a key only one node counts on: an INCR touches no dict), or
# a dict {origin: CntEntry} of them all. Code that reads or replaces them as a
# whole (snapshots, merges) uses str_cnts and str_set_cnts; _cnt_vals walks them.

cdef dict str_cnts(StrObj o):
    """o's counter entries as one map {origin: CntEntry}, None if it has none.
    A new dict of o's own entry objects: changing an entry changes o; adding or
    removing entries takes str_set_cnts."""
    cdef object c = str_cnt(o)
    if c is None:
        return None
    if type(c) is CntEntry:
        return {(<CntEntry>c).node: c}
    return dict(<dict>c) if c else None


cdef int str_set_cnts(StrObj o, object cnts) except -1:
    """Replace o's counter entries by the map cnts ({origin: CntEntry}; None or
    empty: none). The entries are kept as they are (their node is set to their
    origin)."""
    cdef CntEntry e = None
    str_set_cnt(o, None)
    if not cnts:
        return 0
    for k, v in (<dict>cnts).items():
        e = <CntEntry>v
        e.node = <uint64_t>k
    if len(<dict>cnts) == 1:
        str_set_cnt(o, e)
    else:
        str_set_cnt(o, dict(<dict>cnts))
    return 0


cdef inline object _cnt_vals(StrObj o):
    """o's counter entries, to iterate over (a tuple or the dict's values)."""
    cdef object c = str_cnt(o)
    if c is None:
        return ()
    if type(c) is CntEntry:
        return (c,)
    return (<dict>c).values()


cdef CntEntry _str_cnt(StrObj o, uint64_t n, bint create):
    """o's counter entry of origin n; a new one if create (else None)."""
    cdef object c = str_cnt(o)
    cdef CntEntry e
    cdef PyObject* p
    if c is None:
        if not create:
            return None
        e = _cnt_entry(n)
        str_set_cnt(o, e)
        return e
    if type(c) is CntEntry:
        if (<CntEntry>c).node == n:
            return <CntEntry>c
        if not create:
            return None
        e = _cnt_entry(n)
        str_set_cnt(o, {(<CntEntry>c).node: c, n: e})
        return e
    p = PyDict_GetItem(<dict>c, n)
    if p != NULL:
        return <CntEntry>p
    if not create:
        return None
    e = _cnt_entry(n)
    (<dict>c)[n] = e
    return e


def str_counters(StrObj o):
    """Python view of str_cnts (tests, tools)."""
    return str_cnts(o)


def set_str_counters(StrObj o, cnts):
    """Python view of str_set_cnts (tests, tools)."""
    str_set_cnts(o, cnts)


# ------------------------------------------------------------- the value ----

cdef bint str_live(StrObj o) noexcept:
    cdef CntEntry e
    cdef object c
    if not sv_none(o):
        return True
    if str_nocnt(o):
        return False
    c = str_cnt(o)
    if type(c) is CntEntry:
        e = <CntEntry>c
        return e.last > e.blast
    for v in (<dict>c).values():
        e = <CntEntry>v
        if e.last > e.blast:
            return True
    return False


cdef inline uint64_t _cnt_delta(StrObj o, bint* unobserved, bint* floats) noexcept:
    """The sum of o's integer counter contributions its register did not
    observe (two's-complement wrap on purpose: sums are int64 like Redis's);
    sets unobserved if some origin counted since the register write, and
    floats if that was a float increment (section 3.7: _float_value)."""
    cdef CntEntry e
    cdef uint64_t delta = 0
    cdef object c = str_cnt(o)
    if type(c) is CntEntry:
        e = <CntEntry>c
        if e.last > e.blast:
            unobserved[0] = True
            if cnt_is_float(e.node):
                floats[0] = True
        if not cnt_is_float(e.node):
            delta = <uint64_t>e.sum - <uint64_t>e.bsum
    elif c is not None:
        for v in (<dict>c).values():
            e = <CntEntry>v
            if e.last > e.blast:
                unobserved[0] = True
                if cnt_is_float(e.node):
                    floats[0] = True
            if not cnt_is_float(e.node):
                delta += <uint64_t>e.sum - <uint64_t>e.bsum
    return delta


cdef object _float_value(StrObj o, object base, uint64_t delta):
    """The visible value when a float increment is unobserved (objects.with_floats):
    base is the register's visible bytes (bit overrides applied) or None."""
    cdef list fl = []
    cdef CntEntry e
    for v in _cnt_vals(o):
        e = <CntEntry>v
        if cnt_is_float(e.node) and e.last > e.blast:
            fl.append((e.node, e))
    return with_floats(base, delta, fl)


cdef object str_get(StrObj o):
    """Visible value of a string (docs/crdt.md section 3.1): bytes, an int (a counter that
    has no integer register under it), or None when absent."""
    cdef uint64_t delta
    cdef bint unobserved = False, floats = False
    cdef int64_t iv
    cdef object v = sv_get(o)
    if v is not None and type(v) is not bytes:
        # a value bit commands wrote (bitval): its visible bytes
        v = reg_bytes(v)
    if str_nocnt(o):
        return v
    delta = _cnt_delta(o, &unobserved, &floats)
    if floats:
        return _float_value(o, v, delta)
    if v is None:
        return <int64_t>delta if unobserved else None
    if delta == 0:
        return v
    if parse_i64(PyBytes_AS_STRING(v), PyBytes_GET_SIZE(v), &iv):
        return <int64_t>(<uint64_t>iv + delta)
    return v


cdef int str_int(StrObj o, int64_t* out) noexcept:
    """str_get as an integer, with no Python object: STR_ABSENT, STR_INT
    (out set) or STR_NOTINT (a value that is not an integer)."""
    cdef uint64_t delta
    cdef bint unobserved = False, floats = False
    cdef int64_t iv
    cdef Py_ssize_t n
    cdef const char* p = sv_raw(o, &n)
    cdef object fv
    if n < 0:
        p = reg_raw(sv_get(o), &n)
    if str_nocnt(o):
        if sv_none(o):
            return STR_ABSENT
    else:
        delta = _cnt_delta(o, &unobserved, &floats)
        if floats:
            fv = _float_value(o, reg_bytes(sv_get(o)), delta)
            if parse_i64(PyBytes_AS_STRING(fv), PyBytes_GET_SIZE(fv), out):
                return STR_INT
            return STR_NOTINT
        if sv_none(o):
            if not unobserved:
                return STR_ABSENT
            out[0] = <int64_t>delta
            return STR_INT
        if parse_i64(p, n, &iv):
            out[0] = <int64_t>(<uint64_t>iv + delta)
            return STR_INT
        return STR_NOTINT
    if parse_i64(p, n, out):
        return STR_INT
    return STR_NOTINT


# ------------------------------------------------- the rules (local + remote) ----

cdef int _reg_on(Keyspace ks, object key, StrObj o, object val, uint64_t u, uint64_t n,
                 int ttl_mode, int64_t at, list obs, bint shown) except -1:
    """shown: o is d[key] (the caller found it there), so the only other
    objects key can have are in alts: a key holds one string object at
    most (find() returns it), so a tombstone of key is never another."""
    cdef TTLReg t
    cdef CntEntry e
    if ts_gt(u, n, o.uuid, str_node(o)):
        if ttl_mode == TTL_KEEP:
            if o.ttl is None:
                # the TTL register was implicit (no expiry, register's ts):
                # make it explicit before the register moves on
                o.ttl = _ttlreg(0, o.uuid, str_node(o))
        elif o.ttl is None or ts_gt(u, n, (<TTLReg>o.ttl).uuid, (<TTLReg>o.ttl).node):
            if at == 0:
                o.ttl = None
            else:
                o.ttl = _ttlreg(at, u, n)
                kt_set(&ks.expires.t, key, None)
        if not sv_plain(o) and type(sv_get(o)) is BitVal:
            # bit overrides newer than the write stay on top of it (bitval)
            sv_set(o, reg_rebase(<BitVal>sv_get(o), val, u, n))
        else:
            sv_set(o, val)
        o.uuid = u
        str_set_node(o, n)
        if not str_nocnt(o) or obs:
            # the new register write observed the counters: obs are their
            # (sum, last) as the writer saw them, the base of each origin
            for v in _cnt_vals(o):
                e = <CntEntry>v
                e.bsum = 0
                e.blast = 0
            if obs:
                for item in obs:
                    e = _str_cnt(o, <uint64_t>item[0], True)
                    e.bsum = item[1]
                    e.blast = item[2]
    elif ttl_mode == TTL_WRITE and o.ttl is not None:
        t = <TTLReg>o.ttl
        if ts_gt(u, n, t.uuid, t.node):
            o.ttl = _ttlreg(at, u, n)
            if at != 0:
                kt_set(&ks.expires.t, key, None)
    if ttl_mode == TTL_WRITE:
        if not shown or ks.alts:
            ks._ttl_others(key, o, at, u, n)
    ks.touched(key)
    if not shown or ks.alts or not str_live(o):
        # (shown, live and no other object on key: o stays where it is)
        ks.settle(key, o)
    return 0


cdef int _cnt_on(Keyspace ks, object key, StrObj o, int64_t delta, uint64_t u, uint64_t n,
                 bint shown) except -1:
    """shown: o is d[key] (see _reg_on)."""
    cdef CntEntry e
    cdef object c = str_cnt(o)
    if type(c) is CntEntry and (<CntEntry>c).node == n:
        e = <CntEntry>c
    else:
        e = _str_cnt(o, n, True)
    e.sum = <int64_t>(<uint64_t>e.sum + <uint64_t>delta)
    e.last = u
    ks.touched(key)
    if not shown or ks.alts:
        # (shown and no other object: a counter just written is live and stays)
        ks.settle(key, o)
    return 0


cdef int _fcnt_on(Keyspace ks, object key, StrObj o, int64_t bits, uint64_t u, uint64_t n,
                  bint shown) except -1:
    """Origin n's float entry (section 3.7) takes its new running total."""
    cdef CntEntry e = _str_cnt(o, float_key(n), True)
    e.sum = bits
    e.last = u
    ks.touched(key)
    if not shown or ks.alts:
        ks.settle(key, o)
    return 0


# ---------------------------------------------------------- local effects ----

cdef int emit_reg(Keyspace ks, object key, object val, int ttl_mode, int64_t at) except -1:
    """SET-family write of a string register (val None = delete)."""
    cdef PyObject* p = kt_get(&ks.d.t, key)
    if p != NULL and type(<object>p) is StrObj:
        return emit_reg_at(ks, key, <StrObj>p, True, val, ttl_mode, at)
    return emit_reg_at(ks, key, _find_for(ks, key, val), False, val, ttl_mode, at)


cdef Py_ssize_t _first_len = 0     # the first value's length for _new (_find_for)


cdef StrObj _find_for(Keyspace ks, object key, object val):
    """key's string object (ks.find); one made now is sized for its first
    value val (objects.new_str_for: the value in the object's own block)."""
    global _first_len
    cdef StrObj o
    if type(val) is bytes:
        _first_len = PyBytes_GET_SIZE(val)
    o = <StrObj>ks.find(key, T_STRING, True)
    _first_len = 0
    return o


cdef int emit_reg_at(Keyspace ks, object key, StrObj o, bint shown, object val, int ttl_mode,
                     int64_t at) except -1:
    """emit_reg on key's string object o (as find() gives it); shown: o is
    d[key] (a caller that looked the key up passes what it found)."""
    cdef uint64_t u = ks.tick()
    cdef list obs = None
    cdef CntEntry e
    cdef char* w
    cdef Py_ssize_t klen = PyBytes_GET_SIZE(key), vlen = 0, plen, nobs = 0
    if not str_nocnt(o):
        obs = []
        for v in _cnt_vals(o):
            e = <CntEntry>v
            obs.append((e.node, e.sum, e.last))
        nobs = len(obs)
    _reg_on(ks, key, o, val, u, ks.node_id, ttl_mode, at, obs, shown)
    # the record, written in one go: key, flags, [value], [expire_at], observed counters
    plen = varint_len(<uint64_t>klen) + klen + 1 + varint_len(<uint64_t>nobs) + 24 * nobs
    if val is not None:
        vlen = PyBytes_GET_SIZE(val)
        plen += varint_len(<uint64_t>vlen) + vlen
    if ttl_mode == TTL_WRITE:
        plen += 8
    w = ks.bl.reserve(OP_REG, u, plen)
    w = put_varint_at(w, <uint64_t>klen)
    memcpy(w, PyBytes_AS_STRING(key), klen)
    w += klen
    w[0] = <char>((1 if val is not None else 0) | (2 if ttl_mode == TTL_WRITE else 0))
    w += 1
    if val is not None:
        w = put_varint_at(w, <uint64_t>vlen)
        memcpy(w, PyBytes_AS_STRING(val), vlen)
        w += vlen
    if ttl_mode == TTL_WRITE:
        memcpy(w, &at, 8)
        w += 8
    w = put_varint_at(w, <uint64_t>nobs)
    if nobs:
        for item in obs:
            w = put_u64_at(w, <uint64_t>item[0])
            w = put_u64_at(w, <uint64_t>(<int64_t>item[1]))
            w = put_u64_at(w, <uint64_t>item[2])
    ks.bl.end()
    return 0


cdef int emit_cnt(Keyspace ks, object key, StrObj o, int64_t delta) except -1:
    """INCRBY of key's counter; o: d[key] when the caller found a string
    there, else None."""
    cdef uint64_t u = ks.tick()
    cdef bint shown = o is not None
    if not shown:
        o = <StrObj>ks.find(key, T_STRING, True)
    _cnt_on(ks, key, o, delta, u, ks.node_id, shown)
    return ks.bl.put_key_u64(OP_CNT, u, key, <uint64_t>delta)


cdef int emit_fincr(Keyspace ks, object key, StrObj o, object val, long double by,
                    int ttl_mode) except -1:
    """INCRBYFLOAT (docs/crdt.md section 3.7): this node's float entry grows by
    `by` (an FCNT record), then the register takes val, the new value as Redis
    computes it from the visible one, observing every counter entry, this
    node's new one included (a REG record). A lone writer's value is val;
    increments made concurrently elsewhere are not observed and add to it.
    o: d[key] when the caller found a string there, else None."""
    cdef uint64_t u = ks.tick()
    cdef CntEntry e
    cdef long double total = 0
    cdef int64_t bits
    if o is None:
        o = <StrObj>ks.find(key, T_STRING, True)
    e = _str_cnt(o, float_key(ks.node_id), False)
    if e is not None:
        total = float_total(e.sum)
    if isfinite(<double>(total + by)):
        bits = float_bits(total + by)
        _fcnt_on(ks, key, o, bits, u, ks.node_id, False)
        ks.bl.put_key_u64(OP_FCNT, u, key, <uint64_t>bits)
    # (else a total past the doubles, which a peer refuses: the write alone,
    # as SET of val, docs/crdt.md section 3.7)
    return emit_reg_at(ks, key, o, kt_get(&ks.d.t, key) == <PyObject*>o, val, ttl_mode, 0)


# --------------------------------------------------------- remote records ----

cdef int _apply(Keyspace ks, uint8_t op, uint64_t origin, uint64_t u, Reader r) except -1:
    cdef object key = r.bytes_()
    cdef object val
    cdef uint8_t flags
    cdef int64_t at, delta
    cdef uint64_t n, _i
    cdef list obs
    if op == OP_REG:
        flags = r.u8()
        val = r.bytes_() if flags & 1 else None
        at = r.i64() if flags & 2 else 0
        n = r.varint()
        obs = None
        if n:
            obs = []
            for _i in range(n):
                obs.append((r.u64(), r.i64(), r.u64()))
        _reg_on(ks, key, _find_for(ks, key, val), val, u, origin,
                TTL_WRITE if flags & 2 else TTL_KEEP, at, obs, False)
    elif op == OP_BITS:
        bits_apply(ks, key, <StrObj>ks.find(key, T_STRING, True), origin, u, r)
    elif op == OP_FCNT:
        delta = r.i64()
        _fcnt_on(ks, key, <StrObj>ks.find(key, T_STRING, True), delta, u, origin, False)
    else:
        delta = r.i64()
        _cnt_on(ks, key, <StrObj>ks.find(key, T_STRING, True), delta, u, origin, False)
    return 0


cdef int _check(uint8_t op, uint64_t u, Reader r) except -1:
    """A peer's record checked without applying it."""
    cdef uint8_t flags
    r.bytes_()
    if op == OP_REG:
        flags = r.u8()
        if flags & ~3:
            raise ValueError("bad string write flags %d" % flags)
        if flags & 1:
            r.bytes_()
        if flags & 2:
            r.i64()
        _check_obs(r, u)
    elif op == OP_BITS:
        bits_check(r)
    elif op == OP_FCNT:
        check_float_bits(r.i64())
    else:
        r.i64()
    return 0


# ------------------------------------------------------------- type table ----

cdef CObj _new():
    global _first_len
    cdef Py_ssize_t n = _first_len
    _first_len = 0
    return new_str_for(n)


cdef bint _live(CObj o) noexcept:
    return str_live(<StrObj>o)


cdef void _last_ts(CObj x, uint64_t* u, uint64_t* n) noexcept:
    """The register's ts, or a counter entry's if newer (keyspace._last_ts)."""
    cdef StrObj o = <StrObj>x
    cdef CntEntry e
    u[0] = o.uuid
    n[0] = str_node(o)
    if not sv_plain(o):
        reg_last_ts(sv_get(o), u, n)
    if str_nocnt(o):
        return
    for v in _cnt_vals(o):
        e = <CntEntry>v
        if ts_gt(e.last, cnt_origin(e.node), u[0], n[0]):
            u[0] = e.last
            n[0] = cnt_origin(e.node)


cdef int _clear(Keyspace ks, object key, CObj o) except -1:
    return emit_reg(ks, key, None, TTL_WRITE, 0)


cdef object _value(CObj o):
    v = str_get(<StrObj>o)
    if isinstance(v, int):
        return str(v).encode()
    return v


cdef list _describe(CObj o):
    cdef StrObj so = <StrObj>o
    cdef CntEntry e
    # a register with bit overrides shows its visible bytes (None if the
    # register itself holds no value) and the overrides (bitval)
    v = sv_get(so)
    if type(v) is BitVal and (<BitVal>v).none:
        v = None
    out = [b"register", [reg_bytes(v), so.uuid, str_node(so)]]
    if type(sv_get(so)) is BitVal:
        out += bits_describe(<BitVal>sv_get(so))
    cnts = []
    all_cnts = str_cnts(so)
    if all_cnts is not None:
        for node, v in sorted(all_cnts.items()):
            e = <CntEntry>v
            cnts.append([node, e.sum, e.last, e.bsum, e.blast])
    out += [b"counters", cnts]
    return out


# -------------------------------------------------------------- snapshots ----
#
# string = u8 has_value (0 none, 1 a value, 2 with bit overrides) [bytes value |
# bitval.bits_encode], u64 uuid, u64 node, counters

cdef int _encode(Writer w, CObj o) except -1:
    cdef StrObj s = <StrObj>o
    cdef Py_ssize_t n
    # a plain value is written from where it is kept (no bytes made for it)
    cdef const char* p = sv_raw(s, &n)
    cdef object v = None
    if p == NULL:
        v = sv_get(s)
        if v is not None and type(v) is not BitVal:
            p = reg_raw(v, &n)
    if p != NULL:
        w.put_u8(1)
        w.put_varint(<uint64_t>n)
        w.put_raw(p, n)
    elif v is None:
        w.put_u8(0)
    else:
        w.put_u8(2)
        bits_encode(w, <BitVal>v)
    w.put_u64(s.uuid)
    w.put_u64(str_node(s))
    _enc_cnts(w, str_cnts(s))
    return 0


cdef CObj _decode(Reader r, int version):
    cdef StrObj s
    cdef uint8_t flag = r.u8()
    if flag > 2:
        raise SnapshotError("corrupt snapshot (bad value flag)")
    if flag == 2:
        s = new_str()
        sv_set(s, bits_decode(r))
    elif flag:
        v = r.bytes_()
        s = new_str_for(PyBytes_GET_SIZE(v))
        sv_set(s, v)
    else:
        s = new_str()
    s.uuid = r.u64()
    str_set_node(s, r.u64())
    str_set_cnts(s, _dec_cnts(r))
    return s


cdef int _merge_str(StrObj a, StrObj b, Ctx ca, Ctx cb) except -1:
    """LWW register (the base travels with it) and counter entries. A register
    write only one side holds (the other's string has none: a TTL-only
    tombstone, or counters alone) that the other side applied was collected
    there (GC): it goes, as a one-sided string's would."""
    cdef bint a_reg = a.uuid != 0 or str_node(a) != 0
    cdef bint b_reg = b.uuid != 0 or str_node(b) != 0
    cdef bint b_wins
    cdef dict xa = str_cnts(a), xb = str_cnts(b), cnt
    # bit overrides (bitval): both sides', over the winning register
    cdef dict a_ov = (<BitVal>sv_get(a)).ov if type(sv_get(a)) is BitVal else None
    cdef dict b_ov = (<BitVal>sv_get(b)).ov if type(sv_get(b)) is BitVal else None
    cdef object bval = sv_get(b), aval
    if a_reg and not b_reg and cb.applied(str_node(a), a.uuid):
        a_reg = False
        if a_ov:
            aval = bits_filter(<BitVal>sv_get(a), cb)
            a_ov = (<BitVal>aval).ov if type(aval) is BitVal else None
        sv_set(a, None)
        a.uuid = 0
        str_set_node(a, 0)
    if b_reg and not a_reg and ca.applied(str_node(b), b.uuid):
        b_reg = False
        if b_ov:
            bval = bits_filter(<BitVal>bval, ca)
            b_ov = (<BitVal>bval).ov if type(bval) is BitVal else None
    b_wins = b_reg and ts_gt(b.uuid, str_node(b), a.uuid, str_node(a))
    cnt = _merge_cnts(xa, xb, xb if b_wins else (xa if a_reg else None), ca, cb)
    if b_wins:
        sv_set(a, sv_get(b))
        a.uuid = b.uuid
        str_set_node(a, str_node(b))
    if a_ov or b_ov:
        sv_set(a, bits_merge(sv_get(a), a_ov, b_ov, a.uuid, str_node(a)))
    str_set_cnts(a, cnt)
    return 0


cdef bint _filter_str(StrObj o, Ctx other) except -1:
    """o is on one side only: drop what the other side saw and lost (it can
    only have dropped it at GC). Returns whether anything changed."""
    cdef bint reg = (o.uuid != 0 or str_node(o) != 0) and other.applied(str_node(o), o.uuid)
    cdef dict cnt = str_cnts(o)
    if not reg and not _cnts_seen(cnt, other):
        return False
    if reg:
        sv_set(o, bits_filter(<BitVal>sv_get(o), other) if type(sv_get(o)) is BitVal else None)
        o.uuid = 0
        str_set_node(o, 0)
    str_set_cnts(o, _filter_cnts(cnt, other, reg))
    return True


cdef int _merge(CObj a, CObj b, Ctx ca, Ctx cb, uint64_t clock) except -1:
    return _merge_str(<StrObj>a, <StrObj>b, ca, cb)


cdef bint _filter(CObj o, Ctx other, uint64_t clock) except -1:
    return _filter_str(<StrObj>o, other)


cdef Py_ssize_t _gc(CObj o, uint64_t stable, bint* empty) except -1:
    """Bit overrides that are causally stable are folded into the register
    (bitval.bits_gc); nothing else of a string is collected here."""
    if not sv_plain(<StrObj>o) and type(sv_get(<StrObj>o)) is BitVal:
        bits_gc(<StrObj>o, stable)
    return 0


cdef TypeOps OPS
OPS.code = T_STRING
OPS.name = b"string"
OPS.ops[0] = OP_REG
OPS.ops[1] = OP_CNT
OPS.ops[2] = OP_BITS
OPS.ops[3] = OP_FCNT
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
OPS.gc = _gc
register_type_ops(&OPS)
