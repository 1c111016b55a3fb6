"""The protocol's framing, errors and limits, compared with the real
redis-server 7.0; fuzzing; fairness between clients; backpressure."""

from __future__ import annotations

import os
import random
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from support.nodes import wait_for
from support.resp import Conn, encode, normalize

PING = encode("PING")
SENTINEL = encode("ECHO", "sentinel")


def talk(port: int, payload: bytes, sentinel: bool) -> tuple[bytes, bool]:
    """Send payload; read until the server closes, or (sentinel) until the
    reply to an ECHO sent after it. (replies, closed)."""
    with Conn(port) as w:
        w.send_raw(payload + (SENTINEL if sentinel else b""))
        if sentinel:
            want = b"$8\r\nsentinel\r\n"
            deadline = time.monotonic() + 5
            while not w.buf.endswith(want) and w._fill(deadline):
                pass
            return w.buf, w.eof
        return w.rest_until_close(timeout=5)


# payload -> does the connection stay open (True: check with a sentinel)
PROTOCOL_CASES = {
    # multibulk header
    "mbulk_not_a_number": (b"*x\r\n", False),
    "mbulk_empty_count": (b"*\r\n", False),
    "mbulk_plus_sign": (b"*+1\r\n$4\r\nPING\r\n", False),
    "mbulk_space": (b"* 1\r\n$4\r\nPING\r\n", False),
    "mbulk_trailing_space": (b"*1 \r\n$4\r\nPING\r\n", False),
    "mbulk_over_int_max": (b"*2147483648\r\n", False),
    "mbulk_huge": (b"*99999999999999999999\r\n", False),
    "mbulk_too_big_count_string": (b"*" + b"1" * 70000, False),
    "mbulk_lf_only": (b"*1\n$4\r\nPING\r\n", False),
    "mbulk_negative_is_empty": (b"*-1\r\n*-5\r\n*0\r\n", True),
    "mbulk_leading_zero": (b"*01\r\n$4\r\nPING\r\n", False),
    # bulk header
    "bulk_missing_dollar": (b"*1\r\nPING\r\n", False),
    "bulk_colon": (b"*1\r\n:4\r\n", False),
    "bulk_not_a_number": (b"*1\r\n$x\r\nPING\r\n", False),
    "bulk_empty_len": (b"*1\r\n$\r\n", False),
    "bulk_negative": (b"*1\r\n$-1\r\nPING\r\n", False),
    "bulk_space": (b"*1\r\n$ 4\r\nPING\r\n", False),
    "bulk_over_max": (b"*1\r\n$536870913\r\n", False),
    "bulk_huge": (b"*1\r\n$99999999999999999999\r\n", False),
    "bulk_too_big_count_string": (b"*1\r\n$" + b"1" * 70000, False),
    "bulk_lf_only": (b"*1\r\n$4\nPING\r\n", False),
    "bulk_leading_zero": (b"*1\r\n$04\r\nPING\r\n", False),
    "bulk_cr_without_lf": (b"*1\r\n$4\rxPING\r\n*2\r\n$4\r\nECHO\r\n$3\rzabc\r\n", True),
    "mbulk_cr_without_lf": (b"*1\rx$4\r\nPING\r\n", True),
    "bulk_bad_terminator": (b"*1\r\n$4\r\nPINGxx\r\n", True),
    "bulk_zero_length_command": (b"*1\r\n$0\r\n\r\n", True),
    "bulk_after_good_request": (PING + b"*1\r\n$x\r\n", False),
    "error_after_pipeline": (PING * 20 + encode("INCR", "n") * 20 + b"*x\r\n", False),
    "inline_then_resp_error": (b"PING\r\nECHO a\r\n*1\r\n$-5\r\n", False),
    # inline
    "inline_unbalanced_double": (b'PING "abc\r\n', False),
    "inline_unbalanced_single": (b"PING 'abc\r\n", False),
    "inline_quote_then_char": (b'PING "a"b\r\n', False),
    "inline_unbalanced_after_good": (b'PING\r\nECHO "x\r\n', False),
    "inline_too_big": (b"x" * 70000, False),
    "inline_long_line_ok": (b"ECHO " + b"y" * 70000 + b"\r\n", True),
    "inline_basic": (b"PING\r\nping x\r\nPING\n", True),
    "inline_quotes": (
        b"ECHO 'a b'\r\nECHO \"a\\x41\\n\\tb\"\r\nECHO \"\\x4\"\r\nECHO ''\r\n",
        True,
    ),
    "inline_escapes": (b'ECHO "\\""\r\nECHO \'a\\\'b\'\r\nECHO  a   \r\nECHO "\\z"\r\n', True),
    "inline_empty_lines": (b"\r\n\r\n   \r\n\n", True),
    "inline_unknown_and_arity": (b"FOO a b\r\nGET\r\nSET a\r\n", True),
    "not_a_request_types": (b"$4\r\nPING\r\n:1\r\n+PING\r\n-ERR\r\n", True),
    "mixed_inline_and_resp": (b"PING\r\n" + PING + b"ECHO x\r\n" + PING, True),
    "pipeline_of_writes": (b"".join(encode("INCR", "p") for _ in range(300)), True),
}


