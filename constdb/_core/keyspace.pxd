from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t

from constdb._core.backlog cimport Backlog
from constdb._core.clock cimport Clock
from constdb._core.codec cimport Reader, Writer
from constdb._core.ktable cimport KeyTable, kt_get
from constdb._core.merge cimport Ctx
from constdb._core.objects cimport CObj, TTLReg
from constdb._core.sketch cimport Sketch


# keyspace notification classes: Redis's NOTIFY_* bits
cdef enum:
    N_KEYSPACE = 1 << 0      # K
    N_KEYEVENT = 1 << 1      # E
    N_GENERIC = 1 << 2       # g
    N_STRING = 1 << 3        # $
    N_LIST = 1 << 4          # l
    N_SET = 1 << 5           # s
    N_HASH = 1 << 6          # h
    N_ZSET = 1 << 7          # z
    N_EXPIRED = 1 << 8       # x
    N_EVICTED = 1 << 9       # e
    N_STREAM = 1 << 10       # t
    N_KEYMISS = 1 << 11      # m
    N_MODULE = 1 << 13       # d
    N_NEW = 1 << 14          # n


cdef class Db:
    """One numbered database (SELECT n): its data (d and expires: key tables,
    ktable.pyx; the others dicts). Keyspace's d, alts,
    tombs, dead, expires, watched, blocking and ready are the current Db's
    (Keyspace.use: switching is a pointer compare, then eight assignments).
    index: its number now (SWAPDB changes which data a number shows: the
    data fields and ident move between the two Db objects; watched, blocking
    and ready stay with the number, as in Redis). ident: the stable identity
    of its data across the group (records and snapshots name it: the
    keyspace notification channel's db is `index`)."""
    cdef public int index
    cdef public int ident
    cdef public KeyTable d
    cdef public dict alts
    cdef public dict tombs
    cdef public dict dead
    cdef public KeyTable expires
    cdef public object expire_cursor
    cdef public dict watched
    cdef public dict blocking
    cdef public dict ready


