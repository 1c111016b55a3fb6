"""The keyspace and the CRDT rules of CRDT.md, in one place.

Every change to data goes through one of the `_*_on` functions below. A local
write (`emit_*`) draws a uuid, calls that function, and appends the same effect
as a record to the backlog; a record from another origin (`apply_one`) is
decoded and handed to the same function. So a local write and its replay on a
peer cannot disagree.

Where a key lives:
  d       the visible object of each key (live: it has a value)
  alts    rare: live objects of other types on the same key, written
          concurrently on other nodes (see docs/crdt-notes.md, "type conflicts")
  tombs   string registers that hold no value (DEL, expiry): their ts must
          outlive the value so that an older concurrent SET still loses
"""

cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.dict cimport PyDict_GetItem, PyDict_GetItemWithError, PyDict_Next
from cpython.object cimport PyObject
from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t
from libc.string cimport memcpy

from constdb._core.backlog cimport OP_CONT, Backlog
from constdb._core.clock cimport Clock, wall_ms
from constdb._core.codec cimport Reader, Writer, parse_i64, put_u64_at, put_varint_at, varint_len
from constdb._core.objects cimport (
    T_HASH, T_LIST, T_MV, T_SET, T_STRING, T_ZSET, CObj, CntEntry, Dot, HashObj, LBlock,
    LElem, ListObj, MVObj, SetObj, StrObj, TTLReg, Ver, ZEnt, ZSetObj, best_ver, hash_val,
    new_dot, new_hash, new_list, new_mv, new_set, new_str, new_ver, new_zset, obj_type, ts_gt,
)

TYPE_NAMES = {T_STRING: "string", T_SET: "set", T_HASH: "hash", T_MV: "mvreg", 1: "list", 3: "zset"}

# Types whose rules live in their own modules (t_list, t_zset, t_hash) register
# here when imported, so that this module does not depend on them.
EXT_APPLY = {}       # record op -> callable(ks, origin, uuid, Reader): apply its payload
EXT_CLEAR = {}       # type code -> callable(ks, key, obj): DEL of that object (emit_clear)
EXT_VALUE = {}       # type code -> callable(obj): Python view of the visible value
EXT_DESCRIBE = {}    # type code -> callable(obj): extra DESC name/value pairs
EXT_GC = {}          # type code -> callable(obj, stable): (dropped, empty)
cdef object _ext_hset = None   # callable(ks, key, HashObj, field, val, u, removes): HSET of a counted field


def register_type(int t, clear=None, value=None, describe=None, apply=None, gc=None):
    """Called at import by a type module (see EXT_*)."""
    if clear is not None:
        EXT_CLEAR[t] = clear
    if value is not None:
        EXT_VALUE[t] = value
    if describe is not None:
        EXT_DESCRIBE[t] = describe
    if gc is not None:
        EXT_GC[t] = gc
    if apply:
        for op, fn in apply.items():
            if op in EXT_APPLY and EXT_APPLY[op] is not fn:
                raise ValueError("record op %d registered twice" % op)
            EXT_APPLY[op] = fn


def register_hset_hook(fn):
    """t_hash: HSET of a field that carries counter state."""
    global _ext_hset
    _ext_hset = fn


# ---------------------------------------------------------------- helpers ----

cdef inline TTLReg _ttlreg(int64_t at, uint64_t u, uint64_t n):
    cdef TTLReg t = TTLReg.__new__(TTLReg)
    t.at = at
    t.uuid = u
    t.node = n
    return t


cdef inline CntEntry _cnt_entry(uint64_t node):
    cdef CntEntry e = CntEntry.__new__(CntEntry)
    e.sum = 0
    e.last = 0
    e.bsum = 0
    e.blast = 0
    e.node = node
    return e


# A string's counter entries (origin -> CntEntry) live in two places: cnt1, one
# origin's entry (this node's when it counts: a local INCR touches no dict), and
# the dict cnt for the others (None when empty; never cnt1's origin). Code that
# reads or replaces them as a whole (snapshots, merges) uses str_cnts and
# str_set_cnts; the rules below walk both parts.

cdef dict str_cnts(StrObj o):
    """o's counter entries as one map {origin: CntEntry}, None if it has none.
    A new dict of o's own entry objects: changing an entry changes o; adding or
    removing entries takes str_set_cnts."""
    cdef dict out
    if o.cnt1 is None:
        return dict(o.cnt) if o.cnt else None
    out = dict(o.cnt) if o.cnt else {}
    out[o.cnt1.node] = o.cnt1
    return out


cdef int str_set_cnts(StrObj o, object cnts) except -1:
    """Replace o's counter entries by the map cnts ({origin: CntEntry}; None or
    empty: none). The entries are kept as they are (their node is set to their
    origin); the origin cnt1 held keeps that place if cnts has it."""
    cdef CntEntry e, first = None
    cdef uint64_t keep = 0
    cdef bint has_keep = o.cnt1 is not None
    cdef dict rest = None
    if has_keep:
        keep = o.cnt1.node
    o.cnt1 = None
    o.cnt = None
    if not cnts:
        return 0
    for k, v in (<dict>cnts).items():
        e = <CntEntry>v
        e.node = <uint64_t>k
        if first is None and (not has_keep or e.node == keep):
            first = e
    if first is None:
        # the origin cnt1 held is gone: the first entry takes its place
        for v in (<dict>cnts).values():
            first = <CntEntry>v
            break
    for v in (<dict>cnts).values():
        e = <CntEntry>v
        if e is not first:
            if rest is None:
                rest = {}
            rest[e.node] = e
    o.cnt1 = first
    o.cnt = rest
    return 0


cdef CntEntry _str_cnt(StrObj o, uint64_t n, bint create):
    """o's counter entry of origin n; a new one if create (else None)."""
    cdef CntEntry e = o.cnt1
    cdef PyObject* p
    if e is not None and e.node == n:
        return e
    if o.cnt is not None:
        p = PyDict_GetItem(o.cnt, n)
        if p != NULL:
            return <CntEntry>p
    if not create:
        return None
    e = _cnt_entry(n)
    if o.cnt1 is None:
        o.cnt1 = e
    else:
        if o.cnt is None:
            o.cnt = {}
        o.cnt[n] = e
    return e


def str_counters(StrObj o):
    """Python view of str_cnts (tests, tools)."""
    return str_cnts(o)


def set_str_counters(StrObj o, cnts):
    """Python view of str_set_cnts (tests, tools)."""
    str_set_cnts(o, cnts)


cdef inline bint _dot_in(Dot d, list dots) noexcept:
    cdef Dot x
    for x in dots:
        if x.uuid == d.uuid and x.node == d.node:
            return True
    return False


cdef object _ent_remove(object ent, list dots):
    """Drop the dots of `dots` from an entry (a Dot/Ver, or a list of them)."""
    cdef list keep
    if ent is None or not dots:
        return ent
    if type(ent) is list:
        keep = [x for x in <list>ent if not _dot_in(<Dot>x, dots)]
        if not keep:
            return None
        if len(keep) == 1:
            return keep[0]
        return keep
    if _dot_in(<Dot>ent, dots):
        return None
    return ent


