# cython: language_level=3
"""TLS on the client port, between the event loop's TCP transport and a
Client: one TLSConn is both the TCP connection's protocol and its Client's
transport.

Python's `ssl` makes the SSLContext (built from the config by constdb.tls),
the SSLObject over two memory BIOs (as uvloop's TLS layer does), certificates,
verification and close_notify. The handshake (SSL_do_handshake) and the
records go through OpenSSL directly (the native path): the
SSL* and the two BIO* that the `_ssl` objects own are read from CPython's
structs, and SSL_read / SSL_write / SSL_get_error / SSL_pending and
BIO_write / BIO_read / BIO_ctrl_pending, resolved with dlsym on the libssl
`_ssl` itself loaded, are called from C: a read feeds the bytes into the
incoming BIO, decrypts every record they complete into one buffer and hands
it to the Client in one call; a reply is encrypted by one SSL_write and
leaves in one transport write. No Python call per record is left.

`native_path()` checks once, at the first TLS listener, that the pointers
behave (the objects' types and sizes, a round trip through a BIO, the SSL's
BIOs and SSL_CTX are the ones the Python objects hold, a read that wants
data) and logs the outcome; if anything is off, or CONSTDB_TLS_PYTHON=1 is
set, every connection takes the Python-level path (SSLObject.read/write and
MemoryBIO.read/write, one call each per record). Handshake failures are
logged by `constdb.tls` (its SSLObject class) and close the connection; a
handshake that has not ended after `handshake_timeout` seconds is aborted, as
uvloop does.
"""

import logging
import os
import ssl

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport (PyBytes_AS_STRING, PyBytes_CheckExact, PyBytes_FromStringAndSize,
                            PyBytes_GET_SIZE)
from cpython.object cimport PyObject
from libc.string cimport memcmp

from constdb._core.dl cimport dl_loaded, dl_sym

log = logging.getLogger("constdb")

cdef object WantRead = ssl.SSLWantReadError
cdef object WantWrite = ssl.SSLWantWriteError
cdef object ZeroReturn = ssl.SSLZeroReturnError
cdef object SSLError = ssl.SSLError
cdef object MemoryBIO = ssl.MemoryBIO
cdef object SSLSocketType = ssl._ssl._SSLSocket
cdef object SSLContextType = ssl._ssl._SSLContext

cdef enum:
    READ_SIZE = 262144  # plaintext handed to the Client in one call, at most
    IO_CHUNK = 1073741824  # SSL_write and BIO_read take an int length

FORCE_PYTHON_ENV = "CONSTDB_TLS_PYTHON"

# ---- OpenSSL, called directly ----------------------------------------------

cdef extern from *:
    """
    /* The start of CPython's _ssl objects (Modules/_ssl.c: PySSLContext,
       PySSLSocket, PySSLMemoryBIO; the same from 3.7 to 3.13). */
    typedef struct { PyObject_HEAD void *ctx; } cdb_PySSLContext;
    typedef struct { PyObject_HEAD PyObject *Socket; void *ssl; } cdb_PySSLSocket;
    typedef struct { PyObject_HEAD void *bio; int eof_written; } cdb_PySSLMemoryBIO;
    """
    ctypedef struct cdb_PySSLContext:
        void *ctx
    ctypedef struct cdb_PySSLSocket:
        void *ssl
    ctypedef struct cdb_PySSLMemoryBIO:
        void *bio

# SSL_get_error's answers (openssl/ssl.h)
cdef enum:
    SSL_ERROR_NONE = 0
    SSL_ERROR_SSL = 1
    SSL_ERROR_WANT_READ = 2
    SSL_ERROR_WANT_WRITE = 3
    SSL_ERROR_SYSCALL = 5
    SSL_ERROR_ZERO_RETURN = 6

