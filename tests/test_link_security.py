"""The replication link's trust boundary (issue 9, findings 1 3 4 5 7 12): a
fake peer speaks the link protocol over a raw socket and tries what an
attacker who reaches a node's client port could; a real group with a secret
and a password still links, replicates and converges."""

from __future__ import annotations

import hashlib
import hmac
import os
import random
import socket
import struct
import subprocess
import threading
import time
from typing import Optional

import pytest
import redis

from constdb.replication import link as L
from tests.support.nodes import (
    FAST,
    ConstDB,
    free_port,
    make_node,
    meet,
    node_id,
    peer_states,
    server_cmd,
    wait_converged,
    wait_for,
    wait_linked,
    write_config,
)
from tests.support.resp import Conn, parse_typed

SECRET = "0f4e1b9d2c7a68e35b0d91f7a4c2e86b"  # 128 bits
PASSWORD = "s3cret-pass"


def frame(ftype: int, payload: bytes = b"") -> bytes:
    return struct.pack("<BI", ftype, len(payload)) + payload


class FakePeer:
    """A dialer that speaks the link protocol by hand (and knows no secret)."""

    def __init__(self, port: int, host: str = "127.0.0.1", alias: str = "fake", password=None):
        self.c = Conn(port, host=host)
        self.id = random.randrange(1, 2**63)
        self.alias = alias
        self.password = password
        self.nonce = os.urandom(16)

    def hello(self, proto: Optional[int] = None) -> bytes:
        """Send CDB.LINK (after AUTH when a password is given); the raw reply."""
        if self.password is not None:
            assert self.c.call("AUTH", self.password) == b"+OK\r\n"
        return self.c.call(
            "CDB.LINK",
            L.PROTO_VERSION if proto is None else proto,
            self.id,
            self.id,
            self.alias,
            "127.0.0.1:1",
            self.nonce.hex(),
            0,
            16,
        )

    def send(self, data: bytes) -> None:
        self.c.send_raw(data)

    def until_close(self, timeout: float = 5.0) -> tuple[bytes, bool]:
        return self.c.rest_until_close(timeout)

    def close(self) -> None:
        self.c.close()


def secured(node, name: str, **cfg) -> ConstDB:
    """A node with the group's secret and password; its helpers' clients AUTH."""
    n = make_node(node, name, start=False, cluster_secret=SECRET, requirepass=PASSWORD, **cfg)
    n.client = lambda **kw: ConstDB.client(n, password=PASSWORD, **kw)  # type: ignore[method-assign]
    return n.start()


def warnings(n: ConstDB) -> list[str]:
    return [ln for ln in n.log().splitlines() if " WARNING " in ln]


class Relay:
    """A TCP relay to a node, as an attacker would run it: it forwards bytes
    both ways, can rewrite the listener's advertised address in its hello
    reply and inject bytes towards the node."""

    def __init__(self, target_port: int, rewrite: Optional[tuple[bytes, bytes]] = None):
        self.target = target_port
        self.rewrite = rewrite
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(8)
        self.port = self.lsock.getsockname()[1]
        self.addr = f"127.0.0.1:{self.port}"
        self.to_node: list[socket.socket] = []
        self.ended = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                a, _ = self.lsock.accept()
            except OSError:
                return
            b = socket.create_connection(("127.0.0.1", self.target))
            self.to_node.append(b)
            threading.Thread(target=self._pump, args=(a, b, None), daemon=True).start()
            threading.Thread(target=self._pump, args=(b, a, self.rewrite), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, rewrite) -> None:
        try:
            while True:
                d = src.recv(65536)
                if not d:
                    break
                if rewrite is not None and rewrite[0] in d:
                    d = d.replace(*rewrite)
                    rewrite = None
                dst.sendall(d)
        except OSError:
            pass
        finally:
            self.ended.set()
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def inject(self, data: bytes) -> None:
        for s in self.to_node:
            s.sendall(data)

    def close(self) -> None:
        self.lsock.close()


