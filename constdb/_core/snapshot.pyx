"""Snapshots: the whole CRDT state and its context, for full sync and for
persistence (REPLICATION.md section 5), and the state merge of CRDT.md
section 5 (docs/crdt-notes.md, "Snapshots: the state merge", says how each
kind of object merges).

File = one lz4 frame (content checksum on) holding:
  magic "CONSTDB\\0", u32 format version, u64 node_id, bytes alias,
  u64 clock, u64 own_last, VV (varint n, n x (u64 node, u64 uuid)),
  dot cloud (varint n, n x (u64 node, varint k, k x u64 uuid)), bytes meta
  (membership and anything else the Python layer keeps), then objects:
  u8 1, bytes key, object ... and u8 0, u64 object count.
Every object of a key follows the key's other objects (version 2): the shown
one, the hidden ones, the string tombstone and those kept while empty
(Keyspace.dead); where an object lives is not stored, the merge decides it
from what the objects hold, as Keyspace.settle does.

Object = u8 type, u8 has_ttl [i64 at, u64 uuid, u64 node], then per type:
  string  u8 has_value [bytes value], u64 uuid, u64 node, counters
  set     u64 lu, u64 ln, varint n, n x (bytes member, dots)
  hash    u64 lu, u64 ln, varint n, n x (bytes field, versions),
          varint h, h x (bytes field, u64 ru, u64 rn, counters)   (HINCRBY state)
  mvreg   u64 lu, u64 ln, versions
  list    u64 lu, u64 ln, varint p, p x element (placed, in sequence order),
          varint q, q x element (ghosts, and inserts waiting for their anchor)
  zset    u64 lu, u64 ln, u8 listpack, varint n, n x (bytes member, dots (none:
          removed), f64 value, u64 ru, u64 rn, u64 vu, u64 vn, varint k,
          k x (u64 node, f64 sum, u64 last, f64 bsum, u64 blast), u64 rem)
  dots = varint n, n x (u64 node, u64 uuid); versions = varint n,
  n x (bytes value, u64 node, u64 uuid); counters = varint n, n x (u64 node,
  i64 sum, u64 last, i64 bsum, u64 blast); element = u64 node, u64 uuid,
  u8 state, u8 has_value [bytes value], u64 vu, u64 vn, u64 rem, u64 an, u64 au.
Version 1 (no hash counters, no lists or sorted sets, a key's objects not
together) is still read.

Merging never replaces local state: a dot that only one side has is kept iff
the other side has not seen it (VV or dot cloud); a register, a counter entry
(by its (node, last uuid)) or a list element that only one side has is kept
iff the other side has not applied its effect (VV: it could only have
collected it); registers are LWW and a counter base travels with its
register; the key's TTL register is LWW over all of its objects; then VV =
max, cloud = union minus what VV covers.
"""

import lz4.frame

from cpython.dict cimport PyDict_GetItem
from cpython.object cimport PyObject
from libc.math cimport signbit
from libc.stdint cimport int64_t, uint8_t, uint64_t

from constdb._core.codec cimport Reader, Writer
from constdb._core.keyspace cimport Keyspace, str_cnts, str_set_cnts
from constdb._core.objects cimport (
    T_HASH, T_LIST, T_MV, T_SET, T_STRING, T_ZSET, CObj, CntEntry, Dot, HashObj, HCnt, LBlock,
    LElem, ListObj, MVObj, SetObj, StrObj, TTLReg, Ver, ZCnt, ZEnt, ZSetObj, new_dot, new_hash,
    new_list, new_mv, new_set, new_str, new_ver, new_zset, obj_type, ts_gt,
)
from constdb._core.t_list cimport BLOCK_MAX, ST_GHOST, ST_PLACED, ST_WAIT
from constdb._core.t_zset cimport ZIndex, find_ent, index_of, zscore

MAGIC = b"CONSTDB\0"
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)

# extension object types: code -> (encode(w, o), decode(r) -> o,
# merge(ks, key, local, remote, ctx_local, ctx_remote), filter(o, ctx) -> None)
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

    cdef bint applied(self, uint64_t node, uint64_t uuid):
        """The effect (node, uuid) was applied here. What decides for the
        parts of an effect that are not dots (registers, counter entries, list
        elements): a dot in the cloud names an add whose removal arrived first,
        its register write and increment still have to come."""
        cdef PyObject* p = PyDict_GetItem(self.vv, node)
        return p != NULL and uuid <= <uint64_t><object>p

    cdef bint seen(self, uint64_t node, uint64_t uuid):
        """The dot (node, uuid) was seen here: its add applied, or its
        removal (the cloud)."""
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


cdef int _code(CObj o) except -1:
    cdef int t = obj_type(o)
    if t >= 0:
        return t
    return _ext_code(o)


cdef int _ext_code(CObj o) except -1:
    code = getattr(type(o), "TYPE_CODE", None)
    if code is None or code not in EXT:
        raise SnapshotError("cannot encode object of type %s" % type(o).__name__)
    return code


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
    if ent is None:
        w.put_varint(0)
    elif type(ent) is list:
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


cdef int _enc_cnts(Writer w, object cnt) except -1:
    cdef CntEntry e
    if not cnt:
        w.put_varint(0)
        return 0
    w.put_varint(len(<dict>cnt))
    for k, v in (<dict>cnt).items():
        e = <CntEntry>v
        w.put_u64(<uint64_t>k)
        w.put_i64(e.sum)
        w.put_u64(e.last)
        w.put_i64(e.bsum)
        w.put_u64(e.blast)
    return 0


cdef int _enc_elem(Writer w, LElem e) except -1:
    w.put_u64(e.node)
    w.put_u64(e.uuid)
    w.put_u8(e.st)
    if e.val is None:
        w.put_u8(0)
    else:
        w.put_u8(1)
        w.put_bytes(<bytes>e.val)
    w.put_u64(e.vu)
    w.put_u64(e.vn)
    w.put_u64(e.rem)
    w.put_u64(e.an)
    w.put_u64(e.au)
    return 0


cdef int _enc_zent(Writer w, ZEnt e) except -1:
    cdef ZCnt c
    w.put_bytes(e.member)
    _enc_dots(w, e.dots)
    w.put_f64(e.val)
    w.put_u64(e.ru)
    w.put_u64(e.rn)
    w.put_u64(e.vu)
    w.put_u64(e.vn)
    if not e.cnt:
        w.put_varint(0)
    else:
        w.put_varint(len(<dict>e.cnt))
        for k, v in (<dict>e.cnt).items():
            c = <ZCnt>v
            w.put_u64(<uint64_t>k)
            w.put_f64(c.sum)
            w.put_u64(c.last)
            w.put_f64(c.bsum)
            w.put_u64(c.blast)
    w.put_u64(e.rem)
    return 0


