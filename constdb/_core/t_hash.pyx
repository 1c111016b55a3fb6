"""Hashes (docs/crdt.md section 3.3): fields as an OR-Set (add-wins), each field's value an
LWW register over its concurrent versions, and field counters (HINCRBY).

A field keeps the versions (Ver: a value at its dot) of the writes that made
it (HashObj.f: field -> Ver or [Ver]); HSET replaces the versions it saw,
HDEL removes them, the newest version shows (objects.best_ver). Every change
goes through `_hset_on` or `_hrem_on`, for a local write (emit_*) and a remote
record (_apply) alike.

Field counters: HINCRBY follows the string counter rule (docs/crdt.md section 3.1). A
field stays what it is for HSET/HGET (its versions per dot); a field that HINCRBY
touched also gets an `HCnt` in `HashObj.hc`: each origin's
counter (sum, last) and, per origin, what the newest base-writing effect on the
field observed of it (bsum, blast), that effect's ts in (ru, rn). The visible
value is the field's value plus the contributions not observed
(objects.hash_val): concurrent HINCRBYs on two nodes add up, and an HSET of the
field (OP_HSETC: it carries what it observed) resets what it saw.

HINCRBY of a present field ships only its delta (OP_HCNT). HINCRBY of an absent
field also adds the field as "0" at its dot, observing the counters left there
(create): two nodes doing that concurrently still add up. An HDEL removes the
field's dots (as before); its counters stay in `hc` (a later HSET or
HINCRBY-create observes them), so a hash with counter state but no field waits
in Keyspace.dead rather than going.
"""

from cpython.dict cimport PyDict_GetItem
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.object cimport PyObject
from libc.math cimport isfinite
from libc.stdint cimport int64_t, uint8_t, uint64_t
from libc.string cimport memcpy

from constdb._core.codec cimport Reader, Writer, put_u64_at, put_varint_at, varint_len
from constdb._core.dots cimport (
    _bump, _ent_add, _ent_dots, _ent_dots_raw, _ent_max, _ent_remove, _put_dots, _put_obs,
    _check_obs, _read_dots, _read_obs, _skip_n,
)
from constdb._core.ktable cimport kt_get
from constdb._core.keyspace cimport (
    Keyspace, TypeOps, _emptied, _ttl_write, obj_live, register_type_ops,
)
from constdb._core.merge cimport (
    Ctx, _any_seen, _check_count, _cnts_seen, _dec_cnts, _dec_vers, _enc_cnts, _enc_vers,
    _filter_cnts, _filter_ent, _merge_cnts, _merge_ent,
)
from constdb._core.objects cimport (
    T_HASH, CntEntry, CObj, Dot, HashObj, HCnt, Ver, check_float_bits, float_bits, float_key,
    float_total, hash_val, new_hash, new_ver, ts_gt,
)
from constdb._core.ops cimport OP_HCLEAR, OP_HCNT, OP_HFCNT, OP_HREM, OP_HSET, OP_HSETC


cdef extern from "Python.h":
    Py_ssize_t _refcnt "Py_REFCNT"(PyObject* o)


# ------------------------------------------------- the rules (local + remote) ----

cdef int _hset_on(Keyspace ks, object key, HashObj o, object field, object val, uint64_t u,
                  uint64_t n, list removes) except -1:
    cdef PyObject* p = PyDict_GetItem(o.f, field)
    cdef object ent = <object>p if p != NULL else None
    if removes:
        ent = _ent_remove(ent, removes)
        ks._note_unseen(removes)
    if not ks._in_cloud(n, u):
        ent = _ent_add(ent, new_ver(val, u, n))
    if ent is None:
        o.f.pop(field, None)
    else:
        if p == NULL and o.pick is not None:
            o.pick = None    # a new field: HRANDFIELD's list lacks it
        o.f[field] = ent
    _bump(&o.lu, &o.ln, u, n)
    ks.touched(key)
    ks.settle(key, o)
    return 0


