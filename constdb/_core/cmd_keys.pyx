"""Generic key commands: DEL EXISTS TYPE KEYS SCAN RANDOMKEY RENAME EXPIRE* TTL ..."""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from cpython.object cimport PyObject
from libc cimport errno as cerrno
from libc.stdint cimport int64_t, uint32_t, uint64_t
from libc.stdlib cimport strtoul
from libc.string cimport memcpy

from constdb._core.codec cimport fmt_int, parse_bytes_i64
from constdb._core.glob cimport match_bytes, stringmatch
from constdb._core.ktable cimport KeyTable, kt_entry, kt_get, kt_key, kt_len, kt_next, kt_random
from constdb._core.keyspace cimport N_GENERIC, Db, Keyspace, notify
from constdb._core.objects cimport (
    T_STRING, CObj, HashObj, ListObj, MVObj, SetObj, StrObj, TTLReg, Ver,
    ZSetObj, hash_val, obj_type,
)
from constdb._core.scan cimport SCAN_KEYS, ScanState, scan_find, scan_next_at, scan_start_packed
from constdb._core.t_hash cimport emit_hset
from constdb._core.t_hll cimport HllObj, hll_bytes
from constdb._core.t_list cimport copy_list
from constdb._core.t_mv cimport emit_mv
from constdb._core.t_set cimport emit_sadd
from constdb._core.t_string cimport TTL_WRITE, emit_reg, str_get
from constdb._core.t_zset cimport copy_zset
from constdb._core.protocol cimport (
    Client, Server, add_command, reply_notint, reply_syntax,
)

from constdb._core.keyspace import TYPE_NAMES

cdef int64_t MAX_MS = 0x7FFFFFFFFFFFFFFF
cdef enum:
    T_NONE_TYPE = -3     # SCAN ... TYPE none


cdef dict _TYPE_BYTES = {k: v.encode() for k, v in TYPE_NAMES.items()}


cdef bint opt_eq(bytes a, const char* lit, Py_ssize_t n) noexcept:
    """Case-insensitive compare of an option word with an upper-case literal."""
    cdef const char* p
    cdef Py_ssize_t i
    cdef char ch
    if PyBytes_GET_SIZE(a) != n:
        return False
    p = PyBytes_AS_STRING(a)
    for i in range(n):
        ch = p[i]
        if b'a' <= ch <= b'z':
            ch -= 32
        if ch != lit[i]:
            return False
    return True


cdef int err_lit(Client c, bytes msg) except -1:
    """An error reply from a constant message."""
    return c.out.error(PyBytes_AS_STRING(msg), PyBytes_GET_SIZE(msg))


cdef int reply_error_bytes(Client c, bytes msg) except -1:
    """An error built from user bytes (addReplyErrorFormat: CR/LF become spaces)."""
    cdef bytes b = msg.replace(b"\r", b" ").replace(b"\n", b" ")
    return c.out.error(PyBytes_AS_STRING(b), PyBytes_GET_SIZE(b))


cdef int reply_range_error(Client c, int64_t lo, int64_t hi) except -1:
    """getRangeLongFromObjectOrReply's message without a custom text."""
    cdef char buf[128]
    cdef bytes head = b"ERR value is out of range, value must between "
    cdef Py_ssize_t n = PyBytes_GET_SIZE(head)
    memcpy(buf, PyBytes_AS_STRING(head), n)
    n += fmt_int(buf + n, lo)
    memcpy(buf + n, b" and ", 5)
    n += 5
    n += fmt_int(buf + n, hi)
    return c.out.error(buf, n)


cdef int cmd_del(Client c, list argv) except -1:
    cdef Py_ssize_t i, n = PyList_GET_SIZE(argv)
    cdef int64_t count = 0
    cdef Keyspace ks = c.ks
    for i in range(1, n):
        key = <object>PyList_GET_ITEM(argv, i)
        if ks.lookup(key) is not None:
            count += ks.emit_del(key)
            notify(ks, N_GENERIC, b"del", key)
    return c.out.integer(count)


cdef int cmd_unlink(Client c, list argv) except -1:
    """DEL whose big values are freed in slices afterwards (Keyspace.lazy)."""
    c.ks.lazy_free = True
    try:
        return cmd_del(c, argv)
    finally:
        c.ks.lazy_free = False


