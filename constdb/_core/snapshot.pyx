"""Snapshots: the whole CRDT state and its context, for full sync and for
persistence (docs/replication.md section 5), and the state merge of docs/crdt.md
section 5 (which says how each kind of object merges). This module has the file
format, its checks and the merge driver; each type module encodes, decodes and
merges its own objects
(TypeOps.encode/decode/merge/filter, their "snapshots" sections say the
layout), with the shared parts in merge.pyx.

File = one lz4 frame (content checksum on) holding:
  magic "CONSTDB\\0", u32 format version, u64 node_id, bytes alias,
  u64 clock, u64 own_last, VV (varint n, n x (u64 node, u64 uuid)),
  dot cloud (varint n, n x (u64 node, varint k, k x u64 uuid)), bytes meta
  (membership and anything else the Python layer keeps), then objects:
  u8 1, bytes key, object ... and u8 0, u64 object count.
Numbered databases (version 3): among the objects, u8 3, u64 uuid, u64 node,
varint n, n x varint identity is the SWAPDB mapping (index -> data identity,
LWW at (uuid, node); written when a SWAPDB was made), and u8 2, varint
identity says the objects after it belong to the db of that identity (the
objects start in identity 0); a key's objects come together within its db.
Every object of a key follows the key's other objects (version 2): the shown
one, the hidden ones, the string tombstone and those kept while empty
(Keyspace.dead); where an object lives is not stored, the merge decides it
from what the objects hold, as Keyspace.settle does.

Object = u8 type, u8 has_ttl [i64 at, u64 uuid, u64 node], then the type's
encoding (t_string, t_set, t_hash, t_mv, t_list, t_zset; a string's value
flag 2, bit overrides (bitval), is new in format 2 files: a file holding a
string with pending bit overrides is refused by code older than bitmaps).
Version 1 (no hash counters, no lists or sorted sets, a key's objects not
together) is still read.

Merging never replaces local state (merge.pyx says the rules); the key's TTL
register is LWW over all of its objects; then VV = max, cloud = union minus
what VV covers.
"""

import lz4.frame

from libc.stdint cimport uint8_t, uint64_t

from constdb._core.codec cimport Reader, Writer
from constdb._core.dots cimport _ttl_of, _ttlreg
from constdb._core.ktable cimport kt_del, kt_get, kt_set
from constdb._core.keyspace cimport Db, Keyspace, TypeOps, ops_of, type_ops
from constdb._core.merge cimport Ctx, _check_count
from constdb._core.objects cimport (
    CObj, StrObj, TTLReg, ZSetObj, new_str, obj_type, str_nocnt, str_node, sv_none, ts_gt,
)
from constdb._core.t_zset cimport zset_adopt

from constdb._core.merge import SnapshotError  # noqa: F401  (snapshot.SnapshotError)

MAGIC = b"CONSTDB\0"
FORMAT_VERSION = 3
READABLE_VERSIONS = (1, 2, 3)


cdef Ctx ctx_of(Keyspace ks):
    return Ctx(ks.get_vv(), {n: set(s) for n, s in ks.cloud.items()})


# ----------------------------------------------------------------- encoding ---

cdef int _enc_obj(Writer w, CObj o) except -1:
    cdef TTLReg tr
    w.put_u8(<uint8_t>obj_type(o))
    if o.ttl is None:
        w.put_u8(0)
    else:
        tr = <TTLReg>o.ttl
        w.put_u8(1)
        w.put_i64(tr.at)
        w.put_u64(tr.uuid)
        w.put_u64(tr.node)
    return ops_of(o).encode(w, o)


cdef int _enc_key(Writer w, object key, list objs) except -1:
    for o in objs:
        w.put_u8(1)
        w.put_bytes(<bytes>key)
        _enc_obj(w, <CObj>o)
    return 0