cdef int _hrem_on(Keyspace ks, object key, HashObj o, object field, list dots) except -1:
    cdef object ent
    ks._note_unseen(dots)
    if o is None:
        return 0
    ent = o.f.get(field)
    if ent is not None:
        ent = _ent_remove(ent, dots)
        if ent is None:
            del o.f[field]
            if o.pick is not None and len(o.pick) > 2 * len(o.f) + 64:
                o.pick = None   # mostly removed fields: let them go
        else:
            o.f[field] = ent
    return 0


# ---------------------------------------------------------- local effects ----

cdef int emit_hset(Keyspace ks, object key, object field, object val) except -1:
    cdef PyObject* p = kt_get(&ks.d.t, key)
    if p != NULL and type(<object>p) is HashObj:
        return emit_hset_at(ks, key, <HashObj>p, True, field, val)
    return emit_hset_at(ks, key, <HashObj>ks.find(key, T_HASH, True), False, field, val)


cdef int emit_hset_at(Keyspace ks, object key, HashObj o, bint shown, object field,
                      object val) except -1:
    """emit_hset on key's hash o (as find() gives it); shown: o is d[key].
    Returns 1 if field was not in o.f."""
    cdef uint64_t u = ks.tick()
    cdef PyObject* p = PyDict_GetItem(o.f, field)
    cdef list removes = None
    cdef Py_ssize_t klen = PyBytes_GET_SIZE(key), flen = PyBytes_GET_SIZE(field)
    cdef Py_ssize_t vlen = PyBytes_GET_SIZE(val), nd = 0
    cdef uint64_t dn = 0, du = 0
    cdef bint same = False
    cdef char* w
    cdef Dot x
    if p != NULL:
        if type(<object>p) is Ver:
            # one version (the common case): its dot is what the write removes
            nd = 1
            dn = (<Ver>p).node
            du = (<Ver>p).uuid
        else:
            removes = _ent_dots(<object>p)
            nd = len(removes)
    if o.hc is not None and field in <dict>o.hc:
        # the field carries counters: the write resets what it observed
        _hset_counted(ks, key, o, field, val, u, _ent_dots(<object>p) if nd == 1 else removes)
        return p == NULL
    # _hset_on for a local write: the removes are every dot of the field
    # (all seen: they are in this state) and the new dot is fresh (in no
    # cloud), so the field's entry is just the new version
    if p == NULL:
        if o.pick is not None:
            o.pick = None    # a new field: HRANDFIELD's list lacks it
        o.f[field] = new_ver(val, u, ks.node_id)
    elif removes is None and _refcnt(p) == 1:
        # a Ver only the dict holds: it becomes the new version in place (no
        # allocation, no second dict store). Same value length: mem_est
        # (fields and values sampled by length) gives what it gave
        same = (type((<Ver>p).val) is bytes
                and PyBytes_GET_SIZE((<Ver>p).val) == vlen)
        (<Ver>p).val = val
        (<Ver>p).uuid = u
        (<Ver>p).node = ks.node_id
    else:
        o.f[field] = new_ver(val, u, ks.node_id)
    _bump(&o.lu, &o.ln, u, ks.node_id)
    ks.touched(key, not same)
    if not shown or ks.alts:
        ks.settle(key, o)
    # the record in one go: key, field, value, dots removed
    w = ks.bl.reserve(OP_HSET, u, varint_len(<uint64_t>klen) + klen + varint_len(<uint64_t>flen)
                      + flen + varint_len(<uint64_t>vlen) + vlen + varint_len(<uint64_t>nd)
                      + 16 * nd)
    w = put_varint_at(w, <uint64_t>klen)
    memcpy(w, PyBytes_AS_STRING(key), klen)
    w = put_varint_at(w + klen, <uint64_t>flen)
    memcpy(w, PyBytes_AS_STRING(field), flen)
    w = put_varint_at(w + flen, <uint64_t>vlen)
    memcpy(w, PyBytes_AS_STRING(val), vlen)
    w = put_varint_at(w + vlen, <uint64_t>nd)
    if removes is not None:
        for y in removes:
            x = <Dot>y
            w = put_u64_at(w, x.node)
            w = put_u64_at(w, x.uuid)
    elif nd:
        w = put_u64_at(w, dn)
        put_u64_at(w, du)
    ks.bl.end()
    return p == NULL