cdef int cmd_exists(Client c, list argv) except -1:
    cdef Py_ssize_t i, n = PyList_GET_SIZE(argv)
    cdef int64_t count = 0
    for i in range(1, n):
        if c.ks.lookup(<object>PyList_GET_ITEM(argv, i)) is not None:
            count += 1
    return c.out.integer(count)


cdef int cmd_type(Client c, list argv) except -1:
    cdef CObj o = c.ks.lookup(argv[1])
    cdef bytes name
    if o is None:
        return c.out.status(b"none", 4)
    name = <bytes>_TYPE_BYTES[obj_type(o)]
    return c.out.status(PyBytes_AS_STRING(name), PyBytes_GET_SIZE(name))


cdef int cmd_keys(Client c, list argv) except -1:
    cdef bytes pat = <bytes>argv[1]
    cdef Keyspace ks = c.ks
    cdef list out = []
    cdef bint all_ = pat == b"*"
    cdef Py_ssize_t pos = 0
    cdef kt_entry* e
    while True:
        e = kt_next(&ks.d.t, &pos)
        if e == NULL:
            break
        if ks.is_expired(<CObj>e.obj):
            continue
        if all_ or stringmatch(PyBytes_AS_STRING(pat), PyBytes_GET_SIZE(pat), e.key, e.klen,
                               False):
            out.append(kt_key(e))
    c.out.array(len(out))
    for key in out:
        c.out.bulk(<bytes>key)
    return 0


cdef int _type_code(bytes name) except -4:
    """SCAN TYPE: the type code, T_NONE_TYPE for "none", -2 for no such type."""
    cdef bytes n = name.lower()
    if n == b"none":
        return T_NONE_TYPE
    for code, tname in TYPE_NAMES.items():
        if n == tname.encode():
            return code
    return -2


cdef object scan_args(Client c, list argv, Py_ssize_t i, int64_t* count, int* tcode,
                      bint allow_type):
    """Parse MATCH/COUNT/TYPE of the SCAN family. Returns the MATCH pattern
    (None if absent), or False after replying an error."""
    cdef Py_ssize_t n = PyList_GET_SIZE(argv)
    cdef bytes a
    cdef object pat = None
    while i < n:
        a = <bytes>argv[i]
        if opt_eq(a, b"COUNT", 5) and i + 1 < n:
            if not parse_bytes_i64(<bytes>argv[i + 1], count):
                reply_notint(c)
                return False
            if count[0] < 1:
                reply_syntax(c)
                return False
            i += 2
        elif opt_eq(a, b"MATCH", 5) and i + 1 < n:
            pat = <bytes>argv[i + 1]
            if pat == b"*":
                pat = None
            i += 2
        elif allow_type and opt_eq(a, b"TYPE", 4) and i + 1 < n:
            tcode[0] = _type_code(<bytes>argv[i + 1])
            i += 2
        else:
            reply_syntax(c)
            return False
    return pat


cdef int parse_cursor(Client c, bytes s, uint64_t* cur) except -1:
    """Redis's parseScanCursorOrReply: strtoul (so "", "+1" and "-1" are
    cursors), no leading space, nothing after the number, no overflow."""
    cdef const char* p = PyBytes_AS_STRING(s)
    cdef char* end
    cdef unsigned long v
    cerrno.errno = 0
    v = strtoul(p, &end, 10)
    if (PyBytes_GET_SIZE(s) and (p[0] == b' ' or b'\t' <= p[0] <= b'\r')) \
            or end[0] != 0 or cerrno.errno == cerrno.ERANGE:
        err_lit(c, b"ERR invalid cursor")
        return 0
    cur[0] = v
    return 1


cdef int reply_empty_scan(Client c) except -1:
    return c.out.put_raw(b"*2\r\n$1\r\n0\r\n*0\r\n", 15)


cdef int reply_scan(Client c, uint64_t cursor, list items) except -1:
    c.out.array(2)
    c.out.bulk_int(<int64_t>cursor)    # (cursors are below 2**53)
    c.out.array(len(items))
    for x in items:
        c.out.bulk(<bytes>x)
    return 0


