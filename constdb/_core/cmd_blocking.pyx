"""Blocking pops: BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BLMPOP, BZPOPMIN,
BZPOPMAX, BZMPOP (Redis 7.0's t_list.c / t_zset.c / blocked.c replies and
errors).

A key that holds data is served at once, by the non-blocking command's own
handler where its reply fits (LPOP, RPOP, LMOVE: the Command's C function is
called) or here (the sorted-set pops, whose replies nest differently). A
client that finds nothing, outside EXEC and scripts, is handed to the
Python side (constdb/blocking.py: `set_blocker`), which keeps the waiters
per key and calls `serve()` when the keyspace reports that a key it waits on
changed (Keyspace.ready), for a local write or a peer's replicated record.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.list cimport PyList_GET_SIZE
from libc cimport errno as cerrno
from libc.stdint cimport INT64_MAX, INT64_MIN, int64_t
from libc.string cimport memcpy

from constdb._core.backlog cimport Backlog
from constdb._core.cmd_keys cimport err_lit, opt_eq
from constdb._core.codec cimport parse_bytes_i64
from constdb._core.keyspace cimport N_ZSET, Keyspace, notify, notify_gone
from constdb._core.objects cimport CObj, ListObj, ZEnt, ZSetObj
from constdb._core.protocol cimport (
    F_BLOCKING, Client, Command, Server, add_command, reply_syntax, reply_wrongtype,
)
from constdb._core.t_zset cimport ZIndex, ZNode, emit_zrem, reply_score, zn_back, zn_ml, zn_mp

cdef extern from "stdlib.h":
    long double strtold(const char* s, char** end) nogil

cdef extern from "math.h":
    bint isnan(long double x) nogil
    long double ceill(long double x) nogil

cdef extern from "ctype.h":
    int isspace(int c) nogil

cdef enum:
    MAX_LD_CHARS = 5 * 1024          # Redis's MAX_LONG_DOUBLE_CHARS
    # what a waiter waits for (params[0])
    K_LPOP = 1      # BLPOP / BRPOP / BLMPOP: params (kind, left, count: -1 none)
    K_LMOVE = 2     # BLMOVE / BRPOPLPUSH: (kind, from_left, dst, to_left)
    K_ZPOP = 3      # BZPOPMIN / BZPOPMAX / BZMPOP: (kind, max, count: -1 none)

cdef object _blocker = None   # Blocking.block(client, keys, deadline_ms, params)


def set_blocker(fn):
    """The function that parks a client that found nothing (constdb/blocking.py)."""
    global _blocker
    _blocker = fn


cdef int _timeout(Client c, bytes arg, int64_t* deadline) except -1:
    """Redis's getTimeoutFromObjectOrReply in seconds: 1 and the deadline in
    wall ms (0: forever), or 0 with the error replied."""
    cdef char buf[MAX_LD_CHARS]
    cdef Py_ssize_t n = PyBytes_GET_SIZE(arg)
    cdef char* end
    cdef long double v
    cdef int64_t ms
    if n == 0 or n >= MAX_LD_CHARS:
        err_lit(c, b"ERR timeout is not a float or out of range")
        return 0
    memcpy(buf, PyBytes_AS_STRING(arg), n)
    buf[n] = 0
    cerrno.errno = 0
    v = strtold(buf, &end)
    if (isspace(<unsigned char>buf[0]) or end[0] != 0 or isnan(v)
            or (cerrno.errno == cerrno.ERANGE and (v > 1e300 or v < -1e300 or v == 0))):
        err_lit(c, b"ERR timeout is not a float or out of range")
        return 0
    v = ceill(v * 1000.0)
    # (long long) of a value out of its range is LLONG_MIN on x86-64, as Redis gets it
    if v >= <long double>INT64_MAX or v < <long double>INT64_MIN:
        ms = INT64_MIN
    else:
        ms = <int64_t>v
    if ms < 0:
        err_lit(c, b"ERR timeout is negative")
        return 0
    if ms > 0:
        if ms > INT64_MAX - c.ks.now:
            err_lit(c, b"ERR timeout is out of range")
            return 0
        ms += c.ks.now
    deadline[0] = ms
    return 1


cdef inline bint _may_block(Client c) noexcept:
    """The running request is the blocking command itself, sent by a
    connected client (not one inside EXEC, nor a script's call, nor a client
    made without a connection): Redis's CLIENT_DENY_BLOCKING."""
    return (c.rcmd is not None and (c.rcmd.flags & F_BLOCKING) != 0
            and c.transport is not None)