cdef class Keyspace:
    # ---- numbered databases (the data dicts below are those of `cur`) ----
    cdef public Db cur            # the current db (commands: the client's; peers: the record's)
    cdef public list dbs          # index -> Db
    cdef public list by_ident     # ident -> Db (where that data shows now)
    cdef public uint64_t map_u    # ts of the index -> ident mapping (SWAPDB; LWW)
    cdef public uint64_t map_n
    cdef public int gc_db         # the db gc_step is walking
    cdef public KeyTable d        # key -> visible object (live, maybe expired)
    cdef public dict alts         # key -> [hidden live objects of other types]
    cdef public dict tombs        # key -> StrObj with no visible value (LWW tombstone)
    cdef public dict dead         # (key, type) -> list/zset/hash with no live content but
    #                               state to keep until GC (tombstones, counters)
    cdef public KeyTable expires  # key -> None: keys that may carry a TTL
    cdef public dict vv           # node -> uuid applied (other origins)
    cdef public dict cloud        # node -> set(uuid): dots seen out of order
    cdef public dict watched      # key -> [clients] (WATCH)
    cdef public uint64_t node_id
    cdef public uint64_t own_last  # VV entry of this node: its last uuid
    cdef public Clock clock
    cdef public Backlog bl
    cdef public int64_t now       # cached wall ms for this batch of commands
    cdef public uint64_t dirty    # changes since the last save
    cdef public uint64_t expired_keys
    cdef public uint64_t hits
    cdef public uint64_t misses
    cdef public uint64_t applied_remote
    cdef public object on_touch   # callable(list_of_clients) for WATCH
    cdef public object on_change  # callable(key) while a client tracks keys (CLIENT TRACKING)
    cdef public object expire_cursor
    cdef public object on_member  # callable(origin, uuid, payload) for OP_MEMBER
    cdef public object on_func  # callable(origin, uuid, payload) for OP_FUNC
    # blocking pops (constdb/blocking.py): key -> [waiters]; touched() puts a
    # changed key that has waiters in `ready` (served after the command, or
    # after a peer's batch) and calls on_ready when ready was empty
    cdef public dict blocking
    cdef public dict ready
    cdef public object on_ready
    # TTL deadlines written by other origins, in this node's clock (docs/crdt.md
    # section 6): origin skew_origin[i]'s deadline `at` is reached here at
    # at + skew_adj[i]; an origin not in the table at at + skew_default
    cdef uint64_t skew_origin[128]
    cdef int64_t skew_adj[128]
    cdef int nskew
    cdef public int64_t skew_default
    # no other member (the replication layer sets it): every local effect is
    # causally stable at once (bit writes are folded as they are made: bitval)
    cdef public bint solo
    # ---- memory and eviction (constdb/_core/evict.pyx, docs/internals.md) ----
    cdef public int64_t mem_ds    # estimated bytes of the data set (sum of objects' msz)
    cdef public int64_t ds_limit  # evict while mem_ds is above it (INT64_MAX: no maxmemory)
    cdef public int evict_mode    # access tracking: 0 LRU clock, 1 LFU word, 2 LRU + sketch
    cdef public int lfu_log_factor
    cdef public int lfu_decay_time
    cdef public uint64_t evicted_keys
    cdef Sketch sk                # W-TinyLFU's frequency sketch (evict_mode 2)
    # W-TinyLFU's admission window (evict.pyx): a ring of the newest keys
    # (win) and their databases (win_db), oldest at win_head; win_cf counts
    # the keys in it by hash slot (the sampler skips a key whose slot is
    # non-zero: rarely a key outside it)
    cdef list win                 # None: off
    cdef list win_db
    cdef Py_ssize_t win_head
    cdef public Py_ssize_t win_n
    cdef uint8_t* win_cf
    cdef uint64_t win_cmask
    cdef public Py_ssize_t win_kb   # the blocks of the key objects the ring holds
    cdef public bint remote       # applying a peer's records (their writes count as accesses)
    cdef public bint lazy_free    # the running DEL frees big values in slices (UNLINK ...)
    cdef public list lazy         # containers waiting to be freed (lazy_step)
    # ---- keyspace notifications (constdb/notify.py, docs/internals.md) ----
    # nmask: the event classes (N_*) notify-keyspace-events publishes, 0 when
    # it publishes nothing (no class, or neither K nor E): the one test a
    # write pays; on_notify(class, event, key) publishes one event
    cdef public int nmask
    cdef public object on_notify
    # CLIENT NO-TOUCH: the running command does not update access times
    cdef public bint no_touch
    cdef object ngroup_ev         # a peer's group: the last event published, on ngroup_key
    cdef object ngroup_key
    cdef object nskip_key         # the next record on this key is part of the one before
    # a key a command overwrites (deletes, then writes again): no "new" event
    # for it, as Redis's dbOverwrite (set by the handlers while notifying)
    cdef public object nreplace

    cdef int use(self, Db db) except -1
    cdef uint64_t tick(self) noexcept
    cdef uint64_t vv_get(self, uint64_t node)
    cdef bint seen(self, uint64_t node, uint64_t uuid)
    cdef CObj lookup(self, object key)
    cdef CObj lookup_r(self, object key)
    cdef CObj lookup_as(self, object key, type t, bint read, bint* wrong)
    cdef bint is_expired(self, CObj o) noexcept
    cdef int64_t local_at(self, TTLReg t) noexcept
    cdef int expire_key(self, object key) except -1
    cdef int touched(self, object key, bint mem=*) except -1
    cdef int settle(self, object key, CObj o) except -1
    cdef int _settle(self, object key, CObj o) except -1
    cdef CObj find(self, object key, int t, bint create)
    cdef int win_push(self, Db db, object key) except -1
    cdef object win_pop(self)
    cdef bint in_win_h(self, uint64_t h) noexcept
    cdef list objects_of(self, object key)

    # key-level local effects (the types' own are in their modules: t_*.emit_*)
    cdef int emit_ttl(self, object key, int64_t at) except -1
    cdef int emit_clear(self, object key, CObj o) except -1
    cdef int emit_del(self, object key) except -1
    cdef int emit_del_other_types(self, object key, int keep_type) except -1

    cdef int apply_one(self, uint64_t origin, Reader r) except -1
    cdef int _apply_one(self, uint64_t origin, Reader r, uint8_t opb, uint64_t u,
                        Py_ssize_t end) except -1
    cdef int check_records(self, Reader r, uint64_t max_uuid) except -1

    # the causal context and the TTL register, for the type modules' rules
    cdef int _note_unseen(self, list dots) except -1
    cdef bint _in_cloud(self, uint64_t node, uint64_t uuid)
    cdef int _promote(self, object key) except -1
    cdef int _ttl_on(self, object key, CObj o, int64_t at, uint64_t u, uint64_t n) except -1
    cdef int _ttl_others(self, object key, CObj o, int64_t at, uint64_t u, uint64_t n) except -1
    cdef int _clear_done(self, object key, CObj o, uint64_t u, uint64_t n) except -1


