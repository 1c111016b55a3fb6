"""CPython 3.11/3.12's dict layout, for code that reads a dict's tables
directly on a hot path (protocol.pyx finds a pipeline's keys with it). A
module that uses it checks it at import against real dicts first."""

cdef extern from *:
    """
    #include <Python.h>
    typedef struct {
        Py_ssize_t dk_refcnt; uint8_t dk_log2_size; uint8_t dk_log2_index_bytes;
        uint8_t dk_kind; uint32_t dk_version; Py_ssize_t dk_usable;
        Py_ssize_t dk_nentries; char dk_indices[];
    } cdb_dictkeys;
    typedef struct { Py_hash_t me_hash; PyObject *me_key; PyObject *me_value; } cdb_dictentry;
    typedef struct {
        PyObject_HEAD Py_ssize_t ma_used; uint64_t ma_version_tag;
        cdb_dictkeys *ma_keys; PyObject **ma_values;
    } cdb_dictobj;
    """
    ctypedef struct cdb_dictkeys:
        pass
    ctypedef struct cdb_dictentry:
        pass
