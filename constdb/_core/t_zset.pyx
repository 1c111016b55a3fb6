"""The sorted set CRDT (docs/crdt.md section 3.6).

Membership is an OR-Set with add-wins, as sets (docs/crdt.md section 3.2): every ZADD or
ZINCRBY that changes a member is an add with a new dot that replaces the dots
it saw; ZREM/ZPOP*/ZREMRANGE*/DEL remove the dots they saw. A member's score is
an LWW register plus an observed-reset counter, the scheme of strings (3.1):

  score = register value + sum over origins of (counter sum - what the
          register write observed of it)

ZADD writes the register at its ts (ru, rn) with the counter state it
observed. ZINCRBY adds its delta to its origin's counter and also *rebases*
the register it saw: it writes value+delta, at the register's own ts (ru, rn)
and its ts (vu, vn) as a tie-break, with the counters it observed, its own
included. Registers compare by (ru, rn, vu, vn). So a ZADD concurrent with a
ZINCRBY wins the register (its ts is newer than the register both saw), and
the increment, which it did not observe, is added on top; two concurrent
ZINCRBYs rebase the same register and the winner adds the other's increment.
On one node the register always holds exactly the value Redis computes
(observed contributions are zero), so replies match Redis to the last bit.
Sums over origins are taken in origin order, so every node computes the same
double. A removed member keeps its register and counters (in `gone`) until GC:
a concurrent add elsewhere may still bring it back with them.

The present members are ordered by (score, member) in `ZIndex`, Redis's skip
list with spans (rank queries, ranges, pops in O(log n)); `ZSetObj.m` maps each
member to its entry (ZSCORE in O(1)).
"""

cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.dict cimport PyDict_GetItem
from cpython.object cimport PyObject
from cpython.ref cimport Py_XDECREF, Py_XINCREF
from libc.errno cimport ERANGE
from libc.math cimport HUGE_VAL, isfinite, isinf, isnan, signbit
from libc.stdint cimport int64_t, uint8_t, uint64_t
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from libc.stdlib cimport strtod
from libc.string cimport memcmp, memcpy

from constdb._core.codec cimport (
    Reader, WBuf, Writer, fmt_g17, put_u64_at, put_varint_at, varint_len,
)
from constdb._core.dots cimport (
    _bump, _ent_append, _ent_dots_raw, _ent_max, _ent_remove, _put_dots, _read_dots, _skip_n,
    _check_ts,
)
from constdb._core.ktable cimport kt_get
from constdb._core.keyspace cimport Keyspace, TypeOps, register_type_ops
from constdb._core.merge cimport (
    Ctx, _any_seen, _check_count, _cnt_nodes, _cnt_src, _dec_dots, _enc_dots, _filter_ent,
    _merge_ent,
)
from constdb._core.objects cimport (
    T_ZSET, CObj, Dot, TTLReg, ZCnt, ZEnt, ZSetObj, ZX, bytes_block, new_dot, new_zset, ts_gt,
)
from constdb._core.ops cimport OP_ZCLEAR, OP_ZREM, OP_ZW, ZW_CNT, ZW_REBASE

from constdb._core.merge import SnapshotError


cdef extern from *:
    """
    #include <errno.h>
    static int cdb_errno(void) { return errno; }
    static void cdb_errno_clear(void) { errno = 0; }
    """
    int cdb_errno()
    void cdb_errno_clear()


# --------------------------------------------------------------- skip list ----

cdef uint64_t _rng = 0x9E3779B97F4A7C15


cdef inline int _random_level() noexcept:
    # Redis: each level with probability 1/4
    global _rng
    cdef int level = 1
    while level < ZSKIPLIST_MAXLEVEL:
        _rng ^= _rng << 13
        _rng ^= _rng >> 7
        _rng ^= _rng << 17
        if (_rng & 0xFFFF) >= 0x4000:
            break
        level += 1
    return level


cdef ZNode* _new_node(int level, double score, ZEnt e) noexcept:
    cdef ZNode* x = <ZNode*>PyMem_Malloc(sizeof(ZNode) + (level - 1) * sizeof(ZLevel))
    if x == NULL:
        return NULL
    x.score = score
    zn_set_back(x, NULL)
    if e is None:
        x.ent = NULL
    else:
        Py_XINCREF(<PyObject*>e)
        x.ent = <void*>e
    return x


cdef inline int _bcmp(const char* a, Py_ssize_t la, const char* b, Py_ssize_t lb) noexcept:
    cdef int c = memcmp(a, b, la if la < lb else lb)
    if c != 0:
        return c
    return (la > lb) - (la < lb)


cdef extern from *:
    """
    #define ZN_PREFETCH(p) __builtin_prefetch(p)
    """
    void zn_prefetch "ZN_PREFETCH"(const void* p) noexcept


cdef inline bint _before(ZNode* x, double score, const char* mp, Py_ssize_t ml) noexcept:
    """Node x orders before (score, member) (the skip list's search step)."""
    return x.score < score or (x.score == score and _bcmp(zn_mp(x), zn_ml(x), mp, ml) < 0)


cdef inline int _cmp(ZNode* x, double score, const char* mp, Py_ssize_t ml) noexcept:
    """Order of node x against (score, member), as Redis's skip list orders."""
    if x.score < score:
        return -1
    if x.score > score:
        return 1
    return _bcmp(zn_mp(x), zn_ml(x), mp, ml)


cdef void _index_reset(ZIndex ix) noexcept:
    """ix empty: its header's links cleared (its nodes freed, or taken)."""
    cdef int j
    for j in range(ZSKIPLIST_MAXLEVEL):
        ix.header.level[j].forward = NULL
        ix.header.level[j].span = 0
    ix.tail = NULL
    ix.length = 0
    ix.level = 1


