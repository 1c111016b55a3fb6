"""Connection, transaction and ConstDB-specific commands that are hot enough
(PING, ECHO) or need the keyspace's C API (MVSET, FLUSHALL) to live here."""

from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from libc.stdint cimport int64_t

from constdb._core.codec cimport parse_bytes_i64
from constdb._core.cmd_keys cimport arg_db
from constdb._core.keyspace cimport N_STRING, Db, Keyspace, notify
from constdb._core.t_mv cimport emit_mv
from constdb._core.objects cimport CObj, MVObj, Ver
from constdb._core.protocol cimport (
    Client, Server, add_command, reply_syntax, reply_wrongtype,
)

from constdb._core.keyspace import describe_obj


cdef int cmd_ping(Client c, list argv) except -1:
    cdef Py_ssize_t n = PyList_GET_SIZE(argv)
    if c.subs is not None and c.resp == 2 and n <= 2:
        # in Pub/Sub mode over RESP2 the reply is a message-like array
        c.out.put_raw(b"*2\r\n$4\r\npong\r\n", 14)
        return c.out.bulk(<bytes>PyList_GET_ITEM(argv, 1) if n == 2 else b"")
    if n == 1:
        return c.out.put_raw(b"+PONG\r\n", 7)
    if n == 2:
        return c.out.bulk(<bytes>PyList_GET_ITEM(argv, 1))
    c.out.error_str("ERR wrong number of arguments for 'ping' command")
    return 0


cdef int cmd_echo(Client c, list argv) except -1:
    return c.out.bulk(<bytes>argv[1])


cdef int cmd_quit(Client c, list argv) except -1:
    c.out.ok()
    c.close_after_reply()
    return 0


cdef int cmd_select(Client c, list argv) except -1:
    cdef Db db = arg_db(c, <bytes>argv[1])
    if db is None:
        return 0
    c.db = db
    if c.ks.cur is not db:
        c.ks.use(db)
    return c.out.ok()


cdef int cmd_dbsize(Client c, list argv) except -1:
    return c.out.integer(len(c.ks.d))


cdef int _swap_index(Client c, bytes arg, const char* msg, int64_t* out) except -1:
    # getIntFromObjectOrReply with a message of its own
    if not parse_bytes_i64(arg, out) or out[0] < -2147483648 or out[0] > 2147483647:
        c.out.error_str(msg.decode())
        return 0
    return 1


cdef int cmd_swapdb(Client c, list argv) except -1:
    # swapdbCommand: the index -> data mapping changes, replicated as one
    # LWW write of the whole mapping (Keyspace.emit_swapdb)
    cdef int64_t a, b
    cdef Py_ssize_t n = PyList_GET_SIZE(c.ks.dbs)
    if not _swap_index(c, <bytes>argv[1], "ERR invalid first DB index", &a):
        return 0
    if not _swap_index(c, <bytes>argv[2], "ERR invalid second DB index", &b):
        return 0
    if a < 0 or a >= n or b < 0 or b >= n:
        return c.out.error(b"ERR DB index is out of range", 28)
    if a != b:
        c.ks.emit_swapdb(a, b)
    return c.out.ok()


cdef int cmd_multi(Client c, list argv) except -1:
    if c.in_multi:
        c.out.error_str("ERR MULTI calls can not be nested")
        return 0
    c.begin_multi()
    return c.out.ok()


cdef int cmd_exec(Client c, list argv) except -1:
    if not c.in_multi:
        c.out.error_str("ERR EXEC without MULTI")
        return 0
    return c.exec_multi()


cdef int cmd_discard(Client c, list argv) except -1:
    if not c.in_multi:
        c.out.error_str("ERR DISCARD without MULTI")
        return 0
    c.discard_multi()
    return c.out.ok()


cdef int cmd_watch(Client c, list argv) except -1:
    if c.in_multi:
        c.out.error_str("ERR WATCH inside MULTI is not allowed")
        return 0
    c.watch(argv[1:])
    return c.out.ok()


cdef int cmd_unwatch(Client c, list argv) except -1:
    c.unwatch()
    return c.out.ok()


