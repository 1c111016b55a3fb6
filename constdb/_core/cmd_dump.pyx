"""DUMP and RESTORE with ConstDB's own payload.

A payload carries a key's visible value, not its CRDT state: RESTORE is a new write of
that value on the node that runs it (the dots, registers and counters of the group that
dumped it mean nothing to another group, and a restored key is not a merge). Layout,
little-endian, varint-length byte strings as in the records (docs/internals.md):

    u8 type code (objects.T_*)
    value:  string       bytes
            list, set    varint n (>= 1), n x bytes (a list in order; set members distinct)
            hash         varint n (>= 1), n x (field, value) (fields distinct)
            sorted set   varint n (>= 1), n x (member, f64 score) (in order, members
                         distinct, no NaN)
            mv register  varint n (>= 1), n x bytes (its concurrent values)
    u16 payload version (DUMP_VERSION)
    u64 CRC-64 (Jones, reflected, as Redis's crc64) of everything before it

As in Redis's, the footer is a 2-byte version and an 8-byte CRC-64. The version numbers
start above any RDB version, so redis-server refuses a ConstDB payload as a wrong version
and ConstDB refuses Redis's the same way. RESTORE checks the version and the checksum,
then decodes the whole value (every count bounded by the bytes left, so nothing is
allocated beyond the payload's size) before it changes anything.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.list cimport PyList_GET_SIZE
from cpython.object cimport PyObject
from libc.math cimport isnan
from libc.stdint cimport int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memcpy

from constdb._core.cmd_keys cimport err_lit, opt_eq
from constdb._core.codec cimport Reader, Writer, parse_bytes_i64
from constdb._core.ktable cimport kt_get
from constdb._core.keyspace cimport N_GENERIC, Keyspace, notify
from constdb._core.objects cimport (
    T_HASH, T_LIST, T_MV, T_SET, T_STRING, T_ZSET, CObj, HashObj, ListObj, MVObj, SetObj,
    StrObj, Ver, ZEnt, ZSetObj, hash_val,
)
from constdb._core.protocol cimport Client, Server, add_command, reply_notint, reply_syntax
from constdb._core.t_hash cimport emit_hset
from constdb._core.t_hll cimport HllObj, hll_bytes
from constdb._core.t_list cimport emit_push, first_live, next_live, val_at
from constdb._core.t_mv cimport emit_mv
from constdb._core.t_set cimport emit_sadd
from constdb._core.t_string cimport TTL_WRITE, emit_reg, str_get
from constdb._core.t_zset cimport ZIndex, ZNode, emit_zadd, index_of

from constdb._core.codec import CodecError

cdef enum:
    DUMP_VERSION = 257          # ConstDB payload version 1 (above every RDB version)
    FOOTER = 10                 # u16 version + u64 CRC-64
    IDLE_MAX_S = 4294967        # the access clock's range in seconds (2**32 ms)

cdef uint64_t CRC_TABLE[256]


cdef void _crc_init() noexcept:
    # CRC-64/Jones as Redis's crc64.c: reflected polynomial 0x95ac9329ac4bc9b5,
    # initial value 0, no final xor
    cdef uint64_t c
    cdef int i, _k
    for i in range(256):
        c = <uint64_t>i
        for _k in range(8):
            if c & 1:
                c = (c >> 1) ^ 0x95AC9329AC4BC9B5ULL
            else:
                c >>= 1
        CRC_TABLE[i] = c


_crc_init()


cdef uint64_t crc64(uint64_t crc, const unsigned char* p, Py_ssize_t n) noexcept:
    cdef Py_ssize_t i
    for i in range(n):
        crc = CRC_TABLE[(crc ^ p[i]) & 0xFF] ^ (crc >> 8)
    return crc


def crc64_of(bytes b):
    """Python view of crc64 (tests)."""
    return crc64(0, <const unsigned char*>PyBytes_AS_STRING(b), PyBytes_GET_SIZE(b))


# ------------------------------------------------------------------- DUMP ----

cdef bytes dump_value(CObj o):
    """o's visible value as a payload (None for a type with no payload form)."""
    cdef Writer w = Writer()
    cdef Py_ssize_t bi = 0, ii = 0
    cdef ZNode* x
    cdef uint16_t ver = DUMP_VERSION
    cdef uint64_t crc
    cdef bytes body
    if type(o) is StrObj:
        w.put_u8(T_STRING)
        v = str_get(<StrObj>o)
        w.put_bytes(v if type(v) is bytes else str(v).encode())
    elif type(o) is HllObj:  # a string in Redis's HLL format: its bytes
        w.put_u8(T_STRING)
        w.put_bytes(<bytes>hll_bytes(<HllObj>o))
    elif type(o) is ListObj:
        w.put_u8(T_LIST)
        w.put_varint(<uint64_t>(<ListObj>o).n)
        if first_live(<ListObj>o, &bi, &ii):
            w.put_bytes(val_at(<ListObj>o, bi, ii))
            while next_live(<ListObj>o, &bi, &ii):
                w.put_bytes(val_at(<ListObj>o, bi, ii))
    elif type(o) is SetObj:
        w.put_u8(T_SET)
        w.put_varint(<uint64_t>len((<SetObj>o).m))
        for m in (<SetObj>o).m:
            w.put_bytes(<bytes>m)
    elif type(o) is HashObj:
        w.put_u8(T_HASH)
        w.put_varint(<uint64_t>len((<HashObj>o).f))
        for f, ent in (<HashObj>o).f.items():
            w.put_bytes(<bytes>f)
            w.put_bytes(<bytes>hash_val(<HashObj>o, f, ent))
    elif type(o) is ZSetObj:
        w.put_u8(T_ZSET)
        w.put_varint(<uint64_t>len((<ZSetObj>o).m))
        if (<ZSetObj>o).idx is not None:
            x = (<ZIndex>(<ZSetObj>o).idx).first()
            while x != NULL:
                w.put_bytes((<ZEnt>x.ent).member)
                w.put_f64(x.score)
                x = x.level[0].forward
    elif type(o) is MVObj:
        w.put_u8(T_MV)
        vers = sorted([((<Ver>v).node, (<Ver>v).uuid, (<Ver>v).val) for v in (<MVObj>o).vers])
        w.put_varint(<uint64_t>len(vers))
        for _n, _u, val in vers:
            w.put_bytes(<bytes>val)
    else:
        return None
    w.put_raw(<char*>&ver, 2)
    body = w.getvalue()
    crc = crc64(0, <const unsigned char*>PyBytes_AS_STRING(body), PyBytes_GET_SIZE(body))
    w.put_u64(crc)
    return w.getvalue()


