"""List commands: replies compared byte for byte with redis-server 7.0, in RESP2
and RESP3 (targeted cases, random command sequences, long lists), the block
structure checked against a plain Python list in process, and redis-benchmark's
list tests run against constdb-server."""

from __future__ import annotations

import random
import re
import subprocess

import pytest
from constdb._core.backlog import Backlog
from constdb._core.keyspace import Keyspace
from constdb._core.protocol import Client, Server
from constdb._core.t_list import check_list
from support.differential import run_all, same
from support.nodes import need_tool

from constdb._core import cmd_keys, cmd_lists, cmd_strings

TARGETED = [
    # pushes, lengths, ranges
    [b"LPUSH", b"l", b"a"],
    [b"RPUSH", b"l", b"b", b"c", b"d"],
    [b"LPUSH", b"l", b"x", b"y", b"z"],
    [b"LRANGE", b"l", b"0", b"-1"],
    [b"LRANGE", b"l", b"-100", b"100"],
    [b"LRANGE", b"l", b"2", b"1"],
    [b"LRANGE", b"l", b"5", b"5"],
    [b"LRANGE", b"l", b"-1", b"-1"],
    [b"LRANGE", b"l", b"7", b"10"],
    [b"LRANGE", b"l", b"a", b"1"],
    [b"LRANGE", b"l", b"0", b"1.5"],
    [b"LRANGE", b"nokey", b"a", b"1"],
    [b"LRANGE", b"nokey", b"0", b"-1"],
    [b"LRANGE", b"l", b"9223372036854775807", b"-9223372036854775808"],
    [b"LRANGE", b"l", b"0", b"9223372036854775808"],
    [b"LLEN", b"l"],
    [b"LLEN", b"nokey"],
    [b"LPUSHX", b"nokey", b"a"],
    [b"RPUSHX", b"nokey", b"a"],
    [b"LPUSHX", b"l", b"p", b"q"],
    [b"RPUSHX", b"l", b"r"],
    [b"LPUSH", b"l"],
    [b"RPUSH"],
    [b"LINDEX", b"l", b"0"],
    [b"LINDEX", b"l", b"-1"],
    [b"LINDEX", b"l", b"-12"],
    [b"LINDEX", b"l", b"100"],
    [b"LINDEX", b"l", b"x"],
    [b"LINDEX", b"nokey", b"x"],
    [b"LINDEX", b"nokey", b"0"],
    # wrong types
    [b"SET", b"s", b"v"],
    [b"LPUSH", b"s", b"a"],
    [b"RPUSHX", b"s", b"a"],
    [b"LPOP", b"s"],
    [b"LPOP", b"s", b"2"],
    [b"LLEN", b"s"],
    [b"LRANGE", b"s", b"0", b"1"],
    [b"LRANGE", b"s", b"x", b"1"],
    [b"LINDEX", b"s", b"x"],
    [b"LSET", b"s", b"x", b"v"],
    [b"LREM", b"s", b"0", b"v"],
    [b"LREM", b"s", b"x", b"v"],
    [b"LINSERT", b"s", b"BEFORE", b"a", b"b"],
    [b"LINSERT", b"s", b"MIDDLE", b"a", b"b"],
    [b"LTRIM", b"s", b"0", b"1"],
    [b"LPOS", b"s", b"a"],
    [b"LPOS", b"s", b"a", b"RANK", b"0"],
    [b"LMOVE", b"s", b"l", b"LEFT", b"LEFT"],
    [b"LMOVE", b"l", b"s", b"LEFT", b"LEFT"],
    [b"LMOVE", b"nokey", b"s", b"LEFT", b"LEFT"],
    [b"RPOPLPUSH", b"l", b"s"],
    # pops
    [b"LPOP", b"l"],
    [b"RPOP", b"l"],
    [b"LPOP", b"l", b"2"],
    [b"RPOP", b"l", b"0"],
    [b"LPOP", b"l", b"-1"],
    [b"LPOP", b"l", b"x"],
    [b"LPOP", b"l", b"1", b"2"],
    [b"RPOP", b"l", b"1", b"2"],
    [b"LPOP", b"nokey"],
    [b"LPOP", b"nokey", b"0"],
    [b"RPOP", b"nokey", b"3"],
    [b"RPOP", b"l", b"100"],
    [b"EXISTS", b"l"],
    [b"LPOP", b"l"],
    [b"LPOP", b"l", b"1"],
    # LSET
    [b"RPUSH", b"l", b"a", b"b", b"c"],
    [b"LSET", b"l", b"1", b"B"],
    [b"LSET", b"l", b"-1", b"C"],
    [b"LSET", b"l", b"3", b"C"],
    [b"LSET", b"l", b"-4", b"C"],
    [b"LSET", b"l", b"x", b"C"],
    [b"LSET", b"nokey", b"x", b"C"],
    [b"LSET", b"nokey", b"0", b"C"],
    [b"LRANGE", b"l", b"0", b"-1"],
    # LREM
    [b"RPUSH", b"r", b"a", b"b", b"a", b"c", b"a", b"b", b"a"],
    [b"LREM", b"r", b"2", b"a"],
    [b"LRANGE", b"r", b"0", b"-1"],
    [b"LREM", b"r", b"-1", b"a"],
    [b"LRANGE", b"r", b"0", b"-1"],
    [b"LREM", b"r", b"0", b"b"],
    [b"LREM", b"r", b"0", b"zz"],
    [b"LREM", b"r", b"x", b"a"],
    [b"LREM", b"nokey", b"x", b"a"],
    [b"LREM", b"nokey", b"1", b"a"],
    [b"LREM", b"r", b"0", b"a"],
    [b"LREM", b"r", b"0", b"c"],
    [b"EXISTS", b"r"],
    # LINSERT
    [b"RPUSH", b"i", b"a", b"b", b"c"],
    [b"LINSERT", b"i", b"BEFORE", b"a", b"0"],
    [b"LINSERT", b"i", b"after", b"c", b"9"],
    [b"LINSERT", b"i", b"Before", b"b", b"x"],
    [b"LINSERT", b"i", b"AFTER", b"b", b"y"],
    [b"LINSERT", b"i", b"AFTER", b"nope", b"y"],
    [b"LINSERT", b"i", b"MIDDLE", b"b", b"y"],
    [b"LINSERT", b"nokey", b"AFTER", b"b", b"y"],
    [b"LINSERT", b"nokey", b"MIDDLE", b"b", b"y"],
    [b"LRANGE", b"i", b"0", b"-1"],
    # LTRIM
    [b"RPUSH", b"t", b"0", b"1", b"2", b"3", b"4", b"5", b"6", b"7", b"8", b"9"],
    [b"LTRIM", b"t", b"1", b"-2"],
    [b"LRANGE", b"t", b"0", b"-1"],
    [b"LTRIM", b"t", b"-5", b"100"],
    [b"LRANGE", b"t", b"0", b"-1"],
    [b"LTRIM", b"t", b"x", b"1"],
    [b"LTRIM", b"nokey", b"x", b"1"],
    [b"LTRIM", b"nokey", b"0", b"1"],
    [b"LTRIM", b"t", b"3", b"1"],
    [b"EXISTS", b"t"],
    [b"RPUSH", b"t", b"a", b"b"],
    [b"LTRIM", b"t", b"5", b"10"],
    [b"EXISTS", b"t"],
    # LPOS
    [b"RPUSH", b"p", b"a", b"b", b"c", b"1", b"2", b"3", b"c", b"c"],
    [b"LPOS", b"p", b"c"],
    [b"LPOS", b"p", b"c", b"RANK", b"2"],
    [b"LPOS", b"p", b"c", b"RANK", b"-1"],
    [b"LPOS", b"p", b"c", b"RANK", b"-3"],
    [b"LPOS", b"p", b"c", b"RANK", b"4"],
    [b"LPOS", b"p", b"c", b"COUNT", b"0"],
    [b"LPOS", b"p", b"c", b"COUNT", b"2"],
    [b"LPOS", b"p", b"c", b"COUNT", b"2", b"RANK", b"-1"],
    [b"LPOS", b"p", b"c", b"COUNT", b"0", b"MAXLEN", b"7"],
    [b"LPOS", b"p", b"c", b"MAXLEN", b"2"],
    [b"LPOS", b"p", b"c", b"RANK", b"-1", b"MAXLEN", b"1"],
    [b"LPOS", b"p", b"zz"],
    [b"LPOS", b"p", b"zz", b"COUNT", b"3"],
    [b"LPOS", b"nokey", b"zz"],
    [b"LPOS", b"nokey", b"zz", b"COUNT", b"3"],
    [b"LPOS", b"p", b"c", b"RANK", b"0"],
    [b"LPOS", b"p", b"c", b"RANK", b"x"],
    [b"LPOS", b"p", b"c", b"RANK", b"-9223372036854775808"],
    [b"LPOS", b"p", b"c", b"RANK", b"-9223372036854775807"],
    [b"LPOS", b"p", b"c", b"COUNT", b"-1"],
    [b"LPOS", b"p", b"c", b"COUNT", b"x"],
    [b"LPOS", b"p", b"c", b"MAXLEN", b"-1"],
    [b"LPOS", b"p", b"c", b"MAXLEN", b"x"],
    [b"LPOS", b"p", b"c", b"COUNT"],
    [b"LPOS", b"p", b"c", b"FOO", b"1"],
    [b"LPOS", b"nokey", b"c", b"FOO", b"1"],
    # LMOVE / RPOPLPUSH
    [b"RPUSH", b"m", b"a", b"b", b"c"],
    [b"LMOVE", b"m", b"n", b"LEFT", b"RIGHT"],
    [b"LMOVE", b"m", b"n", b"right", b"left"],
    [b"LMOVE", b"m", b"m", b"LEFT", b"RIGHT"],
    [b"LMOVE", b"m", b"m", b"RIGHT", b"RIGHT"],
    [b"LMOVE", b"m", b"n", b"UP", b"LEFT"],
    [b"LMOVE", b"m", b"n", b"LEFT", b"DOWN"],
    [b"LMOVE", b"nokey", b"n", b"UP", b"LEFT"],
    [b"LMOVE", b"nokey", b"n", b"LEFT", b"LEFT"],
    [b"RPOPLPUSH", b"n", b"m"],
    [b"RPOPLPUSH", b"nokey", b"m"],
    [b"LRANGE", b"m", b"0", b"-1"],
    [b"LRANGE", b"n", b"0", b"-1"],
    [b"RPOPLPUSH", b"m", b"m"],
    [b"LMOVE", b"m", b"m", b"LEFT", b"LEFT"],
    [b"RPOPLPUSH", b"m", b"new"],
    [b"RPOPLPUSH", b"m", b"new"],
    [b"EXISTS", b"m"],
    [b"LRANGE", b"new", b"0", b"-1"],
    # expiry goes with an emptied list
    [b"RPUSH", b"e", b"a"],
    [b"EXPIRE", b"e", b"100"],
    [b"TTL", b"e"],
    [b"LPOP", b"e"],
    [b"RPUSH", b"e", b"b"],
    [b"TTL", b"e"],
    [b"TYPE", b"e"],
    [b"DEL", b"e"],
    [b"EXISTS", b"e"],
    [b"LLEN", b"e"],
    [b"RPUSH", b"e", b"c"],
    [b"LRANGE", b"e", b"0", b"-1"],
    # a rotation never empties the list: the TTL stays
    [b"RPUSH", b"rot", b"only"],
    [b"EXPIRE", b"rot", b"100"],
    [b"LMOVE", b"rot", b"rot", b"LEFT", b"RIGHT"],
    [b"RPOPLPUSH", b"rot", b"rot"],
    [b"TTL", b"rot"],
    [b"LRANGE", b"rot", b"0", b"-1"],
    # binary values
    [b"RPUSH", b"bin", b"", b"\x00\xff", b"a\r\nb"],
    [b"LRANGE", b"bin", b"0", b"-1"],
    [b"LPOS", b"bin", b""],
    [b"LREM", b"bin", b"0", b"\x00\xff"],
    [b"LRANGE", b"bin", b"0", b"-1"],
]


