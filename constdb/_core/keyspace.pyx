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
from cpython.dict cimport PyDict_GetItem, PyDict_Next
from cpython.object cimport PyObject
from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t

from constdb._core.backlog cimport OP_CONT, Backlog
from constdb._core.clock cimport Clock, wall_ms
from constdb._core.codec cimport Reader, Writer, parse_i64
from constdb._core.objects cimport (
    T_HASH, T_MV, T_SET, T_STRING, CObj, CntEntry, Dot, HashObj, MVObj, SetObj, StrObj,
    TTLReg, Ver, best_ver, new_dot, new_hash, new_mv, new_set, new_str, new_ver, obj_type,
    ts_gt,
)

TYPE_NAMES = {T_STRING: "string", T_SET: "set", T_HASH: "hash", T_MV: "mvreg", 1: "list", 3: "zset"}


# ---------------------------------------------------------------- helpers ----

cdef inline TTLReg _ttlreg(int64_t at, uint64_t u, uint64_t n):
    cdef TTLReg t = TTLReg.__new__(TTLReg)
    t.at = at
    t.uuid = u
    t.node = n
    return t


cdef inline CntEntry _cnt_entry():
    cdef CntEntry e = CntEntry.__new__(CntEntry)
    e.sum = 0
    e.last = 0
    e.bsum = 0
    e.blast = 0
    return e


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


cdef void _last_ts(CObj o, uint64_t* u, uint64_t* n) noexcept:
    """ts of the newest write applied to o: decides which type a key shows when
    concurrent writes left objects of two types on it."""
    cdef CntEntry e
    if type(o) is StrObj:
        u[0] = (<StrObj>o).uuid
        n[0] = (<StrObj>o).node
        if (<StrObj>o).cnt is not None:
            for k, v in (<dict>(<StrObj>o).cnt).items():
                e = <CntEntry>v
                if ts_gt(e.last, <uint64_t>k, u[0], n[0]):
                    u[0] = e.last
                    n[0] = <uint64_t>k
    elif type(o) is SetObj:
        u[0] = (<SetObj>o).lu
        n[0] = (<SetObj>o).ln
    elif type(o) is HashObj:
        u[0] = (<HashObj>o).lu
        n[0] = (<HashObj>o).ln
    elif type(o) is MVObj:
        u[0] = (<MVObj>o).lu
        n[0] = (<MVObj>o).ln
    else:
        u[0] = 0
        n[0] = 0


cdef bint _newer(CObj a, CObj b) noexcept:
    cdef uint64_t au, an, bu, bn
    _last_ts(a, &au, &an)
    _last_ts(b, &bu, &bn)
    return ts_gt(au, an, bu, bn)


cdef bint str_live(StrObj o) noexcept:
    cdef CntEntry e
    if o.val is not None:
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
    return False


cdef object str_get(StrObj o):
    """Visible value of a string (CRDT.md 3.1): bytes, an int (a counter that
    has no integer register under it), or None when absent."""
    cdef CntEntry e
    cdef uint64_t delta = 0
    cdef bint unobserved = False
    cdef int64_t iv
    if o.cnt is None:
        return o.val
    for v in (<dict>o.cnt).values():
        e = <CntEntry>v
        # two's-complement wrap on purpose: sums are int64 like Redis's
        delta += <uint64_t>e.sum - <uint64_t>e.bsum
        if e.last > e.blast:
            unobserved = True
    if o.val is None:
        return <int64_t>delta if unobserved else None
    if delta == 0:
        return o.val
    if parse_i64(PyBytes_AS_STRING(o.val), PyBytes_GET_SIZE(o.val), &iv):
        return <int64_t>(<uint64_t>iv + delta)
    return o.val


