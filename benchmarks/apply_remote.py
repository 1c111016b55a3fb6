"""Remote apply cost: ns per record for ks.apply_records on batches of real
records (SET, ZADD, SADD, HSET, RPUSH made by another in-process node).

    PYTHONPATH=. python3 benchmarks/apply_remote.py [--n 50000] [--rounds 5] [--notify]

--notify: with keyspace notifications of every class on (the events of
peers' records, keyspace._remote_event) and a publisher that drops them.
"""

from __future__ import annotations

import argparse
import sys
import time

sys.path.insert(0, ".")
from constdb._core.backlog import Backlog  # noqa: E402
from constdb._core.keyspace import Keyspace  # noqa: E402

from constdb._core import cmd_lists, cmd_zsets  # noqa: E402

try:  # (tests/support/core.py on later main)
    from tests.support.core import Node  # noqa: E402
except ImportError:
    from tests.coretools import Node  # noqa: E402


def records(n: int) -> tuple[bytes, int]:
    a = Node(1)
    for mod in (cmd_zsets, cmd_lists):
        mod.register(a.srv)
    for i in range(n):
        k = i % 1000
        a.run("SET", f"s{i}", "v")
        a.run("ZADD", f"z{k}", str(i * 0.5), f"m{i}")
        a.run("SADD", f"t{k}", f"m{i}")
        a.run("HSET", f"h{k}", f"f{i}", "v")
        a.run("RPUSH", f"l{k}", "v")
    data, _last, nrec = a.bl.read_from(0, 1 << 40)
    return data, nrec


def _drop(cls: int, event: bytes, key: bytes) -> None:
    pass


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--notify", action="store_true", help="every event class on")
    args = ap.parse_args()
    data, nrec = records(args.n)
    modes = [("apply", ())]
    try:  # the checked path a link uses (every record checked, then applied)
        Keyspace(2, Backlog()).apply_records(1, b"", 2**64 - 1, True)
        modes.append(("check + apply (a link's batch)", (2**64 - 1, True)))
    except TypeError:
        pass
    for name, extra in modes:
        best = float("inf")
        for _ in range(args.rounds):
            ks = Keyspace(2, Backlog())
            if args.notify:
                ks.nmask = 0x7FFC  # every class but K and E (notify.py's mask)
                ks.on_notify = _drop
            t0 = time.perf_counter_ns()
            ks.apply_records(1, data, *extra)
            best = min(best, (time.perf_counter_ns() - t0) / nrec)
        print(f"{name}: {nrec} records, {len(data)} bytes: best {best:.0f} ns/record")
    return 0


if __name__ == "__main__":
    sys.exit(main())
