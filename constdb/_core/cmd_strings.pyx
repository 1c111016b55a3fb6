"""String commands (docs/crdt.md section 3.1: LWW register + observed-reset counter)."""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from libc.stdint cimport INT64_MAX, INT64_MIN, int64_t, uint32_t, uint64_t

from constdb._core.bitval cimport reg_raw
from constdb._core.cmd_keys cimport err_lit, opt_eq
from constdb._core.codec cimport ld2string_human, parse_bytes_i64, string2ld
from constdb._core.keyspace cimport N_GENERIC, N_STRING, Keyspace, notify, replacing
from constdb._core.objects cimport T_STRING, CObj, StrObj, TTLReg, str_nocnt, sv_get, sv_raw
from constdb._core.protocol cimport (
    Client, Server, add_command, reply_notint, reply_syntax, reply_wrongtype,
)
from constdb._core.t_hll cimport HllObj, hll_bytes
from constdb._core.t_string cimport (
    STR_NOTINT, TTL_KEEP, TTL_WRITE, emit_cnt, emit_fincr, emit_reg, emit_reg_at, str_get,
    str_int,
)


cdef extern from "<math.h>":
    # type-generic macros: they take a long double as it is
    bint isnan(long double v)
    bint isinf(long double v)


cdef enum:
    O_NX = 1
    O_XX = 2
    O_GET = 4
    O_KEEPTTL = 8
    O_EX = 16
    O_PX = 32
    O_EXAT = 64
    O_PXAT = 128
    O_PERSIST = 256
    O_ANYEXP = O_EX | O_PX | O_EXAT | O_PXAT

cdef int64_t MAX_MS = 0x7FFFFFFFFFFFFFFF


cdef bytes str_bytes(StrObj o):
    """The visible value as bytes (None if absent)."""
    v = str_get(o)
    if v is None or type(v) is bytes:
        return v
    return str(v).encode()


cdef int reply_other(Client c, CObj o) except -1:
    """A key whose object is not a StrObj: an HLL (a string too, t_hll.pyx)
    replies its bytes, anything else is the wrong type."""
    if type(o) is HllObj:
        return c.out.bulk(<bytes>hll_bytes(<HllObj>o))
    return reply_wrongtype(c)


cdef inline int reply_str(Client c, StrObj o) except -1:
    cdef Py_ssize_t n
    cdef const char* p
    if str_nocnt(o):
        # a plain value is replied from where it is kept (inline in the
        # object or its buffer): no bytes object made to reply it
        p = sv_raw(o, &n)
        if p != NULL:
            return c.out.bulk_raw(p, n)
    v = str_get(o)
    if v is None:
        return c.out.nil()
    if type(v) is bytes:
        return c.out.bulk(<bytes>v)
    return c.out.bulk_int(<int64_t>v)


cdef bytes _str_of(Client c, CObj o):
    """The visible bytes of a live string key (a StrObj or an HLL); None
    after replying WRONGTYPE for another type."""
    if type(o) is StrObj:
        return str_bytes(<StrObj>o)
    if type(o) is HllObj:
        return <bytes>hll_bytes(<HllObj>o)
    reply_wrongtype(c)
    return None


cdef int _bad_expire(Client c, const char* name) except -1:
    # addReplyErrorExpireTime: "invalid expire time in '<cmd>' command"
    cdef bytes msg = b"ERR invalid expire time in '" + <bytes>name + b"' command"
    return c.out.error(PyBytes_AS_STRING(msg), PyBytes_GET_SIZE(msg))