cdef int _call(Client c, bytes name, list argv) except -1:
    """Run a non-blocking command's C handler as part of this one."""
    cdef Command cmd = <Command>c.srv.table[name]
    return cmd.fn(c, argv)


cdef int _serve(Client c, object key, CObj o, tuple params) except -1:
    """Serve a waiter from key, whose object o is visible and of the type it
    waits for: the reply and the pop's local effects."""
    cdef int kind = params[0]
    cdef int64_t count
    if kind == K_LPOP:
        count = params[2]
        c.out.array(2)
        c.out.bulk(<bytes>key)
        if count < 0:
            return _call(c, b"lpop" if params[1] else b"rpop", [b"lpop", key])
        return _call(c, b"lpop" if params[1] else b"rpop",
                     [b"lpop", key, str(count).encode()])
    if kind == K_LMOVE:
        return _call(c, b"lmove", [b"lmove", key, params[2],
                                   b"LEFT" if params[1] else b"RIGHT",
                                   b"LEFT" if params[3] else b"RIGHT"])
    return _zpop(c, key, <ZSetObj>o, params[1], params[2])


cdef int _zpop(Client c, object key, ZSetObj o, bint max_, int64_t count) except -1:
    """[key, member, score] (count -1) or [key, [[member, score] ...]]."""
    cdef ZIndex ix = <ZIndex>o.idx
    cdef ZNode* x = ix.tail if max_ else ix.first()
    cdef int64_t n = 1 if count < 0 else count, _i
    cdef list members = []
    if n > len(o.m):
        n = len(o.m)
    if count < 0:
        c.out.array(3)
        c.out.bulk(<bytes>key)
    else:
        c.out.array(2)
        c.out.bulk(<bytes>key)
        c.out.array(n)
    for _i in range(n):
        if count >= 0:
            c.out.array(2)
        c.out.bulk_raw(zn_mp(x), zn_ml(x))
        reply_score(c.out, x.score)
        members.append((<ZEnt>x.ent).member)
        x = zn_back(x) if max_ else x.level[0].forward
    emit_zrem(c.ks, key, o, members)
    notify(c.ks, N_ZSET, b"zpopmax" if max_ else b"zpopmin", key)
    return notify_gone(c.ks, key)


cdef inline bint _fits(CObj o, tuple params) noexcept:
    if <int>params[0] == K_ZPOP:
        return type(o) is ZSetObj
    return type(o) is ListObj


cdef int _pop_or_block(Client c, list keys, int64_t deadline, tuple params) except -1:
    """The first key holding data is served now; none: block (or, where
    blocking is denied, the timeout's reply at once)."""
    cdef Keyspace ks = c.ks
    cdef CObj o
    for key in keys:
        o = ks.lookup(key)
        if o is None:
            continue
        if not _fits(o, params):
            return reply_wrongtype(c)
        return _serve(c, key, o, params)
    if not _may_block(c):
        if <int>params[0] == K_LMOVE:
            return c.out.nil()
        return c.out.nil_array()
    _blocker(c, keys, deadline, params)
    return 0


def top_command(Client c):
    """The Command of the request the client sent that is running now (EXEC
    when a queued command runs): MONITOR refuses to run inside EXEC."""
    return c.rcmd


def serve(Client c, object key, tuple params):
    """A waiter's turn on a key that changed: 1 served (its reply written,
    the pop done as its own write), 0 the key holds another type (still
    waiting), -1 the key is gone (nobody after it can be served either)."""
    cdef Keyspace ks = c.ks
    cdef Backlog bl = ks.bl
    cdef CObj o
    cdef bint grouped = False
    if ks.cur is not c.db:
        ks.use(c.db)        # the waiter's db
    o = ks.lookup(key)
    if o is None:
        return -1
    if not _fits(o, params):
        return 0
    if not bl.grouping:
        bl.group_begin()
        grouped = True
    try:
        _serve(c, key, o, params)
    finally:
        if grouped:
            bl.group_end()
    c.last_write_uuid = ks.own_last
    return 1


def reply_timeout(Client c):
    """A waiter's reply when its timeout passes (or CLIENT UNBLOCK TIMEOUT)."""
    c.out.nil_array()


def reply_unblocked(Client c):
    """CLIENT UNBLOCK ... ERROR."""
    c.out.error(b"UNBLOCKED client unblocked via CLIENT UNBLOCK", 45)
    c.srv.count_error_msg(b"UNBLOCKED", 9)


cdef int cmd_blpop(Client c, list argv) except -1:
    return _bkeys(c, argv, (K_LPOP, True, -1))


