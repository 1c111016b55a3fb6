"""AUTH, HELLO, RESET: a connection's authentication, protocol and name.
(PING, ECHO, QUIT and SELECT are C handlers in constdb/_core/cmd_server.pyx.)"""

from __future__ import annotations

import hmac
from typing import Any

from constdb._core.codec import RespError, Status
from constdb._core.protocol import REPLY_OFF, REPLY_SKIP_NEXT
from constdb.commands import command
from constdb.commands.common import (
    OK,
    REDIS_COMPAT_VERSION,
    SYNTAX,
    check_name,
    int_arg,
    text,
)

WRONGPASS = "WRONGPASS invalid username-password pair or user is disabled."


def check_password(srv: Any, user: bytes, password: bytes) -> bool:
    req = srv.requirepass
    if user != b"default":
        return False
    if req is None:
        return True
    return hmac.compare_digest(password, req)


@command("auth")
def auth(c: Any, argv: list[bytes]) -> Any:
    if len(argv) > 3:
        raise RespError(SYNTAX)
    if c.srv.requirepass is None and len(argv) == 2:
        raise RespError(
            "ERR AUTH <password> called without any password configured for the default user. "
            "Are you sure your configuration is correct?"
        )
    user, pw = (b"default", argv[1]) if len(argv) == 2 else (argv[1], argv[2])
    if not check_password(c.srv, user, pw):
        raise RespError(WRONGPASS)
    c.authed = True
    return OK


@command("hello")
def hello(c: Any, argv: list[bytes]) -> Any:
    ver = 0
    i = 1
    if len(argv) > 1:
        ver = int_arg(argv[1], "ERR Protocol version is not an integer or out of range")
        if ver < 2 or ver > 3:
            raise RespError("NOPROTO unsupported protocol version")
        i = 2
    # each option takes effect as it is read, as Redis's: an AUTH or SETNAME
    # before a bad option stays done
    while i < len(argv):
        opt = argv[i].upper()
        more = len(argv) - i - 1
        if opt == b"AUTH" and more >= 2:
            if not check_password(c.srv, argv[i + 1], argv[i + 2]):
                raise RespError(WRONGPASS)
            c.authed = True
            i += 3
        elif opt == b"SETNAME" and more >= 1:
            name = argv[i + 1]
            check_name(name)
            c.name = name or None
            i += 2
        else:
            raise RespError(f"ERR Syntax error in HELLO option '{text(argv[i])}'")
    if not c.authed:
        raise RespError(
            "NOAUTH HELLO must be called with the client already authenticated, otherwise the "
            "HELLO AUTH <user> <pass> option can be used to authenticate the client and select "
            "the RESP protocol version at the same time"
        )
    if ver:
        c.resp = ver
        c.out.resp3 = ver == 3
    return {
        b"server": b"redis",
        b"version": REDIS_COMPAT_VERSION.encode(),
        b"proto": c.resp,
        b"id": c.id,
        b"mode": b"standalone",
        b"role": b"master",
        b"modules": [],
    }


@command("reset")
def reset(c: Any, argv: list[bytes]) -> Any:
    # Redis's clearClientConnectionState
    c.discard_multi()
    c.reply_mode &= ~(REPLY_OFF | REPLY_SKIP_NEXT)  # (a SKIP of this RESET stays)
    c.db = c.ks.dbs[0]  # back to db 0 (selectDb(c, 0))
    c.srv.pubsub.forget(c)
    c.srv.tracking.disable(c)
    c.resp = 2
    c.out.resp3 = False
    c.name = None
    c.no_touch = c.no_evict = False
    c.authed = c.srv.requirepass is None
    if c.srv.monitor is not None:
        c.srv.app.monitor.client_gone(c)  # out of MONITOR mode
    return Status("RESET")