cdef int _enc_obj(Writer w, CObj o) except -1:
    cdef int t = _code(o)
    cdef TTLReg tr
    cdef StrObj s
    cdef HashObj h
    cdef HCnt hc
    cdef ListObj lo
    cdef ZSetObj z
    cdef list unplaced
    w.put_u8(<uint8_t>t)
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
        _enc_cnts(w, str_cnts(s))
    elif t == T_SET:
        w.put_u64((<SetObj>o).lu)
        w.put_u64((<SetObj>o).ln)
        w.put_varint(len((<SetObj>o).m))
        for m, ent in (<SetObj>o).m.items():
            w.put_bytes(<bytes>m)
            _enc_dots(w, ent)
    elif t == T_HASH:
        h = <HashObj>o
        w.put_u64(h.lu)
        w.put_u64(h.ln)
        w.put_varint(len(h.f))
        for f, ent in h.f.items():
            w.put_bytes(<bytes>f)
            _enc_vers(w, ent)
        if not h.hc:
            w.put_varint(0)
        else:
            w.put_varint(len(<dict>h.hc))
            for f, v in (<dict>h.hc).items():
                hc = <HCnt>v
                w.put_bytes(<bytes>f)
                w.put_u64(hc.ru)
                w.put_u64(hc.rn)
                _enc_cnts(w, hc.cnt)
    elif t == T_MV:
        w.put_u64((<MVObj>o).lu)
        w.put_u64((<MVObj>o).ln)
        _enc_vers(w, (<MVObj>o).vers)
    elif t == T_LIST:
        lo = <ListObj>o
        w.put_u64(lo.lu)
        w.put_u64(lo.ln)
        seq = _list_seq(lo)
        w.put_varint(len(seq))
        for e in seq:
            _enc_elem(w, <LElem>e)
        unplaced = [e for e in _list_all(lo) if (<LElem>e).st != ST_PLACED]
        w.put_varint(len(unplaced))
        for e in unplaced:
            _enc_elem(w, <LElem>e)
    elif t == T_ZSET:
        z = <ZSetObj>o
        w.put_u64(z.lu)
        w.put_u64(z.ln)
        w.put_u8(1 if z.idx is None or (<ZIndex>z.idx).lp else 0)
        w.put_varint(len(z.m) + (len(<dict>z.gone) if z.gone is not None else 0))
        for e in z.m.values():
            _enc_zent(w, <ZEnt>e)
        if z.gone is not None:
            for e in (<dict>z.gone).values():
                _enc_zent(w, <ZEnt>e)
    else:
        EXT[t][0](w, o)
    return 0


cdef int _enc_key(Writer w, object key, list objs) except -1:
    for o in objs:
        w.put_u8(1)
        w.put_bytes(<bytes>key)
        _enc_obj(w, <CObj>o)
    return 0


cdef int _enc_header(Writer w, Keyspace ks, bytes alias, bytes meta) except -1:
    cdef bytes magic = MAGIC
    w.put_raw(magic, 8)
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
    cdef dict dead = {}
    _enc_header(w, ks, alias, meta)
    for (k, _t), o in ks.dead.items():
        dead.setdefault(k, []).append(o)
    for source in (ks.d, ks.alts, ks.tombs, dead):
        for key in source:
            # each key once, with all of its objects
            if source is not ks.d:
                if key in ks.d:
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

cdef inline int _check_count(Reader r, uint64_t n, Py_ssize_t min_size) except -1:
    if n > <uint64_t>(r.end - r.pos) // <uint64_t>min_size:
        raise SnapshotError("corrupt snapshot (bad count)")
    return 0


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


cdef object _dec_dots(Reader r):
    cdef uint64_t n = r.varint(), i, node
    cdef list out
    if n == 0:
        return None
    if n == 1:
        node = r.u64()
        return new_dot(node, r.u64())
    _check_count(r, n, 16)
    out = []
    for i in range(n):
        node = r.u64()
        out.append(new_dot(node, r.u64()))
    return out


cdef object _dec_vers(Reader r):
    cdef uint64_t n = r.varint(), i, node
    cdef list out = []
    cdef bytes val
    if n == 0:
        return None
    _check_count(r, n, 17)
    for i in range(n):
        val = r.bytes_()
        node = r.u64()
        out.append(new_ver(val, r.u64(), node))
    if len(out) == 1:
        return out[0]
    return out


cdef dict _dec_cnts(Reader r):
    cdef uint64_t n = r.varint(), i, node
    cdef dict out
    cdef CntEntry e
    if n == 0:
        return None
    _check_count(r, n, 40)
    out = {}
    for i in range(n):
        node = r.u64()
        e = CntEntry.__new__(CntEntry)
        e.sum = r.i64()
        e.last = r.u64()
        e.bsum = r.i64()
        e.blast = r.u64()
        out[node] = e
    return out


cdef LElem _dec_elem(Reader r):
    cdef LElem e = LElem.__new__(LElem)
    cdef uint8_t st
    e.node = r.u64()
    e.uuid = r.u64()
    st = r.u8()
    if st > ST_PLACED:
        raise SnapshotError("corrupt snapshot (bad list element state)")
    e.st = st
    e.val = r.bytes_() if r.u8() else None
    e.vu = r.u64()
    e.vn = r.u64()
    e.rem = r.u64()
    e.an = r.u64()
    e.au = r.u64()
    e.blk = NULL
    return e


cdef ZEnt _dec_zent(Reader r):
    cdef ZEnt e = ZEnt.__new__(ZEnt)
    cdef uint64_t n, i, node
    cdef ZCnt c
    e.member = r.bytes_()
    e.dots = _dec_dots(r)
    e.val = r.f64()
    e.ru = r.u64()
    e.rn = r.u64()
    e.vu = r.u64()
    e.vn = r.u64()
    n = r.varint()
    e.cnt = None
    if n:
        _check_count(r, n, 40)
        e.cnt = {}
        for i in range(n):
            node = r.u64()
            c = ZCnt.__new__(ZCnt)
            c.sum = r.f64()
            c.last = r.u64()
            c.bsum = r.f64()
            c.blast = r.u64()
            e.cnt[node] = c
    e.rem = r.u64()
    if e.dots is not None:
        e.rem = 0
    e.score = zscore(e)
    return e


