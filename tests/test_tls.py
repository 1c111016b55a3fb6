"""TLS for clients: Redis's tls-* settings, redis-py with ssl, redis-cli --tls,
client certificates (tls_auth_clients), port 0 (TLS only), backpressure.
The CA and certificates are made at run time with the openssl CLI."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import time

import pytest
import redis
from support.certs import CA
from support.nodes import (
    ConstDB,
    RedisServer,
    free_port,
    make_node,
    meet,
    need_tool,
    nodes_info,
    server_cmd,
    wait_converged,
    wait_for,
    wait_linked,
    write_config,
)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    ca = CA(str(d / "ca"))
    other = CA(str(d / "other"), name="Another CA")
    return {
        "ca": ca,
        "server": ca.issue("server"),
        "client": ca.issue("client"),
        "other_ca": other,
        "stranger": other.issue("stranger"),
    }


def tls_cfg(pki, **kw):
    cfg = {
        "tls_port": free_port(),
        "tls_cert_file": pki["server"].cert,
        "tls_key_file": pki["server"].key,
        "tls_ca_cert_file": pki["ca"].cert,
    }
    cfg.update(kw)
    return cfg


def tls_ping(n: ConstDB, ctx: ssl.SSLContext) -> bool:
    with socket.create_connection(("127.0.0.1", n.tls_port), timeout=2) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")


def client_ctx(pki, leaf="client", ca="ca") -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=pki[ca].cert)
    if leaf is not None:
        ctx.load_cert_chain(pki[leaf].cert, pki[leaf].key)
    return ctx


def start_tls(node, pki, port=None, env=None, **kw) -> ConstDB:
    n = node(name=kw.pop("name", None))
    if env:
        n.env = env
    cfg = tls_cfg(pki, **kw)
    n.config = write_config(n.work_dir, **cfg)
    n.tls_port = cfg["tls_port"]
    if port is not None:
        n.port = port
    n.start(wait=port != 0)
    if port == 0:
        try:
            wait_for(lambda: n.alive() and tls_ping(n, client_ctx(pki)), 20, what="the TLS port")
        except AssertionError:
            raise AssertionError(f"constdb-server did not start:\n{n.log()}")
    return n


def tls_client(n: ConstDB, pki, leaf="client", **kw) -> redis.Redis:
    args = dict(
        host="127.0.0.1",
        port=n.tls_port,
        ssl=True,
        ssl_ca_certs=pki["ca"].cert,
        socket_timeout=10,
    )
    if leaf is not None:
        args.update(ssl_certfile=pki[leaf].cert, ssl_keyfile=pki[leaf].key)
    args.update(kw)
    return redis.Redis(**args)


def refused(ctx: ssl.SSLContext, port: int) -> bool:
    """The server refuses this client: the handshake or the first reply fails."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
                s.sendall(b"PING\r\n")  # TLS 1.3: the refusal arrives on the first read
                return not s.recv(64).startswith(b"+PONG")
    except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
        return True


def test_redis_py_over_tls_beside_the_plain_port(node, pki):
    n = start_tls(node, pki)
    c = tls_client(n, pki)
    assert c.set("k", "v") is True
    assert c.get("k") == b"v"
    # the plain port serves the same data
    assert n.client().get("k") == b"v"
    cfg = n.client().config_get("tls-*")
    assert cfg["tls-port"] == str(n.tls_port)
    assert cfg["tls-auth-clients"] == "yes"
    assert cfg["tls-replication"] == "no"
    assert cfg["tls-cert-file"] == pki["server"].cert
    assert n.client().config_get("tls_port") == {"tls_port": str(n.tls_port)}
    info = c.info("server")
    assert info["tcp_port"] == n.port
    # CLIENT LIST shows the TLS client like any other
    assert c.client_list()[0]["laddr"].endswith(f":{n.tls_port}")


