from libc.stdint cimport int64_t, uint8_t, uint64_t

from constdb._core.backlog cimport Backlog
from constdb._core.clock cimport Clock
from constdb._core.codec cimport Reader, Writer
from constdb._core.objects cimport (
    CObj, CntEntry, Dot, HashObj, MVObj, SetObj, StrObj, TTLReg, Ver,
)

cdef enum:
    # effect record ops (docs/replication.md lists the payloads)
    OP_REG = 1
    OP_CNT = 2
    OP_TTL = 3
    OP_SADD = 4
    OP_SREM = 5
    OP_SCLEAR = 6
    OP_HSET = 7
    OP_HREM = 8
    OP_HCLEAR = 9
    OP_MV = 10
    OP_MVCLEAR = 11
    OP_MEMBER = 32        # membership (replication layer)

    TTL_KEEP = 0
    TTL_WRITE = 1

    # str_int results
    STR_ABSENT = 0
    STR_INT = 1
    STR_NOTINT = 2


cdef class Keyspace:
    cdef public dict d            # key -> visible object (live, maybe expired)
    cdef list pick                # RANDOMKEY's random access to d's keys (cmd_keys); None: build
    cdef dict pick_d              # the d it was built from
    cdef public dict alts         # key -> [hidden live objects of other types]
    cdef public dict tombs        # key -> StrObj with no visible value (LWW tombstone)
    cdef public dict dead         # (key, type) -> list/zset/hash with no live content but
                                  # state to keep until GC (tombstones, counters)
    cdef public dict expires      # key -> None: keys that may carry a TTL
    cdef public dict vv           # node -> uuid applied (other origins)
    cdef public dict cloud        # node -> set(uuid): dots seen out of order
    cdef public dict watched      # key -> [clients] (WATCH)
    cdef public uint64_t node_id
    cdef public uint64_t own_last # VV entry of this node: its last uuid
    cdef public Clock clock
    cdef public Backlog bl
    cdef public int64_t now       # cached wall ms for this batch of commands
    cdef public uint64_t dirty    # changes since the last save
    cdef public uint64_t expired_keys
    cdef public uint64_t hits
    cdef public uint64_t misses
    cdef public uint64_t applied_remote
    cdef public object on_touch   # callable(list_of_clients) for WATCH
    cdef public object expire_cursor
    cdef public object on_member  # callable(origin, uuid, payload) for OP_MEMBER

    cdef uint64_t tick(self) noexcept
    cdef uint64_t vv_get(self, uint64_t node)
    cdef bint seen(self, uint64_t node, uint64_t uuid)
    cdef CObj lookup(self, object key)
    cdef CObj lookup_r(self, object key)
    cdef CObj lookup_as(self, object key, type t, bint read, bint* wrong)
    cdef bint is_expired(self, CObj o) noexcept
    cdef int expire_key(self, object key) except -1
    cdef int touched(self, object key) except -1
    cdef int settle(self, object key, CObj o) except -1
    cdef CObj find(self, object key, int t, bint create)
    cdef list objects_of(self, object key)

    # local effects: compute, apply through the same code a remote record uses, log
    cdef int emit_reg(self, object key, object val, int ttl_mode, int64_t at) except -1
    cdef int emit_reg_at(self, object key, StrObj o, bint shown, object val, int ttl_mode,
                         int64_t at) except -1
    cdef int emit_cnt(self, object key, StrObj o, int64_t delta) except -1
    cdef int emit_ttl(self, object key, int64_t at) except -1
    cdef int emit_sadd(self, object key, object member) except -1
    cdef int emit_srem(self, object key, SetObj o, object member) except -1
    cdef int emit_hset(self, object key, object field, object val) except -1
    cdef int emit_hset_at(self, object key, HashObj o, bint shown, object field,
                          object val) except -1
    cdef int emit_hdel(self, object key, HashObj o, object field) except -1
    cdef int emit_mv(self, object key, object val, bint replace) except -1
    cdef int emit_clear(self, object key, CObj o) except -1
    cdef int emit_del(self, object key) except -1
    cdef int emit_del_other_types(self, object key, int keep_type) except -1

    cdef int apply_one(self, uint64_t origin, Reader r) except -1

    # internals (the CRDT rules)
    cdef int _note_unseen(self, list dots) except -1
    cdef bint _in_cloud(self, uint64_t node, uint64_t uuid)
    cdef int _promote(self, object key) except -1
    cdef int _ttl_on(self, object key, CObj o, int64_t at, uint64_t u, uint64_t n) except -1
    cdef int _ttl_others(self, object key, CObj o, int64_t at, uint64_t u, uint64_t n) except -1
    cdef int _reg_on(self, object key, StrObj o, object val, uint64_t u, uint64_t n,
                     int ttl_mode, int64_t at, list obs, bint shown) except -1
    cdef int _cnt_on(self, object key, StrObj o, int64_t delta, uint64_t u, uint64_t n,
                     bint shown) except -1
    cdef int _sadd_on(self, object key, SetObj o, object member, uint64_t u, uint64_t n,
                      list removes) except -1
    cdef int _srem_on(self, object key, SetObj o, object member, list dots) except -1
    cdef int _hset_on(self, object key, HashObj o, object field, object val, uint64_t u,
                      uint64_t n, list removes) except -1
    cdef int _hrem_on(self, object key, HashObj o, object field, list dots) except -1
    cdef int _mv_on(self, object key, MVObj o, object val, uint64_t u, uint64_t n,
                    list removes) except -1
    cdef int _clear_done(self, object key, CObj o, uint64_t u, uint64_t n) except -1


cdef object str_get(StrObj o)
cdef int str_int(StrObj o, int64_t* out) noexcept
cdef dict str_cnts(StrObj o)
cdef int str_set_cnts(StrObj o, object cnts) except -1
cdef bint str_live(StrObj o) noexcept
cdef bint obj_live(CObj o) noexcept
cdef bint stringmatch(const char* p, Py_ssize_t plen, const char* s, Py_ssize_t slen, bint nocase) noexcept
cdef bint match_bytes(bytes pat, bytes s) noexcept
