"""Sorted set commands (docs/crdt.md section 3.6; the CRDT and the skip list are in t_zset.pyx).

Replies and errors follow Redis 7.0 (t_zset.c). Where Redis's answer depends on
the encoding it would hold the set in (listpack up to 128 members of at most 64
bytes, else skiplist), ConstDB keeps a flag that follows the same rule
(`ZIndex.lp`): a small set stores -0 as 0 (listpack scores go through
d2string) and ZSCAN returns it whole in one call, in order.
"""

import random

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.dict cimport (
    PyDict_Contains, PyDict_GetItem, PyDict_GetItemWithError, PyDict_Keys, PyDict_Next, PyDict_Size,
)
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from cpython.object cimport PyObject
from libc.math cimport isnan
from libc.stdint cimport int64_t, uint64_t

from constdb._core.cmd_keys cimport (
    err_lit, opt_eq, parse_cursor, reply_empty_scan, reply_range_error, reply_scan, scan_args,
)
from constdb._core.codec cimport parse_bytes_i64
from constdb._core.glob cimport match_bytes
from constdb._core.keyspace cimport (
    N_ZSET, Keyspace, notify, notify_gone, store_begin, store_end,
)
from constdb._core.objects cimport CObj, SetObj, ZEnt, ZSetObj
from constdb._core.protocol cimport (
    Client, Server, add_command, reply_notint, reply_syntax, reply_wrongtype,
)
from constdb._core.scan cimport (
    SCAN_ZSET, ScanState, scan_drop, scan_end, scan_find, scan_next, scan_start,
)
from constdb._core.t_zset cimport (
    ZIndex, ZLexRange, ZNode, ZRange, zn_back, zn_ml, zn_mp, emit_zadd, emit_zincr, emit_zrem,
    emit_zscore,
    format_score,
    index_of,
    store_zset,
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
    cdef PyObject* p = PyDict_GetItemWithError(o.m, member)
    if p == NULL:
        return None
    return <ZEnt>p


# ---------------------------------------------------------------- ZADD ----

cdef Py_ssize_t zadd_flags(list argv, Py_ssize_t idx, int* flags, bint geo) noexcept:
    """ZADD's options from argv[idx] on (GEOADD's: NX XX CH only) into flags;
    the index of the first argument that is not one."""
    cdef Py_ssize_t argc = PyList_GET_SIZE(argv)
    cdef bytes opt
    cdef char c0
    while idx < argc:
        opt = <bytes>PyList_GET_ITEM(argv, idx)
        c0 = PyBytes_AS_STRING(opt)[0] | 0x20
        if c0 < b'a' or c0 > b'z' or PyBytes_GET_SIZE(opt) > 4:
            break       # (a score: every option is a word of 2 to 4 letters)
        if opt_eq(opt, b"NX", 2):
            flags[0] |= ZADD_NX
        elif opt_eq(opt, b"XX", 2):
            flags[0] |= ZADD_XX
        elif opt_eq(opt, b"CH", 2):
            flags[0] |= ZADD_CH
        elif geo:
            break
        elif opt_eq(opt, b"INCR", 4):
            flags[0] |= ZADD_INCR
        elif opt_eq(opt, b"GT", 2):
            flags[0] |= ZADD_GT
        elif opt_eq(opt, b"LT", 2):
            flags[0] |= ZADD_LT
        else:
            break
        idx += 1
    return idx


cdef int _zadd(Client c, list argv, bint incr) except -1:
    """zaddGenericCommand."""
    cdef Py_ssize_t argc = PyList_GET_SIZE(argv), idx, elements, j
    cdef int flags = ZADD_INCR if incr else 0
    cdef double score
    cdef list scores
    idx = zadd_flags(argv, 2, &flags, False)
    incr = flags & ZADD_INCR
    elements = argc - idx
    if elements % 2 or elements == 0:
        return reply_syntax(c)
    elements //= 2
    if flags & ZADD_NX and flags & ZADD_XX:
        return err_lit(c, b"ERR XX and NX options at the same time are not compatible")
    if (flags & ZADD_NX and flags & (ZADD_GT | ZADD_LT)) or \
            (flags & ZADD_GT and flags & ZADD_LT):
        return err_lit(c, b"ERR GT, LT, and/or NX options at the same time are not compatible")
    if incr and elements > 1:
        return err_lit(c, b"ERR INCR option supports a single increment-element pair")
    if elements == 1:
        # (the usual ZADD: no list, no float objects)
        if not parse_score(<bytes>PyList_GET_ITEM(argv, idx), &score):
            return err_lit(c, b"ERR value is not a valid float")
        return _zadd_run(c, argv, &score, 1, idx + 1, 2, flags)
    scores = []
    for j in range(elements):
        if not parse_score(<bytes>PyList_GET_ITEM(argv, idx + 2 * j), &score):
            return err_lit(c, b"ERR value is not a valid float")
        scores.append(score)
    return zadd_core(c, argv, scores, idx + 1, 2, flags)


cdef int zadd_core(Client c, list argv, list scores, Py_ssize_t midx, Py_ssize_t mstep,
                   int flags) except -1:
    """ZADD's work once the request is checked (also GEOADD's): member j is
    argv[midx + mstep * j], its score scores[j]."""
    cdef Py_ssize_t n = len(scores), j
    cdef double* buf = <double*>PyMem_Malloc(n * sizeof(double) if n else 1)
    if buf == NULL:
        raise MemoryError()
    try:
        for j in range(n):
            buf[j] = <double>scores[j]
        return _zadd_run(c, argv, buf, n, midx, mstep, flags)
    finally:
        PyMem_Free(buf)


cdef int _zadd_run(Client c, list argv, double* scores, Py_ssize_t elements, Py_ssize_t midx,
                   Py_ssize_t mstep, int flags) except -1:
    """zadd_core on a C array of scores."""
    cdef Keyspace ks = c.ks
    cdef Py_ssize_t j
    cdef bint nx = flags & ZADD_NX, xx = flags & ZADD_XX, gt = flags & ZADD_GT
    cdef bint lt = flags & ZADD_LT, ch = flags & ZADD_CH, incr = flags & ZADD_INCR
    cdef bint lp, wrong
    cdef int64_t added = 0, updated = 0, processed = 0
    cdef double score, cur, newscore = 0.0, stored
    cdef bytes member
    cdef object key = <object>PyList_GET_ITEM(argv, 1)
    cdef ZSetObj o
    cdef ZEnt e
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
            PyBytes_GET_SIZE(<bytes>PyList_GET_ITEM(argv, midx)) <= LP_VALUE
    else:
        lp = o.idx is None or ((<ZIndex>o.idx).lp and len(o.m) <= LP_ENTRIES)
    for j in range(elements):
        score = scores[j]
        member = <bytes>PyList_GET_ITEM(argv, midx + mstep * j)
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
                    emit_zincr(ks, key, o, member, scores[j], stored)
                else:
                    emit_zscore(ks, key, o, e, stored)
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
    if added or updated:
        notify(ks, N_ZSET, b"zincr" if incr else b"zadd", key)
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


cdef inline int64_t _span(ZIndex ix, ZNode* a, ZNode* b) noexcept:
    """How many members from node a to node b (0 when a is NULL)."""
    if a == NULL:
        return 0
    return ix.rank(b.score, (<ZEnt>b.ent).member) - ix.rank(a.score, (<ZEnt>a.ent).member) + 1


cdef int cmd_zcount(Client c, list argv) except -1:
    cdef bint wrong
    cdef ZRange r
    cdef ZSetObj o
    cdef ZIndex ix
    cdef ZNode* a
    if not parse_range(<bytes>argv[2], <bytes>argv[3], &r):
        return err_lit(c, b"ERR min or max is not a float")
    o = _get(c, argv[1], &wrong)
    if wrong:
        return reply_wrongtype(c)
    if o is None or o.idx is None:
        return c.out.integer(0)
    ix = <ZIndex>o.idx
    a = ix.first_in_range(&r)
    return c.out.integer(_span(ix, a, ix.last_in_range(&r) if a != NULL else NULL))


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
    c.out.bulk_raw(zn_mp(x), zn_ml(x))
    if withscores:
        reply_score(c.out, x.score)
    return 0


cdef int _header(Client c, Py_ssize_t n, bint withscores) except -1:
    if withscores and not c.out.resp3:
        return c.out.array(2 * n)
    return c.out.array(n)


cdef inline int64_t _clamp(int64_t llen, int64_t* start, int64_t* end) noexcept:
    """Redis's rank range rules: start and end (negative from the end) made
    valid in place; how many ranks (0: none)."""
    if start[0] < 0:
        start[0] += llen
    if end[0] < 0:
        end[0] += llen
    if start[0] < 0:
        start[0] = 0
    if start[0] > end[0] or start[0] >= llen:
        return 0
    if end[0] >= llen:
        end[0] = llen - 1
    return end[0] - start[0] + 1


cdef list _rank_ents(ZSetObj o, int64_t start, int64_t end, bint rev):
    """The entries of ranks start..end (Redis's clamping), in reply order."""
    cdef int64_t llen = len(o.m), rangelen
    cdef ZIndex ix
    cdef ZNode* x
    cdef list ents = []
    rangelen = _clamp(llen, &start, &end)
    if rangelen == 0:
        return ents
    ix = <ZIndex>o.idx
    if rev:
        x = ix.tail if start == 0 else ix.by_rank(llen - start)
    else:
        x = ix.first() if start == 0 else ix.by_rank(start + 1)
    while rangelen > 0:
        ents.append(<ZEnt>x.ent)
        x = zn_back(x) if rev else x.level[0].forward
        rangelen -= 1
    return ents


cdef int _by_rank(Client c, ZSetObj o, int64_t start, int64_t end, bint withscores,
                  bint rev) except -1:
    cdef int64_t llen = len(o.m), rangelen
    cdef ZIndex ix
    cdef ZNode* x
    rangelen = _clamp(llen, &start, &end)
    if rangelen == 0:
        return c.out.array(0)
    _header(c, rangelen, withscores)
    ix = <ZIndex>o.idx
    if rev:
        x = ix.tail if start == 0 else ix.by_rank(llen - start)
    else:
        x = ix.first() if start == 0 else ix.by_rank(start + 1)
    while rangelen > 0:
        _emit(c, x, withscores)
        x = zn_back(x) if rev else x.level[0].forward
        rangelen -= 1
    return 0


cdef list _score_ents(ZSetObj o, ZRange* r, int64_t offset, int64_t limit, bint rev):
    cdef ZIndex ix = <ZIndex>o.idx
    cdef ZNode* x
    cdef list ents = []
    if offset > 0 and offset >= len(o.m):
        return ents
    x = ix.last_in_range(r) if rev else ix.first_in_range(r)
    while x != NULL and offset != 0:
        offset -= 1
        x = zn_back(x) if rev else x.level[0].forward
    while x != NULL and limit != 0:
        limit -= 1
        if rev:
            if not gte_min(x.score, r):
                break
        elif not lte_max(x.score, r):
            break
        ents.append(<ZEnt>x.ent)
        x = zn_back(x) if rev else x.level[0].forward
    return ents


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


cdef list _lex_ents(ZSetObj o, ZLexRange* r, int64_t offset, int64_t limit, bint rev):
    cdef ZIndex ix = <ZIndex>o.idx
    cdef ZNode* x
    cdef list ents = []
    if offset > 0 and offset >= len(o.m):
        return ents
    x = ix.last_in_lex(r) if rev else ix.first_in_lex(r)
    while x != NULL and offset != 0:
        offset -= 1
        x = zn_back(x) if rev else x.level[0].forward
    while x != NULL and limit != 0:
        limit -= 1
        if rev:
            if not lex_gte_min(x, r):
                break
        elif not lex_lte_max(x, r):
            break
        ents.append(<ZEnt>x.ent)
        x = zn_back(x) if rev else x.level[0].forward
    return ents


cdef int _store_ents(Client c, object dst, list ents) except -1:
    """ZRANGESTORE's end: dst holds exactly these members and scores."""
    cdef dict res = {}
    cdef ZEnt e
    for x in ents:
        e = <ZEnt>x
        res[e.member] = e.score
    had = store_begin(c.ks, dst)
    store_zset(c.ks, dst, res, fits_lp(res))
    store_end(c.ks, dst, had, len(res), N_ZSET, b"zrangestore")
    return c.out.integer(len(res))


cdef int _zrange(Client c, list argv, int rangetype, int direction, bint store) except -1:
    """zrangeGenericCommand (store: ZRANGESTORE dst src ...)."""
    cdef Py_ssize_t argc = PyList_GET_SIZE(argv), j, t, ks = 2 if store else 1
    cdef Py_ssize_t minidx = ks + 1, maxidx = ks + 2
    cdef bint withscores = False, wrong
    cdef int64_t offset = 0, limit = -1, start, end
    cdef bytes a
    cdef ZRange r
    cdef ZLexRange lr
    cdef ZSetObj o
    cdef list ents
    j = ks + 3
    while j < argc:
        a = <bytes>argv[j]
        if not store and opt_eq(a, b"WITHSCORES", 10):
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
    o = _get(c, argv[ks], &wrong)
    if wrong:
        return reply_wrongtype(c)
    if o is None or not o.m:
        if store:
            return _store_ents(c, argv[1], [])
        return c.out.array(0)
    if rangetype == RANGE_RANK:
        if not store:
            return _by_rank(c, o, start, end, withscores, direction == DIR_REVERSE)
        ents = _rank_ents(o, start, end, direction == DIR_REVERSE)
    elif rangetype == RANGE_SCORE:
        ents = _score_ents(o, &r, offset, limit, direction == DIR_REVERSE)
    else:
        ents = _lex_ents(o, &lr, offset, limit, direction == DIR_REVERSE)
    if store:
        return _store_ents(c, argv[1], ents)
    return _emit_ents(c, ents, withscores)


cdef int cmd_zrange(Client c, list argv) except -1:
    return _zrange(c, argv, RANGE_AUTO, DIR_AUTO, False)


cdef int cmd_zrangestore(Client c, list argv) except -1:
    return _zrange(c, argv, RANGE_AUTO, DIR_AUTO, True)


cdef int cmd_zrangebyscore(Client c, list argv) except -1:
    return _zrange(c, argv, RANGE_SCORE, DIR_FORWARD, False)


cdef int cmd_zrevrangebyscore(Client c, list argv) except -1:
    return _zrange(c, argv, RANGE_SCORE, DIR_REVERSE, False)


cdef int cmd_zrevrange(Client c, list argv) except -1:
    return _zrange(c, argv, RANGE_RANK, DIR_REVERSE, False)


cdef int cmd_zrangebylex(Client c, list argv) except -1:
    return _zrange(c, argv, RANGE_LEX, DIR_FORWARD, False)


cdef int cmd_zrevrangebylex(Client c, list argv) except -1:
    return _zrange(c, argv, RANGE_LEX, DIR_REVERSE, False)


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
        notify(c.ks, N_ZSET, b"zrem", argv[1])
        notify_gone(c.ks, argv[1])
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
        c.out.bulk_raw(zn_mp(x), zn_ml(x))
        reply_score(c.out, x.score)
        members.append((<ZEnt>x.ent).member)
        x = zn_back(x) if max_ else x.level[0].forward
    emit_zrem(c.ks, argv[1], o, members)
    notify(c.ks, N_ZSET, b"zpopmax" if max_ else b"zpopmin", argv[1])
    notify_gone(c.ks, argv[1])
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
        notify(c.ks, N_ZSET, b"zremrangebyscore", argv[1])
        notify_gone(c.ks, argv[1])
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
    n = _clamp(llen, &start, &end)
    if n == 0:
        return c.out.integer(0)
    x = (<ZIndex>o.idx).by_rank(start + 1)
    while n > 0:
        members.append((<ZEnt>x.ent).member)
        x = x.level[0].forward
        n -= 1
    emit_zrem(c.ks, argv[1], o, members)
    notify(c.ks, N_ZSET, b"zremrangebyrank", argv[1])
    notify_gone(c.ks, argv[1])
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


# ------------------------------------------------------ set algebra ----

cdef enum:
    OP_UNION = 0
    OP_INTER = 1
    OP_DIFF = 2

    AGG_SUM = 0
    AGG_MIN = 1
    AGG_MAX = 2


cdef inline double _agg(double target, double val, int agg) noexcept:
    """zunionInterAggregate: SUM of +inf and -inf is 0; a NaN value leaves
    MIN and MAX unchanged."""
    if agg == AGG_SUM:
        target = target + val
        if isnan(target):
            return 0.0
        return target
    if agg == AGG_MIN:
        return val if val < target else target
    return val if val > target else target


cdef inline Py_ssize_t _card(object o) noexcept:
    if o is None:
        return 0
    if type(o) is ZSetObj:
        return PyDict_Size((<ZSetObj>o).m)
    return PyDict_Size((<SetObj>o).m)


cdef inline bint _score_in(object o, object member, double* out):
    """member's score in the input o (a sorted set, or a set: score 1)."""
    cdef PyObject* p
    if o is None:
        return False
    if type(o) is ZSetObj:
        p = PyDict_GetItem((<ZSetObj>o).m, member)
        if p == NULL:
            return False
        out[0] = (<ZEnt>p).score
        return True
    if PyDict_Contains((<SetObj>o).m, member):
        out[0] = 1.0
        return True
    return False


cdef dict _zsetop(list srcs, list weights, int op, int agg, int64_t limit, int64_t* card):
    """zunionInterDiffGenericCommand's result: member -> score. card (not
    NULL): only count the intersection, up to limit (0: no limit)."""
    cdef dict acc = {}
    cdef Py_ssize_t i, j, n = len(srcs), pos
    cdef PyObject* k
    cdef PyObject* v
    cdef PyObject* p
    cdef double w, score, value = 0.0
    cdef object o, o0
    cdef dict m
    cdef bint zs
    if op == OP_INTER:
        o0 = srcs[0]
        if _card(o0) == 0:
            return acc
        w = <double>weights[0]
        zs = type(o0) is ZSetObj
        m = (<ZSetObj>o0).m if zs else (<SetObj>o0).m
        pos = 0
        while PyDict_Next(m, &pos, &k, &v):
            score = w * ((<ZEnt>v).score if zs else 1.0)
            if isnan(score):
                score = 0.0
            for j in range(1, n):
                o = srcs[j]
                if o is o0:
                    value = ((<ZEnt>v).score if zs else 1.0) * <double>weights[j]
                elif _score_in(o, <object>k, &value):
                    value *= <double>weights[j]
                else:
                    break
                score = _agg(score, value, agg)
            else:
                if card != NULL:
                    card[0] += 1
                    if limit and card[0] >= limit:
                        break
                else:
                    acc[<object>k] = score
        return acc
    if op == OP_UNION:
        for i in range(n):
            o = srcs[i]
            if _card(o) == 0:
                continue
            w = <double>weights[i]
            if type(o) is ZSetObj:
                pos = 0
                while PyDict_Next((<ZSetObj>o).m, &pos, &k, &v):
                    score = w * (<ZEnt>v).score
                    if isnan(score):
                        score = 0.0
                    p = PyDict_GetItem(acc, <object>k)
                    if p == NULL:
                        acc[<object>k] = score
                    else:
                        acc[<object>k] = _agg(<double><object>p, score, agg)
            else:
                score = w
                if isnan(score):
                    score = 0.0
                pos = 0
                while PyDict_Next((<SetObj>o).m, &pos, &k, &v):
                    p = PyDict_GetItem(acc, <object>k)
                    if p == NULL:
                        acc[<object>k] = score
                    else:
                        acc[<object>k] = _agg(<double><object>p, score, agg)
        return acc
    # OP_DIFF: the first input's members that no other input has
    o0 = srcs[0]
    if _card(o0) == 0:
        return acc
    zs = type(o0) is ZSetObj
    m = (<ZSetObj>o0).m if zs else (<SetObj>o0).m
    pos = 0
    while PyDict_Next(m, &pos, &k, &v):
        for j in range(1, n):
            o = srcs[j]
            if o is not None and PyDict_Contains(
                    (<ZSetObj>o).m if type(o) is ZSetObj else (<SetObj>o).m, <object>k):
                break
        else:
            acc[<object>k] = (<ZEnt>v).score if zs else 1.0
    return acc


cdef list _sorted_items(dict res):
    """res's (score, member) pairs in sorted set order."""
    cdef list items = [(v, k) for k, v in res.items()]
    items.sort()
    return items


cdef bint fits_lp(object members) except -1:
    """Would Redis convert a result of these members to a listpack
    (zsetConvertToListpackIfNeeded: at most 128 members of at most 64 bytes)?"""
    if len(members) > LP_ENTRIES:
        return False
    for m in members:
        if PyBytes_GET_SIZE(<bytes>m) > LP_VALUE:
            return False
    return True


cdef int _zsetop_cmd(Client c, list argv, Py_ssize_t numkeys_idx, int op, bint store,
                     bint card_only, const char* name) except -1:
    """zunionInterDiffGenericCommand: ZUNION ZINTER ZDIFF, their STORE forms
    and ZINTERCARD."""
    cdef Py_ssize_t argc = PyList_GET_SIZE(argv), i, j, remaining
    cdef int64_t setnum, limit = 0, card = 0
    cdef int agg = AGG_SUM
    cdef bint withscores = False
    cdef double w
    cdef list srcs = [], weights, items
    cdef object o
    cdef bytes a
    cdef dict res
    if not parse_bytes_i64(<bytes>argv[numkeys_idx], &setnum):
        return reply_notint(c)
    if setnum < 1:
        return err_lit(c, b"ERR at least 1 input key is needed for '" + name + b"' command")
    if setnum > argc - (numkeys_idx + 1):
        return reply_syntax(c)
    j = numkeys_idx + 1
    for i in range(setnum):
        o = c.ks.lookup_r(argv[j + i])
        if o is not None and type(o) is not ZSetObj and type(o) is not SetObj:
            return reply_wrongtype(c)
        srcs.append(o)
    weights = [1.0] * setnum
    j += setnum
    remaining = argc - j
    while remaining:
        a = <bytes>argv[j]
        if op != OP_DIFF and not card_only and remaining >= setnum + 1 and \
                opt_eq(a, b"WEIGHTS", 7):
            j += 1
            remaining -= 1
            for i in range(setnum):
                if not parse_score(<bytes>argv[j], &w):
                    return err_lit(c, b"ERR weight value is not a float")
                weights[i] = w
                j += 1
                remaining -= 1
        elif op != OP_DIFF and not card_only and remaining >= 2 and \
                opt_eq(a, b"AGGREGATE", 9):
            a = <bytes>argv[j + 1]
            if opt_eq(a, b"SUM", 3):
                agg = AGG_SUM
            elif opt_eq(a, b"MIN", 3):
                agg = AGG_MIN
            elif opt_eq(a, b"MAX", 3):
                agg = AGG_MAX
            else:
                return reply_syntax(c)
            j += 2
            remaining -= 2
        elif not store and not card_only and opt_eq(a, b"WITHSCORES", 10):
            withscores = True
            j += 1
            remaining -= 1
        elif card_only and remaining >= 2 and opt_eq(a, b"LIMIT", 5):
            if not parse_bytes_i64(<bytes>argv[j + 1], &limit):
                return err_lit(c, b"ERR LIMIT can't be negative")
            if limit < 0:
                return err_lit(c, b"ERR LIMIT can't be negative")
            j += 2
            remaining -= 2
        else:
            return reply_syntax(c)
    if op != OP_DIFF and setnum > 1:
        # the inputs from the smallest to the largest (a stable sort)
        order = sorted(range(setnum), key=lambda x: _card(srcs[x]))
        srcs = [srcs[x] for x in order]
        weights = [weights[x] for x in order]
    if card_only:
        _zsetop(srcs, weights, op, agg, limit, &card)
        return c.out.integer(card)
    res = _zsetop(srcs, weights, op, agg, 0, NULL)
    if store:
        had = store_begin(c.ks, argv[1])
        store_zset(c.ks, argv[1], res, fits_lp(res))
        store_end(c.ks, argv[1], had, len(res), N_ZSET,
                  b"zunionstore" if op == OP_UNION else
                  b"zinterstore" if op == OP_INTER else b"zdiffstore")
        return c.out.integer(len(res))
    items = _sorted_items(res)
    _header(c, len(items), withscores)
    for it in items:
        if withscores and c.out.resp3:
            c.out.array(2)
        c.out.bulk(<bytes>(<tuple>it)[1])
        if withscores:
            reply_score(c.out, <double>(<tuple>it)[0])
    return 0


cdef int cmd_zunion(Client c, list argv) except -1:
    return _zsetop_cmd(c, argv, 1, OP_UNION, False, False, b"zunion")


cdef int cmd_zinter(Client c, list argv) except -1:
    return _zsetop_cmd(c, argv, 1, OP_INTER, False, False, b"zinter")


cdef int cmd_zdiff(Client c, list argv) except -1:
    return _zsetop_cmd(c, argv, 1, OP_DIFF, False, False, b"zdiff")


cdef int cmd_zunionstore(Client c, list argv) except -1:
    return _zsetop_cmd(c, argv, 2, OP_UNION, True, False, b"zunionstore")


cdef int cmd_zinterstore(Client c, list argv) except -1:
    return _zsetop_cmd(c, argv, 2, OP_INTER, True, False, b"zinterstore")


cdef int cmd_zdiffstore(Client c, list argv) except -1:
    return _zsetop_cmd(c, argv, 2, OP_DIFF, True, False, b"zdiffstore")


cdef int cmd_zintercard(Client c, list argv) except -1:
    return _zsetop_cmd(c, argv, 1, OP_INTER, False, True, b"zintercard")


# ------------------------------------------------------- by lex, random ----

cdef int cmd_zlexcount(Client c, list argv) except -1:
    cdef bint wrong
    cdef ZLexRange r
    cdef ZSetObj o
    cdef ZIndex ix
    cdef ZNode* a
    if not parse_lex(<bytes>argv[2], <bytes>argv[3], &r):
        return err_lit(c, b"ERR min or max not valid string range item")
    o = _get(c, argv[1], &wrong)
    if wrong:
        return reply_wrongtype(c)
    if o is None or o.idx is None:
        return c.out.integer(0)
    ix = <ZIndex>o.idx
    a = ix.first_in_lex(&r)
    return c.out.integer(_span(ix, a, ix.last_in_lex(&r) if a != NULL else NULL))


cdef int cmd_zremrangebylex(Client c, list argv) except -1:
    cdef ZLexRange r
    cdef bint wrong
    cdef ZSetObj o
    cdef ZNode* x
    cdef list members = []
    if not parse_lex(<bytes>argv[2], <bytes>argv[3], &r):
        return err_lit(c, b"ERR min or max not valid string range item")
    o = _get_w(c, argv[1], &wrong)
    if wrong:
        return reply_wrongtype(c)
    if o is None or not o.m:
        return c.out.integer(0)
    x = (<ZIndex>o.idx).first_in_lex(&r)
    while x != NULL and lex_lte_max(x, &r):
        members.append((<ZEnt>x.ent).member)
        x = x.level[0].forward
    if members:
        emit_zrem(c.ks, argv[1], o, members)
        notify(c.ks, N_ZSET, b"zremrangebylex", argv[1])
        notify_gone(c.ks, argv[1])
    return c.out.integer(len(members))


cdef int cmd_zrandmember(Client c, list argv) except -1:
    # zrandmemberCommand: a random rank's node of the skip list (O(log n) a
    # pick). A count at least the size returns the whole set.
    cdef bint wrong
    cdef int64_t count = 1
    cdef Py_ssize_t n = PyList_GET_SIZE(argv), size, _i
    cdef bint has_count = n >= 3, withscores = False
    cdef ZSetObj o
    cdef ZIndex ix
    cdef ZNode* x
    cdef list ranks
    if has_count:
        if not parse_bytes_i64(<bytes>argv[2], &count):
            return reply_notint(c)
        if count < -0x7FFFFFFFFFFFFFFF:
            return reply_range_error(c, -0x7FFFFFFFFFFFFFFF, 0x7FFFFFFFFFFFFFFF)
        if n > 4 or (n == 4 and not opt_eq(<bytes>argv[3], b"WITHSCORES", 10)):
            return reply_syntax(c)
        if n == 4:
            withscores = True
            if count < -(0x7FFFFFFFFFFFFFFF // 2) or count > 0x7FFFFFFFFFFFFFFF // 2:
                return err_lit(c, b"ERR value is out of range")
    o = _get(c, argv[1], &wrong)
    if wrong:
        return reply_wrongtype(c)
    if o is None or not o.m:
        if has_count:
            return c.out.array(0)
        return c.out.nil()
    ix = <ZIndex>o.idx
    size = len(o.m)
    if not has_count:
        x = ix.by_rank(random.randrange(size) + 1)
        return c.out.bulk_raw(zn_mp(x), zn_ml(x))
    if count == 0:
        return c.out.array(0)
    if count >= size:
        # the whole set, from the highest score down (as Redis 7.0 lists it)
        x = ix.tail
        _header(c, size, withscores)
        while x != NULL:
            _emit(c, x, withscores)
            x = zn_back(x)
        return 0
    if count > 0:
        ranks = random.sample(range(size), count)
    else:
        ranks = [random.randrange(size) for _i in range(-count)]
    _header(c, len(ranks), withscores)
    for rk in ranks:
        _emit(c, ix.by_rank(<Py_ssize_t>rk + 1), withscores)
    return 0


cdef Py_ssize_t mpop_args(Client c, list argv, bytes first, bytes second, bint* is_second,
                          int64_t* count) except -1:
    """ZMPOP and LMPOP's arguments (numkeys key... first|second [COUNT n]): the
    index of first|second, or 0 after replying the error."""
    cdef Py_ssize_t argc = PyList_GET_SIZE(argv), where_idx, j
    cdef int64_t numkeys
    cdef bytes a
    count[0] = -1
    if not parse_bytes_i64(<bytes>argv[1], &numkeys) or numkeys < 1:
        err_lit(c, b"ERR numkeys should be greater than 0")
        return 0
    if numkeys > argc - 3:
        reply_syntax(c)
        return 0
    where_idx = 2 + numkeys
    a = <bytes>argv[where_idx]
    if opt_eq(a, first, len(first)):
        is_second[0] = False
    elif opt_eq(a, second, len(second)):
        is_second[0] = True
    else:
        reply_syntax(c)
        return 0
    j = where_idx + 1
    while j < argc:
        if count[0] == -1 and opt_eq(<bytes>argv[j], b"COUNT", 5) and j + 1 < argc:
            j += 1
            if not parse_bytes_i64(<bytes>argv[j], count) or count[0] < 1:
                err_lit(c, b"ERR count should be greater than 0")
                return 0
        else:
            reply_syntax(c)
            return 0
        j += 1
    if count[0] == -1:
        count[0] = 1
    return where_idx


cdef int cmd_zmpop(Client c, list argv) except -1:
    # zmpopGenericCommand (non-blocking): the first non-empty sorted set of
    # the keys; [key, [[member, score], ...]], or a null array
    cdef Py_ssize_t where_idx, j, rangelen, _i
    cdef int64_t count
    cdef bint max_
    cdef object key
    cdef CObj o = None
    cdef ZSetObj z
    cdef ZNode* x
    cdef list members = []
    where_idx = mpop_args(c, argv, b"MIN", b"MAX", &max_, &count)
    if where_idx == 0:
        return 0
    for j in range(2, where_idx):
        key = argv[j]
        o = c.ks.lookup(key)
        if o is None:
            continue
        if type(o) is not ZSetObj:
            return reply_wrongtype(c)
        break
    if o is None:
        return c.out.nil_array()
    z = <ZSetObj>o
    rangelen = len(z.m)
    if count < rangelen:
        rangelen = count
    c.out.array(2)
    c.out.bulk(<bytes>key)
    c.out.array(rangelen)
    x = (<ZIndex>z.idx).tail if max_ else (<ZIndex>z.idx).first()
    for _i in range(rangelen):
        c.out.array(2)
        c.out.bulk_raw(zn_mp(x), zn_ml(x))
        reply_score(c.out, x.score)
        members.append((<ZEnt>x.ent).member)
        x = zn_back(x) if max_ else x.level[0].forward
    emit_zrem(c.ks, key, z, members)
    notify(c.ks, N_ZSET, b"zpopmax" if max_ else b"zpopmin", key)
    notify_gone(c.ks, key)
    return 0


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
    add_command(srv, b"zunion", cmd_zunion)
    add_command(srv, b"zinter", cmd_zinter)
    add_command(srv, b"zdiff", cmd_zdiff)
    add_command(srv, b"zunionstore", cmd_zunionstore)
    add_command(srv, b"zinterstore", cmd_zinterstore)
    add_command(srv, b"zdiffstore", cmd_zdiffstore)
    add_command(srv, b"zintercard", cmd_zintercard)
    add_command(srv, b"zrangestore", cmd_zrangestore)
    add_command(srv, b"zlexcount", cmd_zlexcount)
    add_command(srv, b"zremrangebylex", cmd_zremrangebylex)
    add_command(srv, b"zrandmember", cmd_zrandmember)
    add_command(srv, b"zmpop", cmd_zmpop)