cdef inline int _scan_key(Keyspace ks, object key, CObj o, object pat, int tcode, list out,
                          list dead) except -1:
    """SCAN's filters on one key: MATCH, then expiry (as Redis 7.0, an expired
    key that passes MATCH is deleted, after the walk, and "TYPE none" returns
    it: Redis's type check expires it first and then sees type "none"), then
    TYPE."""
    if pat is not None and not match_bytes(pat, <bytes>key):
        return 0
    if ks.is_expired(o):
        dead.append(key)
        if tcode == T_NONE_TYPE:
            out.append(key)
        return 0
    if tcode != -1 and obj_type(o) != tcode and not (tcode == T_STRING and type(o) is HllObj):
        return 0
    out.append(key)
    return 0


cdef bytes _pack_keys(KeyTable t):
    """SCAN's copy of the keys: each a 4-byte length (native order) and its
    bytes, in one bytes object (scan.scan_start_packed)."""
    cdef Py_ssize_t pos = 0, n = 0
    cdef kt_entry* e
    cdef bytes out
    cdef char* p
    cdef uint32_t klen
    while True:
        e = kt_next(&t.t, &pos)
        if e == NULL:
            break
        n += 4 + e.klen
    out = PyBytes_FromStringAndSize(NULL, n)
    p = PyBytes_AS_STRING(out)
    pos = 0
    while True:
        e = kt_next(&t.t, &pos)
        if e == NULL:
            break
        klen = e.klen
        memcpy(p, &klen, 4)
        memcpy(p + 4, e.key, klen)
        p += 4 + klen
    return out


cdef int cmd_scan(Client c, list argv) except -1:
    # A keyspace larger than one reply is walked in a copy of its keys taken
    # at the iteration's first call (scan.pyx: the guarantee and the bounds);
    # a smaller one is returned whole with cursor 0.
    cdef uint64_t cur, nxt = 0
    cdef object pat
    cdef int64_t count = 10
    cdef int tcode = -1
    cdef Py_ssize_t pos, end
    cdef PyObject* v
    cdef kt_entry* e
    cdef list out = []
    cdef list dead = []
    cdef bytes blob
    cdef const char* b
    cdef uint32_t klen
    cdef ScanState st = None
    cdef Keyspace ks = c.ks
    if not parse_cursor(c, <bytes>argv[1], &cur):
        return 0
    pat = scan_args(c, argv, 2, &count, &tcode, True)
    if pat is False:
        return 0
    if cur != 0:
        st = scan_find(cur, SCAN_KEYS, ks.d, None)   # (a cursor of this db's keys)
    if st is None and kt_len(ks.d) > count:
        st = scan_start_packed(SCAN_KEYS, ks.d, None, _pack_keys(ks.d))
    if st is None:
        pos = 0
        while True:
            e = kt_next(&ks.d.t, &pos)
            if e == NULL:
                break
            _scan_key(ks, kt_key(e), <CObj>e.obj, pat, tcode, out, dead)
    else:
        blob = <bytes>st.items[0]
        b = PyBytes_AS_STRING(blob)
        end = PyBytes_GET_SIZE(blob)
        pos = st.pos
        while pos < end and count > 0:
            memcpy(&klen, b + pos, 4)
            key = PyBytes_FromStringAndSize(b + pos + 4, klen)
            pos += 4 + klen
            count -= 1
            v = kt_get(&ks.d.t, key)
            if v != NULL:
                _scan_key(ks, key, <CObj>v, pat, tcode, out, dead)
        nxt = scan_next_at(st, pos, pos >= end)
    for key in dead:
        ks.lookup(key)    # deletes it (an expiry)
    return reply_scan(c, nxt, out)


cdef int cmd_randomkey(Client c, list argv) except -1:
    # A random entry of the key table (kt_random: O(1) expected); a drawn
    # key that has expired is deleted (lazy expiry, as Redis's RANDOMKEY
    # does) and the draw repeated.
    cdef Keyspace ks = c.ks
    cdef kt_entry* e
    while True:
        e = kt_random(&ks.d.t)
        if e == NULL:
            return c.out.nil()
        if not ks.is_expired(<CObj>e.obj):
            return c.out.bulk_raw(e.key, e.klen)
        k = kt_key(e)
        if ks.lookup(k) is not None:
            return c.out.bulk(<bytes>k)


