# cython: language_level=3
"""TLS on the client port, between the event loop's TCP transport and a
Client: one TLSConn is both the TCP connection's protocol and its Client's
transport.

It drives Python's `ssl` through memory BIOs as uvloop's TLS layer does, but
with the few calls a request needs: a read feeds the bytes in, decrypts what
they complete with one `read` of the SSL object per record (no exception
when the input is used up: the BIO says so), and hands the plaintext to the
Client; a reply is encrypted with one `write` and leaves in one transport
write. Handshake failures are logged by `constdb.tls` (its SSLObject class)
and close the connection; a handshake that has not ended after
`handshake_timeout` seconds is aborted, as uvloop does.
"""

import logging
import ssl

log = logging.getLogger("constdb")

cdef object WantRead = ssl.SSLWantReadError
cdef object WantWrite = ssl.SSLWantWriteError
cdef object ZeroReturn = ssl.SSLZeroReturnError
cdef object SSLError = ssl.SSLError
cdef object MemoryBIO = ssl.MemoryBIO

cdef Py_ssize_t READ_SIZE = 262144


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
    cdef object _read  # bound methods: of its _ssl object, the BIO, the transport
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
        inner = self.sslobj._sslobj
        self._read = inner.read
        self._write = inner.write
        self._pending = inner.pending
        self._out_read = self.outgoing.read
        self._raw_write = transport.write
        self.timer = self.loop.call_later(self.handshake_timeout, self._handshake_expired)

    def data_received(self, bytes data):
        if self.closing:
            return
        self.incoming.write(data)
        if self.handshaking and not self._handshake():
            return
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
        cdef Py_ssize_t n = len(data)
        if self.closing:
            return
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
        """Advance the handshake; True once it is done and the Client made."""
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
        if self.outgoing.pending and not self.lost:
            self._raw_write(self._out_read())
        return 0

    cdef int _fail(self, str what, object e) except -1:
        log.info("TLS connection closed: error %s: %s", what, e)
        self.abort()
        return 0

    def _handshake_expired(self):
        self.timer = None
        if self.handshaking and not self.closing:
            log.info("TLS handshake timed out after %.0f s", self.handshake_timeout)
            self.abort()
