from cpython.object cimport PyObject
from libc.stdint cimport int64_t, uint64_t

from constdb._core.codec cimport WBuf, Writer
from constdb._core.evict cimport Evictor
from constdb._core.keyspace cimport Db, Keyspace

cdef enum:
    F_WRITE = 1           # changes data: its effects form one group
    F_READONLY = 2
    F_ADMIN = 4
    F_NOAUTH = 8          # allowed before AUTH
    F_NOQUEUE = 16        # runs at once inside MULTI (EXEC, DISCARD, WATCH ...)
    F_FAST = 32
    F_NOSCRIPT = 64
    F_LOADING = 128
    F_STALE = 256
    F_DENYOOM = 512
    F_PUBSUB = 1024
    F_BLOCKING = 2048
    F_NOMULTI = 4096      # refused inside MULTI (SHUTDOWN, SAVE ...)
    F_ALLOW_BUSY = 8192   # shown by COMMAND INFO only
    F_SUBCTX = 16384      # allowed to a RESP2 client in Pub/Sub mode (not a table flag)
# (constdb/commands/table.py FLAG_BITS names these bits; a test checks they agree)

cdef enum:
    QMAX = 16             # requests parsed ahead at most (Client._fill)

ctypedef int (*cmd_fn)(Client c, list argv) except -1


cdef class Command:
    cdef public bytes name
    cdef public int arity
    cdef public int flags
    cdef public int first_key
    cdef public int last_key
    cdef public int key_step
    cdef cmd_fn fn
    cdef public object pyfn
    cdef public dict subcommands
    cdef public Command parent
    cdef public uint64_t calls
    cdef public uint64_t failed      # ran and replied with an error
    cdef public uint64_t rejected    # refused before running (arity, NOAUTH, ...)
    cdef public uint64_t nsec        # time spent running it (INFO shows usec)
    cdef uint64_t* hist              # latency histogram (LAT_BUCKETS, ns; NULL until first call)
    cdef public object spec          # its constdb.commands.table.Spec


cdef class Server:
    cdef public Keyspace ks
    cdef public dict specs          # full name -> Spec (the command table)
    cdef public dict table          # lowercase name -> Command
    cdef public dict dispatch       # name as sent (lower and UPPER) -> Command
    cdef public dict clients        # id -> Client
    cdef public object loop
    cdef public object app          # the Python application object
    cdef public bytes requirepass
    cdef public Py_ssize_t proto_max_bulk_len
    cdef public Py_ssize_t client_query_buffer_limit
    cdef public int max_exec_per_round
    cdef public int maxclients
    cdef public double timeout
    cdef public uint64_t next_client_id
    cdef public uint64_t total_commands
    cdef public uint64_t total_connections
    cdef public uint64_t rejected_connections
    cdef public uint64_t net_input_bytes
    cdef public uint64_t net_output_bytes
    cdef public uint64_t total_errors
    cdef public dict error_counts
    cdef public object on_backlog   # callable(): new records to ship
    cdef public object hiredis_reader
    cdef public bint shutting_down
    cdef public uint64_t cmd_version  # bumped when the command table changes
    cdef public object pubsub         # constdb.pubsub.PubSub (None in unit tests)
    cdef public object tracking       # constdb.tracking.Tracking (None in unit tests)
    cdef public bint track_on         # some client has CLIENT TRACKING on
    cdef public object current        # the running client, while track_on or notifications
    cdef public int64_t slowlog_ns    # slowlog-log-slower-than, in ns (-1: off)
    cdef public int64_t latency_ns    # latency-monitor-threshold, in ns (0: off)
    cdef public Evictor evictor       # maxmemory (constdb/_core/evict.pyx); None in unit tests
    # appendonly (constdb/aof.py): replies leave only once the log took every
    # record made before them (written; fsynced with appendfsync always)
    cdef public bint aof_defer
    cdef public int64_t aof_done_off  # backlog stream offset the log has taken
    cdef public list aof_waiting      # clients whose replies wait for it
    # replies are written at the end of the loop turn (Redis's
    # handleClientsWithPendingWrites in beforeSleep): the clients that have
    # output, and the bound write_pending that one call_soon per turn runs
    cdef list wpending
    cdef object wpending_cb
    # blocking, CLIENT PAUSE, MONITOR (constdb/blocking.py, monitor.py): each a
    # C-level check per command, Python only when in use
    cdef public int pause_mode      # 0 none, 1 WRITE, 2 ALL (CLIENT PAUSE)
    cdef public object monitor      # callable(client, cmd, argv) while a MONITOR is connected
    cdef public object blocking     # constdb.blocking.Blocking (serve ready keys, postpone)
    cdef public bint script_busy    # a script ran past busy-reply-threshold (scripting.py)

    cdef Command lookup_command(self, object name)
    cdef int count_error_msg(self, const char* msg, Py_ssize_t n) except -1


