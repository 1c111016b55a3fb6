"""SORT and SORT_RO (Redis's sortCommandGeneric, sort.c): the elements of a list, set or
sorted set, ordered by their own value or by weights looked up through a BY pattern, with
GET patterns, LIMIT, ASC/DESC, ALPHA and STORE.

STORE writes the result as a whole new list at the destination: a DEL of the key as
this node sees it (an observed remove: docs/crdt.md sections 3.5 and 4) and one push of
the result. Peers get those effects, never the command: they do not sort again nor read
other keys (the weights and GET values are this node's)."""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.dict cimport PyDict_GetItem
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from cpython.object cimport PyObject
from libc cimport errno as cerrno
from libc.math cimport isnan
from libc.stdint cimport int64_t
from libc.stdlib cimport qsort, strtod
from libc.string cimport memcmp, strcmp

from constdb._core.cmd_keys cimport opt_eq
from constdb._core.codec cimport parse_bytes_i64
from constdb._core.keyspace cimport N_LIST, Keyspace, store_begin, store_end
from constdb._core.objects cimport CObj, HashObj, ListObj, SetObj, StrObj, ZSetObj, hash_val
from constdb._core.protocol cimport (
    Client, Server, add_command, reply_notint, reply_syntax, reply_wrongtype,
)
from constdb._core.t_list cimport (
    emit_push, first_live, next_live, prev_live, seek, val_at,
)
from constdb._core.t_string cimport str_get
from constdb._core.t_zset cimport ZIndex, ZNode, index_of, zn_back


cdef struct SortItem:
    double score
    const char* obj           # the element's bytes (held by the caller's list)
    Py_ssize_t olen
    const char* cmp           # ALPHA with BY: the weight's bytes, or NULL
    Py_ssize_t clen
    Py_ssize_t idx            # its place in the input: ties keep it (glibc's qsort is stable)


# the comparison's options (one SORT at a time: commands run on one thread)
cdef bint _desc = False
cdef bint _alpha = False
cdef bint _bypattern = False
cdef bint _store = False


cdef inline int _bincmp(const char* a, Py_ssize_t la, const char* b, Py_ssize_t lb) noexcept nogil:
    """compareStringObjects: binary, then by length."""
    cdef int r = memcmp(a, b, la if la < lb else lb)
    if r != 0:
        return r
    return -1 if la < lb else (1 if la > lb else 0)


cdef int _compare(const void* x, const void* y) noexcept nogil:
    # sortCompare; strcoll in the C locale (redis-server's with no LANG) is
    # strcmp, which stops at a NUL byte as Redis's does
    cdef const SortItem* a = <const SortItem*>x
    cdef const SortItem* b = <const SortItem*>y
    cdef int cmp
    if not _alpha:
        if a.score > b.score:
            cmp = 1
        elif a.score < b.score:
            cmp = -1
        else:
            cmp = _bincmp(a.obj, a.olen, b.obj, b.olen)
    elif _bypattern:
        if a.cmp == NULL or b.cmp == NULL:
            cmp = 0 if a.cmp == b.cmp else (-1 if a.cmp == NULL else 1)
        elif _store:
            cmp = _bincmp(a.cmp, a.clen, b.cmp, b.clen)
        else:
            cmp = strcmp(a.cmp, b.cmp)
    elif _store:
        cmp = _bincmp(a.obj, a.olen, b.obj, b.olen)
    else:
        cmp = strcmp(a.obj, b.obj)
    if _desc:
        cmp = -cmp
    if cmp == 0:
        cmp = -1 if a.idx < b.idx else (1 if a.idx > b.idx else 0)
    return cmp


cdef class _Pattern:
    # a BY or GET pattern cut once (lookupKeyByPattern): key = pre + element +
    # post, then the hash field (None: a string key); sharp: "#", the element
    # itself; none: no '*', nothing is found
    cdef bytes pre
    cdef bytes post
    cdef object field
    cdef bint sharp
    cdef bint none


cdef _Pattern _pattern(bytes pat):
    # C string rules as Redis's: '#' alone (up to a NUL), '*' and "->" searched
    # up to the first NUL byte, the lengths counted on the whole argument
    cdef _Pattern p = _Pattern.__new__(_Pattern)
    cdef const char* s = PyBytes_AS_STRING(pat)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(pat), clen = 0, star, f, fieldlen = 0
    p.field = None
    if s[0] == b'#' and s[1] == 0:
        p.sharp = True
        return p
    while clen < n and s[clen] != 0:
        clen += 1
    star = pat.find(b"*", 0, clen)
    if star < 0:
        p.none = True
        return p
    f = pat.find(b"->", star + 1, clen)
    if f >= 0 and f + 2 < n and s[f + 2] != 0:
        fieldlen = n - f - 2
        p.field = pat[f + 2:]
    p.pre = pat[:star]
    p.post = pat[star + 1:n - (fieldlen + 2 if fieldlen else 0)]
    return p


