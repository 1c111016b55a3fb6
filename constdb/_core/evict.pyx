"""Eviction under maxmemory (docs/internals.md "Memory and eviction",
docs/crdt.md section 6.1): Redis 7.0's policies with its sampled
approximations and eviction pool, and allkeys-wtinylfu (W-TinyLFU: a
frequency sketch decides whether a key leaving the admission window may
displace the sampled victim).

An eviction is a local DEL effect (Keyspace.emit_del): it is replicated to
every member like any DEL, so the group stays converged. The keyspace keeps
the estimated bytes of the data set (Keyspace.mem_ds, kept by settle and
touched) and evicts while it is above ds_limit, which Evictor.set_limit
derives from maxmemory, the margin and what else the node holds.
"""

from cpython.object cimport PyObject, PyObject_Hash
from libc.stdint cimport INT64_MAX, int64_t, uint32_t, uint64_t

from constdb._core.backlog cimport Backlog
from posix.time cimport CLOCK_MONOTONIC, clock_gettime, timespec
from constdb._core.keyspace cimport N_EVICTED, Db, Keyspace, collect_key, lfu_decr, notify
from constdb._core.ktable cimport (
    KeyTable, kt_entry, kt_entry_hash, kt_get, kt_get_raw, kt_key, kt_len, kt_random,
)
from constdb._core.objects cimport CObj, TTLReg, obj_type
from constdb._core.sketch cimport (
    sk_add, sk_free, sk_freq, sk_ghost, sk_grow, sk_mark, sk_touch,
)


POLICIES = {
    "noeviction": (P_NOEVICTION, False),
    "allkeys-lru": (P_LRU, False),
    "volatile-lru": (P_LRU, True),
    "allkeys-lfu": (P_LFU, False),
    "volatile-lfu": (P_LFU, True),
    "allkeys-random": (P_RANDOM, False),
    "volatile-random": (P_RANDOM, True),
    "volatile-ttl": (P_TTL, True),
    "allkeys-wtinylfu": (P_WTINYLFU, False),
}

cdef uint64_t _rng = 0x9E3779B97F4A7C15ULL


cdef inline uint64_t mono_ns() noexcept:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return <uint64_t>ts.tv_sec * 1000000000 + <uint64_t>ts.tv_nsec


cdef inline uint64_t _rand() noexcept:
    global _rng
    _rng ^= _rng << 13
    _rng ^= _rng >> 7
    _rng ^= _rng << 17
    return _rng


cdef inline Py_ssize_t _held(Keyspace ks) except -1:
    # the keys of every db (Keyspace.dbsize in C)
    cdef Py_ssize_t n = 0, i
    cdef list dbs = ks.dbs
    for i in range(len(dbs)):
        n += kt_len((<Db>dbs[i]).d)
    return n