cdef int _enc_header(Writer w, Keyspace ks, bytes alias, bytes meta, int version) except -1:
    cdef bytes magic = MAGIC
    w.put_raw(magic, 8)
    w.put_u32(version)
    w.put_u64(ks.node_id)
    w.put_bytes(alias)
    w.put_u64(ks.clock.last)
    w.put_u64(ks.own_last)
    vv = ks.get_vv()
    w.put_varint(len(vv))
    for node, u in vv.items():
        w.put_u64(node)
        w.put_u64(u)
    cloud = {n: s for n, s in ks.cloud.items() if s}
    w.put_varint(len(cloud))
    for node, s in cloud.items():
        w.put_u64(node)
        w.put_varint(len(s))
        for u in s:
            w.put_u64(u)
    w.put_bytes(meta)
    return 0


cdef list _key_objects(Keyspace ks, object key, dict dead):
    """Every object of key: shown, hidden, tombstone, kept while empty."""
    cdef list out = ks.objects_of(key)
    if ks.tombs:
        o = ks.tombs.get(key)
        if o is not None:
            out.append(o)
    if dead:
        lst = dead.get(key)
        if lst:
            out.extend(lst)
    return out


def dump_chunks(Keyspace ks, bytes alias, bytes meta, Py_ssize_t chunk=1 << 20):
    """Yield the snapshot's uncompressed content in chunks of about `chunk`
    bytes (the caller compresses: dump() and dump_to_file())."""
    cdef Writer w = Writer()
    cdef uint64_t count = 0
    cdef list objs
    cdef dict dead
    cdef Db db, was = ks.cur
    # format 2 while only db identity 0 holds anything (older builds read it)
    cdef bint multi = ks.map_u != 0 or ks.map_n != 0 or any(
        (<Db>x).ident != 0 and ((<Db>x).d or (<Db>x).alts or (<Db>x).tombs or (<Db>x).dead)
        for x in ks.dbs)
    _enc_header(w, ks, alias, meta, FORMAT_VERSION if multi else 2)
    if ks.map_u or ks.map_n:
        w.put_u8(3)
        w.put_u64(ks.map_u)
        w.put_u64(ks.map_n)
        w.put_varint(len(ks.dbs))
        for x in ks.mapping():
            w.put_varint(<uint64_t>x)
    try:
        for db in ks.by_ident:
            if not (db.d or db.alts or db.tombs or db.dead):
                continue
            if db.ident != 0:
                w.put_u8(2)
                w.put_varint(<uint64_t>db.ident)
            ks.use(db)
            dead = {}
            for (k, _t), o in ks.dead.items():
                dead.setdefault(k, []).append(o)
            for source in (ks.d, ks.alts, ks.tombs, dead):
                for key in source:
                    # each key once, with all of its objects
                    if source is not ks.d:
                        if (kt_get(&ks.d.t, key) != NULL):
                            continue
                        if source is not ks.alts:
                            if key in ks.alts:
                                continue
                            if source is dead and key in ks.tombs:
                                continue
                    objs = _key_objects(ks, key, dead)
                    _enc_key(w, key, objs)
                    count += len(objs)
                    if w.len >= chunk:
                        yield w.take()
    finally:
        ks.use(was)
    w.put_u8(0)
    w.put_u64(count)
    yield w.take()


def dump(Keyspace ks, bytes alias=b"", bytes meta=b""):
    """The whole snapshot as one compressed bytes object."""
    comp = lz4.frame.LZ4FrameCompressor(content_checksum=True)
    parts = [comp.begin()]
    for c in dump_chunks(ks, alias, meta):
        parts.append(comp.compress(c))
    parts.append(comp.flush())
    return b"".join(parts)


def dump_to_file(Keyspace ks, str path, bytes alias=b"", bytes meta=b""):
    """Write the snapshot to path (no fsync/rename: the caller does that).
    Returns (compressed size, uncompressed size)."""
    comp = lz4.frame.LZ4FrameCompressor(content_checksum=True)
    raw = 0
    with open(path, "wb") as f:
        f.write(comp.begin())
        for c in dump_chunks(ks, alias, meta):
            raw += len(c)
            f.write(comp.compress(c))
        f.write(comp.flush())
        size = f.tell()
    return size, raw


