# CRDT object classes (docs/crdt.md section 3). Plain C structs behind Python objects:
# no cdef methods (that would add a vtable pointer to every key) and no GC
# tracking (they never form reference cycles), so a string key costs a header
# and five fields. Their rules live in the type modules (t_string, t_set,
# t_hash, t_mv, t_list, t_zset); keyspace.pyx places them.
cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.object cimport PyObject
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from cpython.ref cimport Py_XDECREF, Py_XINCREF
from libc.stdint cimport int64_t, uint32_t, uint64_t, uintptr_t
from libc.string cimport memcpy, memmove

cdef enum:
    # type codes (< 32). A type module may define its own object class
    # (a CObj subclass in its .pxd) and a free code there: it calls
    # register_class, and register_type_ops refuses a code already taken
    T_STRING = 0
    T_LIST = 1
    T_SET = 2
    T_ZSET = 3
    T_HASH = 4
    T_MV = 16


@cython.final
@cython.no_gc
cdef class TTLReg:
    # LWW register of a key's expiry: at = unix ms, 0 = no expiry
    cdef public int64_t at
    cdef public uint64_t uuid
    cdef public uint64_t node


@cython.no_gc
cdef class Dot:
    # the name of one write event (node, uuid); Ver adds the value it wrote
    cdef public uint64_t node
    cdef public uint64_t uuid


@cython.final
@cython.no_gc
cdef class CntEntry:
    # one origin's contribution to a counter, and what the current register
    # write had observed of it (the "base" of docs/crdt.md section 3.1)
    cdef public int64_t sum
    cdef public uint64_t last
    cdef public int64_t bsum
    cdef public uint64_t blast
    cdef public uint64_t node       # the origin (a string's entries; 0 in hash field counters)


@cython.final
@cython.no_gc
cdef class Ver(Dot):
    # a value written at dot (node, uuid); its ts is (uuid, node)
    cdef public object val


@cython.no_gc
cdef class CObj:
    cdef public object ttl          # None | TTLReg
    # eviction (constdb/_core/evict.pyx): the access clock (ms, mod 2**32) or,
    # under an LFU policy, Redis's LFU word (minutes << 8 | log counter); and
    # the estimated bytes the keyspace counts for this object (0: not counted)
    cdef public uint32_t lru
    cdef public uint32_t msz


@cython.final
@cython.no_gc
cdef class StrObj(CObj):
    # LWW register (value, (uuid, node)) + observed-reset counter entries.
    # ttl None means the TTL register is (no expiry, (uuid, node)) of the register.
    # The value is the word vw, read and written only through sv_get / sv_set /
    # sv_raw below: None; a bytes value of at most 7 bytes inline; a value in
    # the object's own block (from the word's byte 4, object offset 44, on
    # over _node and _cnt and into the tail past its 64 bytes that
    # new_str_for made); a buffer the object owns (a uint32 length and the
    # bytes, no object header); or an owned PyObject* (a bytearray or a
    # BitVal: bitval.pyx). Python code reads and writes it as `val`.
    # The register's node is _node, but in a tail value's word (its 15-bit
    # index in a process-local table: sv_node_index), and the counter
    # entries (origin -> CntEntry) are _cnt: NULL, one CntEntry (a single
    # origin, usually this node: a local INCR touches no dict) or a dict of
    # every origin's; an object with counter entries holds no tail value.
    # Read them only through str_node / str_set_node / str_cnt / str_nocnt /
    # str_set_cnt (Python: the properties node and cnt), and the counter as
    # one map with t_string.str_cnts / str_set_cnts. 64 bytes in all (a
    # pymalloc size class) plus the tail: a value of up to 20 bytes costs no
    # block of its own, and a 100-byte value's object is one 144-byte block.
    cdef public uint64_t uuid
    cdef uint64_t vw
    cdef uint64_t _node
    cdef PyObject* _cnt             # NULL | CntEntry | {node: CntEntry}


@cython.final
@cython.no_gc
cdef class SetObj(CObj):
    cdef public dict m              # member -> Dot | list[Dot]
    # SPOP / SRANDMEMBER's random access: members of pick_m (m when it was
    # built) in a list; a cache that may hold removed members (checked on use)
    # and is dropped when a member is added
    cdef list pick
    cdef dict pick_m
    cdef public uint64_t lu         # newest effect applied: (lu, ln)
    cdef public uint64_t ln