cdef class Evictor:
    def __init__(self, Keyspace ks):
        self.ks = ks
        self.pool_key = [None] * POOL
        self.pool_db = [None] * POOL
        self.pool_n = 0
        self.win_max = WIN_MIN
        # W-TinyLFU's parameters, chosen with benchmarks/sim_policies.py on
        # bench_cache.py's workloads (its design "constdb"; README "A cache
        # under maxmemory")
        self.win_pct = 1.0
        self.sk_width = 4.0
        self.sk_period = 20.0
        self.stale_g = SG_OFF
        self.ssel = 0.0
        self.victim_lfu = True
        self.admit_ties = False
        self.stale = 0.05
        self.rate = 0.0
        self.rate_ms = 0
        self.rate_reads = 0
        self.sk_keys = 0
        self.samples = 5
        self.tenacity = 10
        self.maxmemory = 0
        self.margin = 0.0
        self.set_policy("noeviction")

    def __dealloc__(self):
        if self.ks is not None and self.ks.evict_mode == 2:
            sk_free(&self.ks.sk)

    def set_policy(self, str name):
        cdef Keyspace ks = self.ks
        self.kind, self.volatile = POLICIES[name]
        self.policy = name
        self.pool_key = [None] * POOL
        self.pool_db = [None] * POOL
        self.pool_n = 0
        if self.kind == P_WTINYLFU:
            if ks.evict_mode != 2:
                self.stale_g = SG_OFF
                self.ssel = 0.0
                ks.sk.good = ks.sk.bad = 0
                self.g_from = ks.sk.reads
                self._size_sketch(ks.dbsize())
                ks.win_resize(WIN_MIN)
            ks.evict_mode = 2
        else:
            if ks.evict_mode == 2:
                sk_free(&ks.sk)
                ks.win_resize(0)
            ks.evict_mode = 1 if self.kind == P_LFU else 0

    def set_limit(self, int64_t other, bint grouped=True):
        """ds_limit from maxmemory: evict once the data set passes
        maxmemory x (1 - margin%) minus other (backlog, clients, sketch,
        what waits for GC). The margin is room for what peers are still
        sending: a node alone (grouped False: no other member, no link)
        keeps none and evicts at maxmemory, as Redis. allkeys-wtinylfu: the
        sketch follows the keys the limit holds (the cron calls this)."""
        cdef Keyspace ks = self.ks
        cdef int64_t lim
        cdef Py_ssize_t held = _held(ks)
        cdef double fit = held
        if self.maxmemory <= 0:
            ks.ds_limit = INT64_MAX
        else:
            # noeviction refuses writes only past maxmemory itself, as Redis
            lim = <int64_t>(self.maxmemory * (1.0 - (self.margin if grouped and self.kind !=
                                                     P_NOEVICTION else 0) / 100.0)) - other
            ks.ds_limit = lim if lim > -1 else -1
            if held >= 1024 and ks.mem_ds > 0 and lim > ks.mem_ds:
                # while the cache fills: the keys that will fit at today's
                # bytes per key, up to 8x the keys held (the sketch grows in
                # a few steps, not by every quarter)
                fit = <double>lim * held / ks.mem_ds
                if fit > 8.0 * held:
                    fit = 8.0 * held
        if self.kind == P_WTINYLFU and fit > 1.25 * self.sk_keys:
            self._size_sketch(<Py_ssize_t>fit)

    def sketch_bytes(self):
        """The sketch's counters, its ghost (8 bytes a slot) and the window
        ring (a key and a Db slot an entry) with its filter (4 bytes an
        entry), and the key objects the ring keeps alive."""
        cdef Keyspace ks = self.ks
        if ks.evict_mode != 2 or ks.sk.c == NULL:
            return 0
        return 2 * ks.sk.width + (0 if ks.sk.g == NULL else 8 * (ks.sk.gmask + 1)) + \
            20 * (0 if ks.win is None else len(ks.win)) + ks.win_kb

    def ghost(self):
        """(tests) the ghost: slots, good, bad, the reads counted."""
        cdef Keyspace ks = self.ks
        return (0 if ks.sk.g == NULL else ks.sk.gmask + 1, ks.sk.good, ks.sk.bad,
                ks.sk.reads)

    # (tests: the sketch's width, sizing and counts)
    def _sketch_width(self):
        return self.ks.sk.width if self.ks.sk.c != NULL else 0

    def _sketch_size(self, Py_ssize_t nkeys):
        self._size_sketch(nkeys)

    def _sketch_add(self, key):
        sk_add(&self.ks.sk, <uint64_t>PyObject_Hash(key))

    def _sketch_freq(self, key):
        return sk_freq(&self.ks.sk, <uint64_t>PyObject_Hash(key))

    def _ghost_mark(self, key, bint victim):
        sk_mark(&self.ks.sk, <uint64_t>PyObject_Hash(key), victim)

    def _ghost_touch(self, key, bint hit):
        sk_touch(&self.ks.sk, <uint64_t>PyObject_Hash(key), hit)

    def _victim(self):
        """(tests) the pool's next victim, (Db, key) or None."""
        return self._from_pool()

    def _ghost_verdict_now(self):
        self._ghost_verdict()
        return self.ssel

    cdef int _size_sketch(self, Py_ssize_t nkeys) except -1:
        # width: sk_width x the keys held (to a multiple of 1024); the counters
        # are halved after sk_period x the keys held increments. A sketch
        # that grows at most 4x keeps its counts (sk_grow); more, and the
        # small one's collisions would be copied over: it starts afresh
        cdef Keyspace ks = self.ks
        cdef uint64_t n = <uint64_t>nkeys if nkeys > 1024 else 1024, g
        if ks.sk.c != NULL and <uint64_t>(n * self.sk_width) > 4 * ks.sk.width:
            sk_free(&ks.sk)
        if sk_grow(&ks.sk, <uint64_t>(n * self.sk_width)) < 0:
            raise MemoryError()
        ks.sk.period = <uint64_t>(n * self.sk_period)
        # the ghost: a slot per 8 keys held (a power of two); its marks count
        # for as many requests as keys held
        g = 1024
        while g < n // 8:
            g <<= 1
        if (ks.sk.g == NULL or ks.sk.gmask + 1 != g) and sk_ghost(&ks.sk, g) < 0:
            raise MemoryError()
        ks.sk.horizon = n
        self.sk_keys = n
        return 0

    # ---- the victim ---------------------------------------------------------

    cdef uint64_t _score(self, uint64_t h, CObj o):
        """Redis's "idle" of a pool entry: the larger, the better a victim
        (h: the key's hash, read by allkeys-wtinylfu only)."""
        cdef Keyspace ks = self.ks
        cdef uint32_t idle
        cdef int f
        if self.kind == P_TTL:
            return 0xFFFFFFFFFFFFFFFFULL - <uint64_t>ks.local_at(<TTLReg>o.ttl)
        if self.kind == P_LFU:
            return 255 - lfu_decr(ks, o.lru)
        idle = <uint32_t>ks.now - o.lru
        if self.kind == P_WTINYLFU and self.victim_lfu:
            f = sk_freq(&ks.sk, h)
            if self.ssel > 0 and idle * self.rate * (f if f > 1 else 1) > self.ssel:
                f = 0   # quiet for longer than its frequency explains
            return ((<uint64_t>(15 - f)) << 32) | idle
        return idle

    cdef int _pool_add(self, Db db, object key, uint64_t idle) except -1:
        # evictionPoolPopulate's insert: ascending idle, the smallest drops out
        cdef int k = 0, j
        while k < self.pool_n and self.pool_idle[k] < idle:
            k += 1
        for j in range(self.pool_n):
            if self.pool_key[j] == key and self.pool_db[j] is db:
                return 0
        if k == 0 and self.pool_n == POOL:
            return 0
        if self.pool_n < POOL:
            for j in range(self.pool_n, k, -1):
                self.pool_idle[j] = self.pool_idle[j - 1]
                self.pool_key[j] = self.pool_key[j - 1]
                self.pool_db[j] = self.pool_db[j - 1]
            self.pool_n += 1
        else:
            k -= 1
            for j in range(0, k):
                self.pool_idle[j] = self.pool_idle[j + 1]
                self.pool_key[j] = self.pool_key[j + 1]
                self.pool_db[j] = self.pool_db[j + 1]
        self.pool_idle[k] = idle
        self.pool_key[k] = key
        self.pool_db[k] = db
        return 0

    cdef object _sample(self, Db db, KeyTable src):
        """A random key of src (db.d or db.expires: kt_random) that db
        shows, with a TTL for the volatile policies (its object in
        self.last); False: the one drawn is not; None: src is empty."""
        cdef PyObject* p
        cdef kt_entry* e = kt_random(&src.t)
        if e == NULL:
            return None
        if src is db.d:
            p = e.obj
        else:
            p = kt_get_raw(&db.d.t, kt_entry_hash(e), e.key, e.klen)
            if p == NULL:
                return False
        if self.volatile and ((<CObj>p).ttl is None or (<TTLReg>(<CObj>p).ttl).at == 0):
            return False
        self.last = <CObj>p
        return kt_key(e)

    cdef object _from_pool(self):
        """Sample every db that has keys, then take the best candidate still
        present (Redis's loop). Pool entries and the result are (Db, key)."""
        cdef Keyspace ks = self.ks
        cdef KeyTable src
        cdef int k
        cdef Db db
        cdef kt_entry* e
        cdef uint64_t h, sc
        cdef list full = [x for x in ks.dbs
                          if kt_len((<Db>x).expires if self.volatile else (<Db>x).d)]
        cdef bint any_keys, wt = self.kind == P_WTINYLFU
        # allkeys-wtinylfu draws twice maxmemory-samples keys of the main
        # region (a window key drawn is not one of them, up to as many more
        # draws): the frequency-ordered pool finds a stale key with more
        # (docs/internals.md)
        cdef int want = 2 * self.samples if wt else self.samples, j, skips
        for _ in range(4):
            any_keys = False
            for db in full:
                src = db.expires if self.volatile else db.d
                if kt_len(src) == 0:
                    continue
                any_keys = True
                j = skips = 0
                while j < want:
                    j += 1
                    if wt:
                        # (allkeys: src is db.d) scored by the entry's hash; a
                        # bytes object only for a key that enters the pool
                        e = kt_random(&src.t)
                        if e == NULL:
                            break
                        h = <uint64_t>kt_entry_hash(e)
                        if ks.in_win_h(h):
                            if skips < want:
                                skips += 1
                                j -= 1
                            continue
                        sc = self._score(h, <CObj>e.obj)
                        if self.pool_n < POOL or sc > self.pool_idle[0]:
                            self._pool_add(db, kt_key(e), sc)
                        continue
                    key = self._sample(db, src)
                    if key is None:
                        break
                    if key is False:
                        continue
                    self._pool_add(db, key, self._score(0, self.last))
            k = self.pool_n - 1
            while k >= 0:
                key = self.pool_key[k]
                db = <Db>self.pool_db[k]
                self.pool_key[k] = None
                self.pool_db[k] = None
                self.pool_n -= 1
                # (slots above k are already taken: the pool shrinks from the top)
                if kt_get(&db.d.t, key) != NULL:
                    return (db, key)
                k -= 1
            if not any_keys:
                return None
        return None

    cdef object _pick(self):
        """The next victim: (Db, key), or None."""
        cdef Keyspace ks = self.ks
        cdef KeyTable src
        cdef Db db
        if self.kind == P_RANDOM:
            # as Redis: the dbs in turn, a random key of the first that has one
            for _ in range(len(ks.dbs)):
                db = <Db>ks.dbs[self.next_db % len(ks.dbs)]
                self.next_db = (self.next_db + 1) % len(ks.dbs)
                src = db.expires if self.volatile else db.d
                for _ in range(64):
                    key = self._sample(db, src)
                    if key is None:
                        break
                    if key is not False:
                        return (db, key)
            return None
        if self.kind != P_WTINYLFU:
            return self._from_pool()
        return self._pick_wtinylfu()

    cdef object _pick_wtinylfu(self):
        # a key leaving the admission window (the newest win_pct % of the
        # keys, oldest first) joins the main region; when the cache is full
        # it must beat the main region's victim (Redis's sampled LRU pick) by
        # sketch frequency, or it is the one evicted
        cdef Keyspace ks = self.ks
        cdef tuple cand, victim
        cdef int fc, fv
        cdef uint64_t hc, hv
        cdef bint vstale
        cdef Py_ssize_t cap, nkeys
        cdef PyObject* p
        cdef uint64_t reads = ks.hits + ks.misses
        cdef double idle
        if ks.now - self.rate_ms >= 100:
            # reads per ms, to tell a victim's idle time in reads
            if self.rate_ms:
                self.rate = 0.5 * self.rate + 0.5 * (reads - self.rate_reads) / \
                    <double>(ks.now - self.rate_ms)
            self.rate_ms = ks.now
            self.rate_reads = reads
        self._ghost_verdict()
        nkeys = _held(ks)
        self.win_max = <Py_ssize_t>(nkeys * self.win_pct / 100.0)
        if self.win_max < WIN_MIN:
            self.win_max = WIN_MIN
        cap = 0 if ks.win is None else len(ks.win)
        if cap < self.win_max + 16 or cap > 2 * self.win_max + 64:
            ks.win_resize(self.win_max + 16 + self.win_max // 4)
        while ks.win_n > self.win_max + 1:
            ks.win_pop()    # (the window overflowed while the cache was filling: admitted)
        while ks.win_n > self.win_max:
            cand = ks.win_pop()
            if kt_get(&(<Db>cand[0]).d.t, cand[1]) == NULL:
                continue
            victim = self._from_pool()
            if victim is None:
                return cand
            hc = <uint64_t>PyObject_Hash(cand[1])
            hv = <uint64_t>PyObject_Hash(victim[1])
            fc = sk_freq(&ks.sk, hc)
            fv = sk_freq(&ks.sk, hv)
            p = kt_get(&(<Db>victim[0]).d.t, victim[1])
            idle = <double>(<uint32_t>ks.now - (<CObj>p).lru) * self.rate * (fv if fv > 1 else 1)
            vstale = self.stale > 0 and idle > self.stale * ks.sk.period
            if fc > fv or (self.admit_ties and fc == fv) or vstale or \
                    (fc >= 6 and (_rand() & 127) == 0):
                # (a victim whose frequency is older than the sketch's memory
                # of it is evicted: hot sets that move; and Caffeine's guard
                # against an attacker keeping a hot victim: a warm newcomer
                # wins one duel in 128)
                if fc <= fv and (hc & 3) == 0 and (vstale or (self.ssel > 0 and idle > self.ssel)):
                    # a duel won by staleness, one in 4: the ghost marks both
                    sk_mark(&ks.sk, hc, False)
                    sk_mark(&ks.sk, hv, True)
                self.admitted += 1
                return victim
            self.rejected += 1
            return cand
        victim = self._from_pool()
        if victim is None:
            # nothing left outside the window
            while ks.win_n:
                cand = ks.win_pop()
                if kt_get(&(<Db>cand[0]).d.t, cand[1]) != NULL:
                    return cand
        return victim

    cdef int _ghost_verdict(self) except -1:
        # every quarter of the keys held in requests, once the ghost has
        # G_EVENTS outcomes: victims of duels won by staleness asked for again
        # more often than the newcomers that displaced them were hit, and the
        # sampler gets slower to call a key stale (at SG_OFF it does not);
        # newcomers hit more than 1.5x as often, quicker; in between (a
        # still Zipf, where the two come out about even) it stays
        cdef Keyspace ks = self.ks
        if ks.sk.reads - self.g_from >= (self.sk_keys >> 2) and \
                ks.sk.good + ks.sk.bad >= G_EVENTS:
            if ks.sk.bad > ks.sk.good:
                self.stale_g += 1
            elif 2 * ks.sk.good > 3 * ks.sk.bad:
                self.stale_g -= 1
            if self.stale_g > SG_OFF:
                self.stale_g = SG_OFF
            if self.stale_g < SG_MIN:
                self.stale_g = SG_MIN
            ks.sk.good = ks.sk.bad = 0
            self.g_from = ks.sk.reads
        self.ssel = 0.0 if self.stale_g >= SG_OFF else \
            self.stale * ks.sk.period * 2.0 ** self.stale_g
        return 0

    # ---- the run ------------------------------------------------------------

    cdef int perform(self) except -1:
        """performEvictions: evict until the data set is under its limit.
        0: under it (or evicting takes longer than tenacity allows: the cron
        goes on); 1: still over and nothing left to evict (or noeviction)."""
        cdef Keyspace ks = self.ks
        cdef Backlog bl = ks.bl
        cdef bint grouped = False
        cdef uint64_t t0, limit_ns
        cdef int n = 0, t
        cdef PyObject* p
        cdef Db was = ks.cur
        if ks.mem_ds <= ks.ds_limit:
            return 0
        if self.kind == P_NOEVICTION:
            return 1
        t0 = mono_ns()
        # Redis's evictionTimeLimitUs: 50 us x tenacity up to 10, growing
        # 15% a step above it, unlimited at 100
        limit_ns = 0xFFFFFFFFFFFFFFFFULL if self.tenacity >= 100 else \
            <uint64_t>(50000.0 * (self.tenacity if self.tenacity <= 10 else
                                  10 * 1.15 ** (self.tenacity - 10)))
        try:
            while ks.mem_ds > ks.ds_limit:
                dk = self._pick()
                if dk is None:
                    self.failed += 1
                    return 1
                if not grouped and not bl.grouping:
                    bl.group_begin()
                    grouped = True
                ks.evicted_keys += 1
                ks.lazy_free = True
                if ks.cur is not dk[0]:
                    ks.use(<Db>dk[0])
                p = kt_get(&ks.d.t, dk[1])
                t = obj_type(<CObj>p) if p != NULL else -1
                try:
                    ks.emit_del(dk[1])
                finally:
                    ks.lazy_free = False
                if ks.solo:
                    # alone, the DEL is stable as it is made: its tombstone
                    # goes now, not at the next GC pass
                    collect_key(ks, dk[1], t)
                notify(ks, N_EVICTED, b"evicted", dk[1])
                n += 1
                if (n & 15) == 0 and mono_ns() - t0 > limit_ns:
                    break
        finally:
            if grouped:
                bl.group_end()
            if ks.cur is not was:
                ks.use(was)
            self.evict_ns += mono_ns() - t0
        return 0

    def run(self):
        """perform() from Python (the cron, after a peer's batch): 1 if still
        over with nothing to evict."""
        return self.perform()

    def pool_keys(self):
        return [k for k in self.pool_key if k is not None]
