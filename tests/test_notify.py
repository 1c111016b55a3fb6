"""Keyspace notifications (notify-keyspace-events) beside redis-server: the
flag string, and the message streams that a RESP2 and a RESP3 subscriber
receive for command sequences of every type, byte for byte; expiry,
eviction, a peer's writes; CLIENT NO-TOUCH and NO-EVICT."""

from __future__ import annotations

import time

import pytest
from support.nodes import make_node, meet, wait_for, wait_linked
from support.resp import Conn

END = b"__notify_test_end__"


class Side:
    """One server: a command connection and a RESP2 and a RESP3 subscriber
    to every keyspace and keyevent channel (and to END)."""

    def __init__(self, port: int) -> None:
        self.cmd = Conn(port, 2)
        self.subs = [Conn(port, 2), Conn(port, 3)]
        for s in self.subs:
            s.send("SUBSCRIBE", END)
            s.read()
            s.send("PSUBSCRIBE", "__key*__:*")
            s.read()

    def stream(self, s: Conn) -> list[bytes]:
        """What s received up to the END message."""
        out = []
        while True:
            m = s.read()
            if END in m:
                return out
            out.append(m)

    def streams(self) -> list[list[bytes]]:
        self.cmd.call("PUBLISH", END, "x")
        return [self.stream(s) for s in self.subs]

    def close(self) -> None:
        self.cmd.close()
        for s in self.subs:
            s.close()


@pytest.fixture
def sides(r, rr, constdb_server, redis_server):
    a, b = Side(constdb_server.port), Side(redis_server.port)
    yield a, b
    for s in (a, b):
        s.cmd.call("CONFIG", "SET", "notify-keyspace-events", "")
        s.close()


def flags(sides, f: str) -> None:
    for s in sides:
        assert s.cmd.call("CONFIG", "SET", "notify-keyspace-events", f) == b"+OK\r\n"


def check(sides, cmds, f: str = "KEA") -> list[bytes]:
    """cmds on both (replies compared), then the notification streams of
    both subscribers, compared byte for byte; returns the RESP2 stream."""
    flags(sides, f)
    a, b = sides
    got = a.cmd.pipeline(cmds)
    want = b.cmd.pipeline(cmds)
    for c, g, w in zip(cmds, got, want):
        assert g == w, f"{c!r}: constdb {g!r} != redis {w!r}"
    sa, sb = a.streams(), b.streams()
    for proto, x, y in zip((2, 3), sa, sb):
        assert x == y, f"RESP{proto} streams differ:\nconstdb {brief(x)}\nredis   {brief(y)}"
    return sa[0]


def brief(stream: list[bytes]) -> str:
    """A message stream as channel=message pairs (assertion messages)."""
    out = []
    for m in stream:
        p = m.split(b"\r\n")
        out.append(f"{p[6].decode()}={p[8].decode()}")
    return " ".join(out)


# ---- the flag string -------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    ["KEA", "", "AKE", "Kg$lshzxetdnm", "gK$", "AK", "Em", "Kx", "Eg$", "KEn", "Kz", "KEd", "El"],
)
def test_config_get_gives_redis_canonical_form(raw_pair, value):
    a, b = raw_pair
    for c in (a, b):
        assert c.call("CONFIG", "SET", "notify-keyspace-events", value) == b"+OK\r\n"
    try:
        got = a.call("CONFIG", "GET", "notify-keyspace-events")
        assert got == b.call("CONFIG", "GET", "notify-keyspace-events")
    finally:
        for c in (a, b):
            c.call("CONFIG", "SET", "notify-keyspace-events", "")


@pytest.mark.parametrize("value", ["Q", "KEA ", "k", "KE*"])
def test_config_set_refuses_unknown_classes(raw_pair, value):
    a, b = raw_pair
    got = a.call("CONFIG", "SET", "notify-keyspace-events", value)
    assert got.startswith(b"-ERR")
    assert got == b.call("CONFIG", "SET", "notify-keyspace-events", value)


