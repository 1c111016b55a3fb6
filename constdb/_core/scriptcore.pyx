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

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.ref cimport PyObject
from libc.math cimport copysign
from libc.stdint cimport uint64_t
from libc.stdio cimport snprintf
from libc.stdlib cimport strtoll
from libc.string cimport memchr
from constdb._core.dl cimport dl_loaded, dl_sym

from constdb._core.backlog cimport Backlog
from constdb._core.codec cimport WBuf
from constdb._core.keyspace cimport Keyspace
from constdb._core.protocol cimport Client, Command, Server

import os

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
cdef Py_ssize_t MAX_VARARGS = 4000  # the lupa path: more arguments go as tables


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
    cdef int ref                   # fn's registry reference (the native path), LUA_NOREF
    cdef list unrefs               # where to leave ref when this goes (ScriptCore.unrefs)

    def __init__(self, bytes sha, bytes body, fn, bint no_writes, bint shebang):
        self.ref = LUA_NOREF
        self.unrefs = None
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

    def __dealloc__(self):
        # released by the engine before its next run (never from here: this
        # may run inside Lua's garbage collector)
        if self.ref != LUA_NOREF and self.unrefs is not None:
            self.unrefs.append(self.ref)


cdef class ScriptCore:
    """The state a running script needs, and the calls it makes."""

    cdef public Server srv
    cdef public Client client      # the scripts' client: commands called by scripts run on it
    cdef public object app
    cdef public object lua
    cdef public object table_from  # lua.table_from
    cdef public object _run        # the prelude's run(f, name, r3, count, is_fn, nkeys, ...)
    cdef public object _parse      # the prelude's RESP -> Lua parser
    cdef public object _run_tables  # the prelude's run(f, name, r3, count, is_fn, keys, argv)
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
    cdef lua_State* L              # the native path's state (NULL: the lupa path)
    cdef int run_ref               # the prelude's run, parse (registry references)
    cdef int parse_ref
    cdef public list unrefs        # registry references of Scripts gone
    cdef public object native_off  # why the native path is off (None: it is on)
    cdef object G                  # the runtime's globals (lupa)

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
        """Run redis.call's arguments (the lupa path) as a command for the
        script: its reply (RESP bytes; the checks' errors as Redis words them)."""
        cdef Py_ssize_t n = len(args), i
        cdef list argv
        cdef object a
        cdef bytes err
        if n == 0:
            return E_NOARGS
        argv = list(args)
        for i in range(n):
            a = args[i]
            if type(a) is not bytes:
                if type(a) is int or type(a) is float:
                    if a != a:  # NaN: C's "%.17g" (Redis's) shows its sign, Python's not
                        argv[i] = b"-nan" if copysign(1.0, a) < 0 else b"nan"
                    else:
                        argv[i] = b"%.17g" % a
                else:
                    return E_BADARG
        err = self._dispatch(argv, n)
        if err is not None:
            return err
        return self.client.out.take()

    cdef bytes _dispatch(self, list argv, Py_ssize_t n):
        """Resolve argv (n > 0 items), check it as Redis checks a script's
        command and run it: None (its reply is in self.client.out), or the
        error reply of a check."""
        cdef Command cmd
        cdef int flags, arity
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
        return None

    cdef int _c_call(self, lua_State* L, bint protected) except -2:
        """redis.call / redis.pcall of the native path: the arguments from
        L's stack, the reply pushed on it (R_OK, R_ERROR, R_PARSE)."""
        cdef int n = lua_gettop(L), i, t
        cdef size_t ln
        cdef const char* p
        cdef char nb[40]
        cdef list argv = []
        cdef bytes err
        cdef WBuf out
        if n == 0:
            return push_error(L, E_NOARGS, protected)
        for i in range(1, n + 1):
            t = lua_type(L, i)
            if t == LUA_TSTRING:
                p = lua_tolstring(L, i, &ln)
                argv.append(PyBytes_FromStringAndSize(p, <Py_ssize_t>ln))
            elif t == LUA_TNUMBER:
                argv.append(PyBytes_FromStringAndSize(nb, format_number(nb, lua_tonumber(L, i))))
            else:
                return push_error(L, E_BADARG, protected)
        out = self.client.out
        out.len = 0
        err = self._dispatch(argv, n)
        if err is not None:
            return push_error(L, err, protected)
        if out.len < 3:
            out.len = 0
            raise RuntimeError("no reply")
        if not lua_checkstack(L, 8):
            out.len = 0
            raise MemoryError("Lua stack")
        p = out.buf
        if p[0] == 45:  # - an error reply
            push_table1(L, b"err", p + 1, <size_t>out.len - 3)
            out.len = 0
            return R_OK if protected else R_ERROR
        if push_value(L, p, out.len, 0, 0) < 0:
            # a RESP3 reply: the prelude's parser converts it
            lua_settop(L, n)
            lua_rawgeti(L, LUA_REGISTRYINDEX, self.parse_ref)
            lua_pushlstring(L, p, <size_t>out.len)
            lua_pushnumber(L, 1)
            out.len = 0
            return R_PARSE
        out.len = 0
        return R_OK

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
        return self._parse(r, 1)[0]  # (the parser returns (value, end))

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
        cdef lua_State* L = self.L
        cdef int top = 0
        cdef size_t ln = 0
        cdef const char* p = NULL
        if L != NULL:
            top = lua_gettop(L)
        # one backlog group around the script's writes (as an EXEC's)
        cdef Backlog bl = ks.bl
        opened = not bl.grouping
        if opened:
            bl.group_begin()
        try:
            if L != NULL:
                self._run_native(L, c, s, argv, nkeys)
            elif len(argv) <= MAX_VARARGS:
                reply = self._run(s.fn, s.sha, c.resp == 3, _HOOK_COUNT, s.is_fn, nkeys, *argv[3:])
            else:
                # more than Lua's stack takes as arguments: KEYS and ARGV as tables
                reply = self._run_tables(s.fn, s.sha, c.resp == 3, _HOOK_COUNT, s.is_fn,
                                         self.table_from(argv[3 : 3 + nkeys]),
                                         self.table_from(argv[3 + nkeys :]))
        finally:
            if opened:
                bl.group_end()
            self.running = None
            self.running_fn = None
            if self.srv.script_busy:
                self._end_busy()
            self.killed = False
        if self.wrote:
            c.last_write_uuid = self.srv.ks.own_last
        if L != NULL:
            # the reply, a string run left on the stack
            p = lua_tolstring(L, -1, &ln)
            try:
                c.out.put_raw(p, <Py_ssize_t>ln)
            finally:
                lua_settop(L, top)
        else:
            c.out.write_raw(reply)
        return NO_REPLY

    cdef int _run_native(self, lua_State* L, Client c, Script s, list argv, int nkeys) except -1:
        """Call the prelude's run(f, name, r3, count, is_fn, keys, argv) with
        lua_pcall: its reply (a string) left on L's stack."""
        cdef int top = lua_gettop(L), status, i
        cdef Py_ssize_t n = len(argv) - 3
        cdef bytes a
        cdef size_t ln
        cdef const char* p
        if self.unrefs:
            while self.unrefs:
                luaL_unref(L, LUA_REGISTRYINDEX, <int>self.unrefs.pop())
        if s.ref == LUA_NOREF:
            s.ref = self._ref_of(L, s.fn)
            s.unrefs = self.unrefs
        if not lua_checkstack(L, 10):
            raise MemoryError("Lua stack")
        lua_rawgeti(L, LUA_REGISTRYINDEX, self.run_ref)
        lua_rawgeti(L, LUA_REGISTRYINDEX, s.ref)
        lua_pushlstring(L, PyBytes_AS_STRING(s.sha), <size_t>PyBytes_GET_SIZE(s.sha))
        lua_pushboolean(L, c.resp == 3)
        lua_pushnumber(L, _HOOK_COUNT)
        lua_pushboolean(L, s.is_fn)
        lua_createtable(L, nkeys, 0)
        for i in range(nkeys):
            a = <bytes>argv[3 + i]
            lua_pushlstring(L, PyBytes_AS_STRING(a), <size_t>PyBytes_GET_SIZE(a))
            lua_rawseti(L, -2, i + 1)
        lua_createtable(L, <int>(n - nkeys), 0)
        for i in range(<int>(n - nkeys)):
            a = <bytes>argv[3 + nkeys + i]
            lua_pushlstring(L, PyBytes_AS_STRING(a), <size_t>PyBytes_GET_SIZE(a))
            lua_rawseti(L, -2, i + 1)
        status = lua_pcall(L, 7, 1, 0)
        p = lua_tolstring(L, -1, &ln) if lua_type(L, -1) == LUA_TSTRING else NULL
        if status != 0 or p == NULL:
            m = PyBytes_FromStringAndSize(p, <Py_ssize_t>ln) if p != NULL else b"?"
            lua_settop(L, top)
            raise RespError("ERR Error running script " + s.sha.decode() + ", "
                            + m.decode("utf-8", "replace"))
        return 0

    cdef int _ref_of(self, lua_State* L, object v) except? -1:
        """A registry reference to the Lua value v (a lupa object)."""
        cdef int r
        self.G[b"__constdb_ref"] = v
        lua_getfield(L, LUA_GLOBALSINDEX, b"__constdb_ref")
        r = luaL_ref(L, LUA_REGISTRYINDEX)
        self.G[b"__constdb_ref"] = None
        return r

    def native_functions(self, lua, str lupa_file):
        """Set up the native path for the runtime lua (before the prelude
        runs): (redis.call, redis.pcall) as Lua C functions, or None and
        native_off says why (the lupa path is used)."""
        cdef lua_State* L
        cdef int top
        cdef size_t ln
        cdef const char* p
        self.L = NULL
        self.unrefs = []
        if os.environ.get(FORCE_PYTHON_ENV, "") not in ("", "0"):
            self.native_off = f"{FORCE_PYTHON_ENV} is set"
            return None
        try:
            resolve(os.fsencode(lupa_file))
        except LookupError as e:
            self.native_off = str(e)
            return None
        global cdb_attach_L
        cdb_attach_L = NULL
        attach = lua.execute(b"return package and package.loadlib(...)",
                             os.fsencode(__file__), b"constdb_lua_attach")
        if attach is None or not callable(attach):
            self.native_off = "package.loadlib of the scriptcore module failed"
            return None
        attach()
        L = cdb_attach_L
        cdb_attach_L = NULL
        if L == NULL:
            self.native_off = "constdb_lua_attach was not called"
            return None
        # check it: the runtime's main thread, whose globals lupa sees
        top = lua_gettop(L)
        if lua_pushthread(L) != 1:
            lua_settop(L, top)
            self.native_off = "not the main Lua thread"
            return None
        lua_settop(L, top)
        token = os.urandom(16).hex().encode()
        self.G = lua.globals()
        self.G[b"__constdb_probe"] = token
        lua_getfield(L, LUA_GLOBALSINDEX, b"__constdb_probe")
        p = lua_tolstring(L, -1, &ln)
        ok = p != NULL and PyBytes_FromStringAndSize(p, <Py_ssize_t>ln) == token
        lua_settop(L, top)
        self.G[b"__constdb_probe"] = None
        if not ok:
            self.native_off = "the Lua state does not hold lupa's globals"
            return None
        lua_pushlightuserdata(L, <void*><PyObject*>self)
        lua_pushcclosure(L, cdb_call, 1)
        lua_setfield(L, LUA_GLOBALSINDEX, b"__constdb_call")
        lua_pushlightuserdata(L, <void*><PyObject*>self)
        lua_pushcclosure(L, cdb_pcall, 1)
        lua_setfield(L, LUA_GLOBALSINDEX, b"__constdb_pcall")
        fns = (self.G[b"__constdb_call"], self.G[b"__constdb_pcall"])
        self.G[b"__constdb_call"] = None
        self.G[b"__constdb_pcall"] = None
        self.L = L
        self.native_off = None
        return fns

    def native_refs(self, run, parse):
        """The prelude's run (keys and argv as tables) and parser, by reference."""
        if self.L != NULL:
            self.run_ref = self._ref_of(self.L, run)
            self.parse_ref = self._ref_of(self.L, parse)

    @property
    def native(self):
        """True: scripts run through Lua's C API (else through lupa)."""
        return self.L != NULL


