"""Targeted differential tests of the data commands: every error string, the
option rules, the TTL rules and the RESP3 reply types, each checked against a
real redis-server 7.0 and, where written down here, against the exact text.

A script line is `(command, expected)`: the command runs on both servers and
the replies must agree (see test_differential.Pair.run for what "agree" means
for unordered, random and TTL replies); `expected`, when given, is what redis
itself must answer: "-ERR ..." an error, ":n" an integer, "+OK" a status,
"$x" a bulk string, "nil" a null.
"""

from __future__ import annotations

import shlex
import time

import pytest
from support.resp import replies
from test_differential import Pair

WRONGTYPE = "-WRONGTYPE Operation against a key holding the wrong kind of value"
NOTINT = "-ERR value is not an integer or out of range"
SYNTAX = "-ERR syntax error"
FUTURE = str(int(time.time()) + 100_000_000)  # an absolute time far ahead (s)


def arity(name: str) -> str:
    return f"-ERR wrong number of arguments for '{name}' command"


def expire_err(name: str) -> str:
    return f"-ERR invalid expire time in '{name}' command"


def check_expected(pair: Pair, cmd, reply, expected: str) -> None:
    if expected == "nil":
        ok = reply in (("nil",), ("null",))
    elif expected[0] == "-":
        ok = reply == ("err", expected[1:].encode())
    elif expected[0] == ":" and cmd[0].upper() == "TTL" and int(expected[1:]) > 0:
        # a loaded machine may take a while between the EXPIRE and the TTL
        ok = reply[0] == "int" and 0 <= int(expected[1:]) - reply[1] <= 1
    elif expected[0] == ":":
        ok = reply == ("int", int(expected[1:]))
    elif expected[0] == "+":
        ok = reply == ("status", expected[1:].encode())
    elif expected[0] == "$":
        ok = reply == ("bulk", expected[1:].encode())
    else:
        raise ValueError(expected)
    if not ok:
        pair.fail(f"redis answered {reply!r} to {cmd!r}, the test expects {expected!r}")


