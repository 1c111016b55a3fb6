"""The SCAN family's guarantee, against a real constdb-server: an element
present in the collection from the start to the end of a full iteration is
returned at least once, whatever another connection adds and deletes between
the calls (enough to resize and compact the underlying dicts many times, and
re-adding the very element just returned); a full iteration ends; abandoned
iterations take bounded memory and do not stop later ones from completing;
any cursor value is accepted."""

from __future__ import annotations

from collections import deque

import pytest

STABLE = 2000  # elements present for the whole iteration
CHURN = 2000  # churn elements present at the start, interleaved with them
BATCH = 100  # churn elements added and as many deleted between two calls
COUNT = 10


class Kind:
    """How to fill, churn and scan one kind of collection."""

    def __init__(self, name, key, add, rem):
        self.name, self.key, self.add, self.rem = name, key, add, rem


def _pairs(flat):
    return [flat[i] for i in range(0, len(flat), 2)]


KINDS = {
    "scan": Kind(
        "scan",
        None,
        lambda p, key, m: p.execute_command("SET", m, "v"),
        lambda p, key, m: p.execute_command("DEL", m),
    ),
    "sscan": Kind(
        "sscan",
        "s",
        lambda p, key, m: p.execute_command("SADD", key, m),
        lambda p, key, m: p.execute_command("SREM", key, m),
    ),
    "hscan": Kind(
        "hscan",
        "h",
        lambda p, key, m: p.execute_command("HSET", key, m, "v"),
        lambda p, key, m: p.execute_command("HDEL", key, m),
    ),
    "zscan": Kind(
        "zscan",
        "z",
        lambda p, key, m: p.execute_command("ZADD", key, 1, m),
        lambda p, key, m: p.execute_command("ZREM", key, m),
    ),
}


def raw(c, *args):
    """The reply as parsed RESP, without redis-py's SCAN post-processing."""
    conn = c.connection_pool.get_connection()
    try:
        conn.send_command(*args)
        return conn.read_response()
    finally:
        c.connection_pool.release(conn)


def scan_call(kind, c, cur, extra=()):
    """One call: (next cursor as bytes, element names returned)."""
    args = ["SCAN", cur] if kind.key is None else [kind.name.upper(), kind.key, cur]
    args += ["COUNT", COUNT, *extra]
    cursor, items = raw(c, *args)
    if kind.name in ("hscan", "zscan"):
        items = _pairs(items)
    return cursor, items


def fill(kind, c):
    """STABLE stable elements and CHURN churn ones, interleaved, so that
    deleting the oldest churn elements leaves holes all along the dict."""
    p = c.pipeline(transaction=False)
    churn = deque()
    for i in range(STABLE):
        kind.add(p, kind.key, b"stable:%d" % i)
        if i < CHURN:
            m = b"churn:%d" % i
            kind.add(p, kind.key, m)
            churn.append(m)
    p.execute()
    return churn


@pytest.mark.parametrize("name", sorted(KINDS))
def test_full_iteration_under_churn_returns_every_stable_element(constdb_server, name):
    kind = KINDS[name]
    c = constdb_server.client()
    w = constdb_server.client()  # the other connection, writing between calls
    try:
        c.flushall()
        churn = fill(kind, c)
        nxt = CHURN
        touched = set()  # stable elements deleted and re-added: not present throughout
        seen = set()
        cur = b"0"
        calls = 0
        added = removed = 0
        while True:
            cur, items = scan_call(kind, c, cur)
            calls += 1
            seen.update(items)
            if cur == b"0":
                break
            # bound on the calls of a full iteration: the collection's size stays
            # about STABLE + CHURN, so it must end well within this
            assert calls <= 4 * (STABLE + CHURN) // COUNT, "the iteration does not end"
            p = w.pipeline(transaction=False)
            for _ in range(BATCH):
                m = b"churn:%d" % nxt
                nxt += 1
                kind.add(p, kind.key, m)
                churn.append(m)
                kind.rem(p, kind.key, churn.popleft())
                added += 1
                removed += 1
            if items:
                # delete and re-add the element just returned (it moves to the
                # end of the dict; a cursor anchored on it would jump there)
                last = items[-1]
                kind.rem(p, kind.key, last)
                kind.add(p, kind.key, last)
                if last.startswith(b"stable:"):
                    touched.add(last)
            p.execute()
        assert added >= 20000 and removed >= 20000, (added, removed)
        stable = {b"stable:%d" % i for i in range(STABLE)}
        missed = stable - touched - seen
        assert not missed, f"{name}: {len(missed)} stable elements never returned"
        # what was returned existed at some point of the iteration
        assert all(m.startswith((b"stable:", b"churn:")) for m in seen)
    finally:
        c.close()
        w.close()


def test_scan_match_and_type_under_churn(constdb_server):
    """MATCH and TYPE filter the same guarantee: every stable string key."""
    kind = KINDS["scan"]
    c = constdb_server.client()
    w = constdb_server.client()
    try:
        c.flushall()
        churn = fill(kind, c)
        for i in range(200):
            c.sadd(b"stable:set:%d" % i, b"m")
        nxt = CHURN
        seen = set()
        cur = b"0"
        extra = ("MATCH", "stable:*", "TYPE", "string")
        while True:
            cur, items = scan_call(kind, c, cur, extra)
            seen.update(items)
            if cur == b"0":
                break
            p = w.pipeline(transaction=False)
            for _ in range(BATCH):
                m = b"churn:%d" % nxt
                nxt += 1
                p.set(m, "v")
                churn.append(m)
                p.delete(churn.popleft())
            p.execute()
        assert seen == {b"stable:%d" % i for i in range(STABLE)}
    finally:
        c.close()
        w.close()


