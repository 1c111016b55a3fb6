"""systemd's readiness protocol (sd_notify) over a plain socket: when the
service manager started the node with Type=notify it sets NOTIFY_SOCKET, and
the node sends READY=1 once it accepts clients and STOPPING=1 when it begins
to shut down. Without NOTIFY_SOCKET nothing is sent."""

from __future__ import annotations

import os
import socket


def notify(state: str) -> bool:
    """Send state ("READY=1\\nSTATUS=...") to $NOTIFY_SOCKET; False if unset or
    the send failed (never raises: readiness reporting must not stop a node)."""
    path = os.environ.get("NOTIFY_SOCKET", "")
    if not path or path[0] not in "/@":
        return False
    addr = "\0" + path[1:] if path[0] == "@" else path  # "@": the abstract namespace
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
            s.sendto(state.encode(), addr)
        return True
    except OSError:
        return False
