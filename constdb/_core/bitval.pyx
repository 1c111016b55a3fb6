"""Bit overrides of a string (docs/crdt.md section 3.1, "Bits").

A string's visible bytes are its register's value with a set of per-bit LWW
overrides applied: SETBIT and BITFIELD ship the bits they write (OP_BITS, runs
of up to 64 bits, all at the record's ts), so bits written concurrently on
different nodes all survive, while a register write (SET, APPEND, DEL...)
drops the overrides older than it and keeps the newer ones on top of its
value. An override is kept only while it is newer than the register. Once it
is causally stable (ts <= the stable point, section 6) it is folded: the
register takes the visible bytes at the newest folded ts (every later effect
has a larger ts, so no outcome changes), so a quiet group, or a node alone,
stores plain bytes.

Where it lives: StrObj.val is bytes (a plain value), a bytearray (a plain
value a bit command wrote: changed in place) or a BitVal (a register with
pending overrides: the visible bytes, whether the register itself holds no
value, and the overrides). Every change goes through bits_on (local and
remote) or, for register writes, t_string._reg_on through reg_rebase.
"""

from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE, PyByteArray_Resize
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.dict cimport PyDict_GetItem
from cpython.object cimport PyObject
from libc.stdint cimport uint8_t, uint64_t
from libc.string cimport memcpy, memset

from constdb._core.codec cimport Reader, Writer, put_u64_at, put_varint_at, varint_len
from constdb._core.dots cimport _ttlreg
from constdb._core.keyspace cimport Keyspace
from constdb._core.merge cimport Ctx
from constdb._core.objects cimport StrObj, str_node, str_set_node, sv_get, sv_set, ts_gt
from constdb._core.ops cimport OP_BITS

from constdb._core.merge import SnapshotError


cdef inline uint64_t _limit() noexcept:
    return (<uint64_t>1) << BITS_LIMIT_SHIFT


# ------------------------------------------------------------ the value ----

cdef const char* reg_raw(object v, Py_ssize_t* n) noexcept:
    """The bytes of a register value (bytes, bytearray or BitVal: its visible
    bytes); NULL and 0 for None."""
    if v is None:
        n[0] = 0
        return NULL
    if type(v) is bytes:
        n[0] = PyBytes_GET_SIZE(v)
        return PyBytes_AS_STRING(v)
    if type(v) is BitVal:
        v = (<BitVal>v).buf
    n[0] = PyByteArray_GET_SIZE(v)
    return PyByteArray_AS_STRING(v)


cdef bytes reg_bytes(object v):
    """A register value as bytes (a copy of a bytearray's or BitVal's)."""
    cdef Py_ssize_t n
    cdef const char* p
    if v is None or type(v) is bytes:
        return v
    p = reg_raw(v, &n)
    return p[:n]


cdef int reg_last_ts(object v, uint64_t* u, uint64_t* n) noexcept:
    """Raise (u, n) to the newest override a BitVal holds (the newest write
    the string holds: keyspace._last_ts)."""
    cdef BOv e
    if type(v) is not BitVal:
        return 0
    for x in (<BitVal>v).ov.values():
        e = <BOv>x
        if ts_gt(e.uuid, e.node, u[0], n[0]):
            u[0] = e.uuid
            n[0] = e.node
    return 0


cdef inline int _setbit(bytearray b, uint64_t bit, int v) except -1:
    """Bit `bit` (Redis's order: bit 0 is the top bit of byte 0) of b to v,
    zero-extending b to reach it."""
    cdef Py_ssize_t byte = <Py_ssize_t>(bit >> 3), n = PyByteArray_GET_SIZE(b)
    cdef unsigned char* p
    cdef unsigned char mask = 0x80 >> (bit & 7)
    if byte >= n:
        PyByteArray_Resize(b, byte + 1)
        memset(PyByteArray_AS_STRING(b) + n, 0, byte + 1 - n)
    p = <unsigned char*>PyByteArray_AS_STRING(b) + byte
    if v:
        p[0] |= mask
    else:
        p[0] &= ~mask
    return 0


