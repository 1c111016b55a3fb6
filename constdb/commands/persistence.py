"""SAVE, BGSAVE, LASTSAVE: the node's snapshot in work_dir (the work is
constdb/persistence.py's, app.persistence)."""

from __future__ import annotations

from typing import Any

from constdb._core.codec import RespError, Status
from constdb.commands import command
from constdb.commands.common import OK, SYNTAX


@command("save")
def save(c: Any, argv: list[bytes]) -> Any:
    c.srv.app.persistence.save()
    return OK


@command("bgsave")
def bgsave(c: Any, argv: list[bytes]) -> Any:
    p = c.srv.app.persistence
    schedule = False
    if len(argv) == 2:
        if argv[1].upper() != b"SCHEDULE":
            raise RespError(SYNTAX)
        schedule = True
    if p.child is not None:
        if schedule:
            p.scheduled = True
            return Status("Background saving scheduled")
        raise RespError("ERR Background save already in progress")
    p.bgsave()
    return Status("Background saving started")


@command("lastsave")
def lastsave(c: Any, argv: list[bytes]) -> Any:
    return c.srv.app.persistence.last_save


@command("bgrewriteaof")
def bgrewriteaof(c: Any, argv: list[bytes]) -> Any:
    """Rewriting here: a snapshot of dbfilename, after which the append-only
    log restarts from the snapshot's point (constdb/aof.py). Redis's replies."""
    app = c.srv.app
    p = app.persistence
    if p.child is not None:
        if p.child_token is not None or app.aof.rewrite_scheduled:
            raise RespError("ERR Background append only file rewriting already in progress")
        app.aof.rewrite_scheduled = True
        return Status("Background append only file rewriting scheduled")
    p.bgsave()
    return Status("Background append only file rewriting started")
