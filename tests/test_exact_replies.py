"""Reply differences with redis-server 7 found by the differential sweep
(tests/test_exact_fuzz.py), each checked byte for byte in RESP2 and RESP3."""

from __future__ import annotations

from support.differential import run_all, same


def test_lcs_reads_an_hll_as_a_string(raw_pair):
    """An HLL is a string: LCS reads its bytes (as GET) and parses its
    options after, a syntax error instead of a type error."""
    same(raw_pair, "PFADD", "hl", "a", "b")
    same(raw_pair, "SET", "str", "HYLLxyz")
    run_all(
        raw_pair,
        [
            ("LCS", "hl", "str"),
            ("LCS", "str", "hl", "LEN"),
            ("LCS", "hl", "hl", "IDX", "WITHMATCHLEN"),
            ("LCS", "hl", "missing", "BAD"),
            ("LCS", "missing", "hl", "IDX", "hl"),
        ],
    )


def test_hello_options_take_effect_as_read(raw_pair):
    """HELLO's AUTH and SETNAME act one by one: a bad password before a bad
    option is WRONGPASS, a bad name before a bad AUTH is the name's error, a
    name set before a bad option stays."""
    run_all(
        raw_pair,
        [
            ("HELLO", str(raw_pair[0].protocol), "AUTH", "x", "y", "BAD"),
            ("HELLO", str(raw_pair[0].protocol), "SETNAME", "a b", "AUTH", "x", "y"),
            ("HELLO", str(raw_pair[0].protocol), "AUTH", "x", "y", "SETNAME", "a b"),
            ("HELLO", str(raw_pair[0].protocol), "SETNAME", "early", "BAD"),
            ("CLIENT", "GETNAME"),
            ("HELLO", str(raw_pair[0].protocol), "AUTH", "default", "any", "SETNAME", "a b"),
            ("CLIENT", "GETNAME"),
            ("HELLO", str(raw_pair[0].protocol), "SETNAME", "", "FOO"),
            ("CLIENT", "GETNAME"),
        ],
    )


def test_minus_zero_is_not_an_integer(raw_pair):
    """Redis's string2ll refuses "-0" (and "+1", " 1"): numkeys, WAIT's
    arguments, a blocking timeout in milliseconds."""
    run_all(
        raw_pair,
        [
            ("EVAL", "return 1", "-0"),
            ("EVAL", "return 1", "+0"),
            ("WAIT", "0", "-0"),
            ("WAIT", "-0", "0"),
            ("WAIT", "+1", "0"),
            ("WAIT", "0", " 1"),
            ("WAIT", "0", "-1"),
            ("CLIENT", "PAUSE", "-0"),
            ("CLIENT", "KILL", "ID", "-0"),
            ("LRANGE", "l", "-0", "1"),
            ("COMMAND", "GETKEYS", "LMPOP", "-0", "a", "LEFT"),
        ],
    )


def test_getkeys_of_a_command_without_mandatory_keys(raw_pair):
    """COMMAND GETKEYS of EVAL/FCALL with no key found: an empty array (the
    command may have no keys), not an error."""
    run_all(
        raw_pair,
        [
            ("COMMAND", "GETKEYS", "EVAL", "return 1", "0"),
            ("COMMAND", "GETKEYS", "EVAL", "return 1", "abc"),
            ("COMMAND", "GETKEYS", "EVAL", "return 1", "5", "a"),
            ("COMMAND", "GETKEYS", "EVAL", "return 1", "-1"),
            ("COMMAND", "GETKEYS", "EVAL", "return 1", "2", "a", "b"),
            ("COMMAND", "GETKEYS", "FCALL", "f", "0"),
            ("COMMAND", "GETKEYSANDFLAGS", "EVAL_RO", "x", "0"),
            ("COMMAND", "GETKEYS", "ZUNION", "x", "a"),
            ("COMMAND", "GETKEYS", "GET"),
        ],
    )


def test_desc_of_a_float_counter(raw_pair):
    """DESC (ConstDB's own) of a key INCRBYFLOAT wrote: its counter entries
    hold 64-bit unsigned values (sent as their digits past the signed range),
    not an internal error."""
    a, _ = raw_pair
    a.call("SET", "fk", "1")
    a.call("INCRBYFLOAT", "fk", "-1.5")
    rep = a.call_typed("DESC", "fk")
    assert rep[0] == "arr" and rep[1][0][0] == "arr", rep
    assert rep[1][0][1][:2] == (("bulk", b"type"), ("bulk", b"string")), rep
