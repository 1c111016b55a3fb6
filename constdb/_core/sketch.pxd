# W-TinyLFU's frequency sketch (constdb/_core/evict.pyx, docs/internals.md
# "Memory and eviction"): a count-min sketch of 4 rows of 4-bit counters
# (two a byte, as Caffeine's) over a key's hash, with TinyLFU's aging: once 10 x width
# increments were added, every counter is halved. Header-only: keyspace.pyx
# increments it on every lookup (hits and misses) while the policy is
# allkeys-wtinylfu; evict.pyx reads it.
from libc.stdint cimport uint8_t, uint64_t
from libc.stdlib cimport calloc, free

cdef extern from *:
    """
    /* a 64-bit hash mapped onto [0, n) by multiplying (Lemire's fastrange):
       the high half of x * n, so the width need not be a power of two */
    static inline uint64_t cdb_sk_range(uint64_t x, uint64_t n) {
        return (uint64_t)(((unsigned __int128)x * n) >> 64);
    }
    """
    uint64_t cdb_sk_range(uint64_t x, uint64_t n) noexcept nogil

ctypedef struct Sketch:
    uint8_t* c          # 4 x width 4-bit counters (low nibble first); NULL: off
    uint64_t width      # counters a row: a multiple of 1024, not a power of two
    uint64_t adds       # increments since the last halving
    uint64_t period     # halve after this many (10 x width)


cdef inline uint64_t _sk_idx(uint64_t h, int row, uint64_t width) noexcept nogil:
    cdef uint64_t x = (h + <uint64_t>row * 0x9E3779B97F4A7C15ULL) * 0xBF58476D1CE4E5B9ULL
    x ^= x >> 31
    x *= 0x94D049BB133111EBULL
    x ^= x >> 29
    return <uint64_t>row * width + cdb_sk_range(x, width)


cdef inline int _sk_get(uint8_t* c, uint64_t i) noexcept nogil:
    return (c[i >> 1] >> ((i & 1) << 2)) & 15


cdef inline uint64_t _sk_width(uint64_t width) noexcept nogil:
    # width rounded up to a multiple of 1024 (at least 1024): counters are
    # held exactly (a power of two would add up to 2x their bytes)
    if width < 1024:
        return 1024
    return (width + 1023) & ~(<uint64_t>1023)


cdef inline int sk_init(Sketch* s, uint64_t width) noexcept nogil:
    cdef uint64_t w = _sk_width(width)
    if s.c != NULL:
        free(s.c)
    s.c = <uint8_t*>calloc(2 * w, 1)
    if s.c == NULL:
        return -1
    s.width = w
    s.adds = 0
    s.period = 10 * w
    return 0


cdef inline int sk_grow(Sketch* s, uint64_t width) noexcept nogil:
    # a wider sketch that lowers no key's estimate: a key's new counter j
    # covers part of what its old counter covered (fastrange maps x to
    # floor(x * w / 2**64)), so j takes the larger of the (at most two) old
    # counters its range overlaps, in every row, and the minimum over the
    # rows is at least what it was
    cdef uint64_t w = s.width, nw = _sk_width(width), r, j, i, lo, hi
    cdef uint8_t* c
    cdef int v, u
    if s.c == NULL:
        return sk_init(s, width)
    if nw <= w:
        return 0
    c = <uint8_t*>calloc(2 * nw, 1)
    if c == NULL:
        return -1
    for r in range(4):
        for j in range(nw):
            lo = j * w // nw
            hi = ((j + 1) * w - 1) // nw
            v = _sk_get(s.c, r * w + lo)
            u = _sk_get(s.c, r * w + hi)
            if u > v:
                v = u
            i = r * nw + j
            c[i >> 1] |= <uint8_t>(v << ((i & 1) << 2))
    free(s.c)
    s.c = c
    s.width = nw
    return 0


cdef inline void sk_free(Sketch* s) noexcept nogil:
    if s.c != NULL:
        free(s.c)
    s.c = NULL


cdef inline int sk_freq(Sketch* s, uint64_t h) noexcept nogil:
    cdef int r, m = 255, v
    if s.c == NULL:
        return 0
    for r in range(4):
        v = _sk_get(s.c, _sk_idx(h, r, s.width))
        if v < m:
            m = v
    return m


cdef inline void sk_add(Sketch* s, uint64_t h) noexcept nogil:
    cdef int r
    cdef uint64_t i, n
    cdef bint grew = False
    if s.c == NULL:
        return
    for r in range(4):
        i = _sk_idx(h, r, s.width)
        if _sk_get(s.c, i) < 15:
            s.c[i >> 1] += <uint8_t>(1 << ((i & 1) << 2))
            grew = True
    if grew:
        s.adds += 1
        if s.adds >= s.period:
            # halve every counter: both nibbles of a byte at once
            n = 2 * s.width
            for i in range(n):
                s.c[i] = (s.c[i] >> 1) & 0x77
            s.adds >>= 1
