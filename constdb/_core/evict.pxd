from libc.stdint cimport int64_t, uint64_t

from constdb._core.keyspace cimport Db, Keyspace
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
    cdef public dict win             # W-TinyLFU's admission window: (Db, key) -> None, oldest first
    cdef public Py_ssize_t win_max
    cdef public uint64_t admitted    # window keys that displaced a main victim
    cdef public uint64_t rejected    # window keys evicted (not admitted)
    cdef public uint64_t failed      # eviction runs that found nothing to evict
    cdef public uint64_t evict_ns    # time spent evicting
    cdef int next_db                 # allkeys-random / volatile-random: the db to try first

    cdef uint64_t _score(self, object key, CObj o)
    cdef int _pool_add(self, Db db, object key, uint64_t idle) except -1
    cdef object _sample(self, Db db, dict src)
    cdef object _from_pool(self)
    cdef object _pick(self)
    cdef int perform(self) except -1
