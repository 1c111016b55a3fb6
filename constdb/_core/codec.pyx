# cython: freethreading_compatible = False
"""Byte buffers used on the hot path.

`Writer` is a growable `char*` buffer (asyncpg's WriteBuffer is the model):
integers are written as raw little-endian or as ASCII without `%`-formatting.
`WBuf` adds the RESP2 reply encoders. `Reader` decodes what `Writer` wrote.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t
from libc.math cimport signbit
from libc.stdio cimport snprintf
from libc cimport errno as cerrno
from libc.string cimport memchr, memcpy


class Status(str):
    """A RESP simple-string reply (`+OK`) returned by a Python command handler."""

    __slots__ = ()


class RespError(Exception):
    """A RESP error reply; the text includes its code (`ERR ...`, `WRONGTYPE ...`)."""


cdef const char* _DIGITS2 = (b"00010203040506070809101112131415161718192021222324"
                             b"25262728293031323334353637383940414243444546474849"
                             b"50515253545556575859606162636465666768697071727374"
                             b"75767778798081828384858687888990919293949596979899")


cdef Py_ssize_t fmt_int(char* out, int64_t v) noexcept:
    """Write v as ASCII into out (at least 21 bytes); return the length.
    (Two digits per step, from a table, into their final place.)"""
    cdef Py_ssize_t n = 1, i = 0
    cdef uint64_t u, t
    cdef char* p
    if v < 0:
        u = <uint64_t>(-(v + 1)) + 1
        out[0] = b'-'
        i = 1
    else:
        u = <uint64_t>v
    t = u
    while t >= 10:
        t //= 10
        n += 1
    p = out + i + n
    while u >= 100:
        t = (u % 100) * 2
        u //= 100
        p -= 2
        p[0] = _DIGITS2[t]
        p[1] = _DIGITS2[t + 1]
    if u >= 10:
        t = u * 2
        p[-2] = _DIGITS2[t]
        p[-1] = _DIGITS2[t + 1]
    else:
        p[-1] = <char>(48 + u)
    return i + n


cdef Py_ssize_t fmt_g17(char* out, double v) noexcept:
    """snprintf(out, 40, "%.17g", v) for a finite v (out: 40 bytes or more).
    An integral value below 2**53 in magnitude prints as its digits, which
    is what %.17g prints for it, without the printf machinery (sorted-set
    scores are mostly such)."""
    if -9007199254740992.0 < v < 9007199254740992.0 and v == <double>(<int64_t>v):
        if v == 0 and signbit(v):
            out[0] = b'-'
            out[1] = b'0'
            return 2
        return fmt_int(out, <int64_t>v)
    return snprintf(out, 40, "%.17g", v)


cdef bint parse_i64(const char* p, Py_ssize_t n, int64_t* out) noexcept:
    """Strict Redis integer parse (string2ll): no spaces, no '+', no leading zeros."""
    cdef Py_ssize_t i = 0
    cdef uint64_t v = 0, d
    cdef bint neg = False
    if n <= 0 or n > 20:
        return False
    if n == 1 and p[0] == b'0':
        out[0] = 0
        return True
    if p[0] == b'-':
        neg = True
        i = 1
        if n == 1:
            return False
    if p[i] < b'1' or p[i] > b'9':
        return False
    while i < n:
        if p[i] < b'0' or p[i] > b'9':
            return False
        d = <uint64_t>(p[i] - 48)
        if v > (<uint64_t>0xFFFFFFFFFFFFFFFF - d) // 10:
            return False
        v = v * 10 + d
        i += 1
    if neg:
        if v > (<uint64_t>1 << 63):
            return False
        out[0] = <int64_t>(0 - v)
    else:
        if v > <uint64_t>0x7FFFFFFFFFFFFFFF:
            return False
        out[0] = <int64_t>v
    return True


cdef bint parse_bytes_i64(bytes b, int64_t* out) noexcept:
    return parse_i64(PyBytes_AS_STRING(b), PyBytes_GET_SIZE(b), out)


cdef class Writer:
    def __cinit__(self):
        self.cap = 256
        self.len = 0
        self.buf = <char*>PyMem_Malloc(self.cap)
        if self.buf == NULL:
            raise MemoryError()

    def __dealloc__(self):
        if self.buf != NULL:
            PyMem_Free(self.buf)
            self.buf = NULL

    cdef int _grow(self, Py_ssize_t need) except -1:
        cdef Py_ssize_t cap = self.cap * 2
        cdef char* nb
        while cap < self.len + need:
            cap *= 2
        nb = <char*>PyMem_Realloc(self.buf, cap)
        if nb == NULL:
            raise MemoryError()
        self.buf = nb
        self.cap = cap
        return 0

    cdef int put_raw(self, const char* p, Py_ssize_t n) except -1:
        if self.len + n > self.cap:
            self._grow(n)
        memcpy(self.buf + self.len, p, n)
        self.len += n
        return 0

    cdef int put_u8(self, uint8_t v) except -1:
        if self.len + 1 > self.cap:
            self._grow(1)
        self.buf[self.len] = <char>v
        self.len += 1
        return 0

    cdef int put_u32(self, uint32_t v) except -1:
        # little-endian on every platform CPython supports us on (x86_64, aarch64)
        if self.len + 4 > self.cap:
            self._grow(4)
        memcpy(self.buf + self.len, &v, 4)
        self.len += 4
        return 0

    cdef int put_u64(self, uint64_t v) except -1:
        if self.len + 8 > self.cap:
            self._grow(8)
        memcpy(self.buf + self.len, &v, 8)
        self.len += 8
        return 0

    cdef int put_i64(self, int64_t v) except -1:
        if self.len + 8 > self.cap:
            self._grow(8)
        memcpy(self.buf + self.len, &v, 8)
        self.len += 8
        return 0

    cdef int put_f64(self, double v) except -1:
        if self.len + 8 > self.cap:
            self._grow(8)
        memcpy(self.buf + self.len, &v, 8)
        self.len += 8
        return 0

    cdef int put_varint(self, uint64_t v) except -1:
        if self.len + 10 > self.cap:
            self._grow(10)
        while v >= 0x80:
            self.buf[self.len] = <char>((v & 0x7F) | 0x80)
            self.len += 1
            v >>= 7
        self.buf[self.len] = <char>v
        self.len += 1
        return 0

    cdef int put_bytes(self, bytes b) except -1:
        cdef Py_ssize_t n = PyBytes_GET_SIZE(b)
        self.put_varint(<uint64_t>n)
        self.put_raw(PyBytes_AS_STRING(b), n)
        return 0

    cdef int patch_u32(self, Py_ssize_t at, uint32_t v) except -1:
        memcpy(self.buf + at, &v, 4)
        return 0

    cdef bytes take(self):
        cdef bytes out = PyBytes_FromStringAndSize(self.buf, self.len)
        self.len = 0
        return out

    cdef bytes getvalue(self):
        return PyBytes_FromStringAndSize(self.buf, self.len)

    cdef void clear(self):
        self.len = 0

    # Python-visible helpers (snapshot code and tests)
    def __len__(self):
        return self.len

    def value(self):
        return self.getvalue()

    def reset(self):
        self.len = 0
        if self.cap > 1 << 20:
            PyMem_Free(self.buf)
            self.cap = 256
            self.buf = <char*>PyMem_Malloc(self.cap)
            if self.buf == NULL:
                raise MemoryError()

    def write_u8(self, int v):
        self.put_u8(<uint8_t>v)

    def write_u32(self, uint32_t v):
        self.put_u32(v)

    def write_u64(self, uint64_t v):
        self.put_u64(v)

    def write_i64(self, int64_t v):
        self.put_i64(v)

    def write_f64(self, double v):
        self.put_f64(v)

    def write_varint(self, uint64_t v):
        self.put_varint(v)

    def write_bytes(self, bytes b):
        self.put_bytes(b)

    def write_raw(self, bytes b):
        self.put_raw(PyBytes_AS_STRING(b), PyBytes_GET_SIZE(b))


class CodecError(ValueError):
    """Raised when a record or snapshot is truncated or malformed."""


cdef class Reader:
    def __init__(self, bytes data, Py_ssize_t start=0, Py_ssize_t end=-1):
        self.data = data
        self.p = PyBytes_AS_STRING(data)
        self.pos = start
        self.end = PyBytes_GET_SIZE(data) if end < 0 else end

    cdef int need(self, Py_ssize_t n) except -1:
        if n < 0 or self.pos + n > self.end:
            raise CodecError("truncated data")
        return 0

    cdef uint8_t u8(self) except? 0xff:
        self.need(1)
        self.pos += 1
        return <uint8_t>self.p[self.pos - 1]

    cdef uint32_t u32(self) except? 0xffffffff:
        cdef uint32_t v
        self.need(4)
        memcpy(&v, self.p + self.pos, 4)
        self.pos += 4
        return v

    cdef uint64_t u64(self) except? 0xffffffffffffffff:
        cdef uint64_t v
        self.need(8)
        memcpy(&v, self.p + self.pos, 8)
        self.pos += 8
        return v

    cdef int64_t i64(self) except? -1:
        cdef int64_t v
        self.need(8)
        memcpy(&v, self.p + self.pos, 8)
        self.pos += 8
        return v

    cdef double f64(self) except? -1.0:
        cdef double v
        self.need(8)
        memcpy(&v, self.p + self.pos, 8)
        self.pos += 8
        return v

    cdef uint64_t varint(self) except? 0xffffffffffffffff:
        cdef uint64_t v = 0
        cdef int shift = 0
        cdef uint8_t c
        while True:
            self.need(1)
            c = <uint8_t>self.p[self.pos]
            self.pos += 1
            v |= (<uint64_t>(c & 0x7F)) << shift
            if c < 0x80:
                return v
            shift += 7
            if shift > 63:
                raise CodecError("bad varint")

    cdef bytes bytes_(self):
        cdef uint64_t n = self.varint()
        self.need(<Py_ssize_t>n)
        self.pos += <Py_ssize_t>n
        return PyBytes_FromStringAndSize(self.p + self.pos - <Py_ssize_t>n, <Py_ssize_t>n)

    cdef bint at_end(self):
        return self.pos >= self.end

    # Python-visible mirrors
    def read_u8(self):
        return self.u8()

    def read_u32(self):
        return self.u32()

    def read_u64(self):
        return self.u64()

    def read_i64(self):
        return self.i64()

    def read_f64(self):
        return self.f64()

    def read_varint(self):
        return self.varint()

    def read_bytes(self):
        return self.bytes_()

    def read_raw(self, Py_ssize_t n):
        self.need(n)
        self.pos += n
        return PyBytes_FromStringAndSize(self.p + self.pos - n, n)

    @property
    def position(self):
        return self.pos

    @property
    def remaining(self):
        return self.end - self.pos


cdef bytes _CRLF = b"\r\n"


cdef class WBuf(Writer):
    """RESP2 reply writer. One per client; flushed with one transport.write per loop turn."""

    cdef int header(self, char t, int64_t n) except -1:
        if self.len + 24 > self.cap:
            self._grow(24)
        self.buf[self.len] = t
        self.len += 1
        self.len += fmt_int(self.buf + self.len, n)
        self.buf[self.len] = b'\r'
        self.buf[self.len + 1] = b'\n'
        self.len += 2
        return 0

    cdef int status(self, const char* s, Py_ssize_t n) except -1:
        if self.len + n + 3 > self.cap:
            self._grow(n + 3)
        self.buf[self.len] = b'+'
        memcpy(self.buf + self.len + 1, s, n)
        self.len += n + 1
        self.buf[self.len] = b'\r'
        self.buf[self.len + 1] = b'\n'
        self.len += 2
        return 0

    cdef int ok(self) except -1:
        return self.put_raw(b"+OK\r\n", 5)

    cdef int error(self, const char* s, Py_ssize_t n) except -1:
        if self.len + n + 3 > self.cap:
            self._grow(n + 3)
        self.buf[self.len] = b'-'
        memcpy(self.buf + self.len + 1, s, n)
        self.len += n + 1
        self.buf[self.len] = b'\r'
        self.buf[self.len + 1] = b'\n'
        self.len += 2
        return 0

    cdef int error_str(self, str s) except -1:
        cdef bytes b = s.replace("\r", " ").replace("\n", " ").encode("utf-8", "replace")
        return self.error(PyBytes_AS_STRING(b), PyBytes_GET_SIZE(b))

    cdef int integer(self, int64_t v) except -1:
        return self.header(b':', v)

    cdef int put_ascii_int(self, int64_t v) except -1:
        if self.len + 21 > self.cap:
            self._grow(21)
        self.len += fmt_int(self.buf + self.len, v)
        return 0

    cdef int bulk_raw(self, const char* p, Py_ssize_t n) except -1:
        if self.len + n + 24 > self.cap:
            self._grow(n + 24)
        self.buf[self.len] = b'$'
        self.len += 1
        self.len += fmt_int(self.buf + self.len, n)
        self.buf[self.len] = b'\r'
        self.buf[self.len + 1] = b'\n'
        self.len += 2
        memcpy(self.buf + self.len, p, n)
        self.len += n
        self.buf[self.len] = b'\r'
        self.buf[self.len + 1] = b'\n'
        self.len += 2
        return 0

    cdef int bulk(self, bytes b) except -1:
        return self.bulk_raw(PyBytes_AS_STRING(b), PyBytes_GET_SIZE(b))

    cdef int bulk_int(self, int64_t v) except -1:
        cdef char tmp[24]
        cdef Py_ssize_t n = fmt_int(tmp, v)
        return self.bulk_raw(tmp, n)

    cdef int nil(self) except -1:
        if self.resp3:
            return self.put_raw(b"_\r\n", 3)
        return self.put_raw(b"$-1\r\n", 5)

    cdef int nil_array(self) except -1:
        if self.resp3:
            return self.put_raw(b"_\r\n", 3)
        return self.put_raw(b"*-1\r\n", 5)

    cdef int map(self, Py_ssize_t npairs) except -1:
        if self.resp3:
            return self.header(b'%', npairs)
        return self.header(b'*', 2 * npairs)

    cdef int set_(self, Py_ssize_t n) except -1:
        return self.header(b'~' if self.resp3 else b'*', n)

    cdef int double(self, double v) except -1:
        cdef bytes b = format_double(v)
        if self.resp3:
            self.put_u8(b',')
            self.put_raw(PyBytes_AS_STRING(b), PyBytes_GET_SIZE(b))
            return self.put_raw(b"\r\n", 2)
        return self.bulk(b)

    cdef int verbatim(self, bytes b) except -1:
        if self.resp3:
            self.header(b'=', PyBytes_GET_SIZE(b) + 4)
            self.put_raw(b"txt:", 4)
            self.put_raw(PyBytes_AS_STRING(b), PyBytes_GET_SIZE(b))
            return self.put_raw(b"\r\n", 2)
        return self.bulk(b)

    cdef int boolean(self, bint v) except -1:
        if self.resp3:
            return self.put_raw(b"#t\r\n" if v else b"#f\r\n", 4)
        return self.integer(1 if v else 0)

    cdef int array(self, Py_ssize_t n) except -1:
        return self.header(b'*', n)

    cdef int pyvalue(self, object v) except -1:
        """Encode a Python handler's return value (admin commands only)."""
        cdef bytes b
        if v is None:
            return self.nil()
        if isinstance(v, bytes):
            if isinstance(v, Verbatim):  # a bytes subclass: RESP3 `=`
                return self.verbatim(bytes(v))
            return self.bulk(<bytes>v)
        if isinstance(v, Status):
            b = (<str>v).encode()
            return self.status(PyBytes_AS_STRING(b), PyBytes_GET_SIZE(b))
        if isinstance(v, str):
            return self.bulk((<str>v).encode())
        if isinstance(v, bool):
            return self.integer(1 if v else 0)
        if isinstance(v, int):
            return self.integer(v)
        if isinstance(v, float):
            return self.double(v)
        if isinstance(v, Verbatim):
            return self.verbatim(bytes(v))
        if isinstance(v, RespError):
            return self.error_str(str(v))
        if isinstance(v, OrderedSet):  # a list subclass: RESP3 `~`, in its order
            self.set_(len(v))
            for x in v:
                self.pyvalue(x)
            return 0
        if isinstance(v, (list, tuple)):
            self.array(len(v))
            for x in v:
                self.pyvalue(x)
            return 0
        if isinstance(v, (set, frozenset)):
            self.set_(len(v))
            for x in v:
                self.pyvalue(x)
            return 0
        if isinstance(v, dict):
            self.map(len(v))
            for k, x in v.items():
                self.pyvalue(k)
                self.pyvalue(x)
            return 0
        if isinstance(v, NilArray):
            return self.nil_array()
        raise TypeError("cannot encode reply of type %s" % type(v).__name__)

    # Python-visible (admin handlers write directly when they need to stream)
    def write_value(self, v):
        self.pyvalue(v)

    def write_status(self, str s):
        b = s.encode()
        self.status(PyBytes_AS_STRING(b), PyBytes_GET_SIZE(b))

    def write_error(self, str s):
        self.error_str(s)


