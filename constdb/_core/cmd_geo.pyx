"""Geo commands on the sorted-set type (docs/crdt.md section 3.6): a position is
a member whose score is its 52-bit geohash (geo.pyx). GEOADD is a ZADD of those
scores; the searches read the local replica; the STORE forms write their result
as a whole-key overwrite of the destination (t_zset.store_zset), as
ZUNIONSTORE does. Replies and errors follow Redis 7.0 (geo.c)."""

from cpython.list cimport PyList_GET_SIZE
from libc.stdint cimport int64_t
from libc.stdio cimport snprintf

from constdb._core.keyspace cimport N_ZSET, store_begin, store_end
from constdb._core.cmd_keys cimport err_lit, opt_eq, reply_error_bytes
from constdb._core.cmd_zsets cimport ZADD_NX, ZADD_XX, fits_lp, zadd_core, zadd_flags
from constdb._core.codec cimport WBuf, parse_bytes_i64
from constdb._core.geo cimport (
    SHAPE_BOX, SHAPE_RADIUS, GeoBits, GeoShape, fmt_human, geo_box_scores, geo_boxes,
    geo_decode, geo_distance, geo_hash11, geo_in_shape, geo_lonlat_ok, geo_score,
)
from constdb._core.objects cimport ZEnt, ZSetObj
from constdb._core.protocol cimport (
    Client, Server, add_command, reply_notint, reply_syntax, reply_wrongtype,
)
from constdb._core.t_zset cimport (
    ZIndex, ZNode, ZRange, lte_max, parse_score, store_zset,
)

cdef enum:
    RADIUS_COORDS = 1
    RADIUS_MEMBER = 2
    RADIUS_NOSTORE = 4
    GEOSEARCH = 8
    GEOSEARCHSTORE = 16

    SORT_NONE = 0
    SORT_ASC = 1
    SORT_DESC = 2


cdef int _bad_pair(Client c, double lon, double lat) except -1:
    cdef char buf[800]
    cdef int n = snprintf(buf, sizeof(buf), "ERR invalid longitude,latitude pair %f,%f", lon, lat)
    return c.out.error(buf, n)


cdef bint _lonlat(Client c, list argv, Py_ssize_t i, double* lon, double* lat) except -1:
    """extractLongLatOrReply: False after replying the error."""
    if not parse_score(<bytes>argv[i], lon) or not parse_score(<bytes>argv[i + 1], lat):
        err_lit(c, b"ERR value is not a valid float")
        return False
    if not geo_lonlat_ok(lon[0], lat[0]):
        _bad_pair(c, lon[0], lat[0])
        return False
    return True


cdef double _unit(Client c, bytes u) except -2:
    """extractUnitOrReply: meters per unit, or -1 after replying the error."""
    if opt_eq(u, b"M", 1):
        return 1.0
    if opt_eq(u, b"KM", 2):
        return 1000.0
    if opt_eq(u, b"FT", 2):
        return 0.3048
    if opt_eq(u, b"MI", 2):
        return 1609.34
    err_lit(c, b"ERR unsupported unit provided. please use M, KM, FT, MI")
    return -1.0


cdef bint _member_pos(ZSetObj o, object member, double* lon, double* lat):
    cdef ZEnt e = o.m.get(member)
    if e is None:
        return False
    geo_decode(e.score, lon, lat)
    return True


cdef inline int _distance(WBuf out, double d) except -1:
    # addReplyDoubleDistance: %.4f, a bulk string in both protocols
    cdef char buf[400]
    cdef int n = snprintf(buf, sizeof(buf), "%.4f", d)
    return out.bulk_raw(buf, n)


cdef inline int _human(WBuf out, double d) except -1:
    # addReplyHumanLongDouble: a bulk string in RESP2, a double in RESP3
    cdef char buf[400]
    cdef Py_ssize_t n = fmt_human(buf, d)
    if out.resp3:
        out.put_raw(b",", 1)
        out.put_raw(buf, n)
        return out.put_raw(b"\r\n", 2)
    return out.bulk_raw(buf, n)


# ---------------------------------------------------------------- GEOADD ----

cdef int cmd_geoadd(Client c, list argv) except -1:
    cdef Py_ssize_t argc = PyList_GET_SIZE(argv), longidx, elements, j
    cdef int flags = 0
    cdef double lon, lat
    cdef list scores = []
    longidx = zadd_flags(argv, 2, &flags, True)
    if (argc - longidx) % 3 or (flags & ZADD_NX and flags & ZADD_XX):
        return reply_syntax(c)
    elements = (argc - longidx) // 3
    if elements == 0:
        return reply_syntax(c)
    for j in range(elements):
        if not _lonlat(c, argv, longidx + 3 * j, &lon, &lat):
            return 0
        scores.append(geo_score(lon, lat))
    return zadd_core(c, argv, scores, longidx + 2, 3, flags)


