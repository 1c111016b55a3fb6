"""Snapshots: the whole CRDT state and its context, for full sync and for
persistence (REPLICATION.md section 5), and the state merge of CRDT.md
section 5.

File = one lz4 frame (content checksum on) holding:
  magic "CONSTDB\\0", u32 format version, u64 node_id, bytes alias,
  u64 clock, u64 own_last, VV (varint n, n x (u64 node, u64 uuid)),
  dot cloud (varint n, n x (u64 node, varint k, k x u64 uuid)), bytes meta
  (membership and anything else the Python layer keeps), then objects:
  u8 1, bytes key, object ... and u8 0, u64 object count.
Object = u8 type, u8 has_ttl [i64 at, u64 uuid, u64 node], then per type
(see _enc_obj). Merging never replaces local state: a dot (or a register, or a
counter entry, by its (node, last uuid)) that only one side has is kept iff
the other side's context has not seen it.
"""

import lz4.frame

from cpython.bytes cimport PyBytes_GET_SIZE
from cpython.dict cimport PyDict_GetItem
from cpython.object cimport PyObject
from libc.stdint cimport int64_t, uint8_t, uint64_t

from constdb._core.clock cimport wall_ms
from constdb._core.codec cimport Reader, Writer
from constdb._core.keyspace cimport Keyspace, obj_live
from constdb._core.objects cimport (
    T_HASH, T_MV, T_SET, T_STRING, CObj, CntEntry, Dot, HashObj, MVObj, SetObj, StrObj, TTLReg,
    Ver, new_dot, new_hash, new_mv, new_set, new_str, new_ver, obj_type, ts_gt,
)

MAGIC = b"CONSTDB\0"
FORMAT_VERSION = 1

# extension object types (lists, sorted sets): code -> (encode(w, o),
# decode(r) -> o, merge(ks, key, local, remote, ctx_local, ctx_remote),
# filter(o, ctx) -> None)
EXT = {}


def register_ext_type(int code, encode, decode, merge, filter_):
    EXT[code] = (encode, decode, merge, filter_)


class SnapshotError(ValueError):
    """A snapshot that cannot be used: truncated, bad checksum, wrong version."""


# ------------------------------------------------------------------ context ---

cdef class Ctx:
    """A causal context (VV and dot cloud) frozen for a merge."""
    cdef public dict vv
    cdef public dict cloud

    def __init__(self, dict vv, dict cloud):
        self.vv = vv
        self.cloud = cloud

    cdef bint seen(self, uint64_t node, uint64_t uuid):
        cdef PyObject* p = PyDict_GetItem(self.vv, node)
        if p != NULL and uuid <= <uint64_t><object>p:
            return True
        if self.cloud:
            p = PyDict_GetItem(self.cloud, node)
            if p != NULL and uuid in <object>p:
                return True
        return False


cdef Ctx ctx_of(Keyspace ks):
    return Ctx(ks.get_vv(), {n: set(s) for n, s in ks.cloud.items()})


# ----------------------------------------------------------------- encoding ---

cdef int _enc_dots(Writer w, object ent) except -1:
    if ent is None:
        w.put_varint(0)
    elif type(ent) is list:
        w.put_varint(len(<list>ent))
        for x in <list>ent:
            w.put_u64((<Dot>x).node)
            w.put_u64((<Dot>x).uuid)
    else:
        w.put_varint(1)
        w.put_u64((<Dot>ent).node)
        w.put_u64((<Dot>ent).uuid)
    return 0


cdef int _enc_vers(Writer w, object ent) except -1:
    cdef Ver v
    if type(ent) is list:
        w.put_varint(len(<list>ent))
        for x in <list>ent:
            v = <Ver>x
            w.put_bytes(v.val)
            w.put_u64(v.node)
            w.put_u64(v.uuid)
    else:
        v = <Ver>ent
        w.put_varint(1)
        w.put_bytes(v.val)
        w.put_u64(v.node)
        w.put_u64(v.uuid)
    return 0