# ---- Lua's C API, called directly (the native path) ------------------------
#
# lupa's Lua 5.1 module exports the whole C API. Its functions are resolved
# with dlsym on that module (already loaded by lupa) into the pointers below.
# redis.call / redis.pcall are then C functions of this module that read
# their arguments from the Lua stack and push the reply converted straight
# onto it, and a script runs by registry reference with lua_pcall: no
# Python <-> Lua conversion through lupa on the way. The lua_State comes from
# Lua itself: package.loadlib of this module's own constdb_lua_attach, called
# once through lupa, records the state it is called with (the runtime's main
# thread, checked). CONSTDB_LUA_PYTHON=1, a missing symbol or a failed check:
# the lupa path (ScriptCore.lua_call / lua_pcall, the prelude's run_va).
#
# longjmp: lua_error (and a memory error of the Lua allocator) unwinds with
# longjmp. It never crosses a Cython frame that holds Python references: the
# work with Python objects (_c_call, under `with gil`) returns a status after
# everything is released, and the thin C functions (cdb_call, cdb_pcall, no
# Python object at all) then raise the error or call the prelude's parser.

FORCE_PYTHON_ENV = "CONSTDB_LUA_PYTHON"

cdef extern from *:
    """
    typedef struct lua_State lua_State;
    #define CDB_LUA_REGISTRYINDEX (-10000)
    #define CDB_LUA_GLOBALSINDEX (-10002)
    #define CDB_LUA_UPVALUE1 (CDB_LUA_GLOBALSINDEX - 1)
    /* the state Lua calls this with (package.loadlib of this module) */
    static lua_State *cdb_attach_L = NULL;
    __attribute__((visibility("default"))) int constdb_lua_attach(lua_State *L);
    int constdb_lua_attach(lua_State *L) { cdb_attach_L = L; return 0; }
    """
    ctypedef struct lua_State:
        pass
    lua_State* cdb_attach_L
    int LUA_REGISTRYINDEX "CDB_LUA_REGISTRYINDEX"
    int LUA_GLOBALSINDEX "CDB_LUA_GLOBALSINDEX"
    int LUA_UPVALUE1 "CDB_LUA_UPVALUE1"