cdef CObj _dec_obj(Reader r, int version):
    cdef uint8_t t = r.u8()
    cdef TTLReg ttl = _dec_ttl(r)
    cdef StrObj s
    cdef SetObj so
    cdef HashObj h
    cdef HCnt hc
    cdef MVObj mv
    cdef ListObj lo
    cdef ZSetObj z
    cdef ZEnt ze
    cdef uint64_t n, i
    cdef uint8_t lp, flag
    cdef list seq, unplaced
    cdef CObj o
    if t == T_STRING:
        s = new_str()
        flag = r.u8()
        if flag > 1:
            raise SnapshotError("corrupt snapshot (bad value flag)")
        if flag:
            s.val = r.bytes_()
        s.uuid = r.u64()
        s.node = r.u64()
        str_set_cnts(s, _dec_cnts(r))
        o = s
    elif t == T_SET:
        so = new_set()
        so.lu = r.u64()
        so.ln = r.u64()
        n = r.varint()
        _check_count(r, n, 2)
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
        _check_count(r, n, 2)
        for i in range(n):
            f = r.bytes_()
            ent = _dec_vers(r)
            if ent is not None:
                h.f[f] = ent
        if version >= 2:
            n = r.varint()
            _check_count(r, n, 18)
            for i in range(n):
                f = r.bytes_()
                hc = HCnt.__new__(HCnt)
                hc.ru = r.u64()
                hc.rn = r.u64()
                hc.cnt = _dec_cnts(r) or {}
                if h.hc is None:
                    h.hc = {}
                h.hc[f] = hc
        o = h
    elif t == T_MV:
        mv = new_mv()
        mv.lu = r.u64()
        mv.ln = r.u64()
        ent = _dec_vers(r)
        mv.vers = _as_list(ent)
        o = mv
    elif t == T_LIST and version >= 2:
        lo = new_list()
        lo.lu = r.u64()
        lo.ln = r.u64()
        seq = []
        n = r.varint()
        _check_count(r, n, 58)
        for i in range(n):
            seq.append(_dec_elem(r))
        unplaced = []
        n = r.varint()
        _check_count(r, n, 58)
        for i in range(n):
            e = _dec_elem(r)
            if (<LElem>e).st == ST_PLACED:
                raise SnapshotError("corrupt snapshot (bad list element state)")
            unplaced.append(e)
        if not _list_build(lo, seq, unplaced):
            raise SnapshotError("corrupt snapshot (list element twice)")
        o = lo
    elif t == T_ZSET and version >= 2:
        z = new_zset()
        z.lu = r.u64()
        z.ln = r.u64()
        lp = r.u8()
        n = r.varint()
        _check_count(r, n, 51)
        for i in range(n):
            ze = _dec_zent(r)
            if ze.member in z.m or (z.gone is not None and ze.member in <dict>z.gone):
                raise SnapshotError("corrupt snapshot (sorted set member twice)")
            if ze.dots is not None:
                z.m[ze.member] = ze
                index_of(z).insert(ze, ze.score)
            else:
                if z.gone is None:
                    z.gone = {}
                z.gone[ze.member] = ze
        if z.idx is not None:
            (<ZIndex>z.idx).lp = lp != 0
        o = z
    elif t in EXT:
        o = EXT[t][1](r)
    else:
        raise SnapshotError("corrupt snapshot (unknown object type %d)" % t)
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
    # what _validate decoded, handed to the first objects() (then dropped:
    # a merge changes the objects it takes)
    cdef list kept_keys
    cdef list kept_objs

    def objects(self):
        """Yield (key, object) decoded from the body."""
        cdef Reader r = Reader(self.body, self.objects_at)
        cdef list keys = self.kept_keys, objs = self.kept_objs
        cdef Py_ssize_t i
        if keys is not None:
            self.kept_keys = self.kept_objs = None
            for i in range(len(keys)):
                yield keys[i], objs[i]
            return
        while True:
            tag = r.u8()
            if tag == 0:
                break
            if tag != 1:
                raise SnapshotError("corrupt snapshot (bad object tag)")
            key = r.bytes_()
            yield key, _dec_obj(r, self.version)

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
        while True:
            tag = r.u8()
            if tag == 0:
                break
            if tag != 1:
                raise SnapshotError("corrupt snapshot (bad object tag)")
            key = r.bytes_()
            o = _dec_obj(r, self.version)
            kk.append(key)
            ko.append(o)
            count += 1
            if self.version >= 2:
                if last is None or key != last:
                    if key in keys:
                        raise SnapshotError("corrupt snapshot (a key's objects are apart)")
                    keys.add(key)
                    types = 0
                    last = key
                # one bit per type code (built-ins >= 0, extensions < 0)
                t = _code(o)
                bit = (<uint64_t>1) << (<uint64_t>(t & 31) if t >= 0 else <uint64_t>(32 + (-t & 31)))
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
        for i in range(n):
            node = r.u64()
            s.vv[node] = r.u64()
        s.cloud = {}
        n = r.varint()
        _check_count(r, n, 9)
        for i in range(n):
            node = r.u64()
            k = r.varint()
            _check_count(r, k, 8)
            s.cloud[node] = {r.u64() for j in range(k)}
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


# ------------------------------------------------------------ dots, counters ---

cdef list _as_list(object ent):
    if ent is None:
        return []
    if type(ent) is list:
        return <list>ent
    return [ent]


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


cdef bint _any_seen(object ent, Ctx other):
    if ent is None:
        return False
    if type(ent) is list:
        for x in <list>ent:
            if other.seen((<Dot>x).node, (<Dot>x).uuid):
                return True
        return False
    return other.seen((<Dot>ent).node, (<Dot>ent).uuid)


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


cdef set _cnt_nodes(object xa, object xb):
    """The origins with a counter entry on either side."""
    cdef set nodes = set(xa) if xa else set()
    if xb:
        nodes.update(xb)
    return nodes


cdef object _cnt_src(object ea, uint64_t la, object eb, uint64_t lb, uint64_t node, Ctx ca,
                     Ctx cb):
    """Which of one origin's counter entries (la, lb: their last uuids) a merge
    keeps: the later one; a one-sided one only if the other side has not seen
    it (it saw it and dropped it: observed-reset, or GC). None: neither."""
    if ea is not None and eb is not None:
        return eb if lb > la else ea
    if ea is not None:
        return ea if la and not cb.applied(node, la) else None
    if eb is not None:
        return eb if lb and not ca.applied(node, lb) else None
    return None