# ----------------------------------------------------------------- decoding ---

cdef TTLReg _dec_ttl(Reader r):
    cdef TTLReg t
    cdef uint8_t has = r.u8()
    if has == 0:
        return None
    if has != 1:
        raise SnapshotError("corrupt snapshot (bad ttl flag)")
    t = TTLReg.__new__(TTLReg)
    t.at = r.i64()
    t.uuid = r.u64()
    t.node = r.u64()
    return t


cdef CObj _dec_obj(Reader r, int version):
    cdef uint8_t t = r.u8()
    cdef TTLReg ttl = _dec_ttl(r)
    cdef TypeOps* ops = type_ops(t)
    cdef CObj o
    if ops == NULL:
        raise SnapshotError("corrupt snapshot (unknown object type %d)" % t)
    o = ops.decode(r, version)
    o.ttl = ttl
    return o


# ------------------------------------------------------------------ loading ---

cdef class Snapshot:
    """A decompressed, checked snapshot, ready to merge."""
    cdef public uint64_t node_id
    cdef public bytes alias
    cdef public uint64_t clock
    cdef public uint64_t own_last
    cdef public dict vv
    cdef public dict cloud
    cdef public bytes meta
    cdef public bytes body
    cdef public Py_ssize_t objects_at
    cdef public Py_ssize_t raw_size
    cdef public int version
    cdef public list mapping          # SWAPDB's index -> identity (None: not in it)
    cdef public uint64_t map_u
    cdef public uint64_t map_n
    cdef public uint64_t max_ident    # the highest db identity it holds objects of
    # what _validate decoded, handed to the first objects() (then dropped:
    # a merge changes the objects it takes)
    cdef list kept_keys
    cdef list kept_objs

    def objects(self):
        """Yield (db identity, key, object) decoded from the body."""
        cdef Reader r = Reader(self.body, self.objects_at)
        cdef list keys = self.kept_keys, objs = self.kept_objs
        cdef Py_ssize_t i
        cdef uint64_t ident = 0
        if keys is not None:
            self.kept_keys = self.kept_objs = None
            for i in range(len(keys)):
                yield keys[i][0], keys[i][1], objs[i]
            return
        while True:
            tag = r.u8()
            if tag == 0:
                break
            if tag == 2:
                ident = r.varint()
                continue
            if tag == 3:
                r.u64()
                r.u64()
                for _i in range(r.varint()):
                    r.varint()
                continue
            if tag != 1:
                raise SnapshotError("corrupt snapshot (bad object tag)")
            key = r.bytes_()
            yield ident, key, _dec_obj(r, self.version)

    cdef int _validate(self) except -1:
        """Decode every object: a snapshot is never half-applied. A key's
        objects must come together (version 2), one per type, and the count
        at the end must match."""
        cdef Reader r = Reader(self.body, self.objects_at)
        cdef uint64_t count = 0
        cdef set keys = set()
        cdef list kk = [], ko = []
        cdef uint64_t types = 0, bit
        cdef object last = None
        cdef CObj o
        cdef int t
        cdef uint64_t ident = 0, n
        cdef set idents = set()
        while True:
            tag = r.u8()
            if tag == 0:
                break
            if self.version >= 3 and tag == 2:
                ident = r.varint()
                if ident in idents or ident == 0 or ident > 0x7FFFFFFF:
                    raise SnapshotError("corrupt snapshot (db identity %d)" % ident)
                idents.add(ident)
                keys = set()
                last = None
                continue
            if self.version >= 3 and tag == 3 and self.mapping is None:
                self.map_u = r.u64()
                self.map_n = r.u64()
                n = r.varint()
                _check_count(r, n, 1)
                self.mapping = [r.varint() for _i in range(n)]
                if sorted(self.mapping) != list(range(n)):
                    raise SnapshotError("corrupt snapshot (db mapping)")
                continue
            if tag != 1:
                raise SnapshotError("corrupt snapshot (bad object tag)")
            key = r.bytes_()
            o = _dec_obj(r, self.version)
            kk.append((ident, key))
            ko.append(o)
            if ident > self.max_ident:
                self.max_ident = ident
            count += 1
            if self.version >= 2:
                if last is None or key != last:
                    if key in keys:
                        raise SnapshotError("corrupt snapshot (a key's objects are apart)")
                    keys.add(key)
                    types = 0
                    last = key
                # one bit per type code
                t = obj_type(o)
                bit = (<uint64_t>1) << <uint64_t>(t & 63)
                if types & bit:
                    raise SnapshotError("corrupt snapshot (two objects of one type on a key)")
                types |= bit
        if r.u64() != count:
            raise SnapshotError("corrupt snapshot (object count)")
        if not r.at_end():
            raise SnapshotError("corrupt snapshot (data after the end)")
        self.kept_keys = kk
        self.kept_objs = ko
        return 0