cdef int copy_object(Keyspace ks, bytes dst, CObj o) except -1:
    """Write o's visible content to dst as new effects (RENAME, COPY)."""
    cdef int64_t at = 0
    if o.ttl is not None:
        # the copy's register is this node's write: the deadline in its clock
        at = ks.local_at(<TTLReg>o.ttl)
    ks.emit_del(dst)
    if type(o) is StrObj:
        v = str_get(<StrObj>o)
        emit_reg(ks, dst, v if type(v) is bytes else str(v).encode(), TTL_WRITE, at)
        return 0
    if type(o) is HllObj:
        # the copy is a string holding the HLL's bytes (its first PF* write
        # makes it an HLL object, t_hll.hll_convert)
        emit_reg(ks, dst, hll_bytes(<HllObj>o), TTL_WRITE, at)
        return 0
    if type(o) is SetObj:
        for m in list((<SetObj>o).m):
            emit_sadd(ks, dst, m)
    elif type(o) is HashObj:
        for f, ent in list((<HashObj>o).f.items()):
            emit_hset(ks, dst, f, hash_val(<HashObj>o, f, ent))
    elif type(o) is MVObj:
        first = True
        for v in [(<Ver>x).val for x in (<MVObj>o).vers]:
            emit_mv(ks, dst, v, first)
            first = False
    elif type(o) is ListObj:
        copy_list(ks, dst, <ListObj>o)
    elif type(o) is ZSetObj:
        copy_zset(ks, dst, <ZSetObj>o)
    if at:
        ks.emit_ttl(dst, at)
    return 0


cdef int cmd_rename(Client c, list argv) except -1:
    cdef bytes src = <bytes>argv[1], dst = <bytes>argv[2]
    cdef Keyspace ks = c.ks
    cdef CObj o = ks.lookup(src)
    if o is None:
        c.out.error_str("ERR no such key")
        return 0
    if src == dst:
        return c.out.ok()
    copy_object(ks, dst, o)
    ks.emit_del(src)
    notify(ks, N_GENERIC, b"rename_from", src)
    notify(ks, N_GENERIC, b"rename_to", dst)
    return c.out.ok()


cdef int cmd_renamenx(Client c, list argv) except -1:
    cdef bytes src = <bytes>argv[1], dst = <bytes>argv[2]
    cdef Keyspace ks = c.ks
    cdef CObj o = ks.lookup(src)
    if o is None:
        c.out.error_str("ERR no such key")
        return 0
    if src == dst:
        return c.out.integer(0)
    if ks.lookup(dst) is not None:
        return c.out.integer(0)
    copy_object(ks, dst, o)
    ks.emit_del(src)
    notify(ks, N_GENERIC, b"rename_from", src)
    notify(ks, N_GENERIC, b"rename_to", dst)
    return c.out.integer(1)


cdef Db arg_db(Client c, bytes arg):
    """The Db numbered arg (SELECT, MOVE, COPY ... DB), or None with Redis's
    error written (getIntFromObjectOrReply, then "DB index is out of range")."""
    cdef int64_t n
    cdef list dbs = c.ks.dbs
    if not parse_bytes_i64(arg, &n):
        reply_notint(c)
        return None
    if n < -2147483648 or n > 2147483647:
        reply_range_error(c, -2147483648, 2147483647)
        return None
    if n < 0 or n >= PyList_GET_SIZE(dbs):
        err_lit(c, b"ERR DB index is out of range")
        return None
    return <Db>PyList_GET_ITEM(dbs, n)


