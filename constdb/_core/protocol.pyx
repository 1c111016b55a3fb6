"""The client protocol: framing, dispatch, transactions, replies.

data_received -> frame complete requests (a scanner that follows Redis's
processMultibulkBuffer/processInlineBuffer: its limits, its errors, inline
commands) -> the argv of each whole request is cut out of the buffer ->
command table -> handler writes its reply into the client's WBuf -> the
client's replies are written at the end of the loop turn (Server.write_pending:
one transport.write per client and turn, as Redis writes in beforeSleep).

The scanner resumes a partly received multibulk where it stopped, so a request
of many arguments arriving in many reads is scanned once. argv is built from
the positions the scanner validated, so no second parser can disagree with it.
"""

import logging
import sys
import time

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.dict cimport PyDict_GetItem
from cpython.list cimport PyList_GET_SIZE, PyList_New, PyList_SET_ITEM
from cpython.ref cimport Py_DECREF, Py_INCREF, Py_REFCNT, Py_XDECREF
from cpython.object cimport PyObject
from libc.stdint cimport int64_t, uint64_t
from libc.stdlib cimport calloc, free
from libc.string cimport memchr, memcmp, memmove, memset
from posix.time cimport CLOCK_MONOTONIC, clock_gettime, timespec

from constdb._core.backlog cimport Backlog
from constdb._core.clock cimport wall_ms
from constdb._core.codec cimport WBuf, Writer, parse_i64
from constdb._core.ktable cimport (
    kt_get, kt_prefetch_entry, kt_prefetch_obj, kt_prefetch_slot, kt_table,
)
from constdb._core.keyspace cimport Db, Keyspace
from constdb._core.objects cimport CObj

from constdb._core.codec import RespError

log = logging.getLogger("constdb")

cdef enum:
    INLINE_MAX = 64 * 1024           # Redis's PROTO_INLINE_MAX_SIZE
    MBULK_MAX = 2147483647           # INT_MAX, as Redis
    NOAUTH_MBULK_MAX = 10            # before AUTH, as Redis
    NOAUTH_BULK_MAX = 16384
    THROTTLE_BYTES = 256 * 1024      # unexecuted input over this: stop reading


_OOM_ERR = b"OOM command not allowed when used memory > 'maxmemory'."


cdef bint _deny_oom(Client c, Command cmd):
    # Redis's reject_cmd_on_oom: a deny-oom command, or EXEC of a queue holding one
    cdef bytes name
    if cmd.flags & F_DENYOOM:
        return True
    if not c.in_multi:
        return False
    name = cmd.name if cmd.parent is None else (<Command>cmd.parent).name
    if name == b"exec":
        for x in c.mqueue:
            if (<Command>x[0]).flags & F_DENYOOM:
                return True
        return False
    # inside MULTI every other command is refused too (queuing grows
    # without bound), but DISCARD, QUIT and RESET
    return name != b"discard" and name != b"quit" and name != b"reset"


cdef inline uint64_t mono_ns() noexcept:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return <uint64_t>ts.tv_sec * 1000000000 + <uint64_t>ts.tv_nsec


# Per-command latency histogram (INFO latencystats): log-linear buckets over
# nanoseconds, 8 sub-buckets per power of two (values below 8 exact), so a
# bucket's bounds are within 12.5% of each other. Filling it costs a clz, two
# shifts and an increment per command (Command.record).
cdef enum:
    LAT_SUB_BITS = 3
    LAT_SUB = 8                      # 1 << LAT_SUB_BITS
    LAT_BUCKETS = LAT_SUB + (64 - LAT_SUB_BITS) * LAT_SUB


cdef extern from *:
    int __builtin_clzll(unsigned long long x) nogil


cdef inline Py_ssize_t lat_bucket(uint64_t v) noexcept nogil:
    cdef int e
    if v < LAT_SUB:
        return <Py_ssize_t>v
    e = 63 - __builtin_clzll(v)
    return (LAT_SUB + (e - LAT_SUB_BITS) * LAT_SUB
            + <Py_ssize_t>((v >> (e - LAT_SUB_BITS)) & (LAT_SUB - 1)))


