"""Random commands for the differential sweep (tests/test_exact_fuzz.py):
one template per valid form of a command (K key, V value, N integer, F
float, SC score bound, LX lex bound, P pattern, T timeout, B bit, BT/BO
BITFIELD type and offset, GLON/GLAT coordinates, S script; "?x" optional,
"*x" repeated, "a|b" one of, "a:b" / "a,b" a group), filled at random, then
mutated (an argument dropped, added, replaced by a bad number or an option
word): wrong arities, types, ranges and option combinations."""

from __future__ import annotations

from support import pools

T = """
SET K V ?NX|XX ?GET ?EX:N|PX:N|EXAT:N|PXAT:N|KEEPTTL
GETEX K ?EX:N|PX:N|EXAT:N|PXAT:N|PERSIST
GETDEL K
GETSET K V
SETNX K V
SETEX K N V
PSETEX K N V
MSET K V *K,V
MSETNX K V *K,V
MGET K *K
APPEND K V
STRLEN K
SETRANGE K N V
GETRANGE K N N
SUBSTR K N N
INCR K
DECR K
INCRBY K N
DECRBY K N
INCRBYFLOAT K F
LCS K K ?LEN ?IDX ?MINMATCHLEN:N ?WITHMATCHLEN
SETBIT K N B
GETBIT K N
BITCOUNT K ?N,N,?BYTE|BIT
BITPOS K B ?N ?N ?BYTE|BIT
BITOP AND|OR|XOR|NOT K K *K
BITFIELD K *GET:BT:BO|SET:BT:BO:N|INCRBY:BT:BO:N|OVERFLOW:WRAP|OVERFLOW:SAT|OVERFLOW:FAIL
BITFIELD_RO K *GET:BT:BO
EXPIRE K N ?NX|XX|GT|LT
PEXPIRE K N ?NX|XX|GT|LT
EXPIREAT K N ?NX|XX|GT|LT
PEXPIREAT K N ?NX|XX|GT|LT
TTL K
PTTL K
EXPIRETIME K
PEXPIRETIME K
PERSIST K
COPY K K ?DB:N ?REPLACE
RENAME K K
RENAMENX K K
MOVE K N
TYPE K
EXISTS K *K
DEL K *K
TOUCH K *K
OBJECT ENCODING|REFCOUNT|FREQ|IDLETIME|HELP|FOO K
LPUSH K V *V
RPUSH K V *V
LPUSHX K V *V
LINSERT K BEFORE|AFTER V V
LRANGE K N N
LINDEX K N
LSET K N V
LTRIM K N N
LREM K N V
LPOP K ?N
RPOP K ?N
LLEN K
LPOS K V ?RANK:N ?COUNT:N ?MAXLEN:N
LMOVE K K LEFT|RIGHT LEFT|RIGHT
RPOPLPUSH K K
LMPOP N K *K LEFT|RIGHT ?COUNT:N
BLMPOP T N K *K LEFT|RIGHT ?COUNT:N
BLPOP K *K T
BRPOP K *K T
BLMOVE K K LEFT|RIGHT LEFT|RIGHT T
BRPOPLPUSH K K T
HSET K V V *V,V
HSETNX K V V
HGET K V
HMGET K V *V
HDEL K V *V
HINCRBY K V N
HINCRBYFLOAT K V F
HSTRLEN K V
HEXISTS K V
HLEN K
HKEYS K
HVALS K
HGETALL K
HRANDFIELD K ?N ?WITHVALUES
HSCAN K N ?MATCH:P ?COUNT:N
SADD K V *V
SREM K V *V
SCARD K
SISMEMBER K V
SMISMEMBER K V *V
SMOVE K K V
SINTERCARD N K *K ?LIMIT:N
SINTER K *K
SDIFFSTORE K K *K
SUNIONSTORE K K *K
SINTERSTORE K K *K
SSCAN K N ?MATCH:P ?COUNT:N
ZADD K ?NX|XX ?GT|LT ?CH ?INCR F V *F,V
ZINCRBY K F V
ZSCORE K V
ZMSCORE K V *V
ZCARD K
ZCOUNT K SC SC
ZLEXCOUNT K LX LX
ZRANK K V
ZREVRANK K V
ZRANGE K N N ?REV ?WITHSCORES
ZRANGE K SC SC BYSCORE ?REV ?LIMIT:N:N ?WITHSCORES
ZRANGE K LX LX BYLEX ?REV ?LIMIT:N:N
ZRANGESTORE K K SC SC ?BYSCORE|BYLEX ?REV ?LIMIT:N:N
ZRANGEBYSCORE K SC SC ?WITHSCORES ?LIMIT:N:N
ZREVRANGEBYSCORE K SC SC ?WITHSCORES ?LIMIT:N:N
ZRANGEBYLEX K LX LX ?LIMIT:N:N
ZREVRANGEBYLEX K LX LX ?LIMIT:N:N
ZREVRANGE K N N ?WITHSCORES
ZREM K V *V
ZREMRANGEBYSCORE K SC SC
ZREMRANGEBYLEX K LX LX
ZREMRANGEBYRANK K N N
ZPOPMIN K ?N
ZPOPMAX K ?N
ZMPOP N K *K MIN|MAX ?COUNT:N
BZMPOP T N K *K MIN|MAX ?COUNT:N
BZPOPMIN K *K T
BZPOPMAX K *K T
ZRANDMEMBER K ?N ?WITHSCORES
ZUNION N K *K ?WEIGHTS:F:F ?AGGREGATE:SUM|AGGREGATE:MIN|AGGREGATE:MAX ?WITHSCORES
ZINTER N K *K ?WEIGHTS:F:F ?AGGREGATE:SUM|AGGREGATE:MIN|AGGREGATE:MAX ?WITHSCORES
ZDIFF N K *K ?WITHSCORES
ZUNIONSTORE K N K *K ?WEIGHTS:F:F ?AGGREGATE:SUM|AGGREGATE:MIN|AGGREGATE:MAX
ZINTERSTORE K N K *K ?WEIGHTS:F:F ?AGGREGATE:MAX
ZDIFFSTORE K N K *K
ZINTERCARD N K *K ?LIMIT:N
ZSCAN K N ?MATCH:P ?COUNT:N
SORT K ?BY:P ?LIMIT:N:N ?GET:P ?GET:# ?ASC|DESC ?ALPHA ?STORE:K
SORT_RO K ?BY:P ?LIMIT:N:N ?GET:P ?ASC|DESC ?ALPHA
PFADD K *V
PFCOUNT K *K
PFMERGE K *K
GEOADD K ?NX|XX ?CH GLON GLAT V
GEOPOS K V *V
GEODIST K V V ?m|km|mi|ft
GEOSEARCH K FROMMEMBER:V|FROMLONLAT:GLON:GLAT BYRADIUS:N:m|BYBOX:N:N:km ?ASC|DESC ?COUNT:N ?ANY ?WITHCOORD ?WITHDIST ?WITHHASH
GEORADIUS K GLON GLAT N m|km ?WITHDIST ?COUNT:N ?ASC|DESC
SCAN N ?MATCH:P ?COUNT:N ?TYPE:string|list|zset|foo
SELECT N
SWAPDB N N
FLUSHDB ?ASYNC|SYNC
ECHO V
PING ?V
DBSIZE
UNLINK K *K
RANDOMKEY
EVAL S N *K
"""
KEYS = ["s", "str", "l", "h", "st", "st2", "z", "z2", "bm", "f", "nl", "missing", "hl", "g", "new"]
VALS = ["a", "b", "c", "x", "f1", "f2", "1", "10", "", "hello", "d"]
INTS = pools.INTS
BADNUM = pools.EDGE_INTS
FLOATS = pools.FLOATS
SCORES = ["1", "(1", "2", "(3", "-inf", "+inf", "inf", "3", "(abc", "abc", "((1", "0", "-1"]
LEXES = ["-", "+", "[a", "(a", "[c", "(d", "a", "[", "(", "[b"]
PATS = ["*", "a*", "h->f1", "*->f1", "nosort", "w_*", "[", "\\", "s", "?"]
BTYPES = ["u8", "i8", "u1", "i64", "u63", "u64", "i0", "u0", "i65", "x8", "I8", "U16"]
BOFFS = ["0", "1", "#0", "#1", "-1", "abc", "4294967296", "7", "#-1"]
GLON = ["13.361389", "15.087269", "181", "-180", "abc", "0"]
GLAT = ["38.115556", "37.502669", "85.06", "86", "abc", "0"]
SCRIPTS = [
    "return 1",
    "return redis.call('get', KEYS[1])",
    "return {1,2,{3,'x'}}",
    "return redis.call('nosuch')",
    "return redis.pcall('incr', KEYS[1])",
    "return 3.7",
    "return {err='bad'}",
    "return redis.call('set', KEYS[1])",
    "return nil",
    "return true",
    "return false",
]


