"""Messages on the create/exec sync socket: one JSON object per SOCK_SEQPACKET datagram."""

from __future__ import annotations

import _socket

from pallet import jsonlite

TYPE_CHECKING = False  # `typing` itself costs ms of imports on every runtime start

if TYPE_CHECKING:
    from typing import Any

MAX_MESSAGE = 1 << 20


def pair() -> tuple[_socket.socket, _socket.socket]:
    # _socket, not socket: the wrapper module imports enum and selectors (ms per start).
    return _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_SEQPACKET)


def send(sock: _socket.socket, msg_type: str, **fields: Any) -> None:
    fields["type"] = msg_type
    sock.send(jsonlite.dumps(fields).encode())


def recv(sock: _socket.socket) -> dict[str, Any] | None:
    """The next message, or None when every peer closed its end."""
    data = sock.recv(MAX_MESSAGE)
    if not data:
        return None
    return jsonlite.loads(data)  # type: ignore[return-value]


def expect(sock: _socket.socket, kind: str) -> dict[str, Any]:
    msg = recv(sock)
    if msg is None:
        raise ConnectionError(f"sync: peer closed while waiting for {kind!r}")
    if msg.get("type") != kind:
        raise ConnectionError(f"sync: expected {kind!r}, got {msg.get('type')!r}")
    return msg


def send_fds(sock: _socket.socket, data: bytes, fds: list[int]) -> None:
    """socket.send_fds without the socket module."""
    payload = b"".join(fd.to_bytes(4, "little", signed=True) for fd in fds)
    sock.sendmsg([data], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, payload)])


def recv_fds(sock: _socket.socket, bufsize: int, maxfds: int) -> tuple[bytes, list[int]]:
    data, ancdata, _, _ = sock.recvmsg(bufsize, _socket.CMSG_SPACE(maxfds * 4))
    fds: list[int] = []
    for level, kind, payload in ancdata:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
            usable = len(payload) - len(payload) % 4
            fds += [int.from_bytes(payload[i:i + 4], "little", signed=True)
                    for i in range(0, usable, 4)]
    return data, fds
