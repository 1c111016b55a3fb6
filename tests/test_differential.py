"""Differential tests: random command sequences over the key, string, set and
hash commands, sent to constdb-server and to a real redis-server (7.0), in
RESP2 and in RESP3. Replies are compared exactly, errors included, except:

- replies in hash order (SMEMBERS, KEYS, HGETALL ...) are compared as multisets;
- random replies (SPOP, SRANDMEMBER, HRANDFIELD, RANDOMKEY) are checked for
  shape, size and membership against the state read just before; SPOP's
  side effect is then made equal on constdb so that the sequences go on;
- TTLs are compared with a tolerance (the servers run a few ms apart);
- SCAN-family commands are run as full iterations and their results compared
  as sets (the cursors are implementation details).

Every few commands the whole keyspace (types, values, TTLs) is compared too.

Expiry times are chosen so that no comparison depends on the moment a command
runs: relative times are distinct multiples of 100 s, absolute ones lie either
in the past or beyond every relative one.
"""

from __future__ import annotations

import random
import time

import pytest
from support import pools
from support.resp import Conn


def bulks(reply) -> list:
    """The bulk strings of an array/set reply."""
    assert reply[0] in ("arr", "set"), reply
    out = []
    for x in reply[1]:
        assert x[0] == "bulk", reply
        out.append(x[1])
    return out


def sort_items(reply):
    """An array/set/map reply with its elements in a canonical order."""
    if reply[0] in ("arr", "set"):
        return (reply[0], tuple(sorted(reply[1], key=repr)))
    if reply[0] == "map":
        return (reply[0], tuple(sorted(reply[1], key=repr)))
    return reply


def sort_pairs(reply):
    """A flat [k, v, k, v ...] RESP2 array in canonical pair order."""
    if reply[0] != "arr":
        return reply
    items = reply[1]
    pairs = sorted(zip(items[0::2], items[1::2]), key=repr)
    return ("arr", tuple(x for p in pairs for x in p))


# ------------------------------------------------------------ the generator

KEYS = ["k1", "k2", "k3", "k4", "k5", ""]
VALUES = [
    "0",
    "1",
    "-1",
    "10",
    "42",
    "9223372036854775807",
    "-9223372036854775808",
    "abc",
    "",
    "1.5",
    "-2.25",
    "3.0e2",
    " 1",
    "007",
    "x" * 70,
    "inf",
    "v",
]
MEMBERS = ["a", "b", "c", "1", "2", "10", "-3", "", "\xff\x00"]
FIELDS = ["f1", "f2", "f3", "1", "2", ""]
# (the number pools: tests/support/pools.py; a number argument is a small
# valid one 2 times in 3, else an edge or invalid one)
INTS = pools.INTS
EDGE_INTS = pools.EDGE_INTS
FLOATS = pools.FLOATS
PATTERNS = ["*", "k*", "k[1-3]", "?2", "*1*", "[^k]*", "k\\*", "a*", "f*", "1*", "*[a-c]"]
# (no "none": SCAN TYPE none lists expired keys that active expiry has not
# deleted yet, which differs between two servers by timing)
TYPES = ["string", "set", "hash", "STRING", "list", "zset", "bogus"]


