"""Argument pools of the random command generators (tests/test_differential.py's
Gen and tests/support/cmdgen.py): one copy of the number strings both draw from.
Keys and member/value names stay with each generator (they name what its own
fixtures hold)."""

from __future__ import annotations

# small valid integers
INTS = ["0", "1", "2", "-1", "3", "-2", "5", "10", "100", "-100"]
# integer strings at and past the edges: the 64-bit limits and one past them,
# powers of two that overflow narrower types, and what strict parsing refuses
# (empty, a fraction, spaces, a sign or leading zero, another base, words)
EDGE_INTS = [
    "abc",
    "",
    "1.5",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775807",
    "-9223372036854775808",
    "-9223372036854775809",
    "4611686018427387904",
    "inf",
    "-inf",
    "nan",
    " 1",
    "1 ",
    "01",
    "+1",
    "0x10",
    "1e3",
    "17179869184",
    "4294967296",
    "2147483648",
    "-0",
]
# float strings, valid and not (the infinities, NaN, overflow, odd forms)
FLOATS = [
    "0",
    "1",
    "-1",
    "1.5",
    "-0.5",
    "-2.5",
    "3.0",
    ".5",
    "5.",
    "1e3",
    "inf",
    "-inf",
    "+inf",
    "nan",
    "1e400",
    "0x10",
    " 1",
    "",
    "abc",
]
