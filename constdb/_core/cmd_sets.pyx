"""Set commands (docs/crdt.md section 3.2: add-wins OR-Set). Commands that pick at random or
read other keys (SPOP, SMOVE, S*STORE) ship their resulting adds and removes."""

import random

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.dict cimport PyDict_Contains, PyDict_Keys, PyDict_Next, PyDict_Size
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from cpython.object cimport PyObject
from libc.stdint cimport int64_t, uint64_t

from constdb._core.cmd_keys cimport (
    err_lit, opt_eq, parse_cursor, reply_empty_scan, reply_range_error, reply_scan, scan_args,
)
from constdb._core.codec cimport parse_bytes_i64, parse_i64
from constdb._core.glob cimport match_bytes
from constdb._core.keyspace cimport N_SET, notify, notify_gone, store_begin, store_end, Keyspace
from constdb._core.objects cimport CObj, SetObj, TTLReg, draw
from constdb._core.protocol cimport (
    Client, Server, add_command, reply_notint, reply_syntax, reply_wrongtype,
)
from constdb._core.scan cimport (
    SCAN_SET, ScanState, scan_drop, scan_end, scan_find, scan_next, scan_start,
)
from constdb._core.t_set cimport emit_sadd, emit_srem


cdef bint _intset_like(object m) noexcept:
    """Would Redis 7.0 hold these members as an intset (at most 512 of them,
    all integers)? Redis then lists them in ascending order (SMEMBERS, SINTER
    and friends) and SSCAN returns them all in one call. (Redis's encoding is
    sticky and ours is recomputed, so a set that once held a non-integer
    differs: it stays a hash table in Redis.)"""
    cdef int64_t v
    if len(m) > 512:
        return False
    for k in m:
        if not parse_i64(PyBytes_AS_STRING(<bytes>k), PyBytes_GET_SIZE(<bytes>k), &v):
            return False
    return True


cdef int _reply_members(Client c, object coll, bint ordered) except -1:
    """A set reply (RESP3 ~) of coll's members; ordered: ascending integers."""
    c.out.set_(len(coll))
    if ordered and len(coll) > 1:
        for m in sorted(coll, key=int):
            c.out.bulk(<bytes>m)
    else:
        for m in coll:
            c.out.bulk(<bytes>m)
    return 0


cdef inline SetObj _get(Client c, object key, bint* wrong):
    return <SetObj>c.ks.lookup_as(key, SetObj, True, wrong)


cdef int cmd_sadd(Client c, list argv) except -1:
    cdef Keyspace ks = c.ks
    cdef object key = <object>PyList_GET_ITEM(argv, 1)
    cdef CObj o = ks.lookup(key)
    cdef Py_ssize_t i, n = PyList_GET_SIZE(argv)
    cdef int64_t added = 0
    if o is not None and type(o) is not SetObj:
        return reply_wrongtype(c)
    for i in range(2, n):
        m = <object>PyList_GET_ITEM(argv, i)
        if o is not None and m in (<SetObj>o).m:
            continue
        emit_sadd(ks, key, m)
        added += 1
        if o is None:
            o = ks.lookup(key)
            if o is not None and type(o) is not SetObj:
                o = None
    if added:
        notify(ks, N_SET, b"sadd", key)
    return c.out.integer(added)


cdef int cmd_srem(Client c, list argv) except -1:
    cdef bint wrong
    cdef SetObj o = <SetObj>c.ks.lookup_as(argv[1], SetObj, False, &wrong)
    cdef Py_ssize_t i, n = PyList_GET_SIZE(argv)
    cdef int64_t removed = 0
    if wrong:
        return reply_wrongtype(c)
    if o is None:
        return c.out.integer(0)
    for i in range(2, n):
        m = <object>PyList_GET_ITEM(argv, i)
        if m in o.m:
            emit_srem(c.ks, argv[1], o, m)
            removed += 1
    if removed:
        notify(c.ks, N_SET, b"srem", argv[1])
        notify_gone(c.ks, argv[1])
    return c.out.integer(removed)


cdef object _pick(SetObj o, bint remove):
    """One member of o (not empty) at random, from o.pick (objects.draw), a
    list of the members built once and kept; adding a member drops it.
    remove: also take it out of the list (SPOP: the caller removes it from o)."""
    if o.pick is None or o.pick_m is not o.m:
        o.pick = list(o.m)
        o.pick_m = o.m
    return draw(o.m, o.pick, remove)