def parse(t):
    out = []
    for line in t.strip().splitlines():
        w = line.split()
        out.append((w[0], w[1:]))
    return out


TEMPLATES = parse(T)


def slot(rng, tok):
    if tok == "K":
        return [rng.choice(KEYS)]
    if tok == "V":
        return [rng.choice(VALS)]
    if tok == "N":
        return [rng.choice(INTS) if rng.random() < 0.85 else rng.choice(BADNUM)]
    if tok == "T":
        return [rng.choice(["0.01", "0.01", "0.02", "-1", "abc", "0.001"])]
    if tok == "B":
        return [rng.choice(["0", "1", "0", "1", "2", "-1", "a"])]
    if tok == "F":
        return [rng.choice(FLOATS)]
    if tok == "SC":
        return [rng.choice(SCORES)]
    if tok == "LX":
        return [rng.choice(LEXES)]
    if tok == "P":
        return [rng.choice(PATS)]
    if tok == "BT":
        return [rng.choice(BTYPES)]
    if tok == "BO":
        return [rng.choice(BOFFS)]
    if tok == "GLON":
        return [rng.choice(GLON)]
    if tok == "GLAT":
        return [rng.choice(GLAT)]
    if tok == "S":
        return [rng.choice(SCRIPTS)]
    if "," in tok or ":" in tok:
        out = []
        for t in tok.replace(",", ":").split(":"):
            if t.startswith("?"):
                if rng.random() < 0.5:
                    out += expand(rng, t[1:])
            else:
                out += expand(rng, t)
        return out
    return [tok]


