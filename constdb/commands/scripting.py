"""EVAL, EVALSHA, EVAL_RO, EVALSHA_RO and SCRIPT: Lua scripts
(constdb/scripting.py runs them)."""

from __future__ import annotations

import time
from typing import Any

from constdb._core.codec import OrderedSet, RespError, Status
from constdb._core.glob import glob_match
from constdb.commands import command
from constdb.commands.common import OK
from constdb.scripting import SHEBANG_FLAGS, engine, numkeys


def _eval(c: Any, argv: list[bytes], ro: bool) -> Any:
    e = engine(c)
    e.check_oom(None, argv[1])
    n = numkeys(argv)
    return e.run(c, e.get(argv[1]), argv, n, ro)


def _evalsha(c: Any, argv: list[bytes], ro: bool) -> Any:
    # only the first EVALSHA of a node comes here: engine() makes the engine
    # and points the command table at its compiled EVALSHA (scriptcore.pyx)
    e = engine(c)
    return e.evalsha_ro(c, argv) if ro else e.evalsha(c, argv)


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
    "DEBUG (YES|SYNC|NO)",
    "    Set the debug mode for subsequent scripts executed.",
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


# ---- FUNCTION and FCALL (libraries: constdb/functions.py, replicated) ----


def _fcall(c: Any, argv: list[bytes], ro: bool) -> Any:
    # Redis's order: the function, OOM (by its flags), then numkeys
    e = engine(c)
    s = e.functions.get(argv[1])
    if s is None:
        raise RespError("ERR Function not found")
    e.check_oom(s)
    try:
        n = numkeys(argv)
    except RespError as err:
        if "not an integer" in str(err):
            raise RespError("ERR Bad number of keys provided") from None
        raise
    return e.run(c, s, argv, n, ro)


@command("fcall")
def fcall(c: Any, argv: list[bytes]) -> Any:
    return _fcall(c, argv, False)


@command("fcall_ro")
def fcall_ro(c: Any, argv: list[bytes]) -> Any:
    return _fcall(c, argv, True)


@command("function")
def function(c: Any, argv: list[bytes]) -> Any:
    raise RespError("ERR wrong number of arguments for 'function' command")


@command("function|load")
def function_load(c: Any, argv: list[bytes]) -> Any:
    replace = False
    args = argv[2:]
    while len(args) > 1:
        if args[0].upper() == b"REPLACE":
            replace = True
            args = args[1:]
        else:
            raise RespError(f"ERR Unknown option given: {args[0].decode(errors='replace')}")
    if not args:
        raise RespError("ERR Function code is missing")
    return engine(c).load_library(args[0], replace)


@command("function|delete")
def function_delete(c: Any, argv: list[bytes]) -> Any:
    engine(c).delete_library(argv[2])
    return OK


@command("function|flush")
def function_flush(c: Any, argv: list[bytes]) -> Any:
    if len(argv) > 3 or (len(argv) == 3 and argv[2].upper() not in (b"SYNC", b"ASYNC")):
        raise RespError("ERR FUNCTION FLUSH only supports SYNC|ASYNC option")
    engine(c).flush_libraries()
    return OK


@command("function|list")
def function_list(c: Any, argv: list[bytes]) -> Any:
    withcode = False
    pattern = None
    i = 2
    while i < len(argv):
        a = argv[i].upper()
        if a == b"WITHCODE" and not withcode:
            withcode = True
        elif a == b"LIBRARYNAME" and pattern is None:
            if i + 1 == len(argv):
                raise RespError("ERR library name argument was not given")
            i += 1
            pattern = argv[i]
        else:
            raise RespError(f"ERR Unknown argument {argv[i].decode(errors='replace')}")
        i += 1
    out = []
    for lib in engine(c).libraries.values():
        if pattern is not None and not glob_match(pattern, lib.name):
            continue
        fns = [
            {
                b"name": f.sha,
                b"description": f.desc,
                # status replies in Redis's order of the flags
                b"flags": OrderedSet(Status(x) for x in SHEBANG_FLAGS if x.encode() in f.flags),
            }
            for f in lib.functions.values()
        ]
        entry = {b"library_name": lib.name, b"engine": b"LUA", b"functions": fns}
        if withcode:
            entry[b"library_code"] = lib.code
        out.append(entry)
    return out