ctypedef int (*ssl_io_f)(void *ssl, void *buf, int num) noexcept nogil
ctypedef int (*ssl_get_error_f)(const void *ssl, int ret) noexcept nogil
ctypedef int (*ssl_int_f)(const void *ssl) noexcept nogil
ctypedef void *(*ssl_ptr_f)(const void *ssl) noexcept nogil
ctypedef int (*bio_io_f)(void *bio, void *data, int dlen) noexcept nogil
ctypedef size_t (*bio_pending_f)(void *bio) noexcept nogil
ctypedef int (*ssl_hs_f)(void *ssl) noexcept nogil
ctypedef unsigned long (*err_get_f)() noexcept nogil
ctypedef const char *(*err_reason_f)(unsigned long e) noexcept nogil
ctypedef void (*err_clear_f)() noexcept nogil
ctypedef void (*err_string_f)(unsigned long e, char *buf, size_t len) noexcept nogil

cdef ssl_io_f SSL_read = NULL
cdef ssl_io_f SSL_write = NULL
cdef ssl_hs_f SSL_do_handshake = NULL
cdef ssl_get_error_f SSL_get_error = NULL
cdef ssl_int_f SSL_pending = NULL
cdef ssl_int_f SSL_is_server = NULL
cdef ssl_ptr_f SSL_get_rbio = NULL
cdef ssl_ptr_f SSL_get_wbio = NULL
cdef ssl_ptr_f SSL_get_SSL_CTX = NULL
cdef bio_io_f BIO_read = NULL
cdef bio_io_f BIO_write = NULL
cdef bio_pending_f BIO_ctrl_pending = NULL
cdef err_get_f ERR_get_error = NULL
cdef err_get_f ERR_peek_last_error = NULL
cdef err_reason_f ERR_reason_error_string = NULL
cdef err_clear_f ERR_clear_error = NULL
cdef err_string_f ERR_error_string_n = NULL

cdef char rbuf[READ_SIZE]  # what one read decrypts (one thread: the event loop's)
cdef int native_state = -1  # -1 not checked yet, 0 the Python-level path, 1 native
cdef bint attach_warned = False


cdef inline void *sym(void *handle, const char *name) except NULL:
    return dl_sym(handle, name, "the libssl of Python's ssl")


cdef int resolve() except -1:
    """The OpenSSL functions, from the libssl and libcrypto that `_ssl` was
    loaded with (dlsym on its handle searches its dependencies)."""
    global SSL_read, SSL_write, SSL_get_error, SSL_pending, SSL_is_server, SSL_get_rbio
    global SSL_get_wbio, SSL_get_SSL_CTX, BIO_read, BIO_write, BIO_ctrl_pending
    global ERR_get_error, ERR_clear_error, ERR_error_string_n, SSL_do_handshake
    global ERR_peek_last_error, ERR_reason_error_string
    path = os.fsencode(ssl._ssl.__file__)
    cdef void *h = dl_loaded(path)
    SSL_read = <ssl_io_f>sym(h, b"SSL_read")
    SSL_write = <ssl_io_f>sym(h, b"SSL_write")
    SSL_do_handshake = <ssl_hs_f>sym(h, b"SSL_do_handshake")
    SSL_get_error = <ssl_get_error_f>sym(h, b"SSL_get_error")
    SSL_pending = <ssl_int_f>sym(h, b"SSL_pending")
    SSL_is_server = <ssl_int_f>sym(h, b"SSL_is_server")
    SSL_get_rbio = <ssl_ptr_f>sym(h, b"SSL_get_rbio")
    SSL_get_wbio = <ssl_ptr_f>sym(h, b"SSL_get_wbio")
    SSL_get_SSL_CTX = <ssl_ptr_f>sym(h, b"SSL_get_SSL_CTX")
    BIO_read = <bio_io_f>sym(h, b"BIO_read")
    BIO_write = <bio_io_f>sym(h, b"BIO_write")
    BIO_ctrl_pending = <bio_pending_f>sym(h, b"BIO_ctrl_pending")
    ERR_get_error = <err_get_f>sym(h, b"ERR_get_error")
    ERR_peek_last_error = <err_get_f>sym(h, b"ERR_peek_last_error")
    ERR_reason_error_string = <err_reason_f>sym(h, b"ERR_reason_error_string")
    ERR_clear_error = <err_clear_f>sym(h, b"ERR_clear_error")
    ERR_error_string_n = <err_string_f>sym(h, b"ERR_error_string_n")
    return 0