class Gen:
    """Random commands over a tiny key space, so that types collide."""

    def __init__(self, rng: random.Random, now_ms: int):
        self.rng = rng
        self.used: set[int] = set()
        self.abs_base = now_ms // 1000 + 200_000_000  # beyond every relative time

    def key(self) -> str:
        return self.rng.choice(KEYS)

    def int_arg(self) -> str:
        return self.rng.choice(INTS if self.rng.random() < 2 / 3 else EDGE_INTS)

    def keys(self, lo=1, hi=4) -> list[str]:
        return [self.key() for _ in range(self.rng.randint(lo, hi))]

    def duration(self) -> int:
        """A relative time in seconds: distinct multiples of 100 s, so that no
        GT/LT comparison can depend on when each server ran the command."""
        while True:
            k = self.rng.randint(1, 1_000_000)
            if k not in self.used:
                self.used.add(k)
                return k * 100

    def abs_time(self) -> int:
        """An absolute unix time in seconds: in the past or far in the future."""
        r = self.rng.random()
        if r < 0.3:
            return self.rng.choice([1, 1000, 1600000000])
        return self.abs_base + self.duration()

    def expire_arg(self, unit_ms: bool, absolute: bool) -> str:
        r = self.rng.random()
        if r < 0.12:
            return self.rng.choice(
                [
                    "abc",
                    "",
                    "1.5",
                    "9223372036854775807",
                    "-9223372036854775808",
                    "9223372036854775",
                ]
            )
        if r < 0.22 and not absolute:
            return self.rng.choice(["0", "-1", "-100"])
        v = self.abs_time() if absolute else self.duration()
        return str(v * 1000 + (7 if unit_ms else 0)) if unit_ms else str(v)

    def set_opts(self) -> list[str]:
        out = []
        rng = self.rng
        for _ in range(rng.choice([0, 0, 1, 1, 2, 3])):
            o = rng.choice(
                ["NX", "XX", "GET", "KEEPTTL", "EX", "PX", "EXAT", "PXAT", "nx", "get", "ex", "BAD"]
            )
            up = o.upper()
            if up in ("EX", "PX"):
                out += [o, self.expire_arg(up == "PX", False)]
            elif up in ("EXAT", "PXAT"):
                out += [o, self.expire_arg(up == "PXAT", True)]
            else:
                out.append(o)
        if rng.random() < 0.05 and out:
            out.pop()  # an option that lacks its value
        return out

    def getex_opts(self) -> list[str]:
        rng = self.rng
        out = []
        for _ in range(rng.choice([0, 1, 1, 2])):
            o = rng.choice(["EX", "PX", "EXAT", "PXAT", "PERSIST", "persist", "KEEPTTL", "NX"])
            up = o.upper()
            if up in ("EX", "PX"):
                out += [o, self.expire_arg(up == "PX", False)]
            elif up in ("EXAT", "PXAT"):
                out += [o, self.expire_arg(up == "PXAT", True)]
            else:
                out.append(o)
        return out

    def expire_flags(self) -> list[str]:
        rng = self.rng
        if rng.random() < 0.5:
            return []
        return [
            rng.choice(["NX", "XX", "GT", "LT", "gt", "lt", "nx", "BOGUS"])
            for _ in range(rng.choice([1, 1, 2]))
        ]

    def scan_opts(self, with_type: bool) -> list[str]:
        rng = self.rng
        out = []
        for _ in range(rng.choice([0, 1, 1, 2, 3])):
            o = rng.choice(
                ["MATCH", "COUNT", "TYPE", "match", "count", "BAD"]
                if with_type
                else ["MATCH", "COUNT", "count", "TYPE", "BAD"]
            )
            up = o.upper()
            if up == "MATCH":
                out += [o, rng.choice(PATTERNS)]
            elif up == "COUNT":
                out += [o, rng.choice(["1", "2", "3", "10", "100", "0", "-1", "abc"])]
            elif up == "TYPE":
                out += [o, rng.choice(TYPES)]
            else:
                out.append(o)
        return out

    def command(self) -> list[str]:
        rng = self.rng
        name = rng.choice(COMMANDS)
        args = GENERATORS[name](self)
        cmd = [name] + args
        if rng.random() < 0.04:  # a bad arity
            if rng.random() < 0.5 and len(cmd) > 1:
                cmd = cmd[: rng.randrange(1, len(cmd))]
            else:
                cmd = cmd + ["extra"]
        if rng.random() < 0.2:
            cmd[0] = cmd[0].lower()
        return cmd


