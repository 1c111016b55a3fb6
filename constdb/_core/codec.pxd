# Growable byte buffers: the binary record/snapshot writer, its reader, and the
# RESP reply writer that every command handler writes into.
from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t
from libc.string cimport memcpy


cdef class Writer:
    cdef char* buf
    cdef Py_ssize_t len
    cdef Py_ssize_t cap

    cdef int _grow(self, Py_ssize_t need) except -1
    cdef int put_raw(self, const char* p, Py_ssize_t n) except -1
    cdef int put_u8(self, uint8_t v) except -1
    cdef int put_u32(self, uint32_t v) except -1
    cdef int put_u64(self, uint64_t v) except -1
    cdef int put_i64(self, int64_t v) except -1
    cdef int put_varint(self, uint64_t v) except -1
    cdef int put_bytes(self, bytes b) except -1
    cdef int put_f64(self, double v) except -1
    cdef int patch_u32(self, Py_ssize_t at, uint32_t v) except -1
    cdef bytes take(self)
    cdef bytes getvalue(self)
    cdef void clear(self)


cdef class Reader:
    cdef bytes data
    cdef const char* p
    cdef Py_ssize_t pos
    cdef Py_ssize_t end

    cdef int need(self, Py_ssize_t n) except -1
    cdef uint8_t u8(self) except? 0xff
    cdef uint32_t u32(self) except? 0xffffffff
    cdef uint64_t u64(self) except? 0xffffffffffffffff
    cdef int64_t i64(self) except? -1
    cdef double f64(self) except? -1.0
    cdef uint64_t varint(self) except? 0xffffffffffffffff
    cdef bytes bytes_(self)
    cdef bint at_end(self)


cdef class WBuf(Writer):
    cdef public bint resp3          # RESP3 after HELLO 3: nulls, maps, sets, doubles
    cdef int status(self, const char* s, Py_ssize_t n) except -1
    cdef int ok(self) except -1
    cdef int error(self, const char* s, Py_ssize_t n) except -1
    cdef int error_str(self, str s) except -1
    cdef int integer(self, int64_t v) except -1
    cdef int bulk(self, bytes b) except -1
    cdef int bulk_raw(self, const char* p, Py_ssize_t n) except -1
    cdef int bulk_int(self, int64_t v) except -1
    cdef int nil(self) except -1
    cdef int nil_array(self) except -1
    cdef int array(self, Py_ssize_t n) except -1
    cdef int header(self, char t, int64_t n) except -1
    cdef int put_ascii_int(self, int64_t v) except -1
    cdef int pyvalue(self, object v) except -1
    cdef int map(self, Py_ssize_t npairs) except -1
    cdef int set_(self, Py_ssize_t n) except -1
    cdef int double(self, double v) except -1
    cdef int verbatim(self, bytes b) except -1
    cdef int boolean(self, bint v) except -1


cdef inline Py_ssize_t varint_len(uint64_t v) noexcept:
    cdef Py_ssize_t n = 1
    while v >= 0x80:
        v >>= 7
        n += 1
    return n


cdef inline char* put_varint_at(char* p, uint64_t v) noexcept:
    """Writer.put_varint into memory reserved by the caller; returns the end."""
    while v >= 0x80:
        p[0] = <char>((v & 0x7F) | 0x80)
        p += 1
        v >>= 7
    p[0] = <char>v
    return p + 1


cdef inline char* put_u64_at(char* p, uint64_t v) noexcept:
    memcpy(p, &v, 8)
    return p + 8


cdef Py_ssize_t fmt_int(char* out, int64_t v) noexcept
cdef Py_ssize_t fmt_g17(char* out, double v) noexcept
cdef bint parse_i64(const char* p, Py_ssize_t n, int64_t* out) noexcept
cdef bint parse_bytes_i64(bytes b, int64_t* out) noexcept
cdef bint string2ld(const char* p, Py_ssize_t n, long double* out) noexcept
cdef bytes ld2string_human(long double v)
