"""Bitmap commands: SETBIT GETBIT BITCOUNT BITPOS BITOP BITFIELD BITFIELD_RO
(Redis 7.0's bitops.c, its replies and errors). A string's bits across nodes:
docs/crdt.md section 3.1 ("Bits"), bitval.pyx. SETBIT and BITFIELD ship the
bits they write as per-bit LWW overrides (bitval.emit_bits); BITOP writes its
destination as a whole value (a register write, as SET)."""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE, PyByteArray_Resize
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from libc.stdint cimport INT64_MAX, int64_t, uint8_t, uint64_t
from libc.string cimport memchr, memcpy, memset

from constdb._core.bitval cimport BITS_LIMIT_SHIFT, emit_bits, reg_bytes, reg_raw
from constdb._core.cmd_keys cimport err_lit, opt_eq
from constdb._core.codec cimport parse_i64, parse_bytes_i64
from constdb._core.keyspace cimport N_GENERIC, N_STRING, Keyspace, notify, replacing
from constdb._core.objects cimport (
    T_STRING, CObj, StrObj, TTLReg, new_str, str_nocnt, sv_get, sv_set,
)
from constdb._core.protocol cimport (
    Client, Server, add_command, reply_notint, reply_syntax, reply_wrongtype,
)
from constdb._core.t_hll cimport HllObj, hll_bytes
from constdb._core.t_string cimport TTL_KEEP, TTL_WRITE, emit_reg, str_get


cdef extern from *:
    """
    static inline int cdb_popcount64(unsigned long long v) { return __builtin_popcountll(v); }
    """
    int cdb_popcount64(unsigned long long v) noexcept


cdef enum:
    OV_WRAP = 0
    OV_SAT = 1
    OV_FAIL = 2
    BF_GET = 0
    BF_SET = 1
    BF_INCRBY = 2


cdef bytes E_OFFSET = b"ERR bit offset is not an integer or out of range"
cdef bytes E_BIT = b"ERR bit is not an integer or out of range"
cdef bytes E_TYPE = (b"ERR Invalid bitfield type. Use something like i16 u8. "
                     b"Note that u64 is not supported but i64 is.")


# ------------------------------------------------------------ helpers ----

cdef int bit_offset(Client c, bytes arg, bint hash, int bits, uint64_t* out) except -1:
    """getBitOffsetFromArgument: 1, or 0 after replying the error. With hash,
    "#n" means n * bits (wrapping as Redis's long long multiply does)."""
    cdef Py_ssize_t n = PyBytes_GET_SIZE(arg)
    cdef const char* p = PyBytes_AS_STRING(arg)
    cdef int64_t v
    cdef int usehash = 1 if (n > 1 and p[0] == b'#' and hash) else 0
    if not parse_i64(p + usehash, n - usehash, &v):
        err_lit(c, E_OFFSET)
        return 0
    if usehash:
        v = <int64_t>(<uint64_t>v * <uint64_t>bits)
    if v < 0 or (v >> 3) >= c.srv.proto_max_bulk_len:
        err_lit(c, E_OFFSET)
        return 0
    out[0] = <uint64_t>v
    return 1


cdef CObj _plain(Keyspace ks, object key, CObj o, bint write):
    """A HyperLogLog is a string in Redis: a bit command reads its bytes (a
    detached string object holding them) and a write first turns it into a
    plain string of those bytes (a whole-value write, as APPEND does)."""
    cdef StrObj s
    cdef int64_t at = 0
    if o is None or type(o) is not HllObj:
        return o
    if write:
        if o.ttl is not None:
            at = ks.local_at(<TTLReg>o.ttl)
        val = hll_bytes(<HllObj>o)
        replacing(ks, key)
        ks.emit_del_other_types(key, T_STRING)
        emit_reg(ks, key, val, TTL_WRITE, at)
        replacing(ks, None)
        return ks.lookup(key)
    s = new_str()
    sv_set(s, hll_bytes(<HllObj>o))
    return s


cdef object _vobj(StrObj o):
    """What holds the visible bytes of a string (for reg_raw): its register
    value, or, when counters contribute, the value as bytes."""
    cdef object v
    if str_nocnt(o):
        return sv_get(o)
    v = str_get(o)
    if v is None or type(v) is bytes:
        return v
    return str(v).encode()