# ---- command sequences -----------------------------------------------------------------

STRINGS = [
    ("SET", "s", "1"),
    ("SET", "s", "2", "EX", "100"),
    ("SET", "s", "3", "KEEPTTL"),
    ("SET", "s", "4", "NX"),
    ("SET", "s", "5", "XX", "PX", "100000"),
    ("SET", "s", "6", "GET"),
    ("SETNX", "s2", "a"),
    ("SETNX", "s2", "b"),
    ("SETEX", "s3", "100", "v"),
    ("PSETEX", "s4", "100000", "v"),
    ("GETSET", "s", "7"),
    ("GETDEL", "s"),
    ("GETDEL", "s"),
    ("GETEX", "s2", "EX", "100"),
    ("GETEX", "s2", "PERSIST"),
    ("GETEX", "s2"),
    ("MSET", "m1", "1", "m2", "2"),
    ("MSETNX", "m3", "1", "m4", "2"),
    ("MSETNX", "m3", "1", "m5", "2"),
    ("APPEND", "ap", "x"),
    ("APPEND", "ap", "y"),
    ("SETRANGE", "sr", "3", "abc"),
    ("SETRANGE", "sr", "0", ""),
    ("INCR", "n"),
    ("INCRBY", "n", "5"),
    ("DECR", "n"),
    ("DECRBY", "n", "2"),
    ("INCRBYFLOAT", "f", "1.5"),
    ("INCR", "ap"),
    ("GET", "nosuch"),
    ("SETBIT", "b", "7", "1"),
    ("SETBIT", "b", "7", "1"),
    ("BITFIELD", "bf", "SET", "u8", "0", "255"),
    ("BITFIELD", "bf", "GET", "u8", "0"),
    ("BITOP", "AND", "bo", "b", "bf"),
    ("BITOP", "AND", "bo", "nosuch", "nosuch2"),
    ("SET", "lcs1", "abc"),
    ("DEL", "s2", "s3", "nosuch"),
    ("UNLINK", "s4"),
]

KEYS = [
    ("SET", "k", "v"),
    ("EXPIRE", "k", "100"),
    ("PEXPIRE", "k", "100000"),
    ("EXPIREAT", "k", "9999999999"),
    ("PEXPIREAT", "k", "9999999999000"),
    ("EXPIRE", "k", "100", "NX"),
    ("EXPIRE", "k", "200", "XX"),
    ("PERSIST", "k"),
    ("PERSIST", "k"),
    ("EXPIRE", "nosuch", "100"),
    ("RENAME", "k", "k2"),
    ("SET", "k3", "x"),
    ("RENAMENX", "k2", "k3"),
    ("RENAMENX", "k2", "k4"),
    ("RENAME", "k4", "k3"),
    ("COPY", "k3", "k5"),
    ("COPY", "k3", "k5"),
    ("COPY", "k3", "k5", "REPLACE"),
    ("TOUCH", "k3", "nosuch"),
    ("EXISTS", "k3"),
    ("TYPE", "k3"),
    ("SET", "k6", "y"),
    ("EXPIRE", "k6", "0"),
    ("SET", "k7", "y"),
    ("PEXPIREAT", "k7", "1"),
    ("SADD", "ks", "a"),
    ("EXPIRE", "ks", "-1"),
    ("DEL", "k3", "k5"),
    ("RESTORE", "nosuch", "0", "x"),
]

