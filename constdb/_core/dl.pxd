"""Functions of a shared library Python has already loaded (OpenSSL through
`_ssl`, Lua through lupa), looked up at run time: dlopen with RTLD_NOLOAD
(never loads a second copy) and dlsym, as LookupError when missing."""

cdef extern from "<dlfcn.h>" nogil:
    void *dlopen(const char *filename, int flags)
    void *dlsym(void *handle, const char *symbol)
    char *dlerror()
    int RTLD_NOW
    int RTLD_NOLOAD


cdef inline void *dl_loaded(bytes path) except NULL:
    """The handle of the already loaded library at path."""
    cdef void *h = dlopen(path, RTLD_NOW | RTLD_NOLOAD)
    cdef char *err
    if h == NULL:
        err = dlerror()
        raise LookupError(f"dlopen of {path.decode()} failed: "
                          f"{(err if err != NULL else b'?').decode()}")
    return h


cdef inline void *dl_sym(void *handle, const char *name, str owner) except NULL:
    """name's address in handle's library (owner: that library, for the error)."""
    cdef void *found = dlsym(handle, name)
    if found == NULL:
        raise LookupError(f"{owner} has no {name.decode()}")
    return found
