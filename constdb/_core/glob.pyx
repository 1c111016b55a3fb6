"""Redis glob-style matching (KEYS, SCAN MATCH, CONFIG GET): * ? [set] [^set]
[a-z] and backslash escapes, with Redis's semantics."""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE


cdef bint stringmatch(const char* p, Py_ssize_t plen, const char* s, Py_ssize_t slen,
                      bint nocase) noexcept:
    cdef bint skip = False
    return _match(p, plen, s, slen, nocase, &skip, 0)


cdef enum:
    # Redis's bound on the recursion of '*' (CVE-2022-36021): deeper is no match
    MAX_NESTING = 1000


cdef bint _match(const char* p, Py_ssize_t plen, const char* s, Py_ssize_t slen,
                 bint nocase, bint* skip, int nesting) noexcept:
    # skip: set once the rest of the pattern after some '*' matched nowhere in
    # the rest of the subject; an earlier '*' then cannot help by taking more
    # (Redis's skipLongerMatches), which keeps "a*a*a*...b" linear per '*'
    cdef bint neg, hit
    cdef char a, b, c, x
    if nesting > MAX_NESTING:
        return False
    # slen > 0, as Redis's stringmatchlen: an empty subject matches only ""
    while plen > 0 and slen > 0:
        c = p[0]
        if c == b'*':
            while plen > 1 and p[1] == b'*':
                p += 1
                plen -= 1
            if plen == 1:
                return True
            while slen > 0:
                if _match(p + 1, plen - 1, s, slen, nocase, skip, nesting + 1):
                    return True
                if skip[0]:
                    return False
                s += 1
                slen -= 1
            skip[0] = True
            return False
        if slen == 0:
            return False
        if c == b'?':
            s += 1
            slen -= 1
        elif c == b'[':
            p += 1
            plen -= 1
            neg = plen > 0 and p[0] == b'^'
            if neg:
                p += 1
                plen -= 1
            hit = False
            while plen > 0:
                if p[0] == b'\\' and plen >= 2:
                    p += 1
                    plen -= 1
                    if p[0] == s[0]:
                        hit = True
                elif p[0] == b']':
                    break
                elif plen >= 3 and p[1] == b'-':
                    a = p[0]
                    b = p[2]
                    x = s[0]
                    if a > b:
                        a, b = b, a
                    if nocase:
                        a = _lower(a)
                        b = _lower(b)
                        x = _lower(x)
                    if a <= x <= b:
                        hit = True
                    p += 2
                    plen -= 2
                else:
                    if p[0] == s[0] or (nocase and _lower(p[0]) == _lower(s[0])):
                        hit = True
                p += 1
                plen -= 1
            if plen == 0:
                # unterminated set: Redis treats the end of pattern as ']'
                p -= 1
                plen += 1
            if neg:
                hit = not hit
            if not hit:
                return False
            s += 1
            slen -= 1
        else:
            if c == b'\\' and plen >= 2:
                p += 1
                plen -= 1
                c = p[0]
            if c != s[0] and not (nocase and _lower(c) == _lower(s[0])):
                return False
            s += 1
            slen -= 1
        p += 1
        plen -= 1
        if slen == 0:
            while plen > 0 and p[0] == b'*':
                p += 1
                plen -= 1
            break
    return plen == 0 and slen == 0


cdef inline char _lower(char c) noexcept:
    if b'A' <= c <= b'Z':
        return c + 32
    return c


cdef bint match_bytes(bytes pat, bytes s) noexcept:
    return stringmatch(PyBytes_AS_STRING(pat), PyBytes_GET_SIZE(pat),
                       PyBytes_AS_STRING(s), PyBytes_GET_SIZE(s), False)


def glob_match(bytes pat, bytes s, bint nocase=False):
    return stringmatch(PyBytes_AS_STRING(pat), PyBytes_GET_SIZE(pat),
                       PyBytes_AS_STRING(s), PyBytes_GET_SIZE(s), nocase)