# Redis glob-style matching (KEYS, SCAN MATCH, CONFIG GET): * ? [set] [^set]
# [a-z] and backslash escapes, with Redis's semantics.
cdef bint stringmatch(const char* p, Py_ssize_t plen, const char* s, Py_ssize_t slen, bint nocase) noexcept:
    cdef bint neg, hit
    cdef char a, b, c, x
    while plen > 0 and slen >= 0:
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
        cdef PyObject* p = PyDict_GetItem(self.d, key)
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
        if not create:
            return None
        if t == T_STRING:
            return new_str()
        if t == T_SET:
            return new_set()
        if t == T_HASH:
            return new_hash()
        if t == T_MV:
            return new_mv()
        raise ValueError("unknown type")

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
                return 0
            del self.d[key]
            if type(o) is StrObj:
                self.tombs[key] = o
            self._promote(key)
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
            if type(o) is StrObj and (<StrObj>o).uuid != 0 or type(o) is StrObj and (<StrObj>o).cnt:
                self.tombs[key] = o
            return 0
        if p == NULL:
            self.d[key] = o
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
        for x in self.objects_of(key):
            if x is not o:
                self._ttl_on(key, <CObj>x, at, u, n)
        return 0

    cdef int _reg_on(self, object key, StrObj o, object val, uint64_t u, uint64_t n,
                     int ttl_mode, int64_t at, list obs) except -1:
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
            if o.cnt is not None or obs:
                if o.cnt is None:
                    o.cnt = {}
                for v in (<dict>o.cnt).values():
                    e = <CntEntry>v
                    e.bsum = 0
                    e.blast = 0
                if obs:
                    for item in obs:
                        e = (<dict>o.cnt).get(item[0])
                        if e is None:
                            e = _cnt_entry()
                            o.cnt[item[0]] = e
                        e.bsum = item[1]
                        e.blast = item[2]
                if not o.cnt:
                    o.cnt = None
        elif ttl_mode == TTL_WRITE and o.ttl is not None:
            t = <TTLReg>o.ttl
            if ts_gt(u, n, t.uuid, t.node):
                o.ttl = _ttlreg(at, u, n)
                if at != 0:
                    self.expires[key] = None
        if ttl_mode == TTL_WRITE and self.alts and key in self.alts:
            self._ttl_others(key, o, at, u, n)
        self.touched(key)
        self.settle(key, o)
        return 0

    cdef int _cnt_on(self, object key, StrObj o, int64_t delta, uint64_t u, uint64_t n) except -1:
        cdef CntEntry e
        cdef PyObject* p
        if o.cnt is None:
            o.cnt = {}
        p = PyDict_GetItem(o.cnt, n)
        if p == NULL:
            e = _cnt_entry()
            o.cnt[n] = e
        else:
            e = <CntEntry>p
        e.sum = <int64_t>(<uint64_t>e.sum + <uint64_t>delta)
        e.last = u
        self.touched(key)
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
        if self.alts and key in self.alts:
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
        cdef uint64_t u = self.tick()
        cdef StrObj o
        cdef PyObject* p = PyDict_GetItem(self.d, key)
        cdef list obs = None
        cdef CntEntry e
        cdef Writer w
        if p != NULL and type(<object>p) is StrObj:
            o = <StrObj>p
        else:
            o = <StrObj>self.find(key, T_STRING, True)
        if o.cnt is not None:
            obs = []
            for k, v in (<dict>o.cnt).items():
                e = <CntEntry>v
                obs.append((k, e.sum, e.last))
        self._reg_on(key, o, val, u, self.node_id, ttl_mode, at, obs)
        w = self.bl.begin(OP_REG, u)
        w.put_bytes(key)
        w.put_u8((1 if val is not None else 0) | (2 if ttl_mode == TTL_WRITE else 0))
        if val is not None:
            w.put_bytes(val)
        if ttl_mode == TTL_WRITE:
            w.put_i64(at)
        if obs is None:
            w.put_u8(0)
        else:
            w.put_varint(len(obs))
            for item in obs:
                w.put_u64(item[0])
                w.put_i64(item[1])
                w.put_u64(item[2])
        self.bl.end()
        return 0

    cdef int emit_cnt(self, object key, int64_t delta) except -1:
        cdef uint64_t u = self.tick()
        cdef PyObject* p = PyDict_GetItem(self.d, key)
        cdef StrObj o
        cdef Writer w
        if p != NULL and type(<object>p) is StrObj:
            o = <StrObj>p
        else:
            o = <StrObj>self.find(key, T_STRING, True)
        self._cnt_on(key, o, delta, u, self.node_id)
        w = self.bl.begin(OP_CNT, u)
        w.put_bytes(key)
        w.put_i64(delta)
        self.bl.end()
        return 0

    cdef int emit_ttl(self, object key, int64_t at) except -1:
        """EXPIRE-family and PERSIST: write the key's TTL register."""
        cdef uint64_t u = self.tick()
        cdef Writer w
        for o in self.objects_of(key):
            self._ttl_on(key, <CObj>o, at, u, self.node_id)
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
        return 0

    cdef int emit_hset(self, object key, object field, object val) except -1:
        cdef uint64_t u = self.tick()
        cdef PyObject* p = PyDict_GetItem(self.d, key)
        cdef HashObj o
        cdef list removes = None
        cdef Writer w
        if p != NULL and type(<object>p) is HashObj:
            o = <HashObj>p
        else:
            o = <HashObj>self.find(key, T_HASH, True)
        ent = o.f.get(field)
        if ent is not None:
            removes = _ent_dots(ent)
        self._hset_on(key, o, field, val, u, self.node_id, removes)
        w = self.bl.begin(OP_HSET, u)
        w.put_bytes(key)
        w.put_bytes(field)
        w.put_bytes(val)
        if removes is None:
            w.put_u8(0)
        else:
            _put_dots(w, removes)
        self.bl.end()
        return 0

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
            self._reg_on(key, <StrObj>o, val, u, origin, TTL_WRITE if flags & 2 else TTL_KEEP, at, obs)
        elif op == OP_CNT:
            key = r.bytes_()
            delta = r.i64()
            self._cnt_on(key, <StrObj>self.find(key, T_STRING, True), delta, u, origin)
        elif op == OP_TTL:
            key = r.bytes_()
            at = r.i64()
            for x in self.objects_of(key):
                self._ttl_on(key, <CObj>x, at, u, origin)
            if self.tombs and key in self.tombs:
                self._ttl_on(key, <CObj>self.tombs[key], at, u, origin)
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
            else:
                self._mv_on(key, <MVObj>o, None, u, origin, dots)
                self._clear_done(key, o, u, origin)
        elif op == OP_MEMBER:
            if self.on_member is not None:
                self.on_member(origin, u, r.read_raw(end - r.pos))
        else:
            raise ValueError("unknown record op %d" % op)
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
        return out

    def flush_local(self):
        """Drop everything without logging (used before loading a snapshot)."""
        self.d.clear()
        self.alts.clear()
        self.tombs.clear()
        self.expires.clear()


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
        return {f: best_ver(ent).val for f, ent in (<HashObj>o).f.items()}
    if type(o) is MVObj:
        return sorted(((<Ver>v).node, (<Ver>v).val) for v in (<MVObj>o).vers)
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
        if so.cnt is not None:
            for node, v in sorted(so.cnt.items()):
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
    return out
