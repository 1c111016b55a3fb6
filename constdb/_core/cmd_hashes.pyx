"""Hash commands (docs/crdt.md section 3.3: OR-Map of LWW fields)."""

import random

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.dict cimport PyDict_GetItem, PyDict_Keys, PyDict_Next, PyDict_Size
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from cpython.object cimport PyObject
from libc.stdint cimport int64_t, uint64_t

from constdb._core.cmd_keys cimport (
    err_lit, opt_eq, parse_cursor, reply_empty_scan, reply_range_error, reply_scan, scan_args,
)
from constdb._core.codec cimport ld2string_human, parse_bytes_i64, parse_i64, string2ld
from constdb._core.glob cimport match_bytes
from constdb._core.keyspace cimport N_HASH, Keyspace, notify, notify_gone
from constdb._core.objects cimport CObj, HashObj, draw, hash_val
from constdb._core.protocol cimport (
    Client, Server, add_command, reply_notint, reply_syntax, reply_wrongtype,
)
from constdb._core.scan cimport (
    SCAN_HASH, ScanState, scan_drop, scan_end, scan_find, scan_next, scan_start,
)
from constdb._core.t_hash cimport emit_hdel, emit_hfincr, emit_hincr, emit_hset, emit_hset_at


cdef inline HashObj _get(Client c, object key, bint* wrong):
    return <HashObj>c.ks.lookup_as(key, HashObj, True, wrong)


cdef inline object _val(HashObj o, object field):
    cdef PyObject* p = PyDict_GetItem(o.f, field)
    if p == NULL:
        return None
    return hash_val(o, field, <object>p)


cdef int _hset_many(Client c, list argv, bint reply_ok) except -1:
    cdef Keyspace ks = c.ks
    cdef object key = <object>PyList_GET_ITEM(argv, 1)
    cdef Py_ssize_t i, n = PyList_GET_SIZE(argv)
    cdef CObj o
    cdef int64_t added = 0
    if n % 2 != 0:
        if reply_ok:
            return err_lit(c, b"ERR wrong number of arguments for 'hmset' command")
        return err_lit(c, b"ERR wrong number of arguments for 'hset' command")
    o = ks.lookup(key)
    if o is not None and type(o) is not HashObj:
        return reply_wrongtype(c)
    for i in range(2, n, 2):
        f = <object>PyList_GET_ITEM(argv, i)
        if o is not None and not ks.alts:
            # o is d[key] (lookup's): no second look-up; 1 if f is new
            added += emit_hset_at(ks, key, <HashObj>o, True, f,
                                  <object>PyList_GET_ITEM(argv, i + 1))
        else:
            if o is None or f not in (<HashObj>o).f:
                added += 1
            emit_hset(ks, key, f, <object>PyList_GET_ITEM(argv, i + 1))
        if o is None:
            o = ks.lookup(key)
    notify(ks, N_HASH, b"hset", key)
    if reply_ok:
        return c.out.ok()
    return c.out.integer(added)


cdef int cmd_hset(Client c, list argv) except -1:
    return _hset_many(c, argv, False)


cdef int cmd_hmset(Client c, list argv) except -1:
    return _hset_many(c, argv, True)


cdef int cmd_hsetnx(Client c, list argv) except -1:
    cdef bint wrong
    cdef HashObj o = <HashObj>c.ks.lookup_as(argv[1], HashObj, False, &wrong)
    if wrong:
        return reply_wrongtype(c)
    if o is not None and argv[2] in o.f:
        return c.out.integer(0)
    emit_hset(c.ks, argv[1], argv[2], argv[3])
    notify(c.ks, N_HASH, b"hset", argv[1])
    return c.out.integer(1)


cdef int cmd_hget(Client c, list argv) except -1:
    cdef bint wrong
    cdef HashObj o = _get(c, <object>PyList_GET_ITEM(argv, 1), &wrong)
    if wrong:
        return reply_wrongtype(c)
    if o is None:
        return c.out.nil()
    v = _val(o, <object>PyList_GET_ITEM(argv, 2))
    if v is None:
        return c.out.nil()
    return c.out.bulk(<bytes>v)