cdef enum:
    LUA_TNIL = 0
    LUA_TBOOLEAN = 1
    LUA_TNUMBER = 3
    LUA_TSTRING = 4
    LUA_NOREF = -2
    R_OK = 1          # _c_call: the value to return is on the stack
    R_ERROR = -1      # the error value is on the stack: lua_error
    R_PARSE = 2       # the prelude's parser, the reply and 1 are on the stack: lua_call
    MAX_DEPTH = 64    # nested arrays converted here (deeper: the prelude's parser)

ctypedef int (*lua_CFunction)(lua_State*) noexcept nogil
ctypedef int (*f_L)(lua_State*) noexcept nogil
ctypedef void (*f_Lv)(lua_State*, int) noexcept nogil
ctypedef int (*f_Li)(lua_State*, int) noexcept nogil
ctypedef const char* (*f_tolstring)(lua_State*, int, size_t*) noexcept nogil
ctypedef double (*f_tonumber)(lua_State*, int) noexcept nogil
ctypedef void (*f_pushlstring)(lua_State*, const char*, size_t) noexcept nogil
ctypedef void (*f_pushnumber)(lua_State*, double) noexcept nogil
ctypedef void (*f_Lii)(lua_State*, int, int) noexcept nogil
ctypedef void (*f_field)(lua_State*, int, const char*) noexcept nogil
ctypedef void (*f_pushcclosure)(lua_State*, lua_CFunction, int) noexcept nogil
ctypedef void (*f_pushptr)(lua_State*, void*) noexcept nogil
ctypedef void* (*f_touserdata)(lua_State*, int) noexcept nogil
ctypedef int (*f_pcall)(lua_State*, int, int, int) noexcept nogil

