"""Lua scripting (EVAL family, SCRIPT): replies, conversions and errors byte
for byte against redis-server 7.0 in RESP2 and RESP3; the libraries; real
clients; SCRIPT KILL of a busy script; a script's writes across members."""

from __future__ import annotations

import hashlib
import subprocess
import threading
import time

import pytest
from support.differential import same
from support.resp import Conn

# (script, keys..., args...) run as EVAL on both servers after SETUP
SETUP = [
    ("set", "str", "abc"),
    ("set", "n", "10"),
    ("rpush", "l", "a", "b", "c"),
    ("hset", "h", "f", "v"),
]

SCRIPTS = [
    # replies, Lua -> Redis
    "return 1",
    "return 3.99",
    "return -3.99",
    "return 'hello'",
    "return true",
    "return false",
    "return nil",
    "return",
    "return {1,2,3.7,'a',nil,5}",
    "return {1,{err='e'},{ok='fine'}, true, false, {}, {{'x'}}}",
    "return {err='x'}",
    "return {err='My Error'}",
    "return {ok='OK2'}",
    "return redis.status_reply('OK2')",
    "return redis.error_reply('My Error')",
    "return redis.error_reply('x')",
    "return redis.error_reply('-ERR y')",
    "return redis.error_reply(1)",
    "return {double=3.5}",
    "return {big_number='123456789012345678901234567890'}",
    "return {verbatim_string={format='txt', string='hi'}}",
    "return {map={a=1}}",
    "return {set={a=true}}",
    # replies, Redis -> Lua
    "return redis.call('get','str')",
    "return redis.call('get','nokey')",
    "return type(redis.call('get','nokey'))",
    "return redis.call('incr','n')",
    "return redis.call('set','k','v')",
    "return type(redis.call('set','k','v'))",
    "return redis.call('set','k','v').ok",
    "return redis.call('lrange','l',0,-1)",
    "return redis.call('hgetall','h')",
    "return redis.call('ping')",
    "return redis.call('exists', KEYS[1], KEYS[2])",
    "return {KEYS[1], ARGV[1], #KEYS, #ARGV}",
    "return redis.call('set', KEYS[1], 3.5)",
    "redis.call('set','num',1e20) return redis.call('get','num')",
    "redis.call('set','num',0.1) return redis.call('get','num')",
    "redis.call('set','num',-7) return redis.call('get','num')",
    "return redis.call('lpop','nolist')",
    # errors
    "return redis.call('incr','str')",
    "return redis.pcall('incr','str')",
    "local r = redis.pcall('incr','str') return type(r) .. r.err",
    "return redis.call('nosuch')",
    "return redis.pcall('nosuch')",
    "return redis.call('get')",
    "return redis.call('multi')",
    "return redis.call('eval','return 1','0')",
    "return redis.call()",
    "return redis.call('get', {})",
    "return redis.call('get', true)",
    "a=1",
    "return b",
    "error('x')",
    "error({err='My Err'})",
    "return nil + 1",
    "string.x = 1",
    "redis.call('set','x','1'); redis.call('incr','str')",
    "redis.call('set','x','1'); local r = redis.pcall('incr','str'); redis.call('set','y','2'); return r",
    "local ok, e = pcall(function() return redis.call('incr','str') end) return {tostring(ok), e.err}",
    "local ok, e = pcall(error, 'boom') return {tostring(ok), e}",
    "return x(",
    "return loadfile",
    "return dofile",
    "return print",
    "return os",
    "return redis.call('client','nosub')",
    # the environment
    "return {type(cjson),type(cmsgpack),type(bit),type(struct),type(string),type(math),type(table),type(loadstring),type(unpack),type(coroutine)}",
    "return redis.sha1hex('')",
    "return redis.sha1hex('abc')",
    "return redis.REDIS_VERSION",
    "return redis.REDIS_VERSION_NUM",
    "return {redis.LOG_DEBUG, redis.LOG_VERBOSE, redis.LOG_NOTICE, redis.LOG_WARNING}",
    "redis.log(redis.LOG_NOTICE, 'from a script') return 1",
    "return redis.log(redis.LOG_NOTICE)",
    "return tostring(redis.breakpoint())",
    "return redis.setresp(4)",
    "redis.setresp(3) return redis.call('hgetall','h')",
    "redis.setresp(3) return redis.call('get','nokey') == nil",
    "redis.setresp(3) local r = redis.call('hgetall','h') return r.map.f",
    "redis.setresp(3) redis.call('zadd','z',1.5,'m') return redis.call('zscore','z','m')",
    "redis.setresp(3) redis.call('zadd','z',1.5,'m') return redis.call('zscore','z','m').double",
    "redis.setresp(3) redis.call('sadd','s','a') return redis.call('smembers','s')",
    "redis.setresp(3) redis.call('sadd','s','a') return redis.call('smembers','s').set.a",
    "redis.setresp(3) return redis.call('zscore','z','nomember') == nil",
    "redis.setresp(3) return {redis.call('exists','nokey'), true, false}",
    "redis.setresp(2) return redis.call('hgetall','h')",
    "redis.setresp(3) local r = redis.call('lrange','l',0,-1) return r",
    "return string.format('%d %s %5.2f', 3, 'x', 1.5)",
    "return table.concat({'a','b'}, '-')",
    "return math.floor(7.9)",
    # the libraries
    "return cjson.encode({1,2,3})",
    "return cjson.encode({a=1})",
    "return cjson.encode({1.5, 'x', true, false, cjson.null})",
    "return cjson.encode('a\"b/c\\n')",
    "return cjson.encode(0.1)",
    "return cjson.encode(1e20)",
    "return cjson.encode(123456789012)",
    "return cjson.encode({})",
    "return cjson.encode({[1]=1,[3]=3})",
    "return cjson.decode('[1,2,\"x\",true]')",
    "return cjson.encode({[1]=1,[20]=2})",
    "return cjson.encode(1/0)",
    "local x = cjson.encode(1/0) return x",
    "return {pcall(cjson.encode, 1/0)}",
    'return cjson.decode(\'{"a":[1,{"b":2}]}\').a[2].b',
    "return cjson.decode('null') == cjson.null",
    "return cjson.decode('3.25')",
    'return cjson.encode(cjson.decode(\'{"k":"v"}\'))',
    "return bit.band(0xff, 0x0f)",
    "return bit.bor(1, 2, 4)",
    "return bit.bxor(5, 3)",
    "return bit.bnot(0)",
    "return bit.lshift(1, 31)",
    "return bit.rshift(-1, 28)",
    "return bit.arshift(-256, 4)",
    "return bit.rol(0x12345678, 8)",
    "return bit.ror(0x12345678, 8)",
    "return bit.tohex(255)",
    "return bit.tohex(-1, -4)",
    "return bit.tobit(0xffffffff + 5)",
    "return bit.bswap(0x12345678)",
    "return struct.pack('>I2', 258)",
    "return struct.pack('<i', -2)",
    "return struct.pack('BBc3', 1, 2, 'abc')",
    "return {struct.unpack('>I2', struct.pack('>I2', 258))}",
    "return {struct.unpack('<h s', struct.pack('<h s', -5, 'str'))}",
    "return struct.size('>iHb')",
    "return {struct.unpack('d', struct.pack('d', 1.5))}",
    "return cmsgpack.pack({1,2,3})",
    "return cmsgpack.pack('abc', 1, -1, 300, -300, 70000, 5000000000, true, false)",
    "return cmsgpack.pack({a=1})",
    "return cmsgpack.pack(1.5)",
    "return cmsgpack.pack(0.1)",
    "return cmsgpack.pack(string.rep('x', 40))",
    "return {cmsgpack.unpack(cmsgpack.pack(1, 'two', {3, 4}))}",
    "return cmsgpack.unpack(cmsgpack.pack({x=7})).x",
]