cdef int cmd_hmget(Client c, list argv) except -1:
    cdef bint wrong
    cdef HashObj o = _get(c, argv[1], &wrong)
    cdef Py_ssize_t i, n = PyList_GET_SIZE(argv)
    if wrong:
        return reply_wrongtype(c)
    c.out.array(n - 2)
    for i in range(2, n):
        v = None if o is None else _val(o, argv[i])
        if v is None:
            c.out.nil()
        else:
            c.out.bulk(<bytes>v)
    return 0


cdef int cmd_hgetall(Client c, list argv) except -1:
    cdef bint wrong
    cdef HashObj o = _get(c, argv[1], &wrong)
    if wrong:
        return reply_wrongtype(c)
    if o is None:
        return c.out.map(0)
    c.out.map(len(o.f))
    for f, ent in o.f.items():
        c.out.bulk(<bytes>f)
        c.out.bulk(<bytes>hash_val(o, f, ent))
    return 0


cdef int cmd_hkeys(Client c, list argv) except -1:
    cdef bint wrong
    cdef HashObj o = _get(c, argv[1], &wrong)
    if wrong:
        return reply_wrongtype(c)
    if o is None:
        return c.out.array(0)
    c.out.array(len(o.f))
    for f in o.f:
        c.out.bulk(<bytes>f)
    return 0


cdef int cmd_hvals(Client c, list argv) except -1:
    cdef bint wrong
    cdef HashObj o = _get(c, argv[1], &wrong)
    if wrong:
        return reply_wrongtype(c)
    if o is None:
        return c.out.array(0)
    c.out.array(len(o.f))
    for f, ent in o.f.items():
        c.out.bulk(<bytes>hash_val(o, f, ent))
    return 0


cdef int cmd_hdel(Client c, list argv) except -1:
    cdef bint wrong
    cdef HashObj o = <HashObj>c.ks.lookup_as(argv[1], HashObj, False, &wrong)
    cdef Py_ssize_t i, n = PyList_GET_SIZE(argv)
    cdef int64_t removed = 0
    if wrong:
        return reply_wrongtype(c)
    if o is None:
        return c.out.integer(0)
    for i in range(2, n):
        if argv[i] in o.f:
            emit_hdel(c.ks, argv[1], o, argv[i])
            removed += 1
    if removed:
        notify(c.ks, N_HASH, b"hdel", argv[1])
        notify_gone(c.ks, argv[1])
    return c.out.integer(removed)


cdef int cmd_hlen(Client c, list argv) except -1:
    cdef bint wrong
    cdef HashObj o = _get(c, argv[1], &wrong)
    if wrong:
        return reply_wrongtype(c)
    return c.out.integer(0 if o is None else len(o.f))


cdef int cmd_hexists(Client c, list argv) except -1:
    cdef bint wrong
    cdef HashObj o = _get(c, argv[1], &wrong)
    if wrong:
        return reply_wrongtype(c)
    return c.out.integer(1 if o is not None and argv[2] in o.f else 0)


cdef int cmd_hstrlen(Client c, list argv) except -1:
    cdef bint wrong
    cdef HashObj o = _get(c, argv[1], &wrong)
    if wrong:
        return reply_wrongtype(c)
    v = None if o is None else _val(o, argv[2])
    return c.out.integer(0 if v is None else PyBytes_GET_SIZE(<bytes>v))


cdef object _field_value(Client c, object key, object field, bint* wrong):
    """A field's visible value (None: no such field or key) for HINCRBY*."""
    cdef HashObj o = <HashObj>c.ks.lookup_as(key, HashObj, False, wrong)
    cdef PyObject* p
    if o is None:
        return None
    p = PyDict_GetItem(o.f, field)
    return hash_val(o, field, <object>p) if p != NULL else None