cdef dict _merge_cnts(object xa, object xb, object base, Ctx ca, Ctx cb):
    """Counter entries (CntEntry) of two sides: each origin's (sum, last) is the
    one with the later last (a one-sided one is kept iff the other side has not
    seen it); the base (bsum, blast) is the winning register's. Entries that
    hold nothing are left out."""
    cdef dict out = {}
    cdef CntEntry ea, eb, src, e
    cdef PyObject* p
    for node in _cnt_nodes(xa, xb):
        ea = (<dict>xa).get(node) if xa else None
        eb = (<dict>xb).get(node) if xb else None
        src = _cnt_src(ea, ea.last if ea is not None else 0, eb,
                       eb.last if eb is not None else 0, <uint64_t>node, ca, cb)
        e = CntEntry.__new__(CntEntry)
        if src is not None:
            e.sum = src.sum
            e.last = src.last
        if base:
            p = PyDict_GetItem(<dict>base, node)
            if p != NULL:
                e.bsum = (<CntEntry>p).bsum
                e.blast = (<CntEntry>p).blast
        if e.sum or e.last or e.bsum or e.blast:
            out[node] = e
    return out


cdef bint _cnts_seen(object cnt, Ctx other):
    cdef CntEntry e
    if not cnt:
        return False
    for k, v in (<dict>cnt).items():
        e = <CntEntry>v
        if e.last and other.applied(<uint64_t>k, e.last):
            return True
    return False


cdef dict _filter_cnts(object cnt, Ctx other, bint drop_base):
    """One side's counter entries: drop the (sum, last) the other side saw
    (and the bases, with their register, when drop_base)."""
    cdef dict out = {}
    cdef CntEntry e
    if not cnt:
        return out
    for k, v in (<dict>cnt).items():
        e = <CntEntry>v
        if e.last and other.applied(<uint64_t>k, e.last):
            e.sum = 0
            e.last = 0
        if drop_base:
            e.bsum = 0
            e.blast = 0
        if e.sum or e.last or e.bsum or e.blast:
            out[k] = e
    return out


cdef inline void _bump(uint64_t* lu, uint64_t* ln, uint64_t u, uint64_t n) noexcept:
    if ts_gt(u, n, lu[0], ln[0]):
        lu[0] = u
        ln[0] = n


# ------------------------------------------------------------------ strings ---

cdef int _merge_str(StrObj a, StrObj b, Ctx ca, Ctx cb) except -1:
    """LWW register (the base travels with it) and counter entries. A register
    write only one side holds (the other's string has none: a TTL-only
    tombstone, or counters alone) that the other side applied was collected
    there (GC): it goes, as a one-sided string's would."""
    cdef bint a_reg = a.uuid != 0 or a.node != 0
    cdef bint b_reg = b.uuid != 0 or b.node != 0
    cdef bint b_wins
    cdef dict xa = str_cnts(a), xb = str_cnts(b), cnt
    if a_reg and not b_reg and cb.applied(a.node, a.uuid):
        a_reg = False
        a.val = None
        a.uuid = 0
        a.node = 0
    if b_reg and not a_reg and ca.applied(b.node, b.uuid):
        b_reg = False
    b_wins = b_reg and ts_gt(b.uuid, b.node, a.uuid, a.node)
    cnt = _merge_cnts(xa, xb, xb if b_wins else (xa if a_reg else None), ca, cb)
    if b_wins:
        a.val = b.val
        a.uuid = b.uuid
        a.node = b.node
    str_set_cnts(a, cnt)
    return 0


cdef bint _filter_str(StrObj o, Ctx other) except -1:
    """o is on one side only: drop what the other side saw and lost (it can
    only have dropped it at GC). Returns whether anything changed."""
    cdef bint reg = (o.uuid != 0 or o.node != 0) and other.applied(o.node, o.uuid)
    cdef dict cnt = str_cnts(o)
    if not reg and not _cnts_seen(cnt, other):
        return False
    if reg:
        o.val = None
        o.uuid = 0
        o.node = 0
    str_set_cnts(o, _filter_cnts(cnt, other, reg))
    return True


# --------------------------------------------------------- sets, hashes, mv ---

cdef int _merge_set(SetObj a, SetObj b, Ctx ca, Ctx cb) except -1:
    cdef dict out = {}
    for m in set(a.m) | set(b.m):
        ent = _merge_ent(a.m.get(m), b.m.get(m), ca, cb)
        if ent is not None:
            out[m] = ent
    a.m = out
    _bump(&a.lu, &a.ln, b.lu, b.ln)
    return 0


cdef bint _filter_set(SetObj o, Ctx other) except -1:
    cdef dict out = {}
    cdef bint hit = False
    for ent in o.m.values():
        if _any_seen(ent, other):
            hit = True
            break
    if not hit:
        return False
    for m, ent in o.m.items():
        ent = _filter_ent(ent, other)
        if ent is not None:
            out[m] = ent
    o.m = out
    return True


cdef HCnt _merge_hcnt(HCnt x, HCnt y, Ctx ca, Ctx cb):
    cdef bint y_wins = ts_gt(y.ru, y.rn, x.ru, x.rn)
    x.cnt = _merge_cnts(x.cnt, y.cnt, y.cnt if y_wins else x.cnt, ca, cb)
    if y_wins:
        x.ru = y.ru
        x.rn = y.rn
    if not x.cnt and x.ru == 0 and x.rn == 0:
        return None
    return x


cdef HCnt _filter_hcnt(HCnt h, Ctx other):
    cdef bint reg = (h.ru != 0 or h.rn != 0) and other.applied(h.rn, h.ru)
    if reg:
        h.ru = 0
        h.rn = 0
    if reg or _cnts_seen(h.cnt, other):
        h.cnt = _filter_cnts(h.cnt, other, reg)
    if not h.cnt and h.ru == 0 and h.rn == 0:
        return None
    return h