SCRIPTS = {
    "wrongtype": [
        ("SET s1 x", "+OK"),
        ("SADD set1 a b", ":2"),
        ("HSET h1 f v", ":1"),
        *[
            (c, WRONGTYPE)
            for c in [
                "GET set1",
                "GETSET set1 x",
                "GETDEL set1",
                "GETEX set1",
                "GETEX set1 EX 10",
                "SET set1 v GET",
                "APPEND set1 x",
                "STRLEN set1",
                "GETRANGE set1 0 1",
                "SUBSTR set1 0 1",
                "SETRANGE set1 0 x",
                "INCR set1",
                "DECR h1",
                "INCRBY set1 1",
                "DECRBY h1 1",
                "INCRBYFLOAT set1 1",
                "SADD s1 a",
                "SREM s1 a",
                "SPOP s1",
                "SPOP s1 2",
                "SMEMBERS s1",
                "SISMEMBER s1 a",
                "SMISMEMBER s1 a b",
                "SCARD h1",
                "SRANDMEMBER s1",
                "SRANDMEMBER s1 2",
                "SMOVE s1 set1 a",
                "SMOVE set1 s1 a",
                "SINTER set1 s1",
                "SUNION s1 set1",
                "SDIFF set1 h1",
                "SINTERSTORE d set1 s1",
                "SUNIONSTORE d s1",
                "SDIFFSTORE d set1 h1",
                "SINTERCARD 2 set1 s1",
                "SSCAN s1 0",
                "SSCAN s1 0 COUNT 0",
                "HSET s1 f v",
                "HMSET set1 f v",
                "HSETNX s1 f v",
                "HGET s1 f",
                "HMGET set1 f",
                "HGETALL s1",
                "HDEL s1 f",
                "HLEN set1",
                "HEXISTS s1 f",
                "HKEYS s1",
                "HVALS set1",
                "HSTRLEN s1 f",
                "HINCRBY s1 f 1",
                "HRANDFIELD s1",
                "HRANDFIELD s1 2 WITHVALUES",
                "HSCAN set1 0",
                "HSCAN set1 0 COUNT 0",
            ]
        ],
        ("MGET s1 set1 h1 nokey", None),
        ("SINTER nokey set1 s1", WRONGTYPE),
        ("SINTERCARD 2 nokey s1", WRONGTYPE),
        ("SMOVE nokey s1 a", ":0"),
        ("SET h1 v", "+OK"),
        ("TYPE h1", "+string"),
    ],
    "integers": [
        ("SET n 10", "+OK"),
        ("INCRBY n abc", NOTINT),
        ("INCRBY n 1.5", NOTINT),
        ("INCRBY n +1", NOTINT),
        ("INCRBY n 01", NOTINT),
        ("INCRBY n ''", NOTINT),
        ("INCRBY n 9223372036854775808", NOTINT),
        ("DECRBY n abc", NOTINT),
        ("DECRBY n -9223372036854775808", "-ERR decrement would overflow"),
        ("INCRBY n 9223372036854775797", ":9223372036854775807"),
        ("INCR n", "-ERR increment or decrement would overflow"),
        ("INCRBY n 1", "-ERR increment or decrement would overflow"),
        ("DECRBY n 9223372036854775807", ":0"),
        ("DECRBY n 9223372036854775807", ":-9223372036854775807"),
        ("DECR n", ":-9223372036854775808"),
        ("DECR n", "-ERR increment or decrement would overflow"),
        ("GET n", "$-9223372036854775808"),
        ("SET n abc", "+OK"),
        ("INCR n", NOTINT),
        ("SET n ' 1'", "+OK"),
        ("INCR n", NOTINT),
        ("SET n 007", "+OK"),
        ("DECR n", NOTINT),
        ("SET n -0", "+OK"),
        ("INCR n", NOTINT),
        ("SET n 123456789012345678901", "+OK"),
        ("INCR n", NOTINT),
        ("INCR fresh", ":1"),
        ("DECR fresh", ":0"),
        ("GET fresh", "$0"),
        ("INCRBY fresh2 -5", ":-5"),
        ("APPEND fresh2 5", ":3"),
        ("INCR fresh2", ":-54"),
        ("HSET h f abc g 5 z 9223372036854775807", ":3"),
        ("HINCRBY h f 1", "-ERR hash value is not an integer"),
        ("HINCRBY h g abc", NOTINT),
        ("HINCRBY nokey g abc", NOTINT),
        ("HINCRBY h g -10", ":-5"),
        ("HINCRBY h z 1", "-ERR increment or decrement would overflow"),
        ("HINCRBY h new -9223372036854775808", ":-9223372036854775808"),
        ("HINCRBY h new -1", "-ERR increment or decrement would overflow"),
        ("HGET h new", "$-9223372036854775808"),
    ],
    "floats": [
        ("INCRBYFLOAT f 1.5", "$1.5"),
        ("INCRBYFLOAT f 0.1", "$1.6"),
        ("INCRBYFLOAT f -1.6", "$0"),
        ("INCRBYFLOAT f 1e3", "$1000"),
        ("INCRBYFLOAT f abc", "-ERR value is not a valid float"),
        ("INCRBYFLOAT f ''", "-ERR value is not a valid float"),
        ("INCRBYFLOAT f ' 1'", "-ERR value is not a valid float"),
        ("INCRBYFLOAT f nan", "-ERR value is not a valid float"),
        ("INCRBYFLOAT f inf", "-ERR increment would produce NaN or Infinity"),
        ("INCRBYFLOAT f 0x10", "$1016"),
        ("INCRBYFLOAT f 1e400", None),
        ("INCRBYFLOAT g 5.0e3", "$5000"),
        ("INCRBYFLOAT g -5000.5", "$-0.5"),
        ("INCRBYFLOAT g 0.5", "$0"),
        ("INCR g", ":1"),
        ("INCRBYFLOAT g 0.25", "$1.25"),
        ("SET s abc", "+OK"),
        ("INCRBYFLOAT s 1", "-ERR value is not a valid float"),
        ("SET s 10", "+OK"),
        ("PEXPIRE s 100000000", ":1"),
        ("INCRBYFLOAT s 3.0e-1", "$10.3"),
        ("PTTL s", None),
        ("INCRBYFLOAT s 1.7976931348623157e308", None),
        ("GET s", None),
    ],
    "set-options": [
        ("SET k v BAD", SYNTAX),
        ("SET k v NX XX", SYNTAX),
        ("SET k v XX NX", SYNTAX),
        ("SET k v EX 10 PX 100", SYNTAX),
        ("SET k v EX 10 EXAT " + FUTURE, SYNTAX),
        ("SET k v KEEPTTL EX 10", SYNTAX),
        ("SET k v EX 10 KEEPTTL", SYNTAX),
        ("SET k v EX", SYNTAX),
        ("SET k v PERSIST", SYNTAX),
        ("SET k v EX abc", NOTINT),
        ("SET k v EX 0", expire_err("set")),
        ("SET k v EX -1", expire_err("set")),
        ("SET k v PX 0", expire_err("set")),
        ("SET k v EXAT 0", expire_err("set")),
        ("SET k v PXAT -5", expire_err("set")),
        ("SET k v EX 9223372036854776", expire_err("set")),
        ("SET k v EX 9223372036854775", expire_err("set")),
        ("SET k v PX 9223372036854775807", expire_err("set")),
        ("SET k v EXAT 9223372036854775", "+OK"),
        ("PEXPIRETIME k", ":9223372036854775000"),
        ("EXPIRETIME k", ":9223372036854775"),
        ("SET k v EX 10 EX 100", "+OK"),
        ("TTL k", ":100"),
        ("SET k v PX 5000 PX 200000", "+OK"),
        ("TTL k", ":200"),
        ("SET k v2 KEEPTTL KEEPTTL", "+OK"),
        ("TTL k", ":200"),
        ("SET k v3 nx", "nil"),
        ("SET k v3 NX NX", "nil"),
        ("SET k v3 xx get", "$v2"),
        ("TTL k", ":-1"),
        ("SET k v4 GET GET", "$v3"),
        ("SET new v NX GET", "nil"),
        ("SET new v2 NX GET", "$v"),
        ("GET new", "$v"),
        ("SET new2 v XX GET", "nil"),
        ("EXISTS new2", ":0"),
        ("SET k v EXAT 1", "+OK"),
        ("EXISTS k", ":0"),
        ("SET k v PXAT " + FUTURE + "000", "+OK"),
        ("PEXPIRETIME k", ":" + FUTURE + "000"),
        ("SET k v ex 100 get", "$v"),
        ("SETNX k x", ":0"),
        ("SETNX k2 x", ":1"),
        ("SETEX k abc v", NOTINT),
        ("SETEX k 0 v", expire_err("setex")),
        ("SETEX k -10 v", expire_err("setex")),
        ("SETEX k 9223372036854775807 v", expire_err("setex")),
        ("PSETEX k 0 v", expire_err("psetex")),
        ("PSETEX k 9223372036854775807 v", expire_err("psetex")),
        ("SETEX k 100 v", "+OK"),
        ("TTL k", ":100"),
        ("PSETEX k 100000 v", "+OK"),
        ("PTTL k", None),
        ("SADD st a", ":1"),
        ("SETEX st 100 v", "+OK"),
        ("GET st", "$v"),
    ],
    "getex-and-friends": [
        ("GETEX nokey EX abc", "nil"),
        ("GETEX nokey EX -1", "nil"),
        ("GETEX nokey BAD", SYNTAX),
        ("GETEX nokey NX", SYNTAX),
        ("GETEX nokey KEEPTTL", SYNTAX),
        ("GETEX nokey EX 10 PERSIST", SYNTAX),
        ("GETEX nokey PERSIST EX 10", SYNTAX),
        ("SET k v", "+OK"),
        ("GETEX k EX abc", NOTINT),
        ("GETEX k EX 0", expire_err("getex")),
        ("GETEX k PX 9223372036854775807", expire_err("getex")),
        ("GETEX k EX 100", "$v"),
        ("TTL k", ":100"),
        ("GETEX k EX 10 EX 200", "$v"),
        ("TTL k", ":200"),
        ("GETEX k PERSIST PERSIST", "$v"),
        ("TTL k", ":-1"),
        ("GETEX k PXAT " + FUTURE + "000", "$v"),
        ("PEXPIRETIME k", ":" + FUTURE + "000"),
        ("GETEX k", "$v"),
        ("GETEX k EXAT 1", "$v"),
        ("EXISTS k", ":0"),
        ("SET k v EX 100", "+OK"),
        ("GETSET k w", "$v"),
        ("TTL k", ":-1"),
        ("GETSET nokey w", "nil"),
        ("GETDEL k", "$w"),
        ("GETDEL k", "nil"),
        ("MSET a 1 b", arity("mset")),
        ("MSETNX a 1 b", arity("msetnx")),
        ("MSET a 1 b 2 a 3", "+OK"),
        ("MGET a b c", None),
        ("MSETNX c 1 a 2", ":0"),
        ("MSETNX c 1 d 2 c 3", ":1"),
        ("MGET c d", None),
        ("HMSET h f", arity("hmset")),
        ("HSET h f v g", arity("hset")),
    ],
    "strings": [
        ("APPEND k abc", ":3"),
        ("APPEND k de", ":5"),
        ("STRLEN k", ":5"),
        ("STRLEN nokey", ":0"),
        ("GETRANGE k 0 -1", "$abcde"),
        ("GETRANGE k -3 -2", "$cd"),
        ("GETRANGE k -2 -3", "$"),
        ("GETRANGE k 3 1", "$"),
        ("GETRANGE k -100 100", "$abcde"),
        ("GETRANGE k 10 20", "$"),
        ("GETRANGE k 0 -100", "$a"),
        ("GETRANGE k abc 1", NOTINT),
        ("GETRANGE nokey abc 1", NOTINT),
        ("GETRANGE nokey 0 1", "$"),
        ("SUBSTR k 1 2", "$bc"),
        ("SET e ''", "+OK"),
        ("GETRANGE e 0 -1", "$"),
        ("STRLEN e", ":0"),
        ("SET n 12345", "+OK"),
        ("GETRANGE n 1 2", "$23"),
        ("INCR n", ":12346"),
        ("APPEND n 7", ":6"),
        ("GET n", "$123467"),
        ("SETRANGE k -1 x", "-ERR offset is out of range"),
        ("SETRANGE k abc x", NOTINT),
        (
            "SETRANGE k 536870911 xy",
            "-ERR string exceeds maximum allowed size (proto-max-bulk-len)",
        ),
        (
            "SETRANGE nokey 536870911 xy",
            "-ERR string exceeds maximum allowed size (proto-max-bulk-len)",
        ),
        (
            "SETRANGE nokey 9223372036854775807 xy",
            "-ERR string exceeds maximum allowed size (proto-max-bulk-len)",
        ),
        (
            "SETRANGE k 9223372036854775807 xy",
            "-ERR string exceeds maximum allowed size (proto-max-bulk-len)",
        ),
        ("SETRANGE nokey 5 ''", ":0"),
        ("EXISTS nokey", ":0"),
        ("SETRANGE k 100 ''", ":5"),
        ("SETRANGE k 1 XY", ":5"),
        ("GET k", "$aXYde"),
        ("SETRANGE k 7 Z", ":8"),
        ("GET k", None),
        ("SETRANGE new 3 ab", ":5"),
        ("GET new", None),
        ("SETRANGE n 0 9", ":6"),
        ("INCR n", ":923468"),
        ("EXPIRE k 1000", ":1"),
        ("SETRANGE k 0 q", ":8"),
        ("APPEND k q", ":9"),
        ("TTL k", ":1000"),
    ],
    "expire": [
        ("SET k v", "+OK"),
        ("EXPIRE k 100 BAD", "-ERR Unsupported option BAD"),
        (
            "EXPIRE k 100 NX XX",
            "-ERR NX and XX, GT or LT options at the same time are not compatible",
        ),
        (
            "EXPIRE k 100 NX GT",
            "-ERR NX and XX, GT or LT options at the same time are not compatible",
        ),
        ("EXPIRE k 100 GT LT", "-ERR GT and LT options at the same time are not compatible"),
        ("EXPIRE k abc BAD", "-ERR Unsupported option BAD"),
        ("EXPIRE k abc", NOTINT),
        ("EXPIRE k 9223372036854776", expire_err("expire")),
        ("EXPIRE k -9223372036854776", expire_err("expire")),
        ("EXPIRE k 9223372036854775", expire_err("expire")),
        ("PEXPIRE k 9223372036854775807", expire_err("pexpire")),
        ("EXPIREAT k 9223372036854776", expire_err("expireat")),
        ("PEXPIREAT k 9223372036854775807", ":1"),
        ("PEXPIRETIME k", ":9223372036854775807"),
        ("EXPIRETIME k", ":9223372036854776"),
        ("PERSIST k", ":1"),
        ("PERSIST k", ":0"),
        ("PERSIST nokey", ":0"),
        ("EXPIRE nokey 100", ":0"),
        ("EXPIRE nokey abc", NOTINT),
        ("EXPIRE k 100 XX", ":0"),
        ("EXPIRE k 100 GT", ":0"),
        ("EXPIRE k 100 LT", ":1"),
        ("TTL k", ":100"),
        ("EXPIRE k 200 NX", ":0"),
        ("EXPIRE k 200 LT", ":0"),
        ("EXPIRE k 200 gt", ":1"),
        ("EXPIRE k 300 XX GT", ":1"),
        ("EXPIRE k 300 xx lt", ":0"),
        ("EXPIRE k 50 NX", ":0"),
        ("TTL k", ":300"),
        ("PEXPIRE k 250700", ":1"),
        ("TTL k", ":251"),
        ("PTTL k", None),
        ("EXPIREAT k " + FUTURE, ":1"),
        ("EXPIRETIME k", ":" + FUTURE),
        ("PEXPIREAT k " + FUTURE + "499", ":1"),
        ("EXPIRETIME k", ":" + FUTURE),
        ("PEXPIREAT k " + FUTURE + "500", ":1"),
        ("EXPIRETIME k", ":" + str(int(FUTURE) + 1)),
        ("EXPIRE k -1 LT", ":1"),
        ("EXISTS k", ":0"),
        ("SADD s a", ":1"),
        ("EXPIRE s 0", ":1"),
        ("EXISTS s", ":0"),
        ("HSET h f v", ":1"),
        ("PEXPIREAT h 1", ":1"),
        ("EXISTS h", ":0"),
        ("SET k v", "+OK"),
        ("EXPIREAT k 1 GT", ":0"),
        ("EXPIREAT k 1 LT", ":1"),
        ("TYPE k", "+none"),
        ("TTL nokey", ":-2"),
        ("PTTL nokey", ":-2"),
        ("EXPIRETIME nokey", ":-2"),
        ("PEXPIRETIME nokey", ":-2"),
        ("SET k v", "+OK"),
        ("TTL k", ":-1"),
        ("EXPIRETIME k", ":-1"),
        ("PEXPIRETIME k", ":-1"),
    ],
    "ttl-rules": [
        ("SET k v EX 1000", "+OK"),
        ("APPEND k x", None),
        ("INCRBYFLOAT n 1", None),
        ("EXPIRE n 1000", ":1"),
        ("INCR n", ":2"),
        ("TTL n", ":1000"),
        ("TTL k", ":1000"),
        ("SET k w KEEPTTL", "+OK"),
        ("TTL k", ":1000"),
        ("SET k w", "+OK"),
        ("TTL k", ":-1"),
        ("SADD s a b", ":2"),
        ("EXPIRE s 1000", ":1"),
        ("SADD s c", ":1"),
        ("SREM s a", ":1"),
        ("TTL s", ":1000"),
        ("SREM s b c", ":2"),
        ("SADD s a", ":1"),
        ("TTL s", ":-1"),
        ("HSET h f v", ":1"),
        ("EXPIRE h 1000", ":1"),
        ("HDEL h f", ":1"),
        ("HSET h f v", ":1"),
        ("TTL h", ":-1"),
        ("SADD src x y", ":2"),
        ("EXPIRE src 500", ":1"),
        ("RENAME src dst", "+OK"),
        ("TTL dst", ":500"),
        ("TTL src", ":-2"),
        ("SET dst2 v EX 900", "+OK"),
        ("SUNIONSTORE dst2 dst", ":2"),
        ("TTL dst2", ":-1"),
        ("EXPIRE dst2 900", ":1"),
        ("SINTERSTORE dst2 dst nokey", ":0"),
        ("EXISTS dst2", ":0"),
        ("SET dst3 v EX 900", "+OK"),
        ("SDIFFSTORE dst3 dst dst", ":0"),
        ("EXISTS dst3", ":0"),
        ("SPOP dst 2", None),
        ("EXISTS dst", ":0"),
        ("SET g v EX 100", "+OK"),
        ("GETDEL g", "$v"),
        ("SET g v", "+OK"),
        ("TTL g", ":-1"),
        ("SET del v EX 100", "+OK"),
        ("DEL del", ":1"),
        ("SET del v", "+OK"),
        ("TTL del", ":-1"),
    ],
    "keys": [
        ("MSET k1 a k2 b k3 c other d", "+OK"),
        ("SADD set m", ":1"),
        ("DEL k1 k1 nokey", ":1"),
        ("UNLINK k2 nokey", ":1"),
        ("EXISTS k3 k3 nokey set", ":3"),
        ("TOUCH k3 k3 nokey", ":2"),
        ("TYPE k3", "+string"),
        ("TYPE set", "+set"),
        ("TYPE nokey", "+none"),
        ("KEYS *", None),
        ("KEYS k*", None),
        ("KEYS ?3", None),
        ("KEYS [a-z]et", None),
        ("KEYS *[^3]", None),
        ("KEYS nomatch", None),
        ("RENAME nokey x", "-ERR no such key"),
        ("RENAMENX nokey x", "-ERR no such key"),
        ("RENAME k3 k3", "+OK"),
        ("RENAMENX k3 k3", ":0"),
        ("RENAMENX k3 other", ":0"),
        ("RENAMENX k3 k4", ":1"),
        ("RENAME k4 set", "+OK"),
        ("TYPE set", "+string"),
        ("GET set", "$c"),
        ("RANDOMKEY", None),
        ("DEL set other", ":2"),
        ("RANDOMKEY", "nil"),
        ("SCAN 0", None),
        ("SCAN abc", "-ERR invalid cursor"),
        ("SCAN ' 0'", "-ERR invalid cursor"),
        ("SCAN '0 '", "-ERR invalid cursor"),
        ("SCAN 18446744073709551616", "-ERR invalid cursor"),
        ("SCAN 18446744073709551616 BAD", "-ERR invalid cursor"),
        ("SCAN 0 COUNT 0", SYNTAX),
        ("SCAN 0 COUNT -1", SYNTAX),
        ("SCAN 0 COUNT abc", NOTINT),
        ("SCAN 0 MATCH", SYNTAX),
        ("SCAN 0 BAD 1", SYNTAX),
        ("SCAN 0 TYPE", SYNTAX),
        ("SCAN 0 TYPE bogus", None),
        ("SCAN '' COUNT 5", None),
        ("SCAN +0", None),
        ("SCAN -1", None),
        ("SCAN 18446744073709551615", None),
    ],
    "rename-every-type": [
        ("SET s v EX 500", "+OK"),
        ("RENAME s s2", "+OK"),
        ("GET s2", "$v"),
        ("TTL s2", ":500"),
        ("INCRBY n 7", ":7"),
        ("RENAME n n2", "+OK"),
        ("INCR n2", ":8"),
        ("SADD set a b", ":2"),
        ("RENAME set s2", "+OK"),
        ("TTL s2", ":-1"),
        ("SMEMBERS s2", None),
        ("HSET h f 1 g 2", ":2"),
        ("HINCRBY h f 10", ":11"),
        ("EXPIRE h 300", ":1"),
        ("RENAMENX h h2", ":1"),
        ("HGETALL h2", None),
        ("TTL h2", ":300"),
        ("RPUSH l a b c", ":3"),
        ("EXPIRE l 400", ":1"),
        ("RENAME l l2", "+OK"),
        ("LRANGE l2 0 -1", None),
        ("TTL l2", ":400"),
        ("ZADD z 1 a 2.5 b", ":2"),
        ("RENAME z h2", "+OK"),
        ("TYPE h2", "+zset"),
        ("ZRANGE h2 0 -1 WITHSCORES", None),
        ("TTL h2", ":-1"),
        ("EXISTS s set h l z", ":0"),
    ],
    "scan-iterations": [
        *[(f"SET key:{i} v", "+OK") for i in range(40)],
        *[(f"SADD set:{i} m", ":1") for i in range(10)],
        *[(f"HSET hash:{i} f v", ":1") for i in range(5)],
        ("SCAN 0", None),
        ("SCAN 0 COUNT 3", None),
        ("SCAN 0 COUNT 1 MATCH key:1*", None),
        ("SCAN 0 TYPE set", None),
        ("SCAN 0 TYPE HASH COUNT 2", None),
        ("SCAN 0 TYPE string MATCH *:3 COUNT 1000", None),
        ("SADD ints 5 3 -1 10 7", ":5"),
        ("SSCAN ints 0 COUNT 1", None),
        ("SADD big " + " ".join(f"m{i}" for i in range(60)), ":60"),
        ("SSCAN big 0", None),
        ("SSCAN big 0 COUNT 7 MATCH m1*", None),
        ("SSCAN big 0 TYPE string", SYNTAX),
        ("SSCAN big abc", "-ERR invalid cursor"),
        ("SSCAN nokey 0 COUNT 0", None),
        ("SSCAN nokey abc", "-ERR invalid cursor"),
        ("SSCAN big 0 COUNT 0", SYNTAX),
        ("HSET small a 1 b 2 c 3", ":3"),
        ("HSCAN small 0 COUNT 1", None),
        ("HSCAN small 0 MATCH [ab]", None),
        ("HSET bigh " + " ".join(f"f{i} v{i}" for i in range(150)), ":150"),
        ("HSCAN bigh 0", None),
        ("HSCAN bigh 0 COUNT 3 MATCH f1*", None),
        ("HSCAN bigh 0 TYPE hash", SYNTAX),
        ("HSCAN nokey 0 BAD", None),
        ("HSCAN bigh -1", None),
    ],
    "sets": [
        ("SADD s a b c", ":3"),
        ("SADD s a d", ":1"),
        ("SREM s a x", ":1"),
        ("SREM nokey a", ":0"),
        ("SMEMBERS s", None),
        ("SMEMBERS nokey", None),
        ("SISMEMBER s b", ":1"),
        ("SISMEMBER s z", ":0"),
        ("SISMEMBER nokey z", ":0"),
        ("SMISMEMBER s b z c", None),
        ("SMISMEMBER nokey b", None),
        ("SCARD s", ":3"),
        ("SCARD nokey", ":0"),
        ("SPOP s 1 2", SYNTAX),
        ("SPOP s -1", "-ERR value is out of range, must be positive"),
        ("SPOP s abc", "-ERR value is out of range, must be positive"),
        ("SPOP nokey abc", "-ERR value is out of range, must be positive"),
        ("SPOP nokey", "nil"),
        ("SPOP nokey 3", None),
        ("SPOP s 0", None),
        ("SPOP s 1", None),
        ("SPOP s", None),
        ("SCARD s", ":1"),
        ("SPOP s 10", None),
        ("EXISTS s", ":0"),
        ("SADD s a b c d e", ":5"),
        ("SRANDMEMBER s 1 2", SYNTAX),
        ("SRANDMEMBER s abc", NOTINT),
        ("SRANDMEMBER nokey abc", NOTINT),
        (
            "SRANDMEMBER s -9223372036854775808",
            "-ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807",
        ),
        ("SRANDMEMBER nokey", "nil"),
        ("SRANDMEMBER nokey 5", None),
        ("SRANDMEMBER s", None),
        ("SRANDMEMBER s 0", None),
        ("SRANDMEMBER s 3", None),
        ("SRANDMEMBER s 10", None),
        ("SRANDMEMBER s -10", None),
        ("SCARD s", ":5"),
        ("SMOVE s t a", ":1"),
        ("SMOVE s t a", ":0"),
        ("SMOVE s s b", ":1"),
        ("SMOVE s s z", ":0"),
        ("SMOVE nokey s a", ":0"),
        ("SADD t b", ":1"),
        ("SMOVE s t b", ":1"),
        ("SMEMBERS t", None),
        ("SADD u c x y", ":3"),
        ("SINTER s u", None),
        ("SINTER s nokey", None),
        ("SUNION s u nokey", None),
        ("SDIFF s u", None),
        ("SDIFF nokey s", None),
        ("SDIFF s s", None),
        ("SINTERSTORE d s u", ":1"),
        ("SMEMBERS d", None),
        ("SUNIONSTORE d s u", ":5"),
        ("SDIFFSTORE d s u", ":2"),
        ("SMEMBERS d", None),
        ("SDIFFSTORE d d", ":2"),
        ("SUNIONSTORE d nokey", ":0"),
        ("EXISTS d", ":0"),
        ("SINTERCARD abc s", "-ERR numkeys should be greater than 0"),
        ("SINTERCARD 0 s", "-ERR numkeys should be greater than 0"),
        ("SINTERCARD -1 s", "-ERR numkeys should be greater than 0"),
        ("SINTERCARD 3 s u", "-ERR Number of keys can't be greater than number of args"),
        ("SINTERCARD 1 s LIMIT abc", "-ERR LIMIT can't be negative"),
        ("SINTERCARD 1 s LIMIT -1", "-ERR LIMIT can't be negative"),
        ("SINTERCARD 1 s LIMIT", SYNTAX),
        ("SINTERCARD 1 s BAD 1", SYNTAX),
        ("SINTERCARD 1 s", ":3"),
        ("SINTERCARD 1 s limit 2", ":2"),
        ("SINTERCARD 1 s LIMIT 0", ":3"),
        ("SINTERCARD 2 s u", ":1"),
        ("SINTERCARD 2 s nokey", ":0"),
        ("SINTERCARD 1 s LIMIT 5 LIMIT 1", ":1"),
    ],
    "hashes": [
        ("HSET h a 1 b 2", ":2"),
        ("HSET h a 3 c 4", ":1"),
        ("HMSET h d 5", "+OK"),
        ("HSETNX h a x", ":0"),
        ("HSETNX h e x", ":1"),
        ("HGET h a", "$3"),
        ("HGET h zz", "nil"),
        ("HGET nokey a", "nil"),
        ("HMGET h a zz e", None),
        ("HMGET nokey a b", None),
        ("HGETALL h", None),
        ("HGETALL nokey", None),
        ("HKEYS h", None),
        ("HVALS h", None),
        ("HKEYS nokey", None),
        ("HLEN h", ":5"),
        ("HLEN nokey", ":0"),
        ("HEXISTS h a", ":1"),
        ("HEXISTS h zz", ":0"),
        ("HSTRLEN h a", ":1"),
        ("HSTRLEN h zz", ":0"),
        ("HSTRLEN nokey a", ":0"),
        ("HDEL h a zz", ":1"),
        ("HDEL nokey a", ":0"),
        ("HRANDFIELD h abc x y", NOTINT),
        ("HRANDFIELD h 1 BAD", SYNTAX),
        ("HRANDFIELD h 1 WITHVALUES x", SYNTAX),
        (
            "HRANDFIELD h -9223372036854775808",
            "-ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807",
        ),
        ("HRANDFIELD h 4611686018427387904 WITHVALUES", "-ERR value is out of range"),
        ("HRANDFIELD h -4611686018427387904 WITHVALUES", "-ERR value is out of range"),
        ("HRANDFIELD nokey", "nil"),
        ("HRANDFIELD nokey 3", None),
        ("HRANDFIELD nokey 3 WITHVALUES", None),
        ("HRANDFIELD h", None),
        ("HRANDFIELD h 0", None),
        ("HRANDFIELD h 0 WITHVALUES", None),
        ("HRANDFIELD h 2", None),
        ("HRANDFIELD h 2 withvalues", None),
        ("HRANDFIELD h 10 WITHVALUES", None),
        ("HRANDFIELD h -7", None),
        ("HRANDFIELD h -7 WITHVALUES", None),
        ("HDEL h b c d e", ":4"),
        ("EXISTS h", ":0"),
    ],
}


