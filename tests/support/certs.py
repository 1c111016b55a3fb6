"""Certificates made at run time with the openssl CLI: a CA and leaf
certificates it signs (for 127.0.0.1 and localhost), for the TLS tests."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass

from support.nodes import need_tool


def _run(*args: str) -> None:
    subprocess.run(
        [need_tool("openssl"), *args], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )


@dataclass
class Leaf:
    cert: str
    key: str


class CA:
    """A certificate authority in directory d (EC P-256 keys: fast to make)."""

    def __init__(self, d: str, name: str = "ConstDB test CA"):
        os.makedirs(d, exist_ok=True)
        self.dir = d
        self.key = os.path.join(d, "ca.key")
        self.cert = os.path.join(d, "ca.crt")
        _run("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", self.key)
        _run(
            "req", "-x509", "-new", "-key", self.key, "-sha256", "-days", "2",
            "-subj", f"/CN={name}", "-out", self.cert,
        )  # fmt: skip

    def issue(self, name: str) -> Leaf:
        """A certificate usable by a server and a client (both EKUs)."""
        key = os.path.join(self.dir, f"{name}.key")
        csr = os.path.join(self.dir, f"{name}.csr")
        crt = os.path.join(self.dir, f"{name}.crt")
        ext = os.path.join(self.dir, f"{name}.ext")
        with open(ext, "w") as f:
            f.write(
                "basicConstraints=CA:FALSE\n"
                "keyUsage=digitalSignature,keyEncipherment\n"
                "extendedKeyUsage=serverAuth,clientAuth\n"
                "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
            )
        _run("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", key)
        _run("req", "-new", "-key", key, "-subj", f"/CN={name}", "-out", csr)
        _run(
            "x509", "-req", "-in", csr, "-CA", self.cert, "-CAkey", self.key,
            "-CAcreateserial", "-days", "2", "-sha256", "-extfile", ext, "-out", crt,
        )  # fmt: skip
        return Leaf(crt, key)
