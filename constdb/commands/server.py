"""TIME, SHUTDOWN, LOLWUT: the node as a process. (DBSIZE, FLUSHALL and
FLUSHDB are C handlers in constdb/_core/cmd_server.pyx.)"""

from __future__ import annotations

from typing import Any

from constdb import __version__
from constdb._core.clock import now_us
from constdb._core.codec import RespError, Verbatim
from constdb._core.protocol import NO_REPLY
from constdb.commands import command
from constdb.commands.common import SYNTAX


@command("time")
def time_(c: Any, argv: list[bytes]) -> Any:
    t = now_us()  # the node's wall clock (with the test-only offset, if set)
    return [str(t // 1_000_000).encode(), str(t % 1_000_000).encode()]


@command("shutdown")
def shutdown(c: Any, argv: list[bytes]) -> Any:
    nosave = save = abort = force = False
    for a in argv[1:]:
        u = a.upper()
        if u == b"NOSAVE":
            nosave = True
        elif u == b"SAVE":
            save = True
        elif u == b"FORCE":
            force = True
        elif u == b"NOW":
            pass
        elif u == b"ABORT":
            abort = True
        else:
            raise RespError(SYNTAX)
    if (abort and len(argv) > 2) or (nosave and save):
        raise RespError(SYNTAX)
    if abort:
        raise RespError("ERR No shutdown in progress.")
    c.srv.app.shutdown_command(not nosave if (nosave or save) else None, force)
    return NO_REPLY


@command("lolwut")
def lolwut(c: Any, argv: list[bytes]) -> Any:
    return Verbatim(f"ConstDB ver. {__version__}\n".encode())