@pytest.fixture(params=[2, 3], ids=["resp2", "resp3"])
def pair(request, constdb_server, redis_server):
    p = Pair(constdb_server.port, redis_server.port, request.param)
    p.both("FLUSHALL")
    yield p
    p.close()


@pytest.mark.parametrize("name", list(SCRIPTS))
def test_script(pair, name):
    for line, expected in SCRIPTS[name]:
        cmd = shlex.split(line)
        c, r = pair.run(cmd)
        if expected is not None:
            check_expected(pair, cmd, r, expected)
    pair.check_state()


ARITY = {
    # name: arity as in redis 7.0's command table
    "del": -2,
    "unlink": -2,
    "exists": -2,
    "touch": -2,
    "type": 2,
    "keys": 2,
    "scan": -2,
    "randomkey": 1,
    "rename": 3,
    "renamenx": 3,
    "expire": -3,
    "pexpire": -3,
    "expireat": -3,
    "pexpireat": -3,
    "ttl": 2,
    "pttl": 2,
    "expiretime": 2,
    "pexpiretime": 2,
    "persist": 2,
    "get": 2,
    "set": -3,
    "setnx": 3,
    "setex": 4,
    "psetex": 4,
    "getset": 3,
    "getdel": 2,
    "getex": -2,
    "mget": -2,
    "mset": -3,
    "msetnx": -3,
    "append": 3,
    "strlen": 2,
    "getrange": 4,
    "substr": 4,
    "incr": 2,
    "decr": 2,
    "incrby": 3,
    "decrby": 3,
    "incrbyfloat": 3,
    "setrange": 4,
    "sadd": -3,
    "srem": -3,
    "spop": -2,
    "smembers": 2,
    "sismember": 3,
    "smismember": -3,
    "scard": 2,
    "srandmember": -2,
    "smove": 4,
    "sinter": -2,
    "sunion": -2,
    "sdiff": -2,
    "sinterstore": -3,
    "sunionstore": -3,
    "sdiffstore": -3,
    "sintercard": -3,
    "sscan": -3,
    "hset": -4,
    "hsetnx": 4,
    "hmset": -4,
    "hget": 3,
    "hmget": -3,
    "hgetall": 2,
    "hdel": -3,
    "hlen": 2,
    "hexists": 3,
    "hkeys": 2,
    "hvals": 2,
    "hstrlen": 3,
    "hincrby": 4,
    "hrandfield": -2,
    "hscan": -3,
}