@cython.final
cdef class ZIndex:
    def __cinit__(self):
        self.header = _new_node(ZSKIPLIST_MAXLEVEL, 0, None)
        if self.header == NULL:
            raise MemoryError()
        _index_reset(self)
        self.lp = True

    def __dealloc__(self):
        cdef ZNode* x
        cdef ZNode* nxt
        if self.header == NULL:
            return
        x = self.header.level[0].forward
        PyMem_Free(self.header)
        self.header = NULL
        while x != NULL:
            nxt = x.level[0].forward
            Py_XDECREF(<PyObject*>x.ent)
            PyMem_Free(x)
            x = nxt

    def __len__(self):
        return self.length

    cdef ZNode* insert(self, ZEnt e, double score) except NULL:
        cdef int level = _random_level()
        cdef ZNode* x = _new_node(level, score, e)
        if x == NULL:
            raise MemoryError()
        self._link(x, level)
        return x

    cdef void _link(self, ZNode* n, int level) noexcept:
        """Node n (of level levels, its score and entry set) into its place."""
        cdef ZNode* update[ZSKIPLIST_MAXLEVEL]
        cdef Py_ssize_t rank[ZSKIPLIST_MAXLEVEL]
        cdef ZNode* x = self.header
        cdef ZNode* f
        cdef int i
        cdef Py_ssize_t r = 0           # x's rank
        cdef double score = n.score
        cdef const char* mp = zn_mp(n)
        cdef Py_ssize_t ml = zn_ml(n)
        i = self.level - 1
        while i > 0:
            # (the node a step down from x is fetched while f is compared)
            f = x.level[i].forward
            zn_prefetch(x.level[i - 1].forward)
            while f != NULL and _before(f, score, mp, ml):
                r += x.level[i].span
                x = f
                f = x.level[i].forward
                zn_prefetch(x.level[i - 1].forward)
            update[i] = x
            rank[i] = r
            i -= 1
        f = x.level[0].forward
        while f != NULL and _before(f, score, mp, ml):
            r += 1
            x = f
            f = x.level[0].forward
        update[0] = x
        rank[0] = r
        if level > self.level:
            for i in range(self.level, level):
                rank[i] = 0
                update[i] = self.header
                update[i].level[i].span = self.length
            self.level = level
        x = n
        for i in range(level):
            x.level[i].forward = update[i].level[i].forward
            update[i].level[i].forward = x
            if i:
                x.level[i].span = update[i].level[i].span - (rank[0] - rank[i])
                update[i].level[i].span = (rank[0] - rank[i]) + 1
        for i in range(level, self.level):
            update[i].level[i].span += 1
        zn_set_back(x, NULL if update[0] == self.header else update[0])
        if x.level[0].forward != NULL:
            zn_set_back(x.level[0].forward, x)
        else:
            self.tail = x
        self.length += 1

    cdef ZNode* _seek(self, double score, const char* mp, Py_ssize_t ml,
                      ZNode** update) noexcept:
        """The node of (score, member) or NULL; update[i]: the last node before
        it on level i."""
        cdef ZNode* x = self.header
        cdef ZNode* f = NULL
        cdef int i = self.level - 1
        while i > 0:
            # (the node a step down from x is fetched while f is compared)
            f = x.level[i].forward
            zn_prefetch(x.level[i - 1].forward)
            while f != NULL and _before(f, score, mp, ml):
                x = f
                f = x.level[i].forward
                zn_prefetch(x.level[i - 1].forward)
            update[i] = x
            i -= 1
        f = x.level[0].forward
        while f != NULL and _before(f, score, mp, ml):
            x = f
            f = x.level[0].forward
        update[0] = x
        if f == NULL or f.score != score or _bcmp(zn_mp(f), zn_ml(f), mp, ml) != 0:
            return NULL
        return f

    cdef int _unlink(self, ZNode* x, ZNode** update) noexcept:
        """Take node x out of the list (update as _seek left it); not freed.
        Returns x's number of levels."""
        cdef int i, level = 1
        for i in range(self.level):
            if update[i].level[i].forward == x:
                if i:
                    level = i + 1
                    update[i].level[i].span += x.level[i].span - 1
                update[i].level[i].forward = x.level[i].forward
            elif i:
                update[i].level[i].span -= 1
        if x.level[0].forward != NULL:
            zn_set_back(x.level[0].forward, zn_back(x))
        else:
            self.tail = zn_back(x)
        while self.level > 1 and self.header.level[self.level - 1].forward == NULL:
            self.level -= 1
        self.length -= 1
        return level

    cdef bint delete(self, double score, bytes member) except -1:
        cdef ZNode* update[ZSKIPLIST_MAXLEVEL]
        cdef ZNode* x = self._seek(score, PyBytes_AS_STRING(member), PyBytes_GET_SIZE(member),
                                   update)
        if x == NULL:
            return False
        self._unlink(x, update)
        Py_XDECREF(<PyObject*>x.ent)
        PyMem_Free(x)
        if self.length == 0:
            self.lp = True      # Redis: a key made again starts as a listpack
        return True

    cdef int rescore(self, ZEnt e, double old, double score) except -1:
        """Move e's node from old to score (Redis's zslUpdateScore: in place
        when the order stays, else one search fewer than delete + insert)."""
        cdef ZNode* update[ZSKIPLIST_MAXLEVEL]
        cdef ZNode* x = self._seek(old, PyBytes_AS_STRING(e.member), PyBytes_GET_SIZE(e.member),
                                   update)
        cdef ZNode* b
        if x == NULL:
            raise KeyError(e.member)
        b = zn_back(x)
        if ((b == NULL or b.score < score)
                and (x.level[0].forward == NULL or x.level[0].forward.score > score)):
            x.score = score
            return 0
        # (Redis frees the node and makes another: this one is moved, with
        # its levels, which were drawn at random as a new node's would be)
        x.score = score
        self._link(x, self._unlink(x, update))
        return 0

    cdef ZIndex detach(self):
        """A new index holding all of this one's nodes (to be freed apart, in
        slices: lazy_free); this one is left empty, its bulk kept."""
        cdef ZIndex d = ZIndex.__new__(ZIndex)
        cdef ZNode* h = d.header
        d.header = self.header
        d.tail = self.tail
        d.length = self.length
        d.level = self.level
        self.header = h
        _index_reset(self)
        self.lp = True
        return d

    def lazy_free(self, Py_ssize_t budget):
        """Free up to budget nodes (Keyspace.lazy_step, on a detached index);
        returns the budget left. Empty (len 0) when done."""
        cdef ZNode* x = self.header.level[0].forward
        cdef ZNode* nxt
        while budget > 0 and x != NULL:
            nxt = x.level[0].forward
            Py_XDECREF(<PyObject*>x.ent)
            PyMem_Free(x)
            x = nxt
            self.length -= 1
            budget -= 1
        self.header.level[0].forward = x
        if x == NULL:
            _index_reset(self)
        return budget

    cdef Py_ssize_t rank(self, double score, bytes member) noexcept:
        """1-based rank of (score, member), 0 if absent."""
        cdef ZNode* x = self.header
        cdef Py_ssize_t r = 0
        cdef int i = self.level - 1
        cdef const char* mp = PyBytes_AS_STRING(member)
        cdef Py_ssize_t ml = PyBytes_GET_SIZE(member)
        while i >= 0:
            while x.level[i].forward != NULL and _cmp(x.level[i].forward, score, mp, ml) <= 0:
                r += zn_span(x, i)
                x = x.level[i].forward
            if x != self.header and x.score == score and _bcmp(zn_mp(x), zn_ml(x), mp, ml) == 0:
                return r
            i -= 1
        return 0

    cdef ZNode* by_rank(self, Py_ssize_t rank) noexcept:
        """The node of 1-based rank, NULL if out of range."""
        cdef ZNode* x = self.header
        cdef Py_ssize_t traversed = 0
        cdef int i = self.level - 1
        while i >= 0:
            while x.level[i].forward != NULL and traversed + zn_span(x, i) <= rank:
                traversed += zn_span(x, i)
                x = x.level[i].forward
            if traversed == rank:
                return x if x != self.header else NULL
            i -= 1
        return NULL

    cdef ZNode* first(self) noexcept:
        return self.header.level[0].forward

    cdef bint _in_range(self, ZRange* r) noexcept:
        cdef ZNode* x
        if r.min > r.max or (r.min == r.max and (r.minex or r.maxex)):
            return False
        x = self.tail
        if x == NULL or not gte_min(x.score, r):
            return False
        x = self.header.level[0].forward
        if x == NULL or not lte_max(x.score, r):
            return False
        return True

    cdef ZNode* first_in_range(self, ZRange* r) noexcept:
        cdef ZNode* x = self.header
        cdef int i = self.level - 1
        if not self._in_range(r):
            return NULL
        while i >= 0:
            while x.level[i].forward != NULL and not gte_min(x.level[i].forward.score, r):
                x = x.level[i].forward
            i -= 1
        x = x.level[0].forward
        if x == NULL or not lte_max(x.score, r):
            return NULL
        return x

    cdef ZNode* last_in_range(self, ZRange* r) noexcept:
        cdef ZNode* x = self.header
        cdef int i = self.level - 1
        if not self._in_range(r):
            return NULL
        while i >= 0:
            while x.level[i].forward != NULL and lte_max(x.level[i].forward.score, r):
                x = x.level[i].forward
            i -= 1
        if x == self.header or not gte_min(x.score, r):
            return NULL
        return x

    cdef bint _in_lex(self, ZLexRange* r) noexcept:
        cdef ZNode* x
        cdef int c = _lex_bounds_cmp(r)
        if c > 0 or (c == 0 and (r.minex or r.maxex)):
            return False
        x = self.tail
        if x == NULL or not lex_gte_min(x, r):
            return False
        x = self.header.level[0].forward
        if x == NULL or not lex_lte_max(x, r):
            return False
        return True

    cdef ZNode* first_in_lex(self, ZLexRange* r) noexcept:
        cdef ZNode* x = self.header
        cdef int i = self.level - 1
        if not self._in_lex(r):
            return NULL
        while i >= 0:
            while x.level[i].forward != NULL and not lex_gte_min(x.level[i].forward, r):
                x = x.level[i].forward
            i -= 1
        x = x.level[0].forward
        if x == NULL or not lex_lte_max(x, r):
            return NULL
        return x

    cdef ZNode* last_in_lex(self, ZLexRange* r) noexcept:
        cdef ZNode* x = self.header
        cdef int i = self.level - 1
        if not self._in_lex(r):
            return NULL
        while i >= 0:
            while x.level[i].forward != NULL and lex_lte_max(x.level[i].forward, r):
                x = x.level[i].forward
            i -= 1
        if x == self.header or not lex_gte_min(x, r):
            return NULL
        return x

    def items(self):
        """(member, score) in order (tests, DESC)."""
        cdef ZNode* x = self.header.level[0].forward
        out = []
        while x != NULL:
            out.append(((<ZEnt>x.ent).member, x.score))
            x = x.level[0].forward
        return out

    def check(self):
        """Spans, back links and order are consistent (tests)."""
        cdef ZNode* x
        cdef ZNode* prev = NULL
        cdef Py_ssize_t n = 0, r
        cdef int i
        x = self.header.level[0].forward
        while x != NULL:
            n += 1
            assert zn_back(x) == prev, "bad backward link"
            if prev != NULL:
                assert _cmp(prev, x.score, zn_mp(x), zn_ml(x)) < 0, "out of order"
            assert self.rank(x.score, (<ZEnt>x.ent).member) == n, "bad rank"
            assert (<ZEnt>x.ent).score == x.score, "entry and node disagree"
            assert signbit((<ZEnt>x.ent).score) == signbit(x.score), "entry and node disagree"
            prev = x
            x = x.level[0].forward
        assert prev == self.tail
        assert n == self.length
        for i in range(self.level):
            x = self.header
            r = 0
            while x.level[i].forward != NULL:
                r += zn_span(x, i)
                x = x.level[i].forward
            assert r <= n
        return True


cdef ZIndex index_of(ZSetObj o):
    if o.idx is None:
        o.idx = ZIndex()
    return <ZIndex>o.idx


# ------------------------------------------------------------------ ranges ----

cdef bint gte_min(double v, ZRange* r) noexcept:
    return v > r.min if r.minex else v >= r.min


cdef bint lte_max(double v, ZRange* r) noexcept:
    return v < r.max if r.maxex else v <= r.max


cdef inline int _lex_cmp_min(ZNode* x, ZLexRange* r) noexcept:
    if r.mininf == -1:
        return 1
    if r.mininf == 1:
        return -1
    return _bcmp(zn_mp(x), zn_ml(x), r.min, r.minlen)


cdef inline int _lex_cmp_max(ZNode* x, ZLexRange* r) noexcept:
    if r.maxinf == 1:
        return -1
    if r.maxinf == -1:
        return 1
    return _bcmp(zn_mp(x), zn_ml(x), r.max, r.maxlen)


cdef bint lex_gte_min(ZNode* x, ZLexRange* r) noexcept:
    cdef int c = _lex_cmp_min(x, r)
    return c > 0 if r.minex else c >= 0


