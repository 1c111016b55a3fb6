# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The C part of benchmarks/sim_policies.py: cache policies replayed over a
request sequence of integer key ids (compiled on first use by pyximport).
Every function returns the hits over the second half of the sequence (the
cache being full by then), as bench_cache.py counts them."""

from libc.stdint cimport int8_t, int32_t, int64_t, uint8_t, uint64_t
from libc.math cimport exp2, log2
from libc.stdlib cimport calloc, free, malloc

import numpy as np

from constdb._core.sketch cimport _sk_get, _sk_idx, _sk_width


cdef uint64_t _rng = 0x9E3779B97F4A7C15ULL


cdef inline uint64_t rnd() noexcept nogil:
    global _rng
    _rng ^= _rng << 13
    _rng ^= _rng >> 7
    _rng ^= _rng << 17
    return _rng


cdef inline uint64_t mix(uint64_t x) noexcept nogil:
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL
    return x ^ (x >> 31)


# ---- linked lists over ids: node n's lists, sentinel of list l at N + l ----

cdef struct DL:
    int32_t* prv
    int32_t* nxt
    int8_t* where
    int64_t* size
    int64_t N


cdef int dl_init(DL* d, int64_t N, int L) except -1:
    cdef int64_t i
    d.N = N
    d.prv = <int32_t*>malloc((N + L) * sizeof(int32_t))
    d.nxt = <int32_t*>malloc((N + L) * sizeof(int32_t))
    d.where = <int8_t*>malloc(N)
    d.size = <int64_t*>calloc(L, sizeof(int64_t))
    for i in range(N):
        d.where[i] = -1
    for i in range(L):
        d.prv[N + i] = <int32_t>(N + i)
        d.nxt[N + i] = <int32_t>(N + i)
    return 0


cdef void dl_free(DL* d) noexcept:
    free(d.prv)
    free(d.nxt)
    free(d.where)
    free(d.size)


cdef inline void dl_remove(DL* d, int32_t x) noexcept nogil:
    d.nxt[d.prv[x]] = d.nxt[x]
    d.prv[d.nxt[x]] = d.prv[x]
    d.size[d.where[x]] -= 1
    d.where[x] = -1


cdef inline void dl_push(DL* d, int l, int32_t x) noexcept nogil:
    # at the MRU end (after the sentinel)
    cdef int32_t s = <int32_t>(d.N + l)
    d.nxt[x] = d.nxt[s]
    d.prv[x] = s
    d.prv[d.nxt[s]] = x
    d.nxt[s] = x
    d.where[x] = <int8_t>l
    d.size[l] += 1


cdef inline int32_t dl_lru(DL* d, int l) noexcept nogil:
    cdef int32_t s = <int32_t>(d.N + l)
    return -1 if d.prv[s] == s else d.prv[s]


# ---- exact LRU --------------------------------------------------------------

def lru(int32_t[:] seq, int64_t cap, int64_t nids):
    cdef DL d
    cdef int64_t i, n = seq.shape[0], half = n // 2, hits = 0
    cdef int32_t k
    dl_init(&d, nids, 1)
    try:
        for i in range(n):
            k = seq[i]
            if d.where[k] >= 0:
                if i >= half:
                    hits += 1
                dl_remove(&d, k)
                dl_push(&d, 0, k)
            else:
                dl_push(&d, 0, k)
                if d.size[0] > cap:
                    dl_remove(&d, dl_lru(&d, 0))
    finally:
        dl_free(&d)
    return hits


# ---- Belady's OPT (with bypass: a newcomer used later than every key held is
# not kept) --------------------------------------------------------------------

def next_use(int32_t[:] seq, int64_t nids):
    cdef int64_t n = seq.shape[0], i
    cdef int64_t[:] last = np.full(nids, n, dtype=np.int64)
    nxt = np.empty(n, dtype=np.int64)
    cdef int64_t[:] nx = nxt
    for i in range(n - 1, -1, -1):
        nx[i] = last[seq[i]]
        last[seq[i]] = i
    return nxt


cdef inline void heap_up(int64_t* hv, int32_t* hk, int64_t j) noexcept nogil:
    cdef int64_t v = hv[j]
    cdef int32_t k = hk[j]
    while j > 0 and hv[(j - 1) >> 1] < v:
        hv[j] = hv[(j - 1) >> 1]
        hk[j] = hk[(j - 1) >> 1]
        j = (j - 1) >> 1
    hv[j] = v
    hk[j] = k


cdef inline void heap_down(int64_t* hv, int32_t* hk, int64_t n) noexcept nogil:
    cdef int64_t j = 0, c
    cdef int64_t v = hv[0]
    cdef int32_t k = hk[0]
    while True:
        c = 2 * j + 1
        if c >= n:
            break
        if c + 1 < n and hv[c + 1] > hv[c]:
            c += 1
        if hv[c] <= v:
            break
        hv[j] = hv[c]
        hk[j] = hk[c]
        j = c
    hv[j] = v
    hk[j] = k


cdef inline int64_t heap_push(int64_t* hv, int32_t* hk, int64_t hn, int64_t v,
                              int32_t k) noexcept nogil:
    # add the entry (v, k) to a heap of hn entries; returns the new size
    hv[hn] = v
    hk[hn] = k
    heap_up(hv, hk, hn)
    return hn + 1


cdef inline int64_t heap_pop(int64_t* hv, int32_t* hk, int64_t hn) noexcept nogil:
    # drop the top entry of a heap of hn entries; returns the new size
    hn -= 1
    hv[0] = hv[hn]
    hk[0] = hk[hn]
    heap_down(hv, hk, hn)
    return hn


cdef int64_t heap_compact(int64_t* hv, int32_t* hk, int64_t* cur, int64_t hn) noexcept nogil:
    # drop the stale entries (a key's live entry is the one equal to cur[key])
    cdef int64_t j, hn2 = 0
    for j in range(hn):
        if cur[hk[j]] == hv[j]:
            hv[hn2] = hv[j]
            hk[hn2] = hk[j]
            hn2 += 1
    for j in range(hn2):
        heap_up(hv, hk, j)
    return hn2


def opt(int32_t[:] seq, int64_t cap, int64_t nids, int64_t[:] nxt):
    # a max-heap of (next use, key) with lazy entries: a key's live entry is
    # the one whose next use equals cur[key]
    cdef int64_t n = seq.shape[0], i, half = n // 2, hits = 0, hn = 0, held = 0
    cdef int64_t* hv = <int64_t*>malloc((n + 1) * sizeof(int64_t))
    cdef int32_t* hk = <int32_t*>malloc((n + 1) * sizeof(int32_t))
    cdef int64_t* cur = <int64_t*>malloc(nids * sizeof(int64_t))
    cdef int32_t k
    for i in range(nids):
        cur[i] = -1
    try:
        for i in range(n):
            k = seq[i]
            if cur[k] >= 0:
                if i >= half:
                    hits += 1
            else:
                held += 1
            cur[k] = nxt[i]
            hn = heap_push(hv, hk, hn, nxt[i], k)
            while held > cap:
                # the top: the key used furthest ahead (stale entries skipped)
                if cur[hk[0]] == hv[0]:
                    cur[hk[0]] = -1
                    held -= 1
                hn = heap_pop(hv, hk, hn)
            if hn > 4 * cap + 1024:
                hn = heap_compact(hv, hk, cur, hn)
    finally:
        free(hv)
        free(hk)
        free(cur)
    return hits


# ---- LFU that remembers every key's count forever (exact, ties: oldest) ----

def lfu_hist(int32_t[:] seq, int64_t cap, int64_t nids):
    # a min-heap on (count, last use) as a max-heap of -(count << 32 | i) with
    # lazy entries, as opt()
    cdef int64_t n = seq.shape[0], i, half = n // 2, hits = 0, hn = 0, held = 0, v
    cdef int64_t* hv = <int64_t*>malloc((n + 1) * sizeof(int64_t))
    cdef int32_t* hk = <int32_t*>malloc((n + 1) * sizeof(int32_t))
    cdef int64_t* cur = <int64_t*>malloc(nids * sizeof(int64_t))
    cdef int64_t* cnt = <int64_t*>calloc(nids, sizeof(int64_t))
    cdef uint8_t* inc = <uint8_t*>calloc(nids, 1)
    cdef int32_t k
    try:
        for i in range(n):
            k = seq[i]
            cnt[k] += 1
            if inc[k]:
                if i >= half:
                    hits += 1
            else:
                inc[k] = 1
                held += 1
            v = -((cnt[k] << 32) | i)
            cur[k] = v
            hn = heap_push(hv, hk, hn, v, k)
            while held > cap:
                if inc[hk[0]] and cur[hk[0]] == hv[0]:
                    inc[hk[0]] = 0
                    cur[hk[0]] = 1      # (no entry's value: entries are < 0)
                    held -= 1
                hn = heap_pop(hv, hk, hn)
            if hn > 4 * cap + 1024:
                hn = heap_compact(hv, hk, cur, hn)
    finally:
        free(hv)
        free(hk)
        free(cur)
        free(cnt)
        free(inc)
    return hits


# ---- the count-min sketch of constdb/_core/sketch.pxd (its hashing), with
# a doorkeeper and conservative update as options -------------------------

cdef struct Sk:
    uint8_t* c
    uint64_t width      # counters a row (a multiple of 1024, as sketch.pxd's)
    uint64_t adds
    uint64_t period
    uint8_t* door       # doorkeeper bits (a bloom filter of 1 hash); NULL: none
    uint64_t dmask
    bint cons           # conservative update: only the smallest counters grow


cdef int sk_freq(Sk* s, uint64_t h) noexcept nogil:
    cdef int r, m = 255, v
    for r in range(4):
        v = _sk_get(s.c, _sk_idx(h, r, s.width))
        if v < m:
            m = v
    if s.door != NULL:
        if (s.door[(h >> 7) & s.dmask >> 3] >> ((h >> 7) & 7)) & 1:
            m += 1
    return m


cdef void sk_halve(Sk* s) noexcept nogil:
    cdef uint64_t i, n = 2 * s.width
    for i in range(n):
        s.c[i] = (s.c[i] >> 1) & 0x77
    s.adds >>= 1
    if s.door != NULL:
        for i in range((s.dmask >> 3) + 1):
            s.door[i] = 0


cdef void sk_add(Sk* s, uint64_t h) noexcept nogil:
    cdef int r
    cdef uint64_t i, b
    cdef bint grew = False
    if s.door != NULL:
        b = (h >> 7) & s.dmask
        if not (s.door[b >> 3] >> (b & 7)) & 1:
            s.door[b >> 3] |= <uint8_t>(1 << (b & 7))
            s.adds += 1
            if s.adds >= s.period:
                sk_halve(s)
            return
    cdef int m = 15, v
    cdef uint64_t ix[4]
    for r in range(4):
        ix[r] = _sk_idx(h, r, s.width)
        v = _sk_get(s.c, ix[r])
        if v < m:
            m = v
    for r in range(4):
        i = ix[r]
        v = _sk_get(s.c, i)
        if v < 15 and (not s.cons or v == m):
            s.c[i >> 1] += <uint8_t>(1 << ((i & 1) << 2))
            grew = True
    if grew or s.door != NULL:
        s.adds += 1
        if s.adds >= s.period:
            sk_halve(s)


cdef int sk_make(Sk* s, double width, double period, bint door, bint cons) except -1:
    cdef uint64_t w = _sk_width(<uint64_t>width), d = 1024
    s.c = <uint8_t*>calloc(2 * w, 1)
    s.width = w
    s.adds = 0
    s.period = <uint64_t>period
    s.door = NULL
    s.cons = cons
    if door:
        while d < w:
            d <<= 1
        s.dmask = 8 * d - 1
        s.door = <uint8_t*>calloc(d, 1)
    return 0


cdef void sk_drop(Sk* s) noexcept:
    free(s.c)
    if s.door != NULL:
        free(s.door)


# ---- sampled policies (Redis's pool) ----------------------------------------

cdef struct Dense:
    int32_t* key      # the keys held, densely
    int64_t* pos      # key -> index in key, -1: not held
    int64_t n


cdef int dn_init(Dense* d, int64_t cap, int64_t nids) except -1:
    cdef int64_t i
    d.key = <int32_t*>malloc((cap + 16) * sizeof(int32_t))
    d.pos = <int64_t*>malloc(nids * sizeof(int64_t))
    for i in range(nids):
        d.pos[i] = -1
    d.n = 0
    return 0


cdef void dn_free(Dense* d) noexcept:
    free(d.key)
    free(d.pos)


cdef inline void dn_add(Dense* d, int32_t k) noexcept nogil:
    d.pos[k] = d.n
    d.key[d.n] = k
    d.n += 1


cdef inline void dn_del(Dense* d, int32_t k) noexcept nogil:
    cdef int64_t p = d.pos[k]
    d.n -= 1
    d.key[p] = d.key[d.n]
    d.pos[d.key[p]] = p
    d.pos[k] = -1


cdef struct Pool:
    int64_t score[16]
    int32_t key[16]
    int n


cdef inline void pool_add(Pool* p, int32_t key, int64_t score) noexcept nogil:
    # evictionPoolPopulate's insert: ascending score, the smallest drops out
    cdef int k = 0, j
    while k < p.n and p.score[k] < score:
        k += 1
    for j in range(p.n):
        if p.key[j] == key:
            return
    if k == 0 and p.n == 16:
        return
    if p.n < 16:
        j = p.n
        while j > k:
            p.score[j] = p.score[j - 1]
            p.key[j] = p.key[j - 1]
            j -= 1
        p.n += 1
    else:
        k -= 1
        for j in range(k):
            p.score[j] = p.score[j + 1]
            p.key[j] = p.key[j + 1]
    p.score[k] = score
    p.key[k] = key


cdef inline int32_t pool_take(Pool* p, Dense* d) noexcept nogil:
    # the best entry still held (-1: none)
    cdef int32_t k
    while p.n > 0:
        p.n -= 1
        k = p.key[p.n]
        if d.pos[k] >= 0:
            return k
    return -1


cdef inline int lfu_log_incr(int c, double factor) noexcept nogil:
    cdef double base
    if c >= 255:
        return c
    base = c - 5.0
    if base < 0:
        base = 0
    if <double>(rnd() >> 11) * (1.0 / 9007199254740992.0) < 1.0 / (base * factor + 1.0):
        return c + 1
    return c


def redis(int32_t[:] seq, int64_t cap, int64_t nids, bint lfu, int samples=5,
          int64_t decay_reqs=3000000, double factor=10.0):
    """Redis's allkeys-lru (idle in requests) or allkeys-lfu (log counter,
    LFU_INIT_VAL 5, -1 per decay_reqs requests idle) with its eviction pool."""
    cdef Dense d
    cdef Pool p
    cdef int64_t n = seq.shape[0], i, half = n // 2, hits = 0, el
    cdef int64_t* last = <int64_t*>malloc(nids * sizeof(int64_t))
    cdef int32_t* cnt = <int32_t*>malloc(nids * sizeof(int32_t))
    cdef int32_t k, v
    cdef int _j, c
    p.n = 0
    dn_init(&d, cap, nids)
    try:
        for i in range(n):
            k = seq[i]
            if d.pos[k] >= 0:
                if i >= half:
                    hits += 1
                if lfu:
                    c = cnt[k]
                    el = (i - last[k]) // decay_reqs
                    c = 0 if el > c else c - <int>el
                    cnt[k] = lfu_log_incr(c, factor)
                    if el:
                        last[k] = i
                else:
                    last[k] = i
                continue
            dn_add(&d, k)
            last[k] = i
            cnt[k] = 5
            while d.n > cap:
                for _j in range(samples):
                    v = d.key[rnd() % <uint64_t>d.n]
                    if lfu:
                        el = (i - last[v]) // decay_reqs
                        c = 0 if el > cnt[v] else cnt[v] - <int>el
                        pool_add(&p, v, 255 - c)
                    else:
                        pool_add(&p, v, i - last[v])
                v = pool_take(&p, &d)
                if v >= 0:
                    dn_del(&d, v)
    finally:
        dn_free(&d)
        free(last)
        free(cnt)
    return hits


cdef int32_t main_victim(int mode, DL* d, Dense* m, Pool* p, Sk* s, int64_t* last,
                         int64_t i, int samples, int vfreq, double* lc,
                         double half, double dead, int dmin, double ssel) noexcept nogil:
    cdef int32_t v = -1, x
    cdef int64_t sc
    cdef int _j, f
    if mode == 2:
        while v < 0 and m.n > 0:
            for _j in range(samples):
                x = m.key[rnd() % <uint64_t>m.n]
                sc = i - last[x]
                if vfreq == 1:
                    f = sk_freq(s, mix(<uint64_t>x))
                    if (dead > 0 and f >= dmin and sc * f > dead) or \
                            (ssel > 0 and sc * (f if f > 1 else 1) > ssel):
                        f = 0   # quiet for longer than its frequency explains
                    sc |= (<int64_t>(15 - f)) << 40
                elif vfreq == 2:
                    # idle / (frequency + 1): a hot key gone quiet ages out
                    sc = (sc << 8) // (sk_freq(s, mix(<uint64_t>x)) + 1)
                elif vfreq == 3:
                    # idle - half x log2(decayed count): LRU with a credit
                    # for a key's (recent) frequency
                    sc = (<int64_t>1 << 40) + sc - <int64_t>(half * lc[x])
                elif vfreq == 4:
                    # LRU, but a key quiet for longer than its frequency
                    # explains (the ghost's threshold) goes first
                    f = sk_freq(s, mix(<uint64_t>x))
                    if ssel > 0 and sc * (f if f > 1 else 1) > ssel:
                        sc |= (<int64_t>1) << 40
                pool_add(p, x, sc)
            v = pool_take(p, m)
        return v
    v = dl_lru(d, 1)
    if v < 0:
        v = dl_lru(d, 2)
    return v


# ---- W-TinyLFU --------------------------------------------------------------

def wtinylfu(int32_t[:] seq, int64_t cap, int64_t nids, dict o):
    """W-TinyLFU. o: the design's parameters.
      win      window size, a fraction of cap (the start with a climber)
      main     'slru': Caffeine's probation / protected (exact LRU lists);
               'lru': one exact LRU list; 'sampled': Redis's pool over
               (frequency-aware if vfreq) sampled keys of the main region
      prot     the protected share of main (slru)
      width, period   sketch width and halving period, x cap
      door     a doorkeeper
      climb    0: fixed window; else the hill climber's sample, x cap
      step     the climber's first step, a fraction of cap
      jitter   Caffeine's random admission of a warm (>= 6) candidate, 1 in 128
      ties     a candidate as frequent as the victim is admitted
      samples  samples per eviction (sampled)
      vfreq    sampled: 1: the victim is the least frequent of the pool (then
               idlest); 2: the largest idle / (frequency + 1); 3: below;
               4: the idlest (LRU), a key ssel calls stale first
      admit    the sketch's admission test (else every candidate is let in)
      abonus   added to the candidate's frequency in that test
      missadd  sketch increments on a miss (2: a GET then a SET)
      stale    a victim idle > stale x period / freq is evicted
      ssel     sampled, vfreq 1: such a victim also counts as frequency 0
      dead, dmin   a victim of frequency >= dmin idle > dead x cap / freq
               is evicted (and counts as frequency 0 when sampled)
      half, init   vfreq 3: the count's half-life (x cap), a new key's count
               from the sketch (x its frequency)
      ghost    sampled, vfreq 1: ssel's threshold is stale x period x 2**g, g
               moved by a ghost (constdb/_core/sketch.pxd) whose marks count
               for ghost x cap requests: every glen x cap requests with at
               least gev outcomes, g goes up if more victims of a duel won by
               staleness came back than newcomers that won one were hit, else
               down, within [gmin, goff] (goff: off); g starts at g0. gsamp:
               a duel is marked if the newcomer's hash & gsamp is 0; ssc
               scales ssel's threshold (to try levels between powers of 2);
               gdown: g goes down only if the good outcomes are more than
               gdown x the bad, else it stays (0: down whenever not up)
    """
    cdef double win = o.get("win", 0.01)
    cdef str main = o.get("main", "slru")
    cdef double prot = o.get("prot", 0.8)
    cdef double climb = o.get("climb", 0)
    cdef double step0 = o.get("step", 0.0625)
    cdef bint jitter = o.get("jitter", True)
    cdef bint ties = o.get("ties", False)
    cdef int samples = o.get("samples", 5)
    cdef int vfreq = o.get("vfreq", 0)
    cdef double hl = o.get("half", 1.0) * cap
    cdef double dead = o.get("dead", 0.0) * cap
    cdef int dmin = o.get("dmin", 3)
    cdef bint o_ssel = o.get("ssel", False)
    cdef double* lc = <double*>calloc(nids, sizeof(double))   # log2 decayed count
    cdef bint admit = o.get("admit", True)
    cdef int abonus = o.get("abonus", 0)
    cdef double ssc = o.get("ssc", 1.0)
    cdef double gdown = o.get("gdown", 0.0)
    cdef double o_init = o.get("init", 0.0)
    cdef double stale = o.get("stale", 0)
    cdef bint wfifo = o.get("wfifo", False)
    cdef int missadd = o.get("missadd", 1)
    cdef double gh = o.get("ghost", 0) * cap
    cdef int g = o.get("g0", 6), gmin = o.get("gmin", -4), goff = o.get("goff", 6)
    cdef uint64_t gsamp = o.get("gsamp", 3)
    cdef int64_t gev = o.get("gev", 32), glen = <int64_t>(o.get("glen", 0.25) * cap)
    cdef int64_t g_good = 0, g_bad = 0, g_n = 0
    cdef int8_t* gmark = <int8_t*>calloc(nids, 1)       # 1 newcomer, 2 victim
    cdef int64_t* gat = <int64_t*>calloc(nids, sizeof(int64_t))
    cdef double ssel0
    cdef int mode = 0 if main == "slru" else (1 if main == "lru" else 2)
    cdef Sk s
    cdef DL d                                   # 0 window, 1 probation, 2 protected
    cdef Dense m                                # sampled: the main region's keys
    cdef Pool p
    cdef int64_t n = seq.shape[0], i, half = n // 2, hits = 0
    cdef int64_t* last = <int64_t*>malloc(nids * sizeof(int64_t))
    cdef int64_t wmax = <int64_t>(win * cap), held = 0, pmax
    cdef int64_t sample_hits = 0, sample_n = 0, sample_len = <int64_t>(climb * cap)
    cdef double prev_rate = 0, step = step0 * cap, rate, delta
    cdef int32_t k, c, v, x
    cdef int fc, fv, _j
    cdef double ssel
    if wmax < 1:
        wmax = 1
    p.n = 0
    sk_make(&s, o.get("width", 1.0) * cap, o.get("period", 10.0) * cap, o.get("door", False),
            o.get("cons", False))
    dl_init(&d, nids, 3)
    dn_init(&m, cap, nids)
    ssel = stale * s.period if o_ssel else 0
    ssel0 = stale * s.period
    if gh > 0:
        ssel = 0 if g >= goff else ssel0 * exp2(g) * ssc
    try:
        for i in range(n):
            k = seq[i]
            sk_add(&s, mix(<uint64_t>k))
            if gh > 0:
                if gmark[k] and i - gat[k] <= gh:
                    if gmark[k] == 1 and (d.where[k] >= 0 or m.pos[k] >= 0):
                        g_good += 1
                    elif gmark[k] == 2:
                        g_bad += 1
                gmark[k] = 0
                g_n += 1
                if g_n >= glen and g_good + g_bad >= gev:
                    if g_bad > g_good:
                        g += 1
                    elif g_good > gdown * g_bad:
                        g -= 1
                    g = min(max(g, gmin), goff)
                    ssel = 0 if g >= goff else ssel0 * exp2(g) * ssc
                    g_good = g_bad = g_n = 0
            if d.where[k] >= 0 or m.pos[k] >= 0:
                if i >= half:
                    hits += 1
                sample_hits += 1
                if vfreq == 3:
                    lc[k] = log2(exp2(lc[k] - (i - last[k]) / hl) + 1)
                last[k] = i
                if d.where[k] == 0:
                    if not wfifo:
                        dl_remove(&d, k)
                        dl_push(&d, 0, k)
                elif d.where[k] == 1:
                    dl_remove(&d, k)
                    if mode == 0:
                        dl_push(&d, 2, k)
                        pmax = <int64_t>(prot * (cap - wmax))
                        while d.size[2] > pmax:
                            x = dl_lru(&d, 2)
                            dl_remove(&d, x)
                            dl_push(&d, 1, x)
                    else:
                        dl_push(&d, 1, k)
                elif d.where[k] == 2:
                    dl_remove(&d, k)
                    dl_push(&d, 2, k)
            else:
                last[k] = i
                if vfreq == 3:
                    lc[k] = log2(1 + o_init * sk_freq(&s, mix(<uint64_t>k)))
                held += 1
                dl_push(&d, 0, k)
                for _j in range(1, missadd):
                    sk_add(&s, mix(<uint64_t>k))
            sample_n += 1
            if sample_len and sample_n >= sample_len:
                # Caffeine's hill climber: keep the direction while the hit
                # rate improves, reverse it when it drops; the step decays
                rate = sample_hits / <double>sample_n
                delta = rate - prev_rate
                if prev_rate > 0 and delta < 0:
                    step = -step
                if prev_rate > 0:
                    step *= 0.98
                    wmax += <int64_t>step
                    if wmax < 1:
                        wmax = 1
                    if wmax > cap * 0.8:
                        wmax = <int64_t>(cap * 0.8)
                prev_rate = rate
                sample_hits = sample_n = 0
            # the window's overflow goes to main's probation; the cache's
            # overflow: the candidate (probation's newest from the window)
            # against the victim
            while d.size[0] > wmax:
                c = dl_lru(&d, 0)
                dl_remove(&d, c)
                if held <= cap:
                    if mode == 2:
                        dn_add(&m, c)
                    else:
                        dl_push(&d, 1, c)
                    continue
                v = main_victim(mode, &d, &m, &p, &s, last, i, samples, vfreq, lc, hl, dead, dmin,
                                ssel)
                fc = sk_freq(&s, mix(<uint64_t>c))
                fv = sk_freq(&s, mix(<uint64_t>v))
                if not admit or fc + abonus > fv or (ties and fc == fv) or \
                        (jitter and fc >= 6 and (rnd() & 127) == 0) or \
                        (stale > 0 and (i - last[v]) * max(fv, 1) > stale * s.period) or \
                        (dead > 0 and fv >= dmin and (i - last[v]) * fv > dead):
                    # admitted: the victim goes
                    if gh > 0 and fc <= fv and (mix(<uint64_t>c) & gsamp) == 0 and (
                            (stale > 0 and (i - last[v]) * max(fv, 1) > ssel0) or
                            (ssel > 0 and (i - last[v]) * max(fv, 1) > ssel)):
                        gmark[c] = 1
                        gat[c] = i
                        gmark[v] = 2
                        gat[v] = i
                    if mode == 2:
                        dn_del(&m, v)
                        dn_add(&m, c)
                    else:
                        dl_remove(&d, v)
                        dl_push(&d, 1, c)
                held -= 1
            while held > cap:
                # (the window shrank or main is empty) the main's victim, else
                # the window's oldest
                v = main_victim(mode, &d, &m, &p, &s, last, i, samples, vfreq, lc, hl, dead, dmin,
                                ssel)
                if v >= 0:
                    if mode == 2:
                        dn_del(&m, v)
                    else:
                        dl_remove(&d, v)
                else:
                    dl_remove(&d, dl_lru(&d, 0))
                held -= 1
    finally:
        sk_drop(&s)
        dl_free(&d)
        dn_free(&m)
        free(last)
        free(lc)
        free(gmark)
        free(gat)
    return hits
