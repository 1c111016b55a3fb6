"""Every container's HELP (and its arity errors) byte for byte as redis-server
7.0.15 gives it, in RESP2 and RESP3."""

from __future__ import annotations

import pytest
from support.differential import run_all, same

CONTAINERS = [
    "FUNCTION",
    "SCRIPT",
    "PUBSUB",
    "SLOWLOG",
    "LATENCY",
    "CLIENT",
    "OBJECT",
    "MEMORY",
    "CONFIG",
    "COMMAND",
]


@pytest.mark.parametrize("name", CONTAINERS)
def test_help_same_as_redis(raw_pair, name):
    same(raw_pair, name, "HELP")
    same(raw_pair, name.lower(), "help")
    same(raw_pair, name, "HELP", "extra")


def test_script_debug_no_and_its_errors_same_as_redis(raw_pair):
    run_all(
        raw_pair,
        [
            ("SCRIPT", "DEBUG", "NO"),
            ("SCRIPT", "DEBUG", "no"),
            ("SCRIPT", "DEBUG", "maybe"),
            ("SCRIPT", "DEBUG"),
            ("SCRIPT", "DEBUG", "NO", "x"),
        ],
    )


def test_script_debug_yes_is_refused_plainly(raw_pair):
    # no Lua debugger (README: scripting): YES and SYNC are refused, not ignored
    a, _ = raw_pair
    for mode in ("YES", "sync"):
        got = a.call("SCRIPT", "DEBUG", mode)
        assert got.startswith(b"-ERR ConstDB has no Lua debugger"), got


def test_script_debug_one_at_a_time_same_as_redis(raw_pair):
    for args in (("SCRIPT", "DEBUG", "NO"), ("SCRIPT", "DEBUG", "no"), ("SCRIPT", "DEBUG", "x")):
        same(raw_pair, *args)