cdef int emit_hdel(Keyspace ks, object key, HashObj o, object field) except -1:
    cdef uint64_t u = ks.tick()
    cdef list dots = _ent_dots(o.f.get(field))
    cdef Writer w
    _hrem_on(ks, key, o, field, dots)
    _bump(&o.lu, &o.ln, u, ks.node_id)
    ks.touched(key)
    ks.settle(key, o)
    w = ks.bl.begin(OP_HREM, u)
    w.put_bytes(key)
    w.put_bytes(field)
    _put_dots(w, dots)
    ks.bl.end()
    if not obj_live(o):
        _emptied(ks, key)
    return 0


cdef int _clear(Keyspace ks, object key, CObj x) except -1:
    """DEL of a hash: the observed removal of every field."""
    cdef HashObj o = <HashObj>x
    cdef uint64_t u = ks.tick()
    cdef list items, dots
    cdef dict old = o.f
    cdef Writer w = ks.bl.begin(OP_HCLEAR, u)
    w.put_bytes(key)
    w.put_varint(len(old))
    if ks.lazy_free and len(old) > 64:
        # every dot of every field is removed (_hrem_on of each, all seen
        # here): the fields are left empty, and a big hash is freed in
        # slices (UNLINK, FLUSHALL ASYNC, an eviction: Keyspace.lazy_free)
        for f, ent in old.items():
            w.put_bytes(f)
            _put_dots(w, _ent_dots(ent))
        o.f = {}
        o.pick = None
        o.pick_f = None
        ks.lazy.append(old)
    else:
        items = [(f, _ent_dots(ent)) for f, ent in old.items()]
        for f, dots in items:
            w.put_bytes(f)
            _put_dots(w, dots)
            _hrem_on(ks, key, o, f, dots)
    _bump(&o.lu, &o.ln, u, ks.node_id)
    ks._clear_done(key, o, u, ks.node_id)
    ks.bl.end()
    return 0


# ---------------------------------------------------------- field counters ----

cdef HCnt _hc(HashObj o, object field):
    cdef PyObject* p
    cdef HCnt h
    if o.hc is None:
        o.hc = {}
    p = PyDict_GetItem(<dict>o.hc, field)
    if p != NULL:
        return <HCnt>p
    h = HCnt.__new__(HCnt)
    h.cnt = {}
    h.ru = 0
    h.rn = 0
    o.hc[field] = h
    return h


cdef CntEntry _entry(HCnt h, uint64_t node):
    cdef PyObject* p = PyDict_GetItem(h.cnt, node)
    cdef CntEntry e
    if p != NULL:
        return <CntEntry>p
    e = CntEntry.__new__(CntEntry)
    e.sum = 0
    e.last = 0
    e.bsum = 0
    e.blast = 0
    h.cnt[node] = e
    return e


cdef list _observed(HashObj o, object field):
    """(node, sum, last) of every counter of the field: what a write observes."""
    cdef list out = []
    cdef CntEntry e
    cdef PyObject* p
    if o.hc is None:
        return out
    p = PyDict_GetItem(<dict>o.hc, field)
    if p == NULL:
        return out
    for k, v in (<HCnt>p).cnt.items():
        e = <CntEntry>v
        out.append((k, e.sum, e.last))
    return out


