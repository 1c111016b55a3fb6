# Bit overrides of a string (docs/crdt.md section 3.1, "Bits"): SETBIT and
# BITFIELD write single bits, each an LWW override on top of the string's
# register, so that bits written concurrently on different nodes all survive.
# See bitval.pyx.
cimport cython
from libc.stdint cimport uint8_t, uint64_t

from constdb._core.codec cimport Reader, Writer
from constdb._core.keyspace cimport Keyspace
from constdb._core.merge cimport Ctx
from constdb._core.objects cimport StrObj

cdef enum:
    BITS_MAX_RUN = 64     # bits in one run of an OP_BITS record
    # a peer's bit runs start below 2^BITS_LIMIT_SHIFT: 512 MB, Redis's
    # default proto-max-bulk-len (checked before allocating)
    BITS_LIMIT_SHIFT = 32


@cython.final
@cython.no_gc
cdef class BOv:
    # one bit override: the bit's value, written at ts (uuid, node)
    cdef public uint64_t uuid
    cdef public uint64_t node
    cdef public uint8_t v


@cython.final
@cython.no_gc
cdef class BitVal:
    # a string register with pending bit overrides (StrObj.val): buf is the
    # visible bytes (the register's value with every override applied), none
    # says the register itself holds no value, ov maps bit -> BOv (never empty;
    # each newer than the register). A string without pending overrides holds
    # its value as bytes, or as a bytearray once a bit command wrote it.
    cdef public bytearray buf
    cdef public bint none
    cdef public dict ov


cdef const char* reg_raw(object v, Py_ssize_t* n) noexcept
cdef bytes reg_bytes(object v)
cdef object reg_rebase(BitVal cur, object val, uint64_t u, uint64_t n)
cdef int reg_last_ts(object v, uint64_t* u, uint64_t* n) noexcept

# the rule of an OP_BITS effect (local and remote): runs of bits written at (u, n)
cdef int bits_on(Keyspace ks, object key, StrObj o, const uint64_t* starts,
                 const uint8_t* nbits, const uint64_t* vals, Py_ssize_t nruns,
                 uint64_t u, uint64_t n, bint fold, bint shown) except -1
cdef int emit_bits(Keyspace ks, object key, StrObj o, bint shown, const uint64_t* starts,
                   const uint8_t* nbits, const uint64_t* vals, Py_ssize_t nruns) except -1
cdef int bits_apply(Keyspace ks, object key, StrObj o, uint64_t origin, uint64_t u,
                    Reader r) except -1
cdef int bits_check(Reader r) except -1

# snapshots, merge, GC, DESC of a register value that may hold overrides
cdef int bits_encode(Writer w, BitVal b) except -1
cdef BitVal bits_decode(Reader r)
cdef object bits_merge(object wval, dict a_ov, dict b_ov, uint64_t wu, uint64_t wn)
cdef object bits_filter(BitVal b, Ctx other)
cdef Py_ssize_t bits_gc(StrObj o, uint64_t stable) except -1
cdef list bits_describe(BitVal b)