@pytest.fixture
def ports(r, rr, constdb_server, redis_server):
    return constdb_server.port, redis_server.port


@pytest.mark.parametrize("name", sorted(PROTOCOL_CASES))
def test_protocol_same_as_redis(ports, name):
    payload, stays_open = PROTOCOL_CASES[name]
    cport, rport = ports
    ours = talk(cport, payload, stays_open)
    theirs = talk(rport, payload, stays_open)
    assert ours == theirs
    assert ours[1] is (not stays_open)


def _talk_eof(port: int, payload: bytes) -> tuple[bytes, bool]:
    """Send payload and half-close: every reply comes back, then the close."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        out = b""
        while True:
            try:
                d = s.recv(65536)
            except ConnectionResetError:
                return normalize(out), True
            if not d:
                return normalize(out), True
            out += d


def test_mutated_pipelines_same_as_redis(ports):
    """Valid pipelines with a few bytes changed, dropped or inserted: every
    reply, error and close is the same as Redis's."""
    cport, rport = ports
    rng = random.Random(99)
    alphabet = b"*$\r\n0123456789-+ aX:"
    cases = []
    for _ in range(400):
        cmds = [
            rng.choice(
                [("ECHO", "hi"), ("PING",), ("EXISTS", "nokey"), ("ECHO", "x" * rng.randint(0, 20))]
            )
            for _ in range(4)
        ]
        p = bytearray(b"".join(encode(*c) for c in cmds))
        for _ in range(rng.randint(1, 3)):
            k = rng.randrange(len(p))
            op = rng.random()
            if op < 0.5:
                p[k] = rng.choice(alphabet)
            elif op < 0.75:
                del p[k]
            else:
                p.insert(k, rng.choice(alphabet))
        cases.append(bytes(p))

    def both(p):
        return p, _talk_eof(cport, p), _talk_eof(rport, p)

    with ThreadPoolExecutor(16) as ex:
        for p, ours, theirs in ex.map(both, cases):
            assert ours == theirs, p


def test_half_closed_pipeline_runs_to_the_end(ports):
    """A client that sends a long pipeline and shuts its side (cat | nc) gets
    every reply before the close, as from Redis."""
    cport, rport = ports
    payload = encode("INCR", "hc") * 50_000 + b"PING\r\nPI"
    assert _talk_eof(cport, payload) == _talk_eof(rport, payload)


def test_incomplete_requests_wait_as_redis(ports):
    """A partial request gets no reply and the connection stays open; the
    rest of it, sent later, completes it."""
    cport, rport = ports
    parts = [b"*2\r", b"\n$4\r\nEC", b"HO\r\n$5\r\nhel", b"lo", b"\r\n"]
    for port in (cport, rport):
        with Conn(port) as w:
            for p in parts[:-1]:
                w.send_raw(p)
                time.sleep(0.02)
            assert w.rest_until_close(timeout=0.2) == (b"", False)
            w.send_raw(parts[-1])
            assert w.read() == b"$5\r\nhello\r\n"