cdef bint lex_lte_max(ZNode* x, ZLexRange* r) noexcept:
    cdef int c = _lex_cmp_max(x, r)
    return c < 0 if r.maxex else c <= 0


cdef int _lex_bounds_cmp(ZLexRange* r) noexcept:
    # Redis's sdscmplex(min, max) with its shared "-" and "+" strings
    if r.mininf != 0 and r.mininf == r.maxinf:
        return 0
    if r.mininf == -1 or r.maxinf == 1:
        return -1
    if r.mininf == 1 or r.maxinf == -1:
        return 1
    return _bcmp(r.min, r.minlen, r.max, r.maxlen)


cdef inline bint _isspace(char c) noexcept:
    return c == b' ' or c == b'\t' or c == b'\n' or c == b'\v' or c == b'\f' or c == b'\r'


cdef bint parse_score(bytes b, double* out) noexcept:
    """Redis's string2d: strtod over the whole string, no leading space, no
    NaN, no overflow."""
    cdef const char* p = PyBytes_AS_STRING(b)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(b)
    cdef char* end
    cdef double v
    cdef Py_ssize_t i = 0
    cdef int64_t iv = 0
    if n == 0 or _isspace(p[0]):
        return False
    # plain decimal integers (most scores): exact as a double below 10**15
    if p[0] == b'-':
        i = 1
    if i < n <= 15:
        while i < n and b'0' <= p[i] <= b'9':
            iv = iv * 10 + (p[i] - 48)
            i += 1
        if i == n:
            v = <double>iv
            out[0] = -v if p[0] == b'-' else v
            return True
    cdb_errno_clear()
    v = strtod(p, &end)
    if end - p != n or isnan(v):
        return False
    if cdb_errno() == ERANGE and (v == HUGE_VAL or v == -HUGE_VAL or v == 0.0):
        return False
    out[0] = v
    return True


cdef bint _parse_bound(bytes b, double* v, bint* ex) noexcept:
    # zslParseRange: "(" for exclusive, then strtod up to the first NUL
    cdef const char* p = PyBytes_AS_STRING(b)
    cdef char* end
    ex[0] = False
    if p[0] == b'(':
        ex[0] = True
        p += 1
    v[0] = strtod(p, &end)
    return end[0] == 0 and not isnan(v[0])


cdef bint parse_range(bytes a, bytes b, ZRange* r) noexcept:
    return _parse_bound(a, &r.min, &r.minex) and _parse_bound(b, &r.max, &r.maxex)


cdef bint _parse_lex_item(bytes b, const char** s, Py_ssize_t* n, int* inf, bint* ex) noexcept:
    cdef const char* p = PyBytes_AS_STRING(b)
    cdef Py_ssize_t ln = PyBytes_GET_SIZE(b)
    s[0] = NULL
    n[0] = 0
    inf[0] = 0
    if p[0] == b'+':
        if p[1] != 0:
            return False
        inf[0] = 1
        ex[0] = True
        return True
    if p[0] == b'-':
        if p[1] != 0:
            return False
        inf[0] = -1
        ex[0] = True
        return True
    if p[0] == b'(' or p[0] == b'[':
        ex[0] = p[0] == b'('
        s[0] = p + 1
        n[0] = ln - 1
        return True
    return False


cdef bint parse_lex(bytes a, bytes b, ZLexRange* r) noexcept:
    return _parse_lex_item(a, &r.min, &r.minlen, &r.mininf, &r.minex) and \
        _parse_lex_item(b, &r.max, &r.maxlen, &r.maxinf, &r.maxex)


cdef int reply_score(WBuf out, double v) except -1:
    """addReplyDouble: %.17g, a bulk string in RESP2, a double in RESP3."""
    cdef char buf[40]
    cdef int n
    if isinf(v):
        if out.resp3:
            return out.put_raw(b",inf\r\n", 6) if v > 0 else out.put_raw(b",-inf\r\n", 7)
        return out.bulk_raw(b"inf", 3) if v > 0 else out.bulk_raw(b"-inf", 4)
    n = fmt_g17(buf, v)
    if out.resp3:
        out.put_raw(b",", 1)
        out.put_raw(buf, n)
        return out.put_raw(b"\r\n", 2)
    return out.bulk_raw(buf, n)


cdef bytes format_score(double v):
    cdef char buf[40]
    cdef int n
    if isinf(v):
        return b"inf" if v > 0 else b"-inf"
    n = fmt_g17(buf, v)
    return PyBytes_FromStringAndSize(buf, n)


# ------------------------------------------------- the rules (local + remote) ----

cdef ZEnt _new_ent(bytes member):
    cdef ZEnt e = ZEnt.__new__(ZEnt)
    e.member = member
    e.dots = None
    e.ru = 0
    e.rn = 0
    e.x = None
    e.score = 0.0
    return e


# ------------------------------------------- a member's rarely used parts ----
# ZEnt.x is None for most members (objects.pxd): then the register value is the
# score, the rebase ts (vu, vn) is (ru, rn), there are no counters and no removal
# mark; and ZEnt.dots is ZDOT_REG when the member's one dot is (rn, ru), the
# register's own ts (a ZADD's). zv_* read the full state, zx gives the part to
# write, _zset_reg moves the register, zcompact drops what is implied again.

# (a Dot of its own, never a real one: code that missed zv_dots would read a
# dot no node made, not memory that is no Dot)
cdef Dot ZDOT_REG = new_dot(0, 0)


cdef inline double zv_val(ZEnt e) noexcept:
    return e.score if e.x is None else e.x.val


cdef inline uint64_t zv_vu(ZEnt e) noexcept:
    return e.ru if e.x is None else e.x.vu


cdef inline uint64_t zv_vn(ZEnt e) noexcept:
    return e.rn if e.x is None else e.x.vn


cdef object zv_cnt(ZEnt e):
    return None if e.x is None else e.x.cnt


cdef inline uint64_t zv_rem(ZEnt e) noexcept:
    return 0 if e.x is None else e.x.rem


cdef inline object zv_dots(ZEnt e):
    """e's dots as the dot helpers take them (Dot | [Dot] | None)."""
    if e.dots is ZDOT_REG:
        return new_dot(e.rn, e.ru)
    return e.dots


cdef ZX zx(ZEnt e):
    """e's rarely used part, made (with what it implied) if e had none."""
    cdef ZX x = e.x
    if x is None:
        x = ZX.__new__(ZX)
        x.val = e.score
        x.vu = e.ru
        x.vn = e.rn
        x.cnt = None
        x.rem = 0
        e.x = x
    return x


cdef inline int _zset_reg(ZEnt e, double val, uint64_t ru, uint64_t rn, uint64_t vu,
                          uint64_t vn) except -1:
    """A new register state (e.score is recomputed by the caller)."""
    cdef ZX x
    if e.dots is ZDOT_REG:
        e.dots = new_dot(e.rn, e.ru)
    if e.x is None and vu == ru and vn == rn:
        # (a ZADD's: the value is the score while there are no counters)
        e.ru = ru
        e.rn = rn
        e.score = val
        return 0
    x = zx(e)
    e.ru = ru
    e.rn = rn
    x.val = val
    x.vu = vu
    x.vn = vn
    return 0


cdef int zcompact(ZEnt e) except -1:
    """Drop from e what its other fields imply (after its score is set)."""
    cdef ZX x = e.x
    cdef object d = e.dots
    if type(d) is Dot and (<Dot>d).node == e.rn and (<Dot>d).uuid == e.ru:
        e.dots = ZDOT_REG
    if (x is not None and x.cnt is None and x.rem == 0 and x.vu == e.ru and x.vn == e.rn
            and x.val == e.score and signbit(x.val) == signbit(e.score)):
        e.x = None
    return 0


# m changes only through these two (and _remove_all's whole drop): they keep
# ZSetObj.mb, the bytes of m's keys that the memory estimate counts
# (keyspace.mem_est; Keyspace.mem_recount sums them again)

cdef inline int _m_add(ZSetObj o, ZEnt e) except -1:
    """e (absent from m) joins m."""
    o.m[e.member] = e
    o.mb += bytes_block(e.member)
    return 0


cdef inline int _m_del(ZSetObj o, bytes member) except -1:
    """member (in m) leaves m."""
    del o.m[member]
    o.mb -= bytes_block(member)
    return 0


cdef ZEnt find_ent(ZSetObj o, bytes member):
    """member's entry, present or removed (with state kept), or None. A member
    of the bulk is moved to gone first (_unbulk)."""
    cdef PyObject* p = PyDict_GetItem(o.m, member)
    if p != NULL:
        return <ZEnt>p
    if o.gone is not None:
        p = PyDict_GetItem(<dict>o.gone, member)
        if p != NULL:
            return <ZEnt>p
    if o.idx is not None and (<ZIndex>o.idx).bulk is not None:
        return _unbulk(o, member)
    return None


# ------------------------------------------------------------ bulk removal ----
# A DEL (or a peer's ZCLEAR) removes every member it names at one uuid: the ones
# it leaves without a dot and without counters go, as they are (dots None), into
# the index's ZBulk with that one removal mark, instead of one by one into gone
# with a ZX each; the skip list's nodes go whole (ZIndex.detach, freed in slices
# by Keyspace.lazy_step when the DEL is lazy). find_ent moves a member back to
# gone, as a removal of its own, when anything touches it (a concurrent add
# brings it back); merges move them all (_unbulk_all). GC drops the whole bulk
# once its mark is causally stable, handing its dict to Keyspace.lazy. A
# snapshot load makes the bulk again (_dec_bulk) and a load's filter drops
# its members in place (_filter_bulk).