# -------------------------------------------------------- point lookups ----

cdef int cmd_geopos(Client c, list argv) except -1:
    cdef Py_ssize_t n = PyList_GET_SIZE(argv), j
    cdef double lon, lat
    cdef object o = c.ks.lookup_r(argv[1])
    if o is not None and type(o) is not ZSetObj:
        return reply_wrongtype(c)
    c.out.array(n - 2)
    for j in range(2, n):
        if o is None or not _member_pos(<ZSetObj>o, argv[j], &lon, &lat):
            c.out.nil_array()
        else:
            c.out.array(2)
            _human(c.out, lon)
            _human(c.out, lat)
    return 0


cdef int cmd_geohash(Client c, list argv) except -1:
    cdef Py_ssize_t n = PyList_GET_SIZE(argv), j
    cdef char buf[12]
    cdef ZEnt e
    cdef object o = c.ks.lookup_r(argv[1])
    if o is not None and type(o) is not ZSetObj:
        return reply_wrongtype(c)
    c.out.array(n - 2)
    for j in range(2, n):
        e = (<ZSetObj>o).m.get(argv[j]) if o is not None else None
        if e is None:
            c.out.nil()
        else:
            geo_hash11(e.score, buf)
            c.out.bulk_raw(buf, 11)
    return 0


cdef int cmd_geodist(Client c, list argv) except -1:
    cdef Py_ssize_t argc = PyList_GET_SIZE(argv)
    cdef double to_m = 1.0, lon1, lat1, lon2, lat2
    cdef object o
    if argc == 5:
        to_m = _unit(c, <bytes>argv[4])
        if to_m < 0:
            return 0
    elif argc > 5:
        return reply_syntax(c)
    o = c.ks.lookup_r(argv[1])
    if o is None:
        return c.out.nil()
    if type(o) is not ZSetObj:
        return reply_wrongtype(c)
    if not _member_pos(<ZSetObj>o, argv[2], &lon1, &lat1) or \
            not _member_pos(<ZSetObj>o, argv[3], &lon2, &lat2):
        return c.out.nil()
    return _distance(c.out, geo_distance(lon1, lat1, lon2, lat2) / to_m)


# -------------------------------------------------------------- searches ----

cdef bint _radius(Client c, list argv, Py_ssize_t i, GeoShape* s) except -1:
    """extractDistanceOrReply into s (a circle)."""
    cdef double d, conv
    if not parse_score(<bytes>argv[i], &d):
        err_lit(c, b"ERR need numeric radius")
        return False
    if d < 0:
        err_lit(c, b"ERR radius cannot be negative")
        return False
    conv = _unit(c, <bytes>argv[i + 1])
    if conv < 0:
        return False
    s.type = SHAPE_RADIUS
    s.radius = d
    s.conversion = conv
    return True


cdef bint _box(Client c, list argv, Py_ssize_t i, GeoShape* s) except -1:
    """extractBoxOrReply into s (a rectangle)."""
    cdef double w, h, conv
    if not parse_score(<bytes>argv[i], &w):
        err_lit(c, b"ERR need numeric width")
        return False
    if not parse_score(<bytes>argv[i + 1], &h):
        err_lit(c, b"ERR need numeric height")
        return False
    if h < 0 or w < 0:
        err_lit(c, b"ERR height or width cannot be negative")
        return False
    conv = _unit(c, <bytes>argv[i + 2])
    if conv < 0:
        return False
    s.type = SHAPE_BOX
    s.width = w
    s.height = h
    s.conversion = conv
    return True


cdef list _points(ZSetObj o, GeoShape* s, Py_ssize_t limit):
    """membersOfAllNeighbors: (dist m, member, score, lon, lat) of the points
    within the shape, in Redis's scan order; limit (ANY): stop at that many."""
    cdef GeoBits boxes[9]
    cdef ZRange r
    cdef ZIndex ix = <ZIndex>o.idx
    cdef ZNode* x
    cdef list found = []
    cdef Py_ssize_t i, last = 0
    cdef double lon, lat, dist
    geo_boxes(s, boxes)
    for i in range(9):
        if boxes[i].bits == 0 and boxes[i].step == 0:
            continue
        if last and boxes[i].bits == boxes[last].bits and boxes[i].step == boxes[last].step:
            continue
        if found and limit and len(found) >= limit:
            break
        geo_box_scores(boxes[i], &r.min, &r.max)
        r.minex = False
        r.maxex = True
        x = ix.first_in_range(&r)
        while x != NULL and lte_max(x.score, &r):
            geo_decode(x.score, &lon, &lat)
            if geo_in_shape(s, lon, lat, &dist):
                found.append((dist, (<ZEnt>x.ent).member, x.score, lon, lat))
            if found and limit and len(found) >= limit:
                break
            x = x.level[0].forward
        last = i
    return found