GENERATORS = {
    # keys
    "DEL": lambda g: g.keys(),
    "UNLINK": lambda g: g.keys(),
    "EXISTS": lambda g: g.keys(),
    "TOUCH": lambda g: g.keys(),
    "TYPE": lambda g: [g.key()],
    "KEYS": lambda g: [g.rng.choice(PATTERNS)],
    "SCAN": lambda g: (
        [g.rng.choice(["0"] * 8 + ["abc", "-1", "", " 1", "18446744073709551616", "+0"])]
        + g.scan_opts(True)
    ),
    "RANDOMKEY": lambda g: [],
    "RENAME": lambda g: [g.key(), g.key()],
    "RENAMENX": lambda g: [g.key(), g.key()],
    "EXPIRE": lambda g: [g.key(), g.expire_arg(False, False)] + g.expire_flags(),
    "PEXPIRE": lambda g: [g.key(), g.expire_arg(True, False)] + g.expire_flags(),
    "EXPIREAT": lambda g: [g.key(), g.expire_arg(False, True)] + g.expire_flags(),
    "PEXPIREAT": lambda g: [g.key(), g.expire_arg(True, True)] + g.expire_flags(),
    "TTL": lambda g: [g.key()],
    "PTTL": lambda g: [g.key()],
    "EXPIRETIME": lambda g: [g.key()],
    "PEXPIRETIME": lambda g: [g.key()],
    "PERSIST": lambda g: [g.key()],
    # strings
    "GET": lambda g: [g.key()],
    "SET": lambda g: [g.key(), g.rng.choice(VALUES)] + g.set_opts(),
    "SETNX": lambda g: [g.key(), g.rng.choice(VALUES)],
    "SETEX": lambda g: [g.key(), g.expire_arg(False, False), g.rng.choice(VALUES)],
    "PSETEX": lambda g: [g.key(), g.expire_arg(True, False), g.rng.choice(VALUES)],
    "GETSET": lambda g: [g.key(), g.rng.choice(VALUES)],
    "GETDEL": lambda g: [g.key()],
    "GETEX": lambda g: [g.key()] + g.getex_opts(),
    "MGET": lambda g: g.keys(),
    "MSET": lambda g: [x for k in g.keys() for x in (k, g.rng.choice(VALUES))][
        : None if g.rng.random() < 0.9 else -1
    ],
    "MSETNX": lambda g: [x for k in g.keys() for x in (k, g.rng.choice(VALUES))][
        : None if g.rng.random() < 0.9 else -1
    ],
    "APPEND": lambda g: [g.key(), g.rng.choice(VALUES)],
    "STRLEN": lambda g: [g.key()],
    "GETRANGE": lambda g: [
        g.key(),
        g.rng.choice(INTS + ["abc"]),
        g.rng.choice(INTS + ["abc"]),
    ],
    "SUBSTR": lambda g: [
        g.key(),
        g.rng.choice(["0", "1", "-1", "-3"]),
        g.rng.choice(["0", "2", "-1", "100"]),
    ],
    "INCR": lambda g: [g.key()],
    "DECR": lambda g: [g.key()],
    "INCRBY": lambda g: [g.key(), g.int_arg()],
    "DECRBY": lambda g: [g.key(), g.int_arg()],
    "INCRBYFLOAT": lambda g: [g.key(), g.rng.choice(FLOATS)],
    "SETRANGE": lambda g: [
        g.key(),
        g.rng.choice(["0", "1", "3", "10", "-1", "abc", "536870912"]),
        g.rng.choice(["", "xy", "Z"]),
    ],
    # sets
    "SADD": lambda g: [g.key()] + g.rng.sample(MEMBERS, g.rng.randint(1, 3)),
    "SREM": lambda g: [g.key()] + g.rng.sample(MEMBERS, g.rng.randint(1, 3)),
    "SPOP": lambda g: (
        [g.key()] + g.rng.choice([[], [], ["1"], ["2"], ["0"], ["10"], ["-1"], ["abc"], ["1", "2"]])
    ),
    "SMEMBERS": lambda g: [g.key()],
    "SISMEMBER": lambda g: [g.key(), g.rng.choice(MEMBERS)],
    "SMISMEMBER": lambda g: [g.key()] + g.rng.sample(MEMBERS, g.rng.randint(1, 3)),
    "SCARD": lambda g: [g.key()],
    "SRANDMEMBER": lambda g: (
        [g.key()]
        + g.rng.choice(
            [
                [],
                ["1"],
                ["3"],
                ["0"],
                ["20"],
                ["-5"],
                ["-1"],
                ["abc"],
                ["-9223372036854775808"],
                ["1", "2"],
            ]
        )
    ),
    "SMOVE": lambda g: [g.key(), g.key(), g.rng.choice(MEMBERS)],
    "SINTER": lambda g: g.keys(),
    "SUNION": lambda g: g.keys(),
    "SDIFF": lambda g: g.keys(),
    "SINTERSTORE": lambda g: [g.key()] + g.keys(),
    "SUNIONSTORE": lambda g: [g.key()] + g.keys(),
    "SDIFFSTORE": lambda g: [g.key()] + g.keys(),
    "SINTERCARD": lambda g: (
        (lambda ks: [g.rng.choice([str(len(ks))] * 5 + ["0", "-1", "abc", "9"])] + ks)(g.keys())
        + g.rng.choice(
            [
                [],
                [],
                ["LIMIT", "1"],
                ["limit", "0"],
                ["LIMIT", "-1"],
                ["LIMIT", "abc"],
                ["LIMIT"],
                ["BAD", "1"],
            ]
        )
    ),
    "SSCAN": lambda g: [g.key(), g.rng.choice(["0"] * 8 + ["abc", "-1", ""])] + g.scan_opts(False),
    # hashes
    "HSET": lambda g: (
        [g.key()]
        + [x for f in g.rng.sample(FIELDS, g.rng.randint(1, 3)) for x in (f, g.rng.choice(VALUES))]
    ),
    "HMSET": lambda g: (
        [g.key()]
        + [x for f in g.rng.sample(FIELDS, g.rng.randint(1, 3)) for x in (f, g.rng.choice(VALUES))]
    ),
    "HSETNX": lambda g: [g.key(), g.rng.choice(FIELDS), g.rng.choice(VALUES)],
    "HGET": lambda g: [g.key(), g.rng.choice(FIELDS)],
    "HMGET": lambda g: [g.key()] + g.rng.sample(FIELDS, g.rng.randint(1, 3)),
    "HGETALL": lambda g: [g.key()],
    "HDEL": lambda g: [g.key()] + g.rng.sample(FIELDS, g.rng.randint(1, 3)),
    "HLEN": lambda g: [g.key()],
    "HEXISTS": lambda g: [g.key(), g.rng.choice(FIELDS)],
    "HKEYS": lambda g: [g.key()],
    "HVALS": lambda g: [g.key()],
    "HSTRLEN": lambda g: [g.key(), g.rng.choice(FIELDS)],
    "HINCRBY": lambda g: [g.key(), g.rng.choice(FIELDS), g.int_arg()],
    "HRANDFIELD": lambda g: (
        [g.key()]
        + g.rng.choice(
            [
                [],
                ["1"],
                ["3"],
                ["0"],
                ["20"],
                ["-5"],
                ["abc"],
                ["2", "WITHVALUES"],
                ["-4", "withvalues"],
                ["3", "BAD"],
                ["abc", "x", "y"],
                ["1", "WITHVALUES", "x"],
                ["-9223372036854775808"],
                ["4611686018427387904", "WITHVALUES"],
            ]
        )
    ),
    "HSCAN": lambda g: [g.key(), g.rng.choice(["0"] * 8 + ["abc", "-1", ""])] + g.scan_opts(False),
}