@pytest.mark.parametrize("protocol", [2, 3])
def test_arity_errors(constdb_server, redis_server, protocol):
    p = Pair(constdb_server.port, redis_server.port, protocol)
    try:
        for name, n in ARITY.items():
            bad = [n - 1] if n > 0 else [-n - 1]
            if n > 1:
                bad.append(n + 1)
            for argc in bad:
                if argc < 1:
                    continue
                cmd = [name.upper()] + ["x"] * (argc - 1)
                c, r = p.both(*cmd)
                p.expect_equal(cmd, c, r)
                check_expected(p, cmd, r, arity(name))
    finally:
        p.close()


def test_error_text_is_sanitised(constdb_server, redis_server):
    p = Pair(constdb_server.port, redis_server.port, 2)
    try:
        p.both("SET", "k", "v")
        for opt in (b"B\r\nAD", b"\xff\xfe", b"x\ny"):
            cmd = ("EXPIRE", "k", "10", opt)
            c, r = p.both(*cmd)
            p.expect_equal(cmd, c, r)
    finally:
        p.close()


RESP3_SHAPES = [
    # (setup, command, exact RESP3 bytes)
    ([], ("GET", "nokey"), b"_\r\n"),
    ([], ("MGET", "nokey", "x"), b"*2\r\n_\r\n_\r\n"),
    ([("SADD", "s", "a")], ("SMEMBERS", "s"), b"~1\r\n$1\r\na\r\n"),
    ([], ("SMEMBERS", "nokey"), b"~0\r\n"),
    ([("SADD", "s", "a")], ("SINTER", "s", "s"), b"~1\r\n$1\r\na\r\n"),
    ([("SADD", "s", "a")], ("SUNION", "s"), b"~1\r\n$1\r\na\r\n"),
    ([("SADD", "s", "a")], ("SDIFF", "s", "nokey"), b"~1\r\n$1\r\na\r\n"),
    ([("SADD", "s", "a")], ("SPOP", "s", "5"), b"~1\r\n$1\r\na\r\n"),
    ([], ("SPOP", "nokey", "5"), b"~0\r\n"),
    ([], ("SPOP", "nokey"), b"_\r\n"),
    ([("SADD", "s", "a")], ("SRANDMEMBER", "s", "5"), b"*1\r\n$1\r\na\r\n"),
    ([("SADD", "s", "a")], ("SRANDMEMBER", "s", "-2"), b"*2\r\n$1\r\na\r\n$1\r\na\r\n"),
    ([], ("SRANDMEMBER", "nokey", "5"), b"*0\r\n"),
    ([], ("SRANDMEMBER", "nokey"), b"_\r\n"),
    ([("SADD", "s", "a")], ("SMISMEMBER", "s", "a", "b"), b"*2\r\n:1\r\n:0\r\n"),
    ([("HSET", "h", "f", "v")], ("HGETALL", "h"), b"%1\r\n$1\r\nf\r\n$1\r\nv\r\n"),
    ([], ("HGETALL", "nokey"), b"%0\r\n"),
    (
        [("HSET", "h", "f", "v")],
        ("HRANDFIELD", "h", "1", "WITHVALUES"),
        b"*1\r\n*2\r\n$1\r\nf\r\n$1\r\nv\r\n",
    ),
    (
        [("HSET", "h", "f", "v")],
        ("HRANDFIELD", "h", "-2", "WITHVALUES"),
        b"*2\r\n*2\r\n$1\r\nf\r\n$1\r\nv\r\n*2\r\n$1\r\nf\r\n$1\r\nv\r\n",
    ),
    ([], ("HRANDFIELD", "nokey", "2", "WITHVALUES"), b"*0\r\n"),
    ([], ("HRANDFIELD", "nokey"), b"_\r\n"),
    ([("HSET", "h", "f", "v")], ("HMGET", "h", "f", "g"), b"*2\r\n$1\r\nv\r\n_\r\n"),
    (
        [("HSET", "h", "f", "v")],
        ("HSCAN", "h", "0"),
        b"*2\r\n$1\r\n0\r\n*2\r\n$1\r\nf\r\n$1\r\nv\r\n",
    ),
    ([], ("SSCAN", "nokey", "0"), b"*2\r\n$1\r\n0\r\n*0\r\n"),
    ([("SET", "k", "v")], ("SET", "k", "w", "NX"), b"_\r\n"),
    ([("SET", "k", "v")], ("SET", "k", "w", "GET"), b"$1\r\nv\r\n"),
    ([], ("SET", "k", "w", "GET"), b"_\r\n"),
    ([], ("GETEX", "nokey"), b"_\r\n"),
    ([], ("GETDEL", "nokey"), b"_\r\n"),
    ([], ("RANDOMKEY",), b"_\r\n"),
    ([], ("INCRBYFLOAT", "f", "1.5"), b"$3\r\n1.5\r\n"),
    ([("SET", "k", "v")], ("TYPE", "k"), b"+string\r\n"),
]


