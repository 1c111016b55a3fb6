"""Byte-for-byte comparison with redis-server: the same requests on a pair
of raw connections (constdb, redis), see the `raw_pair` fixture."""

from __future__ import annotations

from support.resp import Conn


def same(pair: tuple[Conn, Conn], *args) -> bytes:
    """One request on both; the replies must be the same bytes."""
    a, b = pair
    got, want = a.call(*args), b.call(*args)
    assert got == want, f"{args!r}: constdb {got!r} != redis {want!r}"
    return got


def run_all(pair: tuple[Conn, Conn], cmds) -> None:
    """cmds pipelined on both; every reply must be the same bytes."""
    a, b = pair
    got = a.pipeline(cmds)
    want = b.pipeline(cmds)
    for c, g, w in zip(cmds, got, want):
        assert g == w, f"{c!r}: constdb {g!r} != redis {w!r}"