cdef int _enc_obj(Writer w, CObj o) except -1:
    cdef int t = obj_type(o)
    cdef TTLReg tr
    cdef StrObj s
    cdef CntEntry e
    w.put_u8(<uint8_t>(t if t >= 0 else _ext_code(o)))
    if o.ttl is None:
        w.put_u8(0)
    else:
        tr = <TTLReg>o.ttl
        w.put_u8(1)
        w.put_i64(tr.at)
        w.put_u64(tr.uuid)
        w.put_u64(tr.node)
    if t == T_STRING:
        s = <StrObj>o
        if s.val is None:
            w.put_u8(0)
        else:
            w.put_u8(1)
            w.put_bytes(s.val)
        w.put_u64(s.uuid)
        w.put_u64(s.node)
        if s.cnt is None:
            w.put_varint(0)
        else:
            w.put_varint(len(s.cnt))
            for k, v in s.cnt.items():
                e = <CntEntry>v
                w.put_u64(<uint64_t>k)
                w.put_i64(e.sum)
                w.put_u64(e.last)
                w.put_i64(e.bsum)
                w.put_u64(e.blast)
    elif t == T_SET:
        w.put_u64((<SetObj>o).lu)
        w.put_u64((<SetObj>o).ln)
        w.put_varint(len((<SetObj>o).m))
        for m, ent in (<SetObj>o).m.items():
            w.put_bytes(<bytes>m)
            _enc_dots(w, ent)
    elif t == T_HASH:
        w.put_u64((<HashObj>o).lu)
        w.put_u64((<HashObj>o).ln)
        w.put_varint(len((<HashObj>o).f))
        for f, ent in (<HashObj>o).f.items():
            w.put_bytes(<bytes>f)
            _enc_vers(w, ent)
    elif t == T_MV:
        w.put_u64((<MVObj>o).lu)
        w.put_u64((<MVObj>o).ln)
        _enc_vers(w, (<MVObj>o).vers)
    else:
        EXT[_ext_code(o)][0](w, o)
    return 0


cdef int _ext_code(CObj o) except -1:
    code = getattr(type(o), "TYPE_CODE", None)
    if code is None or code not in EXT:
        raise SnapshotError("cannot encode object of type %s" % type(o).__name__)
    return code


cdef TTLReg _dec_ttl(Reader r):
    cdef TTLReg t
    if r.u8() == 0:
        return None
    t = TTLReg.__new__(TTLReg)
    t.at = r.i64()
    t.uuid = r.u64()
    t.node = r.u64()
    return t


cdef object _dec_dots(Reader r):
    cdef uint64_t n = r.varint(), i, node
    cdef list out
    if n == 1:
        node = r.u64()
        return new_dot(node, r.u64())
    if n > <uint64_t>(r.end - r.pos):
        raise SnapshotError("corrupt snapshot (dot count)")
    out = []
    for i in range(n):
        node = r.u64()
        out.append(new_dot(node, r.u64()))
    return out if out else None


cdef object _dec_vers(Reader r):
    cdef uint64_t n = r.varint(), i, node
    cdef list out = []
    cdef bytes val
    if n > <uint64_t>(r.end - r.pos):
        raise SnapshotError("corrupt snapshot (version count)")
    for i in range(n):
        val = r.bytes_()
        node = r.u64()
        out.append(new_ver(val, r.u64(), node))
    if len(out) == 1:
        return out[0]
    return out