def test_redis_cli_tls(node, pki):
    n = start_tls(node, pki)
    cli = need_tool("redis-cli")
    base = [cli, "-h", "127.0.0.1", "-p", str(n.tls_port), "--tls", "--cacert", pki["ca"].cert]
    cert = ["--cert", pki["client"].cert, "--key", pki["client"].key]
    out = subprocess.run(base + cert + ["SET", "a", "1"], capture_output=True, text=True)
    assert out.stdout.strip() == "OK", out
    out = subprocess.run(base + cert + ["INCR", "a"], capture_output=True, text=True)
    assert out.stdout.strip() == "2", out
    # without a client certificate: refused
    out = subprocess.run(base + ["GET", "a"], capture_output=True, text=True, timeout=20)
    assert "2" not in out.stdout, out


def test_client_certificates(node, pki):
    yes = start_tls(node, pki, name="yes")
    no = start_tls(node, pki, name="no", tls_auth_clients="no")
    opt = start_tls(node, pki, name="optional", tls_auth_clients="optional")
    bare = client_ctx(pki, leaf=None)
    stranger = client_ctx(pki, leaf="stranger")
    # yes (the default): a certificate signed by the CA is required
    assert refused(bare, yes.tls_port)
    assert refused(stranger, yes.tls_port)
    assert tls_ping(yes, client_ctx(pki))
    # no: none is asked for
    assert tls_ping(no, bare)
    assert tls_client(no, pki, leaf=None).set("x", 1) is True
    # optional: none is fine, a bad one is refused
    assert tls_ping(opt, bare)
    assert tls_ping(opt, client_ctx(pki))
    assert refused(stranger, opt.tls_port)
    # the nodes keep serving after the refusals
    assert tls_client(yes, pki).ping() is True
    # the client verifies the server too: a client trusting another CA refuses it
    with pytest.raises(redis.ConnectionError):
        tls_client(yes, pki, ssl_ca_certs=pki["other_ca"].cert).ping()


def test_port_0_serves_tls_only(node, pki):
    n = start_tls(node, pki, port=0)
    c = tls_client(n, pki)
    assert c.set("only", "tls") is True
    assert c.config_get("port") == {"port": "0"}
    assert c.info("server")["tcp_port"] == 0
    n.stop()
    assert f"address=127.0.0.1:0 tls_port={n.tls_port}" in n.log()