cdef list _sample(SetObj o, Py_ssize_t k, bint remove):
    """k distinct members of o chosen at random (k <= len(o.m)). remove: for
    SPOP (the chosen ones leave o.pick)."""
    cdef Py_ssize_t _i, n = len(o.m)
    cdef list keys
    cdef set seen
    if k <= 0:
        return []
    if k >= n:
        return list(o.m)
    if remove and k * 4 <= n:
        # few of many: draws from the kept list, each O(1); a draw repeats
        # only if the list was rebuilt midway (it was all stale): then the
        # draws below (the list keeps these; they are dropped once gone)
        keys = []
        seen = set()
        for _i in range(k):
            m = _pick(o, True)
            if m in seen:
                o.pick = None
                break
            seen.add(m)
            keys.append(m)
        else:
            return keys
    if k * 4 <= n:
        # few of many (SRANDMEMBER): draws until k distinct ones
        keys = []
        seen = set()
        while len(keys) < k:
            m = _pick(o, False)
            if m not in seen:
                seen.add(m)
                keys.append(m)
        return keys
    return random.sample(list(o.m), k)


cdef int cmd_spop(Client c, list argv) except -1:
    # spopCommand / spopWithCountCommand; the effects are the removals of
    # exactly the members chosen here
    cdef bint wrong
    cdef int64_t count = 1
    cdef bint has_count = PyList_GET_SIZE(argv) == 3
    cdef SetObj o
    cdef list picked
    if PyList_GET_SIZE(argv) > 3:
        return reply_syntax(c)
    if has_count:
        # getPositiveLongFromObjectOrReply: one message for both failures
        if not parse_bytes_i64(<bytes>argv[2], &count) or count < 0:
            return err_lit(c, b"ERR value is out of range, must be positive")
    o = <SetObj>c.ks.lookup_as(argv[1], SetObj, False, &wrong)
    if wrong:
        return reply_wrongtype(c)
    if o is None:
        if has_count:
            return c.out.set_(0)
        return c.out.nil()
    picked = _sample(o, min(count, len(o.m)), True)
    if has_count:
        c.out.set_(len(picked))
    for m in picked:
        c.out.bulk(<bytes>m)
    for m in picked:
        emit_srem(c.ks, argv[1], o, m)
    if picked:
        notify(c.ks, N_SET, b"spop", argv[1])
        notify_gone(c.ks, argv[1])
    return 0


cdef int cmd_srandmember(Client c, list argv) except -1:
    # srandmemberCommand / srandmemberWithCountCommand: arrays (RESP3 too)
    cdef bint wrong
    cdef int64_t count = 1
    cdef Py_ssize_t _i
    cdef bint has_count = PyList_GET_SIZE(argv) == 3
    cdef SetObj o
    cdef list keys
    if PyList_GET_SIZE(argv) > 3:
        return reply_syntax(c)
    if has_count:
        if not parse_bytes_i64(<bytes>argv[2], &count):
            return reply_notint(c)
        if count < -0x7FFFFFFFFFFFFFFF:
            return reply_range_error(c, -0x7FFFFFFFFFFFFFFF, 0x7FFFFFFFFFFFFFFF)
    o = _get(c, argv[1], &wrong)
    if wrong:
        return reply_wrongtype(c)
    if o is None:
        if has_count:
            return c.out.array(0)
        return c.out.nil()
    if not has_count:
        return c.out.bulk(<bytes>_pick(o, False))
    if count >= 0:
        keys = _sample(o, min(count, len(o.m)), False)
        c.out.array(len(keys))
        for m in keys:
            c.out.bulk(<bytes>m)
        return 0
    c.out.array(-count)
    for _i in range(-count):
        c.out.bulk(<bytes>_pick(o, False))
    return 0


cdef int cmd_smembers(Client c, list argv) except -1:
    # sinterCommand of one key: a set reply (RESP3 ~)
    cdef bint wrong
    cdef SetObj o = _get(c, <object>PyList_GET_ITEM(argv, 1), &wrong)
    if wrong:
        return reply_wrongtype(c)
    if o is None:
        return c.out.set_(0)
    return _reply_members(c, o.m, _intset_like(o.m))


cdef int cmd_sismember(Client c, list argv) except -1:
    cdef bint wrong
    cdef SetObj o = _get(c, argv[1], &wrong)
    if wrong:
        return reply_wrongtype(c)
    return c.out.integer(1 if o is not None and argv[2] in o.m else 0)