LISTS = [
    ("LPUSH", "l", "a", "b", "c"),
    ("RPUSH", "l", "d", "e"),
    ("LPUSHX", "l", "f"),
    ("RPUSHX", "l", "g"),
    ("LPUSHX", "nol", "f"),
    ("RPUSHX", "nol", "f"),
    ("LINSERT", "l", "BEFORE", "a", "x"),
    ("LINSERT", "l", "AFTER", "nosuch", "x"),
    ("LSET", "l", "0", "z"),
    ("LPOP", "l"),
    ("RPOP", "l"),
    ("LPOP", "l", "2"),
    ("RPOP", "l", "2"),
    ("RPUSH", "l", "a", "b", "a", "c", "a"),
    ("LREM", "l", "2", "a"),
    ("LREM", "l", "0", "nosuch"),
    ("LTRIM", "l", "0", "2"),
    ("LTRIM", "l", "0", "-1"),
    ("RPOPLPUSH", "l", "l2"),
    ("LMOVE", "l", "l2", "LEFT", "RIGHT"),
    ("LMOVE", "l2", "l2", "LEFT", "RIGHT"),
    ("LMPOP", "2", "nol", "l", "LEFT", "COUNT", "5"),
    ("LRANGE", "l2", "0", "-1"),
    ("LTRIM", "l2", "5", "10"),
    ("RPUSH", "l3", "a"),
    ("LPOP", "l3"),
    ("RPUSH", "l4", "a", "b"),
    ("LREM", "l4", "0", "a"),
    ("LREM", "l4", "0", "b"),
    ("BLPOP", "nol", "l4", "0.01"),
    ("RPUSH", "l5", "x"),
    ("BRPOP", "l5", "1"),
    ("RPUSH", "l6", "x", "y"),
    ("BLMOVE", "l6", "l7", "RIGHT", "LEFT", "1"),
    ("BRPOPLPUSH", "l6", "l7", "1"),
    ("BLMPOP", "1", "1", "l7", "RIGHT"),
]

SETS = [
    ("SADD", "s", "a", "b", "c"),
    ("SADD", "s", "a"),
    ("SREM", "s", "a", "nosuch"),
    ("SREM", "s", "nosuch"),
    ("SADD", "t", "b", "x"),
    ("SMOVE", "s", "t", "b"),
    ("SMOVE", "s", "t", "nosuch"),
    ("SMOVE", "s", "u", "c"),
    ("SADD", "s1", "1"),
    ("SPOP", "s1"),
    ("SADD", "s1", "1"),
    ("SPOP", "s1", "5"),
    ("SADD", "s1", "1", "2"),
    ("SPOP", "s1", "0"),
    ("SPOP", "nosuch"),
    ("SADD", "s", "1", "2", "3"),
    ("SINTERSTORE", "d", "s", "t"),
    ("SUNIONSTORE", "d", "s", "t"),
    ("SDIFFSTORE", "d", "s", "t"),
    ("SINTERSTORE", "d", "s", "nosuch"),
    ("SINTERSTORE", "d2", "s", "nosuch"),
    ("SUNIONSTORE", "d3", "nosuch"),
    ("SMEMBERS", "s"),
    ("SREM", "s", "1", "2", "3"),
]

HASHES = [
    ("HSET", "h", "a", "1", "b", "2"),
    ("HSET", "h", "a", "1"),
    ("HMSET", "h", "c", "3"),
    ("HSETNX", "h", "a", "9"),
    ("HSETNX", "h", "d", "4"),
    ("HDEL", "h", "a", "nosuch"),
    ("HDEL", "h", "nosuch"),
    ("HINCRBY", "h", "n", "5"),
    ("HINCRBYFLOAT", "h", "f", "1.5"),
    ("HGET", "h", "a"),
    ("HDEL", "h", "b", "c", "d", "n", "f"),
    ("HINCRBY", "h2", "n", "1"),
    ("HDEL", "h2", "n"),
]