cdef CObj _dec_obj(Reader r):
    cdef uint8_t t = r.u8()
    cdef TTLReg ttl = _dec_ttl(r)
    cdef StrObj s
    cdef SetObj so
    cdef HashObj h
    cdef MVObj mv
    cdef CntEntry e
    cdef uint64_t n, i, node
    cdef CObj o
    if t == T_STRING:
        s = new_str()
        if r.u8():
            s.val = r.bytes_()
        s.uuid = r.u64()
        s.node = r.u64()
        n = r.varint()
        if n:
            s.cnt = {}
            for i in range(n):
                node = r.u64()
                e = CntEntry.__new__(CntEntry)
                e.sum = r.i64()
                e.last = r.u64()
                e.bsum = r.i64()
                e.blast = r.u64()
                s.cnt[node] = e
        o = s
    elif t == T_SET:
        so = new_set()
        so.lu = r.u64()
        so.ln = r.u64()
        n = r.varint()
        for i in range(n):
            m = r.bytes_()
            ent = _dec_dots(r)
            if ent is not None:
                so.m[m] = ent
        o = so
    elif t == T_HASH:
        h = new_hash()
        h.lu = r.u64()
        h.ln = r.u64()
        n = r.varint()
        for i in range(n):
            f = r.bytes_()
            ent = _dec_vers(r)
            if ent is not None and not (type(ent) is list and not ent):
                h.f[f] = ent
        o = h
    elif t == T_MV:
        mv = new_mv()
        mv.lu = r.u64()
        mv.ln = r.u64()
        ent = _dec_vers(r)
        if type(ent) is list:
            mv.vers = ent
        else:
            mv.vers = [ent]
        o = mv
    elif t in EXT:
        o = EXT[t][1](r)
    else:
        raise SnapshotError("corrupt snapshot (unknown object type %d)" % t)
    o.ttl = ttl
    return o


cdef int _enc_header(Writer w, Keyspace ks, bytes alias, bytes meta) except -1:
    w.put_raw(MAGIC, 8)
    w.put_u32(FORMAT_VERSION)
    w.put_u64(ks.node_id)
    w.put_bytes(alias)
    w.put_u64(ks.clock.last)
    w.put_u64(ks.own_last)
    vv = ks.get_vv()
    w.put_varint(len(vv))
    for node, u in vv.items():
        w.put_u64(node)
        w.put_u64(u)
    w.put_varint(len(ks.cloud))
    for node, s in ks.cloud.items():
        w.put_u64(node)
        w.put_varint(len(s))
        for u in s:
            w.put_u64(u)
    w.put_bytes(meta)
    return 0


def dump_chunks(Keyspace ks, bytes alias, bytes meta, Py_ssize_t chunk=1 << 20):
    """Yield the snapshot's uncompressed content in chunks of about `chunk`
    bytes (the caller compresses: dump() and dump_to_file())."""
    cdef Writer w = Writer()
    cdef uint64_t count = 0
    _enc_header(w, ks, alias, meta)
    for source in (ks.d, ks.tombs):
        for key, o in source.items():
            w.put_u8(1)
            w.put_bytes(<bytes>key)
            _enc_obj(w, <CObj>o)
            count += 1
            if w.len >= chunk:
                yield w.take()
    for key, lst in ks.alts.items():
        for o in lst:
            w.put_u8(1)
            w.put_bytes(<bytes>key)
            _enc_obj(w, <CObj>o)
            count += 1
            if w.len >= chunk:
                yield w.take()
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

    def objects(self):
        """Yield (key, object) decoded from the body."""
        cdef Reader r = Reader(self.body, self.objects_at)
        while True:
            tag = r.u8()
            if tag == 0:
                break
            if tag != 1:
                raise SnapshotError("corrupt snapshot (bad object tag)")
            key = r.bytes_()
            yield key, _dec_obj(r)


def decompress(bytes data, str source="snapshot"):
    """lz4-decompress and check (raises SnapshotError with a clear reason)."""
    if len(data) < 4 or data[:4] != b"\x04\x22\x4d\x18":
        raise SnapshotError("%s: not a ConstDB snapshot (no lz4 frame header)" % source)
    try:
        return lz4.frame.decompress(data)
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
    cdef uint64_t n, i, k, j, node
    cdef uint64_t version
    try:
        if r.read_raw(8) != MAGIC:
            raise SnapshotError("%s: not a ConstDB snapshot (bad magic)" % source)
        version = r.u32()
        if version != FORMAT_VERSION:
            raise SnapshotError("%s: unsupported snapshot format version %d (this build reads %d)"
                                % (source, version, FORMAT_VERSION))
        s.node_id = r.u64()
        s.alias = r.bytes_()
        s.clock = r.u64()
        s.own_last = r.u64()
        s.vv = {}
        n = r.varint()
        for i in range(n):
            node = r.u64()
            s.vv[node] = r.u64()
        s.cloud = {}
        n = r.varint()
        for i in range(n):
            node = r.u64()
            k = r.varint()
            s.cloud[node] = {r.u64() for j in range(k)}
        s.meta = r.bytes_()
        s.objects_at = r.pos
        s.body = body
        s.raw_size = len(body)
        # validate the whole object stream before anything is applied
        count = 0
        for _ in s.objects():
            count += 1
    except SnapshotError:
        raise
    except (ValueError, IndexError) as e:
        raise SnapshotError("%s: truncated or corrupted (%s)" % (source, e))
    return s