cdef int cmd_smismember(Client c, list argv) except -1:
    cdef bint wrong
    cdef SetObj o = _get(c, argv[1], &wrong)
    cdef Py_ssize_t i, n = PyList_GET_SIZE(argv)
    if wrong:
        return reply_wrongtype(c)
    c.out.array(n - 2)
    for i in range(2, n):
        c.out.integer(1 if o is not None and argv[i] in o.m else 0)
    return 0


cdef int cmd_scard(Client c, list argv) except -1:
    cdef bint wrong
    cdef SetObj o = _get(c, argv[1], &wrong)
    if wrong:
        return reply_wrongtype(c)
    return c.out.integer(0 if o is None else len(o.m))


cdef int cmd_smove(Client c, list argv) except -1:
    cdef Keyspace ks = c.ks
    cdef object src = argv[1], dst = argv[2], m = argv[3]
    cdef CObj so = ks.lookup(src)
    cdef CObj do = ks.lookup(dst)
    # smoveCommand: a missing source is 0 before any type check
    if so is None:
        return c.out.integer(0)
    if type(so) is not SetObj:
        return reply_wrongtype(c)
    if do is not None and type(do) is not SetObj:
        return reply_wrongtype(c)
    if m not in (<SetObj>so).m:
        return c.out.integer(0)
    if src == dst:
        return c.out.integer(1)
    emit_srem(ks, src, <SetObj>so, m)
    notify(ks, N_SET, b"srem", src)
    notify_gone(ks, src)
    do = ks.lookup(dst)
    if do is None or m not in (<SetObj>do).m:
        emit_sadd(ks, dst, m)
        notify(ks, N_SET, b"sadd", dst)
    return c.out.integer(1)


cdef object _collect(Client c, list keys, int op, bint* ordered):
    """op 0 inter, 1 union, 2 diff: the resulting set, or None after replying
    WRONGTYPE (every key's type is checked first, as Redis 7 does). ordered:
    Redis would list the result in intset order (an intersection walks its
    smallest set; a union or difference builds an intset while it can)."""
    cdef list objs = []
    cdef set acc
    cdef CObj o
    ordered[0] = False
    for key in keys:
        o = c.ks.lookup_r(key)
        if o is not None and type(o) is not SetObj:
            reply_wrongtype(c)
            return None
        objs.append(o)
    if op == 0:
        if None in objs:
            return set()
        objs.sort(key=lambda x: len((<SetObj>x).m))
        acc = set((<SetObj>objs[0]).m)
        for o in objs[1:]:
            if not acc:
                break
            acc.intersection_update((<SetObj>o).m)
        ordered[0] = len(acc) > 1 and _intset_like((<SetObj>objs[0]).m)
        return acc
    if op == 1:
        acc = set()
        for o in objs:
            if o is not None:
                acc.update((<SetObj>o).m)
    else:
        acc = set((<SetObj>objs[0]).m) if objs[0] is not None else set()
        for o in objs[1:]:
            if not acc:
                break
            if o is not None:
                acc.difference_update((<SetObj>o).m)
    ordered[0] = len(acc) > 1 and _intset_like(acc)
    return acc


cdef int _setop(Client c, list argv, int op) except -1:
    cdef bint ordered
    res = _collect(c, argv[1:], op, &ordered)
    if res is None:
        return 0
    return _reply_members(c, res, ordered)


cdef int store_set(Keyspace ks, object dst, set res) except -1:
    """Make dst hold exactly res (a new set replacing whatever dst held)."""
    cdef CObj o = ks.lookup(dst)
    if o is not None and type(o) is not SetObj:
        ks.emit_del(dst)
        o = None
    if not res:
        if o is not None:
            ks.emit_del(dst)
        return 0
    if o is not None:
        for m in [m for m in (<SetObj>o).m if m not in res]:
            emit_srem(ks, dst, <SetObj>o, m)
        if o.ttl is not None and (<TTLReg>o.ttl).at != 0:
            ks.emit_ttl(dst, 0)
        o = ks.lookup(dst)
    for m in res:
        if o is None or m not in (<SetObj>o).m:
            emit_sadd(ks, dst, m)
    return 0


cdef int _setop_store(Client c, list argv, int op) except -1:
    cdef bint ordered
    res = _collect(c, argv[2:], op, &ordered)
    if res is None:
        return 0
    had = store_begin(c.ks, argv[1])
    store_set(c.ks, argv[1], res)
    store_end(c.ks, argv[1], had, len(res), N_SET,
              b"sinterstore" if op == 0 else b"sunionstore" if op == 1 else b"sdiffstore")
    return c.out.integer(len(res))


cdef int cmd_sinter(Client c, list argv) except -1:
    return _setop(c, argv, 0)


