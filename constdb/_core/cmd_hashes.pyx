"""Hash commands (CRDT.md 3.3: OR-Map of LWW fields)."""

import random

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.dict cimport PyDict_GetItem, PyDict_Next
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from cpython.object cimport PyObject
from libc.stdint cimport int64_t, uint64_t

from constdb._core.cmd_keys cimport parse_cursor, scan_args
from constdb._core.codec cimport parse_bytes_i64, parse_i64
from constdb._core.keyspace cimport Keyspace, match_bytes
from constdb._core.objects cimport CObj, HashObj, Ver, best_ver
from constdb._core.protocol cimport (
    F_DENYOOM, F_FAST, F_READONLY, F_WRITE, Client, Server, add_command, reply_notint,
    reply_syntax, reply_wrongtype,
)


cdef HashObj _get(Client c, object key, bint* wrong):
    cdef CObj o = c.ks.lookup_r(key)
    wrong[0] = False
    if o is None:
        return None
    if type(o) is not HashObj:
        wrong[0] = True
        return None
    return <HashObj>o


cdef inline object _val(HashObj o, object field):
    cdef PyObject* p = PyDict_GetItem(o.f, field)
    if p == NULL:
        return None
    return best_ver(<object>p).val


cdef int _hset_many(Client c, list argv, bint reply_ok) except -1:
    cdef Keyspace ks = c.ks
    cdef object key = <object>PyList_GET_ITEM(argv, 1)
    cdef Py_ssize_t i, n = PyList_GET_SIZE(argv)
    cdef CObj o
    cdef int64_t added = 0
    if n % 2 != 0:
        c.out.error_str("ERR wrong number of arguments for '%s' command" % (<bytes>argv[0]).lower().decode())
        return 0
    o = ks.lookup(key)
    if o is not None and type(o) is not HashObj:
        return reply_wrongtype(c)
    for i in range(2, n, 2):
        f = <object>PyList_GET_ITEM(argv, i)
        if o is None or f not in (<HashObj>o).f:
            added += 1
        ks.emit_hset(key, f, <object>PyList_GET_ITEM(argv, i + 1))
        if o is None:
            o = ks.lookup(key)
    if reply_ok:
        return c.out.ok()
    return c.out.integer(added)


cdef int cmd_hset(Client c, list argv) except -1:
    return _hset_many(c, argv, False)


cdef int cmd_hmset(Client c, list argv) except -1:
    return _hset_many(c, argv, True)


cdef int cmd_hsetnx(Client c, list argv) except -1:
    cdef bint wrong
    cdef HashObj o = _get(c, argv[1], &wrong)
    if wrong:
        return reply_wrongtype(c)
    if o is not None and argv[2] in o.f:
        return c.out.integer(0)
    c.ks.emit_hset(argv[1], argv[2], argv[3])
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
        return c.out.array(0)
    c.out.array(2 * len(o.f))
    for f, ent in o.f.items():
        c.out.bulk(<bytes>f)
        c.out.bulk(<bytes>best_ver(ent).val)
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
    for ent in o.f.values():
        c.out.bulk(<bytes>best_ver(ent).val)
    return 0


cdef int cmd_hdel(Client c, list argv) except -1:
    cdef bint wrong
    cdef HashObj o = _get(c, argv[1], &wrong)
    cdef Py_ssize_t i, n = PyList_GET_SIZE(argv)
    cdef int64_t removed = 0
    if wrong:
        return reply_wrongtype(c)
    if o is None:
        return c.out.integer(0)
    for i in range(2, n):
        if argv[i] in o.f:
            c.ks.emit_hdel(argv[1], o, argv[i])
            removed += 1
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


cdef int cmd_hincrby(Client c, list argv) except -1:
    cdef bint wrong
    cdef int64_t by, cur = 0
    cdef HashObj o
    if not parse_bytes_i64(<bytes>argv[3], &by):
        return reply_notint(c)
    o = _get(c, argv[1], &wrong)
    if wrong:
        return reply_wrongtype(c)
    v = None if o is None else _val(o, argv[2])
    if v is not None:
        if not parse_i64(PyBytes_AS_STRING(<bytes>v), PyBytes_GET_SIZE(<bytes>v), &cur):
            c.out.error_str("ERR hash value is not an integer")
            return 0
    if (by < 0 and cur < 0 and by < -0x7FFFFFFFFFFFFFFF - 1 - cur) or \
       (by > 0 and cur > 0 and by > 0x7FFFFFFFFFFFFFFF - cur):
        c.out.error_str("ERR increment or decrement would overflow")
        return 0
    c.ks.emit_hset(argv[1], argv[2], str(cur + by).encode())
    return c.out.integer(cur + by)


