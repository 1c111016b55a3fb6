"""The node's own outgoing effect log (docs/replication.md section 4).

Records are appended in uuid order into a growable buffer that is sealed into an
immutable `bytes` chunk every `chunk_size` bytes. Links read whole records from
any position still covered; the oldest chunks are dropped to keep the total
under `limit` bytes. A record is `u32 len | u8 op | u64 uuid | payload`, `len`
counting from `op`; bit 7 of `op` marks "more records of this group follow", so
that a command's or a transaction's effects are never split across frames.
"""

from collections import deque

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t
from libc.string cimport memcpy

from constdb._core.codec cimport Writer, put_varint_at, varint_len
from constdb._core.ops cimport OP_SELECT


cdef inline uint32_t _rd_u32(const char* p) noexcept:
    cdef uint32_t v
    memcpy(&v, p, 4)
    return v


cdef inline uint64_t _rd_u64(const char* p) noexcept:
    cdef uint64_t v
    memcpy(&v, p, 8)
    return v


def iter_records(bytes data):
    """Yield (op, uuid, start, end) for each record in data (tests, tools)."""
    cdef const char* p = PyBytes_AS_STRING(data)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(data), pos = 0
    cdef uint32_t ln
    while pos + REC_HDR <= n:
        ln = _rd_u32(p + pos)
        yield (<uint8_t>p[pos + 4], _rd_u64(p + pos + 5), pos, pos + 4 + ln)
        pos += 4 + ln