@cython.final
@cython.no_gc
cdef class HashObj(CObj):
    cdef public dict f              # field -> Ver | list[Ver] (concurrent writes)
    cdef public uint64_t lu
    cdef public uint64_t ln
    cdef public object hc           # None | {field: HCnt}: fields HINCRBY touched (kept after HDEL)
    cdef list pick                  # HRANDFIELD's random access to f (as SetObj.pick)
    cdef dict pick_f


@cython.final
@cython.no_gc
cdef class HCnt:
    # the counter part of a hash field (docs/crdt.md section 3.1 rule, t_hash.pyx): each
    # origin's CntEntry (sum, last) and, in bsum/blast, what the newest
    # base-writing effect on the field (ts (ru, rn)) had observed of it
    cdef public dict cnt            # origin -> CntEntry
    cdef public uint64_t ru
    cdef public uint64_t rn


@cython.final
@cython.no_gc
cdef class MVObj(CObj):
    cdef public list vers           # list[Ver]
    cdef public uint64_t lu
    cdef public uint64_t ln


@cython.final
@cython.no_gc
cdef class LElem:
    # one element of a list: its id is its dot (node, uuid)
    cdef public uint64_t node
    cdef public uint64_t uuid
    cdef public object val          # bytes; None once removed
    cdef public uint64_t vu         # ts (vu, vn) of val (LWW for LSET); the id's until set
    cdef public uint64_t vn
    cdef public uint64_t rem        # uuid of the effect that removed it; 0 = live
    cdef public uint64_t an         # the id it was inserted after, (0, 0) = the head
    cdef public uint64_t au         # (kept for a state merge to place it)
    cdef void* blk                  # its LBlock (borrowed: blocks own elements); NULL = not placed
    cdef public unsigned char st    # 0 ghost (named before its insert arrived), 1 waits for its
    #                                 anchor, 2 placed


@cython.final
@cython.no_gc
cdef class LBlock:
    # a run of consecutive elements of a list's sequence: LElem objects (items), or packed
    # (pbuf: live elements of one origin with increasing uuids, values in one buffer)
    cdef public list items          # LElem in sequence order (reversed if rev); None if packed
    cdef public Py_ssize_t live     # live elements in items (packed: the elements)
    cdef public Py_ssize_t pos      # index in ListObj.blocks when last numbered (a hint)
    cdef public bint rev            # items kept reversed (only blocks with no live element)
    cdef public bytearray pbuf      # packed entries in uuid order (t_list.pyx); None = items
    cdef public uint64_t node       # packed: the origin of every element
    cdef public uint64_t ulo        # packed: the first entry's uuid (the smallest)
    cdef public uint64_t uhi        # packed: the last entry's uuid (the largest)
    cdef public uint64_t an         # packed: the anchor (an, au) of the first element in
    cdef public uint64_t au         # sequence order (chain) or of every element (same)
    cdef public bint same           # packed: sequence order is newest first, every element
    #                                 after (an, au) (LPUSH); else oldest first, a chain
    cdef public Py_ssize_t dn       # dead packed: its removed entries (pbuf: (uuid, rem) each,
    #                                 in sequence order, reversed if rev); 0 otherwise


@cython.final
@cython.no_gc
cdef class ListObj(CObj):
    # RGA sequence (docs/crdt.md section 3.5; logic in t_list.pyx): blocks of elements in
    # sequence order, removed ones included until GC
    cdef public list blocks         # [LBlock]
    cdef public dict ids            # uuid -> LElem | [LElem]: every element known here
    cdef public object pend         # None | {anchor uuid: [(LElem, anchor node)]}
    cdef public Py_ssize_t n        # live elements (LLEN)
    cdef public uint64_t lu         # newest effect applied: (lu, ln)
    cdef public uint64_t ln
    cdef public dict pidx           # None | {origin: [packed LBlock by ulo]} (disjoint ranges)
    cdef public Py_ssize_t pbytes   # bytes held by packed blocks (the memory count)
    cdef public dict didx           # None | {origin: [dead packed LBlock by ulo]} (disjoint)


@cython.final
@cython.no_gc
cdef class ZCnt:
    # one origin's ZINCRBY contribution to a member's score, and what the
    # member's register write had observed of it (as CntEntry, in doubles)
    cdef public double sum
    cdef public uint64_t last
    cdef public double bsum
    cdef public uint64_t blast