ZSETS = [
    ("ZADD", "z", "1", "a", "2", "b", "3", "c"),
    ("ZADD", "z", "1", "a"),
    ("ZADD", "z", "5", "a"),
    ("ZADD", "z", "NX", "1", "a"),
    ("ZADD", "z", "XX", "CH", "7", "a"),
    ("ZADD", "z", "INCR", "1", "a"),
    ("ZADD", "z", "GT", "1", "a"),
    ("ZINCRBY", "z", "2", "b"),
    ("ZREM", "z", "c", "nosuch"),
    ("ZREM", "z", "nosuch"),
    ("ZADD", "z", "1", "x", "2", "y", "3", "w", "4", "v"),
    ("ZREMRANGEBYSCORE", "z", "1", "2"),
    ("ZREMRANGEBYRANK", "z", "0", "0"),
    ("ZREMRANGEBYLEX", "z", "-", "+"),
    ("ZREMRANGEBYRANK", "nosuch", "0", "0"),
    ("ZADD", "z", "1", "a", "2", "b", "3", "c", "4", "d"),
    ("ZPOPMIN", "z"),
    ("ZPOPMAX", "z", "2"),
    ("ZADD", "z2", "1", "a", "2", "q"),
    ("ZUNIONSTORE", "zd", "2", "z", "z2"),
    ("ZINTERSTORE", "zd", "2", "z", "z2"),
    ("ZDIFFSTORE", "zd", "2", "z", "z2"),
    ("ZINTERSTORE", "zd", "2", "z", "nosuch"),
    ("ZRANGESTORE", "zd", "z2", "0", "-1"),
    ("ZRANGESTORE", "zd", "z2", "5", "6"),
    ("ZMPOP", "2", "nosuch", "z2", "MIN", "COUNT", "5"),
    ("BZPOPMIN", "z", "1"),
    ("ZADD", "z3", "1", "a"),
    ("BZPOPMAX", "z3", "1"),
    ("ZADD", "z4", "1", "a"),
    ("BZMPOP", "1", "1", "z4", "MAX"),
]

GEO = [
    ("GEOADD", "g", "13.361389", "38.115556", "Palermo", "15.087269", "37.502669", "Catania"),
    ("GEOADD", "g", "NX", "13.361389", "38.115556", "Palermo"),
    ("GEORADIUS", "g", "15", "37", "200", "km", "STORE", "g2"),
    ("GEORADIUS", "g", "15", "37", "200", "km", "STOREDIST", "g3"),
    ("GEORADIUSBYMEMBER", "g", "Palermo", "500", "km", "STORE", "g4"),
    ("GEOSEARCHSTORE", "g5", "g", "FROMLONLAT", "15", "37", "BYRADIUS", "200", "km"),
    ("GEOSEARCHSTORE", "g5", "g", "FROMLONLAT", "0", "0", "BYRADIUS", "1", "km"),
    ("GEORADIUS", "g", "0", "0", "1", "km", "STORE", "g2"),
]

HLL = [
    ("PFADD", "p", "a", "b"),
    ("PFADD", "p", "a"),
    ("PFADD", "p2"),
    ("PFADD", "p3", "x"),
    ("PFCOUNT", "p"),
    ("PFMERGE", "p4", "p", "p3"),
    ("PFMERGE", "p4"),
]

SORTS = [
    ("RPUSH", "sl", "3", "1", "2"),
    ("SORT", "sl", "STORE", "so"),
    ("SORT", "sl", "LIMIT", "5", "5", "STORE", "so"),
    ("SORT", "nosuch", "STORE", "so2"),
    ("SORT", "sl"),
]


@pytest.mark.parametrize(
    "cmds",
    [STRINGS, KEYS, LISTS, SETS, HASHES, ZSETS, GEO, HLL, SORTS],
    ids=["strings", "keys", "lists", "sets", "hashes", "zsets", "geo", "hll", "sort"],
)
def test_events_of_commands_as_redis(sides, cmds):
    assert check(sides, cmds)


@pytest.mark.parametrize("f", ["K$", "El", "Kgs", "Eh", "Kz", "KEg", "Kn", "KEn$", "KEAn", "Em"])
def test_events_of_each_class(sides, f):
    check(sides, STRINGS[:10] + KEYS[:12] + LISTS[:8] + SETS[:8] + HASHES[:8] + ZSETS[:8], f)


