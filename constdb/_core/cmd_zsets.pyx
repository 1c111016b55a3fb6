"""Sorted set commands (docs/crdt.md section 3.6; the CRDT and the skip list are in t_zset.pyx).

Replies and errors follow Redis 7.0 (t_zset.c). Where Redis's answer depends on
the encoding it would hold the set in (listpack up to 128 members of at most 64
bytes, else skiplist), ConstDB keeps a flag that follows the same rule
(`ZIndex.lp`): a small set stores -0 as 0 (listpack scores go through
d2string) and ZSCAN returns it whole in one call, in order.
"""

from cpython.bytes cimport PyBytes_GET_SIZE
from cpython.dict cimport PyDict_GetItem, PyDict_Keys, PyDict_Next, PyDict_Size
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from cpython.object cimport PyObject
from libc.math cimport isnan
from libc.stdint cimport int64_t, uint64_t

from constdb._core.cmd_keys cimport (
    err_lit, opt_eq, parse_cursor, reply_empty_scan, reply_scan, scan_args,
)
from constdb._core.codec cimport parse_bytes_i64
from constdb._core.glob cimport match_bytes
from constdb._core.keyspace cimport Keyspace
from constdb._core.objects cimport ZEnt, ZSetObj
from constdb._core.protocol cimport (
    Client, Server, add_command, reply_notint, reply_syntax, reply_wrongtype,
)
from constdb._core.scan cimport (
    SCAN_ZSET, ScanState, scan_drop, scan_end, scan_find, scan_next, scan_start,
)
from constdb._core.t_zset cimport (
    ZIndex, ZLexRange, ZNode, ZRange, emit_zadd, emit_zincr, emit_zrem, format_score, index_of,
    lex_gte_min, lex_lte_max, parse_lex, parse_range, parse_score, reply_score, gte_min, lte_max,
)

cdef enum:
    LP_ENTRIES = 128      # zset-max-listpack-entries
    LP_VALUE = 64         # zset-max-listpack-value

    RANGE_AUTO = 0
    RANGE_RANK = 1
    RANGE_SCORE = 2
    RANGE_LEX = 3

    DIR_AUTO = 0
    DIR_FORWARD = 1
    DIR_REVERSE = 2


cdef inline ZSetObj _get(Client c, object key, bint* wrong):
    return <ZSetObj>c.ks.lookup_as(key, ZSetObj, True, wrong)


cdef inline ZSetObj _get_w(Client c, object key, bint* wrong):
    return <ZSetObj>c.ks.lookup_as(key, ZSetObj, False, wrong)


cdef inline ZEnt _ent(ZSetObj o, object member):
    cdef PyObject* p = PyDict_GetItem(o.m, member)
    if p == NULL:
        return None
    return <ZEnt>p


# ---------------------------------------------------------------- ZADD ----