cdef f_L lua_gettop = NULL
cdef f_Lv lua_settop = NULL
cdef f_Li lua_type = NULL
cdef f_tolstring lua_tolstring = NULL
cdef f_tonumber lua_tonumber = NULL
cdef f_pushlstring lua_pushlstring = NULL
cdef f_pushnumber lua_pushnumber = NULL
cdef f_Lv lua_pushboolean = NULL
cdef f_Lii lua_createtable = NULL
cdef f_field lua_setfield = NULL
cdef f_field lua_getfield = NULL
cdef f_Lii lua_rawseti = NULL
cdef f_Lii lua_rawgeti = NULL
cdef f_pushcclosure lua_pushcclosure = NULL
cdef f_pushptr lua_pushlightuserdata = NULL
cdef f_touserdata lua_touserdata = NULL
cdef f_pcall lua_pcall = NULL
cdef f_Lii lua_call = NULL
cdef f_L lua_error = NULL
cdef f_Li lua_checkstack = NULL
cdef f_L lua_pushthread = NULL
cdef f_Li luaL_ref = NULL
cdef f_Lii luaL_unref = NULL
cdef int resolved = 0  # 0 not yet, 1 resolved, -1 failed


cdef inline void *sym(void *handle, const char *name) except NULL:
    return dl_sym(handle, name, "lupa's Lua 5.1 module")


