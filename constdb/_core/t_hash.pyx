"""Hash field counters: HINCRBY follows the string counter rule (CRDT.md 3.1).

A field stays what it is for HSET/HGET (its versions per dot, keyspace.pyx);
a field that HINCRBY touched also gets an `HCnt` in `HashObj.hc`: each origin's
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
from cpython.object cimport PyObject
from libc.stdint cimport int64_t, uint8_t, uint64_t

from constdb._core.codec cimport Reader, Writer
from constdb._core.keyspace cimport Keyspace
from constdb._core.objects cimport T_HASH, CntEntry, Dot, HashObj, HCnt, ts_gt

from constdb._core import keyspace as _keyspace


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


cdef inline void _bump(HashObj o, uint64_t u, uint64_t n) noexcept:
    if ts_gt(u, n, o.lu, o.ln):
        o.lu = u
        o.ln = n


cdef int _hcnt_on(Keyspace ks, object key, HashObj o, object field, int64_t delta, bint create,
                  list obs, uint64_t u, uint64_t origin) except -1:
    cdef CntEntry e
    if create:
        ks._hset_on(key, o, field, b"0", u, origin, None)
        _base_on(o, field, obs, u, origin)
    e = _entry(_hc(o, field), origin)
    # two's-complement wrap on purpose: sums are int64 like Redis's
    e.sum = <int64_t>(<uint64_t>e.sum + <uint64_t>delta)
    e.last = u
    _bump(o, u, origin)
    ks.touched(key)
    ks.settle(key, o)
    return 0


cdef int _put_obs(Writer w, list obs) except -1:
    w.put_varint(len(obs))
    for item in obs:
        w.put_u64(<uint64_t>item[0])
        w.put_i64(<int64_t>item[1])
        w.put_u64(<uint64_t>item[2])
    return 0


cdef list _read_obs(Reader r):
    cdef uint64_t n = r.varint(), i, node, last
    cdef int64_t s
    cdef list out = []
    if n > <uint64_t>(r.end - r.pos):
        raise ValueError("bad counter count")
    for i in range(n):
        node = r.u64()
        s = r.i64()
        last = r.u64()
        out.append((node, s, last))
    return out


cdef HashObj _hash(Keyspace ks, object key):
    cdef PyObject* p = PyDict_GetItem(ks.d, key)
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


def _hset_counted(Keyspace ks, object key, HashObj o, object field, object val, uint64_t u,
                  list removes):
    """HSET of a field with counter state (keyspace.emit_hset hands it here):
    it resets what it observed."""
    cdef list obs = _observed(o, field)
    cdef Writer w
    cdef Dot d
    ks._hset_on(key, o, field, val, u, ks.node_id, removes)
    _base_on(o, field, obs, u, ks.node_id)
    w = ks.bl.begin(OP_HSETC, u)
    w.put_bytes(key)
    w.put_bytes(field)
    w.put_bytes(val)
    if removes is None:
        w.put_varint(0)
    else:
        w.put_varint(len(removes))
        for x in removes:
            d = <Dot>x
            w.put_u64(d.node)
            w.put_u64(d.uuid)
    _put_obs(w, obs)
    ks.bl.end()


cdef list _read_dots(Reader r):
    cdef uint64_t n = r.varint(), i, node
    cdef list out = []
    cdef Dot d
    if n > <uint64_t>(r.end - r.pos):
        raise ValueError("bad dot count")
    for i in range(n):
        d = Dot.__new__(Dot)
        d.node = r.u64()
        d.uuid = r.u64()
        out.append(d)
    return out


def _apply_hcnt(Keyspace ks, uint64_t origin, uint64_t u, Reader r):
    cdef object key = r.bytes_()
    cdef object field = r.bytes_()
    cdef int64_t delta = r.i64()
    cdef bint create = r.u8() != 0
    cdef list obs = _read_obs(r) if create else None
    _hcnt_on(ks, key, <HashObj>ks.find(key, T_HASH, True), field, delta, create, obs, u, origin)


def _apply_hsetc(Keyspace ks, uint64_t origin, uint64_t u, Reader r):
    cdef object key = r.bytes_()
    cdef object field = r.bytes_()
    cdef object val = r.bytes_()
    cdef list removes = _read_dots(r)
    cdef list obs = _read_obs(r)
    cdef HashObj o = <HashObj>ks.find(key, T_HASH, True)
    ks._hset_on(key, o, field, val, u, origin, removes)
    _base_on(o, field, obs, u, origin)


def describe_hash(HashObj o):
    """DESC of a hash's field counters (nothing for a hash without)."""
    cdef HCnt h
    cdef CntEntry e
    if not o.hc:
        return []
    out = []
    for f in sorted(o.hc):
        h = <HCnt>o.hc[f]
        cnts = []
        for node in sorted(h.cnt):
            e = <CntEntry>h.cnt[node]
            cnts.append([node, e.sum, e.last, e.bsum, e.blast])
        out.append([f, [h.ru, h.rn], cnts])
    return [b"field-counters", out]


_keyspace.register_type(T_HASH, describe=describe_hash,
                        apply={OP_HCNT: _apply_hcnt, OP_HSETC: _apply_hsetc})
_keyspace.register_hset_hook(_hset_counted)