cdef int _merge_hash(HashObj a, HashObj b, Ctx ca, Ctx cb) except -1:
    cdef dict out = {}
    cdef HCnt h
    for f in set(a.f) | set(b.f):
        ent = _merge_ent(a.f.get(f), b.f.get(f), ca, cb)
        if ent is not None:
            out[f] = ent
    a.f = out
    if a.hc or b.hc:
        out = {}
        fields = set(a.hc) if a.hc else set()
        if b.hc:
            fields.update(b.hc)
        for f in fields:
            x = (<dict>a.hc).get(f) if a.hc else None
            y = (<dict>b.hc).get(f) if b.hc else None
            if x is not None and y is not None:
                h = _merge_hcnt(<HCnt>x, <HCnt>y, ca, cb)
            elif x is not None:
                h = _filter_hcnt(<HCnt>x, cb)
            else:
                h = _filter_hcnt(<HCnt>y, ca)
            if h is not None:
                out[f] = h
        a.hc = out if out else None
    _bump(&a.lu, &a.ln, b.lu, b.ln)
    return 0


cdef bint _filter_hash(HashObj o, Ctx other) except -1:
    cdef dict out
    cdef bint hit = False
    cdef HCnt h
    for ent in o.f.values():
        if _any_seen(ent, other):
            hit = True
            break
    if not hit and o.hc:
        for v in (<dict>o.hc).values():
            h = <HCnt>v
            if ((h.ru or h.rn) and other.applied(h.rn, h.ru)) or _cnts_seen(h.cnt, other):
                hit = True
                break
    if not hit:
        return False
    out = {}
    for f, ent in o.f.items():
        ent = _filter_ent(ent, other)
        if ent is not None:
            out[f] = ent
    o.f = out
    if o.hc:
        out = {}
        for f, v in (<dict>o.hc).items():
            h = _filter_hcnt(<HCnt>v, other)
            if h is not None:
                out[f] = h
        o.hc = out if out else None
    return True


cdef int _merge_mv(MVObj a, MVObj b, Ctx ca, Ctx cb) except -1:
    a.vers = _as_list(_merge_ent(a.vers, b.vers, ca, cb))
    _bump(&a.lu, &a.ln, b.lu, b.ln)
    return 0


cdef bint _filter_mv(MVObj o, Ctx other) except -1:
    if not _any_seen(o.vers, other):
        return False
    o.vers = _as_list(_filter_ent(o.vers, other))
    return True


# -------------------------------------------------------------------- lists ---
#
# A list's state is its elements (id, value and LWW ts, removal, anchor) and
# the RGA order of the placed ones. Elements: the union, minus one side's
# elements whose insert the other side has seen and does not have (it dropped
# them at GC); a removal wins (the smallest removal uuid, as t_list keeps),
# values are LWW, an anchor is known if either side has the insert. Order:
# both sides' sequences are the RGA order of the union restricted to what
# each has placed, so the common placed elements come in the same order on
# both; between two consecutive common elements, each side's own elements
# are interleaved by the RGA rule (an element goes after its anchor, or at
# the start of the gap if its anchor is further back, past every element
# with a larger id). Elements placed on neither side whose anchor is now
# placed are integrated as an insert would be; the others wait (or stay
# ghosts). docs/crdt-notes.md, "Snapshots", has the argument.

cdef list _list_seq(ListObj o):
    """The placed elements in sequence order."""
    cdef list out = []
    cdef LBlock b
    for x in o.blocks:
        b = <LBlock>x
        if b.rev:
            out.extend(reversed(b.items))
        else:
            out.extend(b.items)
    return out


cdef list _list_all(ListObj o):
    cdef list out = []
    for v in o.ids.values():
        if type(v) is LElem:
            out.append(v)
        else:
            out.extend(<list>v)
    return out


cdef inline bint _id_gt(LElem a, LElem b) noexcept:
    return ts_gt(a.uuid, a.node, b.uuid, b.node)


cdef bint _put_id(ListObj o, LElem e) except -1:
    cdef PyObject* p = PyDict_GetItem(o.ids, e.uuid)
    cdef object x
    if p == NULL:
        o.ids[e.uuid] = e
        return True
    x = <object>p
    if type(x) is LElem:
        if (<LElem>x).node == e.node:
            return False
        o.ids[e.uuid] = [x, e]
        return True
    for y in <list>x:
        if (<LElem>y).node == e.node:
            return False
    (<list>x).append(e)
    return True


cdef int _push_block(list blocks, list items, Py_ssize_t live) except -1:
    cdef LBlock b
    cdef LElem e
    if live == 0 and blocks and (<LBlock>blocks[len(blocks) - 1]).live == 0:
        b = <LBlock>blocks[len(blocks) - 1]
        b.items.extend(items)
    else:
        b = LBlock.__new__(LBlock)
        b.items = items
        b.live = live
        b.pos = len(blocks)
        b.rev = False
        blocks.append(b)
    for x in items:
        e = <LElem>x
        e.blk = <void*>b
    return 0


cdef bint _list_build(ListObj o, list seq, list unplaced) except -1:
    """Make o hold exactly these placed elements (in this order) and these
    ghosts and waiting inserts. False if an id comes twice."""
    cdef list blocks = [], cur = []
    cdef Py_ssize_t live = 0, total = 0
    cdef LElem e
    cdef list lst
    o.ids = {}
    o.pend = None
    for x in seq:
        e = <LElem>x
        e.st = ST_PLACED
        if not _put_id(o, e):
            return False
        cur.append(e)
        if e.rem == 0:
            live += 1
        if len(cur) == BLOCK_MAX:
            _push_block(blocks, cur, live)
            total += live
            cur = []
            live = 0
    if cur:
        _push_block(blocks, cur, live)
        total += live
    o.blocks = blocks
    o.n = total
    for x in unplaced:
        e = <LElem>x
        e.blk = NULL
        if not _put_id(o, e):
            return False
        if e.st == ST_WAIT:
            if o.pend is None:
                o.pend = {}
            lst = (<dict>o.pend).get(e.au)
            if lst is None:
                o.pend[e.au] = [(e, e.an)]
            else:
                lst.append((e, e.an))
    return True


cdef int _merge_elem(LElem x, LElem y) except -1:
    """y's knowledge of one element into x."""
    if x.st == ST_GHOST and y.st != ST_GHOST:
        x.an = y.an
        x.au = y.au
        x.st = ST_WAIT
    if y.rem != 0 and (x.rem == 0 or y.rem < x.rem):
        x.rem = y.rem
    if ts_gt(y.vu, y.vn, x.vu, x.vn):
        x.val = y.val
        x.vu = y.vu
        x.vn = y.vn
    if x.rem != 0:
        x.val = None
        x.vu = 0
        x.vn = 0
    return 0


