"""Messages on the create/exec sync socket: one JSON object per SOCK_SEQPACKET datagram."""

from __future__ import annotations

import json
import socket
from typing import Any

MAX_MESSAGE = 1 << 20


def pair() -> tuple[socket.socket, socket.socket]:
    return socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)


def send(sock: socket.socket, msg_type: str, **fields: Any) -> None:
    fields["type"] = msg_type
    sock.send(json.dumps(fields).encode())


def recv(sock: socket.socket) -> dict[str, Any] | None:
    """The next message, or None when every peer closed its end."""
    data = sock.recv(MAX_MESSAGE)
    if not data:
        return None
    return json.loads(data)


def expect(sock: socket.socket, kind: str) -> dict[str, Any]:
    msg = recv(sock)
    if msg is None:
        raise ConnectionError(f"sync: peer closed while waiting for {kind!r}")
    if msg.get("type") != kind:
        raise ConnectionError(f"sync: expected {kind!r}, got {msg.get('type')!r}")
    return msg
