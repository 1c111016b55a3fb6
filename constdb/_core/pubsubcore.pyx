# cython: language_level=3
"""The compiled part of Pub/Sub (constdb/pubsub.py subclasses PubSubCore):
the subscription tables, PUBLISH and SPUBLISH from the command table, the
lookup of a channel's subscribers and of the patterns that match it, and
the delivery. A message is encoded once (RESP2 and RESP3 differ only in its
first byte) and each receiver gets one append of it to its output buffer;
the receivers are written once at the end of the loop turn
(PubSubCore.flush_pending), as Redis writes its clients' buffers before it
sleeps. The publisher's own copy (RESP3) goes out with its reply.

Keyspace notifications publish here too (NotifyCore: the channel names are
built in a C buffer, no Python formatting per event)."""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.dict cimport PyDict_GetItem, PyDict_Next, PyDict_Size
from cpython.object cimport PyObject
from cpython.set cimport PySet_Add

from constdb._core.codec cimport WBuf
from constdb._core.glob cimport stringmatch
from constdb._core.protocol cimport Client, Server, add_command


cdef class PubSubCore:
    """The node's subscription tables: name -> {client id: client}, in the
    order clients subscribed (Python's PubSub adds SUBSCRIBE and PUBSUB)."""

    cdef public dict channels
    cdef public dict patterns
    cdef public dict shard
    # callable(shard, channel, message): hands a local PUBLISH to the links;
    # called only while peers (Replication.peers) is not empty
    cdef public object on_publish
    cdef public dict peers
    cdef public unsigned long long remote_messages  # messages received from peers
    # subscribers with messages in their output buffer, written once at the
    # end of the loop turn: one write for all a turn's messages to a client
    cdef public set pending
    cdef WBuf msg  # the message being delivered, encoded once

    def __cinit__(self, *args, **kwargs):
        self.channels = {}
        self.patterns = {}
        self.shard = {}
        self.on_publish = None
        self.peers = None
        self.remote_messages = 0
        self.pending = set()
        self.msg = WBuf()

    def publish(self, bytes channel, bytes message, object sender=None, bint shard=False):
        """PubSubCore.send for Python callers."""
        return self.send(channel, message, sender, shard)

    cdef long long send(self, bytes channel, bytes message, object sender,
                        bint shard) except -1:
        """Deliver to this node's subscribers; the number of receivers (a
        client subscribed to the channel and to a pattern matching it counts
        twice, as in Redis). sender: the publishing client, whose own
        message (RESP3) goes before its PUBLISH reply."""
        cdef long long n = 0
        cdef WBuf w = self.msg
        cdef Py_ssize_t pos = 0, clen = PyBytes_GET_SIZE(channel)
        cdef PyObject* k
        cdef PyObject* v
        cdef PyObject* clients = PyDict_GetItem(self.shard if shard else self.channels, channel)
        if clients != NULL:
            w.len = 0
            if shard:
                w.put_raw(b"*3\r\n$8\r\nsmessage\r\n", 18)
            else:
                w.put_raw(b"*3\r\n$7\r\nmessage\r\n", 17)
            w.bulk_raw(PyBytes_AS_STRING(channel), clen)
            w.bulk_raw(PyBytes_AS_STRING(message), PyBytes_GET_SIZE(message))
            n += self._deliver(<dict>clients, sender)
        if shard or not PyDict_Size(self.patterns):
            return n
        while PyDict_Next(self.patterns, &pos, &k, &v):
            if not stringmatch(PyBytes_AS_STRING(<bytes>k), PyBytes_GET_SIZE(<bytes>k),
                               PyBytes_AS_STRING(channel), clen, 0):
                continue
            w.len = 0
            w.put_raw(b"*4\r\n$8\r\npmessage\r\n", 18)
            w.bulk_raw(PyBytes_AS_STRING(<bytes>k), PyBytes_GET_SIZE(<bytes>k))
            w.bulk_raw(PyBytes_AS_STRING(channel), clen)
            w.bulk_raw(PyBytes_AS_STRING(message), PyBytes_GET_SIZE(message))
            n += self._deliver(<dict>v, sender)
        return n

    cdef long long _deliver(self, dict clients, object sender) except -1:
        """self.msg (its first byte set per receiver: '>' RESP3, '*' RESP2)
        into each client's output buffer; the count of receivers."""
        cdef WBuf w = self.msg
        cdef Py_ssize_t pos = 0
        cdef PyObject* k
        cdef PyObject* v
        cdef Client cl
        cdef long long n = 0
        while PyDict_Next(clients, &pos, &k, &v):
            cl = <Client>v
            n += 1
            if cl.closing:  # (CLIENT REPLY OFF / SKIP do not stop pushes)
                continue
            w.buf[0] = b'>' if cl.resp == 3 else b'*'
            cl.out.put_raw(w.buf, w.len)
            if cl is sender:
                if cl.reply_mode & 5:  # (R_QUIET)
                    cl.push_end = cl.out.len  # kept if its reply is not (Client._quiet)
                continue  # out with its reply
            if not self.pending:
                if cl.srv.loop is None:  # a Server driven by hand: write now
                    cl.deliver(b"", True)
                    continue
                cl.srv.loop.call_soon(self.flush_pending)
            PySet_Add(self.pending, cl)
        return n

    def flush_pending(self):
        """Write what the turn's messages left in the subscribers' buffers
        (Client.deliver: the output limit of pubsub clients is checked there)."""
        pending, self.pending = self.pending, set()
        for cl in pending:
            cl.deliver(b"", True)

    cdef long long publish_local(self, Client c, bytes channel, bytes message,
                                 bint shard) except -1:
        """PUBLISH / SPUBLISH by a client of this node: to this node's
        subscribers, and to every member's through the links."""
        cdef long long n = self.send(channel, message, c, shard)
        if self.on_publish is not None and self.peers:
            self.on_publish(shard, channel, message)
        return n

    def from_peer(self, bint shard, bytes channel, bytes message):
        self.remote_messages += 1
        self.send(channel, message, None, shard)