@cython.final
@cython.no_gc
cdef class ZX:
    # the part of a sorted-set member most members never need (t_zset.pyx):
    # kept only while it differs from what ZEnt implies without it
    cdef public double val          # score register (ZEnt.score when x is None)
    cdef public uint64_t vu         # ZINCRBY's rebase ts ((ru, rn) when x is None)
    cdef public uint64_t vn
    cdef public object cnt          # None | {origin: ZCnt}
    cdef public uint64_t rem        # uuid of the removal that took its last dot; 0 = present


@cython.final
@cython.no_gc
cdef class ZEnt:
    # one member of a sorted set (t_zset.pyx). 64 bytes: the register value,
    # ZINCRBY's rebase ts, counters and the removal mark live in x, None for a
    # member only ZADD wrote (the usual one); its one dot is then most often the
    # register's own ts, and dots holds t_zset's marker for that instead of a Dot.
    # Read them through t_zset's zv_* functions.
    cdef public bytes member        # first field: t_zset.pxd's ZENT_MEMBER reads it at offset 16
    cdef public double score        # the visible score (derived from the register and counters)
    cdef public uint64_t ru         # score register written at ts (ru, rn) and
    cdef public uint64_t rn         # rebased by ZINCRBY at (vu, vn); LWW on (ru, rn, vu, vn)
    cdef public object dots         # Dot | [Dot] | t_zset's ZDOT_REG ((rn, ru)): the adds that
    #                                 keep it; None when removed
    cdef public ZX x                # None | the rarely set part (above)


@cython.final
@cython.no_gc
cdef class ZSetObj(CObj):
    # OR-Set of members with an LWW + counter score each (docs/crdt.md section 3.6; logic in
    # t_zset.pyx)
    cdef public dict m              # member -> ZEnt: present members
    cdef public object idx          # ZIndex: present members ordered by (score, member)
    cdef public object gone         # None | {member: ZEnt}: removed members' state, kept until GC
    cdef public uint64_t lu
    cdef public uint64_t ln
    cdef public Py_ssize_t mb       # bytes_block of every key of m, kept by t_zset as m changes
    #                                 (keyspace.mem_est; mem_recount checks it)


cdef inline Py_ssize_t bytes_block(bytes b) noexcept:
    """The bytes pymalloc (or malloc) holds for b: 33 bytes of header + its
    length, rounded up to 16; 0 for CPython's shared empty and 1-byte ones."""
    cdef Py_ssize_t n = PyBytes_GET_SIZE(b)
    if n <= 1:
        return 0
    n += 33
    return (n + 15) & ~15 if n <= 512 else n + 16


# Float counter entries (INCRBYFLOAT, HINCRBYFLOAT: docs/crdt.md section 3.7) sit in the
# same maps as the integer ones (a string's cnt, a field's HCnt.cnt), keyed by
# their origin with the top bit set (origins are 63-bit): their sum and bsum hold the
# bits of a double, that origin's running total of its increments
cdef inline bint cnt_is_float(uint64_t k) noexcept:
    return (k >> 63) != 0


cdef inline uint64_t cnt_origin(uint64_t k) noexcept:
    return k & 0x7FFFFFFFFFFFFFFFULL


cdef inline uint64_t float_key(uint64_t origin) noexcept:
    return origin | 0x8000000000000000ULL


cdef object with_floats(object v, uint64_t int_delta, list fl)
cdef long double float_total(int64_t bits)
cdef int64_t float_bits(long double x)
cdef int check_float_bits(int64_t bits) except -1
cdef int obj_type(CObj o) noexcept
cdef int register_class(type cls, int code) except -1
cdef bint ts_gt(uint64_t u1, uint64_t n1, uint64_t u2, uint64_t n2) noexcept
cdef StrObj new_str()
cdef StrObj new_str_for(Py_ssize_t n)
cdef SetObj new_set()
cdef HashObj new_hash()
cdef MVObj new_mv()
cdef ListObj new_list()
cdef ZSetObj new_zset()
cdef object hash_val(HashObj o, object field, object ent)
cdef Dot new_dot(uint64_t node, uint64_t uuid)
cdef Ver new_ver(object val, uint64_t uuid, uint64_t node)
cdef Ver best_ver(object entry)
cdef object draw(dict m, list p, bint remove)


