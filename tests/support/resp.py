"""The tests' one raw RESP client, for what redis-py cannot do: exact reply
bytes (nil vs empty array, bulk vs double, error texts), malformed input and
closes, differential comparisons with redis-server byte for byte.

`Conn` is one connection. `call` sends one request and returns the whole
raw reply (RESP2, or RESP3 after HELLO 3); `call_typed` returns it parsed
into tagged tuples, so that RESP2 and RESP3 types never compare equal (a
null bulk, a RESP3 null and an empty array all differ). Every wait has a
deadline: a reply that does not come, or a close, fails with an
AssertionError that shows what did arrive.
"""

from __future__ import annotations

import re
import socket
import time
from typing import Any, Optional, Union

HOST = "127.0.0.1"
Arg = Union[bytes, str, int, float]


def encode(*args: Arg) -> bytes:
    """One request as a RESP array of bulk strings."""
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


# ------------------------------------------------------------ typed replies --


def parse_typed(data: bytes) -> Any:
    """One whole reply as tagged tuples: ("status", b"OK"), ("err", text),
    ("int", n), ("bulk", b), ("nil",), ("nilarr",), ("arr", items),
    ("set", items), ("map", ((k, v), ...)), ("null",), ("double", text),
    ("bool", b"t"), ("verbatim", b"txt:..."), ("bignum", digits)."""
    v, end = _typed(data, 0)
    assert end == len(data), f"trailing bytes after a reply: {data[end : end + 40]!r}"
    return v


def _exact(data: bytes, i: int, n: int) -> tuple[bytes, int]:
    assert data[i + n : i + n + 2] == b"\r\n", data[i : i + n + 40]
    return data[i : i + n], i + n + 2


def _typed(data: bytes, i: int) -> tuple[Any, int]:
    j = data.index(b"\r\n", i)
    t, rest = data[i : i + 1], data[i + 1 : j]
    i = j + 2
    if t == b"+":
        return ("status", rest), i
    if t == b"-":
        return ("err", rest), i
    if t == b":":
        return ("int", int(rest)), i
    if t == b"$":
        n = int(rest)
        if n < 0:
            return ("nil",), i
        b, i = _exact(data, i, n)
        return ("bulk", b), i
    if t in (b"*", b"~"):
        n = int(rest)
        if n < 0 and t == b"*":
            return ("nilarr",), i
        items = []
        for _ in range(n):
            v, i = _typed(data, i)
            items.append(v)
        return ("arr" if t == b"*" else "set", tuple(items)), i
    if t == b"%":
        pairs = []
        for _ in range(int(rest)):
            k, i = _typed(data, i)
            v, i = _typed(data, i)
            pairs.append((k, v))
        return ("map", tuple(pairs)), i
    if t == b"_":
        return ("null",), i
    if t == b",":
        return ("double", rest), i
    if t == b"#":
        return ("bool", rest), i
    if t == b"=":
        b, i = _exact(data, i, int(rest))
        return ("verbatim", b), i
    if t == b"(":
        return ("bignum", rest), i
    raise AssertionError(f"bad reply line {data[i - len(rest) - 3 : j]!r}")


# ------------------------------------------------------------- connections --


class Conn:
    """One connection that sends requests (or raw bytes) and reads whole
    replies. protocol=3 switches to RESP3 with HELLO 3 first."""

    def __init__(self, port: int, protocol: int = 2, host: str = HOST, timeout: float = 10.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.timeout = timeout
        self.buf = b""  # received and not yet read
        self.eof = False
        self.protocol = protocol
        if protocol == 3:
            rep = self.call("HELLO", "3")
            assert rep.startswith(b"%"), rep

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Conn:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- sending

    def send(self, *args: Arg) -> None:
        self.sock.sendall(encode(*args))

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    # -- receiving

    def _fill(self, deadline: float) -> bool:
        """Receive more before the deadline; False on timeout or close."""
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

    def _short(self, n: int) -> AssertionError:
        why = "closed" if self.eof else "timeout"
        return AssertionError(f"no whole reply {n} ({why}); have {self.buf[:200]!r}")

    def read_many(self, n: int, timeout: Optional[float] = None) -> list[bytes]:
        """The next n whole replies, raw; each has timeout seconds to arrive."""
        wait = timeout or self.timeout
        deadline = time.monotonic() + wait
        out: list[bytes] = []
        pos = 0
        while len(out) < n:
            end = reply_end(self.buf, pos) if len(self.buf) > pos else None
            if end is not None:
                out.append(self.buf[pos:end])
                pos = end
                deadline = time.monotonic() + wait
                continue
            self.buf, pos = self.buf[pos:], 0
            if not self._fill(deadline):
                raise self._short(len(out))
        self.buf = self.buf[pos:]
        return out

    def read(self, timeout: Optional[float] = None) -> bytes:
        """One whole reply, raw."""
        return self.read_many(1, timeout)[0]

    def read_typed(self, timeout: Optional[float] = None) -> Any:
        return parse_typed(self.read(timeout))

    def call(self, *args: Arg) -> bytes:
        """One request; its raw reply."""
        self.send(*args)
        return self.read()

    def call_typed(self, *args: Arg) -> Any:
        """One request; its reply as tagged tuples (parse_typed)."""
        return parse_typed(self.call(*args))

    def pipeline(self, cmds) -> list[bytes]:
        """Send every request in one write; their raw replies."""
        self.send_raw(b"".join(encode(*c) for c in cmds))
        return self.read_many(len(cmds))

    def rest_until_close(self, timeout: float = 5.0) -> tuple[bytes, bool]:
        """What arrives until the server closes (True) or the timeout (False)."""
        deadline = time.monotonic() + timeout
        while self._fill(deadline):
            pass
        out, self.buf = self.buf, b""
        return out, self.eof


def replies(port: int, *cmds, protocol: int = 3) -> bytes:
    """The exact bytes of the replies to cmds, pipelined on a new connection
    (after HELLO 3 by default)."""
    with Conn(port, protocol) as c:
        return b"".join(c.pipeline(cmds))


def exchange(port: int, cmds: list[tuple], resp3: bool = False) -> list[bytes]:
    """Pipeline cmds on a new connection; their raw replies (a closed
    connection shows as b'<closed>')."""
    with Conn(port) as w:
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


def raw_command(
    port: int,
    payload: bytes,
    host: str = HOST,
    read_timeout: float = 2.0,
    expect_close: bool = False,
) -> bytes:
    """Send raw bytes and read what comes back until the reply stalls or the
    server closes the connection (for input that is not whole requests)."""
    with socket.create_connection((host, port), timeout=read_timeout) as s:
        s.sendall(payload)
        chunks = []
        s.settimeout(read_timeout if expect_close else 0.5)
        while True:
            try:
                d = s.recv(65536)
            except socket.timeout:
                break
            if not d:
                break
            chunks.append(d)
        return b"".join(chunks)
