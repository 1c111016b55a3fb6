"""List commands (docs/crdt.md section 3.5; the sequence CRDT is in t_list.pyx).

Commands that remove elements (pops, LREM, LTRIM, LMOVE) ship the removal of
the exact element ids they chose; pushes and LINSERT ship inserts that name the
element they go after. Replies and errors follow Redis 7.0 (t_list.c).
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from libc.stdint cimport int64_t
from libc.string cimport memcmp

from constdb._core.cmd_keys cimport err_lit, opt_eq
from constdb._core.cmd_zsets cimport mpop_args
from constdb._core.codec cimport parse_bytes_i64
from constdb._core.keyspace cimport N_LIST, notify, notify_gone, Keyspace
from constdb._core.objects cimport CObj, LElem, ListObj
from constdb._core.protocol cimport (
    Client, Server, add_command, reply_notint, reply_syntax, reply_wrongtype,
)
from constdb._core.t_list cimport (
    elem_at, emit_insert, emit_lset, emit_pop, emit_pop1, emit_push, emit_remove, first_live,
    last_live, next_live, prev_live, seek, val_at, val_ptr,
)

cdef inline bint _eq(object a, object b) noexcept:
    cdef Py_ssize_t n = PyBytes_GET_SIZE(<bytes>a)
    return n == PyBytes_GET_SIZE(<bytes>b) and memcmp(PyBytes_AS_STRING(<bytes>a),
                                                      PyBytes_AS_STRING(<bytes>b), n) == 0


cdef int _push(Client c, list argv, bint left, bint xx) except -1:
    cdef Keyspace ks = c.ks
    cdef object key = <object>PyList_GET_ITEM(argv, 1)
    cdef CObj o = ks.lookup(key)
    cdef ListObj lo
    if o is not None and type(o) is not ListObj:
        return reply_wrongtype(c)
    if xx and o is None:
        return c.out.integer(0)
    lo = emit_push(ks, key, <ListObj>o, argv, 2, left)
    notify(ks, N_LIST, b"lpush" if left else b"rpush", key)
    return c.out.integer(lo.n)


cdef int cmd_lpush(Client c, list argv) except -1:
    return _push(c, argv, True, False)


cdef int cmd_rpush(Client c, list argv) except -1:
    return _push(c, argv, False, False)


cdef int cmd_lpushx(Client c, list argv) except -1:
    return _push(c, argv, True, True)


cdef int cmd_rpushx(Client c, list argv) except -1:
    return _push(c, argv, False, True)


cdef int _pop(Client c, list argv, bint left) except -1:
    cdef Keyspace ks = c.ks
    cdef Py_ssize_t argc = PyList_GET_SIZE(argv)
    cdef object key = <object>PyList_GET_ITEM(argv, 1)
    cdef int64_t count = 1
    cdef bint has_count = argc == 3
    cdef CObj o
    cdef ListObj lo
    cdef bytes val
    if argc > 3:
        if left:
            return err_lit(c, b"ERR wrong number of arguments for 'lpop' command")
        return err_lit(c, b"ERR wrong number of arguments for 'rpop' command")
    if has_count:
        if not parse_bytes_i64(<bytes>PyList_GET_ITEM(argv, 2), &count) or count < 0:
            return err_lit(c, b"ERR value is out of range, must be positive")
    o = ks.lookup(key)
    if o is None:
        if has_count:
            return c.out.nil_array()
        return c.out.nil()
    if type(o) is not ListObj:
        return reply_wrongtype(c)
    lo = <ListObj>o
    if has_count and count == 0:
        return c.out.array(0)
    if count > lo.n:
        count = lo.n
    if not has_count:
        val = emit_pop1(ks, key, lo, left)
        c.out.bulk(val)
        notify(ks, N_LIST, b"lpop" if left else b"rpop", key)
        notify_gone(ks, key)
        return 0
    return _pop_run(c, key, lo, count, left)


cdef int _pop_run(Client c, object key, ListObj lo, int64_t count, bint left) except -1:
    """Reply an array of the count (<= LLEN) elements at one end and ship
    their removal (LPOP/RPOP with a count, LMPOP)."""
    cdef list vals = emit_pop(c.ks, key, lo, <Py_ssize_t>count, left)
    c.out.array(count)
    for v in vals:
        c.out.bulk(<bytes>v)
    notify(c.ks, N_LIST, b"lpop" if left else b"rpop", key)
    notify_gone(c.ks, key)
    return 0


cdef int cmd_lpop(Client c, list argv) except -1:
    return _pop(c, argv, True)


cdef int cmd_rpop(Client c, list argv) except -1:
    return _pop(c, argv, False)


cdef int cmd_lmpop(Client c, list argv) except -1:
    # lmpopGenericCommand (non-blocking): the first non-empty list of the keys;
    # [key, [elements]], or a null array. Ships the removal of the elements
    # chosen, as LPOP/RPOP do.
    cdef Keyspace ks = c.ks
    cdef Py_ssize_t where_idx, j
    cdef int64_t count
    cdef bint left, right
    cdef object key
    cdef CObj o
    cdef ListObj lo
    where_idx = mpop_args(c, argv, b"LEFT", b"RIGHT", &right, &count)
    if where_idx == 0:
        return 0
    left = not right
    for j in range(2, where_idx):
        key = argv[j]
        o = ks.lookup(key)
        if o is None:
            continue
        if type(o) is not ListObj:
            return reply_wrongtype(c)
        lo = <ListObj>o
        if lo.n == 0:
            continue
        if count > lo.n:
            count = lo.n
        c.out.array(2)
        c.out.bulk(<bytes>key)
        return _pop_run(c, key, lo, count, left)
    return c.out.nil_array()


cdef inline ListObj _get(Client c, object key, bint* wrong):
    return <ListObj>c.ks.lookup_as(key, ListObj, True, wrong)


cdef inline ListObj _get_w(Client c, object key, bint* wrong):
    return <ListObj>c.ks.lookup_as(key, ListObj, False, wrong)


cdef int cmd_llen(Client c, list argv) except -1:
    cdef bint wrong
    cdef ListObj o = _get(c, <object>PyList_GET_ITEM(argv, 1), &wrong)
    if wrong:
        return reply_wrongtype(c)
    return c.out.integer(0 if o is None else o.n)


cdef int cmd_lrange(Client c, list argv) except -1:
    cdef bint wrong
    cdef int64_t start, end, llen
    cdef Py_ssize_t bi, ii, k, rangelen, vlen
    cdef const char* vp
    cdef ListObj o
    if not parse_bytes_i64(<bytes>PyList_GET_ITEM(argv, 2), &start) or \
            not parse_bytes_i64(<bytes>PyList_GET_ITEM(argv, 3), &end):
        return reply_notint(c)
    o = _get(c, <object>PyList_GET_ITEM(argv, 1), &wrong)
    if wrong:
        return reply_wrongtype(c)
    if o is None:
        return c.out.array(0)
    llen = o.n
    if start < 0:
        start += llen
    if end < 0:
        end += llen
    if start < 0:
        start = 0
    if start > end or start >= llen:
        return c.out.array(0)
    if end >= llen:
        end = llen - 1
    rangelen = <Py_ssize_t>(end - start + 1)
    c.out.array(rangelen)
    seek(o, <Py_ssize_t>start, &bi, &ii)
    for k in range(rangelen):
        if k:
            next_live(o, &bi, &ii)
        vp = val_ptr(o, bi, ii, &vlen)
        c.out.bulk_raw(vp, vlen)
    return 0


cdef int cmd_lindex(Client c, list argv) except -1:
    cdef bint wrong
    cdef int64_t idx
    cdef Py_ssize_t bi, ii
    cdef ListObj o = _get(c, <object>PyList_GET_ITEM(argv, 1), &wrong)
    if wrong:
        return reply_wrongtype(c)
    if o is None:
        return c.out.nil()
    if not parse_bytes_i64(<bytes>PyList_GET_ITEM(argv, 2), &idx):
        return reply_notint(c)
    if idx < 0:
        idx += o.n
    if idx < 0 or idx >= o.n:
        return c.out.nil()
    seek(o, <Py_ssize_t>idx, &bi, &ii)
    return c.out.bulk(val_at(o, bi, ii))


cdef int cmd_lset(Client c, list argv) except -1:
    cdef bint wrong
    cdef int64_t idx
    cdef Py_ssize_t bi, ii
    cdef ListObj o = _get_w(c, argv[1], &wrong)
    if wrong:
        return reply_wrongtype(c)
    if o is None:
        return err_lit(c, b"ERR no such key")
    if not parse_bytes_i64(<bytes>argv[2], &idx):
        return reply_notint(c)
    if idx < 0:
        idx += o.n
    if idx < 0 or idx >= o.n:
        return err_lit(c, b"ERR index out of range")
    seek(o, <Py_ssize_t>idx, &bi, &ii)
    emit_lset(c.ks, argv[1], o, elem_at(o, bi, ii), argv[3])
    notify(c.ks, N_LIST, b"lset", argv[1])
    return c.out.ok()


cdef int cmd_lrem(Client c, list argv) except -1:
    cdef bint wrong
    cdef int64_t count
    cdef Py_ssize_t bi, ii
    cdef ListObj o
    cdef list found = [], at = []
    cdef bint more
    cdef object val = argv[3]
    if not parse_bytes_i64(<bytes>argv[2], &count):
        return reply_notint(c)
    o = _get_w(c, argv[1], &wrong)
    if wrong:
        return reply_wrongtype(c)
    if o is None:
        return c.out.integer(0)
    if count >= 0:
        more = first_live(o, &bi, &ii)
    else:
        more = last_live(o, &bi, &ii)
    while more:
        if _eq(val_at(o, bi, ii), val):
            at.append((bi, ii))
            if count != 0 and <int64_t>len(at) == (count if count > 0 else -count):
                break
        if count >= 0:
            more = next_live(o, &bi, &ii)
        else:
            more = prev_live(o, &bi, &ii)
    # the elements found (expanding their blocks keeps positions)
    for t in at:
        found.append(elem_at(o, <Py_ssize_t>t[0], <Py_ssize_t>t[1]))
    if found:
        emit_remove(c.ks, argv[1], o, found)
        notify(c.ks, N_LIST, b"lrem", argv[1])
        notify_gone(c.ks, argv[1])
    return c.out.integer(len(found))


cdef int cmd_linsert(Client c, list argv) except -1:
    cdef bint wrong, after, more, has_prev = False
    cdef Py_ssize_t bi, ii, pbi = 0, pii = 0
    cdef ListObj o
    cdef LElem anchor = None
    cdef object pivot = argv[3]
    if opt_eq(<bytes>argv[2], b"AFTER", 5):
        after = True
    elif opt_eq(<bytes>argv[2], b"BEFORE", 6):
        after = False
    else:
        return reply_syntax(c)
    o = _get_w(c, argv[1], &wrong)
    if wrong:
        return reply_wrongtype(c)
    if o is None:
        return c.out.integer(0)
    more = first_live(o, &bi, &ii)
    while more:
        if _eq(val_at(o, bi, ii), pivot):
            break
        pbi = bi
        pii = ii
        has_prev = True
        more = next_live(o, &bi, &ii)
    if not more:
        return c.out.integer(-1)
    if after:
        anchor = elem_at(o, bi, ii)
    elif has_prev:
        anchor = elem_at(o, pbi, pii)
    emit_insert(c.ks, argv[1], o, anchor, argv[4])
    notify(c.ks, N_LIST, b"linsert", argv[1])
    return c.out.integer(o.n)


cdef int cmd_ltrim(Client c, list argv) except -1:
    cdef bint wrong
    cdef int64_t start, end, llen, ltrim, rtrim, k
    cdef Py_ssize_t bi, ii
    cdef ListObj o
    cdef list elems = []
    if not parse_bytes_i64(<bytes>argv[2], &start) or not parse_bytes_i64(<bytes>argv[3], &end):
        return reply_notint(c)
    o = _get_w(c, argv[1], &wrong)
    if wrong:
        return reply_wrongtype(c)
    if o is None:
        return c.out.ok()
    llen = o.n
    if start < 0:
        start += llen
    if end < 0:
        end += llen
    if start < 0:
        start = 0
    if start > end or start >= llen:
        ltrim = llen
        rtrim = 0
    else:
        if end >= llen:
            end = llen - 1
        ltrim = start
        rtrim = llen - end - 1
    if ltrim:
        first_live(o, &bi, &ii)
        for k in range(ltrim):
            if k:
                next_live(o, &bi, &ii)
            elems.append(elem_at(o, bi, ii))
    if rtrim:
        last_live(o, &bi, &ii)
        for k in range(rtrim):
            if k:
                prev_live(o, &bi, &ii)
            elems.append(elem_at(o, bi, ii))
    if elems:
        emit_remove(c.ks, argv[1], o, elems)
    notify(c.ks, N_LIST, b"ltrim", argv[1])
    notify_gone(c.ks, argv[1])
    return c.out.ok()


cdef int cmd_lpos(Client c, list argv) except -1:
    cdef bint wrong, more, tail = True, has_count = False
    cdef int64_t rank = 1, count = 0, maxlen = 0, index = 0, matches = 0, matchindex = -1
    cdef int64_t llen
    cdef Py_ssize_t j, argc = PyList_GET_SIZE(argv), bi, ii
    cdef list out
    cdef ListObj o
    cdef object ele = argv[2]
    cdef bytes opt
    j = 3
    while j < argc:
        opt = <bytes>argv[j]
        if opt_eq(opt, b"RANK", 4) and j + 1 < argc:
            j += 1
            if not parse_bytes_i64(<bytes>argv[j], &rank):
                return reply_notint(c)
            if rank == 0:
                return err_lit(c, b"ERR RANK can't be zero: use 1 to start from the first match, "
                                  b"2 from the second ... or use negative to start from the end "
                                  b"of the list")
        elif opt_eq(opt, b"COUNT", 5) and j + 1 < argc:
            j += 1
            if not parse_bytes_i64(<bytes>argv[j], &count) or count < 0:
                return err_lit(c, b"ERR COUNT can't be negative")
            has_count = True
        elif opt_eq(opt, b"MAXLEN", 6) and j + 1 < argc:
            j += 1
            if not parse_bytes_i64(<bytes>argv[j], &maxlen) or maxlen < 0:
                return err_lit(c, b"ERR MAXLEN can't be negative")
        else:
            return reply_syntax(c)
        j += 1
    if rank < 0:
        # Redis negates a long here: LONG_MIN stays negative (every match counts)
        rank = <int64_t>(0 - <unsigned long long>rank)
        tail = False
    o = _get(c, argv[1], &wrong)
    if wrong:
        return reply_wrongtype(c)
    if o is None:
        if has_count:
            return c.out.array(0)
        return c.out.nil()
    llen = o.n
    out = [] if has_count else None
    if tail:
        more = first_live(o, &bi, &ii)
    else:
        more = last_live(o, &bi, &ii)
    while more and (maxlen == 0 or index < maxlen):
        if _eq(val_at(o, bi, ii), ele):
            matches += 1
            matchindex = index if tail else llen - index - 1
            if matches >= rank:
                if has_count:
                    out.append(matchindex)
                    if count and matches - rank + 1 >= count:
                        break
                else:
                    break
        index += 1
        matchindex = -1
        if tail:
            more = next_live(o, &bi, &ii)
        else:
            more = prev_live(o, &bi, &ii)
    if has_count:
        c.out.array(len(out))
        for x in out:
            c.out.integer(<int64_t>x)
        return 0
    if matchindex != -1:
        return c.out.integer(matchindex)
    return c.out.nil()


cdef int _where(Client c, bytes a, bint* left) except -1:
    if opt_eq(a, b"LEFT", 4):
        left[0] = True
        return 1
    if opt_eq(a, b"RIGHT", 5):
        left[0] = False
        return 1
    reply_syntax(c)
    return 0


cdef int _lmove(Client c, object src, object dst, bint from_left, bint to_left) except -1:
    cdef Keyspace ks = c.ks
    cdef CObj so = ks.lookup(src), do
    cdef ListObj lo
    cdef Py_ssize_t bi, ii
    cdef LElem e
    cdef object val
    if so is None:
        return c.out.nil()
    if type(so) is not ListObj:
        return reply_wrongtype(c)
    do = ks.lookup(dst)
    if do is not None and type(do) is not ListObj:
        return reply_wrongtype(c)
    lo = <ListObj>so
    if do is not so:
        val = emit_pop1(ks, src, lo, from_left)
        emit_push(ks, dst, None, [val], 0, to_left)
        notify(ks, N_LIST, b"lpush" if to_left else b"rpush", dst)
        notify(ks, N_LIST, b"lpop" if from_left else b"rpop", src)
        notify_gone(ks, src)
        return c.out.bulk(<bytes>val)
    if from_left:
        first_live(lo, &bi, &ii)
    else:
        last_live(lo, &bi, &ii)
    e = elem_at(lo, bi, ii)
    val = e.val
    # Redis never empties (nor deletes) a list that LMOVE rotates: push first,
    # so that the key keeps its TTL
    emit_push(ks, dst, lo, [val], 0, to_left)
    emit_remove(ks, src, lo, [e])
    notify(ks, N_LIST, b"lpush" if to_left else b"rpush", dst)
    notify(ks, N_LIST, b"lpop" if from_left else b"rpop", src)
    notify_gone(ks, src)
    return c.out.bulk(<bytes>val)


cdef int cmd_lmove(Client c, list argv) except -1:
    cdef bint from_left, to_left
    if not _where(c, <bytes>argv[3], &from_left) or not _where(c, <bytes>argv[4], &to_left):
        return 0
    return _lmove(c, argv[1], argv[2], from_left, to_left)


cdef int cmd_rpoplpush(Client c, list argv) except -1:
    return _lmove(c, argv[1], argv[2], False, True)


def register(Server srv):
    """Name the handlers; arity, flags and keys come from the command table."""
    add_command(srv, b"lpush", cmd_lpush)
    add_command(srv, b"rpush", cmd_rpush)
    add_command(srv, b"lpushx", cmd_lpushx)
    add_command(srv, b"rpushx", cmd_rpushx)
    add_command(srv, b"lpop", cmd_lpop)
    add_command(srv, b"rpop", cmd_rpop)
    add_command(srv, b"lmpop", cmd_lmpop)
    add_command(srv, b"llen", cmd_llen)
    add_command(srv, b"lrange", cmd_lrange)
    add_command(srv, b"lindex", cmd_lindex)
    add_command(srv, b"lset", cmd_lset)
    add_command(srv, b"lrem", cmd_lrem)
    add_command(srv, b"linsert", cmd_linsert)
    add_command(srv, b"ltrim", cmd_ltrim)
    add_command(srv, b"lpos", cmd_lpos)
    add_command(srv, b"lmove", cmd_lmove)
    add_command(srv, b"rpoplpush", cmd_rpoplpush)