# ------------------------------------------------------------- a string's value ----
# (StrObj.vw: see StrObj.) vw is at object offset 40, _node at 48 and _cnt
# at 56; the object's block may go on past its 64 bytes (a tail:
# new_str_for). The word's low bits tell what it holds:
#   xx1  a value of at most 7 bytes inline (byte 0 is length << 1 | 1; bytes
#        1-7 the data), in an object with no tail;
#   100  a value in the object's own block (a "tail value"): bits 3-11 its
#        length, bits 12-16 the tail's bytes / 16, bits 17-31 the register
#        node's index (sv_node_at); the data starts at the word's byte 4
#        (object offset 44) and runs on over _node and _cnt into the tail, so
#        it holds 20 + tail bytes. Any plain value that fits is written there
#        unless the object has counter entries or the node table is full;
#   010  a buffer of this module's (PyMem_Malloc: a uint32 length, then the
#        bytes), every other plain value;
#   000  an owned PyObject* (a bytearray or BitVal, or a bytes object too long
#        for a uint32 length); None if the pointer part is 0.
# In a buffer, object or None word the top 16 bits keep the tail's bytes (0
# for an object with none), so the object's real size is known whatever it
# holds now: user-space pointers are below 2**47 (below 2**48 is checked where a
# word is made), and every pointer read masks those bits off. Allocations are
# 16-aligned, so a pointer's low bits are free for the tag. (Little-endian,
# as the inline form always assumed.)
cdef enum:
    SV_BUF = 2      # the tag of a buffer word
    SV_TAIL = 4     # the tag of a tail value
    SV_HDR = 4      # a buffer's length field; also where a tail value starts in vw
    SV_FIXED = 64   # the object's block without a tail (tp_basicsize)
    SV_VW = 40      # vw's offset in the object
    SV_TCAP = 20    # a tail value's room in the fixed block (64 - 40 - 4)
    SV_TAIL_MAX = 448   # the largest tail: a 512-byte block, pymalloc's largest


# the register nodes of tail values (objects.pyx): a node's index (-1 once
# the table is full: 32768 nodes), the node at an index, and moving a tail
# value out of the object's block (to inline or a buffer)
cdef int sv_node_index(uint64_t node) noexcept
cdef uint64_t sv_node_at(uint32_t i) noexcept
cdef int sv_untail(StrObj o) except -1


cdef inline uint64_t _sv_ptr(uint64_t w) noexcept:
    # the pointer of a buffer or object word (tag and tail size masked off)
    return w & 0x0000FFFFFFFFFFF8ULL


cdef inline char* _sv_bp(uint64_t w) noexcept:
    return <char*><uintptr_t>_sv_ptr(w)


cdef inline uint64_t _sv_hi(uint64_t w) noexcept:
    # the tail's bytes of a word, placed as a buffer, object or None word keeps them
    if w & 1:
        return 0
    if (w & 7) == SV_TAIL:
        return ((w >> 12) & 0x1F) << 52
    return w & 0xFFFF000000000000ULL


cdef inline Py_ssize_t sv_tail(StrObj o) noexcept:
    """The bytes of o's block past its fixed 64 (0: no tail)."""
    return <Py_ssize_t>(_sv_hi(o.vw) >> 48)


cdef inline Py_ssize_t sv_tail_for(Py_ssize_t n) noexcept:
    """The tail new_str_for gives an object made for a value of n bytes: the
    block is 44 + n rounded up to pymalloc's 16-byte class (so the value fills
    it); 0 for a value that fits the fixed block (at most 20) or one too long
    for a 512-byte block."""
    if n <= SV_TCAP or n > SV_TAIL_MAX + SV_TCAP:
        return 0
    return ((SV_VW + SV_HDR + n + 15) & ~15) - SV_FIXED


cdef inline uint64_t str_node(StrObj o) noexcept:
    """The register's node."""
    if (o.vw & 7) == SV_TAIL:
        return sv_node_at(<uint32_t>((o.vw >> 17) & 0x7FFF))
    return o._node


cdef inline int str_set_node(StrObj o, uint64_t n) except -1:
    cdef int i
    if (o.vw & 7) == SV_TAIL:
        i = sv_node_index(n)
        if i >= 0:
            o.vw = (o.vw & ~(<uint64_t>0x7FFF << 17)) | (<uint64_t>i << 17)
            return 0
        sv_untail(o)
    o._node = n
    return 0


cdef inline bint str_nocnt(StrObj o) noexcept:
    """No counter entries (cnt is None)."""
    return (o.vw & 7) == SV_TAIL or o._cnt == NULL


cdef inline object str_cnt(StrObj o):
    """The counter entries: None, a CntEntry or a dict."""
    if (o.vw & 7) == SV_TAIL or o._cnt == NULL:
        return None
    return <object>o._cnt


