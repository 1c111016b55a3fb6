"""CLIENT and its subcommands: this node's client connections."""

from __future__ import annotations

import time
from typing import Any

from constdb._core.codec import OrderedSet, RespError, Status, Verbatim
from constdb._core.protocol import NO_REPLY, REPLY_OFF, REPLY_SKIP, REPLY_SKIP_NEXT
from constdb.commands import command
from constdb.commands.common import OK, SYNTAX, check_name, int_arg, text
from constdb.tracking import parse_tracking


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
    return Verbatim((client_line(c, argv) + "\n").encode())


def client_line(c: Any, argv: list[bytes] | None = None) -> str:
    """One line of CLIENT LIST / CLIENT INFO, with Redis's fields; argv: the
    command running, when c is the client that sent it (Redis counts its
    bytes in that client's qbuf and argv-mem)."""
    now = time.time()
    flags = ""  # Redis 7.2's order: O P x b t R B d c e T
    if c.srv.monitor is not None and c in c.srv.app.monitor.clients:
        flags += "O"
    if c.subs is not None:
        flags += "P"
    if c.in_multi:
        flags += "x"
    if c.blocked:
        flags += "b"
    t = c.track
    if t is not None:
        flags += "t" + ("R" if t.broken else "") + ("B" if t.bcast else "")
    if c.cas_dirty:
        flags += "d"
    if c.closing:
        flags += "c"
    if c.no_evict:
        flags += "e"
    if c.no_touch:
        flags += "T"
    flags = flags or "N"
    subs = c.subs
    nsub, npsub, nssub = (
        (len(subs.channels), len(subs.patterns), len(subs.shard)) if subs is not None else (0, 0, 0)
    )
    events = "rw" if c.obuf else "r"
    qfree, argvmem, multimem, omem, totmem = c.mem
    qbuf = c.qbuf
    if argv is not None:
        qbuf = c.qbuf_running
        argvmem = sum(len(a) for a in argv)
    return (
        f"id={c.id} addr={c.addr} laddr={c.laddr} fd={c.fd} "
        f"name={text(c.name or b'')} age={int(now - c.ctime)} "
        f"idle={int(max(0, now - c.last_interaction))} flags={flags} db={c.db.index} sub={nsub} psub={npsub} ssub={nssub} "
        f"multi={c.multi_count} qbuf={qbuf} qbuf-free={qfree} argv-mem={argvmem}"
        f" multi-mem={multimem} rbs=0 rbp=0 obl={c.obuf} oll=0 omem={omem} tot-mem={totmem}"
        f" events={events} cmd={text(c.last_cmd_name)} "
        f"user=default redir={-1 if t is None else t.redirect} resp={c.resp} "
        f"lib-name={text(c.lib_name or b'')} lib-ver={text(c.lib_ver or b'')}"
    )


def type_of(c: Any) -> bytes:
    """Redis's client type of a connection: pubsub while it has a subscription."""
    return b"pubsub" if c.subs is not None else b"normal"


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
        want = client_type(argv[3])
        clients = [x for x in clients if type_of(x) == want]
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
    return Verbatim(
        "".join(client_line(x, argv if x is c else None) + "\n" for x in clients).encode()
    )


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
        if ctype is not None and ctype != type_of(x):
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


def _on_off(argv: list[bytes]) -> bool:
    v = argv[2].lower()
    if v not in (b"on", b"off"):
        raise RespError(SYNTAX)
    return v == b"on"


@command("client|no-evict")
def client_no_evict(c: Any, argv: list[bytes]) -> Any:
    # ConstDB never evicts clients (no maxmemory-clients): the flag is shown
    c.no_evict = _on_off(argv)
    return OK


@command("client|no-touch")
def client_no_touch(c: Any, argv: list[bytes]) -> Any:
    # Redis 7.2: this client's commands, TOUCH excepted, leave the keys'
    # LRU/LFU access times alone (Client.call sets Keyspace.no_touch)
    c.no_touch = _on_off(argv)
    return OK