cdef inline object _dist_key(object p):
    return (<tuple>p)[0]


cdef int _search(Client c, list argv, Py_ssize_t src, int flags) except -1:
    """georadiusGeneric: GEORADIUS[BYMEMBER][_RO], GEOSEARCH[STORE]."""
    cdef Py_ssize_t argc = PyList_GET_SIZE(argv), base, i, remaining, returned, nopt = 0
    cdef object storekey = None, zo
    cdef ZSetObj o = None
    cdef GeoShape s
    cdef bint storedist = False, withdist = False, withhash = False, withcoord = False
    cdef bint frommember = False, fromloc = False, byradius = False, bybox = False, any_ = False
    cdef int sort = SORT_NONE
    cdef int64_t count = 0
    cdef bytes a
    cdef list found
    cdef tuple p
    cdef dict res
    s.type = SHAPE_RADIUS
    s.lon = s.lat = s.radius = s.width = s.height = 0.0
    s.conversion = 1.0
    zo = c.ks.lookup_r(argv[src])
    if zo is not None:
        if type(zo) is not ZSetObj:
            return reply_wrongtype(c)
        o = <ZSetObj>zo
    if flags & RADIUS_COORDS:
        base = 6
        if not _lonlat(c, argv, 2, &s.lon, &s.lat) or not _radius(c, argv, 4, &s):
            return 0
    elif flags & RADIUS_MEMBER:
        base = 5
        if o is not None:
            if not _member_pos(o, argv[2], &s.lon, &s.lat):
                return err_lit(c, b"ERR could not decode requested zset member")
            if not _radius(c, argv, 3, &s):
                return 0
    else:
        base = 2
        if flags & GEOSEARCHSTORE:
            base = 3
            storekey = argv[1]
    remaining = argc - base
    i = 0
    while i < remaining:
        a = <bytes>argv[base + i]
        if opt_eq(a, b"WITHDIST", 8):
            withdist = True
        elif opt_eq(a, b"WITHHASH", 8):
            withhash = True
        elif opt_eq(a, b"WITHCOORD", 9):
            withcoord = True
        elif opt_eq(a, b"ANY", 3):
            any_ = True
        elif opt_eq(a, b"ASC", 3):
            sort = SORT_ASC
        elif opt_eq(a, b"DESC", 4):
            sort = SORT_DESC
        elif opt_eq(a, b"COUNT", 5) and i + 1 < remaining:
            if not parse_bytes_i64(<bytes>argv[base + i + 1], &count):
                return reply_notint(c)
            if count <= 0:
                return err_lit(c, b"ERR COUNT must be > 0")
            i += 1
        elif opt_eq(a, b"STORE", 5) and i + 1 < remaining and \
                not flags & (RADIUS_NOSTORE | GEOSEARCH):
            storekey = argv[base + i + 1]
            storedist = False
            i += 1
        elif opt_eq(a, b"STOREDIST", 9) and i + 1 < remaining and \
                not flags & (RADIUS_NOSTORE | GEOSEARCH):
            storekey = argv[base + i + 1]
            storedist = True
            i += 1
        elif opt_eq(a, b"STOREDIST", 9) and flags & GEOSEARCHSTORE:
            storedist = True
        elif opt_eq(a, b"FROMMEMBER", 10) and i + 1 < remaining and flags & GEOSEARCH and \
                not fromloc:
            if o is not None and not _member_pos(o, argv[base + i + 1], &s.lon, &s.lat):
                return err_lit(c, b"ERR could not decode requested zset member")
            frommember = True
            i += 1
        elif opt_eq(a, b"FROMLONLAT", 10) and i + 2 < remaining and flags & GEOSEARCH and \
                not frommember:
            if not _lonlat(c, argv, base + i + 1, &s.lon, &s.lat):
                return 0
            fromloc = True
            i += 2
        elif opt_eq(a, b"BYRADIUS", 8) and i + 2 < remaining and flags & GEOSEARCH and \
                not bybox:
            if not _radius(c, argv, base + i + 1, &s):
                return 0
            byradius = True
            i += 2
        elif opt_eq(a, b"BYBOX", 5) and i + 3 < remaining and flags & GEOSEARCH and \
                not byradius:
            if not _box(c, argv, base + i + 1, &s):
                return 0
            bybox = True
            i += 3
        else:
            return reply_syntax(c)
        i += 1
    if storekey is not None and (withdist or withhash or withcoord):
        if flags & GEOSEARCHSTORE:
            return err_lit(c, b"ERR GEOSEARCHSTORE is not compatible with WITHDIST, WITHHASH "
                              b"and WITHCOORD options")
        return err_lit(c, b"ERR STORE option in GEORADIUS is not compatible with WITHDIST, "
                          b"WITHHASH and WITHCOORD options")
    if flags & GEOSEARCH and not (frommember or fromloc):
        return reply_error_bytes(c, b"ERR exactly one of FROMMEMBER or FROMLONLAT can be "
                                    b"specified for " + <bytes>argv[0])
    if flags & GEOSEARCH and not (byradius or bybox):
        return reply_error_bytes(c, b"ERR exactly one of BYRADIUS and BYBOX can be specified "
                                    b"for " + <bytes>argv[0])
    if any_ and not count:
        return err_lit(c, b"ERR the ANY argument requires COUNT argument")
    if o is None:
        if storekey is not None:
            had = store_begin(c.ks, storekey)
            store_zset(c.ks, storekey, {}, True)
            store_end(c.ks, storekey, had, 0, N_ZSET, None)
            return c.out.integer(0)
        return c.out.array(0)
    if count != 0 and sort == SORT_NONE and not any_:
        sort = SORT_ASC
    found = _points(o, &s, count if any_ else 0)
    if not found and storekey is None:
        return c.out.array(0)
    returned = len(found)
    if count and count < returned:
        returned = count
    if sort == SORT_ASC:
        found.sort(key=_dist_key)
    elif sort == SORT_DESC:
        found.sort(key=_dist_key, reverse=True)
    if storekey is not None:
        res = {}
        for i in range(returned):
            p = <tuple>found[i]
            res[p[1]] = <double>p[0] / s.conversion if storedist else p[2]
        had = store_begin(c.ks, storekey)
        store_zset(c.ks, storekey, res, fits_lp(res))
        store_end(c.ks, storekey, had, len(res), N_ZSET,
                  b"geosearchstore" if flags & GEOSEARCH else b"georadiusstore")
        return c.out.integer(returned)
    if withdist:
        nopt += 1
    if withhash:
        nopt += 1
    if withcoord:
        nopt += 1
    c.out.array(returned)
    for i in range(returned):
        p = <tuple>found[i]
        if nopt:
            c.out.array(nopt + 1)
        c.out.bulk(<bytes>p[1])
        if withdist:
            _distance(c.out, <double>p[0] / s.conversion)
        if withhash:
            c.out.integer(<int64_t><double>p[2])
        if withcoord:
            c.out.array(2)
            _human(c.out, <double>p[3])
            _human(c.out, <double>p[4])
    return 0


