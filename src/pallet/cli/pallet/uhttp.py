"""HTTP/1.1 over a unix socket, just what the `pallet` CLI needs from palletd: a request with
a JSON or chunked body, a response read whole, in pieces, or as a chunked stream.

Not http.client: importing it (and the email package it parses headers with) costs ~20 ms,
paid by every `pallet` command before it reaches the daemon.
"""

from __future__ import annotations

TYPE_CHECKING = False  # `typing` costs ms of imports on every `pallet` command
if TYPE_CHECKING:
    import _socket
    from typing import Any, BinaryIO

BUF = 65536


def unix_socket() -> _socket.socket:
    """A unix stream socket of `_socket`, the C module under `socket`: this client needs
    connect, sendall, recv, shutdown and close, not the Python layer (its enum classes and
    selectors: ~1 ms of imports on every command)."""
    import _socket

    return _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)


class Response:
    def __init__(self, sock: _socket.socket, head: bool = False) -> None:
        self.sock = sock
        self.buf = b""
        self.eof = False
        line = self._line()
        parts = line.split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
            raise ConnectionError(f"not an HTTP response: {line[:80]!r}")
        self.status = int(parts[1])
        self.headers: dict[str, str] = {}
        while (h := self._line()) != b"":
            k, _, v = h.partition(b":")
            self.headers[k.strip().lower().decode()] = v.strip().decode(errors="replace")
        self.chunked = "chunked" in self.headers.get("transfer-encoding", "").lower()
        length = self.headers.get("content-length")
        self.left: int | None = int(length) if length is not None and not self.chunked else None
        self.chunk_left = 0
        if head or self.status in (204, 304):  # no body, whatever Content-Length says
            self.left, self.chunked = 0, False

    def getheader(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)

    def _fill(self) -> bool:
        data = self.sock.recv(BUF)
        if not data:
            return False
        self.buf += data
        return True

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            if not self._fill():
                raise ConnectionError("palletd closed the connection")
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _take(self, n: int) -> bytes:
        """Up to `n` body bytes, reading once only when nothing is buffered."""
        if not self.buf and not self._fill():
            return b""
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read1(self, n: int = BUF) -> bytes:
        """Some body bytes (b"" at the end), with at most one read from the socket."""
        if self.eof:
            return b""
        if self.chunked:
            if self.chunk_left == 0:
                size = self._line().split(b";", 1)[0].strip()
                self.chunk_left = int(size, 16) if size else 0
                if self.chunk_left == 0:
                    while self._line() != b"":  # trailers
                        pass
                    self.eof = True
                    return b""
            out = self._take(min(n, self.chunk_left))
            if not out:
                raise ConnectionError("palletd closed the connection inside a chunk")
            self.chunk_left -= len(out)
            if self.chunk_left == 0:
                self._line()  # the CRLF after the chunk
            return out
        if self.left is not None:
            if self.left == 0:
                self.eof = True
                return b""
            out = self._take(min(n, self.left))
            if not out:
                raise ConnectionError("palletd closed the connection inside a response")
            self.left -= len(out)
            return out
        out = self._take(n)  # no length: the body ends with the connection
        if not out:
            self.eof = True
        return out

    def read(self, n: int = -1) -> bytes:
        """The whole body, or `n` bytes of it (fewer only at its end), as a file's read."""
        parts, got = [], 0
        while n < 0 or got < n:
            chunk = self.read1(BUF if n < 0 else min(BUF, n - got))
            if not chunk:
                break
            parts.append(chunk)
            got += len(chunk)
        return b"".join(parts)


class Connection:
    """http.client.HTTPConnection's request/getresponse/close, on a unix socket."""

    def __init__(self, path: str, timeout: float | None = None) -> None:
        self.sock = unix_socket()
        if timeout is not None:
            self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.method = ""

    def request(self, method: str, url: str, body: bytes | BinaryIO | None = None,
                headers: dict[str, str] | None = None) -> None:
        """Send a request. A file-like body goes chunked unless the caller gave its
        Content-Length."""
        self.method = method
        h = {"Host": "localhost", "User-Agent": "pallet-cli", **(headers or {})}
        sized = any(k.lower() == "content-length" for k in h)
        stream = body is not None and not isinstance(body, bytes | bytearray)
        chunked = stream and not sized
        if chunked:
            h["Transfer-Encoding"] = "chunked"
        elif not stream and (body is not None or method in ("POST", "PUT")):
            h["Content-Length"] = str(len(body or b""))  # type: ignore[arg-type]
        head = f"{method} {url} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in h.items())
        first = body if isinstance(body, bytes | bytearray) else b""
        self.sock.sendall(head.encode() + b"\r\n" + first)
        if stream:
            src: Any = body
            while data := src.read(BUF):
                self.sock.sendall(f"{len(data):x}\r\n".encode() + data + b"\r\n"
                                  if chunked else data)
            if chunked:
                self.sock.sendall(b"0\r\n\r\n")

    def getresponse(self) -> Response:
        return Response(self.sock, head=self.method == "HEAD")

    def close(self) -> None:
        self.sock.close()
