"""Real processes for the tests: constdb-server and redis-server on free
loopback ports (every process started here is stopped by pid), and groups
of constdb nodes: fast heartbeats, MEET, waiting for links and convergence,
a pair of nodes whose link runs through fault proxies."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from typing import Any, Callable, Optional

import redis

from support.proxy import Proxy

HOST = "127.0.0.1"


def free_port(host: str = HOST) -> int:
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(fam, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_for(
    cond: Callable[[], object],
    timeout: float = 10.0,
    interval: float = 0.02,
    what: str = "condition",
):
    """Poll cond until it returns a truthy value; fail with what after timeout."""
    deadline = time.monotonic() + timeout
    last_exc: Optional[BaseException] = None
    while True:
        try:
            v = cond()
            if v:
                return v
        except Exception as e:  # keep polling: the process may still be starting
            last_exc = e
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout}s waiting for {what}"
                + (f" (last error: {last_exc!r})" if last_exc else "")
            )
        time.sleep(interval)


def need_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise AssertionError(
            f"{name} is not installed: the tests need it (apt-get install redis-server redis-tools)"
        )
    return path


def server_cmd() -> list[str]:
    """The installed console script next to this interpreter, else -m constdb."""
    script = os.path.join(os.path.dirname(sys.executable), "constdb-server")
    if os.path.exists(script):
        return [script]
    found = shutil.which("constdb-server")
    if found:
        return [found]
    return [sys.executable, "-m", "constdb"]


class Proc:
    """A server process on a loopback port."""

    port: int
    host: str = HOST
    proc: Optional[subprocess.Popen] = None
    log_path: str = ""

    def client(self, **kw) -> redis.Redis:
        kw.setdefault("socket_timeout", 10)
        return redis.Redis(host=self.host, port=self.port, **kw)

    def ping(self) -> bool:
        with socket.create_connection((self.host, self.port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            data = s.recv(64)
            return data.startswith(b"+PONG") or data.startswith(b"-NOAUTH")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> Optional[int]:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        rc = self.proc.returncode
        return rc

    def kill(self) -> None:
        self.stop(signal.SIGKILL)


class ConstDB(Proc):
    def __init__(
        self,
        work_dir: str,
        port: Optional[int] = None,
        args: tuple = (),
        config: Optional[str] = None,
        host: str = HOST,
    ):
        self.work_dir = work_dir
        self.host = host
        self.port = port or free_port(host)
        self.args = list(args)
        self.config = config
        self.env: dict[str, str] = {}  # extra environment (CONSTDB_TEST_CLOCK_OFFSET_MS)
        os.makedirs(work_dir, exist_ok=True)
        self.log_path = os.path.join(work_dir, "server.log")

    def argv(self) -> list[str]:
        cmd = server_cmd()
        if self.config is not None:
            cmd.append(self.config)
        return (
            cmd
            + ["--port", str(self.port), "--bind", self.host, "--work-dir", self.work_dir]
            + self.args
        )

    def start(self, wait: bool = True) -> ConstDB:
        logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            self.argv(),
            stdout=logf,
            stderr=subprocess.STDOUT,
            cwd=self.work_dir,
            env={**os.environ, **self.env} if self.env else None,
        )
        logf.close()
        if wait:
            try:
                wait_for(
                    lambda: self.alive() and self.ping(), 20, what=f"constdb on port {self.port}"
                )
            except AssertionError:
                self.stop(signal.SIGKILL)
                raise AssertionError(f"constdb-server did not start:\n{self.log()}")
        return self

    def restart(self) -> ConstDB:
        self.stop()
        return self.start()


class RedisServer(Proc):
    def __init__(self, work_dir: str, port: Optional[int] = None):
        self.exe = need_tool("redis-server")
        self.port = port or free_port()
        self.work_dir = work_dir
        os.makedirs(work_dir, exist_ok=True)
        self.log_path = os.path.join(work_dir, "redis.log")

    def start(self) -> RedisServer:
        logf = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [
                self.exe,
                "--port",
                str(self.port),
                "--bind",
                HOST,
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self.work_dir,
                "--daemonize",
                "no",
            ],
            stdout=logf,
            stderr=subprocess.STDOUT,
            cwd=self.work_dir,
        )
        logf.close()
        try:
            wait_for(
                lambda: self.alive() and self.ping(), 20, what=f"redis-server on port {self.port}"
            )
        except AssertionError:
            self.stop(signal.SIGKILL)
            raise AssertionError(f"redis-server did not start:\n{self.log()}")
        return self


# ------------------------------------------------------------ node groups --

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


def _proxy_to(n: ConstDB, taken: set[int]) -> Proxy:
    """A proxy to n listening on none of the ports in taken."""
    held = []
    p = Proxy("127.0.0.1", n.port)
    while p.port in taken:
        held.append(p)
        p = Proxy("127.0.0.1", n.port)
    for h in held:
        h.close()
    return p


def proxied_pair(node_factory: Callable[..., ConstDB], **cfg: Any):
    """Two nodes whose link runs through one proxy per node: (a, b, pa, pb)."""
    a = make_node(node_factory, "a", start=False, **cfg)
    b = make_node(node_factory, "b", start=False, **cfg)
    # a proxy listens on a port the kernel picks, which may be the port the
    # not yet started node a or b was given (free_port let it go): pick again
    pa = _proxy_to(a, {a.port, b.port})
    pb = _proxy_to(b, {a.port, b.port})
    for n, p in ((a, pa), (b, pb)):
        with open(n.config, "a") as f:
            f.write(f'advertise_addr = "{p.addr}"\n')
        n.start()
    meet(a, b, pb.addr)
    wait_linked([a, b])
    return a, b, pa, pb


def cut_link(pa: Proxy, pb: Proxy, a: ConstDB, b: ConstDB) -> None:
    """Cut both proxies and wait until each node sees the link down."""
    pa.cut()
    pb.cut()
    wait_for(
        lambda: (
            peer_states(a).get(node_id(b)) != "connected"
            and peer_states(b).get(node_id(a)) != "connected"
        ),
        10,
        what="link down",
    )


def heal_link(pa: Proxy, pb: Proxy, a: ConstDB, b: ConstDB) -> None:
    """Heal both proxies; wait for the link and for equal digests."""
    pa.heal()
    pb.heal()
    wait_linked([a, b])
    wait_converged([a, b])


def start_fails(n: ConstDB, *match: str) -> None:
    """Starting n (its config and work_dir) fails with one line naming each
    of match, exit status 2 and no traceback."""
    proc = subprocess.run(
        server_cmd() + [n.config, "--port", str(n.port), "--work-dir", n.work_dir],
        capture_output=True,
        timeout=30,
    )
    err = proc.stderr.decode()
    assert proc.returncode == 2, err
    assert "Traceback" not in err
    lines = [x for x in err.splitlines() if x.startswith("constdb-server:")]
    assert len(lines) == 1, err
    for m in match:
        assert m in lines[0], err
