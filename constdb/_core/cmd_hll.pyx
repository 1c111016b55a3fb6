"""HyperLogLog commands (docs/crdt.md section 3.1.1): PFADD, PFCOUNT, PFMERGE, PFDEBUG,
PFSELFTEST, with Redis 7.0's replies, errors and bytes."""

from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from libc.stdint cimport uint8_t, uint64_t
from libc.stdlib cimport rand
from libc.string cimport memset

from constdb._core.cmd_keys cimport err_lit
from constdb._core.keyspace cimport N_STRING, Keyspace, notify, replacing
from constdb._core.objects cimport CObj, StrObj
from constdb._core.protocol cimport Client, Server, add_command, reply_wrongtype
from constdb._core.t_hll cimport (
    HA_CACHE, HA_DENSE, HA_INVAL, HLL_DENSE_SIZE, HLL_HDR, HLL_REGISTERS, HllObj, _new_sparse,
    _set_pairs, _to_dense, cache_get, cache_put, cache_valid, ch_dense_max, ch_dget, ch_dset,
    ch_estimate, ch_histo_raw, ch_merge, ch_patlen, ch_sget, emit_ent, hll_convert, hll_count,
    hll_find, hll_folds, hll_save_base, hll_valid,
)
from constdb._core.t_string cimport str_get


cdef bytes E_NOTHLL = b"WRONGTYPE Key is not a valid HyperLogLog string value."
cdef bytes E_INVALID = b"INVALIDOBJ Corrupted HLL object detected"


cdef object _hll_view(Client c, CObj o):
    """The HLL bytes of a key's object (bytearray of an HLL object, bytes of a
    string holding a valid HLL); None after replying Redis's error."""
    cdef object v
    if type(o) is HllObj:
        v = (<HllObj>o).cur
        if hll_valid(<const unsigned char*>PyByteArray_AS_STRING(v), PyByteArray_GET_SIZE(v)):
            return v
    elif type(o) is StrObj:
        v = str_get(<StrObj>o)
        if type(v) is bytes and hll_valid(<const unsigned char*>PyBytes_AS_STRING(v),
                                          PyBytes_GET_SIZE(v)):
            return v
    else:
        reply_wrongtype(c)
        return None
    err_lit(c, E_NOTHLL)
    return None


cdef inline const uint8_t* _ptr(object v):
    if type(v) is bytes:
        return <const uint8_t*>PyBytes_AS_STRING(v)
    return <const uint8_t*>PyByteArray_AS_STRING(v)


cdef inline Py_ssize_t _len(object v):
    if type(v) is bytes:
        return PyBytes_GET_SIZE(v)
    return PyByteArray_GET_SIZE(v)


cdef HllObj _as_hll(Keyspace ks, object key, CObj o, object v):
    """The HLL object of key for a write, o (the key's shown object, whose
    value v _hll_view accepted) turned into one if it is a string."""
    if type(o) is HllObj:
        return <HllObj>o
    replacing(ks, key)
    hll_convert(ks, key, <bytes>v)
    replacing(ks, None)
    return hll_find(ks, key)


cdef int cmd_pfadd(Client c, list argv) except -1:
    cdef Keyspace ks = c.ks
    cdef object key = <object>PyList_GET_ITEM(argv, 1)
    cdef Py_ssize_t n = PyList_GET_SIZE(argv) - 2
    cdef CObj o = ks.lookup(key)
    cdef object v = None
    cdef uint8_t buf[3 * 64]
    cdef uint8_t* pp = buf
    cdef bint created = o is None
    if not created:
        v = _hll_view(c, o)
        if v is None:
            return 0
    if n > 64:
        pp = <uint8_t*>PyMem_Malloc(3 * n)
        if pp == NULL:
            raise MemoryError()
    try:
        return _pfadd(c, ks, key, o, v, pp, n, argv, created)
    finally:
        if pp != buf:
            PyMem_Free(pp)