cdef int _base_on(HashObj o, object field, list obs, uint64_t u, uint64_t n) except -1:
    """A base-writing effect: the newest one (by ts) says what is observed."""
    cdef HCnt h = _hc(o, field)
    cdef CntEntry e
    if not ts_gt(u, n, h.ru, h.rn):
        return 0
    h.ru = u
    h.rn = n
    for v in h.cnt.values():
        e = <CntEntry>v
        e.bsum = 0
        e.blast = 0
    for item in obs:
        e = _entry(h, <uint64_t>item[0])
        e.bsum = <int64_t>item[1]
        e.blast = <uint64_t>item[2]
    return 0


cdef int _hcnt_on(Keyspace ks, object key, HashObj o, object field, int64_t delta, bint create,
                  list obs, uint64_t u, uint64_t origin) except -1:
    cdef CntEntry e
    if create:
        _hset_on(ks, key, o, field, b"0", u, origin, None)
        _base_on(o, field, obs, u, origin)
    e = _entry(_hc(o, field), origin)
    # two's-complement wrap on purpose: sums are int64 like Redis's
    e.sum = <int64_t>(<uint64_t>e.sum + <uint64_t>delta)
    e.last = u
    _bump(&o.lu, &o.ln, u, origin)
    ks.touched(key)
    ks.settle(key, o)
    return 0


cdef int _hfcnt_on(Keyspace ks, object key, HashObj o, object field, int64_t bits, uint64_t u,
                   uint64_t origin) except -1:
    """Origin's float entry of the field (docs/crdt.md section 3.7) takes its new total."""
    cdef CntEntry e = _entry(_hc(o, field), float_key(origin))
    e.sum = bits
    e.last = u
    _bump(&o.lu, &o.ln, u, origin)
    ks.touched(key)
    ks.settle(key, o)
    return 0


cdef HashObj _hash(Keyspace ks, object key):
    cdef PyObject* p = kt_get(&ks.d.t, key)
    if p != NULL and type(<object>p) is HashObj:
        return <HashObj>p
    return <HashObj>ks.find(key, T_HASH, True)


cdef int emit_hincr(Keyspace ks, object key, object field, int64_t delta, bint create) except -1:
    """HINCRBY: delta to this node's counter of the field; create: the field
    is absent here, so it is also added as "0" (observing the counters left)."""
    cdef uint64_t u = ks.tick()
    cdef HashObj o = _hash(ks, key)
    cdef list obs = _observed(o, field) if create else None
    cdef Writer w
    _hcnt_on(ks, key, o, field, delta, create, obs, u, ks.node_id)
    w = ks.bl.begin(OP_HCNT, u)
    w.put_bytes(key)
    w.put_bytes(field)
    w.put_i64(delta)
    w.put_u8(1 if create else 0)
    if create:
        _put_obs(w, obs)
    ks.bl.end()
    return 0


cdef int emit_hfincr(Keyspace ks, object key, object field, object val,
                     long double by) except -1:
    """HINCRBYFLOAT (docs/crdt.md section 3.7): this node's float entry of the
    field grows by `by` (an HFCNT record), then the field takes val, the new
    value as Redis computes it from the visible one, observing every counter
    of the field, this node's new one included (an HSETC record)."""
    cdef uint64_t u = ks.tick()
    cdef HashObj o = _hash(ks, key)
    cdef PyObject* p
    cdef long double total = 0
    cdef int64_t bits
    cdef Writer w
    if o.hc is not None:
        p = PyDict_GetItem(<dict>o.hc, field)
        if p != NULL:
            p = PyDict_GetItem((<HCnt>p).cnt, float_key(ks.node_id))
            if p != NULL:
                total = float_total((<CntEntry>p).sum)
    if isfinite(<double>(total + by)):
        bits = float_bits(total + by)
        _hfcnt_on(ks, key, o, field, bits, u, ks.node_id)
        w = ks.bl.begin(OP_HFCNT, u)
        w.put_bytes(key)
        w.put_bytes(field)
        w.put_i64(bits)
        ks.bl.end()
    # (else a total past the doubles, which a peer refuses: the field's write
    # alone, as HSET of val, docs/crdt.md section 3.7)
    # (the field has counters now: this is an HSETC). The hash is found again,
    # as a peer applying the HSETC finds it: with no field yet it went to
    # Keyspace.dead, and coming back it takes the key's TTL register
    o = <HashObj>ks.find(key, T_HASH, True)
    emit_hset_at(ks, key, o, kt_get(&ks.d.t, key) == <PyObject*>o, field, val)
    return 0