def test_protocols_and_ciphersuites(node, pki):
    n = start_tls(
        node,
        pki,
        tls_protocols="TLSv1.3",
        tls_ciphersuites="TLS_CHACHA20_POLY1305_SHA256",
    )
    ctx = client_ctx(pki)
    with socket.create_connection(("127.0.0.1", n.tls_port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            assert s.version() == "TLSv1.3"
            assert s.cipher()[0] == "TLS_CHACHA20_POLY1305_SHA256"
    # a client that speaks only TLS 1.2 is refused
    old = client_ctx(pki)
    old.maximum_version = ssl.TLSVersion.TLSv1_2
    assert refused(old, n.tls_port)
    v12 = start_tls(node, pki, name="v12", tls_protocols="TLSv1.2", tls_ciphers="ECDHE+AESGCM")
    with socket.create_connection(("127.0.0.1", v12.tls_port), timeout=5) as raw:
        with client_ctx(pki).wrap_socket(raw, server_hostname="127.0.0.1") as s:
            assert s.version() == "TLSv1.2"
            assert "GCM" in s.cipher()[0]
    assert n.client().config_get("tls-protocols") == {"tls-protocols": "TLSv1.3"}


def test_pipelined_large_replies_over_tls(node, pki):
    """Replies far larger than the transport's buffer, asked for in one
    pipeline: the node pauses the client until it reads (backpressure)."""
    n = start_tls(node, pki)
    c = tls_client(n, pki)
    big = b"x" * (512 * 1024)
    c.set("big", big)
    p = c.pipeline(transaction=False)
    for _ in range(64):
        p.get("big")
    p.incr("after")
    out = p.execute()
    assert out[:64] == [big] * 64
    assert out[64] == 1
    assert c.ping() is True


def run_server(tmp_path, **cfg):
    path = write_config(str(tmp_path), **cfg)
    return subprocess.run(
        [*server_cmd(), path, "--work-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.mark.parametrize(
    "bad, expect",
    [
        ({"tls_cert_file": "/nonexistent/cert.pem"}, "key 'tls_cert_file'"),
        ({"tls_key_file": "/nonexistent/key.pem"}, "key 'tls_key_file'"),
        ({"tls_cert_file": ""}, "key 'tls_cert_file'"),
        ({"tls_ca_cert_file": "/nonexistent/ca.pem"}, "key 'tls_ca_cert_file'"),
        ({"tls_ca_cert_file": ""}, "key 'tls_ca_cert_file'"),
        ({"tls_protocols": "TLSv9"}, "key 'tls_protocols'"),
        ({"tls_protocols": "TLSv1.1 TLSv1.3"}, "key 'tls_protocols'"),
        ({"tls_ciphersuites": "NOPE"}, "key 'tls_ciphersuites'"),
        ({"tls_ciphers": "NOPE"}, "key 'tls_ciphers'"),
        ({"tls_auth_clients": "maybe"}, "key 'tls_auth_clients'"),
        ({"port": 0, "tls_port": 0}, "key 'port'"),
    ],
)
def test_bad_tls_config_is_one_line(tmp_path, pki, bad, expect):
    cfg = tls_cfg(pki, port=free_port())
    cfg.update(bad)
    out = run_server(tmp_path, **cfg)
    assert out.returncode == 2, out
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and expect in lines[0], out.stderr


# ---- tls_replication: links over mutual TLS ---------------------------------------------


def tls_member(node, pki, name: str, ca: str = "ca", trust: str = "", **kw) -> ConstDB:
    leaf = pki[ca].issue(name)
    cfg = tls_cfg(
        pki,
        tls_replication=True,
        tls_cert_file=leaf.cert,
        tls_key_file=leaf.key,
        tls_ca_cert_file=pki[trust or ca].cert,
        **kw,
    )
    n = make_node(node, name, start=False, **cfg)
    n.tls_port = cfg["tls_port"]
    return n.start()


def tls_addr(n: ConstDB) -> str:
    return f"127.0.0.1:{n.tls_port}"


def test_three_nodes_linked_over_mutual_tls_converge(node, pki):
    # a's clients need no certificate; its links still do
    a = tls_member(node, pki, "a", tls_auth_clients="no")
    b, c = (tls_member(node, pki, name) for name in ("b", "c"))
    assert meet(a, b, tls_addr(b)) == 1
    assert meet(c, a, tls_addr(a)) == 1
    wait_linked([a, b, c])
    for n in (a, b, c):
        # every member is known by its TLS address
        addrs = {r["alias"]: r["addr"] for r in nodes_info(n)}
        assert addrs == {name: tls_addr(x) for name, x in zip("abc", (a, b, c))}
    for i, n in enumerate((a, b, c)):
        n.client().set(f"k{i}", i)
        n.client().sadd("s", i)
    digest = wait_converged([a, b, c])
    assert digest
    assert sorted(c.client().smembers("s")) == [b"0", b"1", b"2"]
    assert a.client().get("k2") == b"2"
    # a link on the plain port is refused when links run over TLS
    with socket.create_connection(("127.0.0.1", a.port), timeout=5) as s:
        s.sendall(b"CDB.LINK 2 12345 12345 x 127.0.0.1:1 " + b"00" * 16 + b" 0\r\n")
        assert s.recv(256).startswith(b"-ERR TLS links need a TLS connection")
    # ... and so is one over TLS without a certificate (a's clients need none)
    bare = client_ctx(pki, leaf=None)
    assert tls_ping(a, bare)
    with socket.create_connection(("127.0.0.1", a.tls_port), timeout=5) as raw:
        with bare.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            s.sendall(b"CDB.LINK 2 12345 12345 x 127.0.0.1:1 " + b"00" * 16 + b" 0\r\n")
            assert s.recv(256).startswith(b"-ERR TLS links need a TLS connection")


def test_peer_with_a_certificate_from_another_ca_is_refused(node, pki):
    a = tls_member(node, pki, "good")
    stranger = tls_member(node, pki, "evil", ca="other_ca")
    # a dials the stranger: the stranger's certificate fails a's verification
    with pytest.raises(redis.ResponseError, match="certificate verify failed"):
        meet(a, stranger, tls_addr(stranger))
    wait_for(
        lambda: f"TLS link to {tls_addr(stranger)} failed: certificate verify failed" in a.log(),
        10,
        what="the refusal in the log",
    )
    # the stranger dials a: refused too (a's certificate fails its check, and
    # its own certificate would fail a's)
    with pytest.raises(redis.ResponseError):
        meet(stranger, a, tls_addr(a))
    # a stranger that trusts the group's CA but holds another CA's
    # certificate: a's TLS port refuses its certificate
    spy = tls_member(node, pki, "spy", ca="other_ca", trust="ca")
    with pytest.raises(redis.ResponseError):
        meet(spy, a, tls_addr(a))
    wait_for(
        lambda: "TLS handshake from a client or peer failed: certificate verify failed" in a.log(),
        10,
        what="the refusal in the log",
    )
    for n in (a, stranger, spy):
        assert [r["state"] for r in nodes_info(n)] == ["myself"]
    assert a.client().ping() is True


def test_ca_cert_dir(node, pki, tmp_path):
    """tls_ca_cert_dir alone: a directory of hashed CA names (openssl rehash)."""
    d = tmp_path / "cas"
    d.mkdir()
    shutil.copy(pki["ca"].cert, d / "group-ca.pem")
    subprocess.run([need_tool("openssl"), "rehash", str(d)], check=True, capture_output=True)
    n = start_tls(node, pki, tls_ca_cert_file="", tls_ca_cert_dir=str(d))
    assert tls_client(n, pki).ping() is True
    assert refused(client_ctx(pki, leaf="stranger"), n.tls_port)
    assert n.client().config_get("tls-ca-cert-dir") == {"tls-ca-cert-dir": str(d)}


# ---- CONFIG SET of the TLS settings at runtime ---------------------------------------------


def served_cert_cn(port: int, ctx: ssl.SSLContext) -> str:
    """The CN of the certificate the TLS port presents to a new connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            subject = dict(x[0] for x in s.getpeercert()["subject"])
            s.sendall(b"PING\r\n")
            assert s.recv(64) == b"+PONG\r\n"
            return subject["commonName"]


def test_config_set_tls_cert_file_serves_the_new_certificate_to_new_connections(node, pki):
    n = start_tls(node, pki)
    renewed = pki["ca"].issue("renewed")
    ctx = client_ctx(pki)
    assert served_cert_cn(n.tls_port, ctx) == "server"
    before = tls_client(n, pki)
    assert before.ping()
    admin = n.client()
    # the certificate alone does not match the old key: refused, nothing changes
    with pytest.raises(redis.ResponseError) as e:
        admin.config_set("tls-cert-file", renewed.cert)
    assert str(e.value) == (
        "CONFIG SET failed (possibly related to argument 'tls-cert-file') -"
        " Unable to update TLS configuration. Check server logs."
    )
    assert admin.config_get("tls-cert-file")["tls-cert-file"] == pki["server"].cert
    assert "cannot load the certificate" in n.log()
    assert served_cert_cn(n.tls_port, ctx) == "server"
    assert admin.execute_command(
        "CONFIG", "SET", "tls-cert-file", renewed.cert, "tls-key-file", renewed.key
    )
    wait_for(lambda: served_cert_cn(n.tls_port, ctx) == "renewed", 5, what="the new certificate")
    assert before.ping()  # a connection made before keeps working
    assert before.set("k", "v") and tls_client(n, pki).get("k") == b"v"


def test_config_set_tls_refused_change_keeps_serving_the_old_settings(node, pki):
    n = start_tls(node, pki)
    admin = n.client()
    with pytest.raises(redis.ResponseError) as e:
        admin.config_set("tls-ca-cert-file", "/nonexistent/ca.crt")
    assert str(e.value) == (
        "CONFIG SET failed (possibly related to argument 'tls-ca-cert-file') -"
        " Unable to update TLS configuration. Check server logs."
    )
    assert admin.config_get("tls-ca-cert-file")["tls-ca-cert-file"] == pki["ca"].cert
    assert tls_ping(n, client_ctx(pki))
    with pytest.raises(redis.ResponseError) as e:
        admin.config_set("tls-protocols", "TLSv1 TLSv1.3")
    assert "Unable to update TLS configuration" in str(e.value)
    assert tls_ping(n, client_ctx(pki))
    with pytest.raises(redis.ResponseError) as e:
        admin.config_set("tls-replication", "yes")
    assert "can't set immutable config" in str(e.value)


def test_config_set_tls_auth_clients_at_runtime(node, pki):
    n = start_tls(node, pki)
    anonymous = client_ctx(pki, leaf=None)
    wait_for(lambda: refused(anonymous, n.tls_port), 5, what="a refusal")
    assert n.client().config_set("tls-auth-clients", "no")
    wait_for(lambda: tls_ping(n, anonymous), 5, what="a client without a certificate")
    assert n.client().config_set("tls-auth-clients", "yes")
    wait_for(lambda: refused(anonymous, n.tls_port), 5, what="a refusal again")
    assert tls_ping(n, client_ctx(pki))


def test_config_set_tls_port_moves_opens_and_closes_the_tls_port(node, pki):
    n = start_tls(node, pki)
    admin = n.client()
    old, new = n.tls_port, free_port()
    assert admin.config_set("tls-port", new)
    n.tls_port = new
    wait_for(lambda: tls_ping(n, client_ctx(pki)), 5, what="the new TLS port")

    def closed(port: int) -> bool:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
        except ConnectionRefusedError:
            return True
        return False

    assert closed(old)
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    try:
        with pytest.raises(redis.ResponseError) as e:
            admin.config_set("tls-port", busy.getsockname()[1])
        assert str(e.value) == (
            "CONFIG SET failed (possibly related to argument 'tls-port') -"
            " Unable to listen on this port. Check server logs."
        )
    finally:
        busy.close()
    assert admin.config_get("tls-port")["tls-port"] == str(new)
    assert tls_ping(n, client_ctx(pki))
    assert admin.config_set("tls-port", 0)
    assert closed(new)
    assert admin.ping()  # the plain port stays
    # TLS comes back on a port given at runtime
    n.tls_port = free_port()
    assert admin.config_set("tls-port", n.tls_port)
    wait_for(lambda: tls_ping(n, client_ctx(pki)), 5, what="TLS again")


def test_config_set_tls_port_0_refused_without_a_plain_port(node, pki):
    n = start_tls(node, pki, port=0)
    c = tls_client(n, pki)
    with pytest.raises(redis.ResponseError) as e:
        c.config_set("tls-port", 0)
    assert "needs a tls_port" in str(e.value)
    assert c.ping()


# ---- TLS sessions: tls-session-caching, -cache-size, -cache-timeout, beside redis-server ----


class RedisTLS(RedisServer):
    """A redis-server with a plain port and a TLS port (this module's PKI),
    extra settings as `--name value` pairs."""

    def __init__(self, work_dir: str, pki, **settings):
        super().__init__(work_dir)
        self.tls_port = free_port()
        self.settings = {
            "tls-port": self.tls_port,
            "tls-cert-file": pki["server"].cert,
            "tls-key-file": pki["server"].key,
            "tls-ca-cert-file": pki["ca"].cert,
            **{k.replace("_", "-"): v for k, v in settings.items()},
        }

    def start(self) -> RedisTLS:
        logf = open(self.log_path, "ab")
        argv = [self.exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", self.work_dir, "--daemonize", "no"]  # fmt: skip
        for k, v in self.settings.items():
            argv += [f"--{k}", str(v)]
        self.proc = subprocess.Popen(argv, stdout=logf, stderr=subprocess.STDOUT,
                                     cwd=self.work_dir)  # fmt: skip
        logf.close()
        wait_for(lambda: self.alive() and self.ping(), 20, what="redis-server")
        return self


@pytest.fixture
def redis_tls(tmp_path, pki):
    started: list[RedisTLS] = []

    def make(**settings) -> RedisTLS:
        r = RedisTLS(str(tmp_path / f"redis{len(started)}"), pki, **settings)
        started.append(r)
        return r.start()

    yield make
    for r in started:
        r.stop()


def session_ctx(pki, version: ssl.TLSVersion, tickets: bool = True) -> ssl.SSLContext:
    ctx = client_ctx(pki)
    ctx.minimum_version = ctx.maximum_version = version
    if not tickets:
        ctx.options |= ssl.OP_NO_TICKET  # TLS 1.2: resume by session id only
    return ctx


def tls_session(port: int, ctx: ssl.SSLContext, session=None, clean: bool = False):
    """One connection (PING), offering session if given: (its session for
    later, whether it resumed the one offered). clean: send close_notify
    before closing (redis-server closes without answering it), else drop the
    TCP connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        s = ctx.wrap_socket(raw, server_hostname="127.0.0.1", session=session)
        s.sendall(b"PING\r\n")
        assert s.recv(64) == b"+PONG\r\n"  # TLS 1.3 tickets came before the reply
        got = s.session, s.session_reused
        if clean:
            try:
                s.unwrap()
            except ssl.SSLEOFError:
                pass
        return got


def resumes(port: int, ctx: ssl.SSLContext, session) -> bool:
    return tls_session(port, ctx, session)[1]


V12, V13 = ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3


def test_tls_session_caching_resumes_sessions_as_redis_does(node, pki, redis_tls):
    n, r = start_tls(node, pki), redis_tls()
    want = {"tls-session-caching": "yes", "tls-session-cache-size": "20480",
            "tls-session-cache-timeout": "300"}  # fmt: skip
    assert r.client().config_get("tls-session-*") == want
    assert n.client().config_get("tls-session-*") == want
    for port in (n.tls_port, r.tls_port):
        for version in (V12, V13):
            ctx = session_ctx(pki, version)
            first, reused = tls_session(port, ctx)
            assert not reused
            assert resumes(port, ctx, first), (port, version)
            assert resumes(port, ctx, first), (port, version)  # a ticket serves again
    # TLS 1.2 without tickets: by session id, from the node's cache (not
    # compared: redis-server closes without answering a client's close_notify,
    # and OpenSSL then drops the session from its cache)
    ctx = session_ctx(pki, V12, tickets=False)
    sid = tls_session(n.tls_port, ctx, clean=True)[0]
    assert resumes(n.tls_port, ctx, sid)
    # off at runtime: no session is resumed any more, old or new; not
    # compared, redis-server refuses a client that offers one (see
    # constdb.tls._session_cache)
    c = n.client()
    olds = {}
    for version in (V12, V13):
        ctx = session_ctx(pki, version)
        olds[version] = ctx, tls_session(n.tls_port, ctx)[0]
    assert c.config_set("tls-session-caching", "no")
    assert c.config_get("tls-session-caching") == {"tls-session-caching": "no"}
    for version, (ctx, old) in olds.items():
        assert not resumes(n.tls_port, ctx, old), version
        new = tls_session(n.tls_port, ctx)[0]
        assert not resumes(n.tls_port, ctx, new), version
    assert n.client().config_set("tls-session-caching", "yes")
    ctx = session_ctx(pki, V13)
    assert resumes(n.tls_port, ctx, tls_session(n.tls_port, ctx)[0])
    assert "Traceback" not in n.log()


def test_tls_session_caching_off_in_the_file(node, pki):
    n = start_tls(node, pki, tls_session_caching=False)
    for version in (V12, V13):
        ctx = session_ctx(pki, version)
        sess, reused = tls_session(n.tls_port, ctx)
        assert not reused and not sess.has_ticket
        assert not resumes(n.tls_port, ctx, sess), version
    # a session from a node with caching on is not resumed: a full handshake
    on = start_tls(node, pki, name="on")
    ctx = session_ctx(pki, V13)
    sess = tls_session(on.tls_port, ctx)[0]
    assert sess.has_ticket and resumes(on.tls_port, ctx, sess)
    on.stop()
    assert n.client().config_set("tls-port", on.tls_port)
    wait_for(lambda: tls_ping(on, client_ctx(pki)), 5, what="the moved TLS port")
    assert not resumes(on.tls_port, ctx, sess)
    assert "Traceback" not in n.log()


def test_tls_session_cache_size_bounds_the_sessions_kept(node, pki):
    # TLS 1.2 clients that resume by session id find their session in the
    # node's cache: with room for one, the older of two is gone (tickets carry
    # their session and are not bounded by it, in Redis neither)
    n = start_tls(node, pki, tls_session_cache_size=1)
    ctx = session_ctx(pki, V12, tickets=False)
    a = tls_session(n.tls_port, ctx, clean=True)[0]
    b = tls_session(n.tls_port, ctx, clean=True)[0]
    assert resumes(n.tls_port, ctx, b)
    assert not resumes(n.tls_port, ctx, a)
    assert n.client().config_set("tls-session-cache-size", 0)  # no limit
    a = tls_session(n.tls_port, ctx, clean=True)[0]
    b = tls_session(n.tls_port, ctx, clean=True)[0]
    assert resumes(n.tls_port, ctx, a) and resumes(n.tls_port, ctx, b)
    with pytest.raises(redis.ResponseError):
        n.client().config_set("tls-session-cache-size", -1)
    with_tickets = session_ctx(pki, V12)
    a = tls_session(n.tls_port, with_tickets)[0]
    assert n.client().config_set("tls-session-cache-size", 1)
    # the new context has new ticket keys: sessions made before are not resumed
    assert not resumes(n.tls_port, with_tickets, a)
    a = tls_session(n.tls_port, with_tickets)[0]
    tls_session(n.tls_port, with_tickets)
    assert resumes(n.tls_port, with_tickets, a)


def test_tls_session_cache_timeout_ends_resumption(node, pki, redis_tls):
    n = start_tls(node, pki, tls_session_cache_timeout=1)
    r = redis_tls(tls_session_cache_timeout=1)
    sessions = {}
    for port in (n.tls_port, r.tls_port):
        for version in (V12, V13):
            ctx = session_ctx(pki, version)
            sessions[port, version] = (ctx, tls_session(port, ctx)[0])
    # both are resumable at first, then (after one to two seconds) neither
    for (port, version), (ctx, sess) in sessions.items():
        assert resumes(port, ctx, sess), (port, version)
    for (port, version), (ctx, sess) in sessions.items():
        wait_for(lambda p=port, c=ctx, s=sess: not resumes(p, c, s), 10, what=f"expiry {version}")


# ---- the TLS layer of the client port (constdb/_core/tlsconn.pyx) --------------------------


def test_plain_text_on_the_tls_port_is_refused_and_logged(node, pki):
    n = start_tls(node, pki)
    with socket.create_connection(("127.0.0.1", n.tls_port), timeout=5) as s:
        s.sendall(b"PING\r\n")
        assert s.recv(64) == b""  # closed, no reply
    wait_for(lambda: "TLS handshake from a client or peer failed" in n.log(), 5, what="a log line")
    assert tls_ping(n, client_ctx(pki))
    assert "Traceback" not in n.log()


def test_close_notify_from_a_client_ends_its_connection(node, pki):
    n = start_tls(node, pki)
    admin = n.client()
    raw = socket.create_connection(("127.0.0.1", n.tls_port), timeout=5)
    s = client_ctx(pki).wrap_socket(raw, server_hostname="127.0.0.1")
    s.sendall(b"CLIENT SETNAME leaving\r\n")
    assert s.recv(64) == b"+OK\r\n"
    assert any(c["name"] == "leaving" for c in admin.client_list())
    plain = s.unwrap()  # sends close_notify, waits for the node's
    plain.close()
    wait_for(lambda: all(c["name"] != "leaving" for c in admin.client_list()), 5, what="the close")


@pytest.mark.slow
def test_a_handshake_that_never_ends_is_closed_after_the_timeout(node, pki):
    n = start_tls(node, pki)
    s = socket.create_connection(("127.0.0.1", n.tls_port), timeout=30)
    t0 = time.monotonic()
    s.sendall(b"\x16\x03\x01")  # the start of a ClientHello, never finished
    assert n.client().ping()  # the node serves meanwhile
    assert s.recv(64) == b""
    assert 9 <= time.monotonic() - t0 < 20
    s.close()
    assert "TLS handshake timed out" in n.log()


# Records go through OpenSSL directly (the native path) unless the start-up
# check fails or CONSTDB_TLS_PYTHON=1 forces the Python-level path: both run
# the same traffic.
NATIVE_LINE = "TLS records are read and written by direct calls into OpenSSL"
FORCED_LINE = "TLS records take the Python-level path (CONSTDB_TLS_PYTHON is set)"


def raw_tls(n: ConstDB, pki) -> tuple[socket.socket, ssl.SSLObject, ssl.MemoryBIO, ssl.MemoryBIO]:
    """A TLS client over memory BIOs on a plain socket, handshake done: the
    test controls every byte that goes out."""
    sock = socket.create_connection(("127.0.0.1", n.tls_port), timeout=10)
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = client_ctx(pki).wrap_bio(inc, out, server_hostname="127.0.0.1")
    while True:
        try:
            obj.do_handshake()
            break
        except ssl.SSLWantReadError:
            sock.sendall(out.read())
            data = sock.recv(65536)
            assert data, "closed during the handshake"
            inc.write(data)
    sock.sendall(out.read())
    return sock, obj, inc, out


def read_replies(
    sock: socket.socket, obj: ssl.SSLObject, inc: ssl.MemoryBIO, until: bytes
) -> bytes:
    got = b""
    while not got.endswith(until):
        try:
            got += obj.read(1 << 20)
            continue
        except ssl.SSLWantReadError:
            pass
        data = sock.recv(1 << 20)
        assert data, f"closed after {len(got)} bytes"
        inc.write(data)
    return got


def closed(sock: socket.socket) -> bool:
    """Whether the node closes sock within its timeout (what it sends before,
    an alert or close_notify, is skipped)."""
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        pass
    except socket.timeout:
        return False
    return True


@pytest.mark.parametrize("path", ["native", "python"])
def test_records_through_both_paths_of_the_tls_layer(node, pki, path):
    env = {"CONSTDB_TLS_PYTHON": "1"} if path == "python" else None
    n = start_tls(node, pki, env=env)
    wait_for(lambda: (NATIVE_LINE if path == "native" else FORCED_LINE) in n.log(), 5,
             what="the TLS path's log line")  # fmt: skip
    assert (FORCED_LINE if path == "native" else NATIVE_LINE) not in n.log()
    c = tls_client(n, pki)
    # a value of many records each way (a request read in many TCP reads)
    big = bytes(range(256)) * 4096 + b"end"
    assert c.set("big", big)
    assert c.get("big") == big
    # a pipeline larger than one hand-over to the Client (256 KiB), in one send
    sock, obj, inc, out = raw_tls(n, pki)
    reqs = b"".join(
        b"*3\r\n$3\r\nSET\r\n$%d\r\nk%d\r\n$300\r\n%s\r\n" % (len(b"k%d" % i), i, b"v" * 300)
        for i in range(2000)
    )
    obj.write(reqs + b"*2\r\n$3\r\nGET\r\n$5\r\nk1999\r\n")
    sock.sendall(out.read())
    replies = read_replies(sock, obj, inc, b"$300\r\n" + b"v" * 300 + b"\r\n")
    assert replies == b"+OK\r\n" * 2000 + b"$300\r\n" + b"v" * 300 + b"\r\n"
    assert c.dbsize() == 2001
    # a record that does not decrypt closes that connection, logged, and only it
    sock.sendall(b"\x17\x03\x03\x00\x20" + bytes(range(32)))
    assert closed(sock)
    sock.close()
    wait_for(lambda: "TLS connection closed: error reading" in n.log(), 5, what="a log line")
    assert c.get("big") == big
    # close_notify ends a connection that is in the middle of nothing
    sock, obj, inc, out = raw_tls(n, pki)
    obj.write(b"PING\r\n")
    sock.sendall(out.read())
    assert read_replies(sock, obj, inc, b"\r\n") == b"+PONG\r\n"
    with pytest.raises(ssl.SSLWantReadError):
        obj.unwrap()
    sock.sendall(out.read())
    assert closed(sock)
    sock.close()
    assert "Traceback" not in n.log()