# write-heavy weighting: more writes than reads keeps the key space lively
WEIGHTS = {
    "SET": 6,
    "SADD": 6,
    "HSET": 6,
    "INCRBY": 2,
    "INCR": 2,
    "DEL": 2,
    "EXPIRE": 2,
    "PEXPIRE": 2,
    "EXPIREAT": 2,
    "SREM": 2,
    "HDEL": 2,
    "APPEND": 2,
}
COMMANDS = [name for name in GENERATORS for _ in range(WEIGHTS.get(name, 1))]

UNORDERED = {"SMEMBERS", "SINTER", "SUNION", "SDIFF", "KEYS", "HKEYS", "HVALS"}
TTL_TOLERANCE = {"TTL": 1, "EXPIRETIME": 1, "PTTL": 250, "PEXPIRETIME": 250}


# ------------------------------------------------------------ the comparison


class Pair:
    """The same commands on constdb (c) and redis (r)."""

    def __init__(self, cport: int, rport: int, protocol: int):
        self.protocol = protocol
        self.c = Conn(cport, protocol)
        self.r = Conn(rport, protocol)
        self.log: list = []

    def close(self) -> None:
        self.c.close()
        self.r.close()

    def fail(self, msg: str):
        hist = "\n".join(f"  {' '.join(map(repr, c))}" for c in self.log[-25:])
        raise AssertionError(f"RESP{self.protocol}: {msg}\nlast commands:\n{hist}")

    def both(self, *cmd):
        self.log.append(cmd)
        return self.c.call_typed(*cmd), self.r.call_typed(*cmd)

    def expect_equal(self, cmd, c, r, what="reply"):
        if c != r:
            self.fail(f"{what} of {cmd!r} differs:\n  constdb: {c!r}\n  redis:   {r!r}")

    # -- state snapshots (read from redis, the reference)

    def members(self, key):
        rep = self.r.call_typed("SMEMBERS", key)
        return set(bulks(rep)) if rep[0] in ("arr", "set") else None

    def hash(self, key):
        rep = self.r.call_typed("HGETALL", key)
        if rep[0] == "map":
            return {k[1]: v[1] for k, v in rep[1]}
        if rep[0] == "arr":
            items = bulks(rep)
            return dict(zip(items[0::2], items[1::2]))
        return None

    # -- one command

    def run(self, cmd) -> tuple:
        """Run cmd on both servers and compare; returns (constdb, redis) replies."""
        name = cmd[0].upper() if isinstance(cmd[0], str) else cmd[0].decode().upper()
        if name in ("SPOP", "SRANDMEMBER"):
            return self.run_set_random(cmd, name)
        if name == "HRANDFIELD":
            return self.run_hrandfield(cmd)
        if name == "RANDOMKEY":
            return self.run_randomkey(cmd)
        if name in ("SCAN", "SSCAN", "HSCAN"):
            return self.run_scan(cmd, name)
        c, r = self.both(*cmd)
        if r[0] == "err" or c[0] == "err":
            self.expect_equal(cmd, c, r)
            return c, r
        nc, nr = c, r
        if name in UNORDERED:
            nc, nr = sort_items(c), sort_items(r)
        elif name == "HGETALL":
            nc, nr = (
                (sort_pairs(c), sort_pairs(r))
                if self.protocol == 2
                else (sort_items(c), sort_items(r))
            )
        elif name in TTL_TOLERANCE:
            if c[0] == r[0] == "int" and min(c[1], r[1]) >= 0:
                if abs(c[1] - r[1]) > TTL_TOLERANCE[name]:
                    self.fail(f"{cmd!r}: constdb {c[1]} vs redis {r[1]}")
                return c, r
        self.expect_equal(cmd, nc, nr)
        return c, r

    def _check_pick(self, cmd, c, r, pool, unique_n):
        """c and r are replies of a random pick from pool: same type and size,
        members of pool, distinct when unique_n is set."""
        if c[0] != r[0]:
            self.expect_equal(cmd, c, r, "reply type")
        if c[0] == "bulk":
            if c[1] not in pool:
                self.fail(f"{cmd!r}: {c[1]!r} is not in {pool!r}")
            return
        if c[0] not in ("arr", "set"):
            return self.expect_equal(cmd, c, r)
        if len(c[1]) != len(r[1]):
            self.fail(f"{cmd!r}: constdb returned {len(c[1])} items, redis {len(r[1])}")
        got = bulks(c)
        for x in got:
            if x not in pool:
                self.fail(f"{cmd!r}: {x!r} is not in {pool!r}")
        if unique_n and len(set(got)) != len(got):
            self.fail(f"{cmd!r}: duplicates in {got!r}")

    def run_set_random(self, cmd, name):
        key = cmd[1] if len(cmd) > 1 else None
        pool = self.members(key) if key is not None else None
        c, r = self.both(*cmd)
        if r[0] == "err" or c[0] == "err" or pool is None or r[0] in ("nil", "null"):
            self.expect_equal(cmd, c, r)
            return c, r
        count = int(cmd[2]) if len(cmd) == 3 else None
        self._check_pick(cmd, c, r, pool, count is None or count >= 0)
        if name == "SPOP":
            cp = set(bulks(c)) if c[0] in ("arr", "set") else {c[1]}
            rp = set(bulks(r)) if r[0] in ("arr", "set") else {r[1]}
            if cp != rp:  # make constdb pop what redis popped
                self.c.call_typed("SADD", key, *cp)
                self.c.call_typed("SREM", key, *rp)
            self.expect_equal(
                ("SMEMBERS", key),
                sort_items(self.c.call_typed("SMEMBERS", key)),
                sort_items(self.r.call_typed("SMEMBERS", key)),
            )
        return c, r

    def run_hrandfield(self, cmd):
        key = cmd[1] if len(cmd) > 1 else None
        h = self.hash(key) if key is not None else None
        c, r = self.both(*cmd)
        if r[0] == "err" or c[0] == "err" or h is None or r[0] in ("nil", "null"):
            self.expect_equal(cmd, c, r)
            return c, r
        count = int(cmd[2]) if len(cmd) >= 3 else None
        withvalues = len(cmd) == 4
        if not withvalues:
            self._check_pick(cmd, c, r, set(h), count is None or count >= 0)
            return c, r
        if c[0] != r[0] or len(c[1]) != len(r[1]):
            self.expect_equal(cmd, c, r, "reply shape")
        if self.protocol == 3:
            pairs = []
            for x in c[1]:
                if x[0] != "arr" or len(x[1]) != 2:
                    self.fail(f"{cmd!r}: RESP3 WITHVALUES item {x!r} is not a pair")
                pairs.append((x[1][0][1], x[1][1][1]))
        else:
            items = bulks(c)
            pairs = list(zip(items[0::2], items[1::2]))
        for f, v in pairs:
            if h.get(f) != v:
                self.fail(f"{cmd!r}: pair {(f, v)!r} not in {h!r}")
        if count >= 0 and len({f for f, _ in pairs}) != len(pairs):
            self.fail(f"{cmd!r}: duplicate fields in {pairs!r}")
        return c, r

    def run_randomkey(self, cmd):
        keys = set(bulks(self.r.call_typed("KEYS", "*")))
        c, r = self.both(*cmd)
        if c[0] == "err" or r[0] == "err" or not keys:
            self.expect_equal(cmd, c, r)
            return c, r
        self._check_pick(cmd, c, r, keys, True)
        return c, r

    def run_scan(self, cmd, name):
        """A full iteration from the cursor given (only 0 is meaningful across
        implementations; for another valid cursor only the shape is compared)."""
        ci = 1 if name == "SCAN" else 2
        if len(cmd) <= ci:
            c, r = self.both(*cmd)
            self.expect_equal(cmd, c, r)
            return c, r
        c, r = self.both(*cmd)
        if c[0] == "err" or r[0] == "err":
            self.expect_equal(cmd, c, r)
            return c, r
        for rep in (c, r):
            if (
                rep[0] != "arr"
                or len(rep[1]) != 2
                or rep[1][0][0] != "bulk"
                or rep[1][1][0] != "arr"
            ):
                self.fail(f"{cmd!r}: bad scan reply {rep!r}")
        if cmd[ci] != "0":
            return c, r
        results = []
        for conn, first in ((self.c, c), (self.r, r)):
            items = list(bulks(first[1][1]))
            cur = first[1][0][1]
            n = 0
            while cur != b"0":
                n += 1
                if n > 10000:
                    self.fail(f"{cmd!r}: the scan does not end")
                args = list(cmd)
                args[ci] = cur
                rep = conn.call_typed(*args)
                items += bulks(rep[1][1])
                cur = rep[1][0][1]
            if name == "HSCAN":
                results.append(set(zip(items[0::2], items[1::2])))
            else:
                results.append(set(items))
        if results[0] != results[1]:
            self.fail(
                f"{cmd!r}: full iteration differs:\n  constdb: {sorted(results[0])!r}\n  redis:   {sorted(results[1])!r}"
            )
        return c, r

    # -- the whole keyspace

    def check_state(self) -> None:
        for key in KEYS:
            c, r = self.c.call_typed("TYPE", key), self.r.call_typed("TYPE", key)
            self.expect_equal(("TYPE", key), c, r, "state")
            t = r[1]
            if t == b"string":
                c, r = self.c.call_typed("GET", key), self.r.call_typed("GET", key)
            elif t == b"set":
                c, r = (
                    sort_items(self.c.call_typed("SMEMBERS", key)),
                    sort_items(self.r.call_typed("SMEMBERS", key)),
                )
            elif t == b"hash":
                c, r = self.c.call_typed("HGETALL", key), self.r.call_typed("HGETALL", key)
                c, r = (
                    (sort_pairs(c), sort_pairs(r))
                    if self.protocol == 2
                    else (sort_items(c), sort_items(r))
                )
            self.expect_equal((key,), c, r, "state of key")
            c, r = self.c.call_typed("PTTL", key), self.r.call_typed("PTTL", key)
            if c[1] < 0 or r[1] < 0:
                self.expect_equal(("PTTL", key), c, r, "state")
            elif abs(c[1] - r[1]) > TTL_TOLERANCE["PTTL"]:
                self.fail(f"PTTL {key}: constdb {c[1]} vs redis {r[1]}")


def run_sequence(cport: int, rport: int, protocol: int, seed: int, n: int, every: int = 25) -> None:
    rng = random.Random(seed)
    pair = Pair(cport, rport, protocol)
    try:
        pair.both("FLUSHALL")
        gen = Gen(rng, int(time.time() * 1000))
        for i in range(n):
            pair.run(gen.command())
            if i % every == every - 1:
                pair.check_state()
        pair.check_state()
    finally:
        pair.close()


@pytest.mark.parametrize("protocol", [2, 3])
@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5, 6])
def test_random_sequences(constdb_server, redis_server, protocol, seed):
    run_sequence(constdb_server.port, redis_server.port, protocol, seed * 10 + protocol, 3000, 10)
