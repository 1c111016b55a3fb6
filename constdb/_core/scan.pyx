"""Iteration states of SCAN, SSCAN, HSCAN and ZSCAN (docs/internals.md, "SCAN
cursors").

A position in a Python dict's entry array is not a safe cursor: when an insert
finds the table full, CPython rebuilds it without the deleted slots and every
later entry moves left, so a position handed out before the rebuild skips
entries; and the public C API cannot tell that a rebuild happened. So an
iteration over a collection larger than one reply copies the collection's
elements at its first call (one C-level copy of n pointers) into a
`ScanState`; every call walks the next COUNT of them and returns those still
present. An element present from the start to the end of the iteration is in
the copy and still present when its turn comes, so it is returned, whatever
happens to the dict meanwhile; the iteration ends after n / COUNT calls.

The cursor names the state: a counter passed through a bijection of
[0, 2**53), new at every call, so a cursor is never handed out twice. It stays
below 2**53 (a client that reads cursors as doubles keeps them exact) and is
not a small consecutive number (a made-up cursor such as 1 names no state). A
cursor that names no state (never given, already used, finished, evicted)
starts a fresh iteration: duplicates, never a skip. States are bounded: at
most MAX_STATES of them and MAX_HELD copied elements in all (a single larger
one is kept alone), the least recently used evicted first; what a call walked
is released at once.
"""

from cpython.dict cimport PyDict_GetItem, PyDict_Next
from cpython.list cimport PyList_GET_SIZE
from cpython.object cimport PyObject
from libc.stdint cimport int64_t, uint64_t

import random

cdef Py_ssize_t MAX_STATES = 128
cdef Py_ssize_t MAX_HELD = 8_000_000   # copied elements in all states (8 bytes each)
cdef uint64_t SID_LIMIT = (<uint64_t>1) << 53

cdef uint64_t SID_MASK = SID_LIMIT - 1

cdef dict _states = {}   # sid -> ScanState, least recently used first
cdef Py_ssize_t _held = 0
cdef uint64_t _counter = <uint64_t>random.getrandbits(53)


cdef class ScanState:
    pass    # (fields in scan.pxd)


cdef inline uint64_t _mix(uint64_t x) noexcept:
    """A bijection of [0, 2**53): xor-shifts and odd multipliers modulo 2**53
    are each invertible there."""
    x ^= x >> 29
    x = (x * <uint64_t>0xBF58476D1CE4E5B9) & SID_MASK
    x ^= x >> 27
    x = (x * <uint64_t>0x94D049BB133111EB) & SID_MASK
    x ^= x >> 31
    return x


cdef uint64_t _new_sid() noexcept:
    """A cursor value never handed out before (the counter would have to
    wrap 2**53 times)."""
    global _counter
    cdef uint64_t sid = 0
    while sid == 0:
        _counter = (_counter + 1) & SID_MASK
        sid = _mix(_counter)
    return sid


cdef int _remove(ScanState st) except -1:
    global _held
    del _states[st.sid]
    _held -= st.held
    st.items = None
    return 0


cdef ScanState scan_find(uint64_t cur, int kind, object ks, object key):
    """The live state that cur names, if it is an iteration of this kind over
    this keyspace and key; else None (the caller starts afresh)."""
    cdef PyObject* p
    cdef ScanState st
    if cur == 0 or cur >= SID_LIMIT:
        return None
    p = PyDict_GetItem(_states, cur)
    if p == NULL:
        return None
    st = <ScanState>p
    if st.kind != kind or st.ks is not ks or (key is not None and st.key != key):
        return None
    return st


cdef ScanState scan_start(int kind, object ks, object key, list items):
    """A new iteration over items (the collection's elements, copied now)."""
    return _start(kind, ks, key, items, len(items))


cdef ScanState scan_start_packed(int kind, object ks, object key, bytes blob):
    """A new iteration over elements packed in one bytes object by the
    caller (SCAN: the key table's keys, each a 4-byte length and its bytes:
    a copy of the keys costs them, not a bytes object each); items is
    [blob], pos an offset in it that the caller advances (scan_next_at)."""
    return _start(kind, ks, key, [blob], len(blob) // 8 + 1)


cdef ScanState _start(int kind, object ks, object key, list items, Py_ssize_t held):
    global _held
    cdef ScanState st = ScanState.__new__(ScanState)
    cdef ScanState old
    cdef Py_ssize_t pos
    cdef PyObject* k
    cdef PyObject* v
    st.kind = kind
    st.ks = ks
    st.key = key
    st.items = items
    st.pos = 0
    st.held = held
    st.sid = _new_sid()
    _states[st.sid] = st
    _held += held
    while (len(_states) > MAX_STATES or _held > MAX_HELD) and len(_states) > 1:
        pos = 0
        PyDict_Next(_states, &pos, &k, &v)   # the least recently used
        old = <ScanState>v
        _remove(old)
    return st


cdef Py_ssize_t scan_end(ScanState st, int64_t count) noexcept:
    """Where this call's walk ends: it visits items[st.pos:end] (then
    scan_next(st, end))."""
    cdef Py_ssize_t n = PyList_GET_SIZE(st.items)
    if count >= n - st.pos:
        return n
    return st.pos + <Py_ssize_t>count


cdef uint64_t scan_next(ScanState st, Py_ssize_t end) except? 0:
    """After a walk up to end: release what was walked; the next cursor, or 0
    (and the state freed) when the walk reached the end."""
    cdef list items = st.items
    cdef Py_ssize_t i
    for i in range(st.pos, end):
        items[i] = None
    return scan_next_at(st, end, end >= len(items))


cdef uint64_t scan_next_at(ScanState st, Py_ssize_t pos, bint done) except? 0:
    """The next cursor of st, its walk now at pos; 0 (and the state freed)
    when done."""
    if done:
        _remove(st)
        return 0
    del _states[st.sid]
    st.pos = pos
    st.sid = _new_sid()
    _states[st.sid] = st     # (re-inserted: now the most recently used)
    return st.sid


cdef int scan_drop(uint64_t cur, int kind, object ks, object key) except -1:
    """Free the state of this kind, keyspace and key that cur names, if any
    (its collection went small or away: the reply ends the iteration)."""
    cdef ScanState st = scan_find(cur, kind, ks, key)
    if st is not None:
        _remove(st)
    return 0