@pytest.mark.parametrize("script", SCRIPTS)
def test_eval_same_as_redis(raw_pair, script):
    for cmd in SETUP:
        same(raw_pair, *cmd)
    same(raw_pair, "eval", script, "2", "k1", "k2", "a1", "a2")
    # the state it left
    for k in ("x", "y", "k", "n", "num"):
        same(raw_pair, "get", k)


CASES = [
    ("eval", "return 1", "-1"),
    ("eval", "return 1", "2", "a"),
    ("eval", "return 1", "abc"),
    ("eval", "return 1"),
    ("evalsha", "0" * 40, "0"),
    ("evalsha", "abc", "0"),
    ("eval_ro", "return redis.call('set','a','b')", "0"),
    ("eval_ro", "return redis.call('get','a')", "0"),
    ("eval", "#!lua flags=no-writes\nreturn redis.call('set','a','b')", "0"),
    ("eval", "#!lua\nreturn redis.call('set','a','b')", "0"),
    ("eval_ro", "#!lua\nreturn 1", "0"),
    ("eval", "#!lua flags=bogus\nreturn 1", "0"),
    ("eval", "#!lua bogus=1\nreturn 1", "0"),
    ("eval", "#!python\nreturn 1", "0"),
    ("eval", "#!lua flags=no-writes\nreturn x(", "0"),
    ("script", "load", "return 'loaded'"),
    ("script", "load", "return x("),
    ("script", "exists", hashlib.sha1(b"return 'loaded'").hexdigest(), "0" * 40),
    ("evalsha", hashlib.sha1(b"return 'loaded'").hexdigest(), "0"),
    ("evalsha", hashlib.sha1(b"return 'loaded'").hexdigest().upper(), "0"),
    ("evalsha_ro", hashlib.sha1(b"return 'loaded'").hexdigest(), "0"),
    ("script", "kill"),
    ("script", "flush", "bogus"),
    ("script", "flush", "async"),
    ("script", "exists", hashlib.sha1(b"return 'loaded'").hexdigest()),
    ("script", "flush"),
    ("script", "nosub"),
    ("script",),
]


