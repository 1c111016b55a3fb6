#!/usr/bin/env python3
"""Where ConstDB's CPU goes per request: in-process timings of the protocol
path, the cost of the bare uvloop event loop, and workloads for callgrind and
py-spy.

Subcommands:

  inproc     time Client.feed() of 16-command pipelined batches (SET, GET, INCR,
             and PING/ECHO as a minimal command), hiredis alone, and a request-less
             read, in ns per request (no sockets: the transport is None)
  floor      CPU per request of a trivial uvloop protocol (one +OK per request,
             one transport.write per read) under redis-benchmark -P 16 -c 50:
             the event loop + syscall floor that any uvloop server pays
  work       a fixed workload (for callgrind / py-spy / perf): feeds N batches
  callgrind  runs `work` under valgrind --tool=callgrind, collecting only inside
             Client.feed, and prints inclusive instruction counts per request for
             the hot functions (repeatable, unlike timings)

See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

PIPE = 16
KEYSPACE = 100_000


# ------------------------------------------------------------------- set-up ---


def make_client():
    """A Keyspace/Server/Client wired like constdb.server.App, minus the network
    and the Python admin commands."""
    from constdb._core.backlog import Backlog
    from constdb._core.keyspace import Keyspace
    from constdb._core.protocol import Client, Server

    from constdb._core import (
        cmd_hashes,
        cmd_keys,
        cmd_lists,
        cmd_server,
        cmd_sets,
        cmd_strings,
        cmd_zsets,
    )

    bl = Backlog(100 * 1024 * 1024)
    ks = Keyspace(random.getrandbits(62) | (1 << 62), bl)
    srv = Server(ks)
    srv.max_exec_per_round = 16
    for mod in (cmd_strings, cmd_keys, cmd_sets, cmd_hashes, cmd_server, cmd_lists, cmd_zsets):
        mod.register(srv)
    return srv, Client(srv)


def resp(*args: bytes) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def key(i: int, prefix: bytes = b"key:") -> bytes:
    return prefix + b"%012d" % i


def batches(kind: str, nbatches: int = 512, seed: int = 1) -> list[bytes]:
    """nbatches distinct 16-command batches, keys drawn like redis-benchmark -r."""
    rnd = random.Random(seed)
    out = []
    for _ in range(nbatches):
        cmds = []
        for _ in range(PIPE):
            i = rnd.randrange(KEYSPACE)
            if kind == "set":
                cmds.append(resp(b"SET", key(i), b"xxx"))
            elif kind == "get":
                cmds.append(resp(b"GET", key(i)))
            elif kind == "incr":
                cmds.append(resp(b"INCR", key(i, b"counter:")))
            elif kind == "ping":
                cmds.append(resp(b"PING"))
            elif kind == "echo":
                cmds.append(resp(b"ECHO", key(i)))
            elif kind == "sadd":
                cmds.append(resp(b"SADD", b"myset", key(i, b"element:")))
            elif kind == "hset":
                cmds.append(resp(b"HSET", b"myhash", key(i, b"element:"), b"xxx"))
            elif kind == "mset":
                args = [b"MSET"]
                for _ in range(10):
                    args += [key(rnd.randrange(KEYSPACE)), b"xxx"]
                cmds.append(resp(*args))
            # lists and sorted sets as redis-benchmark -t sends them
            elif kind in ("lpush", "rpush"):
                cmds.append(resp(kind.upper().encode(), b"mylist", b"xxx"))
            elif kind in ("lpop", "rpop"):
                cmds.append(resp(kind.upper().encode(), b"mylist"))
            elif kind == "lrange":
                cmds.append(resp(b"LRANGE", b"benchlist", b"0", b"99"))
            elif kind == "zadd":
                # a new score for a member mostly there (as -r draws both)
                cmds.append(
                    resp(b"ZADD", b"myzset", b"%d" % rnd.randrange(KEYSPACE), key(i, b"element:"))
                )
            elif kind == "zpopmin":
                cmds.append(resp(b"ZPOPMIN", b"myzset"))
            else:
                raise ValueError(kind)
        out.append(b"".join(cmds))
    return out


def preload(client, kind: str, n: int = 0) -> None:
    """Create every key the batches touch, as a long redis-benchmark -r run has
    (steady state: SET overwrites, GET hits, INCR bumps existing counters)."""
    # through data_received (not feed) so that callgrind, which collects only
    # inside feed(), leaves the preload out
    n = n or KEYSPACE
    if kind in ("lpush", "rpush", "lpop", "rpop"):
        # a long list, pushed at both ends as the bench's LPUSH and RPUSH
        # phases leave it (pops need as many elements as they run)
        for start in range(0, max(n, 200_000), PIPE):
            cmd = b"LPUSH" if (start // PIPE) % 2 else b"RPUSH"
            client.data_received(b"".join(resp(cmd, b"mylist", b"xxx") for _ in range(PIPE)))
            client.out.reset()
        return
    if kind == "lrange":
        client.data_received(resp(b"RPUSH", b"benchlist", *([b"xxx"] * 600)))
        client.out.reset()
        return
    if kind in ("zadd", "zpopmin"):
        for start in range(0, max(n, 100_000), PIPE):
            client.data_received(
                b"".join(
                    resp(b"ZADD", b"myzset", b"%d" % i, key(i, b"element:"))
                    for i in range(start, start + PIPE)
                )
            )
            client.out.reset()
        return
    if kind in ("sadd", "hset"):
        # every member or field there: the bench's later runs overwrite them
        for start in range(0, n, PIPE):
            if kind == "sadd":
                cmds = [
                    resp(b"SADD", b"myset", key(i, b"element:")) for i in range(start, start + PIPE)
                ]
            else:
                cmds = [
                    resp(b"HSET", b"myhash", key(i, b"element:"), b"xxx")
                    for i in range(start, start + PIPE)
                ]
            client.data_received(b"".join(cmds))
            client.out.reset()
        return
    for start in range(0, n, PIPE):
        if kind == "incr":
            cmds = [resp(b"INCR", key(i, b"counter:")) for i in range(start, start + PIPE)]
        else:
            cmds = [resp(b"SET", key(i), b"xxx") for i in range(start, start + PIPE)]
        client.data_received(b"".join(cmds))
        client.out.reset()


def time_loop(fn, data: list[bytes], iters: int, repeat: int) -> tuple[float, float]:
    """Median and spread (max-min)/median of ns per request over `repeat` runs.
    Thread CPU time, not wall time: time the scheduler gave to other processes
    on a busy machine does not count (their cache pollution still does)."""
    runs = []
    nb = len(data)
    clock = time.thread_time_ns
    for _ in range(repeat):
        t0 = clock()
        for i in range(iters):
            fn(data[i % nb])
        dt = clock() - t0
        runs.append(dt / (iters * PIPE))
    m = statistics.median(runs)
    return m, (max(runs) - min(runs)) / m * 100 if m else 0.0


# ------------------------------------------------------------------- inproc ---


def cmd_inproc(args) -> int:
    import hiredis

    global KEYSPACE
    KEYSPACE = args.keyspace

    srv, c = make_client()
    preload(c, "set")
    preload(c, "incr")
    rows = []

    def row(name, fn, data, note=""):
        fn(data[0])  # warm
        ns, spread = time_loop(fn, data, args.iters, args.repeat)
        rows.append((name, ns, spread, note))
        print(f"  {name:34s} {ns:8.1f} ns/req  (+-{spread / 2:.0f}%) {note}", file=sys.stderr)
        return ns

    kinds = ["ping", "echo", "set", "get", "incr", "sadd", "hset"]
    data = {k: batches(k) for k in kinds}
    res = {}
    print(
        f"in-process, {PIPE}-command batches, {args.iters} batches x {args.repeat}:",
        file=sys.stderr,
    )

    # fixed cost of one read with no request in it (data_received -> process ->
    # flush): divided by 16 it is the per-read overhead spread over the batch
    res["empty"] = row("feed(b'') per 16", c.feed, [b""], "(one read, no request)")
    for k in kinds:
        res[k] = row(f"feed {k.upper()} batch", c.feed, data[k])

    # hiredis alone on the same bytes (what builds argv up to 1a18fcd)
    r = hiredis.Reader()
    gets = r.gets

    def hiredis_only(b):
        r.feed(b)
        for _ in range(PIPE):
            gets()

    for k in ("set", "get", "incr"):
        res["hiredis_" + k] = row(f"hiredis feed+gets {k.upper()}", hiredis_only, data[k])

    # the Python-side cost of making a bytes object of the batch (process() copies
    # the framed run into a new bytes for hiredis.Reader.feed)
    res["bytes_copy"] = row("bytes(batch) copy", bytes, [bytearray(x) for x in data["set"]])

    # a Python call of a C method with one argument (what each gets() is)
    res["c_call"] = row("16x len(x) calls", lambda b: [len(b) for _ in range(PIPE)], data["set"])

    ks = ("ping", "set", "get", "incr")
    per_read = res["empty"]
    base = res["ping"] - per_read

    def line(name, vals):
        print(f"| {name} | " + " | ".join(f"{v:.0f}" for v in vals) + " |")

    print()
    print(
        f"| stage (ns per request, in-process, {KEYSPACE:,d} keys, thread CPU time)"
        " | PING | SET | GET | INCR |"
    )
    print("|---|---:|---:|---:|---:|")
    line("total Client.feed()", [res[k] for k in ks])
    line("per-read fixed cost / 16 (feed of b'')", [per_read] * 4)
    line("framing + argv + dispatch + call + reply of PING", [base] * 4)
    line("the command's own work beyond PING", [0] + [res[k] - per_read - base for k in ks[1:]])
    print()
    print(
        f"ECHO (2 args, bulk reply, no keyspace) {res['echo']:.0f} ns/req;"
        f" SADD {res['sadd']:.0f}; HSET {res['hset']:.0f};"
        f" hiredis feed+gets alone SET {res['hiredis_set']:.0f}, GET {res['hiredis_get']:.0f};"
        f" bytes() copy of a batch /16 {res['bytes_copy']:.0f};"
        f" 16 calls of a C function /16 {res['c_call']:.0f}"
    )
    return 0


# -------------------------------------------------------------------- floor ---


class _Floor(asyncio.Protocol):
    """One +OK per request (a request = one '*' at the start of a RESP array;
    the benchmark's keys and values hold no '*')."""

    def connection_made(self, transport):
        self.t = transport

    def data_received(self, data):
        n = data.count(b"*")
        if n:
            self.t.write(b"+OK\r\n" * n)


def cmd_floor_server(args) -> int:
    import uvloop

    async def main():
        loop = asyncio.get_running_loop()
        server = await loop.create_server(_Floor, "127.0.0.1", args.port, backlog=1024)
        stop = loop.create_future()
        loop.add_signal_handler(signal.SIGTERM, stop.set_result, None)
        print("ready", flush=True)
        await stop
        server.close()

    uvloop.run(main()) if hasattr(uvloop, "run") else (uvloop.install(), asyncio.run(main()))
    return 0


def cmd_floor(args) -> int:
    """Run the trivial uvloop server and measure its CPU per request."""
    import bench_vs_redis as bvr

    port = bvr.free_port()
    p = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), "floor-server", "--port", str(port)],
        stdout=subprocess.PIPE,
    )
    bvr._children.append(p)
    try:
        assert p.stdout is not None
        p.stdout.readline()

        class _S:
            name = "uvloop-floor"

        s = _S()
        s.port = port
        s.pid = p.pid
        ns = argparse.Namespace(clients=50, keyspace=100_000, timeout=300)
        out = []
        for test in args.tests.split(","):
            for pl in (int(x) for x in args.pipelines.split(",")):
                vals = [
                    bvr.run_benchmark(s, test, pl, args.requests * pl, ns)
                    for _ in range(args.repeat)
                ]

                def med(attr, vals=vals):
                    return statistics.median(getattr(v, attr) for v in vals)

                cpus = [v.cpu_us for v in vals]
                spread = (max(cpus) - min(cpus)) / med("cpu_us") * 100
                out.append((test, pl, med("rps"), med("cpu_us"), med("user_us"), med("sys_us")))
                print(
                    f"  floor {test:5s} -P {pl:<2d} {med('rps'):>12,.0f} req/s"
                    f" {med('cpu_us'):6.2f} us/req (spread {spread:.0f}%)",
                    file=sys.stderr,
                )
        print("| test | pipeline | uvloop floor req/s | CPU us/req | user | system |")
        print("|---|---:|---:|---:|---:|---:|")
        for test, pl, rps, cpu, user, sys_ in out:
            print(f"| {test.upper()} | {pl} | {rps:,.0f} | {cpu:.2f} | {user:.2f} | {sys_:.2f} |")
    finally:
        bvr.stop_proc(p)
    return 0