cdef int cmd_sunion(Client c, list argv) except -1:
    return _setop(c, argv, 1)


cdef int cmd_sdiff(Client c, list argv) except -1:
    return _setop(c, argv, 2)


cdef int cmd_sinterstore(Client c, list argv) except -1:
    return _setop_store(c, argv, 0)


cdef int cmd_sunionstore(Client c, list argv) except -1:
    return _setop_store(c, argv, 1)


cdef int cmd_sdiffstore(Client c, list argv) except -1:
    return _setop_store(c, argv, 2)


cdef int cmd_sintercard(Client c, list argv) except -1:
    cdef int64_t numkeys, limit = 0
    cdef Py_ssize_t n = PyList_GET_SIZE(argv), i
    cdef bint ordered
    # sinterCardCommand: getRangeLong...(1, LONG_MAX, "numkeys should be ...")
    if not parse_bytes_i64(<bytes>argv[1], &numkeys) or numkeys <= 0:
        return err_lit(c, b"ERR numkeys should be greater than 0")
    if numkeys > n - 2:
        return err_lit(c, b"ERR Number of keys can't be greater than number of args")
    i = 2 + numkeys
    while i < n:
        if opt_eq(<bytes>argv[i], b"LIMIT", 5) and i + 1 < n:
            if not parse_bytes_i64(<bytes>argv[i + 1], &limit) or limit < 0:
                return err_lit(c, b"ERR LIMIT can't be negative")
            i += 2
        else:
            return reply_syntax(c)
    res = _collect(c, argv[2:2 + numkeys], 0, &ordered)
    if res is None:
        return 0
    if limit and len(res) > limit:
        return c.out.integer(limit)
    return c.out.integer(len(res))


cdef int cmd_sscan(Client c, list argv) except -1:
    # sscanCommand: cursor, key (missing: empty scan), type, then options. A
    # set larger than one reply is walked in a copy of its members (scan.pyx).
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
    cdef SetObj o
    cdef ScanState st = None
    if not parse_cursor(c, <bytes>argv[2], &cur):
        return 0
    o = _get(c, argv[1], &wrong)
    if wrong:
        return reply_wrongtype(c)
    if o is None:
        scan_drop(cur, SCAN_SET, c.ks, argv[1])
        return reply_empty_scan(c)
    pat = scan_args(c, argv, 3, &count, &tcode, False)
    if pat is False:
        return 0
    if _intset_like(o.m):
        scan_drop(cur, SCAN_SET, c.ks, argv[1])
        for m in sorted(o.m, key=int):
            if pat is None or match_bytes(pat, <bytes>m):
                out.append(m)
        return reply_scan(c, 0, out)
    if cur != 0:
        st = scan_find(cur, SCAN_SET, c.ks, argv[1])
    if st is None and PyDict_Size(o.m) > count:
        st = scan_start(SCAN_SET, c.ks, argv[1], PyDict_Keys(o.m))
    if st is None:
        pos = 0
        while PyDict_Next(o.m, &pos, &k, &v):
            if pat is None or match_bytes(pat, <bytes>k):
                out.append(<object>k)
    else:
        items = st.items
        end = scan_end(st, count)
        for pos in range(st.pos, end):
            k = PyList_GET_ITEM(items, pos)
            if PyDict_Contains(o.m, <object>k) and (pat is None or match_bytes(pat, <bytes>k)):
                out.append(<object>k)
        nxt = scan_next(st, end)
    return reply_scan(c, nxt, out)


def register(Server srv):
    """Name the handlers; arity, flags and keys come from the command table."""
    add_command(srv, b"sadd", cmd_sadd)
    add_command(srv, b"srem", cmd_srem)
    add_command(srv, b"spop", cmd_spop)
    add_command(srv, b"srandmember", cmd_srandmember)
    add_command(srv, b"smembers", cmd_smembers)
    add_command(srv, b"sismember", cmd_sismember)
    add_command(srv, b"smismember", cmd_smismember)
    add_command(srv, b"scard", cmd_scard)
    add_command(srv, b"smove", cmd_smove)
    add_command(srv, b"sinter", cmd_sinter)
    add_command(srv, b"sunion", cmd_sunion)
    add_command(srv, b"sdiff", cmd_sdiff)
    add_command(srv, b"sinterstore", cmd_sinterstore)
    add_command(srv, b"sunionstore", cmd_sunionstore)
    add_command(srv, b"sdiffstore", cmd_sdiffstore)
    add_command(srv, b"sintercard", cmd_sintercard)
    add_command(srv, b"sscan", cmd_sscan)