# lz4 expands at most about 255 times (a run of one byte)
LZ4_MAX_RATIO = 256


def decompress(bytes data, str source="snapshot"):
    """lz4-decompress and check (raises SnapshotError with a clear reason)."""
    if len(data) < 4 or data[:4] != b"\x04\x22\x4d\x18":
        raise SnapshotError("%s: not a ConstDB snapshot (no lz4 frame header)" % source)
    try:
        # a frame may state its content size, and lz4 allocates that much up
        # front: a claim beyond what the frame's bytes can expand to is refused
        claimed = lz4.frame.get_frame_info(data)["content_size"]
        if claimed > LZ4_MAX_RATIO * len(data) + 65536:
            raise SnapshotError(
                "%s: corrupted file (an lz4 frame of %d bytes claims %d)"
                % (source, len(data), claimed)
            )
        return lz4.frame.decompress(data)
    except MemoryError:
        raise SnapshotError("%s: corrupted file (too large to decompress)" % source)
    except RuntimeError as e:
        msg = str(e)
        if "checksum" in msg.lower():
            raise SnapshotError("%s: checksum mismatch (corrupted file)" % source)
        if "incomplete" in msg.lower():
            raise SnapshotError("%s: truncated file (the lz4 frame ends early)" % source)
        raise SnapshotError("%s: corrupted file (%s)" % (source, msg))


def parse(bytes data, str source="snapshot", bint compressed=True):
    """Check and parse a snapshot (the whole body is validated: a snapshot is
    never half-applied). Returns a Snapshot."""
    cdef bytes body = decompress(data, source) if compressed else data
    cdef Reader r = Reader(body)
    cdef Snapshot s = Snapshot.__new__(Snapshot)
    cdef uint64_t n, _i, k, _j, node
    cdef uint64_t version
    try:
        if r.read_raw(8) != MAGIC:
            raise SnapshotError("%s: not a ConstDB snapshot (bad magic)" % source)
        version = r.u32()
        if version not in READABLE_VERSIONS:
            raise SnapshotError("%s: unsupported snapshot format version %d (this build reads %s)"
                                % (source, version, " and ".join(map(str, READABLE_VERSIONS))))
        s.version = <int>version
        s.node_id = r.u64()
        s.alias = r.bytes_()
        s.clock = r.u64()
        s.own_last = r.u64()
        s.vv = {}
        n = r.varint()
        _check_count(r, n, 16)
        for _i in range(n):
            node = r.u64()
            s.vv[node] = r.u64()
        s.cloud = {}
        n = r.varint()
        _check_count(r, n, 9)
        for _i in range(n):
            node = r.u64()
            k = r.varint()
            _check_count(r, k, 8)
            s.cloud[node] = {r.u64() for _j in range(k)}
        s.meta = r.bytes_()
        s.objects_at = r.pos
        s.body = body
        s.raw_size = len(body)
        s._validate()
    except SnapshotError as e:
        if str(e).startswith(source + ":"):
            raise
        raise SnapshotError("%s: %s" % (source, e))
    except (ValueError, IndexError, OverflowError) as e:
        raise SnapshotError("%s: truncated or corrupted (%s)" % (source, e))
    return s