@cython.final
cdef class ZBulk:
    pass


cdef ZEnt _unbulk(ZSetObj o, bytes member):
    """member's entry out of the bulk into gone (its own removal mark), or None."""
    cdef ZIndex ix = <ZIndex>o.idx
    cdef ZBulk b = ix.bulk
    cdef PyObject* p = PyDict_GetItem(b.m, member)
    cdef ZEnt e
    if p == NULL:
        return None
    e = <ZEnt>p
    del b.m[member]
    if not b.m:
        ix.bulk = None
    if b.rem > zv_rem(e):
        zx(e).rem = b.rem
    if o.gone is None:
        o.gone = {}
    o.gone[member] = e
    return e


cdef int _unbulk_all(ZSetObj o) except -1:
    """Every bulk member back into gone (before a merge walks them)."""
    cdef ZBulk b
    cdef ZEnt e
    if o.idx is None or (<ZIndex>o.idx).bulk is None:
        return 0
    b = (<ZIndex>o.idx).bulk
    (<ZIndex>o.idx).bulk = None
    if o.gone is None:
        o.gone = {}
    for m, v in b.m.items():
        e = <ZEnt>v
        if b.rem > zv_rem(e):
            zx(e).rem = b.rem
        o.gone[m] = e
    return 0


cdef int _bulk_add(Keyspace ks, ZIndex ix, dict m, uint64_t u) except -1:
    """m (member -> removed ZEnt, no counters) joins ix's bulk, removed at u:
    the smaller dict goes into the larger, the mark is the later one (a
    removal kept longer is never wrong)."""
    cdef ZBulk b = ix.bulk
    if not m:
        return 0
    if b is None:
        b = ZBulk.__new__(ZBulk)
        b.m = m
        b.rem = u
        b.lazy = ks.lazy
        ix.bulk = b
        return 0
    if len(m) > len(b.m):
        m.update(b.m)
        b.m = m
    else:
        b.m.update(m)
    if u > b.rem:
        b.rem = u
    if b.lazy is None:
        b.lazy = ks.lazy
    return 0


cdef int zset_adopt(Keyspace ks, ZSetObj o) except -1:
    """A loaded sorted set placed in ks: its bulk (_dec_bulk) is freed
    through ks's lazy list at GC, as a DEL's."""
    if o.idx is not None and (<ZIndex>o.idx).bulk is not None:
        (<ZIndex>o.idx).bulk.lazy = ks.lazy
    return 0


cdef int _drop_index(Keyspace ks, ZIndex ix) except -1:
    """Free every node of ix (its members all removed): in slices when big."""
    cdef ZIndex d = ix.detach()
    if d.length > 1024:
        ks.lazy.append(d)
    return 0


cdef int _remove_all(Keyspace ks, ZSetObj o, dict bulk, list ind, uint64_t u,
                     bint whole) except -1:
    """The members of bulk (no counters) and ind (ZEnts with counters), whose
    last dots a clear at u removed (dots already None), leave m and the index:
    bulk into the bulk, ind into gone. whole: they are all of m (which is
    then dropped whole with the index's nodes)."""
    cdef ZIndex ix = index_of(o)
    cdef ZEnt e
    if whole:
        o.m = {}
        o.mb = 0
        _drop_index(ks, ix)
    else:
        for m, v in bulk.items():
            ix.delete((<ZEnt>v).score, <bytes>m)
            _m_del(o, <bytes>m)
        for v in ind:
            e = <ZEnt>v
            ix.delete(e.score, e.member)
            _m_del(o, e.member)
    if ind:
        if o.gone is None:
            o.gone = {}
        for v in ind:
            e = <ZEnt>v
            if u > zv_rem(e):
                zx(e).rem = u
            o.gone[e.member] = e
    _bulk_add(ks, ix, bulk, u)
    return 0


cdef inline bint _same(double a, double b) noexcept:
    # a counter sum the register write observed contributes nothing, even an
    # infinite one (a peer's huge finite increments). No sum is NaN (an
    # infinite increment is a ZADD, emit_zincr; loads and peers refuse NaN):
    # the isnan is a guard only
    return a == b or (isnan(a) and isnan(b))


cdef double zscore(ZEnt e):
    """The visible score: the register plus the contributions its write did
    not observe, summed in origin order (every node gets the same double)."""
    cdef double s = zv_val(e)
    cdef ZCnt c
    if zv_cnt(e) is None:
        return s
    if len(<dict>zv_cnt(e)) == 1:
        for v in (<dict>zv_cnt(e)).values():
            c = <ZCnt>v
            if not _same(c.sum, c.bsum):
                s += c.sum - c.bsum
    else:
        for k in sorted(<dict>zv_cnt(e)):
            c = <ZCnt>(<dict>zv_cnt(e))[k]
            if not _same(c.sum, c.bsum):
                s += c.sum - c.bsum
    if isnan(s):
        # +inf and -inf increments from different nodes: the set needs a score
        s = 0.0
    return s


cdef ZCnt _cnt_entry(ZEnt e, uint64_t node):
    cdef ZCnt c
    cdef PyObject* p
    cdef ZX x = zx(e)
    if x.cnt is None:
        x.cnt = {}
    p = PyDict_GetItem(<dict>x.cnt, node)
    if p != NULL:
        return <ZCnt>p
    c = ZCnt.__new__(ZCnt)
    c.sum = 0.0
    c.last = 0
    c.bsum = 0.0
    c.blast = 0
    x.cnt[node] = c
    return c


cdef int _reindex(Keyspace ks, ZSetObj o, ZEnt e, bint was, double old, uint64_t u) except -1:
    """Move e where its dots and score put it: the index and m (present), or
    gone (removed, its state kept)."""
    cdef bint now = e.dots is not None
    if was and now:
        # (a change of sign of zero too: the node's score is what ranges show)
        if e.score != old or signbit(e.score) != signbit(old):
            (<ZIndex>o.idx).rescore(e, old, e.score)
    elif was:
        (<ZIndex>o.idx).delete(old, e.member)
        _m_del(o, e.member)
        if o.gone is None:
            o.gone = {}
        o.gone[e.member] = e
        if u > zv_rem(e):
            zx(e).rem = u
    elif now:
        index_of(o).insert(e, e.score)
        _m_add(o, e)
        if o.gone is not None:
            (<dict>o.gone).pop(e.member, None)
            if not o.gone:
                o.gone = None
        if e.x is not None:
            e.x.rem = 0
    else:
        if o.gone is None:
            o.gone = {}
        o.gone[e.member] = e
        if zv_rem(e) < ks.clock.last:
            # removed by a removal that came first (its dot was in the cloud):
            # the clock covers that removal's uuid
            zx(e).rem = ks.clock.last
    return 0


cdef int _zw_on(Keyspace ks, object key, ZSetObj o, bytes member, int flags, uint64_t ru,
                uint64_t rn, double val, double delta, list obs, list removes, uint64_t u,
                uint64_t origin) except -1:
    """A member's add and score write (ZADD, ZINCRBY)."""
    cdef ZEnt e = find_ent(o, member)
    cdef bint was, fresh
    cdef double old
    cdef ZCnt c
    if e is None:
        e = _new_ent(member)
    was = e.dots is not None
    old = e.score
    if removes:
        if (e.dots is ZDOT_REG and len(removes) == 1 and (<Dot>removes[0]).node == e.rn
                and (<Dot>removes[0]).uuid == e.ru):
            e.dots = None   # (a ZADD of a member only ZADD wrote: its one dot goes)
        else:
            e.dots = _ent_remove(zv_dots(e), removes)
        ks._note_unseen(removes)
    fresh = False
    if not ks._in_cloud(origin, u):
        if e.dots is None and not flags & ZW_REBASE:
            fresh = True    # its one dot may be the register's ts: set below
        else:
            e.dots = _ent_append(zv_dots(e), new_dot(origin, u))
    if flags & ZW_CNT:
        c = _cnt_entry(e, origin)
        c.sum += delta
        c.last = u
    if not flags & ZW_REBASE:
        ru = u
        rn = origin
    if (ts_gt(ru, rn, e.ru, e.rn)
            or (ru == e.ru and rn == e.rn and ts_gt(u, origin, zv_vu(e), zv_vn(e)))):
        _zset_reg(e, val, ru, rn, u, origin)
        if zv_cnt(e) is not None:
            for v in (<dict>zv_cnt(e)).values():
                c = <ZCnt>v
                c.bsum = 0.0
                c.blast = 0
        if obs:
            for item in obs:
                c = _cnt_entry(e, <uint64_t>item[0])
                c.bsum = <double>item[1]
                c.blast = <uint64_t>item[2]
    if fresh:
        e.dots = ZDOT_REG if e.ru == u and e.rn == origin else new_dot(origin, u)
    e.score = zscore(e)
    _reindex(ks, o, e, was, old, u)
    zcompact(e)
    _bump(&o.lu, &o.ln, u, origin)
    ks.touched(key)
    if ks.alts or not o.m or kt_get(&ks.d.t, key) != <PyObject*>o:
        # (shown, live and alone on key: touched counted it, it stays)
        ks.settle(key, o)
    return 0


