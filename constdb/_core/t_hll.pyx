"""HyperLogLog (docs/crdt.md section 3.1.1): Redis's HLL string format and its rules
across nodes.

The value is a string in Redis's format ("HYLL", encoding byte, three unused
bytes, the cached cardinality, then the sparse or dense registers), computed
exactly as Redis 7.0 computes it: MurmurHash64A with Redis's seed, 16384
6-bit registers, the sparse run-length opcodes with their in-place split and
merge, promotion to dense past `hll-sparse-max-bytes` or at a register above
32, Ertl's estimator, and the cached cardinality that PFADD invalidates and
PFCOUNT fills.

State (HllObj): a register (base, ts (ru, rn)) holding the bytes a whole
write put there (a string turned into an HLL by its first PFADD; None for a
DEL), and the updates made since (HEnt, sorted by ts): PFADD's and PFMERGE's
(register index, value) pairs, PFCOUNT's cache fills. The visible value
(`cur`) is the register with the updates replayed in ts order. An update
older than the register is dropped (a whole write that is newer replaces
it); an update that arrives out of order makes `cur` be replayed from the
register. Updates whose uuid is causally stable (docs/crdt.md section 6) are
folded into the register by GC: every update still to come is newer. On a
node alone a local update is stable as it is made: with nothing pending it
is folded at once (hll_folds), keeping no register copy and no HEnt.

Every change goes through `_ent_on` / `_reg_on`, for local commands
(cmd_hll.pyx) and remote records (_apply) alike.
"""

from cpython.bytearray cimport (
    PyByteArray_AS_STRING, PyByteArray_FromStringAndSize, PyByteArray_GET_SIZE,
    PyByteArray_Resize,
)
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.object cimport PyObject
from libc.stdint cimport uint8_t, uint64_t
from libc.string cimport memcpy, memset

from constdb._core.codec cimport Reader, Writer, put_varint_at, varint_len
from constdb._core.dots cimport _bump
from constdb._core.ktable cimport kt_get
from constdb._core.keyspace cimport Keyspace, TypeOps, register_type_ops
from constdb._core.merge cimport Ctx
from constdb._core.objects cimport CObj, register_class, ts_gt
from constdb._core.ops cimport OP_HLLADD, OP_HLLCACHE, OP_HLLREG
from constdb._core.t_string cimport TTL_KEEP, emit_reg

from constdb._core.merge import SnapshotError


# hll-sparse-max-bytes (config; CONFIG SET changes it for later updates)
cdef long SPARSE_MAX = 3000


def set_sparse_max_bytes(long v):
    global SPARSE_MAX
    SPARSE_MAX = v


def murmur64a(bytes data, uint64_t seed=0xadc83b19):
    """Python view of the hash (tests)."""
    return ch_murmur64a(<const unsigned char*>PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data),
                        seed)


# ------------------------------------------------------------ the format ----

cdef bint hll_valid(const unsigned char* p, Py_ssize_t n) noexcept:
    """Redis's isHLLObjectOrReply test of a string's bytes."""
    if n < HLL_HDR:
        return False
    if p[0] != b'H' or p[1] != b'Y' or p[2] != b'L' or p[3] != b'L':
        return False
    if p[4] > 1:
        return False
    if p[4] == 0 and n != HLL_DENSE_SIZE:
        return False
    return True


cdef bytearray _new_sparse():
    """An empty HLL as Redis creates it: sparse, one XZERO of 16384."""
    cdef bytearray b = PyByteArray_FromStringAndSize(NULL, HLL_HDR + 2)
    cdef char* p = PyByteArray_AS_STRING(b)
    memset(p, 0, HLL_HDR + 2)
    memcpy(p, b"HYLL", 4)
    p[4] = 1
    p[HLL_HDR] = <char>0x7f
    p[HLL_HDR + 1] = <char>0xff
    return b


cdef bytearray _to_dense(bytearray s):
    """The dense form of the sparse s, or None if s is invalid."""
    cdef bytearray d = PyByteArray_FromStringAndSize(NULL, HLL_DENSE_SIZE)
    memset(PyByteArray_AS_STRING(d), 0, HLL_DENSE_SIZE)
    if ch_to_dense(<const uint8_t*>PyByteArray_AS_STRING(s), PyByteArray_GET_SIZE(s),
                   <uint8_t*>PyByteArray_AS_STRING(d)) != 0:
        return None
    return d