cdef inline void *ssl_ptr(object sslsocket) noexcept:
    return (<cdb_PySSLSocket*><PyObject*>sslsocket).ssl


cdef inline void *bio_ptr(object membio) noexcept:
    return (<cdb_PySSLMemoryBIO*><PyObject*>membio).bio


cdef inline void *ctx_ptr(object context) noexcept:
    return (<cdb_PySSLContext*><PyObject*>context).ctx


cdef str check_native():
    """None if the native path can be used, else why not. The pointers are
    read only from objects of the exact `_ssl` types whose size covers the
    fields, then checked against each other and against the Python objects."""
    cdef char buf[16]
    cdef int n
    if os.environ.get(FORCE_PYTHON_ENV, "") not in ("", "0"):
        return f"{FORCE_PYTHON_ENV} is set"
    try:
        resolve()
    except LookupError as e:
        return str(e)
    for t, need in ((SSLSocketType, sizeof(cdb_PySSLSocket)),
                    (MemoryBIO, sizeof(cdb_PySSLMemoryBIO)),
                    (SSLContextType, sizeof(cdb_PySSLContext))):
        if t.__basicsize__ < need:
            return f"{t.__name__} is smaller than expected ({t.__basicsize__} bytes)"
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    inc, out = MemoryBIO(), MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_side=True)
    inner = obj._sslobj
    if type(inner) is not SSLSocketType or type(ctx) is not ssl.SSLContext \
            or not isinstance(ctx, SSLContextType):
        return "unexpected types of ssl objects"
    cdef void *s = ssl_ptr(inner)
    cdef void *bi = bio_ptr(inc)
    cdef void *bo = bio_ptr(out)
    if s == NULL or bi == NULL or bo == NULL or bi == bo:
        return "null pointers where SSL* and BIO* should be"
    # a round trip through the incoming BIO, seen from both sides
    inc.write(b"probe")
    if BIO_ctrl_pending(bi) != 5 or BIO_write(bi, b"!!", 2) != 2 or inc.pending != 7:
        return "BIO_write/BIO_ctrl_pending do not match MemoryBIO.pending"
    if BIO_read(bi, buf, 16) != 7 or memcmp(buf, b"probe!!", 7) != 0 or inc.pending != 0:
        return "BIO_read does not return what MemoryBIO.write wrote"
    # the SSL object is the one that owns those BIOs, of that SSL_CTX
    if SSL_get_rbio(s) != bi or SSL_get_wbio(s) != bo or SSL_is_server(s) != 1 \
            or SSL_get_SSL_CTX(s) != ctx_ptr(ctx):
        return "SSL_get_rbio/SSL_get_wbio/SSL_get_SSL_CTX do not match the Python objects"
    # a read before any ClientHello wants data and writes nothing
    ERR_clear_error()
    n = SSL_read(s, buf, 16)
    if n > 0 or SSL_get_error(s, n) != SSL_ERROR_WANT_READ or out.pending != 0 \
            or SSL_pending(s) != 0 or obj.pending() != 0:
        ERR_clear_error()
        return "SSL_read on a fresh server SSL did not want to read"
    return None


def native_path():
    """Whether records go through OpenSSL directly (checked once, logged)."""
    global native_state
    if native_state < 0:
        why = check_native()
        native_state = why is None
        if native_state:
            log.info("TLS records are read and written by direct calls into %s",
                     ssl.OPENSSL_VERSION)
        elif why.startswith(FORCE_PYTHON_ENV):
            log.info("TLS records take the Python-level path (%s)", why)
        else:
            log.warning("TLS records take the Python-level path, slower: %s", why)
    return bool(native_state)


