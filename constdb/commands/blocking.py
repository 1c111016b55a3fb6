"""CLIENT UNBLOCK, CLIENT PAUSE, CLIENT UNPAUSE and MONITOR (the machinery:
constdb/blocking.py and constdb/monitor.py; the blocking pops are C
handlers, constdb/_core/cmd_blocking.pyx)."""

from __future__ import annotations

from typing import Any

from constdb._core import cmd_blocking
from constdb._core.codec import RespError
from constdb._core.protocol import NO_REPLY
from constdb.blocking import PAUSE_ALL, PAUSE_WRITE
from constdb.commands import command
from constdb.commands.common import OK, int_arg, ms_timeout


def _at_most_4(argv: list[bytes]) -> None:
    if len(argv) > 4:
        raise RespError(
            "ERR unknown subcommand or wrong number of arguments for "
            f"'{argv[1].decode('utf-8', 'replace')}'. Try CLIENT HELP."
        )


@command("client|unblock")
def client_unblock(c: Any, argv: list[bytes]) -> Any:
    _at_most_4(argv)
    error = False
    if len(argv) == 4:
        reason = argv[3].lower()
        if reason == b"error":
            error = True
        elif reason != b"timeout":
            raise RespError("ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR")
    cid = int_arg(argv[2])
    return c.srv.blocking.unblock(cid, error)


@command("client|pause")
def client_pause(c: Any, argv: list[bytes]) -> Any:
    _at_most_4(argv)
    mode = PAUSE_ALL
    if len(argv) == 4:
        m = argv[3].lower()
        if m == b"write":
            mode = PAUSE_WRITE
        elif m != b"all":
            raise RespError("ERR CLIENT PAUSE mode must be WRITE or ALL")
    ms = ms_timeout(argv[2])
    c.srv.blocking.pause(ms, mode)
    return OK


@command("client|unpause")
def client_unpause(c: Any, argv: list[bytes]) -> Any:
    c.srv.blocking.unpause()
    return OK


@command("monitor")
def monitor(c: Any, argv: list[bytes]) -> Any:
    if cmd_blocking.top_command(c) is not c.srv.command(b"monitor"):
        raise RespError("ERR MONITOR isn't allowed for DENY BLOCKING client")
    mon = c.srv.app.monitor
    if c in mon.clients:
        return NO_REPLY
    mon.add(c)
    return OK