class OrderedSet(list):
    """A set reply whose members go out in this order (RESP3 `~`, an array in RESP2)."""

    __slots__ = ()


class Verbatim(bytes):
    """A verbatim text reply (RESP3 `=`, a bulk string in RESP2): INFO, CLIENT LIST."""

    __slots__ = ()


def format_double(double v):
    """Redis's double formatting: %.17g, 'inf'/'-inf', integers without '.0'."""
    if v != v:
        return b"nan"
    if v == float("inf"):
        return b"inf"
    if v == float("-inf"):
        return b"-inf"
    cdef char buf[40]
    return PyBytes_FromStringAndSize(buf, fmt_g17(buf, v))


class NilArray:
    """The RESP2 null array (`*-1`), e.g. EXEC aborted by WATCH."""

    __slots__ = ()


NIL_ARRAY = NilArray()


cdef extern from "<stdlib.h>":
    long double strtold(const char* s, char** end)


cdef extern from "<math.h>":
    # type-generic macros: they take a long double as it is
    bint ld_isnan "isnan"(long double v)
    long double HUGE_VALL


# ---- long doubles as Redis reads and writes them (INCRBYFLOAT, HINCRBYFLOAT) ----

cdef bint string2ld(const char* p, Py_ssize_t n, long double* out) noexcept:
    """Redis's string2ld: strtold of the whole string (an embedded NUL ends
    it early: invalid), no leading space, no NaN, no overflow to infinity and
    no underflow to zero."""
    cdef char* end
    cdef long double v
    if n == 0 or n >= 5 * 1024:
        return False
    cerrno.errno = 0
    v = strtold(p, &end)
    if p[0] == b' ' or b'\t' <= p[0] <= b'\r' or end != p + n or ld_isnan(v):
        return False
    if cerrno.errno == cerrno.ERANGE and (v == HUGE_VALL or v == -HUGE_VALL or v == 0):
        return False
    if cerrno.errno == cerrno.EINVAL:
        return False
    out[0] = v
    return True


cdef bytes ld2string_human(long double v):
    """ld2string(LD_STR_HUMAN): %.17Lf without trailing zeroes, "-0" as "0"."""
    cdef char buf[5 * 1024]
    cdef Py_ssize_t n, i
    n = snprintf(buf, sizeof(buf), "%.17Lf", v)
    if n + 1 > <Py_ssize_t>sizeof(buf):
        return b""
    if memchr(buf, b'.', n) != NULL:
        i = n - 1
        while buf[i] == b'0':
            i -= 1
            n -= 1
        if buf[i] == b'.':
            n -= 1
    if n == 2 and buf[0] == b'-' and buf[1] == b'0':
        return b"0"
    return buf[:n]