cdef bint _counts(StrObj o):
    """The visible value is not the register's bytes (with its bit overrides):
    counter increments contribute, and a bit write must be a register write."""
    cdef object v
    if str_nocnt(o):
        return False
    v = str_get(o)
    return type(v) is not bytes or v != reg_bytes(sv_get(o))


cdef inline int _get_bit(const unsigned char* p, Py_ssize_t n, uint64_t bit) noexcept:
    cdef uint64_t byte = bit >> 3
    if byte >= <uint64_t>n:
        return 0
    return (p[byte] >> (7 - (bit & 7))) & 1


cdef inline void _put_bit(unsigned char* p, uint64_t bit, int v) noexcept:
    cdef unsigned char mask = 0x80 >> (bit & 7)
    if v:
        p[bit >> 3] |= mask
    else:
        p[bit >> 3] &= ~mask


cdef int _write_runs(Keyspace ks, bytes key, CObj o, const uint64_t* starts,
                     const uint8_t* nbits, const uint64_t* vals, Py_ssize_t nruns) except -1:
    """Ship bits written to key (o: its visible object, a string, or None):
    as bit overrides (bitval.emit_bits), or, when the string's counters
    contribute to its value or a run starts past 2^32 (a raised
    proto-max-bulk-len: peers refuse such runs), as a register write of the
    whole new value."""
    cdef Py_ssize_t i, n
    cdef uint64_t j, end
    cdef bint reg = False
    cdef bytearray whole
    for i in range(nruns):
        if starts[i] >= ((<uint64_t>1) << BITS_LIMIT_SHIFT):
            reg = True
    if o is not None and _counts(<StrObj>o):
        reg = True
    if reg:
        whole = bytearray(reg_bytes(_vobj(<StrObj>o)) or b"") if o is not None else bytearray()
        for i in range(nruns):
            end = starts[i] + nbits[i]
            n = PyByteArray_GET_SIZE(whole)
            if <uint64_t>n * 8 < end:
                PyByteArray_Resize(whole, <Py_ssize_t>((end + 7) >> 3))
                memset(PyByteArray_AS_STRING(whole) + n, 0, PyByteArray_GET_SIZE(whole) - n)
            for j in range(nbits[i]):
                _put_bit(<unsigned char*>PyByteArray_AS_STRING(whole), starts[i] + j,
                         <int>((vals[i] >> (nbits[i] - 1 - j)) & 1))
        return emit_reg(ks, key, bytes(whole), TTL_KEEP, 0)
    if o is None:
        return emit_bits(ks, key, <StrObj>ks.find(key, T_STRING, True), False,
                         starts, nbits, vals, nruns)
    return emit_bits(ks, key, <StrObj>o, True, starts, nbits, vals, nruns)


# ---------------------------------------------------------------- SETBIT ----

cdef int cmd_setbit(Client c, list argv) except -1:
    cdef Keyspace ks = c.ks
    cdef bytes key = <bytes>PyList_GET_ITEM(argv, 1)
    cdef uint64_t off, val
    cdef int64_t on
    cdef CObj o
    cdef object vo
    cdef const unsigned char* p
    cdef Py_ssize_t n
    cdef int old
    cdef uint8_t one = 1
    if not bit_offset(c, <bytes>PyList_GET_ITEM(argv, 2), False, 0, &off):
        return 0
    if not parse_bytes_i64(<bytes>PyList_GET_ITEM(argv, 3), &on) or on & ~1:
        return err_lit(c, E_BIT)
    o = _plain(ks, key, ks.lookup(key), True)
    if o is not None and type(o) is not StrObj:
        return reply_wrongtype(c)
    if o is None:
        old = 0
    else:
        vo = _vobj(<StrObj>o)
        p = <const unsigned char*>reg_raw(vo, &n)
        old = _get_bit(p, n, off)
        # no change and no growth: Redis propagates nothing, nor does this
        if old == on and (off >> 3) < <uint64_t>n:
            return c.out.integer(old)
    val = <uint64_t>on
    _write_runs(ks, key, o, &off, &one, &val, 1)
    notify(ks, N_STRING, b"setbit", key)
    return c.out.integer(old)


# ---------------------------------------------------------------- GETBIT ----