def expand(rng, tok):
    if tok.startswith("?"):
        return expand(rng, tok[1:]) if rng.random() < 0.5 else []
    if tok.startswith("*"):
        out = []
        for _ in range(rng.choice([0, 0, 1, 2])):
            out += expand(rng, tok[1:])
        return out
    if "|" in tok:
        return expand(rng, rng.choice(tok.split("|")))
    return slot(rng, tok)


def words(tpl):
    ws = set()
    for tok in tpl:
        for p in (
            tok.replace("?", "").replace("*", "").replace(",", ":").replace("|", ":").split(":")
        ):
            if p.isupper() and len(p) > 2 and p not in ("GLON", "GLAT"):
                ws.add(p)
    return sorted(ws)


def gen(rng, tmpl=None):
    name, tpl = tmpl or rng.choice(TEMPLATES)
    args = []
    for tok in tpl:
        args += expand(rng, tok)
    r = rng.random()
    pool = words(tpl) or ["FOO"]
    if r < 0.12 and args:
        args.pop(rng.randrange(len(args)))
    elif r < 0.24:
        args.insert(rng.randint(0, len(args)), rng.choice(pool + BADNUM + KEYS))
    elif r < 0.40 and args:
        args[rng.randrange(len(args))] = rng.choice(BADNUM + pool + ["foo"])
    elif r < 0.46:
        args.append(rng.choice(pool).lower())
    return (name, *args)
