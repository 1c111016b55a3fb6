"""CLIENT and its subcommands: this node's client connections."""

from __future__ import annotations

import time
from typing import Any

from constdb._core.codec import RespError, Status, Verbatim
from constdb._core.protocol import NO_REPLY
from constdb.commands import command
from constdb.commands.common import OK, SYNTAX, check_name, int_arg, text


@command("client")
def client(c: Any, argv: list[bytes]) -> Any:
    # a container named alone: never reached, its arity (-2) refuses that first
    raise RespError("ERR wrong number of arguments for 'client' command")


@command("client|id")
def client_id(c: Any, argv: list[bytes]) -> Any:
    return c.id


@command("client|getname")
def client_getname(c: Any, argv: list[bytes]) -> Any:
    return c.name


@command("client|info")
def client_info(c: Any, argv: list[bytes]) -> Any:
    return Verbatim((client_line(c) + "\n").encode())


def client_line(c: Any) -> str:
    """One line of CLIENT LIST / CLIENT INFO, with Redis's fields."""
    now = time.time()
    flags = ""
    if c.srv.monitor is not None and c in c.srv.app.monitor.clients:
        flags += "O"
    if c.in_multi:
        flags += "x"
    if c.blocked:
        flags += "b"
    if c.cas_dirty:
        flags += "d"
    if c.closing:
        flags += "c"
    flags = flags or "N"
    events = "rw" if c.obuf else "r"
    return (
        f"id={c.id} addr={c.addr} laddr={c.laddr} fd={c.fd} "
        f"name={text(c.name or b'')} age={int(now - c.ctime)} "
        f"idle={int(max(0, now - c.last_interaction))} flags={flags} db=0 sub=0 psub=0 ssub=0 "
        f"multi={c.multi_count} qbuf={c.qbuf} qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 "
        f"obl={c.obuf} oll=0 omem=0 tot-mem=0 events={events} cmd={text(c.last_cmd_name)} "
        f"user=default redir=-1 resp={c.resp} "
        f"lib-name={text(c.lib_name or b'')} lib-ver={text(c.lib_ver or b'')}"
    )


def client_type(t: bytes) -> bytes:
    t = t.lower()
    if t not in (b"normal", b"master", b"replica", b"slave", b"pubsub"):
        raise RespError(f"ERR Unknown client type '{text(t)}'")
    return b"replica" if t == b"slave" else t


@command("client|setname")
def client_setname(c: Any, argv: list[bytes]) -> Any:
    check_name(argv[2])
    c.name = argv[2] or None
    return OK


@command("client|setinfo")
def client_setinfo(c: Any, argv: list[bytes]) -> Any:
    attr = argv[2].lower()
    val = argv[3]
    if attr not in (b"lib-name", b"lib-ver"):
        raise RespError(f"ERR Unrecognized option '{text(argv[2])}'")
    if any(ch < 33 or ch > 126 for ch in val):
        raise RespError(
            f"ERR {text(argv[2])} cannot contain spaces, newlines or special characters."
        )
    if attr == b"lib-name":
        c.lib_name = val or None
    else:
        c.lib_ver = val or None
    return OK


@command("client|list")
def client_list(c: Any, argv: list[bytes]) -> Any:
    clients = sorted(c.srv.clients.values(), key=lambda x: x.id)
    if len(argv) == 4 and argv[2].lower() == b"type":
        if client_type(argv[3]) != b"normal":
            clients = []
    elif len(argv) > 3 and argv[2].lower() == b"id":
        chosen = []
        for a in argv[3:]:
            cid = int_arg(a, "ERR Invalid client ID")
            x = c.srv.clients.get(cid)
            if x is not None:
                chosen.append(x)
        clients = chosen
    elif len(argv) != 2:
        raise RespError(SYNTAX)
    return Verbatim("".join(client_line(x) + "\n" for x in clients).encode())


@command("client|kill")
def client_kill(c: Any, argv: list[bytes]) -> Any:
    addr = laddr = None
    ctype = None
    cid = 0
    skipme = True
    if len(argv) == 3:
        addr = text(argv[2])
        skipme = False
    else:
        i = 2
        while i < len(argv):
            opt = argv[i].lower()
            more = i + 1 < len(argv)
            if opt == b"id" and more:
                cid = int_arg(argv[i + 1], "ERR client-id should be greater than 0")
                if cid < 1:
                    raise RespError("ERR client-id should be greater than 0")
            elif opt == b"type" and more:
                ctype = client_type(argv[i + 1])
            elif opt == b"addr" and more:
                addr = text(argv[i + 1])
            elif opt == b"laddr" and more:
                laddr = text(argv[i + 1])
            elif opt == b"user" and more:
                if argv[i + 1] != b"default":
                    raise RespError(f"ERR No such user '{text(argv[i + 1])}'")
            elif opt == b"skipme" and more:
                v = argv[i + 1].lower()
                if v not in (b"yes", b"no"):
                    raise RespError(SYNTAX)
                skipme = v == b"yes"
            else:
                raise RespError(SYNTAX)
            i += 2
    killed = 0
    close_self = False
    for x in sorted(c.srv.clients.values(), key=lambda x: x.id):
        if addr is not None and x.addr != addr:
            continue
        if laddr is not None and x.laddr != laddr:
            continue
        if ctype is not None and ctype != b"normal":
            continue
        if cid and x.id != cid:
            continue
        if x is c and skipme:
            continue
        if x is c:
            close_self = True
        else:
            x.close()
        killed += 1
    if len(argv) == 3:
        if not killed:
            raise RespError("ERR No such client")
        reply: Any = OK
    else:
        reply = killed
    if close_self:
        c.write_reply(reply)
        c.close_after_reply()
        return NO_REPLY
    return reply


@command("client|no-evict")
def client_no_evict(c: Any, argv: list[bytes]) -> Any:
    if argv[2].lower() not in (b"on", b"off"):
        raise RespError(SYNTAX)
    return OK


CLIENT_HELP = [
    "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "GETNAME",
    "    Return the name of the current connection.",
    "ID",
    "    Return the ID of the current connection.",
    "INFO",
    "    Return information about the current client connection.",
    "KILL <ip:port>",
    "    Kill connection made from <ip:port>.",
    "KILL <option> <value> [<option> <value> [...]]",
    "    Kill connections. Options are:",
    "    * ADDR (<ip:port>|<unixsocket>:0)",
    "      Kill connections made from the specified address",
    "    * LADDR (<ip:port>|<unixsocket>:0)",
    "      Kill connections made to specified local address",
    "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
    "      Kill connections by type.",
    "    * USER <username>",
    "      Kill connections authenticated by <username>.",
    "    * SKIPME (YES|NO)",
    "      Skip killing current connection (default: yes).",
    "LIST [options ...]",
    "    Return information about client connections. Options:",
    "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
    "      Return clients of specified type.",
    "SETNAME <name>",
    "    Assign the name <name> to the current connection.",
    "SETINFO <option> <value>",
    "    Set client meta attr. Options are:",
    "    * LIB-NAME: the client lib name.",
    "    * LIB-VER: the client lib version.",
    "NO-EVICT (ON|OFF)",
    "    Protect current client connection from eviction.",
    "HELP",
    "    Prints this help.",
]


@command("client|help")
def client_help(c: Any, argv: list[bytes]) -> Any:
    return [Status(x) for x in CLIENT_HELP]
