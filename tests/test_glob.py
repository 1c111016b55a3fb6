"""Glob patterns (KEYS, SCAN MATCH, CONFIG GET ...) against redis-server: the
same answers, and Redis's bound on the matcher's work (CVE-2022-36021)."""

from __future__ import annotations

import time

from hypothesis import given, settings
from hypothesis import strategies as st

# subjects written to both servers once; patterns are matched against them
SUBJECTS = [
    b"a",
    b"b",
    b"ab",
    b"abc",
    b"aab",
    b"a*b",
    b"a?b",
    b"[ab]",
    b"a\\b",
    b"-",
    b"^a",
    b"ba",
    b"bab",
    b"aXbYc",
    b"aaaaaaaaaa",
    b"abababab",
    b"A",
    b"AB",
]


def _keys(client, pattern: bytes) -> list[bytes]:
    return sorted(client.execute_command("KEYS", pattern))


def test_long_nested_star_pattern_regression(r, rr):
    """Redis's regression test: many '*' against a long run of 'a' that
    cannot match answers at once and matches nothing."""
    key = b"a" * 110
    pat = b"a*" * 32 + b"b"
    for c in (r, rr):
        c.set(key, 1)
    t = time.monotonic()
    assert _keys(r, pat) == _keys(rr, pat) == []
    assert time.monotonic() - t < 1.0


def test_very_long_nested_loops_are_bounded(r, rr):
    """50000 nested '*?' against a 50000-byte key: Redis stops past 1000
    levels and answers no match; so does ConstDB, in well under a second."""
    key = b"a" * 50000
    pat = b"*?" * 50000
    for c in (r, rr):
        c.set(key, 1)
    t = time.monotonic()
    assert _keys(r, pat) == _keys(rr, pat) == []
    assert time.monotonic() - t < 1.0
    # SCAN MATCH goes through the same matcher
    assert r.scan(0, match=pat, count=1000)[1] == []
    assert r.ping()


def test_nesting_at_the_bound_still_matches(r, rr):
    """The bound sits where Redis's does: 1000 levels of '*' still match,
    1001 do not (both servers agree at and past the limit)."""
    key = b"x" * 1200
    for c in (r, rr):
        c.set(key, 1)
    for n in (999, 1000, 1001, 1002):
        pat = b"*x" * n
        assert _keys(r, pat) == _keys(rr, pat), n


_pattern_chars = st.sampled_from(list(b"ab*?[]^-\\AX"))


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.lists(_pattern_chars, min_size=1, max_size=9).map(bytes), min_size=1, max_size=8)
)
def test_patterns_match_what_redis_matches(constdb_server, redis_server, patterns):
    r, rr = constdb_server.client(), redis_server.client()
    try:
        for c in (r, rr):
            c.flushall()
            c.mset({k: 1 for k in SUBJECTS})
        for pat in patterns:
            assert _keys(r, pat) == _keys(rr, pat), pat
    finally:
        r.close()
        rr.close()
