"""Requests parsed ahead (protocol.pyx Client._fill): a pipeline's keys are
fetched from the db's key table before its requests run (staged
prefetches), and each argv key is a bytes object whose hash is already
set. Nothing of this may show in replies:
pipelines whose requests change the keys later requests name (deleted,
re-created, renamed, another db, queued by MULTI) answer as redis-server."""

from __future__ import annotations

import random
import sys

from support.differential import run_all
from support.nodes import wait_for
from support.resp import Conn, encode

from constdb._core import protocol


def test_layout_check_passes_on_this_python():
    # the preset hash is on where bytes' layout is the one written (3.11, 3.12)
    assert protocol._check_layout() is (sys.version_info[:2] in ((3, 11), (3, 12)))


def test_pipelines_that_change_their_own_keys_same_as_redis(raw_pair):
    run_all(
        raw_pair,
        [
            ("SET", "k1", "a"),
            ("SET", "k2", "b"),
            ("GET", "k1"),
            ("DEL", "k1"),
            ("GET", "k1"),
            ("SET", "k1", "c"),
            ("APPEND", "k1", "d"),
            ("GET", "k1"),
            ("RENAME", "k2", "k3"),
            ("GET", "k2"),
            ("GET", "k3"),
            ("MSET", "k1", "x", "k2", "y", "k1", "z"),
            ("MGET", "k1", "k2", "k3", "nokey"),
            ("INCR", "n"),
            ("INCR", "n"),
            ("DEL", "n", "k1"),
            ("INCR", "n"),
            ("HSET", "h", "f", "1"),
            ("TYPE", "h"),
            ("SET", "h", "s"),
            ("TYPE", "h"),
            ("SELECT", "1"),
            ("GET", "k3"),
            ("SET", "k3", "db1"),
            ("SELECT", "0"),
            ("GET", "k3"),
            ("MULTI",),
            ("SET", "k3", "m"),
            ("GET", "k3"),
            ("DEL", "k3"),
            ("EXEC",),
            ("EXISTS", "k3"),
            ("SELECT", "1"),
            ("GET", "k3"),
            ("FLUSHDB",),
            ("SELECT", "0"),
        ],
    )


def test_long_random_pipelines_same_as_redis(raw_pair):
    # more requests than one round parses ahead (16), on few keys
    rnd = random.Random(7)
    cmds = []
    for _ in range(300):
        k = f"key:{rnd.randrange(6)}"
        op = rnd.randrange(7)
        if op == 0:
            cmds.append(("SET", k, str(rnd.randrange(100))))
        elif op == 1:
            cmds.append(("GET", k))
        elif op == 2:
            cmds.append(("DEL", k))
        elif op == 3:
            cmds.append(("INCR", k))
        elif op == 4:
            cmds.append(("MSET", k, "v", f"key:{rnd.randrange(6)}", "w"))
        elif op == 5:
            cmds.append(("EXISTS", k, k))
        else:
            cmds.append(("STRLEN", k))
    run_all(raw_pair, cmds)


class _Transport:
    """What the client writes, collected."""

    def __init__(self):
        self.out = b""

    def write(self, data):
        self.out += data

    def is_closing(self):
        return False


def _client():
    from constdb._core.backlog import Backlog
    from constdb._core.keyspace import Keyspace

    from constdb._core import cmd_keys, cmd_server, cmd_strings

    ks = Keyspace(random.getrandbits(62) | (1 << 62), Backlog(1 << 20))
    srv = protocol.Server(ks)
    for mod in (cmd_strings, cmd_keys, cmd_server):
        mod.register(srv)
    c = protocol.Client(srv)
    c.transport = _Transport()
    return srv, c, ks


def _resp(*args: bytes) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


def test_argv_keys_of_a_pipeline_carry_their_hash():
    srv, c, ks = _client()
    seen = []
    srv.monitor = lambda client, cmd, argv: seen.append(list(argv))
    c.feed(_resp(b"SET", b"k:1", b"v") + _resp(b"SET", b"k:2", b"v"))
    del seen[:]
    # one read: both keys are fetched before either request runs
    c.transport.out = b""
    c.feed(
        _resp(b"GET", b"k:1") + _resp(b"MSET", b"k:2", b"x", b"k:3", b"y") + _resp(b"GET", b"k:3")
    )
    assert c.transport.out == b"$1\r\nv\r\n+OK\r\n$1\r\ny\r\n"
    get1, mset, get3 = seen
    # keys are bytes objects of their own (the key table keeps no bytes
    # objects), equal to and hashing as the keys sent
    for k in (get1[1], mset[1], mset[3], get3[1]):
        assert type(k) is bytes and hash(k) == hash(bytes(k))
    assert (get1[1], mset[1], mset[3]) == (b"k:1", b"k:2", b"k:3")
    assert mset[3] is not get3[1]
    # values and command names are never taken from the table
    assert mset[2] == b"x" and get1[0] == b"GET"
    assert ks.d[b"k:2"].val == b"x"


def test_blocking_command_followed_in_its_pipeline_still_blocks(
    constdb_server, redis_server, r, rr
):
    # the request parsed after BLPOP is not the one running: BLPOP blocks
    def run(port: int) -> list[bytes]:
        with Conn(port) as m, Conn(port) as c:
            m.send_raw(encode("BLPOP", "q", "0") + encode("PING"))
            wait_for(lambda: b"cmd=blpop" in c.call("CLIENT", "LIST"))
            c.call("RPUSH", "q", "a")
            return m.read_many(2)

    assert run(constdb_server.port) == run(redis_server.port)