# --------------------------------------------------------------------- work ---


def cmd_work(args) -> int:
    global KEYSPACE, PIPE
    KEYSPACE = args.keyspace
    PIPE = args.pipe
    srv, c = make_client()
    preload(c, args.cmd)
    # ZADD: a batch sent again would mostly find its members at the scores it
    # gives them (no change, no effect): as many batches as are fed, so that
    # each request writes a new score, as redis-benchmark's random ones do
    data = batches(args.cmd, max(512, args.iters) if args.cmd == "zadd" else 512)
    feed = c.feed
    nb = len(data)
    for i in range(args.iters):
        feed(data[i % nb])
    return 0


# ---------------------------------------------------------------- callgrind ---


def _fn(name: str) -> str:
    """Bare function name of a callgrind_annotate row ("file:fn [obj]")."""
    fn = name.split(" [")[0]
    return fn.split(":", 1)[1] if ":" in fn else fn


def _annotate(ann: str, out: str, inclusive: bool, event: str = "Ir") -> dict:
    """function -> count of event. One function shows up once per source file
    its inlined code came from: inclusive takes the largest row, self sums them."""
    argv = [ann, "--threshold=100", "--auto=no", f"--show={event}", f"--sort={event}"]
    argv += ["--inclusive=yes"] if inclusive else []
    text = subprocess.run(argv + [out], capture_output=True, text=True).stdout
    res: dict = {}
    for line in text.splitlines():
        m = re.match(r"\s*([\d,]+)\s+\(\s*[\d.]+%\)\s+(\S.*?)\s*$", line)
        if not m or "PROGRAM TOTALS" in line:
            continue
        ir = int(m.group(1).replace(",", ""))
        fn = _fn(m.group(2))
        res[fn] = max(res.get(fn, 0), ir) if inclusive else res.get(fn, 0) + ir
    m = re.search(r"([\d,]+)\s+\(100\.0+%\)\s+PROGRAM TOTALS", text)
    res["TOTAL"] = int(m.group(1).replace(",", "")) if m else 0
    return res