cdef int cmd_copy(Client c, list argv) except -1:
    # copyCommand. The copy is new writes on the destination (copy_object,
    # as RENAME's), in the target db (DB n).
    cdef bytes src = <bytes>argv[1], dst = <bytes>argv[2], a
    cdef Keyspace ks = c.ks
    cdef Py_ssize_t j, argc = PyList_GET_SIZE(argv)
    cdef bint replace = False
    cdef Db db = c.db, here = c.db
    cdef CObj o
    j = 3
    while j < argc:
        a = <bytes>argv[j]
        if opt_eq(a, b"REPLACE", 7):
            replace = True
        elif opt_eq(a, b"DB", 2) and j + 1 < argc:
            db = arg_db(c, <bytes>argv[j + 1])
            if db is None:
                return 0
            j += 1
        else:
            return reply_syntax(c)
        j += 1
    if src == dst and db is here:
        return err_lit(c, b"ERR source and destination objects are the same")
    o = ks.lookup_r(src)
    if o is None:
        return c.out.integer(0)
    if db is not here:
        ks.use(db)
    try:
        if ks.lookup(dst) is not None and not replace:
            return c.out.integer(0)
        copy_object(ks, dst, o)
        notify(ks, N_GENERIC, b"copy_to", dst)
    finally:
        if db is not here:
            ks.use(here)
    return c.out.integer(1)


cdef int cmd_move(Client c, list argv) except -1:
    # moveCommand: the value is written in the target db (new writes, as
    # COPY's) and deleted from this one (an observed DEL), in one group
    cdef bytes key = <bytes>argv[1]
    cdef Keyspace ks = c.ks
    cdef Db db = arg_db(c, <bytes>argv[2]), here = c.db
    cdef CObj o
    if db is None:
        return 0
    if db is here:
        return err_lit(c, b"ERR source and destination objects are the same")
    o = ks.lookup(key)
    if o is None:
        return c.out.integer(0)
    ks.use(db)
    try:
        if ks.lookup(key) is not None:
            return c.out.integer(0)
        copy_object(ks, key, o)
    finally:
        ks.use(here)
    ks.emit_del(key)
    # moveCommand's events: move_from in the source db, move_to in the target
    if ks.nmask & N_GENERIC:
        notify(ks, N_GENERIC, b"move_from", key)
        ks.use(db)
        try:
            notify(ks, N_GENERIC, b"move_to", key)
        finally:
            ks.use(here)
    return c.out.integer(1)


cdef int _bad_expire(Client c, const char* name) except -1:
    # addReplyErrorExpireTime: "invalid expire time in '<cmd>' command"
    cdef bytes msg = b"ERR invalid expire time in '" + <bytes>name + b"' command"
    return c.out.error(PyBytes_AS_STRING(msg), PyBytes_GET_SIZE(msg))


cdef int _expire(Client c, list argv, int64_t unit, bint absolute, const char* name) except -1:
    # expireGenericCommand: options, then the number, then the key
    cdef Keyspace ks = c.ks
    cdef bytes key = <bytes>PyList_GET_ITEM(argv, 1)
    cdef int64_t when, cur_at
    cdef Py_ssize_t i, n = PyList_GET_SIZE(argv)
    cdef bint nx = False, xx = False, gt = False, lt = False
    cdef bytes a
    cdef CObj o
    for i in range(3, n):
        a = <bytes>argv[i]
        if opt_eq(a, b"NX", 2):
            nx = True
        elif opt_eq(a, b"XX", 2):
            xx = True
        elif opt_eq(a, b"GT", 2):
            gt = True
        elif opt_eq(a, b"LT", 2):
            lt = True
        else:
            return reply_error_bytes(c, b"ERR Unsupported option " + a.split(b"\0", 1)[0])
    if nx and (xx or gt or lt):
        return err_lit(c, b"ERR NX and XX, GT or LT options at the same time are not compatible")
    if gt and lt:
        return err_lit(c, b"ERR GT and LT options at the same time are not compatible")
    if not parse_bytes_i64(<bytes>PyList_GET_ITEM(argv, 2), &when):
        return reply_notint(c)
    if unit == 1000:
        if when > MAX_MS // 1000 or when < -(MAX_MS // 1000):
            return _bad_expire(c, name)
        when *= 1000
    if not absolute:
        if when > MAX_MS - ks.now:
            return _bad_expire(c, name)
        when += ks.now
    o = ks.lookup(key)
    if o is None:
        return c.out.integer(0)
    if nx or xx or gt or lt:
        cur_at = ks.local_at(<TTLReg>o.ttl) if o.ttl is not None else 0
        if nx and cur_at != 0:
            return c.out.integer(0)
        if xx and cur_at == 0:
            return c.out.integer(0)
        if gt and (cur_at == 0 or when <= cur_at):
            return c.out.integer(0)
        if lt and cur_at != 0 and when >= cur_at:
            return c.out.integer(0)
    if when <= ks.now:
        ks.emit_del(key)
        notify(ks, N_GENERIC, b"del", key)
    else:
        ks.emit_ttl(key, when)
        notify(ks, N_GENERIC, b"expire", key)
    return c.out.integer(1)


