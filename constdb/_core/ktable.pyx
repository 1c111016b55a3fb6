"""KeyTable: the keyspace's map of bytes keys to objects (Db.d, Db.expires),
about half the bytes of a dict of bytes keys (docs/internals.md "Bytes per
entry"). The layout and the C functions are in ktable.h; the hot paths of
the other modules call them (ktable.pxd: kt_get, kt_set, kt_pop, kt_next,
kt_random, the prefetches) on KeyTable.t. This module adds the Python
mapping face, for code off the hot path and tests.

Keys are bytes (a stored key is kept as its bytes, not as the object given:
iterating makes new bytes objects). Iterating a KeyTable, or its keys(),
values() or items(), raises RuntimeError if an entry is added or removed
meanwhile (as a dict does; replacing the object of a key is allowed); take
list(t) first to change it while walking."""

cimport cython
from cpython.object cimport PyObject
from libc.stdint cimport int64_t, uint64_t

import random
from collections.abc import ItemsView, KeysView, Mapping, ValuesView

cdef extern from "ktable.h":
    void kt_init(kt_table* t, uint64_t seed) noexcept
    void kt_clear(kt_table* t) noexcept
    object _steal "(PyObject*)"(PyObject* o)   # takes over a reference


cdef object _MISSING = object()


def rehash_tables(tables, double budget_ms=1.0):
    """The server cron's step (Redis's incrementallyRehash): moves the
    entries of the key tables that are resizing, in order, until
    budget_ms has passed. Returns how many are still resizing."""
    cdef int64_t end = kt_now_ns() + <int64_t>(budget_ms * 1e6), left
    cdef KeyTable t
    cdef int n = 0
    for x in tables:
        t = <KeyTable?>x
        if t.t.old == NULL:
            continue
        left = end - kt_now_ns()
        if left <= 0 or kt_rehash_ns(&t.t, left):
            n += 1
    return n


@cython.final
@cython.no_gc
cdef class KeyTable:
    """bytes key -> object (see the module's docstring)."""

    def __cinit__(self):
        kt_init(&self.t, <uint64_t>random.getrandbits(64))

    def __init__(self, src=None):
        if src is not None:
            self.update(src)

    def __dealloc__(self):
        kt_clear(&self.t)

    def __len__(self):
        return <Py_ssize_t>self.t.used

    def __bool__(self):
        return self.t.used != 0

    def __contains__(self, key):
        return kt_get(&self.t, key) != NULL

    def __getitem__(self, key):
        cdef PyObject* p = kt_get(&self.t, key)
        if p == NULL:
            raise KeyError(key)
        return <object>p

    def get(self, key, default=None):
        cdef PyObject* p = kt_get(&self.t, key)
        return default if p == NULL else <object>p

    def __setitem__(self, key, value):
        kt_set(&self.t, key, value)

    def __delitem__(self, key):
        if not kt_del(&self.t, key):
            raise KeyError(key)

    def pop(self, key, default=_MISSING):
        cdef PyObject* p = kt_pop(&self.t, key)
        if p == NULL:
            if default is _MISSING:
                raise KeyError(key)
            return default
        return _steal(p)

    def setdefault(self, key, default=None):
        cdef PyObject* p = kt_get(&self.t, key)
        if p != NULL:
            return <object>p
        kt_set(&self.t, key, default)
        return default

    def update(self, src=(), **kw):
        if kw:
            raise TypeError("KeyTable keys are bytes")
        if isinstance(src, (dict, KeyTable, Mapping)):
            for k, v in src.items():
                kt_set(&self.t, k, v)
        else:
            for k, v in src:
                kt_set(&self.t, k, v)

    def clear(self):
        kt_clear(&self.t)

    def copy(self):
        cdef KeyTable out = KeyTable()
        out.update(self)
        return out

    def _walk(self, int what):
        # 0 keys, 1 values, 2 items
        cdef Py_ssize_t pos = 0
        cdef uint64_t ver = self.t.ver
        cdef kt_entry* e
        while True:
            if self.t.ver != ver:
                raise RuntimeError("KeyTable changed size during iteration")
            e = kt_next(&self.t, &pos)
            if e == NULL:
                return
            if what == 0:
                yield kt_key(e)
            elif what == 1:
                yield <object>e.obj
            else:
                yield (kt_key(e), <object>e.obj)

    def __iter__(self):
        return self._walk(0)

    def keys(self):
        return _Keys(self)

    def values(self):
        return _Values(self)

    def items(self):
        return _Items(self)

    def random_key(self):
        """A key at random (None: empty), as kt_random draws it."""
        cdef kt_entry* e = kt_random(&self.t)
        return None if e == NULL else kt_key(e)

    def slots(self):
        """Slots allocated (0: none): while a resize drains, both arrays'."""
        return kt_slots(self)

    def rehashing(self):
        """A resize is in progress (entries left in the old array)."""
        return self.t.old != NULL

    def rehash_step(self, double budget_ms=1.0):
        """Moves a resize's entries for up to budget_ms (kt_rehash_ns);
        True: some remain."""
        return kt_rehash_ns(&self.t, <int64_t>(budget_ms * 1e6)) != 0

    def _set_step(self, Py_ssize_t n):
        """(tests) entries each insert or delete moves while resizing."""
        if n < 0:
            raise ValueError("step < 0")
        self.t.step = <size_t>n

    def nbytes(self):
        """Bytes held: the slot array and the entries' blocks."""
        cdef Py_ssize_t pos = 0, n = 0
        cdef kt_entry* e
        while True:
            e = kt_next(&self.t, &pos)
            if e == NULL:
                break
            n += kt_entry_bytes(e.klen)
        return n + 8 * kt_slots(self)

    def __eq__(self, other):
        if not isinstance(other, (dict, KeyTable, Mapping)):
            return NotImplemented
        if len(other) != <Py_ssize_t>self.t.used:
            return False
        for k, v in self._walk(2):
            if other.get(k, _MISSING) != v:
                return False
        return True

    def __ne__(self, other):
        r = self.__eq__(other)
        return r if r is NotImplemented else not r

    __hash__ = None

    def __repr__(self):
        return "KeyTable({%s})" % ", ".join("%r: %r" % kv for kv in self._walk(2))

    def __reduce__(self):
        return (KeyTable, (dict(self._walk(2)),))


class _Keys(KeysView):
    __slots__ = ()

    def __iter__(self):
        return self._mapping._walk(0)


class _Values(ValuesView):
    __slots__ = ()

    def __iter__(self):
        return self._mapping._walk(1)


class _Items(ItemsView):
    __slots__ = ()

    def __iter__(self):
        return self._mapping._walk(2)


Mapping.register(KeyTable)
