# HyperLogLog (docs/crdt.md section 3.1.1): a string value in Redis's HLL format, kept
# as a register (the bytes some write put there) plus the register updates
# (PFADD, PFMERGE) and cache writes (PFCOUNT) made since, replayed in ts
# order. See t_hll.pyx.
cimport cython
from libc.stdint cimport uint8_t, uint64_t

from constdb._core.keyspace cimport Keyspace
from constdb._core.objects cimport CObj

cdef enum:
    T_HLL = 20            # type code (TYPE answers "string")

    # HEnt kinds / OP_HLLADD flags
    HA_DENSE = 1          # convert to dense before the updates (PFMERGE of a dense source)
    HA_INVAL = 2          # invalidate the cached cardinality even when nothing changed
    HA_CACHE = 128        # (HEnt only) a PFCOUNT cache write

    HLL_REGISTERS = 16384
    HLL_HDR = 16
    HLL_DENSE_SIZE = 12304
    HLL_MAX_COUNT = 51    # the largest register value a hash can give (Q + 1)


@cython.final
@cython.no_gc
cdef class HEnt:
    # one update of an HLL at ts (u, n) not folded into the register yet
    cdef public uint64_t u
    cdef public uint64_t n
    cdef public uint8_t kind      # HA_* flags, or HA_CACHE
    cdef public bytes pairs       # n x (u16 index little endian, u8 value), in order


@cython.final
@cython.no_gc
cdef class HllObj(CObj):
    cdef public object base       # bytes | None: the register's value (None: no HLL)
    cdef public uint64_t ru       # the register's ts (0, 0: never written)
    cdef public uint64_t rn
    cdef public list pend         # None | [HEnt] sorted by ts, all newer than the register
    cdef public bytearray cur     # the visible value (base + pend replayed); None: absent
    cdef public uint64_t lu       # ts of the newest write held
    cdef public uint64_t ln


cdef object hll_bytes(HllObj o)
cdef bint hll_valid(const unsigned char* p, Py_ssize_t n) noexcept
cdef int hll_convert(Keyspace ks, object key, bytes val) except -1

# the C primitives (hll_c.h) and the helpers cmd_hll.pyx uses
cdef extern from "hll_c.h":
    uint64_t ch_murmur64a(const unsigned char* data, long length, uint64_t seed) nogil
    int ch_sset(uint8_t* s, long* plen, long maxbytes, long index, int count) nogil
    int ch_to_dense(const uint8_t* s, long length, uint8_t* out) nogil
    int ch_histo(const uint8_t* s, long length, int* h) nogil
    int ch_patlen(const unsigned char* ele, long n, long* reg) nogil
    unsigned ch_dget(const uint8_t* r, long i) nogil
    void ch_dset(uint8_t* r, long i, unsigned v) nogil
    int ch_sget(const uint8_t* s, long length, long index) nogil
    void ch_histo_raw(const uint8_t* regs, int* h) nogil
    uint64_t ch_estimate(const int* h) nogil
    int ch_merge(uint8_t* mx, const uint8_t* s, long length) nogil
    void ch_dense_max(uint8_t* regs, const uint8_t* mx) nogil

cdef bytearray _new_sparse()
cdef bytearray _to_dense(bytearray s)
cdef bytearray _set_pairs(bytearray cur, const uint8_t* pairs, Py_ssize_t n, int* changed)
cdef int hll_count(const uint8_t* s, Py_ssize_t n, uint64_t* out) noexcept
cdef bint cache_valid(const uint8_t* s) noexcept
cdef uint64_t cache_get(const uint8_t* s) noexcept
cdef void cache_put(uint8_t* s, uint64_t v) noexcept
cdef HllObj hll_find(Keyspace ks, object key)
cdef int hll_save_base(Keyspace ks, HllObj o) except -1
cdef int emit_ent(Keyspace ks, object key, HllObj o, uint8_t kind, const uint8_t* pairs,
                  Py_ssize_t n, bint applied) except -1


cdef inline bint hll_folds(Keyspace ks, HllObj o) noexcept:
    # a local update is folded as it is made (causally stable at once: a node
    # alone, docs/crdt.md section 3.1.1) when nothing is pending before it
    return ks.solo and o.pend is None