PYX = "__pyx_f_7constdb_5_core_"


def _get(d: dict, *suffixes: str) -> int:
    """Largest inclusive cost among functions ending in any of suffixes."""
    return max([v for k, v in d.items() if any(k.endswith(s) for s in suffixes)] or [0])


def _sum(d: dict, *suffixes: str) -> int:
    return sum(v for k, v in d.items() if any(k.endswith(s) for s in suffixes))


HANDLERS = {
    "set": ("cmd_strings_cmd_set",),
    "get": ("cmd_strings_cmd_get",),
    "incr": ("cmd_strings__incr", "cmd_strings_cmd_incr"),
    "ping": ("cmd_server_cmd_ping",),
    "echo": ("cmd_server_cmd_echo",),
    "sadd": ("cmd_sets_cmd_sadd",),
    "hset": ("cmd_hashes_cmd_hset",),
    "mset": ("cmd_strings_cmd_mset",),
    "lpush": ("cmd_lists_cmd_lpush",),
    "rpush": ("cmd_lists_cmd_rpush",),
    "lpop": ("cmd_lists_cmd_lpop",),
    "rpop": ("cmd_lists_cmd_rpop",),
    "lrange": ("cmd_lists_cmd_lrange",),
    "zadd": ("cmd_zsets_cmd_zadd",),
    "zpopmin": ("cmd_zsets_cmd_zpopmin",),
}