cdef class Client:
    cdef public Server srv
    cdef public Keyspace ks
    cdef public Db db                # its db (SELECT); the keyspace's current one while it runs
    cdef public WBuf out
    cdef public object transport
    cdef Writer ibuf
    cdef Py_ssize_t ipos
    cdef Py_ssize_t need             # don't rescan before ibuf has this many bytes
    cdef Py_ssize_t spos             # resume point of a partly scanned multibulk (0: none)
    cdef int64_t sleft               # bulks of it still to scan from spos
    cdef object perr                 # the protocol error _scan found
    cdef public uint64_t id
    cdef public object name
    cdef public object lib_name
    cdef public object lib_ver
    cdef public object addr
    cdef public object laddr
    cdef public int fd
    cdef public double ctime
    cdef public int64_t last_ms
    cdef public bint authed
    cdef public bint closing
    cdef public bint paused          # transport buffer over its high-water mark
    cdef public bint throttled       # too much unexecuted input: stop reading
    cdef bint reading
    cdef bint eof                    # the client half-closed: close once its input has run
    cdef public bint blocked
    cdef public bint no_touch        # CLIENT NO-TOUCH: its commands leave access times alone
    cdef public bint no_evict        # CLIENT NO-EVICT (flag e)
    cdef public bint in_multi
    cdef public bint multi_error
    cdef public bint cas_dirty
    cdef public list mqueue
    cdef public list watched_keys
    cdef public object watch_expired  # watched keys already expired at WATCH (a set)
    cdef public object last_cmd
    cdef public uint64_t last_write_uuid
    cdef public int resp
    cdef public bint scheduled
    cdef bytes cname                 # the last command name this client sent, as sent,
    cdef Command ccmd                # what it resolved to (pipelines repeat commands)
    cdef uint64_t cver               # Server.cmd_version when resolved
    cdef Command rcmd                # the command of the request running (EXEC while
    #                                  its queue runs; requests are parsed ahead of it)
    cdef uint64_t tmark              # mono_ns() at the end of the last command (or read start)
    # requests parsed ahead (_fill): argv lists and their commands (owned
    # references; a NULL command: look it up when it runs), where each ends
    cdef PyObject* qargv[QMAX]
    cdef PyObject* qcmd[QMAX]
    cdef Py_ssize_t qend[QMAX]
    cdef int qi                      # the next one to run
    cdef int qn                      # how many there are
    cdef uint64_t qver               # Server.cmd_version when parsed
    cdef PyObject* lpool[QMAX]       # argv lists to reuse, their items NULL (owned)
    cdef int lpn
    cdef public object subs          # its Pub/Sub subscriptions (constdb.pubsub.Subs), None: none
    cdef public object track         # CLIENT TRACKING settings (constdb.tracking.Track), None: off
    cdef public int reply_mode       # CLIENT REPLY bits (protocol.pyx R_OFF, R_SKIP_NEXT, R_SKIP)
    cdef bint exec_ran               # exec_multi ran quiet: its replies already obeyed CLIENT REPLY
    cdef Py_ssize_t push_end         # out's end after the pushes of a silenced command (_quiet)
    cdef public bint aof_wait        # in Server.aof_waiting
    cdef bint wqueued                # in Server.wpending

    cdef int process(self) except -1
    cdef int execute(self, list argv) except -1
    cdef int run_cmd(self, Command cmd, list argv) except -1
    cdef int _run_cmd(self, Command cmd, list argv) except -1
    cdef int _reply_next(self) except -1
    cdef int _quiet(self, Py_ssize_t mark) except -1
    cdef int _fill(self, int want) except -1
    cdef void _drop_queue(self) noexcept
    cdef int call(self, Command cmd, list argv) except -1
    cdef int _tracked(self, Command cmd, list argv, object prev) except -1
    cdef int _slow(self, Command cmd, list argv, uint64_t usec) except -1
    cdef int _failed(self, Command cmd, Py_ssize_t mark) except -1
    cdef int _error_reply(self, Command cmd, Py_ssize_t mark, object e) except -1
    cdef int _call_py(self, Command cmd, list argv, Py_ssize_t mark) except -1
    cdef bint _aof_hold(self) except -1
    cdef int flush(self) except -1
    cdef int write_now(self) except -1
    cdef int write_out(self) except -1
    cdef int flush_now(self) except -1
    cdef int protocol_error(self, str msg) except -1
    cdef int reject(self, Command cmd, bytes msg) except -1
    cdef int _set_reading(self) except -1
    cdef int exec_multi(self) except -1
    cdef int _schedule(self) except -1
    cdef int _scan(self, Py_ssize_t* start, Py_ssize_t* end)
    cdef list _argv(self, Py_ssize_t pos)


cdef int reply_wrongtype(Client c) except -1
cdef int reply_syntax(Client c) except -1
cdef int reply_notint(Client c) except -1
cdef int add_command(Server srv, bytes name, cmd_fn fn) except -1