# ---------------------------------------------------------------- the merge ---

cdef list _DEAD = None


cdef list _dead_codes():
    """The types whose objects can wait in Keyspace.dead, by code."""
    global _DEAD
    cdef TypeOps* t
    if _DEAD is None:
        _DEAD = []
        for code in range(32):
            t = type_ops(code)
            if t != NULL and t.keeps != NULL:
                _DEAD.append(code)
    return _DEAD


cdef int merge_obj(CObj a, CObj b, Ctx ca, Ctx cb, uint64_t clock) except -1:
    """Merge b (remote) into a (local, same type); the TTL is the key's (see
    _merge_key)."""
    return ops_of(a).merge(a, b, ca, cb, clock)


cdef bint filter_obj(CObj o, Ctx other, uint64_t clock) except -1:
    """o is on one side only: keep what `other` has not seen. Returns whether
    anything changed."""
    return ops_of(o).filter(o, other, clock)


cdef TTLReg _ttl_max(list objs):
    cdef TTLReg best = None, t
    for o in objs:
        t = _ttl_of(<CObj>o)
        if t is not None and (best is None or ts_gt(t.uuid, t.node, best.uuid, best.node)):
            best = t
    return best


cdef int _set_ttl(CObj o, TTLReg r) except -1:
    """Give o the key's TTL register r (None: never written) in the form the
    keyspace keeps it (a string's ttl None is (no expiry, its register's ts))."""
    cdef StrObj s
    if type(o) is StrObj:
        s = <StrObj>o
        if r is None:
            o.ttl = None if s.uuid == 0 and str_node(s) == 0 else _ttlreg(0, 0, 0)
        elif r.at == 0 and r.uuid == s.uuid and r.node == str_node(s):
            o.ttl = None
        else:
            o.ttl = _ttlreg(r.at, r.uuid, r.node)
    elif r is None:
        o.ttl = None
    else:
        o.ttl = _ttlreg(r.at, r.uuid, r.node)
    return 0


cdef bint _absent(Keyspace ks, object key) except -1:
    """This node has no object of key (shown, hidden, tombstone or dead)."""
    if kt_get(&ks.d.t, key) != NULL:
        return False
    if ks.alts and key in ks.alts:
        return False
    if ks.tombs and key in ks.tombs:
        return False
    if ks.dead:
        for t in _dead_codes():
            if (key, t) in ks.dead:
                return False
    return True


cdef int _place_new(Keyspace ks, object key, CObj b, Ctx ca, uint64_t clock) except -1:
    """_merge_key of a key only the snapshot has, with one object (a load, or
    most keys of a full sync): keep what this node has not seen, and place."""
    cdef TTLReg r = _ttl_of(b)
    if r is not None and ca.applied(r.node, r.uuid):
        r = None
    filter_obj(b, ca, clock)
    if type(b) is ZSetObj:
        zset_adopt(ks, <ZSetObj>b)
    _set_ttl(b, r)
    if type(b) is not StrObj or ((<StrObj>b).uuid != 0 or str_node((<StrObj>b)) != 0 or
                                 not str_nocnt((<StrObj>b)) or not sv_none(<StrObj>b)):
        ks.settle(key, b)
    if r is not None:
        if kt_get(&ks.d.t, key) != NULL:
            if r.at != 0:
                kt_set(&ks.expires.t, key, None)
        elif key not in ks.tombs:
            o = new_str()
            o.ttl = _ttlreg(r.at, r.uuid, r.node)
            ks.tombs[key] = o
    ks.touched(key)
    return 0