cdef int _pfadd(Client c, Keyspace ks, object key, CObj o, object v, uint8_t* pp,
                Py_ssize_t n, list argv, bint created) except -1:
    """PFADD's work, its pairs written to pp (room for n)."""
    cdef HllObj h
    cdef bytes ele
    cdef const uint8_t* s = NULL
    cdef Py_ssize_t i
    cdef long idx
    cdef int cnt, cur, changed = 0
    cdef bint need = created
    if not created:
        s = _ptr(v)
    for i in range(n):
        ele = <bytes>PyList_GET_ITEM(argv, i + 2)
        cnt = ch_patlen(<const unsigned char*>PyBytes_AS_STRING(ele), PyBytes_GET_SIZE(ele), &idx)
        pp[3 * i] = <uint8_t>(idx & 0xff)
        pp[3 * i + 1] = <uint8_t>(idx >> 8)
        pp[3 * i + 2] = <uint8_t>cnt
        if not need:
            if s[4] == 0:
                cur = <int>ch_dget(s + HLL_HDR, idx)
            else:
                cur = ch_sget(s, _len(v), idx)
            need = cur < 0 or cnt > cur
    if not need:
        return c.out.integer(0)
    if created:
        h = hll_find(ks, key)
        h.cur = _new_sparse()
    else:
        h = _as_hll(ks, key, o, v)
        hll_save_base(ks, h)
    h.cur = _set_pairs(h.cur, <const uint8_t*>pp, n, &changed)
    if changed == 1 or created:
        PyByteArray_AS_STRING(h.cur)[15] |= <char>0x80
    emit_ent(ks, key, h, HA_INVAL if created else 0, pp, n, True)
    if changed == -1:
        return err_lit(c, E_INVALID)
    if changed == 1 or created:
        notify(ks, N_STRING, b"pfadd", key)
    return c.out.integer(1 if changed == 1 or created else 0)


cdef int _union(Client c, list argv, uint8_t* mx, bint* dense) except -1:
    """mx[i] = the maximum of register i over the keys argv[1:] (missing ones
    count as empty; Redis's hllMerge), dense set if one of them is dense.
    Returns 1, or 0 after replying an error."""
    cdef Py_ssize_t j
    cdef CObj o
    cdef object v
    memset(mx, 0, HLL_REGISTERS)
    for j in range(1, PyList_GET_SIZE(argv)):
        o = c.ks.lookup_r(<object>PyList_GET_ITEM(argv, j))
        if o is None:
            continue
        v = _hll_view(c, o)
        if v is None:
            return 0
        if _ptr(v)[4] == 0:
            dense[0] = True
        if ch_merge(mx, _ptr(v), _len(v)) != 0:
            err_lit(c, E_INVALID)
            return 0
    return 1


cdef int cmd_pfcount(Client c, list argv) except -1:
    cdef Keyspace ks = c.ks
    cdef Py_ssize_t argc = PyList_GET_SIZE(argv)
    cdef object key, v
    cdef CObj o
    cdef HllObj h
    cdef uint64_t card
    cdef uint8_t mx[16384]
    cdef int hist[64]
    cdef const uint8_t* s
    cdef bint dense = False
    if argc > 2:
        if not _union(c, argv, mx, &dense):
            return 0
        memset(hist, 0, sizeof(hist))
        ch_histo_raw(mx, hist)
        return c.out.integer(<long long>ch_estimate(hist))
    key = <object>PyList_GET_ITEM(argv, 1)
    o = ks.lookup_r(key)
    if o is None:
        return c.out.integer(0)
    v = _hll_view(c, o)
    if v is None:
        return 0
    s = _ptr(v)
    if cache_valid(s):
        return c.out.integer(<long long>cache_get(s))
    if hll_count(s, _len(v), &card) != 0:
        return err_lit(c, E_INVALID)
    # the cache fill is a write, as in Redis (which propagates it)
    h = _as_hll(ks, key, o, v)
    hll_save_base(ks, h)
    cache_put(<uint8_t*>PyByteArray_AS_STRING(h.cur), card)
    emit_ent(ks, key, h, HA_CACHE, NULL, 0, True)
    return c.out.integer(<long long>card)


