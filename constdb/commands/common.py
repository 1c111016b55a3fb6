"""What the Python command modules share: replies, argument parsing, names."""

from __future__ import annotations

import re

from constdb._core.codec import RespError, Status

OK = Status("OK")
SYNTAX = "ERR syntax error"
REDIS_COMPAT_VERSION = "7.0.15"  # the Redis version ConstDB answers as (HELLO, INFO)


def int_arg(b: bytes, msg: str = "ERR value is not an integer or out of range") -> int:
    """Redis's string2ll: a 64-bit decimal integer, no sign but '-', no spaces."""
    if not re.fullmatch(rb"0|-?[1-9][0-9]*", b):  # ("-0" is not one)
        raise RespError(msg)
    v = int(b)
    if not -(2**63) <= v < 2**63:
        raise RespError(msg)
    return v


def ms_timeout(b: bytes) -> int:
    """Redis's getTimeoutFromObjectOrReply in milliseconds."""
    v = int_arg(b, "ERR timeout is not an integer or out of range")
    if v < 0:
        raise RespError("ERR timeout is negative")
    return v


def text(b: bytes) -> str:
    return b.decode("utf-8", "replace")


def check_name(name: bytes) -> None:
    """A connection name (CLIENT SETNAME, HELLO SETNAME): printable, no spaces."""
    if any(ch < 33 or ch > 126 for ch in name):
        raise RespError("ERR Client names cannot contain spaces, newlines or special characters.")