# ------------------------------------------------------------------ merging ---

cdef object _filter_ent(object ent, Ctx other):
    """Keep the dots of ent that `other` has not seen (the one-sided rule)."""
    cdef list keep
    if ent is None:
        return None
    if type(ent) is list:
        keep = [x for x in <list>ent if not other.seen((<Dot>x).node, (<Dot>x).uuid)]
        if not keep:
            return None
        return keep[0] if len(keep) == 1 else keep
    if other.seen((<Dot>ent).node, (<Dot>ent).uuid):
        return None
    return ent


cdef list _as_list(object ent):
    if ent is None:
        return []
    if type(ent) is list:
        return <list>ent
    return [ent]


cdef object _merge_ent(object a, object b, Ctx ca, Ctx cb):
    """Dots in both: kept; in one only: kept iff the other has not seen them."""
    cdef list out = []
    cdef list la = _as_list(a), lb = _as_list(b)
    cdef Dot x, y
    cdef bint found
    for x in la:
        found = False
        for y in lb:
            if x.node == y.node and x.uuid == y.uuid:
                found = True
                break
        if found or not cb.seen(x.node, x.uuid):
            out.append(x)
    for y in lb:
        found = False
        for x in la:
            if x.node == y.node and x.uuid == y.uuid:
                found = True
                break
        if not found and not ca.seen(y.node, y.uuid):
            out.append(y)
    if not out:
        return None
    return out[0] if len(out) == 1 else out


cdef void _ttl_explicit(CObj o, int64_t* at, uint64_t* u, uint64_t* n) noexcept:
    cdef TTLReg t
    if o.ttl is not None:
        t = <TTLReg>o.ttl
        at[0] = t.at
        u[0] = t.uuid
        n[0] = t.node
    elif type(o) is StrObj:
        at[0] = 0
        u[0] = (<StrObj>o).uuid
        n[0] = (<StrObj>o).node
    else:
        at[0] = 0
        u[0] = 0
        n[0] = 0


cdef int _merge_ttl(CObj a, CObj b) except -1:
    """LWW of the TTL registers of two non-string objects (a is updated)."""
    cdef int64_t aat, bat
    cdef uint64_t au, an, bu, bn
    cdef TTLReg t
    _ttl_explicit(a, &aat, &au, &an)
    _ttl_explicit(b, &bat, &bu, &bn)
    if ts_gt(bu, bn, au, an):
        aat, au, an = bat, bu, bn
    if type(a) is StrObj and aat == 0 and au == (<StrObj>a).uuid and an == (<StrObj>a).node:
        a.ttl = None
    elif au == 0 and an == 0 and aat == 0:
        a.ttl = None
    else:
        t = TTLReg.__new__(TTLReg)
        t.at = aat
        t.uuid = au
        t.node = an
        a.ttl = t
    return 0