def stages(inc: dict, cmd: str, nreq: int) -> list[tuple[str, float]]:
    """Split the Ir of feed() into the stages of a request, per request."""
    total = inc["TOTAL"]
    # argv building: hiredis (up to 1a18fcd) or the scanner's own _argv (fd4c0e4 on)
    rfeed = _get(inc, "Reader_feed")
    # one pass (_fast_argv: framing, argv and the command cache) when the
    # request is plain and whole; else _scan frames it and _argv cuts argv
    gets = (
        _get(inc, "Reader_gets")
        + _get(inc, "Client__argv")
        + _get(inc, "Client__fast_argv")
        + _get(inc, "Client__fill")
    )
    scan = _get(inc, "Client__scan")
    # execute (a name lookup) or run_cmd (the command known from the cache)
    exe = max(_get(inc, "Client_execute"), _get(inc, "Client_run_cmd"))
    call = _get(inc, "Client_call")
    handler = _get(inc, *HANDLERS[cmd])
    emit = _sum(
        inc,
        *(f"Keyspace_emit_{x}" for x in ("reg_at", "cnt", "sadd", "hset", "ttl", "del", "mv")),
    ) or _sum(inc, "Keyspace_emit_reg")
    # the types' own emit functions (t_*.pyx), called by the handlers
    emit = emit or _sum(
        inc, "t_string_emit_reg_at", "t_string_emit_cnt", "t_set_emit_sadd", "t_hash_emit_hset_at"
    )
    if cmd == "zadd":
        # a member's new score (emit_zscore) or a new member (emit_zadd)
        emit = _sum(inc, "t_zset_emit_zscore", "t_zset_emit_zadd")
    bl_calls = _sum(
        inc,
        "Backlog_reserve",
        "Backlog_begin",
        "Backlog_end",
        "Writer_put_bytes",
        "Writer_put_varint",
        "Writer_put_i64",
        "Writer_put_u64",
    )
    if cmd == "zadd":
        # the record written in one go (_write_zadd), inside the effect
        bl_calls = _sum(inc, "t_zset__write_zadd")
    # put_u8 is used by the backlog only in these paths; WBuf replies use put_raw
    bl_calls += _get(inc, "Writer_put_u8") if emit else 0
    group = _sum(inc, "Backlog_group_begin", "Backlog_group_end")
    reply_in_cmd = _sum(
        inc,
        "WBuf_ok",
        "WBuf_bulk",
        "WBuf_nil",
        "WBuf_integer",
        "WBuf_bulk_int",
        "WBuf_status",
        "WBuf_header",
    )
    if cmd == "ping":
        reply_in_cmd = handler  # PING's reply is its whole body
    flush = _get(inc, "Client_flush")
    lookup = _get(inc, "Keyspace_lookup_r", "Keyspace_lookup") if cmd not in ("ping", "echo") else 0
    rows = [
        ("framing (_scan)", scan),
        ("argv list + bytes (_fill, or _argv, or hiredis feed+gets)", rfeed + gets),
        (
            "read loop rest (data_received/process, input copy, argv dealloc)",
            total - rfeed - gets - scan - exe - flush,
        ),
        ("dispatch (execute: lookup_command, checks)", exe - call),
        ("call wrapper (counters, try/finally)", call - handler - group),
        ("command: keyspace lookup", lookup),
        ("command: rest of handler", handler - emit - reply_in_cmd - lookup),
        ("effect: apply (tick, find, _*_on, touched, settle)", emit - bl_calls),
        ("effect: record (backlog begin/put/end, group)", bl_calls + group),
        ("reply (WBuf encode + take)", reply_in_cmd + flush),
    ]
    rows.append(("total feed()", total))
    return [(name, ir / nreq) for name, ir in rows]