cdef int cmd_getbit(Client c, list argv) except -1:
    cdef uint64_t off
    cdef CObj o
    cdef object vo
    cdef Py_ssize_t n
    cdef const unsigned char* p
    if not bit_offset(c, <bytes>PyList_GET_ITEM(argv, 2), False, 0, &off):
        return 0
    o = _plain(c.ks, None, c.ks.lookup_r(<object>PyList_GET_ITEM(argv, 1)), False)
    if o is None:
        return c.out.integer(0)
    if type(o) is not StrObj:
        return reply_wrongtype(c)
    vo = _vobj(<StrObj>o)
    p = <const unsigned char*>reg_raw(vo, &n)
    return c.out.integer(_get_bit(p, n, off))


# -------------------------------------------------------------- BITCOUNT ----

cdef int64_t _popcount(const unsigned char* p, Py_ssize_t n) noexcept:
    cdef int64_t total = 0
    cdef unsigned long long w
    while n >= 8:
        memcpy(&w, p, 8)
        total += cdb_popcount64(w)
        p += 8
        n -= 8
    while n > 0:
        total += cdb_popcount64(p[0])
        p += 1
        n -= 1
    return total


cdef int _range(Client c, list argv, Py_ssize_t i, int64_t* out) except -1:
    """argv[i] as a long long: 1, or 0 after replying the error."""
    if not parse_bytes_i64(<bytes>PyList_GET_ITEM(argv, i), out):
        reply_notint(c)
        return 0
    return 1


cdef int _bit_unit(Client c, bytes a, bint* isbit) except -1:
    if opt_eq(a, b"BIT", 3):
        isbit[0] = True
    elif opt_eq(a, b"BYTE", 4):
        isbit[0] = False
    else:
        reply_syntax(c)
        return 0
    return 1


cdef void _clamp(int64_t totlen, bint isbit, int64_t* start, int64_t* end,
                 unsigned char* first_mask, unsigned char* last_mask) noexcept:
    """BITCOUNT's and BITPOS's range: negative indexes from the end, clamped
    to the string; a BIT range becomes bytes plus masks of the bits of its
    first and last byte that lie outside it."""
    if start[0] < 0:
        start[0] = totlen + start[0]
    if end[0] < 0:
        end[0] = totlen + end[0]
    if start[0] < 0:
        start[0] = 0
    if end[0] < 0:
        end[0] = 0
    if end[0] >= totlen:
        end[0] = totlen - 1
    if isbit and start[0] <= end[0]:
        first_mask[0] = ~((1 << (8 - (start[0] & 7))) - 1) & 0xFF
        last_mask[0] = (1 << (7 - (end[0] & 7))) - 1
        start[0] >>= 3
        end[0] >>= 3


cdef int cmd_bitcount(Client c, list argv) except -1:
    # bitcountCommand (7.0): the key is looked up before the range is parsed
    cdef Py_ssize_t argc = PyList_GET_SIZE(argv), n
    cdef CObj o
    cdef object vo
    cdef const unsigned char* p
    cdef int64_t start, end, totlen, count
    cdef bint isbit = False
    cdef unsigned char first_mask = 0, last_mask = 0
    cdef unsigned char fl[2]
    o = _plain(c.ks, None, c.ks.lookup_r(<object>PyList_GET_ITEM(argv, 1)), False)
    if o is None:
        return c.out.integer(0)
    if type(o) is not StrObj:
        return reply_wrongtype(c)
    vo = _vobj(<StrObj>o)
    p = <const unsigned char*>reg_raw(vo, &n)
    if argc == 4 or argc == 5:
        totlen = n
        if not _range(c, argv, 2, &start) or not _range(c, argv, 3, &end):
            return 0
        if argc == 5 and not _bit_unit(c, <bytes>PyList_GET_ITEM(argv, 4), &isbit):
            return 0
        if isbit:
            totlen <<= 3
        if start < 0 and end < 0 and start > end:
            return c.out.integer(0)
        _clamp(totlen, isbit, &start, &end, &first_mask, &last_mask)
    elif argc == 2:
        start = 0
        end = n - 1
    else:
        return reply_syntax(c)
    if start > end:
        return c.out.integer(0)
    count = _popcount(p + start, end - start + 1)
    if first_mask != 0 or last_mask != 0:
        fl[0] = p[start] & first_mask if first_mask != 0 else 0
        fl[1] = p[end] & last_mask if last_mask != 0 else 0
        count -= _popcount(fl, 2)
    return c.out.integer(count)