# ---- finding 1: CDB.LINK before AUTH, and links without a secret ------------------------


def test_link_needs_auth_when_requirepass_is_set(node):
    n = make_node(node, "a", cluster_secret=SECRET, requirepass=PASSWORD)
    fake = FakePeer(n.port)
    # as Redis answers SYNC/PSYNC before AUTH
    assert fake.hello() == b"-NOAUTH Authentication required.\r\n"
    fake.close()
    fake = FakePeer(n.port, password=PASSWORD)
    reply = parse_typed(fake.hello())
    assert reply[0] == "arr", reply
    fake.close()


def test_no_secret_on_a_non_loopback_port_refuses_links(node):
    d = node(name="open", host="0.0.0.0")
    d.config = write_config(d.work_dir, **FAST, advertise_addr=f"127.0.0.1:{d.port}")
    d.start()
    fake = FakePeer(d.port)
    got = fake.hello()
    assert got.startswith(b"-ERR NOSECRET "), got
    fake.close()
    lines = [ln for ln in d.log().splitlines() if "replication links disabled" in ln]
    assert len(lines) == 1 and "cluster_secret" in lines[0], d.log()
    other = make_node(node, "other")
    with pytest.raises(redis.ResponseError, match="NOSECRET"):
        meet(d, other)
    # with a secret the same node links
    e = node(name="open2", host="0.0.0.0")
    e.config = write_config(
        e.work_dir, **FAST, advertise_addr=f"127.0.0.1:{e.port}", cluster_secret=SECRET
    )
    e.start()
    f = make_node(node, "f", cluster_secret=SECRET)
    assert meet(f, e) == 1
    wait_linked([e, f])