cdef object parse_string_opts(Client c, list argv, Py_ssize_t i, bint is_set, int* flags):
    """parseExtendedStringArgumentsOrReply (SET and GETEX). Returns the expire
    argument (None without one), or False after replying a syntax error. As in
    Redis, repeating the same option is allowed (the last value wins)."""
    cdef Py_ssize_t argc = PyList_GET_SIZE(argv)
    cdef bytes a
    cdef int f = 0
    cdef bint more
    cdef object num = None
    while i < argc:
        a = <bytes>PyList_GET_ITEM(argv, i)
        more = i + 1 < argc
        if is_set and opt_eq(a, b"NX", 2) and not (f & O_XX):
            f |= O_NX
        elif is_set and opt_eq(a, b"XX", 2) and not (f & O_NX):
            f |= O_XX
        elif is_set and opt_eq(a, b"GET", 3):
            f |= O_GET
        elif is_set and opt_eq(a, b"KEEPTTL", 7) and not (f & (O_ANYEXP | O_PERSIST)):
            f |= O_KEEPTTL
        elif not is_set and opt_eq(a, b"PERSIST", 7) and not (f & (O_ANYEXP | O_KEEPTTL)):
            f |= O_PERSIST
        elif more and opt_eq(a, b"EX", 2) and not (
                f & (O_KEEPTTL | O_PERSIST | O_EXAT | O_PX | O_PXAT)):
            f |= O_EX
            i += 1
            num = <bytes>PyList_GET_ITEM(argv, i)
        elif more and opt_eq(a, b"PX", 2) and not (
                f & (O_KEEPTTL | O_PERSIST | O_EX | O_EXAT | O_PXAT)):
            f |= O_PX
            i += 1
            num = <bytes>PyList_GET_ITEM(argv, i)
        elif more and opt_eq(a, b"EXAT", 4) and not (
                f & (O_KEEPTTL | O_PERSIST | O_EX | O_PX | O_PXAT)):
            f |= O_EXAT
            i += 1
            num = <bytes>PyList_GET_ITEM(argv, i)
        elif more and opt_eq(a, b"PXAT", 4) and not (
                f & (O_KEEPTTL | O_PERSIST | O_EX | O_EXAT | O_PX)):
            f |= O_PXAT
            i += 1
            num = <bytes>PyList_GET_ITEM(argv, i)
        else:
            reply_syntax(c)
            return False
        i += 1
    flags[0] = f
    return num