def test_binary_and_long_key_names_and_changed_flags(sides):
    """Channel names are built in C: binary keys, a key longer than the
    scratch buffer's first size, db numbers past 9; a flag change between
    two runs takes effect at once."""
    cmds = [
        ("SET", b"k\x00\xff\r\n", "v"),
        ("SET", "x" * 5000, "v"),
        ("SELECT", "12"),
        ("SADD", b"\xe2\x82\xac", "m"),
        ("DEL", b"\xe2\x82\xac"),
        ("SELECT", "0"),
    ]
    assert len(check(sides, cmds, "KEA")) == 8
    assert len(check(sides, cmds, "K$")) == 2
    assert len(check(sides, cmds, "Eg")) == 1
    assert check(sides, cmds, "") == []


def test_events_in_multi_exec_and_scripts(sides):
    check(
        sides,
        [
            ("MULTI",),
            ("SET", "a", "1"),
            ("SADD", "b", "x"),
            ("EXPIRE", "a", "100"),
            ("DEL", "a", "b"),
            ("EXEC",),
            (
                "EVAL",
                "redis.call('set', KEYS[1], 'v'); return redis.call('incr', KEYS[2])",
                2,
                "c",
                "d",
            ),
            ("EVAL", "redis.call('hset', KEYS[1], 'f', 'v'); redis.call('del', KEYS[1])", 1, "h"),
        ],
        "KEAn",
    )


def test_events_in_numbered_databases(sides):
    """Channels name the db the change is in: SELECT, MOVE (move_from in the
    source, move_to in the target), COPY ... DB, SWAPDB, FLUSHDB."""
    stream = check(
        sides,
        [
            ("SELECT", "2"),
            ("SET", "m", "1"),
            ("MOVE", "m", "5"),
            ("MOVE", "nosuch", "5"),
            ("SELECT", "5"),
            ("COPY", "m", "m2", "DB", "7"),
            ("SWAPDB", "5", "7"),
            ("SADD", "s", "x"),
            ("SELECT", "7"),
            ("DEL", "m"),
            ("FLUSHDB",),
            ("SELECT", "0"),
        ],
        "KEAn",
    )
    assert any(b"__keyevent@5__:move_to" in m for m in stream)
    assert any(b"__keyspace@2__:m" in m for m in stream)


def test_restore_copy_and_dump(sides):
    a, b = sides
    check(sides, [("RPUSH", "src", "a", "b")])
    # payloads differ between the servers: each restores its own
    for s in sides:
        dump = s.cmd.call("DUMP", "src")
        payload = dump.split(b"\r\n", 1)[1][:-2]
        s.cmd.call("RESTORE", "dst", "0", payload)
        s.cmd.call("RESTORE", "dst", "100000", payload, "REPLACE")
    flags(sides, "KEA")
    sa, sb = a.streams(), b.streams()
    assert sa == sb and sa[0]


# ---- expiry and eviction ---------------------------------------------------------------


def test_expired_lazy_and_active(sides):
    flags(sides, "Ex")
    for s in sides:
        s.cmd.call("SET", "lazy", "v", "PX", "30")
        s.cmd.call("SET", "active", "v", "PX", "30")
    time.sleep(0.05)  # the keys' deadline passes (what is tested is what follows)
    for s in sides:
        assert s.cmd.call("GET", "lazy") == b"$-1\r\n"  # lazy expiry
    # the active cycle expires the other one: poll its subscriber
    for s in sides:
        wait_for(lambda s=s: s.cmd.call("DBSIZE") == b":0\r\n", timeout=10)
    # (which of the two the active cycle reaches first may differ)
    sa, sb = sides[0].streams(), sides[1].streams()
    assert [sorted(x) for x in sa] == [sorted(x) for x in sb]
    assert len(sa[0]) == 2 and all(b"expired" in m for m in sa[0])