cdef int cmd_expire(Client c, list argv) except -1:
    return _expire(c, argv, 1000, False, b"expire")


cdef int cmd_pexpire(Client c, list argv) except -1:
    return _expire(c, argv, 1, False, b"pexpire")


cdef int cmd_expireat(Client c, list argv) except -1:
    return _expire(c, argv, 1000, True, b"expireat")


cdef int cmd_pexpireat(Client c, list argv) except -1:
    return _expire(c, argv, 1, True, b"pexpireat")


cdef int _ttl(Client c, list argv, bint ms, bint absolute) except -1:
    cdef CObj o = c.ks.lookup_r(argv[1])
    cdef int64_t at, left
    if o is None:
        return c.out.integer(-2)
    if o.ttl is None or (<TTLReg>o.ttl).at == 0:
        return c.out.integer(-1)
    # another node's deadline is shown in this node's clock (local_at)
    at = c.ks.local_at(<TTLReg>o.ttl)
    # ttlGenericCommand: seconds are rounded, for EXPIRETIME too
    left = at if absolute else at - c.ks.now
    if left < 0:
        left = 0
    if ms:
        return c.out.integer(left)
    # (left + 500) / 1000 without overflowing near INT64_MAX (redis's build
    # answers the exact quotient there too)
    return c.out.integer(left // 1000 + (left % 1000 + 500) // 1000)


cdef int cmd_ttl(Client c, list argv) except -1:
    return _ttl(c, argv, False, False)


cdef int cmd_pttl(Client c, list argv) except -1:
    return _ttl(c, argv, True, False)


cdef int cmd_expiretime(Client c, list argv) except -1:
    return _ttl(c, argv, False, True)


cdef int cmd_pexpiretime(Client c, list argv) except -1:
    return _ttl(c, argv, True, True)


cdef int cmd_persist(Client c, list argv) except -1:
    cdef CObj o = c.ks.lookup(argv[1])
    if o is None or o.ttl is None or (<TTLReg>o.ttl).at == 0:
        return c.out.integer(0)
    c.ks.emit_ttl(argv[1], 0)
    notify(c.ks, N_GENERIC, b"persist", argv[1])
    return c.out.integer(1)


cdef int cmd_touch(Client c, list argv) except -1:
    cdef Py_ssize_t i
    cdef int64_t count = 0
    for i in range(1, PyList_GET_SIZE(argv)):
        if c.ks.lookup_r(argv[i]) is not None:
            count += 1
    return c.out.integer(count)


def register(Server srv):
    """Name the handlers; arity, flags and keys come from the command table."""
    add_command(srv, b"del", cmd_del)
    add_command(srv, b"unlink", cmd_unlink)
    add_command(srv, b"exists", cmd_exists)
    add_command(srv, b"touch", cmd_touch)
    add_command(srv, b"type", cmd_type)
    add_command(srv, b"keys", cmd_keys)
    add_command(srv, b"scan", cmd_scan)
    add_command(srv, b"randomkey", cmd_randomkey)
    add_command(srv, b"rename", cmd_rename)
    add_command(srv, b"renamenx", cmd_renamenx)
    add_command(srv, b"copy", cmd_copy)
    add_command(srv, b"move", cmd_move)
    add_command(srv, b"expire", cmd_expire)
    add_command(srv, b"pexpire", cmd_pexpire)
    add_command(srv, b"expireat", cmd_expireat)
    add_command(srv, b"pexpireat", cmd_pexpireat)
    add_command(srv, b"ttl", cmd_ttl)
    add_command(srv, b"pttl", cmd_pttl)
    add_command(srv, b"expiretime", cmd_expiretime)
    add_command(srv, b"pexpiretime", cmd_pexpiretime)
    add_command(srv, b"persist", cmd_persist)