cdef object _lookup(Keyspace ks, _Pattern p, bytes elem):
    """The value a pattern names for elem: bytes, an int (a string counter), or
    None."""
    cdef CObj o
    cdef PyObject* ent
    if p.sharp:
        return elem
    if p.none:
        return None
    o = ks.lookup_r(p.pre + elem + p.post)
    if o is None:
        return None
    if p.field is None:
        if type(o) is not StrObj:
            return None
        return str_get(<StrObj>o)
    if type(o) is not HashObj:
        return None
    ent = PyDict_GetItem((<HashObj>o).f, p.field)
    if ent == NULL:
        return None
    return hash_val(<HashObj>o, p.field, <object>ent)


cdef inline bytes _as_bytes(object v):
    if v is None or type(v) is bytes:
        return v
    return str(v).encode()


cdef int _sort(Client c, list argv, bint readonly) except -1:
    global _desc, _alpha, _bypattern, _store
    cdef Keyspace ks = c.ks
    cdef Py_ssize_t argc = PyList_GET_SIZE(argv), j = 2, left, n, i, _i, bi = 0, ii = 0
    cdef Py_ssize_t vstart, outlen
    cdef bint desc = False, alpha = False, dontsort = False, conv_error = False
    cdef int64_t limit_start = 0, limit_count = -1, start, end, vlen
    cdef object storekey = None
    cdef _Pattern sortby = None
    cdef list gets = []
    cdef bytes a
    cdef CObj o
    cdef list elems
    cdef list weights = None
    cdef SortItem* vec = NULL
    cdef ZNode* x
    cdef ZIndex idx
    cdef char* eptr
    cdef double d
    while j < argc:
        a = <bytes>PyList_GET_ITEM(argv, j)
        left = argc - j - 1
        if opt_eq(a, b"ASC", 3):
            desc = False
        elif opt_eq(a, b"DESC", 4):
            desc = True
        elif opt_eq(a, b"ALPHA", 5):
            alpha = True
        elif opt_eq(a, b"LIMIT", 5) and left >= 2:
            if not parse_bytes_i64(<bytes>argv[j + 1], &limit_start) \
                    or not parse_bytes_i64(<bytes>argv[j + 2], &limit_count):
                return reply_notint(c)
            j += 2
        elif opt_eq(a, b"STORE", 5) and left >= 1 and not readonly:
            storekey = argv[j + 1]
            j += 1
        elif opt_eq(a, b"BY", 2) and left >= 1:
            sortby = _pattern(<bytes>argv[j + 1])
            # a pattern without '*' names no key: nothing to sort by
            dontsort = sortby.none
            j += 1
        elif opt_eq(a, b"GET", 3) and left >= 1:
            gets.append(_pattern(<bytes>argv[j + 1]))
            j += 1
        else:
            return reply_syntax(c)
        j += 1
    o = ks.lookup_r(argv[1])
    if o is not None and type(o) is not ListObj and type(o) is not SetObj \
            and type(o) is not ZSetObj:
        return reply_wrongtype(c)
    if dontsort and type(o) is SetObj and storekey is not None:
        # a set's own order is not the same on every server: STORE sorts it
        dontsort = False
        alpha = True
        sortby = None

    # the elements, in the object's order (a list's or a sorted set's when
    # BY names no key: DESC and LIMIT then read the range directly)
    if o is None:
        vlen = 0
    elif type(o) is ListObj:
        vlen = (<ListObj>o).n
    elif type(o) is SetObj:
        vlen = len((<SetObj>o).m)
    else:
        vlen = len((<ZSetObj>o).m)
    start = 0 if limit_start < 0 else limit_start
    if limit_count < 0 or limit_count > vlen:
        end = vlen - 1
    else:
        end = start + limit_count - 1
    if start >= vlen:
        start = vlen - 1
        end = vlen - 2
    if end >= vlen:
        end = vlen - 1
    elems = []
    if o is None:
        pass
    elif type(o) is ListObj and dontsort:
        # only the range, from its first element (the last one's for DESC)
        if end >= start and seek(<ListObj>o, vlen - start - 1 if desc else start, &bi, &ii):
            elems.append(val_at(<ListObj>o, bi, ii))
            for _i in range(end - start):
                if desc:
                    prev_live(<ListObj>o, &bi, &ii)
                else:
                    next_live(<ListObj>o, &bi, &ii)
                elems.append(val_at(<ListObj>o, bi, ii))
        end -= start
        start = 0
    elif type(o) is ListObj:
        if first_live(<ListObj>o, &bi, &ii):
            elems.append(val_at(<ListObj>o, bi, ii))
            while next_live(<ListObj>o, &bi, &ii):
                elems.append(val_at(<ListObj>o, bi, ii))
    elif type(o) is SetObj:
        elems = list((<SetObj>o).m)
    elif dontsort:
        if end >= start and (<ZSetObj>o).m:
            idx = index_of(<ZSetObj>o)
            x = idx.by_rank(vlen - start if desc else start + 1)
            for _i in range(end - start + 1):
                elems.append(<bytes>(<object>x.ent).member)
                x = zn_back(x) if desc else x.level[0].forward
        end -= start
        start = 0
    else:
        elems = list((<ZSetObj>o).m)

    n = PyList_GET_SIZE(elems)
    if not dontsort and n > 1:
        vec = <SortItem*>PyMem_Malloc(n * sizeof(SortItem))
        if vec == NULL:
            raise MemoryError()
        try:
            if sortby is not None and alpha:
                weights = []
            for i in range(n):
                e = <object>PyList_GET_ITEM(elems, i)
                vec[i].obj = PyBytes_AS_STRING(e)
                vec[i].olen = PyBytes_GET_SIZE(e)
                vec[i].score = 0
                vec[i].cmp = NULL
                vec[i].clen = 0
                vec[i].idx = i
                if sortby is not None:
                    w = _lookup(ks, sortby, <bytes>e)
                    if w is None:
                        continue
                else:
                    w = e
                if alpha:
                    if sortby is not None:
                        w = _as_bytes(w)
                        weights.append(w)
                        vec[i].cmp = PyBytes_AS_STRING(w)
                        vec[i].clen = PyBytes_GET_SIZE(w)
                elif type(w) is bytes:
                    cerrno.errno = 0
                    d = strtod(PyBytes_AS_STRING(w), &eptr)
                    if eptr[0] != 0 or cerrno.errno == cerrno.ERANGE or isnan(d):
                        conv_error = True
                    vec[i].score = d
                else:
                    vec[i].score = <double><int64_t>w
            if not conv_error:
                _desc = desc
                _alpha = alpha
                _bypattern = sortby is not None
                _store = storekey is not None
                qsort(vec, n, sizeof(SortItem), _compare)
                elems = [<object>PyList_GET_ITEM(elems, vec[i].idx) for i in range(n)]
        finally:
            PyMem_Free(vec)
    elif not dontsort and n == 1 and not alpha:
        # one element is not compared, but its weight is still parsed
        w = _lookup(ks, sortby, <bytes>elems[0]) if sortby is not None else elems[0]
        if type(w) is bytes:
            cerrno.errno = 0
            d = strtod(PyBytes_AS_STRING(w), &eptr)
            conv_error = eptr[0] != 0 or cerrno.errno == cerrno.ERANGE or isnan(d)

    vstart = <Py_ssize_t>start
    outlen = <Py_ssize_t>(end - start + 1)
    if conv_error:
        return c.out.error_str("ERR One or more scores can't be converted into double")
    if storekey is None:
        c.out.array(outlen * (len(gets) if gets else 1))
        for i in range(vstart, vstart + outlen):
            e = <object>PyList_GET_ITEM(elems, i)
            if not gets:
                c.out.bulk(<bytes>e)
            for p in gets:
                v = _as_bytes(_lookup(ks, <_Pattern>p, <bytes>e))
                if v is None:
                    c.out.nil()
                else:
                    c.out.bulk(<bytes>v)
        return 0
    out = []
    for i in range(vstart, vstart + outlen):
        e = <object>PyList_GET_ITEM(elems, i)
        if not gets:
            out.append(e)
        for p in gets:
            v = _as_bytes(_lookup(ks, <_Pattern>p, <bytes>e))
            out.append(b"" if v is None else v)
    had = store_begin(ks, storekey)
    store_list(ks, storekey, out)
    store_end(ks, storekey, had, len(out), N_LIST, b"sortstore")
    return c.out.integer(len(out))


cdef int store_list(Keyspace ks, object dst, list vals) except -1:
    """Make dst a new list of vals (empty: dst deleted), whatever it held."""
    ks.emit_del(dst)
    if vals:
        emit_push(ks, dst, None, vals, 0, False)
    return 0


cdef int cmd_sort(Client c, list argv) except -1:
    return _sort(c, argv, False)


cdef int cmd_sort_ro(Client c, list argv) except -1:
    return _sort(c, argv, True)


def register(Server srv):
    """Name the handlers; arity, flags and keys come from the command table."""
    add_command(srv, b"sort", cmd_sort)
    add_command(srv, b"sort_ro", cmd_sort_ro)