cdef int resolve(bytes path) except -1:
    """The Lua C API, from lupa's Lua 5.1 module (path: its file)."""
    global lua_gettop, lua_settop, lua_type, lua_tolstring, lua_tonumber, lua_pushlstring
    global lua_pushnumber, lua_pushboolean, lua_createtable, lua_setfield, lua_getfield
    global lua_rawseti, lua_rawgeti, lua_pushcclosure, lua_pushlightuserdata, lua_touserdata
    global lua_pcall, lua_call, lua_error, lua_checkstack, lua_pushthread, luaL_ref, luaL_unref
    global resolved
    if resolved:
        if resolved < 0:
            raise LookupError("the Lua C API could not be resolved")
        return 0
    resolved = -1
    cdef void *h = dl_loaded(path)
    lua_gettop = <f_L>sym(h, b"lua_gettop")
    lua_settop = <f_Lv>sym(h, b"lua_settop")
    lua_type = <f_Li>sym(h, b"lua_type")
    lua_tolstring = <f_tolstring>sym(h, b"lua_tolstring")
    lua_tonumber = <f_tonumber>sym(h, b"lua_tonumber")
    lua_pushlstring = <f_pushlstring>sym(h, b"lua_pushlstring")
    lua_pushnumber = <f_pushnumber>sym(h, b"lua_pushnumber")
    lua_pushboolean = <f_Lv>sym(h, b"lua_pushboolean")
    lua_createtable = <f_Lii>sym(h, b"lua_createtable")
    lua_setfield = <f_field>sym(h, b"lua_setfield")
    lua_getfield = <f_field>sym(h, b"lua_getfield")
    lua_rawseti = <f_Lii>sym(h, b"lua_rawseti")
    lua_rawgeti = <f_Lii>sym(h, b"lua_rawgeti")
    lua_pushcclosure = <f_pushcclosure>sym(h, b"lua_pushcclosure")
    lua_pushlightuserdata = <f_pushptr>sym(h, b"lua_pushlightuserdata")
    lua_touserdata = <f_touserdata>sym(h, b"lua_touserdata")
    lua_pcall = <f_pcall>sym(h, b"lua_pcall")
    lua_call = <f_Lii>sym(h, b"lua_call")
    lua_error = <f_L>sym(h, b"lua_error")
    lua_checkstack = <f_Li>sym(h, b"lua_checkstack")
    lua_pushthread = <f_L>sym(h, b"lua_pushthread")
    luaL_ref = <f_Li>sym(h, b"luaL_ref")
    luaL_unref = <f_Lii>sym(h, b"luaL_unref")
    resolved = 1
    return 0


