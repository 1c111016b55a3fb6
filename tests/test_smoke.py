"""The seed's single-node steps and basic protocol behaviour."""

import subprocess

from support.nodes import need_tool
from support.resp import raw_command


def cli(port, *args):
    exe = need_tool("redis-cli")
    out = subprocess.run([exe, "-p", str(port), *args], capture_output=True, timeout=20, check=True)
    return out.stdout.decode().strip()


def test_seed_single_node_steps_with_redis_cli(constdb_server, r):
    p = constdb_server.port
    assert cli(p, "incr", "k1") == "1"
    assert cli(p, "get", "k1") == "1"
    assert cli(p, "hset", "h1", "k1", "v1") == "1"
    assert cli(p, "hget", "h1", "k1") == "v1"


def test_inline_commands(constdb_server, r):
    out = raw_command(constdb_server.port, b"PING\r\nSET a 'x y'\r\nGET a\r\n")
    assert out == b"+PONG\r\n+OK\r\n$3\r\nx y\r\n"


def test_pipelined_replies_in_order(constdb_server, r):
    payload = b"".join(b"*2\r\n$4\r\nINCR\r\n$1\r\nc\r\n" for _ in range(100))
    out = raw_command(constdb_server.port, payload)
    assert out == b"".join(b":%d\r\n" % i for i in range(1, 101))
