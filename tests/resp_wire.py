"""Raw RESP over a socket for byte-exact tests: send requests, cut the reply
stream into whole replies (RESP2 and RESP3), see when the server closes.
Every wait has a deadline."""

from __future__ import annotations

import re
import socket
import time
from typing import Optional, Union

HOST = "127.0.0.1"
Arg = Union[bytes, str, int]


def encode(*args: Arg) -> bytes:
    parts = [b"*%d\r\n" % len(args)]
    for a in args:
        b = a if isinstance(a, bytes) else str(a).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(parts)


def reply_end(buf: bytes, pos: int = 0) -> Optional[int]:
    """Index just past the reply that starts at pos, None if incomplete."""
    nl = buf.find(b"\r\n", pos)
    if nl < 0:
        return None
    t = buf[pos : pos + 1]
    head = buf[pos + 1 : nl]
    end = nl + 2
    if t in b"+-:_,#(":
        return end
    n = int(head)
    if t in b"$=!":
        if n < 0:
            return end
        return end + n + 2 if len(buf) >= end + n + 2 else None
    if t in b"*~>%|":
        if n < 0:
            return end
        if t in b"%|":
            n *= 2
        for _ in range(n):
            e = reply_end(buf, end)
            if e is None:
                return None
            end = e
        if t == b"|":  # an attribute precedes the real reply
            return reply_end(buf, end)
        return end
    raise ValueError(f"not a RESP reply at {pos}: {buf[pos : pos + 40]!r}")


class Wire:
    """One connection that sends raw requests and reads whole replies."""

    def __init__(self, port: int, host: str = HOST, timeout: float = 10.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.timeout = timeout
        self.buf = b""
        self.eof = False

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Wire:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def send(self, *args: Arg) -> None:
        self.sock.sendall(encode(*args))

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self, deadline: float) -> bool:
        left = deadline - time.monotonic()
        if left <= 0 or self.eof:
            return False
        self.sock.settimeout(left)
        try:
            d = self.sock.recv(1 << 16)
        except socket.timeout:
            return False
        except ConnectionResetError:
            d = b""
        if not d:
            self.eof = True
            return False
        self.buf += d
        return True

    def read(self, timeout: Optional[float] = None) -> bytes:
        """One whole reply, raw."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            end = reply_end(self.buf) if self.buf else None
            if end is not None:
                out, self.buf = self.buf[:end], self.buf[end:]
                return out
            if not self._fill(deadline):
                raise AssertionError(
                    f"no whole reply ({'closed' if self.eof else 'timeout'}); have {self.buf[:200]!r}"
                )

    def call(self, *args: Arg) -> bytes:
        self.send(*args)
        return self.read()

    def rest_until_close(self, timeout: float = 5.0) -> tuple[bytes, bool]:
        """What arrives until the server closes (True) or the timeout (False)."""
        deadline = time.monotonic() + timeout
        while self._fill(deadline):
            pass
        out, self.buf = self.buf, b""
        return out, self.eof


def exchange(port: int, cmds: list[tuple], resp3: bool = False) -> list[bytes]:
    """Pipeline cmds on a new connection; their raw replies (a closed
    connection shows as b'<closed>')."""
    with Wire(port) as w:
        if resp3:
            w.call("HELLO", "3")
        w.send_raw(b"".join(encode(*c) for c in cmds))
        out = []
        for _ in cmds:
            try:
                out.append(w.read(timeout=5))
            except AssertionError:
                if w.eof:
                    out.append(b"<closed>")
                    break
                raise
        return [normalize(x) for x in out]


_ID = re.compile(rb"(\$2\r\nid\r\n):\d+\r\n")


def normalize(reply: bytes) -> bytes:
    """Blank what differs by nature between two servers (HELLO's client id)."""
    return _ID.sub(rb"\1:N\r\n", reply)
