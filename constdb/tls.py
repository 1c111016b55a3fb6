"""TLS for clients and for the group's links, with Redis's settings.

`server_context` builds the context of the TLS client port (tls_port) from
tls_cert_file, tls_key_file, tls_ca_cert_file / tls_ca_cert_dir,
tls_auth_clients (yes: a client certificate signed by the CA is required; no:
none is asked for; optional: one is verified if sent), tls_protocols ("TLSv1.2
TLSv1.3"), tls_ciphers (TLS 1.2) and tls_ciphersuites (TLS 1.3).
`link_contexts` builds the two contexts of mutual-TLS replication links
(tls_replication): both sides present this node's certificate and verify the
other's against the CA. A problem raises ConfigError with one line naming the key.
"""

from __future__ import annotations

import ctypes
import logging
import os
import ssl
import time
from typing import Any, Optional

from constdb.config import ConfigError

_PROTOCOLS = {
    "tlsv1": ssl.TLSVersion.TLSv1,
    "tlsv1.1": ssl.TLSVersion.TLSv1_1,
    "tlsv1.2": ssl.TLSVersion.TLSv1_2,
    "tlsv1.3": ssl.TLSVersion.TLSv1_3,
}
_ORDER = ["tlsv1", "tlsv1.1", "tlsv1.2", "tlsv1.3"]


def enabled(cfg: Any) -> bool:
    """Whether anything needs a TLS context (a TLS port or TLS links)."""
    return bool(cfg.tls_port or cfg.tls_replication)


_libssl: Optional[ctypes.CDLL] = None


def _ssl_lib() -> ctypes.CDLL:
    """libssl's functions that Python's ssl module does not expose, through
    `_ssl`'s own handle (so the libssl it was linked with)."""
    global _libssl
    if _libssl is None:
        lib = ctypes.CDLL(ssl._ssl.__file__)  # type: ignore[attr-defined]
        lib.SSL_CTX_set_ciphersuites.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        lib.SSL_CTX_set_ciphersuites.restype = ctypes.c_int
        lib.SSL_CTX_ctrl.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_long, ctypes.c_void_p]
        lib.SSL_CTX_ctrl.restype = ctypes.c_long
        lib.SSL_CTX_set_timeout.argtypes = [ctypes.c_void_p, ctypes.c_long]
        lib.SSL_CTX_set_timeout.restype = ctypes.c_long
        lib.SSL_CTX_set_session_id_context.argtypes = [
            ctypes.c_void_p,
            ctypes.c_char_p,
            ctypes.c_uint,
        ]
        lib.SSL_CTX_set_session_id_context.restype = ctypes.c_int
        _libssl = lib
    return _libssl


def _ctx_ptr(ctx: ssl.SSLContext) -> int:
    """The context's SSL_CTX* (the first field after the object header)."""
    return ctypes.c_void_p.from_address(id(ctx) + object.__basicsize__).value or 0


def _set_ciphersuites(ctx: ssl.SSLContext, suites: str) -> bool:
    """SSL_CTX_set_ciphersuites, which Python's ssl module does not expose."""
    return bool(_ssl_lib().SSL_CTX_set_ciphersuites(_ctx_ptr(ctx), suites.encode()))


# openssl/ssl.h
_SSL_CTRL_SET_SESS_CACHE_SIZE = 42
_SSL_CTRL_SET_SESS_CACHE_MODE = 44
_SSL_CTRL_BUILD_CERT_CHAIN = 105
_SSL_SESS_CACHE_OFF = 0
_SSL_SESS_CACHE_SERVER = 2
_SSL_BUILD_CHAIN_FLAG_IGNORE_ERROR = 0x8
_SSL_BUILD_CHAIN_FLAG_CLEAR_ERROR = 0x10
SESSION_ID_CONTEXT = b"constdb"


def _build_chain(ctx: ssl.SSLContext) -> None:
    """The chain this node sends with its certificate, built once from the
    CA store (SSL_CTX_build_cert_chain): without it OpenSSL builds the same
    chain again in every handshake (an X509_verify_cert of our own
    certificate, its signature checked each time). The chain sent is the same
    (the root included, as the automatic chain has it); where the CA is not
    known it is as much of the chain as can be built, as before."""
    _ssl_lib().SSL_CTX_ctrl(
        _ctx_ptr(ctx),
        _SSL_CTRL_BUILD_CERT_CHAIN,
        _SSL_BUILD_CHAIN_FLAG_IGNORE_ERROR | _SSL_BUILD_CHAIN_FLAG_CLEAR_ERROR,
        None,
    )