cdef int _hset_counted(Keyspace ks, object key, HashObj o, object field, object val, uint64_t u,
                       list removes) except -1:
    """HSET of a field with counter state (emit_hset_at hands it here):
    it resets what it observed."""
    cdef list obs = _observed(o, field)
    cdef Writer w
    _hset_on(ks, key, o, field, val, u, ks.node_id, removes)
    _base_on(o, field, obs, u, ks.node_id)
    w = ks.bl.begin(OP_HSETC, u)
    w.put_bytes(key)
    w.put_bytes(field)
    w.put_bytes(val)
    if removes is None:
        w.put_varint(0)
    else:
        _put_dots(w, removes)
    _put_obs(w, obs)
    ks.bl.end()
    return 0


# --------------------------------------------------------- remote records ----

cdef int _check(uint8_t op, uint64_t u, Reader r) except -1:
    """A peer's record checked without applying it (framing and counts)."""
    cdef uint64_t n, _i
    cdef uint8_t create
    r.bytes_()
    if op == OP_HSET or op == OP_HSETC:
        r.bytes_()
        r.bytes_()
        _skip_n(r, 16, u)
        if op == OP_HSETC:
            _check_obs(r, u)
    elif op == OP_HREM:
        r.bytes_()
        _skip_n(r, 16, u)
    elif op == OP_HCLEAR:
        n = r.varint()
        if n > <uint64_t>(r.end - r.pos):
            raise ValueError("bad field count")
        for _i in range(n):
            r.bytes_()
            _skip_n(r, 16, u)
    elif op == OP_HFCNT:
        r.bytes_()
        check_float_bits(r.i64())
    else:
        r.bytes_()
        r.i64()
        create = r.u8()
        if create > 1:
            raise ValueError("bad hash counter create flag %d" % create)
        if create:
            _check_obs(r, u)
    return 0


cdef int _apply(Keyspace ks, uint8_t op, uint64_t origin, uint64_t u, Reader r) except -1:
    cdef object key = r.bytes_()
    cdef object field, val
    cdef list dots, obs
    cdef HashObj o
    cdef uint64_t n, _i
    cdef int64_t delta
    cdef bint create
    if op == OP_HSET:
        field = r.bytes_()
        val = r.bytes_()
        dots = _read_dots(r)
        _hset_on(ks, key, <HashObj>ks.find(key, T_HASH, True), field, val, u, origin, dots)
    elif op == OP_HREM:
        field = r.bytes_()
        dots = _read_dots(r)
        o = <HashObj>ks.find(key, T_HASH, False)
        _hrem_on(ks, key, o, field, dots)
        if o is not None:
            _bump(&o.lu, &o.ln, u, origin)
            ks.touched(key)
            ks.settle(key, o)
    elif op == OP_HCLEAR:
        o = <HashObj>ks.find(key, T_HASH, False)
        n = r.varint()
        for _i in range(n):
            field = r.bytes_()
            dots = _read_dots(r)
            _hrem_on(ks, key, o, field, dots)
        if o is not None:
            _bump(&o.lu, &o.ln, u, origin)
            ks._clear_done(key, o, u, origin)
        else:
            # a clear is a DEL: it writes the key's TTL register even here
            _ttl_write(ks, key, 0, u, origin)
    elif op == OP_HFCNT:
        field = r.bytes_()
        delta = r.i64()
        _hfcnt_on(ks, key, <HashObj>ks.find(key, T_HASH, True), field, delta, u, origin)
    elif op == OP_HCNT:
        field = r.bytes_()
        delta = r.i64()
        create = r.u8() != 0
        obs = _read_obs(r) if create else None
        _hcnt_on(ks, key, <HashObj>ks.find(key, T_HASH, True), field, delta, create, obs, u,
                 origin)
    else:
        field = r.bytes_()
        val = r.bytes_()
        dots = _read_dots(r)
        obs = _read_obs(r)
        o = <HashObj>ks.find(key, T_HASH, True)
        _hset_on(ks, key, o, field, val, u, origin, dots)
        _base_on(o, field, obs, u, origin)
    return 0