cdef str ssl_error_text(int err):
    """The reason of a failed SSL_read/SSL_write (the error queue emptied)."""
    cdef char text[256]
    cdef unsigned long e = ERR_get_error()
    if e == 0:
        ERR_clear_error()
        if err == SSL_ERROR_SYSCALL:
            return "EOF occurred in violation of protocol"
        return f"SSL error {err}"
    ERR_error_string_n(e, text, sizeof(text))
    ERR_clear_error()
    return text.decode("utf-8", "replace")


cdef str handshake_error_text(int err):
    """Why a handshake failed, as Python's ssl names it (the reason of the
    last error queued, like "certificate verify failed"); the queue emptied."""
    cdef unsigned long e = ERR_peek_last_error()
    cdef const char *reason
    if e == 0:
        ERR_clear_error()
        if err == SSL_ERROR_SYSCALL:
            return "eof occurred in violation of protocol"
        return f"ssl error {err}"
    reason = ERR_reason_error_string(e)
    if reason == NULL:
        return ssl_error_text(err)  # empties the queue
    ERR_clear_error()
    return reason.decode("utf-8", "replace").lower().replace("_", " ")


cdef object log_handshake_failure = None


cdef inline bint attach_failed(str why):
    global attach_warned
    if not attach_warned:
        attach_warned = True
        log.warning("TLS: a connection takes the Python-level path: %s", why)
    return False