def _rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _iterate(kind, c, cur=b"0"):
    """Finish an iteration from cur: (elements, calls)."""
    seen = set()
    calls = 0
    while True:
        cur, items = scan_call(kind, c, cur)
        seen.update(items)
        calls += 1
        assert calls < 100000, "the iteration does not end"
        if cur == b"0":
            return seen, calls


def test_abandoned_iterations_are_bounded_and_later_ones_complete(node):
    srv = node().start()
    c = srv.client()
    try:
        n = 20000
        p = c.pipeline(transaction=False)
        for i in range(n):
            p.set(b"k:%d" % i, "v")
            if i % 1000 == 999:
                p.execute()
        p.execute()
        c.sadd("s", *[b"m:%d" % i for i in range(n)])
        keys = {b"k:%d" % i for i in range(n)} | {b"s"}
        members = {b"m:%d" % i for i in range(n)}
        kscan, sscan = KINDS["scan"], KINDS["sscan"]
        first_cursor, first_items = scan_call(kscan, c, b"0")
        before = _rss_kb(srv.pid)
        # 3000 iterations started and dropped: if each kept a copy of its
        # collection, they would hold 3000 x 20000 x 8 bytes = 480 MB
        for _ in range(1500):
            cur, items = scan_call(kscan, c, b"0")
            assert cur != b"0" and len(items) == COUNT
            cur, items = scan_call(sscan, c, b"0")
            assert cur != b"0" and len(items) == COUNT
        grown = _rss_kb(srv.pid) - before
        assert grown < 64 * 1024, f"abandoned iterations hold {grown} KB"
        # later iterations still complete
        assert _iterate(kscan, c)[0] == keys
        assert _iterate(sscan, c)[0] == members
        # the first cursor, long evicted, still leads to every key (a restart)
        rest, calls = _iterate(kscan, c, first_cursor)
        assert set(first_items) | rest == keys
        # iterations interleaved call by call all complete
        curs = [b"0"] * 20
        seen = [set() for _ in curs]
        done = [False] * len(curs)
        while not all(done):
            for i, cur in enumerate(curs):
                if done[i]:
                    continue
                curs[i], items = scan_call(sscan if i % 2 else kscan, c, cur)
                seen[i].update(items)
                done[i] = curs[i] == b"0"
        for i, s in enumerate(seen):
            assert s == (members if i % 2 else keys)
    finally:
        c.close()


@pytest.mark.parametrize(
    "cmd",
    [
        ("SCAN", "0"),
        ("SCAN", "0", "COUNT", "5"),
        ("SSCAN", "nokey", "0"),
        ("HSCAN", "nokey", "0"),
        ("ZSCAN", "nokey", "0"),
        ("SSCAN", "nokey", "12345"),
        ("ZSCAN", "nokey", "0", "COUNT", "1"),
    ],
)
def test_cursor_zero_on_empty_and_missing(constdb_server, redis_server, cmd):
    c, rr = constdb_server.client(), redis_server.client()
    try:
        c.flushall()
        rr.flushall()
        assert raw(c, *cmd) == raw(rr, *cmd) == [b"0", []]
    finally:
        c.close()
        rr.close()


@pytest.mark.parametrize("name", sorted(KINDS))
@pytest.mark.parametrize(
    "cursor", [b"987654321", b"18446744073709551615", b"-1", b"", b"+7", b"4294967296"]
)
def test_any_cursor_is_accepted_and_leads_to_the_end(constdb_server, name, cursor):
    """A cursor the server never gave is not an error; from there the
    iteration ends (here: having returned every element, a fresh start)."""
    kind = KINDS[name]
    c = constdb_server.client()
    try:
        c.flushall()
        p = c.pipeline(transaction=False)
        for i in range(500):
            kind.add(p, kind.key, b"e:%d" % i)
        p.execute()
        seen, calls = _iterate(kind, c, cursor)
        assert seen == {b"e:%d" % i for i in range(500)}
        assert calls <= 500 // COUNT + 1
    finally:
        c.close()


@pytest.mark.parametrize("cursor", [b"abc", b" 1", b"1 ", b"18446744073709551616", b"0x10"])
def test_invalid_cursor_is_redis_error(constdb_server, redis_server, cursor):
    c, rr = constdb_server.client(), redis_server.client()
    try:
        for cmd in (("SCAN", cursor), ("SSCAN", "k", cursor), ("HSCAN", "k", cursor)):
            for conn in (c, rr):
                with pytest.raises(Exception) as e:
                    raw(conn, *cmd)
                assert str(e.value) == "invalid cursor"
    finally:
        c.close()
        rr.close()


@pytest.mark.parametrize("name", sorted(KINDS))
def test_iteration_ends_when_everything_is_deleted(constdb_server, name):
    """Deleting the whole collection mid-iteration: the iteration still ends
    (at most as many calls as at the start), returning nothing not there."""
    kind = KINDS[name]
    c = constdb_server.client()
    try:
        c.flushall()
        p = c.pipeline(transaction=False)
        for i in range(1000):
            kind.add(p, kind.key, b"e:%d" % i)
        p.execute()
        cur, items = scan_call(kind, c, b"0")
        assert cur != b"0"
        c.flushall()
        seen, calls = _iterate(kind, c, cur)
        assert seen == set() and calls <= 1000 // COUNT
    finally:
        c.close()