cdef object _ent_add(object ent, Dot d):
    cdef Dot x
    if ent is None:
        return d
    if type(ent) is list:
        for x in <list>ent:
            if x.uuid == d.uuid and x.node == d.node:
                return ent
        (<list>ent).append(d)
        return ent
    x = <Dot>ent
    if x.uuid == d.uuid and x.node == d.node:
        return ent
    return [ent, d]


cdef list _ent_dots(object ent):
    """The entry's dots as a fresh list of Dot (for a remove effect)."""
    if ent is None:
        return []
    if type(ent) is list:
        return [new_dot((<Dot>x).node, (<Dot>x).uuid) for x in <list>ent]
    return [new_dot((<Dot>ent).node, (<Dot>ent).uuid)]


cdef int _put_dots(Writer w, list dots) except -1:
    cdef Dot x
    w.put_varint(len(dots))
    for x in dots:
        w.put_u64(x.node)
        w.put_u64(x.uuid)
    return 0


cdef list _read_dots(Reader r):
    cdef uint64_t n = r.varint(), i
    cdef list out = []
    cdef uint64_t node
    if n > <uint64_t>(r.end - r.pos):
        raise ValueError("bad dot count")
    for i in range(n):
        node = r.u64()
        out.append(new_dot(node, r.u64()))
    return out


cdef inline void _bump(uint64_t* lu, uint64_t* ln, uint64_t u, uint64_t n) noexcept:
    if ts_gt(u, n, lu[0], ln[0]):
        lu[0] = u
        ln[0] = n


cdef inline void _ent_max(object ent, uint64_t* u, uint64_t* n) noexcept:
    cdef Dot x
    if type(ent) is list:
        for y in <list>ent:
            x = <Dot>y
            if ts_gt(x.uuid, x.node, u[0], n[0]):
                u[0] = x.uuid
                n[0] = x.node
    else:
        x = <Dot>ent
        if ts_gt(x.uuid, x.node, u[0], n[0]):
            u[0] = x.uuid
            n[0] = x.node


cdef void _last_ts(CObj o, uint64_t* u, uint64_t* n) noexcept:
    """ts of the newest write that o still holds: decides which type a key shows
    when concurrent writes left objects of two types on it. It is a function of
    o's state (its surviving dots, its register and counter entries), never of
    the order effects arrived in: an object dropped when it went empty and made
    again later must compare as one that stayed (docs/crdt-notes.md)."""
    cdef CntEntry e
    if type(o) is StrObj:
        u[0] = (<StrObj>o).uuid
        n[0] = (<StrObj>o).node
        e = (<StrObj>o).cnt1
        if e is not None and ts_gt(e.last, e.node, u[0], n[0]):
            u[0] = e.last
            n[0] = e.node
        if (<StrObj>o).cnt is not None:
            for k, v in (<dict>(<StrObj>o).cnt).items():
                e = <CntEntry>v
                if ts_gt(e.last, <uint64_t>k, u[0], n[0]):
                    u[0] = e.last
                    n[0] = <uint64_t>k
    else:
        u[0] = 0
        n[0] = 0
        if type(o) is SetObj:
            for ent in (<SetObj>o).m.values():
                _ent_max(ent, u, n)
        elif type(o) is HashObj:
            for ent in (<HashObj>o).f.values():
                _ent_max(ent, u, n)
        elif type(o) is MVObj:
            for x in (<MVObj>o).vers:
                _ent_max(x, u, n)
        elif type(o) is ListObj:
            _list_last_ts(<ListObj>o, u, n)
        elif type(o) is ZSetObj:
            for x in (<ZSetObj>o).m.values():
                _ent_max((<ZEnt>x).dots, u, n)


cdef void _list_last_ts(ListObj o, uint64_t* u, uint64_t* n) noexcept:
    # a list holds the writes of its live elements: their inserts and LSETs
    cdef LBlock b
    cdef LElem e
    for x in o.blocks:
        b = <LBlock>x
        if b.live == 0:
            continue
        for y in b.items:
            e = <LElem>y
            if e.rem != 0:
                continue
            if ts_gt(e.uuid, e.node, u[0], n[0]):
                u[0] = e.uuid
                n[0] = e.node
            if ts_gt(e.vu, e.vn, u[0], n[0]):
                u[0] = e.vu
                n[0] = e.vn


cdef bint _newer(CObj a, CObj b) noexcept:
    cdef uint64_t au, an, bu, bn
    _last_ts(a, &au, &an)
    _last_ts(b, &bu, &bn)
    return ts_gt(au, an, bu, bn)


# The TTL register is one LWW register per key (CRDT.md section 6), kept on
# every object of the key (shown, hidden, tombstone). Objects made later copy
# it, and a key left with no object keeps it in a tombstone, so that what a
# node holds does not depend on the order effects arrived in (crdt-notes.md).

cdef TTLReg _ttl_of(CObj o):
    """o's TTL register made explicit; None when it is (no expiry, ts 0)."""
    cdef TTLReg t
    if o.ttl is not None:
        t = <TTLReg>o.ttl
        if t.uuid != 0 or t.node != 0:
            return t
        return None
    if type(o) is StrObj and ((<StrObj>o).uuid != 0 or (<StrObj>o).node != 0):
        return _ttlreg(0, (<StrObj>o).uuid, (<StrObj>o).node)
    return None


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
    if key in ks.d:
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
    if s.uuid == 0 and s.node == 0 and s.cnt is None and s.cnt1 is None and s.val is None:
        del ks.tombs[key]
    return 0


cdef int _keep_ttl(Keyspace ks, object key, CObj o) except -1:
    """o (not a string) went empty: if nothing else on key holds the TTL
    register, a tombstone keeps it."""
    cdef StrObj s
    cdef TTLReg t
    if o.ttl is None or key in ks.d or (ks.tombs and key in ks.tombs):
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


cdef bint str_live(StrObj o) noexcept:
    cdef CntEntry e
    if o.val is not None:
        return True
    e = o.cnt1
    if e is not None and e.last > e.blast:
        return True
    if o.cnt is None:
        return False
    for v in (<dict>o.cnt).values():
        e = <CntEntry>v
        if e.last > e.blast:
            return True
    return False


cdef bint obj_live(CObj o) noexcept:
    if type(o) is StrObj:
        return str_live(<StrObj>o)
    if type(o) is SetObj:
        return len((<SetObj>o).m) > 0
    if type(o) is HashObj:
        return len((<HashObj>o).f) > 0
    if type(o) is MVObj:
        return len((<MVObj>o).vers) > 0
    if type(o) is ListObj:
        return (<ListObj>o).n > 0
    if type(o) is ZSetObj:
        return len((<ZSetObj>o).m) > 0
    return False