cdef int _merge_str(StrObj a, StrObj b, Ctx ca, Ctx cb) except -1:
    cdef bint b_wins = ts_gt(b.uuid, b.node, a.uuid, a.node)
    cdef dict merged = {}
    cdef CntEntry ea, eb, e, src
    cdef StrObj win
    # the TTL first: it needs both sides' registers as they were
    cdef int64_t aat, bat
    cdef uint64_t au, an, bu, bn
    _ttl_explicit(a, &aat, &au, &an)
    _ttl_explicit(b, &bat, &bu, &bn)
    if ts_gt(bu, bn, au, an):
        aat, au, an = bat, bu, bn
    win = b if b_wins else a
    nodes = set(a.cnt or ()) | set(b.cnt or ())
    for node in nodes:
        ea = a.cnt.get(node) if a.cnt else None
        eb = b.cnt.get(node) if b.cnt else None
        e = CntEntry.__new__(CntEntry)
        # the counter part: the later of the two, or a one-sided one the
        # other side has not seen
        src = None
        if ea is not None and eb is not None:
            src = eb if eb.last > ea.last else ea
        elif ea is not None:
            if ea.last == 0 or not cb.seen(<uint64_t>node, ea.last):
                src = ea
        elif eb is not None:
            if eb.last == 0 or not ca.seen(<uint64_t>node, eb.last):
                src = eb
        if src is not None:
            e.sum = src.sum
            e.last = src.last
        # the base travels with the winning register
        src = win.cnt.get(node) if win.cnt else None
        if src is not None:
            e.bsum = src.bsum
            e.blast = src.blast
        if e.last or e.blast or e.sum or e.bsum:
            merged[node] = e
    if b_wins:
        a.val = b.val
        a.uuid = b.uuid
        a.node = b.node
    a.cnt = merged if merged else None
    if aat == 0 and au == a.uuid and an == a.node:
        a.ttl = None
    elif aat == 0 and au == 0 and an == 0:
        a.ttl = None
    else:
        t = TTLReg.__new__(TTLReg)
        (<TTLReg>t).at = aat
        (<TTLReg>t).uuid = au
        (<TTLReg>t).node = an
        a.ttl = t
    return 0


cdef int _filter_str(StrObj o, Ctx other) except -1:
    """o exists on one side only: drop what the other side saw and lost."""
    cdef CntEntry e
    cdef TTLReg t
    if o.uuid and other.seen(o.node, o.uuid):
        # the other side had this register write and no longer has the key:
        # it was superseded there; keep only its ts as a tombstone
        o.val = None
    if o.cnt is not None:
        for node in list(o.cnt):
            e = <CntEntry>o.cnt[node]
            if e.last and other.seen(<uint64_t>node, e.last):
                e.sum = 0
                e.last = 0
            if not (e.last or e.blast or e.sum or e.bsum):
                del o.cnt[node]
        if not o.cnt:
            o.cnt = None
    if o.ttl is not None:
        t = <TTLReg>o.ttl
        if t.at != 0 and other.seen(t.node, t.uuid):
            o.ttl = None if t.uuid == o.uuid and t.node == o.node else t
    return 0


cdef int _bump(CObj a, CObj b) except -1:
    cdef uint64_t *lu
    cdef uint64_t *ln
    cdef uint64_t bu, bn
    if type(a) is SetObj:
        lu = &(<SetObj>a).lu
        ln = &(<SetObj>a).ln
        bu = (<SetObj>b).lu
        bn = (<SetObj>b).ln
    elif type(a) is HashObj:
        lu = &(<HashObj>a).lu
        ln = &(<HashObj>a).ln
        bu = (<HashObj>b).lu
        bn = (<HashObj>b).ln
    elif type(a) is MVObj:
        lu = &(<MVObj>a).lu
        ln = &(<MVObj>a).ln
        bu = (<MVObj>b).lu
        bn = (<MVObj>b).ln
    else:
        return 0
    if ts_gt(bu, bn, lu[0], ln[0]):
        lu[0] = bu
        ln[0] = bn
    return 0


cdef int merge_obj(CObj a, CObj b, Ctx ca, Ctx cb) except -1:
    """Merge b (remote) into a (local, same type)."""
    cdef dict out
    if type(a) is StrObj:
        return _merge_str(<StrObj>a, <StrObj>b, ca, cb)
    _merge_ttl(a, b)
    _bump(a, b)
    if type(a) is SetObj:
        out = {}
        for m in set((<SetObj>a).m) | set((<SetObj>b).m):
            ent = _merge_ent((<SetObj>a).m.get(m), (<SetObj>b).m.get(m), ca, cb)
            if ent is not None:
                out[m] = ent
        (<SetObj>a).m = out
    elif type(a) is HashObj:
        out = {}
        for f in set((<HashObj>a).f) | set((<HashObj>b).f):
            ent = _merge_ent((<HashObj>a).f.get(f), (<HashObj>b).f.get(f), ca, cb)
            if ent is not None:
                out[f] = ent
        (<HashObj>a).f = out
    elif type(a) is MVObj:
        ent = _merge_ent((<MVObj>a).vers, (<MVObj>b).vers, ca, cb)
        (<MVObj>a).vers = _as_list(ent)
    return 0


