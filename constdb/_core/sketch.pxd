# W-TinyLFU's frequency sketch (constdb/_core/evict.pyx, docs/internals.md
# "Memory and eviction"): a count-min sketch of 4 rows of 4-bit counters
# (two a byte, as Caffeine's) over a key's hash, with TinyLFU's aging: once 10 x width
# increments were added, every counter is halved. Header-only: keyspace.pyx
# increments it on every lookup (hits and misses) while the policy is
# allkeys-wtinylfu; evict.pyx reads it.
#
# The ghost (g): marks of the duels a newcomer won only because the victim
# looked stale (evict.pyx), one slot a mark, direct-mapped by the key's hash:
# the newcomer's mark counts `good` if it is hit within `horizon` requests,
# the victim's counts `bad` if it is asked for again within them. evict.pyx
# moves its staleness threshold by which is larger.
from libc.stdint cimport uint8_t, uint32_t, uint64_t
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
    uint64_t* g         # the ghost's slots: fingerprint 32 | request 31 | victim 1
    uint64_t gmask      # slots - 1 (a power of two); g NULL: no ghost
    uint64_t reads      # requests counted (sk_touch)
    uint64_t horizon    # a mark counts for this many requests
    uint64_t good       # marked newcomers hit within the horizon
    uint64_t bad        # marked victims asked for within it


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
    if s.g != NULL:
        free(s.g)
    s.g = NULL
    s.gmask = 0


cdef inline int sk_ghost(Sketch* s, uint64_t slots) noexcept nogil:
    # a ghost of slots (a power of two) marks, empty
    cdef uint64_t* g = <uint64_t*>calloc(slots, 8)
    if g == NULL:
        return -1
    if s.g != NULL:
        free(s.g)
    s.g = g
    s.gmask = slots - 1
    return 0


cdef inline void sk_mark(Sketch* s, uint64_t h, bint victim) noexcept nogil:
    # (the fingerprint is the hash's low half, never 0; the slot its high half)
    if s.g != NULL:
        s.g[(h >> 32) & s.gmask] = ((h | 1) << 32) | ((s.reads & 0x7FFFFFFF) << 1) | victim


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


cdef inline void sk_touch(Sketch* s, uint64_t h, bint hit) noexcept nogil:
    # a request (keyspace.pyx): count it, and settle the key's ghost mark
    cdef uint64_t* e
    sk_add(s, h)
    s.reads += 1
    if s.g != NULL:
        e = &s.g[(h >> 32) & s.gmask]
        if e[0] != 0 and <uint32_t>(e[0] >> 32) == <uint32_t>(h | 1):
            if ((s.reads - (e[0] >> 1)) & 0x7FFFFFFF) <= s.horizon:
                if e[0] & 1:
                    if not hit:
                        s.bad += 1
                elif hit:
                    s.good += 1
            e[0] = 0
