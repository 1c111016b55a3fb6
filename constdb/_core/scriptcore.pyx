"""The hot path of Lua scripts (constdb/scripting.py's ScriptEngine derives
from ScriptCore): running a compiled script, and redis.call / redis.pcall,
which lupa calls with the Lua arguments as a tuple of Python values.

A call builds the command's argv from that tuple, resolves the command in
the server's C table, checks what Redis checks for scripts (arity, noscript,
writes in a read-only script), runs it on the scripts' own Client through
Client.call (the normal handlers, stats, MONITOR), and hands the reply back
to Lua: bulk strings, integers and nil converted here, statuses as {ok=...},
the rest by the prelude's RESP parser. No Python frame runs on the way.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from libc.stdint cimport uint64_t
from libc.stdlib cimport strtoll
from libc.string cimport memchr

from constdb._core.keyspace cimport Keyspace
from constdb._core.protocol cimport Client, Command, Server

from constdb._core.codec import RespError
from constdb._core.protocol import FLAG, NO_REPLY


cdef extern from "<time.h>" nogil:
    ctypedef long time_t
    cdef struct timespec:
        time_t tv_sec
        long tv_nsec
    int clock_gettime(int clk_id, timespec* tp)
    int CLOCK_MONOTONIC

cdef extern from "Python.h":
    object PyLong_FromLongLong(long long v)


cdef inline uint64_t mono_ns() noexcept:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return <uint64_t>ts.tv_sec * 1000000000 + <uint64_t>ts.tv_nsec


cdef int F_WRITE = FLAG["write"]
cdef int F_NOSCRIPT = FLAG["noscript"]
cdef int F_CHECK = F_WRITE | F_NOSCRIPT
cdef int F_DENYOOM = FLAG["denyoom"]

cdef bytes E_NOARGS = b"-ERR Please specify at least one argument for this redis lib call\r\n"
cdef bytes E_BADARG = b"-ERR Lua redis lib command arguments must be strings or integers\r\n"
cdef bytes E_UNKNOWN = b"-ERR Unknown Redis command called from script\r\n"
cdef bytes E_ARITY = b"-ERR Wrong number of args calling Redis command from script\r\n"
cdef bytes E_NOSCRIPT = b"-ERR This Redis command is not allowed from script\r\n"
cdef bytes E_READONLY = b"-ERR Write commands are not allowed from read-only scripts.\r\n"
cdef bytes E_OOM = b"-OOM command not allowed when used memory > 'maxmemory'.\r\n"

NOSCRIPT = "NOSCRIPT No matching script. Please use EVAL."
HOOK_COUNT = 100_000  # VM instructions between two clock checks of a running script
cdef int _HOOK_COUNT = HOOK_COUNT


class ScriptError(Exception):
    """An error redis.call (and the other redis.* functions) raise in the
    script: a Lua error whose text is err."""

    def __init__(self, err):
        super().__init__(err.decode("utf-8", "replace"))
        self.err = err


cdef class Script:
    """A cached EVAL script, or a library function (is_fn: sha is its name)."""

    cdef public bytes sha
    cdef public bytes body
    cdef public object fn          # the compiled Lua function
    cdef public bint no_writes
    cdef public bint allow_oom     # its flags allow it to run out of memory
    cdef public bint shebang
    cdef public bint is_fn
    cdef public list flags
    cdef public object desc
    cdef public object lib

    def __init__(self, bytes sha, bytes body, fn, bint no_writes, bint shebang):
        self.sha = sha
        self.body = body
        self.fn = fn
        self.no_writes = no_writes
        self.allow_oom = False
        self.shebang = shebang
        self.is_fn = False
        self.flags = []
        self.desc = None
        self.lib = None


cdef class ScriptCore:
    """The state a running script needs, and the calls it makes."""

    cdef public Server srv
    cdef public Client client      # the scripts' client: commands called by scripts run on it
    cdef public object app
    cdef public object lua
    cdef public object table_from  # lua.table_from
    cdef public object _run        # the prelude's run(f, name, r3, count, is_fn, nkeys, ...)
    cdef public object _parse      # the prelude's RESP -> Lua parser
    cdef public object running     # the calling client while a script runs
    cdef public object running_fn  # the library function running (FUNCTION STATS)
    cdef public list running_argv
    cdef public bint read_only
    cdef public bint wrote
    cdef public bint oom           # out of memory when the running script started
    cdef public bint killed
    cdef public double start
    cdef public dict scripts       # the script cache: sha (lower case hex) -> Script
    cdef public object numkeys     # scripting.numkeys (its errors as Redis's)

    def evalsha(self, Client c, list argv):
        """EVALSHA (scripting.engine makes the command table call this)."""
        return self._evalsha(c, argv, False)

    def evalsha_ro(self, Client c, list argv):
        return self._evalsha(c, argv, True)

    cdef object _evalsha(self, Client c, list argv, bint ro):
        cdef bytes a = argv[2], sha = argv[1]
        cdef Py_ssize_t n
        cdef object s = None
        if PyBytes_GET_SIZE(sha) == 40:
            s = self.scripts.get(sha)
            if s is None:
                s = self.scripts.get(sha.lower())
            if s is not None and (<Script>s).shebang and not (<Script>s).no_writes \
                    and not (<Script>s).allow_oom:
                self.check_oom(s)   # (processCommand's, before the command's own checks)
        if PyBytes_GET_SIZE(a) == 1 and 48 <= PyBytes_AS_STRING(a)[0] <= 57:
            n = PyBytes_AS_STRING(a)[0] - 48
            if n > len(argv) - 3:
                n = self.numkeys(argv)
        else:
            n = self.numkeys(argv)
        if s is None:
            raise RespError(NOSCRIPT)
        return self._run_script(c, <Script>s, argv, n, ro)

    cdef bytes _exec(self, tuple args):
        """Run redis.call's arguments as a command for the script: its reply
        (RESP bytes; the checks' errors as Redis words them)."""
        cdef Py_ssize_t n = len(args), i
        cdef list argv
        cdef Command cmd
        cdef int flags, arity
        cdef object a
        if n == 0:
            return E_NOARGS
        argv = list(args)
        for i in range(n):
            a = args[i]
            if type(a) is not bytes:
                if type(a) is int or type(a) is float:
                    argv[i] = b"%.17g" % a
                else:
                    return E_BADARG
        cmd = self.srv.lookup_command(argv[0])
        if cmd is None:
            return E_UNKNOWN
        if cmd.subcommands is not None and n >= 2:
            cmd = cmd.subcommands.get((<bytes>argv[1]).lower())
            if cmd is None:
                return E_UNKNOWN
        arity = cmd.arity
        if (arity > 0 and n != arity) or n < -arity:
            return E_ARITY
        flags = cmd.flags
        if flags & F_CHECK:
            if flags & F_NOSCRIPT:
                return E_NOSCRIPT
            if self.read_only:
                return E_READONLY
            if self.oom and not self.wrote and flags & F_DENYOOM:
                return E_OOM
            self.wrote = True
        self.client.tmark = mono_ns()
        self.client.call(cmd, argv)
        return self.client.out.take()

    cdef object _value(self, bytes r):
        """A reply as the Lua value Redis converts it to (not an error)."""
        cdef const char* p = PyBytes_AS_STRING(r)
        cdef Py_ssize_t n = PyBytes_GET_SIZE(r)
        cdef const char* nl
        cdef char t = p[0]
        if t == 36:  # $
            if p[1] == 45:
                return False
            nl = <const char*>memchr(p, 10, n)
            return r[nl - p + 1 : n - 2]
        if t == 58:  # :
            return PyLong_FromLongLong(strtoll(p + 1, NULL, 10))
        if t == 43:  # +
            return self.table_from({b"ok": r[1 : n - 2]})
        return self._parse(r, 1)

    def lua_call(self, *args):
        """redis.call: the reply as the Lua value Redis converts it to; an
        error reply raised."""
        cdef bytes r = self._exec(args)
        if PyBytes_AS_STRING(r)[0] == 45:  # -
            raise ScriptError(r[1 : PyBytes_GET_SIZE(r) - 2])
        return self._value(r)

    def lua_pcall(self, *args):
        """redis.pcall: as redis.call, an error reply returned as {err=...}."""
        cdef bytes r = self._exec(args)
        if PyBytes_AS_STRING(r)[0] == 45:
            return self.table_from({b"err": r[1 : PyBytes_GET_SIZE(r) - 2]})
        return self._value(r)

    def run(self, Client c, Script s, list argv, int nkeys, bint ro):
        """Run script s for client c: its reply written."""
        return self._run_script(c, s, argv, nkeys, ro)

    cdef object _run_script(self, Client c, Script s, list argv, int nkeys, bint ro):
        cdef Client cl = self.client
        cdef bint opened
        cdef bytes reply
        cdef Keyspace ks = <Keyspace>self.srv.ks
        cdef object ev = self.srv.evictor
        if ro and s.shebang and not s.no_writes:
            raise RespError("ERR Can not execute a script with write flag using *_ro command.")
        # Redis's pre_command_oom_state: a script's first write is refused if
        # the node was out of memory when it started (allow-oom: never)
        self.oom = (not s.allow_oom and ev is not None and ks.mem_ds > ks.ds_limit
                    and ev.run() == 1)
        self.running = c
        self.running_fn = s if s.is_fn else None
        self.running_argv = argv
        self.read_only = ro or s.no_writes
        self.wrote = False
        self.killed = False
        self.start = mono_ns() / 1e9
        cl.db = c.db  # the script starts in its caller's db; its SELECTs are its own
        if self.srv.monitor is not None and self.app is not None:
            self.app.monitor.feed_script(c, argv)  # before the script's own commands
        if cl.resp != 2:
            cl.resp = 2
            cl.out.resp3 = False
        opened = cl.script_group(True)
        try:
            reply = self._run(s.fn, s.sha, c.resp == 3, _HOOK_COUNT, s.is_fn, nkeys, *argv[3:])
        finally:
            if opened:
                cl.script_group(False)
            self.running = None
            self.running_fn = None
            if self.srv.script_busy:
                self._end_busy()
            self.killed = False
        if self.wrote:
            c.last_write_uuid = self.srv.ks.own_last
        c.out.write_raw(reply)
        return NO_REPLY