cdef int cmd_hrandfield(Client c, list argv) except -1:
    cdef bint wrong
    cdef int64_t count = 1
    cdef Py_ssize_t n = PyList_GET_SIZE(argv), i
    cdef bint has_count = n >= 3, withvalues = False
    cdef HashObj o
    cdef list keys
    if n > 4:
        return reply_syntax(c)
    if has_count and not parse_bytes_i64(<bytes>argv[2], &count):
        return reply_notint(c)
    if n == 4:
        if (<bytes>argv[3]).upper() != b"WITHVALUES":
            return reply_syntax(c)
        withvalues = True
    if has_count and (count < -0x7FFFFFFFFFFFFFFF or (withvalues and count < -(0x7FFFFFFFFFFFFFFF // 2))):
        c.out.error_str("ERR value is out of range")
        return 0
    o = _get(c, argv[1], &wrong)
    if wrong:
        return reply_wrongtype(c)
    if o is None:
        if has_count:
            return c.out.array(0)
        return c.out.nil()
    keys = list(o.f)
    if not has_count:
        return c.out.bulk(<bytes>keys[random.randrange(len(keys))])
    if count >= 0:
        picked = keys if count >= len(keys) else random.sample(keys, count)
    else:
        picked = [keys[random.randrange(len(keys))] for i in range(-count)]
    c.out.array(len(picked) * (2 if withvalues else 1))
    for f in picked:
        c.out.bulk(<bytes>f)
        if withvalues:
            c.out.bulk(<bytes>_val(o, f))
    return 0


cdef int cmd_hscan(Client c, list argv) except -1:
    cdef bint wrong
    cdef uint64_t cur
    cdef object pat
    cdef int64_t count = 10, visited = 0
    cdef int tcode = -1
    cdef Py_ssize_t pos
    cdef PyObject* k
    cdef PyObject* v
    cdef list out = []
    cdef HashObj o
    if not parse_cursor(c, <bytes>argv[2], &cur):
        return 0
    pat = scan_args(c, argv, 3, &count, &tcode, False)
    if pat is False:
        return 0
    o = _get(c, argv[1], &wrong)
    if wrong:
        return reply_wrongtype(c)
    pos = <Py_ssize_t>cur
    if o is not None:
        while visited < count:
            if not PyDict_Next(o.f, &pos, &k, &v):
                pos = 0
                break
            visited += 1
            if pat is None or match_bytes(pat, <bytes>k):
                out.append(<object>k)
                out.append(best_ver(<object>v).val)
    else:
        pos = 0
    c.out.array(2)
    c.out.bulk_int(pos)
    c.out.array(len(out))
    for x in out:
        c.out.bulk(<bytes>x)
    return 0


def register(Server srv):
    cdef int W = F_WRITE | F_DENYOOM | F_FAST
    add_command(srv, b"hset", -4, W, 1, 1, 1, cmd_hset, "hash")
    add_command(srv, b"hmset", -4, W, 1, 1, 1, cmd_hmset, "hash")
    add_command(srv, b"hsetnx", 4, W, 1, 1, 1, cmd_hsetnx, "hash")
    add_command(srv, b"hget", 3, F_READONLY | F_FAST, 1, 1, 1, cmd_hget, "hash")
    add_command(srv, b"hmget", -3, F_READONLY | F_FAST, 1, 1, 1, cmd_hmget, "hash")
    add_command(srv, b"hgetall", 2, F_READONLY, 1, 1, 1, cmd_hgetall, "hash")
    add_command(srv, b"hkeys", 2, F_READONLY, 1, 1, 1, cmd_hkeys, "hash")
    add_command(srv, b"hvals", 2, F_READONLY, 1, 1, 1, cmd_hvals, "hash")
    add_command(srv, b"hdel", -3, F_WRITE | F_FAST, 1, 1, 1, cmd_hdel, "hash")
    add_command(srv, b"hlen", 2, F_READONLY | F_FAST, 1, 1, 1, cmd_hlen, "hash")
    add_command(srv, b"hexists", 3, F_READONLY | F_FAST, 1, 1, 1, cmd_hexists, "hash")
    add_command(srv, b"hstrlen", 3, F_READONLY | F_FAST, 1, 1, 1, cmd_hstrlen, "hash")
    add_command(srv, b"hincrby", 4, W, 1, 1, 1, cmd_hincrby, "hash")
    add_command(srv, b"hrandfield", -2, F_READONLY, 1, 1, 1, cmd_hrandfield, "hash")
    add_command(srv, b"hscan", -3, F_READONLY, 1, 1, 1, cmd_hscan, "hash")