def _session_cache(ctx: ssl.SSLContext, cfg: Any) -> None:
    """Redis's tls-session-caching, tls-session-cache-size and
    tls-session-cache-timeout on the TLS port's context, on as Redis sets
    them: a client may resume a session (an abbreviated handshake, by a TLS
    1.3 ticket, a TLS 1.2 ticket or a TLS 1.2 session id) for
    tls_session_cache_timeout seconds; the server keeps at most
    tls_session_cache_size sessions (0: no limit) for the clients that resume
    by session id. The tickets are stateless (the session, encrypted, is in
    the ticket) and a TLS 1.3 handshake sends two, OpenSSL's default, as
    Redis does.

    Off, no ticket is sent and no session is kept: a client that offers one
    gets a full handshake. (Redis, off, still sends tickets and drops its
    session id context, so that a client offering one of them is refused
    with an internal error alert when client certificates are verified.)"""
    lib, ptr = _ssl_lib(), _ctx_ptr(ctx)
    # a session is resumed only by the context that made it (and OpenSSL
    # refuses resumption with client certificates without an id context)
    lib.SSL_CTX_set_session_id_context(ptr, SESSION_ID_CONTEXT, len(SESSION_ID_CONTEXT))
    if not cfg.tls_session_caching:
        lib.SSL_CTX_ctrl(ptr, _SSL_CTRL_SET_SESS_CACHE_MODE, _SSL_SESS_CACHE_OFF, None)
        ctx.options |= ssl.OP_NO_TICKET  # no TLS 1.2 tickets, TLS 1.3 ones looked up in no cache
        ctx.num_tickets = 0
        return
    lib.SSL_CTX_ctrl(ptr, _SSL_CTRL_SET_SESS_CACHE_MODE, _SSL_SESS_CACHE_SERVER, None)
    lib.SSL_CTX_ctrl(ptr, _SSL_CTRL_SET_SESS_CACHE_SIZE, cfg.tls_session_cache_size, None)
    lib.SSL_CTX_set_timeout(ptr, cfg.tls_session_cache_timeout)


def _base(cfg: Any, purpose: int) -> ssl.SSLContext:
    ctx = ssl.SSLContext(purpose)
    where = cfg.where
    if not cfg.tls_cert_file or not cfg.tls_key_file:
        key = "tls_cert_file" if not cfg.tls_cert_file else "tls_key_file"
        raise ConfigError(
            f"{where(key)}: key '{key}': TLS needs tls_cert_file and tls_key_file (PEM files)"
        )
    for key in ("tls_cert_file", "tls_key_file", "tls_ca_cert_file"):
        path = cfg.get(key)
        if path and not os.path.isfile(path):
            raise ConfigError(f"{where(key)}: key '{key}': cannot read {path!r}: no such file")
    if cfg.tls_ca_cert_dir and not os.path.isdir(cfg.tls_ca_cert_dir):
        raise ConfigError(
            f"{where('tls_ca_cert_dir')}: key 'tls_ca_cert_dir': {cfg.tls_ca_cert_dir!r}"
            " is not a directory"
        )
    try:
        ctx.load_cert_chain(cfg.tls_cert_file, cfg.tls_key_file)
    except (ssl.SSLError, OSError) as e:
        raise ConfigError(
            f"{where('tls_cert_file')}: key 'tls_cert_file': cannot load the certificate"
            f" {cfg.tls_cert_file!r} with the key {cfg.tls_key_file!r}: {_reason(e)}"
        ) from None
    if cfg.tls_ca_cert_file or cfg.tls_ca_cert_dir:
        key = "tls_ca_cert_file" if cfg.tls_ca_cert_file else "tls_ca_cert_dir"
        try:
            ctx.load_verify_locations(
                cafile=cfg.tls_ca_cert_file or None, capath=cfg.tls_ca_cert_dir or None
            )
        except (ssl.SSLError, OSError) as e:
            raise ConfigError(
                f"{where(key)}: key '{key}': cannot load CA certificates: {_reason(e)}"
            ) from None
    names = cfg.tls_protocols.lower().split() or ["tlsv1.2", "tlsv1.3"]
    idx = sorted(_ORDER.index(n) for n in names)
    if idx != list(range(idx[0], idx[-1] + 1)):
        raise ConfigError(
            f"{where('tls_protocols')}: key 'tls_protocols': the protocols must be"
            f" consecutive versions, got {cfg.tls_protocols!r}"
        )
    ctx.minimum_version = _PROTOCOLS[_ORDER[idx[0]]]
    ctx.maximum_version = _PROTOCOLS[_ORDER[idx[-1]]]
    if cfg.tls_ciphers:
        try:
            ctx.set_ciphers(cfg.tls_ciphers)
        except ssl.SSLError:
            raise ConfigError(
                f"{where('tls_ciphers')}: key 'tls_ciphers': no cipher matches {cfg.tls_ciphers!r}"
            ) from None
    if cfg.tls_ciphersuites and not _set_ciphersuites(ctx, cfg.tls_ciphersuites):
        raise ConfigError(
            f"{where('tls_ciphersuites')}: key 'tls_ciphersuites': no TLS 1.3 cipher suite"
            f" matches {cfg.tls_ciphersuites!r}"
        )
    ctx.options |= ssl.OP_NO_COMPRESSION
    _build_chain(ctx)
    return ctx


