#!/usr/bin/env python3
"""Replication over TLS beside plain links: a ConstDB pair and a Redis
master with one replica, in one run.

For each server and each kind of link (plain; TLS: ConstDB's
`tls_replication`, mutual TLS between members; Redis's `tls-replication yes`
with the replica dialing the master's TLS port), a write node takes
redis-benchmark SET load (-c 50 -P 16, on its plain client port in both
cases, so only the links differ) and one peer applies the stream. Reported:
the write node's req/s and CPU per request, the peer's CPU per request, and
the replication throughput: writes per second from the start of the load to
the moment the peer has acknowledged the last one. The TLS cost of each is
TLS / plain of the same measure.

Usage: python benchmarks/bench_repl_tls.py [--requests N] [--out FILE]
Certificates are made with the openssl CLI in a temporary directory; every
process is stopped by pid at the end. Linux only (/proc).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time

from bench_replication import ConstNode, Proc, RedisNode, benchmark_set, wait
from bench_tls import make_pki
from benchlib import HOST, free_port


class TlsConstNode(ConstNode):
    """A ConstDB node whose links run over mutual TLS (peers dial tls_port)."""

    def __init__(self, root: str, name: str, pki: dict[str, str]):
        self.tls_port = free_port()
        super().__init__(
            root,
            name,
            f'tls_port = {self.tls_port}\ntls_replication = true\ntls_cert_file = "{pki["cert"]}"\n'
            f'tls_key_file = "{pki["key"]}"\ntls_ca_cert_file = "{pki["ca"]}"\n',
        )

    def join(self, other: Proc) -> None:
        self.r().execute_command("MEET", f"{HOST}:{other.tls_port}")


class TlsRedisNode(RedisNode):
    """A Redis node with a TLS port; a replica dials its master's TLS port."""

    def __init__(self, root: str, name: str, pki: dict[str, str]):
        self.tls_port = free_port()
        super().__init__(
            root,
            name,
            ("--tls-port", str(self.tls_port), "--tls-cert-file", pki["cert"],
             "--tls-key-file", pki["key"], "--tls-ca-cert-file", pki["ca"],
             "--tls-replication", "yes"),
        )  # fmt: skip

    def join(self, other: Proc) -> None:
        self.r().execute_command("REPLICAOF", HOST, str(other.tls_port))


def make(kind: str, tls: bool, root: str, name: str, pki: dict[str, str]) -> Proc:
    if kind == "ConstDB":
        return TlsConstNode(root, name, pki) if tls else ConstNode(root, name)
    return TlsRedisNode(root, name, pki) if tls else RedisNode(root, name)


def one(kind: str, tls: bool, root: str, pki: dict[str, str], n: int, procs: list[Proc]) -> dict:
    tag = f"{kind}-{'tls' if tls else 'plain'}"
    a = make(kind, tls, root, f"{tag}-a", pki)
    procs.append(a)
    b = make(kind, tls, root, f"{tag}-b", pki)
    procs.append(b)
    b.join(a)
    wait(lambda: a.linked(2), 60, f"{tag} link")
    c0 = (a.cpu(), b.cpu())
    t0 = time.time()
    rps = benchmark_set(a.port, n)
    wait(lambda: all(x == 0 for x in a.lags()), 120, f"{tag} zero lag")
    elapsed = time.time() - t0
    c1 = (a.cpu(), b.cpu())
    for p in (a, b):
        p.stop()
        procs.remove(p)
    return {
        "rps": rps,
        "cpu": (c1[0] - c0[0]) * 1e6 / n,
        "peer_cpu": (c1[1] - c0[1]) * 1e6 / n,
        "repl": n / elapsed,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=1_000_000)
    ap.add_argument("--out")
    args = ap.parse_args()
    root = tempfile.mkdtemp(prefix="constdb-bench-repl-tls-")
    procs: list[Proc] = []
    res: dict = {}
    try:
        pki = make_pki(root)
        for kind in ("ConstDB", "Redis"):
            for tls in (False, True):
                res[kind, tls] = one(kind, tls, root, pki, args.requests, procs)
    finally:
        for p in procs:
            p.stop()
        shutil.rmtree(root, ignore_errors=True)

    measures = [
        ("write node SET -P 16 (req/s)", "rps", False),
        ("replication throughput (writes/s to the peer's ack)", "repl", False),
        ("write node CPU us/req", "cpu", True),
        ("peer CPU us/write applied", "peer_cpu", True),
    ]
    lines = [
        "| measure | ConstDB plain | ConstDB TLS | TLS cost | Redis plain | Redis TLS | TLS cost |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for label, key, cost_up in measures:
        row = [label]
        for kind in ("ConstDB", "Redis"):
            plain, tls = res[kind, False][key], res[kind, True][key]
            cost = tls / plain if cost_up else plain / tls
            row += [f"{plain:,.0f}" if plain >= 1000 else f"{plain:.2f}",
                    f"{tls:,.0f}" if tls >= 1000 else f"{tls:.2f}", f"{cost:.2f}x"]  # fmt: skip
        lines.append("| " + " | ".join(row) + " |")
    table = "\n".join(lines) + "\n"
    print(table)
    if args.out:
        with open(args.out, "w") as f:
            f.write(table)


if __name__ == "__main__":
    sys.exit(main())