cdef inline void push_table1(lua_State* L, const char* key, const char* p, size_t n) noexcept nogil:
    """{key = p[:n]} ({ok=...} of a status, {err=...} of an error)."""
    lua_createtable(L, 0, 1)
    lua_pushlstring(L, p, n)
    lua_setfield(L, -2, key)


cdef Py_ssize_t push_value(lua_State* L, const char* p, Py_ssize_t n, Py_ssize_t pos,
                           int depth) noexcept nogil:
    """Push the RESP2 reply at p[pos:] as the Lua value Redis converts it to;
    the position after it, or -1: a type left to the prelude's parser (RESP3)."""
    cdef const char* nl = <const char*>memchr(p + pos, 10, n - pos)
    cdef Py_ssize_t e, i
    cdef long long v
    cdef char t = p[pos]
    if nl == NULL:
        return -1
    e = nl - p + 1
    if t == 36:  # $ bulk
        v = strtoll(p + pos + 1, NULL, 10)
        if v < 0:
            lua_pushboolean(L, 0)
            return e
        if v > n - e - 2:
            return -1
        lua_pushlstring(L, p + e, <size_t>v)
        return e + v + 2
    if t == 58:  # : integer
        lua_pushnumber(L, <double>strtoll(p + pos + 1, NULL, 10))
        return e
    if t == 43:  # + status
        push_table1(L, b"ok", p + pos + 1, e - pos - 3)
        return e
    if t == 45:  # - error (in an array)
        push_table1(L, b"err", p + pos + 1, e - pos - 3)
        return e
    if t == 42:  # * array
        v = strtoll(p + pos + 1, NULL, 10)
        if v < 0:
            lua_pushboolean(L, 0)
            return e
        if depth >= MAX_DEPTH or v > n or not lua_checkstack(L, 4):
            return -1
        lua_createtable(L, <int>v, 0)
        for i in range(1, v + 1):
            e = push_value(L, p, n, e, depth + 1)
            if e < 0:
                return -1
            lua_rawseti(L, -2, <int>i)
        return e
    return -1


cdef inline size_t format_number(char* buf, double x) noexcept nogil:
    """A number argument's text: "%.17g", as Redis 7.0 formats it (0/0 is "-nan")."""
    return <size_t>snprintf(buf, 40, "%.17g", x)


cdef int c_call_gil(lua_State* L, bint protected) noexcept with gil:
    cdef ScriptCore core = <ScriptCore><PyObject*>lua_touserdata(L, LUA_UPVALUE1)
    cdef bytes m
    try:
        return core._c_call(L, protected)
    except BaseException as e:
        # an unexpected Python error: a Lua error with its text, as lupa's
        m = str(e).encode("utf-8", "replace")
        lua_pushlstring(L, PyBytes_AS_STRING(m), <size_t>PyBytes_GET_SIZE(m))
        return R_ERROR


cdef int c_finish(lua_State* L, int r) noexcept nogil:
    """What the thin functions do after c_call_gil (no Python object alive)."""
    if r == R_ERROR:
        return lua_error(L)
    if r == R_PARSE:
        lua_call(L, 2, 1)
    return 1


cdef int cdb_call(lua_State* L) noexcept nogil:
    """redis.call."""
    return c_finish(L, c_call_gil(L, False))


cdef int cdb_pcall(lua_State* L) noexcept nogil:
    """redis.pcall."""
    return c_finish(L, c_call_gil(L, True))


cdef int push_error(lua_State* L, bytes e, bint protected) noexcept:
    """{err=...} of an error reply e (b"-...\\r\\n"): returned (pcall) or raised (call)."""
    push_table1(L, b"err", PyBytes_AS_STRING(e) + 1, <size_t>PyBytes_GET_SIZE(e) - 3)
    return R_OK if protected else R_ERROR