# ------------------------------------------------------------- type table ----

cdef CObj _new():
    return new_hash()


cdef bint _live(CObj o) noexcept:
    return len((<HashObj>o).f) > 0


cdef bint _keeps(CObj o) noexcept:
    # field counters outlive the fields (a later HSET or HINCRBY observes them)
    return (<HashObj>o).hc is not None and len(<dict>(<HashObj>o).hc) > 0


cdef void _last_ts(CObj o, uint64_t* u, uint64_t* n) noexcept:
    u[0] = 0
    n[0] = 0
    for ent in (<HashObj>o).f.values():
        _ent_max(ent, u, n)


cdef object _value(CObj o):
    return {f: hash_val(<HashObj>o, f, ent) for f, ent in (<HashObj>o).f.items()}


cdef list _describe(CObj x):
    cdef HashObj o = <HashObj>x
    cdef HCnt h
    cdef CntEntry e
    fields = []
    for f, ent in sorted(o.f.items()):
        fields.append([f, [[(<Ver>v).val, (<Ver>v).node, (<Ver>v).uuid]
                           for v in _ent_dots_raw(ent)]])
    out = [b"fields", fields]
    if not o.hc:
        return out
    hc = []
    for f in sorted(o.hc):
        h = <HCnt>o.hc[f]
        cnts = []
        for node in sorted(h.cnt):
            e = <CntEntry>h.cnt[node]
            cnts.append([node, e.sum, e.last, e.bsum, e.blast])
        hc.append([f, [h.ru, h.rn], cnts])
    return out + [b"field-counters", hc]


# -------------------------------------------------------------- snapshots ----
#
# hash = u64 lu, u64 ln, varint n, n x (bytes field, versions),
#        varint h, h x (bytes field, u64 ru, u64 rn, counters)   (HINCRBY state;
#        not in version 1)

cdef int _encode(Writer w, CObj o) except -1:
    cdef HashObj h = <HashObj>o
    cdef HCnt hc
    w.put_u64(h.lu)
    w.put_u64(h.ln)
    w.put_varint(len(h.f))
    for f, ent in h.f.items():
        w.put_bytes(<bytes>f)
        _enc_vers(w, ent)
    if not h.hc:
        w.put_varint(0)
    else:
        w.put_varint(len(<dict>h.hc))
        for f, v in (<dict>h.hc).items():
            hc = <HCnt>v
            w.put_bytes(<bytes>f)
            w.put_u64(hc.ru)
            w.put_u64(hc.rn)
            _enc_cnts(w, hc.cnt)
    return 0


cdef CObj _decode(Reader r, int version):
    cdef HashObj h = new_hash()
    cdef HCnt hc
    cdef uint64_t n, _i
    h.lu = r.u64()
    h.ln = r.u64()
    n = r.varint()
    _check_count(r, n, 2)
    for _i in range(n):
        f = r.bytes_()
        ent = _dec_vers(r)
        if ent is not None:
            h.f[f] = ent
    if version >= 2:
        n = r.varint()
        _check_count(r, n, 18)
        for _i in range(n):
            f = r.bytes_()
            hc = HCnt.__new__(HCnt)
            hc.ru = r.u64()
            hc.rn = r.u64()
            hc.cnt = _dec_cnts(r) or {}
            if h.hc is None:
                h.hc = {}
            h.hc[f] = hc
    return h


