"""The group's commands: MEET, FORGET, NODES (REPLICAS), WAIT, CRDT.DIGEST,
and CDB.LINK, the handshake a peer opens a replication link with. The work
is the replication manager's (constdb/replication/manager.py, app.repl)."""

from __future__ import annotations

from typing import Any

from constdb._core.codec import RespError
from constdb.commands import command


@command("meet")
def meet(c: Any, argv: list[bytes]) -> Any:
    return c.srv.app.repl.cmd_meet(c, argv)


@command("forget")
def forget(c: Any, argv: list[bytes]) -> Any:
    return c.srv.app.repl.cmd_forget(c, argv)


@command("nodes", "replicas")
def nodes(c: Any, argv: list[bytes]) -> Any:
    return c.srv.app.repl.cmd_nodes(c, argv)


@command("wait")
def wait(c: Any, argv: list[bytes]) -> Any:
    return c.srv.app.repl.cmd_wait(c, argv)


@command("crdt.digest")
def crdt_digest(c: Any, argv: list[bytes]) -> Any:
    if len(argv) > 2:
        raise RespError("ERR syntax error")
    if len(argv) == 2:
        try:
            db = int(argv[1])
        except ValueError:
            raise RespError("ERR value is not an integer or out of range") from None
        if not 0 <= db < len(c.ks.dbs):
            raise RespError("ERR DB index is out of range")
        return c.ks.digest(db).encode()
    return c.ks.digest().encode()


@command("cdb.link")
def cdb_link(c: Any, argv: list[bytes]) -> Any:
    return c.srv.app.repl.accept_link(c, argv)