cdef inline void _dead_ttl(Keyspace ks, object key, CObj o) noexcept:
    # an object kept in dead holds no TTL register: the key's lives on in the
    # tombstone (_keep_ttl), and find() gives the object a copy when it is live again
    if o.ttl is not None and _keeps_state(o):
        o.ttl = None


cdef bint _keeps_state(CObj o) noexcept:
    """o is not live but holds what must outlive it (list tombstones, removed
    sorted-set members, hash field counters): it waits in Keyspace.dead."""
    if type(o) is ListObj:
        return len((<ListObj>o).ids) > 0 or (<ListObj>o).pend is not None
    if type(o) is ZSetObj:
        return (<ZSetObj>o).gone is not None and len(<dict>(<ZSetObj>o).gone) > 0
    if type(o) is HashObj:
        return (<HashObj>o).hc is not None and len(<dict>(<HashObj>o).hc) > 0
    return False


cdef inline uint64_t _cnt_delta(StrObj o, bint* unobserved) noexcept:
    """The sum of o's counter contributions its register did not observe
    (two's-complement wrap on purpose: sums are int64 like Redis's); sets
    unobserved if some origin counted since the register write."""
    cdef CntEntry e = o.cnt1
    cdef uint64_t delta = 0
    if e is not None:
        delta = <uint64_t>e.sum - <uint64_t>e.bsum
        if e.last > e.blast:
            unobserved[0] = True
    if o.cnt is not None:
        for v in (<dict>o.cnt).values():
            e = <CntEntry>v
            delta += <uint64_t>e.sum - <uint64_t>e.bsum
            if e.last > e.blast:
                unobserved[0] = True
    return delta


cdef object str_get(StrObj o):
    """Visible value of a string (CRDT.md 3.1): bytes, an int (a counter that
    has no integer register under it), or None when absent."""
    cdef uint64_t delta
    cdef bint unobserved = False
    cdef int64_t iv
    if o.cnt1 is None and o.cnt is None:
        return o.val
    delta = _cnt_delta(o, &unobserved)
    if o.val is None:
        return <int64_t>delta if unobserved else None
    if delta == 0:
        return o.val
    if parse_i64(PyBytes_AS_STRING(o.val), PyBytes_GET_SIZE(o.val), &iv):
        return <int64_t>(<uint64_t>iv + delta)
    return o.val


cdef int str_int(StrObj o, int64_t* out) noexcept:
    """str_get as an integer, with no Python object: STR_ABSENT, STR_INT
    (out set) or STR_NOTINT (a value that is not an integer)."""
    cdef uint64_t delta
    cdef bint unobserved = False
    cdef int64_t iv
    if o.cnt1 is None and o.cnt is None:
        if o.val is None:
            return STR_ABSENT
    else:
        delta = _cnt_delta(o, &unobserved)
        if o.val is None:
            if not unobserved:
                return STR_ABSENT
            out[0] = <int64_t>delta
            return STR_INT
        if parse_i64(PyBytes_AS_STRING(o.val), PyBytes_GET_SIZE(o.val), &iv):
            out[0] = <int64_t>(<uint64_t>iv + delta)
            return STR_INT
        return STR_NOTINT
    if parse_i64(PyBytes_AS_STRING(o.val), PyBytes_GET_SIZE(o.val), out):
        return STR_INT
    return STR_NOTINT


# Redis glob-style matching (KEYS, SCAN MATCH, CONFIG GET): * ? [set] [^set]
# [a-z] and backslash escapes, with Redis's semantics.
cdef bint stringmatch(const char* p, Py_ssize_t plen, const char* s, Py_ssize_t slen, bint nocase) noexcept:
    cdef bint neg, hit
    cdef char a, b, c, x
    # slen > 0, as Redis's stringmatchlen: an empty subject matches only ""
    while plen > 0 and slen > 0:
        c = p[0]
        if c == b'*':
            while plen > 1 and p[1] == b'*':
                p += 1
                plen -= 1
            if plen == 1:
                return True
            while slen > 0:
                if stringmatch(p + 1, plen - 1, s, slen, nocase):
                    return True
                s += 1
                slen -= 1
            return False
        if slen == 0:
            return False
        if c == b'?':
            s += 1
            slen -= 1
        elif c == b'[':
            p += 1
            plen -= 1
            neg = plen > 0 and p[0] == b'^'
            if neg:
                p += 1
                plen -= 1
            hit = False
            while plen > 0:
                if p[0] == b'\\' and plen >= 2:
                    p += 1
                    plen -= 1
                    if p[0] == s[0]:
                        hit = True
                elif p[0] == b']':
                    break
                elif plen >= 3 and p[1] == b'-':
                    a = p[0]
                    b = p[2]
                    x = s[0]
                    if a > b:
                        a, b = b, a
                    if nocase:
                        a = _lower(a)
                        b = _lower(b)
                        x = _lower(x)
                    if a <= x <= b:
                        hit = True
                    p += 2
                    plen -= 2
                else:
                    if p[0] == s[0] or (nocase and _lower(p[0]) == _lower(s[0])):
                        hit = True
                p += 1
                plen -= 1
            if plen == 0:
                # unterminated set: Redis treats the end of pattern as ']'
                p -= 1
                plen += 1
            if neg:
                hit = not hit
            if not hit:
                return False
            s += 1
            slen -= 1
        else:
            if c == b'\\' and plen >= 2:
                p += 1
                plen -= 1
                c = p[0]
            if c != s[0] and not (nocase and _lower(c) == _lower(s[0])):
                return False
            s += 1
            slen -= 1
        p += 1
        plen -= 1
        if slen == 0:
            while plen > 0 and p[0] == b'*':
                p += 1
                plen -= 1
            break
    return plen == 0 and slen == 0


cdef inline char _lower(char c) noexcept:
    if b'A' <= c <= b'Z':
        return c + 32
    return c


cdef bint match_bytes(bytes pat, bytes s) noexcept:
    return stringmatch(PyBytes_AS_STRING(pat), PyBytes_GET_SIZE(pat),
                       PyBytes_AS_STRING(s), PyBytes_GET_SIZE(s), False)


def glob_match(bytes pat, bytes s, bint nocase=False):
    return stringmatch(PyBytes_AS_STRING(pat), PyBytes_GET_SIZE(pat),
                       PyBytes_AS_STRING(s), PyBytes_GET_SIZE(s), nocase)


# --------------------------------------------------------------- keyspace ----

