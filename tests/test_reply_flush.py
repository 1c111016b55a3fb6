"""Replies leave at the end of the loop turn (Server.write_pending), one
transport write per client, as Redis writes its clients' buffers in
beforeSleep; replies written outside a client's own turn (a close, pushes,
a woken client) still leave at once. In process: real Server and Client, a
transport and a loop that record what they are asked to do."""

from __future__ import annotations

import random

from constdb._core.backlog import Backlog
from constdb._core.keyspace import Keyspace

from constdb._core import cmd_keys, cmd_server, cmd_strings, protocol


class _Transport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        assert not self.closed, "write after close"
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_write_buffer_size(self) -> int:
        return 0


class _Loop:
    """call_soon queues; run() runs what was queued, as one loop turn's idle phase."""

    def __init__(self) -> None:
        self.ready: list = []

    def call_soon(self, cb, *args):
        self.ready.append((cb, args))

    def run(self) -> None:
        todo, self.ready = self.ready, []
        for cb, args in todo:
            cb(*args)


def _resp(*args: bytes) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


def _server():
    ks = Keyspace(random.getrandbits(62) | (1 << 62), Backlog(1 << 20))
    srv = protocol.Server(ks)
    for mod in (cmd_strings, cmd_keys, cmd_server):
        mod.register(srv)
    srv.loop = _Loop()
    return srv


def _client(srv):
    c = protocol.Client(srv)
    c.transport = _Transport()
    return c


def test_replies_of_a_turn_leave_together_at_its_end():
    srv = _server()
    a, b = _client(srv), _client(srv)
    a.data_received(_resp(b"SET", b"k", b"1") + _resp(b"INCR", b"k"))
    b.data_received(_resp(b"GET", b"k"))
    # run, not yet written: one callback for the whole turn
    assert a.transport.writes == [] and b.transport.writes == []
    assert len(srv.loop.ready) == 1
    a.data_received(_resp(b"INCR", b"k"))  # another read of a in the same turn
    assert len(srv.loop.ready) == 1
    srv.loop.run()
    assert a.transport.writes == [b"+OK\r\n:2\r\n:3\r\n"]
    assert b.transport.writes == [b"$1\r\n2\r\n"]
    # the next turn schedules its own callback
    b.data_received(_resp(b"GET", b"k"))
    assert b.transport.writes == [b"$1\r\n2\r\n"]
    srv.loop.run()
    assert b.transport.writes == [b"$1\r\n2\r\n", b"$1\r\n3\r\n"]
    assert srv.loop.ready == []


def test_a_closing_client_gets_its_waiting_replies_first():
    srv = _server()
    c = _client(srv)
    c.data_received(_resp(b"PING"))
    assert c.transport.writes == []
    c.close()  # before the end of the turn: written now, then closed
    assert c.transport.writes == [b"+PONG\r\n"] and c.transport.closed
    srv.loop.run()  # nothing left, nothing written after the close
    assert c.transport.writes == [b"+PONG\r\n"]


def test_quit_replies_then_closes():
    srv = _server()
    c = _client(srv)
    c.data_received(_resp(b"PING") + _resp(b"QUIT"))
    srv.loop.run()
    assert b"".join(c.transport.writes) == b"+PONG\r\n+OK\r\n"
    assert c.transport.closed


def test_pushes_and_woken_clients_are_written_at_once():
    srv = _server()
    c = _client(srv)
    c.deliver(b">2\r\n$3\r\nmsg\r\n$1\r\nx\r\n", True)
    assert c.transport.writes == [b">2\r\n$3\r\nmsg\r\n$1\r\nx\r\n"]
    c.write_reply(5)
    assert c.transport.writes[-1] == b":5\r\n"
    assert srv.loop.ready == []


def test_a_gone_transport_drops_the_waiting_replies():
    srv = _server()
    c = _client(srv)
    c.data_received(_resp(b"PING"))
    c.transport.closed = True  # the peer went away before the end of the turn
    srv.loop.run()
    assert c.transport.writes == []
    # (dropped: a later turn's write holds only its own reply)
    c.transport.closed = False
    c.data_received(_resp(b"ECHO", b"e"))
    srv.loop.run()
    assert c.transport.writes == [b"$1\r\ne\r\n"]


def test_a_busy_script_writes_the_others_replies_but_its_runners():
    # scripting.py's _serve_others: the event loop waits inside the script,
    # so the replies queued so far go now, but the running client's
    srv = _server()
    runner, other = _client(srv), _client(srv)
    runner.data_received(_resp(b"PING"))
    other.data_received(_resp(b"ECHO", b"o"))
    srv.write_pending(runner)
    assert other.transport.writes == [b"$1\r\no\r\n"]
    assert runner.transport.writes == []
    srv.loop.run()  # the turn's callback, scheduled when runner queued
    assert runner.transport.writes == [b"+PONG\r\n"]
    assert other.transport.writes == [b"$1\r\no\r\n"]