CLIENT_HELP = [
    # Redis 7.0.15's text (SETINFO and NO-TOUCH, which it lacks, work but are
    # not listed: the reply is byte for byte Redis's)
    "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CACHING (YES|NO)",
    "    Enable/disable tracking of the keys for next command in OPTIN/OPTOUT modes.",
    "GETREDIR",
    "    Return the client ID we are redirecting to when tracking is enabled.",
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
    "UNPAUSE",
    "    Stop the current client pause, resuming traffic.",
    "PAUSE <timeout> [WRITE|ALL]",
    "    Suspend all, or just write, clients for <timeout> milliseconds.",
    "REPLY (ON|OFF|SKIP)",
    "    Control the replies sent to the current connection.",
    "SETNAME <name>",
    "    Assign the name <name> to the current connection.",
    "UNBLOCK <clientid> [TIMEOUT|ERROR]",
    "    Unblock the specified blocked client.",
    "TRACKING (ON|OFF) [REDIRECT <id>] [BCAST] [PREFIX <prefix> [...]]",
    "         [OPTIN] [OPTOUT] [NOLOOP]",
    "    Control server assisted client side caching.",
    "TRACKINGINFO",
    "    Report tracking status for the current connection.",
    "NO-EVICT (ON|OFF)",
    "    Protect current client connection from eviction.",
    "HELP",
    "    Prints this help.",
]


@command("client|reply")
def client_reply(c: Any, argv: list[bytes]) -> Any:
    # as Redis's client flags: ON keeps a SKIP asked earlier in the same
    # request (a MULTI's queue), which silences the request after it
    mode = argv[2].lower()
    if mode == b"on":
        c.reply_mode &= ~(REPLY_OFF | REPLY_SKIP)
        return OK
    if mode == b"off":
        c.reply_mode |= REPLY_OFF
        return NO_REPLY
    if mode == b"skip":
        if not c.reply_mode & REPLY_OFF:
            c.reply_mode |= REPLY_SKIP_NEXT
        return NO_REPLY
    raise RespError(SYNTAX)


@command("client|tracking")
def client_tracking(c: Any, argv: list[bytes]) -> Any:
    t = parse_tracking(c, argv)
    tr = c.srv.tracking
    if t is None:
        tr.disable(c)
    else:
        tr.enable(c, t)
    return OK


@command("client|caching")
def client_caching(c: Any, argv: list[bytes]) -> Any:
    t = c.track
    if t is None:
        raise RespError(
            "ERR CLIENT CACHING can be called only when the client is in tracking mode"
            " with OPTIN or OPTOUT mode enabled"
        )
    v = argv[2].lower()
    if v == b"yes":
        if not t.optin:
            raise RespError(
                "ERR CLIENT CACHING YES is only valid when tracking is enabled in OPTIN mode."
            )
        t.caching = True
    elif v == b"no":
        if not t.optout:
            raise RespError(
                "ERR CLIENT CACHING NO is only valid when tracking is enabled in OPTOUT mode."
            )
        t.caching = False
    else:
        raise RespError(SYNTAX)
    return OK


@command("client|getredir")
def client_getredir(c: Any, argv: list[bytes]) -> Any:
    t = c.track
    return -1 if t is None else t.redirect


@command("client|trackinginfo")
def client_trackinginfo(c: Any, argv: list[bytes]) -> Any:
    t = c.track
    if t is None:
        flags = [b"off"]
        redir = -1
        prefixes: list[bytes] = []
    else:
        flags = [b"on"]
        if t.bcast:
            flags.append(b"bcast")
        if t.optin:
            flags.append(b"optin")
            if t.caching is True:
                flags.append(b"caching-yes")
        if t.optout:
            flags.append(b"optout")
            if t.caching is False:
                flags.append(b"caching-no")
        if t.noloop:
            flags.append(b"noloop")
        if t.broken:
            flags.append(b"broken_redirect")
        redir = t.redirect
        prefixes = list(t.prefixes)
    return {b"flags": OrderedSet(flags), b"redirect": redir, b"prefixes": prefixes}


@command("client|help")
def client_help(c: Any, argv: list[bytes]) -> Any:
    return [Status(x) for x in CLIENT_HELP]