cdef class Keyspace:
    def __init__(self, uint64_t node_id, Backlog backlog=None):
        self.d = {}
        self.alts = {}
        self.tombs = {}
        self.dead = {}
        self.expires = {}
        self.vv = {}
        self.cloud = {}
        self.watched = {}
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
        self.expire_cursor = 0

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
        return t.at != 0 and t.at <= self.now

    cdef CObj lookup(self, object key):
        """The visible object of key, or None; an expired key is deleted here
        (a normal DEL effect, CRDT.md section 6)."""
        cdef PyObject* p = PyDict_GetItemWithError(self.d, key)
        cdef CObj o
        if p == NULL:
            return None
        o = <CObj>p
        if o.ttl is not None and self.is_expired(o):
            self.expire_key(key)
            return None
        return o

    cdef CObj lookup_r(self, object key):
        """lookup() for read commands: counts keyspace hits and misses."""
        cdef CObj o = self.lookup(key)
        if o is None:
            self.misses += 1
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
        return 0

    cdef list objects_of(self, object key):
        cdef list out = []
        o = self.d.get(key)
        if o is not None:
            out.append(o)
        if self.alts:
            lst = self.alts.get(key)
            if lst is not None:
                out.extend(lst)
        return out

    cdef CObj find(self, object key, int t, bint create):
        """The object of type t on key, visible or not; a new unplaced one if
        there is none and create is set (settle() places it)."""
        cdef PyObject* p = PyDict_GetItem(self.d, key)
        cdef CObj o
        cdef TTLReg tt
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
        if self.dead and (t == T_LIST or t == T_ZSET or t == T_HASH):
            p = PyDict_GetItem(self.dead, (key, t))
            if p != NULL:
                o = <CObj>p
                # the key's TTL register may have moved on while o was empty
                tt = _key_ttl(self, key)
                if tt is not None and (o.ttl is None or ts_gt(tt.uuid, tt.node, (<TTLReg>o.ttl).uuid,
                                                               (<TTLReg>o.ttl).node)):
                    o.ttl = _ttlreg(tt.at, tt.uuid, tt.node)
                return o
        if not create:
            return None
        if t == T_STRING:
            o = new_str()
        elif t == T_SET:
            o = new_set()
        elif t == T_HASH:
            o = new_hash()
        elif t == T_MV:
            o = new_mv()
        elif t == T_LIST:
            o = new_list()
        elif t == T_ZSET:
            o = new_zset()
        else:
            raise ValueError("unknown type")
        # a new object on a key takes the key's TTL register (crdt-notes.md);
        # a key with no object and no tombstone has none (alts imply d)
        if PyDict_GetItem(self.d, key) != NULL or (self.tombs and key in self.tombs):
            tt = _key_ttl(self, key)
            if tt is not None:
                o.ttl = _ttlreg(tt.at, tt.uuid, tt.node)
        return o

    cdef int touched(self, object key) except -1:
        self.dirty += 1
        if self.watched:
            clients = self.watched.get(key)
            if clients and self.on_touch is not None:
                self.on_touch(clients)
        return 0

    cdef int settle(self, object key, CObj o) except -1:
        """Put o where it belongs after a change: visible, hidden or tombstone."""
        cdef PyObject* p = PyDict_GetItem(self.d, key)
        cdef bint live
        if p == <PyObject*>o:
            if obj_live(o):
                if self.alts and key in self.alts:
                    # a removal may have taken the shown object's newest write
                    # away: the newest live object shows (crdt-notes.md)
                    del self.d[key]
                    self.alts[key].append(o)
                    self._promote(key)
                return 0
            del self.d[key]
            if self.pick is not None and len(self.pick) > 2 * len(self.d) + 1024:
                self.pick = None    # mostly deleted keys: let them go
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
                if ((<StrObj>o).uuid != 0 or (<StrObj>o).cnt or (<StrObj>o).cnt1 is not None
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
            self.d[key] = o
            if self.pick is not None:
                self.pick = None    # a new key: RANDOMKEY's list lacks it
            if type(o) is not StrObj and self.tombs:
                _drop_ttl_tomb(self, key)
            if lst is not None and o in lst:
                lst.remove(o)
                if not lst:
                    del self.alts[key]
            if o.ttl is not None:
                self.expires[key] = None
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
            self.d[key] = o
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
                self.d[key] = best
                if best.ttl is not None:
                    self.expires[key] = None
                return 0
        self.expires.pop(key, None)
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
            cn = (<StrObj>o).node
        if ts_gt(u, n, cu, cn):
            o.ttl = _ttlreg(at, u, n)
            if at != 0:
                self.expires[key] = None
        return 0

    cdef int _ttl_others(self, object key, CObj o, int64_t at, uint64_t u, uint64_t n) except -1:
        """The TTL write (at, u, n) on every object of key but o, tombstone
        included (o takes it by its own rule)."""
        cdef PyObject* p = PyDict_GetItem(self.d, key)
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

    cdef int _reg_on(self, object key, StrObj o, object val, uint64_t u, uint64_t n,
                     int ttl_mode, int64_t at, list obs, bint shown) except -1:
        """shown: o is d[key] (the caller found it there), so the only other
        objects key can have are in alts: a key holds one string object at
        most (find() returns it), so a tombstone of key is never another."""
        cdef TTLReg t
        cdef CntEntry e
        if ts_gt(u, n, o.uuid, o.node):
            if ttl_mode == TTL_KEEP:
                if o.ttl is None:
                    # the TTL register was implicit (no expiry, register's ts):
                    # make it explicit before the register moves on
                    o.ttl = _ttlreg(0, o.uuid, o.node)
            elif o.ttl is None or ts_gt(u, n, (<TTLReg>o.ttl).uuid, (<TTLReg>o.ttl).node):
                if at == 0:
                    o.ttl = None
                else:
                    o.ttl = _ttlreg(at, u, n)
                    self.expires[key] = None
            o.val = val
            o.uuid = u
            o.node = n
            if o.cnt1 is not None or o.cnt is not None or obs:
                # the new register write observed the counters: obs are their
                # (sum, last) as the writer saw them, the base of each origin
                e = o.cnt1
                if e is not None:
                    e.bsum = 0
                    e.blast = 0
                if o.cnt is not None:
                    for v in (<dict>o.cnt).values():
                        e = <CntEntry>v
                        e.bsum = 0
                        e.blast = 0
                if obs:
                    for item in obs:
                        e = _str_cnt(o, <uint64_t>item[0], True)
                        e.bsum = item[1]
                        e.blast = item[2]
        elif ttl_mode == TTL_WRITE and o.ttl is not None:
            t = <TTLReg>o.ttl
            if ts_gt(u, n, t.uuid, t.node):
                o.ttl = _ttlreg(at, u, n)
                if at != 0:
                    self.expires[key] = None
        if ttl_mode == TTL_WRITE:
            if not shown or self.alts:
                self._ttl_others(key, o, at, u, n)
        self.touched(key)
        if not shown or self.alts or not str_live(o):
            # (shown, live and no other object on key: o stays where it is)
            self.settle(key, o)
        return 0

    cdef int _cnt_on(self, object key, StrObj o, int64_t delta, uint64_t u, uint64_t n,
                     bint shown) except -1:
        """shown: o is d[key] (see _reg_on)."""
        cdef CntEntry e = o.cnt1
        cdef CntEntry e1
        if e is None or e.node != n:
            e = _str_cnt(o, n, True)
            if n == self.node_id and o.cnt1 is not e:
                # this node counts here from now on: its entry takes cnt1's place
                e1 = o.cnt1
                del o.cnt[n]
                o.cnt[e1.node] = e1
                o.cnt1 = e
        e.sum = <int64_t>(<uint64_t>e.sum + <uint64_t>delta)
        e.last = u
        self.touched(key)
        if not shown or self.alts:
            # (shown and no other object: a counter just written is live and stays)
            self.settle(key, o)
        return 0

    cdef int _sadd_on(self, object key, SetObj o, object member, uint64_t u, uint64_t n,
                      list removes) except -1:
        cdef PyObject* p = PyDict_GetItem(o.m, member)
        cdef object ent = <object>p if p != NULL else None
        if removes:
            ent = _ent_remove(ent, removes)
            self._note_unseen(removes)
        if not self._in_cloud(n, u):
            ent = _ent_add(ent, new_dot(n, u))
        if ent is None:
            o.m.pop(member, None)
        else:
            if p == NULL and o.pick is not None:
                o.pick = None    # a new member: the random-access list lacks it
            o.m[member] = ent
        _bump(&o.lu, &o.ln, u, n)
        self.touched(key)
        self.settle(key, o)
        return 0

    cdef int _srem_on(self, object key, SetObj o, object member, list dots) except -1:
        cdef object ent
        self._note_unseen(dots)
        if o is None:
            return 0
        ent = o.m.get(member)
        if ent is not None:
            ent = _ent_remove(ent, dots)
            if ent is None:
                del o.m[member]
                if o.pick is not None and len(o.pick) > 2 * len(o.m) + 64:
                    o.pick = None   # mostly removed members: let them go
            else:
                o.m[member] = ent
        return 0

    cdef int _hset_on(self, object key, HashObj o, object field, object val, uint64_t u,
                      uint64_t n, list removes) except -1:
        cdef PyObject* p = PyDict_GetItem(o.f, field)
        cdef object ent = <object>p if p != NULL else None
        if removes:
            ent = _ent_remove(ent, removes)
            self._note_unseen(removes)
        if not self._in_cloud(n, u):
            ent = _ent_add(ent, new_ver(val, u, n))
        if ent is None:
            o.f.pop(field, None)
        else:
            if p == NULL and o.pick is not None:
                o.pick = None    # a new field: HRANDFIELD's list lacks it
            o.f[field] = ent
        _bump(&o.lu, &o.ln, u, n)
        self.touched(key)
        self.settle(key, o)
        return 0

    cdef int _hrem_on(self, object key, HashObj o, object field, list dots) except -1:
        cdef object ent
        self._note_unseen(dots)
        if o is None:
            return 0
        ent = o.f.get(field)
        if ent is not None:
            ent = _ent_remove(ent, dots)
            if ent is None:
                del o.f[field]
                if o.pick is not None and len(o.pick) > 2 * len(o.f) + 64:
                    o.pick = None   # mostly removed fields: let them go
            else:
                o.f[field] = ent
        return 0

    cdef int _mv_on(self, object key, MVObj o, object val, uint64_t u, uint64_t n,
                    list removes) except -1:
        cdef Ver v
        if removes:
            o.vers = [x for x in o.vers if not _dot_in(<Dot>x, removes)]
            self._note_unseen(removes)
        if val is not None and not self._in_cloud(n, u):
            v = new_ver(val, u, n)
            o.vers.append(v)
        _bump(&o.lu, &o.ln, u, n)
        self.touched(key)
        self.settle(key, o)
        return 0

    cdef int _clear_done(self, object key, CObj o, uint64_t u, uint64_t n) except -1:
        # a whole-object clear is a DEL: it also writes the key's TTL register
        self._ttl_on(key, o, 0, u, n)
        self._ttl_others(key, o, 0, u, n)
        if type(o) is SetObj:
            _bump(&(<SetObj>o).lu, &(<SetObj>o).ln, u, n)
        elif type(o) is HashObj:
            _bump(&(<HashObj>o).lu, &(<HashObj>o).ln, u, n)
        elif type(o) is MVObj:
            _bump(&(<MVObj>o).lu, &(<MVObj>o).ln, u, n)
        self.touched(key)
        self.settle(key, o)
        return 0

    # ---- local effects ------------------------------------------------------

    cdef int emit_reg(self, object key, object val, int ttl_mode, int64_t at) except -1:
        """SET-family write of a string register (val None = delete)."""
        cdef PyObject* p = PyDict_GetItemWithError(self.d, key)
        if p != NULL and type(<object>p) is StrObj:
            return self.emit_reg_at(key, <StrObj>p, True, val, ttl_mode, at)
        return self.emit_reg_at(key, <StrObj>self.find(key, T_STRING, True), False, val, ttl_mode, at)

    cdef int emit_reg_at(self, object key, StrObj o, bint shown, object val, int ttl_mode,
                         int64_t at) except -1:
        """emit_reg on key's string object o (as find() gives it); shown: o is
        d[key] (a caller that looked the key up passes what it found)."""
        cdef uint64_t u = self.tick()
        cdef list obs = None
        cdef CntEntry e
        cdef char* w
        cdef Py_ssize_t klen = PyBytes_GET_SIZE(key), vlen = 0, plen, nobs = 0
        if o.cnt1 is not None or o.cnt is not None:
            obs = []
            e = o.cnt1
            if e is not None:
                obs.append((e.node, e.sum, e.last))
            if o.cnt is not None:
                for k, v in (<dict>o.cnt).items():
                    e = <CntEntry>v
                    obs.append((k, e.sum, e.last))
            nobs = len(obs)
        self._reg_on(key, o, val, u, self.node_id, ttl_mode, at, obs, shown)
        # the record, written in one go: key, flags, [value], [expire_at], observed counters
        plen = varint_len(<uint64_t>klen) + klen + 1 + varint_len(<uint64_t>nobs) + 24 * nobs
        if val is not None:
            vlen = PyBytes_GET_SIZE(val)
            plen += varint_len(<uint64_t>vlen) + vlen
        if ttl_mode == TTL_WRITE:
            plen += 8
        w = self.bl.reserve(OP_REG, u, plen)
        w = put_varint_at(w, <uint64_t>klen)
        memcpy(w, PyBytes_AS_STRING(key), klen)
        w += klen
        w[0] = <char>((1 if val is not None else 0) | (2 if ttl_mode == TTL_WRITE else 0))
        w += 1
        if val is not None:
            w = put_varint_at(w, <uint64_t>vlen)
            memcpy(w, PyBytes_AS_STRING(val), vlen)
            w += vlen
        if ttl_mode == TTL_WRITE:
            memcpy(w, &at, 8)
            w += 8
        w = put_varint_at(w, <uint64_t>nobs)
        if nobs:
            for item in obs:
                w = put_u64_at(w, <uint64_t>item[0])
                w = put_u64_at(w, <uint64_t>(<int64_t>item[1]))
                w = put_u64_at(w, <uint64_t>item[2])
        self.bl.end()
        return 0

    cdef int emit_cnt(self, object key, StrObj o, int64_t delta) except -1:
        """INCRBY of key's counter; o: d[key] when the caller found a string
        there, else None."""
        cdef uint64_t u = self.tick()
        cdef bint shown = o is not None
        cdef Py_ssize_t klen = PyBytes_GET_SIZE(key)
        cdef char* w
        if not shown:
            o = <StrObj>self.find(key, T_STRING, True)
        self._cnt_on(key, o, delta, u, self.node_id, shown)
        w = self.bl.reserve(OP_CNT, u, varint_len(<uint64_t>klen) + klen + 8)
        w = put_varint_at(w, <uint64_t>klen)
        memcpy(w, PyBytes_AS_STRING(key), klen)
        memcpy(w + klen, &delta, 8)
        self.bl.end()
        return 0

    cdef int emit_ttl(self, object key, int64_t at) except -1:
        """EXPIRE-family and PERSIST: write the key's TTL register."""
        cdef uint64_t u = self.tick()
        cdef Writer w
        _ttl_write(self, key, at, u, self.node_id)
        if at == 0:
            self.expires.pop(key, None)
        self.touched(key)
        w = self.bl.begin(OP_TTL, u)
        w.put_bytes(key)
        w.put_i64(at)
        self.bl.end()
        return 0

    cdef int emit_sadd(self, object key, object member) except -1:
        """Add a member that the set does not have (a no-op SADD logs nothing)."""
        cdef uint64_t u = self.tick()
        cdef PyObject* p = PyDict_GetItem(self.d, key)
        cdef SetObj o
        cdef list removes = None
        cdef Writer w
        if p != NULL and type(<object>p) is SetObj:
            o = <SetObj>p
        else:
            o = <SetObj>self.find(key, T_SET, True)
        ent = o.m.get(member)
        if ent is not None:
            removes = _ent_dots(ent)
        self._sadd_on(key, o, member, u, self.node_id, removes)
        w = self.bl.begin(OP_SADD, u)
        w.put_bytes(key)
        w.put_bytes(member)
        if removes is None:
            w.put_u8(0)
        else:
            _put_dots(w, removes)
        self.bl.end()
        return 0

    cdef int emit_srem(self, object key, SetObj o, object member) except -1:
        cdef uint64_t u = self.tick()
        cdef list dots = _ent_dots(o.m.get(member))
        cdef Writer w
        self._srem_on(key, o, member, dots)
        _bump(&o.lu, &o.ln, u, self.node_id)
        self.touched(key)
        self.settle(key, o)
        w = self.bl.begin(OP_SREM, u)
        w.put_bytes(key)
        w.put_bytes(member)
        _put_dots(w, dots)
        self.bl.end()
        if not obj_live(o):
            _emptied(self, key)
        return 0

    cdef int emit_hset(self, object key, object field, object val) except -1:
        cdef PyObject* p = PyDict_GetItemWithError(self.d, key)
        if p != NULL and type(<object>p) is HashObj:
            return self.emit_hset_at(key, <HashObj>p, True, field, val)
        return self.emit_hset_at(key, <HashObj>self.find(key, T_HASH, True), False, field, val)

    cdef int emit_hset_at(self, object key, HashObj o, bint shown, object field,
                          object val) except -1:
        """emit_hset on key's hash o (as find() gives it); shown: o is d[key].
        Returns 1 if field was not in o.f."""
        cdef uint64_t u = self.tick()
        cdef PyObject* p = PyDict_GetItem(o.f, field)
        cdef list removes = None
        cdef Py_ssize_t klen = PyBytes_GET_SIZE(key), flen = PyBytes_GET_SIZE(field)
        cdef Py_ssize_t vlen = PyBytes_GET_SIZE(val), nd = 0
        cdef char* w
        cdef Dot x
        if p != NULL:
            removes = _ent_dots(<object>p)
            nd = len(removes)
        if o.hc is not None and _ext_hset is not None and field in <dict>o.hc:
            # the field carries counters: the write resets what it observed (t_hash)
            _ext_hset(self, key, o, field, val, u, removes)
            return p == NULL
        # _hset_on for a local write: the removes are every dot of the field
        # (all seen: they are in this state) and the new dot is fresh (in no
        # cloud), so the field's entry is just the new version
        if p == NULL and o.pick is not None:
            o.pick = None    # a new field: HRANDFIELD's list lacks it
        o.f[field] = new_ver(val, u, self.node_id)
        _bump(&o.lu, &o.ln, u, self.node_id)
        self.touched(key)
        if not shown or self.alts:
            self.settle(key, o)
        # the record in one go: key, field, value, dots removed
        w = self.bl.reserve(OP_HSET, u, varint_len(<uint64_t>klen) + klen + varint_len(<uint64_t>flen)
                            + flen + varint_len(<uint64_t>vlen) + vlen + varint_len(<uint64_t>nd)
                            + 16 * nd)
        w = put_varint_at(w, <uint64_t>klen)
        memcpy(w, PyBytes_AS_STRING(key), klen)
        w = put_varint_at(w + klen, <uint64_t>flen)
        memcpy(w, PyBytes_AS_STRING(field), flen)
        w = put_varint_at(w + flen, <uint64_t>vlen)
        memcpy(w, PyBytes_AS_STRING(val), vlen)
        w = put_varint_at(w + vlen, <uint64_t>nd)
        if nd:
            for y in removes:
                x = <Dot>y
                w = put_u64_at(w, x.node)
                w = put_u64_at(w, x.uuid)
        self.bl.end()
        return p == NULL

    cdef int emit_hdel(self, object key, HashObj o, object field) except -1:
        cdef uint64_t u = self.tick()
        cdef list dots = _ent_dots(o.f.get(field))
        cdef Writer w
        self._hrem_on(key, o, field, dots)
        _bump(&o.lu, &o.ln, u, self.node_id)
        self.touched(key)
        self.settle(key, o)
        w = self.bl.begin(OP_HREM, u)
        w.put_bytes(key)
        w.put_bytes(field)
        _put_dots(w, dots)
        self.bl.end()
        if not obj_live(o):
            _emptied(self, key)
        return 0

    cdef int emit_mv(self, object key, object val, bint replace) except -1:
        """MVSET: a new version replacing every version seen here (replace=False
        keeps them: RENAME copying a register that holds concurrent versions)."""
        cdef uint64_t u = self.tick()
        cdef MVObj o = <MVObj>self.find(key, T_MV, True)
        cdef list removes = [new_dot((<Ver>x).node, (<Ver>x).uuid) for x in o.vers] if replace else []
        cdef Writer w
        self._mv_on(key, o, val, u, self.node_id, removes)
        w = self.bl.begin(OP_MV, u)
        w.put_bytes(key)
        w.put_bytes(val)
        _put_dots(w, removes)
        self.bl.end()
        return 0

    cdef int emit_clear(self, object key, CObj o) except -1:
        """Observed-remove everything o holds (one object of a DEL)."""
        cdef uint64_t u
        cdef Writer w
        cdef list items, dots
        cdef CntEntry e
        if type(o) is StrObj:
            self.emit_reg(key, None, TTL_WRITE, 0)
            return 0
        if type(o) is ListObj or type(o) is ZSetObj:
            EXT_CLEAR[obj_type(o)](self, key, o)
            return 0
        u = self.tick()
        if type(o) is SetObj:
            items = [(m, _ent_dots(ent)) for m, ent in (<SetObj>o).m.items()]
            w = self.bl.begin(OP_SCLEAR, u)
            w.put_bytes(key)
            w.put_varint(len(items))
            for m, dots in items:
                w.put_bytes(m)
                _put_dots(w, dots)
                self._srem_on(key, <SetObj>o, m, dots)
        elif type(o) is HashObj:
            items = [(f, _ent_dots(ent)) for f, ent in (<HashObj>o).f.items()]
            w = self.bl.begin(OP_HCLEAR, u)
            w.put_bytes(key)
            w.put_varint(len(items))
            for f, dots in items:
                w.put_bytes(f)
                _put_dots(w, dots)
                self._hrem_on(key, <HashObj>o, f, dots)
        elif type(o) is MVObj:
            dots = [new_dot((<Ver>x).node, (<Ver>x).uuid) for x in (<MVObj>o).vers]
            w = self.bl.begin(OP_MVCLEAR, u)
            w.put_bytes(key)
            _put_dots(w, dots)
            self._mv_on(key, <MVObj>o, None, u, self.node_id, dots)
        else:
            raise TypeError("cannot clear %r" % (o,))
        self._clear_done(key, o, u, self.node_id)
        self.bl.end()
        return 0

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

    # ---- remote records -----------------------------------------------------

    cdef int apply_one(self, uint64_t origin, Reader r) except -1:
        """Apply the record at r's position from `origin` unless VV has it."""
        cdef Py_ssize_t start = r.pos
        cdef uint32_t ln = r.u32()
        cdef Py_ssize_t end = start + 4 + <Py_ssize_t>ln
        cdef uint8_t op
        cdef uint64_t u, n, i
        cdef int64_t at, delta
        cdef object key, val, member
        cdef uint8_t flags
        cdef list obs, dots
        cdef CObj o
        r.need(ln)
        op = r.u8() & 0x7F
        u = r.u64()
        if u <= self.vv_get(origin):
            r.pos = end
            return 0
        if op == OP_REG:
            key = r.bytes_()
            flags = r.u8()
            val = r.bytes_() if flags & 1 else None
            at = r.i64() if flags & 2 else 0
            n = r.varint()
            obs = None
            if n:
                obs = []
                for i in range(n):
                    obs.append((r.u64(), r.i64(), r.u64()))
            o = self.find(key, T_STRING, True)
            self._reg_on(key, <StrObj>o, val, u, origin, TTL_WRITE if flags & 2 else TTL_KEEP, at, obs,
                         False)
        elif op == OP_CNT:
            key = r.bytes_()
            delta = r.i64()
            self._cnt_on(key, <StrObj>self.find(key, T_STRING, True), delta, u, origin, False)
        elif op == OP_TTL:
            key = r.bytes_()
            at = r.i64()
            _ttl_write(self, key, at, u, origin)
            self.touched(key)
        elif op == OP_SADD:
            key = r.bytes_()
            member = r.bytes_()
            dots = _read_dots(r)
            self._sadd_on(key, <SetObj>self.find(key, T_SET, True), member, u, origin, dots)
        elif op == OP_SREM:
            key = r.bytes_()
            member = r.bytes_()
            dots = _read_dots(r)
            o = self.find(key, T_SET, False)
            self._srem_on(key, <SetObj>o, member, dots)
            if o is not None:
                _bump(&(<SetObj>o).lu, &(<SetObj>o).ln, u, origin)
                self.touched(key)
                self.settle(key, o)
        elif op == OP_SCLEAR or op == OP_HCLEAR:
            key = r.bytes_()
            o = self.find(key, T_SET if op == OP_SCLEAR else T_HASH, False)
            n = r.varint()
            for i in range(n):
                member = r.bytes_()
                dots = _read_dots(r)
                if op == OP_SCLEAR:
                    self._srem_on(key, <SetObj>o, member, dots)
                else:
                    self._hrem_on(key, <HashObj>o, member, dots)
            if o is not None:
                self._clear_done(key, o, u, origin)
            else:
                # a clear is a DEL: it writes the key's TTL register even here
                _ttl_write(self, key, 0, u, origin)
        elif op == OP_HSET:
            key = r.bytes_()
            member = r.bytes_()
            val = r.bytes_()
            dots = _read_dots(r)
            self._hset_on(key, <HashObj>self.find(key, T_HASH, True), member, val, u, origin, dots)
        elif op == OP_HREM:
            key = r.bytes_()
            member = r.bytes_()
            dots = _read_dots(r)
            o = self.find(key, T_HASH, False)
            self._hrem_on(key, <HashObj>o, member, dots)
            if o is not None:
                _bump(&(<HashObj>o).lu, &(<HashObj>o).ln, u, origin)
                self.touched(key)
                self.settle(key, o)
        elif op == OP_MV:
            key = r.bytes_()
            val = r.bytes_()
            dots = _read_dots(r)
            self._mv_on(key, <MVObj>self.find(key, T_MV, True), val, u, origin, dots)
        elif op == OP_MVCLEAR:
            key = r.bytes_()
            dots = _read_dots(r)
            o = self.find(key, T_MV, False)
            if o is None:
                self._note_unseen(dots)
                _ttl_write(self, key, 0, u, origin)
            else:
                self._mv_on(key, <MVObj>o, None, u, origin, dots)
                self._clear_done(key, o, u, origin)
        elif op == OP_MEMBER:
            if self.on_member is not None:
                self.on_member(origin, u, r.read_raw(end - r.pos))
        else:
            fn = EXT_APPLY.get(op)
            if fn is None:
                raise ValueError("unknown record op %d" % op)
            fn(self, origin, u, r)
        if r.pos != end:
            raise ValueError("record length mismatch (op %d)" % op)
        if origin != self.node_id:
            self.vv[origin] = u
        elif u > self.own_last:
            self.own_last = u
        self.clock.fold(u)
        self.applied_remote += 1
        return 0

    # ---- Python API (replication, tests, admin commands) --------------------

    def apply_records(self, uint64_t origin, bytes data):
        """Apply a batch of records from origin, in order; returns how many
        were new (duplicates by VV are skipped)."""
        cdef Reader r = Reader(data)
        cdef uint64_t before = self.applied_remote
        self.now = wall_ms()
        while not r.at_end():
            self.apply_one(origin, r)
        return self.applied_remote - before

    def vv_of(self, uint64_t node):
        """How far this node has applied node's stream (its own: own_last)."""
        return self.vv_get(node)

    def get_vv(self):
        out = dict(self.vv)
        out[self.node_id] = self.own_last
        return out

    def advance_vv(self, uint64_t origin, uint64_t upto):
        """Heartbeat rule (CRDT.md section 2): origin has sent everything up to
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

    def dbsize(self):
        return len(self.d)

    def active_expire(self, int max_checks=200, double budget_ms=1.0):
        """One bounded slice of the active expiry cycle (Redis's is sampled and
        time-bounded too). Returns (checked, expired)."""
        cdef Py_ssize_t pos = <Py_ssize_t>self.expire_cursor
        cdef PyObject* k
        cdef PyObject* v
        cdef int checked = 0, expired = 0
        cdef int64_t deadline = wall_ms() + <int64_t>budget_ms
        cdef list gone = [], dead = []
        cdef CObj o
        self.now = wall_ms()
        if not self.expires:
            self.expire_cursor = 0
            return 0, 0
        while checked < max_checks:
            if not PyDict_Next(self.expires, &pos, &k, &v):
                pos = 0
                break
            checked += 1
            key = <object>k
            o = self.d.get(key)
            if o is None:
                gone.append(key)
            elif self.is_expired(o):
                dead.append(key)
            elif o.ttl is None or (<TTLReg>o.ttl).at == 0:
                gone.append(key)
        self.expire_cursor = pos
        for key in gone:
            self.expires.pop(key, None)
        for key in dead:
            o = self.d.get(key)
            if o is not None and self.is_expired(o):
                self.expire_key(key)
                expired += 1
        return checked, expired

    def expires_count(self):
        cdef int n = 0
        for key in self.expires:
            o = self.d.get(key)
            if o is not None and (<CObj>o).ttl is not None and (<TTLReg>(<CObj>o).ttl).at != 0:
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
        """Drop everything without logging (used before loading a snapshot)."""
        self.d.clear()
        self.alts.clear()
        self.tombs.clear()
        self.dead.clear()
        self.expires.clear()

    def emit_member(self, bytes payload):
        """A membership change (replication layer): applied through on_member,
        as the same record from a peer is, and logged."""
        cdef uint64_t u = self.tick()
        cdef Writer w
        if self.on_member is not None:
            self.on_member(self.node_id, u, payload)
        w = self.bl.begin(OP_MEMBER, u)
        w.put_raw(PyBytes_AS_STRING(payload), PyBytes_GET_SIZE(payload))
        self.bl.end()
        return u

    def gc(self, uint64_t stable):
        """Drop what is causally stable (CRDT.md section 6): string register
        tombstones older than `stable` that hold no counter entries (see
        crdt-notes.md on counters), and dot-cloud entries VV covers.
        Returns the number of tombstones dropped."""
        cdef StrObj o
        cdef list dead = []
        for key, v in self.tombs.items():
            o = <StrObj>v
            # a TTL register that still holds an expiry applies to the next
            # object made on the key: it must outlive the stable point
            if (o.cnt is None and o.cnt1 is None and o.uuid < stable
                    and (o.ttl is None or ((<TTLReg>o.ttl).at == 0 and (<TTLReg>o.ttl).uuid < stable))):
                dead.append(key)
        for key in dead:
            del self.tombs[key]
        if self.cloud:
            self.prune_cloud()
        return len(dead)

    def digest(self):
        """A hash of the visible data set, independent of key order: equal on
        nodes that have converged. (hex string)"""
        import hashlib
        cdef object total = 0
        cdef CObj o
        self.now = wall_ms()
        for key, v in self.d.items():
            o = <CObj>v
            if self.is_expired(o):
                continue
            h = hashlib.blake2b(digest_size=16)
            h.update(len(<bytes>key).to_bytes(4, "little"))
            h.update(<bytes>key)
            h.update(_canonical(o))
            total += int.from_bytes(h.digest(), "little")
        return "%032x" % (total & ((1 << 128) - 1))


def visible_value(CObj o):
    """Python value of a live object: bytes/int (string), set (set), dict
    (hash), list of (node, value) (mvreg)."""
    if type(o) is StrObj:
        v = str_get(<StrObj>o)
        if isinstance(v, int):
            return str(v).encode()
        return v
    if type(o) is SetObj:
        return set((<SetObj>o).m)
    if type(o) is HashObj:
        return {f: hash_val(<HashObj>o, f, ent) for f, ent in (<HashObj>o).f.items()}
    if type(o) is MVObj:
        return sorted(((<Ver>v).node, (<Ver>v).val) for v in (<MVObj>o).vers)
    fn = EXT_VALUE.get(obj_type(o))
    if fn is not None:
        return fn(o)
    return None


def _dots_list(ent):
    return [[(<Dot>x).node, (<Dot>x).uuid] for x in _ent_dots_raw(ent)]


cdef list _ent_dots_raw(object ent):
    if ent is None:
        return []
    if type(ent) is list:
        return list(ent)
    return [ent]


def describe_obj(CObj o):
    cdef TTLReg t
    cdef CntEntry e
    cdef uint64_t lu, ln
    out = [b"type", TYPE_NAMES[obj_type(o)].encode()]
    _last_ts(o, &lu, &ln)
    out += [b"last-write", [lu, ln]]
    if o.ttl is not None:
        t = <TTLReg>o.ttl
        out += [b"ttl", [t.at, t.uuid, t.node]]
    elif type(o) is StrObj:
        out += [b"ttl", [0, (<StrObj>o).uuid, (<StrObj>o).node]]
    else:
        out += [b"ttl", [0, 0, 0]]
    if type(o) is StrObj:
        so = <StrObj>o
        out += [b"register", [so.val, so.uuid, so.node]]
        cnts = []
        all_cnts = str_cnts(so)
        if all_cnts is not None:
            for node, v in sorted(all_cnts.items()):
                e = <CntEntry>v
                cnts.append([node, e.sum, e.last, e.bsum, e.blast])
        out += [b"counters", cnts]
    elif type(o) is SetObj:
        out += [b"members", [[m, _dots_list(ent)] for m, ent in sorted((<SetObj>o).m.items())]]
    elif type(o) is HashObj:
        fields = []
        for f, ent in sorted((<HashObj>o).f.items()):
            fields.append([f, [[(<Ver>x).val, (<Ver>x).node, (<Ver>x).uuid] for x in _ent_dots_raw(ent)]])
        out += [b"fields", fields]
    elif type(o) is MVObj:
        out += [b"versions", [[(<Ver>x).val, (<Ver>x).node, (<Ver>x).uuid] for x in (<MVObj>o).vers]]
    fn = EXT_DESCRIBE.get(obj_type(o))
    if fn is not None:
        out += fn(o)
    return out


cdef bytes _canonical(CObj o):
    """A canonical encoding of o's visible value and expiry (digest)."""
    cdef list parts = [TYPE_NAMES.get(obj_type(o), type(o).__name__).encode()]
    cdef TTLReg t
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