cdef list _interleave(list runa, list runb):
    """Integrate b's run into a's run of one gap (RGA). Each element of b's
    run lands after the previous one (both sides' sequences are restrictions
    of one order), and between its anchor and it there are only larger ids:
    so, from the previous one on, it goes past a's elements with a larger id.
    A linear merge."""
    cdef list out = []
    cdef LElem y, x
    cdef Py_ssize_t i = 0, n = len(runa)
    for v in runb:
        y = <LElem>v
        while i < n:
            x = <LElem>runa[i]
            if not _id_gt(x, y):
                break
            out.append(x)
            i += 1
        out.append(y)
    out.extend(runa[i:])
    return out


cdef int _merge_list(ListObj a, ListObj b, Ctx ca, Ctx cb) except -1:
    cdef dict ea = {}, eb = {}, keep = {}
    cdef LElem x, y
    cdef list sa, sb, result, runa, runb, waiting, rest, unplaced
    cdef set ina, inb, placed
    cdef Py_ssize_t i = 0, j = 0, na, nb
    cdef dict nxt
    cdef bint progress
    for x in _list_all(a):
        ea[(x.node, x.uuid)] = x
    for y in _list_all(b):
        eb[(y.node, y.uuid)] = y
    for key, v in ea.items():
        x = <LElem>v
        p = eb.get(key)
        if p is None:
            if cb.applied(x.node, x.uuid):
                continue
        else:
            _merge_elem(x, <LElem>p)
        keep[key] = x
    for key, v in eb.items():
        y = <LElem>v
        if key not in ea and not ca.applied(y.node, y.uuid):
            keep[key] = y
    sa = [e for e in _list_seq(a) if ((<LElem>e).node, (<LElem>e).uuid) in keep]
    sb = [keep[((<LElem>e).node, (<LElem>e).uuid)] for e in _list_seq(b)
          if ((<LElem>e).node, (<LElem>e).uuid) in keep]
    ina = {((<LElem>e).node, (<LElem>e).uuid) for e in sa}
    inb = {((<LElem>e).node, (<LElem>e).uuid) for e in sb}
    result = []
    na = len(sa)
    nb = len(sb)
    while True:
        runa = []
        while i < na and ((<LElem>sa[i]).node, (<LElem>sa[i]).uuid) not in inb:
            runa.append(sa[i])
            i += 1
        runb = []
        while j < nb and ((<LElem>sb[j]).node, (<LElem>sb[j]).uuid) not in ina:
            runb.append(sb[j])
            j += 1
        result.extend(_interleave(runa, runb) if runb else runa)
        if i >= na or j >= nb:
            break
        if sa[i] is sb[j]:
            result.append(sa[i])
            i += 1
            j += 1
        else:
            # the two orders disagree (states of one group never do): a's
            # order wins, b's elements left over are placed by their anchors
            result.append(sa[i])
            i += 1
    result.extend(sa[i:])
    placed = {((<LElem>e).node, (<LElem>e).uuid) for e in result}
    # inserts known here whose anchor is now placed: integrate them as an
    # insert is (RGA), in uuid order so that chains resolve; over a linked
    # list, so that each finds its anchor at once
    waiting = [e for key, e in keep.items() if key not in placed and (<LElem>e).st != ST_GHOST]
    if waiting:
        waiting.sort(key=lambda e: ((<LElem>e).uuid, (<LElem>e).node))
        nxt = {}
        prev = None
        for v in result:
            key = ((<LElem>v).node, (<LElem>v).uuid)
            nxt[prev] = key
            prev = key
        nxt[prev] = None
        progress = True
        while waiting and progress:
            progress = False
            rest = []
            for v in waiting:
                x = <LElem>v
                if x.an == 0 and x.au == 0:
                    at = None
                elif (x.an, x.au) in placed:
                    at = (x.an, x.au)
                else:
                    rest.append(x)
                    continue
                cur = nxt[at]
                while cur is not None and _id_gt(<LElem>keep[cur], x):
                    at = cur
                    cur = nxt[cur]
                key = (x.node, x.uuid)
                nxt[at] = key
                nxt[key] = cur
                placed.add(key)
                progress = True
            waiting = rest
        result = []
        cur = nxt[None]
        while cur is not None:
            result.append(keep[cur])
            cur = nxt[cur]
    unplaced = []
    for key, v in keep.items():
        if key not in placed:
            x = <LElem>v
            x.st = ST_WAIT if x.st != ST_GHOST else ST_GHOST
            unplaced.append(x)
    _list_build(a, result, unplaced)
    _bump(&a.lu, &a.ln, b.lu, b.ln)
    return 0


cdef bint _filter_list(ListObj o, Ctx other) except -1:
    cdef set drop = set()
    cdef LElem e
    for x in _list_all(o):
        e = <LElem>x
        if other.applied(e.node, e.uuid):
            drop.add((e.node, e.uuid))
    if not drop:
        return False
    seq = [x for x in _list_seq(o) if ((<LElem>x).node, (<LElem>x).uuid) not in drop]
    unplaced = [x for x in _list_all(o) if (<LElem>x).st != ST_PLACED
                and ((<LElem>x).node, (<LElem>x).uuid) not in drop]
    _list_build(o, seq, unplaced)
    return True


# -------------------------------------------------------------- sorted sets ---

cdef inline bint _zcnt_empty(ZCnt c) noexcept:
    return c.sum == 0.0 and c.last == 0 and c.bsum == 0.0 and c.blast == 0


cdef object _merge_zcnts(object xa, object xb, object base, Ctx ca, Ctx cb):
    cdef dict out = {}
    cdef ZCnt ea, eb, src, e
    cdef PyObject* p
    for node in _cnt_nodes(xa, xb):
        ea = (<dict>xa).get(node) if xa else None
        eb = (<dict>xb).get(node) if xb else None
        src = _cnt_src(ea, ea.last if ea is not None else 0, eb,
                       eb.last if eb is not None else 0, <uint64_t>node, ca, cb)
        e = ZCnt.__new__(ZCnt)
        e.sum = 0.0
        e.bsum = 0.0
        if src is not None:
            e.sum = src.sum
            e.last = src.last
        if base:
            p = PyDict_GetItem(<dict>base, node)
            if p != NULL:
                e.bsum = (<ZCnt>p).bsum
                e.blast = (<ZCnt>p).blast
        if not _zcnt_empty(e):
            out[node] = e
    return out if out else None