cdef int _zadd(Client c, list argv, bint incr) except -1:
    """zaddGenericCommand."""
    cdef Keyspace ks = c.ks
    cdef Py_ssize_t argc = PyList_GET_SIZE(argv), idx = 2, elements, j
    cdef bint nx = False, xx = False, gt = False, lt = False, ch = False, lp, wrong
    cdef int64_t added = 0, updated = 0, processed = 0
    cdef double score, cur, newscore = 0.0, stored
    cdef bytes opt, member
    cdef object key = <object>PyList_GET_ITEM(argv, 1)
    cdef list scores
    cdef ZSetObj o
    cdef ZEnt e
    while idx < argc:
        opt = <bytes>PyList_GET_ITEM(argv, idx)
        if opt_eq(opt, b"NX", 2):
            nx = True
        elif opt_eq(opt, b"XX", 2):
            xx = True
        elif opt_eq(opt, b"CH", 2):
            ch = True
        elif opt_eq(opt, b"INCR", 4):
            incr = True
        elif opt_eq(opt, b"GT", 2):
            gt = True
        elif opt_eq(opt, b"LT", 2):
            lt = True
        else:
            break
        idx += 1
    elements = argc - idx
    if elements % 2 or elements == 0:
        return reply_syntax(c)
    elements //= 2
    if nx and xx:
        return err_lit(c, b"ERR XX and NX options at the same time are not compatible")
    if (gt and nx) or (lt and nx) or (gt and lt):
        return err_lit(c, b"ERR GT, LT, and/or NX options at the same time are not compatible")
    if incr and elements > 1:
        return err_lit(c, b"ERR INCR option supports a single increment-element pair")
    scores = []
    for j in range(elements):
        if not parse_score(<bytes>PyList_GET_ITEM(argv, idx + 2 * j), &score):
            return err_lit(c, b"ERR value is not a valid float")
        scores.append(score)
    o = _get_w(c, key, &wrong)
    if wrong:
        return reply_wrongtype(c)
    if o is None:
        if xx:
            if incr:
                return c.out.nil()
            return c.out.integer(0)
        # zsetTypeCreate(elements, length of the first member)
        lp = elements <= LP_ENTRIES and \
            PyBytes_GET_SIZE(<bytes>PyList_GET_ITEM(argv, idx + 1)) <= LP_VALUE
    else:
        lp = o.idx is None or ((<ZIndex>o.idx).lp and len(o.m) <= LP_ENTRIES)
    for j in range(elements):
        score = <double>scores[j]
        member = <bytes>PyList_GET_ITEM(argv, idx + 1 + 2 * j)
        e = _ent(o, member) if o is not None else None
        if e is not None:
            if nx:
                continue
            cur = e.score
            if incr:
                score += cur
                if isnan(score):
                    return err_lit(c, b"ERR resulting score is not a number (NaN)")
            if (lt and score >= cur) or (gt and score <= cur):
                continue
            newscore = score
            processed += 1
            if score != cur:
                # a listpack stores scores through d2string: -0 becomes 0
                stored = 0.0 if lp and score == 0.0 else score
                if incr:
                    emit_zincr(ks, key, o, member, <double>scores[j], stored)
                else:
                    emit_zadd(ks, key, o, member, stored)
                updated += 1
        elif not xx:
            if lp and o is not None and (len(o.m) + 1 > LP_ENTRIES or
                                         PyBytes_GET_SIZE(member) > LP_VALUE):
                # the listpack converts before this insert (and never back)
                lp = False
            stored = 0.0 if lp and score == 0.0 else score
            if incr:
                o = emit_zincr(ks, key, o, member, score, stored)
            else:
                o = emit_zadd(ks, key, o, member, stored)
            index_of(o).lp = lp
            newscore = score
            added += 1
            processed += 1
    if incr:
        if processed:
            return reply_score(c.out, newscore)
        return c.out.nil()
    return c.out.integer(added + updated if ch else added)


cdef int cmd_zadd(Client c, list argv) except -1:
    return _zadd(c, argv, False)


cdef int cmd_zincrby(Client c, list argv) except -1:
    return _zadd(c, argv, True)


# ------------------------------------------------------------- reads ----

cdef int cmd_zscore(Client c, list argv) except -1:
    cdef bint wrong
    cdef ZSetObj o = _get(c, <object>PyList_GET_ITEM(argv, 1), &wrong)
    cdef ZEnt e
    if wrong:
        return reply_wrongtype(c)
    if o is None:
        return c.out.nil()
    e = _ent(o, <object>PyList_GET_ITEM(argv, 2))
    if e is None:
        return c.out.nil()
    return reply_score(c.out, e.score)


cdef int cmd_zmscore(Client c, list argv) except -1:
    cdef bint wrong
    cdef ZSetObj o = _get(c, argv[1], &wrong)
    cdef Py_ssize_t i, n = PyList_GET_SIZE(argv)
    cdef ZEnt e
    if wrong:
        return reply_wrongtype(c)
    c.out.array(n - 2)
    for i in range(2, n):
        e = _ent(o, argv[i]) if o is not None else None
        if e is None:
            c.out.nil()
        else:
            reply_score(c.out, e.score)
    return 0


cdef int cmd_zcard(Client c, list argv) except -1:
    cdef bint wrong
    cdef ZSetObj o = _get(c, argv[1], &wrong)
    if wrong:
        return reply_wrongtype(c)
    return c.out.integer(0 if o is None else len(o.m))