@pytest.mark.parametrize(
    "setup,cmd,expected", RESP3_SHAPES, ids=[" ".join(c) for _, c, _ in RESP3_SHAPES]
)
def test_resp3_reply_types(constdb_server, redis_server, setup, cmd, expected):
    for port in (redis_server.port, constdb_server.port):
        replies(port, ("FLUSHALL",))
        if setup:
            replies(port, *setup)
        got = replies(port, cmd)
        assert got == expected, (
            f"port {port} ({'redis' if port == redis_server.port else 'constdb'}): {got!r}"
        )


def test_lazily_expired_keys(constdb_server, redis_server):
    """Keys whose TTL ran out while nobody looked: every command sees them
    missing, and writes start from nothing (no old value, no old TTL)."""
    for protocol in (2, 3):
        p = Pair(constdb_server.port, redis_server.port, protocol)
        try:
            p.both("FLUSHALL")
            setup = [
                ("SET", "str", "10", "PX", "150"),
                ("SET", "str2", "abc", "PX", "150"),
                ("SADD", "set", "a", "b"),
                ("PEXPIRE", "set", "150"),
                ("SADD", "set2", "a"),
                ("PEXPIRE", "set2", "150"),
                ("HSET", "hash", "f", "1"),
                ("PEXPIRE", "hash", "150"),
                ("HSET", "hash2", "f", "1"),
                ("PEXPIRE", "hash2", "150"),
                ("SET", "live", "v"),
                ("SET", "sentinel", "v", "PX", "150"),
            ]
            for cmd in setup:
                p.run(cmd)
            # wait until both servers see the sentinel gone (its TTL is the others')
            deadline = time.monotonic() + 10
            while True:
                c = p.c.call_typed("EXISTS", "sentinel")
                r = p.r.call_typed("EXISTS", "sentinel")
                if c == r == ("int", 0):
                    break
                assert time.monotonic() < deadline, "keys did not expire"
                time.sleep(0.02)
            script = [
                ("KEYS", "*"),
                # (not "TYPE none": it lists expired keys not yet deleted, which
                # depends on each server's active expiry cycle)
                ("SCAN", "0", "TYPE", "set"),
                ("SCAN", "0"),
                ("RANDOMKEY",),
                ("EXISTS", "str", "set", "hash", "live"),
                ("TTL", "str"),
                ("PTTL", "set"),
                ("TYPE", "hash"),
                ("GET", "str2"),
                ("INCR", "str"),
                ("TTL", "str"),
                ("APPEND", "str2", "x"),
                ("GET", "str2"),
                ("SADD", "set", "c"),
                ("SMEMBERS", "set"),
                ("TTL", "set"),
                ("SMOVE", "set2", "set", "a"),
                ("SCARD", "set2"),
                ("HINCRBY", "hash", "f", "5"),
                ("HGETALL", "hash"),
                ("TTL", "hash"),
                ("HLEN", "hash2"),
                ("RENAME", "hash2", "x"),
                ("EXPIRE", "hash2", "100"),
                ("PERSIST", "hash2"),
                ("DEL", "str", "set", "hash", "hash2", "live"),
            ]
            for cmd in script:
                p.run(cmd)
            p.check_state()
        finally:
            p.close()


