"""In-process ConstDB nodes for CRDT tests: no sockets, no event loop.

A `Node` is a Keyspace + Server (data commands registered) + one Client.
`node.run(...)` executes one command and returns its raw RESP reply. Every
command appends its effect records to the node's own Backlog; `Net` keeps,
per (receiver, origin) pair, how many of the origin's record groups the
receiver has applied, and delivers more of them in per-origin FIFO order.

Determinism: every node's HLC starts at `CLOCK_BASE`, far beyond the wall
clock, so uuids are `last + 1` whatever the wall time is (the order of uuids
then depends only on the order of the steps and on what each node saw). The
test hook `Client.run` and `apply_records` both reset `ks.now` to the wall
clock, so expiry is driven explicitly: TTLs the tests set are either far in
the future of the wall clock (around `T_FAR`) or in the past, and
`Node.expire_at(t)` runs the lookup-driven expiry with `now = t`.
"""

from __future__ import annotations

from constdb._core.backlog import Backlog, iter_records
from constdb._core.keyspace import Keyspace, describe_obj, visible_value
from constdb._core.protocol import Client, Server

from constdb._core import cmd_hashes, cmd_keys, cmd_server, cmd_sets, cmd_strings

# expiry times the tests use live around T_FAR (2030-03-17, unix ms): the wall
# clock never reaches them while a test runs, Node.expire_at does
T_FAR = 1_900_000_000_000
# every HLC starts here: beyond (T_FAR + a day) << 22, so uuids never follow the wall clock
CLOCK_BASE = (T_FAR + 86_400_000) << 22
OP_CONT = 0x80


class Node:
    def __init__(self, node_id: int):
        self.id = node_id
        self.bl = Backlog()
        self.ks = Keyspace(node_id, self.bl)
        self.ks.clock.observe(CLOCK_BASE)
        self.srv = Server(self.ks)
        for mod in (cmd_strings, cmd_keys, cmd_sets, cmd_hashes, cmd_server):
            mod.register(self.srv)
        self.client = Client(self.srv)

    def run(self, *args) -> bytes:
        """One command; its raw RESP reply."""
        return self.client.run(*args)

    def groups(self) -> list[bytes]:
        """This node's own effect records, split into groups (a command's or an
        expiry's effects; the unit a link never splits)."""
        data, _last, _n = self.bl.read_from(0, 1 << 40)
        out: list[bytes] = []
        cur = b""
        for op, _u, start, end in iter_records(data):
            cur += data[start:end]
            if not op & OP_CONT:
                out.append(cur)
                cur = b""
        assert cur == b"", "a group is still open"
        return out

    def records(self) -> list[bytes]:
        """This node's own effect records, one by one."""
        data, _last, _n = self.bl.read_from(0, 1 << 40)
        return [data[s:e] for _op, _u, s, e in iter_records(data)]

    def apply(self, origin: int, data: bytes) -> int:
        return self.ks.apply_records(origin, data)

    def expire_at(self, now_ms: int, keys) -> None:
        """Access keys at time now_ms: those whose TTL has passed are deleted
        here with a normal DEL effect (docs/crdt.md section 6)."""
        self.ks.set_now(now_ms)
        for k in keys:
            self.ks.py_lookup(k)
        self.ks.set_now()

    # ---- canonical views ---------------------------------------------------

    def all_keys(self) -> set[bytes]:
        ks = self.ks
        return set(ks.d) | set(ks.alts) | set(ks.tombs)

    def visible(self, keys=None) -> dict:
        """What a client sees, through the commands: TYPE, the value, the TTL.
        Only keys with a live object are asked: a lookup of an absent key may
        write (lazy expiry, a stale TTL register), and a dump must not."""
        out = {}
        for k in sorted(self.all_keys() if keys is None else keys):
            if k not in self.ks.d:
                continue
            t = self.run(b"TYPE", k)
            if t == b"+none\r\n":
                continue
            if t == b"+string\r\n":
                v = self.run(b"GET", k)
            elif t == b"+set\r\n":
                v = sorted(parse_resp(self.run(b"SMEMBERS", k)))
            elif t == b"+hash\r\n":
                flat = parse_resp(self.run(b"HGETALL", k))
                v = sorted(zip(flat[::2], flat[1::2]))
            elif t == b"+mvreg\r\n":
                v = parse_resp(self.run(b"MVGET", k))
            else:
                raise AssertionError(f"unexpected type {t!r}")
            out[k] = (t, v, self.run(b"PEXPIRETIME", k))
        return out

    def internal(self) -> dict:
        """The whole CRDT state: shown, hidden and tombstone objects of every
        key, VV and dot cloud (lists whose order carries no meaning sorted)."""
        ks = self.ks
        dead: dict = {}
        for (k, _t), o in getattr(ks, "dead", {}).items():
            dead.setdefault(k, []).append(norm_desc(describe_obj(o)))
        keys = {}
        for k in sorted(self.all_keys() | set(dead)):
            shown = ks.d.get(k)
            keys[k] = (
                norm_desc(describe_obj(shown)) if shown is not None else None,
                sorted(norm_desc(describe_obj(o)) for o in ks.alts.get(k, [])),
                norm_desc(describe_obj(ks.tombs[k])) if k in ks.tombs else None,
                sorted(dead.get(k, [])),
            )
        ks.prune_cloud()
        cloud = {n: sorted(s) for n, s in ks.cloud.items() if s}
        vv = {n: u for n, u in ks.get_vv().items() if u}
        return {"keys": keys, "vv": vv, "cloud": cloud}

    def state(self) -> tuple:
        """(visible, internal) state; visible includes the keyspace digest."""
        vis = self.visible()
        digest = getattr(self.ks, "digest", None)
        if digest is not None:
            vis[b"(digest)"] = digest()
        return (vis, self.internal())

    def check_invariants(self) -> None:
        """Where objects live agrees with what they hold (keyspace.pyx, settle):
        shown and hidden objects are live, one object per type and key, the
        shown one is the newest, tombstones hold no value, a shown key with a
        TTL is in `expires` (the active expiry cycle walks it)."""
        ks = self.ks
        for k, o in ks.d.items():
            desc = describe_obj(o)
            assert _live(o), (k, desc)
            hidden = ks.alts.get(k, [])
            # (by class: an HLL is a string too, beside a hidden StrObj)
            types = [type(x) for x in [o, *hidden]]
            assert len(types) == len(set(types)), (k, types)
            lw = _field(desc, b"last-write")
            for h in hidden:
                hd = describe_obj(h)
                assert _live(h), (k, hd)
                assert tuple(_field(hd, b"last-write")) < tuple(lw) or (
                    _field(hd, b"last-write") == lw
                ), (k, desc, hd)
            ttl = _field(desc, b"ttl")
            if ttl[0]:
                assert k in ks.expires, (k, desc)
        for k in ks.alts:
            assert k in ks.d and ks.alts[k], k
        for k, o in ks.tombs.items():
            assert not _live(o), (k, describe_obj(o))