cdef int cmd_brpop(Client c, list argv) except -1:
    return _bkeys(c, argv, (K_LPOP, False, -1))


cdef int cmd_bzpopmin(Client c, list argv) except -1:
    return _bkeys(c, argv, (K_ZPOP, False, -1))


cdef int cmd_bzpopmax(Client c, list argv) except -1:
    return _bkeys(c, argv, (K_ZPOP, True, -1))


cdef int _bkeys(Client c, list argv, tuple params) except -1:
    """key [key ...] timeout."""
    cdef Py_ssize_t n = PyList_GET_SIZE(argv)
    cdef int64_t deadline
    if not _timeout(c, <bytes>argv[n - 1], &deadline):
        return 0
    return _pop_or_block(c, argv[1:n - 1], deadline, params)


cdef int _where(Client c, bytes a, bint* left) except -1:
    if opt_eq(a, b"LEFT", 4):
        left[0] = True
        return 1
    if opt_eq(a, b"RIGHT", 5):
        left[0] = False
        return 1
    reply_syntax(c)
    return 0


cdef int _bmove(Client c, object src, object dst, bint from_left, bint to_left,
                bytes timeout) except -1:
    cdef int64_t deadline
    cdef CObj o
    if not _timeout(c, timeout, &deadline):
        return 0
    o = c.ks.lookup(src)
    if o is not None and type(o) is not ListObj:
        return reply_wrongtype(c)
    return _pop_or_block(c, [src], deadline, (K_LMOVE, from_left, dst, to_left))


cdef int cmd_blmove(Client c, list argv) except -1:
    cdef bint from_left, to_left
    if not _where(c, <bytes>argv[3], &from_left) or not _where(c, <bytes>argv[4], &to_left):
        return 0
    return _bmove(c, argv[1], argv[2], from_left, to_left, <bytes>argv[5])


cdef int cmd_brpoplpush(Client c, list argv) except -1:
    return _bmove(c, argv[1], argv[2], False, True, <bytes>argv[3])


cdef int _bmpop(Client c, list argv, bint zset) except -1:
    """BLMPOP / BZMPOP timeout numkeys key [key ...] where [COUNT count]: the
    arguments as Redis's lmpopGenericCommand / zmpopGenericCommand check
    them, then the timeout."""
    cdef Py_ssize_t argc = PyList_GET_SIZE(argv), j, where_idx
    cdef int64_t numkeys, count = -1, deadline
    cdef bint first = False
    cdef bytes w
    if not parse_bytes_i64(<bytes>argv[2], &numkeys) or numkeys < 1:
        return err_lit(c, b"ERR numkeys should be greater than 0")
    if numkeys >= argc:
        return reply_syntax(c)
    where_idx = 2 + <Py_ssize_t>numkeys + 1
    if where_idx >= argc:
        return reply_syntax(c)
    w = <bytes>argv[where_idx]
    if zset:
        if opt_eq(w, b"MIN", 3):
            first = True
        elif not opt_eq(w, b"MAX", 3):
            return reply_syntax(c)
    elif not _where(c, w, &first):
        return 0
    j = where_idx + 1
    while j < argc:
        if count == -1 and opt_eq(<bytes>argv[j], b"COUNT", 5) and j + 1 < argc:
            j += 1
            if not parse_bytes_i64(<bytes>argv[j], &count) or count < 1:
                return err_lit(c, b"ERR count should be greater than 0")
        else:
            return reply_syntax(c)
        j += 1
    if count == -1:
        count = 1
    if not _timeout(c, <bytes>argv[1], &deadline):
        return 0
    return _pop_or_block(c, argv[3:where_idx], deadline,
                         (K_ZPOP if zset else K_LPOP, not first if zset else first, count))


cdef int cmd_blmpop(Client c, list argv) except -1:
    return _bmpop(c, argv, False)


cdef int cmd_bzmpop(Client c, list argv) except -1:
    return _bmpop(c, argv, True)


def register(Server srv):
    add_command(srv, b"blpop", cmd_blpop)
    add_command(srv, b"brpop", cmd_brpop)
    add_command(srv, b"blmove", cmd_blmove)
    add_command(srv, b"brpoplpush", cmd_brpoplpush)
    add_command(srv, b"blmpop", cmd_blmpop)
    add_command(srv, b"bzpopmin", cmd_bzpopmin)
    add_command(srv, b"bzpopmax", cmd_bzpopmax)
    add_command(srv, b"bzmpop", cmd_bzmpop)