def test_larger_collections(constdb_server, redis_server):
    """Random picks and scans past the small-encoding sizes (hashtable sets
    and hashes in redis)."""
    for protocol in (2, 3):
        p = Pair(constdb_server.port, redis_server.port, protocol)
        try:
            p.both("FLUSHALL")
            p.run(["SADD", "s"] + [f"m{i}" for i in range(200)])
            p.run(["SADD", "ints"] + [str(i * 7 - 300) for i in range(100)])
            p.run(["HSET", "h"] + [x for i in range(200) for x in (f"f{i}", f"v{i}")])
            p.run(["HSET", "long", "f", "x" * 100, "g", "y"])
            for cmd in [
                ("SRANDMEMBER", "s", "1"),
                ("SRANDMEMBER", "s", "50"),
                ("SRANDMEMBER", "s", "150"),
                ("SRANDMEMBER", "s", "300"),
                ("SRANDMEMBER", "s", "-300"),
                ("SRANDMEMBER", "ints", "30"),
                ("HRANDFIELD", "h", "50"),
                ("HRANDFIELD", "h", "150", "WITHVALUES"),
                ("HRANDFIELD", "h", "-30", "WITHVALUES"),
                ("HRANDFIELD", "h", "500"),
                ("SSCAN", "s", "0"),
                ("SSCAN", "s", "0", "COUNT", "1"),
                ("SSCAN", "s", "0", "MATCH", "m1*", "COUNT", "20"),
                ("SSCAN", "ints", "0", "COUNT", "1"),
                ("SSCAN", "ints", "0", "MATCH", "-*"),
                ("HSCAN", "h", "0"),
                ("HSCAN", "h", "0", "COUNT", "7", "MATCH", "*9"),
                ("HSCAN", "long", "0", "COUNT", "1"),
                ("SPOP", "s", "30"),
                ("SPOP", "s", "120"),
                ("SPOP", "s"),
                ("SCARD", "s"),
                ("SPOP", "ints", "99"),
                ("SMEMBERS", "ints"),
                ("SPOP", "s", "1000"),
                ("EXISTS", "s"),
                ("SINTERCARD", "2", "ints", "ints", "LIMIT", "0"),
            ]:
                p.run(cmd)
            for i in range(200):
                p.run(["SET", f"key:{i}", "v"])
            p.run(["SCAN", "0", "COUNT", "7"])
            p.run(["SCAN", "0", "MATCH", "key:1?", "COUNT", "50"])
            p.check_state()
        finally:
            p.close()