def test_request_split_byte_by_byte(constdb_server, r):
    payload = encode("SET", "k", "v" * 100) + encode("GET", "k") + b"PING\r\n"
    with Conn(constdb_server.port) as w:
        for i in range(len(payload)):
            w.send_raw(payload[i : i + 1])
        assert w.read() == b"+OK\r\n"
        assert w.read() == b"$100\r\n" + b"v" * 100 + b"\r\n"
        assert w.read() == b"+PONG\r\n"


def test_large_multibulk_arrives_in_pieces(constdb_server, r):
    """Many arguments in many reads: framed incrementally, run once."""
    n = 50_000
    args = ["SADD", "big"] + [f"m{i}" for i in range(n)]
    payload = encode(*args)
    with Conn(constdb_server.port) as w:
        for i in range(0, len(payload), 4096):
            w.send_raw(payload[i : i + 4096])
        assert w.read(timeout=30) == b":%d\r\n" % n
    assert r.scard("big") == n


def test_proto_max_bulk_len_config(constdb_server, r):
    r.config_set("proto-max-bulk-len", "1mb")
    try:
        with Conn(constdb_server.port) as w:
            w.send_raw(b"*2\r\n$4\r\nECHO\r\n$1048577\r\n")
            assert w.rest_until_close() == (b"-ERR Protocol error: invalid bulk length\r\n", True)
        with Conn(constdb_server.port) as w:
            assert w.call("ECHO", b"z" * 1048576).startswith(b"$1048576\r\n")
    finally:
        r.config_set("proto-max-bulk-len", "512mb")


def test_query_buffer_limit_closes_as_redis(ports, constdb_server):
    """Over client-query-buffer-limit Redis closes the client without a
    reply (and logs it); so does ConstDB."""
    results = []
    for port in ports:
        c = Conn(port)
        admin = Conn(port)
        assert admin.call("CONFIG", "SET", "client-query-buffer-limit", "1mb") == b"+OK\r\n"
        try:
            try:
                c.send_raw(b"*2\r\n$3\r\nSET\r\n$2000000\r\n")
                for _ in range(30):
                    c.send_raw(b"x" * 65536)
            except OSError:
                pass
            results.append(c.rest_until_close(timeout=5))
        finally:
            admin.call("CONFIG", "SET", "client-query-buffer-limit", "1gb")
            admin.close()
            c.close()
    assert results[0] == results[1] == (b"", True)
    assert "max query buffer length" in constdb_server.log()


# ---- robustness ----------------------------------------------------------------------------


def test_fuzz_random_input_never_hurts_the_server(constdb_server, r):
    rng = random.Random(1234)
    port = constdb_server.port
    pieces = [
        b"*",
        b"$",
        b"\r\n",
        b"\n",
        b"\r",
        b"-1",
        b"0",
        b"3",
        b"99999999999",
        b"2147483647",
        b"PING",
        b"SET",
        b"GET",
        b"MULTI",
        b"EXEC",
        b"'",
        b'"',
        b"\\x",
        b" ",
        b"\x00",
        b"\xff",
        b":",
        b"+",
    ]
    watcher = Conn(port)
    try:
        for i in range(250):
            if i % 3 == 0:
                payload = os.urandom(rng.randint(1, 300))
            elif i % 3 == 1:
                payload = b"".join(rng.choice(pieces) for _ in range(rng.randint(1, 60)))
            else:  # a valid pipeline, truncated or corrupted at a random place
                good = b"".join(
                    encode(*rng.choice([("SET", "f", "v"), ("GET", "f"), ("PING",), ("INCR", "c")]))
                    for _ in range(5)
                )
                cut = rng.randint(0, len(good))
                payload = good[:cut] + os.urandom(rng.randint(0, 5)) + good[cut:]
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                    s.sendall(payload)
                    s.settimeout(0.02)
                    try:
                        s.recv(65536)
                    except (socket.timeout, ConnectionResetError):
                        pass
            except OSError:
                pass
            if i % 50 == 0:
                assert watcher.call("PING") == b"+PONG\r\n"
        assert watcher.call("PING") == b"+PONG\r\n"
    finally:
        watcher.close()
    assert constdb_server.alive()
    assert "Traceback" not in constdb_server.log()
    r.flushall()
    assert r.set("after", "fuzz") is True