def test_targeted(raw_pair):
    for c in TARGETED:
        same(raw_pair, *c)


KEYS = [b"l1", b"l2", b"s", b"nokey"]
VALS = [b"a", b"b", b"c", b"", b"1", b"x" * 70]


def random_cmd(rnd: random.Random) -> list:
    k = rnd.choice(KEYS)
    k2 = rnd.choice(KEYS)
    v = rnd.choice(VALS)
    idx = str(rnd.randint(-8, 8)).encode()
    idx2 = str(rnd.randint(-8, 8)).encode()
    side = lambda: rnd.choice([b"LEFT", b"RIGHT", b"left", b"Right"])  # noqa: E731
    choices = [
        lambda: [rnd.choice([b"LPUSH", b"RPUSH"]), k] + rnd.choices(VALS, k=rnd.randint(1, 4)),
        lambda: [rnd.choice([b"LPUSH", b"RPUSH"]), k] + rnd.choices(VALS, k=rnd.randint(1, 4)),
        lambda: [rnd.choice([b"LPUSHX", b"RPUSHX"]), k, v],
        lambda: [rnd.choice([b"LPOP", b"RPOP"]), k],
        lambda: [rnd.choice([b"LPOP", b"RPOP"]), k, str(rnd.randint(-1, 5)).encode()],
        lambda: [b"LLEN", k],
        lambda: [b"LRANGE", k, idx, idx2],
        lambda: [b"LRANGE", k, b"0", b"-1"],
        lambda: [b"LINDEX", k, idx],
        lambda: [b"LSET", k, idx, v],
        lambda: [b"LREM", k, str(rnd.randint(-2, 2)).encode(), v],
        lambda: [b"LINSERT", k, rnd.choice([b"BEFORE", b"AFTER"]), v, rnd.choice(VALS)],
        lambda: [b"LTRIM", k, idx, idx2],
        lambda: (
            [b"LPOS", k, v]
            + rnd.choice([[], [b"RANK", rnd.choice([b"1", b"2", b"-1", b"-2"])]])
            + rnd.choice([[], [b"COUNT", rnd.choice([b"0", b"1", b"2"])]])
            + rnd.choice([[], [b"MAXLEN", rnd.choice([b"0", b"2", b"5"])]])
        ),
        lambda: [b"LMOVE", k, k2, side(), side()],
        lambda: [b"RPOPLPUSH", k, k2],
        lambda: [b"DEL", k],
        lambda: [b"SET", b"s", v],
        lambda: [b"EXISTS", k],
        lambda: [b"TYPE", k],
    ]
    return rnd.choice(choices)()