cdef int expire_ms(Client c, bytes num, int flags, const char* name, int64_t* at) except -1:
    """getExpireMillisecondsOrReply: the absolute expiry in ms of an EX/PX/EXAT/
    PXAT argument. Returns 1, or 0 after replying an error."""
    cdef int64_t v
    if not parse_bytes_i64(num, &v):
        reply_notint(c)
        return 0
    if v <= 0 or (flags & (O_EX | O_EXAT) and v > MAX_MS // 1000):
        _bad_expire(c, name)
        return 0
    if flags & (O_EX | O_EXAT):
        v *= 1000
    if flags & (O_EX | O_PX):
        if v > MAX_MS - c.ks.now:
            _bad_expire(c, name)
            return 0
        v += c.ks.now
    at[0] = v
    return 1


cdef int cmd_get(Client c, list argv) except -1:
    cdef CObj o = c.ks.lookup_r(<object>PyList_GET_ITEM(argv, 1))
    if o is None:
        return c.out.nil()
    if type(o) is not StrObj:
        return reply_other(c, o)
    return reply_str(c, <StrObj>o)


cdef int _set_value(Keyspace ks, bytes key, CObj cur, bytes val, int ttl_mode,
                    int64_t at) except -1:
    """Overwrite key with a string (SET semantics: any old type is replaced).
    cur: what ks.lookup(key) returned (d[key] or None), or None."""
    if cur is not None and type(cur) is StrObj and not ks.alts:
        # the common case: a string shown, nothing else on the key
        return emit_reg_at(ks, key, <StrObj>cur, True, val, ttl_mode, at)
    if (cur is not None and type(cur) is not StrObj) or (ks.alts and key in ks.alts):
        if ttl_mode == TTL_KEEP:
            # KEEPTTL over another type: Redis keeps the key's TTL, but clearing
            # the old object writes the TTL register: the value writes it back
            ttl_mode = TTL_WRITE
            at = ks.local_at(<TTLReg>cur.ttl) if cur is not None and cur.ttl is not None else 0
        replacing(ks, key)
        ks.emit_del_other_types(key, T_STRING)
        emit_reg(ks, key, val, ttl_mode, at)
        replacing(ks, None)
        return 0
    emit_reg(ks, key, val, ttl_mode, at)
    return 0


cdef int cmd_set(Client c, list argv) except -1:
    # setCommand/setGenericCommand: options, expire value, GET, NX/XX, write
    cdef Keyspace ks = c.ks
    cdef bytes key = <bytes>PyList_GET_ITEM(argv, 1)
    cdef bytes val = <bytes>PyList_GET_ITEM(argv, 2)
    cdef int flags = 0
    cdef int64_t at = 0
    cdef object num = None
    cdef CObj o
    if PyList_GET_SIZE(argv) > 3:
        num = parse_string_opts(c, argv, 3, True, &flags)
        if num is False:
            return 0
        if num is not None and not expire_ms(c, <bytes>num, flags, b"set", &at):
            return 0
    o = ks.lookup(key)
    if flags & O_GET:
        if o is None:
            c.out.nil()
        elif type(o) is HllObj:
            reply_other(c, o)
        elif type(o) is not StrObj:
            return reply_wrongtype(c)
        else:
            reply_str(c, <StrObj>o)
    if (flags & O_NX and o is not None) or (flags & O_XX and o is None):
        if not (flags & O_GET):
            c.out.nil()
        return 0
    if flags & O_KEEPTTL:
        _set_value(ks, key, o, val, TTL_KEEP, 0)
    else:
        _set_value(ks, key, o, val, TTL_WRITE, at)
    notify(ks, N_STRING, b"set", key)
    if num is not None:
        notify(ks, N_GENERIC, b"expire", key)
    if not (flags & O_GET):
        c.out.ok()
    return 0


cdef int cmd_setnx(Client c, list argv) except -1:
    cdef bytes key = <bytes>argv[1]
    if c.ks.lookup(key) is not None:
        return c.out.integer(0)
    _set_value(c.ks, key, None, <bytes>argv[2], TTL_WRITE, 0)
    notify(c.ks, N_STRING, b"set", key)
    return c.out.integer(1)


cdef int _setex(Client c, list argv, int unit_flag, const char* name) except -1:
    cdef bytes key = <bytes>PyList_GET_ITEM(argv, 1)
    cdef int64_t at
    if not expire_ms(c, <bytes>PyList_GET_ITEM(argv, 2), unit_flag, name, &at):
        return 0
    _set_value(c.ks, key, c.ks.lookup(key), <bytes>PyList_GET_ITEM(argv, 3), TTL_WRITE, at)
    notify(c.ks, N_STRING, b"set", key)
    notify(c.ks, N_GENERIC, b"expire", key)
    return c.out.ok()


cdef int cmd_setex(Client c, list argv) except -1:
    return _setex(c, argv, O_EX, b"setex")


cdef int cmd_psetex(Client c, list argv) except -1:
    return _setex(c, argv, O_PX, b"psetex")


cdef int cmd_getset(Client c, list argv) except -1:
    cdef bytes key = <bytes>argv[1]
    cdef CObj o = c.ks.lookup(key)
    if o is not None and type(o) is not StrObj and type(o) is not HllObj:
        return reply_wrongtype(c)
    if o is None:
        c.out.nil()
    elif type(o) is HllObj:
        reply_other(c, o)
    else:
        reply_str(c, <StrObj>o)
    _set_value(c.ks, key, o, <bytes>argv[2], TTL_WRITE, 0)
    notify(c.ks, N_STRING, b"set", key)
    return 0


cdef int cmd_getdel(Client c, list argv) except -1:
    cdef bytes key = <bytes>argv[1]
    cdef CObj o = c.ks.lookup_r(key)
    if o is None:
        return c.out.nil()
    if type(o) is not StrObj:
        if type(o) is not HllObj:
            return reply_wrongtype(c)
        reply_other(c, o)
    else:
        reply_str(c, <StrObj>o)
    c.ks.emit_del(key)
    notify(c.ks, N_GENERIC, b"del", key)
    return 0


cdef int cmd_getex(Client c, list argv) except -1:
    # getexCommand: options, key, type, then the expire value
    cdef bytes key = <bytes>PyList_GET_ITEM(argv, 1)
    cdef int flags = 0
    cdef int64_t at = 0
    cdef object num
    cdef CObj o
    num = parse_string_opts(c, argv, 2, False, &flags)
    if num is False:
        return 0
    o = c.ks.lookup_r(key)
    if o is None:
        return c.out.nil()
    if type(o) is not StrObj and type(o) is not HllObj:
        return reply_wrongtype(c)
    if num is not None and not expire_ms(c, <bytes>num, flags, b"getex", &at):
        return 0
    if type(o) is HllObj:
        reply_other(c, o)
    else:
        reply_str(c, <StrObj>o)
    if num is not None:
        if flags & (O_EXAT | O_PXAT) and at <= c.ks.now:
            c.ks.emit_del(key)
            notify(c.ks, N_GENERIC, b"del", key)
        else:
            c.ks.emit_ttl(key, at)
            notify(c.ks, N_GENERIC, b"expire", key)
    elif flags & O_PERSIST:
        if o.ttl is not None and (<TTLReg>o.ttl).at != 0:
            c.ks.emit_ttl(key, 0)
            notify(c.ks, N_GENERIC, b"persist", key)
    return 0


cdef int cmd_mget(Client c, list argv) except -1:
    cdef Py_ssize_t i, n = PyList_GET_SIZE(argv)
    cdef CObj o
    c.out.array(n - 1)
    for i in range(1, n):
        o = c.ks.lookup_r(<object>PyList_GET_ITEM(argv, i))
        if o is not None and type(o) is HllObj:
            reply_other(c, o)
        elif o is None or type(o) is not StrObj:
            c.out.nil()
        else:
            reply_str(c, <StrObj>o)
    return 0


cdef int cmd_mset(Client c, list argv) except -1:
    cdef Py_ssize_t i, n = PyList_GET_SIZE(argv)
    cdef bytes key
    if n % 2 == 0:
        return err_lit(c, b"ERR wrong number of arguments for 'mset' command")
    for i in range(1, n, 2):
        key = <bytes>argv[i]
        _set_value(c.ks, key, c.ks.lookup(key), <bytes>argv[i + 1], TTL_WRITE, 0)
        notify(c.ks, N_STRING, b"set", key)
    return c.out.ok()


cdef int cmd_msetnx(Client c, list argv) except -1:
    cdef Py_ssize_t i, n = PyList_GET_SIZE(argv)
    if n % 2 == 0:
        return err_lit(c, b"ERR wrong number of arguments for 'msetnx' command")
    for i in range(1, n, 2):
        if c.ks.lookup(argv[i]) is not None:
            return c.out.integer(0)
    for i in range(1, n, 2):
        _set_value(c.ks, <bytes>argv[i], None, <bytes>argv[i + 1], TTL_WRITE, 0)
        notify(c.ks, N_STRING, b"set", argv[i])
    return c.out.integer(1)


cdef int cmd_append(Client c, list argv) except -1:
    cdef bytes key = <bytes>argv[1]
    cdef bytes add = <bytes>argv[2]
    cdef CObj o = c.ks.lookup(key)
    cdef bytes cur
    if o is None:
        emit_reg(c.ks, key, add, TTL_WRITE, 0)
        notify(c.ks, N_STRING, b"append", key)
        return c.out.integer(PyBytes_GET_SIZE(add))
    cur = _str_of(c, o)
    if cur is None:
        return 0
    if PyBytes_GET_SIZE(cur) + PyBytes_GET_SIZE(add) > c.srv.proto_max_bulk_len:
        return err_lit(c, b"ERR string exceeds maximum allowed size (proto-max-bulk-len)")
    cur = cur + add
    # APPEND keeps the key's TTL; concurrent APPENDs resolve as register writes
    _set_value(c.ks, key, o, cur, TTL_KEEP, 0)
    notify(c.ks, N_STRING, b"append", key)
    return c.out.integer(PyBytes_GET_SIZE(cur))


cdef int cmd_strlen(Client c, list argv) except -1:
    cdef CObj o = c.ks.lookup_r(argv[1])
    cdef Py_ssize_t n
    if o is None:
        return c.out.integer(0)
    if type(o) is StrObj and str_nocnt((<StrObj>o)):
        # (a value bit commands wrote is a bytearray: no copy to measure it)
        sv_raw(<StrObj>o, &n)
        if n < 0:
            reg_raw(sv_get(<StrObj>o), &n)
        return c.out.integer(n)
    v = _str_of(c, o)
    if v is None:
        return 0
    return c.out.integer(PyBytes_GET_SIZE(v))


cdef int cmd_getrange(Client c, list argv) except -1:
    cdef int64_t start, end, n
    cdef CObj o
    cdef bytes v
    if not parse_bytes_i64(<bytes>argv[2], &start) or not parse_bytes_i64(<bytes>argv[3], &end):
        return reply_notint(c)
    o = c.ks.lookup_r(argv[1])
    if o is None:
        return c.out.bulk(b"")
    v = _str_of(c, o)
    if v is None:
        return 0
    n = PyBytes_GET_SIZE(v)
    if start < 0 and end < 0 and start > end:
        return c.out.bulk(b"")
    if start < 0:
        start = n + start
    if end < 0:
        end = n + end
    if start < 0:
        start = 0
    if end < 0:
        end = 0
    if end >= n:
        end = n - 1
    if start > end or n == 0:
        return c.out.bulk(b"")
    return c.out.bulk_raw(PyBytes_AS_STRING(v) + start, end - start + 1)


cdef int _incr(Client c, bytes key, int64_t by) except -1:
    cdef Keyspace ks = c.ks
    cdef CObj o = ks.lookup(key)
    cdef int64_t cur = 0
    if o is not None:
        if type(o) is HllObj:
            return reply_notint(c)
        if type(o) is not StrObj:
            return reply_wrongtype(c)
        if str_int(<StrObj>o, &cur) == STR_NOTINT:
            return reply_notint(c)
    if ((by < 0 and cur < 0 and by < INT64_MIN - cur)
            or (by > 0 and cur > 0 and by > INT64_MAX - cur)):
        return err_lit(c, b"ERR increment or decrement would overflow")
    # o is d[key] (lookup's), a string, or None
    emit_cnt(ks, key, <StrObj>o, by)
    notify(ks, N_STRING, b"incrby", key)
    return c.out.integer(cur + by)


cdef int cmd_incr(Client c, list argv) except -1:
    return _incr(c, <bytes>PyList_GET_ITEM(argv, 1), 1)


cdef int cmd_decr(Client c, list argv) except -1:
    return _incr(c, <bytes>PyList_GET_ITEM(argv, 1), -1)


cdef int cmd_incrby(Client c, list argv) except -1:
    cdef int64_t by
    if not parse_bytes_i64(<bytes>argv[2], &by):
        return reply_notint(c)
    return _incr(c, <bytes>argv[1], by)


cdef int cmd_decrby(Client c, list argv) except -1:
    cdef int64_t by
    if not parse_bytes_i64(<bytes>argv[2], &by):
        return reply_notint(c)
    if by == -0x7FFFFFFFFFFFFFFF - 1:
        return err_lit(c, b"ERR decrement would overflow")
    return _incr(c, <bytes>argv[1], -by)


cdef int cmd_setrange(Client c, list argv) except -1:
    # setrangeCommand: a register write that keeps the key's TTL
    cdef bytes key = <bytes>PyList_GET_ITEM(argv, 1)
    cdef bytes val = <bytes>PyList_GET_ITEM(argv, 3)
    cdef int64_t off
    cdef Py_ssize_t vlen = PyBytes_GET_SIZE(val), olen
    cdef CObj o
    cdef bytes cur
    if not parse_bytes_i64(<bytes>PyList_GET_ITEM(argv, 2), &off):
        return reply_notint(c)
    if off < 0:
        return err_lit(c, b"ERR offset is out of range")
    o = c.ks.lookup(key)
    if o is None:
        if vlen == 0:
            return c.out.integer(0)
        if off > c.srv.proto_max_bulk_len - vlen:
            return err_lit(c, b"ERR string exceeds maximum allowed size (proto-max-bulk-len)")
        emit_reg(c.ks, key, b"\0" * off + val, TTL_WRITE, 0)
        notify(c.ks, N_STRING, b"setrange", key)
        return c.out.integer(off + vlen)
    cur = _str_of(c, o)
    if cur is None:
        return 0
    olen = PyBytes_GET_SIZE(cur)
    if vlen == 0:
        return c.out.integer(olen)
    if off > c.srv.proto_max_bulk_len - vlen:
        return err_lit(c, b"ERR string exceeds maximum allowed size (proto-max-bulk-len)")
    if off > olen:
        cur = cur + b"\0" * (off - olen) + val
    else:
        cur = cur[:off] + val + cur[off + vlen:]
    _set_value(c.ks, key, o, cur, TTL_KEEP, 0)
    notify(c.ks, N_STRING, b"setrange", key)
    return c.out.integer(PyBytes_GET_SIZE(cur))


cdef int cmd_incrbyfloat(Client c, list argv) except -1:
    # incrbyfloatCommand: type, current value, increment; the result is a
    # register write (Redis propagates it as SET ... KEEPTTL) plus this node's
    # float counter (t_string.emit_fincr)
    cdef bytes key = <bytes>PyList_GET_ITEM(argv, 1)
    cdef bytes incr = <bytes>PyList_GET_ITEM(argv, 2)
    cdef CObj o = c.ks.lookup(key)
    cdef long double value = 0, by
    cdef bytes out
    if o is not None:
        if type(o) is HllObj:
            return err_lit(c, b"ERR value is not a valid float")
        if type(o) is not StrObj:
            return reply_wrongtype(c)
        v = str_get(<StrObj>o)
        if type(v) is bytes:
            if not string2ld(PyBytes_AS_STRING(<bytes>v), PyBytes_GET_SIZE(<bytes>v), &value):
                return err_lit(c, b"ERR value is not a valid float")
        elif v is not None:
            value = <long double>(<int64_t>v)
    if not string2ld(PyBytes_AS_STRING(incr), PyBytes_GET_SIZE(incr), &by):
        return err_lit(c, b"ERR value is not a valid float")
    value += by
    if isnan(value) or isinf(value):
        return err_lit(c, b"ERR increment would produce NaN or Infinity")
    out = ld2string_human(value)
    # a float counter write (docs/crdt.md section 3.7): concurrent ones add up
    emit_fincr(c.ks, key, <StrObj>o, out, by, TTL_WRITE if o is None else TTL_KEEP)
    notify(c.ks, N_STRING, b"incrbyfloat", key)
    return c.out.bulk(out)


cdef int cmd_lcs(Client c, list argv) except -1:
    # lcsCommand: the dynamic programming table of LCS lengths (uint32, as
    # Redis's, bounded by proto-max-bulk-len), then one walk back from the end
    # that builds the string and the matching ranges, last ones first
    cdef Keyspace ks = c.ks
    cdef CObj oa = ks.lookup_r(argv[1])
    cdef CObj ob = ks.lookup_r(argv[2])
    cdef Py_ssize_t j, argc = PyList_GET_SIZE(argv)
    cdef bint getlen = False, getidx = False, withmatchlen = False, emit
    cdef int64_t minmatchlen = 0
    cdef bytes a, b, opt
    cdef uint32_t alen, blen, i, k, idx, l1, l2, as_ = 0, ae = 0, bs = 0, be = 0, mlen
    cdef uint32_t* t
    cdef const char* pa
    cdef const char* pb
    cdef unsigned long long size
    cdef bytearray res
    cdef list ranges = []
    # (an HLL is a string too: its bytes, as GET's)
    if (oa is not None and type(oa) is not StrObj and type(oa) is not HllObj) or \
            (ob is not None and type(ob) is not StrObj and type(ob) is not HllObj):
        return err_lit(c, b"ERR The specified keys must contain string values")
    a = _str_of(c, oa) if oa is not None else b""
    b = _str_of(c, ob) if ob is not None else b""
    j = 3
    while j < argc:
        opt = <bytes>argv[j]
        if opt_eq(opt, b"IDX", 3):
            getidx = True
        elif opt_eq(opt, b"LEN", 3):
            getlen = True
        elif opt_eq(opt, b"WITHMATCHLEN", 12):
            withmatchlen = True
        elif opt_eq(opt, b"MINMATCHLEN", 11) and j + 1 < argc:
            if not parse_bytes_i64(<bytes>argv[j + 1], &minmatchlen):
                return reply_notint(c)
            if minmatchlen < 0:
                minmatchlen = 0
            j += 1
        else:
            return reply_syntax(c)
        j += 1
    if getidx and getlen:
        return err_lit(c, b"ERR If you want both the length and indexes, please just use IDX.")
    if PyBytes_GET_SIZE(a) >= 0xFFFFFFFE or PyBytes_GET_SIZE(b) >= 0xFFFFFFFE:
        return err_lit(c, b"ERR String too long for LCS")
    alen = <uint32_t>PyBytes_GET_SIZE(a)
    blen = <uint32_t>PyBytes_GET_SIZE(b)
    size = (<unsigned long long>alen + 1) * (blen + 1) * sizeof(uint32_t)
    if size > <unsigned long long>c.srv.proto_max_bulk_len:
        return err_lit(c, b"ERR Insufficient memory, transient memory for LCS exceeds "
                          b"proto-max-bulk-len")
    t = <uint32_t*>PyMem_Malloc(size)
    if t == NULL:
        return err_lit(c, b"ERR Insufficient memory, failed allocating transient memory for LCS")
    pa = PyBytes_AS_STRING(a)
    pb = PyBytes_AS_STRING(b)
    try:
        # t[k + (blen + 1) * i]: the LCS length of a[:i] and b[:k]
        for i in range(alen + 1):
            for k in range(blen + 1):
                if i == 0 or k == 0:
                    t[k + (blen + 1) * i] = 0
                elif pa[i - 1] == pb[k - 1]:
                    t[k + (blen + 1) * i] = t[k - 1 + (blen + 1) * (i - 1)] + 1
                else:
                    l1 = t[k + (blen + 1) * (i - 1)]
                    l2 = t[k - 1 + (blen + 1) * i]
                    t[k + (blen + 1) * i] = l1 if l1 > l2 else l2
        idx = t[blen + (blen + 1) * alen]
        total = idx
        res = bytearray(idx)
        as_ = alen          # alen: no range open
        i = alen
        k = blen
        while (getidx or not getlen) and i > 0 and k > 0:
            emit = False
            if pa[i - 1] == pb[k - 1]:
                res[idx - 1] = <unsigned char>pa[i - 1]
                if as_ == alen:
                    as_ = i - 1
                    ae = i - 1
                    bs = k - 1
                    be = k - 1
                elif as_ == i and bs == k:
                    as_ -= 1
                    bs -= 1
                else:
                    emit = True
                if as_ == 0 or bs == 0:
                    emit = True
                idx -= 1
                i -= 1
                k -= 1
            else:
                l1 = t[k + (blen + 1) * (i - 1)]
                l2 = t[k - 1 + (blen + 1) * i]
                if l1 > l2:
                    i -= 1
                else:
                    k -= 1
                if as_ != alen:
                    emit = True
            mlen = ae - as_ + 1
            if emit:
                if getidx and (minmatchlen == 0 or mlen >= <uint64_t>minmatchlen):
                    ranges.append((as_, ae, bs, be, mlen))
                as_ = alen
    finally:
        PyMem_Free(t)
    if getidx:
        c.out.map(2)
        c.out.bulk_raw(b"matches", 7)
        c.out.array(len(ranges))
        for r in ranges:
            c.out.array(3 if withmatchlen else 2)
            c.out.array(2)
            c.out.integer(r[0])
            c.out.integer(r[1])
            c.out.array(2)
            c.out.integer(r[2])
            c.out.integer(r[3])
            if withmatchlen:
                c.out.integer(r[4])
        c.out.bulk_raw(b"len", 3)
        return c.out.integer(total)
    if getlen:
        return c.out.integer(total)
    return c.out.bulk(bytes(res))


def register(Server srv):
    """Name the handlers; arity, flags and keys come from the command table."""
    add_command(srv, b"get", cmd_get)
    add_command(srv, b"set", cmd_set)
    add_command(srv, b"setnx", cmd_setnx)
    add_command(srv, b"setex", cmd_setex)
    add_command(srv, b"psetex", cmd_psetex)
    add_command(srv, b"getset", cmd_getset)
    add_command(srv, b"getdel", cmd_getdel)
    add_command(srv, b"getex", cmd_getex)
    add_command(srv, b"mget", cmd_mget)
    add_command(srv, b"mset", cmd_mset)
    add_command(srv, b"msetnx", cmd_msetnx)
    add_command(srv, b"append", cmd_append)
    add_command(srv, b"strlen", cmd_strlen)
    add_command(srv, b"getrange", cmd_getrange)
    add_command(srv, b"substr", cmd_getrange)
    add_command(srv, b"incr", cmd_incr)
    add_command(srv, b"decr", cmd_decr)
    add_command(srv, b"incrby", cmd_incrby)
    add_command(srv, b"decrby", cmd_decrby)
    add_command(srv, b"incrbyfloat", cmd_incrbyfloat)
    add_command(srv, b"setrange", cmd_setrange)
    add_command(srv, b"lcs", cmd_lcs)