def _need_ca(cfg: Any, why: str) -> None:
    if not (cfg.tls_ca_cert_file or cfg.tls_ca_cert_dir):
        raise ConfigError(
            f"{cfg.where('tls_ca_cert_file')}: key 'tls_ca_cert_file': {why} needs"
            " tls_ca_cert_file or tls_ca_cert_dir to verify certificates"
        )


def _reason(e: BaseException) -> str:
    if isinstance(e, ssl.SSLError):
        return (e.reason or str(e)).lower().replace("_", " ")
    return getattr(e, "strerror", None) or str(e)


log = logging.getLogger("constdb")
HANDSHAKE_LOG_EVERY = 10.0  # seconds between two log lines of one failure reason
_handshake_log: dict[str, list[float]] = {}


def log_handshake_failure(reason: str, server_side: bool = True) -> None:
    """One line per reason every HANDSHAKE_LOG_EVERY seconds (the event loop's
    TLS layer and TLSConn close such connections without a word)."""
    now = time.monotonic()
    ent = _handshake_log.get(reason)
    if ent is not None and now - ent[0] < HANDSHAKE_LOG_EVERY:
        ent[1] += 1
        return
    if len(_handshake_log) > 256:
        _handshake_log.clear()
    n = int(ent[1]) if ent is not None else 0
    _handshake_log[reason] = [now, 0]
    log.info(
        "TLS handshake %s failed: %s%s",
        "from a client or peer" if server_side else "with a peer",
        reason,
        f" ({n} similar lines suppressed)" if n else "",
    )


class _CheckedSSLObject(ssl.SSLObject):
    """An SSLObject that logs why a handshake failed (a refused certificate,
    no shared protocol): log_handshake_failure."""

    def do_handshake(self) -> None:
        try:
            super().do_handshake()
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            raise
        except ssl.SSLError as e:
            log_handshake_failure(_reason(e), self.server_side)
            raise


def server_context(cfg: Any) -> ssl.SSLContext:
    """The TLS client port's context."""
    ctx = _base(cfg, ssl.PROTOCOL_TLS_SERVER)
    ctx.sslobject_class = _CheckedSSLObject
    _session_cache(ctx, cfg)
    mode = cfg.tls_auth_clients.lower()
    if mode != "no":
        _need_ca(cfg, f"tls_auth_clients {mode}")
        ctx.verify_mode = ssl.CERT_REQUIRED if mode == "yes" else ssl.CERT_OPTIONAL
    return ctx


def link_context(cfg: Any) -> ssl.SSLContext:
    """The context links are dialed with (tls_replication): it presents this
    node's certificate and verifies the peer's chain against the CA. Peers are
    dialed by address, so the host name is not checked: a member is whoever
    holds a certificate of the group's CA (and the cluster_secret)."""
    _need_ca(cfg, "tls_replication")
    dial = _base(cfg, ssl.PROTOCOL_TLS_CLIENT)
    dial.check_hostname = False
    dial.verify_mode = ssl.CERT_REQUIRED
    return dial


def peer_verified(transport: Any) -> bool:
    """Whether the connection is TLS and its peer sent a certificate the CA
    signed (the handshake verified it; CERT_OPTIONAL lets none be sent)."""
    obj = transport.get_extra_info("ssl_object")
    return obj is not None and bool(obj.getpeercert())


class Contexts:
    """A node's TLS contexts: the TLS port's (server) and the one links are
    dialed with (dial); None where not configured."""

    def __init__(self, cfg: Any):
        self.server = server_context(cfg) if cfg.tls_port else None
        self.dial: Optional[ssl.SSLContext] = None
        if cfg.tls_replication:
            if self.server is None:
                raise ConfigError(
                    f"{cfg.where('tls_replication')}: key 'tls_replication': links over TLS"
                    " arrive on the tls_port: set one"
                )
            self.dial = link_context(cfg)
            if self.server.verify_mode == ssl.CERT_NONE:
                # tls_auth_clients no: clients need none, links still must
                # present one (CDB.LINK checks it was sent and verified)
                self.server.verify_mode = ssl.CERT_OPTIONAL