# ---------------------------------------------------------------- BITPOS ----

cdef int64_t _bitpos(const unsigned char* p, Py_ssize_t count, int bit) noexcept:
    """redisBitpos: the first bit set to `bit`; for 0 with none found, the
    bit right after the range (count * 8); for 1, -1."""
    cdef Py_ssize_t i = 0
    cdef unsigned char skip = 0 if bit else 0xFF
    cdef unsigned long long w, wskip = 0 if bit else <unsigned long long>-1
    cdef unsigned char b
    cdef int j
    while i + 8 <= count:
        memcpy(&w, p + i, 8)
        if w != wskip:
            break
        i += 8
    for i in range(i, count):
        b = p[i]
        if b == skip:
            continue
        for j in range(8):
            if ((b >> (7 - j)) & 1) == bit:
                return i * 8 + j
    return -1 if bit else count * 8


cdef int cmd_bitpos(Client c, list argv) except -1:
    # bitposCommand (7.0)
    cdef Py_ssize_t argc = PyList_GET_SIZE(argv), n
    cdef int64_t bit, start, end, totlen, pos = -1, nbytes, curbytes
    cdef CObj o
    cdef object vo
    cdef const unsigned char* p
    cdef bint isbit = False, end_given = False
    cdef unsigned char first_mask = 0, last_mask = 0, tmp
    if not parse_bytes_i64(<bytes>PyList_GET_ITEM(argv, 2), &bit):
        return reply_notint(c)
    if bit != 0 and bit != 1:
        return err_lit(c, b"ERR The bit argument must be 1 or 0.")
    o = _plain(c.ks, None, c.ks.lookup_r(<object>PyList_GET_ITEM(argv, 1)), False)
    if o is None:
        return c.out.integer(-1 if bit else 0)
    if type(o) is not StrObj:
        return reply_wrongtype(c)
    vo = _vobj(<StrObj>o)
    p = <const unsigned char*>reg_raw(vo, &n)
    if argc == 4 or argc == 5 or argc == 6:
        totlen = n
        if not _range(c, argv, 3, &start):
            return 0
        if argc == 6 and not _bit_unit(c, <bytes>PyList_GET_ITEM(argv, 5), &isbit):
            return 0
        if argc >= 5:
            if not _range(c, argv, 4, &end):
                return 0
            end_given = True
        else:
            end = totlen - 1
        if isbit:
            totlen <<= 3
        _clamp(totlen, isbit, &start, &end, &first_mask, &last_mask)
    elif argc == 3:
        start = 0
        end = n - 1
    else:
        return reply_syntax(c)
    if start > end:
        return c.out.integer(-1)
    nbytes = end - start + 1
    while True:
        if first_mask:
            tmp = (p[start] & ~first_mask) if bit else (p[start] | first_mask)
            if last_mask and nbytes == 1:
                tmp = (tmp & ~last_mask) if bit else (tmp | last_mask)
            pos = _bitpos(&tmp, 1, <int>bit)
            if nbytes == 1 or (pos != -1 and pos != 8):
                break
            start += 1
            nbytes -= 1
        curbytes = nbytes - (1 if last_mask else 0)
        if curbytes > 0:
            pos = _bitpos(p + start, curbytes, <int>bit)
            if nbytes == curbytes or (pos != -1 and pos != curbytes * 8):
                break
            start += curbytes
            nbytes -= curbytes
        tmp = (p[end] & ~last_mask) if bit else (p[end] | last_mask)
        pos = _bitpos(&tmp, 1, <int>bit)
        break
    if end_given and bit == 0 and pos == nbytes * 8:
        return c.out.integer(-1)
    if pos != -1:
        pos += start * 8
    return c.out.integer(pos)


# ----------------------------------------------------------------- BITOP ----