def test_evicted_on_maxmemory(constdb_server, redis_server, r, rr):
    """Every key evicted by maxmemory is an "evicted" event, on both
    servers, to RESP2 and RESP3 subscribers alike."""
    names = {f"key:{i}".encode() for i in range(200)}
    for port in (constdb_server.port, redis_server.port):
        s = Side(port)
        try:
            s.cmd.call("CONFIG", "SET", "notify-keyspace-events", "Ee")
            s.cmd.call("CONFIG", "SET", "maxmemory-policy", "allkeys-random")
            for name in names:
                s.cmd.call("SET", name, "x" * 1000)
            s.cmd.call("CONFIG", "SET", "maxmemory", "1")
            s.cmd.call("SET", "last", "x")  # a write evicts first
            # (an eviction run is bounded in time: the cron may finish it)
            wait_for(lambda s=s: s.cmd.call("EXISTS", *names) == b":0\r\n", timeout=20)
            for stream in s.streams():
                got = [m.split(b"\r\n") for m in stream]
                assert {p[6] for p in got} == {b"__keyevent@0__:evicted"}
                evicted = [p[8] for p in got]
                assert len(evicted) == len(set(evicted))  # each key once
                # (the SET itself may be applied and evicted in turn)
                assert names <= set(evicted) <= names | {b"last"}
        finally:
            s.cmd.call("CONFIG", "SET", "maxmemory", "0")
            s.cmd.call("CONFIG", "SET", "maxmemory-policy", "noeviction")
            s.cmd.call("CONFIG", "SET", "notify-keyspace-events", "")
            s.close()


def test_keymiss_events(sides):
    check(
        sides,
        [
            ("GET", "nosuch"),
            ("SET", "k", "v"),
            ("GET", "k"),
            ("LRANGE", "nol", "0", "-1"),
            ("HGET", "noh", "f"),
            ("SMEMBERS", "nos"),
            ("ZSCORE", "noz", "m"),
            ("STRLEN", "nosuch"),
            ("MGET", "k", "nosuch", "nosuch2"),
        ],
        "KEm",
    )


# ---- across the group ------------------------------------------------------------------


def _events(p: Conn, n: int) -> list[tuple[bytes, bytes]]:
    """The next n keyevent messages: (event, key)."""
    out = []
    for m in p.read_many(n):
        parts = m.split(b"\r\n")
        out.append((parts[6].split(b":", 1)[1], parts[8]))
    return out


