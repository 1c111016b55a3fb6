"""The keyspace's key table (ktable.h: the layout and the C functions,
ktable.pyx: the class and its Python mapping face). The hot paths call the
kt_* functions on a KeyTable's `t` directly."""

cimport cython
from cpython.object cimport PyObject
from libc.stdint cimport int64_t, uint32_t, uint64_t


cdef extern from "ktable.h":
    ctypedef struct kt_entry:
        PyObject* obj
        uint32_t h
        uint32_t klen
        char key[1]

    ctypedef struct kt_table:
        size_t mask
        size_t used
        uint64_t ver
        uint64_t* old
        size_t omask
        size_t step

    Py_hash_t kt_hash(object key) except? -1
    PyObject* kt_get(const kt_table* t, object key) noexcept
    PyObject* kt_get_raw(const kt_table* t, Py_hash_t h, const char* s, Py_ssize_t n) noexcept
    int kt_set(kt_table* t, object key, object obj) except -1
    int kt_set_raw(kt_table* t, Py_hash_t h, const char* s, Py_ssize_t n, object obj) except -1
    PyObject* kt_pop(kt_table* t, object key) noexcept     # a new reference, NULL: none
    int kt_del(kt_table* t, object key) noexcept
    kt_entry* kt_next(const kt_table* t, Py_ssize_t* pos) noexcept
    kt_entry* kt_random(kt_table* t) noexcept
    int kt_rehash_ns(kt_table* t, int64_t budget_ns) noexcept
    int64_t kt_now_ns() noexcept
    object kt_key(const kt_entry* e)
    Py_hash_t kt_entry_hash(const kt_entry* e) noexcept
    Py_ssize_t kt_entry_bytes(Py_ssize_t n) noexcept
    void kt_prefetch_slot(const kt_table* t, Py_hash_t h) noexcept
    void kt_prefetch_entry(const kt_table* t, Py_hash_t h) noexcept
    void kt_prefetch_obj(const kt_table* t, Py_hash_t h) noexcept


@cython.final
cdef class KeyTable:
    cdef kt_table t


cdef inline Py_ssize_t kt_len(KeyTable k) noexcept:
    return <Py_ssize_t>k.t.used


cdef inline Py_ssize_t kt_slots(KeyTable k) noexcept:
    """Slots allocated (0: none): while a resize drains, both arrays'."""
    cdef Py_ssize_t n = 0 if k.t.mask == 0 else <Py_ssize_t>(k.t.mask + 1)
    if k.t.old != NULL:
        n += <Py_ssize_t>(k.t.omask + 1)
    return n