cdef int _publish(Client c, list argv, bint shard) except -1:
    cdef object ps = c.srv.pubsub
    cdef long long n = 0
    if ps is not None:
        n = (<PubSubCore?>ps).publish_local(c, <bytes>argv[1], <bytes>argv[2], shard)
    c.out.integer(n)
    return 0


cdef int cmd_publish(Client c, list argv) except -1:
    return _publish(c, argv, False)


cdef int cmd_spublish(Client c, list argv) except -1:
    return _publish(c, argv, True)


# ---- keyspace notifications ---------------------------------------------------------------

cdef int K = 1 << 0  # notify.K, notify.E
cdef int E = 1 << 1


cdef class NotifyCore:
    """Keyspace.on_notify while notify-keyspace-events publishes anything
    (constdb/notify.py's Notifier makes it): one event on
    __keyspace@<db>__:<key> (message: the event) and
    __keyevent@<db>__:<event> (message: the key), as Redis's
    notifyKeyspaceEvent, to this node's subscribers only."""

    cdef PubSubCore ps
    cdef Server srv
    cdef int flags
    cdef WBuf name  # the channel name being built

    def __cinit__(self, PubSubCore ps, Server srv, int flags):
        self.ps = ps
        self.srv = srv
        self.flags = flags
        self.name = WBuf()

    def __call__(self, int cls, bytes event, bytes key):
        cdef PubSubCore ps = self.ps
        cdef object sender
        cdef long long db
        if not PyDict_Size(ps.patterns) and not PyDict_Size(ps.channels):
            return None  # nobody listens
        sender = self.srv.current  # a subscriber's own events go before its reply
        # the db being changed (Keyspace.cur, switched by a client's SELECT
        # and by a peer's records), by its number now (notify.notify_db)
        db = self.srv.ks.cur.index
        if self.flags & K:
            ps.send(self._channel(b"__keyspace@", db, key), event, sender, False)
        if self.flags & E:
            ps.send(self._channel(b"__keyevent@", db, event), key, sender, False)
        return None

    cdef bytes _channel(self, bytes head, long long db, bytes tail):
        cdef WBuf w = self.name
        w.len = 0
        w.put_raw(PyBytes_AS_STRING(head), PyBytes_GET_SIZE(head))
        w.put_ascii_int(db)
        w.put_raw(b"__:", 3)
        w.put_raw(PyBytes_AS_STRING(tail), PyBytes_GET_SIZE(tail))
        return w.getvalue()


def register(Server srv):
    """PUBLISH and SPUBLISH from the command table straight into C."""
    add_command(srv, b"publish", cmd_publish)
    add_command(srv, b"spublish", cmd_spublish)