cdef int cmd_hincrby(Client c, list argv) except -1:
    # a counter (docs/crdt.md section 3.1 on a field, t_hash.pyx): concurrent HINCRBYs add up
    cdef bint wrong
    cdef int64_t by, cur = 0
    if not parse_bytes_i64(<bytes>argv[3], &by):
        return reply_notint(c)
    v = _field_value(c, argv[1], argv[2], &wrong)
    if wrong:
        return reply_wrongtype(c)
    if v is not None:
        if not parse_i64(PyBytes_AS_STRING(<bytes>v), PyBytes_GET_SIZE(<bytes>v), &cur):
            return err_lit(c, b"ERR hash value is not an integer")
    if (by < 0 and cur < 0 and by < -0x7FFFFFFFFFFFFFFF - 1 - cur) or \
       (by > 0 and cur > 0 and by > 0x7FFFFFFFFFFFFFFF - cur):
        return err_lit(c, b"ERR increment or decrement would overflow")
    emit_hincr(c.ks, argv[1], argv[2], by, v is None)
    notify(c.ks, N_HASH, b"hincrby", argv[1])
    return c.out.integer(cur + by)


cdef int cmd_hincrbyfloat(Client c, list argv) except -1:
    # hincrbyfloatCommand: the increment, the key's type, the field's value;
    # the result is the field's new value plus this node's float counter of
    # the field (docs/crdt.md section 3.7): concurrent ones add up
    cdef bint wrong
    cdef long double by, cur = 0
    cdef bytes incr = <bytes>argv[3], out
    if not string2ld(PyBytes_AS_STRING(incr), PyBytes_GET_SIZE(incr), &by):
        return err_lit(c, b"ERR value is not a valid float")
    if by != by or by - by != 0:
        return err_lit(c, b"ERR value is NaN or Infinity")
    v = _field_value(c, argv[1], argv[2], &wrong)
    if wrong:
        return reply_wrongtype(c)
    if v is not None:
        if not string2ld(PyBytes_AS_STRING(<bytes>v), PyBytes_GET_SIZE(<bytes>v), &cur):
            return err_lit(c, b"ERR hash value is not a float")
    cur += by
    if cur != cur or cur - cur != 0:
        return err_lit(c, b"ERR increment would produce NaN or Infinity")
    out = ld2string_human(cur)
    emit_hfincr(c.ks, argv[1], argv[2], out, by)
    notify(c.ks, N_HASH, b"hincrbyfloat", argv[1])
    return c.out.bulk(out)


cdef object _hpick(HashObj o):
    """One field of o (not empty) at random, from o.pick (objects.draw), a
    list of the fields built once and kept; adding a field drops it."""
    if o.pick is None or o.pick_f is not o.f:
        o.pick = list(o.f)
        o.pick_f = o.f
    return draw(o.f, o.pick, False)