cdef int cmd_georadius(Client c, list argv) except -1:
    return _search(c, argv, 1, RADIUS_COORDS)


cdef int cmd_georadiusbymember(Client c, list argv) except -1:
    return _search(c, argv, 1, RADIUS_MEMBER)


cdef int cmd_georadius_ro(Client c, list argv) except -1:
    return _search(c, argv, 1, RADIUS_COORDS | RADIUS_NOSTORE)


cdef int cmd_georadiusbymember_ro(Client c, list argv) except -1:
    return _search(c, argv, 1, RADIUS_MEMBER | RADIUS_NOSTORE)


cdef int cmd_geosearch(Client c, list argv) except -1:
    return _search(c, argv, 1, GEOSEARCH)


cdef int cmd_geosearchstore(Client c, list argv) except -1:
    return _search(c, argv, 2, GEOSEARCH | GEOSEARCHSTORE)


def register(Server srv):
    """Name the handlers; arity, flags and keys come from the command table."""
    add_command(srv, b"geoadd", cmd_geoadd)
    add_command(srv, b"geopos", cmd_geopos)
    add_command(srv, b"geohash", cmd_geohash)
    add_command(srv, b"geodist", cmd_geodist)
    add_command(srv, b"georadius", cmd_georadius)
    add_command(srv, b"georadiusbymember", cmd_georadiusbymember)
    add_command(srv, b"georadius_ro", cmd_georadius_ro)
    add_command(srv, b"georadiusbymember_ro", cmd_georadiusbymember_ro)
    add_command(srv, b"geosearch", cmd_geosearch)
    add_command(srv, b"geosearchstore", cmd_geosearchstore)