cdef inline bint _zreg_gt(ZEnt a, ZEnt b) noexcept:
    if ts_gt(a.ru, a.rn, b.ru, b.rn):
        return True
    return a.ru == b.ru and a.rn == b.rn and ts_gt(a.vu, a.vn, b.vu, b.vn)


cdef int _merge_zent(ZEnt x, ZEnt y, Ctx ca, Ctx cb) except -1:
    cdef bint y_wins = _zreg_gt(y, x)
    x.dots = _merge_ent(x.dots, y.dots, ca, cb)
    x.cnt = _merge_zcnts(x.cnt, y.cnt, y.cnt if y_wins else x.cnt, ca, cb)
    if y_wins:
        x.val = y.val
        x.ru = y.ru
        x.rn = y.rn
        x.vu = y.vu
        x.vn = y.vn
    if y.rem > x.rem:
        x.rem = y.rem
    return 0


cdef bint _zent_touched(ZEnt e, Ctx other):
    cdef ZCnt c
    if _any_seen(e.dots, other):
        return True
    if e.dots is None and other.applied(e.vn, e.vu):
        return True
    if e.cnt:
        for k, v in (<dict>e.cnt).items():
            c = <ZCnt>v
            if c.last and other.applied(<uint64_t>k, c.last):
                return True
    return False


cdef bint _filter_zent(ZEnt e, Ctx other):
    """One side's member: drop the dots and counter parts the other side
    saw; False if nothing is left that the other side has not seen (it
    dropped the removed member at GC)."""
    cdef dict out = {}
    cdef ZCnt c
    e.dots = _filter_ent(e.dots, other)
    if e.cnt:
        for k, v in (<dict>e.cnt).items():
            c = <ZCnt>v
            if c.last and other.applied(<uint64_t>k, c.last):
                c.sum = 0.0
                c.last = 0
            if not _zcnt_empty(c):
                out[k] = c
    e.cnt = out if out else None
    if e.dots is None and e.cnt is None and (e.vu == 0 or other.applied(e.vn, e.vu)):
        return False
    return True


cdef int _zplace(ZSetObj o, ZEnt e, bint was, double old, uint64_t clock) except -1:
    """Put e where its dots and score put it (index and m, or gone)."""
    cdef bint now = e.dots is not None
    cdef bint moved
    e.score = zscore(e)
    moved = e.score != old or signbit(e.score) != signbit(old)
    if was and (not now or moved):
        (<ZIndex>o.idx).delete(old, e.member)
    if now:
        if not was or moved:
            index_of(o).insert(e, e.score)
        o.m[e.member] = e
        if o.gone is not None:
            (<dict>o.gone).pop(e.member, None)
        e.rem = 0
    else:
        o.m.pop(e.member, None)
        if o.gone is None:
            o.gone = {}
        o.gone[e.member] = e
        if e.rem == 0:
            # removed by the merge: the merged clock covers the removal
            e.rem = clock
    if o.gone is not None and not o.gone:
        o.gone = None
    return 0


cdef int _zdrop(ZSetObj o, ZEnt e, bint was) except -1:
    if was:
        (<ZIndex>o.idx).delete(e.score, e.member)
        del o.m[e.member]
    else:
        del o.gone[e.member]
        if not o.gone:
            o.gone = None
    return 0


cdef int _merge_zset(ZSetObj a, ZSetObj b, Ctx ca, Ctx cb, uint64_t clock) except -1:
    cdef ZEnt x, y
    cdef bint was
    cdef double old
    members = set(a.m)
    if a.gone:
        members.update(a.gone)
    members.update(b.m)
    if b.gone:
        members.update(b.gone)
    for m in sorted(members):
        x = find_ent(a, m)
        y = find_ent(b, m)
        if x is None:
            if _filter_zent(y, ca):
                _zplace(a, y, False, 0.0, clock)
            continue
        was = x.dots is not None
        old = x.score
        if y is None:
            if not _zent_touched(x, cb):
                continue
            if not _filter_zent(x, cb):
                _zdrop(a, x, was)
                continue
        else:
            _merge_zent(x, y, ca, cb)
        _zplace(a, x, was, old, clock)
    _bump(&a.lu, &a.ln, b.lu, b.ln)
    return 0


cdef bint _filter_zset(ZSetObj o, Ctx other, uint64_t clock) except -1:
    cdef ZEnt e
    cdef bint hit = False, was
    cdef double old
    cdef list ents = list(o.m.values())
    if o.gone:
        ents.extend((<dict>o.gone).values())
    for x in ents:
        if _zent_touched(<ZEnt>x, other):
            hit = True
            break
    if not hit:
        return False
    for x in ents:
        e = <ZEnt>x
        if not _zent_touched(e, other):
            continue
        was = e.dots is not None
        old = e.score
        if not _filter_zent(e, other):
            _zdrop(o, e, was)
        else:
            _zplace(o, e, was, old, clock)
    return True


# ---------------------------------------------------------------- the merge ---

cdef int merge_obj(CObj a, CObj b, Ctx ca, Ctx cb, uint64_t clock) except -1:
    """Merge b (remote) into a (local, same type); the TTL is the key's (see
    _merge_key)."""
    if type(a) is StrObj:
        _merge_str(<StrObj>a, <StrObj>b, ca, cb)
    elif type(a) is SetObj:
        _merge_set(<SetObj>a, <SetObj>b, ca, cb)
    elif type(a) is HashObj:
        _merge_hash(<HashObj>a, <HashObj>b, ca, cb)
    elif type(a) is MVObj:
        _merge_mv(<MVObj>a, <MVObj>b, ca, cb)
    elif type(a) is ListObj:
        _merge_list(<ListObj>a, <ListObj>b, ca, cb)
    elif type(a) is ZSetObj:
        _merge_zset(<ZSetObj>a, <ZSetObj>b, ca, cb, clock)
    return 0


cdef bint filter_obj(CObj o, Ctx other, uint64_t clock) except -1:
    """o is on one side only: keep what `other` has not seen. Returns whether
    anything changed."""
    if type(o) is StrObj:
        return _filter_str(<StrObj>o, other)
    if type(o) is SetObj:
        return _filter_set(<SetObj>o, other)
    if type(o) is HashObj:
        return _filter_hash(<HashObj>o, other)
    if type(o) is MVObj:
        return _filter_mv(<MVObj>o, other)
    if type(o) is ListObj:
        return _filter_list(<ListObj>o, other)
    if type(o) is ZSetObj:
        return _filter_zset(<ZSetObj>o, other, clock)
    return False