cdef inline int str_set_cnt(StrObj o, object c) except -1:
    """Replace the counter entries (None, a CntEntry or a dict); a tail
    value moves out of the block first (_cnt shares its bytes)."""
    cdef PyObject* old
    if c is None:
        if (o.vw & 7) != SV_TAIL and o._cnt != NULL:
            old = o._cnt
            o._cnt = NULL
            Py_XDECREF(old)
        return 0
    if (o.vw & 7) == SV_TAIL:
        sv_untail(o)
    old = o._cnt
    Py_XINCREF(<PyObject*>c)
    o._cnt = <PyObject*>c
    Py_XDECREF(old)
    return 0


cdef inline bint sv_inline(StrObj o) noexcept:
    return (o.vw & 1) != 0


cdef inline bint sv_buf(StrObj o) noexcept:
    return (o.vw & 7) == SV_BUF


cdef inline bint sv_intail(StrObj o) noexcept:
    return (o.vw & 7) == SV_TAIL


cdef inline object sv_get(StrObj o):
    """The value as a Python object (None, bytes, bytearray or BitVal); an
    inline, tail or buffer value comes as a new bytes object (read it in
    place through sv_raw where a pointer will do)."""
    cdef uint64_t w = o.vw
    cdef char* p
    if w & 1:
        return PyBytes_FromStringAndSize((<char*>&o.vw) + 1, <Py_ssize_t>((w >> 1) & 7))
    if (w & 7) == SV_TAIL:
        return PyBytes_FromStringAndSize((<char*>&o.vw) + SV_HDR,
                                         <Py_ssize_t>((w >> 3) & 0x1FF))
    if _sv_ptr(w) == 0:
        return None
    if (w & 7) == SV_BUF:
        p = _sv_bp(w)
        return PyBytes_FromStringAndSize(p + SV_HDR, <Py_ssize_t>(<uint32_t*>p)[0])
    return <object><PyObject*><uintptr_t>_sv_ptr(w)


cdef inline const char* sv_raw(StrObj o, Py_ssize_t* n) noexcept:
    """The bytes of a plain value in place (NULL, 0 for None); for a
    bytearray or BitVal value: NULL and -1 (read them through sv_get)."""
    cdef uint64_t w = o.vw
    cdef object v
    cdef char* p
    if w & 1:
        n[0] = <Py_ssize_t>((w >> 1) & 7)
        return (<char*>&o.vw) + 1
    if (w & 7) == SV_TAIL:
        n[0] = <Py_ssize_t>((w >> 3) & 0x1FF)
        return (<char*>&o.vw) + SV_HDR
    if _sv_ptr(w) == 0:
        n[0] = 0
        return NULL
    if (w & 7) == SV_BUF:
        p = _sv_bp(w)
        n[0] = <Py_ssize_t>(<uint32_t*>p)[0]
        return p + SV_HDR
    v = <object><PyObject*><uintptr_t>_sv_ptr(w)
    if type(v) is bytes:
        n[0] = PyBytes_GET_SIZE(v)
        return PyBytes_AS_STRING(v)
    n[0] = -1
    return NULL


cdef inline bint sv_none(StrObj o) noexcept:
    return (o.vw & 0x0000FFFFFFFFFFFFULL) == 0


cdef inline bint sv_plain(StrObj o) noexcept:
    """The value is None, inline, in the tail, a buffer or bytes (not a bit
    commands' value)."""
    return ((o.vw & 7) != 0 or _sv_ptr(o.vw) == 0
            or type(<object><PyObject*><uintptr_t>_sv_ptr(o.vw)) is bytes)


cdef inline Py_ssize_t sv_block(Py_ssize_t m) noexcept:
    """The bytes an allocation of m bytes takes: pymalloc's 16-byte classes
    up to 512, glibc's 8-byte header rounded to 16 above."""
    return (m + 15) & ~15 if m <= 512 else (m + 8 + 15) & ~15


cdef inline Py_ssize_t sv_alloc(StrObj o) noexcept:
    """The bytes the value takes outside the object's block: 0 for None, an
    inline or a tail value, a buffer's block, -1 for a Python object (measure
    sv_get's). The block itself is SV_FIXED + sv_tail(o)."""
    cdef uint64_t w = o.vw
    if (w & 1) or (w & 7) == SV_TAIL or _sv_ptr(w) == 0:
        return 0
    if (w & 7) == SV_BUF:
        return sv_block(SV_HDR + <Py_ssize_t>(<uint32_t*>_sv_bp(w))[0])
    return -1


