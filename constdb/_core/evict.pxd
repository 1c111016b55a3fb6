from libc.stdint cimport int64_t, uint64_t

from constdb._core.keyspace cimport Db, Keyspace
from constdb._core.ktable cimport KeyTable
from constdb._core.objects cimport CObj

# policy codes
cdef enum:
    P_NOEVICTION = 0
    P_LRU = 1
    P_LFU = 2
    P_RANDOM = 3
    P_TTL = 4
    P_WTINYLFU = 5
    POOL = 16          # Redis's EVPOOL_SIZE
    WIN_MIN = 8        # W-TinyLFU's smallest window
    # the ghost's range for stale_g: at SG_MIN the sampler calls a key stale
    # when it has been idle for 4x the keys held in reads per unit of its
    # frequency; at SG_OFF it takes no victim for staleness
    SG_MIN = 2
    SG_OFF = 6
    G_EVENTS = 32      # ghost outcomes (good + bad) a move of stale_g needs


cdef class Evictor:
    cdef public Keyspace ks
    cdef public str policy
    cdef int kind
    cdef bint volatile
    cdef public int samples
    cdef public int tenacity
    cdef public int64_t maxmemory
    cdef public double margin        # percent of maxmemory kept free for peers' effects
    cdef uint64_t pool_idle[POOL]
    cdef list pool_key               # POOL slots: key, None: empty
    cdef list pool_db                # and its Db
    cdef CObj last                   # the object of the key _sample returned
    cdef int pool_n
    # W-TinyLFU (the window itself is the keyspace's: Keyspace.win)
    cdef public Py_ssize_t win_max   # the window's size now
    cdef public double win_pct       # ... as a percentage of the keys held
    cdef public double sk_width      # sketch width per key held
    cdef public double sk_period     # increments per key held between halvings
    cdef public bint victim_lfu      # main victim by sketch frequency (else sampled LRU)
    cdef public bint admit_ties      # a newcomer as frequent as the victim is admitted
    # a victim idle for longer than stale x the sketch's period / its frequency
    # (in reads) is stale: any newcomer displaces it (0: off)
    cdef public double stale
    # the sampler counts a victim idle for longer than stale x 2**stale_g x
    # the sketch's period / its frequency as frequency 0; stale_g moves by
    # the ghost's outcomes (sketch.pxd), SG_OFF: not at all
    cdef public int stale_g
    cdef double ssel                 # that threshold in reads (0: off)
    cdef uint64_t g_from             # the sketch's reads when stale_g last moved
    cdef double rate                 # reads per ms (a moving average)
    cdef int64_t rate_ms
    cdef uint64_t rate_reads
    cdef uint64_t sk_keys            # keys held when the sketch was sized
    cdef public uint64_t admitted    # window keys that displaced a main victim
    cdef public uint64_t rejected    # window keys evicted (not admitted)
    cdef public uint64_t failed      # eviction runs that found nothing to evict
    cdef public uint64_t evict_ns    # time spent evicting
    cdef int next_db                 # allkeys-random / volatile-random: the db to try first

    cdef uint64_t _score(self, uint64_t h, CObj o)
    cdef int _pool_add(self, Db db, object key, uint64_t idle) except -1
    cdef object _sample(self, Db db, KeyTable src)
    cdef object _from_pool(self)
    cdef object _pick(self)
    cdef object _pick_wtinylfu(self)
    cdef int _size_sketch(self, Py_ssize_t nkeys) except -1
    cdef int _ghost_verdict(self) except -1
    cdef int perform(self) except -1