cdef int cmd_bitop(Client c, list argv) except -1:
    # bitopCommand: the destination is written as a whole value (SET's
    # meaning across nodes), or deleted when the result is empty
    cdef Keyspace ks = c.ks
    cdef bytes opname = <bytes>PyList_GET_ITEM(argv, 1)
    cdef bytes dest = <bytes>PyList_GET_ITEM(argv, 2)
    cdef Py_ssize_t argc = PyList_GET_SIZE(argv), j, k, maxlen = 0, n
    cdef int op
    cdef list srcs = []
    cdef CObj o, d
    cdef object vo
    cdef bytearray res
    cdef unsigned char* r
    cdef const unsigned char* p
    if opt_eq(opname, b"AND", 3):
        op = 0
    elif opt_eq(opname, b"OR", 2):
        op = 1
    elif opt_eq(opname, b"XOR", 3):
        op = 2
    elif opt_eq(opname, b"NOT", 3):
        op = 3
    else:
        return reply_syntax(c)
    if op == 3 and argc != 4:
        return err_lit(c, b"ERR BITOP NOT must be called with a single source key.")
    for j in range(3, argc):
        o = _plain(ks, None, ks.lookup_r(<object>PyList_GET_ITEM(argv, j)), False)
        if o is None:
            srcs.append(None)
            continue
        if type(o) is not StrObj:
            return reply_wrongtype(c)
        vo = _vobj(<StrObj>o)
        if vo is not None and type(vo) is not bytes:
            vo = reg_bytes(vo)
        srcs.append(vo)
        if vo is not None and PyBytes_GET_SIZE(vo) > maxlen:
            maxlen = PyBytes_GET_SIZE(vo)
    if maxlen:
        res = bytearray(maxlen)
        r = <unsigned char*>PyByteArray_AS_STRING(res)
        for j in range(len(srcs)):
            vo = srcs[j]
            n = 0 if vo is None else PyBytes_GET_SIZE(vo)
            p = <const unsigned char*>PyBytes_AS_STRING(vo) if vo is not None else NULL
            if op == 3:
                for k in range(maxlen):
                    r[k] = ~p[k]
            elif j == 0:
                if n:
                    memcpy(r, p, n)
            elif op == 0:
                for k in range(maxlen):
                    r[k] &= p[k] if k < n else 0
            elif op == 1:
                for k in range(n):
                    r[k] |= p[k]
            else:
                for k in range(n):
                    r[k] ^= p[k]
        d = ks.lookup(dest)
        if d is not None and type(d) is not StrObj or (ks.alts and dest in ks.alts):
            replacing(ks, dest)
            ks.emit_del_other_types(dest, T_STRING)
        emit_reg(ks, dest, bytes(res), TTL_WRITE, 0)
        replacing(ks, None)
        notify(ks, N_STRING, b"set", dest)
    else:
        if ks.lookup(dest) is not None:
            ks.emit_del(dest)
            notify(ks, N_GENERIC, b"del", dest)
    return c.out.integer(maxlen)


# -------------------------------------------------------------- BITFIELD ----

cdef int _bf_type(Client c, bytes a, bint* sign, int* bits) except -1:
    """getBitfieldTypeFromArgument: i1..i64, u1..u63 (C-string semantics: the
    number ends at a NUL)."""
    cdef const char* p = PyBytes_AS_STRING(a)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(a)
    cdef const char* z
    cdef int64_t v
    if n == 0 or (p[0] != b'i' and p[0] != b'u'):
        err_lit(c, E_TYPE)
        return 0
    sign[0] = p[0] == b'i'
    z = <const char*>memchr(p, 0, n)
    if z != NULL:
        n = z - p
    if (not parse_i64(p + 1, n - 1, &v) or v < 1 or (sign[0] and v > 64)
            or (not sign[0] and v > 63)):
        err_lit(c, E_TYPE)
        return 0
    bits[0] = <int>v
    return 1


cdef uint64_t _get_u(const unsigned char* p, Py_ssize_t n, uint64_t off, int bits) noexcept:
    cdef uint64_t v = 0
    cdef int j
    for j in range(bits):
        v = (v << 1) | <uint64_t>_get_bit(p, n, off + j)
    return v


cdef int64_t _get_i(const unsigned char* p, Py_ssize_t n, uint64_t off, int bits) noexcept:
    cdef uint64_t v = _get_u(p, n, off, bits)
    if bits < 64 and (v & ((<uint64_t>1) << (bits - 1))):
        v |= (<uint64_t>-1) << bits
    return <int64_t>v