def test_a_write_on_one_member_notifies_subscribers_of_another(node):
    a, b = make_node(node, "a"), make_node(node, "b")
    meet(b, a)
    wait_linked([a, b])
    cb = Conn(b.port, 2)
    assert cb.call("CONFIG", "SET", "notify-keyspace-events", "KEAn") == b"+OK\r\n"
    subs = [Conn(b.port, 2), Conn(b.port, 3)]
    for s in subs:
        s.send("PSUBSCRIBE", "__keyevent@*")
        s.read()
    # on a, nobody listens: no notification there, nothing is sent for them
    ca = Conn(a.port, 2)
    for cmd in [
        ("SET", "s", "1", "EX", "100"),
        ("INCRBY", "n", "5"),
        ("INCRBYFLOAT", "f", "1.5"),
        ("APPEND", "s", "x"),
        ("SADD", "set", "a", "b", "c"),
        ("SREM", "set", "a"),
        ("HSET", "h", "f", "v", "g", "w"),
        ("HINCRBY", "h", "n", "1"),
        ("HINCRBYFLOAT", "h", "x", "0.5"),
        ("HDEL", "h", "f"),
        ("RPUSH", "l", "a", "b"),
        ("LPUSH", "l", "z"),
        ("LPOP", "l"),
        ("LSET", "l", "0", "q"),
        ("ZADD", "z", "1", "m", "2", "n"),
        ("ZINCRBY", "z", "1", "m"),
        ("ZREM", "z", "m"),
        ("SETBIT", "bits", "3", "1"),
        ("PFADD", "hll", "a", "b"),
        ("EXPIRE", "set", "100"),
        ("PERSIST", "set"),
        ("DEL", "s", "set"),
        ("SREM", "nosuch", "x"),
    ]:
        ca.call(*cmd)
    want = [
        (b"new", b"s"),
        (b"set", b"s"),
        (b"expire", b"s"),
        (b"new", b"n"),
        (b"incrby", b"n"),
        (b"new", b"f"),
        (b"incrbyfloat", b"f"),
        (b"set", b"s"),
        (b"new", b"set"),
        (b"sadd", b"set"),
        (b"srem", b"set"),
        (b"new", b"h"),
        (b"hset", b"h"),
        (b"hincrby", b"h"),
        (b"hincrbyfloat", b"h"),
        (b"hdel", b"h"),
        (b"new", b"l"),
        (b"rpush", b"l"),
        (b"lpush", b"l"),
        (b"lrem", b"l"),
        (b"lset", b"l"),
        (b"new", b"z"),
        (b"zadd", b"z"),
        (b"zincr", b"z"),
        (b"zrem", b"z"),
        (b"new", b"bits"),
        (b"setbit", b"bits"),
        (b"new", b"hll"),
        (b"pfadd", b"hll"),
        (b"expire", b"set"),
        (b"persist", b"set"),
        (b"del", b"s"),
        (b"del", b"set"),
    ]
    for s in subs:
        assert _events(s, len(want)) == want
    # and a's own subscriber sees a's local events, as Redis names them
    assert ca.call("CONFIG", "SET", "notify-keyspace-events", "KEA") == b"+OK\r\n"
    sa = Conn(a.port, 2)
    sa.send("PSUBSCRIBE", "__keyevent@*")
    sa.read()
    ca.call("RPUSH", "l", "x")
    ca.call("LINSERT", "l", "BEFORE", "x", "y")
    assert _events(sa, 2) == [(b"rpush", b"l"), (b"linsert", b"l")]
    assert _events(subs[0], 2) == [(b"rpush", b"l"), (b"rpush", b"l")]
    for c in [ca, cb, sa, *subs]:
        c.close()


def test_expiry_on_a_peer(node):
    """A key with a TTL set on a expires on b too: b's subscriber sees
    "expired" when b's own expiry removes it, or "del" when a's removal
    arrives first."""
    a, b = make_node(node, "a"), make_node(node, "b")
    meet(b, a)
    wait_linked([a, b])
    cb = Conn(b.port, 2)
    cb.call("CONFIG", "SET", "notify-keyspace-events", "Egx")
    s = Conn(b.port, 2)
    s.send("PSUBSCRIBE", "__keyevent@*")
    s.read()
    Conn(a.port, 2).call("SET", "k", "v", "PX", "200")
    got = _events(s, 2)
    assert got[0] == (b"expire", b"k")
    assert got[1] in ((b"expired", b"k"), (b"del", b"k"))


# ---- CLIENT NO-TOUCH and NO-EVICT ------------------------------------------------------


def test_client_no_evict_flag_as_redis(raw_pair):
    a, b = raw_pair
    for c in (a, b):
        assert c.call("CLIENT", "NO-EVICT", "on") == b"+OK\r\n"
    fa = [f for f in a.call("CLIENT", "INFO").split() if f.startswith(b"flags=")]
    fb = [f for f in b.call("CLIENT", "INFO").split() if f.startswith(b"flags=")]
    assert fa == fb == [b"flags=e"]
    for c in (a, b):
        assert c.call("CLIENT", "NO-EVICT", "off") == b"+OK\r\n"
    assert a.call("CLIENT", "NO-EVICT", "maybe") == b.call("CLIENT", "NO-EVICT", "maybe")