cdef int cmd_zcount(Client c, list argv) except -1:
    cdef bint wrong
    cdef ZRange r
    cdef ZSetObj o
    cdef ZIndex ix
    cdef ZNode* a
    cdef ZNode* b
    if not parse_range(<bytes>argv[2], <bytes>argv[3], &r):
        return err_lit(c, b"ERR min or max is not a float")
    o = _get(c, argv[1], &wrong)
    if wrong:
        return reply_wrongtype(c)
    if o is None or o.idx is None:
        return c.out.integer(0)
    ix = <ZIndex>o.idx
    a = ix.first_in_range(&r)
    if a == NULL:
        return c.out.integer(0)
    b = ix.last_in_range(&r)
    return c.out.integer(ix.rank(b.score, (<ZEnt>b.ent).member) -
                         ix.rank(a.score, (<ZEnt>a.ent).member) + 1)


cdef int _zrank(Client c, list argv, bint rev) except -1:
    cdef bint wrong
    cdef ZSetObj o = _get(c, argv[1], &wrong)
    cdef ZEnt e
    cdef Py_ssize_t r
    if wrong:
        return reply_wrongtype(c)
    if o is None:
        return c.out.nil()
    e = _ent(o, argv[2])
    if e is None:
        return c.out.nil()
    r = (<ZIndex>o.idx).rank(e.score, e.member)
    if rev:
        return c.out.integer(len(o.m) - r)
    return c.out.integer(r - 1)


cdef int cmd_zrank(Client c, list argv) except -1:
    return _zrank(c, argv, False)


cdef int cmd_zrevrank(Client c, list argv) except -1:
    return _zrank(c, argv, True)


# ------------------------------------------------------------ ranges ----

cdef inline int _emit(Client c, ZNode* x, bint withscores) except -1:
    if withscores and c.out.resp3:
        c.out.array(2)
    c.out.bulk_raw(x.mp, x.ml)
    if withscores:
        reply_score(c.out, x.score)
    return 0


cdef int _header(Client c, Py_ssize_t n, bint withscores) except -1:
    if withscores and not c.out.resp3:
        return c.out.array(2 * n)
    return c.out.array(n)


cdef int _by_rank(Client c, ZSetObj o, int64_t start, int64_t end, bint withscores,
                  bint rev) except -1:
    cdef int64_t llen = len(o.m), rangelen
    cdef ZIndex ix
    cdef ZNode* x
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
    rangelen = end - start + 1
    _header(c, rangelen, withscores)
    ix = <ZIndex>o.idx
    if rev:
        x = ix.tail if start == 0 else ix.by_rank(llen - start)
    else:
        x = ix.first() if start == 0 else ix.by_rank(start + 1)
    while rangelen > 0:
        _emit(c, x, withscores)
        x = x.backward if rev else x.level[0].forward
        rangelen -= 1
    return 0


cdef int _by_score(Client c, ZSetObj o, ZRange* r, int64_t offset, int64_t limit,
                   bint withscores, bint rev) except -1:
    cdef ZIndex ix = <ZIndex>o.idx
    cdef ZNode* x
    cdef list nodes = []
    if offset > 0 and offset >= len(o.m):
        return c.out.array(0)
    x = ix.last_in_range(r) if rev else ix.first_in_range(r)
    while x != NULL and offset != 0:
        offset -= 1
        x = x.backward if rev else x.level[0].forward
    while x != NULL and limit != 0:
        limit -= 1
        if rev:
            if not gte_min(x.score, r):
                break
        elif not lte_max(x.score, r):
            break
        nodes.append(<ZEnt>x.ent)
        x = x.backward if rev else x.level[0].forward
    return _emit_ents(c, nodes, withscores)


cdef int _emit_ents(Client c, list ents, bint withscores) except -1:
    cdef ZEnt e
    _header(c, len(ents), withscores)
    for x in ents:
        e = <ZEnt>x
        if withscores and c.out.resp3:
            c.out.array(2)
        c.out.bulk(e.member)
        if withscores:
            reply_score(c.out, e.score)
    return 0