cdef int cmd_pfmerge(Client c, list argv) except -1:
    cdef Keyspace ks = c.ks
    cdef Py_ssize_t j, n = 0
    cdef object key = <object>PyList_GET_ITEM(argv, 1)
    cdef CObj o
    cdef uint8_t mx[16384]
    cdef bint dense = False, applied = False
    cdef uint8_t* pp
    cdef HllObj h
    cdef bytearray d
    if not _union(c, argv, mx, &dense):
        return 0
    pp = <uint8_t*>PyMem_Malloc(3 * HLL_REGISTERS)
    if pp == NULL:
        raise MemoryError()
    try:
        for j in range(HLL_REGISTERS):
            if mx[j]:
                pp[3 * n] = <uint8_t>(j & 0xff)
                pp[3 * n + 1] = <uint8_t>(j >> 8)
                pp[3 * n + 2] = mx[j]
                n += 1
        o = ks.lookup(key)
        if o is None:
            h = hll_find(ks, key)
        elif type(o) is not HllObj:
            h = _as_hll(ks, key, o, str_get(<StrObj>o))
        else:
            h = <HllObj>o
        if hll_folds(ks, h) and (dense or (h.cur is not None and
                                           PyByteArray_AS_STRING(h.cur)[4] == 0)):
            # folded at once into a dense value (the destination dense, or made
            # dense by the flag): raise its registers in one pass
            d = h.cur if h.cur is not None else _new_sparse()
            if PyByteArray_AS_STRING(d)[4] == 1:
                d = _to_dense(d)   # valid: _union read it
            if d is not None:
                h.cur = d
                ch_dense_max(<uint8_t*>PyByteArray_AS_STRING(d) + HLL_HDR, mx)
                PyByteArray_AS_STRING(d)[15] |= <char>0x80
                applied = True
        emit_ent(ks, key, h, HA_INVAL | (HA_DENSE if dense else 0), pp, n, applied)
    finally:
        PyMem_Free(pp)
    notify(ks, N_STRING, b"pfadd", key)
    return c.out.ok()


cdef int _subcmd_arity(Client c, bytes sub) except -1:
    cdef bytes msg = b"ERR Wrong number of arguments for the '" + sub + b"' subcommand"
    return c.out.error(PyBytes_AS_STRING(msg), PyBytes_GET_SIZE(msg))


cdef int cmd_pfdebug(Client c, list argv) except -1:
    cdef Keyspace ks = c.ks
    cdef bytes sub = <bytes>PyList_GET_ITEM(argv, 1), lsub = sub.lower(), msg
    cdef object key = <object>PyList_GET_ITEM(argv, 2), v
    cdef Py_ssize_t argc = PyList_GET_SIZE(argv)
    cdef CObj o = ks.lookup(key)
    cdef HllObj h
    cdef const uint8_t* s
    cdef const uint8_t* p
    cdef const uint8_t* end
    cdef int j, runlen
    cdef list parts
    if o is None:
        return err_lit(c, b"ERR The specified key does not exist")
    v = _hll_view(c, o)
    if v is None:
        return 0
    s = _ptr(v)
    if lsub == b"getreg" or lsub == b"todense":
        if argc != 3:
            return _subcmd_arity(c, sub)
        conv = s[4] == 1
        if conv:
            if _to_dense(bytearray(v)) is None:
                return err_lit(c, E_INVALID)
            h = _as_hll(ks, key, o, v)
            emit_ent(ks, key, h, HA_DENSE, NULL, 0, False)
            v = h.cur
            s = _ptr(v)
        if lsub == b"todense":
            return c.out.integer(1 if conv else 0)
        c.out.array(HLL_REGISTERS)
        for j in range(HLL_REGISTERS):
            c.out.integer(ch_dget(s + HLL_HDR, j))
        return 0
    if lsub == b"decode":
        if argc != 3:
            return _subcmd_arity(c, sub)
        if s[4] != 1:
            return err_lit(c, b"ERR HLL encoding is not sparse")
        parts = []
        p = s + HLL_HDR
        end = s + _len(v)
        while p < end:
            if p[0] & 0xc0 == 0:
                parts.append(b"z:%d" % ((p[0] & 0x3f) + 1))
                p += 1
            elif p[0] & 0xc0 == 0x40:
                runlen = (((p[0] & 0x3f) << 8) | (p[1] if p + 1 < end else 0)) + 1
                parts.append(b"Z:%d" % runlen)
                p += 2
            else:
                parts.append(b"v:%d,%d" % (((p[0] >> 2) & 0x1f) + 1, (p[0] & 3) + 1))
                p += 1
        return c.out.bulk(b" ".join(parts))
    if lsub == b"encoding":
        if argc != 3:
            return _subcmd_arity(c, sub)
        if s[4] == 0:
            return c.out.status(b"dense", 5)
        return c.out.status(b"sparse", 6)
    msg = b"ERR Unknown PFDEBUG subcommand '" + sub + b"'"
    return c.out.error(PyBytes_AS_STRING(msg), PyBytes_GET_SIZE(msg))