# The type table: each type module fills one TypeOps with its functions and
# registers it when imported (register_type_ops); keyspace and snapshot reach
# a type's rules through it, by type code (an object's: objects.obj_type) or
# by record op (TypeOps.ops). constdb/_core/__init__.py imports every type
# module.
ctypedef struct TypeOps:
    int code                      # objects.T_*
    const char* name              # TYPE's reply
    uint8_t ops[8]                # the record ops it applies (0 ends the list)
    CObj (*new)()                 # an empty object
    bint (*live)(CObj o) noexcept  # it has something visible
    # it is not live but holds state that must outlive it (it waits in
    # Keyspace.dead); NULL: a type that never does
    bint (*keeps)(CObj o) noexcept
    # ts of the newest write it still holds (decides which type a key shows)
    void (*last_ts)(CObj o, uint64_t* u, uint64_t* n) noexcept
    # a remote record of one of its ops, read from r (at its payload)
    int (*apply)(Keyspace ks, uint8_t op, uint64_t origin, uint64_t u, Reader r) except -1
    # checks such a record's payload without applying it (r ends where the
    # record ends; it must read all of it): raises ValueError on a bad value
    # (a NaN score, an unknown flag or mode). NULL: only the framing is checked
    int (*check)(uint8_t op, uint64_t u, Reader r) except -1
    int (*clear)(Keyspace ks, object key, CObj o) except -1     # DEL of o (local effect)
    object (*value)(CObj o)       # Python view of the visible value
    list (*describe)(CObj o)      # DESC name/value pairs of its CRDT state
    # GC of what is causally stable; sets empty when nothing is left. NULL: none
    Py_ssize_t (*gc)(CObj o, uint64_t stable, bint* empty) except -1
    # snapshots (snapshot.pyx writes the type code and the TTL register)
    int (*encode)(Writer w, CObj o) except -1
    CObj (*decode)(Reader r, int version)
    int (*merge)(CObj a, CObj b, Ctx ca, Ctx cb, uint64_t clock) except -1
    bint (*filter)(CObj o, Ctx other, uint64_t clock) except -1


cdef int register_type_ops(TypeOps* t) except -1
cdef TypeOps* type_ops(int code) noexcept
cdef TypeOps* ops_of(CObj o) noexcept

cdef bint obj_live(CObj o) noexcept
cdef Py_ssize_t mem_est(CObj o) noexcept
cdef Py_ssize_t key_est(object key) noexcept
cdef void mem_update(Keyspace ks, object key, CObj o) noexcept
cdef uint32_t lfu_decr(Keyspace ks, uint32_t w) noexcept
cdef TTLReg _key_ttl(Keyspace ks, object key)
cdef int _ttl_write(Keyspace ks, object key, int64_t at, uint64_t u, uint64_t n) except -1
cdef int _emptied(Keyspace ks, object key) except -1
cdef int collect_key(Keyspace ks, object key, int t) except -1


cdef inline int notify(Keyspace ks, int cls, object event, object key) except -1:
    """A keyspace event of class cls (N_*) on key: published when
    notify-keyspace-events has the class (one flag test otherwise)."""
    if ks.nmask & cls:
        ks.on_notify(cls, event, key)
    return 0


cdef inline int replacing(Keyspace ks, object key) except -1:
    """The running command overwrites key (no "new" event when it is made
    again); replacing(ks, None) when done."""
    if ks.nmask & N_NEW:
        ks.nreplace = key
    return 0


cdef inline int notify_gone(Keyspace ks, object key) except -1:
    """"del" when a removal (a pop, SREM, HDEL...) left key with nothing
    visible, as Redis deletes an emptied collection."""
    if ks.nmask & N_GENERIC and (kt_get(&ks.d.t, key) == NULL):
        ks.on_notify(N_GENERIC, b"del", key)
    return 0


cdef inline bint store_begin(Keyspace ks, object dst) except -1:
    """A STORE command is about to overwrite dst (notifications on): whether
    dst exists (an expired one is deleted first, as Redis's lookupKeyWrite);
    if it does, making it again is no "new" event."""
    cdef bint had
    if not ks.nmask:
        return False
    had = ks.lookup(dst) is not None
    if had:
        replacing(ks, dst)
    return had


cdef inline int store_end(Keyspace ks, object dst, bint had, Py_ssize_t n, int cls,
                          object event) except -1:
    """After the STORE: its event if dst holds n > 0 elements, "del" if an
    empty result deleted dst."""
    if not ks.nmask:
        return 0
    ks.nreplace = None
    if n:
        ks.on_notify(cls, event, dst) if ks.nmask & cls else None
    elif had and ks.nmask & N_GENERIC:
        ks.on_notify(N_GENERIC, b"del", dst)
    return 0
