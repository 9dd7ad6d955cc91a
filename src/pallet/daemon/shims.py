"""palletd's side of pallet-shim: launching one, and its local protocol (`pallet.shim.wire`).

Shims are forked from a zygote (`Zygote`), itself started with `subprocess.Popen`
(fork+exec in C, no `preexec_fn`) in its own session, as `python -I -S -c <boot>`: isolated
from the environment and without `site`, it imports only what shims need. Without a live
zygote a shim is started the same way. Popen (not asyncio's subprocess transport, which kills a
running child when it is closed or collected) so that a shim outlives palletd.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pallet
from pallet.errors import FailedPrecondition, PalletError, SystemError_, Unavailable
from pallet.shim import wire

_SRC = os.path.dirname(os.path.dirname(os.path.abspath(pallet.__file__)))
BOOT = f"import sys; sys.path.insert(0, {_SRC!r}); from pallet.shim.main import main; main()"
SHIM = [sys.executable, "-I", "-S", "-c", BOOT]  # a shim's (or the zygote's) interpreter
LAUNCH_TIMEOUT = 60.0


@dataclass
class LaunchSpec:
    id: str
    bundle: str
    dir: str
    socket: str
    console_socket: str
    runtime: str
    runtime_root: str
    log_path: str
    log_format: str = "json-file"
    tty: bool = False
    stdin: bool = False
    log_max: tuple[int, int] = (0, 1)  # json-file max-size (0: unbounded), max-file
    runtime_in_process: bool = False  # pallet-runtime's CLI in a fork of the shim

    def argv(self) -> list[str]:
        """The command line of a shim started on its own."""
        return [*SHIM, *self.args()]

    def args(self) -> list[str]:
        """The shim's own arguments (what a zygote gets)."""
        a = ["--id", self.id, "--bundle", self.bundle,
             "--dir", self.dir, "--socket", self.socket, "--console-socket",
             self.console_socket, "--runtime", self.runtime, "--runtime-root",
             self.runtime_root, "--log-path", self.log_path, "--log-format", self.log_format]
        if self.log_max[0]:
            a += ["--log-max-size", str(self.log_max[0]), "--log-max-file",
                  str(self.log_max[1])]
        if self.tty:
            a.append("--tty")
        if self.stdin:
            a.append("--stdin")
        if self.runtime_in_process:
            a.append("--runtime-in-process")
        return a


class ShimError(PalletError):
    kind = "system"