cdef inline BOv _bov(int v, uint64_t u, uint64_t n):
    cdef BOv e = BOv.__new__(BOv)
    e.v = v
    e.uuid = u
    e.node = n
    return e


cdef object _build(object base, dict ov):
    """The register value base (bytes, bytearray, BitVal or None) with the
    overrides ov applied: base itself if ov is empty, else a new BitVal."""
    cdef BitVal b
    cdef Py_ssize_t n
    cdef const char* p
    cdef BOv e
    if not ov:
        return base
    b = BitVal.__new__(BitVal)
    p = reg_raw(base, &n)
    b.buf = bytearray(n)
    if n:
        memcpy(PyByteArray_AS_STRING(b.buf), p, n)
    b.none = base is None or (type(base) is BitVal and (<BitVal>base).none)
    b.ov = ov
    for k, x in ov.items():
        e = <BOv>x
        _setbit(b.buf, <uint64_t>k, e.v)
    return b


cdef object reg_rebase(BitVal cur, object val, uint64_t u, uint64_t n):
    """The register of a string whose value is cur moves on to (val, (u, n)):
    the overrides older than it go, the newer stay on top of val."""
    cdef dict keep = None
    cdef BOv e
    for k, x in cur.ov.items():
        e = <BOv>x
        if ts_gt(e.uuid, e.node, u, n):
            if keep is None:
                keep = {}
            keep[k] = e
    return _build(val, keep)


# -------------------------------------------------- the rule (local + remote) ----

cdef int bits_on(Keyspace ks, object key, StrObj o, const uint64_t* starts,
                 const uint8_t* nbits, const uint64_t* vals, Py_ssize_t nruns,
                 uint64_t u, uint64_t n, bint fold, bint shown) except -1:
    """Runs of bits written at (u, n): run i sets nbits[i] bits from starts[i]
    to the low bits of vals[i], most significant first. Lost if older than
    the register; each bit lost to a newer override of it. fold: the write is
    causally stable already (a local write on a node alone): the register
    takes the result at (u, n) instead of keeping overrides."""
    cdef object v = sv_get(o)
    cdef bytearray b
    cdef BitVal bv
    cdef PyObject* p
    cdef BOv e
    cdef Py_ssize_t i
    cdef uint64_t j, bit
    cdef int x
    if not ts_gt(u, n, o.uuid, str_node(o)):
        return 0
    if fold and type(v) is not BitVal:
        if type(v) is bytearray:
            b = <bytearray>v
        else:
            b = bytearray(v) if v is not None else bytearray()
            sv_set(o, b)
        for i in range(nruns):
            for j in range(nbits[i]):
                _setbit(b, starts[i] + j, <int>((vals[i] >> (nbits[i] - 1 - j)) & 1))
        if o.ttl is None:
            # the TTL register was implicit at the register's ts: it stays there
            o.ttl = _ttlreg(0, o.uuid, str_node(o))
        o.uuid = u
        str_set_node(o, n)
    else:
        if type(v) is BitVal:
            bv = <BitVal>v
        else:
            bv = BitVal.__new__(BitVal)
            if type(v) is bytearray:
                bv.buf = <bytearray>v
            else:
                bv.buf = bytearray(v) if v is not None else bytearray()
            bv.none = v is None
            bv.ov = {}
            sv_set(o, bv)
        for i in range(nruns):
            for j in range(nbits[i]):
                bit = starts[i] + j
                x = <int>((vals[i] >> (nbits[i] - 1 - j)) & 1)
                p = PyDict_GetItem(bv.ov, bit)
                if p != NULL:
                    e = <BOv>p
                    if ts_gt(e.uuid, e.node, u, n):
                        continue
                bv.ov[bit] = _bov(x, u, n)
                _setbit(bv.buf, bit, x)
    ks.touched(key)
    if not shown or ks.alts:
        ks.settle(key, o)
    return 0