cdef inline uint64_t lat_bucket_high(Py_ssize_t i) noexcept nogil:
    """The highest value bucket i holds."""
    cdef int e
    cdef uint64_t sub
    if i < LAT_SUB:
        return <uint64_t>i
    e = <int>((i - LAT_SUB) // LAT_SUB) + LAT_SUB_BITS
    sub = <uint64_t>((i - LAT_SUB) % LAT_SUB)
    return ((LAT_SUB + sub) << (e - LAT_SUB_BITS)) + ((<uint64_t>1 << (e - LAT_SUB_BITS)) - 1)

# unsent output past which a Pub/Sub subscriber is closed (Redis's default
# client-output-buffer-limit for pubsub clients: 32mb hard)
PUBSUB_HARD_LIMIT = 32 * 1024 * 1024

# what a connection costs beyond its buffers (the Client object, its
# transport and protocol objects), for CLIENT LIST's tot-mem
cdef Py_ssize_t CLIENT_OVERHEAD = 2048

cdef object _NO_REPLY = object()

# Client.reply_mode bits (CLIENT REPLY), as Redis's client flags: OFF, SKIP
# asked by the command that ran (takes effect when the request ends: a SKIP
# queued in MULTI silences the request after EXEC), SKIP of this request.
# A reply is written only while neither OFF nor SKIP is set.
cdef enum:
    R_OFF = 1
    R_SKIP_NEXT = 2
    R_SKIP = 4
    R_QUIET = R_OFF | R_SKIP
cdef bytes _BUSY_SCRIPT = (b"BUSY Redis is busy running a script. You can only call SCRIPT KILL"
                           b" or SHUTDOWN NOSAVE.")


cdef int _reraise() except -1:
    # the exception a handler left set is raised again here, inside a try
    return -1


ctypedef int (*cmd_fn_nx)(Client c, list argv) noexcept
NO_REPLY = _NO_REPLY
REPLY_OFF = R_OFF
REPLY_SKIP_NEXT = R_SKIP_NEXT
REPLY_SKIP = R_SKIP


# ------------------------------------------------------------------ errors ---

cdef int reply_wrongtype(Client c) except -1:
    return c.out.error(b"WRONGTYPE Operation against a key holding the wrong kind of value", 65)


cdef int reply_syntax(Client c) except -1:
    return c.out.error(b"ERR syntax error", 16)


cdef int reply_notint(Client c) except -1:
    return c.out.error(b"ERR value is not an integer or out of range", 43)


# ---------------------------------------------------------------- commands ---

# what a RESP2 client in Pub/Sub mode may send (Redis's list)
_SUBCTX = frozenset([b"subscribe", b"unsubscribe", b"psubscribe", b"punsubscribe",
                     b"ssubscribe", b"sunsubscribe", b"ping", b"quit", b"reset"])
_SUBCTX_ERR = (b"': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed"
               b" in this context")


cdef class Command:
    """A command or subcommand as dispatch sees it: its arity, flags and key
    range are copied from its spec in the command table (C ints, read on
    every request), its handler is a C function (fn) or a Python one (pyfn)."""

    def __init__(self, spec, pyfn=None):
        full = spec.name.encode()
        self.name = full.rpartition(b"|")[2]
        self.arity = spec.arity
        self.flags = spec.bits
        self.first_key = spec.first
        self.last_key = spec.last
        self.key_step = spec.step
        self.fn = NULL
        self.pyfn = pyfn
        self.subcommands = None
        self.parent = None
        self.calls = 0
        self.failed = 0
        self.rejected = 0
        self.nsec = 0
        self.hist = NULL
        self.spec = spec
        if full in _SUBCTX:
            self.flags |= F_SUBCTX

    def __dealloc__(self):
        free(self.hist)

    @property
    def usec(self):
        """Time spent running it, in microseconds (INFO commandstats)."""
        return self.nsec // 1000

    @usec.setter
    def usec(self, v):
        self.nsec = <uint64_t>v * 1000

    def reset_latency(self):
        """CONFIG RESETSTAT: forget the latency histogram."""
        if self.hist != NULL:
            memset(self.hist, 0, LAT_BUCKETS * sizeof(uint64_t))

    def latency_percentiles(self, percentiles):
        """[(p, usec)] for each p in percentiles (0 < p <= 100): the highest
        latency of the bucket holding the p-th percentile call, in
        microseconds; [] before the first call."""
        cdef uint64_t total = 0, seen = 0, need
        cdef Py_ssize_t i
        if self.hist == NULL:
            return []
        for i in range(LAT_BUCKETS):
            total += self.hist[i]
        if not total:
            return []
        out = []
        i = 0
        seen = self.hist[0]
        for p in percentiles:
            need = <uint64_t>(p / 100.0 * total + 0.5)
            if need < 1:
                need = 1
            if need > total:
                need = total
            while seen < need and i < LAT_BUCKETS - 1:
                i += 1
                seen += self.hist[i]
            out.append((p, lat_bucket_high(i) / 1000.0))
        return out

    def latency_cdf(self):
        """LATENCY HISTOGRAM's buckets: [(usec, calls that took at most that)],
        one where the count grows, up to every call. The bounds are Redis's:
        its histogram (2 significant digits) iterated by powers of two from
        1024 ns, each bound the highest value equivalent to 1024 << k ns
        (1024 << k plus its 1/128, less one), shown in whole microseconds
        (1, 2, 4, 8, 16, 33, 66, 132 ...)."""
        cdef uint64_t total = 0, seen = 0, bound = 1024, last = 0, high
        cdef Py_ssize_t i = 0
        if self.hist == NULL:
            return []
        for i in range(LAT_BUCKETS):
            total += self.hist[i]
        out = []
        i = 0
        while seen < total:
            high = bound + (bound >> 7) - 1
            while i < LAT_BUCKETS and lat_bucket_high(i) <= high:
                seen += self.hist[i]
                i += 1
            if seen != last:  # (not out[-1]: this module runs without wraparound)
                out.append((high // 1000, seen))
                last = seen
            bound *= 2
        return out

    @property
    def fullname(self):
        if self.parent is not None:
            return self.parent.name + b"|" + self.name
        return self.name

    @property
    def is_native(self):
        return self.fn != NULL


cdef int add_command(Server srv, bytes name, cmd_fn fn) except -1:
    """Register a C handler under its name; everything else comes from its spec."""
    cdef Command c = Command(srv.spec(name), None)
    c.fn = fn
    srv.register(c)
    return 0


# ------------------------------------------------------------------ server ---

cdef class Server:
    def __init__(self, Keyspace ks):
        self.ks = ks
        self.specs = None
        self.table = {}
        self.dispatch = {}
        self.clients = {}
        self.loop = None
        self.app = None
        self.requirepass = None
        self.proto_max_bulk_len = 512 * 1024 * 1024
        self.client_query_buffer_limit = 1024 * 1024 * 1024
        self.max_exec_per_round = 16
        self.maxclients = 10000
        self.slowlog_ns = 10000 * 1000
        self.latency_ns = 0
        self.evictor = None
        self.timeout = 0
        self.next_client_id = 0
        self.total_commands = 0
        self.total_connections = 0
        self.rejected_connections = 0
        self.net_input_bytes = 0
        self.net_output_bytes = 0
        self.total_errors = 0
        self.error_counts = {}
        self.on_backlog = None
        self.shutting_down = False
        self.cmd_version = 1
        self.aof_defer = False
        self.aof_done_off = 0
        self.aof_waiting = []
        self.wpending = []
        self.wpending_cb = self.write_pending
        self.pause_mode = 0
        self.monitor = None
        self.blocking = None

    def write_pending(self, skip=None):
        """End of the loop turn: write the replies of every client that has
        some (one transport.write each), as Redis writes its clients' buffers
        before it sleeps. Writing each reply as soon as its read was run
        instead woke a client such as redis-benchmark once per connection
        and turn, and on a VM each wakeup of an idle CPU is an IPI that costs
        the writer several microseconds of system time.

        A busy script (scripting.py) calls it too, as Redis's
        processEventsWhileBlocked runs beforeSleep: skip is the client
        running the script, whose replies stay queued (Redis skips its
        protected client), for the callback this turn already scheduled."""
        cdef list pending = self.wpending
        cdef Client c
        self.wpending = []
        for c in pending:
            if c is skip:
                self.wpending.append(c)
                continue
            c.wqueued = False
            c.write_out()

    def spec(self, bytes fullname):
        """The command table's spec of a command (b"get") or subcommand
        (b"client|list"); every registered handler must have one."""
        if self.specs is None:
            from constdb.commands.table import specs
            self.specs = specs()
        spec = self.specs.get(fullname)
        if spec is None:
            raise KeyError(f"{fullname.decode()}: no spec in the command table (commands.toml)")
        return spec

    def register(self, Command cmd):
        if cmd.parent is not None:
            if cmd.parent.subcommands is None:
                cmd.parent.subcommands = {}
            cmd.parent.subcommands[cmd.name] = cmd
        else:
            self.table[cmd.name] = cmd
            self.dispatch[cmd.name] = cmd
            self.dispatch[cmd.name.upper()] = cmd
        self.cmd_version += 1

    def register_py(self, bytes fullname, fn):
        """Register a Python handler under its full name (b"info", or
        b"client|list" for a subcommand, after its container): looked up,
        arity- and auth-checked and queued by MULTI like any command; a
        subcommand's stats are kept as container|name."""
        cdef Command cmd = Command(self.spec(fullname), fn)
        parent, bar, _ = fullname.partition(b"|")
        if bar:
            cmd.parent = self.table[parent]
        self.register(cmd)
        return cmd

    def all_commands(self):
        """Every command and subcommand."""
        out = []
        for cmd in self.table.values():
            out.append(cmd)
            if (<Command>cmd).subcommands:
                out.extend((<Command>cmd).subcommands.values())
        return out

    cdef Command lookup_command(self, object name):
        cdef PyObject* p = PyDict_GetItem(self.dispatch, name)
        if p != NULL:
            return <Command>p
        if type(name) is not bytes:
            return None
        p = PyDict_GetItem(self.table, (<bytes>name).lower())
        if p != NULL:
            return <Command>p
        return None

    def command(self, name):
        return self.lookup_command(name)

    def count_error(self, str code):
        self.total_errors += 1
        self.error_counts[code] = self.error_counts.get(code, 0) + 1

    cdef int count_error_msg(self, const char* msg, Py_ssize_t n) except -1:
        """Count an error reply by its code, the first word (errorstats)."""
        cdef Py_ssize_t i = 0
        cdef Py_ssize_t lim = n if n < 32 else 32
        while i < lim and msg[i] != b' ':
            i += 1
        if i == lim:
            code = "ERR"
        else:
            code = msg[:i].decode("utf-8", "replace")
        self.count_error(code)
        return 0


# ------------------------------------------------------------------ inline ---

cdef object _split_inline(const char* p, Py_ssize_t n):
    """Redis's sdssplitargs: whitespace-separated words, "double quotes" with
    escapes (\\n \\r \\t \\b \\a \\xHH), 'single quotes'. None if unbalanced."""
    cdef list out = []
    cdef Py_ssize_t i = 0
    cdef bytearray cur
    cdef bint inq, insq, done
    cdef char c
    cdef int h1, h2
    while True:
        while i < n and (p[i] == b' ' or p[i] == b'\t' or p[i] == b'\n' or p[i] == b'\r'
                         or p[i] == b'\v' or p[i] == b'\f'):
            i += 1
        if i >= n:
            return out
        inq = False
        insq = False
        done = False
        cur = bytearray()
        while not done:
            if inq:
                if i >= n:
                    return None
                c = p[i]
                if (c == b'\\' and i + 3 < n and p[i + 1] == b'x' and _hexval(p[i + 2]) >= 0
                        and _hexval(p[i + 3]) >= 0):
                    h1 = _hexval(p[i + 2])
                    h2 = _hexval(p[i + 3])
                    cur.append(h1 * 16 + h2)
                    i += 3
                elif c == b'\\' and i + 1 < n:
                    i += 1
                    c = p[i]
                    if c == b'n':
                        cur.append(10)
                    elif c == b'r':
                        cur.append(13)
                    elif c == b't':
                        cur.append(9)
                    elif c == b'b':
                        cur.append(8)
                    elif c == b'a':
                        cur.append(7)
                    else:
                        cur.append(<unsigned char>c)
                elif c == b'"':
                    if i + 1 < n and not _isspace(p[i + 1]):
                        return None
                    done = True
                else:
                    cur.append(<unsigned char>c)
            elif insq:
                if i >= n:
                    return None
                c = p[i]
                if c == b'\\' and i + 1 < n and p[i + 1] == b"'":
                    i += 1
                    cur.append(39)
                elif c == b"'":
                    if i + 1 < n and not _isspace(p[i + 1]):
                        return None
                    done = True
                else:
                    cur.append(<unsigned char>c)
            else:
                if i >= n:
                    done = True
                    break
                c = p[i]
                if _isspace(c):
                    done = True
                elif c == b'"':
                    inq = True
                elif c == b"'":
                    insq = True
                else:
                    cur.append(<unsigned char>c)
            if i < n:
                i += 1
        out.append(bytes(cur))


cdef inline bint _isspace(char c) noexcept:
    return c == b' ' or c == b'\t' or c == b'\n' or c == b'\r' or c == b'\v' or c == b'\f'


cdef inline int _hexval(char c) noexcept:
    if b'0' <= c <= b'9':
        return c - 48
    if b'a' <= c <= b'f':
        return c - 87
    if b'A' <= c <= b'F':
        return c - 55
    return -1


def split_inline(bytes line):
    return _split_inline(PyBytes_AS_STRING(line), PyBytes_GET_SIZE(line))


# ------------------------------------------------------------------ client ---

cdef enum:
    FAST_ARGS = 64                   # _fill: requests of up to this many arguments
    QKEYS = 128                      # _fill: keys looked up ahead per fill (2 x FAST_ARGS)


# The keys of the requests parsed ahead (Client._fill) are fetched from the
# db's key table (ktable.h) before any of them runs, in stages: first a
# prefetch of every key's first slot, then of the entry each slot names,
# then of the object of each entry whose hash is the key's, so the cache
# misses of a pipeline's keys overlap instead of each request waiting for
# its own (three dependent misses per key: slot, entry, object). An argv key
# is a new bytes object whose hash is already set (fe_bytes), so no later
# probe of the command hashes it. _check_layout verifies at import that
# _Py_HashBytes is bytes' hash and that a hash set this way is the one
# hash() gives; if not, keys are plain bytes objects (hashed when first
# looked up) and nothing is prefetched.
cdef extern from *:
    """
    #include <Python.h>
    static int fe_ok = 0;

    /* a new bytes object of the n bytes at s, its hash h already set */
    static PyObject* fe_bytes(const char* s, Py_ssize_t n, Py_hash_t h) {
        PyObject* o = PyBytes_FromStringAndSize(s, n);
        if (o != NULL && fe_ok) {
    #pragma GCC diagnostic push
    #pragma GCC diagnostic ignored "-Wdeprecated-declarations"
            ((PyBytesObject*)o)->ob_shash = h;
    #pragma GCC diagnostic pop
        }
        return o;
    }
    """
    int fe_ok
    object fe_bytes(const char* s, Py_ssize_t n, Py_hash_t h)
    Py_hash_t _Py_HashBytes(const void* s, Py_ssize_t n) noexcept


cdef extern from "Python.h":
    ctypedef struct PyListObject:
        PyObject** ob_item
    void PyObject_GC_UnTrack(object o)
    object _steal "(PyObject*)"(PyObject* o)   # takes over a reference


def _check_layout():
    """_Py_HashBytes is bytes' hash, and a bytes object made by fe_bytes
    hashes and compares as one made the usual way: else the keys of
    requests are made as plain bytes, and the staged prefetch is off."""
    global fe_ok
    fe_ok = 0
    if sys.version_info[:2] not in ((3, 11), (3, 12)):
        return False
    for i in range(1000):
        kb = b"k%d" % i
        if _Py_HashBytes(PyBytes_AS_STRING(kb), PyBytes_GET_SIZE(kb)) != hash(kb):
            return False
    fe_ok = 1
    kb = fe_bytes(b"k1", 2, _Py_HashBytes(b"k1", 2))
    if hash(kb) != hash(b"k1") or kb != b"k1" or {b"k1": 1}.get(kb) != 1:
        fe_ok = 0
        return False
    return True


_check_layout()


cdef inline Py_ssize_t _plain_len(const char* b, Py_ssize_t pos, Py_ssize_t total,
                                  int64_t* out) noexcept:
    """The length after the '*' or '$' at b[pos] when it is a plain decimal
    (no sign, no leading zero, at most 17 digits) ended by a CR whose LF byte
    is in the buffer: returns the position after CR LF, or -1 (unusual, or
    not all here)."""
    cdef Py_ssize_t i = pos + 1
    cdef Py_ssize_t lim = pos + 19
    cdef int64_t v
    cdef char c
    if lim > total - 1:
        lim = total - 1
    if i >= lim:
        return -1
    c = b[i]
    if c < b'1' or c > b'9':
        if c == b'0' and i + 1 < lim and b[i + 1] == b'\r':
            out[0] = 0
            return i + 3
        return -1
    v = c - 48
    i += 1
    while i < lim:
        c = b[i]
        if c == b'\r':
            out[0] = v
            return i + 2
        if c < b'0' or c > b'9':
            return -1
        v = v * 10 + (c - 48)
        i += 1
    return -1


cdef inline void _clear_list(list lst) noexcept:
    """Drop the items of lst, leaving NULL in their places (a list kept
    private until its items are set again)."""
    cdef PyObject** items = (<PyListObject*>lst).ob_item
    cdef Py_ssize_t i
    cdef PyObject* x
    for i in range(PyList_GET_SIZE(lst)):
        x = items[i]
        items[i] = NULL
        Py_XDECREF(x)


cdef struct KeyRef:
    Py_hash_t h                      # the key's hash
    Py_ssize_t off                   # its bytes in ibuf
    Py_ssize_t n
    int req                          # its request in the queue
    Py_ssize_t argi                  # and argument


cdef enum:
    SCAN_INCOMPLETE = 0
    SCAN_RESP = 1
    SCAN_INLINE = 2
    SCAN_EMPTY = 3
    SCAN_ERROR = 4


cdef inline list _argv_list(Client c, Py_ssize_t n):
    """A list of n NULL items: one the last requests left (argv lists of a
    pipeline are mostly of one size), else a new one. Never tracked by the
    garbage collector (its items are bytes objects: no cycle), so the GC
    never sees one while its items are NULL."""
    cdef int i = c.lpn - 1
    cdef PyObject* x
    while i >= 0:
        x = c.lpool[i]
        if PyList_GET_SIZE(<list>x) == n:
            c.lpn -= 1
            c.lpool[i] = c.lpool[c.lpn]
            c.lpool[c.lpn] = NULL
            return <list>_steal(x)
        i -= 1
    out = PyList_New(n)
    PyObject_GC_UnTrack(out)
    return out


cdef inline void _pool_list(Client c, list lst) noexcept:
    """Keep lst (no one else holds it) for _argv_list. A full pool gives up
    a list of another size (the pipeline's sizes changed)."""
    cdef int i
    cdef PyObject* x
    _clear_list(lst)
    if c.lpn == QMAX:
        for i in range(QMAX):
            x = c.lpool[i]
            if PyList_GET_SIZE(<list>x) != PyList_GET_SIZE(lst):
                Py_INCREF(lst)
                c.lpool[i] = <PyObject*>lst
                Py_DECREF(<object>x)
                return
        return
    Py_INCREF(lst)
    c.lpool[c.lpn] = <PyObject*>lst
    c.lpn += 1


cdef class Client:
    def __init__(self, Server srv):
        self.srv = srv
        self.ks = srv.ks
        self.db = <Db>srv.ks.dbs[0]
        self.out = WBuf()
        self.ibuf = Writer()
        self.ipos = 0
        self.need = 0
        self.spos = 0
        self.sleft = 0
        self.perr = None
        srv.next_client_id += 1
        self.id = srv.next_client_id
        self.name = None
        self.lib_name = None
        self.lib_ver = None
        self.addr = ""
        self.laddr = ""
        self.fd = -1
        self.ctime = time.time()
        self.last_ms = wall_ms()
        self.authed = srv.requirepass is None
        self.closing = False
        self.paused = False
        self.throttled = False
        self.reading = True
        self.eof = False
        self.blocked = False
        self.in_multi = False
        self.multi_error = False
        self.cas_dirty = False
        self.mqueue = None
        self.watched_keys = None
        self.watch_expired = None
        self.last_cmd = None
        self.last_write_uuid = 0
        self.resp = 2
        self.scheduled = False
        self.transport = None
        self.subs = None
        self.track = None
        self.reply_mode = 0
        self.exec_ran = False
        self.push_end = -1
        self.cname = None
        self.ccmd = None
        self.cver = 0
        self.rcmd = None
        self.tmark = mono_ns()
        self.qi = 0
        self.qn = 0
        self.aof_wait = False
        self.wqueued = False

    def __dealloc__(self):
        self._drop_queue()
        while self.lpn:
            self.lpn -= 1
            Py_XDECREF(self.lpool[self.lpn])

    # ---- asyncio protocol ---------------------------------------------------

    def connection_made(self, transport):
        self.transport = transport
        srv = self.srv
        srv.total_connections += 1
        if len(srv.clients) >= srv.maxclients:
            srv.rejected_connections += 1
            transport.write(b"-ERR max number of clients reached\r\n")
            transport.close()
            self.closing = True
            return
        srv.clients[self.id] = self
        peer = transport.get_extra_info("peername")
        sock = transport.get_extra_info("sockname")
        self.addr = _fmt_addr(peer)
        self.laddr = _fmt_addr(sock)
        s = transport.get_extra_info("socket")
        if s is not None:
            try:
                self.fd = s.fileno()
            except Exception:
                self.fd = -1

    def connection_lost(self, exc):
        self.closing = True
        self.srv.clients.pop(self.id, None)
        if self.subs is not None and self.srv.pubsub is not None:
            self.srv.pubsub.forget(self)
        if self.track is not None and self.srv.tracking is not None:
            self.srv.tracking.disable(self)
        self._unwatch_all()
        self.mqueue = None
        app = self.srv.app
        if app is not None and self.blocked:
            app.client_gone(self)

    def pause_writing(self):
        # the transport's buffer is over its high-water mark (a client that
        # does not read its replies): stop reading and executing its requests
        # until it drains, so its replies cannot pile up in memory
        self.paused = True
        self._set_reading()

    def resume_writing(self):
        self.paused = False
        if not self.closing:
            self._set_reading()
            self._schedule()

    cdef int _set_reading(self) except -1:
        cdef bint want = not (self.paused or self.throttled or self.closing)
        if want != self.reading and self.transport is not None:
            self.reading = want
            if self.transport.is_closing():
                return 0
            if want:
                self.transport.resume_reading()
            else:
                self.transport.pause_reading()
        return 0

    def eof_received(self):
        # requests still waiting (max_exec_per_round, a full output buffer)
        # run before the connection closes, as Redis ran them on reading
        if not self.closing and (
            self.scheduled or self.paused or (self.blocked and self.ipos < self.ibuf.len)
        ):
            self.eof = True
            return True  # keep the transport open to write their replies
        return False

    def data_received(self, bytes data):
        cdef Py_ssize_t n = PyBytes_GET_SIZE(data)
        cdef Server srv = self.srv
        if self.closing:
            return
        srv.net_input_bytes += n
        self.ks.now = wall_ms()
        self.last_ms = self.ks.now
        self.ibuf.put_raw(PyBytes_AS_STRING(data), n)
        if self.ibuf.len - self.ipos > srv.client_query_buffer_limit:
            # Redis closes such a client without a reply and logs it
            log.warning("Closing client that reached max query buffer length: id=%d addr=%s "
                        "qbuf=%d (qbuf initial bytes: %r)", self.id, self.addr,
                        self.ibuf.len - self.ipos,
                        PyBytes_FromStringAndSize(self.ibuf.buf + self.ipos, 64))
            self.close()
            return
        if self.ibuf.len < self.need or self.scheduled:
            return
        try:
            self.process()
        except Exception:
            # never reached by any input we know of; the client goes, the server stays
            log.exception("client %d: request processing failed", self.id)
            self.protocol_error("Protocol error: internal error")

    # ---- request processing --------------------------------------------------

    cdef int _schedule(self) except -1:
        if not self.scheduled and self.srv.loop is not None:
            self.scheduled = True
            self.srv.loop.call_soon(self._continue)
        return 0

    def _continue(self):
        self.scheduled = False
        if self.closing or self.paused or self.blocked:
            return
        self.ks.now = wall_ms()
        try:
            self.process()
        except Exception:
            log.exception("client %d: request processing failed", self.id)
            self.protocol_error("Protocol error: internal error")

    cdef int _scan(self, Py_ssize_t* start, Py_ssize_t* end):
        """Frame one request at ipos as Redis's processInputBuffer does. Sets
        [start, end) and returns its kind; SCAN_ERROR leaves the message in
        perr. A multibulk that is not all here yet is resumed from spos."""
        cdef const char* b = self.ibuf.buf
        cdef Py_ssize_t blen_total = self.ibuf.len
        cdef Py_ssize_t pos = self.ipos, avail = blen_total - self.ipos, nl
        cdef const char* q
        cdef int64_t count, blen, left
        start[0] = pos
        if avail <= 0:
            return SCAN_INCOMPLETE
        if b[pos] != b'*':
            q = <const char*>memchr(b + pos, b'\n', avail)
            if q == NULL:
                if avail > INLINE_MAX:
                    self.perr = "Protocol error: too big inline request"
                    return SCAN_ERROR
                self.need = blen_total + 1
                return SCAN_INCOMPLETE
            end[0] = (q - b) + 1
            return SCAN_INLINE
        if self.spos > pos:
            # resume a multibulk whose first bulks were scanned already
            pos = self.spos
            left = self.sleft
        else:
            # *<count>\r\n
            q = <const char*>memchr(b + pos, b'\r', avail)
            if q == NULL:
                if avail > INLINE_MAX:
                    self.perr = "Protocol error: too big mbulk count string"
                    return SCAN_ERROR
                self.need = blen_total + 1
                return SCAN_INCOMPLETE
            nl = q - b
            if nl + 1 >= blen_total:
                self.need = blen_total + 1
                return SCAN_INCOMPLETE
            if not parse_i64(b + pos + 1, nl - pos - 1, &count) or count > MBULK_MAX:
                self.perr = "Protocol error: invalid multibulk length"
                return SCAN_ERROR
            if count > NOAUTH_MBULK_MAX and not self.authed:
                self.perr = "Protocol error: unauthenticated multibulk length"
                return SCAN_ERROR
            pos = nl + 2
            if count <= 0:
                end[0] = pos
                return SCAN_EMPTY
            left = count
        while left > 0:
            if pos >= blen_total:
                self.spos = pos
                self.sleft = left
                self.need = blen_total + 1
                return SCAN_INCOMPLETE
            q = <const char*>memchr(b + pos, b'\r', blen_total - pos)
            if q == NULL:
                if blen_total - pos > INLINE_MAX:
                    self.perr = "Protocol error: too big bulk count string"
                    return SCAN_ERROR
                self.spos = pos
                self.sleft = left
                self.need = blen_total + 1
                return SCAN_INCOMPLETE
            nl = q - b
            if nl + 1 >= blen_total:
                self.spos = pos
                self.sleft = left
                self.need = blen_total + 1
                return SCAN_INCOMPLETE
            if b[pos] != b'$':
                self.perr = "Protocol error: expected '$', got '%s'" % chr(<unsigned char>b[pos])
                return SCAN_ERROR
            if (not parse_i64(b + pos + 1, nl - pos - 1, &blen) or blen < 0
                    or blen > self.srv.proto_max_bulk_len):
                self.perr = "Protocol error: invalid bulk length"
                return SCAN_ERROR
            if blen > NOAUTH_BULK_MAX and not self.authed:
                self.perr = "Protocol error: unauthenticated bulk length"
                return SCAN_ERROR
            if nl + 2 + <Py_ssize_t>blen + 2 > blen_total:
                self.spos = pos
                self.sleft = left
                self.need = nl + 2 + <Py_ssize_t>blen + 2
                return SCAN_INCOMPLETE
            pos = nl + 2 + <Py_ssize_t>blen + 2
            left -= 1
        self.spos = 0
        end[0] = pos
        return SCAN_RESP

    cdef int _fill(self, int want) except -1:
        """Parse up to want requests at ipos ahead of running them (the
        queue qargv/qcmd/qend), when each is all here and plain: at most
        FAST_ARGS arguments, lengths written as plain decimals (no sign, no
        leading zero), within the limits. It stops at anything else (not all
        here, a resumed scan, an error to report, unusual lengths, an
        inline request), which _scan then frames as before, so both agree on
        every request this accepts. The command of each is resolved here
        (the name this client sent last is its cached bytes object), and the
        keys of all of them are fetched from the client's db together (see
        fe_bytes above). Before AUTH one request at a time: AUTH changes the
        limits of the next."""
        cdef const char* b = self.ibuf.buf
        cdef Py_ssize_t total = self.ibuf.len, pos = self.ipos, q
        cdef int64_t count, blen, i, kpos, klast, kstep
        cdef Py_ssize_t maxbulk = self.srv.proto_max_bulk_len
        cdef Server srv = self.srv
        cdef KeyRef keys[QKEYS]
        cdef int nk = 0, nk0, n = 0, j
        cdef bint ok
        cdef list out
        cdef object item
        cdef Command cmd
        cdef bytes cname
        cdef kt_table* kt = &self.db.d.t
        if self.spos > pos:
            return 0
        if not self.authed:
            want = 1
            if maxbulk > NOAUTH_BULK_MAX:
                maxbulk = NOAUTH_BULK_MAX
        if want > QMAX:
            want = QMAX
        while n < want:
            if pos >= total or b[pos] != b'*':
                break
            q = _plain_len(b, pos, total, &count)
            if q < 0 or count <= 0 or count > FAST_ARGS or nk + count > QKEYS:
                break
            if not self.authed and count > NOAUTH_MBULK_MAX:
                break
            pos = q
            out = _argv_list(self, <Py_ssize_t>count)
            cmd = None
            kpos = 0
            klast = 0
            kstep = 1
            nk0 = nk
            ok = True
            for i in range(count):
                if pos >= total or b[pos] != b'$':
                    ok = False
                    break
                q = _plain_len(b, pos, total, &blen)
                if q < 0 or blen > maxbulk or q + blen + 2 > total:
                    ok = False
                    break
                if i == 0:
                    cname = self.cname
                    if (cname is not None and blen == PyBytes_GET_SIZE(cname)
                            and memcmp(b + q, PyBytes_AS_STRING(cname), <size_t>blen) == 0
                            and self.cver == srv.cmd_version):
                        item = cname
                        cmd = self.ccmd
                    else:
                        item = PyBytes_FromStringAndSize(b + q, <Py_ssize_t>blen)
                        cmd = srv.lookup_command(item)
                        if cmd is not None:
                            self.cname = <bytes>item
                            self.ccmd = cmd
                            self.cver = srv.cmd_version
                    if cmd is not None and cmd.first_key > 0 and cmd.subcommands is None:
                        # its keys: the legacy range of COMMAND INFO
                        kpos = cmd.first_key
                        klast = cmd.last_key if cmd.last_key >= 0 else count + cmd.last_key
                        kstep = cmd.key_step if cmd.key_step > 0 else 1
                elif i == kpos and i <= klast:
                    # a key: made below, once every key of the batch is in flight
                    keys[nk].h = _Py_HashBytes(b + q, <Py_ssize_t>blen)
                    keys[nk].off = q
                    keys[nk].n = <Py_ssize_t>blen
                    keys[nk].req = n
                    keys[nk].argi = <Py_ssize_t>i
                    kt_prefetch_slot(kt, keys[nk].h)
                    nk += 1
                    kpos += kstep
                    pos = q + <Py_ssize_t>blen + 2
                    continue
                else:
                    item = PyBytes_FromStringAndSize(b + q, <Py_ssize_t>blen)
                Py_INCREF(item)
                PyList_SET_ITEM(out, <Py_ssize_t>i, item)
                pos = q + <Py_ssize_t>blen + 2
            if not ok:
                nk = nk0     # (out goes, with the NULL items it has)
                break
            Py_INCREF(out)
            self.qargv[n] = <PyObject*>out
            if cmd is not None:
                Py_INCREF(cmd)
                self.qcmd[n] = <PyObject*>cmd
            else:
                self.qcmd[n] = NULL
            self.qend[n] = pos
            n += 1
        self.qi = 0
        self.qn = n
        self.qver = srv.cmd_version
        if nk > 1:
            for j in range(nk):
                kt_prefetch_entry(kt, keys[j].h)
            for j in range(nk):
                kt_prefetch_obj(kt, keys[j].h)
        for j in range(nk):
            item = fe_bytes(b + keys[j].off, keys[j].n, keys[j].h)
            Py_INCREF(item)
            PyList_SET_ITEM(<list>self.qargv[keys[j].req], keys[j].argi, item)
        return n

    cdef void _drop_queue(self) noexcept:
        """Forget the requests parsed ahead that did not run (they are
        parsed again from ipos)."""
        cdef int i
        for i in range(self.qi, self.qn):
            Py_XDECREF(self.qargv[i])
            Py_XDECREF(self.qcmd[i])
            self.qargv[i] = NULL
            self.qcmd[i] = NULL
        self.qi = 0
        self.qn = 0

    cdef list _argv(self, Py_ssize_t pos):
        """The argv of the whole multibulk request _scan framed at pos."""
        cdef const char* b = self.ibuf.buf
        cdef Py_ssize_t n = self.ibuf.len, nl
        cdef const char* q = <const char*>memchr(b + pos, b'\r', n - pos)
        cdef int64_t count, blen, i
        cdef list out
        nl = q - b
        parse_i64(b + pos + 1, nl - pos - 1, &count)
        out = PyList_New(<Py_ssize_t>count)
        pos = nl + 2
        for i in range(count):
            q = <const char*>memchr(b + pos, b'\r', n - pos)
            nl = q - b
            parse_i64(b + pos + 1, nl - pos - 1, &blen)
            item = PyBytes_FromStringAndSize(b + nl + 2, <Py_ssize_t>blen)
            Py_INCREF(item)
            PyList_SET_ITEM(out, <Py_ssize_t>i, item)
            pos = nl + 2 + <Py_ssize_t>blen + 2
        return out

    cdef int process(self) except -1:
        """Run the complete requests in ibuf, at most max_exec_per_round of
        them before other clients get a turn."""
        cdef int executed = 0, kind
        cdef Py_ssize_t start = 0, end = 0, rest
        cdef int limit = self.srv.max_exec_per_round
        cdef Server srv = self.srv
        cdef object req
        cdef PyObject* cp
        cdef Command cmd
        self.need = 0
        self.tmark = mono_ns()
        if self.qn:
            self._drop_queue()
        while not self.closing and not self.paused and not self.blocked:
            if executed >= limit:
                if self.ipos < self.ibuf.len:
                    self._schedule()
                break
            if self.qi == self.qn and self.ipos < self.ibuf.len \
                    and self.ibuf.buf[self.ipos] == b'*':
                self._fill(limit - executed)
            if self.qi < self.qn:
                # the next request parsed ahead: taken out of the queue first
                req = <object>self.qargv[self.qi]
                Py_DECREF(req)
                cp = self.qcmd[self.qi]
                self.qargv[self.qi] = NULL
                self.qcmd[self.qi] = NULL
                self.ipos = self.qend[self.qi]
                self.qi += 1
                if cp != NULL:
                    cmd = <Command>cp
                    Py_DECREF(cmd)
                    if self.qver == srv.cmd_version:
                        self.run_cmd(cmd, <list>req)
                    else:
                        self.execute(<list>req)
                    cmd = None
                else:
                    self.execute(<list>req)
                executed += 1
                if Py_REFCNT(req) == 1:
                    # nothing kept the list (MULTI queues it): reused for a
                    # later request of as many arguments
                    _pool_list(self, <list>req)
                req = None
                continue
            kind = self._scan(&start, &end)
            if kind == SCAN_RESP:
                req = self._argv(start)
                self.ipos = end
                self.execute(<list>req)
                executed += 1
                continue
            if kind == SCAN_INCOMPLETE:
                break
            if kind == SCAN_ERROR:
                self.protocol_error(<str>self.perr)
                break
            if kind == SCAN_EMPTY:
                self.ipos = end
                continue
            # SCAN_INLINE
            self.ipos = end
            req = _split_inline(self.ibuf.buf + start, end - start)
            if req is None:
                self.protocol_error("Protocol error: unbalanced quotes in request")
                break
            if not req:
                continue
            self.execute(<list>req)
            executed += 1
        if self.qn:
            self._drop_queue()
        # drop consumed input; the unread rest is moved to the front only when
        # it is no longer than what was consumed, so a long pipeline run in
        # rounds of max_exec_per_round is not copied once per round
        if self.ipos > 0 and self.ipos >= self.ibuf.len - self.ipos:
            if self.ipos >= self.ibuf.len:
                self.ibuf.len = 0
                self.spos = 0
                self.need = 0
                if self.ibuf.cap > 1 << 20:
                    self.ibuf = Writer()
            else:
                rest = self.ibuf.len - self.ipos
                memmove(self.ibuf.buf, self.ibuf.buf + self.ipos, rest)
                self.ibuf.len = rest
                if self.need:
                    self.need -= self.ipos
                if self.spos:
                    self.spos -= self.ipos
            self.ipos = 0
        # a client with a long pipeline waiting: read no more of it until it is run
        if self.scheduled and self.ibuf.len > THROTTLE_BYTES:
            if not self.throttled:
                self.throttled = True
                self._set_reading()
        elif self.throttled:
            self.throttled = False
            self._set_reading()
        self.flush()
        if srv.on_backlog is not None and self.ks.bl.dirty:
            self.ks.bl.dirty = False
            srv.on_backlog()
        if self.eof and not self.scheduled and not self.paused and not self.blocked:
            self.close()
        return 0

    cdef bint _aof_hold(self) except -1:
        """appendonly: the reply waits for the log to take every record made
        so far (Redis writes replies after the AOF in beforeSleep); one
        callback per loop turn releases every waiting client. True: held."""
        cdef Server srv = self.srv
        if srv.aof_defer and self.out.len and self.ks.bl.done_off > srv.aof_done_off:
            if not self.aof_wait:
                self.aof_wait = True
                srv.aof_waiting.append(self)
                if srv.on_backlog is not None:
                    srv.on_backlog()
            return True
        return False

    cdef int flush(self) except -1:
        """The replies in out leave at the end of this loop turn."""
        cdef Server srv = self.srv
        if not self.out.len or self._aof_hold():
            return 0
        if srv.loop is None:
            return self.write_out()  # a Server driven by hand: write now
        if not self.wqueued:
            # written by Server.write_pending at the end of this loop turn
            self.wqueued = True
            if not srv.wpending:
                srv.loop.call_soon(srv.wpending_cb)
            srv.wpending.append(self)
        return 0

    cdef int write_now(self) except -1:
        """The replies in out leave now (pushes, woken clients, replies written
        outside the client's own turn), unless the append-only log must take
        records first."""
        if self._aof_hold():
            return 0
        return self.write_out()

    cdef int write_out(self) except -1:
        """What out holds goes to the transport now (dropped if it is gone)."""
        cdef bytes data
        if self.out.len and self.transport is not None and not self.transport.is_closing():
            data = self.out.take()
            self.srv.net_output_bytes += PyBytes_GET_SIZE(data)
            self.transport.write(data)
        else:
            self.out.len = 0
        return 0

    cdef int flush_now(self) except -1:
        """flush() before the connection closes: a reply waiting for the
        append-only log is let go now, once the log took the turn's records
        (a rare path: the write, and with appendfsync always the fsync,
        happen here instead of at the end of the turn)."""
        cdef Server srv = self.srv
        if srv.aof_defer and self.out.len and self.ks.bl.done_off > srv.aof_done_off:
            srv.app.aof.write_pending()
        return self.write_now()

    cdef int protocol_error(self, str msg) except -1:
        self.out.error_str("ERR " + msg)
        self.srv.count_error("ERR")
        self.flush_now()
        self.closing = True
        self.ibuf.len = 0
        self.ipos = 0
        self.spos = 0
        if self.transport is not None:
            self.transport.close()
        return 0

    cdef int reject(self, Command cmd, bytes msg) except -1:
        """Refuse a request before it runs (Redis's rejectCommand): the error,
        and a MULTI in progress is doomed. A refused EXEC ends the MULTI."""
        if self.in_multi:
            self.multi_error = True
        if cmd is not None:
            cmd.rejected += 1
            if cmd.parent is None and cmd.name == b"exec":
                if msg.startswith(b"ERR "):
                    msg = msg[4:]
                msg = b"EXECABORT Transaction discarded because of: " + msg
                self.discard_multi()
        if not (self.reply_mode & R_QUIET):  # CLIENT REPLY OFF / SKIP
            self.out.error(PyBytes_AS_STRING(msg), PyBytes_GET_SIZE(msg))
        self.srv.count_error_msg(PyBytes_AS_STRING(msg), PyBytes_GET_SIZE(msg))
        return 0

    cdef int execute(self, list argv) except -1:
        """Look up, check and run (or queue) one request, as Redis's processCommand."""
        cdef Server srv = self.srv
        cdef object name = argv[0]
        cdef Command cmd = srv.lookup_command(name)
        if cmd is None:
            _unknown_command(self, argv)
            if self.reply_mode:
                self._reply_next()
            return 0
        if type(name) is bytes:
            self.cname = <bytes>name
            self.ccmd = cmd
            self.cver = srv.cmd_version
        return self.run_cmd(cmd, argv)

    cdef int run_cmd(self, Command cmd, list argv) except -1:
        """execute() of a request whose command is known."""
        self._run_cmd(cmd, argv)
        if self.reply_mode and not self.blocked:
            self._reply_next()
        return 0

    cdef int _reply_next(self) except -1:
        """A request ended (Redis's resetClient): the SKIP of this one is
        over, a CLIENT REPLY SKIP it ran silences the next one."""
        self.reply_mode &= ~R_SKIP
        if self.reply_mode & R_SKIP_NEXT:
            self.reply_mode = (self.reply_mode & ~R_SKIP_NEXT) | R_SKIP
        return 0

    cdef int _run_cmd(self, Command cmd, list argv) except -1:
        cdef Py_ssize_t argc = PyList_GET_SIZE(argv)
        cdef PyObject* p
        self.rcmd = cmd
        if cmd.subcommands is not None and argc >= 2:
            p = PyDict_GetItem(cmd.subcommands, (<bytes>argv[1]).lower())
            if p == NULL:
                return self.reject(None, b"ERR unknown subcommand '"
                                   + _clean((<bytes>argv[1])[:128])
                                   + b"'. Try " + (<bytes>argv[0]).upper() + b" HELP.")
            cmd = <Command>p
        if (cmd.arity > 0 and argc != cmd.arity) or argc < -cmd.arity:
            return self.reject(cmd, b"ERR wrong number of arguments for '" + cmd.fullname
                               + b"' command")
        if not self.authed and not (cmd.flags & F_NOAUTH):
            return self.reject(cmd, b"NOAUTH Authentication required.")
        if self.subs is not None and self.resp == 2 and not (cmd.flags & F_SUBCTX):
            return self.reject(cmd, b"ERR Can't execute '" + cmd.fullname + _SUBCTX_ERR)
        # maxmemory: one comparison while under the limit (evict.pyx)
        if self.ks.mem_ds > self.ks.ds_limit and self.srv.evictor is not None \
                and not self.srv.script_busy:  # (Redis: not inside a busy script)
            if self.srv.evictor.perform() and _deny_oom(self, cmd):
                return self.reject(cmd, _OOM_ERR)
        if self.srv.script_busy and not (cmd.flags & F_ALLOW_BUSY):
            return self.reject(cmd, _BUSY_SCRIPT)
        if self.srv.pause_mode and self.srv.blocking.postpone(self, cmd, argv):
            return 0        # CLIENT PAUSE: runs when the pause ends
        if self.in_multi:
            if cmd.flags & F_NOMULTI:
                return self.reject(cmd, b"ERR Command not allowed inside a transaction")
            if not (cmd.flags & F_NOQUEUE):
                if not self.multi_error and not self.cas_dirty:
                    self.mqueue.append((cmd, argv))
                if not (self.reply_mode & R_QUIET):
                    self.out.put_raw(b"+QUEUED\r\n", 9)
                return 0
        self.call(cmd, argv)
        if self.ks.ready:
            # keys that waiting clients block on changed: serve them now, as
            # Redis's handleClientsBlockedOnKeys after the command (or EXEC)
            self.srv.blocking.serve_ready()
        return 0

    cdef int call(self, Command cmd, list argv) except -1:
        """Run cmd (its write effects as one backlog group), count it, and turn
        an exception of its handler into an error reply. Its time is taken
        from the end of the request before it in this read (or the start of
        the read): one clock read per command."""
        cdef Keyspace ks = self.ks
        cdef Backlog bl = ks.bl
        cdef bint grouped = False
        cdef uint64_t before = ks.own_last, t0 = self.tmark, t1
        cdef Py_ssize_t mark = self.out.len
        cdef int r
        cdef Server srv = self.srv
        cdef object prev = None
        # the running client is known while a client tracks keys or
        # keyspace notifications are on (a subscriber's own messages go
        # before its reply)
        cdef bint cur = srv.track_on or ks.nmask != 0
        cdef bint nt = self.no_touch
        self.last_cmd = cmd
        if ks.cur is not self.db:
            ks.use(self.db)     # numbered databases: the client's db (SELECT)
        if nt:  # CLIENT NO-TOUCH: every command but TOUCH
            ks.no_touch = cmd.name != b"touch"
        if cur:
            prev = srv.current
            # a script's commands (its client has no connection) run for
            # the client that called the script
            if self.transport is not None or prev is None:
                srv.current = self
        if cmd.flags & F_WRITE and not bl.grouping:
            bl.group_begin()
            grouped = True
        if cmd.fn != NULL:
            # called as a plain C function: an exception it raises (-1) is
            # handled in _failed, off the path of every command that succeeds
            r = (<cmd_fn_nx>cmd.fn)(self, argv)
            if r == -1:
                try:
                    self._failed(cmd, mark)
                finally:
                    if grouped:
                        bl.group_end()
                        grouped = False
        else:
            try:
                self._call_py(cmd, argv, mark)
            finally:
                if grouped:
                    bl.group_end()
                    grouped = False
        if grouped:
            bl.group_end()
        # counted after the run, as Redis (so CONFIG RESETSTAT counts itself)
        t1 = mono_ns()
        self.tmark = t1
        cmd.nsec += t1 - t0
        if cmd.hist == NULL:
            cmd.hist = <uint64_t*>calloc(LAT_BUCKETS, sizeof(uint64_t))
        if cmd.hist != NULL:
            cmd.hist[lat_bucket(t1 - t0)] += 1
        if (srv.slowlog_ns >= 0 and <int64_t>(t1 - t0) >= srv.slowlog_ns) or \
                (srv.latency_ns > 0 and <int64_t>(t1 - t0) >= srv.latency_ns):
            self._slow(cmd, argv, (t1 - t0) // 1000)
        cmd.calls += 1
        self.srv.total_commands += 1
        if self.out.len > mark and self.out.buf[mark] == b'-':
            cmd.failed += 1
            self.srv.count_error_msg(self.out.buf + mark + 1, self.out.len - mark - 1)
        if ks.own_last != before:
            self.last_write_uuid = ks.own_last
        if nt:
            ks.no_touch = False
        if self.reply_mode & R_QUIET:
            if self.exec_ran:
                # EXEC's array header and each queued command's reply were
                # kept or dropped as they went, by the mode of that moment
                self.exec_ran = False
            else:
                self._quiet(mark)
        if cur or self.track is not None:
            self._tracked(cmd, argv, prev)
        if srv.monitor is not None:
            srv.monitor(self, cmd, argv)
        return 0

    cdef int _quiet(self, Py_ssize_t mark) except -1:
        """CLIENT REPLY OFF / SKIP: what the command wrote goes (its reply is
        written after any CLIENT REPLY it runs), but for the pushes it wrote
        before it (its own (un)subscribe confirmations and messages), which
        Redis 7 sends whatever the mode (its CLIENT_PUSHING)."""
        if mark < self.push_end <= self.out.len:
            self.out.len = self.push_end
        else:
            self.out.len = mark
        self.push_end = -1
        return 0

    cdef int _slow(self, Command cmd, list argv, uint64_t usec) except -1:
        """A command as slow as SLOWLOG or LATENCY want to know (constdb/monitoring.py)."""
        app = self.srv.app
        if app is not None:
            app.monitoring.command_done(self, cmd, argv, usec)
        return 0

    cdef int _tracked(self, Command cmd, list argv, object prev) except -1:
        """CLIENT TRACKING's part of a command (constdb/tracking.py)."""
        cdef Server srv = self.srv
        tr = srv.tracking
        who = srv.current  # this client, or the caller of the script running
        if tr is not None and who is not None:
            if who.track is not None:
                tr.after(who, cmd, argv)
            if prev is not self and who is self:  # not inside EXEC or a script
                tr.after_call(self)
        srv.current = prev
        return 0

    cdef int _failed(self, Command cmd, Py_ssize_t mark) except -1:
        """The native handler of cmd raised (its exception is set): the reply
        becomes the error. Anything that is not an Exception (KeyboardInterrupt
        ...) goes on up."""
        try:
            _reraise()
        except Exception as e:
            self._error_reply(cmd, mark, e)
        return 0

    cdef int _error_reply(self, Command cmd, Py_ssize_t mark, object e) except -1:
        """The reply of a command that raised e (called in its except block):
        what it wrote so far goes; a RespError is the reply, anything else is
        logged and answered as Redis answers OOM or an internal error."""
        self.out.len = mark
        if isinstance(e, RespError):
            self.out.error_str(str(e))
        elif isinstance(e, MemoryError):
            self.out.error_str("OOM command not allowed when used memory > 'maxmemory'.")
        else:
            log.exception("command %r failed", cmd.fullname)
            self.out.error_str("ERR internal error in '%s': %s" % (cmd.fullname.decode(), e))
        return 0

    cdef int _call_py(self, Command cmd, list argv, Py_ssize_t mark) except -1:
        """call() of a command written in Python."""
        try:
            r = cmd.pyfn(self, argv)
            if r is not _NO_REPLY:
                self.out.pyvalue(r)
        except Exception as e:
            self._error_reply(cmd, mark, e)
        return 0

    cdef int exec_multi(self) except -1:
        cdef list q = self.mqueue
        cdef Keyspace ks = self.ks
        cdef bint grouped = False
        self.in_multi = False
        self.mqueue = None
        cdef bint quiet = self.reply_mode & R_QUIET
        if self.multi_error:
            self.multi_error = False
            self._unwatch_all()
            if quiet:
                return 0
            self.out.error(b"EXECABORT Transaction discarded because of previous errors.", 59)
            return 0
        if self.watched_keys and not self.cas_dirty:
            # a watched key that expired since WATCH fails the EXEC (Redis 7)
            for dk in self.watched_keys:
                if _key_expired(<Db>dk[0], ks, dk[1]) and not (
                        self.watch_expired and dk in self.watch_expired):
                    self.cas_dirty = True
                    break
        if self.cas_dirty:
            self._unwatch_all()
            if not quiet:
                self.out.nil_array()
            return 0
        self._unwatch_all()
        if not quiet:
            self.out.array(len(q))
        if not ks.bl.grouping:
            ks.bl.group_begin()
            grouped = True
        try:
            for cmd, argv in q:
                self.call(<Command>cmd, <list>argv)
        finally:
            if grouped:
                ks.bl.group_end()
            self.exec_ran = self.reply_mode & R_QUIET  # (call() takes it at once)
        return 0

    def _unwatch_all(self):
        cdef Db db
        if self.watched_keys:
            # (db, key): WATCH is per db (the Db object of the index: SWAPDB
            # keeps watches with their index, as Redis)
            for db, key in self.watched_keys:
                lst = db.watched.get(key)
                if lst is not None:
                    try:
                        lst.remove(self)
                    except ValueError:
                        pass
                    if not lst:
                        del db.watched[key]
        self.watched_keys = None
        self.watch_expired = None
        self.cas_dirty = False

    # ---- Python API for admin commands -------------------------------------

    def begin_multi(self):
        self.in_multi = True
        self.multi_error = False
        self.mqueue = []

    def discard_multi(self):
        self.in_multi = False
        self.multi_error = False
        self.mqueue = None
        self._unwatch_all()

    def run_exec(self):
        self.exec_multi()

    def watch(self, keys):
        cdef Keyspace ks = self.ks
        cdef Db db = self.db
        if self.watched_keys is None:
            self.watched_keys = []
        for key in keys:
            dk = (db, key)
            if dk in self.watched_keys:
                continue
            self.watched_keys.append(dk)
            if _key_expired(db, ks, key):
                if self.watch_expired is None:
                    self.watch_expired = set()
                self.watch_expired.add(dk)
            lst = db.watched.get(key)
            if lst is None:
                db.watched[key] = [self]
            else:
                lst.append(self)

    def unwatch(self):
        self._unwatch_all()

    @property
    def last_interaction(self):
        return self.last_ms / 1000.0

    @property
    def multi_count(self):
        return -1 if not self.in_multi else len(self.mqueue)

    @property
    def qbuf(self):
        return self.ibuf.len - self.ipos

    @property
    def qbuf_running(self):
        """The query buffer as Redis counts it while this client's own command
        runs (CLIENT LIST/INFO of itself): every byte read, the running
        command's included (consumed input is dropped after the batch)."""
        return self.ibuf.len

    @property
    def obuf(self):
        return self.out.len

    @property
    def mem(self):
        """CLIENT LIST's memory fields: (qbuf-free, argv-mem, multi-mem, omem,
        tot-mem) in bytes. omem: replies not yet sent (this client's reply
        buffer and what its transport holds); tot-mem: its buffers'
        allocations and omem, plus a fixed estimate of the client itself."""
        cdef Py_ssize_t multi = 0, pending = 0
        if self.mqueue:
            for _cmd, argv in self.mqueue:
                for a in argv:
                    multi += PyBytes_GET_SIZE(a)
        if self.transport is not None:
            pending = self.transport.get_write_buffer_size()
        omem = self.out.len + pending
        return (self.ibuf.cap - self.ibuf.len, 0, multi, omem,
                self.ibuf.cap + self.out.cap + multi + pending + CLIENT_OVERHEAD)

    @property
    def last_cmd_name(self):
        """The full name of the last command run (CLIENT LIST's cmd=)."""
        if self.last_cmd is None:
            return b"NULL"
        return (<Command>self.last_cmd).fullname

    def write_reply(self, value):
        """Send a reply now (blocked clients woken by the server)."""
        if not (self.reply_mode & R_QUIET):
            self.out.pyvalue(value)
        self.write_now()

    def unblock(self, value=None, Py_ssize_t mark=-1):
        """The blocked request ends: value its reply (NO_REPLY: what it wrote
        since out's length was mark is its reply), silenced by CLIENT REPLY
        OFF or a SKIP before it, as Redis."""
        self.blocked = False
        if self.reply_mode & R_QUIET:
            if 0 <= mark <= self.out.len:
                self.out.len = mark
        elif value is not _NO_REPLY:
            self.out.pyvalue(value)
        if self.reply_mode:
            self._reply_next()
        self.flush()
        self._schedule()

    def block(self):
        self.blocked = True

    def deliver(self, bytes data, bint now):
        """A Pub/Sub message (or any push) for this client: after what its
        output buffer holds, written at once if now (another client is
        running: this one's replies are all out). A subscriber whose unsent
        output passes PUBSUB_HARD_LIMIT is closed, as Redis does with its
        client-output-buffer-limit for pubsub clients."""
        if self.closing:
            return 0
        self.out.put_raw(PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data))
        if not now and self.reply_mode & R_QUIET:
            self.push_end = self.out.len  # (its own command's: _quiet keeps it)
        if now:
            self.write_now()
            if self.transport is not None and \
                    self.transport.get_write_buffer_size() > PUBSUB_HARD_LIMIT:
                log.warning("Client id=%d addr=%s closed for overcoming of output buffer "
                            "limits (pubsub, %d bytes).", self.id, self.addr,
                            self.transport.get_write_buffer_size())
                self.closing = True
                self.transport.abort()
        return 1

    def resume(self, Command cmd, list argv):
        """Run a request that waited (CLIENT PAUSE), then the rest of the
        pipeline: the client was blocked and is unblocked here."""
        self.blocked = False
        self.ks.now = wall_ms()
        self.tmark = mono_ns()
        self.run_cmd(cmd, argv)
        if not self.blocked:
            self._schedule()
        self.flush()
        if self.srv.on_backlog is not None and self.ks.bl.dirty:
            self.ks.bl.dirty = False
            self.srv.on_backlog()

    def close(self):
        self.closing = True
        if self.transport is not None:
            self.flush_now()
            self.transport.close()

    def close_after_reply(self):
        self.closing = True
        if self.transport is not None:
            self.flush_now()
            self.transport.close()

    def aof_release(self):
        """The append-only log took what this client's replies waited for."""
        self.aof_wait = False
        self.write_out()

    def detach(self):
        """Hand the connection to another protocol (a replication link): stop
        executing this client's requests and forget it as a client."""
        self.blocked = True
        self.srv.clients.pop(self.id, None)
        self._unwatch_all()

    def feed(self, bytes data):
        """Test hook: run data as if read from the socket; return the replies."""
        self.data_received(data)
        return self.out.take()

    def run(self, *args):
        """Test hook: execute one command given as arguments; return raw reply."""
        self.ks.now = wall_ms()
        self.tmark = mono_ns()
        self.execute([a if isinstance(a, bytes) else str(a).encode() for a in args])
        return self.out.take()


cdef bint _key_expired(Db db, Keyspace ks, object key):
    """The key holds a value whose TTL has passed (not yet deleted)."""
    cdef PyObject* p = kt_get(&db.d.t, key)
    return p != NULL and ks.is_expired(<CObj>p)


cdef bytes _clean(bytes b):
    return b.replace(b"\r", b" ").replace(b"\n", b" ")


cdef int _unknown_command(Client c, list argv) except -1:
    # Redis: each arg as "'%.*s' " while the list is under 128 bytes
    cdef bytearray args = bytearray()
    cdef Py_ssize_t i
    for i in range(1, len(argv)):
        if len(args) >= 128:
            break
        args += b"'" + (<bytes>argv[i])[:128 - len(args)] + b"' "
    msg = (b"ERR unknown command '" + (<bytes>argv[0])[:128] + b"', with args beginning with: "
           + bytes(args))
    return c.reject(None, _clean(msg))


def _fmt_addr(addr):
    if addr is None:
        return ""
    if isinstance(addr, tuple):
        host = addr[0]
        if ":" in host:
            return "%s:%d" % (host, addr[1])
        return "%s:%d" % (host, addr[1])
    return str(addr)


# the dispatch bits by flag name (constdb/commands/table.py FLAG_BITS and NOQUEUE_BIT)
FLAG = {
    "write": F_WRITE, "readonly": F_READONLY, "admin": F_ADMIN, "no_auth": F_NOAUTH,
    "noqueue": F_NOQUEUE, "fast": F_FAST, "noscript": F_NOSCRIPT, "loading": F_LOADING,
    "stale": F_STALE, "denyoom": F_DENYOOM, "pubsub": F_PUBSUB, "blocking": F_BLOCKING,
    "no_multi": F_NOMULTI, "allow_busy": F_ALLOW_BUSY,
}
