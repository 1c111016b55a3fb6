"""Lists converge after a member is SIGKILLed and restarts from an old snapshot
(issue 14, docs/crdt.md section 6: the stable point is bounded by every
member's restart floor).

Three real nodes, list writers on every node; one node saves, keeps taking
writes (and sees elements removed) without saving again, is killed with
SIGKILL and restarts from that snapshot (a fresh origin), its writer going on
at once: its first pushes name anchors from the old snapshot. After healing,
every node shows the same lists (LRANGE and CRDT.DIGEST) and no insert waits
for an anchor (DESC shows no unplaced element).
"""

from __future__ import annotations

import os
import random
import shutil
import threading
import time

import redis
from support.nodes import make_node, meet, wait_converged, wait_for, wait_linked

from constdb.replication.manager import stable_of

KEYS = [f"l{i}" for i in range(3)]


class Writer(threading.Thread):
    """Random list commands on one node until stopped; connection errors
    (the node being killed) end it."""

    def __init__(self, node, name: str, seed: int):
        super().__init__(daemon=True)
        self.node = node
        self.name = name
        self.rnd = random.Random(seed)
        self.stop_ev = threading.Event()
        self.n = 0

    def run(self) -> None:
        r = self.node.client(socket_timeout=5)
        rnd = self.rnd
        try:
            while not self.stop_ev.is_set():
                k = rnd.choice(KEYS)
                v = f"{self.name}-{self.n}"
                self.n += 1
                op = rnd.random()
                if op < 0.3:
                    r.rpush(k, v)
                elif op < 0.45:
                    r.lpush(k, v)
                elif op < 0.6:
                    r.rpop(k)
                elif op < 0.75:
                    r.lpop(k)
                elif op < 0.9:
                    pivot = r.lindex(k, rnd.randrange(-3, 3))
                    if pivot is not None:
                        r.linsert(k, rnd.choice(["BEFORE", "AFTER"]), pivot, v)
                else:
                    got = r.lindex(k, rnd.randrange(-3, 3))
                    if got is not None:
                        r.lrem(k, 1, got)
                time.sleep(0.002)
        except (redis.ConnectionError, redis.TimeoutError):
            pass
        finally:
            r.close()

    def halt(self) -> None:
        self.stop_ev.set()
        self.join(10)


def unplaced(n, k: str) -> list:
    desc = n.client().execute_command("DESC", k)
    out = []
    for obj in desc:
        if isinstance(obj, list) and b"unplaced" in obj:
            out.extend(obj[obj.index(b"unplaced") + 1])
    return out


def test_restart_from_an_old_snapshot_converges_lists(node):
    a = make_node(node, "a")
    b = make_node(node, "b")
    c = make_node(node, "c")
    meet(b, a)
    meet(c, a)
    wait_linked([a, b, c])
    writers = [Writer(n, n.work_dir.rsplit("/", 1)[-1], i) for i, n in enumerate((a, b, c))]
    for w in writers:
        w.start()
    wait_for(lambda: all(w.n >= 100 for w in writers), 30, what="writes on every node")
    rb = b.client()
    assert rb.save()
    saves = rb.info("persistence")["rdb_saves"]
    path = os.path.join(b.work_dir, "dump.cdb")
    old = path + ".old"
    shutil.copyfile(path, old)
    # more writes everywhere: elements b had in its snapshot are removed,
    # b applies the removals, and the stable point may pass them
    done = [w.n for w in writers]
    wait_for(lambda: all(w.n >= d + 400 for w, d in zip(writers, done)), 30, what="more writes")
    # b's newest file on disk is still the one copied aside
    assert rb.info("persistence")["rdb_saves"] == saves
    rb.close()
    b.kill()
    writers[1].halt()
    shutil.copyfile(old, path)  # the old snapshot (the same file: no save since)
    b.start()
    wb = Writer(b, "b2", 7)
    wb.start()  # its first pushes name anchors from the old snapshot
    writers[1] = wb
    wait_for(lambda: wb.n >= 300, 30, what="writes on the restarted node")
    for w in writers:
        w.halt()
    wait_linked([a, b, c], timeout=30)
    wait_converged([a, b, c], timeout=30)
    for k in KEYS:
        lists = [n.client().lrange(k, 0, -1) for n in (a, b, c)]
        assert lists[0] == lists[1] == lists[2], k
    # nothing waits for an anchor anywhere (a GC'd anchor would keep it forever)
    for n in (a, b, c):
        for k in KEYS:
            assert unplaced(n, k) == [], (n.work_dir, k)


def test_the_stable_point_is_the_least_restart_floor():
    """stable_of (docs/crdt.md section 6): the minimum over members' floors
    of the current origins; a retired origin counts only while some floor
    holds less of it than some member applied."""
    cur = {1, 2}
    applied = [{1: 50, 2: 60}, {1: 55, 2: 58}]
    # the floors, not the applied VVs
    assert stable_of([{1: 30, 2: 40}, {1: 45, 2: 35}], applied, cur) == 30
    # a member without a file reports its applied VV as its floor
    assert stable_of([applied[0], {1: 45, 2: 35}], applied, cur) == 35
    # a current origin a floor does not name holds it at 0
    assert stable_of([{1: 30}, {1: 45, 2: 35}], applied, cur) == 0
    # retired origin 9: every floor holds all any member applied: no bound
    applied9 = [{1: 50, 2: 60, 9: 20}, {1: 55, 2: 58, 9: 20}]
    assert stable_of([{1: 30, 2: 40, 9: 20}, {1: 45, 2: 35, 9: 20}], applied9, cur) == 30
    # one member applied more of it than another's floor holds: bounded there
    applied9[0][9] = 25
    assert stable_of([{1: 30, 2: 40, 9: 25}, {1: 45, 2: 35, 9: 10}], applied9, cur) == 10