def _live(o) -> bool:
    v = visible_value(o)
    return v is not None and (isinstance(v, bytes) or len(v) > 0)


def _field(desc: list, name: bytes):
    for n, v in zip(desc[::2], desc[1::2]):
        if n == name:
            return v
    raise KeyError(name)


def _freeze(x):
    if isinstance(x, list):
        return tuple(_freeze(y) for y in x)
    return x


def norm_desc(desc: list):
    """describe_obj output with order-free lists sorted, as nested tuples."""
    out = []
    for name, val in zip(desc[::2], desc[1::2]):
        if name == b"members":
            val = [[m, sorted(dots)] for m, dots in val]
        elif name == b"fields":
            val = [[f, sorted(vers, key=lambda v: (v[1], v[2]))] for f, vers in val]
        elif name == b"versions":
            val = sorted(val, key=lambda v: (v[1], v[2]))
        out.append((name, _freeze(val)))
    return repr(tuple(out))


def parse_resp(data: bytes):
    """Parse one RESP2 reply (the subset the commands here produce)."""
    v, pos = _parse(data, 0)
    assert pos == len(data), data
    return v


def _parse(b: bytes, i: int):
    t = b[i : i + 1]
    j = b.index(b"\r\n", i)
    line = b[i + 1 : j]
    i = j + 2
    if t == b"+":
        return line, i
    if t == b"-":
        return Exception(line.decode()), i
    if t == b":":
        return int(line), i
    if t == b"$":
        n = int(line)
        if n < 0:
            return None, i
        return b[i : i + n], i + n + 2
    if t == b"*":
        n = int(line)
        if n < 0:
            return None, i
        out = []
        for _ in range(n):
            v, i = _parse(b, i)
            out.append(v)
        return out, i
    raise ValueError(f"bad RESP at {i}: {b[i - 1 : i + 20]!r}")


class Net:
    """A group of in-process nodes and the per-link delivery positions."""

    def __init__(self, ids=(1, 2, 3)):
        self.nodes = {i: Node(i) for i in ids}
        # (receiver, origin) -> number of origin's groups applied by receiver
        self.pos = {(r, o): 0 for r in ids for o in ids if r != o}

    def __getitem__(self, i: int) -> Node:
        return self.nodes[i]

    def pending(self, receiver: int, origin: int) -> int:
        return len(self.nodes[origin].groups()) - self.pos[(receiver, origin)]

    def deliver(self, receiver: int, origin: int, n: int | None = None) -> int:
        """Deliver the next n (default: all) pending groups of origin to receiver."""
        groups = self.nodes[origin].groups()
        p = self.pos[(receiver, origin)]
        q = len(groups) if n is None else min(len(groups), p + n)
        if q > p:
            self.nodes[receiver].apply(origin, b"".join(groups[p:q]))
            self.pos[(receiver, origin)] = q
        return q - p

    def deliver_all(self, order=None) -> None:
        """Deliver until every node has every record. order: optional list of
        (receiver, origin, n) steps tried first (random interleavings)."""
        for r, o, n in order or ():
            self.deliver(r, o, n)
        for r in self.nodes:
            for o in self.nodes:
                if r != o:
                    self.deliver(r, o)

    def states(self) -> dict:
        return {i: n.state() for i, n in self.nodes.items()}
