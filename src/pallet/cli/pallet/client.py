"""The `pallet` CLI's client of palletd: the Engine API over a unix socket (`uhttp`, no
event loop), hijacked streams for attach/exec, and starting palletd on first use.

When the socket is the default one (or `PALLET_AUTOSTART=1`) and nothing answers, the CLI
starts `palletd` (detached, its log beside the socket: /run/pallet/palletd.log) and says so
on stderr; `PALLET_NO_AUTOSTART=1` turns that off. For real installs use the systemd unit
(contrib/palletd.service).
"""

from __future__ import annotations

import os
import sys
import time

from pallet.cli.pallet.uhttp import Connection, Response, unix_socket
from pallet.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PalletError,
    SystemError_,
    Unavailable,
)

TYPE_CHECKING = False  # `typing` and friends cost ms on every `pallet` command
if TYPE_CHECKING:
    import _socket
    from collections.abc import Iterator
    from typing import Any

DEFAULT_HOST = "unix:///run/pallet/pallet.sock"
API = "/v1.41"


class DaemonError(PalletError):
    kind = "system"


_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~")


def quote(s: str, safe: str = "/") -> str:
    """urllib.parse.quote, without importing urllib.parse (~1.5 ms) on every command."""
    keep = _UNRESERVED.union(safe.encode())
    return "".join(chr(b) if b in keep else f"%{b:02X}" for b in s.encode())


def urlencode(query: dict[str, Any] | list[tuple[str, Any]]) -> str:
    """urllib.parse.urlencode of str()-able values (quote_plus: spaces as +)."""
    items = query.items() if isinstance(query, dict) else query
    return "&".join(f"{quote(str(k), ' ')}={quote(str(v), ' ')}".replace(" ", "+")
                    for k, v in items)


def _error(status: int, message: str) -> PalletError:
    cls: type[PalletError] = {404: NotFound, 400: InvalidArgument, 409: FailedPrecondition,
                              503: Unavailable}.get(status, SystemError_)
    if status == 409 and "already in use" in message:
        cls = AlreadyExists
    return cls(f"Error response from daemon: {message}")


def _checked(c: Connection, r: Response) -> tuple[Connection, Response]:
    """An error status raises with the daemon's message (and closes the connection)."""
    if r.status >= 400:
        from pallet import jsonlite as json

        raw = r.read()
        c.close()
        try:
            msg = json.loads(raw).get("message", raw.decode())
        except ValueError:
            msg = raw.decode(errors="replace")
        raise _error(r.status, msg)
    return c, r