cdef int _zrem_on(Keyspace ks, ZSetObj o, bytes member, list dots, uint64_t u) except -1:
    cdef ZEnt e
    ks._note_unseen(dots)
    if o is None:
        return 0
    e = find_ent(o, member)
    if e is None or e.dots is None:
        return 0
    e.dots = _ent_remove(zv_dots(e), dots)
    if e.dots is None:
        _reindex(ks, o, e, True, e.score, u)
    else:
        zcompact(e)
    return 0


# ---------------------------------------------------------- local effects ----

cdef list _observed(ZEnt e, uint64_t self_node, double delta, uint64_t u):
    """The counter state a write observes: (node, sum, last) of every origin;
    for a ZINCRBY (u != 0), its own counter after its delta."""
    cdef list obs = []
    cdef ZCnt c
    cdef bint own = False
    if e is not None and zv_cnt(e) is not None:
        for k, v in (<dict>zv_cnt(e)).items():
            c = <ZCnt>v
            if u != 0 and <uint64_t>k == self_node:
                obs.append((k, c.sum + delta, u))
                own = True
            else:
                obs.append((k, c.sum, c.last))
    if u != 0 and not own:
        obs.append((self_node, delta, u))
    return obs


cdef int _write_zw(Keyspace ks, object key, bytes member, int flags, uint64_t ru, uint64_t rn,
                   double val, double delta, list obs, list removes, uint64_t u) except -1:
    cdef Writer w = ks.bl.begin(OP_ZW, u)
    w.put_bytes(key)
    w.put_bytes(member)
    w.put_u8(<uint8_t>flags)
    if flags & ZW_REBASE:
        w.put_u64(ru)
        w.put_u64(rn)
    w.put_f64(val)
    if flags & ZW_CNT:
        w.put_f64(delta)
    w.put_varint(len(obs))
    for item in obs:
        w.put_u64(<uint64_t>item[0])
        w.put_f64(<double>item[1])
        w.put_u64(<uint64_t>item[2])
    _put_dots(w, removes)
    ks.bl.end()
    return 0


cdef int _write_zadd(Keyspace ks, object key, bytes member, double score, bint rm,
                     uint64_t dn, uint64_t du, uint64_t u) except -1:
    """_write_zw of a ZADD that observed no counters and removes the one dot
    (dn, du) if rm: the record written in one go."""
    cdef Py_ssize_t klen = PyBytes_GET_SIZE(key), mlen = PyBytes_GET_SIZE(member)
    cdef char* w = ks.bl.reserve(OP_ZW, u, varint_len(<uint64_t>klen) + klen
                                 + varint_len(<uint64_t>mlen) + mlen + 1 + 8 + 1 + 1
                                 + (16 if rm else 0))
    w = put_varint_at(w, <uint64_t>klen)
    memcpy(w, PyBytes_AS_STRING(key), klen)
    w = put_varint_at(w + klen, <uint64_t>mlen)
    memcpy(w, PyBytes_AS_STRING(member), mlen)
    w += mlen
    w[0] = 0                            # flags
    memcpy(w + 1, &score, 8)
    w[9] = 0                            # no observed counters
    w[10] = 1 if rm else 0              # the dots removed
    if rm:
        put_u64_at(put_u64_at(w + 11, dn), du)
    ks.bl.end()
    return 0


cdef ZSetObj emit_zadd(Keyspace ks, object key, ZSetObj o, bytes member, double score):
    """ZADD of member at score (a new member, or a changed score)."""
    cdef uint64_t u = ks.tick()
    cdef ZEnt e
    cdef list obs, removes
    cdef bint rm
    cdef uint64_t dn, du
    if o is None:
        o = <ZSetObj>ks.find(key, T_ZSET, True)
    e = find_ent(o, member)
    if e is None or (zv_cnt(e) is None and (e.dots is None or e.dots is ZDOT_REG)):
        # the usual case: no counters to observe, at most one dot to remove
        # (the register's own)
        rm = e is not None and e.dots is not None
        dn = e.rn if rm else 0
        du = e.ru if rm else 0
        _zw_on(ks, key, o, member, 0, 0, 0, score, 0.0, None,
               [new_dot(dn, du)] if rm else None, u, ks.node_id)
        _write_zadd(ks, key, member, score, rm, dn, du, u)
        return o
    removes = _ent_dots_raw(zv_dots(e))
    obs = _observed(e, ks.node_id, 0.0, 0)
    _zw_on(ks, key, o, member, 0, 0, 0, score, 0.0, obs, removes, u, ks.node_id)
    _write_zw(ks, key, member, 0, 0, 0, score, 0.0, obs, removes, u)
    return o


cdef int emit_zscore(Keyspace ks, object key, ZSetObj o, ZEnt e, double score) except -1:
    """ZADD of a new score for a present member e of o: emit_zadd's effect,
    with what the common case implies known here (no counters, one dot that
    is the register's own; the new register ts is the newest, so it wins).
    Else emit_zadd."""
    return _zscore(ks, key, o, e, score, True)


cdef int _zscore(Keyspace ks, object key, ZSetObj o, ZEnt e, double score,
                 bint touch) except -1:
    """emit_zscore; touch False: the caller calls ks.touched(key) once after
    all its writes (a STORE), unless this one fell back to emit_zadd (which
    it reports by returning 1)."""
    cdef uint64_t u, dn, du
    cdef double old
    if e.x is not None or e.dots is not ZDOT_REG or ks.cloud:
        emit_zadd(ks, key, o, e.member, score)
        return 1
    u = ks.tick()
    dn = e.rn
    du = e.ru
    if not ks.seen(dn, du):
        ks._note_unseen([new_dot(dn, du)])
    old = e.score
    e.ru = u
    e.rn = ks.node_id
    e.score = score
    if score != old or signbit(score) != signbit(old):
        (<ZIndex>o.idx).rescore(e, old, score)
    _bump(&o.lu, &o.ln, u, ks.node_id)
    if touch:
        ks.touched(key, False)     # (the same members: the memory estimate stands)
    if ks.alts:
        ks.settle(key, o)
    _write_zadd(ks, key, e.member, score, True, dn, du, u)
    return 0


cdef ZSetObj emit_zincr(Keyspace ks, object key, ZSetObj o, bytes member, double delta,
                        double newscore):
    """ZINCRBY (and ZADD INCR): delta to this node's counter; the register
    rebased to newscore (a present member) or written with it (a new one).
    An infinite delta or newscore, or a counter sum the delta would take past
    the doubles, is a ZADD of newscore instead (docs/crdt.md section 3.6): a
    counter sum is always finite, so no sum is ever NaN."""
    cdef uint64_t u
    cdef ZEnt e
    cdef list obs, removes
    cdef int flags = ZW_CNT
    cdef uint64_t ru = 0, rn = 0
    cdef PyObject* p
    if o is None:
        o = <ZSetObj>ks.find(key, T_ZSET, True)
    e = find_ent(o, member)
    if not isfinite(delta) or not isfinite(newscore):
        return emit_zadd(ks, key, o, member, newscore)
    if e is not None and zv_cnt(e) is not None:
        p = PyDict_GetItem(<dict>zv_cnt(e), ks.node_id)
        if p != NULL and not isfinite((<ZCnt>p).sum + delta):
            return emit_zadd(ks, key, o, member, newscore)
    u = ks.tick()
    removes = _ent_dots_raw(zv_dots(e)) if e is not None else []
    if e is not None and e.dots is not None:
        flags |= ZW_REBASE
        ru = e.ru
        rn = e.rn
    obs = _observed(e, ks.node_id, delta, u)
    _zw_on(ks, key, o, member, flags, ru, rn, newscore, delta, obs, removes, u, ks.node_id)
    _write_zw(ks, key, member, flags, ru, rn, newscore, delta, obs, removes, u)
    return o


cdef int _emptied(Keyspace ks, object key, ZSetObj o, bint had_ttl) except -1:
    """A local removal left the set empty: as in Redis the key's TTL goes."""
    if not o.m and had_ttl and (kt_get(&ks.d.t, key) == NULL):
        ks.emit_ttl(key, 0)
    return 0


cdef int emit_zrem(Keyspace ks, object key, ZSetObj o, list members) except -1:
    """The removal of these present members (ZREM, pops, ZREMRANGE*) of o,
    d[key] (as Keyspace.lookup gives it)."""
    cdef uint64_t u = ks.tick()
    cdef Writer w
    cdef list dots
    cdef ZEnt e
    cdef bint had_ttl = o.ttl is not None and (<TTLReg>o.ttl).at != 0
    w = ks.bl.begin(OP_ZREM, u)
    w.put_bytes(key)
    w.put_varint(len(members))
    for m in members:
        e = <ZEnt>o.m[m]
        dots = _ent_dots_raw(zv_dots(e))
        w.put_bytes(<bytes>m)
        _put_dots(w, dots)
        _zrem_on(ks, o, <bytes>m, dots, u)
    ks.bl.end()
    _bump(&o.lu, &o.ln, u, ks.node_id)
    ks.touched(key)
    if not o.m or ks.alts:
        # (o stays shown while it has members and nothing else is on key)
        ks.settle(key, o)
    if not o.m:
        _emptied(ks, key, o, had_ttl)
    return 0


