"""Shared helpers of the type modules: dot entries, observed counters, TTL
registers.

An entry is what an OR-Set keeps for one element (a set member, a hash field,
a sorted-set member's adds, an MV register's versions): one Dot (or Ver), or a
list of them when concurrent adds left several.
"""

from libc.stdint cimport int64_t, uint64_t

from constdb._core.codec cimport Reader, Writer
from constdb._core.objects cimport (
    CObj, Dot, StrObj, TTLReg, check_float_bits, cnt_is_float, new_dot, str_node, ts_gt,
)


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
    """Add d to an entry unless it holds that dot already."""
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


cdef object _ent_append(object ent, Dot d):
    """Add d, a dot the entry cannot hold yet (a new effect's), to an entry."""
    if ent is None:
        return d
    if type(ent) is list:
        (<list>ent).append(d)
        return ent
    return [ent, d]


cdef list _ent_dots(object ent):
    """The entry's dots as a fresh list of new Dots (for a remove effect)."""
    if ent is None:
        return []
    if type(ent) is list:
        return [new_dot((<Dot>x).node, (<Dot>x).uuid) for x in <list>ent]
    return [new_dot((<Dot>ent).node, (<Dot>ent).uuid)]


cdef list _ent_dots_raw(object ent):
    """The entry's own Dot objects in a new list (a Dot never changes once made)."""
    if ent is None:
        return []
    if type(ent) is list:
        return list(<list>ent)
    return [ent]


cdef void _ent_max(object ent, uint64_t* u, uint64_t* n) noexcept:
    """(u, n) = the larger of it and the newest dot of ent."""
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


cdef int _put_dots(Writer w, list dots) except -1:
    cdef Dot x
    w.put_varint(len(dots))
    for x in dots:
        w.put_u64(x.node)
        w.put_u64(x.uuid)
    return 0


cdef list _read_dots(Reader r):
    cdef uint64_t n = r.varint(), _i
    cdef list out = []
    cdef uint64_t node
    if n > <uint64_t>(r.end - r.pos):
        raise ValueError("bad dot count")
    for _i in range(n):
        node = r.u64()
        out.append(new_dot(node, r.u64()))
    return out


cdef int _put_obs(Writer w, list obs) except -1:
    """Observed counters: varint n, n x (u64 node, i64 sum, u64 last)."""
    w.put_varint(len(obs))
    for item in obs:
        w.put_u64(<uint64_t>item[0])
        w.put_i64(<int64_t>item[1])
        w.put_u64(<uint64_t>item[2])
    return 0


class ClockAheadError(ValueError):
    """A peer's record that names a clock after its own uuid (keyspace turns
    it into a ClockDriftError: the link is refused as for a clock too far
    ahead, docs/crdt.md section 1)."""


cdef int _check_ts(uint64_t x, uint64_t u) except -1:
    """A clock inside a record (a dot it removes, a counter's last, a list
    anchor or element id, a register's ts it observed): what a writer names
    it had seen, so it is at most the record's own uuid u, which is itself
    checked against max_clock_drift."""
    if x > u:
        raise ClockAheadError("record %d names clock %d, after its own" % (u, x))
    return 0


cdef int _skip_n(Reader r, Py_ssize_t size, uint64_t u) except -1:
    """Skip varint n, n x size bytes (dots: 16, observed counters: 24) after
    checking n against what is left: a peer's record checked, not applied.
    Each entry ends in a uuid (the dot's, the counter's last): at most u."""
    cdef uint64_t n = r.varint(), _i
    if n > <uint64_t>(r.end - r.pos) // <uint64_t>size:
        raise ValueError("bad count")
    for _i in range(n):
        r.pos += size - 8
        _check_ts(r.u64(), u)
    return 0


cdef int _check_obs(Reader r, uint64_t u) except -1:
    """_skip_n of a peer's observed counters (node, sum, last), each float
    entry's total checked too: a finite double (docs/crdt.md section 3.7)."""
    cdef uint64_t n = r.varint(), _i, node
    if n > <uint64_t>(r.end - r.pos) // 24:
        raise ValueError("bad count")
    for _i in range(n):
        node = r.u64()
        if cnt_is_float(node):
            check_float_bits(r.i64())
        else:
            r.pos += 8
        _check_ts(r.u64(), u)
    return 0


cdef list _read_obs(Reader r):
    cdef uint64_t n = r.varint(), _i, node, last
    cdef int64_t s
    cdef list out = []
    if n > <uint64_t>(r.end - r.pos):
        raise ValueError("bad counter count")
    for _i in range(n):
        node = r.u64()
        s = r.i64()
        last = r.u64()
        out.append((node, s, last))
    return out


# The TTL register is one LWW register per key (docs/crdt.md section 6), kept on
# every object of the key (keyspace.pyx).

cdef TTLReg _ttl_of(CObj o):
    """o's TTL register made explicit; None when it is (no expiry, ts 0). A
    string's ttl None is (no expiry, its register's ts)."""
    cdef TTLReg t
    if o.ttl is not None:
        t = <TTLReg>o.ttl
        if t.uuid != 0 or t.node != 0:
            return t
        return None
    if type(o) is StrObj and ((<StrObj>o).uuid != 0 or str_node((<StrObj>o)) != 0):
        return _ttlreg(0, (<StrObj>o).uuid, str_node((<StrObj>o)))
    return None