cdef int cmd_pfselftest(Client c, list argv) except -1:
    """Redis's self test: register access, then dense and sparse estimates
    agreeing and within bounds (here up to 1M elements; Redis goes to 10M)."""
    cdef bytearray dense = bytearray(HLL_DENSE_SIZE), sparse
    cdef uint8_t* d = <uint8_t*>PyByteArray_AS_STRING(dense) + HLL_HDR
    cdef uint8_t vals[16384]
    cdef int i, j, _j, changed
    cdef unsigned r
    cdef uint64_t a, b, seed, ele
    cdef long idx
    cdef int cnt
    cdef long long checkpoint = 1, abserr
    cdef double maxerr
    cdef bytes msg
    cdef uint8_t pair[3]
    for _j in range(1000):
        for i in range(HLL_REGISTERS):
            r = rand() & 63
            vals[i] = r
            ch_dset(d, i, r)
        for i in range(HLL_REGISTERS):
            if ch_dget(d, i) != vals[i]:
                msg = b"TESTFAILED Register %d should be %d but is %d" % (i, vals[i],
                                                                          ch_dget(d, i))
                return c.out.error(PyBytes_AS_STRING(msg), PyBytes_GET_SIZE(msg))
    memset(d, 0, HLL_DENSE_SIZE - HLL_HDR)
    dense[4] = 0
    sparse = _new_sparse()
    seed = <uint64_t>rand() | (<uint64_t>rand() << 32)
    for j in range(1, 1000001):
        ele = <uint64_t>j ^ seed
        cnt = ch_patlen(<const unsigned char*>&ele, 8, &idx)
        if cnt > <int>ch_dget(d, idx):
            ch_dset(d, idx, cnt)
        pair[0] = <uint8_t>(idx & 0xff)
        pair[1] = <uint8_t>(idx >> 8)
        pair[2] = <uint8_t>cnt
        changed = 0
        sparse = _set_pairs(sparse, pair, 1, &changed)
        if j == checkpoint:
            if j < 1500 and sparse[4] != 1:
                return err_lit(c, b"TESTFAILED sparse encoding not used")
            hll_count(<const uint8_t*>PyByteArray_AS_STRING(dense), HLL_DENSE_SIZE, &a)
            hll_count(<const uint8_t*>PyByteArray_AS_STRING(sparse), len(sparse), &b)
            if a != b:
                return err_lit(c, b"TESTFAILED dense/sparse disagree")
            abserr = checkpoint - <long long>a
            if abserr < 0:
                abserr = -abserr
            maxerr = 1.04 / 128.0 * 6 * checkpoint
            if j == 10:
                maxerr = 1
            if abserr > maxerr + 1:
                msg = b"TESTFAILED Too big error. card:%d abserr:%d" % (checkpoint, abserr)
                return c.out.error(PyBytes_AS_STRING(msg), PyBytes_GET_SIZE(msg))
            checkpoint *= 10
    return c.out.ok()


def register(Server srv):
    """Name the handlers; arity, flags and keys come from the command table."""
    add_command(srv, b"pfadd", cmd_pfadd)
    add_command(srv, b"pfcount", cmd_pfcount)
    add_command(srv, b"pfmerge", cmd_pfmerge)
    add_command(srv, b"pfdebug", cmd_pfdebug)
    add_command(srv, b"pfselftest", cmd_pfselftest)