cdef int cmd_dump(Client c, list argv) except -1:
    cdef CObj o = c.ks.lookup_r(argv[1])
    cdef bytes p
    if o is None:
        return c.out.nil()
    p = dump_value(o)
    if p is None:
        return err_lit(c, b"ERR DUMP of this type is not supported")
    return c.out.bulk(p)


# ---------------------------------------------------------------- RESTORE ----

cdef bint payload_ok(bytes p) noexcept:
    """verifyDumpPayload: at least the footer, our version, the checksum."""
    cdef Py_ssize_t n = PyBytes_GET_SIZE(p)
    cdef const unsigned char* s = <const unsigned char*>PyBytes_AS_STRING(p)
    cdef uint16_t ver
    cdef uint64_t crc
    if n < FOOTER:
        return False
    memcpy(&ver, s + n - FOOTER, 2)
    if ver != DUMP_VERSION:
        return False
    memcpy(&crc, s + n - 8, 8)
    return crc == crc64(0, s, n - 8)


cdef object _count(Reader r, Py_ssize_t least):
    """A collection's element count: at least 1 (Redis refuses an empty key),
    and no more than the bytes left allow (each element takes at least
    `least` bytes), so nothing is allocated beyond the payload."""
    cdef uint64_t n = r.varint()
    if n == 0 or n > <uint64_t>((r.end - r.pos) // least):
        raise CodecError("bad count")
    return <Py_ssize_t>n


cdef tuple decode_value(bytes p):
    """(type code, value) from a payload whose footer was checked; raises
    CodecError on anything malformed. value: bytes, or a list (of bytes, of
    (field, value), of (member, score))."""
    cdef Reader r = Reader(p, 0, PyBytes_GET_SIZE(p) - FOOTER)
    cdef uint8_t code = r.u8()
    cdef Py_ssize_t n, _i
    cdef double score
    cdef list out
    cdef set seen
    if code == T_STRING:
        v = r.bytes_()
    elif code == T_LIST or code == T_MV or code == T_SET:
        n = _count(r, 1)
        out = []
        for _i in range(n):
            out.append(r.bytes_())
        if code == T_SET and len(set(out)) != n:
            raise CodecError("duplicate set members")
        v = out
    elif code == T_HASH:
        n = _count(r, 2)
        out = []
        seen = set()
        for _i in range(n):
            f = r.bytes_()
            out.append((f, r.bytes_()))
            seen.add(f)
        if len(seen) != n:
            raise CodecError("duplicate hash fields")
        v = out
    elif code == T_ZSET:
        n = _count(r, 9)
        out = []
        seen = set()
        for _i in range(n):
            m = r.bytes_()
            score = r.f64()
            if isnan(score):
                raise CodecError("NaN score")
            out.append((m, score))
            seen.add(m)
        if len(seen) != n:
            raise CodecError("duplicate sorted set members")
        v = out
    else:
        raise CodecError("unknown type")
    if not r.at_end():
        raise CodecError("trailing bytes")
    return (code, v)


cdef int restore_value(Keyspace ks, bytes key, int code, object v, int64_t at) except -1:
    """Write a decoded value at key (absent, or deleted just before) as new
    local writes, with expiry at (0: none)."""
    cdef ZSetObj z = None
    if code == T_STRING:
        return emit_reg(ks, key, v, TTL_WRITE, at)
    if code == T_LIST:
        emit_push(ks, key, None, <list>v, 0, False)
    elif code == T_SET:
        for m in <list>v:
            emit_sadd(ks, key, m)
    elif code == T_HASH:
        for f, val in <list>v:
            emit_hset(ks, key, f, val)
    elif code == T_ZSET:
        # Redis loads a sorted set as a listpack when it is small enough (its
        # zset-max-listpack-* defaults): a listpack stores -0 as 0 (cmd_zsets)
        lp = len(<list>v) <= 128 and all([PyBytes_GET_SIZE(<bytes>m) <= 64 for m, _s in v])
        for m, score in <list>v:
            z = emit_zadd(ks, key, z, <bytes>m, 0.0 if lp and score == 0.0 else <double>score)
        index_of(z).lp = lp
    else:
        first = True
        for val in <list>v:
            emit_mv(ks, key, val, first)
            first = False
    if at:
        ks.emit_ttl(key, at)
    return 0


cdef int cmd_restore(Client c, list argv) except -1:
    # restoreCommand's order: options, BUSYKEY, the TTL, the payload's footer,
    # its body; then the old key goes and the new one is written (or nothing
    # is, when the TTL is already past). IDLETIME and FREQ then set the new
    # key's access clock or LFU counter, as Redis's objectSetLRUOrLFU.
    cdef Keyspace ks = c.ks
    cdef bytes key = <bytes>argv[1], a, payload = <bytes>argv[3]
    cdef Py_ssize_t j = 4, argc = PyList_GET_SIZE(argv)
    cdef bint replace = False, absttl = False, has_idle = False, has_freq = False
    cdef int64_t ttl, v, idle = -1, freq = -1
    cdef tuple dec
    cdef bint deleted = False
    while j < argc:
        a = <bytes>argv[j]
        if opt_eq(a, b"REPLACE", 7):
            replace = True
        elif opt_eq(a, b"ABSTTL", 6):
            absttl = True
        elif opt_eq(a, b"IDLETIME", 8) and j + 1 < argc and not has_freq:
            if not parse_bytes_i64(<bytes>argv[j + 1], &v):
                return reply_notint(c)
            if v < 0:
                return err_lit(c, b"ERR Invalid IDLETIME value, must be >= 0")
            has_idle = True
            idle = v
            j += 1
        elif opt_eq(a, b"FREQ", 4) and j + 1 < argc and not has_idle:
            if not parse_bytes_i64(<bytes>argv[j + 1], &v):
                return reply_notint(c)
            if v < 0 or v > 255:
                return err_lit(c, b"ERR Invalid FREQ value, must be >= 0 and <= 255")
            has_freq = True
            freq = v
            j += 1
        else:
            return reply_syntax(c)
        j += 1
    if not replace and ks.lookup(key) is not None:
        return err_lit(c, b"BUSYKEY Target key name already exists.")
    if not parse_bytes_i64(<bytes>argv[2], &ttl):
        return reply_notint(c)
    if ttl < 0:
        return err_lit(c, b"ERR Invalid TTL value, must be >= 0")
    if not payload_ok(payload):
        return err_lit(c, b"ERR DUMP payload version or checksum are wrong")
    try:
        dec = decode_value(payload)
    except CodecError:
        return err_lit(c, b"ERR Bad data format")
    if ttl and not absttl:
        ttl += ks.now
    if replace and ks.lookup(key) is not None:
        ks.emit_del(key)
        deleted = True
    if ttl and ttl <= ks.now:
        if deleted:
            notify(ks, N_GENERIC, b"del", key)
        return c.out.ok()
    restore_value(ks, key, <int>dec[0], dec[1], ttl)
    _set_access(ks, key, idle, freq)
    notify(ks, N_GENERIC, b"restore", key)
    return c.out.ok()


cdef void _set_access(Keyspace ks, object key, int64_t idle, int64_t freq) noexcept:
    """RESTORE's IDLETIME or FREQ (-1: not given) on the restored key's
    object, as Redis's objectSetLRUOrLFU: under an LFU policy FREQ is the
    counter (at this minute), otherwise IDLETIME (seconds) moves the access
    clock back. The clock counts ms in 32 bits here: an idle time beyond
    its range (about 49.7 days) counts as that range's end."""
    cdef PyObject* p = kt_get(&ks.d.t, key)
    cdef CObj o
    if p == NULL:
        return
    o = <CObj>p
    if ks.evict_mode == 1:
        if freq >= 0:
            o.lru = (<uint32_t>((ks.now // 60000) & 0xFFFF) << 8) | <uint32_t>freq
    elif idle >= 0:
        if idle > IDLE_MAX_S:
            idle = IDLE_MAX_S
        o.lru = <uint32_t>ks.now - <uint32_t>(idle * 1000)


def register(Server srv):
    """Name the handlers; arity, flags and keys come from the command table."""
    add_command(srv, b"dump", cmd_dump)
    add_command(srv, b"restore", cmd_restore)