# a last-level cache the size of a busy machine's share of the L3 (the real
# 32 MiB L3 is shared with other VMs and processes)
LL_SIM = "--LL=4194304,16,64"


def callgrind_argv(out: str) -> list[str]:
    """valgrind's command line, counting only inside Client.feed, into out."""
    vg = shutil.which("valgrind")
    if not vg or not shutil.which("callgrind_annotate"):
        sys.exit("needs valgrind and callgrind_annotate")
    return [
        vg,
        "--tool=callgrind",
        f"--callgrind-out-file={out}",
        "--collect-atstart=no",
        "--toggle-collect=*Client_*feed",
    ]


def run_callgrind(
    cmd: str, iters: int, keep: bool, cache: bool, keyspace: int, pipe: int = 16
) -> dict:
    tmp = tempfile.mkdtemp(prefix="cg-")
    out = os.path.join(tmp, "cg.out")
    argv = callgrind_argv(out)
    ann = shutil.which("callgrind_annotate")
    if cache:
        argv += ["--cache-sim=yes", LL_SIM]
    argv += [
        sys.executable,
        os.path.abspath(__file__),
        "work",
        "--cmd",
        cmd,
        "--iters",
        str(iters),
        "--keyspace",
        str(keyspace),
        "--pipe",
        str(pipe),
    ]
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    res = {"nreq": iters * pipe, "Ir": (_annotate(ann, out, True), _annotate(ann, out, False))}
    if cache:
        for ev in ("DLmr", "DLmw"):
            res[ev] = (_annotate(ann, out, True, ev), _annotate(ann, out, False, ev))
        # one figure: last-level data misses (reads + writes)
        inc: dict = {}
        exc: dict = {}
        for ev in ("DLmr", "DLmw"):
            for k, v in res[ev][0].items():
                inc[k] = inc.get(k, 0) + v
            for k, v in res[ev][1].items():
                exc[k] = exc.get(k, 0) + v
        res["LLmiss"] = (inc, exc)
    if keep:
        print(f"callgrind output kept in {out}", file=sys.stderr)
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return res