def test_short_secrets_are_refused_and_gen_secret_prints_a_good_one(tmp_path):
    for bad in ("right", "0123456789abcdef", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"):
        p = subprocess.run(
            server_cmd()
            + ["--cluster-secret", bad, "--work-dir", str(tmp_path), "--port", str(free_port())],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert p.returncode == 2, p
        assert "key 'cluster_secret'" in p.stderr and "128 bits" in p.stderr, p.stderr
        assert p.stderr.count("\n") == 1, p.stderr
    p = subprocess.run(server_cmd() + ["--gen-secret"], capture_output=True, text=True, timeout=30)
    assert p.returncode == 0
    s = p.stdout.strip()
    assert len(s) == 64 and int(s, 16) >= 0
    from constdb.config import check_secret

    assert check_secret(s) is None


def test_config_set_refuses_a_short_secret(node):
    n = make_node(node, "a")
    r = n.client()
    with pytest.raises(redis.ResponseError, match="128 bits"):
        r.config_set("cluster_secret", "short")
    assert r.config_set("cluster_secret", SECRET)


# ---- finding 3: relay past the secret ---------------------------------------------------


def test_a_relay_cannot_link_two_members(node):
    x = make_node(node, "x", cluster_secret=SECRET)
    y = make_node(node, "y", cluster_secret=SECRET)
    idx = node_id(x)
    # the attacker's address forwards to y: x dials it and meets y's hello
    relay = Relay(y.port)
    with pytest.raises(redis.ResponseError, match="ADDRESS"):
        meet(x, y, relay.addr)
    # ... and with the reply rewritten to advertise the relay's address, the
    # proofs (bound to the address x dialed) do not match on y
    y_addr = f"127.0.0.1:{y.port}".encode()
    r2 = Relay(y.port)
    r2.rewrite = (
        b"$%d\r\n%s\r\n" % (len(y_addr), y_addr),
        b"$%d\r\n%s\r\n" % (len(r2.addr), r2.addr.encode()),
    )
    with pytest.raises(redis.ResponseError, match="SECRET"):
        meet(x, y, r2.addr)
    assert idx not in peer_states(y)
    relay.close()
    r2.close()


def test_frames_injected_into_a_link_are_refused(node):
    """A link through a relay that y advertises: the relay cannot add a frame."""
    x = make_node(node, "x", cluster_secret=SECRET)
    y = make_node(node, "y", start=False, cluster_secret=SECRET)
    relay = Relay(y.port)
    with open(y.config, "a") as f:
        f.write(f'advertise_addr = "{relay.addr}"\n')
    y.start()
    assert meet(x, y, relay.addr) == 1
    wait_linked([x, y])
    x.client().set("before", "1")
    wait_for(lambda: y.client().get("before") == b"1", 10, what="replication through the relay")
    relay.inject(frame(L.F_GETACK))  # a well-formed frame without the session's tag
    wait_for(lambda: "failed authentication" in y.log(), 10, what="y refusing the frame")
    # the link comes back (a fresh handshake) and goes on replicating
    wait_linked([x, y])
    x.client().set("after", "2")
    wait_for(lambda: y.client().get("after") == b"2", 10, what="replication after redial")


def test_replayed_or_reordered_frames_fail_authentication():
    class Repl:
        def __init__(self):
            self.acks = []

        def got_ack(self, link, u):
            self.acks.append(u)

    key = os.urandom(32)
    tx = L.Link(Repl(), outbound=True)

    class T:
        def __init__(self):
            self.out = []

        def write(self, d):
            self.out.append(d)

    tx.transport = T()
    tx.tx_mac = hmac.new(key, digestmod=hashlib.sha256)
    for u in (1, 2):
        tx.write_frame(L.F_ACK, struct.pack("<Q", u))
    f1, f2 = tx.transport.out

    def receiver():
        repl = Repl()
        rx = L.Link(repl, outbound=False)
        rx.state = "up"
        rx.rx_mac = hmac.new(key, digestmod=hashlib.sha256)
        return rx, repl

    rx, repl = receiver()
    rx.rx += f1 + f2
    rx._frames()
    assert repl.acks == [1, 2]
    for wire in (f1 + f1, f2 + f1):  # replayed, reordered
        rx, repl = receiver()
        rx.rx += wire
        with pytest.raises(L.LinkError, match="failed authentication"):
            rx._frames()


# ---- finding 4: an ERROR frame before any proof ----------------------------------------


def test_error_frame_before_the_proof_changes_nothing(node):
    a = secured(node, "a")
    b = secured(node, "b")
    fake = FakePeer(a.port, password=PASSWORD)
    assert parse_typed(fake.hello())[0] == "arr"
    fake.send(frame(L.F_ERROR, b"FORGOTTEN this node was removed from the group"))
    _, closed = fake.until_close()
    assert closed
    assert a.client().info("replication")["forgotten"] == 0
    assert meet(b, a) == 1
    wait_linked([a, b])


# ---- finding 5: buffering and connections before any proof ------------------------------


def test_a_pre_proof_frame_cannot_be_large(node):
    n = make_node(node, "a", cluster_secret=SECRET)
    fake = FakePeer(n.port)
    assert parse_typed(fake.hello())[0] == "arr"
    try:
        fake.send(struct.pack("<BI", L.F_AUTH, 32 << 20) + b"x" * 65536)
    except OSError:
        pass
    _, closed = fake.until_close(3.0)
    assert closed, "the node kept buffering an unproven peer's 32 MiB frame"


def test_pre_proof_links_count_against_maxclients(node):
    n = make_node(node, "a", cluster_secret=SECRET, maxclients=3)
    fakes = [FakePeer(n.port) for _ in range(3)]
    for f in fakes:
        assert parse_typed(f.hello())[0] == "arr"
    with Conn(n.port) as c:
        assert c.read() == b"-ERR max number of clients reached\r\n"
    fakes[0].close()
    wait_for(lambda: n.client().ping(), 10, what="a client slot freed")
    for f in fakes[1:]:
        f.close()


def test_a_silent_handshake_is_closed_soon(node):
    n = make_node(node, "a", cluster_secret=SECRET)
    fake = FakePeer(n.port)
    assert parse_typed(fake.hello())[0] == "arr"
    t0 = time.monotonic()
    _, closed = fake.until_close(8.0)
    assert closed and time.monotonic() - t0 < 8.0


# ---- finding 7: nothing that depends on the secret before the dialer's proof -------------


def test_the_listener_proves_nothing_before_the_dialer(node):
    n = make_node(node, "a", cluster_secret=SECRET)
    fake = FakePeer(n.port)
    raw = fake.hello()
    kind, items = parse_typed(raw)
    assert kind == "arr"
    got = [v for _, v in items]
    # proto, node id, origin, alias, address, nonce, databases: no proof
    assert len(got) == 7 and got[6] == b"16", got
    assert got[1] == str(node_id(n)).encode() and got[3] == b"a"
    assert got[4] == f"127.0.0.1:{n.port}".encode() and len(bytes.fromhex(got[5].decode())) == 16
    # a wrong proof is answered with an ERROR frame and nothing else
    fake.send(frame(L.F_AUTH, os.urandom(32) + struct.pack("<QB", 0, 0)))
    rest, closed = fake.until_close()
    assert closed
    ftype, ln = struct.unpack_from("<BI", rest)
    assert ftype == L.F_ERROR and len(rest) == 5 + ln, rest
    assert rest[5:].startswith(b"SECRET "), rest


# ---- finding 12: one escaped, rate-limited line per failed handshake ----------------------


def test_failed_handshakes_log_one_escaped_rate_limited_line(node):
    n = make_node(node, "a", cluster_secret=SECRET)
    before = len(warnings(n))
    t0 = time.monotonic()
    for _ in range(20):
        fake = FakePeer(n.port, alias="evil\nFORGED constdb log line")
        fake.hello()
        try:
            fake.send(frame(L.F_AUTH, os.urandom(32) + struct.pack("<QB", 0, 0)))
        except OSError:
            pass  # the node may have closed already
        fake.until_close()
        fake.close()
    for _ in range(20):
        fake = FakePeer(n.port, alias="mallory")
        assert parse_typed(fake.hello())[0] == "arr"
        fake.send(frame(L.F_AUTH, os.urandom(32) + struct.pack("<QB", 0, 0)))
        assert fake.until_close()[1]
        fake.close()
    assert n.client().ping()
    log = n.log()
    assert not any(ln.startswith("FORGED") for ln in log.splitlines()), log
    windows = 1 + int((time.monotonic() - t0) // 10)  # one line per reason per 10 s
    new = warnings(n)[before:]
    # 40 failed handshakes from one host, two reasons (PROTOCOL: the alias;
    # SECRET: the proof), not two lines each
    assert 2 <= len(new) <= 2 * windows, "\n".join(new)
    assert any("PROTOCOL" in ln for ln in new) and any("SECRET" in ln for ln in new)


def test_an_older_link_protocol_is_refused(node):
    n = make_node(node, "a", cluster_secret=SECRET)
    fake = FakePeer(n.port)
    got = fake.hello(proto=L.PROTO_VERSION - 1)
    assert got.startswith(b"-ERR VERSION link protocol"), got


# ---- a group with a secret and a password ----------------------------------------------------


def test_a_group_with_secret_and_password_links_replicates_and_converges(node):
    a, b, c = (secured(node, name) for name in ("a", "b", "c"))
    assert meet(b, a) == 1
    assert meet(c, a) == 1
    wait_linked([a, b, c])
    ra, rb, rc = a.client(), b.client(), c.client()
    for i in range(200):
        (ra, rb, rc)[i % 3].set(f"k{i}", i)
    rb.incrby("cnt", 5)
    rc.sadd("s", "x", "y")
    wait_converged([a, b, c])
    assert rc.get("k0") == b"0" and ra.get("cnt") == b"5"
    assert ra.smembers("s") == {b"x", b"y"}
    # a node with the right password but not the secret cannot join
    d = make_node(node, "d", requirepass=PASSWORD)
    d.client = lambda **kw: ConstDB.client(d, password=PASSWORD, **kw)  # type: ignore[method-assign]
    with pytest.raises(redis.ResponseError, match="SECRET"):
        meet(d, a)


# ---- the documented handshake, implemented from docs/replication.md section 2 ------------


def _lp(fields: list[bytes]) -> bytes:
    return b"".join(struct.pack("<I", len(f)) + f for f in fields)


def _hm(key: bytes, msg: bytes) -> bytes:
    return hmac.new(key, msg, hashlib.sha256).digest()


def _read_exact(c: Conn, n: int, timeout: float = 10.0) -> bytes:
    deadline = time.monotonic() + timeout
    while len(c.buf) < n:
        assert c._fill(deadline), f"short read: {c.buf!r}"
    out, c.buf = c.buf[:n], c.buf[n:]
    return out


def test_a_peer_that_knows_the_secret_completes_the_documented_handshake(node):
    n = make_node(node, "a", cluster_secret=SECRET)
    k = SECRET.encode()
    fake = FakePeer(n.port, alias="doc")
    kind, items = parse_typed(fake.hello())
    assert kind == "arr"
    reply = [v for _, v in items]
    hello = [
        str(L.PROTO_VERSION).encode(),
        str(fake.id).encode(),
        str(fake.id).encode(),
        b"doc",
        b"127.0.0.1:1",
        fake.nonce.hex().encode(),
        b"0",
        b"16",
    ]
    channel = f"127.0.0.1:{n.port}".encode()
    t = hashlib.sha256(
        b"constdb-link-v2" + _lp(hello) + b"|" + _lp(reply) + b"|" + _lp([channel])
    ).digest()
    pf = struct.pack("<QB", 0, 0)
    proof_d = _hm(k, b"constdb-link-v2 D" + t + pf)
    fake.send(frame(L.F_AUTH, proof_d + pf))
    ftype, ln = struct.unpack("<BI", _read_exact(fake.c, 5))
    assert (ftype, ln) == (L.F_POS, 41)
    pos = _read_exact(fake.c, 41)
    assert pos[:32] == _hm(k, b"constdb-link-v2 L" + t + proof_d + pos[32:])
    prk = _hm(k, b"constdb-link-v2 session" + t)
    k_dl = _hm(prk, b"dialer to listener\x01")
    k_ld = _hm(prk, b"listener to dialer\x01")

    def tag(key: bytes, seq: int, hdr: bytes, payload: bytes) -> bytes:
        return _hm(key, struct.pack("<Q", seq) + hdr + payload)[:16]

    hdr = struct.pack("<BI", L.F_GETACK, 0)
    fake.send(hdr + tag(k_dl, 0, hdr, b""))
    # every frame the node sends now carries its tag; an ACK answers the GETACK
    seq = 0
    while True:
        hdr = _read_exact(fake.c, 5)
        ftype, ln = struct.unpack("<BI", hdr)
        payload = _read_exact(fake.c, ln)
        assert _read_exact(fake.c, 16) == tag(k_ld, seq, hdr, payload), (seq, ftype)
        seq += 1
        assert ftype != L.F_ERROR, payload
        if ftype == L.F_ACK:
            break
    fake.close()
    assert n.client().ping()


def test_garbage_before_the_proof_leaves_the_node_serving(node):
    n = make_node(node, "a", cluster_secret=SECRET)
    rng = random.Random(9)
    fakes = []
    for i in range(60):
        fake = FakePeer(n.port)
        assert parse_typed(fake.hello())[0] == "arr"
        if i % 3 == 0:
            data = bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 600)))
        elif i % 3 == 1:
            data = frame(rng.randrange(256), os.urandom(rng.randrange(300)))
        else:
            data = frame(L.F_AUTH, os.urandom(41)) + os.urandom(rng.randrange(100))
        try:
            fake.send(data)
        except OSError:
            pass
        fakes.append(fake)
    for f in fakes:
        f.close()
    r = n.client()
    wait_for(lambda: len(r.client_list()) == 1, 10, what="every fake link gone")
    assert r.ping()
    assert "Traceback" not in n.log(), n.log()