cdef int emit_zclear(Keyspace ks, object key, ZSetObj o) except -1:
    """DEL of a sorted set: the observed removal of every member, in bulk
    (_remove_all): the record names each member's dots, nothing else is done
    per member."""
    cdef uint64_t u = ks.tick()
    cdef Writer w
    cdef ZEnt e
    cdef dict old = o.m
    cdef list ind = []
    w = ks.bl.begin(OP_ZCLEAR, u)
    w.put_bytes(key)
    w.put_varint(len(old))
    for m, v in old.items():
        e = <ZEnt>v
        w.put_bytes(<bytes>m)
        if e.dots is ZDOT_REG:
            w.put_varint(1)
            w.put_u64(e.rn)
            w.put_u64(e.ru)
        else:
            _put_dots(w, _ent_dots_raw(e.dots))
        e.dots = None
        if e.x is not None and e.x.cnt is not None:
            ind.append(e)
    ks.bl.end()
    for v in ind:
        del old[(<ZEnt>v).member]
    _remove_all(ks, o, old, ind, u, True)
    _bump(&o.lu, &o.ln, u, ks.node_id)
    ks._clear_done(key, o, u, ks.node_id)
    return 0


cdef int copy_zset(Keyspace ks, object dst, ZSetObj o) except -1:
    """RENAME/COPY: dst gets o's members and scores as new adds (dst cleared
    first)."""
    cdef ZSetObj d = None
    cdef ZNode* x
    if o.idx is None or not o.m:
        return 0
    x = (<ZIndex>o.idx).first()
    while x != NULL:
        d = emit_zadd(ks, dst, d, (<ZEnt>x.ent).member, x.score)
        x = x.level[0].forward
    index_of(d).lp = (<ZIndex>o.idx).lp
    return 0


cdef int store_zset(Keyspace ks, object dst, dict res, bint lp) except -1:
    """The STORE forms (ZUNIONSTORE, ZRANGESTORE, GEOSEARCHSTORE, ...): dst
    ends holding exactly res (member -> score), as Redis's whole-key
    overwrite. Shipped as its effects, like SUNIONSTORE: a key of another type
    is deleted, members of dst not in res are removed (observed), members new
    or with another score (or with ZINCRBY counters) are written, and a TTL
    goes. lp: Redis would hold the result as a listpack (-0 is stored as 0)."""
    cdef CObj o = ks.lookup(dst)
    cdef ZSetObj z = None
    cdef ZEnt e
    cdef PyObject* p
    cdef double s
    cdef list gone
    cdef bint untouched = False
    if o is not None and type(o) is not ZSetObj:
        ks.emit_del(dst)
        o = None
    if not res:
        if o is not None:
            ks.emit_del(dst)
        return 0
    if o is not None:
        z = <ZSetObj>o
        gone = [m for m in z.m if m not in res]
        if gone:
            emit_zrem(ks, dst, z, gone)
            if not z.m:
                z = None
    for m, v in res.items():
        s = <double>v
        if lp and s == 0.0:
            s = 0.0
        if z is not None:
            p = PyDict_GetItem(z.m, m)
            if p != NULL:
                e = <ZEnt>p
                if e.score == s and signbit(e.score) == signbit(s) and zv_cnt(e) is None:
                    continue
                # (one Keyspace.touched for all of them, below)
                if _zscore(ks, dst, z, e, s, False) == 0:
                    untouched = True
                continue
        z = emit_zadd(ks, dst, z, <bytes>m, s)
    if untouched:
        ks.touched(dst)
    index_of(z).lp = lp
    if z.ttl is not None and (<TTLReg>z.ttl).at != 0:
        ks.emit_ttl(dst, 0)
    return 0

# --------------------------------------------------------- remote records ----

cdef int _apply_zw(Keyspace ks, uint64_t origin, uint64_t u, Reader r) except -1:
    cdef object key = r.bytes_()
    cdef bytes member = r.bytes_()
    cdef int flags = r.u8()
    cdef uint64_t ru = 0, rn = 0, n, _i, node, last
    cdef double val, delta = 0.0, s
    cdef list obs = []
    if flags & ZW_REBASE:
        ru = r.u64()
        rn = r.u64()
    val = r.f64()
    if flags & ZW_CNT:
        delta = r.f64()
    n = r.varint()
    if n > <uint64_t>(r.end - r.pos):
        raise ValueError("bad counter count")
    for _i in range(n):
        node = r.u64()
        s = r.f64()
        last = r.u64()
        obs.append((node, s, last))
    removes = _read_dots(r)
    _zw_on(ks, key, <ZSetObj>ks.find(key, T_ZSET, True), member, flags, ru, rn, val, delta,
           obs, removes, u, origin)
    return 0


cdef int _apply_zrem(Keyspace ks, uint64_t origin, uint64_t u, Reader r) except -1:
    cdef object key = r.bytes_()
    cdef ZSetObj o = <ZSetObj>ks.find(key, T_ZSET, False)
    cdef uint64_t n = r.varint(), _i
    for _i in range(n):
        member = r.bytes_()
        _zrem_on(ks, o, member, _read_dots(r), u)
    if o is not None:
        _bump(&o.lu, &o.ln, u, origin)
        ks.touched(key)
        ks.settle(key, o)
    return 0


cdef int _apply_zclear(Keyspace ks, uint64_t origin, uint64_t u, Reader r) except -1:
    """A peer's DEL: each named member whose dots it all names is removed, in
    bulk (_remove_all) as a local DEL; one with a dot it did not see stays."""
    cdef object key = r.bytes_()
    cdef ZSetObj o = <ZSetObj>ks.find(key, T_ZSET, True)
    cdef uint64_t n = r.varint(), _i
    cdef dict bulk = {}
    cdef list ind = []
    cdef list dots
    cdef ZEnt e
    cdef PyObject* p
    cdef object left
    for _i in range(n):
        member = r.bytes_()
        dots = _read_dots(r)
        ks._note_unseen(dots)
        p = PyDict_GetItem(o.m, member)
        if p == NULL:
            continue
        e = <ZEnt>p
        left = _ent_remove(zv_dots(e), dots)
        if left is not None:
            e.dots = left
            zcompact(e)
            continue
        e.dots = None
        if zv_cnt(e) is None:
            bulk[e.member] = e
        else:
            ind.append(e)
    if bulk or ind:
        _remove_all(ks, o, bulk, ind, u, len(bulk) + len(ind) == len(o.m))
    _bump(&o.lu, &o.ln, u, origin)
    ks._clear_done(key, o, u, origin)
    return 0


cdef int _apply(Keyspace ks, uint8_t op, uint64_t origin, uint64_t u, Reader r) except -1:
    if op == OP_ZW:
        return _apply_zw(ks, origin, u, r)
    if op == OP_ZREM:
        return _apply_zrem(ks, origin, u, r)
    return _apply_zclear(ks, origin, u, r)


cdef int _check(uint8_t op, uint64_t u, Reader r) except -1:
    """A peer's record checked without applying it: framing, flags, no NaN
    (a NaN score would break the index's order), no infinite increment."""
    cdef int flags
    cdef uint64_t n, _i
    r.bytes_()
    if op == OP_ZW:
        r.bytes_()
        flags = r.u8()
        if flags & ~(ZW_REBASE | ZW_CNT):
            raise ValueError("bad sorted set write flags %d" % flags)
        if flags & ZW_REBASE:
            _check_ts(r.u64(), u)  # the register's ts the writer rebased on
            r.u64()
        if isnan(r.f64()):
            raise ValueError("NaN score")
        if flags & ZW_CNT and not isfinite(r.f64()):
            # (a writer makes an infinite increment a ZADD: a counter sum
            # that took one could become NaN)
            raise ValueError("non-finite sorted set increment")
        n = r.varint()
        if n > <uint64_t>(r.end - r.pos) // 24:
            raise ValueError("bad counter count")
        for _i in range(n):
            r.u64()
            if isnan(r.f64()):
                raise ValueError("NaN score")
            _check_ts(r.u64(), u)
        return _skip_n(r, 16, u)
    n = r.varint()
    if n > <uint64_t>(r.end - r.pos):
        raise ValueError("bad member count")
    for _i in range(n):
        r.bytes_()
        _skip_n(r, 16, u)
    return 0


# ---------------------------------------------------------------------- GC ----

cdef Py_ssize_t _gc(CObj x, uint64_t stable, bint* empty) except -1:
    """Drop removed members whose removal is causally stable (`stable` as for
    t_list.gc_list: every node applied everything up to it before making any
    effect not yet applied here): no concurrent add can bring them back any
    more. Members with counter entries stay (docs/crdt.md section 6).
    Sets empty when the set holds nothing any more."""
    cdef ZSetObj o = <ZSetObj>x
    cdef ZEnt e
    cdef list drop = []
    cdef ZBulk b
    cdef Py_ssize_t nb = 0
    if o.idx is not None and (<ZIndex>o.idx).bulk is not None:
        b = (<ZIndex>o.idx).bulk
        if b.rem <= stable:
            # the whole bulk at once, its dict freed in slices (Keyspace.lazy_step)
            nb = len(b.m)
            (<ZIndex>o.idx).bulk = None
            if nb > 1024 and b.lazy is not None:
                b.lazy.append(b.m)
            b.m = None
    if o.gone is not None:
        for m, v in (<dict>o.gone).items():
            e = <ZEnt>v
            if zv_cnt(e) is None and zv_rem(e) != 0 and zv_rem(e) <= stable:
                drop.append(m)
        for m in drop:
            del o.gone[m]
        if not o.gone:
            o.gone = None
    empty[0] = not o.m and o.gone is None and (o.idx is None or (<ZIndex>o.idx).bulk is None)
    return len(drop) + nb


