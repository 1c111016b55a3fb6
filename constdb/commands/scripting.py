"""EVAL, EVALSHA, EVAL_RO, EVALSHA_RO and SCRIPT: Lua scripts
(constdb/scripting.py runs them)."""

from __future__ import annotations

from typing import Any

from constdb._core.codec import RespError, Status
from constdb.commands import command
from constdb.commands.common import OK
from constdb.scripting import NOSCRIPT, engine, numkeys


def _eval(c: Any, argv: list[bytes], ro: bool) -> Any:
    n = numkeys(argv)
    e = engine(c)
    return e.run(c, e.get(argv[1]), argv, n, ro)


def _evalsha(c: Any, argv: list[bytes], ro: bool) -> Any:
    a = argv[2]
    n = (
        a[0] - 48
        if len(a) == 1 and 48 <= a[0] <= 57 and len(argv) - 3 >= a[0] - 48
        else numkeys(argv)
    )
    e = engine(c)
    s = e.scripts.get(argv[1].lower()) if len(argv[1]) == 40 else None
    if s is None:
        raise RespError(NOSCRIPT)
    return e.run(c, s, argv, n, ro)


@command("eval")
def eval_(c: Any, argv: list[bytes]) -> Any:
    return _eval(c, argv, False)


@command("eval_ro")
def eval_ro(c: Any, argv: list[bytes]) -> Any:
    return _eval(c, argv, True)


@command("evalsha")
def evalsha(c: Any, argv: list[bytes]) -> Any:
    return _evalsha(c, argv, False)


@command("evalsha_ro")
def evalsha_ro(c: Any, argv: list[bytes]) -> Any:
    return _evalsha(c, argv, True)


@command("script")
def script(c: Any, argv: list[bytes]) -> Any:
    # a container named alone: its arity (-2) refuses that first
    raise RespError("ERR wrong number of arguments for 'script' command")


@command("script|load")
def script_load(c: Any, argv: list[bytes]) -> Any:
    return engine(c).get(argv[2]).sha


@command("script|exists")
def script_exists(c: Any, argv: list[bytes]) -> Any:
    cache = engine(c).scripts
    return [1 if a.lower() in cache else 0 for a in argv[2:]]


@command("script|flush")
def script_flush(c: Any, argv: list[bytes]) -> Any:
    if len(argv) > 3 or (len(argv) == 3 and argv[2].upper() not in (b"SYNC", b"ASYNC")):
        raise RespError("ERR SCRIPT FLUSH only support SYNC|ASYNC option")
    engine(c).flush()
    return OK


@command("script|kill")
def script_kill(c: Any, argv: list[bytes]) -> Any:
    engine(c).kill()
    return OK


SCRIPT_HELP = [
    "SCRIPT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "EXISTS <sha1> [<sha1> ...]",
    "    Return information about the existence of the scripts in the script cache.",
    "FLUSH [ASYNC|SYNC]",
    "    Flush the Lua scripts cache. Very dangerous on replicas.",
    "    When called without the optional mode argument, the behavior is determined by the",
    "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
    "    * ASYNC: Asynchronously flush the scripts cache.",
    "    * SYNC: Synchronously flush the scripts cache.",
    "KILL",
    "    Kill the currently executing Lua script.",
    "LOAD <script>",
    "    Load a script into the scripts cache without executing it.",
    "HELP",
    "    Prints this help.",
]


@command("script|help")
def script_help(c: Any, argv: list[bytes]) -> Any:
    return [Status(x) for x in SCRIPT_HELP]