cdef int _merge_key(Keyspace ks, object key, list bobjs, Ctx ca, Ctx cb,
                    uint64_t clock) except -1:
    """Merge the snapshot's objects of key (none: a key only this node has)
    with this node's, and place the results as Keyspace.settle does."""
    cdef list aobjs, results = []
    cdef dict at = {}, bt = {}
    cdef TTLReg ra, rb, r
    cdef bint changed = len(bobjs) > 0
    cdef CObj a, b, o
    cdef int t
    if len(bobjs) == 1 and _absent(ks, key):
        return _place_new(ks, key, <CObj>bobjs[0], ca, clock)
    aobjs = ks.objects_of(key)
    if ks.tombs:
        o = ks.tombs.get(key)
        if o is not None:
            aobjs.append(o)
    # the key's TTL register, before anything moves (objects kept while
    # empty hold none)
    ra = _ttl_max(aobjs)
    rb = _ttl_max(bobjs)
    if ks.dead:
        for t in _dead_codes():
            o = ks.dead.get((key, t))
            if o is not None:
                aobjs.append(o)
    if not aobjs and not bobjs:
        return 0
    for x in aobjs:
        at.setdefault(obj_type(<CObj>x), x)
    for x in bobjs:
        bt[obj_type(<CObj>x)] = x
    # the TTL register: LWW; one side's only, if the other has seen it (and
    # dropped it at GC), goes
    if ra is None:
        r = None if rb is None or ca.applied(rb.node, rb.uuid) else rb
    elif rb is None:
        r = None if cb.applied(ra.node, ra.uuid) else ra
    else:
        r = rb if ts_gt(rb.uuid, rb.node, ra.uuid, ra.node) else ra
    if ra is not None and r is None:
        changed = True
    for t, x in at.items():
        a = <CObj>x
        y = bt.get(t)
        if y is None:
            if filter_obj(a, cb, clock):
                changed = True
        else:
            merge_obj(a, <CObj>y, ca, cb, clock)
        results.append(a)
    for t, y in bt.items():
        if t not in at:
            b = <CObj>y
            filter_obj(b, ca, clock)
            if type(b) is ZSetObj:
                zset_adopt(ks, <ZSetObj>b)
            results.append(b)
    if not changed:
        return 0
    # place everything again, as settle decides: the string first (it is the
    # tombstone), then the others; a key left with no object keeps its TTL
    # register in a tombstone
    kt_del(&ks.d.t, key)
    if ks.alts:
        ks.alts.pop(key, None)
    if ks.tombs:
        ks.tombs.pop(key, None)
    if ks.dead:
        for t in _dead_codes():
            ks.dead.pop((key, t), None)
    for x in results:
        _set_ttl(<CObj>x, r)
    for x in results:
        # (a string whose register was never written may hold bit overrides)
        if type(x) is StrObj and ((<StrObj>x).uuid != 0 or str_node((<StrObj>x)) != 0 or
                                  not str_nocnt((<StrObj>x)) or not sv_none(<StrObj>x)):
            ks.settle(key, <CObj>x)
    for x in results:
        if type(x) is not StrObj:
            ks.settle(key, <CObj>x)
    if r is not None and (kt_get(&ks.d.t, key) == NULL) and key not in ks.tombs:
        o = new_str()
        o.ttl = _ttlreg(r.at, r.uuid, r.node)
        ks.tombs[key] = o
    if r is not None and r.at != 0 and (kt_get(&ks.d.t, key) != NULL):
        kt_set(&ks.expires.t, key, None)
    ks.touched(key)
    return 0


