"""A small fault-injecting TCP proxy for the replication tests: it sits between
two nodes on loopback and can cut every connection (and refuse new ones)
until healed."""

from __future__ import annotations

import socket
import threading
from typing import Optional


class Proxy:
    def __init__(self, target_host: str, target_port: int, host: str = "127.0.0.1"):
        self.target = (target_host, target_port)
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind((host, 0))
        self.lsock.listen(64)
        self.host = host
        self.port = self.lsock.getsockname()[1]
        self.cut_flag = False
        self.lock = threading.Lock()
        self.conns: list[socket.socket] = []
        self.closed = False
        self.accepted = 0
        self.flowing = threading.Event()
        self.flowing.set()
        self.thread = threading.Thread(target=self._accept_loop, daemon=True)
        self.thread.start()

    @property
    def addr(self) -> str:
        return f"{self.host}:{self.port}"

    def _accept_loop(self) -> None:
        while not self.closed:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            if self.cut_flag:
                c.close()
                continue
            try:
                u = socket.create_connection(self.target, timeout=5)
            except OSError:
                c.close()
                continue
            u.settimeout(None)
            with self.lock:
                self.conns += [c, u]
                self.accepted += 1
            threading.Thread(target=self._pipe, args=(c, u), daemon=True).start()
            threading.Thread(target=self._pipe, args=(u, c), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                while not self.flowing.wait(0.05):
                    if self.cut_flag or self.closed:
                        return
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()
            with self.lock:
                self.conns = [s for s in self.conns if s not in (src, dst)]

    def cut(self) -> None:
        """Drop every connection now and refuse new ones."""
        self.cut_flag = True
        with self.lock:
            conns = list(self.conns)
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def heal(self) -> None:
        self.cut_flag = False
        self.flowing.set()

    def freeze(self) -> None:
        """Keep connections open but pass no bytes: a silent peer."""
        self.flowing.clear()

    def close(self, timeout: Optional[float] = 2.0) -> None:
        self.closed = True
        self.cut()
        self.lsock.close()
        self.thread.join(timeout)
