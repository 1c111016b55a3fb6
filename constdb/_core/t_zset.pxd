# The sorted set CRDT (docs/crdt.md section 3.6): members as an OR-Set, scores as an LWW
# register plus an observed-reset counter, ordered by a skip list. See t_zset.pyx.
from libc.stdint cimport uint64_t

from constdb._core.codec cimport WBuf
from constdb._core.keyspace cimport Keyspace
from constdb._core.objects cimport ZEnt, ZSetObj, ZX

cdef enum:
    # (record ops and ZW_* flags: ops.pxd)
    ZSKIPLIST_MAXLEVEL = 32


cdef struct ZNode


cdef struct ZLevel:
    ZNode* forward
    Py_ssize_t span


cdef struct ZNode:
    # 32 bytes with one level (PyMem_Malloc: pymalloc's 32-byte class), 16 a level more
    void* ent                       # ZEnt (a strong reference)
    double score
    ZLevel level[1]                 # allocated with as many levels as the node has; the
    #                                 first level's span is always 1 and its field holds
    #                                 the back link instead (zn_back, zn_set_back)


cdef inline ZNode* zn_back(ZNode* x) noexcept:
    """The node before x (NULL: x is the first)."""
    return <ZNode*>x.level[0].span


cdef inline void zn_set_back(ZNode* x, ZNode* b) noexcept:
    x.level[0].span = <Py_ssize_t>b


cdef inline Py_ssize_t zn_span(ZNode* x, int i) noexcept:
    """The span of x's level i (level 0 spans one node)."""
    return 1 if i == 0 else x.level[i].span


cdef extern from *:
    """
    /* a skip list node's member: ZEnt.member, its first field (objects.pxd) */
    #define ZENT_MEMBER(e) (*(PyObject**)((char*)(e) + sizeof(PyObject)))
    #define ZN_MP(x) (PyBytes_AS_STRING(ZENT_MEMBER((x)->ent)))
    #define ZN_ML(x) (PyBytes_GET_SIZE(ZENT_MEMBER((x)->ent)))
    """
    const char* zn_mp "ZN_MP"(ZNode* x) noexcept
    Py_ssize_t zn_ml "ZN_ML"(ZNode* x) noexcept


cdef struct ZRange:
    double min
    double max
    bint minex
    bint maxex


cdef struct ZLexRange:
    const char* min                 # NULL with mininf/maxinf set: "-" or "+"
    Py_ssize_t minlen
    const char* max
    Py_ssize_t maxlen
    int mininf                      # -1: "-" (below all), 1: "+" (above all), 0: a string
    int maxinf
    bint minex
    bint maxex


cdef class ZBulk:
    # members a DEL removed together (t_zset.pyx, "Bulk removal"): none holds
    # counters, every one's dots are None, and one removal mark stands for all
    cdef dict m                     # member -> ZEnt
    cdef uint64_t rem               # the (largest) removal's uuid: GC drops them all past it
    cdef list lazy                  # Keyspace.lazy: where GC hands m to be freed in slices


cdef class ZIndex:
    # Redis's zskiplist: the present members ordered by (score, member), with
    # spans for ranks
    cdef ZNode* header
    cdef ZNode* tail
    cdef Py_ssize_t length
    cdef int level
    cdef public bint lp             # Redis would still hold it as a listpack (see cmd_zsets)
    cdef ZBulk bulk                 # None | the members whole-set DELs removed (kept until GC)

    cdef ZNode* insert(self, ZEnt e, double score) except NULL
    cdef ZNode* _seek(self, double score, const char* mp, Py_ssize_t ml,
                      ZNode** update) noexcept
    cdef int _unlink(self, ZNode* x, ZNode** update) noexcept
    cdef void _link(self, ZNode* n, int level) noexcept
    cdef bint delete(self, double score, bytes member) except -1
    cdef int rescore(self, ZEnt e, double old, double score) except -1
    cdef Py_ssize_t rank(self, double score, bytes member) noexcept
    cdef ZNode* by_rank(self, Py_ssize_t rank) noexcept
    cdef ZNode* first(self) noexcept
    cdef bint _in_range(self, ZRange* r) noexcept
    cdef bint _in_lex(self, ZLexRange* r) noexcept
    cdef ZNode* first_in_range(self, ZRange* r) noexcept
    cdef ZNode* last_in_range(self, ZRange* r) noexcept
    cdef ZNode* first_in_lex(self, ZLexRange* r) noexcept
    cdef ZNode* last_in_lex(self, ZLexRange* r) noexcept
    cdef ZIndex detach(self)


cdef ZIndex index_of(ZSetObj o)
cdef bint gte_min(double v, ZRange* r) noexcept
cdef bint lte_max(double v, ZRange* r) noexcept
cdef bint lex_gte_min(ZNode* x, ZLexRange* r) noexcept
cdef bint lex_lte_max(ZNode* x, ZLexRange* r) noexcept
cdef bint parse_score(bytes b, double* out) noexcept
cdef bint parse_range(bytes a, bytes b, ZRange* r) noexcept
cdef bint parse_lex(bytes a, bytes b, ZLexRange* r) noexcept
cdef int reply_score(WBuf out, double v) except -1
cdef bytes format_score(double v)
cdef double zscore(ZEnt e)
cdef object zv_cnt(ZEnt e)
cdef ZEnt find_ent(ZSetObj o, bytes member)

# local effects: draw a uuid, apply through the shared rule, log the record
cdef ZSetObj emit_zadd(Keyspace ks, object key, ZSetObj o, bytes member, double score)
cdef int emit_zscore(Keyspace ks, object key, ZSetObj o, ZEnt e, double score) except -1
cdef ZSetObj emit_zincr(Keyspace ks, object key, ZSetObj o, bytes member, double delta,
                        double newscore)
cdef int emit_zrem(Keyspace ks, object key, ZSetObj o, list members) except -1
cdef int emit_zclear(Keyspace ks, object key, ZSetObj o) except -1
cdef int copy_zset(Keyspace ks, object dst, ZSetObj o) except -1
cdef int zset_adopt(Keyspace ks, ZSetObj o) except -1
cdef int store_zset(Keyspace ks, object dst, dict res, bint lp) except -1