cdef int emit_bits(Keyspace ks, object key, StrObj o, bint shown, const uint64_t* starts,
                   const uint8_t* nbits, const uint64_t* vals, Py_ssize_t nruns) except -1:
    """The local write of runs of bits (bits_on) and its OP_BITS record: key,
    varint nruns, nruns x (varint start, u8 nbits, u64 bits). o: key's string
    object as find() gives it; shown: it is d[key]."""
    cdef uint64_t u = ks.tick()
    cdef Py_ssize_t klen = PyBytes_GET_SIZE(key), plen, i
    cdef char* w
    bits_on(ks, key, o, starts, nbits, vals, nruns, u, ks.node_id, ks.solo, shown)
    plen = varint_len(<uint64_t>klen) + klen + varint_len(<uint64_t>nruns)
    for i in range(nruns):
        plen += varint_len(starts[i]) + 9
    w = ks.bl.reserve(OP_BITS, u, plen)
    w = put_varint_at(w, <uint64_t>klen)
    memcpy(w, PyBytes_AS_STRING(key), klen)
    w += klen
    w = put_varint_at(w, <uint64_t>nruns)
    for i in range(nruns):
        w = put_varint_at(w, starts[i])
        w[0] = <char>nbits[i]
        w = put_u64_at(w + 1, vals[i])
    ks.bl.end()
    return 0


cdef int bits_apply(Keyspace ks, object key, StrObj o, uint64_t origin, uint64_t u,
                    Reader r) except -1:
    """A peer's OP_BITS record (after its key), on key's string object o."""
    cdef uint64_t _k, nruns = r.varint()
    cdef uint64_t start, val
    cdef uint8_t nb
    for _k in range(nruns):
        start = r.varint()
        nb = r.u8()
        val = r.u64()
        bits_on(ks, key, o, &start, &nb, &val, 1, u, origin, False, False)
    return 0


cdef int bits_check(Reader r) except -1:
    """An OP_BITS record's payload after its key, checked without applying
    it: at least one run, 1..64 bits each, no value bits above them, every
    run starting below 2^32 (a peer cannot make this node allocate more than
    Redis's default 512 MB string, plus the 8 bytes a 64-bit field at its
    last bit reaches, as Redis's own limit lets it)."""
    cdef uint64_t _k, nruns = r.varint()
    cdef uint64_t start, val
    cdef uint8_t nb
    if nruns == 0 or nruns > <uint64_t>(r.end - r.pos) // 10:
        raise ValueError("bad bit run count")
    for _k in range(nruns):
        start = r.varint()
        nb = r.u8()
        val = r.u64()
        if nb == 0 or nb > BITS_MAX_RUN:
            raise ValueError("bad bit run length %d" % nb)
        if nb < 64 and val >> nb:
            raise ValueError("bad bit run value")
        if start >= _limit():
            raise ValueError("bit offset out of range")
    return 0


# ------------------------------------------------------------- snapshots ----
#
# a register value with overrides = u8 none, bytes visible, varint n,
# n x (varint bit, u8 value, u64 uuid, u64 node), by bit

cdef int bits_encode(Writer w, BitVal b) except -1:
    cdef BOv e
    w.put_u8(1 if b.none else 0)
    w.put_varint(<uint64_t>PyByteArray_GET_SIZE(b.buf))
    w.put_raw(PyByteArray_AS_STRING(b.buf), PyByteArray_GET_SIZE(b.buf))
    w.put_varint(<uint64_t>len(b.ov))
    for k in sorted(b.ov):
        e = <BOv>b.ov[k]
        w.put_varint(<uint64_t>k)
        w.put_u8(e.v)
        w.put_u64(e.uuid)
        w.put_u64(e.node)
    return 0