def test_huge_counts_do_not_allocate(constdb_server, r):
    port = constdb_server.port
    conns = []
    for payload in (
        b"*2147483647\r\n",
        b"*3\r\n$536870912\r\n",
        b"*1000000\r\n" + b"$1\r\na\r\n" * 1000,
    ):
        w = Conn(port)
        w.send_raw(payload)
        conns.append(w)
    with Conn(port) as w:
        assert w.call("PING") == b"+PONG\r\n"
        rss = int(dict(_info(w, "memory"))["used_memory_rss"])
    assert rss < 500 * 1024 * 1024
    for w in conns:
        w.close()
    assert r.ping() is True


def _info(w: Conn, section: str) -> list[tuple[str, str]]:
    reply = w.call("INFO", section)
    body = reply.split(b"\r\n", 1)[1].decode()
    return [tuple(x.split(":", 1)) for x in body.split("\r\n") if ":" in x]


def test_errors_keep_the_connection_open(constdb_server, r):
    with Conn(constdb_server.port) as w:
        w.call("SET", "s", "abc")
        assert w.call("INCR", "s") == b"-ERR value is not an integer or out of range\r\n"
        assert w.call("SADD", "s", "m").startswith(b"-WRONGTYPE ")
        assert w.call("NOPE", "x").startswith(b"-ERR unknown command 'NOPE'")
        assert w.call("GET") == b"-ERR wrong number of arguments for 'get' command\r\n"
        assert w.call("PING") == b"+PONG\r\n"


# ---- fairness and backpressure ---------------------------------------------------------


def test_huge_pipeline_does_not_starve_other_clients(constdb_server, r):
    """max_exec_per_round: while one client's long pipeline of slow commands
    runs, another client's request is answered at once."""
    port = constdb_server.port
    r.sadd("fat", *range(2000))
    n = 8_000
    req = encode("SINTERSTORE", "dst", "fat", "fat")
    big = req * n
    reply_len = len(b":2000\r\n") * n
    got = [0]
    done = threading.Event()

    def heavy():
        with Conn(port, timeout=120) as w:
            w.send_raw(big)
            deadline = time.monotonic() + 120
            while got[0] < reply_len and w._fill(deadline):
                got[0] += len(w.buf)
                w.buf = b""
        done.set()

    t = threading.Thread(target=heavy)
    t.start()
    try:
        wait_for(lambda: got[0] > 0, 30, interval=0.001, what="the pipeline to start")
        latencies = []
        with Conn(port) as w:
            while not done.is_set() and len(latencies) < 5:
                t0 = time.monotonic()
                assert w.call("PING") == b"+PONG\r\n"
                latencies.append(time.monotonic() - t0)
                progress = got[0]
        assert len(latencies) >= 3, "the pipeline ended before the other client was served"
        assert progress < reply_len
        assert sorted(latencies)[len(latencies) // 2] < 0.25, latencies
    finally:
        t.join(120)
    assert done.is_set() and got[0] == reply_len


def _rss_of(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_client_that_does_not_read_cannot_grow_server_memory(node):
    """pause_writing: the server stops reading from a client whose replies
    pile up unread, so its memory stays bounded."""
    n = node().start()
    c = n.client()
    c.set("big", b"x" * (1 << 20))
    base = _rss_of(n.pid)
    s = socket.create_connection(("127.0.0.1", n.port))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
    s.setblocking(False)
    req = encode("GET", "big") * 1000  # 1 GB of replies if all were kept
    # far more than the kernel's socket buffers can hold (a few MB each way)
    limit = 2000 * len(req)
    sent = 0
    stalled_since = None
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and sent < limit:
        try:
            sent += s.send(req[sent % len(req) :][:65536])
            stalled_since = None
        except BlockingIOError:
            if stalled_since is None:
                stalled_since = time.monotonic()
            elif time.monotonic() - stalled_since > 1.0:
                break
            time.sleep(0.01)
    grown = _rss_of(n.pid) - base
    # the server stopped reading: the client could not send it everything
    assert sent < limit
    assert grown < 200 * 1024 * 1024, grown
    assert c.ping() is True  # other clients are still served
    s.close()
    wait_for(lambda: c.info("clients")["connected_clients"] == 1, 10, what="client gone")
    c.close()
