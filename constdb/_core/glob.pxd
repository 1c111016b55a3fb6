# Redis glob-style matching (KEYS, SCAN MATCH, CONFIG GET). See glob.pyx.
cdef bint stringmatch(const char* p, Py_ssize_t plen, const char* s, Py_ssize_t slen,
                      bint nocase) noexcept
cdef bint match_bytes(bytes pat, bytes s) noexcept