cdef int _u_overflow(uint64_t value, int64_t incr, int bits, int owtype,
                     uint64_t* limit) noexcept:
    """checkUnsignedBitfieldOverflow."""
    cdef uint64_t mx = (<uint64_t>-1) if bits == 64 else (((<uint64_t>1) << bits) - 1)
    cdef int64_t maxincr = <int64_t>(mx - value)
    cdef int64_t minincr = <int64_t>(0 - value)
    cdef int r = 0
    if value > mx or (incr > 0 and incr > maxincr):
        r = 1
        if owtype == OV_SAT:
            limit[0] = mx
    elif incr < 0 and incr < minincr:
        r = -1
        if owtype == OV_SAT:
            limit[0] = 0
    if r and owtype == OV_WRAP:
        limit[0] = (value + <uint64_t>incr) & ~((<uint64_t>-1) << bits)
    return r


cdef int _i_overflow(int64_t value, int64_t incr, int bits, int owtype,
                     int64_t* limit) noexcept:
    """checkSignedBitfieldOverflow."""
    cdef int64_t mx = INT64_MAX if bits == 64 else (((<int64_t>1) << (bits - 1)) - 1)
    cdef int64_t mn = -mx - 1
    cdef int64_t maxincr = <int64_t>(<uint64_t>mx - <uint64_t>value)
    cdef int64_t minincr = <int64_t>(<uint64_t>mn - <uint64_t>value)
    cdef uint64_t cc, msb
    cdef int r = 0
    if (value > mx or (bits != 64 and incr > maxincr)
            or (value >= 0 and incr > 0 and incr > maxincr)):
        r = 1
        if owtype == OV_SAT:
            limit[0] = mx
    elif (value < mn or (bits != 64 and incr < minincr)
            or (value < 0 and incr < 0 and incr < minincr)):
        r = -1
        if owtype == OV_SAT:
            limit[0] = mn
    if r and owtype == OV_WRAP:
        msb = (<uint64_t>1) << (bits - 1)
        cc = <uint64_t>value + <uint64_t>incr
        if bits < 64:
            if cc & msb:
                cc |= (<uint64_t>-1) << bits
            else:
                cc &= ~((<uint64_t>-1) << bits)
        limit[0] = <int64_t>cc
    return r