cdef bytearray _set_pairs(bytearray cur, const uint8_t* pairs, Py_ssize_t n, int* changed):
    """Set each (index, value) pair of pairs into cur in order (Redis's
    hllSparseSet / hllDenseSet); returns cur or its dense replacement.
    changed: 1 if a register grew; -1 if cur proved invalid (the pairs
    after that are not applied, as Redis's PFADD stops there)."""
    cdef Py_ssize_t i
    cdef long idx, length
    cdef int cnt, r
    cdef uint8_t* s
    cdef bytearray d
    for i in range(n):
        idx = pairs[3 * i] | (pairs[3 * i + 1] << 8)
        cnt = pairs[3 * i + 2]
        s = <uint8_t*>PyByteArray_AS_STRING(cur)
        if s[4] == 0:
            if cnt > <int>ch_dget(s + HLL_HDR, idx):
                ch_dset(s + HLL_HDR, idx, cnt)
                changed[0] = 1
            continue
        length = PyByteArray_GET_SIZE(cur)
        PyByteArray_Resize(cur, length + 3)
        s = <uint8_t*>PyByteArray_AS_STRING(cur)
        memset(s + length, 0, 3)
        r = ch_sset(s, &length, SPARSE_MAX, idx, cnt)
        PyByteArray_Resize(cur, length)
        if r == 1:
            changed[0] = 1
        elif r == 2:
            d = _to_dense(cur)
            if d is None:
                changed[0] = -1
                return cur
            cur = d
            ch_dset(<uint8_t*>PyByteArray_AS_STRING(cur) + HLL_HDR, idx, cnt)
            changed[0] = 1
        elif r == -1:
            changed[0] = -1
            return cur
    return cur


cdef int hll_count(const uint8_t* s, Py_ssize_t n, uint64_t* out) noexcept:
    """The estimate of an HLL string's registers; -1 if it is an invalid sparse one."""
    cdef int h[64]
    memset(h, 0, sizeof(h))
    if ch_histo(s, n, h) != 0:
        return -1
    out[0] = ch_estimate(h)
    return 0


cdef bint cache_valid(const uint8_t* s) noexcept:
    return (s[15] & 0x80) == 0


cdef uint64_t cache_get(const uint8_t* s) noexcept:
    cdef uint64_t v = 0
    cdef int i
    for i in range(7, -1, -1):
        v = (v << 8) | s[8 + i]
    return v


cdef void cache_put(uint8_t* s, uint64_t v) noexcept:
    cdef int i
    for i in range(8):
        s[8 + i] = <uint8_t>(v >> (8 * i))


# ------------------------------------------------------------ the updates ----

cdef HEnt _ent(uint64_t u, uint64_t n, uint8_t kind, bytes pairs):
    cdef HEnt e = HEnt.__new__(HEnt)
    e.u = u
    e.n = n
    e.kind = kind
    e.pairs = pairs
    return e


cdef bytearray _replay_raw(bytearray cur, uint8_t kind, const uint8_t* pairs, Py_ssize_t n):
    """cur with an update applied (cur None: no HLL yet): kind, and n pairs."""
    cdef int changed = 0
    cdef uint64_t card
    cdef uint8_t* s
    cdef bytearray d
    if kind == HA_CACHE:
        if cur is not None:
            s = <uint8_t*>PyByteArray_AS_STRING(cur)
            if not cache_valid(s) and hll_count(s, PyByteArray_GET_SIZE(cur), &card) == 0:
                cache_put(s, card)
        return cur
    if cur is None:
        cur = _new_sparse()
    if kind & HA_DENSE and PyByteArray_AS_STRING(cur)[4] == 1:
        d = _to_dense(cur)
        if d is None:
            return cur
        cur = d
    cur = _set_pairs(cur, pairs, n, &changed)
    if changed == 1 or kind & HA_INVAL:
        PyByteArray_AS_STRING(cur)[15] |= <char>0x80
    return cur