def test_commands_same_as_redis(raw_pair):
    for case in CASES:
        same(raw_pair, *case)


def test_redis_py_lock(r):
    lock = r.lock("resource", timeout=10)
    assert lock.acquire(blocking=False)
    assert not r.lock("resource", timeout=10).acquire(blocking=False)
    assert lock.extend(5)
    assert 10 < r.pttl("resource") <= 15000
    lock.release()
    assert r.get("resource") is None
    other = r.lock("resource", timeout=10)
    assert other.acquire(blocking=False)
    other.release()


def test_redis_cli_eval(constdb_server, redis_server, r, tmp_path):
    f = tmp_path / "s.lua"
    f.write_text("redis.call('set', KEYS[1], ARGV[1]) return {KEYS[1], redis.call('get', KEYS[1])}")
    outs = []
    for port in (constdb_server.port, redis_server.port):
        p = subprocess.run(
            ["redis-cli", "-p", str(port), "--eval", str(f), "k", ",", "a"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        outs.append(p.stdout)
    assert outs[0] == outs[1] == "k\na\n"


def test_script_writes_are_one_group(constdb_server, r):
    """The effects of a script are one backlog group: its records chained by
    the more-follows bit, the script itself nowhere."""
    r.eval("redis.call('set','g1','1') redis.call('sadd','g2','a') redis.call('incr','g3')", 0)
    assert r.mget("g1", "g3") == [b"1", b"1"]
    assert r.smembers("g2") == {b"a"}


def _busy_until(c: Conn, deadline: float) -> bytes:
    while time.monotonic() < deadline:
        got = c.call("get", "k")
        if got.startswith(b"-BUSY"):
            return got
    raise AssertionError("never BUSY")


@pytest.mark.parametrize("server", ["constdb", "redis"])
def test_script_kill_read_only(server, constdb_server, redis_server, r, rr):
    port = constdb_server.port if server == "constdb" else redis_server.port
    admin = Conn(port, 2)
    assert admin.call("config", "set", "busy-reply-threshold", "100") == b"+OK\r\n"
    runner = Conn(port, 2)
    out = {}

    def run():
        out["reply"] = runner.call("eval", "local i = 0 while true do i = i + 1 end", "0")

    # a connection the server has taken before the script (one still being
    # set up by the event loop when the script starts waits for its end)
    other = Conn(port, 2)
    assert other.call("ping") == b"+PONG\r\n"
    t = threading.Thread(target=run)
    t.start()
    try:
        busy = _busy_until(other, time.monotonic() + 30)
        assert busy == (
            b"-BUSY Redis is busy running a script. You can only call SCRIPT KILL"
            b" or SHUTDOWN NOSAVE.\r\n"
        )
        # a connection made while the script is busy: accepted by the script's hook
        late = Conn(port, 2)
        assert late.call("ping").startswith(b"-BUSY")
        assert late.call("script", "kill") == b"+OK\r\n"
    finally:
        t.join(60)
    assert out["reply"].startswith(b"-ERR Script killed by user with SCRIPT KILL...")
    assert other.call("ping") == b"+PONG\r\n"
    assert other.call("script", "kill") == b"-NOTBUSY No scripts in execution right now.\r\n"
    admin.call("config", "set", "busy-reply-threshold", "5000")
    assert late.call("ping") == b"+PONG\r\n"  # the event loop has it now
    for c in (admin, runner, other, late):
        c.close()


@pytest.mark.parametrize("server", ["constdb", "redis"])
def test_script_kill_after_write_is_refused(server, constdb_server, redis_server, r, rr):
    port = constdb_server.port if server == "constdb" else redis_server.port
    admin = Conn(port, 2)
    admin.call("config", "set", "busy-reply-threshold", "100")
    runner = Conn(port, 2)
    out = {}
    script = (
        "redis.call('set','w','1') local t = redis.call('time')[1] + 2 "
        "while tonumber(redis.call('time')[1]) < t do end return 'done'"
    )

    other = Conn(port, 2)
    assert other.call("ping") == b"+PONG\r\n"
    t = threading.Thread(target=lambda: out.setdefault("reply", runner.call("eval", script, "0")))
    t.start()
    try:
        _busy_until(other, time.monotonic() + 30)
        got = other.call("script", "kill")
        assert got.startswith(b"-UNKILLABLE Sorry the script already executed write commands")
    finally:
        t.join(60)
    assert out["reply"] == b"$4\r\ndone\r\n"
    admin.call("config", "set", "busy-reply-threshold", "5000")
    for c in (admin, runner, other):
        c.close()


def test_script_records_are_one_group():
    """In process: the records a script's commands append are chained by the
    more-follows bit (one group: a peer applies them together); a failing
    call later in the script does not undo what came before, as in Redis."""
    from constdb._core.backlog import Backlog, iter_records
    from constdb._core.keyspace import Keyspace
    from constdb._core.protocol import Client, Server

    from constdb._core import cmd_hashes, cmd_keys, cmd_sets, cmd_strings
    from constdb.commands import register_handlers
    from constdb.commands import scripting as scripting_commands

    ks = Keyspace(1, Backlog())
    srv = Server(ks)
    for m in (cmd_strings, cmd_keys, cmd_sets, cmd_hashes):
        m.register(srv)
    register_handlers(srv, [scripting_commands])
    c = Client(srv)
    c.run("set", "before", "1")
    reply = c.run(
        "eval",
        "redis.call('set','a','1') redis.call('sadd','s','x') redis.call('hset','h','f','v') "
        "redis.call('incr','s')",
        "0",
    )
    assert reply.startswith(b"-WRONGTYPE")
    ks.bl.flush()
    data = b"".join(ch[0] for ch in ks.bl.chunks)
    ops = [op for op, _, _, _ in iter_records(data)]
    assert len(ops) == 4  # SET before, then the script's three
    assert not ops[0] & 0x80
    assert [op & 0x80 for op in ops[1:]] == [0x80, 0x80, 0]
    assert c.run("get", "a") == b"$1\r\n1\r\n"


def test_script_effects_converge_and_the_script_never_runs_on_a_peer(node):
    from support.nodes import make_node, meet, wait_converged, wait_linked

    a, b, c = (make_node(node, n) for n in ("a", "b", "c"))
    assert meet(b, a) == 1
    assert meet(c, a) == 1
    wait_linked([a, b, c])
    ra = a.client()
    sha = ra.script_load(
        "local n = redis.call('incr', KEYS[1]) redis.call('rpush', KEYS[2], n) "
        "redis.call('hset', KEYS[3], 'r', tostring(math.random())) return n"
    )
    for i in range(1, 21):
        assert ra.evalsha(sha, 3, "cnt", "log", "h") == i
    wait_converged([a, b, c])
    for n in (b, c):
        rn = n.client()
        assert rn.get("cnt") == b"20"
        assert rn.lrange("log", 0, -1) == [str(i).encode() for i in range(1, 21)]
        assert rn.hget("h", "r") == ra.hget("h", "r")
        # the script ran on a only: b and c ran no EVAL/EVALSHA, and do not have it
        stats = rn.info("commandstats")
        assert not any(k.startswith(("cmdstat_eval", "cmdstat_script")) for k in stats)
        assert rn.script_exists(sha) == [False]


LIB = (
    "#!lua name=mylib\n"
    "redis.register_function('myfunc', function(keys, args) return redis.call('get', keys[1]) end)\n"
    "redis.register_function{function_name='ro', callback=function(keys, args)"
    " return {args[1], #keys} end, flags={'no-writes'}, description='d'}\n"
    "redis.register_function('wr', function(keys, args) return redis.call('set', keys[1], args[1]) end)\n"
    "redis.register_function('bad', function(keys, args) a = 1 end)\n"
    "redis.register_function('usekeys', function(keys, args) return KEYS end)\n"
)

FUNCTION_CASES = [
    ("function", "flush"),
    ("function", "load", LIB),
    ("function", "load", LIB),
    ("function", "load", "replace", LIB),
    ("function", "list", "libraryname", "nomatch"),
    ("function", "list", "withcode", "libraryname", "nomatch"),
    ("fcall", "myfunc", "1", "k"),
    ("set", "k", "v"),
    ("fcall", "myfunc", "1", "k"),
    ("fcall_ro", "ro", "0", "x"),
    ("fcall_ro", "ro", "2", "a", "b", "x"),
    ("fcall_ro", "myfunc", "1", "k"),
    ("fcall", "wr", "1", "k", "new"),
    ("fcall_ro", "wr", "1", "k", "new"),
    ("get", "k"),
    ("fcall", "bad", "0"),
    ("fcall", "usekeys", "0"),
    ("fcall", "nofunc", "0"),
    ("fcall", "myfunc", "-1"),
    ("fcall", "myfunc", "5", "k"),
    ("function", "load", "#!lua name=mylib\nreturn 1"),
    ("function", "load", "#!lua name=other\nreturn 1"),
    ("function", "load", "return 1"),
    ("function", "load", "#!lua\nreturn 1"),
    ("function", "load", "#!lua name=b-d\nreturn 1"),
    ("function", "load", "#!lua name=x2\nredis.register_function('myfunc', function() end)"),
    ("function", "load", "#!lua name=e\nredis.call('get','x')"),
    ("function", "load", "#!lua name=e\nreturn x("),
    ("function", "delete", "nolib"),
    ("function", "delete", "mylib"),
    ("fcall", "myfunc", "1", "k"),
    ("function", "list"),
    ("function", "load", "#!lua name=one\nredis.register_function('f1', function() return 1 end)"),
    ("function", "list"),
    ("function", "list", "withcode"),
    ("function", "list", "libraryname", "on*"),
    ("function", "stats"),
    ("function", "kill"),
    ("function", "flush", "bogus"),
    ("function", "flush", "sync"),
    ("fcall", "f1", "0"),
]


def test_functions_same_as_redis(raw_pair):
    for case in FUNCTION_CASES:
        same(raw_pair, *case)
    same(raw_pair, "function", "flush")


# ---- the native path (Lua's C API) and the lupa path -----------------------


def _node_in_process(monkeypatch, lupa_path: bool):
    """A Server with the data commands and scripting, and a Client of it; its
    script engine on the lupa path (CONSTDB_LUA_PYTHON=1) or the native one."""
    from constdb._core.backlog import Backlog
    from constdb._core.keyspace import Keyspace
    from constdb._core.protocol import Client, Server

    from constdb._core import cmd_hashes, cmd_keys, cmd_lists, cmd_sets, cmd_strings, cmd_zsets
    from constdb.commands import connection, register_handlers
    from constdb.commands import scripting as scripting_commands
    from constdb.scripting import engine

    if lupa_path:
        monkeypatch.setenv("CONSTDB_LUA_PYTHON", "1")
    else:
        monkeypatch.delenv("CONSTDB_LUA_PYTHON", raising=False)
    srv = Server(Keyspace(1, Backlog()))
    for m in (cmd_strings, cmd_keys, cmd_sets, cmd_hashes, cmd_lists, cmd_zsets):
        m.register(srv)
    register_handlers(srv, [scripting_commands, connection])
    c = Client(srv)
    assert engine(c).native is not lupa_path, engine(c).native_off
    return c


# what the lupa path and the native path must answer alike, beside SCRIPTS
MORE_SCRIPTS = [
    "return redis.call('set', KEYS[1], ARGV[1] .. '\\0\\r\\n\\255')",
    "redis.call('set', KEYS[1], 'x\\0y') return redis.call('get', KEYS[1])",
    "return {pcall(redis.call, 'nosuch')}",
    "return {pcall(redis.call, 'incr', 'str')}",
    "local ok, e = pcall(redis.call, 'get') redis.call('set', 'after', '1') return {tostring(ok), e}",
    "return redis.pcall('set', 'k', {})",
    "return redis.pcall()",
    "return redis.call('set', 'k', nil, 'x')",
    "return redis.call('set', 'k', cjson.null)",
    "return redis.call('set', 'k', function() end)",
    "return redis.call('set', 'k', true)",
    "redis.call('set','k',1/0) return redis.call('get','k')",
    "redis.call('set','k',0/0) return redis.call('get','k')",
    "redis.call('set','k',-(0/0)) return redis.call('get','k')",
    "redis.call('set','k',2^53 + 1) return redis.call('get','k')",
    "local t = {} for i = 1, 7000 do t[i] = tostring(i) end "
    "return {redis.call('rpush', 'big', unpack(t)), #redis.call('lrange', 'big', 0, -1)}",
    "return redis.call('lrange', 'big', 6990, -1)",
    "return {#KEYS, #ARGV, KEYS[#KEYS], ARGV[#ARGV]}",
    "redis.setresp(3) redis.call('zadd','z',1,'a') return {redis.call('zrange','z',0,-1,'withscores')}",
    "redis.setresp(3) return redis.pcall('incr', 'str')",
    "local function f(n) if n == 0 then return redis.call('ping') end return f(n - 1) end return f(150)",
    "return coroutine.wrap(function() redis.call('incr', 'n') return redis.call('get', 'n') end)()",
    "local function f(n) return 1 + f(n + 1) end return f(1)",
]


def test_lupa_path_gives_the_same_replies(monkeypatch):
    """CONSTDB_LUA_PYTHON=1 (the lupa path) and the native path answer every
    script byte for byte alike, and leave the same data."""
    outs = []
    for lupa_path in (True, False):
        c = _node_in_process(monkeypatch, lupa_path)
        out = []
        for cmd in SETUP:
            c.run(*cmd)
        for script in SCRIPTS + MORE_SCRIPTS:
            out.append(c.run("eval", script, "2", "k1", "k2", "a1", "a2"))
            out.append(c.run("mget", "x", "y", "k", "n", "num", "after"))
        many = [str(i) for i in range(20000)]
        for script in MORE_SCRIPTS[-6:]:
            out.append(c.run("eval", script, "5000", *many))
        sha = c.run("script", "load", "return {KEYS[1], ARGV[1], redis.call('incr', KEYS[1])}")
        out.append(c.run("evalsha", sha[5:-2], "1", "cnt", "v"))
        outs.append(out)
    for script, a, b in zip(SCRIPTS + MORE_SCRIPTS, outs[0][::2], outs[1][::2]):
        assert a == b, script
    assert outs[0] == outs[1]


@pytest.mark.parametrize("script", MORE_SCRIPTS)
def test_more_scripts_same_as_redis(raw_pair, script):
    for cmd in SETUP:
        same(raw_pair, *cmd)
    same(raw_pair, "eval", script, "2", "k1", "k2", "a1", "a2")
    same(raw_pair, "eval", script, "3000", *[f"k{i}" for i in range(3000)], *["a"] * 7000)
    for k in ("k", "k1", "after"):
        same(raw_pair, "get", k)


def test_redis_call_error_is_a_table_as_in_redis(monkeypatch):
    """On the native path redis.call raises what Redis raises, a table with
    an err field (the lupa path raises a userdata with one); Redis 7.0
    answers these two scripts the same bytes."""
    c = _node_in_process(monkeypatch, False)
    c.run("set", "k", "abc")
    got = c.run(
        "eval",
        "return {xpcall(function() return redis.call('incr','k') end,"
        " function(e) return type(e) .. ':' .. tostring(e.err) end)}",
        "0",
    )
    assert got == b"*2\r\n$-1\r\n$49\r\ntable:ERR value is not an integer or out of range\r\n"
    got = c.run(
        "eval", "local ok, e = pcall(function() error(redis.pcall('nosuch')) end) return e", "0"
    )
    assert got == b"$44\r\nERR Unknown Redis command called from script\r\n"


def test_scripts_gone_release_their_functions(monkeypatch):
    """SCRIPT FLUSH drops the scripts' registry references (the native path
    runs a script by one): a thousand flushed scripts leave none behind."""
    import gc

    c = _node_in_process(monkeypatch, False)
    from constdb.scripting import engine

    e = engine(c)
    # (a released reference leaves a number in its slot: count functions)
    count = (
        "local n = 0 for _, v in pairs(debug.getregistry()) do"
        " if type(v) == 'function' then n = n + 1 end end return n"
    )
    e.lua.execute(count)
    before = e.lua.execute(count)
    for round_ in range(3):
        for i in range(300):
            assert c.run("eval", f"return {i} + {round_}", "0") == b":%d\r\n" % (i + round_)
        c.run("script", "flush")
        gc.collect()
    c.run("eval", "return 1", "0")  # releases what the flush left
    c.run("script", "flush")
    gc.collect()
    c.run("eval", "return 2", "0")
    assert e.lua.execute(count) <= before + 2