def gc_zset(ZSetObj o, uint64_t stable):
    """The GC hook (_gc) from Python: (dropped, empty)."""
    cdef bint empty = False
    cdef Py_ssize_t d = _gc(o, stable, &empty)
    return d, empty


# ------------------------------------------------------------ introspection ----

def zset_items(ZSetObj o):
    """[(member, score)] in order."""
    if o.idx is None:
        return []
    return (<ZIndex>o.idx).items()


def zset_removed(ZSetObj o):
    """(removed members in gone, removed members in the bulk) (tests)."""
    cdef ZIndex ix = <ZIndex>o.idx
    return (len(<dict>o.gone) if o.gone is not None else 0,
            len(ix.bulk.m) if ix is not None and ix.bulk is not None else 0)


def check_zset(ZSetObj o):
    cdef ZEnt e
    cdef Py_ssize_t mb = 0
    for m in o.m:
        mb += bytes_block(<bytes>m)
    assert o.mb == mb, (o.mb, mb)
    if o.idx is not None:
        (<ZIndex>o.idx).check()
        assert len(<ZIndex>o.idx) == len(o.m)
    else:
        assert not o.m
    for m, v in o.m.items():
        e = <ZEnt>v
        assert e.member == m and e.dots is not None and zv_rem(e) == 0
        assert e.score == zscore(e) or (isnan(zscore(e)) and e.score == 0.0)
    if o.gone is not None:
        for m, v in (<dict>o.gone).items():
            e = <ZEnt>v
            assert e.member == m and e.dots is None and m not in o.m
    if o.idx is not None and (<ZIndex>o.idx).bulk is not None:
        assert (<ZIndex>o.idx).bulk.m and (<ZIndex>o.idx).bulk.rem
        for m, v in (<ZIndex>o.idx).bulk.m.items():
            e = <ZEnt>v
            assert e.member == m and e.dots is None and zv_cnt(e) is None and m not in o.m
            assert o.gone is None or m not in o.gone
    return True


def _dots_desc(ent):
    return sorted([[(<Dot>x).node, (<Dot>x).uuid] for x in _ent_dots_raw(ent)])


cdef list _ent_desc(ZEnt e):
    cnts = []
    if zv_cnt(e) is not None:
        for k in sorted(zv_cnt(e)):
            c = <ZCnt>zv_cnt(e)[k]
            cnts.append([k, format_score(c.sum), c.last, format_score(c.bsum), c.blast])
    return [e.member, _dots_desc(zv_dots(e)), format_score(e.score),
            [format_score(zv_val(e)), e.ru, e.rn, zv_vu(e), zv_vn(e)], cnts]


cdef list _describe(CObj x):
    cdef ZSetObj o = <ZSetObj>x
    members = [_ent_desc(<ZEnt>o.m[m]) for m in sorted(o.m)]
    gone = []
    if o.gone is not None:
        # (rem, the GC mark, depends on the order removals arrived in: not shown)
        gone = [_ent_desc(<ZEnt>o.gone[m]) for m in sorted(o.gone)]
    if o.idx is not None and (<ZIndex>o.idx).bulk is not None:
        b = (<ZIndex>o.idx).bulk.m
        gone = sorted(gone + [_ent_desc(<ZEnt>b[m]) for m in b])
    return [b"members", members, b"removed", gone]


# ------------------------------------------------------------- type table ----

cdef CObj _new():
    return new_zset()


cdef bint _live(CObj o) noexcept:
    return len((<ZSetObj>o).m) > 0


cdef bint _keeps(CObj o) noexcept:
    # removed members' registers and counters, until GC
    cdef ZSetObj z = <ZSetObj>o
    return ((z.gone is not None and len(<dict>z.gone) > 0)
            or (z.idx is not None and (<ZIndex>z.idx).bulk is not None))


cdef void _last_ts(CObj o, uint64_t* u, uint64_t* n) noexcept:
    cdef ZEnt e
    u[0] = 0
    n[0] = 0
    for x in (<ZSetObj>o).m.values():
        e = <ZEnt>x
        if e.dots is ZDOT_REG:
            if ts_gt(e.ru, e.rn, u[0], n[0]):
                u[0] = e.ru
                n[0] = e.rn
        else:
            _ent_max(e.dots, u, n)


cdef int _clear(Keyspace ks, object key, CObj o) except -1:
    return emit_zclear(ks, key, <ZSetObj>o)


cdef object _value(CObj o):
    return zset_items(<ZSetObj>o)


# -------------------------------------------------------------- snapshots ----
#
# zset = u64 lu, u64 ln, u8 listpack, varint n, n x (bytes member, dots (none:
#        removed), f64 value, u64 ru, u64 rn, u64 vu, u64 vn, varint k,
#        k x (u64 node, f64 sum, u64 last, f64 bsum, u64 blast), u64 rem)
#        (not in version 1)

cdef int _enc_zent(Writer w, ZEnt e, uint64_t rem) except -1:
    cdef ZCnt c
    w.put_bytes(e.member)
    _enc_dots(w, zv_dots(e))
    w.put_f64(zv_val(e))
    w.put_u64(e.ru)
    w.put_u64(e.rn)
    w.put_u64(zv_vu(e))
    w.put_u64(zv_vn(e))
    if not zv_cnt(e):
        w.put_varint(0)
    else:
        w.put_varint(len(<dict>zv_cnt(e)))
        for k, v in (<dict>zv_cnt(e)).items():
            c = <ZCnt>v
            w.put_u64(<uint64_t>k)
            w.put_f64(c.sum)
            w.put_u64(c.last)
            w.put_f64(c.bsum)
            w.put_u64(c.blast)
    w.put_u64(rem if rem > zv_rem(e) else zv_rem(e))
    return 0


cdef int _encode(Writer w, CObj o) except -1:
    cdef ZSetObj z = <ZSetObj>o
    cdef ZBulk b = (<ZIndex>z.idx).bulk if z.idx is not None else None
    w.put_u64(z.lu)
    w.put_u64(z.ln)
    w.put_u8(1 if z.idx is None or (<ZIndex>z.idx).lp else 0)
    w.put_varint(len(z.m) + (len(<dict>z.gone) if z.gone is not None else 0)
                 + (len(b.m) if b is not None else 0))
    for e in z.m.values():
        _enc_zent(w, <ZEnt>e, 0)
    if z.gone is not None:
        for e in (<dict>z.gone).values():
            _enc_zent(w, <ZEnt>e, 0)
    if b is not None:
        for e in b.m.values():
            _enc_zent(w, <ZEnt>e, b.rem)
    return 0


cdef ZEnt _dec_zent(Reader r):
    cdef ZEnt e = _new_ent(None)
    cdef uint64_t n, _i, node
    cdef ZCnt c
    cdef ZX x = zx(e)
    e.member = r.bytes_()
    e.dots = _dec_dots(r)
    x.val = r.f64()
    e.ru = r.u64()
    e.rn = r.u64()
    x.vu = r.u64()
    x.vn = r.u64()
    n = r.varint()
    if n:
        _check_count(r, n, 40)
        x.cnt = {}
        for _i in range(n):
            node = r.u64()
            c = ZCnt.__new__(ZCnt)
            c.sum = r.f64()
            c.last = r.u64()
            c.bsum = r.f64()
            c.blast = r.u64()
            x.cnt[node] = c
    x.rem = r.u64()
    if e.dots is not None:
        x.rem = 0
    if isnan(x.val) or (x.cnt is not None and _cnt_nan(<dict>x.cnt)):
        raise SnapshotError("corrupt snapshot (NaN sorted set score)")
    e.score = zscore(e)
    zcompact(e)
    return e


cdef bint _cnt_nan(dict cnt) except -1:
    for c in cnt.values():
        if isnan((<ZCnt>c).sum) or isnan((<ZCnt>c).bsum):
            return True
    return False


cdef CObj _decode(Reader r, int version):
    cdef ZSetObj z
    cdef ZEnt ze
    cdef uint64_t n, _i
    cdef uint8_t lp
    cdef dict gone = None
    cdef uint64_t mark = 0      # the removal mark most removed members without counters
    cdef Py_ssize_t votes = 0   # carry (a majority vote: a DEL's bulk is all of them)
    if version < 2:
        raise SnapshotError("corrupt snapshot (unknown object type %d)" % T_ZSET)
    z = new_zset()
    z.lu = r.u64()
    z.ln = r.u64()
    lp = r.u8()
    n = r.varint()
    _check_count(r, n, 51)
    for _i in range(n):
        ze = _dec_zent(r)
        if ze.member in z.m or (gone is not None and ze.member in gone):
            raise SnapshotError("corrupt snapshot (sorted set member twice)")
        if ze.dots is not None:
            _m_add(z, ze)
            index_of(z).insert(ze, ze.score)
        else:
            if gone is None:
                gone = {}
            gone[ze.member] = ze
            if zv_cnt(ze) is None and zv_rem(ze) != 0:
                if votes == 0:
                    mark = zv_rem(ze)
                votes += 1 if zv_rem(ze) == mark else -1
    if gone is not None:
        _dec_bulk(z, gone, mark)
    if z.idx is not None:
        (<ZIndex>z.idx).lp = lp != 0
    return z


