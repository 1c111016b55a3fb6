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
import os
import ssl
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


def _set_ciphersuites(ctx: ssl.SSLContext, suites: str) -> bool:
    """SSL_CTX_set_ciphersuites, which Python's ssl module does not expose:
    called on the context's SSL_CTX (the first field after the object header)."""
    lib = ctypes.CDLL(ssl._ssl.__file__)  # type: ignore[attr-defined]
    fn = lib.SSL_CTX_set_ciphersuites
    fn.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    fn.restype = ctypes.c_int
    ptr = ctypes.c_void_p.from_address(id(ctx) + object.__basicsize__).value
    return bool(fn(ptr, suites.encode()))


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


def server_context(cfg: Any) -> ssl.SSLContext:
    """The TLS client port's context."""
    ctx = _base(cfg, ssl.PROTOCOL_TLS_SERVER)
    mode = cfg.tls_auth_clients.lower()
    if mode != "no":
        _need_ca(cfg, f"tls_auth_clients {mode}")
        ctx.verify_mode = ssl.CERT_REQUIRED if mode == "yes" else ssl.CERT_OPTIONAL
    return ctx


def link_contexts(cfg: Any) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(dial, accept) contexts of mutual-TLS links: each side presents this
    node's certificate and verifies the peer's chain against the CA. Peers are
    dialed by address, so the host name is not checked: membership is proven
    by the CA's signature (and by the cluster_secret handshake)."""
    _need_ca(cfg, "tls_replication")
    dial = _base(cfg, ssl.PROTOCOL_TLS_CLIENT)
    dial.check_hostname = False
    dial.verify_mode = ssl.CERT_REQUIRED
    accept = _base(cfg, ssl.PROTOCOL_TLS_SERVER)
    accept.verify_mode = ssl.CERT_REQUIRED
    return dial, accept


class Contexts:
    """A node's TLS contexts: the client port's and the links' (dial, accept);
    None where not configured."""

    def __init__(self, cfg: Any):
        self.server = server_context(cfg) if cfg.tls_port else None
        self.dial: Optional[ssl.SSLContext] = None
        self.accept: Optional[ssl.SSLContext] = None
        if cfg.tls_replication:
            if not cfg.tls_port:
                raise ConfigError(
                    f"{cfg.where('tls_replication')}: key 'tls_replication': links over TLS"
                    " arrive on the tls_port: set one"
                )
            self.dial, self.accept = link_contexts(cfg)