cdef class TLSConn:
    cdef object ctx
    cdef object factory
    cdef object loop
    cdef double handshake_timeout
    cdef object raw  # the TCP transport
    cdef object app  # the protocol above: a Client, later maybe a link
    cdef object incoming
    cdef object outgoing
    cdef object sslobj  # ssl.SSLObject (constdb.tls's class: it logs failures)
    cdef object inner  # its _ssl._SSLSocket, which owns the SSL*
    cdef void *s  # native path: the SSL* and BIO* of inner, incoming, outgoing
    cdef void *bio_in
    cdef void *bio_out
    cdef bint native
    cdef object _read  # Python-level path: bound methods of inner and the BIO
    cdef object _write
    cdef object _pending
    cdef object _out_read
    cdef object _raw_write
    cdef object timer
    cdef bint handshaking
    cdef bint closing
    cdef bint lost

    def __init__(self, ctx, factory, loop, double handshake_timeout=10.0):
        self.ctx = ctx
        self.factory = factory
        self.loop = loop
        self.handshake_timeout = handshake_timeout
        self.handshaking = True
        self.closing = False
        self.lost = False

    # ---- the TCP side (the event loop calls these) --------------------------

    def connection_made(self, transport):
        self.raw = transport
        self.incoming = MemoryBIO()
        self.outgoing = MemoryBIO()
        self.sslobj = self.ctx.wrap_bio(self.incoming, self.outgoing, server_side=True)
        self.inner = self.sslobj._sslobj
        self._raw_write = transport.write
        if native_state < 0:
            native_path()
        self.native = native_state == 1 and self._attach()
        if not self.native:
            self._read = self.inner.read
            self._write = self.inner.write
            self._pending = self.inner.pending
            self._out_read = self.outgoing.read
        self.timer = self.loop.call_later(self.handshake_timeout, self._handshake_expired)

    def data_received(self, bytes data):
        if self.closing:
            return
        if not self.native:
            self.incoming.write(data)
        elif BIO_write(self.bio_in, PyBytes_AS_STRING(data), <int>PyBytes_GET_SIZE(data)) \
                != PyBytes_GET_SIZE(data):
            ERR_clear_error()
            self._fail("reading", "BIO_write failed")
            return
        if self.handshaking and not self._handshake():
            return
        if self.native:
            self._decrypt_native()
        else:
            self._decrypt()

    def eof_received(self):
        if self.handshaking or self.app is None or self.closing:
            return False
        # the peer closed without close_notify: what it sent before still counts
        return self.app.eof_received()

    def connection_lost(self, exc):
        self.lost = True
        self.closing = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.app is not None:
            app, self.app = self.app, None
            app.connection_lost(exc)

    def pause_writing(self):
        if self.app is not None:
            self.app.pause_writing()

    def resume_writing(self):
        if self.app is not None:
            self.app.resume_writing()

    # ---- the transport the Client sees ---------------------------------------

    def write(self, data):
        cdef Py_ssize_t done = 0
        cdef Py_ssize_t n
        if self.closing:
            return
        if self.native:
            self._write_native(data)
            return
        n = len(data)
        try:
            while done < n:
                done += self._write(data if done == 0 else memoryview(data)[done:])
        except SSLError as e:
            self._fail("writing", e)
            return
        self._flush()

    def writelines(self, lines):
        self.write(b"".join(lines))

    def is_closing(self):
        return self.closing

    def close(self):
        if self.closing:
            return
        self.closing = True
        if not self.handshaking:
            try:
                self.sslobj.unwrap()  # close_notify
            except (SSLError, ValueError):
                pass
            self._flush()
        if self.raw is not None:
            self.raw.close()

    def abort(self):
        self.closing = True
        if self.raw is not None:
            self.raw.abort()

    def pause_reading(self):
        if not self.lost:
            self.raw.pause_reading()

    def resume_reading(self):
        if not self.lost:
            self.raw.resume_reading()

    def get_write_buffer_size(self):
        return self.raw.get_write_buffer_size() + self.outgoing.pending

    def set_write_buffer_limits(self, high=None, low=None):
        self.raw.set_write_buffer_limits(high, low)

    def get_extra_info(self, name, default=None):
        if name == "ssl_object":
            return self.sslobj
        if name == "peercert":
            return self.sslobj.getpeercert()
        if name == "cipher":
            return self.sslobj.cipher()
        if name == "sslcontext":
            return self.ctx
        return self.raw.get_extra_info(name, default)

    def set_protocol(self, protocol):
        self.app = protocol

    def get_protocol(self):
        return self.app

    # ---- inside ----------------------------------------------------------

    cdef bint _handshake(self) except -1:
        """Advance the handshake; True once it is done and the Client made.
        Native: SSL_do_handshake on the connection's SSL* (what
        SSLObject.do_handshake calls, without an exception object per flight);
        else through the SSLObject."""
        global log_handshake_failure
        cdef int r, err
        if self.native:
            ERR_clear_error()
            r = SSL_do_handshake(self.s)
            if r != 1:
                err = SSL_get_error(self.s, r)
                if err == SSL_ERROR_WANT_READ or err == SSL_ERROR_WANT_WRITE:
                    self._flush()
                    return False
                why = handshake_error_text(err)
                self._flush()  # the alert
                if log_handshake_failure is None:
                    from constdb.tls import log_handshake_failure
                log_handshake_failure(why, True)
                self.abort()
                return False
        else:
            try:
                self.sslobj.do_handshake()
            except WantRead:
                self._flush()
                return False
            except (SSLError, OSError, ValueError):
                # constdb.tls's SSLObject has logged why (rate-limited)
                self._flush()
                self.abort()
                return False
        self.handshaking = False
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self._flush()  # the last flight and TLS 1.3 session tickets
        self.app = self.factory()
        self.app.connection_made(self)
        return not self.closing

    cdef int _decrypt(self) except -1:
        cdef bytes chunk
        while not self.closing and self.app is not None:
            try:
                chunk = self._read(READ_SIZE)
            except WantRead:
                break
            except ZeroReturn:
                chunk = b""
            except SSLError as e:
                self._fail("reading", e)
                return 0
            if not chunk:  # close_notify from the client
                self._flush()
                if not self.app.eof_received():
                    self.close()
                return 0
            self.app.data_received(chunk)
            if not self.incoming.pending and not self._pending():
                break
        self._flush()  # what reading produced (alerts, key updates)
        return 0

    cdef int _flush(self) except -1:
        cdef size_t n
        cdef int got
        cdef bytes out
        if self.lost:
            return 0
        if not self.native:
            if self.outgoing.pending:
                self._raw_write(self._out_read())
            return 0
        n = BIO_ctrl_pending(self.bio_out)
        while n:
            if n > IO_CHUNK:
                n = IO_CHUNK
            out = PyBytes_FromStringAndSize(NULL, <Py_ssize_t>n)
            got = BIO_read(self.bio_out, PyBytes_AS_STRING(out), <int>n)
            if got <= 0:  # cannot happen to a memory BIO with data
                ERR_clear_error()
                break
            self._raw_write(out if <size_t>got == n else out[:got])
            n = BIO_ctrl_pending(self.bio_out)
        return 0

    # ---- the native path ---------------------------------------------------

    cdef bint _attach(self) except -1:
        """Take the SSL* and BIO* of this connection's `_ssl` objects, after
        checking they are of the expected types and belong together."""
        if type(self.inner) is not SSLSocketType or type(self.incoming) is not MemoryBIO \
                or type(self.outgoing) is not MemoryBIO:
            return attach_failed("unexpected types of ssl objects")
        self.s = ssl_ptr(self.inner)
        self.bio_in = bio_ptr(self.incoming)
        self.bio_out = bio_ptr(self.outgoing)
        if self.s == NULL or SSL_get_rbio(self.s) != self.bio_in \
                or SSL_get_wbio(self.s) != self.bio_out:
            return attach_failed("the SSL object's BIOs are not the MemoryBIOs")
        return True

    cdef int _decrypt_native(self) except -1:
        """Decrypt every record the incoming BIO holds into rbuf and hand the
        plaintext to the Client in one call (READ_SIZE at most at a time)."""
        cdef int n
        cdef int err = SSL_ERROR_NONE
        cdef Py_ssize_t have
        cdef bint more = True
        while more and not self.closing and self.app is not None:
            ERR_clear_error()  # SSL_get_error reads the thread's error queue
            have = 0
            while have < READ_SIZE:
                n = SSL_read(self.s, rbuf + have, <int>(READ_SIZE - have))
                if n <= 0:
                    err = SSL_get_error(self.s, n)
                    more = False
                    break
                have += n
                if BIO_ctrl_pending(self.bio_in) == 0 and SSL_pending(self.s) == 0:
                    more = False
                    break
            if have:
                self.app.data_received(PyBytes_FromStringAndSize(rbuf, have))
        if err == SSL_ERROR_ZERO_RETURN:  # close_notify from the client
            ERR_clear_error()
            self._flush()
            if self.app is not None and not self.closing and not self.app.eof_received():
                self.close()
            return 0
        if err != SSL_ERROR_NONE and err != SSL_ERROR_WANT_READ:
            self._fail("reading", ssl_error_text(err))
            return 0
        self._flush()  # what reading produced (alerts, key updates)
        return 0

    cdef int _write_native(self, object data) except -1:
        """One reply: SSL_write of all of it (records into the outgoing BIO),
        then one transport write."""
        cdef const char *p
        cdef Py_ssize_t n, done = 0
        cdef int r, chunk
        cdef Py_buffer view
        cdef bint view_held = False
        if PyBytes_CheckExact(data):
            p = PyBytes_AS_STRING(data)
            n = PyBytes_GET_SIZE(data)
        else:
            PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
            view_held = True
            p = <const char *>view.buf
            n = view.len
        try:
            ERR_clear_error()
            while done < n:
                chunk = <int>(n - done if n - done < IO_CHUNK else IO_CHUNK)
                r = SSL_write(self.s, <void *>(p + done), chunk)
                if r <= 0:
                    self._fail("writing", ssl_error_text(SSL_get_error(self.s, r)))
                    return 0
                done += r
        finally:
            if view_held:
                PyBuffer_Release(&view)
        self._flush()
        return 0

    # ---- shared by both paths ---------------------------------------------

    cdef int _fail(self, str what, object e) except -1:
        log.info("TLS connection closed: error %s: %s", what, e)
        self.abort()
        return 0

    def _handshake_expired(self):
        self.timer = None
        if self.handshaking and not self.closing:
            log.info("TLS handshake timed out after %.0f s", self.handshake_timeout)
            self.abort()