cdef int _dec_bulk(ZSetObj z, dict gone, uint64_t top) except -1:
    """The removed members of a loaded sorted set: those without counters
    whose removal mark is top (the majority's: a DEL's, written from a bulk)
    become the index's bulk again, as the DEL left them (no ZX for the mark,
    dropped whole at GC); the rest go to gone."""
    cdef Py_ssize_t n = 0
    cdef dict bulk
    cdef ZBulk b
    cdef ZEnt e
    if top != 0:
        for v in gone.values():
            e = <ZEnt>v
            if zv_cnt(e) is None and zv_rem(e) == top:
                n += 1
    if n < 2:
        z.gone = gone
        return 0
    if n == len(gone):
        bulk = gone             # (all of them: the usual case, no copy)
        z.gone = None
    else:
        bulk = {}
        for m, v in gone.items():
            e = <ZEnt>v
            if zv_cnt(e) is None and zv_rem(e) == top:
                bulk[m] = e
        for m in bulk:
            del gone[m]
        z.gone = gone
    for v in bulk.values():
        e = <ZEnt>v
        e.x.rem = 0
        zcompact(e)
    b = ZBulk.__new__(ZBulk)
    b.m = bulk
    b.rem = top
    b.lazy = None           # (a Keyspace's list: zset_adopt, or a DEL adding to it)
    index_of(z).bulk = b
    return 0


cdef inline bint _zcnt_empty(ZCnt c) noexcept:
    return c.sum == 0.0 and c.last == 0 and c.bsum == 0.0 and c.blast == 0


cdef object _merge_zcnts(object xa, object xb, object base, Ctx ca, Ctx cb):
    cdef dict out = {}
    cdef ZCnt ea, eb, src, e
    cdef PyObject* p
    for node in _cnt_nodes(xa, xb):
        ea = (<dict>xa).get(node) if xa else None
        eb = (<dict>xb).get(node) if xb else None
        src = _cnt_src(ea, ea.last if ea is not None else 0, eb,
                       eb.last if eb is not None else 0, <uint64_t>node, ca, cb)
        e = ZCnt.__new__(ZCnt)
        e.sum = 0.0
        e.bsum = 0.0
        if src is not None:
            e.sum = src.sum
            e.last = src.last
        if base:
            p = PyDict_GetItem(<dict>base, node)
            if p != NULL:
                e.bsum = (<ZCnt>p).bsum
                e.blast = (<ZCnt>p).blast
        if not _zcnt_empty(e):
            out[node] = e
    return out if out else None


cdef inline bint _zreg_gt(ZEnt a, ZEnt b) noexcept:
    if ts_gt(a.ru, a.rn, b.ru, b.rn):
        return True
    return a.ru == b.ru and a.rn == b.rn and ts_gt(zv_vu(a), zv_vn(a), zv_vu(b), zv_vn(b))


cdef int _merge_zent(ZEnt x, ZEnt y, Ctx ca, Ctx cb) except -1:
    cdef bint y_wins = _zreg_gt(y, x)
    cdef object cnt = _merge_zcnts(zv_cnt(x), zv_cnt(y), zv_cnt(y) if y_wins else zv_cnt(x),
                                   ca, cb)
    x.dots = _merge_ent(zv_dots(x), zv_dots(y), ca, cb)
    if y_wins:
        _zset_reg(x, zv_val(y), y.ru, y.rn, zv_vu(y), zv_vn(y))
    if cnt is not None or x.x is not None:
        zx(x).cnt = cnt
    if zv_rem(y) > zv_rem(x):
        zx(x).rem = zv_rem(y)
    return 0


cdef bint _zent_touched(ZEnt e, Ctx other):
    cdef ZCnt c
    if _any_seen(zv_dots(e), other):
        return True
    if e.dots is None and other.applied(zv_vn(e), zv_vu(e)):
        return True
    if zv_cnt(e):
        for k, v in (<dict>zv_cnt(e)).items():
            c = <ZCnt>v
            if c.last and other.applied(<uint64_t>k, c.last):
                return True
    return False


cdef bint _filter_zent(ZEnt e, Ctx other):
    """One side's member: drop the dots and counter parts the other side
    saw; False if nothing is left that the other side has not seen (it
    dropped the removed member at GC)."""
    cdef dict out = {}
    cdef ZCnt c
    e.dots = _filter_ent(zv_dots(e), other)
    if zv_cnt(e):
        for k, v in (<dict>zv_cnt(e)).items():
            c = <ZCnt>v
            if c.last and other.applied(<uint64_t>k, c.last):
                c.sum = 0.0
                c.last = 0
            if not _zcnt_empty(c):
                out[k] = c
    if out or e.x is not None:
        zx(e).cnt = out if out else None
    if (e.dots is None and zv_cnt(e) is None
            and (zv_vu(e) == 0 or other.applied(zv_vn(e), zv_vu(e)))):
        return False
    return True


cdef int _zplace(ZSetObj o, ZEnt e, bint was, double old, uint64_t clock) except -1:
    """Put e where its dots and score put it (index and m, or gone)."""
    cdef bint now = e.dots is not None
    cdef bint moved
    e.score = zscore(e)
    moved = e.score != old or signbit(e.score) != signbit(old)
    if was and (not now or moved):
        (<ZIndex>o.idx).delete(old, e.member)
    if now:
        if not was or moved:
            index_of(o).insert(e, e.score)
        if not was:
            _m_add(o, e)
        if o.gone is not None:
            (<dict>o.gone).pop(e.member, None)
        if e.x is not None:
            e.x.rem = 0
    else:
        if was:
            _m_del(o, e.member)
        if o.gone is None:
            o.gone = {}
        o.gone[e.member] = e
        if zv_rem(e) == 0:
            # removed by the merge: the merged clock covers the removal
            zx(e).rem = clock
    if o.gone is not None and not o.gone:
        o.gone = None
    zcompact(e)
    return 0


cdef int _zdrop(ZSetObj o, ZEnt e, bint was) except -1:
    if was:
        (<ZIndex>o.idx).delete(e.score, e.member)
        _m_del(o, e.member)
    else:
        del o.gone[e.member]
        if not o.gone:
            o.gone = None
    return 0


cdef int _merge_zset(ZSetObj a, ZSetObj b, Ctx ca, Ctx cb, uint64_t clock) except -1:
    cdef ZEnt x, y
    cdef bint was
    cdef double old
    _unbulk_all(a)
    _unbulk_all(b)
    members = set(a.m)
    if a.gone:
        members.update(a.gone)
    members.update(b.m)
    if b.gone:
        members.update(b.gone)
    for m in sorted(members):
        x = find_ent(a, m)
        y = find_ent(b, m)
        if x is None:
            if _filter_zent(y, ca):
                _zplace(a, y, False, 0.0, clock)
            continue
        was = x.dots is not None
        old = x.score
        if y is None:
            if not _zent_touched(x, cb):
                continue
            if not _filter_zent(x, cb):
                _zdrop(a, x, was)
                continue
        else:
            _merge_zent(x, y, ca, cb)
        _zplace(a, x, was, old, clock)
    _bump(&a.lu, &a.ln, b.lu, b.ln)
    return 0


cdef bint _filter_zset(ZSetObj o, Ctx other, uint64_t clock) except -1:
    cdef ZEnt e
    cdef bint hit, was
    cdef double old
    cdef list ents
    hit = _filter_bulk(o, other)
    ents = list(o.m.values())
    if o.gone:
        ents.extend((<dict>o.gone).values())
    for x in ents:
        if _zent_touched(<ZEnt>x, other):
            hit = True
            break
    if not hit:
        return False
    for x in ents:
        e = <ZEnt>x
        if not _zent_touched(e, other):
            continue
        was = e.dots is not None
        old = e.score
        if not _filter_zent(e, other):
            _zdrop(o, e, was)
        else:
            _zplace(o, e, was, old, clock)
    return True


cdef bint _filter_bulk(ZSetObj o, Ctx other) except -1:
    """_filter_zset on the bulk's members, in place: one is touched only by
    its register write (no dots, no counters), and then nothing of it is
    left that the other side has not seen (it dropped it at GC): it goes.
    True if one went."""
    cdef ZBulk b
    cdef ZEnt e
    cdef list drop = None
    if o.idx is None or (<ZIndex>o.idx).bulk is None:
        return False
    b = (<ZIndex>o.idx).bulk
    for m, v in b.m.items():
        e = <ZEnt>v
        if other.applied(zv_vn(e), zv_vu(e)):
            if drop is None:
                drop = []
            drop.append(m)
    if drop is None:
        return False
    for m in drop:
        del b.m[m]
    if not b.m:
        (<ZIndex>o.idx).bulk = None
    return True


cdef int _merge(CObj a, CObj b, Ctx ca, Ctx cb, uint64_t clock) except -1:
    return _merge_zset(<ZSetObj>a, <ZSetObj>b, ca, cb, clock)


cdef bint _filter(CObj o, Ctx other, uint64_t clock) except -1:
    return _filter_zset(<ZSetObj>o, other, clock)


cdef TypeOps OPS
OPS.code = T_ZSET
OPS.name = b"zset"
OPS.ops[0] = OP_ZW
OPS.ops[1] = OP_ZREM
OPS.ops[2] = OP_ZCLEAR
OPS.new = _new
OPS.live = _live
OPS.keeps = _keeps
OPS.last_ts = _last_ts
OPS.apply = _apply
OPS.check = _check
OPS.clear = _clear
OPS.value = _value
OPS.describe = _describe
OPS.gc = _gc
OPS.encode = _encode
OPS.decode = _decode
OPS.merge = _merge
OPS.filter = _filter
register_type_ops(&OPS)