@pytest.mark.parametrize("seed", range(6))
def test_random_sequences(raw_pair, seed):
    rnd = random.Random(seed)
    cmds = [random_cmd(rnd) for _ in range(600)]
    run_all(raw_pair, cmds)
    for k in KEYS:
        same(raw_pair, b"LRANGE", k, b"0", b"-1")


def test_long_lists(raw_pair):
    """Long lists: block splits, removed blocks merging, positions near both
    ends and in the middle."""
    rnd = random.Random(7)
    cmds = []
    for i in range(30):
        cmds.append([b"RPUSH", b"big"] + [b"v%d" % (i * 50 + j) for j in range(50)])
        cmds.append([b"LPUSH", b"big"] + [b"w%d" % (i * 50 + j) for j in range(50)])
    for _ in range(300):
        i = rnd.randint(-3100, 3100)
        cmds.append(
            rnd.choice(
                [
                    [b"LINDEX", b"big", str(i).encode()],
                    [b"LSET", b"big", str(i).encode(), b"s%d" % i],
                ]
            )
        )
        j = rnd.randint(0, 3000)
        cmds.append([b"LRANGE", b"big", str(j).encode(), str(j + rnd.randint(0, 150)).encode()])
        cmds.append([rnd.choice([b"LPOP", b"RPOP"]), b"big", str(rnd.randint(0, 9)).encode()])
        if rnd.random() < 0.2:
            cmds.append([b"LREM", b"big", b"0", b"v%d" % rnd.randint(0, 1500)])
        if rnd.random() < 0.2:
            cmds.append([b"LINSERT", b"big", b"AFTER", b"w%d" % rnd.randint(0, 1500), b"ins"])
    cmds.append([b"LTRIM", b"big", b"100", b"-100"])
    cmds.append([b"LRANGE", b"big", b"0", b"-1"])
    cmds.append([b"LPOS", b"big", b"ins", b"COUNT", b"0"])
    run_all(raw_pair, cmds)