cdef BitVal bits_decode(Reader r):
    """bits_encode's output, checked: every override within the visible bytes
    (no allocation beyond what the snapshot holds) and agreeing with them."""
    cdef BitVal b = BitVal.__new__(BitVal)
    cdef uint8_t none = r.u8()
    cdef bytes raw
    cdef uint64_t _k, cnt, bit, u, n
    cdef uint8_t v
    cdef const unsigned char* p
    if none > 1:
        raise SnapshotError("corrupt snapshot (bad bits flag)")
    raw = r.bytes_()
    cnt = r.varint()
    if cnt == 0 or cnt > <uint64_t>(r.end - r.pos) // 18:
        raise SnapshotError("corrupt snapshot (bad bit override count)")
    b.none = none
    b.buf = bytearray(raw)
    b.ov = {}
    p = <const unsigned char*>PyBytes_AS_STRING(raw)
    for _k in range(cnt):
        bit = r.varint()
        v = r.u8()
        u = r.u64()
        n = r.u64()
        if (v > 1 or bit >= <uint64_t>PyBytes_GET_SIZE(raw) * 8 or bit in b.ov
                or ((p[bit >> 3] >> (7 - (bit & 7))) & 1) != v):
            raise SnapshotError("corrupt snapshot (bad bit override)")
        b.ov[bit] = _bov(v, u, n)
    return b


cdef object bits_merge(object wval, dict a_ov, dict b_ov, uint64_t wu, uint64_t wn):
    """The merged register value: wval, the winning register's (its own
    overrides applied), under both sides' overrides newer than the winner's
    ts (wu, wn), per bit the newer one."""
    cdef dict kept = {}
    cdef PyObject* p
    cdef BOv e
    if a_ov:
        for k, x in a_ov.items():
            e = <BOv>x
            if ts_gt(e.uuid, e.node, wu, wn):
                kept[k] = e
    if b_ov:
        for k, x in b_ov.items():
            e = <BOv>x
            if not ts_gt(e.uuid, e.node, wu, wn):
                continue
            p = PyDict_GetItem(kept, k)
            if p == NULL or ts_gt(e.uuid, e.node, (<BOv>p).uuid, (<BOv>p).node):
                kept[k] = _bov(e.v, e.uuid, e.node)
    # the winner's own overrides are all newer than its register, so they are
    # in kept (or lost to a newer one of the same bit): its visible bytes are
    # the base
    return _build(wval, kept)


cdef object bits_filter(BitVal b, Ctx other):
    """A string's register was dropped by a merge (the other side applied it
    and collected it): the value is the overrides the other side has not
    applied, on no value."""
    cdef dict kept = {}
    cdef BOv e
    for k, x in b.ov.items():
        e = <BOv>x
        if not other.applied(e.node, e.uuid):
            kept[k] = e
    return _build(None, kept)


# ------------------------------------------------------------------- GC ----

cdef Py_ssize_t bits_gc(StrObj o, uint64_t stable) except -1:
    """Fold the overrides that are causally stable into the register: it
    takes the visible bytes at the newest folded ts. Returns how many."""
    cdef BitVal bv
    cdef BOv e
    cdef list done = None
    cdef uint64_t fu = 0, fn = 0
    if type(sv_get(o)) is not BitVal:
        return 0
    bv = <BitVal>sv_get(o)
    for k, x in bv.ov.items():
        e = <BOv>x
        if e.uuid <= stable:
            if done is None:
                done = []
            done.append(k)
            if ts_gt(e.uuid, e.node, fu, fn):
                fu = e.uuid
                fn = e.node
    if done is None:
        return 0
    for k in done:
        del bv.ov[k]
    if o.ttl is None:
        o.ttl = _ttlreg(0, o.uuid, str_node(o))
    o.uuid = fu
    str_set_node(o, fn)
    if bv.ov:
        bv.none = False
    else:
        sv_set(o, bv.buf)
    return len(done)


cdef list bits_describe(BitVal b):
    cdef BOv e
    cdef list out = []
    for k in sorted(b.ov):
        e = <BOv>b.ov[k]
        out.append([k, e.v, e.uuid, e.node])
    return [b"bits", out]


# ------------------------------------------------------- Python views ----

def bit_overrides(o):
    """{bit: (value, uuid, node)} of a string's pending overrides (tests)."""
    if type(o) is not StrObj or type(sv_get(<StrObj>o)) is not BitVal:
        return {}
    return {k: ((<BOv>x).v, (<BOv>x).uuid, (<BOv>x).node)
            for k, x in (<BitVal>sv_get(<StrObj>o)).ov.items()}


def fold_bits(StrObj o, uint64_t stable):
    """bits_gc (tests)."""
    return bits_gc(o, stable)