def _print_stages(results: dict, cmds: list[str], event: str, title: str, fmt: str) -> None:
    print(title)
    print()
    print("| stage | " + " | ".join(c.upper() for c in cmds) + " |")
    print("|---|" + "---:|" * len(cmds))
    table = {c: stages(results[c][event][0], c, results[c]["nreq"]) for c in cmds}
    for i, (name, _) in enumerate(table[cmds[0]]):
        print(f"| {name} | " + " | ".join(format(table[c][i][1], fmt) for c in cmds) + " |")
    print()


def _print_top(results: dict, cmd: str, event: str, top: int, fmt: str) -> None:
    exc = results[cmd][event][1]
    nreq = results[cmd]["nreq"]
    print(f"{cmd.upper()}: top self {event} per request")
    print()
    print(f"| function | self {event}/req |")
    print("|---|---:|")
    rows = sorted(((v, k) for k, v in exc.items() if k != "TOTAL"), reverse=True)
    for v, fn in rows[:top]:
        short = fn.replace(PYX, "").replace("__pyx_pw_7constdb_5_core_", "")
        print(f"| {short} | {format(v / nreq, fmt)} |")
    print()


ZADD_PARTS = [
    ("score parsing (parse_score)", lambda inc: _sum(inc, "t_zset_parse_score")),
    # (rescore calls insert when the node moves: inclusive, so not summed with it)
    (
        "skip list (ZIndex.rescore, or delete + insert)",
        lambda inc: _get(inc, "ZIndex_rescore") or _sum(inc, "ZIndex_insert", "ZIndex_delete"),
    ),
    (
        "dict lookups (PyDict_GetItem and ...WithError: key, member)",
        lambda inc: _sum(inc, "PyDict_GetItem", "PyDict_GetItemWithError"),
    ),
    (
        "memory estimate (_mem_update in touched/settle)",
        lambda inc: _sum(inc, "keyspace__mem_update"),
    ),
    ("Keyspace.touched (memory estimate included)", lambda inc: _get(inc, "Keyspace_touched")),
    (
        "record (_write_zadd / _write_zw)",
        lambda inc: _sum(inc, "t_zset__write_zadd", "t_zset__write_zw"),
    ),
    ("keyspace lookup (lookup_as)", lambda inc: _get(inc, "Keyspace_lookup_as")),
    ("reply (WBuf_integer)", lambda inc: _get(inc, "WBuf_integer")),
    ("whole handler (cmd_zadd)", lambda inc: _get(inc, "cmd_zsets_cmd_zadd")),
]