class Client:
    def __init__(self, host: str | None = None, root: str | None = None) -> None:
        self.host = host or os.environ.get("PALLET_HOST") or DEFAULT_HOST
        if not self.host.startswith("unix://"):
            raise InvalidArgument(f"{self.host}: only unix:// hosts are supported")
        self.path = self.host[len("unix://"):]
        self.root = root
        self._checked = False

    # --- connection and autostart -------------------------------------------------------

    def _ensure(self) -> None:
        if self._checked:
            return
        try:
            s = unix_socket()
            s.connect(self.path)
            s.close()
        except (FileNotFoundError, ConnectionRefusedError):
            auto = self.host == DEFAULT_HOST or os.environ.get("PALLET_AUTOSTART") == "1"
            if not auto or os.environ.get("PALLET_NO_AUTOSTART"):
                raise Unavailable(f"Cannot connect to palletd at {self.host}. Is palletd "
                                  "running?") from None
            self._autostart()
        self._checked = True

    def _autostart(self) -> None:
        import subprocess

        run_dir = os.path.dirname(self.path)
        os.makedirs(run_dir, exist_ok=True)
        log_path = os.path.join(run_dir, "palletd.log")
        argv = [sys.executable, "-m", "pallet.daemon", "-H", self.path]
        if self.host != DEFAULT_HOST:  # a private daemon: its runtime state beside its socket
            argv += ["--exec-root", os.path.join(run_dir, "run")]
        if self.root:
            argv += ["--root", self.root]
        with open(log_path, "ab") as log:
            p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                 start_new_session=True, close_fds=True, cwd="/")
        print(f"pallet: palletd was not running; started it (pid {p.pid}, log {log_path})",
              file=sys.stderr)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if p.poll() is not None:
                raise Unavailable(f"palletd exited with status {p.returncode}; see {log_path}")
            try:
                s = unix_socket()
                s.connect(self.path)
                s.close()
                return
            except OSError:
                time.sleep(0.05)
        raise Unavailable(f"palletd did not start; see {log_path}")

    def _conn(self, timeout: float | None = None) -> Connection:
        self._ensure()
        return Connection(self.path, timeout)

    @staticmethod
    def url(path: str, params: dict[str, Any] | None = None) -> str:
        q = {k: v for k, v in (params or {}).items() if v is not None}
        for k, v in q.items():
            if isinstance(v, bool):
                q[k] = "1" if v else "0"
            elif isinstance(v, dict | list):
                from pallet import jsonlite as json

                q[k] = json.dumps(v)
        return API + path + ("?" + urlencode(q) if q else "")

    # --- requests -----------------------------------------------------------------------

    def send(self, method: str, path: str, params: dict[str, Any] | None = None,
             body: Any = None, headers: dict[str, str] | None = None
             ) -> tuple[Connection, Response]:
        """Send a request and read the response headers; errors raise."""
        from pallet import jsonlite as json

        c = self._conn()
        data = json.dumps(body).encode() if body is not None else None
        h = {"Content-Type": "application/json"} if data is not None else {}
        h.update(headers or {})
        c.request(method, self.url(path, params), body=data, headers=h)
        return _checked(c, c.getresponse())

    def upload(self, method: str, path: str, params: dict[str, Any] | None, src: Any,
               content_type: str = "application/x-tar"
               ) -> tuple[Connection, Response]:
        """Send a file-like body chunked (an archive: `cp`, `import`, `load`), as `send`."""
        c = self._conn()
        c.request(method, self.url(path, params), body=src,
                  headers={"Content-Type": content_type})
        return _checked(c, c.getresponse())

    def call(self, method: str, path: str, params: dict[str, Any] | None = None,
             body: Any = None) -> Any:
        c, r = self.send(method, path, params, body)
        try:
            raw = r.read()
        finally:
            c.close()
        if not raw:
            return None
        from pallet import jsonlite as json

        try:
            return json.loads(raw)
        except ValueError:
            return raw

    def get(self, path: str, **params: Any) -> Any:
        return self.call("GET", path, params)

    def post(self, path: str, body: Any = None, **params: Any) -> Any:
        return self.call("POST", path, params, body)

    def stream(self, method: str, path: str, params: dict[str, Any] | None = None,
               body: Any = None, headers: dict[str, str] | None = None
               ) -> Iterator[dict[str, Any]]:
        """A JSON-lines response (pull progress, events, wait)."""
        from pallet import jsonlite as json

        c, r = self.send(method, path, params, body, headers)
        try:
            buf = b""
            while True:
                chunk = r.read1(65536)
                if not chunk:
                    break
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    if line.strip():
                        yield json.loads(line)
            if buf.strip():
                yield json.loads(buf)
        finally:
            c.close()

    def raw(self, method: str, path: str, params: dict[str, Any] | None = None
            ) -> Iterator[bytes]:
        c, r = self.send(method, path, params)
        try:
            while True:
                chunk = r.read1(65536)
                if not chunk:
                    break
                yield chunk
        finally:
            c.close()

    def hijack(self, path: str, params: dict[str, Any] | None = None, body: Any = None
               ) -> tuple[_socket.socket, bytes]:
        """POST with `Upgrade: tcp`; returns the raw socket and bytes already read."""
        from pallet import jsonlite as json

        self._ensure()
        s = unix_socket()
        s.connect(self.path)
        data = json.dumps(body).encode() if body is not None else b""
        head = (f"POST {self.url(path, params)} HTTP/1.1\r\nHost: localhost\r\n"
                "Connection: Upgrade\r\nUpgrade: tcp\r\n"
                "Content-Type: application/json\r\n"
                f"Content-Length: {len(data)}\r\n\r\n").encode()
        s.sendall(head + data)
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                raise Unavailable("palletd closed the connection")
            buf += chunk
        header, rest = buf.split(b"\r\n\r\n", 1)
        status = int(header.split(b" ", 2)[1])
        if status >= 400:
            # an ordinary error response: the body follows
            length = 0
            for line in header.split(b"\r\n")[1:]:
                k, _, v = line.partition(b":")
                if k.strip().lower() == b"content-length":
                    length = int(v.strip())
            while len(rest) < length:
                chunk = s.recv(65536)
                if not chunk:
                    break
                rest += chunk
            s.close()
            try:
                msg = json.loads(rest).get("message", rest.decode())
            except ValueError:
                msg = rest.decode(errors="replace")
            raise _error(status, msg)
        return s, rest


def cid(name: str) -> str:
    return quote(name, safe="")