cdef int cmd_hrandfield(Client c, list argv) except -1:
    # hrandfieldCommand: count, then the rest of the syntax, then the key.
    # WITHVALUES: a flat array in RESP2, an array of [field, value] in RESP3.
    cdef bint wrong
    cdef int64_t count = 1
    cdef Py_ssize_t n = PyList_GET_SIZE(argv), _i, size
    cdef bint has_count = n >= 3, withvalues = False
    cdef bint pairs
    cdef HashObj o
    cdef list picked
    if has_count:
        if not parse_bytes_i64(<bytes>argv[2], &count):
            return reply_notint(c)
        if count < -0x7FFFFFFFFFFFFFFF:
            return reply_range_error(c, -0x7FFFFFFFFFFFFFFF, 0x7FFFFFFFFFFFFFFF)
        if n > 4 or (n == 4 and not opt_eq(<bytes>argv[3], b"WITHVALUES", 10)):
            return reply_syntax(c)
        if n == 4:
            withvalues = True
            if count < -(0x7FFFFFFFFFFFFFFF // 2) or count > 0x7FFFFFFFFFFFFFFF // 2:
                return err_lit(c, b"ERR value is out of range")
    o = _get(c, argv[1], &wrong)
    if wrong:
        return reply_wrongtype(c)
    if o is None:
        if has_count:
            return c.out.array(0)
        return c.out.nil()
    size = len(o.f)
    if not has_count:
        return c.out.bulk(<bytes>_hpick(o))
    if count == 0:
        return c.out.array(0)
    if count >= size:
        picked = list(o.f)
    elif count > 0 and count * 4 > size:
        picked = random.sample(list(o.f), count)
    elif count > 0:
        # few of many: draws until count distinct ones
        picked = []
        seen = set()
        while len(picked) < count:
            f = _hpick(o)
            if f not in seen:
                seen.add(f)
                picked.append(f)
    else:
        picked = [_hpick(o) for _i in range(-count)]
    pairs = withvalues and c.out.resp3
    c.out.array(len(picked) * (2 if withvalues and not pairs else 1))
    for f in picked:
        if pairs:
            c.out.array(2)
        c.out.bulk(<bytes>f)
        if withvalues:
            c.out.bulk(<bytes>_val(o, f))
    return 0


cdef bint _listpack_like(HashObj o):
    """Would Redis 7.0 keep this hash as a listpack (at most 128 fields, every
    field and value at most 64 bytes)? HSCAN then returns it in one call."""
    if len(o.f) > 128:
        return False
    for k, ent in o.f.items():
        if PyBytes_GET_SIZE(<bytes>k) > 64 or PyBytes_GET_SIZE(<bytes>hash_val(o, k, ent)) > 64:
            return False
    return True


cdef int cmd_hscan(Client c, list argv) except -1:
    # hscanCommand: cursor, key (missing: empty scan), type, then options. A
    # hash larger than one reply is walked in a copy of its fields (scan.pyx).
    cdef bint wrong
    cdef uint64_t cur, nxt = 0
    cdef object pat
    cdef int64_t count = 10
    cdef int tcode = -1
    cdef Py_ssize_t pos, end
    cdef PyObject* k
    cdef PyObject* v
    cdef list out = []
    cdef list items
    cdef HashObj o
    cdef ScanState st = None
    if not parse_cursor(c, <bytes>argv[2], &cur):
        return 0
    o = _get(c, argv[1], &wrong)
    if wrong:
        return reply_wrongtype(c)
    if o is None:
        scan_drop(cur, SCAN_HASH, c.ks, argv[1])
        return reply_empty_scan(c)
    pat = scan_args(c, argv, 3, &count, &tcode, False)
    if pat is False:
        return 0
    if _listpack_like(o):
        scan_drop(cur, SCAN_HASH, c.ks, argv[1])
        for f, ent in o.f.items():
            if pat is None or match_bytes(pat, <bytes>f):
                out.append(f)
                out.append(hash_val(o, f, ent))
    else:
        if cur != 0:
            st = scan_find(cur, SCAN_HASH, c.ks, argv[1])
        if st is None and PyDict_Size(o.f) > count:
            st = scan_start(SCAN_HASH, c.ks, argv[1], PyDict_Keys(o.f))
        if st is None:
            pos = 0
            while PyDict_Next(o.f, &pos, &k, &v):
                if pat is None or match_bytes(pat, <bytes>k):
                    out.append(<object>k)
                    out.append(hash_val(o, <object>k, <object>v))
        else:
            items = st.items
            end = scan_end(st, count)
            for pos in range(st.pos, end):
                k = PyList_GET_ITEM(items, pos)
                v = PyDict_GetItem(o.f, <object>k)
                if v != NULL and (pat is None or match_bytes(pat, <bytes>k)):
                    out.append(<object>k)
                    out.append(hash_val(o, <object>k, <object>v))
            nxt = scan_next(st, end)
    return reply_scan(c, nxt, out)


def register(Server srv):
    """Name the handlers; arity, flags and keys come from the command table."""
    add_command(srv, b"hset", cmd_hset)
    add_command(srv, b"hmset", cmd_hmset)
    add_command(srv, b"hsetnx", cmd_hsetnx)
    add_command(srv, b"hget", cmd_hget)
    add_command(srv, b"hmget", cmd_hmget)
    add_command(srv, b"hgetall", cmd_hgetall)
    add_command(srv, b"hkeys", cmd_hkeys)
    add_command(srv, b"hvals", cmd_hvals)
    add_command(srv, b"hdel", cmd_hdel)
    add_command(srv, b"hlen", cmd_hlen)
    add_command(srv, b"hexists", cmd_hexists)
    add_command(srv, b"hstrlen", cmd_hstrlen)
    add_command(srv, b"hincrby", cmd_hincrby)
    add_command(srv, b"hincrbyfloat", cmd_hincrbyfloat)
    add_command(srv, b"hrandfield", cmd_hrandfield)
    add_command(srv, b"hscan", cmd_hscan)