cdef int _bitfield(Client c, list argv, bint ro) except -1:
    # bitfieldGeneric: parse every op, look the key up, run the ops in order
    cdef Keyspace ks = c.ks
    cdef bytes key = <bytes>PyList_GET_ITEM(argv, 1)
    cdef Py_ssize_t argc = PyList_GET_SIZE(argv), j, remargs, numops = 0, n
    cdef bytes sub, a
    cdef int opcode, owtype = OV_WRAP, bits = 0, ovf
    cdef bint sign = False, readonly = True
    cdef uint64_t off, highest = 0, mask, uold, unew, ulim
    cdef int64_t i64, iold, inew, ilim, ret
    cdef uint8_t nb
    cdef int changes = 0
    cdef list ops = []
    cdef CObj o
    cdef object vo
    cdef const unsigned char* p
    j = 2
    while j < argc:
        remargs = argc - j - 1
        sub = <bytes>PyList_GET_ITEM(argv, j)
        i64 = 0
        if opt_eq(sub, b"GET", 3) and remargs >= 2:
            opcode = BF_GET
        elif opt_eq(sub, b"SET", 3) and remargs >= 3:
            opcode = BF_SET
        elif opt_eq(sub, b"INCRBY", 6) and remargs >= 3:
            opcode = BF_INCRBY
        elif opt_eq(sub, b"OVERFLOW", 8) and remargs >= 1:
            a = <bytes>PyList_GET_ITEM(argv, j + 1)
            j += 2
            if opt_eq(a, b"WRAP", 4):
                owtype = OV_WRAP
            elif opt_eq(a, b"SAT", 3):
                owtype = OV_SAT
            elif opt_eq(a, b"FAIL", 4):
                owtype = OV_FAIL
            else:
                return err_lit(c, b"ERR Invalid OVERFLOW type specified")
            continue
        else:
            return reply_syntax(c)
        if not _bf_type(c, <bytes>PyList_GET_ITEM(argv, j + 1), &sign, &bits):
            return 0
        if not bit_offset(c, <bytes>PyList_GET_ITEM(argv, j + 2), True, bits, &off):
            return 0
        if opcode != BF_GET:
            readonly = False
            if highest < off + bits - 1:
                highest = off + bits - 1
            if not parse_bytes_i64(<bytes>PyList_GET_ITEM(argv, j + 3), &i64):
                return reply_notint(c)
        ops.append((opcode, owtype, sign, bits, off, i64))
        numops += 1
        j += 4 if opcode != BF_GET else 3
    if readonly:
        o = _plain(ks, None, ks.lookup_r(key), False)
        if o is not None and type(o) is not StrObj:
            return reply_wrongtype(c)
        vo = None if o is None else _vobj(<StrObj>o)
        p = <const unsigned char*>reg_raw(vo, &n)
        c.out.array(numops)
        for op in ops:
            if op[2]:
                c.out.integer(_get_i(p, n, <uint64_t>op[4], <int>op[3]))
            else:
                c.out.integer(<int64_t>_get_u(p, n, <uint64_t>op[4], <int>op[3]))
        return 0
    if ro:
        return err_lit(c, b"ERR BITFIELD_RO only supports the GET subcommand")
    o = _plain(ks, key, ks.lookup(key), True)
    if o is not None and type(o) is not StrObj:
        return reply_wrongtype(c)
    # each SET or INCRBY that writes ships its field's bits as its own
    # effect (all of them, at their new values); the ops run on the value as
    # the earlier ones left it, as in Redis
    c.out.array(numops)
    for op in ops:
        opcode = op[0]
        owtype = op[1]
        sign = op[2]
        bits = op[3]
        off = op[4]
        i64 = op[5]
        vo = None if o is None else _vobj(<StrObj>o)
        p = <const unsigned char*>reg_raw(vo, &n)
        if opcode == BF_GET:
            if sign:
                c.out.integer(_get_i(p, n, off, bits))
            else:
                c.out.integer(<int64_t>_get_u(p, n, off, bits))
            continue
        if sign:
            iold = _get_i(p, n, off, bits)
            if opcode == BF_INCRBY:
                ovf = _i_overflow(iold, i64, bits, owtype, &ilim)
                inew = ilim if ovf else <int64_t>(<uint64_t>iold + <uint64_t>i64)
                ret = inew
            else:
                inew = i64
                ovf = _i_overflow(inew, 0, bits, owtype, &ilim)
                if ovf:
                    inew = ilim
                ret = iold
            unew = <uint64_t>inew
        else:
            uold = _get_u(p, n, off, bits)
            if opcode == BF_INCRBY:
                unew = uold + <uint64_t>i64
                ovf = _u_overflow(uold, i64, bits, owtype, &ulim)
                if ovf:
                    unew = ulim
                ret = <int64_t>unew
            else:
                unew = <uint64_t>i64
                ovf = _u_overflow(unew, 0, bits, owtype, &ulim)
                if ovf:
                    unew = ulim
                ret = <int64_t>uold
        if ovf and owtype == OV_FAIL:
            c.out.nil()
            continue
        c.out.integer(ret)
        mask = (<uint64_t>-1) if bits == 64 else (((<uint64_t>1) << bits) - 1)
        unew &= mask
        nb = <uint8_t>bits
        _write_runs(ks, key, o, &off, &nb, &unew, 1)
        changes += 1
        o = ks.lookup(key)
    # Redis grows the string to the farthest field a write names before it
    # runs them: if a write that failed reached further, the growth ships as
    # the new last bit (zero)
    vo = None if o is None else _vobj(<StrObj>o)
    reg_raw(vo, &n)
    if o is None or <uint64_t>n <= (highest >> 3):
        off = (highest | 7)
        nb = 1
        unew = 0
        _write_runs(ks, key, o, &off, &nb, &unew, 1)
    if changes:
        notify(ks, N_STRING, b"setbit", key)
    return 0


cdef int cmd_bitfield(Client c, list argv) except -1:
    return _bitfield(c, argv, False)


cdef int cmd_bitfield_ro(Client c, list argv) except -1:
    return _bitfield(c, argv, True)


def register(Server srv):
    """Name the handlers; arity, flags and keys come from the command table."""
    add_command(srv, b"setbit", cmd_setbit)
    add_command(srv, b"getbit", cmd_getbit)
    add_command(srv, b"bitcount", cmd_bitcount)
    add_command(srv, b"bitpos", cmd_bitpos)
    add_command(srv, b"bitop", cmd_bitop)
    add_command(srv, b"bitfield", cmd_bitfield)
    add_command(srv, b"bitfield_ro", cmd_bitfield_ro)