cdef int _by_lex(Client c, ZSetObj o, ZLexRange* r, int64_t offset, int64_t limit,
                 bint withscores, bint rev) except -1:
    cdef ZIndex ix = <ZIndex>o.idx
    cdef ZNode* x
    cdef list nodes = []
    if offset > 0 and offset >= len(o.m):
        return c.out.array(0)
    x = ix.last_in_lex(r) if rev else ix.first_in_lex(r)
    while x != NULL and offset != 0:
        offset -= 1
        x = x.backward if rev else x.level[0].forward
    while x != NULL and limit != 0:
        limit -= 1
        if rev:
            if not lex_gte_min(x, r):
                break
        elif not lex_lte_max(x, r):
            break
        nodes.append(<ZEnt>x.ent)
        x = x.backward if rev else x.level[0].forward
    return _emit_ents(c, nodes, withscores)


cdef int _zrange(Client c, list argv, int rangetype, int direction) except -1:
    """zrangeGenericCommand (no STORE)."""
    cdef Py_ssize_t argc = PyList_GET_SIZE(argv), j, minidx = 2, maxidx = 3, t
    cdef bint withscores = False, wrong
    cdef int64_t offset = 0, limit = -1, start, end
    cdef bytes a
    cdef ZRange r
    cdef ZLexRange lr
    cdef ZSetObj o
    j = 4
    while j < argc:
        a = <bytes>argv[j]
        if opt_eq(a, b"WITHSCORES", 10):
            withscores = True
        elif opt_eq(a, b"LIMIT", 5) and argc - j - 1 >= 2:
            if not parse_bytes_i64(<bytes>argv[j + 1], &offset) or \
                    not parse_bytes_i64(<bytes>argv[j + 2], &limit):
                return reply_notint(c)
            j += 2
        elif direction == DIR_AUTO and opt_eq(a, b"REV", 3):
            direction = DIR_REVERSE
        elif rangetype == RANGE_AUTO and opt_eq(a, b"BYLEX", 5):
            rangetype = RANGE_LEX
        elif rangetype == RANGE_AUTO and opt_eq(a, b"BYSCORE", 7):
            rangetype = RANGE_SCORE
        else:
            return reply_syntax(c)
        j += 1
    if direction == DIR_AUTO:
        direction = DIR_FORWARD
    if rangetype == RANGE_AUTO:
        rangetype = RANGE_RANK
    if limit != -1 and rangetype == RANGE_RANK:
        return err_lit(c, b"ERR syntax error, LIMIT is only supported in combination with either "
                          b"BYSCORE or BYLEX")
    if withscores and rangetype == RANGE_LEX:
        return err_lit(c, b"ERR syntax error, WITHSCORES not supported in combination with BYLEX")
    if direction == DIR_REVERSE and (rangetype == RANGE_SCORE or rangetype == RANGE_LEX):
        t = maxidx
        maxidx = minidx
        minidx = t
    if rangetype == RANGE_RANK:
        if not parse_bytes_i64(<bytes>argv[minidx], &start) or \
                not parse_bytes_i64(<bytes>argv[maxidx], &end):
            return reply_notint(c)
    elif rangetype == RANGE_SCORE:
        if not parse_range(<bytes>argv[minidx], <bytes>argv[maxidx], &r):
            return err_lit(c, b"ERR min or max is not a float")
    else:
        if not parse_lex(<bytes>argv[minidx], <bytes>argv[maxidx], &lr):
            return err_lit(c, b"ERR min or max not valid string range item")
    o = _get(c, argv[1], &wrong)
    if wrong:
        return reply_wrongtype(c)
    if o is None or not o.m:
        return c.out.array(0)
    if rangetype == RANGE_RANK:
        return _by_rank(c, o, start, end, withscores, direction == DIR_REVERSE)
    if rangetype == RANGE_SCORE:
        return _by_score(c, o, &r, offset, limit, withscores, direction == DIR_REVERSE)
    return _by_lex(c, o, &lr, offset, limit, withscores, direction == DIR_REVERSE)


cdef int cmd_zrange(Client c, list argv) except -1:
    return _zrange(c, argv, RANGE_AUTO, DIR_AUTO)


cdef int cmd_zrangebyscore(Client c, list argv) except -1:
    return _zrange(c, argv, RANGE_SCORE, DIR_FORWARD)


cdef int cmd_zrevrangebyscore(Client c, list argv) except -1:
    return _zrange(c, argv, RANGE_SCORE, DIR_REVERSE)