def _print_zadd_parts(res: dict) -> None:
    """ZADD's own stages (inclusive Ir per request of the functions named;
    the parts overlap: touched holds the memory estimate, the handler all)."""
    inc, nreq = res["Ir"][0], res["nreq"]
    print("ZADD: parts of the handler (inclusive Ir per request)")
    print()
    print("| part | Ir/req |")
    print("|---|---:|")
    for name, fn in ZADD_PARTS:
        print(f"| {name} | {fn(inc) / nreq:,.0f} |")
    print()


def cmd_callgrind(args) -> int:
    global PIPE
    PIPE = args.pipe
    cmds = [c.strip() for c in args.cmd.split(",")]
    results = {}
    for cmd in cmds:
        print(f"callgrind: {cmd.upper()} x {args.iters} batches ...", file=sys.stderr)
        results[cmd] = run_callgrind(
            cmd, args.iters, args.keep, args.cache_sim, args.keyspace, args.pipe
        )
    _print_stages(
        results,
        cmds,
        "Ir",
        f"Instructions (Ir) per request inside Client.feed, {PIPE}-command batches,"
        f" {args.keyspace:,d} keys",
        ",.0f",
    )
    if args.cache_sim:
        _print_stages(
            results,
            cmds,
            "LLmiss",
            f"Last-level data cache misses per request (simulated {LL_SIM[5:]})",
            ".2f",
        )
    if "zadd" in cmds:
        _print_zadd_parts(results["zadd"])
    for cmd in cmds:
        _print_top(results, cmd, "Ir", args.top, ",.0f")
        if args.cache_sim:
            _print_top(results, cmd, "LLmiss", min(args.top, 12), ".2f")
    return 0


# --------------------------------------------------------------------- main ---


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="sub", required=True)
    p = sub.add_parser("inproc", help="time the protocol path in-process")
    p.add_argument("--iters", type=int, default=20_000, help="batches per run (%(default)s)")
    p.add_argument("--repeat", type=int, default=5, help="runs, median reported (%(default)s)")
    p.add_argument("--keyspace", type=int, default=KEYSPACE, help="distinct keys (%(default)s)")
    p = sub.add_parser("floor", help="CPU/req of a trivial uvloop server under redis-benchmark")
    p.add_argument("--tests", default="set,get,incr")
    p.add_argument("--pipelines", default="16")
    p.add_argument("--requests", type=int, default=150_000, help="x pipeline = -n")
    p.add_argument("--repeat", type=int, default=3)
    p = sub.add_parser("floor-server", help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, required=True)
    p = sub.add_parser("work", help="fixed workload (for callgrind, py-spy, perf)")
    p.add_argument("--cmd", default="set")
    p.add_argument("--iters", type=int, default=2000)
    p.add_argument("--keyspace", type=int, default=KEYSPACE)
    p.add_argument("--pipe", type=int, default=PIPE, help="requests per read (%(default)s)")
    p = sub.add_parser("callgrind", help="instruction counts per request under callgrind")
    p.add_argument("--cmd", default="set")
    p.add_argument("--iters", type=int, default=2000)
    p.add_argument("--top", type=int, default=30)
    p.add_argument("--keep", action="store_true")
    p.add_argument("--keyspace", type=int, default=KEYSPACE)
    p.add_argument(
        "--cache-sim", action="store_true", help="also count last-level cache misses (slower)"
    )
    p.add_argument("--pipe", type=int, default=PIPE, help="requests per read (%(default)s)")
    args = ap.parse_args(argv)
    return {
        "inproc": cmd_inproc,
        "floor": cmd_floor,
        "floor-server": cmd_floor_server,
        "work": cmd_work,
        "callgrind": cmd_callgrind,
    }[args.sub](args)


if __name__ == "__main__":
    sys.exit(main())
