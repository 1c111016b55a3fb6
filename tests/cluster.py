"""Helpers for multi-node tests: nodes with fast heartbeats, MEET, waiting for
links and convergence."""

from __future__ import annotations

import os
from typing import Any, Callable

from procs import ConstDB, wait_for

FAST = {
    "replica_heartbeat_frequency": 0.1,
    "peer_timeout": 3.0,
    "hz": 50,
}


def write_config(work_dir: str, **values: Any) -> str:
    os.makedirs(work_dir, exist_ok=True)
    path = os.path.join(work_dir, "constdb.toml")
    lines = []
    for k, v in values.items():
        if isinstance(v, bool):
            lines.append(f"{k} = {'true' if v else 'false'}")
        elif isinstance(v, str):
            lines.append(f'{k} = "{v}"')
        else:
            lines.append(f"{k} = {v}")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def make_node(
    node_factory: Callable[..., ConstDB], name: str, start: bool = True, **cfg: Any
) -> ConstDB:
    """A node with a config file of FAST settings plus cfg."""
    probe = node_factory(name=name)
    values = dict(FAST)
    values["node_alias"] = name
    values.update(cfg)
    probe.config = write_config(probe.work_dir, **values)
    if start:
        probe.start()
    return probe


def meet(a: ConstDB, b: ConstDB, addr: str = "") -> Any:
    return a.client().execute_command("MEET", addr or f"127.0.0.1:{b.port}")


def nodes_info(n: ConstDB) -> list[dict[str, Any]]:
    rows = n.client().execute_command("NODES")
    out = []
    for r in rows:
        d = {}
        for i in range(0, len(r), 2):
            k = r[i].decode() if isinstance(r[i], bytes) else r[i]
            v = r[i + 1]
            d[k] = v.decode() if isinstance(v, bytes) else v
        out.append(d)
    return out


def peer_states(n: ConstDB) -> dict[int, str]:
    return {r["id"]: r["state"] for r in nodes_info(n) if r["state"] != "myself"}


def node_id(n: ConstDB) -> int:
    info = n.client().info("server")
    return int(info["node_id"])


def wait_linked(nodes: list[ConstDB], timeout: float = 20) -> None:
    """Every node has a connected link to every other."""
    ids = {node_id(n): n for n in nodes}

    def ok() -> bool:
        for nid, n in ids.items():
            st = peer_states(n)
            for other in ids:
                if other != nid and st.get(other) != "connected":
                    return False
        return True

    wait_for(ok, timeout, 0.05, what="full mesh of links")


def digest(n: ConstDB) -> bytes:
    return n.client().execute_command("CRDT.DIGEST")


def wait_converged(nodes: list[ConstDB], timeout: float = 30) -> bytes:
    def same() -> Any:
        ds = {digest(n) for n in nodes}
        return ds.pop() if len(ds) == 1 else None

    try:
        return wait_for(same, timeout, 0.05, what="equal digests on every node")
    except AssertionError as e:
        raise AssertionError(f"{e}\n{divergence(nodes)}") from None


def divergence(nodes: list[ConstDB]) -> str:
    """The keys whose CRDT state differs between nodes (for failure reports)."""
    keys: set[bytes] = set()
    for n in nodes:
        keys |= set(n.client().keys("*"))
    out = []
    for k in sorted(keys):
        descs = [n.client().execute_command("DESC", k) for n in nodes]
        if any(d != descs[0] for d in descs):
            out.append(f"{k!r}:")
            for n, d in zip(nodes, descs):
                out.append(f"  {n.work_dir.rsplit('/', 1)[-1]}: {d!r}")
    return "\n".join(out[:60]) or "(no key differs now)"


def info_peer(n: ConstDB, peer_id: int) -> dict[str, str]:
    for r in nodes_info(n):
        if r["id"] == peer_id:
            return r
    raise KeyError(peer_id)