cdef int cmd_mvset(Client c, list argv) except -1:
    cdef CObj o = c.ks.lookup(argv[1])
    if o is not None and type(o) is not MVObj:
        return reply_wrongtype(c)
    emit_mv(c.ks, argv[1], argv[2], True)
    notify(c.ks, N_STRING, b"set", argv[1])
    return c.out.ok()


cdef int cmd_mvget(Client c, list argv) except -1:
    cdef CObj o = c.ks.lookup_r(argv[1])
    cdef list vers
    if o is None:
        return c.out.array(0)
    if type(o) is not MVObj:
        return reply_wrongtype(c)
    vers = sorted([((<Ver>v).node, (<Ver>v).uuid, (<Ver>v).val) for v in (<MVObj>o).vers])
    c.out.array(len(vers))
    for node, _u, val in vers:
        c.out.array(2)
        c.out.integer(<int64_t>node)
        c.out.bulk(<bytes>val)
    return 0


cdef int cmd_desc(Client c, list argv) except -1:
    cdef Keyspace ks = c.ks
    key = argv[1]
    ks.lookup(key)   # an expired key is deleted first, as for any access
    objs = ks.objects_of(key)
    if key in ks.tombs:
        objs.append(ks.tombs[key])
    if not objs:
        return c.out.nil()
    c.out.pyvalue(_fit([describe_obj(o) for o in objs]))
    return 0


cdef object _fit(object v):
    """DESC's description for RESP: an integer out of 64-bit range (a
    counter's total of increments, a sum) as its decimal digits."""
    if type(v) is list:
        return [_fit(x) for x in <list>v]
    if type(v) is int and not (-(1 << 63) <= v < (1 << 63)):
        return str(v).encode()
    return v


cdef int _flush(Client c, list argv, bint every) except -1:
    # FLUSHDB (the client's db) and FLUSHALL (every db)
    cdef Keyspace ks = c.ks
    cdef Py_ssize_t n = PyList_GET_SIZE(argv)
    cdef bytes opt
    cdef Db db
    if n > 2:
        return reply_syntax(c)
    if n == 2:
        opt = (<bytes>argv[1]).upper()
        if opt != b"ASYNC" and opt != b"SYNC":
            return reply_syntax(c)
    # an observed-remove of every key: a concurrent write elsewhere survives
    tr = c.srv.tracking
    if tr is not None and c.srv.track_on:
        tr.flushing = True  # one "drop everything" message, not one a key
    ks.lazy_free = n == 2 and opt == b"ASYNC"
    try:
        for db in (ks.dbs if every else [c.db]):
            if not db.d and not db.alts:
                continue
            if ks.cur is not db:
                ks.use(db)
            for key in list(ks.d):
                ks.emit_del(key)
            if ks.alts:
                for key in list(ks.alts):
                    ks.emit_del(key)
    finally:
        ks.lazy_free = False
        if ks.cur is not c.db:
            ks.use(c.db)
        if tr is not None and c.srv.track_on:
            tr.flushing = False
            tr.flush_all()
    return c.out.ok()


cdef int cmd_flushall(Client c, list argv) except -1:
    return _flush(c, argv, True)


cdef int cmd_flushdb(Client c, list argv) except -1:
    return _flush(c, argv, False)


def register(Server srv):
    """Name the handlers; arity, flags and keys come from the command table."""
    add_command(srv, b"ping", cmd_ping)
    add_command(srv, b"echo", cmd_echo)
    add_command(srv, b"quit", cmd_quit)
    add_command(srv, b"select", cmd_select)
    add_command(srv, b"dbsize", cmd_dbsize)
    add_command(srv, b"multi", cmd_multi)
    add_command(srv, b"exec", cmd_exec)
    add_command(srv, b"discard", cmd_discard)
    add_command(srv, b"watch", cmd_watch)
    add_command(srv, b"unwatch", cmd_unwatch)
    add_command(srv, b"mvset", cmd_mvset)
    add_command(srv, b"mvget", cmd_mvget)
    add_command(srv, b"desc", cmd_desc)
    add_command(srv, b"flushall", cmd_flushall)
    add_command(srv, b"flushdb", cmd_flushdb)
    add_command(srv, b"swapdb", cmd_swapdb)