cdef HCnt _merge_hcnt(HCnt x, HCnt y, Ctx ca, Ctx cb):
    cdef bint y_wins = ts_gt(y.ru, y.rn, x.ru, x.rn)
    x.cnt = _merge_cnts(x.cnt, y.cnt, y.cnt if y_wins else x.cnt, ca, cb)
    if y_wins:
        x.ru = y.ru
        x.rn = y.rn
    if not x.cnt and x.ru == 0 and x.rn == 0:
        return None
    return x


cdef HCnt _filter_hcnt(HCnt h, Ctx other):
    cdef bint reg = (h.ru != 0 or h.rn != 0) and other.applied(h.rn, h.ru)
    if reg:
        h.ru = 0
        h.rn = 0
    if reg or _cnts_seen(h.cnt, other):
        h.cnt = _filter_cnts(h.cnt, other, reg)
    if not h.cnt and h.ru == 0 and h.rn == 0:
        return None
    return h


cdef int _merge_hash(HashObj a, HashObj b, Ctx ca, Ctx cb) except -1:
    cdef dict out = {}
    cdef HCnt h
    for f in set(a.f) | set(b.f):
        ent = _merge_ent(a.f.get(f), b.f.get(f), ca, cb)
        if ent is not None:
            out[f] = ent
    a.f = out
    if a.hc or b.hc:
        out = {}
        fields = set(a.hc) if a.hc else set()
        if b.hc:
            fields.update(b.hc)
        for f in fields:
            x = (<dict>a.hc).get(f) if a.hc else None
            y = (<dict>b.hc).get(f) if b.hc else None
            if x is not None and y is not None:
                h = _merge_hcnt(<HCnt>x, <HCnt>y, ca, cb)
            elif x is not None:
                h = _filter_hcnt(<HCnt>x, cb)
            else:
                h = _filter_hcnt(<HCnt>y, ca)
            if h is not None:
                out[f] = h
        a.hc = out if out else None
    _bump(&a.lu, &a.ln, b.lu, b.ln)
    return 0


cdef bint _filter_hash(HashObj o, Ctx other) except -1:
    cdef dict out
    cdef bint hit = False
    cdef HCnt h
    for ent in o.f.values():
        if _any_seen(ent, other):
            hit = True
            break
    if not hit and o.hc:
        for v in (<dict>o.hc).values():
            h = <HCnt>v
            if ((h.ru or h.rn) and other.applied(h.rn, h.ru)) or _cnts_seen(h.cnt, other):
                hit = True
                break
    if not hit:
        return False
    out = {}
    for f, ent in o.f.items():
        ent = _filter_ent(ent, other)
        if ent is not None:
            out[f] = ent
    o.f = out
    if o.hc:
        out = {}
        for f, v in (<dict>o.hc).items():
            h = _filter_hcnt(<HCnt>v, other)
            if h is not None:
                out[f] = h
        o.hc = out if out else None
    return True


cdef int _merge(CObj a, CObj b, Ctx ca, Ctx cb, uint64_t clock) except -1:
    return _merge_hash(<HashObj>a, <HashObj>b, ca, cb)


cdef bint _filter(CObj o, Ctx other, uint64_t clock) except -1:
    return _filter_hash(<HashObj>o, other)


cdef TypeOps OPS
OPS.code = T_HASH
OPS.name = b"hash"
OPS.ops[0] = OP_HSET
OPS.ops[1] = OP_HREM
OPS.ops[2] = OP_HCLEAR
OPS.ops[3] = OP_HCNT
OPS.ops[4] = OP_HSETC
OPS.ops[5] = OP_HFCNT
OPS.new = _new
OPS.live = _live
OPS.keeps = _keeps
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