cdef inline void sv_drop(uint64_t w) noexcept:
    """Release what the word w owns (a buffer or an object reference)."""
    if (w & 1) or (w & 7) == SV_TAIL or _sv_ptr(w) == 0:
        return
    if (w & 7) == SV_BUF:
        PyMem_Free(_sv_bp(w))
    else:
        Py_XDECREF(<PyObject*><uintptr_t>_sv_ptr(w))


cdef inline int _sv_check_ptr(const void* b) except -1:
    # a pointer must leave the word's top 16 bits to the tail's size
    if (<uintptr_t>b) >> 48:
        raise SystemError("pointer above 2**48: StrObj.vw cannot hold it")
    return 0


cdef inline uint64_t _sv_word(const char* p, Py_ssize_t n, uint64_t hi) except 0:
    # a word holding n bytes at p outside the block: inline if the object
    # has no tail (hi 0) and n is at most 7, else a new buffer (never 0)
    cdef uint64_t w = 0
    cdef char* b
    if hi == 0 and n <= 7:
        memcpy((<char*>&w) + 1, p, n)
        (<unsigned char*>&w)[0] = <unsigned char>((n << 1) | 1)
        return w
    b = <char*>PyMem_Malloc(SV_HDR + n)
    if b == NULL:
        raise MemoryError()
    if (<uintptr_t>b) >> 48:
        PyMem_Free(b)
        _sv_check_ptr(b)
    (<uint32_t*>b)[0] = <uint32_t>n
    memcpy(b + SV_HDR, p, n)
    return <uint64_t><uintptr_t>b | SV_BUF | hi


cdef inline void _sv_fields(StrObj o, uint64_t old) noexcept:
    # o's word leaves a tail value (old): _node and _cnt are fields again
    if (old & 7) == SV_TAIL:
        o._node = sv_node_at(<uint32_t>((old >> 17) & 0x7FFF))
        o._cnt = NULL


cdef inline int sv_set_raw(StrObj o, const char* p, Py_ssize_t n) except -1:
    """Set a plain value from n bytes at p: a tail value if it fits the
    block (and the object has no counter entries), else inline up to 7 (an
    object with no tail), else a buffer (one of the same length is
    rewritten in place). p may point into o's value."""
    cdef uint64_t old = o.vw
    cdef uint64_t hi = _sv_hi(old)
    cdef uint64_t w
    cdef uint32_t hdr
    cdef int i = -1
    if n <= <Py_ssize_t>(hi >> 48) + SV_TCAP:
        if (old & 7) == SV_TAIL:
            i = <int>((old >> 17) & 0x7FFF)
        elif o._cnt == NULL:
            i = sv_node_index(o._node)
        if i >= 0:
            memmove((<char*>&o.vw) + SV_HDR, p, n)
            hdr = <uint32_t>(SV_TAIL | (n << 3) | ((hi >> 52) << 12) | (<uint64_t>i << 17))
            memcpy(&o.vw, &hdr, 4)
            sv_drop(old)
            return 0
    if (hi != 0 or n > 7) and (old & 7) == SV_BUF and \
            <Py_ssize_t>(<uint32_t*>_sv_bp(old))[0] == n:
        memmove(_sv_bp(old) + SV_HDR, p, n)
        return 0
    # (the new word copies p before the old one is dropped)
    w = _sv_word(p, n, hi)
    _sv_fields(o, old)
    o.vw = w
    sv_drop(old)
    return 0


cdef inline int sv_set(StrObj o, object v) except -1:
    """Set the value (None, bytes, bytearray or BitVal); bytes are kept in
    the tail, inline (at most 7) or copied into a buffer of the object's own."""
    cdef uint64_t old = o.vw
    if type(v) is bytes and PyBytes_GET_SIZE(v) <= 0xFFFFFFFF:
        return sv_set_raw(o, PyBytes_AS_STRING(v), PyBytes_GET_SIZE(v))
    if v is None:
        _sv_fields(o, old)
        o.vw = _sv_hi(old)
    else:
        _sv_check_ptr(<PyObject*>v)
        Py_XINCREF(<PyObject*>v)
        _sv_fields(o, old)
        o.vw = <uint64_t><uintptr_t><PyObject*>v | _sv_hi(old)
    sv_drop(old)
    return 0