cdef int cmd_zrevrange(Client c, list argv) except -1:
    return _zrange(c, argv, RANGE_RANK, DIR_REVERSE)


cdef int cmd_zrangebylex(Client c, list argv) except -1:
    return _zrange(c, argv, RANGE_LEX, DIR_FORWARD)


cdef int cmd_zrevrangebylex(Client c, list argv) except -1:
    return _zrange(c, argv, RANGE_LEX, DIR_REVERSE)


# ------------------------------------------------------------ removals ----

cdef int cmd_zrem(Client c, list argv) except -1:
    cdef bint wrong
    cdef ZSetObj o = _get_w(c, argv[1], &wrong)
    cdef Py_ssize_t i, n = PyList_GET_SIZE(argv)
    cdef list members = []
    cdef set seen = set()
    if wrong:
        return reply_wrongtype(c)
    if o is None:
        return c.out.integer(0)
    for i in range(2, n):
        m = argv[i]
        if m in o.m and m not in seen:
            seen.add(m)
            members.append(m)
    if members:
        emit_zrem(c.ks, argv[1], o, members)
    return c.out.integer(len(members))


cdef int _zpop(Client c, list argv, bint max_) except -1:
    cdef Py_ssize_t argc = PyList_GET_SIZE(argv)
    cdef int64_t count = -1, rangelen, _i
    cdef bint nested, wrong
    cdef ZSetObj o
    cdef ZIndex ix
    cdef ZNode* x
    cdef list members = []
    if argc > 3:
        return reply_syntax(c)
    if argc == 3:
        if not parse_bytes_i64(<bytes>argv[2], &count) or count < 0:
            return err_lit(c, b"ERR value is out of range, must be positive")
    nested = c.out.resp3 and count != -1
    o = _get_w(c, argv[1], &wrong)
    if wrong:
        return reply_wrongtype(c)
    if o is None:
        return c.out.array(0)
    if count == 0:
        return c.out.array(0)
    if count == -1:
        count = 1
    rangelen = len(o.m)
    if count < rangelen:
        rangelen = count
    c.out.array(rangelen if nested else 2 * rangelen)
    ix = <ZIndex>o.idx
    x = ix.tail if max_ else ix.first()
    for _i in range(rangelen):
        if nested:
            c.out.array(2)
        c.out.bulk_raw(x.mp, x.ml)
        reply_score(c.out, x.score)
        members.append((<ZEnt>x.ent).member)
        x = x.backward if max_ else x.level[0].forward
    emit_zrem(c.ks, argv[1], o, members)
    return 0


cdef int cmd_zpopmin(Client c, list argv) except -1:
    return _zpop(c, argv, False)


cdef int cmd_zpopmax(Client c, list argv) except -1:
    return _zpop(c, argv, True)


cdef int cmd_zremrangebyscore(Client c, list argv) except -1:
    cdef ZRange r
    cdef bint wrong
    cdef ZSetObj o
    cdef ZNode* x
    cdef list members = []
    if not parse_range(<bytes>argv[2], <bytes>argv[3], &r):
        return err_lit(c, b"ERR min or max is not a float")
    o = _get_w(c, argv[1], &wrong)
    if wrong:
        return reply_wrongtype(c)
    if o is None or not o.m:
        return c.out.integer(0)
    x = (<ZIndex>o.idx).first_in_range(&r)
    while x != NULL and lte_max(x.score, &r):
        members.append((<ZEnt>x.ent).member)
        x = x.level[0].forward
    if members:
        emit_zrem(c.ks, argv[1], o, members)
    return c.out.integer(len(members))


cdef int cmd_zremrangebyrank(Client c, list argv) except -1:
    cdef int64_t start, end, llen, n
    cdef bint wrong
    cdef ZSetObj o
    cdef ZNode* x
    cdef list members = []
    if not parse_bytes_i64(<bytes>argv[2], &start) or not parse_bytes_i64(<bytes>argv[3], &end):
        return reply_notint(c)
    o = _get_w(c, argv[1], &wrong)
    if wrong:
        return reply_wrongtype(c)
    if o is None or not o.m:
        return c.out.integer(0)
    llen = len(o.m)
    if start < 0:
        start += llen
    if end < 0:
        end += llen
    if start < 0:
        start = 0
    if start > end or start >= llen:
        return c.out.integer(0)
    if end >= llen:
        end = llen - 1
    n = end - start + 1
    x = (<ZIndex>o.idx).by_rank(start + 1)
    while n > 0:
        members.append((<ZEnt>x.ent).member)
        x = x.level[0].forward
        n -= 1
    emit_zrem(c.ks, argv[1], o, members)
    return c.out.integer(len(members))