cdef bint _saw_any(Ctx mine, Ctx other):
    """Whether `other` covers any effect `mine` holds: an origin it has seen
    (VV or cloud) of which `mine` holds something. Every dot and ts of this
    node's state is in its context, so if not, a merge with nothing on the
    other side leaves every object of this node as it is."""
    for node, u in other.vv.items():
        if u and (mine.vv.get(node, 0) or mine.cloud.get(node)):
            return True
    for node, us in other.cloud.items():
        if us and (mine.vv.get(node, 0) or mine.cloud.get(node)):
            return True
    return False


def merge(Keyspace ks, Snapshot s, progress=None):
    """Merge snapshot s into ks (docs/crdt.md section 5). Returns the number of
    objects merged. progress(n) is called every 100,000 objects."""
    cdef Ctx ca = ctx_of(ks)
    cdef Ctx cb = Ctx(dict(s.vv), {n: set(u) for n, u in s.cloud.items()})
    cdef dict mine = {}
    cdef set m
    cdef list objs = []
    cdef uint64_t count = 0
    cdef uint64_t clock
    cdef object cur = None
    cdef object cur_id = 0
    cdef Db db, was = ks.cur
    global _DEAD
    _DEAD = None            # (types may have registered since the last merge)
    ks.set_now()
    # the clock first: it stamps sorted-set members the merge removes
    for u in s.vv.values():
        ks.clock.fold(u)
    ks.clock.fold(s.clock)
    clock = ks.clock.last
    # the keys this node has: those the snapshot lacks are merged with nothing
    # at the end (what the other side saw and lost goes); none of them can
    # change if the other side saw nothing of what this node holds (a new
    # node's first snapshot): then they are not even listed
    # (per db identity)
    if _saw_any(ca, cb):
        for db in ks.by_ident:
            m = set()
            m.update(db.d)
            m.update(db.alts)
            m.update(db.tombs)
            m.update(k for k, _t in db.dead)
            if m:
                mine[db.ident] = m
    if s.max_ident >= <uint64_t>len(ks.dbs):
        raise SnapshotError("snapshot has db identity %d: this node has %d databases"
                            % (s.max_ident, len(ks.dbs)))
    # the SWAPDB mapping: LWW
    if s.mapping is not None:
        if len(s.mapping) != len(ks.dbs):
            raise SnapshotError("snapshot of %d databases: this node has %d"
                                % (len(s.mapping), len(ks.dbs)))
        ks.after_swap(ks.set_mapping(s.mapping, s.map_u, s.map_n))
    try:
        ks.use(<Db>ks.by_ident[0])
        if s.version < 2:
            # a key's objects are not together: gather them
            groups = {}
            for _i, key, bo in s.objects():
                groups.setdefault(key, []).append(bo)
                count += 1
            m = mine.get(0)
            for key, lst in groups.items():
                if m:
                    m.discard(key)
                _merge_key(ks, key, lst, ca, cb, clock)
        else:
            for ident, key, bo in s.objects():
                if objs and (key != cur or ident != cur_id):
                    _merge_key(ks, cur, objs, ca, cb, clock)
                    objs = []
                if ident != cur_id:
                    ks.use(<Db>ks.by_ident[ident])
                    cur_id = ident
                cur = key
                m = mine.get(ident)
                if m:
                    m.discard(key)
                objs.append(bo)
                count += 1
                if progress is not None and count % 100000 == 0:
                    progress(count)
            if objs:
                _merge_key(ks, cur, objs, ca, cb, clock)
        # what only this node has: drop what the other side saw and lost
        for ident, m in mine.items():
            ks.use(<Db>ks.by_ident[ident])
            for key in m:
                _merge_key(ks, key, [], ca, cb, clock)
    finally:
        ks.use(was)
    # the context: VV = max, cloud = union minus what VV covers
    for node, u in s.vv.items():
        if node == ks.node_id:
            if u > ks.own_last:
                ks.own_last = u
        elif u > ks.vv_get(node):
            ks.vv[node] = u
    for node, us in s.cloud.items():
        if us:
            ks.cloud.setdefault(node, set()).update(us)
    ks.prune_cloud()
    return count