cdef int filter_obj(CObj o, Ctx other) except -1:
    """o is on one side only: keep what `other` has not seen."""
    cdef dict out
    cdef TTLReg t
    if type(o) is StrObj:
        return _filter_str(<StrObj>o, other)
    if o.ttl is not None:
        t = <TTLReg>o.ttl
        if other.seen(t.node, t.uuid):
            o.ttl = None
    if type(o) is SetObj:
        out = {}
        for m, ent in (<SetObj>o).m.items():
            ent = _filter_ent(ent, other)
            if ent is not None:
                out[m] = ent
        (<SetObj>o).m = out
    elif type(o) is HashObj:
        out = {}
        for f, ent in (<HashObj>o).f.items():
            ent = _filter_ent(ent, other)
            if ent is not None:
                out[f] = ent
        (<HashObj>o).f = out
    elif type(o) is MVObj:
        (<MVObj>o).vers = _as_list(_filter_ent((<MVObj>o).vers, other))
    return 0


def merge(Keyspace ks, Snapshot s, progress=None):
    """Merge snapshot s into ks (CRDT.md section 5). Returns the number of
    objects merged. progress(n) is called every 100,000 objects."""
    cdef Ctx ca = ctx_of(ks)
    cdef Ctx cb = Ctx(dict(s.vv), s.cloud)
    cdef set keys = set()
    cdef CObj a, b
    cdef int t
    cdef uint64_t count = 0
    ks.set_now()
    for key, bo in s.objects():
        b = <CObj>bo
        t = obj_type(b)
        keys.add(key)
        a = ks.find(key, t, False) if t >= 0 else _find_ext(ks, key, b)
        if a is None:
            if t >= 0:
                filter_obj(b, ca)
            else:
                EXT[_ext_code(b)][3](b, ca)
            a = b
        elif t >= 0:
            merge_obj(a, b, ca, cb)
        else:
            EXT[_ext_code(b)][2](ks, key, a, b, ca, cb)
        _place(ks, key, a)
        count += 1
        if progress is not None and count % 100000 == 0:
            progress(count)
    # what only this node has: drop what the other side saw and lost
    for source in (ks.d, ks.tombs):
        for key in [k for k in source if k not in keys]:
            o = source.get(key)
            if o is not None:
                _filter_local(ks, key, <CObj>o, cb)
    for key in [k for k in ks.alts if k not in keys]:
        for o in list(ks.alts.get(key, ())):
            _filter_local(ks, key, <CObj>o, cb)
    # the context: VV = max, cloud = union minus what VV covers
    for node, u in s.vv.items():
        if node == ks.node_id:
            if u > ks.own_last:
                ks.own_last = u
        elif u > ks.vv_get(node):
            ks.vv[node] = u
        ks.clock.fold(u)
    ks.clock.fold(s.clock)
    for node, us in s.cloud.items():
        ks.cloud.setdefault(node, set()).update(us)
    ks.prune_cloud()
    return count


cdef int _filter_local(Keyspace ks, object key, CObj o, Ctx cb) except -1:
    if obj_type(o) >= 0:
        filter_obj(o, cb)
    else:
        EXT[_ext_code(o)][3](o, cb)
    _place(ks, key, o)
    return 0


cdef CObj _find_ext(Keyspace ks, object key, CObj like):
    for o in ks.objects_of(key):
        if type(o) is type(like):
            return <CObj>o
    return None


cdef int _place(Keyspace ks, object key, CObj o) except -1:
    ks.touched(key)
    ks.settle(key, o)
    if o.ttl is not None and (<TTLReg>o.ttl).at != 0:
        ks.expires[key] = None
    return 0
