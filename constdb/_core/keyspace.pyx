"""The keyspace: where every key's objects live, the causal context (VV, dot
cloud), the key's TTL register and expiry, and the dispatch to the types.

The CRDT rules of each type live in its module (t_string, t_set, t_hash,
t_mv, t_list, t_zset): every change to an object goes through one of that
module's `_*_on` functions. A local write (its `emit_*`) draws a uuid, calls
that function, and appends the same effect as a record to the backlog; a
record from another origin (`Keyspace.apply_one`) is handed, by its op, to the
type that registered that op, which decodes it and calls the same function.
So a local write and its replay on a peer cannot disagree. Types reach
keyspace through `find`, `settle`, `touched` and the TTL and context helpers
below; keyspace reaches them through the type table (keyspace.pxd, TypeOps).

Where a key lives:
  d       the visible object of each key (live: it has a value)
  alts    rare: live objects of other types on the same key, written
          concurrently on other nodes (see docs/crdt.md section 4)
  tombs   string registers that hold no value (DEL, expiry): their ts must
          outlive the value so that an older concurrent SET still loses
  dead    objects with nothing visible but state to keep until GC
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.dict cimport PyDict_GetItem, PyDict_Next
from cpython.object cimport PyObject
from libc.stdint cimport INT64_MAX, int64_t, uint8_t, uint32_t, uint64_t
from libc.stdlib cimport calloc, free

from constdb._core.backlog cimport Backlog
from constdb._core.clock cimport Clock, wall_ms
from constdb._core.codec cimport Reader, Writer
from constdb._core.dots cimport _ttl_of, _ttlreg
from constdb._core.objects cimport (
    T_STRING, CObj, CntEntry, Dot, StrObj, TTLReg, bytes_block, new_str, obj_type, str_cnt,
    str_nocnt, str_node, sv_alloc, sv_get, sv_none, sv_tail, ts_gt,
)
from constdb._core.ops cimport (
    LINS_SAME, OP_BITS, OP_CNT, OP_FCNT, OP_FUNC, OP_HCNT, OP_HFCNT, OP_HLLADD, OP_HLLCACHE,
    OP_HLLREG, OP_HREM, OP_HSET, OP_HSETC, OP_LINS, OP_LREM, OP_LSET, OP_MAX, OP_MEMBER, OP_MV,
    OP_REG, OP_SADD, OP_SELECT, OP_SREM, OP_SWAPDB, OP_TTL, OP_ZREM, OP_ZW,
)
from constdb._core.sketch cimport sk_free, sk_touch
from constdb._core.objects cimport HashObj, ListObj, MVObj, SetObj, Ver, ZSetObj
from cpython.object cimport PyObject_Hash
from constdb._core.ktable cimport (
    KeyTable, kt_del, kt_entry, kt_entry_bytes, kt_entry_hash, kt_get, kt_get_raw, kt_key, kt_len,
    kt_next, kt_set, kt_slots,
)

from constdb._core.dots import ClockAheadError

# (Python names kept here for their callers: admin commands, tools)

TYPE_NAMES = {}      # type code -> TYPE's reply, filled as types register


# -------------------------------------------------------------- type table ----

cdef enum:
    NTYPES = 32          # type codes are below this

cdef TypeOps* _TYPES[NTYPES]          # by type code; NULL: not registered
cdef TypeOps* _OPS[OP_MAX + 1]        # by record op: the type that applies it


cdef object _emit_opaque(Keyspace ks, uint8_t op, object apply, bytes payload):
    """A record of the replication layer's own (OP_MEMBER, OP_FUNC): applied
    through its callback, as the same record from a peer is, and logged."""
    cdef uint64_t u = ks.tick()
    cdef Writer w
    if apply is not None:
        apply(ks.node_id, u, payload)
    w = ks.bl.begin(op, u)
    w.put_raw(PyBytes_AS_STRING(payload), PyBytes_GET_SIZE(payload))
    ks.bl.end()
    return u


cdef int register_type_ops(TypeOps* t) except -1:
    """Called by a type module when it is imported: its TypeOps (a static
    struct of that module) goes in the table, and each of its record ops is
    routed to it."""
    cdef int i
    cdef uint8_t op
    if t.code < 0 or t.code >= NTYPES:
        raise ValueError("bad type code %d" % t.code)
    if _TYPES[t.code] != NULL and _TYPES[t.code] != t:
        raise ValueError("type code %d registered twice" % t.code)
    for i in range(8):
        op = t.ops[i]
        if op == 0:
            break
        if (op > OP_MAX or op == OP_TTL or op == OP_MEMBER or op == OP_FUNC
                or op == OP_SELECT or op == OP_SWAPDB):
            raise ValueError("bad record op %d" % op)
        if _OPS[op] != NULL and _OPS[op] != t:
            raise ValueError("record op %d registered twice" % op)
    for i in range(8):
        op = t.ops[i]
        if op == 0:
            break
        _OPS[op] = t
    _TYPES[t.code] = t
    TYPE_NAMES[t.code] = (<bytes>t.name).decode()
    return 0


cdef TypeOps* type_ops(int code) noexcept:
    if code < 0 or code >= NTYPES:
        return NULL
    return _TYPES[code]


cdef TypeOps* ops_of(CObj o) noexcept:
    """o's type's TypeOps (every object's type is registered: it was made
    by its type module)."""
    return _TYPES[obj_type(o)]


# ---------------------------------------------------------------- helpers ----

cdef void _last_ts(CObj o, uint64_t* u, uint64_t* n) noexcept:
    """ts of the newest write that o still holds: decides which type a key shows
    when concurrent writes left objects of two types on it. It is a function of
    o's state (its surviving dots, its register and counter entries), never of
    the order effects arrived in: an object dropped when it went empty and made
    again later must compare as one that stayed (docs/crdt.md section 5)."""
    ops_of(o).last_ts(o, u, n)


cdef bint _newer(CObj a, CObj b) noexcept:
    cdef uint64_t au, an, bu, bn
    _last_ts(a, &au, &an)
    _last_ts(b, &bu, &bn)
    return ts_gt(au, an, bu, bn)


# The TTL register is one LWW register per key (docs/crdt.md section 6), kept on
# every object of the key (shown, hidden, tombstone). Objects made later copy
# it, and a key left with no object keeps it in a tombstone, so that what a
# node holds does not depend on the order effects arrived in (docs/crdt.md section 5).

cdef TTLReg _key_ttl(Keyspace ks, object key):
    """The key's TTL register as its objects and tombstone hold it (None: never
    written)."""
    cdef TTLReg best = None, t
    cdef list cands = ks.objects_of(key)
    if ks.tombs:
        tomb = ks.tombs.get(key)
        if tomb is not None:
            cands.append(tomb)
    for x in cands:
        t = _ttl_of(<CObj>x)
        if t is not None and (best is None or ts_gt(t.uuid, t.node, best.uuid, best.node)):
            best = t
    return best


cdef int _ttl_write(Keyspace ks, object key, int64_t at, uint64_t u, uint64_t n) except -1:
    """A write of key's TTL register (EXPIRE family, PERSIST, a clear): every
    object of key and its tombstone take it; a key with neither keeps it in a
    tombstone (an object made later by a concurrent write copies it)."""
    cdef bint held = False
    cdef StrObj s
    for x in ks.objects_of(key):
        ks._ttl_on(key, <CObj>x, at, u, n)
        held = True
    if ks.tombs:
        tomb = ks.tombs.get(key)
        if tomb is not None:
            ks._ttl_on(key, <CObj>tomb, at, u, n)
            held = True
    if not held:
        s = new_str()
        s.ttl = _ttlreg(at, u, n)
        ks.tombs[key] = s
    return 0


cdef int _emptied(Keyspace ks, object key) except -1:
    """A local removal left key with no live object. In Redis the key's TTL
    goes with it, and a key made again later has none: write the register
    (no expiry) if it held one, as its own effect after the removal."""
    cdef TTLReg t
    if (kt_get(&ks.d.t, key) != NULL):
        return 0
    t = _key_ttl(ks, key)
    if t is not None and t.at != 0:
        ks.emit_ttl(key, 0)
    return 0


cdef int _clear_stale_ttl(Keyspace ks, object key) except -1:
    """DEL of a key that is absent here (RENAME/COPY clear their destination
    first), while its TTL register, in a tombstone, still holds an expiry (a
    concurrent EXPIRE won over the write that removed the key): the key made
    next must have no TTL, as in Redis, so the DEL writes the register."""
    cdef PyObject* p = PyDict_GetItem(ks.tombs, key)
    cdef CObj t
    if p == NULL:
        return 0
    t = <CObj>p
    if t.ttl is not None and (<TTLReg>t.ttl).at != 0:
        ks.emit_ttl(key, 0)
    return 0


cdef int _drop_ttl_tomb(Keyspace ks, object key) except -1:
    """A live object now holds key's TTL register (it copied it when made): a
    tombstone that held only the register goes."""
    cdef PyObject* p = PyDict_GetItem(ks.tombs, key)
    cdef StrObj s
    if p == NULL:
        return 0
    s = <StrObj>p
    if s.uuid == 0 and str_node(s) == 0 and str_nocnt(s) and sv_none(s):
        del ks.tombs[key]
    return 0


cdef int _keep_ttl(Keyspace ks, object key, CObj o) except -1:
    """o (not a string) went empty: if nothing else on key holds the TTL
    register, a tombstone keeps it."""
    cdef StrObj s
    cdef TTLReg t
    if o.ttl is None or (kt_get(&ks.d.t, key) != NULL) or (ks.tombs and key in ks.tombs):
        return 0
    if ks.alts and key in ks.alts:
        return 0
    t = <TTLReg>o.ttl
    if t.uuid == 0 and t.node == 0:
        return 0
    s = new_str()
    s.ttl = _ttlreg(t.at, t.uuid, t.node)
    ks.tombs[key] = s
    return 0


cdef bint obj_live(CObj o) noexcept:
    return ops_of(o).live(o)


cdef inline void _dead_ttl(Keyspace ks, object key, CObj o) noexcept:
    # an object kept in dead holds no TTL register: the key's lives on in the
    # tombstone (_keep_ttl), and find() gives the object a copy when it is live again
    if o.ttl is not None and _keeps_state(o):
        o.ttl = None


cdef bint _keeps_state(CObj o) noexcept:
    """o is not live but holds what must outlive it (list tombstones, removed
    sorted-set members, hash field counters): it waits in Keyspace.dead."""
    cdef TypeOps* t = ops_of(o)
    return t.keeps != NULL and t.keeps(o)


# ---------------------------------------------------- memory and access ----
# (evict.pyx has eviction itself; docs/internals.md "Memory and eviction")
# An object's estimated bytes (mem_est) are calibrated against RSS growth
# (benchmarks/bench_cache.py --calibrate): pymalloc rounds a block up to 16
# bytes, a dict entry costs its slot and index at the dict's load factor.

cdef inline Py_ssize_t _balloc(object b) noexcept:
    # a bytes object's block: 33 bytes of header + its length, rounded
    cdef Py_ssize_t n
    if type(b) is bytes:
        return bytes_block(<bytes>b)
    elif b is None:
        return 0
    else:
        n = 33 + len(b) if type(b) is bytearray else 128
    return (n + 15) & ~15 if n <= 512 else n + 16


cdef inline Py_ssize_t _sample_bytes(dict d, bint vals) noexcept:
    # mean block size of up to 8 of d's first keys (vals: and of their
    # values, a hash's Ver)
    cdef Py_ssize_t pos = 0, n = 0, tot = 0
    cdef PyObject* k
    cdef PyObject* v
    while n < 8 and PyDict_Next(d, &pos, &k, &v):
        tot += _balloc(<object>k)
        if vals and type(<object>v) is Ver:
            tot += _balloc((<Ver>v).val)
        n += 1
    return tot // n if n else 0


cdef enum:
    DICT_ENTRY = 48     # a dict entry and its index slot, on average


cdef Py_ssize_t _waiting_est(dict d, bint dead) noexcept:
    # tombs or dead: the mean of up to 16 of the first entries (the key's
    # dict entry, its bytes (and its (key, type) tuple), the object),
    # times the entries
    cdef Py_ssize_t pos = 0, n = 0, tot = 0
    cdef PyObject* k
    cdef PyObject* v
    cdef object key
    while n < 16 and PyDict_Next(d, &pos, &k, &v):
        key = <object>k
        if dead:
            tot += 64
            key = (<tuple>key)[0]
        tot += DICT_ENTRY + mem_est(<CObj>v)
        if type(key) is bytes:
            tot += bytes_block(<bytes>key)
        n += 1
    return tot * len(d) // n if n else 0


cdef Py_ssize_t key_est(object key) noexcept:
    """The bytes a key costs beyond its object: its entry in the key table
    (one block: 16 bytes + the key, ktable.h). The tables' slot arrays are
    counted whole, apart from the data set (Keyspace.table_bytes)."""
    return kt_entry_bytes(PyBytes_GET_SIZE(key) if isinstance(key, bytes) else 0)


cdef Py_ssize_t mem_est(CObj o) noexcept:
    """Estimated bytes held by o (O(1): collections sample 8 members)."""
    cdef type t = type(o)
    cdef Py_ssize_t n, base = 80
    cdef object c
    if o.ttl is not None:
        base += 48
    if t is StrObj:
        # the object's block: 64, and the tail it was made with (a value
        # that fits there held in it; objects.new_str_for), a value of at
        # most 7 bytes inline, a longer one in a buffer of its own
        # (objects.sv_set, sv_alloc)
        base += sv_tail(<StrObj>o) - 16
        c = str_cnt(<StrObj>o)
        if type(c) is CntEntry:
            base += 64
        elif c is not None:
            base += 64 + 96 * len(<dict>c)
        n = sv_alloc(<StrObj>o)
        if n >= 0:
            return base + n
        return base + _balloc(sv_get(<StrObj>o))
    if t is SetObj:
        n = len((<SetObj>o).m)
        return base + 64 + n * (36 + 32 + _sample_bytes((<SetObj>o).m, False))
    if t is HashObj:
        n = len((<HashObj>o).f)
        # field entry, its Ver (48), field and value (sampled)
        return base + 64 + n * (36 + 48 + _sample_bytes((<HashObj>o).f, True))
    if t is ZSetObj:
        n = len((<ZSetObj>o).m)
        # dict entry, ZEnt (64: its dot and register in it, no counters), the
        # index's node (32 for 3 in 4, 16 more a level above); the members'
        # own blocks, counted as they come and go (ZSetObj.mb, t_zset)
        return base + 128 + n * (36 + 64 + 36) + (<ZSetObj>o).mb
    if t is ListObj:
        n = len((<ListObj>o).ids)
        # LElem (112), ids entry (56), block slot (8), value (~48); packed blocks: their
        # buffers and objects (t_list.pyx)
        return base + 128 + n * (112 + 56 + 8 + 60) + (<ListObj>o).pbytes
    if t is MVObj:
        return base + 64 * (1 + len((<MVObj>o).vers))
    return base


cdef inline void _mem_update(Keyspace ks, object key, CObj o) noexcept:
    cdef Py_ssize_t m = mem_est(o) + key_est(key)
    if o.ttl is not None and (<TTLReg>o.ttl).at != 0:
        m += key_est(key)     # (its entry in the expires table too)
    if m > <Py_ssize_t>0xFFFFFFF0:    # (typed: a bare literal this big compares as a Python int)
        m = <Py_ssize_t>0xFFFFFFF0
    ks.mem_ds += m - <Py_ssize_t>o.msz
    o.msz = <uint32_t>m


cdef int _mem_recount(Keyspace ks, object key, CObj o) except -1:
    # o's bytes from scratch: a sorted set's member bytes (ZSetObj.mb) summed again
    cdef Py_ssize_t mb = 0
    if type(o) is ZSetObj:
        for m in (<ZSetObj>o).m:
            mb += bytes_block(<bytes>m)
        (<ZSetObj>o).mb = mb
    o.msz = 0
    _mem_update(ks, key, o)
    return 0


cdef void mem_update(Keyspace ks, object key, CObj o) noexcept:
    """touched()'s memory count of o, d[key], for a type module that has o
    at hand (it then calls touched(key, False): no second lookup of key)."""
    if o.msz:
        _mem_update(ks, key, o)


cdef inline void _mem_drop(Keyspace ks, CObj o) noexcept:
    ks.mem_ds -= <Py_ssize_t>o.msz
    o.msz = 0


cdef uint64_t _rng = 0x2545F4914F6CDD1DULL


cdef inline double _rand01() noexcept:
    global _rng
    _rng ^= _rng << 13
    _rng ^= _rng >> 7
    _rng ^= _rng << 17
    return <double>(_rng >> 11) * (1.0 / 9007199254740992.0)


cdef uint32_t lfu_decr(Keyspace ks, uint32_t w) noexcept:
    """Redis's LFUDecrAndReturn: the counter of LFU word w after its decay."""
    cdef uint32_t ldt = (w >> 8) & 0xFFFF, counter = w & 255
    cdef uint32_t now = <uint32_t>((ks.now // 60000) & 0xFFFF), el, periods
    el = now - ldt if now >= ldt else 65535 - ldt + now
    periods = el // <uint32_t>ks.lfu_decay_time if ks.lfu_decay_time > 0 else 0
    if periods:
        counter = 0 if periods > counter else counter - periods
    return counter


cdef inline void _access(Keyspace ks, CObj o) noexcept:
    # Redis's LRU clock / updateLFU, on every lookup of a key's object
    cdef uint32_t c
    cdef double base
    if ks.evict_mode != 1:
        o.lru = <uint32_t>ks.now
        return
    c = lfu_decr(ks, o.lru)
    if c < 255:
        base = <double>c - 5.0
        if base < 0:
            base = 0
        if _rand01() < 1.0 / (base * ks.lfu_log_factor + 1.0):
            c += 1
    o.lru = (<uint32_t>((ks.now // 60000) & 0xFFFF) << 8) | c


cdef inline void _new_access(Keyspace ks, CObj o) noexcept:
    # a new object: the clock now, or LFU_INIT_VAL (5)
    if ks.evict_mode == 1:
        o.lru = (<uint32_t>((ks.now // 60000) & 0xFFFF) << 8) | 5
    else:
        o.lru = <uint32_t>ks.now


cdef inline CObj _lookup(Keyspace ks, object key, bint read):
    # Keyspace.lookup / lookup_r
    cdef PyObject* p = kt_get(&ks.d.t, key)
    cdef CObj o
    if ks.evict_mode == 2 and not ks.no_touch and (p != NULL or not read):
        # W-TinyLFU's sketch counts a request once: a hit, or a write to a
        # missing key (not the read miss before it: a read-through client's
        # GET then SET count one); and settles the key's ghost mark
        sk_touch(&ks.sk, <uint64_t>PyObject_Hash(key), p != NULL)
    if p == NULL:
        return None
    o = <CObj>p
    if o.ttl is not None and ks.is_expired(o):
        ks.expire_key(key)
        return None
    if not ks.no_touch:  # CLIENT NO-TOUCH
        _access(ks, o)
    return o


# --------------------------------------------------------------- keyspace ----

class RecordError(ValueError):
    """A peer's record that does not decode or holds a bad value."""


class ClockDriftError(RecordError):
    """A peer's clock further ahead of this node's wall clock than
    max_clock_drift allows."""


cdef class Db:
    def __init__(self, int index):
        self.index = index
        self.ident = index
        self.d = KeyTable()
        self.alts = {}
        self.tombs = {}
        self.dead = {}
        self.expires = KeyTable()
        self.expire_cursor = 0
        self.watched = {}
        self.blocking = {}
        self.ready = {}

    def __repr__(self):
        return "<Db %d ident %d keys %d>" % (self.index, self.ident, len(self.d))


cdef class Keyspace:
    def __init__(self, uint64_t node_id, Backlog backlog=None, int databases=16):
        if databases < 1:
            raise ValueError("databases must be at least 1")
        self.dbs = [Db(i) for i in range(databases)]
        self.by_ident = list(self.dbs)
        self.map_u = 0
        self.map_n = 0
        self.vv = {}
        self.cloud = {}
        self.node_id = node_id
        self.own_last = 0
        self.clock = Clock()
        self.bl = backlog if backlog is not None else Backlog()
        self.now = wall_ms()
        self.dirty = 0
        self.expired_keys = 0
        self.hits = 0
        self.misses = 0
        self.applied_remote = 0
        self.on_touch = None
        self.on_member = None
        self.on_func = None
        self.on_ready = None
        self.expire_cursor = 0
        self.nskew = 0
        self.skew_default = 0
        self.mem_ds = 0
        self.ds_limit = INT64_MAX
        self.evict_mode = 0
        self.lfu_log_factor = 10
        self.lfu_decay_time = 1
        self.evicted_keys = 0
        self.win = None
        self.win_head = self.win_n = self.win_kb = 0
        self.win_cf = NULL
        self.lazy_free = False
        self.lazy = []
        self.nmask = 0
        self.on_notify = None
        self.no_touch = False
        self.ngroup_ev = None
        self.ngroup_key = None
        self.nskip_key = None
        self.use(<Db>self.dbs[0])

    def __dealloc__(self):
        sk_free(&self.sk)
        if self.win_cf != NULL:
            free(self.win_cf)

    # ---- W-TinyLFU's admission window (evict.pyx) ----

    def win_resize(self, Py_ssize_t cap):
        """A window ring of cap keys (0: off), keeping the newest keys."""
        cdef list keep = []
        cdef uint64_t m = 64
        while self.win_n:
            keep.append(self.win_pop())
        if self.win_cf != NULL:
            free(self.win_cf)
            self.win_cf = NULL
        self.win_head = self.win_n = 0
        if cap <= 0:
            self.win = self.win_db = None
            return
        while m < <uint64_t>(4 * cap):
            m <<= 1
        self.win_cf = <uint8_t*>calloc(m, 1)
        if self.win_cf == NULL:
            raise MemoryError()
        self.win_cmask = m - 1
        self.win = [None] * cap
        self.win_db = [None] * cap
        for dk in keep[-cap:]:
            self.win_push(<Db>dk[0], dk[1])

    def win_len(self):
        return self.win_n

    def win_cap(self):
        return 0 if self.win is None else len(self.win)

    cdef int win_push(self, Db db, object key) except -1:
        # (the filter counts the key's hash)
        cdef Py_ssize_t cap = len(self.win), i
        cdef uint64_t s
        if self.win_n == cap:
            self.win_pop()      # (full: the oldest joins the main region)
        i = self.win_head + self.win_n
        if i >= cap:
            i -= cap
        self.win[i] = key
        self.win_db[i] = db
        if type(key) is bytes:
            # (the ring keeps the key's object alive: the table holds the
            # key's bytes in its entry, not this object)
            self.win_kb += bytes_block(<bytes>key)
        s = (<uint64_t>PyObject_Hash(key) * 0x9E3779B97F4A7C15ULL) >> 32
        if self.win_cf[s & self.win_cmask] < 255:
            self.win_cf[s & self.win_cmask] += 1
        self.win_n += 1
        return 0

    cdef object win_pop(self):
        """The oldest (Db, key) of the window (None: empty)."""
        cdef object key, db
        cdef uint64_t s
        if self.win_n == 0:
            return None
        key = self.win[self.win_head]
        db = self.win_db[self.win_head]
        self.win[self.win_head] = None
        self.win_db[self.win_head] = None
        self.win_head += 1
        if self.win_head == len(self.win):
            self.win_head = 0
        self.win_n -= 1
        if type(key) is bytes:
            self.win_kb -= bytes_block(<bytes>key)
        s = (<uint64_t>PyObject_Hash(key) * 0x9E3779B97F4A7C15ULL) >> 32
        if 0 < self.win_cf[s & self.win_cmask] < 255:
            self.win_cf[s & self.win_cmask] -= 1
        return (db, key)

    cdef bint in_win_h(self, uint64_t h) noexcept:
        # whether the window may hold the key of hash h (PyObject_Hash or
        # kt_entry_hash): its filter's count (a collision says yes)
        cdef uint64_t s
        if self.win_cf == NULL:
            return False
        s = (h * 0x9E3779B97F4A7C15ULL) >> 32
        return self.win_cf[s & self.win_cmask] != 0

    # ---- numbered databases -------------------------------------------------

    cdef int use(self, Db db) except -1:
        """Make db the current one: its dicts become d, alts ... (callers
        compare `ks.cur is not db` first: one pointer compare per command)."""
        self.cur = db
        self.d = db.d
        self.alts = db.alts
        self.tombs = db.tombs
        self.dead = db.dead
        self.expires = db.expires
        self.watched = db.watched
        self.blocking = db.blocking
        self.ready = db.ready
        self.bl.want_db = db.ident
        return 0

    def select(self, int index):
        """Make db `index` current (Python callers); returns the Db."""
        cdef Db db = <Db>self.dbs[index]
        if self.cur is not db:
            self.use(db)
        return db

    def refresh(self):
        """Re-read the current Db's dicts (after SWAPDB moved data)."""
        self.use(self.cur)

    def set_mapping(self, list idents, uint64_t u, uint64_t n):
        """SWAPDB's effect: index i shows the data of identity idents[i]; an
        older (u, n) than the mapping's own is ignored (LWW: of concurrent
        SWAPDBs the later wins wholly). Returns the indexes whose data
        changed."""
        cdef list datas, changed = []
        cdef Db a, b
        cdef int i, nd = len(self.dbs)
        if not ts_gt(u, n, self.map_u, self.map_n):
            return changed
        if sorted(idents) != list(range(nd)):
            raise RecordError("SWAPDB mapping is not a permutation of %d databases" % nd)
        self.map_u = u
        self.map_n = n
        datas = [((<Db>x).ident, (<Db>x).d, (<Db>x).alts, (<Db>x).tombs, (<Db>x).dead,
                  (<Db>x).expires, (<Db>x).expire_cursor) for x in self.by_ident]
        for i in range(nd):
            a = <Db>self.dbs[i]
            if a.ident == <int>idents[i]:
                continue
            (a.ident, a.d, a.alts, a.tombs, a.dead, a.expires,
             a.expire_cursor) = datas[<int>idents[i]]
            changed.append(i)
        for i in range(nd):
            b = <Db>self.dbs[i]
            self.by_ident[b.ident] = b
        self.use(self.cur)
        return changed

    def mapping(self):
        """index -> identity, as a list."""
        return [(<Db>x).ident for x in self.dbs]

    def emit_swapdb(self, int a, int b):
        """SWAPDB a b (local): the new mapping, applied and logged."""
        cdef list m = self.mapping()
        cdef uint64_t u = self.tick()
        cdef Writer w
        m[a], m[b] = m[b], m[a]
        changed = self.set_mapping(m, u, self.node_id)
        self.bl.want_db = 0     # (a record of no db: no marker before it)
        w = self.bl.begin(OP_SWAPDB, u)
        w.put_varint(len(m))
        for x in m:
            w.put_varint(<uint64_t>x)
        self.bl.end()
        self.bl.want_db = self.cur.ident
        self.dirty += 1
        self.after_swap(changed)
        return changed

    def after_swap(self, list changed):
        """The dbs whose data SWAPDB replaced: their watched keys that exist
        in any of them are touched (as Redis's touchAllWatchedKeysInDb), and
        the keys blocked clients wait on that now hold something are ready."""
        cdef Db db
        cdef list dbs = [self.dbs[i] for i in changed]
        for db in dbs:
            if db.watched and self.on_touch is not None:
                for key, clients in list(db.watched.items()):
                    if any((kt_get(&(<Db>x).d.t, key) != NULL) for x in dbs):
                        self.on_touch(clients)
            if db.blocking:
                for key in db.blocking:
                    if (kt_get(&db.d.t, key) != NULL):
                        if not db.ready and self.on_ready is not None:
                            self.on_ready()
                        db.ready[key] = None

    # ---- clock and context ----------------------------------------------

    cdef uint64_t tick(self) noexcept:
        cdef uint64_t u = self.clock.tick(self.now)
        self.own_last = u
        return u

    cdef uint64_t vv_get(self, uint64_t node):
        cdef PyObject* v
        if node == self.node_id:
            return self.own_last
        v = PyDict_GetItem(self.vv, node)
        if v == NULL:
            return 0
        return <uint64_t><object>v

    cdef bint seen(self, uint64_t node, uint64_t uuid):
        cdef PyObject* s
        if uuid <= self.vv_get(node):
            return True
        if self.cloud:
            s = PyDict_GetItem(self.cloud, node)
            if s != NULL and uuid in <set><object>s:
                return True
        return False

    cdef int _note_unseen(self, list dots) except -1:
        cdef Dot x
        cdef set s
        for x in dots:
            if not self.seen(x.node, x.uuid):
                s = self.cloud.get(x.node)
                if s is None:
                    s = set()
                    self.cloud[x.node] = s
                s.add(x.uuid)
        return 0

    cdef bint _in_cloud(self, uint64_t node, uint64_t uuid):
        cdef PyObject* s
        if not self.cloud:
            return False
        s = PyDict_GetItem(self.cloud, node)
        if s == NULL:
            return False
        if uuid in <set><object>s:
            (<set><object>s).discard(uuid)
            return True
        return False

    def prune_cloud(self):
        """Drop cloud entries that VV now covers."""
        for node in list(self.cloud):
            top = self.vv_get(node)
            s = {u for u in self.cloud[node] if u > top}
            if s:
                self.cloud[node] = s
            else:
                del self.cloud[node]

    # ---- lookups ---------------------------------------------------------

    cdef bint is_expired(self, CObj o) noexcept:
        cdef TTLReg t
        if o.ttl is None:
            return False
        t = <TTLReg>o.ttl
        if t.at == 0:
            return False
        if t.node == self.node_id:  # this node's own deadline: exactly as Redis
            return t.at <= self.now
        return self.local_at(t) <= self.now

    cdef int64_t local_at(self, TTLReg t) noexcept:
        """t's deadline on this node's clock (docs/crdt.md section 6). A
        deadline is written in its writer's clock (t.node, the origin of the
        TTL write); another origin's is reached here only once this node
        knows the writer's clock has passed it: at - offset + bound, the
        writer's clock offset as this node measured it (replication), or at
        + skew_default (max_clock_drift) for an origin it could not measure.
        0 stays 0 (no expiry); a deadline stays >= 1."""
        cdef int64_t adj = self.skew_default, r
        cdef int i
        if t.at == 0 or t.node == self.node_id:
            return t.at
        for i in range(self.nskew):
            if self.skew_origin[i] == t.node:
                adj = self.skew_adj[i]
                break
        if adj > 0 and t.at > INT64_MAX - adj:
            return INT64_MAX
        r = t.at + adj
        return r if r > 0 else 1

    def set_clock_skew(self, dict adj, int64_t default):
        """The table local_at reads (the replication layer keeps it):
        origin -> ms added to that origin's TTL deadlines (at most 128
        origins; the rest take default), default for any other origin."""
        cdef int n = 0
        cdef int64_t a
        for o, v in adj.items():
            if n == 128:
                break
            a = v
            if a > (<int64_t>1 << 50) or a < -(<int64_t>1 << 50):
                a = (<int64_t>1 << 50) if a > 0 else -(<int64_t>1 << 50)
            self.skew_origin[n] = o
            self.skew_adj[n] = a
            n += 1
        self.nskew = n
        self.skew_default = default

    def clock_skew(self):
        """(origin -> adjustment, default): the table set_clock_skew wrote."""
        return {self.skew_origin[i]: self.skew_adj[i] for i in range(self.nskew)}, self.skew_default

    def local_deadline(self, int64_t at, uint64_t uuid, uint64_t node):
        """local_at of the register (at, (uuid, node)) (tests, DESC)."""
        return self.local_at(_ttlreg(at, uuid, node))

    cdef CObj lookup(self, object key):
        """The visible object of key, or None; an expired key is deleted here
        (a normal DEL effect, docs/crdt.md section 6)."""
        return _lookup(self, key, False)

    cdef CObj lookup_r(self, object key):
        """lookup() for read commands: counts keyspace hits and misses."""
        cdef CObj o = _lookup(self, key, True)
        if o is None:
            self.misses += 1
            notify(self, N_KEYMISS, b"keymiss", key)
        else:
            self.hits += 1
        return o

    cdef CObj lookup_as(self, object key, type t, bint read, bint* wrong):
        """The visible object of key if it is a t, else None; wrong: whether
        key holds another type. read: count hits and misses (lookup_r)."""
        cdef CObj o = self.lookup_r(key) if read else self.lookup(key)
        wrong[0] = o is not None and type(o) is not t
        return None if wrong[0] else o

    cdef int expire_key(self, object key) except -1:
        self.expired_keys += 1
        self.emit_del(key)
        notify(self, N_EXPIRED, b"expired", key)
        return 0

    cdef list objects_of(self, object key):
        cdef list out = []
        cdef PyObject* p = kt_get(&self.d.t, key)
        if p != NULL:
            out.append(<object>p)
        if self.alts:
            lst = self.alts.get(key)
            if lst is not None:
                out.extend(lst)
        return out

    cdef CObj find(self, object key, int t, bint create):
        """The object of type t on key, visible or not; a new unplaced one if
        there is none and create is set (settle() places it)."""
        cdef PyObject* p = kt_get(&self.d.t, key)
        cdef CObj o
        cdef TTLReg tt
        cdef TypeOps* ops
        if p != NULL and obj_type(<CObj>p) == t:
            return <CObj>p
        if self.alts:
            lst = self.alts.get(key)
            if lst is not None:
                for o in lst:
                    if obj_type(<CObj>o) == t:
                        return <CObj>o
        if t == T_STRING and self.tombs:
            p = PyDict_GetItem(self.tombs, key)
            if p != NULL:
                return <CObj>p
        ops = type_ops(t)
        if self.dead and ops != NULL and ops.keeps != NULL:
            p = PyDict_GetItem(self.dead, (key, t))
            if p != NULL:
                o = <CObj>p
                # the key's TTL register may have moved on while o was empty
                tt = _key_ttl(self, key)
                if tt is not None and (o.ttl is None or ts_gt(tt.uuid, tt.node,
                                                              (<TTLReg>o.ttl).uuid,
                                                              (<TTLReg>o.ttl).node)):
                    o.ttl = _ttlreg(tt.at, tt.uuid, tt.node)
                return o
        if not create:
            return None
        if ops == NULL:
            raise ValueError("unknown type")
        o = ops.new()
        _new_access(self, o)
        # a new object on a key takes the key's TTL register (docs/crdt.md section 6);
        # a key with no object and no tombstone has none (alts imply d)
        if kt_get(&self.d.t, key) != NULL or (self.tombs and key in self.tombs):
            tt = _key_ttl(self, key)
            if tt is not None:
                o.ttl = _ttlreg(tt.at, tt.uuid, tt.node)
        return o

    cdef int touched(self, object key, bint mem=True) except -1:
        """key's object changed (local or remote). mem=False: a change after
        which mem_est gives what it gave (a hash field overwritten by a value
        of the same length): the estimate is not recomputed."""
        cdef PyObject* p = kt_get(&self.d.t, key) if mem or self.remote else NULL
        if p != NULL:
            if mem and (<CObj>p).msz:
                _mem_update(self, key, <CObj>p)
            if self.remote:
                _access(self, <CObj>p)  # a peer's write is an access here too
        self.dirty += 1
        if self.watched:
            clients = self.watched.get(key)
            if clients and self.on_touch is not None:
                self.on_touch(clients)
        if self.on_change is not None:
            self.on_change(key)
        if self.blocking and PyDict_GetItem(self.blocking, key) != NULL:
            if not self.ready and self.on_ready is not None:
                self.on_ready()
            self.ready[key] = None
        return 0

    cdef int settle(self, object key, CObj o) except -1:
        """Put o where it belongs after a change: visible, hidden or
        tombstone; and count its bytes (mem_ds) while it is live."""
        cdef bint fresh = o.msz == 0
        self._settle(key, o)
        if obj_live(o):
            _mem_update(self, key, o)
            if fresh:
                # a key made now (maybe from a tombstone or an emptied object,
                # whose access clock is an old one): a new key's clock or LFU_INIT_VAL
                _new_access(self, o)
                if self.win is not None:
                    self.win_push(self.cur, key)
        elif o.msz:
            _mem_drop(self, o)
        return 0

    cdef int _settle(self, object key, CObj o) except -1:
        cdef PyObject* p = kt_get(&self.d.t, key)
        cdef bint live
        if p == <PyObject*>o:
            if obj_live(o):
                if self.alts and key in self.alts:
                    # a removal may have taken the shown object's newest write
                    # away: the newest live object shows (docs/crdt.md section 4)
                    kt_del(&self.d.t, key)
                    self.alts[key].append(o)
                    self._promote(key)
                return 0
            kt_del(&self.d.t, key)
            if type(o) is StrObj:
                self.tombs[key] = o
            elif _keeps_state(o):
                self.dead[(key, obj_type(o))] = o
            self._promote(key)
            if type(o) is not StrObj:
                _keep_ttl(self, key, o)
                _dead_ttl(self, key, o)
            return 0
        live = obj_live(o)
        if type(o) is StrObj and self.tombs:
            if live:
                self.tombs.pop(key, None)
        lst = self.alts.get(key) if self.alts else None
        if not live:
            if lst is not None and o in lst:
                lst.remove(o)
                if not lst:
                    del self.alts[key]
            if type(o) is StrObj:
                if ((<StrObj>o).uuid != 0 or not str_nocnt((<StrObj>o))
                        or o.ttl is not None):
                    self.tombs[key] = o
            else:
                if _keeps_state(o):
                    self.dead[(key, obj_type(o))] = o
                _keep_ttl(self, key, o)
                _dead_ttl(self, key, o)
            return 0
        if self.dead and type(o) is not StrObj:
            self.dead.pop((key, obj_type(o)), None)
        if p == NULL:
            kt_set(&self.d.t, key, o)
            if self.nmask & N_NEW and key != self.nreplace:
                notify(self, N_NEW, b"new", key)
            if type(o) is not StrObj and self.tombs:
                _drop_ttl_tomb(self, key)
            if lst is not None and o in lst:
                lst.remove(o)
                if not lst:
                    del self.alts[key]
            if o.ttl is not None:
                kt_set(&self.expires.t, key, None)
            return 0
        # two live objects of different types: the newest write decides
        if lst is None:
            lst = []
            self.alts[key] = lst
        if o not in lst:
            lst.append(o)
        if _newer(o, <CObj>p):
            lst.remove(o)
            lst.append(<CObj>p)
            kt_set(&self.d.t, key, o)
        return 0

    cdef int _promote(self, object key) except -1:
        cdef CObj best = None
        if self.alts:
            lst = self.alts.get(key)
            if lst:
                for o in lst:
                    if best is None or _newer(<CObj>o, best):
                        best = <CObj>o
                lst.remove(best)
                if not lst:
                    del self.alts[key]
                kt_set(&self.d.t, key, best)
                if best.ttl is not None:
                    kt_set(&self.expires.t, key, None)
                return 0
        kt_del(&self.expires.t, key)
        return 0

    # ---- the effect functions (shared by local and remote) ---------------

    cdef int _ttl_on(self, object key, CObj o, int64_t at, uint64_t u, uint64_t n) except -1:
        cdef TTLReg t
        cdef uint64_t cu = 0, cn = 0
        if o.ttl is not None:
            t = <TTLReg>o.ttl
            cu = t.uuid
            cn = t.node
        elif type(o) is StrObj:
            cu = (<StrObj>o).uuid
            cn = str_node((<StrObj>o))
        if ts_gt(u, n, cu, cn):
            o.ttl = _ttlreg(at, u, n)
            if at != 0:
                kt_set(&self.expires.t, key, None)
        return 0

    cdef int _ttl_others(self, object key, CObj o, int64_t at, uint64_t u, uint64_t n) except -1:
        """The TTL write (at, u, n) on every object of key but o, tombstone
        included (o takes it by its own rule)."""
        cdef PyObject* p = kt_get(&self.d.t, key)
        if p != NULL and <object>p is not o:
            self._ttl_on(key, <CObj>p, at, u, n)
        if self.alts:
            lst = self.alts.get(key)
            if lst is not None:
                for x in lst:
                    if x is not o:
                        self._ttl_on(key, <CObj>x, at, u, n)
        if self.tombs:
            p = PyDict_GetItem(self.tombs, key)
            if p != NULL and <object>p is not o:
                self._ttl_on(key, <CObj>p, at, u, n)
        return 0

    cdef int _clear_done(self, object key, CObj o, uint64_t u, uint64_t n) except -1:
        # a whole-object clear is a DEL: it also writes the key's TTL register
        # (the type bumped o's newest-effect ts first)
        self._ttl_on(key, o, 0, u, n)
        self._ttl_others(key, o, 0, u, n)
        self.touched(key)
        self.settle(key, o)
        return 0

    # ---- key-level local effects -----------------------------------------------

    cdef int emit_ttl(self, object key, int64_t at) except -1:
        """EXPIRE-family and PERSIST: write the key's TTL register."""
        cdef uint64_t u = self.tick()
        _ttl_write(self, key, at, u, self.node_id)
        if at == 0:
            kt_del(&self.expires.t, key)
        self.touched(key)
        return self.bl.put_key_u64(OP_TTL, u, key, <uint64_t>at)

    cdef int emit_clear(self, object key, CObj o) except -1:
        """Observed-remove everything o holds (one object of a DEL)."""
        return ops_of(o).clear(self, key, o)

    cdef int emit_del(self, object key) except -1:
        """DEL: clear every object on key. Returns 1 if the key was visible."""
        cdef list objs = self.objects_of(key)
        if not objs:
            if self.tombs:
                _clear_stale_ttl(self, key)
            return 0
        for o in objs:
            self.emit_clear(key, <CObj>o)
        return 1

    cdef int emit_del_other_types(self, object key, int keep_type) except -1:
        """Before a SET-like overwrite: clear the objects of other types."""
        for o in self.objects_of(key):
            if obj_type(<CObj>o) != keep_type:
                self.emit_clear(key, <CObj>o)
        return 0

    cdef int apply_one(self, uint64_t origin, Reader r) except -1:
        """Apply the record at r's position from `origin` unless VV has it:
        OP_SELECT, OP_SWAPDB, OP_TTL, OP_MEMBER and OP_FUNC here, every other
        op by the type that registered it (ops.pxd has the record layouts)."""
        cdef Py_ssize_t start = r.pos
        cdef uint32_t ln = r.u32()
        cdef Py_ssize_t end = start + 4 + <Py_ssize_t>ln
        cdef uint8_t op
        cdef uint64_t u
        cdef uint8_t raw
        cdef uint64_t ident
        r.need(ln)
        raw = r.u8()
        op = raw & 0x7F
        u = r.u64()
        if op == OP_SELECT:
            # the group's next records are in db `ident` (where it shows now)
            ident = r.varint()
            if ident >= <uint64_t>len(self.by_ident):
                raise RecordError("record for db identity %d: this node has %d databases"
                                  % (ident, len(self.by_ident)))
            if self.cur is not self.by_ident[ident]:
                self.use(<Db>self.by_ident[ident])
            r.pos = end
            return 0
        if not (raw & 0x80) and self.cur.ident != 0:
            # the group ends with this record: the next one starts in identity 0
            try:
                self._apply_one(origin, r, raw, u, end)
            finally:
                self.use(<Db>self.by_ident[0])
            return 0
        return self._apply_one(origin, r, raw, u, end)

    cdef int _apply_one(self, uint64_t origin, Reader r, uint8_t opb, uint64_t u,
                        Py_ssize_t end) except -1:
        cdef uint8_t op = opb & 0x7F
        cdef int64_t at
        cdef object key
        cdef TypeOps* t
        cdef list m
        cdef uint64_t n
        cdef Py_ssize_t pay
        cdef bint had = False
        cdef bint ev
        cdef uint64_t d0 = self.dirty
        if u <= self.vv_get(origin):
            r.pos = end
            return 0
        pay = r.pos
        # keyspace notifications: records that change a key (the first field
        # of their payload is the key)
        ev = (self.nmask != 0 and op != OP_MEMBER and op != OP_FUNC and op != OP_SWAPDB)
        if ev:
            key = r.bytes_()
            r.pos = pay
            had = kt_get(&self.d.t, key) != NULL
        t = _OPS[op]
        if t != NULL:
            t.apply(self, op, origin, u, r)
        elif op == OP_SWAPDB:
            n = r.varint()
            if n != <uint64_t>len(self.dbs):
                raise RecordError("SWAPDB of %d databases: this node has %d"
                                  % (n, len(self.dbs)))
            m = [r.varint() for _i in range(n)]
            self.after_swap(self.set_mapping(m, u, origin))
        elif op == OP_TTL:
            key = r.bytes_()
            at = r.i64()
            _ttl_write(self, key, at, u, origin)
            self.touched(key)
        elif op == OP_MEMBER:
            if self.on_member is not None:
                self.on_member(origin, u, r.read_raw(end - r.pos))
        elif op == OP_FUNC:
            if self.on_func is not None:
                self.on_func(origin, u, r.read_raw(end - r.pos))
            else:
                r.pos = end
        else:
            raise ValueError("unknown record op %d" % op)
        if r.pos != end:
            raise ValueError("record length mismatch (op %d)" % op)
        if ev and self.dirty != d0:  # it changed something
            r.pos = pay
            try:
                _remote_event(self, op, key, had, r)
            finally:
                r.pos = end
        if self.nmask and not (opb & 0x80):  # the group ends
            self.ngroup_ev = self.ngroup_key = self.nskip_key = None
        if origin != self.node_id:
            self.vv[origin] = u
        elif u > self.own_last:
            self.own_last = u
        self.clock.fold(u)
        self.applied_remote += 1
        return 0

    # ---- Python API (replication, tests, admin commands) --------------------

    cdef int check_records(self, Reader r, uint64_t max_uuid) except -1:
        """The validation pass of a peer's batch: every record's framing, op
        code, uuid (at most max_uuid: a clock too far ahead is refused, never
        folded) and, through its type's check, its payload; nothing applied."""
        cdef uint32_t ln
        cdef Py_ssize_t end, stop = r.end
        cdef uint8_t op, has
        cdef uint64_t u, n
        cdef TypeOps* t
        cdef list m
        while not r.at_end():
            ln = r.u32()
            r.need(ln)
            end = r.pos + <Py_ssize_t>ln
            if ln < 9:
                raise RecordError("record of %d bytes" % ln)
            op = r.u8() & 0x7F
            u = r.u64()
            if u > max_uuid:
                raise ClockDriftError(
                    "record clock %d is %d ms ahead of this node's wall clock"
                    % (u, (u >> 22) - <uint64_t>wall_ms()))
            t = _OPS[op]
            if t != NULL:
                if t.check != NULL:
                    r.end = end
                    try:
                        t.check(op, u, r)
                    except ClockAheadError as e:
                        raise ClockDriftError(str(e)) from None
                    finally:
                        r.end = stop
                    if r.pos != end:
                        raise RecordError("record length mismatch (op %d)" % op)
            elif op == OP_TTL:
                r.end = end
                try:
                    r.bytes_()
                    r.i64()
                finally:
                    r.end = stop
                if r.pos != end:
                    raise RecordError("record length mismatch (op %d)" % op)
            elif op == OP_FUNC:
                r.end = end
                try:
                    r.bytes_()
                    has = r.u8()
                    if has > 1:
                        raise RecordError("bad function record flag %d" % has)
                    if has:
                        r.bytes_()
                finally:
                    r.end = stop
                if r.pos != end:
                    raise RecordError("record length mismatch (op %d)" % op)
            elif op == OP_SELECT or op == OP_SWAPDB:
                r.end = end
                try:
                    n = r.varint()
                    if op == OP_SELECT:
                        if n >= <uint64_t>len(self.by_ident):
                            raise RecordError("record for db identity %d: this node has %d "
                                              "databases" % (n, len(self.by_ident)))
                    else:
                        if n != <uint64_t>len(self.dbs):
                            raise RecordError("SWAPDB of %d databases: this node has %d"
                                              % (n, len(self.dbs)))
                        m = sorted(r.varint() for _i in range(n))
                        if m != list(range(n)):
                            raise RecordError("SWAPDB mapping is not a permutation")
                finally:
                    r.end = stop
                if r.pos != end:
                    raise RecordError("record length mismatch (op %d)" % op)
            elif op != OP_MEMBER:
                raise RecordError("unknown record op %d" % op)
            r.pos = end
        return 0

    def lazy_step(self, Py_ssize_t budget):
        """Free up to budget elements of the containers UNLINK and friends
        left (a slice, from the event loop); returns how many containers
        are still waiting."""
        cdef object c
        while budget > 0 and self.lazy:
            c = self.lazy[len(self.lazy) - 1]  # (wraparound is off)
            if type(c) is dict:
                while budget > 0 and c:
                    (<dict>c).popitem()
                    budget -= 1
            elif type(c) is list:
                while budget > 0 and c:
                    (<list>c).pop()
                    budget -= 1
            else:
                # an object that frees itself in slices (t_zset's detached
                # ZIndex): lazy_free(budget) returns the budget left, and the
                # object is empty (false) when done
                budget = c.lazy_free(budget)
            if not c:
                self.lazy.pop()
        return len(self.lazy)

    def mem_recount(self):
        """Recount mem_ds from every live object (after a snapshot load or
        a flush); returns it."""
        cdef CObj o
        cdef Db db
        self.mem_ds = 0
        for db in self.dbs:
            for key, o in db.d.items():
                _mem_recount(self, key, o)
            for key, lst in db.alts.items():
                for o in lst:
                    _mem_recount(self, key, o)
        return self.mem_ds

    def is_gone(self, key):
        """key has no visible object (an expired one is deleted, as a
        lookup would, without touching the access clock)."""
        cdef PyObject* p = kt_get(&self.d.t, key)
        if p == NULL:
            return True
        if (<CObj>p).ttl is not None and self.is_expired(<CObj>p):
            self.expire_key(key)
            return True
        return False

    def obj_mem(self, key):
        """(estimated bytes, lru word) of key's visible object, or None
        (MEMORY USAGE, OBJECT); does not touch its access clock."""
        cdef PyObject* p = kt_get(&self.d.t, key)
        if p == NULL:
            return None
        return mem_est(<CObj>p) + key_est(key), (<CObj>p).lru

    def lfu_counter(self, key):
        cdef PyObject* p = kt_get(&self.d.t, key)
        if p == NULL:
            return None
        return lfu_decr(self, (<CObj>p).lru)

    def apply_records(self, uint64_t origin, bytes data, uint64_t max_uuid=0xFFFFFFFFFFFFFFFF,
                      bint check=False):
        """Apply a batch of records from origin, in order; returns how many
        were new (duplicates by VV are skipped). check: a peer's batch,
        applied all or nothing: every record is checked first (check_records)
        and nothing is applied if one is bad (RecordError, ClockDriftError)."""
        cdef Reader r
        cdef uint64_t before = self.applied_remote
        if check:
            self.check_records(Reader(data), max_uuid)
        r = Reader(data)
        self.now = wall_ms()
        if self.cur is not self.by_ident[0]:
            self.use(<Db>self.by_ident[0])   # a batch starts in db identity 0
        self.remote = True
        try:
            while not r.at_end():
                self.apply_one(origin, r)
        finally:
            self.remote = False
        return self.applied_remote - before

    def check_uuid(self, uint64_t u, uint64_t max_uuid):
        """A clock from a peer (heartbeat, position, snapshot): ClockDriftError
        if it is beyond max_uuid."""
        if u > max_uuid:
            raise ClockDriftError(
                "clock %d is %d ms ahead of this node's wall clock"
                % (u, (u >> 22) - <uint64_t>wall_ms()))

    def vv_of(self, uint64_t node):
        """How far this node has applied node's stream (its own: own_last)."""
        return self.vv_get(node)

    def get_vv(self):
        out = dict(self.vv)
        out[self.node_id] = self.own_last
        return out

    def advance_vv(self, uint64_t origin, uint64_t upto):
        """Heartbeat rule (docs/crdt.md section 2): origin has sent everything up to
        upto, and this node applied it."""
        if origin == self.node_id:
            return
        if upto > self.vv_get(origin):
            self.vv[origin] = upto
            self.clock.fold(upto)

    def set_now(self, int64_t now=-1):
        self.now = wall_ms() if now < 0 else now

    def py_lookup(self, key):
        return self.lookup(key)

    def py_find(self, key, int t):
        return self.find(key, t, False)

    def value_of(self, key):
        """Python view of a key's visible value (tests, digest, DESC)."""
        o = self.lookup(key)
        if o is None:
            return None
        return visible_value(o)

    def type_of(self, key):
        o = self.lookup(key)
        if o is None:
            return None
        return TYPE_NAMES[obj_type(<CObj>o)]

    def waiting_bytes(self):
        """Estimated bytes of what waits for GC (docs/crdt.md section 6):
        string tombstones and dead collections of every db. Not in mem_ds
        (they are not keys to evict) and not counted for eviction, but
        counted by used_memory (constdb/eviction.py)."""
        cdef Db db
        cdef Py_ssize_t n = 0
        for db in self.dbs:
            if db.tombs:
                n += _waiting_est(db.tombs, False)
            if db.dead:
                n += _waiting_est(db.dead, True)
        return n

    def table_bytes(self):
        """Bytes of every db's key table and expires table slot arrays
        (8 a slot; both arrays while a resize drains). Each key's entry
        block is in its object's count (key_est)."""
        cdef Db db
        cdef Py_ssize_t n = 0
        for db in self.dbs:
            n += kt_slots(db.d) + kt_slots(db.expires)
        return 8 * n

    def dbsize(self):
        """Keys of every db (DBSIZE is len(Db.d) of the client's db)."""
        cdef Db db
        cdef Py_ssize_t n = 0
        for db in self.dbs:
            n += kt_len(db.d)
        return n

    def active_expire(self, int max_checks=200, double budget_ms=1.0):
        """One bounded slice of the active expiry cycle (Redis's is sampled and
        time-bounded too), over the dbs that have keys with a TTL, from where
        the last slice stopped. Returns (checked, expired)."""
        cdef int checked = 0, expired = 0, i, nd = len(self.dbs)
        cdef int start = <int>self.expire_cursor
        cdef Db db, was = self.cur
        self.now = wall_ms()
        try:
            for i in range(nd):
                db = <Db>self.dbs[(start + i) % nd]
                if not db.expires:
                    db.expire_cursor = 0
                    continue
                if self.cur is not db:
                    self.use(db)
                c, e = self._expire_slice(max_checks - checked)
                checked += c
                expired += e
                if checked >= max_checks:
                    self.expire_cursor = (start + i) % nd
                    return checked, expired
            self.expire_cursor = 0
        finally:
            if self.cur is not was:
                self.use(was)
        return checked, expired

    def _expire_slice(self, int max_checks):
        """active_expire in the current db."""
        cdef Py_ssize_t pos = <Py_ssize_t>self.cur.expire_cursor
        cdef kt_entry* e
        cdef PyObject* p
        cdef int checked = 0, expired = 0
        cdef list gone = [], dead = []
        cdef CObj o
        while checked < max_checks:
            e = kt_next(&self.expires.t, &pos)
            if e == NULL:
                pos = 0
                break
            checked += 1
            p = kt_get_raw(&self.d.t, kt_entry_hash(e), e.key, e.klen)
            if p == NULL:
                gone.append(kt_key(e))
                continue
            o = <CObj>p
            if self.is_expired(o):
                dead.append(kt_key(e))
            elif o.ttl is None or (<TTLReg>o.ttl).at == 0:
                gone.append(kt_key(e))
        self.cur.expire_cursor = pos
        for key in gone:
            kt_del(&self.expires.t, key)
        for key in dead:
            p = kt_get(&self.d.t, key)
            if p != NULL and self.is_expired(<CObj>p):
                self.expire_key(key)
                expired += 1
        return checked, expired

    def expires_count(self, int index=-1):
        """Keys with a TTL in db index (-1: the current db)."""
        cdef int n = 0
        cdef Db db = self.cur if index < 0 else <Db>self.dbs[index]
        cdef Py_ssize_t pos = 0
        cdef kt_entry* e
        cdef PyObject* p
        while True:
            e = kt_next(&db.expires.t, &pos)
            if e == NULL:
                break
            p = kt_get_raw(&db.d.t, kt_entry_hash(e), e.key, e.klen)
            if p != NULL and (<CObj>p).ttl is not None and (<TTLReg>(<CObj>p).ttl).at != 0:
                n += 1
        return n

    def describe(self, key):
        """DESC: the CRDT state of every object on key (operators, tests)."""
        out = []
        for o in self.objects_of(key) + ([self.tombs[key]] if key in self.tombs else []):
            out.append(describe_obj(o))
        for (k, t), o in self.dead.items():
            if k == key:
                out.append(describe_obj(o))
        return out

    def flush_local(self):
        """Drop everything, in every db, without logging (used before loading
        a snapshot)."""
        cdef Db db
        for db in self.dbs:
            db.d.clear()
            db.alts.clear()
            db.tombs.clear()
            db.dead.clear()
            db.expires.clear()

    def emit_member(self, bytes payload):
        """A membership change (replication layer); returns its uuid."""
        return _emit_opaque(self, OP_MEMBER, self.on_member, payload)

    def emit_func(self, bytes payload):
        """A function library's register written here (constdb/functions.py);
        returns its uuid."""
        return _emit_opaque(self, OP_FUNC, self.on_func, payload)

    def gc(self, uint64_t stable):
        """Drop what is causally stable (docs/crdt.md section 6): string register
        tombstones older than `stable` that hold no counter entries (see
        docs/crdt.md section 6 on counters), and dot-cloud entries VV covers.
        Returns the number of tombstones dropped."""
        cdef list dead
        cdef Db db
        cdef Py_ssize_t total = 0
        for db in self.dbs:
            dead = []
            for key, v in db.tombs.items():
                if _tomb_goes(<StrObj>v, stable):
                    dead.append(key)
            for key in dead:
                del db.tombs[key]
            total += len(dead)
        if self.cloud:
            self.prune_cloud()
        return total

    def digest(self, int index=-2):
        """A hash of the visible data set, independent of key order: equal on
        nodes that have converged (hex string). index: of that db only; -2:
        of every db (each db's keys hashed with its index; db 0's alone as
        before)."""
        cdef Db db
        cdef object total = 0
        if index >= 0:
            return "%032x" % self._digest_db(<Db>self.dbs[index], 0)
        for db in self.dbs:
            total += self._digest_db(db, db.index)
        return "%032x" % (total & ((1 << 128) - 1))

    def _digest_db(self, Db db, int salt):
        import hashlib
        cdef object total = 0
        cdef CObj o
        self.now = wall_ms()
        for key, v in db.d.items():
            o = <CObj>v
            if self.is_expired(o):
                continue
            h = hashlib.blake2b(digest_size=16)
            if salt:
                h.update(b"db%d" % salt)
            h.update(len(<bytes>key).to_bytes(4, "little"))
            h.update(<bytes>key)
            h.update(_canonical(o))
            total += int.from_bytes(h.digest(), "little")
        return total & ((1 << 128) - 1)


# ------------------------------------------------- notifications of peers' writes ----
# A peer's record is published as the event of its effect (docs/replication.md,
# "Keyspace notifications"): _EVENTS for the ops whose record names its event
# alone, _remote_event for the others; one event per group for records of the
# same event on the same key (SADD a b c is one record per member), "del"
# when the record left the key with nothing visible.

cdef dict _EVENT_OF = {
    OP_CNT: (N_STRING, b"incrby"),
    OP_FCNT: (N_STRING, b"incrbyfloat"),
    OP_SADD: (N_SET, b"sadd"),
    OP_SREM: (N_SET, b"srem"),
    OP_HSET: (N_HASH, b"hset"),
    OP_HSETC: (N_HASH, b"hset"),
    OP_HREM: (N_HASH, b"hdel"),
    OP_HCNT: (N_HASH, b"hincrby"),
    OP_HFCNT: (N_HASH, b"hincrbyfloat"),
    OP_MV: (N_STRING, b"set"),
    OP_LREM: (N_LIST, b"lrem"),
    OP_LSET: (N_LIST, b"lset"),
    OP_ZREM: (N_ZSET, b"zrem"),
    OP_BITS: (N_STRING, b"setbit"),
}
# the same as C arrays indexed by op (7 bits): class (0: none) and event (its
# bytes kept alive by _EVENT_OF). The clears (OP_SCLEAR, OP_HCLEAR,
# OP_MVCLEAR, OP_LCLEAR, OP_ZCLEAR) have none: DELs, only the "del" below
cdef int _EV_CLS[128]
cdef PyObject* _EV_NAME[128]


cdef int _fill_events() except -1:
    for op, (cls, ev) in _EVENT_OF.items():
        _EV_CLS[<int>op] = <int>cls
        _EV_NAME[<int>op] = <PyObject*>ev
    return 0


_fill_events()


cdef int _remote_event(Keyspace ks, int op, object key, bint had, Reader r) except -1:
    cdef bint now = kt_get(&ks.d.t, key) != NULL
    cdef int cls = 0
    cdef object ev = None
    cdef uint8_t flags
    cdef int64_t at = 0
    r.bytes_()  # the key
    if op == OP_REG:
        flags = r.u8()
        if flags & 1:
            r.bytes_()
            if flags & 2:
                at = r.i64()
            if key == ks.nskip_key:  # INCRBYFLOAT's value after its FCNT
                ks.nskip_key = None
            else:
                _remote_pub(ks, N_STRING, b"set", key)
            if at != 0 and now:
                _remote_pub(ks, N_GENERIC, b"expire", key)
            return 0
        # (a REG with no value is a DEL)
    elif op == OP_TTL:
        at = r.i64()
        if now:
            if at != 0:
                _remote_pub(ks, N_GENERIC, b"expire", key)
            elif had:
                _remote_pub(ks, N_GENERIC, b"persist", key)
        return 0
    elif op == OP_LINS:
        # LPUSH inserts each element at the anchor (the head); RPUSH, LINSERT
        # and LMOVE's right push chain them after it
        r.u64()
        r.u64()
        cls = N_LIST
        ev = b"lpush" if r.u8() == LINS_SAME else b"rpush"
    elif op == OP_ZW:
        r.bytes_()
        cls = N_ZSET
        ev = b"zincr" if r.u8() & 2 else b"zadd"
    elif op == OP_HLLADD:
        if key == ks.nskip_key:  # the updates after the register's first write
            ks.nskip_key = None
        else:
            cls, ev = N_STRING, b"pfadd"
    elif op == OP_HLLREG:
        if r.u8():
            cls, ev = N_STRING, b"pfadd"
            ks.nskip_key = key
    elif op == OP_HLLCACHE:
        return 0
    else:
        cls = _EV_CLS[op]
        if cls:
            ev = <object>_EV_NAME[op]
            if op == OP_FCNT or op == OP_HFCNT:
                ks.nskip_key = key  # its value follows as a REG / HSET
            elif (op == OP_HSET or op == OP_HSETC) and key == ks.nskip_key:
                ks.nskip_key = None  # HINCRBYFLOAT's value after its HFCNT
                ev = None
    if ev is not None and (now or had):
        _remote_pub(ks, cls, ev, key)
    if had and not now:
        _remote_pub(ks, N_GENERIC, b"del", key)
    return 0


cdef int _remote_pub(Keyspace ks, int cls, object ev, object key) except -1:
    # once per group for the same event on the same key
    if ev == ks.ngroup_ev and key == ks.ngroup_key:
        return 0
    ks.ngroup_ev = ev
    ks.ngroup_key = key
    notify(ks, cls, ev, key)
    return 0


def visible_value(CObj o):
    """Python value of a live object: bytes (string), set (set), dict (hash),
    list of (node, value) (mvreg), list of values (list), [(member, score)]
    (zset)."""
    return ops_of(o).value(o)


def describe_obj(CObj o):
    cdef TTLReg t
    cdef uint64_t lu, ln
    out = [b"type", TYPE_NAMES[obj_type(o)].encode()]
    _last_ts(o, &lu, &ln)
    out += [b"last-write", [lu, ln]]
    if o.ttl is not None:
        t = <TTLReg>o.ttl
        out += [b"ttl", [t.at, t.uuid, t.node]]
    elif type(o) is StrObj:
        out += [b"ttl", [0, (<StrObj>o).uuid, str_node((<StrObj>o))]]
    else:
        out += [b"ttl", [0, 0, 0]]
    return out + ops_of(o).describe(o)


cdef bytes _canonical(CObj o):
    """A canonical encoding of o's visible value and expiry (digest)."""
    cdef list parts = [TYPE_NAMES.get(obj_type(o), type(o).__name__).encode()]
    v = visible_value(o)
    if isinstance(v, (set, frozenset)):
        parts.extend(sorted(v))
    elif isinstance(v, dict):
        for k in sorted(v):
            parts.append(k)
            parts.append(v[k])
    elif isinstance(v, list):
        for item in v:
            parts.append(repr(item).encode())
    elif v is not None:
        parts.append(v if isinstance(v, bytes) else repr(v).encode())
    if o.ttl is not None and (<TTLReg>o.ttl).at != 0:
        parts.append(b"ttl:%d" % (<TTLReg>o.ttl).at)
    return b"".join(len(p).to_bytes(4, "little") + p for p in parts)


# ---------------------------------------------------------------------- GC ----

def gc_collections(Keyspace ks, uint64_t stable):
    """Run the GC hook of every object of the keyspace whose type has one
    (lists, sorted sets: shown, hidden and kept while empty: Keyspace.dead);
    an emptied one that holds nothing any more leaves Keyspace.dead. `stable`
    must be causally stable (see t_list.gc_list_c). Returns the number of
    tombstones dropped."""
    cdef Py_ssize_t total = 0
    cdef bint empty
    cdef Db db
    for db in ks.dbs:
        objs = [o for o in db.d.values() if ops_of(<CObj>o).gc != NULL]
        for o in objs:
            total += ops_of(<CObj>o).gc(<CObj>o, stable, &empty)
        total += _gc_hidden(db, stable)
    return total


def gc_step(Keyspace ks, uint64_t stable, Py_ssize_t pos, Py_ssize_t budget):
    """One bounded slice of that GC (the replication tick calls it, so a large
    keyspace is never walked in one go): up to `budget` visible keys from dict
    position `pos`, then, at the end of a round, the hidden and emptied
    objects. The dbs are walked one after another (Keyspace.gc_db: the one
    in progress). Returns (next position, tombstones dropped). (A position
    is a slot of the key table: a table that grew or shrank between two
    slices is walked from the same number, missing or repeating some keys
    this round: the next round sees them.)"""
    cdef kt_entry* e
    cdef Py_ssize_t seen = 0, total = 0, visited = 0
    cdef TypeOps* t
    cdef bint empty
    cdef Db db
    if ks.gc_db >= len(ks.dbs):
        ks.gc_db = 0
    db = <Db>ks.dbs[ks.gc_db]
    while seen < budget:
        e = kt_next(&db.d.t, &pos)
        if e == NULL:
            # the end of this db: its hidden and emptied objects, then the
            # next db in the same slice while the budget lasts (each db once)
            seen += len(db.dead) + len(db.alts)
            total += _gc_hidden(db, stable)
            ks.gc_db = (ks.gc_db + 1) % len(ks.dbs)
            pos = 0
            visited += 1
            if visited >= len(ks.dbs):
                break
            db = <Db>ks.dbs[ks.gc_db]
            continue
        seen += 1
        t = ops_of(<CObj>e.obj)
        if t.gc != NULL:
            total += t.gc(<CObj>e.obj, stable, &empty)
    return pos, total


cdef inline bint _tomb_goes(StrObj o, uint64_t stable) noexcept:
    # GC's rule for a string tombstone (Keyspace.gc, collect_key): older
    # than the stable point and holding no counter entries; a TTL register
    # that still holds an expiry applies to the next object made on the
    # key: it must outlive the stable point
    return (str_nocnt(o) and o.uuid < stable
            and (o.ttl is None or ((<TTLReg>o.ttl).at == 0 and (<TTLReg>o.ttl).uuid < stable)))


cdef int collect_key(Keyspace ks, object key, int t) except -1:
    """What a removal of key in the current db left for GC, collected now: a
    node alone (ks.solo) takes its stable point at its applied VV
    (ReplicationManager.stable_point), so the removal it just made is
    stable. The string tombstone goes under Keyspace.gc's rule and the key's
    object of type t in `dead` under its type's GC (a big sorted set's
    removed members freed in slices), as GC would within a heartbeat."""
    cdef PyObject* p
    cdef CObj d
    cdef TypeOps* ops
    cdef bint empty = False
    if ks.tombs:
        # (every effect applied here is at most the clock's last uuid)
        p = PyDict_GetItem(ks.tombs, key)
        if p != NULL and _tomb_goes(<StrObj>p, ks.clock.last + 1):
            del ks.tombs[key]
    if t >= 0 and t != T_STRING and ks.dead:
        dk = (key, t)
        p = PyDict_GetItem(ks.dead, dk)
        if p != NULL:
            d = <CObj>p
            ops = ops_of(d)
            if ops.gc != NULL:
                ops.gc(d, ks.clock.last, &empty)
                if empty:
                    del ks.dead[dk]
    return 0


def gc_hidden(Keyspace ks, uint64_t stable):
    """GC of the objects that are hidden (alts) or emptied (Keyspace.dead),
    in every db."""
    cdef Py_ssize_t total = 0
    cdef Db db
    for db in ks.dbs:
        total += _gc_hidden(db, stable)
    return total


cdef Py_ssize_t _gc_hidden(Db db, uint64_t stable) except -1:
    cdef Py_ssize_t total = 0
    cdef TypeOps* t
    cdef bint empty
    for lst in db.alts.values():
        for o in lst:
            t = ops_of(<CObj>o)
            if t.gc != NULL:
                total += t.gc(<CObj>o, stable, &empty)
    for dk, o in list(db.dead.items()):
        t = ops_of(<CObj>o)
        if t.gc != NULL:
            empty = False
            total += t.gc(<CObj>o, stable, &empty)
            if empty:
                del db.dead[dk]
    return total