GLOBS = [
    "*",
    "?",
    "??",
    "a*",
    "*b",
    "[ab]*",
    "[^a]*",
    "[!a]*",
    "[a-c]?",
    "[c-a]*",
    "\\a*",
    "a\\*",
    "*\\?",
    "[",
    "[a",
    "a[",
    "[]",
    "[]]*",
    "[\\]]",
    "\\",
    "a\\",
    "**",
    "*a*b*",
    "[a-]",
    "[-a]",
    "h?llo",
    "h*llo",
    "h[ae]llo",
    "h[^e]llo",
    "h[a-b]llo",
    "*[0-9]",
    "[A-Z]*",
]


@pytest.mark.parametrize("protocol", [2, 3])
def test_keys_and_scan_glob_patterns(constdb_server, redis_server, protocol):
    p = Pair(constdb_server.port, redis_server.port, protocol)
    try:
        p.both("FLUSHALL")
        names = [
            "a",
            "b",
            "ab",
            "ba",
            "abc",
            "a*",
            "a?",
            "a[",
            "[",
            "]",
            "-",
            "\\",
            "a\\",
            "hello",
            "hallo",
            "hxllo",
            "hllo",
            "heeeello",
            "key1",
            "KEY2",
            "",
            "x]y",
        ]
        for n in names:
            p.run(["SET", n, "v"])
        p.run(["SADD", "set"] + names)
        p.run(["HSET", "hash"] + [x for n in names for x in (n, "v")])
        for g in GLOBS:
            p.run(["KEYS", g])
            p.run(["SCAN", "0", "MATCH", g])
            p.run(["SSCAN", "set", "0", "MATCH", g, "COUNT", "3"])
            p.run(["HSCAN", "hash", "0", "MATCH", g])
    finally:
        p.close()