cdef TTLReg _ttl_of(CObj o):
    """o's TTL register made explicit (keyspace._ttl_of); None: never written."""
    cdef TTLReg t
    if o.ttl is not None:
        t = <TTLReg>o.ttl
        if t.uuid != 0 or t.node != 0:
            return t
        return None
    if type(o) is StrObj and ((<StrObj>o).uuid != 0 or (<StrObj>o).node != 0):
        return _ttlreg(0, (<StrObj>o).uuid, (<StrObj>o).node)
    return None


cdef TTLReg _ttl_max(list objs):
    cdef TTLReg best = None, t
    for o in objs:
        t = _ttl_of(<CObj>o)
        if t is not None and (best is None or ts_gt(t.uuid, t.node, best.uuid, best.node)):
            best = t
    return best


cdef inline TTLReg _ttlreg(int64_t at, uint64_t u, uint64_t n):
    cdef TTLReg t = TTLReg.__new__(TTLReg)
    t.at = at
    t.uuid = u
    t.node = n
    return t


cdef int _set_ttl(CObj o, TTLReg r) except -1:
    """Give o the key's TTL register r (None: never written) in the form the
    keyspace keeps it (a string's ttl None is (no expiry, its register's ts))."""
    cdef StrObj s
    if type(o) is StrObj:
        s = <StrObj>o
        if r is None:
            o.ttl = None if s.uuid == 0 and s.node == 0 else _ttlreg(0, 0, 0)
        elif r.at == 0 and r.uuid == s.uuid and r.node == s.node:
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
    if PyDict_GetItem(ks.d, key) != NULL:
        return False
    if ks.alts and key in ks.alts:
        return False
    if ks.tombs and key in ks.tombs:
        return False
    if ks.dead:
        for t in (T_LIST, T_ZSET, T_HASH):
            if (key, t) in ks.dead:
                return False
    return True


cdef int _place_new(Keyspace ks, object key, CObj b, Ctx ca, uint64_t clock) except -1:
    """_merge_key of a key only the snapshot has, with one object (a load, or
    most keys of a full sync): keep what this node has not seen, and place."""
    cdef TTLReg r = _ttl_of(b)
    cdef int t = _code(b)
    if r is not None and ca.applied(r.node, r.uuid):
        r = None
    if t >= 0:
        filter_obj(b, ca, clock)
    else:
        EXT[t][3](b, ca)
    _set_ttl(b, r)
    if type(b) is not StrObj or ((<StrObj>b).uuid != 0 or (<StrObj>b).node != 0 or
                                 (<StrObj>b).cnt is not None or (<StrObj>b).cnt1 is not None):
        ks.settle(key, b)
    if r is not None:
        if PyDict_GetItem(ks.d, key) != NULL:
            if r.at != 0:
                ks.expires[key] = None
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
        for t in (T_LIST, T_ZSET, T_HASH):
            o = ks.dead.get((key, t))
            if o is not None:
                aobjs.append(o)
    if not aobjs and not bobjs:
        return 0
    for x in aobjs:
        at.setdefault(_code(<CObj>x), x)
    for x in bobjs:
        bt[_code(<CObj>x)] = x
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
            if t >= 0:
                if filter_obj(a, cb, clock):
                    changed = True
            else:
                EXT[t][3](a, cb)
                changed = True
        elif t >= 0:
            merge_obj(a, <CObj>y, ca, cb, clock)
        else:
            EXT[t][2](ks, key, a, <CObj>y, ca, cb)
        results.append(a)
    for t, y in bt.items():
        if t not in at:
            b = <CObj>y
            if t >= 0:
                filter_obj(b, ca, clock)
            else:
                EXT[t][3](b, ca)
            results.append(b)
    if not changed:
        return 0
    # place everything again, as settle decides: the string first (it is the
    # tombstone), then the others; a key left with no object keeps its TTL
    # register in a tombstone
    ks.d.pop(key, None)
    if ks.alts:
        ks.alts.pop(key, None)
    if ks.tombs:
        ks.tombs.pop(key, None)
    if ks.dead:
        for t in (T_LIST, T_ZSET, T_HASH):
            ks.dead.pop((key, t), None)
    for x in results:
        _set_ttl(<CObj>x, r)
    for x in results:
        if type(x) is StrObj and ((<StrObj>x).uuid != 0 or (<StrObj>x).node != 0 or
                                  (<StrObj>x).cnt is not None or (<StrObj>x).cnt1 is not None):
            ks.settle(key, <CObj>x)
    for x in results:
        if type(x) is not StrObj:
            ks.settle(key, <CObj>x)
    if r is not None and key not in ks.d and key not in ks.tombs:
        o = new_str()
        o.ttl = _ttlreg(r.at, r.uuid, r.node)
        ks.tombs[key] = o
    if r is not None and r.at != 0 and key in ks.d:
        ks.expires[key] = None
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
    """Merge snapshot s into ks (CRDT.md section 5). Returns the number of
    objects merged. progress(n) is called every 100,000 objects."""
    cdef Ctx ca = ctx_of(ks)
    cdef Ctx cb = Ctx(dict(s.vv), {n: set(u) for n, u in s.cloud.items()})
    cdef set mine
    cdef list objs = []
    cdef uint64_t count = 0
    cdef uint64_t clock
    cdef object cur = None
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
    mine = set()
    if _saw_any(ca, cb):
        mine.update(ks.d)
        mine.update(ks.alts)
        mine.update(ks.tombs)
        mine.update(k for k, _t in ks.dead)
    if s.version < 2:
        # a key's objects are not together: gather them
        groups = {}
        for key, bo in s.objects():
            groups.setdefault(key, []).append(bo)
            count += 1
        for key, lst in groups.items():
            if mine:
                mine.discard(key)
            _merge_key(ks, key, lst, ca, cb, clock)
    else:
        for key, bo in s.objects():
            if objs and key != cur:
                _merge_key(ks, cur, objs, ca, cb, clock)
                objs = []
            cur = key
            if mine:
                mine.discard(key)
            objs.append(bo)
            count += 1
            if progress is not None and count % 100000 == 0:
                progress(count)
        if objs:
            _merge_key(ks, cur, objs, ca, cb, clock)
    # what only this node has: drop what the other side saw and lost
    for key in mine:
        _merge_key(ks, key, [], ca, cb, clock)
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
