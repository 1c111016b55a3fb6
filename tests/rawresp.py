"""A raw RESP connection for differential tests: replies are compared byte for
byte (RESP2, or RESP3 after HELLO 3), so that nil vs empty array, bulk vs
double and error texts all count."""

from __future__ import annotations

import socket

HOST = "127.0.0.1"


def encode(args) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if not isinstance(a, bytes):
            a = str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class Raw:
    def __init__(self, port: int, resp3: bool = False, host: str = HOST):
        self.sock = socket.create_connection((host, port), timeout=10)
        self.buf = b""
        if resp3:
            self.cmd(b"HELLO", b"3")

    def close(self) -> None:
        self.sock.close()

    def _fill(self) -> None:
        d = self.sock.recv(1 << 16)
        if not d:
            raise ConnectionError("server closed the connection")
        self.buf += d

    def _line(self, i: int) -> int:
        while True:
            j = self.buf.find(b"\r\n", i)
            if j >= 0:
                return j
            self._fill()

    def _frame_end(self, i: int) -> int:
        """The end of the reply that starts at i (reading more as needed)."""
        j = self._line(i)
        t = self.buf[i : i + 1]
        head = self.buf[i + 1 : j]
        if t in (b"+", b"-", b":", b"_", b",", b"#", b"("):
            return j + 2
        if t in (b"$", b"!", b"="):
            n = int(head)
            if n < 0:
                return j + 2
            while len(self.buf) < j + 2 + n + 2:
                self._fill()
            return j + 2 + n + 2
        if t in (b"*", b"~", b">", b"%", b"|"):
            n = int(head)
            if n < 0:
                return j + 2
            if t in (b"%", b"|"):
                n *= 2
            k = j + 2
            for _ in range(n):
                k = self._frame_end(k)
            return k
        raise ValueError(f"bad RESP type {t!r} in {self.buf[i : i + 40]!r}")

    def read(self) -> bytes:
        if not self.buf:
            self._fill()
        end = self._frame_end(0)
        out, self.buf = self.buf[:end], self.buf[end:]
        return out

    def cmd(self, *args) -> bytes:
        self.sock.sendall(encode(args))
        return self.read()

    def pipeline(self, cmds) -> list[bytes]:
        self.sock.sendall(b"".join(encode(c) for c in cmds))
        return [self.read() for _ in cmds]
