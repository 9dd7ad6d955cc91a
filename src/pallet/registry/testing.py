"""Registries for tests and benchmarks, each on 127.0.0.1 and a free port, stopped (by pid)
when the `with` block ends: pallet's own (as a subprocess, as users run it) and Debian's
`docker-registry` (CNCF distribution); plus a self-signed certificate and a proxy that
breaks connections, for TLS and resume tests."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field


def write_htpasswd(path: str | os.PathLike[str], users: dict[str, str]) -> str:
    """An htpasswd file of bcrypt entries, at the cheapest cost (tests only)."""
    import bcrypt

    with open(path, "w") as f:
        for user, password in users.items():
            f.write(f"{user}:"
                    + bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode() + "\n")
    return str(path)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Running:
    url: str
    proc: subprocess.Popen
    root: str
    log: str

    @property
    def host(self) -> str:
        return self.url.split("://", 1)[1]


def _wait_ready(url: str, proc: subprocess.Popen, log: str, timeout: float = 30) -> None:
    import ssl

    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"registry exited with {proc.returncode}: {_tail(log)}")
        try:
            urllib.request.urlopen(url + "/v2/", timeout=2, context=ctx)
            return
        except urllib.error.HTTPError:
            return  # 401: up, and asking for credentials
        except (urllib.error.URLError, OSError):
            time.sleep(0.05)
    raise RuntimeError(f"registry at {url} not ready: {_tail(log)}")


def _tail(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()[-2000:]
    except OSError:
        return ""


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@contextlib.contextmanager
def pallet_registry(workdir: str, *args: str, tls: tuple[str, str] | None = None
                    ) -> Iterator[Running]:
    """`pallet registry serve` with storage under `workdir`; `args` are extra flags."""
    os.makedirs(workdir, exist_ok=True)
    root = os.path.join(workdir, "storage")
    log = os.path.join(workdir, "pallet-registry.log")
    port = free_port()
    cmd = [sys.executable, "-m", "pallet.cli.pallet.main", "registry", "serve",
           "--addr", f"127.0.0.1:{port}", "--storage", root, "--log-level", "info", *args]
    if tls:
        cmd += ["--tls-cert", tls[0], "--tls-key", tls[1]]
    with open(log, "w") as logf:
        proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT)
    scheme = "https" if tls else "http"
    try:
        url = f"{scheme}://127.0.0.1:{port}"
        _wait_ready(url, proc, log)
        yield Running(url, proc, root, log)
    finally:
        _stop(proc)


def docker_registry_binary() -> str | None:
    return shutil.which("docker-registry")


@contextlib.contextmanager
def docker_registry(workdir: str, *, htpasswd: str | None = None, delete: bool = True,
                    token: dict[str, str] | None = None) -> Iterator[Running]:
    """Debian's docker-registry (distribution 2.8) with filesystem storage in `workdir`;
    `token` is its `auth: token` section (realm, service, issuer, rootcertbundle)."""
    binary = docker_registry_binary()
    if binary is None:
        raise RuntimeError("docker-registry not installed (Debian package docker-registry)")
    os.makedirs(workdir, exist_ok=True)
    root = os.path.join(workdir, "storage")
    port = free_port()
    auth = ""
    if htpasswd:
        auth = f"auth:\n  htpasswd:\n    realm: test-realm\n    path: {htpasswd}\n"
    if token:
        auth = "auth:\n  token:\n" + "".join(f"    {k}: {v}\n" for k, v in token.items())
    config = os.path.join(workdir, "config.yml")
    with open(config, "w") as f:
        f.write(f"""version: 0.1
log:
  level: info
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {root}
  delete:
    enabled: {str(delete).lower()}
http:
  addr: 127.0.0.1:{port}
  secret: pallet-test-secret
{auth}""")
    log = os.path.join(workdir, "docker-registry.log")
    with open(log, "w") as logf:
        proc = subprocess.Popen([binary, "serve", config], stdout=logf,
                                stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_ready(url, proc, log)
        yield Running(url, proc, root, log)
    finally:
        _stop(proc)


def self_signed(directory: str, host: str = "127.0.0.1") -> tuple[str, str]:
    """A self-signed certificate for `host` (an IP SAN, usable as its own CA) and its key,
    as PEM files in `directory`, made by openssl(1)."""
    os.makedirs(directory, exist_ok=True)
    crt, key = os.path.join(directory, "registry.crt"), os.path.join(directory, "registry.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj",
                    f"/CN={host}", "-addext", f"subjectAltName=IP:{host}", "-addext",
                    "basicConstraints=critical,CA:TRUE", "-keyout", key, "-out", crt],
                   check=True, capture_output=True, timeout=60)
    return crt, key


@dataclass
class BreakingProxy:
    """A TCP proxy to `upstream` (host, port) that cuts the first `breaks` responses whose
    request line contains `match` after `after` bytes of the answer; it records every
    request head it forwards, so a test can see the client's Range requests."""

    upstream: tuple[str, int]
    match: str
    after: int
    breaks: int = 1
    requests: list[str] = field(default_factory=list)
    port: int = 0

    def __post_init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._server: asyncio.base_events.Server | None = None

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    limit: int | None) -> None:
        sent = 0
        try:
            while data := await reader.read(65536):
                if limit is not None and sent + len(data) > limit:
                    writer.write(data[: limit - sent])
                    await writer.drain()
                    writer.transport.abort()
                    return
                sent += len(data)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def _handle(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        # One request per connection: read the head, forward it, pipe both ways.
        head = await cr.readuntil(b"\r\n\r\n")
        text = head.decode(errors="replace")
        self.requests.append(text)
        # the client may reuse the connection: ask the upstream to close after this one
        lines = [ln for ln in text.split("\r\n") if ln and not ln.lower().startswith(
            "connection:")]
        head = ("\r\n".join([*lines, "Connection: close"]) + "\r\n\r\n").encode()
        limit = None
        if self.match in lines[0] and self.breaks > 0:
            self.breaks -= 1
            limit = self.after
        ur, uw = await asyncio.open_connection(*self.upstream)
        uw.write(head)
        await uw.drain()
        await asyncio.gather(self._pipe(cr, uw, None), self._pipe(ur, cw, limit))

    def _run(self) -> None:
        async def main() -> None:
            self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
            self.port = self._server.sockets[0].getsockname()[1]
            self._ready.set()
            async with self._server:
                await self._server.serve_forever()

        with contextlib.suppress(asyncio.CancelledError):
            self._loop.run_until_complete(main())

    def __enter__(self) -> BreakingProxy:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._loop.call_soon_threadsafe(self._server.close)
            for task in asyncio.all_tasks(self._loop):
                self._loop.call_soon_threadsafe(task.cancel)
        self._thread.join(10)