# ---------------------------------------------------------------- ZSCAN ----

cdef int cmd_zscan(Client c, list argv) except -1:
    # A sorted set larger than one reply is walked in a copy of its members
    # (scan.pyx).
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
    cdef ZSetObj o
    cdef ZIndex ix
    cdef ZNode* x
    cdef ScanState st = None
    if not parse_cursor(c, <bytes>argv[2], &cur):
        return 0
    o = _get(c, argv[1], &wrong)
    if wrong:
        return reply_wrongtype(c)
    if o is None or not o.m:
        scan_drop(cur, SCAN_ZSET, c.ks, argv[1])
        return reply_empty_scan(c)
    pat = scan_args(c, argv, 3, &count, &tcode, False)
    if pat is False:
        return 0
    ix = <ZIndex>o.idx
    if ix.lp and len(o.m) <= LP_ENTRIES:
        # a listpack is scanned whole, in order
        scan_drop(cur, SCAN_ZSET, c.ks, argv[1])
        x = ix.first()
        while x != NULL:
            if pat is None or match_bytes(pat, (<ZEnt>x.ent).member):
                out.append((<ZEnt>x.ent).member)
                out.append(format_score((<ZEnt>x.ent).score))
            x = x.level[0].forward
    else:
        if cur != 0:
            st = scan_find(cur, SCAN_ZSET, c.ks, argv[1])
        if st is None and PyDict_Size(o.m) > count:
            st = scan_start(SCAN_ZSET, c.ks, argv[1], PyDict_Keys(o.m))
        if st is None:
            pos = 0
            while PyDict_Next(o.m, &pos, &k, &v):
                if pat is None or match_bytes(pat, <bytes>k):
                    out.append(<object>k)
                    out.append(format_score((<ZEnt>v).score))
        else:
            items = st.items
            end = scan_end(st, count)
            for pos in range(st.pos, end):
                k = PyList_GET_ITEM(items, pos)
                v = PyDict_GetItem(o.m, <object>k)
                if v != NULL and (pat is None or match_bytes(pat, <bytes>k)):
                    out.append(<object>k)
                    out.append(format_score((<ZEnt>v).score))
            nxt = scan_next(st, end)
    return reply_scan(c, nxt, out)


def register(Server srv):
    """Name the handlers; arity, flags and keys come from the command table."""
    add_command(srv, b"zadd", cmd_zadd)
    add_command(srv, b"zincrby", cmd_zincrby)
    add_command(srv, b"zscore", cmd_zscore)
    add_command(srv, b"zmscore", cmd_zmscore)
    add_command(srv, b"zcard", cmd_zcard)
    add_command(srv, b"zcount", cmd_zcount)
    add_command(srv, b"zrank", cmd_zrank)
    add_command(srv, b"zrevrank", cmd_zrevrank)
    add_command(srv, b"zrem", cmd_zrem)
    add_command(srv, b"zrange", cmd_zrange)
    add_command(srv, b"zrangebyscore", cmd_zrangebyscore)
    add_command(srv, b"zrevrangebyscore", cmd_zrevrangebyscore)
    add_command(srv, b"zrevrange", cmd_zrevrange)
    add_command(srv, b"zrangebylex", cmd_zrangebylex)
    add_command(srv, b"zrevrangebylex", cmd_zrevrangebylex)
    add_command(srv, b"zpopmin", cmd_zpopmin)
    add_command(srv, b"zpopmax", cmd_zpopmax)
    add_command(srv, b"zremrangebyscore", cmd_zremrangebyscore)
    add_command(srv, b"zremrangebyrank", cmd_zremrangebyrank)
    add_command(srv, b"zscan", cmd_zscan)
