#!/usr/bin/env python3
"""The client port's TLS layer alone, its two paths side by side, in-process.

`TLSConn` (constdb/_core/tlsconn.pyx) is driven without sockets: a client
`SSLObject` over memory BIOs does the handshake with it, then encrypts N
requests ahead of time (one record each: a redis-benchmark GET at -P 1, or
16 of them at -P 16). The timed part is the server side only: each record
goes to `TLSConn.data_received`, whose Client stand-in answers with a reply
of GET's size that `TLSConn.write` encrypts and hands to a stand-in
transport. The figure is process CPU time per record, minimum of --repeat
runs, for the native path (OpenSSL called directly) and the Python-level
path (CONSTDB_TLS_PYTHON=1), each run in its own process, alternating. No
network and no event loop: what is left is exactly the layer's own cost, so
the comparison holds on a busy machine where redis-benchmark runs do not.
"""

from __future__ import annotations

import argparse
import json
import os
import ssl
import subprocess
import sys
import tempfile
import time

from bench_tls import make_pki

GET = b"*2\r\n$3\r\nGET\r\n$16\r\nkey:000000012345\r\n"
REPLY = b"$3\r\nxxx\r\n"


class Raw:
    """The TCP transport's stand-in: counts what would be sent."""

    def __init__(self) -> None:
        self.out: list[bytes] = []
        self.keep = True

    def write(self, data: bytes) -> None:
        if self.keep:
            self.out.append(data)

    def take(self) -> bytes:
        data = b"".join(self.out)
        self.out.clear()
        return data

    def get_extra_info(self, name, default=None):
        return default

    def close(self) -> None:
        pass

    abort = close


class App:
    """The Client's stand-in: one reply per request in what it receives."""

    def __init__(self, per_read: int):
        self.reply = REPLY * per_read
        self.conn = None

    def connection_made(self, conn) -> None:
        self.conn = conn

    def data_received(self, data: bytes) -> None:
        self.conn.write(self.reply)

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc) -> None:
        pass


def one_run(pki: dict[str, str], pipeline: int, n: int) -> dict:
    from constdb._core.tlsconn import TLSConn, native_path

    sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    sctx.load_cert_chain(pki["cert"], pki["key"])
    sctx.load_verify_locations(pki["ca"])
    sctx.verify_mode = ssl.CERT_REQUIRED
    cctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    cctx.load_verify_locations(pki["ca"])
    cctx.load_cert_chain(pki["cert"], pki["key"])
    raw = Raw()
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = cctx.wrap_bio(inc, out, server_hostname="127.0.0.1")

    class Loop:  # call_later for the handshake timer
        def call_later(self, *a):
            class T:
                def cancel(self):
                    pass

            return T()

    conn = TLSConn(sctx, lambda: App(pipeline), Loop())
    conn.connection_made(raw)
    for _ in range(10):
        try:
            client.do_handshake()
            break
        except ssl.SSLWantReadError:
            conn.data_received(out.read())
            inc.write(raw.take())
    conn.data_received(out.read())  # the client's Finished
    inc.write(raw.take())
    client.write(GET)  # a first request checks the reply decrypts
    conn.data_received(out.read())
    inc.write(raw.take())
    assert client.read(1024) == REPLY * pipeline, "the layer did not answer"
    records = []
    for _ in range(n):
        client.write(GET * pipeline)
        records.append(out.read())
    raw.keep = False
    feed = conn.data_received
    t0 = time.process_time()
    for rec in records:
        feed(rec)
    dt = time.process_time() - t0
    return {"native": native_path(), "us": dt / n * 1e6}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=100_000, help="records per run")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--one", help=argparse.SUPPRESS)  # internal: one run, JSON out
    args = ap.parse_args()
    if args.one:
        pki, pipeline = json.loads(args.one)
        print(json.dumps(one_run(pki, pipeline, args.n)))
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-tls-layer-") as tmp:
        pki = make_pki(tmp)
        best: dict[tuple[int, str], float] = {}
        for rnd in range(args.repeat):
            for pipeline in (1, 16):
                for path in ("native", "python") if rnd % 2 == 0 else ("python", "native"):
                    env = dict(os.environ)
                    env.pop("CONSTDB_TLS_PYTHON", None)
                    if path == "python":
                        env["CONSTDB_TLS_PYTHON"] = "1"
                    out = subprocess.run(
                        [sys.executable, __file__, "-n", str(args.n), "--one",
                         json.dumps([pki, pipeline])],
                        env=env, capture_output=True, text=True, check=True,
                    ).stdout  # fmt: skip
                    r = json.loads(out)
                    assert r["native"] == (path == "native"), r
                    key = (pipeline, path)
                    best[key] = min(best.get(key, float("inf")), r["us"])
                    print(f"round {rnd + 1} -P {pipeline} {path}: {r['us']:.2f} us/record",
                          file=sys.stderr)  # fmt: skip
    print(f"TLSConn server side, CPU us per record (one read, one reply), min of {args.repeat}\n")
    print("| requests per record | native path | Python-level path | saved per record |")
    print("|---|---:|---:|---:|")
    for pipeline in (1, 16):
        nat, py = best[(pipeline, "native")], best[(pipeline, "python")]
        print(f"| {pipeline} (GET -P {pipeline}) | {nat:.2f} | {py:.2f} | {py - nat:.2f}"
              f" ({(py - nat) / pipeline:.3f} per request) |")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