class Shim:
    """A connection factory for one shim's socket."""

    def __init__(self, socket: str, popen: subprocess.Popen[bytes] | None = None) -> None:
        self.socket = socket
        self.popen = popen  # set when this palletd started it (to reap it)

    async def _open(self, op: str, **kw: Any
                    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        try:
            r, w = await asyncio.open_unix_connection(self.socket, limit=1 << 22)
        except (FileNotFoundError, ConnectionRefusedError) as e:
            raise Unavailable(f"shim {self.socket}: {e.strerror}") from None
        w.write(wire.line({"op": op, **kw}))
        await w.drain()
        return r, w

    async def call(self, op: str, **kw: Any) -> dict[str, Any]:
        r, w = await self._open(op, **kw)
        try:
            line = await r.readline()
        finally:
            w.close()
            with contextlib.suppress(Exception):
                await w.wait_closed()
        if not line:
            raise Unavailable(f"shim {self.socket}: closed the connection ({op})")
        answer = wire.loads(line)
        assert isinstance(answer, dict)
        if "error" in answer:
            raise ShimError(str(answer["error"]))
        return answer

    async def wait(self) -> dict[str, Any]:
        """Until the container's init has exited; Unavailable if the shim died."""
        return await self.call("wait")

    async def stream(self, op: str, **kw: Any
                     ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await self._open(op, **kw)

    def reap(self) -> None:
        if self.popen is not None:
            with contextlib.suppress(Exception):
                self.popen.wait(timeout=5)


class Zygote:
    """The process every shim is forked from (`--zygote`): an interpreter with the shim's
    and the runtime's modules imported, reading requests on a SOCK_SEQPACKET socket (its
    stdin). A request is a shim's arguments with the write end of a pipe; the forked shim
    answers `ok <pid>` on it. The shim's start-up is off a container's start, and the shims
    share the zygote's memory. It exits at EOF on its socket: when palletd goes, so does it
    (its shims stay). palletd itself still never forks without exec."""

    def __init__(self, marker: str) -> None:
        self.marker = marker  # a path of this daemon's, so its processes can be found
        self.proc: subprocess.Popen[bytes] | None = None
        self.sock: socket.socket | None = None
        self.lock = threading.Lock()

    def fill(self) -> None:
        with self.lock:
            if self.proc is not None and self.proc.poll() is None:
                return
            self._close()
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            try:
                self.proc = subprocess.Popen(
                    [*SHIM, "--zygote", self.marker],
                    stdin=theirs, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                    start_new_session=True, close_fds=True, cwd="/")
            except OSError:
                ours.close()
                raise
            finally:
                theirs.close()
            self.sock = ours

    def fork(self, argv: list[str]) -> int | None:
        """Ask for a shim with `argv` (a LaunchSpec's, after the interpreter's); returns
        the read end of the pipe its answer comes on, or None without a live zygote."""
        with self.lock:
            if self.sock is None or self.proc is None or self.proc.poll() is not None:
                return None
            r, w = os.pipe2(os.O_CLOEXEC)
            try:
                socket.send_fds(self.sock, [json.dumps(argv).encode()], [w])
            except OSError:
                os.close(r)
                return None
            finally:
                os.close(w)
            return r

    def _close(self) -> None:
        if self.sock is not None:
            self.sock.close()  # EOF: it exits
            self.sock = None
        p, self.proc = self.proc, None
        if p is not None:
            with contextlib.suppress(Exception):
                p.wait(timeout=5)

    def close(self) -> None:
        with self.lock:
            self._close()


async def launch(spec: LaunchSpec, stderr_path: str, zygote: Zygote | None = None
                 ) -> tuple[Shim, int]:
    """Start a shim (which runs `<runtime> create`); returns it and the container's pid."""
    os.makedirs(spec.dir, exist_ok=True)
    os.makedirs(os.path.dirname(spec.socket), exist_ok=True)
    loop = asyncio.get_running_loop()
    p: subprocess.Popen[bytes] | None = None
    r = zygote.fork([*spec.args(), "--stderr", stderr_path]) if zygote else None
    if r is not None:
        out = os.fdopen(r, "rb")
    else:
        if zygote is not None:
            loop.run_in_executor(None, zygote.fill)
        with open(stderr_path, "ab") as err:
            p = subprocess.Popen(spec.argv(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                 stderr=err, start_new_session=True, close_fds=True, cwd="/")
        assert p.stdout is not None
        out = p.stdout
    try:
        line = await asyncio.wait_for(loop.run_in_executor(None, out.readline),
                                      LAUNCH_TIMEOUT)
    except TimeoutError:
        if p is not None:
            p.kill()
            await loop.run_in_executor(None, p.wait)
        raise SystemError_(f"shim for {spec.id[:12]} did not start in time") from None
    finally:
        out.close()
    text = line.decode(errors="replace").strip()
    if not text.startswith("ok "):
        if p is not None:
            await loop.run_in_executor(None, p.wait)
        msg = text[6:] if text.startswith("error ") else (text or "the shim exited")
        raise SystemError_(msg)
    return Shim(spec.socket, p), int(text.split()[1])


async def frames(reader: asyncio.StreamReader) -> AsyncIterator[tuple[int, bytes]]:
    """The frames of a shim stream, until it ends."""
    while True:
        try:
            head = await reader.readexactly(wire.HEADER)
            data = await reader.readexactly(int.from_bytes(head[4:8], "big"))
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        yield head[0], data


async def first_frame(reader: asyncio.StreamReader) -> tuple[int, dict[str, Any]]:
    """The first frame of an exec stream: STARTED with the pid, or EXIT with an error."""
    async for stream, data in frames(reader):
        if stream in (wire.STARTED, wire.EXIT):
            answer = wire.loads(data)
            assert isinstance(answer, dict)
            if "error" in answer:
                raise FailedPrecondition(str(answer["error"]))
            return stream, answer
        raise SystemError_(f"shim: unexpected first frame {stream}")
    raise Unavailable("shim closed the stream")