# ---------------------------------------------------------------- in process ----


def make_node(node_id=1):
    ks = Keyspace(node_id, Backlog())
    srv = Server(ks)
    for m in (cmd_strings, cmd_keys, cmd_lists):
        m.register(srv)
    return ks, Client(srv)


def lrange(c, key):
    out = c.run(b"LRANGE", key, b"0", b"-1")
    n = int(out[1 : out.index(b"\r\n")])
    vals = []
    pos = out.index(b"\r\n") + 2
    for _ in range(n):
        j = out.index(b"\r\n", pos)
        ln = int(out[pos + 1 : j])
        vals.append(out[j + 2 : j + 2 + ln])
        pos = j + 2 + ln + 2
    return vals


@pytest.mark.parametrize("seed", range(4))
def test_block_structure_against_a_python_list(seed):
    """Thousands of pushes, pops, LSET, LREM, LINSERT, LTRIM on one list: its
    content equals a Python list's and the block invariants hold throughout
    (splits, removed blocks merging at both ends and in the middle)."""
    rnd = random.Random(seed)
    ks, c = make_node()
    model: list[bytes] = []
    n = 0
    for step in range(4000):
        op = rnd.random()
        if op < 0.25:
            vals = [b"%d" % (n + i) for i in range(rnd.randint(1, 40))]
            n += len(vals)
            if rnd.random() < 0.5:
                c.run(b"RPUSH", b"k", *vals)
                model.extend(vals)
            else:
                c.run(b"LPUSH", b"k", *vals)
                model[:0] = vals[::-1]
        elif op < 0.5:
            cnt = rnd.randint(1, 30)
            left = rnd.random() < 0.5
            c.run(b"LPOP" if left else b"RPOP", b"k", cnt)
            if left:
                del model[:cnt]
            else:
                del model[max(0, len(model) - cnt) :]
        elif op < 0.6 and model:
            i = rnd.randrange(len(model))
            c.run(b"LSET", b"k", i, b"s%d" % step)
            model[i] = b"s%d" % step
        elif op < 0.7 and model:
            v = rnd.choice(model)
            cnt = rnd.randint(-2, 2)
            c.run(b"LREM", b"k", cnt, v)
            idx = [i for i, x in enumerate(model) if x == v]
            if cnt < 0:
                idx = idx[::-1][:-cnt]
            elif cnt > 0:
                idx = idx[:cnt]
            for i in sorted(idx, reverse=True):
                del model[i]
        elif op < 0.8 and model:
            v = rnd.choice(model)
            after = rnd.random() < 0.5
            c.run(b"LINSERT", b"k", b"AFTER" if after else b"BEFORE", v, b"i%d" % step)
            i = model.index(v)
            model.insert(i + 1 if after else i, b"i%d" % step)
        elif op < 0.83 and model:
            a = rnd.randint(0, len(model) // 4)
            b = rnd.randint(-len(model) // 4 - 1, -1)
            c.run(b"LTRIM", b"k", a, b)
            model = model[a : len(model) + b + 1]
        elif op < 0.95 and model:
            i = rnd.randrange(len(model))
            j = i + rnd.randint(0, 50)
            assert c.run(b"LINDEX", b"k", i) == b"$%d\r\n%s\r\n" % (len(model[i]), model[i])
            got = c.run(b"LRANGE", b"k", i, j)
            want = model[i : j + 1]
            assert got.startswith(b"*%d\r\n" % len(want))
        o = ks.py_find(b"k", 1)
        if o is not None:
            if step % 10 == 0:
                check_list(o)
            assert o.n == len(model)
        else:
            assert model == []
        if step % 200 == 0:
            assert lrange(c, b"k") == model
    assert lrange(c, b"k") == model


# ---------------------------------------------------------------- benchmark ----


def test_redis_benchmark_lists(constdb_server, r):
    exe = need_tool("redis-benchmark")
    out = subprocess.run(
        [
            exe,
            "-p",
            str(constdb_server.port),
            "-t",
            "lpush,rpush,lpop,rpop,lrange_100,lrange_300",
            "-n",
            "20000",
            "-q",
        ],
        capture_output=True,
        timeout=300,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    text = out.stdout.replace("\r", "\n")
    assert "rror" not in text, text
    for name in ("LPUSH", "RPUSH", "LPOP", "RPOP", "LRANGE_100", "LRANGE_300"):
        assert re.search(rf"^{name}.*requests per second", text, re.M), text