cdef class Backlog:
    def __init__(self, Py_ssize_t limit=100 * 1024 * 1024, Py_ssize_t chunk_size=64 * 1024):
        self.cur = Writer()
        self.chunks = deque()
        self.limit = limit
        self.chunk_size = chunk_size
        self.sealed_bytes = 0
        self.last_uuid = 0
        self.dropped_upto = 0
        self.nrec_total = 0
        self.nrec_dropped = 0
        self.cur_first = 0
        self.cur_nrec = 0
        self.rec_start = -1
        self.prev_in_group = -1
        self.grouping = False
        self.dirty = False
        self.base_off = 0
        self.cur_off = 0
        self.done_off = 0
        self.pin_off = -1
        self.want_db = 0
        self.at_db = 0

    cdef int _mark(self, uint64_t uuid) except -1:
        """The OP_SELECT marker before a record of another db than the
        stream is in: same uuid as that record, "more follows" set."""
        cdef Writer w = self.cur
        cdef Py_ssize_t start = w.len
        w.put_u32(0)
        w.put_u8(OP_SELECT | OP_CONT)
        w.put_u64(uuid)
        w.put_varint(<uint64_t>self.want_db)
        w.patch_u32(start, <uint32_t>(w.len - start - 4))
        if self.grouping:
            if self.prev_in_group >= 0:
                w.buf[self.prev_in_group + 4] = <char>(
                    <uint8_t>w.buf[self.prev_in_group + 4] | OP_CONT)
            self.prev_in_group = -1
        if self.cur_nrec == 0:
            self.cur_first = uuid
        self.cur_nrec += 1
        self.nrec_total += 1
        self.at_db = self.want_db
        return 0

    cdef Writer begin(self, uint8_t op, uint64_t uuid):
        cdef Writer w = self.cur
        if self.want_db != self.at_db:
            self._mark(uuid)
        self.rec_start = w.len
        w.put_u32(0)
        w.put_u8(op)
        w.put_u64(uuid)
        if self.cur_nrec == 0:
            self.cur_first = uuid
        self.last_uuid = uuid
        return w

    cdef char* reserve(self, uint8_t op, uint64_t uuid, Py_ssize_t plen) except NULL:
        """begin() of a record whose payload is plen bytes, in one step: the
        header is written and the payload's place returned, for the caller to
        fill completely before end()."""
        cdef Writer w = self.cur
        cdef Py_ssize_t need = REC_HDR + plen
        cdef uint32_t ln = <uint32_t>(plen + REC_HDR - 4)
        cdef char* p
        if self.want_db != self.at_db:
            self._mark(uuid)
        if w.len + need > w.cap:
            w._grow(need)
        p = w.buf + w.len
        memcpy(p, &ln, 4)
        p[4] = <char>op
        memcpy(p + 5, &uuid, 8)
        self.rec_start = w.len
        w.len += need
        if self.cur_nrec == 0:
            self.cur_first = uuid
        self.last_uuid = uuid
        return p + REC_HDR

    cdef int put_key_u64(self, uint8_t op, uint64_t uuid, bytes key, uint64_t v) except -1:
        """A whole record whose payload is key (varint length, bytes) and 8
        bytes, v's (OP_CNT, OP_FCNT, OP_TTL)."""
        cdef Py_ssize_t klen = PyBytes_GET_SIZE(key)
        cdef char* w = self.reserve(op, uuid, varint_len(<uint64_t>klen) + klen + 8)
        w = put_varint_at(w, <uint64_t>klen)
        memcpy(w, PyBytes_AS_STRING(key), klen)
        memcpy(w + klen, &v, 8)
        return self.end()

    cdef int end(self) except -1:
        cdef Writer w = self.cur
        w.patch_u32(self.rec_start, <uint32_t>(w.len - self.rec_start - 4))
        if self.grouping:
            if self.prev_in_group >= 0:
                w.buf[self.prev_in_group + 4] = <char>(
                    <uint8_t>w.buf[self.prev_in_group + 4] | OP_CONT)
            self.prev_in_group = self.rec_start
        else:
            self.at_db = 0      # a group ends: the stream is back in db identity 0
        self.cur_nrec += 1
        self.nrec_total += 1
        self.dirty = True
        self.done_off = self.cur_off + w.len
        if not self.grouping and w.len >= self.chunk_size:
            self._seal()
        return 0

    cdef void group_begin(self) noexcept:
        self.grouping = True
        self.prev_in_group = -1

    cdef int group_end(self) except -1:
        self.grouping = False
        self.at_db = 0
        self.prev_in_group = -1
        if self.cur.len >= self.chunk_size:
            self._seal()
        return 0

    cdef int _seal(self) except -1:
        cdef bytes data
        cdef tuple old
        if self.cur_nrec == 0:
            return 0
        data = self.cur.take()
        self.chunks.append((data, self.cur_first, self.last_uuid, self.cur_nrec, self.cur_off))
        self.cur_off += PyBytes_GET_SIZE(data)
        self.sealed_bytes += PyBytes_GET_SIZE(data)
        self.cur_nrec = 0
        if self.cur.cap > 4 * self.chunk_size:
            self.cur = Writer()
        while self.sealed_bytes + self.cur.len > self.limit and self.chunks:
            old = <tuple>self.chunks[0]
            if 0 <= self.pin_off < <int64_t>old[4] + PyBytes_GET_SIZE(<bytes>old[0]):
                break  # the append-only log has not taken it yet (constdb/aof.py)
            self.chunks.popleft()
            self.sealed_bytes -= PyBytes_GET_SIZE(<bytes>old[0])
            self.dropped_upto = <uint64_t>old[2]
            self.nrec_dropped += <uint64_t>old[3]
            self.base_off += PyBytes_GET_SIZE(<bytes>old[0])
        return 0

    # ---- Python API for links, INFO and tests -------------------------------

    @property
    def size(self):
        return self.sealed_bytes + self.cur.len

    @property
    def first_uuid(self):
        """uuid of the oldest record still held, 0 when empty."""
        if self.chunks:
            return self.chunks[0][1]
        if self.cur_nrec:
            return self.cur_first
        return 0

    @property
    def nrec(self):
        return self.nrec_total - self.nrec_dropped

    def flush(self):
        """Seal the open buffer (outside a group) so readers see every record."""
        if not self.grouping:
            self._seal()

    def covers(self, uint64_t pos):
        """True if every record with uuid > pos is still held."""
        return pos >= self.dropped_upto

    def set_limit(self, Py_ssize_t limit):
        self.limit = limit
        if not self.grouping:
            self._seal()

    def read_from(self, uint64_t pos, Py_ssize_t max_bytes=256 * 1024):
        """Whole records with uuid > pos, about max_bytes at most, never ending
        inside a group. Returns (data, last_uuid, nrec); data is b"" when caught
        up. The caller checks covers(pos) first."""
        cdef list parts = []
        cdef Py_ssize_t total = 0, start, p, end, n, safe_p
        cdef const char* base
        cdef bytes data
        cdef uint64_t u, safe_last = pos
        cdef uint64_t count = 0, safe_count = 0
        cdef uint8_t op
        cdef bint full = False
        cdef tuple ch
        if pos >= self.last_uuid:
            return b"", pos, 0
        sources = list(self.chunks)
        if self.cur_nrec:
            sources.append((PyBytes_FromStringAndSize(self.cur.buf, self.cur.len),
                            self.cur_first, self.last_uuid, self.cur_nrec, self.cur_off))
        for ch in sources:
            if <uint64_t>ch[2] <= pos:
                continue
            data = <bytes>ch[0]
            base = PyBytes_AS_STRING(data)
            n = PyBytes_GET_SIZE(data)
            p = 0
            start = -1
            safe_p = -1
            while p + REC_HDR <= n:
                end = p + 4 + <Py_ssize_t>_rd_u32(base + p)
                op = <uint8_t>base[p + 4]
                u = _rd_u64(base + p + 5)
                if u > pos:
                    if start < 0:
                        start = p
                    count += 1
                    if not (op & OP_CONT):
                        # a group ends here: a safe place to stop
                        safe_p = end
                        safe_last = u
                        safe_count = count
                        if total + end - start >= max_bytes:
                            full = True
                            break
                p = end
            if safe_p >= 0:
                parts.append(data[start:safe_p])
                total += safe_p - start
            if full or safe_p < p:
                # full, or a group still open at the end of what is written
                break
        return b"".join(parts), safe_last, safe_count

    def slice(self, int64_t a, int64_t b):
        """The raw stream bytes from offset a to b (record boundaries, both
        still held: the append-only log pins what it has not written)."""
        cdef list parts = []
        cdef tuple ch
        cdef int64_t s, e
        if a < self.base_off or b > self.cur_off + self.cur.len or a > b:
            raise ValueError("backlog slice %d..%d outside %d..%d"
                             % (a, b, self.base_off, self.cur_off + self.cur.len))
        for ch in self.chunks:
            s = <int64_t>ch[4]
            e = s + PyBytes_GET_SIZE(<bytes>ch[0])
            if e <= a or s >= b:
                continue
            parts.append((<bytes>ch[0])[max(a, s) - s:min(b, e) - s])
        if b > self.cur_off:
            s = max(a, self.cur_off)
            parts.append(PyBytes_FromStringAndSize(self.cur.buf + (s - self.cur_off), b - s))
        return b"".join(parts)

    # ---- offset cursors (links) ---------------------------------------------
    # A link keeps the stream offset of the next byte to send; reading from an
    # offset costs only what is returned (read_from by uuid scans).

    @property
    def end_off(self):
        return self.cur_off + self.cur.len

    def offset_after(self, uint64_t pos):
        """Stream offset of the first record with uuid > pos, or -1 if some of
        those records were dropped."""
        cdef tuple ch
        cdef const char* base
        cdef Py_ssize_t p, n
        if pos < self.dropped_upto:
            return -1
        if pos >= self.last_uuid:
            return self.cur_off + self.cur.len
        for ch in list(self.chunks):
            if <uint64_t>ch[2] > pos:
                base = PyBytes_AS_STRING(<bytes>ch[0])
                n = PyBytes_GET_SIZE(<bytes>ch[0])
                p = 0
                while p + REC_HDR <= n:
                    if _rd_u64(base + p + 5) > pos:
                        return <int64_t>ch[4] + p
                    p += 4 + <Py_ssize_t>_rd_u32(base + p)
        p = 0
        while p + REC_HDR <= self.cur.len:
            if _rd_u64(self.cur.buf + p + 5) > pos:
                return self.cur_off + p
            p += 4 + <Py_ssize_t>_rd_u32(self.cur.buf + p)
        return self.cur_off + self.cur.len

    def read_at(self, int64_t off, Py_ssize_t max_bytes=256 * 1024):
        """Whole groups of records from stream offset off: (data, next_off,
        last_uuid, nrec); None if off was dropped. data is b"" when caught up."""
        cdef const char* base
        cdef Py_ssize_t n, p, start, safe_p = -1, cut
        cdef uint64_t u, safe_last = 0
        cdef uint64_t count = 0, safe_count = 0
        cdef uint8_t op
        cdef bytes data = None
        cdef tuple ch
        if off < self.base_off:
            return None
        if off >= self.cur_off:
            base = self.cur.buf
            n = self.cur.len
            start = off - self.cur_off
        else:
            for ch in self.chunks:
                if <int64_t>ch[4] <= off < <int64_t>ch[4] + PyBytes_GET_SIZE(<bytes>ch[0]):
                    data = <bytes>ch[0]
                    break
            if data is None:
                return None
            base = PyBytes_AS_STRING(data)
            n = PyBytes_GET_SIZE(data)
            start = off - <int64_t>ch[4]
        p = start
        while p + REC_HDR <= n:
            cut = p + 4 + <Py_ssize_t>_rd_u32(base + p)
            if cut > n:
                break
            op = <uint8_t>base[p + 4]
            u = _rd_u64(base + p + 5)
            count += 1
            p = cut
            if not (op & OP_CONT):
                safe_p = p
                safe_last = u
                safe_count = count
                if p - start >= max_bytes:
                    break
        if safe_p < 0:
            return b"", off, 0, 0
        return (PyBytes_FromStringAndSize(base + start, safe_p - start), off + (safe_p - start),
                safe_last, safe_count)