def test_client_no_touch(node):
    """Redis 7.2's CLIENT NO-TOUCH (redis-server 7.0 here has not got it):
    the client's reads leave OBJECT FREQ / IDLETIME alone, TOUCH still
    touches; flag T in CLIENT LIST / INFO; RESET clears it."""
    srv = node().start()
    c = Conn(srv.port, 2)
    w = Conn(srv.port, 2)
    assert c.call("CLIENT", "NO-TOUCH", "on") == b"+OK\r\n"
    assert b"flags=T " in c.call("CLIENT", "INFO")
    assert c.call("CLIENT", "NO-TOUCH", "x").startswith(b"-ERR syntax error")
    assert c.call("CONFIG", "SET", "maxmemory-policy", "allkeys-lfu") == b"+OK\r\n"
    w.call("SET", "k", "v")
    assert c.call("OBJECT", "FREQ", "k") == b":5\r\n"  # LFU_INIT_VAL
    for _ in range(50):
        c.call("GET", "k")
        c.call("LRANGE", "nol", "0", "-1")
    c.call("MULTI")
    c.call("GET", "k")
    c.call("EXEC")
    c.call("EVAL", "return redis.call('get', KEYS[1])", 1, "k")
    assert c.call("OBJECT", "FREQ", "k") == b":5\r\n"
    c.call("TOUCH", "k")  # the first access of a fresh key always counts
    assert c.call("OBJECT", "FREQ", "k") == b":6\r\n"
    # LRU: idle time grows under a no-touch client's reads
    assert c.call("CONFIG", "SET", "maxmemory-policy", "allkeys-lru") == b"+OK\r\n"
    w.call("SET", "j", "v")
    wait_for(lambda: c.call("OBJECT", "IDLETIME", "j") != b":0\r\n", timeout=10)
    c.call("GET", "j")
    assert c.call("OBJECT", "IDLETIME", "j") != b":0\r\n"
    assert c.call("CLIENT", "NO-TOUCH", "off") == b"+OK\r\n"
    c.call("GET", "j")
    assert c.call("OBJECT", "IDLETIME", "j") == b":0\r\n"
    c.call("CLIENT", "NO-TOUCH", "on")
    assert c.call("RESET") == b"+RESET\r\n"
    assert b"flags=N " in c.call("CLIENT", "INFO")
    c.close()
    w.close()


# commands whose events Redis 7.0 writes before their reply (ConstDB writes a
# RESP3 client's own events before the reply for every command; Redis 7.0
# writes them after it for most others: README, "Keyspace notifications")
BEFORE_REPLY = STRINGS[:19] + [
    ("SADD", "s", "a", "b"),
    ("LINSERT", "l", "BEFORE", "b", "x"),
    ("HDEL", "h", "a"),
    ("ZREM", "z", "a"),
    ("PFADD", "p", "a"),
    ("SORT", "l", "ALPHA", "STORE", "so"),
]


def test_a_resp3_client_gets_its_own_events_before_the_reply(constdb_server, redis_server, r, rr):
    """A RESP3 client subscribed to the events of its own commands: the
    pushes come before the reply, as Redis 7.0 writes them for these
    commands."""
    cmds = BEFORE_REPLY
    out = []
    for port in (constdb_server.port, redis_server.port):
        c = Conn(port, 3)
        try:
            c.call("RPUSH", "l", "a", "b")
            c.call("HSET", "h", "a", "1", "b", "2")
            c.call("ZADD", "z", "1", "a", "2", "b")
            c.call("CONFIG", "SET", "notify-keyspace-events", "KEA")
            c.send("PSUBSCRIBE", "__keyevent@*")
            c.read()
            c.send("SUBSCRIBE", END)
            c.read()
            frames = []
            for cmd in cmds:
                c.send(*cmd)
                c.send("PUBLISH", END, "x")  # its own message ends the command's frames
                while True:
                    m = c.read()
                    if END in m:
                        c.read()  # PUBLISH's reply
                        break
                    frames.append(m)
            out.append(frames)
        finally:
            c.call("CONFIG", "SET", "notify-keyspace-events", "")
            c.close()
    assert out[0] == out[1]