@command("function|stats")
def function_stats(c: Any, argv: list[bytes]) -> Any:
    e = engine(c)
    running = None
    if e.running_fn is not None:
        running = {
            b"name": e.running_fn.sha,
            b"command": list(e.running_argv),
            b"duration_ms": int((time.monotonic() - e.start) * 1000),
        }
    return {
        b"running_script": running,
        b"engines": {
            b"LUA": {b"libraries_count": len(e.libraries), b"functions_count": len(e.functions)}
        },
    }


@command("function|kill")
def function_kill(c: Any, argv: list[bytes]) -> Any:
    engine(c).kill()
    return OK


@command("function|dump")
def function_dump(c: Any, argv: list[bytes]) -> Any:
    return engine(c).dump_libraries()


@command("function|restore")
def function_restore(c: Any, argv: list[bytes]) -> Any:
    if len(argv) > 4:
        raise RespError(
            "ERR unknown subcommand or wrong number of arguments for"
            f" '{argv[1].decode(errors='replace')}'. Try FUNCTION HELP."
        )
    policy = b"APPEND"
    if len(argv) == 4:
        policy = argv[3].upper()
        if policy not in (b"FLUSH", b"APPEND", b"REPLACE"):
            raise RespError(
                "ERR Wrong restore policy given, value should be either FLUSH, APPEND or REPLACE."
            )
    engine(c).restore_libraries(argv[2], policy)
    return OK


FUNCTION_HELP = [
    "FUNCTION <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "LOAD [REPLACE] <FUNCTION CODE>",
    "    Create a new library with the given library name and code.",
    "DELETE <LIBRARY NAME>",
    "    Delete the given library.",
    "LIST [LIBRARYNAME PATTERN] [WITHCODE]",
    "    Return general information on all the libraries:",
    "    * Library name",
    "    * The engine used to run the Library",
    "    * Library description",
    "    * Functions list",
    "    * Library code (if WITHCODE is given)",
    "    It also possible to get only function that matches a pattern using LIBRARYNAME argument.",
    "STATS",
    "    Return information about the current function running:",
    "    * Function name",
    "    * Command used to run the function",
    "    * Duration in MS that the function is running",
    "    If no function is running, return nil",
    "    In addition, returns a list of available engines.",
    "KILL",
    "    Kill the current running function.",
    "FLUSH [ASYNC|SYNC]",
    "    Delete all the libraries.",
    "    When called without the optional mode argument, the behavior is determined by the",
    "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
    "    * ASYNC: Asynchronously flush the libraries.",
    "    * SYNC: Synchronously flush the libraries.",
    "DUMP",
    "    Return a serialized payload representing the current libraries, can be restored using"
    " FUNCTION RESTORE command",
    "RESTORE <PAYLOAD> [FLUSH|APPEND|REPLACE]",
    "    Restore the libraries represented by the given payload, it is possible to give a restore"
    " policy to",
    "    control how to handle existing libraries (default APPEND):",
    "    * FLUSH: delete all existing libraries.",
    "    * APPEND: appends the restored libraries to the existing libraries. On collision, abort.",
    "    * REPLACE: appends the restored libraries to the existing libraries, On collision, replace"
    " the old",
    "      libraries with the new libraries (notice that even on this option there is a chance of"
    " failure",
    "      in case of functions name collision with another library).",
    "HELP",
    "    Prints this help.",
]


@command("function|help")
def function_help(c: Any, argv: list[bytes]) -> Any:
    return [Status(x) for x in FUNCTION_HELP]


@command("script|debug")
def script_debug(c: Any, argv: list[bytes]) -> Any:
    # no Lua debugger here: NO (the default) is accepted, YES/SYNC refused;
    # as in Redis, refused while earlier replies wait to be sent (pipelined)
    if c.obuf:
        raise RespError("ERR SCRIPT DEBUG must be called outside a pipeline")
    mode = argv[2].upper()
    if mode == b"NO":
        return OK
    if mode in (b"YES", b"SYNC"):
        raise RespError(
            "ERR ConstDB has no Lua debugger: SCRIPT DEBUG YES and SYNC are not supported"
        )
    raise RespError("ERR Use SCRIPT DEBUG YES/SYNC/NO")