@pytest.mark.parametrize("protocol", [2, 3])
def test_integer_sets_reply_in_intset_order(constdb_server, redis_server, protocol):
    """Small all-integer sets are intsets in Redis: their members come back in
    ascending order, exactly (not only as a multiset)."""
    p = Pair(constdb_server.port, redis_server.port, protocol)
    try:
        p.both("FLUSHALL")
        p.both("SADD", "a", "5", "3", "-1", "10", "100", "7", "-9223372036854775808")
        p.both("SADD", "c", "7", "5", "200", "9223372036854775807")
        p.both("SADD", "b", "x")
        for cmd in [
            ("SMEMBERS", "a"),
            ("SINTER", "a", "c"),
            ("SINTER", "c", "a"),
            ("SUNION", "a", "c"),
            ("SUNION", "c", "nokey"),
            ("SDIFF", "a", "c"),
            ("SDIFF", "a", "b"),
            ("SSCAN", "a", "0", "COUNT", "1"),
            ("SSCAN", "a", "0", "MATCH", "1*"),
        ]:
            c, r = p.both(*cmd)
            p.expect_equal(cmd, c, r)
        p.both("SUNIONSTORE", "d", "a", "c")
        c, r = p.both("SMEMBERS", "d")
        p.expect_equal(("SMEMBERS", "d"), c, r)
    finally:
        p.close()