cdef inline bytearray _replay(bytearray cur, HEnt e):
    """cur with the update e applied."""
    return _replay_raw(cur, e.kind, <const uint8_t*>PyBytes_AS_STRING(e.pairs),
                       PyBytes_GET_SIZE(e.pairs) // 3)


cdef bytearray _rebuild(object base, list pend):
    cdef bytearray cur = bytearray(base) if base is not None else None
    if pend is not None:
        for e in pend:
            cur = _replay(cur, <HEnt>e)
    return cur


cdef object hll_bytes(HllObj o):
    """The visible value (bytes), None when absent."""
    return bytes(o.cur) if o.cur is not None else None


cdef object _base_of(HllObj o):
    """The register's value: kept apart only while updates are pending."""
    if o.pend is not None:
        return o.base
    return bytes(o.cur) if o.cur is not None else None


cdef int _ent_on(Keyspace ks, object key, HllObj o, HEnt e, bint local) except -1:
    """An update at ts (e.u, e.n). local: cur already holds it (the command
    applied it in place), only the bookkeeping is left."""
    cdef Py_ssize_t i
    if ts_gt(o.ru, o.rn, e.u, e.n):
        # a newer whole write replaced what it would update (settle: an
        # object find() took from Keyspace.dead goes back there)
        return ks.settle(key, o)
    if o.pend is None:
        if not local:
            o.base = bytes(o.cur) if o.cur is not None else None
            o.pend = [e]
            o.cur = _replay(o.cur, e)
        else:
            o.pend = [e]
    else:
        # (lu, ln) is at least the newest pending update's ts: comparing with
        # it spares reading that update (a cache miss on a cold key)
        if ts_gt(e.u, e.n, o.lu, o.ln):
            o.pend.append(e)
            if not local:
                o.cur = _replay(o.cur, e)
        else:
            # out of ts order (or a duplicate): replay from the register
            i = len(o.pend)
            while i > 0 and ts_gt((<HEnt>o.pend[i - 1]).u, (<HEnt>o.pend[i - 1]).n, e.u, e.n):
                i -= 1
            if i > 0 and (<HEnt>o.pend[i - 1]).u == e.u and (<HEnt>o.pend[i - 1]).n == e.n:
                return ks.settle(key, o)
            o.pend.insert(i, e)
            o.cur = _rebuild(o.base, o.pend)
    return _ent_end(ks, key, o, e.u, e.n)


cdef int _ent_end(Keyspace ks, object key, HllObj o, uint64_t u, uint64_t n) except -1:
    """After an update at ts (u, n) was applied: the object's newest ts, the
    key touched, and the object placed."""
    _bump(&o.lu, &o.ln, u, n)
    ks.touched(key)
    if ks.alts or o.cur is None or kt_get(&ks.d.t, key) != <PyObject*>o:
        # (shown, live and alone on its key: o stays where it is)
        ks.settle(key, o)
    return 0


cdef int _reg_on(Keyspace ks, object key, HllObj o, object val, uint64_t u, uint64_t n) except -1:
    """A whole write of the register (val None: a DEL) at ts (u, n)."""
    cdef list keep
    if not ts_gt(u, n, o.ru, o.rn):
        return ks.settle(key, o)
    o.ru = u
    o.rn = n
    keep = None
    if o.pend is not None:
        keep = [e for e in o.pend if ts_gt((<HEnt>e).u, (<HEnt>e).n, u, n)] or None
    o.pend = keep
    o.base = val if keep is not None else None
    o.cur = _rebuild(val, keep)
    _bump(&o.lu, &o.ln, u, n)
    ks.touched(key)
    ks.settle(key, o)
    return 0


# ---------------------------------------------------------- local effects ----

cdef HllObj hll_find(Keyspace ks, object key):
    return <HllObj>ks.find(key, T_HLL, True)


cdef int emit_ent(Keyspace ks, object key, HllObj o, uint8_t kind, const uint8_t* pairs,
                  Py_ssize_t n, bint applied) except -1:
    """A local update of n pairs: its record, and the rule (applied: the
    caller has already changed o.cur in place, after hll_save_base). On a
    node alone with nothing pending the update is causally stable at once
    (hll_folds): it is folded, and nothing is kept of it."""
    cdef uint64_t u = ks.tick()
    cdef Py_ssize_t klen = PyBytes_GET_SIZE(key), plen = 3 * n
    cdef char* w
    if kind == HA_CACHE:
        w = ks.bl.reserve(OP_HLLCACHE, u, varint_len(<uint64_t>klen) + klen)
        w = put_varint_at(w, <uint64_t>klen)
        memcpy(w, PyBytes_AS_STRING(key), klen)
    else:
        w = ks.bl.reserve(OP_HLLADD, u, varint_len(<uint64_t>klen) + klen + 1
                          + varint_len(<uint64_t>n) + plen)
        w = put_varint_at(w, <uint64_t>klen)
        memcpy(w, PyBytes_AS_STRING(key), klen)
        w += klen
        w[0] = <char>kind
        w = put_varint_at(w + 1, <uint64_t>n)
        if plen:
            memcpy(w, pairs, plen)
    ks.bl.end()
    if hll_folds(ks, o):
        if not applied:
            o.cur = _replay_raw(o.cur, kind, pairs, n)
        return _ent_end(ks, key, o, u, ks.node_id)
    _ent_on(ks, key, o, _ent(u, ks.node_id, kind,
                             PyBytes_FromStringAndSize(<const char*>pairs, plen)), applied)
    return 0


cdef int hll_save_base(Keyspace ks, HllObj o) except -1:
    """Before a local in-place change of o.cur: keep the register's value
    apart if no update is pending yet (unless the change folds at once)."""
    if o.pend is None and not ks.solo:
        o.base = bytes(o.cur) if o.cur is not None else None
    return 0


cdef int emit_reg_hll(Keyspace ks, object key, HllObj o, object val) except -1:
    cdef uint64_t u = ks.tick()
    cdef Writer w = ks.bl.begin(OP_HLLREG, u)
    w.put_bytes(key)
    if val is None:
        w.put_u8(0)
    else:
        w.put_u8(1)
        w.put_bytes(val)
    _reg_on(ks, key, o, val, u, ks.node_id)
    if val is None:
        ks._clear_done(key, o, u, ks.node_id)
    ks.bl.end()
    return 0


cdef int hll_convert(Keyspace ks, object key, bytes val) except -1:
    """A string holding a valid HLL becomes an HLL object (its first PF*
    write): the HLL register takes its bytes, the string register is
    deleted (the key's TTL stays)."""
    emit_reg_hll(ks, key, hll_find(ks, key), val)
    emit_reg(ks, key, None, TTL_KEEP, 0)
    return 0


# --------------------------------------------------------- remote records ----

cdef int _check_pairs(Reader r) except -1:
    cdef uint64_t n = r.varint(), i
    cdef const uint8_t* p
    if n > <uint64_t>(r.end - r.pos) // 3:
        raise ValueError("bad HLL pair count")
    p = <const uint8_t*>(r.p + r.pos)
    for i in range(n):
        if (p[3 * i] | (p[3 * i + 1] << 8)) >= HLL_REGISTERS:
            raise ValueError("bad HLL register index")
        if p[3 * i + 2] == 0 or p[3 * i + 2] > HLL_MAX_COUNT:
            raise ValueError("bad HLL register value")
    r.pos += <Py_ssize_t>(3 * n)
    return 0


cdef int _check(uint8_t op, uint64_t u, Reader r) except -1:
    """A peer's record checked without applying it."""
    cdef uint8_t f
    cdef bytes v
    r.bytes_()
    if op == OP_HLLADD:
        f = r.u8()
        if f & ~(HA_DENSE | HA_INVAL):
            raise ValueError("bad HLL update flags %d" % f)
        _check_pairs(r)
    elif op == OP_HLLREG:
        f = r.u8()
        if f > 1:
            raise ValueError("bad HLL register flag")
        if f:
            v = r.bytes_()
            if not hll_valid(<const unsigned char*>PyBytes_AS_STRING(v), PyBytes_GET_SIZE(v)):
                raise ValueError("HLL register write of a value that is not an HLL")
    return 0


cdef int _apply(Keyspace ks, uint8_t op, uint64_t origin, uint64_t u, Reader r) except -1:
    cdef object key = r.bytes_()
    cdef HllObj o = hll_find(ks, key)
    cdef uint8_t f
    cdef uint64_t n
    cdef object val
    if op == OP_HLLADD:
        f = r.u8()
        n = r.varint()
        r.need(<Py_ssize_t>(3 * n))
        val = PyBytes_FromStringAndSize(r.p + r.pos, <Py_ssize_t>(3 * n))
        r.pos += <Py_ssize_t>(3 * n)
        _ent_on(ks, key, o, _ent(u, origin, f, val), False)
    elif op == OP_HLLCACHE:
        _ent_on(ks, key, o, _ent(u, origin, HA_CACHE, b""), False)
    else:
        f = r.u8()
        val = r.bytes_() if f else None
        _reg_on(ks, key, o, val, u, origin)
        if val is None:
            ks._clear_done(key, o, u, origin)
    return 0


# ------------------------------------------------------------- type table ----

cdef CObj _new():
    cdef HllObj o = HllObj.__new__(HllObj)
    o.ttl = None
    o.base = None
    o.pend = None
    o.cur = None
    return o


cdef bint _live(CObj o) noexcept:
    return (<HllObj>o).cur is not None


cdef bint _keeps(CObj x) noexcept:
    cdef HllObj o = <HllObj>x
    return o.pend is not None or o.ru != 0 or o.rn != 0


cdef void _last_ts(CObj o, uint64_t* u, uint64_t* n) noexcept:
    u[0] = (<HllObj>o).lu
    n[0] = (<HllObj>o).ln


cdef int _clear(Keyspace ks, object key, CObj o) except -1:
    return emit_reg_hll(ks, key, <HllObj>o, None)


cdef object _value(CObj o):
    return hll_bytes(<HllObj>o)


cdef list _describe(CObj x):
    cdef HllObj o = <HllObj>x
    cdef list pend = []
    cdef HEnt e
    if o.pend is not None:
        for v in o.pend:
            e = <HEnt>v
            pend.append([e.u, e.n, b"cache" if e.kind == HA_CACHE else b"add:%d" % e.kind,
                         len(e.pairs) // 3])
    return [b"register", [_base_of(o), o.ru, o.rn], b"pending", pend]


cdef Py_ssize_t _gc(CObj x, uint64_t stable, bint* empty) except -1:
    """Fold the updates whose uuid is causally stable into the register (any
    update still to come is newer than them)."""
    cdef HllObj o = <HllObj>x
    cdef Py_ssize_t k = 0
    cdef bytearray b
    if o.pend is not None:
        while k < len(o.pend) and (<HEnt>o.pend[k]).u <= stable:
            k += 1
        if k == len(o.pend):
            o.pend = None
            o.base = None
        elif k:
            b = bytearray(o.base) if o.base is not None else None
            for i in range(k):
                b = _replay(b, <HEnt>o.pend[i])
            o.base = bytes(b) if b is not None else None
            del o.pend[:k]
    if o.cur is None and o.pend is None and o.ru <= stable:
        empty[0] = True
        return 1
    return 0


# -------------------------------------------------------------- snapshots ----
#
# hll = u8 has_register [bytes value], u64 ru, u64 rn, u64 lu, u64 ln,
#       varint n, n x (u64 uuid, u64 node, u8 kind, bytes pairs)

cdef int _encode(Writer w, CObj x) except -1:
    cdef HllObj o = <HllObj>x
    cdef object base = _base_of(o)
    cdef HEnt e
    if base is None:
        w.put_u8(0)
    else:
        w.put_u8(1)
        w.put_bytes(base)
    w.put_u64(o.ru)
    w.put_u64(o.rn)
    w.put_u64(o.lu)
    w.put_u64(o.ln)
    if o.pend is None:
        w.put_varint(0)
    else:
        w.put_varint(len(o.pend))
        for v in o.pend:
            e = <HEnt>v
            w.put_u64(e.u)
            w.put_u64(e.n)
            w.put_u8(e.kind)
            w.put_bytes(e.pairs)
    return 0


cdef int _check_ent_pairs(bytes pairs) except -1:
    cdef const uint8_t* p = <const uint8_t*>PyBytes_AS_STRING(pairs)
    cdef Py_ssize_t i, n = PyBytes_GET_SIZE(pairs)
    if n % 3:
        raise SnapshotError("corrupt snapshot (HLL update size)")
    for i in range(n // 3):
        if (p[3 * i] | (p[3 * i + 1] << 8)) >= HLL_REGISTERS or p[3 * i + 2] == 0 \
                or p[3 * i + 2] > HLL_MAX_COUNT:
            raise SnapshotError("corrupt snapshot (HLL register update)")
    return 0


cdef CObj _decode(Reader r, int version):
    cdef HllObj o = <HllObj>_new()
    cdef uint8_t flag = r.u8()
    cdef uint64_t n, _i
    cdef HEnt e
    cdef list pend = []
    if flag > 1:
        raise SnapshotError("corrupt snapshot (bad HLL register flag)")
    base = r.bytes_() if flag else None
    o.ru = r.u64()
    o.rn = r.u64()
    o.lu = r.u64()
    o.ln = r.u64()
    n = r.varint()
    if n > <uint64_t>(r.end - r.pos) // 18:
        raise SnapshotError("corrupt snapshot (HLL update count)")
    for _i in range(n):
        e = _ent(r.u64(), r.u64(), r.u8(), None)
        if e.kind != HA_CACHE and e.kind & ~(HA_DENSE | HA_INVAL):
            raise SnapshotError("corrupt snapshot (HLL update kind)")
        e.pairs = r.bytes_()
        _check_ent_pairs(e.pairs)
        if not ts_gt(e.u, e.n, o.ru, o.rn) or (
                pend and not ts_gt(e.u, e.n, (<HEnt>pend[len(pend) - 1]).u,
                                   (<HEnt>pend[len(pend) - 1]).n)):
            raise SnapshotError("corrupt snapshot (HLL updates out of order)")
        pend.append(e)
    o.pend = pend or None
    o.base = base if pend else None
    o.cur = _rebuild(base, o.pend)
    return o


cdef int _merge(CObj x, CObj y, Ctx ca, Ctx cb, uint64_t clock) except -1:
    """The newer register wins (at equal ts, the side that folded more of the
    updates into it); updates: the union, minus those older than that
    register and those its side applied and no longer holds (it folded
    them into the register)."""
    cdef HllObj a = <HllObj>x, b = <HllObj>y
    cdef bint b_wins
    cdef Ctx wctx
    cdef set wkeys
    cdef dict ents = {}
    cdef HEnt e
    cdef set ak = set(), bk = set()
    if a.pend is not None:
        for v in a.pend:
            ak.add(((<HEnt>v).u, (<HEnt>v).n))
            ents[((<HEnt>v).u, (<HEnt>v).n)] = v
    if b.pend is not None:
        for v in b.pend:
            bk.add(((<HEnt>v).u, (<HEnt>v).n))
            ents.setdefault(((<HEnt>v).u, (<HEnt>v).n), v)
    if ts_gt(b.ru, b.rn, a.ru, a.rn):
        b_wins = True
    elif b.ru == a.ru and b.rn == a.rn:
        b_wins = any(k not in bk and cb.applied(k[1], k[0]) for k in ak)
    else:
        b_wins = False
    wctx = cb if b_wins else ca
    wkeys = bk if b_wins else ak
    ru = b.ru if b_wins else a.ru
    rn = b.rn if b_wins else a.rn
    base = _base_of(b) if b_wins else _base_of(a)
    keep = []
    for k in sorted(ents):
        e = <HEnt>ents[k]
        if not ts_gt(e.u, e.n, ru, rn):
            continue
        if k not in wkeys and wctx.applied(e.n, e.u):
            continue
        keep.append(e)
    a.ru = ru
    a.rn = rn
    a.pend = keep or None
    a.base = base if keep else None
    a.cur = _rebuild(base, a.pend)
    _bump(&a.lu, &a.ln, b.lu, b.ln)
    return 0


cdef bint _filter(CObj x, Ctx other, uint64_t clock) except -1:
    """o is on one side only: the other side dropped it whole (GC of a
    cleared HLL), so what it applied goes."""
    cdef HllObj o = <HllObj>x
    cdef bint reg = (o.ru != 0 or o.rn != 0) and other.applied(o.rn, o.ru)
    cdef list keep
    keep = [e for e in (o.pend or ()) if not other.applied((<HEnt>e).n, (<HEnt>e).u)]
    if not reg and len(keep) == (len(o.pend) if o.pend is not None else 0):
        return False
    base = None if reg else _base_of(o)
    o.pend = keep or None
    o.base = base if keep else None
    o.cur = _rebuild(base, o.pend)
    return True


register_class(HllObj, T_HLL)

cdef TypeOps OPS
OPS.code = T_HLL
OPS.name = b"string"
OPS.ops[0] = OP_HLLADD
OPS.ops[1] = OP_HLLREG
OPS.ops[2] = OP_HLLCACHE
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
